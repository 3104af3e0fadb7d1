"""Procedural dSprites: square, ellipse and heart on the full dSprites factor grid.

Reference: Matthey, Higgins, Hassabis, Lerchner, "dSprites: Disentanglement testing
Sprites dataset" (2017, https://github.com/deepmind/dsprites-dataset), introduced with
beta-VAE (Higgins et al., ICLR 2017); variants as in disentanglement_lib's
``data/ground_truth/dsprites.py`` (``DSprites``, ``ColorDSprites``, ``NoisyDSprites``).

Factor grid (same values as the original file, last factor varying fastest):

==============  ======  ==========================================================
factor          values  meaning
==============  ======  ==========================================================
shape           3       square, ellipse, heart
scale           6       ``linspace(0.5, 1, 6)``
orientation     40      ``linspace(0, 2*pi, 40)`` (as in the original, the first
                        and last value are the same rotation)
posX            32      ``linspace(0, 1, 32)``, left to right
posY            32      ``linspace(0, 1, 32)``, top to bottom
==============  ======  ==========================================================

Geometry (pixels of the 64x64 image, pixel ``j`` covering ``[j, j+1)``, x to the
right, y downwards), calibrated against the real dataset's images: the 64x64 frames of
``dsprites.gif`` in github.com/deepmind/dsprites-dataset (traversals of every factor
from position (0, 0), pixel for pixel the dataset's images) and the figures of its
``dsprites_reloading_example.ipynb`` (samples with posX fixed to 0):

* Position: grid value ``i`` (0..31) of posX / posY puts the sprite's reference point at
  ``16 + i + round(3 i / 31) / 3`` px, within 1/6 px of the real ``16 + 32 i / 31``
  (measured: a symmetric sprite's pixel centroid at 16.00 for ``i = 0``, 48.00 for
  ``i = 31``, 17.00, 18.08, 19.17, ... in between).  The positions span 32 px;
  rounding the phase to thirds of a pixel keeps the pre-rendered windows below.
* Square: side ``19.2 * scale`` px.  The real square covers 20 x 20 pixels at
  scale 1, position 0 (10, 12, ..., 18 at the smaller scales) and about 368 pixels when
  rotated (a side of 19.1-19.3); 19.2 reproduces all of these.
* Ellipse: semi-axes ``12.6 x 7.1`` px at scale 1 (long axis horizontal at
  orientation 0); reproduces the real bounding boxes at all six scales (26 x 14
  pixels at scale 1, 12 x 8 at 0.5), which bound them to [12.5, 12.78) x [7, 7.22).
* Heart: two discs (the lobes, radius 5.1 px, centres 4.7 px left and right of the
  position and 3.95 px above it) and the triangle from the line through their centres
  (half width 9.8 px) down to the tip 9.05 px below the position, all times ``scale``;
  it rotates about the position.  Fitted to the real masks: the real heart is 19-19.2
  px wide (20 pixel columns) and 17 rows tall at scale 1, smaller in area than the
  square (222 against 400 pixels); the fit differs from the real masks by 4-16 pixels
  at the six scales, by at most 18 over a full rotation and 16 over the 32 x
  positions (the real heart's lower sides are slightly convex, the triangle's straight).
* Orientation: shapes rotate counter-clockwise on screen about the position point
  (the real heart's pixel centroid circles the position at about 2 px, as here).
* A pixel is 1 when its centre is inside the shape (the real images are binary too;
  their renderer, LOVE, is not reproduced rule for rule).

Residual uncertainty: the real sprite sizes are bounded by pixel counts to intervals
about 0.2-0.3 px wide (square side 19-19.3, ellipse semi-axes above), the heart's
outline differs as said, positions carry the 1/6 px phase rounding, and the gif shows
one position only at most scales, so sub-pixel details of the original rasterisation
at other positions may differ by a pixel column or row.  As in the real data, no
sprite is ever cut by the border.

Rendering: :func:`rasterize` is a vectorised inside-test rasteriser for arbitrary
(continuous) shape parameters.  Because positions fall on thirds of a pixel, a grid
position has only three sub-pixel phases per axis; :class:`DSprites` therefore
rasterises each of the 3*6*40*3*3 = 6,480 distinct sprite windows (30x30) once, on
first use, and an image is a copy of its window into the canvas at an integer offset.
The result is identical to rasterising every image directly (tested).

Variants (3 channels):

* ``color_dsprites``: the sprite in a colour drawn uniformly from ``[0.5, 1]^3`` (as
  disentanglement_lib's ``ColorDSprites``), background black.
* ``noisy_dsprites``: background of uniform noise in ``[0, 1]`` per pixel and channel,
  sprite white (``min(sprite + noise, 1)``, as ``NoisyDSprites``).

disentanglement_lib draws the colour / noise afresh at every call.  Here the nuisance is
a fixed pseudo-random function of ``(seed, image index)`` (colour: a counter-based
hash of the two; noise: a generator ``np.random.Generator(np.random.SFC64([seed, index]))``), so
``observations(factors)`` is deterministic, every grid cell is one fixed image (as in a
file) and the interventional metrics can look images up.  Pass ``rng`` to
``observations`` to draw fresh nuisance from a generator instead (disentanglement_lib's
behaviour); a different ``seed`` gives another fixed draw.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from untwine.data.base import GroundTruthDataset
from untwine.data.shapes3d import single_thread

SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * math.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)

IMAGE_SIZE = 64
#: sizes at scale 1, in pixels (calibrated against the real images, see the module docstring)
SQUARE_HALF_SIDE = 9.6
ELLIPSE_SEMI_AXES = (12.6, 7.1)
#: heart at scale 1: two lobes of radius r centred at (+-d, yc) and a triangle from their
#: centre line (half width d + r) down to the tip at y = t (pixels, y down, from the position)
HEART_LOBE_RADIUS = 5.1
HEART_LOBE_OFFSET = 4.7
HEART_LOBE_Y = -3.95
HEART_TIP_Y = 9.05
_WINDOW_HALF = 15  # sprite windows are 30x30, centred on the sprite
_U64 = np.uint64


def rasterize(shape, scale, angle, cx, cy, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Binary images ``[n, size, size]`` (float32) of sprites with continuous parameters.

    ``shape``: int array (0 square, 1 ellipse, 2 heart); ``scale``: multiplies the
    scale-1 sizes; ``angle``: radians, counter-clockwise on screen; ``cx``, ``cy``:
    centre in pixels (x to the right, y downwards, pixel ``j`` spans ``[j, j+1)``).
    All arguments broadcast to ``[n]``.
    """
    arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (shape, scale, angle, cx, cy)))
    shape, scale, angle, cx, cy = (torch.as_tensor(np.ascontiguousarray(a.reshape(-1))) for a in arrays)
    grid = torch.arange(size, dtype=torch.float64) + 0.5
    dx = grid[None, None, :] - cx[:, None, None]
    dy = grid[None, :, None] - cy[:, None, None]
    return _inside(shape.long(), scale, angle, dx, dy).float()


