"""Shared machinery of the untwine models: hyper-parameter specs and the autoencoder base classes.

Every model is built as ``Model(observation_shape, *, binary=False,
num_factors=None, **hparams)``.  Hyper-parameters are declared per class in
``HPARAMS`` (name -> :class:`HParam`); unknown names and values of the wrong
type raise :class:`~untwine.errors.UntwineError`.  The resolved values, plus
``name``, ``observation_shape``, ``binary`` and ``num_factors``, are stored in
``model.hparams`` so that ``build_model(**model.hparams)`` rebuilds the model.

Optimiser defaults are those of disentanglement_lib's study
(``unsupervised_study_v1/model_configs/shared.gin``): Adam, learning rate 1e-4,
betas 0.9 / 0.999, epsilon 1e-8; 10 latents.  (TensorFlow's Adam places epsilon
slightly differently from PyTorch's; the difference is negligible at 1e-8.)

Randomness: models draw only from torch's global RNG (``torch.randn_like`` for
the reparameterisation, ``torch.rand`` for FactorVAE's permutations), on the
device of the batch, so reseeding torch reproduces a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from untwine.errors import UntwineError
from untwine.models.architectures import (
    ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    check_observation_shape,
    make_decoder,
    make_encoder,
)
from untwine.models.base import DisentanglingModel
from untwine.models.losses import gaussian_kl, reconstruction_loss, reparameterize, resolve_reconstruction


@dataclass(frozen=True)
class HParam:
    """Declaration of one hyper-parameter: default, type, constraints and a one-line description."""

    default: Any
    kind: type
    doc: str = ""
    choices: tuple = field(default_factory=tuple)
    low: float | None = None  # inclusive lower bound
    positive: bool = False  # strictly > 0
    optional: bool = False  # None allowed

    def coerce(self, name: str, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise UntwineError(f"hyper-parameter {name}: a value is required")
        kind = self.kind
        try:
            if kind is bool:
                if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                    value = value.lower() in ("true", "1", "yes")
                elif not isinstance(value, bool):
                    raise ValueError
            elif kind is int:
                if isinstance(value, bool):
                    raise ValueError
                f = float(value)
                if not math.isfinite(f) or f != int(f):
                    raise ValueError
                value = int(f)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = str(value)
        except (TypeError, ValueError, OverflowError):
            raise UntwineError(f"hyper-parameter {name}: expected {kind.__name__}, got {value!r}") from None
        if self.choices and value not in self.choices:
            raise UntwineError(f"hyper-parameter {name}: must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.positive and value <= 0:
            raise UntwineError(f"hyper-parameter {name}: must be > 0, got {value!r}")
        if self.low is not None and value < self.low:
            raise UntwineError(f"hyper-parameter {name}: must be >= {self.low}, got {value!r}")
        return value


COMMON_HPARAMS: dict[str, HParam] = {
    "num_latents": HParam(None, int, "number of latent dimensions (None: 10)", positive=True, optional=True),
    "reconstruction": HParam(
        "auto", str,
        "auto (bernoulli for images, as disentanglement_lib and the latent-quantization code; "
        "for vectors and series bernoulli if binary, else gaussian) | bernoulli | gaussian",
        choices=("auto", "bernoulli", "gaussian"),
    ),
    "architecture": HParam(
        DEFAULT_ARCHITECTURE, str,
        "image encoder/decoder: " + " | ".join(f"{k} ({a.doc})" for k, a in ARCHITECTURES.items()),
    ),
    "learning_rate": HParam(1e-4, float, "Adam learning rate", positive=True),
    "adam_beta1": HParam(0.9, float, "Adam beta1", low=0.0),
    "adam_beta2": HParam(0.999, float, "Adam beta2", low=0.0),
    "adam_epsilon": HParam(1e-8, float, "Adam epsilon", positive=True),
}

#: keys of ``model.hparams`` that describe the data, not the model (never user hyper-parameters)
RESERVED = ("name", "observation_shape", "binary", "num_factors", "factor_sizes", "factor_names")


def resolve_hparams(cls: type, given: dict) -> dict:
    """Defaults of ``cls.HPARAMS`` overridden by ``given``, type-checked; unknown names raise."""
    spec: dict[str, HParam] = cls.HPARAMS
    unknown = [k for k in given if k not in spec]
    if unknown:
        raise UntwineError(
            f"unknown hyper-parameter {unknown[0]!r} for model {cls.name!r}; "
            f"its hyper-parameters are: {', '.join(spec)}"
        )
    return {k: h.coerce(k, given.get(k, h.default)) for k, h in spec.items()}


def model_arguments(cls, observation_shape, binary, num_factors, hparams: dict, *, check_shape=check_observation_shape):
    """The checks every model constructor starts with: ``(shape, binary, num_factors, values)``
    with the observation shape validated by ``check_shape``, ``binary`` and ``num_factors``
    coerced and the hyper-parameters resolved against ``cls.HPARAMS``."""
    shape = check_shape(observation_shape)
    if num_factors is not None:
        num_factors = HParam(None, int, positive=True, optional=True).coerce("num_factors", num_factors)
    binary = HParam(False, bool).coerce("binary", binary)
    return shape, binary, num_factors, resolve_hparams(cls, hparams)


class AutoencoderModel(DisentanglingModel):
    """An encoder/decoder pair chosen from the observation shape and ``architecture``, with a reconstruction loss.

    Subclasses set ``name``, ``HPARAMS``, ``gaussian`` (whether the encoder has a
    log-variance head) and implement :meth:`loss_terms`.
    """

    name = "autoencoder"
    HPARAMS: dict[str, HParam] = COMMON_HPARAMS
    gaussian: bool = True
    reconstruction_reduction: str = "sum"  # sum over pixels (disentanglement_lib) or per-pixel mean

    def __init__(self, observation_shape, *, binary: bool = False, num_factors: int | None = None, **hparams) -> None:
        super().__init__()
        shape, binary, num_factors, values = model_arguments(type(self), observation_shape, binary, num_factors, hparams)
        if values["num_latents"] is None:
            values["num_latents"] = self.default_num_latents(num_factors)
        values["reconstruction"] = resolve_reconstruction(
            values["reconstruction"], binary, "vector" if len(shape) == 1 else "image"
        )
        self.hparams = {
            "name": self.name,
            "observation_shape": list(shape),
            "binary": binary,
            "num_factors": num_factors,
            **values,
        }
        self.num_latents = int(values["num_latents"])
        self.observation_shape = shape
        arch = values["architecture"]
        self.encoder = make_encoder(shape, self.num_latents, gaussian=self.gaussian, architecture=arch)
        self.decoder = make_decoder(shape, self.num_latents, architecture=arch)

    # -- configuration -----------------------------------------------------------
    @classmethod
    def default_num_latents(cls, num_factors: int | None) -> int:
        return 10

    @property
    def hp(self) -> dict:
        """Alias of :attr:`hparams`."""
        return self.hparams

    # -- representation ----------------------------------------------------------
    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    def reconstruction_loss(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Batch mean of the per-sample reconstruction loss."""
        return reconstruction_loss(x, logits, self.hparams["reconstruction"], self.reconstruction_reduction).mean()

    # -- optimisation ------------------------------------------------------------
    def model_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the main optimiser (encoder and decoder)."""
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        return {
            "model": torch.optim.Adam(
                self.model_parameters(),
                lr=hp["learning_rate"],
                betas=(hp["adam_beta1"], hp["adam_beta2"]),
                eps=hp["adam_epsilon"],
            )
        }

    def training_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        terms = self.loss_terms(x, step)
        terms["loss"].backward()
        opt.step()
        return terms_to_floats(terms)


def terms_to_floats(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detach the loss terms and convert them to python floats (one device sync)."""
    names = list(terms)
    device = terms["loss"].device if isinstance(terms.get("loss"), torch.Tensor) else None
    flat = [torch.as_tensor(terms[k]).detach().float().reshape(()).to(device) for k in names]
    return dict(zip(names, torch.stack(flat).cpu().tolist()))


class GaussianVAEBase(AutoencoderModel):
    """A VAE with a diagonal-Gaussian encoder: ``loss = reconstruction + regulariser``.

    As disentanglement_lib's ``BaseVAE.model_fn``: ``z`` is sampled with the
    reparameterisation trick, the reconstruction loss is averaged over the
    batch, ``kl`` is the batch mean of ``KL(q(z|x) || N(0, I))`` summed over
    latents; subclasses give :meth:`regularizer` (default: ``kl``).
    """

    gaussian = True

    def regularizer(
        self, kl: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return kl, {}

    def loss_terms(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        mean, logvar = self.encode_dist(x)
        z = reparameterize(mean, logvar)
        recon = self.reconstruction_loss(x, self.decoder(z))
        kl = gaussian_kl(mean, logvar).mean()
        reg, extra = self.regularizer(kl, mean, logvar, z, step)
        return {"loss": recon + reg, "reconstruction": recon, "kl": kl, **extra}
