"""GANSpace: principal components of the first hidden layer, mapped back to latent directions.

Reference: Härkönen, Hertzmann, Lehtinen, Paris, "GANSpace: Discovering Interpretable GAN
Controls", NeurIPS 2020 (harskish/ganspace).  For generators whose latent enters through an
ordinary layer (their BigGAN case), latents ``z_i`` are sampled from the prior, the first
hidden layer's activations ``y_i = act(A z_i + b)`` are collected, PCA gives the components
``V`` (largest variance first) and coordinates ``x_i = V^T (y_i - mean)``, and the latent
basis ``U`` is the least-squares regression ``z_i ~ U x_i``: column ``j`` of ``U`` is the latent
move that produces component ``j``.  Directions are those columns, normalised, in the order
of the components' variance (``info["explained_variance_ratio"]``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from untwine.directions.base import Found, Generator, Method, register, unit_rows

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid)


def first_activation(model, layer: nn.Linear) -> nn.Module:
    """The nonlinearity applied right after ``layer`` in its ``nn.Sequential`` (identity when none)."""
    for mod in model.modules():
        if isinstance(mod, nn.Sequential):
            children = list(mod.children())
            for i, child in enumerate(children):
                if child is layer and i + 1 < len(children) and isinstance(children[i + 1], ACTIVATIONS):
                    return children[i + 1]
    return nn.Identity()


@torch.no_grad()
def pca(gen: Generator, num: int, *, num_samples: int = 5000) -> Found:
    layer = gen.layer()
    act = first_activation(gen.model, layer)
    z = gen.sample(num_samples)
    y = act(layer(z.to(layer.weight.device))).double().cpu()
    y = y - y.mean(dim=0)
    evals, evecs = torch.linalg.eigh(y.T @ y / len(y))  # the covariance's eigenvectors = PCA components
    order = torch.argsort(evals, descending=True)
    evals, comps = evals[order].clamp_min(0), evecs[:, order]
    k = min(num, int((evals > 1e-12 * max(float(evals[0]), 1e-300)).sum()))
    x = y @ comps[:, :k]  # [N, k] coordinates
    zc = z.double() - z.double().mean(dim=0)
    u = torch.linalg.lstsq(x, zc).solution.numpy()  # [k, D]: z ~ x @ u
    var = (evals / evals.sum().clamp_min(1e-300)).numpy()
    dirs = unit_rows(u)
    if k < num:  # fewer non-zero components than asked: complete with orthogonal directions
        q, _ = np.linalg.qr(np.concatenate([dirs.T, np.eye(gen.dim)], axis=1))
        dirs = np.concatenate([dirs, q[:, k:num].T], axis=0)
    return Found(dirs, info={"explained_variance_ratio": [float(v) for v in var[:k]]})


register(Method("pca", pca, "GANSpace: PCA of the first hidden layer's activations, regressed back to latents",
                needs_layer=True))
