"""Encoders and decoders for time series ``[C, T]`` (channels first, ``T`` time steps).

Two families, chosen by the ``architecture`` hyper-parameter of the sequence models
(:mod:`untwine.models.dts`):

* ``"conv"`` (default): the 1-D analogue of disentanglement_lib's image pair
  (:mod:`untwine.models.architectures`).  :class:`Conv1dEncoder` has four stride-2
  ReLU convolutions (32, 32, 64, 64 filters, kernel 4, padding 1), a 256-unit ReLU
  layer and linear heads for the mean and log-variance.  :class:`Conv1dDecoder`
  maps ``z`` through 256 ReLU units to ``64 x ceil(T / 16)``, four stride-2
  transposed convolutions (64, 32, 32, C filters, kernel 4) double the length to
  ``16 * ceil(T / 16) >= T`` and the output is cropped to ``T``; any ``T >= 1`` works.
* ``"gru"``: :class:`GRUEncoder` reads the series with a bidirectional one-layer GRU
  (``hidden`` units per direction) and maps the two final states to the heads;
  :class:`GRUDecoder` sets the initial state of a one-layer GRU from ``z``, feeds it
  ``z`` and the time position ``t / T`` at every step, and maps each state to ``C``
  outputs (the LSTM/GRU-VAE of sequential models, whose decoder can ignore ``z``: the
  "KL vanishing" DTS counters).

Decoders return logits; the model's ``decode`` applies the sigmoid (observations are in
[0, 1]).  Weights use Glorot-uniform kernels and zero biases as the image networks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from untwine.errors import UntwineError
from untwine.models.architectures import GaussianHeads

ARCHITECTURES = ("conv", "gru")


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_sequence_shape(observation_shape) -> tuple[int, int]:
    """Validate a series shape ``[C, T]`` and return it as ``(C, T)``."""
    try:
        shape = tuple(int(s) for s in observation_shape)
    except (TypeError, ValueError):
        raise UntwineError(f"observation_shape must be a list of integers, got {observation_shape!r}") from None
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise UntwineError(
            f"observation_shape: the sequence models need series [channels, time steps] (e.g. [1, 128]), got {list(shape)}"
        )
    return shape  # type: ignore[return-value]


def _conv_length(t: int) -> int:
    for _ in range(4):  # kernel 4, stride 2, padding 1: floor(t / 2), at least 1 after padding
        t = (t + 2 - 4) // 2 + 1
    return t


class Conv1dEncoder(nn.Module):
    """``x [n, C, T] -> (mean, logvar)`` with four stride-2 1-D convolutions."""

    def __init__(self, observation_shape, num_latents: int, gaussian: bool = True) -> None:
        super().__init__()
        c, t = check_sequence_shape(observation_shape)
        self._pad = max(0, 16 - t)  # very short series are right-padded with zeros to 16 steps
        length = _conv_length(t + self._pad)
        self.features = nn.Sequential(
            nn.Conv1d(c, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv1d(32, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv1d(32, 64, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv1d(64, 64, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(64 * length, 256), nn.ReLU(inplace=True),
        )
        self.heads = GaussianHeads(256, num_latents, gaussian)
        _init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._pad:
            x = nn.functional.pad(x, (0, self._pad))
        return self.heads(self.features(x))


class Conv1dDecoder(nn.Module):
    """``z [n, D] -> logits [n, C, T]`` with four stride-2 transposed 1-D convolutions, cropped to ``T``."""

    def __init__(self, observation_shape, num_latents: int) -> None:
        super().__init__()
        c, t = check_sequence_shape(observation_shape)
        self._t = t
        self._l0 = math.ceil(t / 16)
        self.fc = nn.Sequential(
            nn.Linear(num_latents, 256), nn.ReLU(inplace=True),
            nn.Linear(256, 64 * self._l0), nn.ReLU(inplace=True),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose1d(64, 64, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(64, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(32, 32, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose1d(32, c, 4, stride=2, padding=1),
        )
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).reshape(z.shape[0], 64, self._l0)
        return self.deconv(h)[:, :, : self._t]


class GRUEncoder(nn.Module):
    """``x [n, C, T] -> (mean, logvar)`` from the final states of a bidirectional GRU."""

    def __init__(self, observation_shape, num_latents: int, gaussian: bool = True, hidden: int = 128) -> None:
        super().__init__()
        c, _ = check_sequence_shape(observation_shape)
        self.gru = nn.GRU(c, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Sequential(nn.Linear(2 * hidden, 256), nn.ReLU(inplace=True))
        self.heads = GaussianHeads(256, num_latents, gaussian)
        _init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, h = self.gru(x.transpose(1, 2))  # h: [2, n, hidden]
        return self.heads(self.fc(torch.cat([h[0], h[1]], dim=1)))


class GRUDecoder(nn.Module):
    """``z [n, D] -> logits [n, C, T]``: a GRU started from ``z``, fed ``(z, t / T)`` at each step."""

    def __init__(self, observation_shape, num_latents: int, hidden: int = 128) -> None:
        super().__init__()
        c, t = check_sequence_shape(observation_shape)
        self._t = t
        self.init = nn.Sequential(nn.Linear(num_latents, hidden), nn.Tanh())
        self.gru = nn.GRU(num_latents + 1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, c)
        self.register_buffer("_time", torch.arange(t, dtype=torch.float32) / t, persistent=False)
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        inp = torch.cat([z[:, None, :].expand(n, self._t, z.shape[1]), self._time.to(z.dtype)[None, :, None].expand(n, self._t, 1)], 2)
        h, _ = self.gru(inp, self.init(z)[None])
        return self.out(h).transpose(1, 2)


def make_sequence_encoder(observation_shape, num_latents: int, gaussian: bool = True, architecture: str = "conv") -> nn.Module:
    """The encoder of ``architecture`` (``"conv"`` or ``"gru"``) for series ``[C, T]``."""
    if architecture == "conv":
        return Conv1dEncoder(observation_shape, num_latents, gaussian)
    if architecture == "gru":
        return GRUEncoder(observation_shape, num_latents, gaussian)
    raise UntwineError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")


def make_sequence_decoder(observation_shape, num_latents: int, architecture: str = "conv") -> nn.Module:
    """The decoder matching :func:`make_sequence_encoder` (returns logits ``[n, C, T]``)."""
    if architecture == "conv":
        return Conv1dDecoder(observation_shape, num_latents)
    if architecture == "gru":
        return GRUDecoder(observation_shape, num_latents)
    raise UntwineError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
