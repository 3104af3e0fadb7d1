"""AnnealedVAE: beta-VAE with a linearly increasing capacity target.

References: Burgess et al., "Understanding disentangling in beta-VAE", 2018
(Eq. 8); disentanglement_lib ``methods/unsupervised/vae.py`` ``AnnealedVAE`` and
``anneal``.

``C(step) = min(c_max, c_max * step / iteration_threshold)`` and
``loss = reconstruction + gamma * |KL - C(step)|``.  Defaults: ``gamma = 1000``,
``c_max = 25`` nats, ``iteration_threshold = 100000`` (the paper's dSprites
setting; disentanglement_lib's study fixes gamma and the threshold and sweeps
c_max over 5, 10, 25, 50, 75, 100).
"""

from __future__ import annotations

import torch

from untwine.models.common import GaussianVAEBase, HParam


def capacity(step: int, c_max: float, iteration_threshold: int) -> float:
    """The capacity target ``min(c_max, c_max * step / iteration_threshold)``."""
    return min(float(c_max), float(c_max) * float(step) / float(iteration_threshold))


class AnnealedVAE(GaussianVAEBase):
    """AnnealedVAE (capacity-controlled beta-VAE)."""

    name = "annealed_vae"
    HPARAMS = {
        **GaussianVAEBase.HPARAMS,
        "gamma": HParam(1000.0, float, "weight of |KL - C|", low=0.0),
        "c_max": HParam(25.0, float, "final capacity C_max in nats", low=0.0),
        "iteration_threshold": HParam(100000, int, "steps over which C rises linearly to c_max", positive=True),
    }

    def regularizer(self, kl, mean, logvar, z, step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hp = self.hparams
        c = capacity(step, hp["c_max"], hp["iteration_threshold"])
        return hp["gamma"] * (kl - c).abs(), {"capacity": torch.tensor(c, device=kl.device)}
