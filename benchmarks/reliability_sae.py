"""Bad and edge inputs to ``untwine sae train/sweep/encode/evaluate/synthetic``, and kills.

Used by :mod:`benchmarks.reliability` (``cases`` and ``kill_trials``); each case runs
``python -m untwine sae ...`` and is classified there: ``expect="error"`` must be refused
with exit 2 and one ``error:`` line, ``expect="warning"`` must succeed and print a
``warning:`` line.  A silently wrong answer that only a later command shows (an old sweep
member left beside the new ones) is a case on that later command.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROWS, DIM = 600, 8
#: a small, fast training run (every kill trial and setup uses it)
TRAIN = ["--arch", "topk", "--latents", "16", "--k", "2", "--steps", "24", "--batch-size", "64", "--no-progress"]


def _must(p: subprocess.CompletedProcess, what: str) -> None:
    if p.returncode != 0:
        raise RuntimeError(f"setup step failed ({what}): {p.stderr.strip()[-400:]}")


def _arrays(work: Path) -> dict[str, Path]:
    """Input files: good activations and every kind of bad one."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    files = {}

    def save(name, arr):
        p = work / name
        np.save(p, arr)
        files[name] = p

    save("acts.npy", x)
    save("acts_b.npy", rng.standard_normal((ROWS, DIM)).astype(np.float32))  # same width, other rows
    save("zeros.npy", np.zeros((ROWS, DIM), np.float32))
    save("const.npy", np.tile(rng.standard_normal(DIM).astype(np.float32) * 3, (ROWS, 1)))
    bad = x.copy()
    bad[7, 3] = np.nan
    save("nan.npy", bad)
    bad = x.copy()
    bad[9, 1] = np.inf
    save("inf.npy", bad)
    save("one_d.npy", x[:, 0])
    save("three_d.npy", x.reshape(ROWS, 2, 4))
    save("text.npy", np.array([["a"] * DIM] * 4))
    save("complex.npy", x.astype(np.complex64))
    save("bool.npy", x > 0)
    save("no_rows.npy", np.zeros((0, DIM), np.float32))
    save("no_cols.npy", np.zeros((ROWS, 0), np.float32))
    save("one_row.npy", x[:1])
    save("wide.npy", rng.standard_normal((ROWS, DIM + 1)).astype(np.float32))
    with open(work / "npz_renamed.npy", "wb") as fh:  # np.savez would append .npz to the name
        np.savez(fh, acts=x)
    files["npz_renamed.npy"] = work / "npz_renamed.npy"
    (work / "empty.npy").write_bytes(b"")
    files["empty.npy"] = work / "empty.npy"
    (work / "empty.safetensors").write_bytes(b"")
    files["empty.safetensors"] = work / "empty.safetensors"
    (work / "garbage.npy").write_bytes(b"\x93NUMPY garbage" * 10)
    files["garbage.npy"] = work / "garbage.npy"
    (work / "empty_dir").mkdir()
    files["empty_dir"] = work / "empty_dir"
    mixed = work / "mixed_shards"
    mixed.mkdir()
    np.save(mixed / "a.npy", x)
    np.save(mixed / "b.npy", rng.standard_normal((10, DIM + 2)).astype(np.float32))
    files["mixed_shards"] = mixed
    fac = np.stack([np.arange(ROWS) % 3, np.arange(ROWS) % 2], axis=1)
    save("factors.npy", fac)
    save("factors_neg.npy", fac - 1)
    save("factors_short.npy", fac[:-5])
    save("factors_float.npy", fac + 0.5)
    save("factors_const.npy", np.zeros((ROWS, 2), np.int64))
    f = fac.astype(np.float64)
    f[3, 0] = np.nan
    save("factors_nan.npy", f)
    save("features.npy", rng.standard_normal((12, DIM)).astype(np.float32))
    save("features_wide.npy", rng.standard_normal((12, DIM + 3)).astype(np.float32))
    f = rng.standard_normal((12, DIM))
    f[0, 0] = np.nan
    save("features_nan.npy", f)
    save("codes_short.npy", rng.standard_normal((ROWS - 1, 12)).astype(np.float32))
    return files


