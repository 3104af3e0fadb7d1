"""Latent traversals: what each latent does to a decoded image.

Starting from the code of a seed image, one latent at a time is swept over a range of
values while the others stay fixed, and every code is decoded.  Rows are latents
(ordered by activity when an order is given, see
:func:`untwine.metrics.activity.latent_activity`), columns are the swept values.

Which values are swept, per latent:

* an explicit ``value_range=(lo, hi)`` gives ``steps`` evenly spaced values;
* otherwise, a model with a per-latent scalar codebook (QLAE) sweeps that latent's
  codebook values, in increasing order;
* otherwise a Gaussian-posterior model (VAE family) sweeps the prior's range
  ``[-2, 2]`` (:data:`DEFAULT_PRIOR_RANGE`);
* otherwise (deterministic codes, e.g. an AE) the range of that latent's codes over
  the given data (``codes``), or ``[-2, 2]`` when no data is given.

``.gif`` output shows an animation per latent, side by side, sweeping back and forth.

Time-series runs (observations ``[C, T]``) use the same choice of latents and values
(:func:`traversal_plan`) drawn as small multiples of curves by
:func:`untwine.viz.series.plot_series_traversal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from untwine._checks import check_seed
from untwine.errors import UntwineError
from untwine.models.codebooks import codebook_values  # noqa: F401  (re-exported: untwine.viz.codebook_values)
from untwine.models.encoder import ModelEncoder, decode_codes
from untwine.viz._images import new_figure, save_figure, tile, to_uint8, upscale

#: the range swept for Gaussian-prior latents when none is given
DEFAULT_PRIOR_RANGE = (-2.0, 2.0)
#: columns of a traversal when no codebook decides them
DEFAULT_STEPS = 10


@dataclass
class Traversal:
    """A traversal: ``images`` uint8 ``[L, S, H, W, 3]``, the ``latents`` (rows) and
    the ``values`` ``[L, S]`` each column sets its row's latent to, and a label per row."""

    images: np.ndarray
    latents: list[int]
    values: np.ndarray
    labels: list[str]


