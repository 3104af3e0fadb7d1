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

Writes ``benchmarks/results/reliability.json`` (one entry per label).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "reliability.json"


def run(src: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "untwine", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def classify(p: subprocess.CompletedProcess, *, expect: str) -> str:
    """``expect``: "error" (bad input: must be refused) or "warning" (must succeed and say so)."""
    err = p.stderr
    if "Traceback" in err:
        return "traceback"
    if p.returncode == 2 and [ln for ln in err.splitlines() if ln.strip()][-1:] and err.strip().splitlines()[-1].startswith("error: "):
        return "clear"
    if p.returncode == 0:
        return "handled" if expect == "warning" and "warning:" in err else "silent"
    return f"exit {p.returncode}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=str(HERE.parent / "src"))
    ap.add_argument("--label", default="after")
    args = ap.parse_args()
    src = Path(args.src).resolve()
    work = Path(tempfile.mkdtemp(prefix="untwine-reliability-"))
    try:
        cases = _cases(src, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
        print(f"{c['outcome']:>10}  {c['case']}")
    print(counts)
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    data[args.label] = {"src": str(src), "counts": counts, "cases": cases}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


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


def _cases(src: Path, work: Path) -> list[dict]:
    out: list[dict] = []

    def case(name: str, argv: list[str], expect: str = "error") -> None:
        p = run(src, argv, work)
        out.append({"case": name, "outcome": classify(p, expect=expect), "exit": p.returncode,
                    "stderr_tail": p.stderr.strip().splitlines()[-1:] if p.stderr.strip() else []})

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


if __name__ == "__main__":
    main()
