"""One self-contained HTML page about a trained run (``untwine report RUN_DIR``).

The page holds the run's config, its metric table (``metrics.json`` from
``untwine evaluate``; without it the page says to run that, it never computes a
suite of its own), latent traversals (grid and animation; small multiples of curves
for time series ``[C, T]``), reconstructions (input-vs-reconstruction curves for series; a
model without a decoder, the factor classifier, gets a note instead of both), the
factor x latent heatmaps (normalised MI and DCI importance), the active/passive
latent table with the scores on the mean, sampled and active-only representations
(from ``metrics.json`` when evaluated with ``--compare-representations``), and the
training curves.  Every image is embedded as a base64 ``data:`` URI and the
CSS is inline: the file needs nothing else to render and loads nothing from the
network.  A small inline script records, once the page has loaded, how many images
decoded (``data-images-rendered`` / ``data-images-total`` on ``<body>``) and where the
opening paragraph sits (``data-summary-top`` / ``data-summary-height``, pixels); the
browser test reads them.

:func:`report_html` builds the page from a model and a dataset (pure apart from
the computation); :func:`build_report` reads a run directory and writes
``RUN_DIR/report.html``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from untwine._checks import check_seed
from untwine.errors import UntwineError
from untwine.files import atomic_write_text
from untwine.viz._images import figure_png_bytes
from untwine.viz.html import REPORT_FILE, esc, flatten, guard, img, page, section, table

#: samples drawn from the dataset for the report's computations
DEFAULT_NUM_SAMPLES = 2000
#: the fewest images the report's estimators accept
MIN_SAMPLES = 30
#: a traversal row whose pixels move less than this share of their range on average changes nothing visible
VISIBLE_EFFECT = 0.01


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
    from untwine.models.base import has_decoder
    from untwine.viz.traversal import encode_batches

    if num_samples < MIN_SAMPLES:
        raise UntwineError(f"num_samples must be at least {MIN_SAMPLES}, got {num_samples}")
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
        nav.append(f'<a href="#{anchor}">{esc(heading)}</a>')
        sections.append(section(anchor, heading, guard(builder)))

    if metrics:
        add("summary", "In short", lambda: _summary_section(
            model, x, means, logvars, metrics, evaluation, traverse_range, traverse_steps))
        add("headline", "Key scores", lambda: _headline_section(metrics, evaluation))
    add("config", "Configuration", lambda: _config_section(config, model, dataset))
    add("metrics", "Metrics", lambda: _metrics_section(metrics, evaluation))
    if has_decoder(model):
        add("traversals", "Latent traversals", lambda: _traversal_section(
            model, x, means, logvars, activity, traverse_range, traverse_steps))
        add("reconstructions", "Reconstructions", lambda: _reconstruction_section(model, x))
    else:
        add("traversals", "Latent traversals", lambda: _no_decoder_note(model, "traversals"))
        add("reconstructions", "Reconstructions", lambda: _no_decoder_note(model, "reconstructions"))
    add("heatmaps", "Factor x latent heatmaps", lambda: _heatmap_section(split, vnames, seed))
    add("activity", "Active and passive latents", lambda: _activity_section(activity, means, logvars, metrics))
    add("curves", "Training curves", lambda: _curves_section(log))
    if directions is not None:  # (scores.json of `untwine directions`, its folder): read, never computed here
        from untwine.viz.directions_report import directions_section

        add("directions", "Directions in the generator", lambda: directions_section(*directions))

    source = f"(pictures and heatmaps from {num_samples} samples, seed {seed}"
    if evaluation and "num_train" in evaluation:
        source += (f"; scores from untwine evaluate on {evaluation['num_train']} train / "
                   f"{evaluation.get('num_test')} test samples, seed {evaluation.get('seed')}")
    return page(title, subtitle, source + ")", nav, sections)


def _config_section(config, model, dataset) -> str:
    rows = []
    if config:
        flat = flatten(config)
        # a top-level field left unset (None) whose resolved value is in hparams is shown once, there
        rows = [[k, v] for k, v in flat.items() if not (v is None and f"hparams.{k}" in flat)]
    else:
        rows = [["model", getattr(model, "name", type(model).__name__)]]
        rows += [[f"hparams.{k}", v] for k, v in (getattr(model, "hparams", {}) or {}).items()]
    body = table(["key", "value"], [[k, v if isinstance(v, (int, float, bool)) else str(v)] for k, v in rows])
    fac = ", ".join(f"{n} ({s})" for n, s in zip(dataset.factor_names, dataset.factor_sizes))
    body += f'<p class="note">Dataset <b>{esc(getattr(dataset, "name", "dataset"))}</b>: factors {esc(fac)}; ' \
            f"observations {esc(tuple(dataset.observation_shape))}.</p>"
    return body


def _is_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _summary_section(model, x, means, logvars, metrics, evaluation, value_range, steps) -> str:
    """The paragraph of :func:`untwine.metrics.findings.describe` (from evaluation.json, as
    ``untwine evaluate`` printed it), then one traversal strip per captured factor."""
    from untwine.metrics.findings import describe

    findings = (evaluation or {}).get("findings")
    if not findings:
        raise UntwineError("evaluation.json holds no findings: run `untwine evaluate RUN_DIR` again")
    text = describe(findings, metrics, (evaluation or {}).get("reference"))
    body = f'<p class="summary" id="summary-text">{esc(text)}</p>'
    captured = [r for r in findings["factors"] if r["status"] == "captured"]
    from untwine.models.base import has_decoder

    if not captured or not has_decoder(model):
        return body
    names: dict[int, list[str]] = {}
    for r in captured:
        names.setdefault(int(r["latent"]), []).append(str(r["name"]))
    latents = list(names)
    labels = {j: f"{' / '.join(n)} (z{j})" for j, n in names.items()}
    sweep = dict(value_range=value_range, steps=steps, gaussian=logvars is not None, codes=means)
    body += ('<p class="note">Each captured factor\'s latent swept from low to high while the others keep the '
             "first sampled input's code:</p>")
    from untwine.viz.series import is_series, plot_series_traversal
    from untwine.viz.traversal import make_traversal, traversal_figure, traversal_plan

    if is_series(tuple(x.shape)[1:]):
        lat, values = traversal_plan(model, means.shape[1], latents=latents, **sweep)
        fig = plot_series_traversal(model, x[0], latents=lat, values=values, labels=[labels[j] for j in lat])
    else:
        fig = traversal_figure(make_traversal(model, means[0], latents=latents, labels=labels, **sweep))
    return body + img(figure_png_bytes(fig), "traversals of the captured factors")


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
    return note + table(["score", "this run", "random encoder", "factors themselves"], rows)


def _dci_note(shown, metrics, evaluation) -> str:
    """Which estimator produced the DCI scores among ``shown`` (a fast number is not a paper's GBT number)."""
    from untwine.metrics.registry import DCI_ESTIMATOR_LABEL, DCI_ESTIMATOR_TEXT

    if not any(str(k).startswith("dci_") for k in shown):
        return ""
    est = metrics.get(DCI_ESTIMATOR_LABEL) or (evaluation or {}).get("dci_estimator")
    what = DCI_ESTIMATOR_TEXT.get(est, "not recorded") if est else "not recorded"
    return f'<p class="note">DCI estimator: <b>{esc(str(est or "?"))}</b> ({esc(what)}).</p>'


def _metrics_section(metrics, evaluation) -> str:
    if not metrics:
        return (
            '<p class="warn"><code>untwine evaluate</code> has not been run on this run (no metrics.json). '
            "Run <code>untwine evaluate RUN_DIR</code> and then <code>untwine report RUN_DIR</code> again for the "
            "metric table.</p>"
        )
    flat = flatten(metrics)
    # metrics.json writes NaN as null
    nums = [[k, float("nan") if v is None else v] for k, v in flat.items() if _is_number(v)]
    other = [[k, str(v)] for k, v in flat.items() if not _is_number(v)]
    how = ""
    if evaluation:
        parts = [f"{k.replace('_', ' ')} {evaluation[k]}" for k in
                 ("step", "representation", "num_train", "num_test", "seed", "dci_estimator") if k in evaluation]
        how = f" Settings: {esc(', '.join(parts))}."
    split = (evaluation or {}).get("test_split") or {}
    if split or metrics.get("_test_split"):  # where the *_test scores' rows came from
        how += f" Test rows: {esc(str(split.get('kind') or metrics.get('_test_split')))}"
        how += f" ({esc(str(split['note']))})." if split.get("note") else "."
    body = f'<p class="note">From <code>metrics.json</code> (written by <code>untwine evaluate</code>).{how}</p>'
    body += _dci_note(flat, metrics, evaluation)
    body += table(["metric", "value"], nums)
    if other:
        body += "<details><summary>other fields</summary>" + table(["field", "value"], other) + "</details>"
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
            "the seed's code.</p>" + img(figure_png_bytes(fig), "latent traversal curves")
        )
    trav = make_traversal(model, means[0], labels=labels, **sweep)
    # a latent whose sweep leaves the picture unchanged is labelled so, whatever its KL
    effect = [float(np.mean(row.max(axis=0).astype(np.int16) - row.min(axis=0))) / 255.0 for row in trav.images]
    still = [j for j, e in zip(trav.latents, effect) if e < VISIBLE_EFFECT]
    trav.labels = [f"{lab}  (no visible effect)" if e < VISIBLE_EFFECT else lab for lab, e in zip(trav.labels, effect)]
    grid = figure_png_bytes(traversal_figure(trav))
    gif = _gif_bytes(traversal_gif_frames(trav))
    how = how or f"values {trav.values[0][0]:.3g} .. {trav.values[0][-1]:.3g}"
    body = (
        f'<p class="note">Seed: the first sampled image. One row per latent, {ranked}; '
        f"each column sets that latent to one of its {how} while the others keep the seed's code. "
        f"{len(trav.latents) - len(still)} of {len(trav.latents)} latents change the picture visibly (mean "
        f"change of a pixel over the sweep at least {VISIBLE_EFFECT:.0%} of its range)"
        + (f"; no visible effect: {', '.join(f'z{j}' for j in still)}" if still else "") + ".</p>"
    )
    body += img(grid, "latent traversal grid")
    body += '<p class="note">The same traversals animated, one panel per latent (same order).</p>'
    body += img(gif, "latent traversal animation", mime="image/gif", cls="anim")
    return body


