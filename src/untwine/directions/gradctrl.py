"""GradCtrl: gradient-based controls from per-factor predictors on latents.

Reference: Chen, Shi, Sun, Chen, Wu, "Exploring Gradient-based Multi-directional Controls in
GANs", ECCV 2022 (zikuncshelly/GradCtrl).  A small MLP per factor (``D -> 64 -> 64 -> 1``,
ReLU) is fitted on latents labelled with the data's factors (the codes of observations
drawn from the run's dataset, labelled with their known factors as numbers in [0, 1]:
class index / (size - 1)), squared error, Adam (learning rate 1e-3), ``steps`` steps on
batches of 256.  The direction for factor ``k`` is the mean gradient ``g_k`` of its predictor
over the latents, with the dimensions most important to the other factors zeroed: for every
other factor ``j``, the ``exclude`` dimensions with the largest ``|g_j|`` (default ``ceil(D / K)``)
are zeroed in ``g_k`` unless they matter more to ``k`` than to ``j`` (relative to each
gradient's largest entry).  One direction per factor, ranked by the predictor's R^2 on the
latents (best-predicted factor first); ``info["factors"]`` names each direction's factor.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from untwine.directions.base import Found, Generator, Method, register, unit_rows
from untwine.errors import UntwineError


class FactorPredictors(nn.Module):
    """``K`` independent MLPs ``z [n, D] -> [n, K]``."""

    def __init__(self, dim: int, num_factors: int, hidden: int = 64) -> None:
        super().__init__()
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
                          nn.Linear(hidden, 1))
            for _ in range(num_factors)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(z) for net in self.nets], dim=1)


def masked_gradients(grads: np.ndarray, exclude: int) -> np.ndarray:
    """Per factor, its mean gradient with the dimensions most important to other factors zeroed."""
    g = np.abs(grads)
    rel = g / np.maximum(g.max(axis=1, keepdims=True), 1e-300)
    out = grads.copy()
    for k in range(len(grads)):
        for j in range(len(grads)):
            if j == k:
                continue
            for d in np.argsort(-g[j], kind="stable")[:exclude]:
                if rel[j, d] > rel[k, d]:
                    out[k, d] = 0.0
        if not np.any(out[k]):
            out[k] = grads[k]  # everything it uses matters more elsewhere: keep its own gradient
    return out


def gradctrl(gen: Generator, num: int, *, steps: int = 500, num_samples: int = 2000, batch_size: int = 256,
             learning_rate: float = 1e-3, exclude: int | None = None) -> Found:
    from untwine.models.encoder import ModelEncoder

    ds = gen.dataset
    if ds is None:
        raise UntwineError("gradctrl labels latents with the data's factors: the run's dataset is needed")
    sizes = np.asarray(ds.factor_sizes)
    keep = np.flatnonzero(sizes > 1)
    seed = int(torch.randint(2**31 - 1, (1,), generator=gen.gen))
    f, x = ds.sample(num_samples, np.random.default_rng(seed))
    z = torch.as_tensor(ModelEncoder(gen.model).encode(x).codes, dtype=torch.float32)
    y = torch.as_tensor(f[:, keep] / (sizes[keep] - 1), dtype=torch.float32)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    net = FactorPredictors(gen.dim, len(keep))
    torch.set_rng_state(state)
    opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
    losses = []
    for _ in range(int(steps)):
        idx = torch.randint(len(z), (batch_size,), generator=gen.gen)
        loss = (net(z[idx]) - y[idx]).square().mean(dim=0).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    zz = z.clone().requires_grad_(True)
    pred = net(zz)
    grads = np.stack([torch.autograd.grad(pred[:, k].sum(), zz, retain_graph=True)[0].mean(0).double().numpy()
                      for k in range(len(keep))])
    with torch.no_grad():
        resid = (pred.detach() - y).square().mean(0)
        r2 = (1 - resid / y.var(0).clamp_min(1e-12)).double().numpy()
    exclude = int(exclude) if exclude is not None else math.ceil(gen.dim / len(keep))
    dirs = unit_rows(masked_gradients(grads, exclude) + 0.0)
    order = np.argsort(-r2, kind="stable")[:num]
    names = [str(ds.factor_names[k]) for k in keep]
    return Found(dirs[order], losses=losses,
                 info={"factors": [names[i] for i in order], "r2": [float(r2[i]) for i in order], "exclude": exclude})


register(Method("gradctrl", gradctrl, "per-factor predictors on latents; gradient with other factors' dimensions zeroed",
                learnt=True, per_factor=True))
