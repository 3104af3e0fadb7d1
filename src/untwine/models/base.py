"""The interface between models and the training loop.

A model is a ``torch.nn.Module`` that owns its encoder, decoder and objective.
The training loop (:mod:`untwine.train`) knows nothing model-specific: it calls

* ``model.make_optimizers()`` once, getting a ``dict[str, Optimizer]`` (FactorVAE
  has a second one for its discriminator); their state is checkpointed by name;
* ``model.training_step(x, step, optimizers)`` per batch: computes the loss
  terms, runs backward and steps every optimizer itself, and returns a
  ``dict[str, float]`` of loss terms (always including ``"loss"``) for logging;
* ``model.encode(x)`` for the representation (posterior mean for VAEs, the
  quantised code for QLAE) and ``model.encode_dist(x)`` for ``(mean, logvar)``
  (``logvar`` is ``None`` for deterministic encoders);
* ``model.decode(z)`` giving observations in [0, 1] (probabilities for
  Bernoulli decoders).  A model without a decoder (the factor classifier) sets
  ``has_decoder = False`` and its ``decode`` raises one line; :func:`has_decoder`
  lets reports and evaluation skip what needs one.

A *supervised* model (class attribute ``supervised = True``) is given each batch's
factors too: ``model.training_step(x, step, optimizers, factors=f)`` with ``f`` the
``[n, K]`` int64 tensor of class indices the batch was rendered from.

Hyper-parameters are plain keyword arguments named as in each model's paper;
``model.hparams`` holds the resolved values so a run can be rebuilt.

Also provided by every untwine model:

* ``model.loss_terms(x, step)``: the loss terms as tensors (what
  ``training_step`` optimises), for tests and custom loops;
* ``model.sample_latent(x)``: a sample of ``q(z|x)`` (the "sampled"
  representation); the code itself for deterministic encoders.

Randomness: models draw only from torch's global RNG on the batch's device
(reparameterisation noise, FactorVAE's permutations), so reseeding torch
reproduces a run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class DisentanglingModel(nn.Module, ABC):
    """Base class of every untwine model (see the module docstring)."""

    name: str = "model"
    #: whether :meth:`decode` maps codes back to observations
    has_decoder: bool = True
    #: whether :meth:`training_step` takes the batch's factors (``factors=``)
    supervised: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.hparams: dict = {}

    @abstractmethod
    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of the posterior; ``logvar`` is None when deterministic."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The (mean) representation ``[n, D]``."""
        return self.encode_dist(x)[0]

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Observations in [0, 1] for latent codes ``z``."""

    @abstractmethod
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers this model trains with, by name."""

    def sample_latent(self, x: torch.Tensor) -> torch.Tensor:
        """A sample of ``q(z|x)`` ``[n, D]``; the code itself when the encoder is deterministic."""
        mean, logvar = self.encode_dist(x)
        if logvar is None:
            return mean
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)

    def loss_terms(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The loss terms on batch ``x`` as scalar tensors; ``"loss"`` is what the model optimiser minimises."""
        raise NotImplementedError(f"{type(self).__name__} does not expose loss_terms")

    @abstractmethod
    def training_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        """One optimisation step on batch ``x``; returns the logged loss terms."""


def has_decoder(model) -> bool:
    """Whether ``model.decode`` maps codes back to observations (False for the factor classifier)."""
    return bool(getattr(model, "has_decoder", True)) and callable(getattr(model, "decode", None))
