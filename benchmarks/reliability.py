"""Bad inputs and damaged files through the command line, as a hostile but ordinary user would try them.

Each case runs ``python -m untwine ...`` in a fresh process against a source tree
(``--src``, default this checkout's ``src``; pass an older checkout's ``src`` to compare)
and is classed as:

* ``clear``: exit status 2 and one ``error: ...`` line, no traceback;
* ``handled``: the work succeeds and a ``warning: ...`` line says what was wrong or
  what was used instead (damaged checkpoint skipped, undefined score);
* ``traceback``: a Python traceback reached the user;
* ``silent``: the command succeeded and said nothing although its answer is wrong
  (a score of an array against itself, a finite "total correlation" of a singular
  covariance, corrupt weights used, a run restarted from step 0).

    python benchmarks/reliability.py                      # this checkout
    python benchmarks/reliability.py --src /old/checkout/src --label before
    python benchmarks/reliability.py --only newer --kill-trials 5 --results /tmp/r.json

Cases: ``base`` (train, evaluate, score, traverse, report, study), ``newer`` (`lm activations`,
`health`, `directions`, the GAN models, `report` on SAE and directions folders) and ``sae``
(`untwine sae ...`, from ``benchmarks/reliability_sae.py`` when present).  Kill trials
(``--kill-trials N``): ``kill -9`` of `lm activations` (and of `sae train`, from
``reliability_sae.py``) at a random moment, then the documented resume; a trial counts as
identical when every output file equals an uninterrupted run's byte for byte.

Writes ``benchmarks/results/reliability.json`` (one entry per label: ``counts``, ``cases``
and ``kill_trials``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "reliability.json"


def _env(src: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")


def run(src: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "untwine", *argv], cwd=cwd, env=_env(src), capture_output=True,
                          text=True, timeout=600)


def classify(p: subprocess.CompletedProcess, *, expect: str) -> str:
    """``expect``: "error" (bad input: must be refused), "warning" (must succeed and say so) or
    "works" (an unusual but valid input: must succeed, classed ``correct``)."""
    err = p.stderr
    if "Traceback" in err:
        return "traceback"
    if p.returncode == 2 and [ln for ln in err.splitlines() if ln.strip()][-1:] and err.strip().splitlines()[-1].startswith("error: "):
        return "clear"
    if p.returncode == 0:
        if expect == "works":
            return "correct"
        return "handled" if expect == "warning" and "warning:" in err else "silent"
    return f"exit {p.returncode}"


def _sae_module():
    """``benchmarks/reliability_sae.py`` (the `untwine sae` cases) when this tree has it, else None."""
    if not (HERE / "reliability_sae.py").is_file():
        return None
    sys.path.insert(0, str(HERE))
    import reliability_sae

    return reliability_sae


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(HERE.parent / "src"))
    ap.add_argument("--label", default="after")
    ap.add_argument("--only", choices=("all", "base", "newer", "sae"), default="all", help="which cases (default all)")
    ap.add_argument("--kill-trials", type=int, default=5, metavar="N", help="kill -9 trials per command (default 5)")
    ap.add_argument("--results", default=str(RESULTS), help=f"JSON file to update (default {RESULTS})")
    args = ap.parse_args()
    src = Path(args.src).resolve()
    work = Path(tempfile.mkdtemp(prefix="untwine-reliability-"))
    os.environ["UNTWINE_CACHE"] = str(work / "cache")  # oracles trained by the cases stay in the scratch folder
    sae = _sae_module()
    cases: list[dict] = []
    kills: dict[str, dict] = {}
    try:
        if args.only in ("all", "base"):
            cases += _cases(src, work)
        if args.only in ("all", "newer"):
            cases += _newer_cases(src, work / "newer")
            if args.kill_trials:
                kills["lm activations"] = lm_kill_trials(run, src, work / "lm_kills", args.kill_trials)
        if args.only in ("all", "sae"):
            if sae is None:
                print("benchmarks/reliability_sae.py is absent: no `untwine sae` cases")
            else:
                (work / "sae").mkdir()
                cases += _callback_cases(src, work / "sae", sae.cases)
                if args.kill_trials:
                    kills["sae train"] = sae.kill_trials(run, src, work / "sae_kills", args.kill_trials)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
        print(f"{c['outcome']:>10}  {c['case']}")
    print(counts)
    for name, k in kills.items():
        print(f"kill -9 of {name}: {k['identical']} of {k['trials']} resumed bit-identically")
    results = Path(args.results)
    data = json.loads(results.read_text()) if results.is_file() else {}
    data[args.label] = {"src": str(src), "counts": counts, "kill_trials": kills, "cases": cases}
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1) + "\n")


def _train(src: Path, work: Path, name: str) -> Path:
    out = work / name
    p = run(src, ["train", "beta_vae", "--dataset", "dsprites", "--steps", "2", "--batch-size", "4", "--out", str(out),
                  "--set", "num_latents=3", "--set", "checkpoint_every=1", "--set", "keep_checkpoints=2"], work)
    assert p.returncode == 0, p.stderr
    return out


def _only_checkpoint(run_dir: Path) -> Path:
    """Keep only the newest checkpoint; returns its folder."""
    steps = sorted(p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("step-"))
    for p in steps[:-1]:
        shutil.rmtree(p)
    return steps[-1]


def _recorder(src: Path, work: Path, out: list[dict]):
    """The ``case(name, argv, expect="error")`` callback: runs one command and records its outcome."""

    def case(name: str, argv: list[str], expect: str = "error") -> None:
        p = run(src, argv, work)
        out.append({"case": name, "outcome": classify(p, expect=expect), "exit": p.returncode,
                    "stderr_tail": p.stderr.strip().splitlines()[-1:] if p.stderr.strip() else []})

    return case


def _callback_cases(src: Path, work: Path, fn) -> list[dict]:
    out: list[dict] = []
    fn(_recorder(src, work, out), run, src, work)
    return out


def _cases(src: Path, work: Path) -> list[dict]:
    out: list[dict] = []
    case = _recorder(src, work, out)

    blocker = work / "a_file"
    blocker.write_text("x")
    bad = blocker / "sub"
    base = _train(src, work, "run")

    # -- tracebacks before: negative seeds, unwritable outputs, corrupt databases and checkpoints
    case("score --seed -1", ["score", "--demo", "--seed", "-1"])
    case("traverse --seed -1", ["traverse", str(base), "--seed", "-1", "--out", str(work / "t.png")])
    case("report --seed -1", ["report", str(base), "--seed", "-1", "--out", str(work / "r.html")])
    case("datasets show --seed -1", ["datasets", "show", "dsprites", "--seed", "-1", "--out", str(work / "g.png")])
    case("train --out unwritable", ["train", "vae", "--dataset", "dsprites", "--steps", "1", "--out", str(bad)])
    ro = shutil.copytree(base, work / "ro")
    (ro / "metrics.json").mkdir()  # a directory where metrics.json must go: cannot be written (even as root)
    case("evaluate: metrics.json unwritable", ["evaluate", str(ro), "--metrics", "mig", "--num-train", "40",
                                               "--num-test", "20"])
    spec = work / "s.yaml"
    spec.write_text("datasets: [dsprites]\nmodels: [vae]\nseeds: 1\ntrain: {steps: 1, batch_size: 4, device: cpu}\n"
                    "evaluation: {metrics: [mig], num_train: 40, num_test: 20}\nudr: {enabled: false}\n")
    case("study run --out unwritable", ["study", "run", str(spec), "--out", str(bad), "--no-progress"])
    study = work / "study"
    p = run(src, ["study", "run", str(spec), "--out", str(study), "--no-progress"], work)
    assert p.returncode == 0, p.stderr
    case("study results --csv unwritable", ["study", "results", str(study), "--csv", str(bad / "r.csv")])
    case("study compare --out unwritable", ["study", "compare", str(study), "--out", str(bad)])
    broken = work / "broken_study"
    broken.mkdir()
    (broken / "results.sqlite").write_bytes(b"not a database" * 200)
    case("study results: corrupt results.sqlite", ["study", "results", str(broken)])
    case("study compare: corrupt results.sqlite", ["study", "compare", str(broken)])
    for tool in ("evaluate", "traverse", "report"):
        r = shutil.copytree(base, work / f"trunc_{tool}")
        w = _only_checkpoint(r) / "model.safetensors"
        w.write_bytes(w.read_bytes()[: 200])
        extra = ["--metrics", "mig", "--num-train", "40", "--num-test", "20"] if tool == "evaluate" else []
        case(f"{tool}: truncated model.safetensors", [tool, str(r), *extra])
    r = shutil.copytree(base, work / "garbled_opt")
    (_only_checkpoint(r) / "optimizers.pt").write_bytes(b"garbage")
    case("train --resume: garbled optimizers.pt", ["train", "--out", str(r), "--resume", "--steps", "3"])

    # -- silently wrong before
    rng = np.random.default_rng(0)
    # factors first: taking the first array for both files scores the factors against themselves
    np.savez(work / "both.npz", factors=rng.integers(0, 3, size=(300, 2)), codes=rng.normal(size=(300, 4)))
    case("score: .npz of two arrays without --key", ["score", str(work / "both.npz"), str(work / "both.npz")])
    np.save(work / "c.npy", rng.normal(size=(30, 40)))  # 20 train rows for 40 latents
    np.save(work / "f.npy", np.stack([np.arange(30) % 2, np.arange(30) % 3], axis=1))
    case("score: total correlation with N <= D", ["score", str(work / "c.npy"), str(work / "f.npy"), "--metrics",
                                                 "unsupervised"], expect="warning")
    r = shutil.copytree(base, work / "bitflip")
    steps = sorted(p for p in (r / "checkpoints").iterdir() if p.name.startswith("step-"))
    w = steps[-1] / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0x40
    w.write_bytes(bytes(data))
    case("evaluate: bit flip in the newest weights", ["evaluate", str(r), "--metrics", "mig", "--num-train", "40",
                                                      "--num-test", "20"], expect="warning")
    r = shutil.copytree(base, work / "nopointer")
    (r / "checkpoints" / "latest.json").unlink()
    p = run(src, ["train", "--out", str(r), "--resume", "--steps", "3"], work)
    resumed = "resuming" in p.stderr and "from step 2" in p.stderr
    outcome = classify(p, expect="warning") if not resumed or "warning:" in p.stderr else "handled"
    if p.returncode == 0 and not resumed:
        outcome = "silent"  # trained again from step 0
    out.append({"case": "train --resume: latest.json deleted", "outcome": outcome, "exit": p.returncode,
                "stderr_tail": p.stderr.strip().splitlines()[-2:]})
    return out


# -- the newer commands: lm activations, health, directions, GAN models, report on SAE / directions folders
LM = ["lm", "activations", "--device", "cpu", "--batch-size", "8"]


def _same(a: Path, b: Path) -> bool:
    def files(d: Path) -> dict:
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

    return files(a) == files(b)


def _chunked(src: Path, work: Path, chunk: int) -> list[str]:
    """``--chunk N`` where the tree has the option (several shards per layer), else nothing (one shard)."""
    p = run(src, ["lm", "activations", "--help"], work)
    return ["--chunk", str(chunk)] if "--chunk" in p.stdout else []


def _lm_setup(src: Path, work: Path) -> tuple[list[str], Path]:
    argv = [*LM, "--layers", "0,1", "--max-rows", "40", *_chunked(src, work, 10)]
    p = run(src, [*argv, "--out", str(work / "acts")], work)
    assert p.returncode == 0, p.stderr
    return argv, work / "acts"


def _resume_case(src: Path, work: Path, out: list[dict], name: str, argv: list[str], ref: Path, damage) -> None:
    """Damage a copy of ``ref``, resume it with ``argv``: ``handled`` when the result is bit-identical to
    ``ref`` (and says so), ``silent`` when the command succeeds with different files."""
    d = Path(shutil.copytree(ref, work / f"resume_{len(out)}"))
    damage(d)
    p = run(src, [*argv, "--out", str(d)], work)
    if "Traceback" in p.stderr:
        outcome = "traceback"
    elif p.returncode == 0:
        outcome = "handled" if _same(d, ref) and not list(d.rglob("*.tmp")) else "silent"
    else:
        outcome = classify(p, expect="error")
    out.append({"case": name, "outcome": outcome, "exit": p.returncode,
                "stderr_tail": p.stderr.strip().splitlines()[-1:] if p.stderr.strip() else []})


def _truncate(path: Path, keep: int = -64) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _edit_manifest(layer: Path, **change) -> None:
    m = json.loads((layer / "manifest.json").read_text())
    for k, v in change.items():
        if k == "shard_rows":
            m["shards"][0]["rows"] = v
        else:
            m[k] = v
    (layer / "manifest.json").write_text(json.dumps(m))


def _newer_cases(src: Path, work: Path) -> list[dict]:
    work.mkdir(parents=True)
    out: list[dict] = []
    case = _recorder(src, work, out)
    rng = np.random.default_rng(0)
    blocker = work / "a_file"
    blocker.write_text("x")
    (work / "folder").mkdir()
    (work / "empty_dir").mkdir()
    argv, acts = _lm_setup(src, work)
    o = str(work / "o")

    # -- lm activations
    (work / "empty.txt").write_text("\n\n")
    (work / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (work / "notext.csv").write_text("a,b\n1,2\n")
    (work / "badfactor.csv").write_text("text,size\nthe cat,big\n")
    (work / "negfactor.csv").write_text("text,size\nthe cat,-1\n")
    (work / "nomodel").mkdir()
    (work / "fakemodel").mkdir()
    (work / "fakemodel" / "config.json").write_text("{not json")
    run_dir = _train(src, work, "run")
    for name, extra in [("--max-rows -1", ["--max-rows", "-1"]), ("--max-rows 0", ["--max-rows", "0"]),
                        ("--seed -1", ["--seed", "-1"]), ("--batch-size 0", ["--batch-size", "0"]),
                        ("--chunk 0", ["--chunk", "0"]), ("--max-length 1", ["--max-length", "1"]),
                        ("--max-length 100000", ["--max-length", "100000", "--max-rows", "4"]),
                        ("--layers 9", ["--layers", "9"]), ("--layers 0,0", ["--layers", "0,0"]),
                        ("--layers ''", ["--layers", ""]),
                        ("--corpus: blank lines only", ["--corpus", str(work / "empty.txt")]),
                        ("--corpus: binary file", ["--corpus", str(work / "binary.txt")]),
                        ("--corpus: missing file", ["--corpus", str(work / "missing.txt")]),
                        ("--corpus: csv without a text column", ["--corpus", str(work / "notext.csv")]),
                        ("--corpus: csv with a non-integer factor", ["--corpus", str(work / "badfactor.csv")]),
                        ("--corpus: csv with a negative factor", ["--corpus", str(work / "negfactor.csv")]),
                        ("--model: missing folder", ["--model", str(work / "nope")]),
                        ("--model: a file", ["--model", str(blocker)]),
                        ("--model: folder without config.json", ["--model", str(work / "nomodel")]),
                        ("--model: corrupt config, no weights", ["--model", str(work / "fakemodel")]),
                        ("--device tpu", ["--device", "tpu", "--max-rows", "4"])]:
        case(f"lm activations {name}", [*LM, *extra, "--out", o])
    case("lm activations --out a file", [*LM, "--max-rows", "4", "--out", str(blocker)])
    case("lm activations --out under a file", [*LM, "--max-rows", "4", "--out", str(blocker / "x")])
    case("lm activations --out a training run", [*LM, "--max-rows", "4", "--out", str(run_dir)])
    case("lm activations --out: other pooling", [*argv, "--pool", "last", "--out", str(acts)])
    case("lm activations --out: other layers and pooling", [*LM, "--layers", "2", "--max-rows", "40", "--pool", "last",
                                                           "--out", str(acts)])
    layer = Path("layer_1")
    _resume_case(src, work, out, "lm activations resume: truncated shard", argv, acts,
                 lambda d: _truncate(d / layer / "shard_00000.safetensors"))
    _resume_case(src, work, out, "lm activations resume: manifest lies about rows", argv, acts,
                 lambda d: _edit_manifest(d / layer, shard_rows=7, rows=37))
    _resume_case(src, work, out, "lm activations resume: a killed write's .tmp file", argv, acts,
                 lambda d: (d / layer / ".shard_00009.safetensors.999999.0123456789ab.tmp").write_bytes(b"half"))

    # -- health
    trunc = Path(shutil.copytree(acts, work / "trunc_acts"))
    _truncate(trunc / layer / "shard_00000.safetensors")
    lying = Path(shutil.copytree(acts, work / "lying_acts"))
    _edit_manifest(lying / layer, shard_rows=12, rows=42)
    badrun = Path(shutil.copytree(acts, work / "bad_summary"))
    (badrun / "activations.json").write_text("{oops")
    x = rng.normal(size=(60, 6))
    arrays = {"x": x, "nan": np.where(x > 1, np.nan, x), "inf": np.where(x > 1, np.inf, x), "one": x[:1],
              "none": x[:0], "cube": x.reshape(60, 3, 2), "text": np.array(["a", "b", "c"]), "zeros": np.zeros((60, 6))}
    for k, v in arrays.items():
        np.save(work / f"{k}.npy", v)
    (work / "zero.npy").write_bytes(b"")
    np.savez(work / "renamed.npz", a=x)
    shutil.copy(work / "renamed.npz", work / "renamed.npy")
    np.savez(work / "two.npz", a=x, b=x[:, :2])
    shutil.copy(work / "two.npz", work / "two.npy")
    h = ["health"]
    case("health .npz of one array renamed .npy (read as that array)", [*h, str(work / "renamed.npy")], expect="works")
    for name, extra in [("0-byte .npy", [str(work / "zero.npy")]),
                        (".npz of two arrays renamed .npy", [str(work / "two.npy")]),
                        ("NaN array", [str(work / "nan.npy")]), ("inf array", [str(work / "inf.npy")]),
                        ("1 row", [str(work / "one.npy")]), ("0 rows", [str(work / "none.npy")]),
                        ("3-D array", [str(work / "cube.npy")]), ("strings", [str(work / "text.npy")]),
                        ("all-zero rows", [str(work / "zeros.npy")]),
                        ("--max-rows 1", [str(work / "x.npy"), "--max-rows", "1"]),
                        ("--hubness-k 0", [str(work / "x.npy"), "--hubness-k", "0"]),
                        ("--lid-k 1000", [str(work / "x.npy"), "--lid-k", "1000"]),
                        ("--seed -1", [str(work / "x.npy"), "--seed", "-1"]),
                        ("--json a folder", [str(work / "x.npy"), "--json", str(work / "folder")]),
                        ("--json under a file", [str(work / "x.npy"), "--json", str(blocker / "h.json")]),
                        ("--html with an array", [str(work / "x.npy"), "--html", str(work / "h.html")]),
                        ("--html under a file", [str(acts), "--html", str(blocker / "h.html")]),
                        ("--key with a layer folder", [str(acts / layer), "--key", "other"]),
                        ("truncated shard", [str(trunc / layer)]), ("manifest lies about rows", [str(lying / layer)]),
                        ("corrupt activations.json", [str(badrun)]), ("empty folder", [str(work / "empty_dir")]),
                        ("a training run", [str(run_dir)]), ("missing file", [str(work / "missing.npy")])]:
        case(f"health {name}", [*h, *extra])

    # -- directions (a 5-step oracle, trained once, is enough to reach every check)
    d = ["directions", str(run_dir), "--method", "sefa", "--oracle-steps", "5", "--seeds", "2", "--steps", "3",
         "--device", "cpu"]
    for name, extra in [("--range nan", ["--range", "nan"]), ("--range 0", ["--range", "0"]),
                        ("--range -1", ["--range", "-1"]), ("--range inf", ["--range", "inf"]),
                        ("--range 1e-12 (noise)", ["--range", "1e-12"]),
                        ("--oracle-steps 0", ["--oracle-steps", "0"]), ("--oracle-steps -5", ["--oracle-steps", "-5"]),
                        ("--train-steps 0", ["--method", "voynov", "--train-steps", "0", "--num", "2"]),
                        ("--seeds 0", ["--seeds", "0"]), ("--steps 1", ["--steps", "1"]), ("--num 0", ["--num", "0"]),
                        ("--num 99", ["--num", "99"]), ("--seed -1", ["--seed", "-1"]),
                        ("--method nope", ["--method", "nope"]), ("--device tpu", ["--device", "tpu"]),
                        ("--out a file", ["--out", str(blocker)]), ("--out a training run", ["--out", str(run_dir)])]:
        expect = "warning" if "noise" in name else "error"
        case(f"directions {name}", [*d, *extra, *([] if "--out" in extra else ["--out", str(work / "dirs")])],
             expect=expect)
    case("directions: a non-run folder", ["directions", str(work / "empty_dir"), "--oracle-steps", "5"])

    # -- GAN models
    gan = ["train", "qlinfowgan_gp", "--dataset", "dsprites", "--steps", "1", "--batch-size", "4", "--out"]
    for i, hp in enumerate(["num_values=1", "num_values=0", "adam_beta2=1", "lambda_value=0", "learning_rate=inf"]):
        case(f"qlinfowgan_gp --set {hp}", [*gan, str(work / f"gan{i}"), "--set", hp])

    # -- report on SAE and directions folders
    np.save(work / "acts.npy", rng.normal(size=(64, 8)).astype(np.float32))
    sae = work / "sae"
    p = run(src, ["sae", "train", str(work / "acts.npy"), "--arch", "relu", "--latents", "16", "--steps", "4",
                  "--batch-size", "16", "--out", str(sae), "--no-progress", "--device", "cpu"], work)
    assert p.returncode == 0, p.stderr
    for name, damage in [("truncated weights", lambda s: _truncate(s / "sae_weights.safetensors", 100)),
                         ("corrupt cfg.json", lambda s: (s / "cfg.json").write_text("{oops")),
                         ("evaluation.json of another kind", lambda s: (s / "evaluation.json").write_text("[1, 2]"))]:
        s = Path(shutil.copytree(sae, work / f"sae_{len(out)}"))
        damage(s)
        case(f"report SAE: {name}", ["report", str(s)])
    case("report SAE --out a folder", ["report", str(sae), "--out", str(work / "folder")])
    case("report SAE --seed -1", ["report", str(sae), "--seed", "-1"])
    case("report SAE --device tpu", ["report", str(sae), "--device", "tpu"])
    dirs_run = Path(shutil.copytree(run_dir, work / "dirs_run"))
    (dirs_run / "directions").mkdir()
    (dirs_run / "directions" / "scores.json").write_text(json.dumps({"run": str(dirs_run), "methods": {}}))
    case("report on a directions folder", ["report", str(dirs_run / "directions")])
    (dirs_run / "directions" / "scores.json").write_text(
        json.dumps({"methods": {"sefa": {"disentanglement": "abc", "matches": 5}}}))
    case("report: malformed directions scores", ["report", str(dirs_run)])
    (dirs_run / "directions" / "scores.json").write_text("{oops")
    case("report: corrupt directions scores", ["report", str(dirs_run)])
    case("report --out under a file", ["report", str(run_dir), "--out", str(blocker / "r.html")])
    case("report: missing folder", ["report", str(work / "nope")])
    return out


def lm_kill_trials(run, src: Path, work: Path, n: int) -> dict:
    """``kill -9`` of `lm activations` at a random moment, then the same command (the documented resume):
    ``identical`` counts trials whose folder equals an uninterrupted run's byte for byte, no ``.tmp`` left."""
    work.mkdir(parents=True)
    argv = [*LM, "--layers", "0,1", "--max-rows", "96", *_chunked(src, work, 8), "--batch-size", "4"]
    t0 = time.perf_counter()
    p = run(src, [*argv, "--out", str(work / "ref")], work)
    assert p.returncode == 0, p.stderr
    full = time.perf_counter() - t0
    rnd = random.Random(0)
    result = {"trials": n, "identical": 0, "killed": 0, "tmp_after_kill": 0, "kill_after_s": []}
    for i in range(n):
        out = work / f"t{i}"
        delay = rnd.uniform(0.3, full)
        proc = subprocess.Popen([sys.executable, "-m", "untwine", *argv, "--out", str(out)], cwd=work, env=_env(src),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            result["killed"] += 1
        proc.wait()
        result["kill_after_s"].append(round(delay, 2))
        result["tmp_after_kill"] += bool(list(out.rglob("*.tmp")))
        p = run(src, [*argv, "--out", str(out)], work)
        if p.returncode == 0 and _same(out, work / "ref") and not list(out.rglob("*.tmp")):
            result["identical"] += 1
    return result


if __name__ == "__main__":
    main()
