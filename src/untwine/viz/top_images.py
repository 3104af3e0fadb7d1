"""The images that most activate each latent, for the SAE report (``untwine report SAE_DIR``).

Reads the ``top_images`` record of ``evaluation.json``
(:func:`untwine.concepts.top_inputs.top_images`): for each shown latent, the dataset
flat indices of its top inputs.  The images are rendered again from the dataset the
activations folder names (procedural datasets render any index; a dataset file must still
be where it was), as one strip of thumbnails per latent; with ``positions`` pooling the
spatial cell of each row is outlined in red.  Inputs that are not images (series,
vectors) are listed by their factor values.
"""

from __future__ import annotations

import numpy as np

from untwine.errors import UntwineError
from untwine.viz._images import png_bytes, tile, to_uint8, upscale
from untwine.viz.html import esc, img

#: thumbnails narrower than this are upscaled (nearest neighbour)
MIN_THUMB = 48
OUTLINE = np.array([230, 40, 40], dtype=np.uint8)


def _outline(image: np.ndarray, position, grid) -> None:
    """Draw the border of ``position``'s cell of ``grid`` (one or two spatial axes) on ``[H, W, 3]``."""
    h, w = image.shape[:2]
    if len(grid) == 1:  # one spatial axis: a column band across the image width
        grid, position = (1, grid[0]), (0, position[0])
    gh, gw = grid[-2], grid[-1]
    y0, y1 = position[-2] * h // gh, max((position[-2] + 1) * h // gh - 1, position[-2] * h // gh)
    x0, x1 = position[-1] * w // gw, max((position[-1] + 1) * w // gw - 1, position[-1] * w // gw)
    image[y0:y1 + 1, [x0, x1]] = OUTLINE
    image[[y0, y1], x0:x1 + 1] = OUTLINE


def _strip(dataset, entries, grid) -> bytes:
    idx = np.array([e["index"] for e in entries], dtype=np.int64)
    thumbs = to_uint8(dataset.observations_at(idx))  # [n, H, W, 3]
    scale = max(1, -(-MIN_THUMB // thumbs.shape[2]))
    thumbs = np.stack([upscale(t, scale) for t in thumbs])
    if grid:
        for t, e in zip(thumbs, entries):
            if "position" in e:
                _outline(t, e["position"], grid)
    return png_bytes(tile(thumbs[None]))


def top_images_html(record: dict, nmi, factor_names) -> str:
    """One table row per latent: its factor of most normalised MI, the images of its top inputs, their codes."""
    from untwine import data
    from untwine.viz.html import table

    latents = record.get("latents") or {}
    if not latents:
        raise UntwineError("no latent is positive on any row")
    spec = record.get("dataset")
    try:
        dataset = data.load(spec)
    except UntwineError as exc:
        raise UntwineError(f"the dataset {spec!r} of the activations cannot be loaded to render the images ({exc})") from None
    shape = tuple(dataset.observation_shape)
    is_image = len(shape) == 3 and shape[0] in (1, 3)
    grid = record.get("grid")
    nmi = np.asarray(nmi, dtype=np.float64)
    rows, cells = [], []
    for j, entries in latents.items():
        k = int(nmi[int(j)].argmax())
        codes = ", ".join(f"{e['value']:.3g}" for e in entries) or "(never active)"
        if entries and is_image:
            shown = img(_strip(dataset, entries, grid), f"top images of latent {j}", cls="strip")
        elif entries:
            fac = dataset.factors_of([e["index"] for e in entries])
            at = [f" at position {tuple(e['position'])}" if "position" in e else "" for e in entries]
            shown = esc(" | ".join(", ".join(f"{n}={v}" for n, v in zip(factor_names, f)) + a for f, a in zip(fac, at)))
        else:
            shown = ""
        rows.append([f"latent {j}", factor_names[k], float(nmi[int(j), k]), codes])
        cells.append(shown)
    body = table(["latent", "factor (most MI)", "normalised MI", "codes (largest first)"], rows)
    # the images go in a last column, as HTML (table() escapes its cells)
    parts = body.split("</tr>")
    out = [parts[0] + "<th>top inputs</th></tr>"]
    out += [p + f'<td style="text-align:left">{c}</td></tr>' for p, c in zip(parts[1:], cells)]
    out.append(parts[-1])
    how = (f"rendered again from {esc(spec)} by index" + ("; the red box is the spatial position of the row" if grid else "")
           if is_image else f"inputs of {esc(spec)} (not images) listed by their factor values")
    return (f'<p class="note">For each latent of the heatmaps, the inputs with its largest codes (at most one row '
            f"per input), {how}.</p>" + "".join(out))


__all__ = ["top_images_html"]
