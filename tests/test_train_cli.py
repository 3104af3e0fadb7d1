"""`untwine train` on the command line: a run, resume, and one-line errors (exit 2)."""

import argparse
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from untwine.cli import main
from untwine.train import load_config, open_run
from untwine.train.checkpoint import latest_checkpoint
from untwine.train.log import read_log


@pytest.fixture(scope="module")
def toy_npz(tmp_path_factory):
    f = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    imgs = np.zeros((len(f), 16, 16), dtype=np.uint8)
    for i, (x, y, s) in enumerate(f):
        imgs[i, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, images=imgs, factors=f)
    return str(path)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _error_line(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_train_and_resume_from_the_command_line(toy_npz, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "beta_vae", "--dataset", toy_npz, "--out", str(out), "--batch-size", "8", "--no-progress"]
    assert main(base + ["--steps", "6", "--set", "beta=2", "--set", "log_every=2", "--seed", "4"]) == 0
    assert "run directory" in capsys.readouterr().out
    cfg = load_config(out / "config.yaml")
    assert (cfg.steps, cfg.seed, cfg.log_every, cfg.hparams["beta"], cfg.device) == (6, 4, 2, 2, "auto")
    assert list(read_log(out)["step"]) == [2, 4, 6]
    # same directory again without --resume: refused, untouched
    err = _error_line(capsys, base + ["--steps", "6"])
    assert "already holds a run" in err
    # continue to 10 steps, giving only the run directory
    assert main(["train", "--resume", "--out", str(out), "--steps", "10", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().err
    run = open_run(out)
    assert run.step == 10 and run.config.hparams["beta"] == 2 and run.config.seed == 4
    assert list(read_log(out)["step"]) == [2, 4, 6, 8, 10]
    # a config file reproduces the saved run's settings
    err = _error_line(capsys, ["train", "--config", str(out / "config.yaml"), "--out", str(out), "--resume", "--set", "beta=3"])
    assert "differing settings: hparams.beta (2.0 vs 3.0)" in err


def test_bad_inputs_are_one_line_errors(toy_npz, tmp_path, capsys):
    err = _error_line(capsys, ["train", "betavae", "--dataset", toy_npz, "--out", str(tmp_path / "a")])
    assert "unknown model 'betavae'" in err and "beta_vae" in err and "qlae" in err
    err = _error_line(capsys, ["train", "vae", "--dataset", "dsprite", "--out", str(tmp_path / "b")])
    assert "unknown dataset 'dsprite'" in err and "dsprites" in err
    err = _error_line(capsys, ["train", "vae", "--dataset", toy_npz, "--set", "betta=3", "--out", str(tmp_path / "c")])
    assert "unknown key 'betta'" in err
    err = _error_line(capsys, ["train", "vae", "--dataset", toy_npz, "--set", "beta"])
    assert "key=value" in err
    err = _error_line(capsys, ["train", "vae", "--dataset", toy_npz, "--resume"])
    assert "--resume needs --out" in err
    err = _error_line(capsys, ["train", "vae", "--dataset", toy_npz, "--steps", "-3", "--out", str(tmp_path / "d")])
    assert "steps must be at least 0" in err
    err = _error_line(capsys, ["train", "vae", "--dataset", toy_npz, "--config", str(tmp_path / "none.yaml")])
    assert "config file not found" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_ctrl_c_writes_a_checkpoint_and_exits_130(toy_npz, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "untwine", "train", "vae", "--dataset", toy_npz, "--out", str(out), "--steps", "100000",
           "--batch-size", "4", "--set", "log_every=5", "--checkpoint-every", "100000", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "log.csv").exists():
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode()[-2000:])
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "interrupted; checkpoint at step" in err.decode()
    ck = latest_checkpoint(out)
    assert ck is not None and 5 <= ck.step < 100000
    # the log holds no row beyond the checkpoint once resumed
    assert main(["train", "--resume", "--out", str(out), "--steps", str(ck.step + 5), "--no-progress"]) == 0
    steps = read_log(out)["step"]
    assert steps[-1] == ck.step + 5 - (ck.step + 5) % 5 and np.all(np.diff(steps) == 5)


def test_every_help_text_is_plain_and_describes_every_argument(capsys):
    """``--help`` of every command: no reStructuredText markup, and no argument left undescribed."""
    from untwine.cli import build_parser

    def parsers(p):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    for p in parsers(build_parser()):
        text = p.format_help()
        assert "``" not in text and ":mod:" not in text and ":func:" not in text, p.prog
        undescribed = [a.dest for a in p._actions if not a.help and not isinstance(a, argparse._SubParsersAction)]
        assert not undescribed, f"{p.prog}: {undescribed}"
