"""Encoding activations with a saved SAE, in chunks, straight into a ``.npy`` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.sae.data import open_activations
from untwine.sae.io import load_sae
from untwine.device import resolve_device


def load_usable_sae(sae_dir, device):
    """:func:`load_sae` refusing weights that are not finite (NaN or inf codes would follow silently)."""
    try:
        sae = load_sae(sae_dir, device)
    except UntwineError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:  # a cfg.json that lies about shapes
        why = str(exc).splitlines()[0] if str(exc) else ""
        raise UntwineError(f"{sae_dir}: not a readable SAE ({type(exc).__name__}: {why})") from None
    bad = [n for n, p in sae.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise UntwineError(f"{sae_dir}: the SAE's {bad[0]} holds NaN or infinite values; its codes would be meaningless")
    return sae


def check_codes_out(out) -> Path:
    """The ``--out`` of the codes, refused in one line (before any work) when it is a folder, its
    folder is a file, or it cannot be written."""
    from untwine.files import check_output_file

    return check_output_file(out)


def encode_file(sae_dir, acts, out=None, *, device: str = "auto", batch_rows: int = 65536, key: str | None = None) -> np.ndarray | Path:
    """Dense codes ``[N, d_sae]`` (float32) of every row of ``acts``; written to ``out`` (.npy) when given."""
    dev = resolve_device(device)
    if out is not None:
        out = check_codes_out(out)
    sae = load_usable_sae(sae_dir, dev)
    source = open_activations(acts, key)
    if source.dim != sae.d_in:
        raise UntwineError(f"{source.name} has {source.dim} columns but the SAE in {sae_dir} takes d_in = {sae.d_in}")
    codes = np.empty((source.rows, sae.d_sae), dtype=np.float32) if out is None else None
    if out is not None:
        from numpy.lib.format import open_memmap

        from untwine.files import (
            cannot_write,
            remove_stray_temporaries,
            replace_file,
            temp_name,
        )

        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            remove_stray_temporaries(out.parent)  # of an encoding a kill interrupted
            tmp = temp_name(out.with_suffix(".npy"))
            codes = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(source.rows, sae.d_sae))
        except OSError as exc:
            raise cannot_write(out, exc) from None
    try:
        for a in range(0, source.rows, batch_rows):
            b = min(source.rows, a + batch_rows)
            x = torch.from_numpy(source.read(a, b)).to(dev)
            codes[a:b] = sae.encode(x).cpu().numpy()
        if out is None:
            return codes
        codes.flush()
        del codes
        replace_file(tmp, out)
        return out
    except BaseException:
        if out is not None and Path(tmp).exists():
            Path(tmp).unlink()
        raise