def encode_batches(model, x, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """``(means [N, D], logvars [N, D] or None)`` of observations ``x``: the posterior from the
    model's :class:`~untwine.models.encoder.ModelEncoder`."""
    encoded = ModelEncoder(model, batch_size=batch_size).encode(x, posterior=True)
    return encoded.mean, encoded.logvar


def check_latents(latents, num_latents: int) -> list[int]:
    """Validate latent indices against ``num_latents``; one clear line when one is unknown."""
    out = []
    for j in latents:
        try:
            jj = int(j)
        except (TypeError, ValueError):
            raise UntwineError(f"latent index {j!r} is not an integer") from None
        if isinstance(j, float) and not j.is_integer():
            raise UntwineError(f"latent index {j!r} is not an integer")
        if not 0 <= jj < num_latents:
            raise UntwineError(
                f"latent {jj} does not exist: the model has {num_latents} latents (0..{num_latents - 1})"
            )
        out.append(jj)
    if not out:
        raise UntwineError("no latents to traverse")
    return out


def traversal_values(
    model,
    latents,
    *,
    value_range=None,
    steps: int = DEFAULT_STEPS,
    gaussian: bool = True,
    codes=None,
) -> np.ndarray:
    """The values ``[L, S]`` each latent in ``latents`` is swept over (see the module docstring)."""
    latents = list(latents)
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not (np.isfinite(lo) and np.isfinite(hi)) or not lo < hi:
            raise UntwineError(f"--range must be two finite numbers LO,HI with LO < HI, got {lo},{hi}")
        if steps < 2:
            raise UntwineError(f"--steps must be at least 2, got {steps}")
        return np.tile(np.linspace(lo, hi, steps), (len(latents), 1))
    cb = codebook_values(model)
    if cb is not None:
        return cb[latents]
    if steps < 2:
        raise UntwineError(f"--steps must be at least 2, got {steps}")
    if gaussian or codes is None:
        lo, hi = DEFAULT_PRIOR_RANGE
        return np.tile(np.linspace(lo, hi, steps), (len(latents), 1))
    codes = np.asarray(codes, dtype=np.float64)
    rows = []
    for j in latents:
        lo, hi = float(codes[:, j].min()), float(codes[:, j].max())
        if hi - lo < 1e-8:
            lo, hi = lo - 1.0, hi + 1.0
        rows.append(np.linspace(lo, hi, steps))
    return np.stack(rows)


def traversal_plan(
    model,
    num_latents: int,
    *,
    latents=None,
    order=None,
    value_range=None,
    steps: int = DEFAULT_STEPS,
    gaussian: bool = True,
    codes=None,
) -> tuple[list[int], np.ndarray]:
    """``(latents, values [L, S])``: which latents a traversal shows, in which order, and the
    values each is swept over -- ``latents`` (default: all, in ``order`` when given), checked
    against ``num_latents``, and :func:`traversal_values`.  Shared by image and series traversals."""
    if latents is None:
        latents = list(order) if order is not None else list(range(num_latents))
    latents = check_latents(latents, num_latents)
    values = traversal_values(model, latents, value_range=value_range, steps=steps, gaussian=gaussian, codes=codes)
    return latents, values


def activity_labels(activity) -> dict[int, str]:
    """Row label per latent from :func:`untwine.metrics.activity.latent_activity`:
    ``"z3  KL 2.10"`` (Gaussian encoders) or ``"z3  var 0.41"`` (deterministic codes)."""
    if activity["kl"] is not None:
        return {j: f"z{j}  KL {activity['kl'][j]:.2f}" for j in range(len(activity["kl"]))}
    return {j: f"z{j}  var {activity['mean_variance'][j]:.2g}" for j in range(len(activity["mean_variance"]))}


def make_traversal(
    model,
    seed_code,
    *,
    latents=None,
    order=None,
    value_range=None,
    steps: int = DEFAULT_STEPS,
    gaussian: bool = True,
    codes=None,
    labels=None,
) -> Traversal:
    """Decode sweeps of ``latents`` (default: all, in ``order`` when given) around ``seed_code``.

    ``seed_code`` is a ``[D]`` code (e.g. the posterior mean of a seed image).  ``labels``
    optionally maps a latent index to its row label (e.g. ``"z3  KL 2.10"``).
    """
    seed = np.asarray(seed_code, dtype=np.float64).reshape(-1)
    d = seed.size
    latents, values = traversal_plan(model, d, latents=latents, order=order, value_range=value_range, steps=steps,
                                     gaussian=gaussian, codes=codes)
    s = values.shape[1]
    z = np.repeat(seed[None, None, :], len(latents), axis=0).repeat(s, axis=1)  # [L, S, D]
    for r, j in enumerate(latents):
        z[r, :, j] = values[r]
    imgs = decode_codes(model, z.reshape(-1, d))
    imgs = to_uint8(imgs).reshape(len(latents), s, *to_uint8(imgs[:1]).shape[1:])
    row_labels = [(labels or {}).get(j, f"z{j}") for j in latents]
    return Traversal(images=imgs, latents=latents, values=values, labels=row_labels)


def traversal_image(trav: Traversal, *, pad: int = 2) -> np.ndarray:
    """The traversal as one uint8 ``[H', W', 3]`` grid (rows = latents)."""
    return tile(trav.images, pad=pad)


def traversal_figure(trav: Traversal, *, title: str | None = None, cell_inches: float = 0.8):
    """A matplotlib Figure: the grid with a label per row and the swept values per column."""
    img = traversal_image(trav)
    L, S, h, w, _ = trav.images.shape
    pad = 2
    fig = new_figure((max(3.0, S * cell_inches + 1.6), max(1.5, L * cell_inches + 0.8)))
    ax = fig.add_axes([0.16, 0.06, 0.82, 0.86])
    ax.imshow(img, interpolation="nearest")
    ax.set_yticks([pad + i * (h + pad) + h / 2 for i in range(L)])
    ax.set_yticklabels(trav.labels, fontsize=8)
    shared = np.allclose(trav.values, trav.values[:1])
    ax.set_xticks([pad + j * (w + pad) + w / 2 for j in range(S)])
    if shared:
        ax.set_xticklabels([f"{v:.2g}" for v in trav.values[0]], fontsize=7)
        ax.set_xlabel("value of the traversed latent", fontsize=8)
    else:
        ax.set_xticklabels([str(j) for j in range(S)], fontsize=7)
        ax.set_xlabel("codebook value (index, increasing)", fontsize=8)
    ax.tick_params(length=0)
    for sp in ax.spines.values():
        sp.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def traversal_gif_frames(trav: Traversal, *, scale: int | None = None, pad: int = 4) -> list[np.ndarray]:
    """Frames of the animation: one panel per latent, side by side, each sweeping its values
    forward then back; the latent's label is written above its panel.  Images are enlarged
    ``scale`` times (default: to about 128 pixels, at least 2x)."""
    from PIL import Image, ImageDraw

    L, S, h, w, _ = trav.images.shape
    if scale is None:
        scale = max(2, int(round(128 / max(h, w))))
    ph, pw = h * scale, w * scale
    label_h = 14
    width = L * (pw + pad) + pad
    height = ph + label_h + 2 * pad
    header = Image.new("RGB", (width, label_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(header)
    for r, lab in enumerate(trav.labels):
        draw.text((pad + r * (pw + pad), 2), lab.split()[0], fill=(0, 0, 0))
    header = np.asarray(header)
    sweep = list(range(S)) + list(range(S - 2, 0, -1))
    frames = []
    for s in sweep:
        frame = np.full((height, width, 3), 255, dtype=np.uint8)
        frame[: label_h + pad] = header
        for r in range(L):
            x = pad + r * (pw + pad)
            frame[label_h + pad : label_h + pad + ph, x : x + pw] = upscale(trav.images[r, s], scale)
        frames.append(frame)
    return frames


def save_traversal(trav: Traversal, path, *, title: str | None = None, duration_ms: int = 120) -> Path:
    """Write a traversal: ``.gif`` as an animation, anything else as a labelled figure (PNG)."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() == ".gif":
        frames = [Image.fromarray(f) for f in traversal_gif_frames(trav)]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
        except OSError as exc:
            raise UntwineError(f"{path}: cannot write GIF ({exc.strerror or exc})") from None
        return path
    if path.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise UntwineError(f"{path}: unsupported output type {path.suffix!r}; use .png or .gif")
    return save_figure(traversal_figure(trav, title=title), path)


def traverse_run(run_dir, *, out=None, latents=None, value_range=None, steps: int = DEFAULT_STEPS, seed: int = 0,
                 num_samples: int = 1000, device: str = "cpu", dataset=None) -> Path:
    """Write the latent traversal of a trained run; returns the output path (``untwine traverse``).

    Rows are latents, most active first (average KL to the prior for Gaussian encoders,
    variance of the codes otherwise, measured on ``num_samples`` drawn observations);
    ``latents`` picks rows in the given order.  Columns sweep each latent from the code of a
    seed observation (drawn with ``seed``) over ``value_range`` or the default values (see
    the module docstring).  ``out`` (default ``RUN_DIR/traversal.png``) ending in ``.gif``
    writes an animation; runs on time series ``[C, T]`` draw one panel of overlaid curves
    per latent instead (PNG only).  ``dataset`` replaces the run's dataset.
    """
    from untwine.metrics.activity import latent_activity
    from untwine.train.run import open_run
    from untwine.viz.series import is_series, plot_series_traversal

    check_seed(seed)
    run = open_run(run_dir)
    run.require_checkpoint()
    out = Path(out) if out is not None else Path(run.path) / "traversal.png"
    if out.suffix.lower() not in (".png", ".gif"):
        raise UntwineError(f"--out must end in .png or .gif, got {out.name!r}")
    if num_samples < 1:
        raise UntwineError(f"--num-samples must be at least 1, got {num_samples}")
    model = run.load_model(device)
    from untwine.models.base import has_decoder

    if not has_decoder(model):
        raise UntwineError(f"{run.path}: {run.config.model} has no decoder, so its codes cannot be traversed "
                           "(nothing maps a code back to an image)")
    num_latents = getattr(model, "num_latents", None)
    if latents is not None and isinstance(num_latents, int):
        check_latents(latents, num_latents)  # before any data is drawn
    dataset = run.dataset(dataset)
    series = is_series(dataset.observation_shape)
    if series and out.suffix.lower() == ".gif":
        raise UntwineError(f"--out {out.name!r}: GIF animations are for image runs; this run's observations are "
                           "series [C, T], use a .png")
    rng = np.random.default_rng(seed)
    _, x = dataset.sample(num_samples, rng)
    means, logvars = encode_batches(model, x)
    if latents is not None:
        check_latents(latents, means.shape[1])
    act = latent_activity(means, logvars)
    labels = activity_labels(act)
    sweep = dict(latents=latents, order=act["order"], value_range=value_range, steps=steps,
                 gaussian=logvars is not None, codes=means)
    cfg = run.config
    title = f"{cfg.model} on {cfg.dataset}: latent traversals (seed {seed})"
    if series:
        chosen, values = traversal_plan(model, means.shape[1], **sweep)
        plot_series_traversal(model, x[0], latents=chosen, values=values, labels=[labels[j] for j in chosen],
                              path=out, title=title)
        return out
    trav = make_traversal(model, means[0], labels=labels, **sweep)
    return save_traversal(trav, out, title=title)
