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

Image architectures, chosen by a model's ``architecture`` hyper-parameter through
the registry :data:`ARCHITECTURES` (name -> :class:`Architecture`):

* ``"dlib"`` (the default of every image model, so that every objective is
  compared on one network): :class:`ConvEncoder` / :class:`DeconvDecoder` above.
* ``"lq"``: the larger pair of the latent-quantization paper (Hsu et al.,
  "Disentanglement via Latent Quantization", NeurIPS 2023; its
  ``configs/train_ae.yaml``: ``encoder_partial: image``,
  ``decoder_partial: style_image``), implemented from those configs and the
  ``blocks``/``encoders``/``decoders`` modules of github.com/kylehkhsu/latent_quantization:

  - :class:`LQEncoder`: twelve bias-free convolutions in four stages of
    (3x3 stride 1, 3x3 stride 1, 4x4 stride 2), all with padding 1, widths 32,
    64, 128, 256 per stage, each followed by an instance norm (per-channel affine,
    epsilon 1e-6) and a leaky ReLU (slope 0.2); flattened (256 x H/16 x W/16),
    two 256-unit ReLU layers, then the linear heads.
  - :class:`LQStyleDecoder`: ``z`` through two 256-unit ReLU layers gives a style
    ``w``; a learned constant map (256 x H/16 x W/16, initialised to 0.1) goes
    through twelve bias-free transposed convolutions of the same kernels and
    strides with widths 256, 128, 64, 32 per stage, each followed by a leaky
    ReLU (0.2), a non-affine instance norm (epsilon 1e-6) and a modulation
    ``x * scale + bias`` with ``(scale, bias) = relu(Linear(w))`` per channel;
    a bias-free 3x3 convolution gives the C channels of logits.
  - Initialisation is equinox's default (the reference is JAX/equinox): weights
    and biases uniform in +-1/sqrt(fan_in), fan_in = inputs x kernel area.

  3.7 M encoder and 4.0 M decoder parameters for one channel at 64 x 64 and 10
  latents (``"dlib"``: 0.31 M and 0.38 M); a QLAE step at batch 128 takes about
  8 times as long as with ``"dlib"`` on a CPU (21 s against 2.6 s measured on 2
  busy cores).  Vector observations ``[F]`` have only the fully connected pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from untwine.errors import UntwineError
from untwine.registry import Registry


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

# Every ``nn.ReLU`` here follows a convolution or a linear layer, whose backward pass needs
# its input, not its output, so the ReLUs run in place (``inplace=True``): the same values
# bit for bit, without allocating and faulting in a fresh activation tensor per layer
# (disentanglement_lib's conv encoder on 2 cores: 5.8k -> 13.6k images/s when encoding).


