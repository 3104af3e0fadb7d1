"""VAE and beta-VAE.

References: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014;
Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017 (Eq. 4); disentanglement_lib
``methods/unsupervised/vae.py`` ``BetaVAE`` and ``compute_gaussian_kl``.

``loss = reconstruction + beta * KL(q(z|x) || N(0, I))`` with the KL summed over
latents and both terms averaged over the batch.  ``VAE`` is beta = 1; ``BetaVAE``
defaults to ``beta = 4`` (disentanglement_lib's study sweeps 1, 2, 4, 6, 8, 16).
"""

from __future__ import annotations

import torch

from untwine.models.common import GaussianVAEBase, HParam


class VAE(GaussianVAEBase):
    """The plain VAE (negative ELBO)."""

    name = "vae"


class BetaVAE(GaussianVAEBase):
    """beta-VAE: the KL term weighted by ``beta``."""

    name = "beta_vae"
    HPARAMS = {**GaussianVAEBase.HPARAMS, "beta": HParam(4.0, float, "weight of the KL term", low=0.0)}

    def regularizer(self, kl, mean, logvar, z, step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.hparams["beta"] * kl, {}
