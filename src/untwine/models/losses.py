"""Reconstruction losses and the Gaussian KL divergence shared by the models.

Reference: disentanglement_lib ``methods/shared/losses.py`` (``bernoulli_loss``,
``l2_loss`` with ``activation="logits"``) and ``methods/unsupervised/vae.py``
(``compute_gaussian_kl``, ``sample_from_latent_distribution``).

* Bernoulli: sigmoid cross-entropy between the decoder's logits and the true
  pixel values, summed over all pixels of a sample.  The pixel values may be
  non-binary (colour, noise, shading): the cross-entropy is then bounded below
  by the images' entropy, not 0.  disentanglement_lib's ``bernoulli_loss``
  subtracts nothing by default (``subtract_true_image_entropy=False``, and its
  study's ``shared.gin`` leaves it so), and neither does untwine;
  ``subtract_entropy=True`` removes the bound as that option does (entropy of
  the true pixels clipped to [1e-6, 1 - 1e-6]).  The subtraction is a constant
  per image: it changes the logged value, never the gradients.
* Gaussian: squared error between the true pixels and ``sigmoid(logits)``,
  summed over pixels (disentanglement_lib's ``l2_loss``).

Both return one value per sample; ``reduction="mean"`` averages over pixels
instead of summing (the per-pixel convention of the latent-quantization code).

Defaults (``reconstruction="auto"``, :func:`resolve_reconstruction`, one rule per
kind of observation in :data:`AUTO_RECONSTRUCTION`):

* images ``[C, H, W]``: Bernoulli, binary or not.  disentanglement_lib's study
  trains every model on every data set, colour and noisy dSprites, Shapes3D and
  MPI3D included, with ``reconstruction_loss.loss_fn = @bernoulli_loss``
  (``unsupervised_study_v1/model_configs/shared.gin``), and the latent-quantization
  code (Hsu et al. 2023) uses the binary cross-entropy (``losses/reconstruction.py``)
  on all its data sets.  ``reconstruction=gaussian`` remains an explicit choice.
* vectors ``[F]`` and series ``[C, T]``: Bernoulli for binary data, Gaussian
  otherwise.  These have no counterpart in the references; the sequence models'
  Gaussian default is documented in :mod:`untwine.models.dts`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from untwine.errors import UntwineError

RECONSTRUCTIONS = ("bernoulli", "gaussian")


#: default reconstruction under ``"auto"`` per kind of observation: ``(binary data, other data)``
AUTO_RECONSTRUCTION: dict[str, tuple[str, str]] = {
    "image": ("bernoulli", "bernoulli"),  # disentanglement_lib's study and the latent-quantization code
    "vector": ("bernoulli", "gaussian"),
    "sequence": ("bernoulli", "gaussian"),  # see untwine.models.dts
}


def resolve_reconstruction(kind: str, binary: bool, observation: str = "image") -> str:
    """The reconstruction loss ``kind`` names; ``"auto"`` -> the default of :data:`AUTO_RECONSTRUCTION`.

    ``observation`` is ``"image"`` (``[C, H, W]``), ``"vector"`` (``[F]``) or
    ``"sequence"`` (``[C, T]``).
    """
    if kind == "auto":
        try:
            rule = AUTO_RECONSTRUCTION[observation]
        except KeyError:
            raise UntwineError(
                f"observation kind must be one of {', '.join(AUTO_RECONSTRUCTION)}; got {observation!r}"
            ) from None
        return rule[0] if binary else rule[1]
    if kind not in RECONSTRUCTIONS:
        raise UntwineError(f"reconstruction must be one of auto, bernoulli, gaussian; got {kind!r}")
    return kind


def reconstruction_loss(
    x: torch.Tensor,
    logits: torch.Tensor,
    kind: str = "bernoulli",
    reduction: str = "sum",
    subtract_entropy: bool = False,
) -> torch.Tensor:
    """Per-sample reconstruction loss ``[n]`` of observations ``x`` given decoder ``logits``."""
    if kind not in RECONSTRUCTIONS:
        raise UntwineError(f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}; got {kind!r}")
    if reduction not in ("sum", "mean"):
        raise UntwineError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    x = x.reshape(x.shape[0], -1)
    logits = logits.reshape(logits.shape[0], -1)
    if kind == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        if subtract_entropy:
            p = x.clamp(1e-6, 1 - 1e-6)
            per_pixel = per_pixel - (-(p * p.log() + (1 - p) * (1 - p).log()))
    else:
        per_pixel = (x - torch.sigmoid(logits)).square()
    return per_pixel.sum(1) if reduction == "sum" else per_pixel.mean(1)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(N(mean, exp(logvar)) || N(0, I))`` summed over latents, ``[n]``."""
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1).sum(1)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``mean + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` from torch's global RNG."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Element-wise ``log N(z; mean, exp(logvar))`` (broadcasting)."""
    return -0.5 * ((z - mean).square() * torch.exp(-logvar) + logvar + math.log(2 * math.pi))
