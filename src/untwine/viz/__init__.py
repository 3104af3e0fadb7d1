"""Look inside a representation: traversals, reconstructions, heatmaps, curves, HTML report.

Every picture is a function returning an image array or a matplotlib Figure (drawn
with the Agg backend, never through pyplot's global state) plus a helper that saves
it.  :func:`untwine.viz.report.build_report` puts them all into one self-contained
HTML page.
"""

import importlib

#: public name -> submodule; imported when first used (some submodules need torch,
#: which takes seconds to import, and ``untwine.viz.report`` is imported by the CLI)
_WHERE = {
    "save_figure": "_images",
    "curves_figure": "curves",
    "read_log": "curves",
    "dci_importance": "heatmaps",
    "heatmap_figure": "heatmaps",
    "normalized_mi": "heatmaps",
    "order_latents": "heatmaps",
    "reconstruction_figure": "reconstructions",
    "reconstruction_image": "reconstructions",
    "save_reconstructions": "reconstructions",
    "build_report": "report",
    "report_html": "report",
    "Traversal": "traversal",
    "codebook_values": "traversal",
    "make_traversal": "traversal",
    "save_traversal": "traversal",
    "traversal_figure": "traversal",
    "traversal_gif_frames": "traversal",
    "traversal_image": "traversal",
}

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


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"untwine.viz.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'untwine.viz' has no attribute {name!r}")
