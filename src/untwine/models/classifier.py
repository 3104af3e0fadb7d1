"""``factor_classifier``: a supervised network that predicts every factor of its dataset.

The stand-in for "a real vision network": trained with labels instead of a generative
objective, its hidden layers hold whatever mixture of the factors classification needs, so
untwine's metrics, sparse autoencoders and activation tools can be pointed at the inside of
a network whose inputs' generative factors are known exactly.

* Network: the image encoder of the ``architecture`` hyper-parameter (default ``"dlib"``,
  disentanglement_lib's four stride-2 ReLU convolutions and 256-unit ReLU layer, the very
  encoder trunk the VAE family trains, so supervised and unsupervised training are
  compared on one network; ``"lq"``: the latent-quantization paper's larger encoder);
  vectors ``[F]`` get the 1200-1200 ReLU MLP.  On that trunk, one linear softmax head per
  factor, ``factor_sizes[k]`` logits each (stored as one linear layer of
  ``sum(factor_sizes)`` outputs, split per factor: the same function as separate heads).
* Loss: the cross-entropy of each head against its factor's class index, averaged over
  the batch, then over the factors (``loss``); the training log also records each
  factor's batch accuracy (``acc_<factor>``) and their mean (``accuracy``).
* Codes (``encode``, what ``untwine evaluate``, reports and activations use): the
  penultimate layer, i.e. the trunk's last dense layer after its ReLU (256 values for
  ``"dlib"`` and ``"lq"``, 1200 for vectors).  Deterministic: ``encode_dist`` returns
  ``(codes, None)``.
* ``predict(x)`` gives the argmax class of every head ``[n, K]``; ``untwine evaluate``
  scores it on the held-out test rows as ``accuracy.<factor>`` and ``accuracy_mean``.
* No decoder: ``decode`` raises one line; reports skip traversals and reconstructions
  with a note, ``untwine traverse`` and ``untwine directions`` refuse the run.
* Optimiser: Adam, learning rate 1e-3 (a supervised objective tolerates the larger step
  than the VAEs' 1e-4), betas 0.9 / 0.999.

The model needs the dataset's ``factor_sizes`` and takes its ``factor_names`` (for the log's
columns; default ``0, 1, ...``): ``build_model(..., factor_sizes=..., factor_names=...)``;
:func:`untwine.train.run.build_model` passes both from the run's data description.  The
model uses no randomness.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from untwine.errors import UntwineError
from untwine.models.architectures import ARCHITECTURES, DEFAULT_ARCHITECTURE, make_encoder
from untwine.models.base import DisentanglingModel
from untwine.models.common import COMMON_HPARAMS, HParam, model_arguments, terms_to_floats

CLASSIFIER_HPARAMS: dict[str, HParam] = {
    "architecture": HParam(
        DEFAULT_ARCHITECTURE, str,
        "image trunk: " + " | ".join(f"{k} ({a.doc}: its encoder)" for k, a in ARCHITECTURES.items()),
    ),
    "learning_rate": HParam(1e-3, float, "Adam learning rate", positive=True),
    "adam_beta1": COMMON_HPARAMS["adam_beta1"],
    "adam_beta2": COMMON_HPARAMS["adam_beta2"],
    "adam_epsilon": COMMON_HPARAMS["adam_epsilon"],
}


def _check_factor_sizes(factor_sizes, num_factors) -> tuple[int, ...]:
    if factor_sizes is None:
        raise UntwineError("factor_classifier needs the dataset's factor sizes (build_model(..., factor_sizes=[...]))")
    try:
        sizes = tuple(int(s) for s in factor_sizes)
    except (TypeError, ValueError):
        raise UntwineError(f"factor_sizes must be a list of integers, got {factor_sizes!r}") from None
    if not sizes or min(sizes) < 1:
        raise UntwineError(f"factor_sizes must be a non-empty list of positive integers, got {list(sizes)}")
    if num_factors is not None and num_factors != len(sizes):
        raise UntwineError(f"num_factors {num_factors} does not match the {len(sizes)} factor sizes {list(sizes)}")
    return sizes


class FactorClassifier(DisentanglingModel):
    """A network with one softmax head per factor (see the module docstring)."""

    name = "factor_classifier"
    HPARAMS = CLASSIFIER_HPARAMS
    #: the training loop passes each batch's factors to :meth:`training_step`
    supervised = True
    #: built with the dataset's factor sizes and names (:func:`untwine.models.build_model`)
    uses_factors = True
    #: nothing maps codes back to observations
    has_decoder = False

    def __init__(self, observation_shape, *, binary: bool = False, num_factors: int | None = None,
                 factor_sizes=None, factor_names=None, **hparams) -> None:
        super().__init__()
        shape, binary, num_factors, values = model_arguments(type(self), observation_shape, binary, num_factors, hparams)
        sizes = _check_factor_sizes(factor_sizes, num_factors)
        names = [str(k) for k in range(len(sizes))] if factor_names is None else [str(n) for n in factor_names]
        if len(names) != len(sizes):
            raise UntwineError(f"{len(names)} factor names for {len(sizes)} factor sizes")
        self.hparams = {"name": self.name, "observation_shape": list(shape), "binary": binary,
                        "num_factors": len(sizes), "factor_sizes": list(sizes), "factor_names": names, **values}
        self.observation_shape = shape
        self.factor_sizes, self.factor_names = sizes, tuple(names)
        # the trunk is the architecture's encoder; its (mean) head gives every factor's logits
        self.encoder = make_encoder(shape, sum(sizes), gaussian=False, architecture=values["architecture"])
        self.num_latents = int(self.encoder.heads.mean.in_features)

    # -- forward -------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer's activations ``[n, num_latents]`` (the codes)."""
        return self.encoder.features(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x)

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each factor's logits, ``[n, factor_sizes[k]]`` per factor."""
        return list(torch.split(self.encoder.heads.mean(self.features(x)), self.factor_sizes, dim=1))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class of every factor, ``[n, K]`` int64."""
        return torch.stack([lg.argmax(dim=1) for lg in self.logits(x)], dim=1)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.features(x), None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise UntwineError(
            f"{self.name} has no decoder: it maps observations to factor predictions, nothing maps codes back to "
            "observations (no traversals, reconstructions or generator directions)"
        )

    # -- optimisation ------------------------------------------------------------------------
    def loss_terms(self, x: torch.Tensor, step: int, factors: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if factors is None:
            raise UntwineError(f"{self.name} is trained on labels: pass the batch's factors (factors=[n, K] class indices)")
        f = torch.as_tensor(factors, device=x.device).long()
        if f.ndim != 2 or f.shape != (x.shape[0], len(self.factor_sizes)):
            raise UntwineError(f"factors must have shape [{x.shape[0]}, {len(self.factor_sizes)}], got {tuple(f.shape)}")
        names = self.factor_names
        terms: dict[str, torch.Tensor] = {}
        losses, accs = [], []
        for k, lg in enumerate(self.logits(x)):
            losses.append(F.cross_entropy(lg, f[:, k]))
            accs.append((lg.detach().argmax(dim=1) == f[:, k]).float().mean())
        terms["loss"] = torch.stack(losses).mean()
        terms["accuracy"] = torch.stack(accs).mean()
        terms.update({f"acc_{n}": a for n, a in zip(names, accs)})
        return terms

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        return {"model": torch.optim.Adam(self.parameters(), lr=hp["learning_rate"],
                                          betas=(hp["adam_beta1"], hp["adam_beta2"]), eps=hp["adam_epsilon"])}

    def training_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer],
                      factors: torch.Tensor | None = None) -> dict[str, float]:
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        terms = self.loss_terms(x, step, factors)
        terms["loss"].backward()
        opt.step()
        return terms_to_floats(terms)


#: registry name -> class, merged into :data:`untwine.models.MODELS`
CLASSIFIER_MODELS: dict[str, type[FactorClassifier]] = {"factor_classifier": FactorClassifier}
