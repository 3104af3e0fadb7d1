"""Tests of the sequence models, the DTS objective and its KL decomposition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import untwine.api
import untwine.data
import untwine.models
from untwine.data.sines import Sines
from untwine.errors import UntwineError
from untwine.models.dts import DTS, SEQUENCE_MODELS, SeqVAE, kl_decomposition, parse_groups
from untwine.models.losses import gaussian_kl


def _batch(seed=0, m=64, d=5, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    mean = spread * torch.randn(m, d, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(m, d, generator=g, dtype=torch.float64) - 1.0
    z = mean + torch.exp(0.5 * logvar) * torch.randn(m, d, generator=g, dtype=torch.float64)
    return z, mean, logvar


def _log_normal(z, mean, logvar):
    return -0.5 * ((z - mean) ** 2 / torch.exp(logvar) + logvar + math.log(2 * math.pi))


@pytest.mark.parametrize("dataset_size", [None, 1000])
def test_decomposition_terms_add_up_to_kl(dataset_size):
    z, mean, logvar = _batch()
    t = kl_decomposition(z, mean, logvar, dataset_size=dataset_size, groups=[2, 3])
    # independent computation of the KL term's sample estimate E[log q(z|x) - log p(z)]
    expected = (_log_normal(z, mean, logvar).sum(1) - _log_normal(z, 0 * z, 0 * z).sum(1)).mean()
    assert torch.allclose(t["kl"], expected, atol=1e-10)
    assert torch.allclose(t["mi"] + t["tc"] + t["dim_kl"], expected, atol=1e-10)


def test_decomposition_known_values():
    z, mean, logvar = _batch(seed=1)
    m = z.shape[0]
    # brute-force MWS with the batch as the data set (normaliser log M)
    lq = torch.stack([_log_normal(z, mean[i], logvar[i]) for i in range(m)], 1)  # [j, i, l]
    log_qz = torch.logsumexp(lq.sum(2), 1) - math.log(m)
    log_qzl = torch.logsumexp(lq, 1) - math.log(m)
    t = kl_decomposition(z, mean, logvar)
    assert torch.allclose(t["tc"], (log_qz - log_qzl.sum(1)).mean(), atol=1e-10)
    assert torch.allclose(t["mi"], (_log_normal(z, mean, logvar).sum(1) - log_qz).mean(), atol=1e-10)
    # the dataset size N only adds constants: +log N to MI, (D-1) log N to TC, -D log N to dim-KL
    t2 = kl_decomposition(z, mean, logvar, dataset_size=50)
    d, c = z.shape[1], math.log(50)
    assert abs(float(t2["mi"] - t["mi"]) - c) < 1e-9
    assert abs(float(t2["tc"] - t["tc"]) - (d - 1) * c) < 1e-9
    assert abs(float(t2["dim_kl"] - t["dim_kl"]) + d * c) < 1e-9
    # well-separated posteriors: the batch KDE assigns each z_j to x_j, MI = log M
    z, mean, logvar = _batch(seed=2, spread=50.0)
    assert abs(float(kl_decomposition(z, mean, logvar)["mi"]) - math.log(m)) < 1e-6


def test_group_tc_limits_and_sampled_kl():
    z, mean, logvar = _batch(seed=3, d=6)
    t = kl_decomposition(z, mean, logvar, groups=[1] * 6)
    assert torch.allclose(t["group_tc"], t["tc"], atol=1e-10)  # singleton groups: group TC is TC
    t = kl_decomposition(z, mean, logvar, groups=[6])
    assert abs(float(t["group_tc"])) < 1e-10  # one group: nothing between groups
    t = kl_decomposition(z, mean, logvar, groups=[3, 3])
    assert float(t["group_tc"]) <= float(t["tc"]) + 1e-9
    # the MWS KL term is an unbiased estimate of the analytic KL: average many draws
    torch.manual_seed(0)
    mean, logvar = _batch(seed=4)[1:]
    draws = [kl_decomposition(mean + torch.exp(0.5 * logvar) * torch.randn_like(mean), mean, logvar)["kl"] for _ in range(200)]
    analytic = gaussian_kl(mean, logvar).mean()
    assert abs(float(torch.stack(draws).mean() - analytic)) < 0.05 * float(analytic)


def test_groups_validation():
    assert parse_groups("4,3,3", 10) == [4, 3, 3]
    assert parse_groups("", 10) is None
    with pytest.raises(UntwineError, match="add up"):
        parse_groups("4,4", 10)
    with pytest.raises(UntwineError, match="groups"):
        DTS((1, 32), groups="a,b")
    with pytest.raises(UntwineError, match="series"):
        SeqVAE((1, 64, 64))


@pytest.mark.parametrize("name", list(SEQUENCE_MODELS))
@pytest.mark.parametrize("arch", ["conv", "gru"])
def test_models_shapes_and_rebuild(name, arch):
    torch.manual_seed(0)
    cls = SEQUENCE_MODELS[name]
    model = cls((2, 37), architecture=arch, num_latents=4)
    x = torch.rand(8, 2, 37)
    with torch.no_grad():
        mean, logvar = model.encode_dist(x)
        y = model.decode(mean)
    assert mean.shape == (8, 4) and logvar.shape == (8, 4)
    assert y.shape == (8, 2, 37) and float(y.min()) >= 0 and float(y.max()) <= 1
    terms = model.loss_terms(x, 0)
    assert torch.isfinite(terms["loss"])
    again = cls(**{k: v for k, v in model.hparams.items() if k != "name"})
    assert again.hparams == model.hparams and again.name == name


def test_dts_with_unit_weights_is_the_vae():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 48)
    dts = DTS((1, 48), alpha=1.0, beta=1.0, gamma=1.0, num_latents=3)
    torch.manual_seed(1)
    t = dts.loss_terms(x, 0)
    assert torch.allclose(t["loss"], t["reconstruction"] + t["mi"] + t["tc"] + t["dim_kl"])
    # default DTS drops the MI penalty and weights TC by 6 and dim-KL by 2, plus the group term
    g = DTS((1, 48), num_latents=4, groups="2,2", group_beta=3.0)
    t = g.loss_terms(x, 0)
    want = t["reconstruction"] + 6 * t["tc"] + 2 * t["dim_kl"] + 3 * t["group_tc"]
    assert torch.allclose(t["loss"], want, atol=1e-5)


def test_dts_training_loss_falls(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: extra threads only add synchronisation
    data = Sines(length=32)
    try:
        run = untwine.api.train("dts", data, steps=250, out=tmp_path / "run", seed=0, device="cpu", batch_size=64, log_every=10,
                                hparams={"num_latents": 6, "groups": "3,3", "beta": 2.0, "gamma": 1.0, "group_beta": 1.0})
    finally:
        torch.set_num_threads(threads)
    log = run.log()
    loss = np.asarray(log["loss"])
    assert np.mean(loss[-3:]) < 0.6 * np.mean(loss[:3])
    assert np.isfinite(log["group_tc"]).all() and np.mean(log["kl"][-3:]) > 1.0  # the posterior did not collapse
    # the saved run rebuilds and encodes sines
    model = untwine.api.load(run.path)
    codes = model.encode(data.observations(np.zeros((3, 6), dtype=np.int64)))
    assert codes.shape == (3, 6)
