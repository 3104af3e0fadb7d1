"""DIP-VAE-I and DIP-VAE-II: moment matching of the aggregate posterior's covariance.

References: Kumar et al., "Variational Inference of Disentangled Latent
Concepts from Unlabeled Observations", ICLR 2018 (Eqs. 6 and 7);
disentanglement_lib ``methods/unsupervised/vae.py`` ``DIPVAE``,
``compute_covariance_z_mean`` and ``regularize_diag_off_diag_dip``.

``loss = reconstruction + KL + lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2``
where ``C = Cov_batch[mean(x)]`` (DIP-VAE-I) or
``C = E_batch[diag(exp(logvar(x)))] + Cov_batch[mean(x)]`` (DIP-VAE-II); the
batch covariance is the biased one (divides by the batch size).

Defaults follow disentanglement_lib's study, which sets
``lambda_d = lambda_d_factor * lambda_od`` with factor 10 for type I and 1 for
type II and sweeps ``lambda_od`` over 1, 2, 5, 10, 20, 50: here
``lambda_od = 10`` and ``lambda_d`` defaults (None) to that factor times
``lambda_od``; the resolved value is stored in ``hparams``.

What to expect on dSprites at a CPU budget (``benchmarks/reproduce_dsprites.py``, 5000
steps, lr 5e-4): DIP-VAE-I whitens its means as intended (Gaussian total correlation
about 0.01, every latent's mean at unit variance and about the same KL) yet scores MIG
and DCI disentanglement below a plain VAE, at 15000 steps, with 5 latents and with
``lambda_od = 1`` too; unmixing its code with FastICA does not recover the factors, so
it is not a rotated disentangled code.  See ``benchmarks/results/reproduce_dsprites.json``.
"""

from __future__ import annotations

import torch

from untwine.models.common import GaussianVAEBase, HParam


def covariance_of_means(mean: torch.Tensor) -> torch.Tensor:
    """Biased batch covariance ``E[mu mu^T] - E[mu] E[mu]^T`` of ``mean [n, D]``, ``[D, D]``."""
    centred = mean - mean.mean(0, keepdim=True)
    return centred.T @ centred / mean.shape[0]


def dip_covariance(mean: torch.Tensor, logvar: torch.Tensor | None, dip_type: str) -> torch.Tensor:
    """The covariance DIP-VAE regularises: of the means (``"i"``) or of ``z`` (``"ii"``)."""
    cov = covariance_of_means(mean)
    if dip_type == "ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    return cov


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """``lambda_od * sum_{i != j} cov_ij^2 + lambda_d * sum_i (cov_ii - 1)^2``."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.square().sum() + lambda_d * (diag - 1).square().sum()


class _DIPVAE(GaussianVAEBase):
    dip_type = "i"
    lambda_d_factor = 10.0
    HPARAMS = {
        **GaussianVAEBase.HPARAMS,
        "lambda_od": HParam(10.0, float, "weight of the off-diagonal covariance penalty", low=0.0),
        "lambda_d": HParam(None, float, "weight of the diagonal penalty (None: factor x lambda_od)", low=0.0, optional=True),
    }

    def __init__(self, observation_shape, **kwargs) -> None:
        super().__init__(observation_shape, **kwargs)
        if self.hparams["lambda_d"] is None:
            self.hparams["lambda_d"] = self.lambda_d_factor * self.hparams["lambda_od"]

    def regularizer(self, kl, mean, logvar, z, step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cov = dip_covariance(mean, logvar, self.dip_type)
        pen = dip_penalty(cov, self.hparams["lambda_od"], self.hparams["lambda_d"])
        return kl + pen, {"dip": pen}


class DIPVAEI(_DIPVAE):
    """DIP-VAE-I (covariance of the encoder means; lambda_d = 10 * lambda_od by default)."""

    name = "dip_vae_i"
    dip_type = "i"
    lambda_d_factor = 10.0


class DIPVAEII(_DIPVAE):
    """DIP-VAE-II (covariance of z; lambda_d = lambda_od by default)."""

    name = "dip_vae_ii"
    dip_type = "ii"
    lambda_d_factor = 1.0
