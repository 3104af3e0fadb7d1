"""Disentangling models: the VAE family, quantized-latent autoencoders, and a factor classifier.

``build_model(name, observation_shape, *, binary=False, num_factors=None, factor_sizes=None,
factor_names=None, **hparams)``
builds a model by name (see :data:`MODELS`); ``model_hparams(name)`` lists its
hyper-parameters with their defaults.  Every model implements the interface of
:class:`untwine.models.base.DisentanglingModel` and exposes ``loss_terms(x, step)``
(tensors) and ``sample_latent(x)``.  ``factor_classifier``
(:mod:`untwine.models.classifier`) is supervised: it is built with the dataset's factor
sizes and trained on the factors of each batch, and has no decoder.  ``model.hparams`` holds the resolved values,
so ``build_model(**model.hparams)`` rebuilds an identical (untrained) model.

Encoder/decoder: disentanglement_lib's 64x64 convolutional pair for images
``[C, H, W]``, its fully connected pair for vectors ``[F]``
(:mod:`untwine.models.architectures`; ``architecture="lq"`` selects the
latent-quantization paper's larger image pair).  Reconstruction:
``reconstruction="auto"`` picks the Bernoulli likelihood for every image data set,
binary or not, as disentanglement_lib's study and the latent-quantization code do,
and for vectors and series a Bernoulli likelihood for binary data and a Gaussian
(squared error) one otherwise (:mod:`untwine.models.losses`);
``reconstruction="gaussian"`` chooses the squared error explicitly.
"""

from __future__ import annotations

from untwine.errors import UntwineError
from untwine.registry import Registry
from untwine.models.ae import AE
from untwine.models.annealed_vae import AnnealedVAE
from untwine.models.base import DisentanglingModel, has_decoder
from untwine.models.beta_tcvae import BetaTCVAE
from untwine.models.classifier import CLASSIFIER_MODELS, FactorClassifier
from untwine.models.common import RESERVED, AutoencoderModel
from untwine.models.dip_vae import DIPVAEI, DIPVAEII
from untwine.models.dts import SEQUENCE_MODELS
from untwine.models.factor_vae import FactorVAE
from untwine.models.infowgan import InfoWGANGP, QLInfoWGANGP
from untwine.models.qlae import QLAE
from untwine.models.vae import VAE, BetaVAE

MODELS: Registry[type[AutoencoderModel]] = Registry("model")
MODELS.update({
    "ae": AE,
    "vae": VAE,
    "beta_vae": BetaVAE,
    "annealed_vae": AnnealedVAE,
    "factor_vae": FactorVAE,
    "beta_tcvae": BetaTCVAE,
    "dip_vae_i": DIPVAEI,
    "dip_vae_ii": DIPVAEII,
    "qlae": QLAE,
    # GANs of the latent-quantization paper (untwine.models.infowgan)
    "infowgan_gp": InfoWGANGP,
    "qlinfowgan_gp": QLInfoWGANGP,
    # time series (observation shape [C, T]): sequence VAEs and DTS
    **SEQUENCE_MODELS,
    # supervised: one softmax head per factor, no decoder (untwine.models.classifier)
    **CLASSIFIER_MODELS,
})


def get_model_class(name: str) -> type[AutoencoderModel]:
    """The class registered under ``name``; unknown names raise one line listing the known ones."""
    return MODELS.lookup(name)


def model_hparams(name: str) -> dict:
    """Hyper-parameters of model ``name`` with their defaults (None: resolved when the model is built)."""
    return {k: h.default for k, h in get_model_class(name).HPARAMS.items()}


def model_hparam_docs(name: str) -> dict[str, str]:
    """One-line description of each hyper-parameter of model ``name``."""
    return {k: h.doc for k, h in get_model_class(name).HPARAMS.items()}


def build_model(
    name: str, observation_shape, *, binary: bool = False, num_factors: int | None = None,
    factor_sizes=None, factor_names=None, **hparams
) -> DisentanglingModel:
    """Build model ``name`` for observations of ``observation_shape`` (``[C, H, W]`` or ``[F]``).

    ``binary`` selects the Bernoulli reconstruction of vectors and series under
    ``reconstruction="auto"`` (images always get it);
    ``num_factors`` sets QLAE's default latent count; ``factor_sizes`` / ``factor_names``
    (the dataset's) go to the models that use them (``uses_factors``: the factor classifier)
    and are ignored by the others.  Unknown hyper-parameters raise
    :class:`UntwineError` naming them and listing the model's hyper-parameters.
    """
    cls = get_model_class(name)
    for key in RESERVED:
        if key in hparams:
            raise UntwineError(f"{key!r} is not a hyper-parameter of model {name!r}")
    if getattr(cls, "uses_factors", False):
        hparams = {**hparams, "factor_sizes": factor_sizes, "factor_names": factor_names}
    return cls(observation_shape, binary=binary, num_factors=num_factors, **hparams)


__all__ = [
    "MODELS",
    "DisentanglingModel",
    "has_decoder",
    "build_model",
    "model_hparams",
    "model_hparam_docs",
    "get_model_class",
    "AE",
    "VAE",
    "BetaVAE",
    "AnnealedVAE",
    "FactorVAE",
    "BetaTCVAE",
    "DIPVAEI",
    "DIPVAEII",
    "QLAE",
    "FactorClassifier",
]
