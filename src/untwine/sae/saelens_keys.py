"""The SAELens ``cfg.json`` keys untwine reads, and the check that refuses every other one.

SAELens (6.x) drops the keys its config class lacks; untwine must never drop one that
would change the codes.  Every key of a ``cfg.json`` is one of:

* *read*: untwine uses the value, within the range listed in :data:`COMMON` and the
  reading architecture's ``saelens_keys`` (a value outside it is refused);
* *no effect on the codes*: provenance (:data:`PROVENANCE`: model, hook, SAELens version,
  ...) and, in training checkpoints, training-only hyper-parameters (the architecture's
  ``saelens_training_keys``: penalty coefficients, initialisation, ...); any value is accepted;
* anything else: accepted only with a default-like value (null, false, ``"none"``, ``""``,
  an empty list or mapping), otherwise refused in one line naming the key and its value.

Keys of one architecture are unknown to another (``k`` in a ``standard`` file is refused).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from untwine.errors import UntwineError

Check = Callable[[Any], "str | None"]


def any_value(v) -> str | None:
    return None


def boolean(v) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def pos_int(v) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "must be a positive integer"


def pos_int_or_null(v) -> str | None:
    return None if v is None else pos_int(v)


def pos_number(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    return None if ok else "must be a positive number"


def nonneg_number(v) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
    return None if ok else "must be a number >= 0"


def one_of(*allowed, hint: str = "") -> Check:
    shown = " or ".join(repr(a) for a in allowed if a is not None and a is not False)

    def check(v) -> str | None:
        return None if v in allowed else f"untwine reads only {shown}{hint}"

    return check


def mapping(v) -> str | None:
    return None if isinstance(v, dict) else "must be a mapping"


_FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")

#: keys read for every architecture: key -> (SAELens's default, accepted values)
COMMON: dict[str, tuple[Any, Check]] = {
    "architecture": ("standard", any_value),  # checked against the architectures untwine reads
    "d_in": (None, pos_int),
    "d_sae": (None, pos_int),
    "dtype": ("float32", one_of(*_FLOAT_DTYPES, *(f"torch.{d}" for d in _FLOAT_DTYPES))),
    "device": ("cpu", any_value),
    "apply_b_dec_to_input": (True, boolean),
    # SAELens applies "expected_average_only_in" nowhere at inference (its scale must have been
    # folded in), "layer_norm"/"constant_norm_rescale" per row: untwine implements none of them
    "normalize_activations": ("none", one_of("none", None, False, hint="; fold the normalisation into the weights first")),
    "reshape_activations": ("none", one_of("none", hint="; hook_z SAEs read per-head activations")),
    "metadata": ({}, mapping),
    "untwine": ({}, mapping),
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


def read_keys(cls, arch: str) -> dict[str, tuple[Any, Check]]:
    """Every key untwine reads for SAELens architecture ``arch`` loaded as the SAE class ``cls``:
    key -> (default, check)."""
    return {**COMMON, **cls.saelens_keys.get(arch, {})}


def check_cfg(cfg: dict[str, Any], cls, arch: str, where: str) -> None:
    """Refuse ``cfg`` (of SAELens architecture ``arch``, loaded as ``cls``) in one line if a
    key's value is outside what untwine implements, naming the key and its value."""
    read = read_keys(cls, arch)
    quiet = set(PROVENANCE) | set(cls.saelens_training_keys.get(arch, ()))
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


def cfg_value(cfg: dict[str, Any], cls, arch: str, key: str) -> Any:
    """``cfg[key]``, or SAELens's default for ``arch`` (read as ``cls``) when the key is absent."""
    return cfg[key] if key in cfg else read_keys(cls, arch)[key][0]
