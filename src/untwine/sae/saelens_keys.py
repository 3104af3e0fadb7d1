"""The SAELens ``cfg.json`` keys untwine reads, and the check that refuses every other one.

SAELens (6.x) drops the keys its config class lacks; untwine must never drop one that
would change the codes.  Every key of a ``cfg.json`` is one of:

* *read*: untwine uses the value, within the range listed in :data:`COMMON` and
  :data:`ARCH_KEYS` (a value outside it is refused);
* *no effect on the codes*: provenance (:data:`PROVENANCE`: model, hook, SAELens version,
  ...) and, in training checkpoints, training-only hyper-parameters
  (:data:`TRAINING_ONLY`: penalty coefficients, initialisation, ...); any value is accepted;
* anything else: accepted only with a default-like value (null, false, ``"none"``, ``""``,
  an empty list or mapping), otherwise refused in one line naming the key and its value.

Keys of one architecture are unknown to another (``k`` in a ``standard`` file is refused).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from untwine.errors import UntwineError

Check = Callable[[Any], "str | None"]


def _any(v) -> str | None:
    return None


def _bool(v) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _pos_int(v) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "must be a positive integer"


def _pos_int_or_null(v) -> str | None:
    return None if v is None else _pos_int(v)


def _pos_number(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    return None if ok else "must be a positive number"


def _nonneg_number(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return None if ok else "must be a number >= 0"


def _one_of(*allowed, hint: str = "") -> Check:
    shown = " or ".join(repr(a) for a in allowed if a is not None and a is not False)

    def check(v) -> str | None:
        return None if v in allowed else f"untwine reads only {shown}{hint}"

    return check


def _mapping(v) -> str | None:
    return None if isinstance(v, dict) else "must be a mapping"


_FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")

#: keys read for every architecture: key -> (SAELens's default, accepted values)
COMMON: dict[str, tuple[Any, Check]] = {
    "architecture": ("standard", _any),  # checked against the architectures untwine reads
    "d_in": (None, _pos_int),
    "d_sae": (None, _pos_int),
    "dtype": ("float32", _one_of(*_FLOAT_DTYPES, *(f"torch.{d}" for d in _FLOAT_DTYPES))),
    "device": ("cpu", _any),
    "apply_b_dec_to_input": (True, _bool),
    # SAELens applies "expected_average_only_in" nowhere at inference (its scale must have been
    # folded in), "layer_norm"/"constant_norm_rescale" per row: untwine implements none of them
    "normalize_activations": ("none", _one_of("none", None, False, hint="; fold the normalisation into the weights first")),
    "reshape_activations": ("none", _one_of("none", hint="; hook_z SAEs read per-head activations")),
    "metadata": ({}, _mapping),
    "untwine": ({}, _mapping),
}

#: keys each SAELens architecture adds (inference and training checkpoint): key -> (default, check)
ARCH_KEYS: dict[str, dict[str, tuple[Any, Check]]] = {
    "standard": {"activation_fn": ("relu", _one_of("relu"))},  # pre-6.0 files name their activation
    "topk": {"k": (100, _pos_int), "rescale_acts_by_decoder_norm": (False, _bool)},
    # a BatchTopK training checkpoint: k is an average count (a float), rescaling defaults to true
    "batchtopk": {"k": (100, _pos_number), "rescale_acts_by_decoder_norm": (True, _bool)},
    "jumprelu": {},
    "matching_pursuit": {
        "residual_threshold": (1e-2, _nonneg_number),
        "max_iterations": (None, _pos_int_or_null),
        "stop_on_duplicate_support": (True, _bool),
    },
    "top_afa": {"k": (None, _pos_int)},  # untwine's own
}

_TOPK_TRAINING = ("decoder_init_norm", "use_sparse_activations", "aux_loss_coefficient")
#: training-only hyper-parameters SAELens writes into checkpoints: no effect on the codes
TRAINING_ONLY: dict[str, tuple[str, ...]] = {
    "standard": ("decoder_init_norm", "l1_coefficient", "lp_norm", "l1_warm_up_steps"),
    "topk": _TOPK_TRAINING,
    "batchtopk": _TOPK_TRAINING + ("topk_threshold_lr",),
    "jumprelu": (
        "decoder_init_norm", "jumprelu_init_threshold", "jumprelu_bandwidth", "jumprelu_sparsity_loss_mode",
        "l0_coefficient", "l0_warm_up_steps", "pre_act_loss_coefficient", "jumprelu_tanh_scale",
        "jumprelu_ste_to_input", "target_l0",
    ),
    "matching_pursuit": ("decoder_init_norm",),
    "top_afa": (),
}

#: where the activations came from (SAELens's metadata keys, top-level in older files)
PROVENANCE = (
    "model_name", "model_class_name", "hook_name", "hook_point", "hook_layer", "hook_point_layer",
    "hook_head_index", "hook_point_head_index", "model_from_pretrained_kwargs", "prepend_bos",
    "exclude_special_tokens", "neuronpedia_id", "context_size", "seqpos_slice", "dataset_path",
    "dataset_trust_remote_code", "sae_lens_version", "sae_lens_training_version",
)


def _default_like(v) -> bool:
    return v is None or v is False or (isinstance(v, (str, list, dict)) and v in ("", "none", [], {}))


def read_keys(arch: str) -> dict[str, tuple[Any, Check]]:
    """Every key untwine reads for SAELens architecture ``arch``: key -> (default, check)."""
    return {**COMMON, **ARCH_KEYS.get(arch, {})}


def check_cfg(cfg: dict[str, Any], arch: str, where: str) -> None:
    """Refuse ``cfg`` (of SAELens architecture ``arch``) in one line if a key's value is
    outside what untwine implements, naming the key and its value."""
    read = read_keys(arch)
    quiet = set(PROVENANCE) | set(TRAINING_ONLY.get(arch, ()))
    for key, value in cfg.items():
        if key in read:
            why = read[key][1](value)
            if why:
                raise UntwineError(f"{where}: cfg.json key {key!r} = {value!r} is not supported ({why})")
        elif key not in quiet and not _default_like(value):
            raise UntwineError(
                f"{where}: cfg.json key {key!r} = {value!r} is not implemented by untwine for architecture {arch!r} "
                "(untwine refuses keys it does not read; see the README's SAELens section)"
            )


def cfg_value(cfg: dict[str, Any], arch: str, key: str) -> Any:
    """``cfg[key]``, or SAELens's default for ``arch`` when the key is absent."""
    return cfg[key] if key in cfg else read_keys(arch)[key][0]
