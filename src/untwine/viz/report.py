"""One self-contained HTML page about a trained run (``untwine report RUN_DIR``).

The page holds the run's config, its metric table (``metrics.json`` from
``untwine evaluate``; without it the page says to run that, it never computes a
suite of its own), latent traversals (grid and animation; small multiples of curves
for time series ``[C, T]``), reconstructions (input-vs-reconstruction curves for series), the
factor x latent heatmaps (normalised MI and DCI importance), the active/passive
latent table with the scores on the mean, sampled and active-only representations
(from ``metrics.json`` when evaluated with ``--compare-representations``), and the
training curves.  Every image is embedded as a base64 ``data:`` URI and the
CSS is inline: the file needs nothing else to render and loads nothing from the
network.  A small inline script records, once the page has loaded, how many images
decoded (``data-images-rendered`` / ``data-images-total`` on ``<body>``); the
browser test reads them.

:func:`report_html` builds the page from a model and a dataset (pure apart from
the computation); :func:`build_report` reads a run directory and writes
``RUN_DIR/report.html``.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from untwine._checks import check_seed
from untwine.errors import UntwineError
from untwine.files import atomic_write_text
from untwine.viz._images import figure_png_bytes

REPORT_FILE = "report.html"
#: samples drawn from the dataset for the report's computations
DEFAULT_NUM_SAMPLES = 2000

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d232b}
header{background:#1f4e79;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;opacity:.85;font-size:13px}
nav{background:#fff;border-bottom:1px solid #d8dde3;padding:8px 32px;font-size:13px}
nav a{margin-right:14px;color:#1f4e79;text-decoration:none}
main{max-width:1200px;margin:0 auto;padding:16px 32px 48px}
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:18px 0;padding:14px 20px}
section h2{font-size:17px;margin:0 0 8px;color:#1f4e79}
p.note{font-size:13px;color:#4a5560;margin:6px 0 10px}
p.warn{font-size:13px;color:#8a4b00;background:#fff6e5;border:1px solid #f0d9a8;padding:6px 10px;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #dde2e8;padding:3px 9px;text-align:right}
th{background:#eef2f6} td.k,th.k{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace}
tr.passive td{color:#8a94a0;background:#fafafa}
img{max-width:100%;height:auto;display:block;margin:6px 0;image-rendering:pixelated}
img.fig{image-rendering:auto}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:8px;font-size:12px;overflow:auto}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-rendered', String(ok));
  document.body.setAttribute('data-report-ready', '1');
});
"""


