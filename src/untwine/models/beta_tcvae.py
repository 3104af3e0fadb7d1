"""beta-TCVAE: the total correlation of the aggregate posterior weighted by beta.

References: Chen et al., "Isolating Sources of Disentanglement in Variational
Autoencoders", NeurIPS 2018 (Eq. 4 with alpha = gamma = 1, and the
minibatch-weighted-sampling (MWS) estimator of Sec. 3.1); disentanglement_lib
``methods/unsupervised/vae.py`` ``BetaTCVAE`` and ``total_correlation``.

With alpha = gamma = 1 the objective is the negative ELBO plus
``(beta - 1) * TC``:  ``loss = reconstruction + KL + (beta - 1) * TC``.
Default ``beta = 6`` (the study sweeps 1, 2, 4, 6, 8, 10).  The model adds the
constant ``(D - 1) * log M`` (batch size ``M``) to disentanglement_lib's value so
that the logged ``tc`` is near 0 for independent latents; losses differ from
disentanglement_lib's by that constant only, gradients are identical.

:func:`total_correlation` follows disentanglement_lib: on a batch of ``M``
samples ``z_j ~ q(z|x_j)`` it estimates ``log q(z_j)`` by
``logsumexp_i log q(z_j|x_i)`` and ``log q(z_jl)`` by
``logsumexp_i log q(z_jl|x_il)``, *omitting* the normalising constants.  The
estimate therefore differs from the total correlation by a constant
``-(D - 1) * log(c)``, where ``c = N * M`` for Chen et al.'s MWS weights
(dataset size ``N``) and ``c = M`` when the batch is the whole data set (a
kernel-density estimate of the aggregate posterior); pass
``log_normalizer=log(c)`` to add it back.  The constant does not change
gradients.
"""

from __future__ import annotations

import math

import torch

from untwine.models.common import GaussianVAEBase, HParam
from untwine.models.losses import gaussian_log_density


def total_correlation(
    z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, log_normalizer: float = 0.0
) -> torch.Tensor:
    """Minibatch estimate of ``TC = E[log q(z) - sum_l log q(z_l)]`` (see the module docstring).

    ``z``, ``mean``, ``logvar``: ``[M, D]``.  ``log_normalizer``: ``log c`` of the
    omitted constant; 0 reproduces disentanglement_lib's value.
    """
    # log q(z_j | x_i) per dimension: [j, i, l]
    log_q = gaussian_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])
    log_qz = torch.logsumexp(log_q.sum(2), dim=1)  # [j]
    log_prod_marginals = torch.logsumexp(log_q, dim=1).sum(1)  # [j]
    d = z.shape[1]
    return (log_qz - log_prod_marginals).mean() + (d - 1) * log_normalizer


class BetaTCVAE(GaussianVAEBase):
    """beta-TCVAE with the minibatch-weighted-sampling total-correlation estimate."""

    name = "beta_tcvae"
    HPARAMS = {**GaussianVAEBase.HPARAMS, "beta": HParam(6.0, float, "weight of the total correlation", low=0.0)}

    def regularizer(self, kl, mean, logvar, z, step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # log M normaliser: a constant (no effect on gradients) that makes the logged value ~0 when independent.
        tc = total_correlation(z, mean, logvar, log_normalizer=math.log(z.shape[0]))
        return kl + (self.hparams["beta"] - 1.0) * tc, {"tc": tc}
