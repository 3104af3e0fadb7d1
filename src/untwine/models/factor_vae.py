"""FactorVAE: a VAE whose total correlation is estimated by a discriminator.

References: Kim & Mnih, "Disentangling by Factorizing", ICML 2018 (Eq. 2 and
App. A); disentanglement_lib ``methods/unsupervised/vae.py`` ``FactorVAE`` and
``shuffle_codes``, ``architectures.fc_discriminator``.

As in disentanglement_lib, one batch serves both players:

* ``z ~ q(z|x)`` is sampled; ``z_perm`` permutes each latent dimension
  independently across the batch (a sample of the product of marginals);
* VAE loss: ``reconstruction + KL + gamma * TC`` with
  ``TC = mean(D(z)[:, 0] - D(z)[:, 1])`` (the logit difference estimates
  ``log q(z) / prod_l q(z_l)``);
* discriminator loss: ``-(0.5 * mean log p_D(real | z) + 0.5 * mean log p_D(perm | z_perm))``
  with the probabilities clipped to [1e-6, 1 - 1e-6];
* both gradients are taken at the same parameters, then the VAE optimiser
  (Adam 1e-4, 0.9/0.999) updates encoder and decoder and the discriminator
  optimiser (Adam 1e-4, betas 0.5/0.9) updates the discriminator.

(Kim & Mnih's paper permutes a second, independent batch; disentanglement_lib,
whose study this reproduces, permutes the same batch.)  The permutations use
``torch.rand`` (torch's global RNG).  Default ``gamma = 40`` (the study sweeps
10, 20, 30, 40, 50, 100).
"""

from __future__ import annotations

import torch

from untwine.models.architectures import Discriminator
from untwine.models.common import GaussianVAEBase, HParam, terms_to_floats
from untwine.models.losses import gaussian_kl, reparameterize


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Permute every column of ``z [n, D]`` independently across rows (torch's global RNG)."""
    idx = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, idx)


def discriminator_loss(logits_real: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of the discriminator (class 0 = q(z), class 1 = permuted), halves averaged."""
    p_real = torch.softmax(logits_real, dim=1).clamp(1e-6, 1 - 1e-6)
    p_perm = torch.softmax(logits_perm, dim=1).clamp(1e-6, 1 - 1e-6)
    return -(0.5 * p_real[:, 0].log().mean() + 0.5 * p_perm[:, 1].log().mean())


class FactorVAE(GaussianVAEBase):
    """FactorVAE with its own discriminator and optimiser."""

    name = "factor_vae"
    HPARAMS = {
        **GaussianVAEBase.HPARAMS,
        "gamma": HParam(40.0, float, "weight of the total correlation", low=0.0),
        "disc_learning_rate": HParam(1e-4, float, "discriminator Adam learning rate", positive=True),
        "disc_beta1": HParam(0.5, float, "discriminator Adam beta1", low=0.0),
        "disc_beta2": HParam(0.9, float, "discriminator Adam beta2", low=0.0),
    }

    def __init__(self, observation_shape, **kwargs) -> None:
        super().__init__(observation_shape, **kwargs)
        self.discriminator = Discriminator(self.num_latents)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        opts = super().make_optimizers()
        opts["discriminator"] = torch.optim.Adam(
            self.discriminator.parameters(),
            lr=hp["disc_learning_rate"],
            betas=(hp["disc_beta1"], hp["disc_beta2"]),
            eps=hp["adam_epsilon"],
        )
        return opts

    def loss_terms(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """VAE terms (``"loss"`` minimised by the model optimiser) and ``"disc_loss"`` (by the discriminator's)."""
        mean, logvar = self.encode_dist(x)
        z = reparameterize(mean, logvar)
        recon = self.reconstruction_loss(x, self.decoder(z))
        kl = gaussian_kl(mean, logvar).mean()
        logits_z = self.discriminator(z)
        tc = (logits_z[:, 0] - logits_z[:, 1]).mean()
        logits_perm = self.discriminator(permute_dims(z.detach()))
        disc = discriminator_loss(self.discriminator(z.detach()), logits_perm)
        return {
            "loss": recon + kl + self.hparams["gamma"] * tc,
            "reconstruction": recon,
            "kl": kl,
            "tc": tc,
            "disc_loss": disc,
        }

    def training_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        opt_vae, opt_disc = optimizers["model"], optimizers["discriminator"]
        opt_vae.zero_grad(set_to_none=True)
        opt_disc.zero_grad(set_to_none=True)
        terms = self.loss_terms(x, step)
        # Gradients of each loss only into its own player's parameters, both at the current parameters.
        terms["loss"].backward(inputs=self.model_parameters())
        terms["disc_loss"].backward(inputs=list(self.discriminator.parameters()))
        opt_vae.step()
        opt_disc.step()
        return terms_to_floats(terms)
