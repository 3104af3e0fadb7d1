"""Running studies: parallel workers, skipping finished runs, resuming, retrying and recording failures."""

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import untwine.train as untwine_train
from untwine import cli
from untwine.study.runner import run_study
from untwine.study.spec import expand, load_spec
from untwine.train import load, open_run, train


def _toy_npz(path: Path) -> Path:
    f = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
    for i, (x, y, s) in enumerate(f):
        imgs[i, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1
    np.savez(path, images=imgs, factors=f)
    return path


def _write_spec(folder: Path, **over) -> Path:
    data = {
        "name": "toy",
        "datasets": ["toy.npz"],
        "models": [{"name": "beta_vae", "hparams": {"beta": 4}}, "vae"],
        "seeds": [0, 1],
        "train": {"steps": 6, "batch_size": 8, "device": "cpu", "num_latents": 4, "checkpoint_every": 3, "log_every": 3},
        "evaluation": {"metrics": ["mig", "sap", "modularity", "reconstruction"], "num_train": 64, "num_test": 32},
        "udr": {"num_points": 64},
        "retries": 1,
    }
    data.update(over)
    _toy_npz(folder / "toy.npz")
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _rows(out):
    conn = sqlite3.connect(out / "results.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        runs = {r["run_id"]: dict(r) for r in conn.execute("SELECT * FROM runs")}
        metrics = {}
        for rid, name, value in conn.execute("SELECT run_id, name, value FROM metrics"):
            metrics.setdefault(rid, {})[name] = value
    finally:
        conn.close()
    return runs, metrics


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The toy study (2 models x 2 seeds) run once with 2 worker processes."""
    folder = tmp_path_factory.mktemp("study")
    spec = load_spec(_write_spec(folder))
    out = folder / "out"
    res = run_study(spec, out, workers=2, progress=False)
    return spec, out, res


def test_study_runs_in_two_worker_processes_and_records_everything(finished):
    spec, out, res = finished
    runs = expand(spec)
    assert res.ok and sorted(res.done) == sorted(r.run_id for r in runs) and not res.skipped
    pids = {rep["pid"] for rep in res.reports.values()}
    assert len(pids) == 2 and os.getpid() not in pids  # two separate worker processes
    rows, metrics = _rows(out)
    assert set(rows) == {r.run_id for r in runs}
    for r in runs:
        row = rows[r.run_id]
        assert row["status"] == "done" and row["error"] is None and row["attempts"] == 1
        assert row["model"] == r.model and row["seed"] == r.seed and json.loads(row["hparams"]) == r.hparams
        assert row["train_seconds"] > 0 and row["wall_seconds"] >= row["train_seconds"]
        m = metrics[r.run_id]
        assert {"mig", "sap", "modularity", "reconstruction", "reconstruction_mse", "udr"} <= set(m)
        # the database holds exactly what the run directory's evaluation wrote
        saved = json.loads((out / "runs" / r.run_id / "metrics.json").read_text())
        assert m["mig"] == pytest.approx(saved["mig"])
        assert open_run(out / "runs" / r.run_id).step == 6
        assert 0.0 <= m["udr"] <= 1.0
        assert m["udr"] == pytest.approx(res.udr[r.run_id], abs=1e-12)  # the database holds what the study computed
    assert set(res.udr) == {r.run_id for r in runs}  # both configurations have two seeds
    for cid in {r.config_id for r in runs}:  # two seeds: each one's UDR is the one symmetric UDR_ab of the pair
        a, b = [res.udr[r.run_id] for r in runs if r.config_id == cid]
        assert a == pytest.approx(b, abs=1e-12)
    assert (out / "study.yaml").is_file()


def test_rerun_skips_finished_runs(finished):
    spec, out, res = finished
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    again = run_study(spec, out, workers=2, progress=False)
    assert sorted(again.skipped) == sorted(res.done) and not again.done and again.ok
    assert again.udr == pytest.approx(res.udr)  # UDR kept, not recomputed differently
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained or re-evaluated
    rows, _ = _rows(out)
    assert all(r["attempts"] == 1 for r in rows.values())


def test_results_cli_sorts_filters_and_writes_csv(finished, tmp_path, capsys):
    _, out, _ = finished
    csv_path = tmp_path / "vae.csv"
    rc = cli.main(["study", "results", str(out), "--sort", "mig", "--where", "model='vae' AND seed >= 0", "--csv", str(csv_path)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "vae" in printed and "mig" in printed
    import csv

    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 2 and {r["model"] for r in rows} == {"vae"}
    migs = [float(r["mig"]) for r in rows]
    assert migs == sorted(migs, reverse=True)
    assert "beta" in rows[0] and "udr" in rows[0]

    rc = cli.main(["study", "results", str(out), "--where", "mig >", "--csv", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --where") and "\n" not in err
    assert not (tmp_path / "x.csv").exists()
    rc = cli.main(["study", "results", str(out), "--sort", "nonsense"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no column 'nonsense'" in err and "\n" not in err
    # the where clause cannot modify the database
    rc = cli.main(["study", "results", str(out), "--where", "1); DELETE FROM runs; --"])
    assert rc == 2
    capsys.readouterr()
    assert len(_rows(out)[0]) == 4


def test_compare_cli_writes_figures_and_summary(finished, tmp_path, capsys):
    _, out, _ = finished
    figs = tmp_path / "figs"
    rc = cli.main(["study", "compare", str(out), "--out", str(figs)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "leads with" in printed
    for name in ("distributions.png", "rank_correlation.png", "summary.txt", "rank_correlation.csv"):
        assert (figs / name).stat().st_size > 0
    assert (figs / "distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (figs / "summary.txt").read_text()
    assert "mig (higher is better)" in summary and "reconstruction (lower is better)" in summary


def test_failed_run_records_its_error_and_the_others_finish(tmp_path, monkeypatch):
    (tmp_path / "broken.npz").write_bytes(b"this is not a zip archive")
    spec = load_spec(_write_spec(tmp_path, datasets=["toy.npz", "broken.npz"], models=["vae"], seeds=[0], retries=1))
    # a transient failure: the first evaluation of the toy run raises, its retry succeeds
    real = untwine_train.evaluate_run
    calls = []

    def flaky(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError("transient trouble")
        return real(*args, **kwargs)

    monkeypatch.setattr(untwine_train, "evaluate_run", flaky)
    out = tmp_path / "out"
    res = run_study(spec, out, workers=1, progress=False, threads=1)
    good, bad = (next(r.run_id for r in expand(spec) if r.dataset == d) for d in ("toy.npz", "broken.npz"))
    assert res.done == [good] and set(res.failed) == {bad}
    rows, metrics = _rows(out)
    assert rows[good]["status"] == "done" and rows[good]["attempts"] == 2 and "mig" in metrics[good]
    assert open_run(out / "runs" / good).step == 6  # the retry evaluated the trained run, no retraining
    assert rows[bad]["status"] == "failed" and rows[bad]["attempts"] == 2  # 1 + retries
    assert "broken.npz" in rows[bad]["error"] and "\n" not in rows[bad]["error"]
    assert bad not in metrics
    # the command line exits 1 and names the failure; the finished run is skipped
    monkeypatch.setattr(untwine_train, "evaluate_run", real)
    rc = cli.main(["study", "run", str(tmp_path / "study.yaml"), "--out", str(out), "--no-progress", "--threads", "1"])
    assert rc == 1
    rows2, _ = _rows(out)
    assert rows2[good]["attempts"] == 2 and rows2[bad]["attempts"] == 4


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    spec = load_spec(_write_spec(tmp_path, models=["vae"], seeds=[0]))
    (run,) = expand(spec)
    out = tmp_path / "out"
    torch.set_num_threads(1)
    # an attempt that stopped at step 3 (its checkpoint) before the study's 6 steps
    tr = spec.train
    train(run.model, run.dataset_ref, steps=3, out=out / "runs" / run.run_id, seed=run.seed, device="cpu",
          batch_size=tr["batch_size"], num_latents=tr["num_latents"], checkpoint_every=3, log_every=3)
    res = run_study(spec, out, workers=1, progress=False, threads=1, udr=False)
    rep = res.reports[run.run_id]
    assert res.ok and rep["resumed_from"] == 3 and rep["trained_steps"] == 3
    # resuming gives the weights of an uninterrupted 6-step run
    straight = train(run.model, run.dataset_ref, steps=6, out=tmp_path / "straight", seed=run.seed, device="cpu",
                     batch_size=tr["batch_size"], num_latents=tr["num_latents"], checkpoint_every=3, log_every=3)
    a, b = load(out / "runs" / run.run_id).state_dict(), load(straight.path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_udr_of_seeds_that_learned_the_same_representation_is_one(tmp_path):
    spec = load_spec(_write_spec(tmp_path, models=["vae"], seeds=[0, 1], udr={"num_points": 64, "kl_threshold": 0.0}))
    runs = expand(spec)
    out = tmp_path / "out"
    torch.set_num_threads(1)
    tr = spec.train
    for r in runs:  # both "seeds" trained with seed 0: identical weights, identical representations
        train(r.model, r.dataset_ref, steps=6, out=out / "runs" / r.run_id, seed=0, device="cpu",
              batch_size=tr["batch_size"], num_latents=tr["num_latents"], checkpoint_every=3, log_every=3)
    res = run_study(spec, out, workers=1, progress=False, threads=1)
    assert res.ok and all(rep["trained_steps"] == 0 for rep in res.reports.values())
    # the study encodes the same udr.num_points inputs (drawn with udr.seed) with each run's model
    from untwine import data
    from untwine.study.udr import udr_pairwise, udr_scores

    _, x = data.load(runs[0].dataset_ref).sample(64, np.random.default_rng(0))
    with torch.no_grad():
        rep = load(out / "runs" / runs[0].run_id).encode(x.float()).double().numpy()
    expected = udr_scores([rep, rep], kl_threshold=0.0)
    assert res.udr == pytest.approx({r.run_id: expected[0] for r in runs}, abs=1e-9)
    # identical representations: UDR_ab is the score of the model's self-similarity (1 only when its
    # latents are mutually independent, which 6 training steps do not achieve)
    assert 0.0 < expected[0] <= 1.0 and udr_pairwise([rep, rep])[0, 1] == pytest.approx(expected[0])
    _, metrics = _rows(out)
    assert all(metrics[r.run_id]["udr"] == pytest.approx(expected[0], abs=1e-9) for r in runs)


def test_example_tiny_study_runs_from_the_command_line(tmp_path, capsys):
    example = Path(__file__).resolve().parents[1] / "examples" / "studies" / "tiny.yaml"
    out = tmp_path / "tiny"
    shrink = ["train.steps=2", "evaluation.num_train=40", "evaluation.num_test=20", "evaluation.metrics=[mig,reconstruction]",
              "udr.num_points=40"]
    argv = ["study", "run", str(example), "--out", str(out), "--threads", "1", "--no-progress"]
    for s in shrink:
        argv += ["--set", s]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 runs, 4 done now, 0 already finished, 0 failed" in printed
    rows, metrics = _rows(out)
    assert {r["model"] for r in rows.values()} == {"beta_vae", "beta_tcvae"} and {r["dataset"] for r in rows.values()} == {"dsprites"}
    assert all(r["status"] == "done" and r["steps"] == 2 for r in rows.values())
    assert all({"mig", "reconstruction", "udr"} <= set(m) for m in metrics.values())
    assert cli.main(argv) == 0
    assert "0 done now, 4 already finished" in capsys.readouterr().out
