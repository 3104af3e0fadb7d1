"""Baselines every method should beat: the model's own latent axes and random orthonormal directions.

* ``axes``: the unit vectors of the latent coordinates, most active first (variance of the
  codes over drawn observations, as ``untwine traverse`` orders its rows; by index when the
  run's data is not at hand).
* ``random``: ``num`` orthonormal directions (QR of a Gaussian matrix from the seed).
"""

from __future__ import annotations

import numpy as np
import torch

from untwine.directions.base import Found, Generator, Method, register


def axes(gen: Generator, num: int, *, num_samples: int = 1000) -> Found:
    order = np.arange(gen.dim)
    info = {}
    if gen.dataset is not None:
        from untwine.metrics.activity import latent_activity
        from untwine.models.encoder import ModelEncoder

        seed = int(torch.randint(2**31 - 1, (1,), generator=gen.gen))
        _, x = gen.dataset.sample(num_samples, np.random.default_rng(seed))
        enc = ModelEncoder(gen.model).encode(x, posterior=True)
        act = latent_activity(enc.mean, enc.logvar)
        order = np.asarray(act["order"], dtype=np.int64)
        info["latents"] = [int(j) for j in order[:num]]
    return Found(np.eye(gen.dim)[order[:num]], info=info)


def random_directions(gen: Generator, num: int) -> Found:
    q, r = np.linalg.qr(gen.randn(gen.dim, gen.dim).double().numpy())
    q = q * np.sign(np.diag(r))[None, :]
    return Found(q[:, :num].T.copy())


register(Method("axes", axes, "baseline: the model's own latent axes, most active first", baseline=True))
register(Method("random", random_directions, "baseline: random orthonormal directions", baseline=True))
