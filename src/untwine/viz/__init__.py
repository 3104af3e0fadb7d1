"""Look inside a representation: traversals, reconstructions, heatmaps, curves, HTML report.

Every picture is a function returning an image array or a matplotlib Figure (drawn
with the Agg backend, never through pyplot's global state) plus a helper that saves
it.  :func:`untwine.viz.report.build_report` puts them all into one self-contained
HTML page.
"""

from untwine.viz._images import save_figure
from untwine.viz.curves import curves_figure, read_log
from untwine.viz.heatmaps import dci_importance, heatmap_figure, normalized_mi, order_latents
from untwine.viz.reconstructions import reconstruction_figure, reconstruction_image, save_reconstructions
from untwine.viz.report import build_report, report_html
from untwine.viz.traversal import (
    Traversal,
    codebook_values,
    make_traversal,
    save_traversal,
    traversal_figure,
    traversal_gif_frames,
    traversal_image,
)

__all__ = [
    "Traversal",
    "build_report",
    "codebook_values",
    "curves_figure",
    "dci_importance",
    "heatmap_figure",
    "make_traversal",
    "normalized_mi",
    "order_latents",
    "read_log",
    "reconstruction_figure",
    "reconstruction_image",
    "report_html",
    "save_figure",
    "save_reconstructions",
    "save_traversal",
    "traversal_figure",
    "traversal_gif_frames",
    "traversal_image",
]
