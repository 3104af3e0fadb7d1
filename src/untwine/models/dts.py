"""Sequence VAEs for time series and DTS ("Disentangle Time Series").

References: Li, Chen, Zha, Du, Zhang, Chen, Hu, "Learning Disentangled Representations
for Time Series", arXiv:2105.08179 (2021) - DTS; Chen, Li, Grosse, Duvenaud,
"Isolating Sources of Disentanglement in Variational Autoencoders", NeurIPS 2018 - the
KL decomposition and its minibatch-weighted-sampling (MWS) estimator (Sec. 3.1, Eq. 2
and 4); disentanglement_lib ``methods/unsupervised/vae.py`` (``BetaTCVAE``,
``total_correlation``).  Implemented from the papers' descriptions.

Models (encoder/decoder from :mod:`untwine.models.sequence`, ``architecture="conv"``
or ``"gru"``; observations ``[C, T]`` in [0, 1]):

* ``seq_vae``, ``seq_beta_vae`` (``beta = 4``), ``seq_beta_tcvae`` (``beta = 6``): the
  objectives of :mod:`untwine.models.vae` / :mod:`untwine.models.beta_tcvae` on the
  sequence architecture.
* ``dts``: ``loss = reconstruction + alpha * MI + beta * TC + gamma * dimKL
  + group_beta * groupTC``, all terms MWS estimates from the batch
  (:func:`kl_decomposition`):

  - ``MI = E[log q(z|x) - log q(z)]``, the index-code mutual information;
  - ``TC = E[log q(z) - sum_l log q(z_l)]``, the total correlation;
  - ``dimKL = E[sum_l log q(z_l) - log p(z_l)]``, the dimension-wise KL;
  - ``groupTC = E[log q(z) - sum_g log q(z_g)]``, the total correlation *between*
    groups of latents ("semantic segments"; ``groups`` lists their sizes, e.g.
    ``"4,3,3"``).  It is the part of TC that ties the groups together
    (``TC = groupTC + sum_g TC within g``), so ``group_beta`` penalises dependence
    between segments on top of ``beta``'s penalty on every pair of dimensions.

  With ``alpha = beta = gamma = 1`` and ``group_beta = 0`` the three terms add up to
  the MWS estimate of the KL term, ``E[log q(z|x) - log p(z)]``, i.e. the negative
  ELBO (``seq_vae``).  DTS *adds* a mutual-information maximisation term ``lambda * I(x; z)``
  to the ELBO to counter the KL vanishing of sequential decoders, which lowers the
  weight on MI to ``alpha = 1 - lambda``; the default ``alpha = 0`` (``lambda = 1``)
  removes the MI penalty entirely (a negative ``alpha`` rewards MI), while TC and dimKL
  get heavier weights (defaults ``beta = 6``, ``gamma = 2``) to keep the
  disentanglement pressure.

MWS: for a batch of ``M`` samples ``z_j ~ q(z|x_j)``, ``log q(z_j)`` is estimated by
``logsumexp_i log q(z_j|x_i) - log C`` and ``log q(z_jl)`` (or ``log q(z_jg)``) by the
same over the dimension (group) only.  ``C = N * M`` with ``dataset_size = N`` (Chen et
al.) or ``C = M`` when ``dataset_size`` is None (the batch as the data set, the
convention of :mod:`untwine.models.beta_tcvae`, under which TC and groupTC are near 0
for independent latents and ``0 <= MI <= log M``).  The normaliser only adds constants
(``+log C`` to MI, ``(D - 1) log C`` to TC, ``(G - 1) log C`` to groupTC with ``G``
groups, ``-D log C`` to dimKL) that cancel in ``MI + TC + dimKL`` and have no effect on
gradients.

Reconstruction: under ``reconstruction="auto"`` the sequence models use the Gaussian
loss for non-binary series (Bernoulli for binary ones).  They have no
disentanglement_lib counterpart, so they do not follow the Bernoulli default of the
image models (:mod:`untwine.models.losses`); ``--set reconstruction=bernoulli``
selects it.

The sequence models default to ``learning_rate = 1e-3`` (small 1-D networks; the image
models keep disentanglement_lib's 1e-4) and 10 latents.  ``reconstruction_scale``
multiplies the summed reconstruction loss; the default 100 makes the Gaussian
reconstruction (disentanglement_lib's summed squared error, i.e. a likelihood with
variance 1/2, times the scale) a likelihood with ``sigma = 1 / sqrt(2 * 100) = 0.07``.
A series has far fewer values than an image (128 against 4096) and varies by about
0.1-0.3 in [0, 1]: at scale 1 every model collapses its posterior on ``sines`` (KL = 0
after 600 steps, measured), at 100 it does not.  Use ``reconstruction_scale=1`` to
get disentanglement_lib's image loss exactly.
"""

