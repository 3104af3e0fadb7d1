"""Bad input, concurrent runs and kills on ``untwine sae train/sweep/encode/evaluate/synthetic`` (issue 21)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import untwine
from untwine.cli import main as cli_main
from untwine.errors import UntwineError
from untwine.sae import train_sae

TRAIN = ["--arch", "topk", "--latents", "16", "--k", "2", "--steps", "12", "--batch-size", "64", "--no-progress"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def acts(tmp_path) -> Path:
    p = tmp_path / "acts.npy"
    np.save(p, np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32))
    return p


@pytest.fixture
def sae(tmp_path, acts) -> Path:
    assert cli_main(["sae", "train", str(acts), *TRAIN, "--out", str(tmp_path / "sae")]) == 0
    return tmp_path / "sae"


def test_unreadable_activation_files_are_one_line(tmp_path, acts, sae, capsys):
    with open(tmp_path / "renamed.npy", "wb") as fh:
        np.savez(fh, acts=np.load(acts))
    (tmp_path / "empty.npy").write_bytes(b"")
    capsys.readouterr()
    for name, what in (("renamed.npy", ".npz archive"), ("empty.npy", "empty")):
        assert cli_main(["sae", "train", str(tmp_path / name), *TRAIN, "--out", str(tmp_path / "o")]) == 2
        assert what in _one_error_line(capsys)
        assert cli_main(["sae", "encode", str(sae), str(tmp_path / name), "--out", str(tmp_path / "c.npy")]) == 2
        assert what in _one_error_line(capsys)


@pytest.mark.parametrize("extra", [["--lr", "1e6"], ["--lr", "inf"], ["--lr", "nan"], ["--set", "k=abc"],
                                   ["--set", "k=nan"], ["--seed", "-1"]])
def test_unusable_numbers_are_refused_before_any_weight(tmp_path, acts, capsys, extra):
    out = tmp_path / "o"
    assert cli_main(["sae", "train", str(acts), *TRAIN, "--out", str(out), *extra]) == 2
    _one_error_line(capsys)
    assert not (out / "sae_weights.safetensors").exists()


def test_relu_penalty_must_be_a_finite_number(tmp_path, acts, capsys):
    base = ["sae", "train", str(acts), "--arch", "relu", "--latents", "16", "--steps", "4", "--batch-size", "64", "--no-progress"]
    for value in ("abc", "nan", "inf"):
        assert cli_main([*base, "--set", f"l1_coefficient={value}", "--out", str(tmp_path / value)]) == 2
        assert "l1_coefficient" in _one_error_line(capsys)


def test_divergence_stops_without_writing_weights(tmp_path, acts, monkeypatch):
    from untwine.sae import train

    monkeypatch.setattr(train, "DIVERGED", 1e-6)  # any real error counts as diverged
    with pytest.raises(UntwineError, match="diverged"):
        train_sae(acts, arch="topk", latents=16, k=2, steps=8, batch_size=64, out=tmp_path / "d", progress=False)
    assert not (tmp_path / "d" / "sae_weights.safetensors").exists()


@pytest.mark.parametrize("rows", ["zeros", "constant"])
def test_zero_variance_activations_are_refused(tmp_path, capsys, rows):
    x = np.zeros((300, 8), np.float32) if rows == "zeros" else np.tile(np.arange(8, dtype=np.float32), (300, 1))
    np.save(tmp_path / "z.npy", x)
    assert cli_main(["sae", "train", str(tmp_path / "z.npy"), *TRAIN, "--out", str(tmp_path / "o")]) == 2
    assert "zero variance" in _one_error_line(capsys)


@pytest.mark.parametrize("rows", ["one", "constant", "zeros"])
def test_fvu_is_undefined_without_variance(tmp_path, sae, capsys, rows):
    x = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    x = {"one": x, "constant": np.tile(x, (50, 1)), "zeros": np.zeros((50, 8), np.float32)}[rows]
    np.save(tmp_path / "e.npy", x)
    capsys.readouterr()
    assert cli_main(["sae", "evaluate", str(sae), str(tmp_path / "e.npy"), "--json", str(tmp_path / "s.json")]) == 0
    assert "warning:" in capsys.readouterr().err
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["fvu"] is None and scores["explained_variance"] is None
    assert {"fvu", "explained_variance"} <= set(scores["_undefined"])


def test_nan_weights_are_refused(tmp_path, acts, sae, capsys):
    from safetensors.numpy import load_file, save_file

    w = sae / "sae_weights.safetensors"
    t = load_file(str(w))
    t["W_enc"][0, 0] = np.nan
    save_file(t, str(w))
    assert cli_main(["sae", "evaluate", str(sae), str(acts)]) == 2
    assert "checksum mismatch" in _one_error_line(capsys)  # changed after saving: caught by the checksum
    # written with NaN and a matching checksum (or by a tool that records none): the values are checked
    cfg = json.loads((sae / "cfg.json").read_text())
    cfg["untwine"].pop("weights_sha256")
    (sae / "cfg.json").write_text(json.dumps(cfg))
    assert cli_main(["sae", "evaluate", str(sae), str(acts)]) == 2
    assert "NaN" in _one_error_line(capsys)
    assert cli_main(["sae", "encode", str(sae), str(acts), "--out", str(tmp_path / "c.npy")]) == 2
    assert "NaN" in _one_error_line(capsys)


def test_negative_factors_are_refused(tmp_path, acts, sae, capsys):
    np.save(tmp_path / "f.npy", np.stack([np.arange(400) % 3 - 1, np.arange(400) % 2], axis=1))
    assert cli_main(["sae", "evaluate", str(sae), str(acts), "--factors", str(tmp_path / "f.npy"), "--metrics", "mig"]) == 2
    assert "negative" in _one_error_line(capsys)


def test_resume_on_other_activations_is_refused(tmp_path, acts, capsys):
    out = tmp_path / "o"
    assert cli_main(["sae", "train", str(acts), *TRAIN, "--out", str(out), "--checkpoint-every", "4"]) == 0
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(5).standard_normal((400, 8)).astype(np.float32))
    capsys.readouterr()
    assert cli_main(["sae", "train", str(other), *TRAIN[:-3], "--steps", "20", "--batch-size", "64", "--no-progress",
                     "--out", str(out), "--resume"]) == 2
    assert "other activations" in _one_error_line(capsys)


def test_out_holding_another_kind_of_run_is_refused(tmp_path, acts, capsys):
    run = tmp_path / "vae_run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    (run / "config.yaml").write_text("model: vae\n")
    for extra in ([], ["--overwrite"]):
        assert cli_main(["sae", "train", str(acts), *TRAIN, "--out", str(run), *extra]) == 2
        assert "not an SAE run" in _one_error_line(capsys)
        assert cli_main(["sae", "sweep", str(acts), "--arch", "topk", "--latents", "16", "--k", "2", "--steps", "4",
                         "--batch-size", "64", "--no-progress", "--out", str(run), *extra]) == 2
        _one_error_line(capsys)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "run.json"]


def test_sweep_overwrite_removes_old_members(tmp_path, acts):
    base = ["sae", "sweep", str(acts), "--arch", "topk", "--latents", "16", "--steps", "4", "--batch-size", "64",
            "--no-progress", "--out", str(tmp_path / "sw")]
    assert cli_main([*base, "--k", "2,3"]) == 0
    assert cli_main([*base, "--k", "4", "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "sw").iterdir() if not p.name.startswith(".")) == [
        "checkpoint.pt", "sweep.json", "topk-w16-k4"]


@pytest.mark.parametrize("flag,value", [("--children", "0"), ("--noise", "-1"), ("--noise", "nan"),
                                        ("--freq-power", "nan"), ("--mag-std", "inf"), ("--seed", "-1")])
def test_synthetic_numbers_are_checked(tmp_path, capsys, flag, value):
    assert cli_main(["sae", "synthetic", "--features", "16", "--dim", "4", "--samples", "100", flag, value,
                     "--out", str(tmp_path / "s")]) == 2
    _one_error_line(capsys)
    assert not (tmp_path / "s" / "synthetic.json").exists()


@pytest.mark.parametrize("cmd", ["train", "sweep"])
def test_a_second_process_on_a_busy_folder_is_refused(tmp_path, acts, capsys, cmd):
    from untwine.files import exclusive_lock

    out = tmp_path / "busy"
    with exclusive_lock(out):  # as a running `sae train` holds it
        assert cli_main(["sae", cmd, str(acts), *TRAIN, "--out", str(out)]) == 2
        assert "in use by another untwine process" in _one_error_line(capsys)
    assert cli_main(["sae", cmd, str(acts), *TRAIN, "--out", str(out)]) == 0  # released: the next run works


def test_stray_temporaries_of_a_killed_write_are_removed(tmp_path, acts):
    out = tmp_path / "o"
    out.mkdir()
    stray = out / ".checkpoint.pt.999999999.0123456789ab.tmp"  # no such process
    stray.write_bytes(b"half a checkpoint")
    assert cli_main(["sae", "train", str(acts), *TRAIN, "--out", str(out), "--resume"]) == 0
    assert not stray.exists()


def test_kill_9_then_resume_is_bit_identical(tmp_path, acts):
    argv = [sys.executable, "-m", "untwine", "sae", "train", str(acts), "--arch", "topk", "--latents", "32", "--k", "3",
            "--steps", "60", "--batch-size", "64", "--checkpoint-every", "2", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(untwine.__file__).resolve().parents[1]))
    t0 = time.time()
    subprocess.run([*argv, "--out", str(tmp_path / "ref")], env=env, check=True, capture_output=True)
    full = time.time() - t0
    want = (tmp_path / "ref" / "sae_weights.safetensors").read_bytes()
    pick = random.Random(0)
    for i in range(3):
        out = tmp_path / f"k{i}"
        proc = subprocess.Popen([*argv, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(pick.uniform(0.3, 0.95) * full)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        p = subprocess.run([*argv, "--out", str(out), "--resume"], check=False, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert (out / "sae_weights.safetensors").read_bytes() == want
        assert not list(out.rglob("*.tmp"))
