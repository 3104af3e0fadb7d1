"""Every model learns: its loss falls over a few dozen steps on a tiny data set; steps are reproducible."""

from __future__ import annotations

import copy

import pytest
import torch

from untwine.models import MODELS, build_model
from untwine.models.classifier import CLASSIFIER_MODELS
from untwine.models.dts import SEQUENCE_MODELS
from untwine.models.infowgan import GAN_MODELS

#: models for images / vectors (the sequence models are tested in test_timeseries_models.py; the GANs,
#: which have no reconstruction loss, in test_infowgan.py; the supervised classifier in test_classifier.py)
IMAGE_MODELS = sorted(set(MODELS) - set(SEQUENCE_MODELS) - set(GAN_MODELS) - set(CLASSIFIER_MODELS))

SHAPE = (1, 32, 32)  # the convolutional pair at half resolution (H, W multiples of 16) keeps this fast


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: one thread is as fast, and far faster when the cores are shared
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _fast(name: str) -> dict:
    # a larger learning rate than the study's 1e-4 so that a few dozen steps show learning (QLAE's is 1e-3)
    return {} if name == "qlae" else {"learning_rate": 1e-3}


def _blobs(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, size, size)
    for i in range(n):
        s = int(torch.randint(6, 14, (1,), generator=g))
        r, c = (int(v) for v in torch.randint(0, size - s, (2,), generator=g))
        x[i, 0, r : r + s, c : c + s] = 1.0
    return x


def _vectors(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(n, 2, generator=g)
    mix = torch.randn(2, 12, generator=g)
    return torch.sigmoid(f @ mix)  # values in (0, 1), two underlying factors


def _train(model, data: torch.Tensor, steps: int, batch: int) -> list[dict[str, float]]:
    opts = model.make_optimizers()
    g = torch.Generator().manual_seed(1)
    logs = []
    for step in range(steps):
        idx = torch.randint(0, data.shape[0], (batch,), generator=g)
        logs.append(model.training_step(data[idx], step, opts))
    return logs


def _mean(logs, key):
    return sum(d[key] for d in logs) / len(logs)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_loss_falls_on_tiny_images(name):
    torch.manual_seed(0)
    data = _blobs(64)
    hp = {"iteration_threshold": 1000} if name == "annealed_vae" else {}
    model = build_model(name, SHAPE, binary=True, **hp, **_fast(name))
    logs = _train(model, data, steps=30, batch=8)
    assert all(set(d) >= {"loss", "reconstruction"} for d in logs)
    assert all(isinstance(v, float) for v in logs[-1].values())
    first, last = logs[:5], logs[-5:]
    assert _mean(last, "loss") < _mean(first, "loss") - 0.05 * abs(_mean(first, "loss"))
    assert _mean(last, "reconstruction") < 0.9 * _mean(first, "reconstruction")


@pytest.mark.parametrize("name", ["vae", "qlae"])
def test_loss_falls_on_tiny_vectors(name):
    torch.manual_seed(0)
    data = _vectors(128)
    model = build_model(name, (12,), binary=False, num_factors=2, **_fast(name))
    assert model.hparams["reconstruction"] == "gaussian"
    logs = _train(model, data, steps=30, batch=32)
    assert _mean(logs[-5:], "reconstruction") < 0.5 * _mean(logs[:5], "reconstruction")


@pytest.mark.parametrize("name", ["beta_vae", "factor_vae", "qlae"])
def test_training_is_reproducible_under_torch_seed(name):
    data = _blobs(32)
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_model(name, SHAPE, binary=True)
        runs.append((_train(model, data, steps=3, batch=8), model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][k], runs[1][1][k]) for k in runs[0][1])


def test_resume_from_state_dicts_matches_uninterrupted():
    data = _blobs(32)
    torch.manual_seed(4)
    ref = build_model("factor_vae", SHAPE, binary=True)
    ref_opts = ref.make_optimizers()
    gen = torch.Generator().manual_seed(9)
    batches = [data[torch.randint(0, 32, (8,), generator=gen)] for _ in range(4)]
    torch.manual_seed(4)
    init = {k: v.clone() for k, v in ref.state_dict().items()}
    torch.manual_seed(100)
    for s in range(2):
        ref.training_step(batches[s], s, ref_opts)
    mid_model = {k: v.clone() for k, v in ref.state_dict().items()}
    mid_opts = {k: o.state_dict() for k, o in ref_opts.items()}
    mid_opts = copy.deepcopy(mid_opts)
    torch.manual_seed(200)
    ref_logs = [ref.training_step(batches[s], s, ref_opts) for s in (2, 3)]
    # resume: fresh model and optimisers from the checkpointed state, same torch seed
    resumed = build_model(**ref.hparams)
    resumed.load_state_dict(mid_model)
    opts = resumed.make_optimizers()
    for k, o in opts.items():
        o.load_state_dict(mid_opts[k])
    torch.manual_seed(200)
    logs = [resumed.training_step(batches[s], s, opts) for s in (2, 3)]
    assert logs == ref_logs
    assert all(torch.equal(resumed.state_dict()[k], ref.state_dict()[k]) for k in init)


def test_qlae_learns_on_the_lq_architecture():
    torch.manual_seed(0)
    data = _blobs(64, size=16)
    model = build_model("qlae", (1, 16, 16), binary=True, num_factors=2, architecture="lq")
    logs = _train(model, data, steps=25, batch=16)
    assert _mean(logs[-5:], "reconstruction") < 0.9 * _mean(logs[:5], "reconstruction")
