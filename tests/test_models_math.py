"""Mathematics of the untwine models: closed forms, estimators, quantisation, wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from untwine.errors import UntwineError
from untwine.models import MODELS, build_model, model_hparams
from untwine.models.annealed_vae import capacity
from untwine.models.architectures import ConvEncoder, DeconvDecoder, Discriminator
from untwine.models.beta_tcvae import total_correlation
from untwine.models.dip_vae import covariance_of_means, dip_covariance, dip_penalty
from untwine.models.factor_vae import discriminator_loss, permute_dims
from untwine.models.losses import gaussian_kl, reconstruction_loss
from untwine.models.qlae import quantize
from untwine.models.dts import SEQUENCE_MODELS
from untwine.models.classifier import CLASSIFIER_MODELS

#: models for images / vectors (the sequence models are tested in test_timeseries_models.py; the
#: classifier, which has no decoder, in test_classifier.py)
IMAGE_MODELS = sorted(set(MODELS) - set(SEQUENCE_MODELS) - set(CLASSIFIER_MODELS))

IMG = (1, 64, 64)


@pytest.fixture(autouse=True)
def _one_thread():
    # small tensors: one thread is as fast, and far faster when the cores are shared
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _blobs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 64, 64)
    for i in range(n):
        s = int(torch.randint(8, 20, (1,), generator=g))
        r, c = (int(v) for v in torch.randint(0, 64 - s, (2,), generator=g))
        x[i, 0, r : r + s, c : c + s] = 1.0
    return x


# -- KL and reconstruction ----------------------------------------------------------
def test_kl_closed_form_known_values():
    mean = torch.ones(3, 4)
    logvar = torch.zeros(3, 4)
    assert torch.allclose(gaussian_kl(mean, logvar), torch.full((3,), 0.5 * 4))
    # variance 2, mean 0: 0.5 * (2 - log 2 - 1) per dimension
    kl = gaussian_kl(torch.zeros(1, 5), torch.full((1, 5), math.log(2.0)))
    assert kl.item() == pytest.approx(5 * 0.5 * (1 - math.log(2.0)), rel=1e-6)
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max().item() == 0.0


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(gaussian_kl(mean, logvar), ref, atol=1e-5)


def test_vae_terms_are_the_closed_forms():
    torch.manual_seed(0)
    x = _blobs(8)
    model = build_model("beta_vae", IMG, binary=True, beta=3.0)
    mean, logvar = model.encode_dist(x)
    torch.manual_seed(5)
    terms = model.loss_terms(x, 0)
    assert terms["kl"].item() == pytest.approx(gaussian_kl(mean, logvar).mean().item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["reconstruction"].item() + 3.0 * terms["kl"].item(), rel=1e-6)


def test_reconstruction_losses():
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(4, 1, 8, 8, generator=g) > 0.5).float()
    logits = torch.randn(4, 1, 8, 8, generator=g)
    p = torch.sigmoid(logits)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).reshape(4, -1).sum(1)
    assert torch.allclose(reconstruction_loss(x, logits, "bernoulli"), bce, atol=1e-4)
    assert torch.allclose(reconstruction_loss(x, logits, "bernoulli", reduction="mean"), bce / 64, atol=1e-5)
    l2 = (x - p).square().reshape(4, -1).sum(1)
    assert torch.allclose(reconstruction_loss(x, logits, "gaussian"), l2, atol=1e-5)
    # non-binary targets: cross-entropy minus the images' entropy is 0 at a perfect reconstruction
    y = torch.rand(4, 1, 8, 8, generator=g) * 0.8 + 0.1
    perfect = torch.log(y / (1 - y))
    assert reconstruction_loss(y, perfect, "bernoulli").min().item() > 1.0
    assert reconstruction_loss(y, perfect, "bernoulli", subtract_entropy=True).abs().max().item() < 1e-4


def test_reconstruction_auto_is_bernoulli_for_every_image():
    # disentanglement_lib's study (shared.gin: bernoulli_loss) and the latent-quantization code
    assert build_model("vae", IMG, binary=True).hparams["reconstruction"] == "bernoulli"
    assert build_model("vae", (3, 64, 64), binary=False).hparams["reconstruction"] == "bernoulli"
    assert build_model("qlae", (3, 64, 64), binary=False).hparams["reconstruction"] == "bernoulli"
    assert build_model("vae", (3, 64, 64), binary=False, reconstruction="gaussian").hparams["reconstruction"] == "gaussian"
    assert build_model("vae", IMG, binary=True, reconstruction="gaussian").hparams["reconstruction"] == "gaussian"
    # vectors and series keep "bernoulli if binary, else gaussian"
    assert build_model("vae", (12,), binary=False).hparams["reconstruction"] == "gaussian"
    assert build_model("vae", (12,), binary=True).hparams["reconstruction"] == "bernoulli"
    assert build_model("seq_vae", (1, 32), binary=False).hparams["reconstruction"] == "gaussian"
    assert build_model("dts", (1, 32), binary=True).hparams["reconstruction"] == "bernoulli"
    with pytest.raises(UntwineError, match="reconstruction"):
        build_model("vae", IMG, reconstruction="poisson")


def test_annealed_capacity_and_loss():
    assert capacity(0, 25.0, 100) == 0.0
    assert capacity(50, 25.0, 100) == pytest.approx(12.5)
    assert capacity(1000, 25.0, 100) == 25.0
    torch.manual_seed(0)
    model = build_model("annealed_vae", IMG, binary=True, c_max=20.0, iteration_threshold=10, gamma=7.0)
    terms = model.loss_terms(_blobs(4), step=5)
    assert terms["capacity"].item() == pytest.approx(10.0)
    expect = terms["reconstruction"] + 7.0 * (terms["kl"] - 10.0).abs()
    assert terms["loss"].item() == pytest.approx(expect.item(), rel=1e-6)


# -- total correlation (MWS) ------------------------------------------------------------
def _tc_estimate(rho: float, n: int = 3000, sigma: float = 0.1, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64))
    means = torch.randn(n, 2, generator=g, dtype=torch.float64) @ chol.T
    logvar = torch.full_like(means, 2 * math.log(sigma))
    z = means + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
    # the batch is the whole "data set": q(z) = 1/n sum_i q(z|x_i), so the omitted constant is log n
    return total_correlation(z, means, logvar, log_normalizer=math.log(n)).item()


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.85])
def test_total_correlation_of_correlated_gaussian(rho):
    analytic = -0.5 * math.log(1 - rho**2)
    assert _tc_estimate(rho) == pytest.approx(analytic, abs=0.06)


def test_total_correlation_constant_convention():
    g = torch.Generator().manual_seed(3)
    z, mean, logvar = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    base = total_correlation(z, mean, logvar).item()
    assert total_correlation(z, mean, logvar, log_normalizer=2.0).item() == pytest.approx(base + 3 * 2.0, rel=1e-5)
    # with a single latent there is no total correlation at all
    assert total_correlation(z[:, :1], mean[:, :1], logvar[:, :1]).abs().item() < 1e-6


# -- DIP-VAE -------------------------------------------------------------------------------
def test_dip_penalty_zero_at_identity_and_known_value():
    assert dip_penalty(torch.eye(5), 10.0, 100.0).item() == 0.0
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert dip_penalty(cov, 3.0, 7.0).item() == pytest.approx(3.0 * 2 * 0.25 + 7.0 * 1.0)


def test_dip_covariances():
    g = torch.Generator().manual_seed(4)
    raw = torch.randn(200, 3, generator=g, dtype=torch.float64)
    assert np.allclose(covariance_of_means(raw).numpy(), np.cov(raw.numpy().T, bias=True))
    # whitened means have identity covariance -> DIP-VAE-I penalty 0
    c = raw - raw.mean(0)
    w = torch.linalg.cholesky(c.T @ c / 200)
    white = c @ torch.linalg.inv(w).T
    assert dip_penalty(dip_covariance(white, None, "i"), 10.0, 100.0).item() < 1e-12
    # DIP-VAE-II adds the mean encoder variance on the diagonal
    logvar = torch.full_like(white, math.log(0.5))
    cov2 = dip_covariance(white, logvar, "ii")
    assert torch.allclose(cov2, 1.5 * torch.eye(3, dtype=torch.float64), atol=1e-10)


def test_dip_lambda_d_defaults():
    assert build_model("dip_vae_i", IMG, lambda_od=5.0).hparams["lambda_d"] == 50.0
    assert build_model("dip_vae_ii", IMG, lambda_od=5.0).hparams["lambda_d"] == 5.0
    assert build_model("dip_vae_i", IMG, lambda_od=5.0, lambda_d=1.0).hparams["lambda_d"] == 1.0


# -- FactorVAE -------------------------------------------------------------------------------
def test_permute_dims_keeps_marginals_breaks_joint():
    torch.manual_seed(0)
    z = torch.arange(200.0).reshape(100, 2)
    z[:, 1] = z[:, 0]  # perfectly correlated columns
    p = permute_dims(z)
    for j in range(2):
        assert torch.equal(p[:, j].sort().values, z[:, j].sort().values)
    assert (p[:, 0] != p[:, 1]).float().mean().item() > 0.9


def test_discriminator_loss_and_tc_at_chance():
    zeros = torch.zeros(10, 2)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(math.log(2.0), rel=1e-6)
    confident = torch.tensor([[10.0, -10.0]]).repeat(10, 1)
    assert discriminator_loss(confident, confident.flip(1)).item() < 1e-5


def test_factor_vae_discriminator_has_own_optimizer_and_gradient():
    torch.manual_seed(0)
    model = build_model("factor_vae", IMG, binary=True, gamma=10.0)
    opts = model.make_optimizers()
    assert set(opts) == {"model", "discriminator"}
    disc_params = {id(p) for p in model.discriminator.parameters()}
    model_params = {id(p) for g in opts["model"].param_groups for p in g["params"]}
    own = {id(p) for g in opts["discriminator"].param_groups for p in g["params"]}
    assert own == disc_params and not (model_params & disc_params)
    assert model_params == {id(p) for p in model.model_parameters()}
    group = opts["discriminator"].param_groups[0]
    assert group["betas"] == (0.5, 0.9) and group["lr"] == 1e-4
    arch = [m for m in model.discriminator.net if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in arch] == [1000] * 6 + [2]
    # the discriminator's gradient is that of its own loss only (not of the VAE's TC term)
    x = _blobs(16)
    torch.manual_seed(7)
    terms = model.loss_terms(x, 0)
    expect = torch.autograd.grad(terms["disc_loss"], list(model.discriminator.parameters()))
    torch.manual_seed(7)
    model.training_step(x, 0, opts)
    for p, e in zip(model.discriminator.parameters(), expect):
        assert torch.allclose(p.grad, e, atol=1e-6)


# -- QLAE ------------------------------------------------------------------------------------
def test_quantize_is_nearest_value():
    g = torch.Generator().manual_seed(5)
    values = torch.sort(torch.randn(4, 7, generator=g), dim=1).values
    z = torch.randn(50, 4, generator=g) * 2
    q, idx = quantize(z, values)
    dist = (z.numpy()[:, :, None] - values.numpy()[None]) ** 2
    assert np.array_equal(idx.numpy(), dist.argmin(2))
    assert torch.equal(q, torch.gather(values.expand(50, -1, -1), 2, idx[:, :, None]).squeeze(2))


def test_qlae_codes_on_codebook_and_straight_through():
    torch.manual_seed(0)
    model = build_model("qlae", IMG, binary=True, num_factors=3)
    assert model.hparams["num_latents"] == 6
    assert torch.allclose(model.codebook[2], torch.linspace(-0.5, 0.5, 10))
    x = _blobs(8)
    codes = model.encode(x)
    for d in range(6):
        assert torch.isin(codes[:, d], model.codebook[d]).all()
    out = model.forward_codes(x)
    assert torch.equal(out["z_hat"], out["z_quantized"])
    # gradient of the reconstruction reaches the encoder through the straight-through code
    recon = model.reconstruction_loss(x, model.decoder(out["z_hat"]))
    head = model.encoder.heads.mean.weight
    g_enc, g_cb = torch.autograd.grad(recon, [head, model.codebook], allow_unused=True)
    assert g_enc.abs().sum().item() > 0
    assert g_cb is None  # the reconstruction does not move the codebook
    terms = model.loss_terms(x, 0)
    (g_cb2,) = torch.autograd.grad(terms["quantization"], [model.codebook])
    assert g_cb2.abs().sum().item() > 0


def test_qlae_optimizer_groups():
    model = build_model("qlae", IMG, binary=True)
    opt = model.make_optimizers()["model"]
    assert isinstance(opt, torch.optim.AdamW)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0 and decayed["lr"] == 1e-3
    assert any(p is model.codebook for p in plain["params"])
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 or p is model.codebook for p in plain["params"])
    n_all = sum(1 for _ in model.parameters())
    assert len(decayed["params"]) + len(plain["params"]) == n_all


def test_qlae_per_pixel_mean_loss():
    torch.manual_seed(0)
    model = build_model("qlae", IMG, binary=True)
    x = _blobs(4)
    terms = model.loss_terms(x, 0)
    logits = model.decoder(model.forward_codes(x)["z_hat"])
    assert terms["reconstruction"].item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits, x).item(), rel=1e-5
    )
    expect = terms["reconstruction"] + 0.01 * terms["quantization"] + 0.01 * terms["commitment"]
    assert terms["loss"].item() == pytest.approx(expect.item(), rel=1e-6)


# -- architectures -------------------------------------------------------------------------------
def test_conv_architecture_matches_disentanglement_lib():
    enc, dec = ConvEncoder(IMG, 10), DeconvDecoder(IMG, 10)
    n_enc = (1 * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 64 * 4 + 64) + (64 * 64 * 4 + 64) + (1024 * 256 + 256) + 2 * (2560 + 10)
    n_dec = (10 * 256 + 256) + (256 * 1024 + 1024) + (64 * 64 * 16 + 64) + (64 * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 16 + 1)
    assert sum(p.numel() for p in enc.parameters()) == n_enc
    assert sum(p.numel() for p in dec.parameters()) == n_dec
    x = torch.rand(3, *IMG)
    mean, logvar = enc(x)
    assert mean.shape == logvar.shape == (3, 10)
    assert dec(mean).shape == (3, *IMG)
    assert Discriminator(10)(mean).shape == (3, 2)
    vec = build_model("vae", (7,))
    assert vec.decode(torch.zeros(2, 10)).shape == (2, 7)


# -- registry, hyper-parameters, errors -----------------------------------------------------------
def test_unknown_model_name():
    with pytest.raises(UntwineError) as err:
        build_model("betavae", IMG)
    msg = str(err.value)
    assert "\n" not in msg and "betavae" in msg and all(n in msg for n in MODELS)


def test_unknown_and_bad_hyperparameters():
    with pytest.raises(UntwineError) as err:
        build_model("beta_vae", IMG, gama=3)
    msg = str(err.value)
    assert "gama" in msg and "beta" in msg and "num_latents" in msg and "\n" not in msg
    with pytest.raises(UntwineError, match="beta"):
        build_model("beta_vae", IMG, beta="lots")
    with pytest.raises(UntwineError, match="num_latents"):
        build_model("vae", IMG, num_latents=0)
    with pytest.raises(UntwineError, match="observation_shape"):
        build_model("vae", (1, 60, 60))
    with pytest.raises(UntwineError):
        model_hparams("nope")
    assert model_hparams("beta_vae")["beta"] == 4.0
    assert build_model("beta_vae", IMG, beta="8").hparams["beta"] == 8.0  # strings from the CLI are coerced


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_rebuild_from_hparams(name):
    torch.manual_seed(0)
    model = build_model(name, IMG, binary=True, num_factors=5)
    assert model.hparams["name"] == name and model.hparams["num_latents"] == 10
    clone = build_model(**model.hparams)
    assert clone.hparams == model.hparams
    clone.load_state_dict(model.state_dict())
    x = _blobs(2)
    assert torch.equal(clone.encode(x), model.encode(x))
    assert model.decode(model.encode(x)).min() >= 0 and model.decode(model.encode(x)).max() <= 1


# -- architectures -----------------------------------------------------------------------------
def test_architecture_registry_and_lq_shapes():
    from untwine.models.architectures import ARCHITECTURES, LQEncoder, LQStyleDecoder

    assert set(ARCHITECTURES) >= {"dlib", "lq"}
    assert build_model("beta_vae", IMG, binary=True).hparams["architecture"] == "dlib"
    torch.manual_seed(0)
    model = build_model("qlae", (3, 32, 32), num_factors=2, architecture="lq")
    assert isinstance(model.encoder, LQEncoder) and isinstance(model.decoder, LQStyleDecoder)
    assert model.hparams["architecture"] == "lq"
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32] * 3 + [64] * 3 + [128] * 3 + [256] * 3
    assert all(c.bias is None for c in convs)
    assert [c.stride[0] for c in convs] == [1, 1, 2] * 4
    assert model.decoder.input_map.shape == (256, 2, 2)
    x = torch.rand(5, 3, 32, 32)
    assert model.encode(x).shape == (5, 4)
    assert model.decode(model.encode(x)).shape == (5, 3, 32, 32)
    vae = build_model("beta_vae", (1, 32, 32), architecture="lq")
    mean, logvar = vae.encode_dist(torch.rand(2, 1, 32, 32))
    assert mean.shape == logvar.shape == (2, 10)
    # AdamW decays everything but biases and codebooks: norm weights and the input map included
    decayed, plain = model.parameter_groups()
    assert any(p is model.decoder.input_map for p in decayed)
    assert any(p is model.codebook for p in plain) and all(p.ndim == 1 for p in plain if p is not model.codebook)


def test_unknown_architecture_is_one_line():
    with pytest.raises(UntwineError, match="unknown architecture 'big'; known image architectures: dlib, lq"):
        build_model("vae", IMG, architecture="big")
    with pytest.raises(UntwineError, match="for images"):
        build_model("vae", (12,), architecture="lq")