from __future__ import annotations

import math

import torch

from untwine.errors import UntwineError
from untwine.models.base import DisentanglingModel
from untwine.models.beta_tcvae import BetaTCVAE
from untwine.models.common import COMMON_HPARAMS, GaussianVAEBase, HParam, model_arguments
from untwine.models.losses import gaussian_log_density, reconstruction_loss, resolve_reconstruction
from untwine.models.sequence import ARCHITECTURES, check_sequence_shape, make_sequence_decoder, make_sequence_encoder
from untwine.models.vae import BetaVAE, VAE

SEQUENCE_HPARAMS: dict[str, HParam] = {
    **COMMON_HPARAMS,
    "learning_rate": HParam(1e-3, float, "Adam learning rate", positive=True),
    "architecture": HParam("conv", str, "sequence encoder/decoder: conv (1-D convolutions) | gru", choices=ARCHITECTURES),
    "reconstruction_scale": HParam(100.0, float, "multiplier of the summed reconstruction loss (Gaussian: 1/(2 sigma^2))", positive=True),
}


def parse_groups(groups, num_latents: int) -> list[int] | None:
    """Latent group sizes from ``"4,3,3"`` / ``[4, 3, 3]`` (None or ``""``: no groups); they must sum to ``num_latents``."""
    if groups is None or (isinstance(groups, str) and not groups.strip()):
        return None
    try:
        parts = groups.replace(";", ",").split(",") if isinstance(groups, str) else list(groups)
        sizes = [int(str(p).strip()) for p in parts if str(p).strip()]
    except (TypeError, ValueError):
        raise UntwineError(f"groups: expected comma-separated group sizes such as '4,3,3', got {groups!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise UntwineError(f"groups: every group size must be a positive integer, got {groups!r}")
    if sum(sizes) != num_latents:
        raise UntwineError(f"groups: sizes {sizes} add up to {sum(sizes)}, but the model has {num_latents} latents")
    return sizes


def kl_decomposition(
    z: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    *,
    dataset_size: int | None = None,
    groups: list[int] | None = None,
) -> dict[str, torch.Tensor]:
    """MWS estimates of the KL decomposition on one batch (see the module docstring).

    ``z``: samples ``[M, D]`` of ``q(z|x_j)`` with parameters ``mean``, ``logvar``
    ``[M, D]``; ``dataset_size``: ``N`` of the normaliser ``log(N * M)`` (None: ``log M``);
    ``groups``: sizes of consecutive latent groups (None: no ``group_tc``).

    Returns scalar tensors ``mi``, ``tc``, ``dim_kl``, ``kl`` (the MWS KL term
    ``E[log q(z|x) - log p(z)]``, which equals ``mi + tc + dim_kl``) and, with
    ``groups``, ``group_tc``.
    """
    if z.ndim != 2 or mean.shape != z.shape or logvar.shape != z.shape:
        raise UntwineError(f"kl_decomposition: z, mean and logvar must share one shape [M, D], got {tuple(z.shape)}, "
                           f"{tuple(mean.shape)}, {tuple(logvar.shape)}")
    m, d = z.shape
    log_c = math.log(m) + (math.log(dataset_size) if dataset_size is not None else 0.0)
    log_q = gaussian_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])  # [j, i, l]
    log_qzx = torch.diagonal(log_q, dim1=0, dim2=1).sum(0)  # log q(z_j | x_j), [j]
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)  # [j]
    log_qz = torch.logsumexp(log_q.sum(2), dim=1) - log_c  # [j]
    log_qzl = torch.logsumexp(log_q, dim=1) - log_c  # [j, l]
    out = {
        "mi": (log_qzx - log_qz).mean(),
        "tc": (log_qz - log_qzl.sum(1)).mean(),
        "dim_kl": (log_qzl.sum(1) - log_pz).mean(),
        "kl": (log_qzx - log_pz).mean(),
    }
    if groups is not None:
        sizes = parse_groups(groups, d)
        parts = torch.split(log_q, sizes, dim=2)
        log_qzg = torch.stack([torch.logsumexp(p.sum(2), dim=1) - log_c for p in parts], dim=1)  # [j, g]
        out["group_tc"] = (log_qz - log_qzg.sum(1)).mean()
    return out


