"""AE: a deterministic autoencoder trained on reconstruction alone.

The baseline of the latent-quantization paper (Hsu et al., "Disentanglement via
Latent Quantization", NeurIPS 2023), here on disentanglement_lib's architecture
and optimiser (Adam, learning rate 1e-4, reconstruction summed over pixels) so
that it is directly comparable with the VAE family.  The encoder has only the
mean head; ``encode_dist`` returns ``(code, None)``.
"""

from __future__ import annotations

import torch

from untwine.models.common import AutoencoderModel


class AE(AutoencoderModel):
    """Deterministic autoencoder: ``loss = reconstruction``."""

    name = "ae"
    gaussian = False

    def loss_terms(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        z, _ = self.encode_dist(x)
        recon = self.reconstruction_loss(x, self.decoder(z))
        return {"loss": recon, "reconstruction": recon}
