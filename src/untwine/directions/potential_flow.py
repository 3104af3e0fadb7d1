"""Latent traversals as potential flows, with the wave-equation regulariser.

Reference: Song, Keller, Sebe, Welling, "Latent Traversals in Generative Models as Potential
Flows", ICML 2023 (KingJamesSong/PDETraversal, ``lib/WavePDE.py``).  ``K`` potentials
``u_k(z, t)`` (each an MLP of the latent and a sinusoidal embedding of the time step, tanh
output) move a latent by ``z <- z + grad_z u_k(z, t)``, one step per time ``t = 0, 1, ...``.
Trained together with a reconstructor that tells the ``K`` flows apart from the images of
two consecutive steps (:class:`untwine.directions.reconstructor.PairReconstructor`), on

    loss = CE(R(G(z_t), G(z_t+1)), k) + IC + PDE - CHANGE,

with ``IC = mean |grad_z u_k(z, 0)|^2`` (the initial condition), ``PDE`` the mean squared
residual of the wave equation ``u_tt - c_k^2 Laplacian_z u = 0`` (learnt speed ``c_k``; the
Laplacian is the exact trace of the Hessian) along the first ``timesteps // 2`` steps of the
flow, and ``CHANGE`` the mean squared image change of the sampled step (the reference
maximises the generator's Jacobian-vector product along the flow; untwine uses the image
difference of the step itself, which is bounded).  Adam, learning rate 1e-3.

``directions.npy`` needs one vector per flow: the mean displacement of the flow over its
``timesteps // 2`` steps from prior latents, normalised.  Ranked by image change.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.autograd import grad

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


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = max(dim // 2, 1)
    freq = torch.exp(torch.arange(half, dtype=t.dtype) * -(math.log(10000.0) / max(half - 1, 1)))
    e = t.reshape(-1, 1) * freq[None, :]
    return torch.cat([e.sin(), e.cos()], dim=1)[:, :dim]


class Potential(nn.Module):
    """``u(z, t)``: ``[n, D], [n] -> [n]``."""

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        self.dim = dim
        self.x = nn.Linear(dim, hidden)
        self.t = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.out = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.x(z)) + self.t(time_embedding(t, self.dim))).squeeze(1)


def flow_step(u: Potential, z: torch.Tensor, t: float, *, create_graph: bool = True) -> torch.Tensor:
    z = z if z.requires_grad else z.clone().requires_grad_(True)
    return grad(u(z, torch.full((len(z),), float(t))).sum(), z, create_graph=create_graph)[0]


def wave_residual(u: Potential, z: torch.Tensor, t: float, c: torch.Tensor) -> torch.Tensor:
    """Mean squared ``u_tt - c^2 * Laplacian_z u`` at ``(z, t)``."""
    z = z.detach().requires_grad_(True)
    tt = torch.full((len(z),), float(t), requires_grad=True)
    val = u(z, tt)
    u_t = grad(val.sum(), tt, create_graph=True)[0]
    u_tt = grad(u_t.sum(), tt, create_graph=True)[0]
    u_z = grad(val.sum(), z, create_graph=True)[0]
    lap = sum(grad(u_z[:, d].sum(), z, create_graph=True)[0][:, d] for d in range(z.shape[1]))
    return (u_tt - c.square() * lap).square().mean()


def potential_flow(gen: Generator, num: int, *, steps: int = 300, batch_size: int = 32, timesteps: int = 6,
                   learning_rate: float = 1e-3) -> Found:
    half = max(2, timesteps // 2)
    shape = tuple(gen.model.hparams.get("observation_shape", ())) or tuple(gen.decode(gen.sample(1)).shape[1:])
    state = torch.get_rng_state()
    torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen.gen)))
    flows = nn.ModuleList(Potential(gen.dim) for _ in range(num))
    speed = nn.Parameter(torch.ones(num))
    recon = PairReconstructor(shape, num).to(gen.device)
    torch.set_rng_state(state)
    opt = torch.optim.Adam([{"params": list(flows.parameters()) + [speed]}, {"params": recon.parameters()}],
                           lr=learning_rate)
    losses = []
    with frozen(gen.model):
        for _ in range(int(steps)):
            k = int(torch.randint(num, (1,), generator=gen.gen))
            t0 = int(torch.randint(half - 1, (1,), generator=gen.gen))
            u = flows[k]
            z = gen.sample(batch_size)
            ic = flow_step(u, z, 0).square().mean()
            pde = 0.0
            for i in range(half):
                pde = pde + wave_residual(u, z, i, speed[k])
                if i == t0:
                    z1 = z + flow_step(u, z, i)
                    z2 = z1 + flow_step(u, z1, i + 1)
                z = (z + flow_step(u, z, i)).detach()
            a, b = gen.decode(z1), gen.decode(z2)
            logits, _ = recon(a, b)
            change = (b - a).square().flatten(1).sum(1).mean() / a[0].numel()
            target = torch.full((batch_size,), k, device=logits.device)
            loss = nn.functional.cross_entropy(logits, target) + ic + pde / half - change.cpu()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    z0 = gen.sample(256)
    moves = []
    for u in flows:
        z = z0.clone()
        for i in range(half):
            z = (z + flow_step(u, z, i, create_graph=False)).detach()
        moves.append((z - z0).mean(0).double().numpy())
    moves = np.stack(moves)
    norms = np.linalg.norm(moves, axis=1)
    if np.any(norms < 1e-12):  # a flow that does not move: fall back to random unit vectors for it
        moves[norms < 1e-12] = gen.randn(int((norms < 1e-12).sum()), gen.dim).double().numpy()
    dirs = unit_rows(moves)
    order = rank_by_image_change(gen, dirs)
    return Found(dirs[order], losses=losses, info={"speeds": [float(s) for s in speed.detach()[order]],
                                                  "mean_step": [float(n) for n in (norms / half)[order]]})


register(Method("potential_flow", potential_flow,
                "learnt potentials whose gradient flows are the traversals, wave-equation regularised", learnt=True))