class ConvEncoder(nn.Module):
    """disentanglement_lib's ``conv_encoder``: ``x [n, C, H, W] -> (mean, logvar)``."""

    def __init__(self, observation_shape, num_latents: int, gaussian: bool = True) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        # TF "same" padding: kernel 4 / stride 2 pads one pixel per side, kernel 2 / stride 2 pads none.
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 2, stride=2, padding=0), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 2, stride=2, padding=0), nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(64 * (h // 16) * (w // 16), 256), nn.ReLU(inplace=True),
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
            nn.Linear(num_latents, 256), nn.ReLU(inplace=True),
            nn.Linear(256, 64 * (h // 16) * (w // 16)), nn.ReLU(inplace=True),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
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
            nn.Flatten(),
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
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


class _LQInit:
    """equinox's default initialisation: weights and biases uniform in +-1/sqrt(fan_in)."""

    @staticmethod
    def apply(module: nn.Module) -> None:
        for m in module.modules():
            if isinstance(m, nn.Linear):
                fan_in = m.in_features
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            else:
                continue
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -bound, bound)


#: the latent-quantization paper's stages: (width, kernel, stride) of each of the twelve layers
LQ_ENCODER_LAYERS = tuple((w, k, s) for w in (32, 64, 128, 256) for k, s in ((3, 1), (3, 1), (4, 2)))
LQ_DECODER_LAYERS = tuple((w, k, s) for w in (256, 128, 64, 32) for k, s in ((3, 1), (3, 1), (4, 2)))
LQ_DENSE = 256
LQ_SLOPE = 0.2
LQ_NORM_EPS = 1e-6


class LQEncoder(nn.Module):
    """The latent-quantization paper's image encoder: ``x [n, C, H, W] -> (mean, logvar)``."""

    def __init__(self, observation_shape, num_latents: int, gaussian: bool = True) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        layers: list[nn.Module] = []
        width = c
        for out, k, s in LQ_ENCODER_LAYERS:
            layers += [
                nn.Conv2d(width, out, k, stride=s, padding=1, bias=False),
                nn.GroupNorm(out, out, eps=LQ_NORM_EPS, affine=True),  # instance norm
                nn.LeakyReLU(LQ_SLOPE),
            ]
            width = out
        self.features = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(width * (h // 16) * (w // 16), LQ_DENSE), nn.ReLU(inplace=True),
            nn.Linear(LQ_DENSE, LQ_DENSE), nn.ReLU(inplace=True),
        )
        self.heads = GaussianHeads(LQ_DENSE, num_latents, gaussian)
        _LQInit.apply(self)
        self.features.to(memory_format=CONV_LAYOUT)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.heads(self.features(x.contiguous(memory_format=CONV_LAYOUT)))


class StyleBlock(nn.Module):
    """Transposed convolution, leaky ReLU, non-affine instance norm, then ``x * scale + bias`` from the style."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, style_size: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=stride, padding=1, bias=False)
        self.act = nn.LeakyReLU(LQ_SLOPE)
        self.norm = nn.GroupNorm(out_channels, out_channels, eps=LQ_NORM_EPS, affine=False)
        self.style = nn.Sequential(nn.Linear(style_size, 2 * out_channels), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        scale, bias = self.style(w).chunk(2, dim=1)
        x = self.norm(self.act(self.conv(x)))
        return x * scale[:, :, None, None] + bias[:, :, None, None]


class LQStyleDecoder(nn.Module):
    """The latent-quantization paper's style decoder: ``z [n, D] -> logits [n, C, H, W]``."""

    def __init__(self, observation_shape, num_latents: int) -> None:
        super().__init__()
        c, h, w = _check_image_shape(observation_shape)
        self.mapping = nn.Sequential(
            nn.Linear(num_latents, LQ_DENSE), nn.ReLU(inplace=True),
            nn.Linear(LQ_DENSE, LQ_DENSE), nn.ReLU(inplace=True),
        )
        first = LQ_ENCODER_LAYERS[-1][0]  # the encoder's last width: 256 channels at H/16 x W/16
        self.input_map = nn.Parameter(torch.full((first, h // 16, w // 16), 0.1))
        blocks = []
        width = first
        for out, k, s in LQ_DECODER_LAYERS:
            blocks.append(StyleBlock(width, out, k, s, LQ_DENSE))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(width, c, 3, stride=1, padding=1, bias=False)
        _LQInit.apply(self)
        self.blocks.to(memory_format=CONV_LAYOUT)
        self.out.to(memory_format=CONV_LAYOUT)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        style = self.mapping(z)
        x = self.input_map.expand(z.shape[0], *self.input_map.shape).contiguous(memory_format=CONV_LAYOUT)
        for block in self.blocks:
            x = block(x, style)
        return self.out(x)


@dataclass(frozen=True)
class Architecture:
    """An image encoder/decoder pair: ``encoder(shape, num_latents, gaussian)``, ``decoder(shape, num_latents)``."""

    encoder: Callable[..., nn.Module]
    decoder: Callable[..., nn.Module]
    doc: str


#: image architectures by name (the ``architecture`` hyper-parameter of the image models)
ARCHITECTURES: Registry[Architecture] = Registry("architecture", "image architectures")
ARCHITECTURES.add("dlib", Architecture(ConvEncoder, DeconvDecoder, "disentanglement_lib's conv_encoder / deconv_decoder"))
ARCHITECTURES.add("lq", Architecture(LQEncoder, LQStyleDecoder, "the latent-quantization paper's encoder and style decoder"))
DEFAULT_ARCHITECTURE = "dlib"


def get_architecture(name: str) -> Architecture:
    """The image architecture registered as ``name``; unknown names raise one line listing the known ones."""
    return ARCHITECTURES.lookup(name)


def make_encoder(observation_shape, num_latents: int, gaussian: bool = True, architecture: str = DEFAULT_ARCHITECTURE) -> nn.Module:
    """The MLP encoder for ``[F]`` observations, ``architecture``'s convolutional one for ``[C, H, W]`` images."""
    shape = check_observation_shape(observation_shape)
    arch = get_architecture(architecture)
    if len(shape) == 1:
        _check_vector_architecture(architecture)
        return MLPEncoder(shape, num_latents, gaussian)
    return arch.encoder(shape, num_latents, gaussian)


def make_decoder(observation_shape, num_latents: int, architecture: str = DEFAULT_ARCHITECTURE) -> nn.Module:
    """The decoder matching :func:`make_encoder` (returns logits)."""
    shape = check_observation_shape(observation_shape)
    arch = get_architecture(architecture)
    if len(shape) == 1:
        _check_vector_architecture(architecture)
        return MLPDecoder(shape, num_latents)
    return arch.decoder(shape, num_latents)


def _check_vector_architecture(architecture: str) -> None:
    if architecture != DEFAULT_ARCHITECTURE:
        raise UntwineError(
            f"architecture {architecture!r} is for images [C, H, W]; vector observations [F] use "
            f"disentanglement_lib's fully connected pair (architecture={DEFAULT_ARCHITECTURE})"
        )