def _inside(shape: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Inside test of pixel offsets ``dx``/``dy`` (pixels, y down; ``[n|1, H|1, W|1]``) for
    sprites with parameters ``[n]``; returns a bool ``[n, H, W]``."""
    n = shape.shape[0]
    out = torch.zeros((n, max(dx.shape[1], dy.shape[1]), max(dx.shape[2], dy.shape[2])), dtype=torch.bool)
    for k in range(len(SHAPES)):
        sel = torch.nonzero(shape == k).reshape(-1)
        if sel.numel() == 0:
            continue
        c = torch.cos(angle[sel])[:, None, None]
        s = torch.sin(angle[sel])[:, None, None]
        sc = scale[sel][:, None, None]
        ddx = dx[sel] if dx.shape[0] == n and n > 1 else dx
        ddy = dy[sel] if dy.shape[0] == n and n > 1 else dy
        # rotate the pixel offsets by -angle (the screen is y-down, so "counter-clockwise
        # on screen" is a rotation by -angle in (x, y-down) coordinates) and unscale
        u = (c * ddx - s * ddy) / sc
        v = (s * ddx + c * ddy) / sc
        if k == 0:
            m = (u.abs() <= SQUARE_HALF_SIDE) & (v.abs() <= SQUARE_HALF_SIDE)
        elif k == 1:
            a, b = ELLIPSE_SEMI_AXES
            m = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        else:
            ax = u.abs()
            r, d, yc, t = HEART_LOBE_RADIUS, HEART_LOBE_OFFSET, HEART_LOBE_Y, HEART_TIP_Y
            lobes = (ax - d) ** 2 + (v - yc) ** 2 <= r * r
            m = lobes | ((v >= yc) & (v <= t) & (ax * (t - yc) <= (t - v) * (d + r)))
        out[sel] = m
    return out


def _centre_thirds(pos_index) -> np.ndarray:
    """Three times the sprite centre (pixels) of grid positions 0..31: ``48 + 3 i + round(3 i / 31)``."""
    i = np.asarray(pos_index, dtype=np.int64)
    return 48 + 3 * i + (6 * i + 31) // 62  # (6i + 31) // 62 = floor(3i/31 + 1/2), never a tie


def position_to_pixels(pos_index) -> np.ndarray:
    """Sprite centre in pixels (x or y) of posX / posY grid indices: ``16 + i + round(3 i / 31) / 3``."""
    return _centre_thirds(pos_index) / 3.0


def _centre_parts(pos_index: np.ndarray):
    """Integer pixel and sub-pixel phase (0, 1, 2 thirds) of grid positions, exactly."""
    thirds = _centre_thirds(pos_index)
    return thirds // 3, thirds % 3


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a uint64 array (a counter-based hash)."""
    x = np.asarray(x, dtype=_U64)
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def hash_uniform(seed: int, stream: int, counters: np.ndarray) -> np.ndarray:
    """Deterministic uniform floats in [0, 1) (float32) for ``counters`` under ``(seed, stream)``."""
    key = splitmix64(np.array([(seed & 0xFFFFFFFF) << 8 | (stream & 0xFF)], dtype=_U64))[0]
    with np.errstate(over="ignore"):
        h = splitmix64(np.asarray(counters, dtype=_U64) ^ key)
    return ((h >> _U64(40)).astype(np.float32)) * np.float32(2.0**-24)


class DSprites(GroundTruthDataset):
    """dSprites rendered on the fly: 737,280 binary 64x64 images (see module docstring)."""

    name = "dsprites"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = (3, 6, 40, 32, 32)
    observation_shape = (1, IMAGE_SIZE, IMAGE_SIZE)
    binary = True
    #: factor values (the original file's ``latents_values``) per factor
    factor_values = (np.arange(3), SCALES, ORIENTATIONS, POSITIONS, POSITIONS)

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._bank: torch.Tensor | None = None
        w = 2 * _WINDOW_HALF
        # windows start at pixel 16 + i + round(3i/31)//3 - 15 in [1, 33] and end by 63: a
        # canvas padded by 2 pixels on each side holds every window
        pad = IMAGE_SIZE + 4
        self._pad_side = pad
        r = torch.arange(w)
        self._window_offsets = (r[:, None] * pad + r[None, :]).reshape(-1)

    # -- sprite windows -----------------------------------------------------------
    def _windows(self) -> torch.Tensor:
        """All distinct sprite windows, ``[3, 6, 40, 3 (phase y), 3 (phase x), 26*26]``."""
        if self._bank is None:
            w = 2 * _WINDOW_HALF
            sh, sc, ori, py, px = np.meshgrid(np.arange(3), SCALES, ORIENTATIONS, np.arange(3), np.arange(3), indexing="ij")
            n = sh.size
            coords = torch.arange(w, dtype=torch.float64) + 0.5 - _WINDOW_HALF
            # window pixel j has offset j + 0.5 - 15 - phase/3 from the sprite centre
            dx = coords[None, None, :] - torch.as_tensor(px.reshape(-1) / 3.0)[:, None, None]
            dy = coords[None, :, None] - torch.as_tensor(py.reshape(-1) / 3.0)[:, None, None]
            with single_thread():
                inside = _inside(
                    torch.as_tensor(sh.reshape(-1)),
                    torch.as_tensor(sc.reshape(-1)),
                    torch.as_tensor(ori.reshape(-1)),
                    dx,
                    dy,
                )
            self._bank = inside.reshape(n, w * w).float().contiguous()
        return self._bank

    def masks(self, factors) -> torch.Tensor:
        """Binary sprite masks ``[n, 64, 64]`` (float32) for factor rows ``[n, 5]``."""
        f = self.check_factors(factors)
        n = f.shape[0]
        bank = self._windows()
        xi, xp = _centre_parts(f[:, 3])
        yi, yp = _centre_parts(f[:, 4])
        win = ((((f[:, 0] * 6 + f[:, 1]) * 40 + f[:, 2]) * 3 + yp) * 3 + xp).astype(np.int64)
        pad = self._pad_side
        off = 2  # canvas origin inside the padded canvas
        top = (yi - _WINDOW_HALF + off).astype(np.int64)
        left = (xi - _WINDOW_HALF + off).astype(np.int64)
        base = torch.as_tensor(np.arange(n, dtype=np.int64) * pad * pad + top * pad + left)
        canvas = torch.zeros(n * pad * pad, dtype=torch.float32)
        idx = (base[:, None] + self._window_offsets[None, :]).reshape(-1)
        canvas[idx] = bank[torch.as_tensor(win)].reshape(-1)
        canvas = canvas.view(n, pad, pad)
        return canvas[:, off : off + IMAGE_SIZE, off : off + IMAGE_SIZE].contiguous()


    def observations(self, factors, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Float32 ``[n, 1, 64, 64]`` binary images for factor rows ``[n, 5]``."""
        return self.masks(factors)[:, None]


class ColorDSprites(DSprites):
    """dSprites with the sprite in a colour drawn uniformly from [0.5, 1]^3 per image."""

    name = "color_dsprites"
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    binary = False

    def colors(self, factors, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sprite colour of each image, ``[n, 3]`` in [0.5, 1]."""
        f = self.check_factors(factors)
        if rng is not None:
            return rng.uniform(0.5, 1.0, size=(f.shape[0], 3)).astype(np.float32)
        idx = self.index_of(f).astype(np.uint64)
        u = hash_uniform(self.seed, 1, idx[:, None] * _U64(3) + np.arange(3, dtype=np.uint64)[None, :])
        return 0.5 + 0.5 * u

    def observations(self, factors, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Float32 ``[n, 3, 64, 64]``: the sprite mask times its colour."""
        mask = self.masks(factors)
        color = torch.as_tensor(self.colors(factors, rng))
        return mask[:, None] * color[:, :, None, None]


class NoisyDSprites(DSprites):
    """dSprites with a white sprite over a background of uniform noise."""

    name = "noisy_dsprites"
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    binary = False

    def noise(self, factors, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Background noise of each image, ``[n, 3, 64, 64]`` uniform in [0, 1)."""
        f = self.check_factors(factors)
        n = f.shape[0]
        if rng is not None:
            return torch.as_tensor(rng.random((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32))
        out = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        for i, idx in enumerate(self.index_of(f).tolist()):
            np.random.Generator(np.random.SFC64([self.seed, idx])).random(out.shape[1:], dtype=np.float32, out=out[i])
        return torch.from_numpy(out)

    def observations(self, factors, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Float32 ``[n, 3, 64, 64]``: ``min(sprite + noise, 1)``."""
        mask = self.masks(factors)
        return torch.clamp_max(self.noise(factors, rng) + mask[:, None], 1.0)
