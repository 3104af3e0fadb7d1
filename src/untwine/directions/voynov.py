"""Voynov & Babenko: directions learnt with a reconstructor that tells them apart.

Reference: Voynov & Babenko, "Unsupervised Discovery of Interpretable Directions in the GAN
Latent Space", ICML 2020 (anvoynov/GANLatentDiscovery).  A matrix of ``K`` directions ``A``
(``directions="unit"``: each row normalised; ``"ortho"``: orthonormal rows, from the QR
factorisation of the parameter) and a reconstructor ``R``
(:class:`untwine.directions.reconstructor.PairReconstructor`) are trained together, the
generator frozen: draw ``z`` from the prior, a direction ``k`` and a shift ``eps`` uniform in
``[-r, r]`` with ``|eps| >= r / 5`` (``r = 2 * spread``), and minimise
``CE(R_k(G(z), G(z + eps A_k)), k) + 0.25 * |R_eps - eps / r|`` (the paper's weight 0.25 on
the shift regression; the shift is predicted in units of ``r``).  Adam, learning rate 1e-3
for both (the paper's 1e-4 is for 10^5 steps; untwine's default budget is far smaller).
The method has no order of its own: directions are ranked by how much they change the image
(:func:`untwine.directions.base.rank_by_image_change`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from untwine.directions.base import (
    Found,
    Generator,
    Method,
    frozen,
    rank_by_image_change,
    register,
    unit_rows,
)
from untwine.directions.reconstructor import PairReconstructor
from untwine.errors import UntwineError

SHIFT_WEIGHT = 0.25


def direction_matrix(param: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "unit":
        return param / param.norm(dim=1, keepdim=True).clamp_min(1e-12)
    q, r = torch.linalg.qr(param.T)  # [D, K], orthonormal columns
    return (q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)).T


def voynov(gen: Generator, num: int, *, steps: int = 500, batch_size: int = 32, learning_rate: float = 1e-3,
           directions: str = "ortho") -> Found:
    if directions not in ("unit", "ortho"):
        raise UntwineError(f"voynov: directions must be unit or ortho, got {directions!r}")
    shape = tuple(gen.model.hparams.get("observation_shape", ())) or tuple(gen.decode(gen.sample(1)).shape[1:])
    param = nn.Parameter(gen.randn(num, gen.dim))
    state = torch.get_rng_state()
    torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen.gen)))
    recon = PairReconstructor(shape, num).to(gen.device)
    torch.set_rng_state(state)
    opt = torch.optim.Adam([{"params": [param]}, {"params": recon.parameters()}], lr=learning_rate)
    r = 2.0 * gen.spread
    losses, accuracy = [], []
    with frozen(gen.model):
        for _ in range(int(steps)):
            z = gen.sample(batch_size)
            k = torch.randint(num, (batch_size,), generator=gen.gen)
            eps = (gen.rand(batch_size) * 2 - 1) * r
            eps = torch.where(eps.abs() < r / 5, torch.sign(eps + 1e-12) * r / 5, eps)
            a = direction_matrix(param, directions)
            z2 = z + eps[:, None] * a[k]
            logits, shift = recon(gen.decode(z), gen.decode(z2))
            k_dev, eps_dev = k.to(logits.device), (eps / r).to(logits.device)
            loss = nn.functional.cross_entropy(logits, k_dev) + SHIFT_WEIGHT * (shift - eps_dev).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            accuracy.append(float((logits.argmax(1) == k_dev).float().mean()))
    dirs = unit_rows(direction_matrix(param.detach(), directions).numpy())
    order = rank_by_image_change(gen, dirs)
    tail = max(1, len(accuracy) // 10)
    return Found(dirs[order], losses=losses, info={"reconstructor_accuracy": float(np.mean(accuracy[-tail:])),
                                                   "directions": directions})


register(Method("voynov", voynov, "learnt directions + a reconstructor predicting which direction and how far",
                learnt=True))
