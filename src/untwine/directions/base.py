"""What every direction-finding method shares: the registry, the generator and its latents.

A *method* finds ``K`` directions in the latent space of a trained generator (the decoder
of any untwine model, or the generator of the GAN models).  It is a function
``fn(gen: Generator, num: int, **options) -> Found`` registered once in :data:`METHODS`
with :func:`register`; ``untwine directions --method``, the comparison table and the
benchmark all come from that table.

:class:`Generator` wraps the model: ``decode(z)`` (images in [0, 1]), ``sample(n)``
(latents from the generator's prior, see :func:`latent_prior`), ``spread`` (the typical
size of one latent coordinate, which sets the traversal range), the first latent-to-feature
layer (:func:`first_layer`) and the run's dataset.  :class:`Found` is what a method returns:
unit directions ``[K, D]`` in the method's order, its per-step training losses (learnt
methods) and optionally the fine-tuned generator its directions belong to (Householder).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from untwine.errors import UntwineError
from untwine.registry import Registry


@dataclass
class Found:
    """A method's answer: ``directions`` ``[K, D]`` (unit rows, best first), ``losses`` (one per
    training step, learnt methods only), ``info`` (method-specific numbers for scores.json) and
    ``model`` (a changed generator the directions belong to, else None)."""

    directions: np.ndarray
    losses: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    model: Any = None


@dataclass(frozen=True)
class Method:
    """One registered method: ``name``, ``fn(gen, num, **options) -> Found``, whether it is
    trained (``learnt``), the layer it needs (``needs_layer``), a one-line ``doc`` and, when it
    gives one direction per factor, ``per_factor``; a ``baseline`` is never named the best method."""

    name: str
    fn: Callable[..., Found]
    doc: str
    learnt: bool = False
    needs_layer: bool = False
    per_factor: bool = False
    baseline: bool = False


#: method name -> :class:`Method`, in the order of the comparison table
METHODS: Registry[Method] = Registry("direction method", "methods", extra=", all")


def register(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to :data:`METHODS` (a name taken by another method is refused unless ``replace``)."""
    return METHODS.add(method.name, method, replace=replace)


# -- the generator ------------------------------------------------------------------------
def first_layer(model) -> nn.Linear:
    """The first layer of the decoder that maps the latent code to features: the first
    ``nn.Linear`` of ``model.decoder`` whose input is the latent (``decoder.fc.0`` for the
    convolutional decoder, ``decoder.net.0`` for the MLP one); one error line when there is none."""
    dec = getattr(model, "decoder", None)
    d = latent_dim(model)
    if isinstance(dec, nn.Module):
        for m in dec.modules():
            if isinstance(m, nn.Linear) or (hasattr(m, "in_features") and hasattr(m, "weight")):  # or re-parameterised
                if m.in_features == d:
                    return m
                break
    raise UntwineError(
        f"model {getattr(model, 'name', type(model).__name__)!r}: its decoder has no linear first layer taking the "
        f"{d}-dimensional latent (needed by this method)"
    )


def latent_dim(model) -> int:
    d = getattr(model, "num_latents", None)
    if not isinstance(d, int):
        raise UntwineError(f"model {type(model).__name__} does not declare num_latents")
    return d