# -- HTML pieces ----------------------------------------------------------------------
def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:`` URI embedding ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _img(data: bytes, alt: str, *, mime: str = "image/png", cls: str = "fig", width: int | None = None) -> str:
    w = f' width="{int(width)}"' if width else ""
    return f'<img class="{cls}" alt="{_esc(alt)}" src="{data_uri(data, mime)}"{w}>'


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return _esc(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return _esc(v)


def _table(header: list[str], rows: list[list[Any]], *, key_cols: int = 1, row_classes=None) -> str:
    out = ["<table><tr>"]
    out += [f'<th class="k">{_esc(h)}</th>' if i < key_cols else f"<th>{_esc(h)}</th>" for i, h in enumerate(header)]
    out.append("</tr>")
    for r, row in enumerate(rows):
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        out.append(f"<tr{cls}>")
        for i, v in enumerate(row):
            out.append(f'<td class="k">{_esc(v)}</td>' if i < key_cols else f"<td>{_fmt(v)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _guard(fn: Callable[[], str]) -> str:
    """Run a section builder; bad data for one section becomes a note, not a failed report."""
    try:
        return fn()
    except UntwineError as exc:
        return f'<p class="warn">Not available: {_esc(exc)}</p>'


# -- the page ----------------------------------------------------------------------------
def report_html(
    model,
    dataset,
    *,
    title: str = "untwine report",
    subtitle: str = "",
    config: Mapping | None = None,
    metrics: Mapping | None = None,
    evaluation: Mapping | None = None,
    log: Mapping[str, np.ndarray] | None = None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    traverse_range=None,
    traverse_steps: int = 10,
    directions: tuple[Mapping, Path] | None = None,
) -> str:
    """The report page for ``model`` on ``dataset`` as one HTML string.

    ``config`` (shown as a table), ``metrics`` (the contents of ``metrics.json``;
    None means `untwine evaluate` has not been run, and the page says so),
    ``evaluation`` (its settings, ``evaluation.json``) and ``log`` (``{column: array}`` of ``log.csv``) come from the run directory.
    ``num_samples`` observations are drawn with ``np.random.default_rng(seed)``; the
    heatmaps fit on the first two thirds (train) and score on the rest (test).
    """
    from untwine.metrics.activity import latent_activity
    from untwine.viz.traversal import encode_batches

    if num_samples < 30:
        raise UntwineError(f"num_samples must be at least 30, got {num_samples}")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    factors, x = dataset.sample(num_samples, rng)
    factors = np.asarray(factors, dtype=np.int64)
    means, logvars = encode_batches(model, x)
    activity = latent_activity(means, logvars)
    n_train = int(math.ceil(num_samples * 2 / 3))
    names = [str(n) for n in getattr(dataset, "factor_names", ())] or [f"factor {k}" for k in range(factors.shape[1])]
    # factors constant in the drawn sample carry no information: leave them out of the metrics
    varying = [k for k in range(factors.shape[1]) if np.unique(factors[:n_train, k]).size > 1]
    split = (means[:n_train], factors[:n_train][:, varying], means[n_train:], factors[n_train:][:, varying])
    vnames = [names[k] for k in varying]

    sections = []
    nav = []

    def add(anchor, heading, builder):
        nav.append(f'<a href="#{anchor}">{_esc(heading)}</a>')
        sections.append(_section(anchor, heading, _guard(builder)))

    if metrics:
        add("headline", "Key scores", lambda: _headline_section(metrics, evaluation))
    add("config", "Configuration", lambda: _config_section(config, model, dataset))
    add("metrics", "Metrics", lambda: _metrics_section(metrics, evaluation))
    add("traversals", "Latent traversals", lambda: _traversal_section(
        model, x, means, logvars, activity, traverse_range, traverse_steps))
    add("reconstructions", "Reconstructions", lambda: _reconstruction_section(model, x))
    add("heatmaps", "Factor x latent heatmaps", lambda: _heatmap_section(split, vnames, seed))
    add("activity", "Active and passive latents", lambda: _activity_section(activity, means, logvars, metrics))
    add("curves", "Training curves", lambda: _curves_section(log))
    if directions is not None:  # (scores.json of `untwine directions`, its folder): read, never computed here
        from untwine.directions.report import directions_section

        add("directions", "Directions in the generator", lambda: directions_section(*directions))

    return page_html(title, subtitle, f"from {num_samples} samples (seed {seed})", nav, sections)


def page_html(title: str, subtitle: str, source: str, nav: list[str], sections: list[str]) -> str:
    """The whole page: inline CSS, header (``subtitle``, when, ``source``), navigation, sections, the image-count script."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sub = f"{_esc(subtitle)} &middot; " if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_esc(title)}</title>"
        f"<style>{_CSS}</style></head>\n<body>"
        f"<header><h1>{_esc(title)}</h1><p>{sub}generated by untwine on {when} {_esc(source)}</p></header>"
        f"<nav>{''.join(nav)}</nav><main>\n"
        + "\n".join(sections)
        + f"\n</main><script>{_SCRIPT}</script></body></html>\n"
    )


def _config_section(config, model, dataset) -> str:
    rows = []
    if config:
        rows = [[k, v] for k, v in _flatten(config).items()]
    else:
        rows = [["model", getattr(model, "name", type(model).__name__)]]
        rows += [[f"hparams.{k}", v] for k, v in (getattr(model, "hparams", {}) or {}).items()]
    body = _table(["key", "value"], [[k, v if isinstance(v, (int, float, bool)) else str(v)] for k, v in rows])
    fac = ", ".join(f"{n} ({s})" for n, s in zip(dataset.factor_names, dataset.factor_sizes))
    body += f'<p class="note">Dataset <b>{_esc(getattr(dataset, "name", "dataset"))}</b>: factors {_esc(fac)}; ' \
            f"observations {_esc(tuple(dataset.observation_shape))}.</p>"
    return body


def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _headline_section(metrics, evaluation) -> str:
    """The key scores beside a random encoder's and the factors' own on the same samples."""
    from untwine.train.reference import HEADLINE_KEYS

    ref = (evaluation or {}).get("reference") or {}
    rand, fac = ref.get("random_encoder") or {}, ref.get("factors") or {}
    rows = []
    for k in HEADLINE_KEYS:
        if k in metrics:
            rows.append([k, _number(metrics[k]), _number(rand.get(k)), _number(fac.get(k))])
    if not rows:
        raise UntwineError("metrics.json holds none of the key scores")
    if ref:
        note = ("Each score beside what an untrained encoder of the same architecture (&quot;random encoder&quot;) and "
                "the factors themselves used as the code score on the same samples with the same settings: the "
                "floor the architecture gives for free and the ceiling of a perfect code. nan: not computed for "
                "that reference (the interventional scores need an encoder of the factors).")
    else:
        note = ("Run <code>untwine evaluate RUN_DIR</code> (reference scores are on by default) to see each score "
                "beside a random encoder's and the factors' own.")
    note = f'<p class="note">{note}</p>' + _dci_note([r[0] for r in rows], metrics, evaluation)
    return note + _table(["score", "this run", "random encoder", "factors themselves"], rows)


def _dci_note(shown, metrics, evaluation) -> str:
    """Which estimator produced the DCI scores among ``shown`` (a fast number is not a paper's GBT number)."""
    from untwine.metrics.registry import DCI_ESTIMATOR_LABEL, DCI_ESTIMATOR_TEXT

    if not any(str(k).startswith("dci_") for k in shown):
        return ""
    est = metrics.get(DCI_ESTIMATOR_LABEL) or (evaluation or {}).get("dci_estimator")
    what = DCI_ESTIMATOR_TEXT.get(est, "not recorded") if est else "not recorded"
    return f'<p class="note">DCI estimator: <b>{_esc(str(est or "?"))}</b> ({_esc(what)}).</p>'


def _metrics_section(metrics, evaluation) -> str:
    if not metrics:
        return (
            '<p class="warn"><code>untwine evaluate</code> has not been run on this run (no metrics.json). '
            "Run <code>untwine evaluate RUN_DIR</code> and then <code>untwine report RUN_DIR</code> again for the "
            "metric table.</p>"
        )
    flat = _flatten(metrics)
    # metrics.json writes NaN as null
    nums = [[k, float("nan") if v is None else v] for k, v in flat.items() if _is_number(v)]
    other = [[k, str(v)] for k, v in flat.items() if not _is_number(v)]
    how = ""
    if evaluation:
        parts = [f"{k.replace('_', ' ')} {evaluation[k]}" for k in
                 ("step", "representation", "num_train", "num_test", "seed", "dci_estimator") if k in evaluation]
        how = f" Settings: {_esc(', '.join(parts))}."
    body = f'<p class="note">From <code>metrics.json</code> (written by <code>untwine evaluate</code>).{how}</p>'
    body += _dci_note(flat, metrics, evaluation)
    body += _table(["metric", "value"], nums)
    if other:
        body += "<details><summary>other fields</summary>" + _table(["field", "value"], other) + "</details>"
    return body


def _traversal_section(model, x, means, logvars, activity, value_range, steps) -> str:
    from untwine.viz.series import is_series, plot_series_traversal
    from untwine.viz.traversal import (activity_labels, make_traversal, traversal_figure, traversal_gif_frames,
                                       traversal_plan)

    order = [int(j) for j in activity["order"]]
    labels = activity_labels(activity)
    sweep = dict(order=order, value_range=value_range, steps=steps, gaussian=logvars is not None, codes=means)
    by = "by average KL to the prior" if logvars is not None else "by variance of the codes"
    ranked = f"most active first ({by})"
    how = "codebook values" if value_range is None and _has_codebook(model) else None
    if is_series(tuple(x.shape)[1:]):
        latents, values = traversal_plan(model, means.shape[1], **sweep)
        fig = plot_series_traversal(model, x[0], latents=latents, values=values, labels=[labels[j] for j in latents])
        how = how or f"{values.shape[1]} values {values[0][0]:.3g} .. {values[0][-1]:.3g}"
        return (
            f'<p class="note">Seed: the first sampled series (dashed grey). One panel per latent, {ranked}; '
            f"each curve sets that latent to one of its {how} (blue low, red high) while the others keep "
            "the seed's code.</p>" + _img(figure_png_bytes(fig), "latent traversal curves")
        )
    trav = make_traversal(model, means[0], labels=labels, **sweep)
    grid = figure_png_bytes(traversal_figure(trav))
    gif = _gif_bytes(traversal_gif_frames(trav))
    how = how or f"values {trav.values[0][0]:.3g} .. {trav.values[0][-1]:.3g}"
    body = (
        f'<p class="note">Seed: the first sampled image. One row per latent, {ranked}; '
        f"each column sets that latent to one of its {how} while the others keep the seed's code.</p>"
    )
    body += _img(grid, "latent traversal grid")
    body += '<p class="note">The same traversals animated, one panel per latent (same order).</p>'
    body += _img(gif, "latent traversal animation", mime="image/gif", cls="anim")
    return body


def _has_codebook(model) -> bool:
    from untwine.viz.traversal import codebook_values

    return codebook_values(model) is not None


def _gif_bytes(frames, duration_ms: int = 120) -> bytes:
    import io

    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def _reconstruction_section(model, x) -> str:
    from untwine.viz.reconstructions import reconstruction_error, reconstruction_figure
    from untwine.viz.series import is_series

    n = min(12, len(x))
    fig = reconstruction_figure(model, x[:n])  # images: a grid; series: curve panels
    mse = reconstruction_error(model, x[: min(len(x), 500)])
    if is_series(tuple(x.shape)[1:]):
        layout, unit = "Each panel: an input series (solid) and", "value"
    else:
        layout, unit = "Top: inputs; bottom:", "pixel"
    return (
        f'<p class="note">{layout} decode(encode(x)) from the mean representation. '
        f"Mean squared error per {unit} over {min(len(x), 500)} samples: {mse:.4g}.</p>"
        + _img(figure_png_bytes(fig), "reconstructions")
    )


def _heatmap_section(split, names, seed) -> str:
    from untwine.metrics.dci import importance_matrix
    from untwine.viz.heatmaps import heatmap_figure, normalized_mi, order_latents

    if not names:
        raise UntwineError("no factor varies in the drawn sample")
    nmi = normalized_mi(split[0], split[1])
    imp = np.asarray(importance_matrix(*split, seed=seed)[0], dtype=np.float64)
    fig1 = heatmap_figure(nmi, names, title="normalised mutual information I(z;v)/H(v)", order=order_latents(nmi))
    fig2 = heatmap_figure(imp, names, title="DCI importance R", order=order_latents(imp))
    return (
        '<p class="note">Rows: factors; columns: latents (index shown), grouped by the factor each relates to '
        "most. A disentangled representation shows one bright cell per column and per row.</p>"
        f'<div class="row">{_img(figure_png_bytes(fig1), "normalised MI heatmap")}'
        f'{_img(figure_png_bytes(fig2), "DCI importance heatmap")}</div>'
    )


def _activity_section(activity, means, logvars, metrics) -> str:
    d = means.shape[1]
    crit = activity["criterion"]
    if crit == "kl":
        header = ["latent", "avg KL (nats)", "var of mean", "avg posterior var", "collapsed fraction", "status"]
        rows = [[f"z{j}", activity["kl"][j], activity["mean_variance"][j], activity["posterior_variance"][j],
                 activity["collapsed_fraction"][j], "active" if activity["active"][j] else "passive"]
                for j in activity["order"]]
        rule = (f"A latent is <b>passive</b> (collapsed to the prior) when its KL to the prior, averaged over "
                f"the data, is below {activity['threshold']:g} nats. Collapsed fraction: share of inputs whose "
                "KL for that latent is below the threshold (between 0 and 1 = a <i>mixed</i> latent).")
    else:
        header = ["latent", "var of code", "status"]
        rows = [[f"z{j}", activity["mean_variance"][j], "active" if activity["active"][j] else "passive"]
                for j in activity["order"]]
        rule = (f"Deterministic encoder: a latent is <b>passive</b> when the standard deviation of its code "
                f"is below {activity['threshold']:g} times the largest one.")
    classes = ["" if activity["active"][j] else "passive" for j in activity["order"]]
    n_act = int(np.sum(activity["active"]))
    body = f'<p class="note">{n_act} of {d} latents active. {rule}</p>'
    body += _table(header, rows, row_classes=classes)
    if logvars is None:
        return body + '<p class="note">No sampled representation: the encoder is deterministic.</p>'
    prefix = "mean."
    keys = [k[len(prefix):] for k in (metrics or {}) if k.startswith(prefix)]
    if not keys:
        return body + ('<p class="note">For the scores on the mean, sampled and active-only representations, run '
                       "<code>untwine evaluate RUN_DIR --compare-representations</code>.</p>")
    rows2 = [[k, *(_number(metrics.get(f"{rep}.{k}")) for rep in ("mean", "sampled", "mean_active"))] for k in keys]
    body += (
        '<p class="note">Scores on three representations ("Be More Active!", Bonheme &amp; Grzes), from '
        "<code>metrics.json</code>: the posterior means, one sample from each posterior, and the means with the "
        "passive latents removed. Passive latents make the mean representation look more correlated (higher "
        "Gaussian total correlation) than the sampled one; removing them removes that effect.</p>"
    )
    return body + _table(["metric", "mean", "sampled", "mean, active only"], rows2)


def _number(v) -> float:
    return float("nan") if v is None else float(v)


def _curves_section(log) -> str:
    from untwine.viz.curves import curves_figure

    if not log or "step" not in log or len(log["step"]) == 0:
        return '<p class="note">No training log (log.csv) rows.</p>'
    return _img(figure_png_bytes(curves_figure(log)), "training curves")


# -- run directories -----------------------------------------------------------------------
def build_report(
    run_dir,
    *,
    out=None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    device: str = "cpu",
    traverse_range=None,
    traverse_steps: int = 10,
    dataset=None,
) -> Path:
    """Write the report of the run in ``run_dir`` (default ``RUN_DIR/report.html``); returns its path.

    ``dataset`` replaces the run's dataset (by default loaded by the name or path in its
    config), e.g. for a run trained on a dataset object.  One-line :class:`UntwineError`
    when ``run_dir`` is not a run or has no checkpoint.  An SAE directory
    (:func:`untwine.sae.io.is_sae_dir`) gets :func:`untwine.viz.sae_report.build_sae_report`.
    """
    from untwine.directions.report import read_directions
    from untwine.sae.io import is_sae_dir
    from untwine.train.evaluate import read_settings
    from untwine.train.run import open_run

    if is_sae_dir(run_dir):  # an SAE directory: its own page, from its evaluation.json
        from untwine.viz.sae_report import build_sae_report

        return build_sae_report(run_dir, out=out)
    check_seed(seed)
    run = open_run(run_dir)
    model = run.load_model(device)
    dataset = run.dataset(dataset)
    cfg = run.config.to_dict()
    try:
        metrics = run.metrics()
    except ValueError:
        raise UntwineError(f"{Path(run.path) / 'metrics.json'} is not valid JSON (re-run `untwine evaluate`)") from None
    try:
        evaluation = read_settings(run.path)
    except ValueError:
        evaluation = None  # the settings only annotate the table
    page = report_html(
        model,
        dataset,
        title=f"{cfg.get('model')} on {cfg.get('dataset')}",
        subtitle=f"run {Path(run.path).resolve().name}, step {run.step}/{cfg.get('steps')}",
        config=cfg,
        metrics=metrics,
        evaluation=evaluation,
        log=run.log(),
        num_samples=num_samples,
        seed=seed,
        traverse_range=traverse_range,
        traverse_steps=traverse_steps,
        directions=read_directions(run.path),
    )
    path = Path(out) if out is not None else Path(run.path) / REPORT_FILE
    atomic_write_text(path, page)
    return path