class SequenceModelMixin:
    """Builds the sequence encoder/decoder instead of the image ones; put it first in the bases."""

    HPARAMS: dict[str, HParam] = SEQUENCE_HPARAMS
    gaussian = True
    reconstruction_reduction = "sum"

    def __init__(self, observation_shape, *, binary: bool = False, num_factors: int | None = None, **hparams) -> None:
        DisentanglingModel.__init__(self)  # type: ignore[arg-type]
        shape, binary, num_factors, values = model_arguments(
            type(self), observation_shape, binary, num_factors, hparams, check_shape=check_sequence_shape
        )
        if values["num_latents"] is None:
            values["num_latents"] = self.default_num_latents(num_factors)  # type: ignore[attr-defined]
        values["reconstruction"] = resolve_reconstruction(values["reconstruction"], binary, "sequence")
        self.hparams = {"name": self.name, "observation_shape": list(shape), "binary": binary, "num_factors": num_factors, **values}  # type: ignore[attr-defined]
        self.num_latents = int(values["num_latents"])
        self.observation_shape = shape
        arch = values["architecture"]
        self.encoder = make_sequence_encoder(shape, self.num_latents, gaussian=self.gaussian, architecture=arch)
        self.decoder = make_sequence_decoder(shape, self.num_latents, architecture=arch)
        self._check_hparams()

    def _check_hparams(self) -> None:
        pass

    def reconstruction_loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        per = reconstruction_loss(x, logits, self.hparams["reconstruction"], self.reconstruction_reduction)
        return self.hparams["reconstruction_scale"] * per.mean()


class SeqVAE(SequenceModelMixin, VAE):
    """The VAE (negative ELBO) on the sequence architecture."""

    name = "seq_vae"
    HPARAMS = SEQUENCE_HPARAMS


class SeqBetaVAE(SequenceModelMixin, BetaVAE):
    """beta-VAE on the sequence architecture."""

    name = "seq_beta_vae"
    HPARAMS = {**SEQUENCE_HPARAMS, "beta": HParam(4.0, float, "weight of the KL term", low=0.0)}


class SeqBetaTCVAE(SequenceModelMixin, BetaTCVAE):
    """beta-TCVAE (MWS total correlation, ``loss = rec + KL + (beta - 1) TC``) on the sequence architecture."""

    name = "seq_beta_tcvae"
    HPARAMS = {**SEQUENCE_HPARAMS, "beta": HParam(6.0, float, "weight of the total correlation", low=0.0)}


class DTS(SequenceModelMixin, GaussianVAEBase):
    """DTS: MI-relieved, TC- and dimKL-weighted sequence VAE with an optional group-TC term."""

    name = "dts"
    HPARAMS = {
        **SEQUENCE_HPARAMS,
        "alpha": HParam(0.0, float, "weight of the index-code MI (1 = ELBO; < 1 adds DTS's MI maximisation)"),
        "beta": HParam(6.0, float, "weight of the total correlation", low=0.0),
        "gamma": HParam(2.0, float, "weight of the dimension-wise KL", low=0.0),
        "groups": HParam("", str, "latent group sizes, e.g. '4,3,3' (empty: no groups)"),
        "group_beta": HParam(2.0, float, "weight of the total correlation between groups", low=0.0),
        "dataset_size": HParam(None, int, "N of the MWS normaliser log(N*M) (None: the batch, log M)", positive=True, optional=True),
    }

    def _check_hparams(self) -> None:
        self.groups = parse_groups(self.hparams["groups"], self.num_latents)

    def regularizer(self, kl, mean, logvar, z, step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hp = self.hparams
        terms = kl_decomposition(z, mean, logvar, dataset_size=hp["dataset_size"], groups=self.groups)
        reg = hp["alpha"] * terms["mi"] + hp["beta"] * terms["tc"] + hp["gamma"] * terms["dim_kl"]
        extra = {"mi": terms["mi"], "tc": terms["tc"], "dim_kl": terms["dim_kl"]}
        if self.groups is not None:
            reg = reg + hp["group_beta"] * terms["group_tc"]
            extra["group_tc"] = terms["group_tc"]
        return reg, extra


#: registry name -> class, to be merged into :data:`untwine.models.MODELS`
SEQUENCE_MODELS: dict[str, type] = {
    "seq_vae": SeqVAE,
    "seq_beta_vae": SeqBetaVAE,
    "seq_beta_tcvae": SeqBetaTCVAE,
    "dts": DTS,
}