def replace_module(root: nn.Module, target: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``target`` sits inside ``root``."""
    for name, mod in root.named_modules():
        for child_name, child in mod.named_children():
            if child is target:
                setattr(mod, child_name, new)
                return
    raise UntwineError("layer to replace not found in the model")


def latent_prior(model, dataset=None):
    """``(kind, sample(n, gen) -> tensor)``: the distribution latents are drawn from.

    * models with ``sample_prior`` (the GANs): their own prior;
    * models with a per-latent scalar codebook (QLAE): each coordinate a uniformly drawn
      codebook value;
    * Gaussian encoders (the VAE family): ``N(0, I)``;
    * otherwise (deterministic codes, e.g. an AE): the codes of observations drawn from
      ``dataset`` (the aggregate posterior).
    """
    from untwine.models.codebooks import codebook_values

    d = latent_dim(model)
    if hasattr(model, "sample_prior"):
        return "prior", lambda n, g: model.sample_prior(n, g, device="cpu").detach().cpu()
    cb = codebook_values(model)
    if cb is not None:
        values = torch.as_tensor(cb, dtype=torch.float32)

        def from_codebook(n, g):
            idx = torch.randint(values.shape[1], (n, d), generator=g)
            return torch.gather(values.expand(n, -1, -1), 2, idx[:, :, None]).squeeze(2)

        return "codebook", from_codebook
    heads = getattr(getattr(model, "encoder", None), "heads", None)
    if getattr(model, "gaussian", False) or getattr(heads, "logvar", None) is not None:
        return "gaussian", lambda n, g: torch.randn(n, d, generator=g)
    if dataset is None:
        raise UntwineError("a deterministic encoder's latents are drawn from data: give the dataset")
    from untwine.models.encoder import ModelEncoder

    def from_data(n, g):
        seed = int(torch.randint(2**31 - 1, (1,), generator=g))
        _, x = dataset.sample(n, np.random.default_rng(seed))
        return torch.as_tensor(ModelEncoder(model).encode(x).codes, dtype=torch.float32)

    return "codes", from_data


class Generator:
    """A trained model seen as a generator (see the module docstring)."""

    def __init__(self, model, dataset=None, *, seed: int = 0, device="cpu") -> None:
        from untwine.models.base import has_decoder

        if not has_decoder(model):
            raise UntwineError(f"{getattr(model, 'name', 'this model')} has no decoder, so it is no generator: "
                               "directions need a model that maps codes to images")
        self.model = model
        self.dataset = dataset
        self.device = torch.device(device)
        self.dim = latent_dim(model)
        self.kind, self._sample = latent_prior(model, dataset)
        self.gen = torch.Generator().manual_seed(int(seed))
        probe = self.sample(1000)
        #: typical size of one coordinate: the root mean variance of the prior's coordinates
        self.spread = float(probe.var(dim=0).mean().sqrt().clamp_min(1e-3))

    def sample(self, n: int) -> torch.Tensor:
        """``n`` latents ``[n, D]`` (CPU float32) from the prior (see :func:`latent_prior`)."""
        return self._sample(int(n), self.gen).float()

    def randn(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, generator=self.gen)

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] of latents ``z`` (differentiable; on the model's device)."""
        return self.model.decode(z.to(self.device))

    def layer(self) -> nn.Linear:
        return first_layer(self.model)

    def copy(self) -> Generator:
        """A generator over a deep copy of the model (for methods that change it)."""
        other = copy.copy(self)
        other.model = copy.deepcopy(self.model)
        return other


# -- helpers shared by the methods ---------------------------------------------------------------
def unit_rows(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(n < 1e-12):
        raise UntwineError("a method returned a zero direction")
    return a / n


def frozen(model):
    """Context: the model's parameters need no gradients (restored afterwards)."""
    return _Frozen(model)


class _Frozen:
    def __init__(self, model) -> None:
        self.model = model

    def __enter__(self):
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self.flags:
            p.requires_grad_(False)
        self.was_training = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for p, f in self.flags:
            p.requires_grad_(f)
        self.model.train(self.was_training)


@torch.no_grad()
def rank_by_image_change(gen: Generator, directions: np.ndarray, *, num_seeds: int = 64) -> np.ndarray:
    """Order of ``directions`` by the mean squared image change of a step of ``spread`` along
    each (largest first): the rank learnt methods, which have none of their own, report."""
    z = gen.sample(num_seeds)
    base = gen.decode(z)
    change = []
    for d in np.asarray(directions, dtype=np.float32):
        moved = gen.decode(z + gen.spread * torch.from_numpy(d))
        change.append(float((moved - base).square().flatten(1).sum(1).mean()))
    return np.argsort(-np.asarray(change), kind="stable")


def check_num(gen: Generator, num: int, method: Method, num_factors: int | None = None) -> int:
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise UntwineError(f"--num must be a positive integer, got {num!r}")
    if num > gen.dim:
        raise UntwineError(f"--num {num}: the generator's latent space has only {gen.dim} dimensions")
    if method.per_factor and num_factors is not None and num > num_factors:
        raise UntwineError(
            f"--num {num}: method {method.name} gives one direction per factor and the data has {num_factors} factors"
        )
    return int(num)
