"""Encoders, decoders and the FactorVAE discriminator.

Reference: disentanglement_lib ``methods/shared/architectures.py`` (the
architectures of Locatello et al., "Challenging Common Assumptions in the
Unsupervised Learning of Disentangled Representations", ICML 2019, after
Higgins et al., beta-VAE, ICLR 2017, Table 1):

* :class:`ConvEncoder` = ``conv_encoder``: four stride-2 ReLU convolutions with
  32, 32, 64, 64 filters and kernels 4, 4, 2, 2 ("same" padding), a 256-unit
  ReLU layer, then linear heads for the mean and (for Gaussian encoders) the log
  variance.
* :class:`DeconvDecoder` = ``deconv_decoder``: linear 256 -> 1024 (ReLU), reshaped
  to 64 x 4 x 4, then stride-2 transposed convolutions with 64, 32, 32, C
  filters and kernel 4; the output is a map of logits.
* :class:`MLPEncoder` / :class:`MLPDecoder` = ``fc_encoder`` / ``fc_decoder``
  (1200-1200 ReLU encoder, 1200-1200-1200 tanh decoder), used for vector data.
* :class:`Discriminator` = ``fc_discriminator`` (Kim & Mnih, "Disentangling by
  Factorizing", ICML 2018, App. A): six 1000-unit leaky-ReLU (slope 0.2) layers
  and two logits.

Weights are initialised as TensorFlow's layers do (Glorot-uniform kernels, zero
biases).  The convolutional pair accepts any image size whose height and width
are multiples of 16; 64 x 64 gives exactly disentanglement_lib's network.
Decoders return logits; a model's ``decode`` applies the sigmoid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from untwine.errors import UntwineError


def tf_style_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every conv/linear layer (TF defaults)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GaussianHeads(nn.Module):
    """Linear heads giving ``(mean, logvar)``; ``logvar`` is None when deterministic."""

    def __init__(self, in_features: int, num_latents: int, gaussian: bool) -> None:
        super().__init__()
        self.mean = nn.Linear(in_features, num_latents)
        self.logvar = nn.Linear(in_features, num_latents) if gaussian else None

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.mean(h), (self.logvar(h) if self.logvar is not None else None)


def _check_image_shape(observation_shape) -> tuple[int, int, int]:
    c, h, w = (int(s) for s in observation_shape)
    if c < 1 or h < 16 or w < 16 or h % 16 or w % 16:
        raise UntwineError(
            f"observation_shape: the convolutional architecture needs images [C, H, W] with H and W multiples of 16 (e.g. [1, 64, 64]), "
            f"got {list(observation_shape)}"
        )
    return c, h, w


#: memory layout of the convolution weights and activations: channels-last lets oneDNN skip
#: its layout conversions (measured 6.4 -> 8.1 steps/s for beta_vae on 2 CPU cores); the
#: values, and the checkpoints (saved contiguous), are those of the default layout
CONV_LAYOUT = torch.channels_last


class ConvEncoder(nn.Module):
    """disentanglement_lib's ``conv_encoder``: ``x [n, C, H, W] -> (mean, logvar)``."""

    def __init__(self, observation_shape, num_latents: int, gaussian: bool = True) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        # TF "same" padding: kernel 4 / stride 2 pads one pixel per side, kernel 2 / stride 2 pads none.
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 2, stride=2, padding=0), nn.ReLU(),
            nn.Conv2d(64, 64, 2, stride=2, padding=0), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * (h // 16) * (w // 16), 256), nn.ReLU(),
        )
        self.heads = GaussianHeads(256, num_latents, gaussian)
        tf_style_init(self)
        self.features.to(memory_format=CONV_LAYOUT)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.heads(self.features(x.contiguous(memory_format=CONV_LAYOUT)))


class DeconvDecoder(nn.Module):
    """disentanglement_lib's ``deconv_decoder``: ``z [n, D] -> logits [n, C, H, W]``."""

    def __init__(self, observation_shape, num_latents: int) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        self._grid = (64, h // 16, w // 16)
        self.fc = nn.Sequential(
            nn.Linear(num_latents, 256), nn.ReLU(),
            nn.Linear(256, 64 * (h // 16) * (w // 16)), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, c, 4, stride=2, padding=1),
        )
        tf_style_init(self)
        self.deconv.to(memory_format=CONV_LAYOUT)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).reshape(z.shape[0], *self._grid).contiguous(memory_format=CONV_LAYOUT))


class MLPEncoder(nn.Module):
    """disentanglement_lib's ``fc_encoder`` (1200-1200 ReLU) for vector observations ``[n, F]``."""

    def __init__(self, observation_shape, num_latents: int, gaussian: bool = True, hidden: int = 1200) -> None:
        super().__init__()
        in_features = int(math.prod(int(s) for s in observation_shape))
        self.features = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.heads = GaussianHeads(hidden, num_latents, gaussian)
        tf_style_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.heads(self.features(x))


class MLPDecoder(nn.Module):
    """disentanglement_lib's ``fc_decoder`` (1200-1200-1200 tanh) giving logits ``[n, *observation_shape]``."""

    def __init__(self, observation_shape, num_latents: int, hidden: int = 1200) -> None:
        super().__init__()
        self._shape = tuple(int(s) for s in observation_shape)
        self.net = nn.Sequential(
            nn.Linear(num_latents, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, math.prod(self._shape)),
        )
        tf_style_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(z.shape[0], *self._shape)


class Discriminator(nn.Module):
    """FactorVAE's discriminator: ``z [n, D] -> logits [n, 2]``.

    Column 0 is the logit of "a sample of q(z)", column 1 of "a sample of the
    product of its marginals" (a dimension-wise permuted batch).
    """

    def __init__(self, num_latents: int, hidden: int = 1000, layers: int = 6, slope: float = 0.2) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        width = num_latents
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.LeakyReLU(slope)]
            width = hidden
        mods.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*mods)
        tf_style_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def check_observation_shape(observation_shape) -> tuple[int, ...]:
    """Validate ``observation_shape``: ``[F]`` (vector data) or ``[C, H, W]`` (images)."""
    try:
        shape = tuple(int(s) for s in observation_shape)
    except (TypeError, ValueError):
        raise UntwineError(f"observation_shape must be a list of integers, got {observation_shape!r}") from None
    if len(shape) == 1:
        if shape[0] < 1:
            raise UntwineError(f"observation_shape must be positive, got {list(shape)}")
        return shape
    if len(shape) == 3:
        _check_image_shape(shape)
        return shape
    raise UntwineError(
        f"observation_shape must be [features] (vectors) or [channels, height, width] (images), got {list(shape)}"
    )


def make_encoder(observation_shape, num_latents: int, gaussian: bool = True) -> nn.Module:
    """The MLP encoder for ``[F]`` observations, the convolutional one for ``[C, H, W]`` images."""
    shape = check_observation_shape(observation_shape)
    if len(shape) == 1:
        return MLPEncoder(shape, num_latents, gaussian)
    return ConvEncoder(shape, num_latents, gaussian)


def make_decoder(observation_shape, num_latents: int) -> nn.Module:
    """The decoder matching :func:`make_encoder` (returns logits)."""
    shape = check_observation_shape(observation_shape)
    if len(shape) == 1:
        return MLPDecoder(shape, num_latents)
    return DeconvDecoder(shape, num_latents)