def cases(case, run, src: Path, work: Path) -> None:
    """Register every SAE case through ``case(name, argv, expect)``; ``run`` runs setup steps."""
    work = Path(work)
    f = _arrays(work)
    acts = str(f["acts.npy"])
    blocker = work / "sae_a_file"
    blocker.write_text("x")
    unwritable = blocker / "sub"

    def train(out: Path, data=acts, *extra: str) -> None:
        _must(run(src, ["sae", "train", data, *TRAIN, "--out", str(out), *extra], work), f"sae train {out.name}")

    sae = work / "sae"
    train(sae)
    serial = iter(range(10**6))

    def fresh(prefix: str) -> str:
        return str(work / f"{prefix}_{next(serial)}")

    def t(name, data, *extra, out=None, expect="error"):
        case(f"sae train: {name}", ["sae", "train", str(data), *TRAIN, "--out", str(out or fresh("t")),
                                    *extra], expect)

    # -- sae train: the activations
    for key, what in [("npz_renamed.npy", ".npz renamed .npy"), ("empty.npy", "0-byte .npy"),
                      ("empty.safetensors", "0-byte .safetensors"), ("garbage.npy", "garbage .npy"),
                      ("zeros.npy", "all-zero activations"), ("const.npy", "constant activations"),
                      ("nan.npy", "NaN activations"), ("inf.npy", "inf activations"), ("one_d.npy", "1-D array"),
                      ("three_d.npy", "3-D array"), ("text.npy", "string dtype"), ("complex.npy", "complex dtype"),
                      ("no_rows.npy", "0 rows"), ("no_cols.npy", "0 columns"), ("empty_dir", "folder without shards"),
                      ("mixed_shards", "shards of different widths")]:
        t(what, f[key])
    t("1 row, batch 1", f["one_row.npy"], "--batch-size", "1")
    t("missing activations", work / "nope.npy")
    # -- sae train: the numbers
    for flag, value in [("--lr", "1e6"), ("--lr", "inf"), ("--lr", "nan"), ("--lr", "0"), ("--lr", "-1"),
                        ("--lr", "50"), ("--steps", "0"), ("--steps", "-3"), ("--batch-size", "0"),
                        ("--batch-size", "100000"), ("--latents", "0"), ("--latents", "-4"), ("--k", "0"),
                        ("--k", "-1"), ("--k", "17"), ("--seed", "-1"), ("--device", "tpu9"), ("--checkpoint-every", "0")]:
        t(f"{flag} {value}", acts, flag, value)
    for sets in ["l1_coefficient=abc", "l1_coefficient=nan", "l1_coefficient=-1", "l1_coefficient=inf", "l1_warmup=-0.5",
                 "nokey=1", "novalue"]:
        case(f"sae train relu --set {sets}", ["sae", "train", acts, "--arch", "relu", "--latents", "16", "--steps", "4",
                                               "--batch-size", "64", "--no-progress", "--set", sets,
                                               "--out", fresh("relu")])
    case("sae train jumprelu --set bandwidth=nan", ["sae", "train", acts, "--arch", "jumprelu", "--latents", "16", "--steps",
                                                     "4", "--batch-size", "64", "--no-progress", "--set", "bandwidth=nan",
                                                     "--out", str(work / "jr_nan")])
    case("sae train topk --set k=abc", ["sae", "train", acts, "--arch", "topk", "--latents", "16", "--steps", "4",
                                         "--batch-size", "64", "--no-progress", "--set", "k=abc", "--out", str(work / "k_abc")])
    # -- sae train: the output folder
    t("--out is a file", acts, out=blocker)
    t("--out unwritable", acts, out=unwritable)
    gan = work / "gan_run"
    _must(run(src, ["train", "beta_vae", "--dataset", "dsprites", "--steps", "2", "--batch-size", "4", "--out", str(gan),
                    "--set", "num_latents=3"], work), "untwine train")
    t("--out into a VAE run folder", acts, out=gan)
    t("--out into a VAE run folder with --overwrite", acts, "--overwrite", out=gan)
    syn_like = work / "not_a_run"
    syn_like.mkdir()
    (syn_like / "notes.txt").write_text("mine")
    t("--out into a folder of other files", acts, out=syn_like)
    t("again into a trained folder", acts, out=sae)
    t("--resume --overwrite", acts, "--resume", "--overwrite", out=sae)
    other = work / "sae_other"
    train(other, acts, "--steps", "24")
    t("--resume on a different activation file", f["acts_b.npy"], "--resume", out=other)
    corrupt = shutil.copytree(other, work / "sae_corrupt_ckpt")
    (corrupt / "checkpoint.pt").write_bytes(b"not a checkpoint")
    t("--resume with a corrupt checkpoint.pt", acts, "--resume", out=corrupt)

    # -- sae sweep
    def s(name, *extra, out=None, data=acts):
        case(f"sae sweep: {name}", ["sae", "sweep", str(data), "--steps", "4", "--batch-size", "64", "--no-progress",
                                    "--out", str(out or fresh("sw")), *extra])

    s("--latents abc", "--arch", "topk", "--latents", "abc", "--k", "2")
    s("--latents 0", "--arch", "topk", "--latents", "0", "--k", "2")
    s("--latents ''", "--arch", "topk", "--latents", ",", "--k", "2")
    s("--k 0,2", "--arch", "topk", "--latents", "16", "--k", "0,2")
    s("--k 2,x", "--arch", "topk", "--latents", "16", "--k", "2,x")
    s("--arch topk,nope", "--arch", "topk,nope", "--latents", "16", "--k", "2")
    s("--arch ''", "--arch", ",", "--latents", "16", "--k", "2")
    s("--lr inf", "--arch", "topk", "--latents", "16", "--k", "2", "--lr", "inf")
    s("all-zero activations", "--arch", "topk", "--latents", "16", "--k", "2", data=f["zeros.npy"])
    s("--out into a VAE run folder", "--arch", "topk", "--latents", "16", "--k", "2", out=gan)
    sweep = work / "sweep"
    _must(run(src, ["sae", "sweep", acts, "--arch", "topk", "--latents", "16", "--k", "2,3", "--steps", "4",
                    "--batch-size", "64", "--no-progress", "--out", str(sweep)], work), "sae sweep")
    _must(run(src, ["sae", "sweep", acts, "--arch", "topk", "--latents", "16", "--k", "4", "--steps", "4",
                    "--batch-size", "64", "--no-progress", "--out", str(sweep), "--overwrite"], work), "sae sweep --overwrite")
    case("sae evaluate: a sweep member that --overwrite replaced", ["sae", "evaluate", str(sweep / "topk-w16-k2"), acts])

    # -- two processes on one folder
    for cmd in ("train", "sweep"):  # the first runs for minutes; the second (short) one must not write beside it
        busy = work / f"busy_{cmd}"
        extra = ["--arch", "topk", "--latents", "16", "--k", "2", "--batch-size", "64", "--no-progress", "--out", str(busy)]
        first = _popen(src, ["sae", cmd, acts, *extra, "--steps", "1000000"], work)
        try:
            _wait_for(busy / "checkpoint.pt", first, 120)  # its first checkpoint (step 1000)
            case(f"sae {cmd}: a second process on the same folder", ["sae", cmd, acts, *extra, "--steps", "50", "--overwrite"])
        finally:
            first.kill()
            first.wait()

    # -- sae encode
    def e(name, sae_dir, data, out=None, *extra):
        case(f"sae encode: {name}", ["sae", "encode", str(sae_dir), str(data), "--out",
                                     str(out or fresh("codes") + ".npy"), *extra])

    e(".npz renamed .npy", sae, f["npz_renamed.npy"])
    e("0-byte .npy", sae, f["empty.npy"])
    e("0 rows", sae, f["no_rows.npy"])
    e("NaN activations", sae, f["nan.npy"])
    e("wrong width", sae, f["wide.npy"])
    e("--out unwritable", sae, acts, unwritable / "c.npy")
    codes_dir = work / "codes_dir.npy"
    codes_dir.mkdir()
    e("--out is a folder", sae, acts, codes_dir)
    e("a non-model folder", syn_like, acts)
    e("a VAE run folder", gan, acts)
    bad_cfg = shutil.copytree(sae, work / "sae_bad_cfg")
    (bad_cfg / "cfg.json").write_text("{not json")
    e("corrupt cfg.json", bad_cfg, acts)
    lying_cfg = shutil.copytree(sae, work / "sae_lying_cfg")
    (lying_cfg / "cfg.json").write_text((sae / "cfg.json").read_text().replace('"d_sae": 16', '"d_sae": "many"'))
    e("cfg.json with d_sae 'many'", lying_cfg, acts)
    trunc = shutil.copytree(sae, work / "sae_trunc")
    w = trunc / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    e("truncated weights", trunc, acts)
    nan_sae = shutil.copytree(sae, work / "sae_nan_weights")
    _nan_weights(nan_sae / "sae_weights.safetensors")
    e("NaN weights", nan_sae, acts)
    e("--device tpu9", sae, acts, None, "--device", "tpu9")

    # -- sae evaluate
    def v(name, sae_dir, data, *extra, expect="error"):
        case(f"sae evaluate: {name}", ["sae", "evaluate", str(sae_dir), str(data), *extra], expect)

    v("NaN weights", nan_sae, acts)
    v("truncated weights", trunc, acts)
    v("corrupt cfg.json", bad_cfg, acts)
    v("a non-model folder", syn_like, acts)
    v("one row", sae, f["one_row.npy"], expect="warning")
    v("constant rows", sae, f["const.npy"], expect="warning")
    v("all-zero rows", sae, f["zeros.npy"], expect="warning")
    v("0 rows", sae, f["no_rows.npy"])
    v(".npz renamed .npy", sae, f["npz_renamed.npy"])
    v("--factors negative", sae, acts, "--factors", str(f["factors_neg.npy"]), "--metrics", "mig")
    v("--factors short", sae, acts, "--factors", str(f["factors_short.npy"]), "--metrics", "mig")
    v("--factors non-integer", sae, acts, "--factors", str(f["factors_float.npy"]), "--metrics", "mig")
    v("--factors NaN", sae, acts, "--factors", str(f["factors_nan.npy"]), "--metrics", "mig")
    v("--factors constant", sae, acts, "--factors", str(f["factors_const.npy"]), "--metrics", "mig")
    v("--factors 0-byte", sae, acts, "--factors", str(f["empty.npy"]), "--metrics", "mig")
    v("--factors --metrics nope", sae, acts, "--factors", str(f["factors.npy"]), "--metrics", "nope")
    v("--features wrong width", sae, acts, "--features", str(f["features_wide.npy"]))
    v("--features NaN", sae, acts, "--features", str(f["features_nan.npy"]))
    v("--features 0-byte", sae, acts, "--features", str(f["empty.npy"]))
    v("--true-codes wrong rows", sae, acts, "--features", str(f["features.npy"]), "--true-codes", str(f["codes_short.npy"]))
    v("--true-codes 0-byte", sae, acts, "--true-codes", str(f["empty.npy"]))
    v("--json unwritable", sae, acts, "--json", str(unwritable / "s.json"))
    v("--seed -1", sae, acts, "--seed", "-1")

    # -- sae synthetic
    def g(name, *extra):
        case(f"sae synthetic: {name}", ["sae", "synthetic", "--features", "16", "--dim", "4", "--samples", "200", *extra,
                                        "--out", fresh("syn")])

    for flag, value in [("--children", "0"), ("--children", "-1"), ("--noise", "-1"), ("--noise", "nan"),
                        ("--noise", "inf"), ("--freq-power", "nan"), ("--freq-power", "inf"), ("--freq-power", "-1"),
                        ("--mag-std", "-1"), ("--mag-std", "nan"), ("--active", "0"), ("--active", "nan"),
                        ("--active", "17"), ("--correlation", "1"), ("--correlation", "nan"), ("--correlation", "-0.5"),
                        ("--samples", "0"), ("--dim", "0"), ("--features", "0"), ("--hierarchy", "-1"),
                        ("--seed", "-1")]:
        g(f"{flag} {value}", flag, value)
    case("sae synthetic: --hierarchy 2 --children 0", ["sae", "synthetic", "--features", "16", "--dim", "4", "--samples",
                                                       "200", "--hierarchy", "2", "--children", "0",
                                                       "--out", str(work / "syn_h2c0")])
    case("sae synthetic: --out is a file", ["sae", "synthetic", "--features", "16", "--dim", "4", "--samples", "200",
                                            "--out", str(blocker)])
    case("sae synthetic: --out unwritable", ["sae", "synthetic", "--features", "16", "--dim", "4", "--samples", "200",
                                             "--out", str(unwritable)])
    case("sae synthetic: --out into a VAE run folder", ["sae", "synthetic", "--features", "16", "--dim", "4", "--samples",
                                                        "200", "--out", str(gan)])


