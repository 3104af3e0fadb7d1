"""SAEs on disk in SAELens's layout, so SAELens/SAEBench load untwine SAEs and untwine loads theirs.

A directory holds::

    cfg.json                  SAELens config: architecture, d_in, d_sae, dtype, device,
                              apply_b_dec_to_input, normalize_activations ("none"),
                              reshape_activations, metadata, the architecture's own keys
                              (k for topk; residual_threshold, max_iterations for
                              matching_pursuit) and an "untwine" block (untwine's
                              architecture name and hyper-parameters)
    sae_weights.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in],
                              b_dec [d_in], and threshold [d_sae] for jumprelu/batchtopk
                              (matching pursuit is tied: W_dec and b_dec only)

Decoder rows are the learnt dictionary at unit norm in the input's units: the input
normalisation used in training is folded into the weights (:meth:`SparseAutoencoder.export`).
SAELens architectures read: ``standard`` (-> relu), ``topk``, ``jumprelu``, ``batchtopk``
(its training checkpoint, ``topk_threshold``), ``matching_pursuit`` (-> mp); a TopK SAE
saved with ``rescale_acts_by_decoder_norm`` has the decoder norms folded in on loading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from untwine.errors import UntwineError
from untwine.files import atomic_write_bytes, read_json, write_json
from untwine.sae.base import SparseAutoencoder
from untwine.sae.registry import ARCHITECTURES, get_architecture

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
    atomic_write_bytes(d / WEIGHTS, st_save(tensors))
    write_json(d / CFG, cfg)
    return d


def _hparams_from_saelens(arch: str, cfg: dict[str, Any], tensors) -> dict[str, Any]:
    if arch == "topk":
        return {"k": int(cfg["k"])}
    if arch == "mp":
        it = cfg.get("max_iterations")
        return {"k": int(it) if it else int(cfg["d_in"]), "residual_threshold": float(cfg.get("residual_threshold") or 0.0)}
    if arch == "batchtopk":
        return {"k": max(1, round(float(cfg.get("k", 1))))}
    if arch == "top_afa":
        return {"k": int(cfg["k"])}
    return {}


def load_sae(directory, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load an SAE directory (untwine's or SAELens's) as a one-member module in eval mode."""
    from safetensors.torch import load_file

    d = Path(directory)
    if not d.is_dir():
        raise UntwineError(f"SAE directory not found: {d}")
    if not (d / WEIGHTS).is_file():
        raise UntwineError(f"{d} holds no {WEIGHTS} (not an SAE directory)")
    cfg = read_json(d / CFG, what="SAE config")
    if not isinstance(cfg, dict) or "d_in" not in cfg or "d_sae" not in cfg:
        raise UntwineError(f"{d / CFG}: not an SAE config (needs d_in, d_sae, architecture)")
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", None):
        raise UntwineError(f"{d}: normalize_activations {norm!r} is not supported (fold it into the weights first)")
    ublock = cfg.get("untwine") or {}
    arch = ublock.get("architecture") or FROM_SAELENS.get(cfg.get("architecture", ""))
    if arch not in ARCHITECTURES:
        raise UntwineError(f"{d}: architecture {cfg.get('architecture')!r} is not supported (untwine reads: {', '.join(FROM_SAELENS)})")
    cls = get_architecture(arch)
    try:
        tensors = load_file(str(d / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; report any as one line
        raise UntwineError(f"{d / WEIGHTS}: cannot read ({exc})") from None
    if "topk_threshold" in tensors and "threshold" not in tensors:
        tensors["threshold"] = tensors.pop("topk_threshold").reshape(-1).expand(int(cfg["d_sae"])).clone()
    if arch == "mp":
        tensors.pop("W_enc", None)
        tensors.pop("b_enc", None)
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
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
    if cfg.get("rescale_acts_by_decoder_norm"):
        # SAELens ranks pre * ||d_i|| and decodes with d_i / ||d_i||: fold the norms in (exact)
        if arch != "topk":
            raise UntwineError(f"{d}: rescale_acts_by_decoder_norm is only supported for topk")
        n = tensors["W_dec"].float().norm(dim=-1).clamp_min(1e-12)
        tensors["W_enc"] = tensors["W_enc"].float() * n[None, :]
        tensors["b_enc"] = tensors["b_enc"].float() * n
        tensors["W_dec"] = tensors["W_dec"].float() / n[:, None]
    hp = dict(ublock.get("hparams") or _hparams_from_saelens(arch, cfg, tensors))
    hp.pop("threshold", None)
    hp["center_input"] = bool(cfg.get("apply_b_dec_to_input", True))
    module = cls(d_in, d_sae, [hp])
    module.load_exported({k: v.float() for k, v in tensors.items()})
    return module.to(device).eval()
