"""``sines``: synthetic univariate time series with known factors, generated on the fly.

A built-in ground-truth dataset for time-series disentanglement, untwine's own design
(no published counterpart; used to score DTS, Li et al., "Learning Disentangled
Representations for Time Series", arXiv:2105.08179, 2021, with every ground-truth
metric).  Every series has ``length`` (default 128)
points at times ``t_i = i / length`` and is built from six factors on a full grid
(last factor varying fastest, as every untwine grid dataset):

=============  ======  ==============================================================
factor         values  meaning
=============  ======  ==============================================================
frequency      4       cycles per window: 1, 2, 3, 4
amplitude      4       0.25, 0.5, 0.75, 1.0
phase          4       0, pi/2, pi, 3 pi/2 (radians)
trend          3       slope of a linear trend over the window: -0.5, 0, 0.5
waveform       3       sine, square, sawtooth
noise          3       standard deviation of additive Gaussian noise: 0, 0.05, 0.1
=============  ======  ==============================================================

The raw signal is ``s(t) = amplitude * w(u) + trend * (t - 1/2) + noise * e(t)`` with
``u = frac(frequency * t + phase / 2 pi)`` the cycle position and ``w`` the waveform:
``sin(2 pi u)`` (sine), ``+1`` for ``u < 1/2`` else ``-1`` (square) and ``2 u - 1``
(sawtooth).  All waveforms have range [-1, 1] and the same cycle, so frequency and
phase mean the same thing for each.

**Scaling to [0, 1]** (so the same Gaussian reconstruction as for images applies): one
*fixed* affine map for every series, ``x = clip(1/2 + s / 3, 0, 1)``.  It is not a
per-series min/max normalisation, which would erase the amplitude and trend factors.
The noise-free signal has ``|s| <= 1.25``, i.e. ``x`` in [0.083, 0.917]; only
noise tails beyond about 2.5 sigma at the largest noise level are clipped.

**Noise** is deterministic: ``e`` is a standard-normal pattern drawn from
``np.random.Generator(np.random.SFC64([seed, cell]))`` where ``cell`` is the grid index
of the five *other* factors.  Every grid cell is therefore one fixed series (as in a
file, so interventional metrics can look series up) and the noise factor is a pure
scale of one pattern: ``x(noise=k) - x(noise=0)`` is proportional to the noise level
wherever nothing is clipped.  A different ``seed`` gives another fixed draw.

``observation_shape`` is ``(1, length)`` (channels first, like images ``[C, H, W]``),
``binary`` is False.  The grid holds 4 * 4 * 4 * 3 * 3 * 3 = 1,728 series.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from untwine.data.base import GroundTruthDataset
from untwine.errors import UntwineError

FREQUENCIES = np.array([1.0, 2.0, 3.0, 4.0])
AMPLITUDES = np.array([0.25, 0.5, 0.75, 1.0])
PHASES = np.array([0.0, 0.5, 1.0, 1.5]) * math.pi
TRENDS = np.array([-0.5, 0.0, 0.5])
WAVEFORMS = ("sine", "square", "sawtooth")
NOISE_LEVELS = np.array([0.0, 0.05, 0.1])
#: raw signal s -> observation x = clip(OFFSET + s * SCALE, 0, 1)
OFFSET = 0.5
SCALE = 1.0 / 3.0


def waveform(kind, u: np.ndarray) -> np.ndarray:
    """Waveform values in [-1, 1] at cycle positions ``u`` in [0, 1); ``kind`` 0 sine, 1 square, 2 sawtooth
    (broadcasts)."""
    kind = np.asarray(kind)
    sine = np.sin(2 * math.pi * u)
    square = np.where(u < 0.5, 1.0, -1.0)
    saw = 2.0 * u - 1.0
    return np.where(kind == 0, sine, np.where(kind == 1, square, saw))


class Sines(GroundTruthDataset):
    """Synthetic series from frequency, amplitude, phase, trend, waveform and noise (see module docstring)."""

    name = "sines"
    factor_names = ("frequency", "amplitude", "phase", "trend", "waveform", "noise")
    factor_sizes = (len(FREQUENCIES), len(AMPLITUDES), len(PHASES), len(TRENDS), len(WAVEFORMS), len(NOISE_LEVELS))
    binary = False
    #: factor values per factor (waveform: 0 sine, 1 square, 2 sawtooth)
    factor_values = (FREQUENCIES, AMPLITUDES, PHASES, TRENDS, np.arange(len(WAVEFORMS)), NOISE_LEVELS)

    def __init__(self, length: int = 128, seed: int = 0) -> None:
        try:
            length = int(length)
            seed = int(seed)
        except (TypeError, ValueError):
            raise UntwineError(f"sines: length and seed must be integers, got length={length!r}, seed={seed!r}") from None
        if length < 8:
            raise UntwineError(f"sines: length must be at least 8, got {length}")
        if seed < 0:
            raise UntwineError(f"sines: seed must be non-negative, got {seed}")
        self.length = length
        self.seed = seed
        self.observation_shape = (1, length)
        self.t = np.arange(length, dtype=np.float64) / length
        self._bank: np.ndarray | None = None


    def _noise_bank(self) -> np.ndarray:
        """The noise patterns of all cells of the other five factors, ``[cells, length]`` (built once)."""
        if self._bank is None:
            cells = int(np.prod(self.factor_sizes[:-1]))
            self._bank = np.stack(
                [np.random.Generator(np.random.SFC64([self.seed, c])).standard_normal(self.length) for c in range(cells)]
            )
        return self._bank

    def noise_pattern(self, factors) -> np.ndarray:
        """The standard-normal noise pattern ``[n, length]`` of each row (keyed by the other five factors)."""
        f = self.check_factors(factors)
        sizes = np.asarray(self.factor_sizes[:-1], dtype=np.int64)
        strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])
        return self._noise_bank()[f[:, :-1] @ strides]

    def signals(self, factors) -> np.ndarray:
        """The raw (unscaled) signals ``s`` ``[n, length]`` float64."""
        f = self.check_factors(factors)
        freq = FREQUENCIES[f[:, 0]][:, None]
        amp = AMPLITUDES[f[:, 1]][:, None]
        phase = PHASES[f[:, 2]][:, None]
        trend = TRENDS[f[:, 3]][:, None]
        kind = f[:, 4][:, None]
        noise = NOISE_LEVELS[f[:, 5]][:, None]
        t = self.t[None, :]
        u = np.mod(freq * t + phase / (2 * math.pi), 1.0)
        s = amp * waveform(kind, u) + trend * (t - 0.5)
        if np.any(noise > 0):
            s = s + noise * self.noise_pattern(f)
        return s

    def observations(self, factors) -> torch.Tensor:
        """Float32 series ``[n, 1, length]`` in [0, 1] (see the module docstring for the scaling)."""
        x = np.clip(OFFSET + SCALE * self.signals(factors), 0.0, 1.0)
        return torch.from_numpy(x.astype(np.float32))[:, None, :]
