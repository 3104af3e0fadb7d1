"""The Householder projector: an orthogonal low-rank first layer, fine-tuned briefly.

Reference: Song, Sebe, Wang, "Householder Projector for Unsupervised Latent Semantics
Discovery", ICCV 2023 (KingJamesSong/HouseholderGAN).  The first latent-to-feature layer
``A`` (``[out, D]``, :func:`untwine.directions.base.first_layer`) is re-parameterised as

    A = s * Q(U)[:, :n] diag(sign_u) (Q(V) diag(sign_v))^T,   n = D,

with ``Q(U)`` (``out x out``) and ``Q(V)`` (``D x D``) products of ``n`` Householder reflections
``I - 2 v v^T / |v|^2`` (their vectors are the trainable parameters), fixed signs, and ``S``
the paper's rectangular identity with ``n`` ones scaled by one trainable number ``s``
(initialised to the mean singular value of ``A``; untwine's addition, so that the layer keeps
its overall gain).  All singular values of ``A`` are equal, so its right singular vectors,
the columns of ``Q(V)``, are orthonormal directions each moving the layer's output equally.
The reflections start from the singular vectors of the trained ``A`` (via the QR factorisation
of ``U`` and ``V``), and the whole model is fine-tuned with its own objective
(``model.training_step`` on batches of the run's data) for ``steps`` steps, by default 1% of
the run's training steps (the paper fine-tunes for about 1%), at least 20.  The directions
are the right singular vectors of the fine-tuned layer, ranked by how much they change the
image (:func:`untwine.directions.base.rank_by_image_change`), and they belong to the
fine-tuned generator, which is returned with them and used to score them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from untwine.directions.base import (
    Found,
    Generator,
    Method,
    rank_by_image_change,
    register,
    replace_module,
    unit_rows,
)
from untwine.errors import UntwineError


def reflections(vectors: torch.Tensor, m: int, n: int) -> torch.Tensor:
    """``H_1 H_2 ... H_k`` applied to the first ``n`` columns of the ``m x m`` identity: ``[m, n]``."""
    x = torch.eye(m, n, dtype=vectors.dtype, device=vectors.device)
    for v in reversed(list(vectors)):
        x = x - (2.0 / v.dot(v).clamp_min(1e-12)) * torch.outer(v, v @ x)
    return x


def householder_vectors(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reflection vectors ``[n, m]`` and signs ``[n]`` with ``reflections(v)[:, :n] * signs = q``
    for ``q`` ``[m, n]`` with orthonormal columns (from LAPACK's QR factorisation)."""
    m, n = q.shape
    a, tau = torch.geqrf(torch.as_tensor(q, dtype=torch.float64))
    vs = []
    for i in range(n):
        v = torch.zeros(m, dtype=torch.float64)
        v[i] = 1.0
        if float(tau[i]) != 0.0:
            v[i + 1:] = a[i + 1:, i]
        vs.append(v)  # tau = 0 (nothing to reflect): a sign flip of coordinate i, absorbed in the signs
    v = torch.stack(vs)
    signs = torch.sign(torch.diagonal(reflections(v, m, n).T @ torch.as_tensor(q, dtype=torch.float64)))
    return v.numpy(), signs.numpy()


class HouseholderLinear(nn.Module):
    """``y = s * U_n diag(su) (V diag(sv))^T z + b`` (see the module docstring)."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        w = layer.weight.detach().double().cpu().numpy()
        out, d = w.shape
        if out < d:
            raise UntwineError(f"householder: the first layer maps {d} latents to only {out} features")
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        vu, su = householder_vectors(u)
        vv, sv = householder_vectors(vt.T)
        dev, dt = layer.weight.device, layer.weight.dtype
        self.out_features, self.in_features = out, d
        self.u_vectors = nn.Parameter(torch.as_tensor(vu, dtype=dt, device=dev))
        self.v_vectors = nn.Parameter(torch.as_tensor(vv, dtype=dt, device=dev))
        self.register_buffer("u_signs", torch.as_tensor(su, dtype=dt, device=dev))
        self.register_buffer("v_signs", torch.as_tensor(sv, dtype=dt, device=dev))
        self.scale = nn.Parameter(torch.tensor(float(s.mean()), dtype=dt, device=dev))
        self.bias = nn.Parameter(layer.bias.detach().clone()) if layer.bias is not None else None

    def right_vectors(self) -> torch.Tensor:
        """The right singular vectors as columns ``[D, D]``."""
        return reflections(self.v_vectors, self.in_features, self.in_features) * self.v_signs

    @property
    def weight(self) -> torch.Tensor:
        left = reflections(self.u_vectors, self.out_features, self.in_features) * self.u_signs
        return self.scale * left @ self.right_vectors().T

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(z, self.weight, self.bias)


def householder(gen: Generator, num: int, *, steps: int | None = None, run_steps: int | None = None,
                batch_size: int = 64, seed: int = 0) -> Found:
    from untwine.train.trainer import draw_batch

    if gen.dataset is None:
        raise UntwineError("householder fine-tunes the model on its data: the run's dataset is needed")
    if steps is None:
        steps = max(20, round(0.01 * (run_steps or 0)))
    tuned = gen.copy()
    model = tuned.model
    layer = tuned.layer()
    proj = HouseholderLinear(layer)
    replace_module(model, layer, proj)
    for p in model.parameters():  # the whole model is fine-tuned (the run's model may come frozen)
        p.requires_grad_(True)
    model.train()
    optimizers = model.make_optimizers()
    dev = proj.scale.device
    losses = []
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        for i in range(int(steps)):
            x = draw_batch(gen.dataset, 10_000 + seed, i, batch_size).to(dev)
            terms = model.training_step(x, i, optimizers)
            losses.append(float(terms["loss"]))
    finally:
        torch.set_rng_state(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        dirs = unit_rows(proj.right_vectors().T.double().cpu().numpy())
        order = rank_by_image_change(tuned, dirs)[:num]
    return Found(dirs[order], losses=losses, model=model,
                 info={"finetune_steps": int(steps), "scale": float(proj.scale.detach())})


register(Method("householder", householder,
                "orthogonal low-rank first layer (Householder reflections), fine-tuned; right singular vectors",
                learnt=True, needs_layer=True))
