"""Factor x latent heatmaps: normalised mutual information and DCI importance.

Both matrices are taken as ``[D, K]`` (one row per latent, one column per factor) and
drawn with factors as rows and latents as columns.  Latents are reordered so that
the structure shows (:func:`order_latents`): grouped by the factor they are most
related to, in factor order, strongest first within a group, and latents that
relate to no factor (all entries below ``min_value``) last.  The original latent
index labels each column.

The matrices are computed by :mod:`untwine.metrics.matrices` (``normalized_mi``,
``dci_importance``, re-exported here); this module only orders and draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from untwine.errors import UntwineError
from untwine.metrics.matrices import dci_importance, normalized_mi  # noqa: F401  (re-exported)
from untwine.viz._images import new_figure


def order_latents(matrix, *, min_value: float = 1e-3) -> np.ndarray:
    """Column order for a ``[D, K]`` matrix: latents grouped by argmax factor (in factor
    order), strongest first in each group, then latents whose largest entry is below
    ``min_value``."""
    m = np.asarray(matrix, dtype=np.float64)
    m = np.where(np.isfinite(m), m, 0.0)
    best = m.argmax(axis=1)
    top = m.max(axis=1)
    dead = top < min_value
    key_group = np.where(dead, m.shape[1], best)
    return np.lexsort((np.arange(m.shape[0]), -top, key_group))


def heatmap_figure(
    matrix,
    factor_names: Sequence[str] | None = None,
    *,
    title: str = "",
    value_label: str = "",
    order: Sequence[int] | None = None,
    vmax: float | None = None,
    annotate: bool | None = None,
):
    """Draw a ``[D, K]`` latent x factor matrix as a heatmap (factors as rows).

    ``order`` is the latent (column) order, default :func:`order_latents`; ``vmax``
    the top of the colour scale (default 1: the shares and importances drawn here lie
    in [0, 1], and a fixed scale keeps 0.24 looking like 0.24; the matrix maximum when
    it exceeds 1);
    ``annotate`` writes values in the cells (default when the matrix is small).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise UntwineError(f"heatmap: expected a non-empty [latents, factors] matrix, got shape {m.shape}")
    d, k = m.shape
    names = list(factor_names) if factor_names is not None else [f"factor {i}" for i in range(k)]
    if len(names) != k:
        raise UntwineError(f"heatmap: {len(names)} factor names for {k} factors")
    order = np.asarray(order if order is not None else order_latents(m), dtype=int)
    shown = m[order].T  # [K, D]
    top = vmax if vmax is not None else max(float(np.nanmax(shown)), 1.0)
    if annotate is None:
        annotate = d * k <= 200
    fig = new_figure((max(4.0, 0.45 * d + 2.2), max(2.0, 0.42 * k + 1.2)))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=top, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(d))
    ax.set_xticklabels([str(int(j)) for j in order], fontsize=8)
    ax.set_yticks(range(k))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("latent (reordered by the factor it relates to most)", fontsize=8)
    if annotate:
        for i in range(k):
            for j in range(d):
                v = shown[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if v > 0.6 * top else "white")
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    if value_label:
        cb.set_label(value_label, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