def _has_codebook(model) -> bool:
    from untwine.models.codebooks import codebook_values

    return codebook_values(model) is not None


def _gif_bytes(frames, duration_ms: int = 120) -> bytes:
    import io

    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def _no_decoder_note(model, what: str) -> str:
    name = esc(getattr(model, "name", type(model).__name__))
    return (f'<p class="note">No {what}: {name} has no decoder (it maps images to factor predictions; nothing '
            "maps a code back to an image). Its codes are still scored above and in the heatmaps below.</p>")


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
        + img(figure_png_bytes(fig), "reconstructions")
    )


def _heatmap_section(split, names, seed) -> str:
    from untwine.metrics.dci import importance_matrix
    from untwine.metrics.matrices import normalized_mi
    from untwine.viz.heatmaps import heatmap_figure, order_latents

    if not names:
        raise UntwineError("no factor varies in the drawn sample")
    nmi = normalized_mi(split[0], split[1])
    imp = np.asarray(importance_matrix(*split, seed=seed)[0], dtype=np.float64)
    fig1 = heatmap_figure(nmi, names, title="normalised mutual information I(z;v)/H(v)", order=order_latents(nmi))
    fig2 = heatmap_figure(imp, names, title="DCI importance R", order=order_latents(imp))
    return (
        '<p class="note">Rows: factors; columns: latents (index shown), grouped by the factor each relates to '
        "most. A disentangled representation shows one bright cell per column and per row.</p>"
        f'<div class="row">{img(figure_png_bytes(fig1), "normalised MI heatmap")}'
        f'{img(figure_png_bytes(fig2), "DCI importance heatmap")}</div>'
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
    body += table(header, rows, row_classes=classes)
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
    return body + table(["metric", "mean", "sampled", "mean, active only"], rows2)


def _number(v) -> float:
    return float("nan") if v is None else float(v)


def _curves_section(log) -> str:
    from untwine.viz.curves import curves_figure

    if not log or "step" not in log or len(log["step"]) == 0:
        return '<p class="note">No training log (log.csv) rows.</p>'
    return img(figure_png_bytes(curves_figure(log)), "training curves")


# -- run directories -----------------------------------------------------------------------
def build_report(
    run_dir,
    *,
    out=None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    device: str = "auto",
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
    text = report_html(
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
    atomic_write_text(path, text)
    return path
