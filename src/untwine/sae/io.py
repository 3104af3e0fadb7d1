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
                              b_dec [d_in], and threshold [d_sae] for jumprelu/batchtopk
                              (matching pursuit is tied: W_dec and b_dec only)

Decoder rows are the learnt dictionary in the input's units, at unit norm where the
architecture allows folding the norms: the input normalisation used in training is folded
into the weights (:meth:`SparseAutoencoder.export`).
SAELens architectures read: ``standard`` (-> relu), ``topk``, ``jumprelu``, ``batchtopk``
(its training checkpoint, ``topk_threshold``), ``matching_pursuit`` (-> mp); TopK and
BatchTopK files saved with ``rescale_acts_by_decoder_norm`` have the decoder norms folded
in on loading.  Encoding and decoding follow SAELens's for every setting of the keys read
(:mod:`untwine.sae.saelens_keys`); any other key with a non-default value is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from untwine.errors import UntwineError
from untwine.files import atomic_write_bytes, read_json, write_json
from untwine.sae.base import SparseAutoencoder
from untwine.sae.registry import ARCHITECTURES, get_architecture
from untwine.sae.saelens_keys import cfg_value, check_cfg
from untwine.train.checkpoint import sha256

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"

#: SAELens architecture -> untwine architecture
FROM_SAELENS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "batchtopk", "matching_pursuit": "mp", "top_afa": "top_afa"}


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


def _hparams_from_saelens(arch: str, sl_arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The hyper-parameters SAELens's keys fix (they win over the ``untwine`` block: SAELens
    encodes with them)."""
    if arch in ("topk", "top_afa"):
        return {"k": int(cfg["k"])}
    if arch == "mp":
        it = cfg_value(cfg, sl_arch, "max_iterations")
        return {
            "k": int(it) if it is not None else int(cfg["d_in"]),
            "residual_threshold": float(cfg_value(cfg, sl_arch, "residual_threshold")),
            "stop_on_duplicate_support": bool(cfg_value(cfg, sl_arch, "stop_on_duplicate_support")),
        }
    if arch == "batchtopk" and sl_arch == "batchtopk":
        return {"k": max(1, round(float(cfg_value(cfg, sl_arch, "k"))))}
    return {}


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


def _fold_decoder_norms(tensors: dict[str, torch.Tensor]) -> None:
    """SAELens's ``rescale_acts_by_decoder_norm``: codes ``pre_i * ||d_i||`` decoded by
    ``d_i / ||d_i||``; folded into ``W_enc``, ``b_enc``, ``W_dec`` as SAELens's own
    inference export does (thresholds compare with the folded pre-activations, unchanged)."""
    n = tensors["W_dec"].float().norm(dim=-1).clamp_min(1e-8)
    tensors["b_enc"] = tensors["b_enc"].float() * n
    tensors["W_dec"] = tensors["W_dec"].float() / n[:, None]
    tensors["W_enc"] = tensors["W_enc"].float() * n[None, :]


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
    if sl_arch not in FROM_SAELENS:
        raise UntwineError(f"{d}: architecture {sl_arch!r} is not supported (untwine reads: {', '.join(FROM_SAELENS)})")
    check_cfg(cfg, sl_arch, str(d))
    ublock = cfg.get("untwine") or {}
    arch = ublock.get("architecture") or FROM_SAELENS[sl_arch]
    if arch not in ARCHITECTURES or (ublock.get("architecture") and get_architecture(arch).saelens_architecture != sl_arch):
        raise UntwineError(f"{d}: cfg.json's untwine architecture {arch!r} does not match its architecture {sl_arch!r}")
    cls = get_architecture(arch)
    tensors = _read_weights(d, ublock)
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    if "topk_threshold" in tensors and "threshold" not in tensors:
        # a BatchTopK training checkpoint: SAELens exports it as JumpReLU with this threshold everywhere
        tensors["threshold"] = torch.full((d_sae,), float(tensors.pop("topk_threshold").reshape(-1)[0]))
    if arch == "mp":
        tensors.pop("W_enc", None)
        tensors.pop("b_enc", None)
    expect = {"W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if cls.has_encoder:
        expect.update({"W_enc": (d_in, d_sae), "b_enc": (d_sae,)})
    if arch in ("jumprelu", "batchtopk"):
        expect["threshold"] = (d_sae,)
    for name, shape in expect.items():
        if name not in tensors:
            raise UntwineError(f"{d / WEIGHTS}: missing tensor {name!r}")
        if tuple(tensors[name].shape) != shape:
            raise UntwineError(f"{d / WEIGHTS}: {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
    if sl_arch in ("topk", "batchtopk") and cfg_value(cfg, sl_arch, "rescale_acts_by_decoder_norm"):
        _fold_decoder_norms(tensors)
    hp = dict(ublock.get("hparams") or {})
    hp.update(_hparams_from_saelens(arch, sl_arch, cfg))
    hp.pop("threshold", None)
    hp["center_input"] = bool(cfg_value(cfg, sl_arch, "apply_b_dec_to_input"))
    module = cls(d_in, d_sae, [hp])
    module.load_exported({k: v.float() for k, v in tensors.items()})
    return module.to(device).eval()
