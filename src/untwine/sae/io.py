"""SAEs on disk in SAELens's layout, so SAELens/SAEBench load untwine SAEs and untwine loads theirs.

A directory holds::

    cfg.json                  SAELens config: architecture, d_in, d_sae, dtype, device,
                              apply_b_dec_to_input, normalize_activations ("none"),
                              reshape_activations, metadata, the architecture's own keys
                              (k, rescale_acts_by_decoder_norm for topk; residual_threshold,
                              max_iterations, stop_on_duplicate_support for
                              matching_pursuit) and an "untwine" block (untwine's
                              architecture name, hyper-parameters and the sha256 of the
                              weights file, checked on loading; SAELens ignores the block)
    sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
                              b_dec [d_in], and the architecture's extra tensors
                              (threshold [d_sae] for jumprelu/batchtopk; matching pursuit
                              is tied: W_dec and b_dec only)

Decoder rows are the learnt dictionary in the input's units, at unit norm where the
architecture allows folding the norms: the input normalisation used in training is folded
into the weights (:meth:`SparseAutoencoder.export`).
Which class loads a folder: the one its ``untwine`` block names (it must be registered and
write the folder's SAELens architecture), else the registered class whose ``saelens_reads``
holds the SAELens architecture: ``standard`` (-> relu), ``topk``, ``jumprelu``, ``batchtopk``
(its training checkpoint, ``topk_threshold``), ``matching_pursuit`` (-> mp).  The class
supplies the rest (:mod:`untwine.sae.registry`): the keys it reads, the hyper-parameters
they fix (``saelens_hparams``), its extra tensors and their shapes, and any adaptation of
SAELens's tensors (``saelens_tensors``: TopK and BatchTopK files saved with
``rescale_acts_by_decoder_norm`` have the decoder norms folded in).  Encoding and decoding
follow SAELens's for every setting of the keys read (:mod:`untwine.sae.saelens_keys`); any
other key with a non-default value is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from untwine.errors import UntwineError
from untwine.files import atomic_write_bytes, read_json, write_json
from untwine.sae.base import SparseAutoencoder
from untwine.sae.registry import ARCHITECTURES, reader_of, saelens_read
from untwine.sae.saelens_keys import cfg_value, check_cfg
from untwine.train.checkpoint import sha256

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"

def is_sae_dir(path) -> bool:
    p = Path(path)
    return (p / CFG).is_file() and (p / WEIGHTS).is_file()


def save_sae(directory, module: SparseAutoencoder, member: int = 0, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write member ``member`` of ``module`` to ``directory`` (weights first, then ``cfg.json``), atomically."""
    from safetensors.torch import save as st_save

    from untwine import __version__

    d = Path(directory)
    tensors, arch_cfg = module.export(member)
    cfg: dict[str, Any] = {
        "architecture": module.saelens_architecture,
        "d_in": module.d_in,
        "d_sae": module.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": bool(module.center_input),
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"trained_with": f"untwine {__version__}", **(metadata or {})},
        **arch_cfg,
        "untwine": {
            "architecture": module.name,
            "hparams": module.untwine_hparams(member, float(module.input_scale)),
            "input_scale_folded": float(module.input_scale),
        },
    }
    weights = st_save(tensors)
    cfg["untwine"]["weights_sha256"] = sha256(weights)  # checked on loading; SAELens ignores the block
    atomic_write_bytes(d / WEIGHTS, weights)
    write_json(d / CFG, cfg)
    return d


def _read_weights(d: Path, ublock: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``d``'s weights file, checked against the sha256 untwine recorded (if any)."""
    from safetensors.torch import load as st_load

    raw = (d / WEIGHTS).read_bytes()
    want = ublock.get("weights_sha256")
    if want is not None:
        got = sha256(raw)
        if got != want:
            raise UntwineError(
                f"{d / WEIGHTS}: checksum mismatch (sha256 {got[:16]}..., cfg.json records {str(want)[:16]}...): "
                "the weights file is corrupt or was changed after saving"
            )
    try:
        return st_load(raw)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; report any as one line
        raise UntwineError(f"{d / WEIGHTS}: cannot read ({exc})") from None


def load_sae(directory, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load an SAE directory (untwine's or SAELens's) as a one-member module in eval mode.

    Every ``cfg.json`` key is checked (:func:`untwine.sae.saelens_keys.check_cfg`): a key
    untwine does not implement, with a non-default value, is refused in one line.
    """
    d = Path(directory)
    if not d.is_dir():
        raise UntwineError(f"SAE directory not found: {d}")
    if not (d / WEIGHTS).is_file():
        raise UntwineError(f"{d} holds no {WEIGHTS} (not an SAE directory)")
    cfg = read_json(d / CFG, what="SAE config")
    if not isinstance(cfg, dict) or "d_in" not in cfg or "d_sae" not in cfg or "architecture" not in cfg:
        raise UntwineError(f"{d / CFG}: not an SAE config (needs d_in, d_sae, architecture)")
    sl_arch = cfg["architecture"]
    ublock = cfg.get("untwine") or {}
    cls = _class_of(d, sl_arch, ublock)
    check_cfg(cfg, cls, sl_arch, str(d))
    tensors = _read_weights(d, ublock)
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    expect = cls.expected_tensors(d_in, d_sae)
    if not cls.has_encoder:  # SAELens may save an unused encoder
        tensors.pop("W_enc", None)
        tensors.pop("b_enc", None)
    core = ("W_dec", "b_dec", "W_enc", "b_enc")
    _check_shapes(d, tensors, {k: v for k, v in expect.items() if k in core})
    cls.saelens_tensors(sl_arch, cfg, tensors)
    _check_shapes(d, tensors, {k: v for k, v in expect.items() if k not in core})
    hp = dict(ublock.get("hparams") or {})
    hp.update(cls.saelens_hparams(sl_arch, cfg))
    for name in cls.extra_tensor_shapes:  # recorded for reading, held by the tensors (batchtopk's threshold)
        hp.pop(name, None)
    hp["center_input"] = bool(cfg_value(cfg, cls, sl_arch, "apply_b_dec_to_input"))
    module = cls(d_in, d_sae, [hp])
    module.load_exported({k: v.float() for k, v in tensors.items()})
    return module.to(device).eval()


def _class_of(d: Path, sl_arch, ublock: dict[str, Any]) -> type[SparseAutoencoder]:
    """The registered class that loads a folder of SAELens architecture ``sl_arch``."""
    named = ublock.get("architecture")
    if named:
        cls = ARCHITECTURES.get(named) if isinstance(named, str) else None
        if cls is None:
            raise UntwineError(f"{d}: architecture {named!r} is not registered (import the module that registers it: "
                               f"--plugin MODULE; registered: {', '.join(ARCHITECTURES)})")
        if cls.saelens_architecture != sl_arch:
            raise UntwineError(f"{d}: cfg.json's untwine architecture {named!r} does not match its architecture {sl_arch!r}")
        return cls
    cls = reader_of(sl_arch) if isinstance(sl_arch, str) else None
    if cls is None:
        raise UntwineError(f"{d}: architecture {sl_arch!r} is not supported (untwine reads: {', '.join(saelens_read())})")
    return cls


def _check_shapes(d: Path, tensors: dict[str, torch.Tensor], expect: dict[str, tuple[int, ...]]) -> None:
    for name, shape in expect.items():
        if name not in tensors:
            raise UntwineError(f"{d / WEIGHTS}: missing tensor {name!r}")
        if tuple(tensors[name].shape) != shape:
            raise UntwineError(f"{d / WEIGHTS}: {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
