"""The training loop: run directory contents, exact resume, refusal to overwrite, load()."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from untwine.train import evaluate_run, load, load_config, open_run, train
from untwine.data.base import GroundTruthDataset
from untwine.errors import UntwineError
from untwine.train.checkpoint import latest_checkpoint
from untwine.train.log import read_log

TOY_SOURCE = '''
import numpy as np
import torch
from untwine.data.base import GroundTruthDataset


class Toy(GroundTruthDataset):
    """A 16x16 binary grid: a square at (x, y) with one of two sizes."""

    name = "toy"
    factor_names = ("x", "y", "size")
    factor_sizes = (4, 4, 2)
    observation_shape = (1, 16, 16)
    binary = True

    def observations(self, factors):
        f = np.asarray(factors)
        out = torch.zeros(len(f), 1, 16, 16)
        for i, (x, y, s) in enumerate(f):
            out[i, 0, 2 + 3 * y: 5 + 3 * y + s, 2 + 3 * x: 5 + 3 * x + s] = 1.0
        return out
'''
exec(TOY_SOURCE)  # defines Toy (the same source runs in the subprocess test)

FAST = dict(batch_size=8, log_every=3, checkpoint_every=10, seed=1)


@pytest.fixture(autouse=True)
def one_thread():
    # deterministic and fast on a shared 2-core machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _weights(path):
    return load(path).state_dict()


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_run_directory_contents(tmp_path):
    out = tmp_path / "run"
    run = train("beta_vae", Toy(), steps=12, out=out, set=["beta=2"], **FAST)
    assert run.step == 12 and run.model is not None and not run.model.training
    cfg = load_config(out / "config.yaml")
    assert cfg.model == "beta_vae" and cfg.dataset == "toy" and cfg.steps == 12
    assert cfg.hparams["beta"] == 2 and cfg.hparams["num_latents"] == 10  # resolved defaults saved
    log = read_log(out)
    assert list(log["step"]) == [3, 6, 9, 12]
    assert {"loss", "reconstruction", "kl"} <= set(log)
    assert np.all(np.isfinite(log["loss"]))
    ck = latest_checkpoint(out)
    assert ck.step == 12 and (ck.path / "model.safetensors").is_file() and (ck.path / "optimizers.pt").is_file()
    assert ck.state["config_hash"] == cfg.identity_hash()
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 12
    # checkpoints at 10 and 12 are kept (keep_checkpoints=2), no temp files left
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["latest.json", "step-000000010", "step-000000012"]
    umask = os.umask(0)
    os.umask(umask)
    for p in (out / "config.yaml", out / "run.json", out / "checkpoints" / "latest.json", ck.path):
        assert p.stat().st_mode & 0o777 == (0o777 if p.is_dir() else 0o666) & ~umask, p


@pytest.mark.parametrize("model,steps,stop", [("beta_vae", 26, 13), ("factor_vae", 14, 7)])
def test_resume_reproduces_uninterrupted_run(tmp_path, model, steps, stop):
    full = train(model, Toy(), steps=steps, out=tmp_path / "full", **FAST)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started in the background by a shell
    # stop by Ctrl-C (a checkpoint is written at the interrupted step), then resume
    def interrupt(step, terms):
        if step == stop:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(model, Toy(), steps=steps, out=tmp_path / "part", callback=interrupt, **FAST)
    assert latest_checkpoint(tmp_path / "part").step == stop
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    resumed = train(model, Toy(), steps=steps, out=tmp_path / "part", resume=True, **FAST)
    assert resumed.step == steps
    _assert_same(full.model.state_dict(), resumed.model.state_dict())
    _assert_same(_weights(tmp_path / "full"), _weights(tmp_path / "part"))
    # the log is the same too (truncated to the checkpoint and continued, running means restored)
    assert (tmp_path / "full" / "log.csv").read_text() == (tmp_path / "part" / "log.csv").read_text()


def test_extend_a_finished_run(tmp_path):
    full = train("vae", Toy(), steps=20, out=tmp_path / "full", **FAST)
    train("vae", Toy(), steps=7, out=tmp_path / "ext", **FAST)
    # resume from the saved config alone (no model/dataset given), with more steps
    ext = train(dataset=Toy(), out=tmp_path / "ext", resume=True, steps=20)
    _assert_same(full.model.state_dict(), ext.model.state_dict())
    assert open_run(tmp_path / "ext").config.steps == 20


def test_killed_subprocess_resumes_to_the_same_weights(tmp_path):
    script = tmp_path / "train_toy.py"
    script.write_text(
        TOY_SOURCE
        + textwrap.dedent(
            """
            import sys, time
            from untwine.train import train
            torch.set_num_threads(1)
            train("beta_vae", Toy(), steps=30, out=sys.argv[1], callback=lambda s, t: time.sleep(0.15),
                    batch_size=8, log_every=3, checkpoint_every=5, seed=1)
            """
        )
    )
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            ck = latest_checkpoint(out) if (out / "checkpoints" / "latest.json").exists() else None
            if ck is not None and ck.step >= 10:
                break
            if proc.poll() is not None:
                pytest.fail(f"training subprocess ended early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no chance to write anything
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = latest_checkpoint(out).step
    assert 10 <= killed_at < 30
    train("beta_vae", Toy(), steps=30, out=out, resume=True, batch_size=8, log_every=3, checkpoint_every=5, seed=1)
    full = train("beta_vae", Toy(), steps=30, out=tmp_path / "full", batch_size=8, log_every=3, checkpoint_every=5, seed=1)
    _assert_same(full.model.state_dict(), _weights(out))
    assert (tmp_path / "full" / "log.csv").read_text() == (out / "log.csv").read_text()


def test_existing_run_is_never_overwritten_silently(tmp_path):
    out = tmp_path / "run"
    train("vae", Toy(), steps=4, out=out, **FAST)
    before = _weights(out)
    with pytest.raises(UntwineError, match="already holds a run.*--resume.*--overwrite"):
        train("vae", Toy(), steps=4, out=out, **FAST)
    with pytest.raises(UntwineError, match="different run; differing settings: seed"):
        train(dataset=Toy(), out=out, resume=True, steps=8, set=["seed=2"])
    with pytest.raises(UntwineError, match="differing settings: hparams.learning_rate"):
        train(dataset=Toy(), out=out, resume=True, steps=8, hparams={"learning_rate": 1e-3})
    _assert_same(before, _weights(out))
    with pytest.raises(UntwineError, match="holds model 'vae', not 'beta_vae'"):
        train("beta_vae", Toy(), steps=8, out=out, resume=True)
    # a foreign non-empty directory is refused even with overwrite
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UntwineError, match="holds no untwine run"):
        train("vae", Toy(), steps=2, out=foreign, overwrite=True, **FAST)
    assert (foreign / "notes.txt").read_text() == "mine"
    # a bad request with --overwrite leaves the old run alone
    with pytest.raises(UntwineError, match="unknown model"):
        train("vea", Toy(), steps=3, out=out, overwrite=True, **FAST)
    with pytest.raises(UntwineError, match="no hyper-parameter"):
        train("vae", Toy(), steps=3, out=out, overwrite=True, hparams={"gamma": 1}, **FAST)
    _assert_same(before, _weights(out))
    # resuming on data of another shape is refused
    class Toy3(Toy):
        factor_sizes = (4, 4, 3)

    with pytest.raises(UntwineError, match="factor_sizes"):
        train(dataset=Toy3(), out=out, resume=True, steps=8)
    # --overwrite replaces the run
    run = train("vae", Toy(), steps=3, out=out, overwrite=True, **dict(FAST, seed=5))
    assert run.step == 3 and open_run(out).config.seed == 5


def test_load_round_trip(tmp_path):
    run = train("beta_vae", Toy(), steps=5, out=tmp_path / "run", **FAST)
    model = load(tmp_path / "run")
    assert not model.training and next(model.parameters()).device.type == "cpu"
    x = Toy().observations(np.array([[0, 0, 0], [3, 2, 1], [1, 3, 0]]))
    with torch.no_grad():
        assert torch.equal(model.encode(x), run.model.encode(x))
        recon = model.decode(model.encode(x))
    assert recon.shape == x.shape and float(recon.min()) >= 0 and float(recon.max()) <= 1
    # errors: not a run, no checkpoint
    with pytest.raises(UntwineError, match="not an untwine run directory"):
        load(tmp_path)
    with pytest.raises(UntwineError, match="run directory not found"):
        load(tmp_path / "nope")
    import shutil

    shutil.rmtree(tmp_path / "run" / "checkpoints")
    with pytest.raises(UntwineError, match="has no checkpoint"):
        load(tmp_path / "run")


def test_nan_loss_stops_with_one_line(tmp_path):
    class NaNToy(Toy):
        def observations(self, factors):
            return super().observations(factors) * float("nan")

    with pytest.raises(UntwineError, match="loss became nan at step 0"):
        train("vae", NaNToy(), steps=4, out=tmp_path / "run", **FAST)


def test_tensorboard_without_the_package_is_refused_before_any_write(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(UntwineError, match="needs the tensorboard package"):
        train("vae", Toy(), steps=2, out=tmp_path / "run", tensorboard=True, **FAST)
    assert not (tmp_path / "run").exists()


def test_top_level_api_keeps_the_package_importable(tmp_path):
    import untwine
    from untwine import api

    untwine.train, untwine.load = api.train, api.load  # what untwine/__init__ re-exports
    import untwine.train as train_pkg

    assert train_pkg.open_run is open_run  # still the package ...
    run = untwine.train("vae", Toy(), steps=2, out=tmp_path / "run", **FAST)  # ... and callable
    assert run.step == 2 and untwine.load(tmp_path / "run").encode(Toy().observations([[1, 2, 0]])).shape == (1, 10)
