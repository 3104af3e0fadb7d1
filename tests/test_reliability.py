"""Reliability: one clear line instead of a traceback, no silently wrong answers, checkpoints that
verify themselves, and several study runners on one directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from untwine.cli import main
from untwine.errors import UntwineError, UntwineWarning


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from untwine.train import train

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("rel") / "run"
    train("beta_vae", "dsprites", steps=4, out=out, batch_size=8, seed=0, num_latents=4, checkpoint_every=2,
          keep_checkpoints=3, log_every=1)
    yield out
    torch.set_num_threads(n)


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# -- one clear line --------------------------------------------------------------------------------
def test_negative_seed_is_one_line_everywhere(run_dir, tmp_path, capsys):
    for argv in (
        ["score", "--demo", "--seed", "-1"],
        ["traverse", str(run_dir), "--seed", "-3", "--out", str(tmp_path / "t.png")],
        ["report", str(run_dir), "--seed", "-1", "--out", str(tmp_path / "r.html")],
        ["datasets", "show", "dsprites", "--seed", "-2", "--out", str(tmp_path / "g.png")],
    ):
        assert main(argv) == 2, argv
        assert "seed must be a non-negative integer" in one_error_line(capsys)


def test_output_locations_that_cannot_be_written(run_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    bad = blocker / "sub"
    assert main(["train", "vae", "--dataset", "dsprites", "--steps", "1", "--out", str(bad)]) == 2
    assert "a_file" in one_error_line(capsys)
    assert main(["score", "--demo", "--metrics", "mig", "--json", str(bad / "s.json")]) == 2
    assert "a_file" in one_error_line(capsys)
    from untwine.files import atomic_write_text

    with pytest.raises(UntwineError, match="cannot write"):
        atomic_write_text(bad / "x.txt", "x")
    spec = tmp_path / "s.yaml"
    spec.write_text("datasets: [dsprites]\nmodels: [vae]\nseeds: 1\ntrain: {steps: 1, batch_size: 4, device: cpu}\n")
    assert main(["study", "run", str(spec), "--out", str(bad), "--no-progress"]) == 2
    assert "a_file" in one_error_line(capsys)


def test_corrupt_results_database_is_one_line(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    (study / "results.sqlite").write_bytes(b"this is not a database" * 100)
    for argv in (["study", "results", str(study)], ["study", "compare", str(study)]):
        assert main(argv) == 2
        assert "results.sqlite is not a readable results database" in one_error_line(capsys)


# -- silently wrong, no more ------------------------------------------------------------------------------
def test_total_correlation_undefined_is_said_not_a_number(tmp_path, capsys):
    from untwine.metrics.unsupervised import unsupervised

    rng = np.random.default_rng(0)
    with pytest.warns(UntwineWarning, match="gaussian_total_correlation is undefined: 6 samples for 8"):
        out = unsupervised(rng.normal(size=(6, 8)))
    assert np.isnan(out["gaussian_total_correlation"])
    collinear = rng.normal(size=(200, 3))
    collinear = np.concatenate([collinear, collinear[:, :1] + collinear[:, 1:2]], axis=1)  # rank 3 of 4
    with pytest.warns(UntwineWarning, match="rank 3"):
        assert np.isnan(unsupervised(collinear)["gaussian_total_correlation"])
    # a full-rank covariance still gives the closed form 0.5 (sum log var - log det)
    x = rng.normal(size=(500, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    cov = np.cov(x, rowvar=False)
    expect = 0.5 * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1])
    assert unsupervised(x)["gaussian_total_correlation"] == pytest.approx(expect, rel=1e-12)
    # the command line says so in one warning line; the JSON says null *and* that it is undefined
    np.save(tmp_path / "c.npy", rng.normal(size=(9, 12)))
    np.save(tmp_path / "f.npy", rng.integers(0, 2, size=(9, 2)))
    out_json = tmp_path / "s.json"
    assert main(["score", str(tmp_path / "c.npy"), str(tmp_path / "f.npy"), "--metrics", "unsupervised",
                 "--json", str(out_json)]) == 0
    err = capsys.readouterr().err
    assert "warning: gaussian_total_correlation is undefined" in err and "Traceback" not in err
    data = json.loads(out_json.read_text())
    assert data["gaussian_total_correlation"] is None and data["_undefined"] == ["gaussian_total_correlation"]
    from untwine.files import read_scores

    back = read_scores(out_json)
    assert np.isnan(back["gaussian_total_correlation"]) and "_undefined" not in back


# -- checkpoints that verify themselves ----------------------------------------------------------------------
def _steps(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step-"))


def test_checkpoints_carry_checksums_and_damage_falls_back(run_dir, tmp_path, capsys):
    from untwine.train import open_run
    from untwine.train.checkpoint import latest_checkpoint

    run = _copy_run(run_dir, tmp_path / "run")
    ck = latest_checkpoint(run)
    assert ck.step == 4 and set(ck.state["checksums"]) == {"model.safetensors", "optimizers.pt"}
    # a bit flip in the newest weights: detected, the newest intact checkpoint (step 2) is used
    w = run / "checkpoints" / "step-000000004" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0x10
    w.write_bytes(bytes(data))
    with pytest.warns(UntwineWarning, match=r"step-000000004 is damaged \(model.safetensors does not match"):
        assert latest_checkpoint(run).step == 2
    assert main(["evaluate", str(run), "--metrics", "mig", "--num-train", "60", "--num-test", "30"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "using the newest intact checkpoint, step 2" in err
    assert json.loads((run / "evaluation.json").read_text())["step"] == 2
    # every checkpoint damaged: one line, no traceback, for evaluate, traverse and report
    for d in ("step-000000002", "step-000000004"):
        p = run / "checkpoints" / d / "model.safetensors"
        p.write_bytes(p.read_bytes()[:100])
    for argv in (["evaluate", str(run)], ["traverse", str(run)], ["report", str(run)]):
        assert main(argv) == 2
        assert "no intact checkpoint is left" in one_error_line(capsys)
    with pytest.raises(UntwineError, match="no intact checkpoint"):
        open_run(run).load_model()


def test_resume_falls_back_keeps_intact_checkpoints_and_finds_steps_without_pointer(run_dir, tmp_path):
    from untwine.train import train
    from untwine.train.checkpoint import load_weights, latest_checkpoint

    # the reference: 6 uninterrupted steps
    ref = train("beta_vae", "dsprites", steps=6, out=tmp_path / "ref", batch_size=8, seed=0, num_latents=4,
                checkpoint_every=2, keep_checkpoints=3, log_every=1)
    ref_w = {k: v.clone() for k, v in ref.model.state_dict().items()}

    # garbled optimizer state in the newest checkpoint: resume from step 2, reach the same weights
    run = _copy_run(run_dir, tmp_path / "garbled")
    (run / "checkpoints" / "step-000000004" / "optimizers.pt").write_bytes(b"garbage")
    with pytest.warns(UntwineWarning, match="optimizers.pt"):
        res = train(out=run, resume=True, steps=6)
    assert all(torch.equal(res.model.state_dict()[k], ref_w[k]) for k in ref_w)
    assert latest_checkpoint(run).step == 6
    # the damaged step 4 was rewritten by the resumed run; nothing intact was lost on the way
    assert _steps(run) == ["step-000000002", "step-000000004", "step-000000006"]

    # latest.json deleted: the newest intact step is found, not a fresh start from step 0
    run2 = _copy_run(run_dir, tmp_path / "nopointer")
    (run2 / "checkpoints" / "latest.json").unlink()
    with pytest.warns(UntwineWarning, match="latest.json is missing; using the newest intact checkpoint, step 4"):
        res2 = train(out=run2, resume=True, steps=6)
    assert all(torch.equal(res2.model.state_dict()[k], ref_w[k]) for k in ref_w)
    assert "step-000000002" in _steps(run2) or len(_steps(run2)) == 3
    # one line ending throughout the log, and no temporary files left behind
    raw = (run2 / "log.csv").read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    steps = [int(line.split(b",")[0]) for line in raw.splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    assert not [p for p in run2.rglob("*") if p.name.endswith(".tmp")]
    model = res2.model
    load_weights(model, latest_checkpoint(run2))


def test_resume_of_a_missing_directory_says_it_starts_fresh(tmp_path, capsys):
    assert main(["train", "vae", "--dataset", "dsprites", "--steps", "1", "--batch-size", "4",
                 "--out", str(tmp_path / "new"), "--resume"]) == 0
    assert "nothing to resume" in capsys.readouterr().err and (tmp_path / "new" / "checkpoints").is_dir()


def test_stray_temporaries_of_a_killed_write_are_removed(run_dir, tmp_path):
    from untwine.files import remove_stray_temporaries
    from untwine.train import train

    run = _copy_run(run_dir, tmp_path / "stray")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stray = run / f".config.yaml.{pid}.0123456789ab.tmp"
    stray.write_text("half")
    live = run / f".other.{os.getpid() + 10**6}.0123456789ab.tmp"  # no such process either
    assert remove_stray_temporaries(tmp_path / "nothing-here") == []
    train(out=run, resume=True, steps=5)
    assert not stray.exists() and not live.exists()


# -- several runners on one study -----------------------------------------------------------------------------
def test_claims_are_exclusive_and_expire(tmp_path):
    from untwine.study import results as db

    conn = db.connect(tmp_path / "r.sqlite")
    try:
        assert db.claim(conn, "run-a", "one", 60) and not db.claim(conn, "run-a", "two", 60)
        assert db.claim(conn, "run-a", "one", 60)  # renewing one's own claim
        db.release(conn, "run-a", "two")  # not two's to release
        assert not db.claim(conn, "run-a", "two", 60)
        db.release(conn, "run-a", "one")
        assert db.claim(conn, "run-a", "two", 0.05)
        time.sleep(0.1)  # two died: its lease expires and one takes the run over
        assert db.claim(conn, "run-a", "one", 60)
    finally:
        conn.close()


def test_two_runners_on_one_study_train_every_run_once(tmp_path):
    spec = tmp_path / "pair.yaml"
    spec.write_text(textwrap.dedent("""
        name: pair
        datasets: [dsprites]
        models:
          - name: vae
          - name: beta_vae
        seeds: [0, 1]
        train: {steps: 6, batch_size: 8, device: cpu, num_latents: 3, checkpoint_every: 3, log_every: 1}
        evaluation: {metrics: [mig], num_train: 60, num_test: 30}
        udr: {enabled: false}
    """))
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "untwine", "study", "run", str(spec), "--out", str(out), "--no-progress",
           "--threads", "1"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from untwine.study import results as db

    conn = db.connect(out / "results.sqlite")
    try:
        rows = db.run_rows(conn)
        leases = conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    finally:
        conn.close()
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows.values())
    assert [r["attempts"] for r in rows.values()] == [1, 1, 1, 1], rows  # each run trained once, by one runner
    assert leases == 0  # every claim released
    for rid in rows:
        log = (out / "runs" / rid / "log.csv").read_text().splitlines()
        steps = [int(line.split(",")[0]) for line in log[1:]]
        assert steps == sorted(set(steps)) and steps[-1] == 6  # no interleaved rows from two trainers


def test_a_run_saved_before_a_hyper_parameter_existed_still_resumes(run_dir, tmp_path):
    """A config written by an older untwine lacks hyper-parameters added since (e.g. ``architecture``):
    the run was trained with their defaults, so it resumes."""
    import yaml

    from untwine.train import train

    run = _copy_run(run_dir, tmp_path / "old")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["hparams"].pop("architecture", None) == "dlib"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert train(out=run, resume=True, steps=5).step == 5
