"""A generated example of (codes, factors) arrays, for demos, tests and benchmarks.

:func:`make_example_arrays` draws dSprites-like ground-truth factors (shape 3,
scale 6, orientation 40, position x 32, position y 32 classes, uniformly and
independently) and builds 10-D codes that a partially disentangled encoder
might produce: some latents follow one factor, some mix two, orientation is
encoded by a (cos, sin) pair, and the rest are nuisance latents (pure noise
and a collapsed, nearly constant one).  Every latent carries Gaussian noise.
Nothing is downloaded; the arrays depend only on ``n`` and ``seed``.
"""

from __future__ import annotations

import numpy as np

#: classes per factor of the example (dSprites: shape, scale, orientation, pos x, pos y)
EXAMPLE_FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
#: names of the example factors
EXAMPLE_FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
#: number of latents of the example codes
EXAMPLE_NUM_LATENTS = 10


def make_example_arrays(n: int = 15000, seed: int = 0, *, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(codes [n, 10] float64, factors [n, 5] int64)`` of the generated example.

    Latents: 0 shape, 1 scale, 2-3 cos/sin of orientation, 4 pos x,
    5 pos y, 6 a mix of scale and pos x, 7 a mix of pos x and pos y,
    8 pure noise, 9 collapsed (nearly constant).
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    rng = np.random.default_rng(seed)
    sizes = np.asarray(EXAMPLE_FACTOR_SIZES)
    factors = rng.integers(0, sizes, size=(n, len(sizes))).astype(np.int64)
    v = factors / (sizes - 1.0)  # each factor scaled to [0, 1]
    angle = 2.0 * np.pi * factors[:, 2] / sizes[2]

    z = np.empty((n, EXAMPLE_NUM_LATENTS))
    z[:, 0] = np.array([-1.0, 0.2, 1.0])[factors[:, 0]]  # shape, unevenly spaced
    z[:, 1] = 2.0 * v[:, 1] - 1.0  # scale
    z[:, 2] = np.cos(angle)  # orientation, as a point on the circle
    z[:, 3] = np.sin(angle)
    z[:, 4] = 2.0 * v[:, 3] - 1.0  # position x
    z[:, 5] = np.tanh(3.0 * (v[:, 4] - 0.5))  # position y, non-linearly
    z[:, 6] = 0.7 * (2.0 * v[:, 1] - 1.0) + 0.5 * (2.0 * v[:, 3] - 1.0)  # scale + pos x
    z[:, 7] = 0.6 * (2.0 * v[:, 3] - 1.0) - 0.6 * (2.0 * v[:, 4] - 1.0)  # pos x - pos y
    z[:, 8] = 0.0  # nuisance: noise only
    z[:, 9] = 0.0  # collapsed latent
    scale = np.full(EXAMPLE_NUM_LATENTS, noise)
    scale[8] = 1.0
    scale[9] = noise * 1e-3
    z += rng.standard_normal(z.shape) * scale
    return z, factors