def _nan_weights(path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    t = load_file(str(path))
    t["W_dec"] = np.full_like(t["W_dec"], np.nan)
    save_file(t, str(path))


def _env(src: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")


def _popen(src: Path, argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "untwine", *argv], cwd=cwd, env=_env(src),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"background run ended early: {proc.stderr.read()[-400:]}")
        if time.time() - t0 > timeout:
            raise RuntimeError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def kill_trials(run, src: Path, work: Path, n: int, *, seed: int = 0) -> dict:
    """Kill ``sae train`` (SIGKILL) ``n`` times at random moments, resume each to the end and compare
    its final weights with an uninterrupted run's, byte for byte.

    The runs checkpoint every 2 steps, so kills land before, between and during checkpoint writes.
    Returns ``{"trials", "identical", "killed_running", "resume_failures", "stray_temporaries"}``.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 16)).astype(np.float32)
    acts = work / "kill_acts.npy"
    np.save(acts, x)
    argv = ["sae", "train", str(acts), "--arch", "topk", "--latents", "64", "--k", "4", "--steps", "120",
            "--batch-size", "256", "--checkpoint-every", "2", "--no-progress"]
    ref = work / "kill_ref"
    t0 = time.time()
    _must(run(src, [*argv, "--out", str(ref)], work), "uninterrupted sae train")
    full = time.time() - t0
    want = (ref / "sae_weights.safetensors").read_bytes()
    pick = random.Random(seed)
    out = {"trials": n, "identical": 0, "killed_running": 0, "resume_failures": 0, "stray_temporaries": 0,
           "uninterrupted_seconds": round(full, 2)}
    for i in range(n):
        d = work / f"kill_{i}"
        proc = _popen(src, [*argv, "--out", str(d)], work)
        time.sleep(pick.uniform(0.2, 1.0) * full)
        if proc.poll() is None:
            out["killed_running"] += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        p = run(src, [*argv, "--out", str(d), "--resume"], work)
        if p.returncode != 0:
            out["resume_failures"] += 1
            continue
        out["stray_temporaries"] += sum(1 for q in d.rglob("*.tmp"))
        if (d / "sae_weights.safetensors").read_bytes() == want:
            out["identical"] += 1
    return out
