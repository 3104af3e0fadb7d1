"""One self-contained HTML page about an SAE (``untwine report SAE_DIR``).

The page reads what ``untwine sae evaluate DIR ACTS --factors F`` wrote to
``DIR/evaluation.json`` (:func:`untwine.concepts.sae_evaluation.evaluate_concepts`) and never computes
a metric itself; without that file it says what to run.  Sections: the scores of the SAE's
codes beside the concept baselines on the same rows (raw activations, PCA, the supervised
dictionary and its projection codes), per-factor k-sparse probing and edit test, the
reconstruction metrics, the factor x latent heatmaps (normalised MI, DCI importance) of
the latents most related to each factor, those latents' top sentences (or top images, for
activations of a model on a dataset: :mod:`untwine.viz.top_images`), the SAE's
``cfg.json`` and its training curves (``training.json``).  The page layout, CSS and
helpers are :mod:`untwine.viz.html`'s: images are ``data:`` URIs and
nothing is loaded from the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from untwine.errors import UntwineError
from untwine.files import atomic_write_text, read_json
from untwine.viz._images import figure_png_bytes
from untwine.viz.html import REPORT_FILE, esc, flatten, guard, img, page, section, table


def _missing(sae_dir) -> str:
    return (
        '<p class="warn">No evaluation.json: run <code>untwine sae evaluate '
        f"{esc(sae_dir)} ACTS --factors FACTORS.npy</code> (ACTS: the activations, e.g. an "
        "<code>untwine lm activations</code> layer directory; FACTORS: one row of integer factors per "
        "activation row) and then <code>untwine report</code> again.</p>"
    )


def _summary_section(ev) -> str:
    from untwine.metrics.findings import describe_concepts

    nmi = (ev.get("matrices") or {}).get("normalized_mi")
    if nmi is None:
        raise UntwineError("evaluation.json holds no normalised-MI matrix")
    text = describe_concepts(nmi, ev["factor_names"], ev.get("sae"), ev.get("baselines"))
    return f'<p class="summary" id="summary-text">{esc(text)}</p>'


def _scores_section(ev) -> str:
    from untwine.concepts.sae_evaluation import concept_table

    header, rows = concept_table(ev)
    st = ev.get("settings", {})
    note = (
        f"All code sets on the same rows: fitted on {st.get('train_rows')} train rows, scored on "
        f"{st.get('test_rows')} test rows (seed {st.get('seed')}). <b>raw</b>: the activations (neuron basis); "
        "<b>pca</b>: as many principal components as the SAE has latents (at most the width); <b>supervised</b>: "
        "the supervised dictionary of Makelov et al. 2024 (one vector per factor value, indicator codes), the "
        "reference of what a perfect concept dictionary scores; <b>supervised_projection</b>: its label-free "
        "codes. fvu: test rows. sparse_probe_k*: k-sparse probing accuracy on held-out rows. edit_*: the edit "
        "test judged by linear probes on the raw activations; for the SAE, each factor's "
        f"{st.get('edit_latents_per_factor')} latents of largest correlation ratio are set to the target "
        "value's mean code and the row moves by the difference of the decodings; for supervised, the "
        "dictionary swaps the value's vector. nan: not defined for that code set."
    )
    if st.get("suite_subsampled"):
        note += (f" The disentanglement suite and the DCI importance ran on a seeded subsample of "
                 f"{st.get('suite_train_rows')} train and {st.get('suite_test_rows')} test rows "
                 f"(<code>--suite-rows {st.get('suite_rows_limit')}</code>); probing, FVU and edits on every row.")
    if not ev.get("baselines"):
        note += " Baselines were not computed (<code>--no-baselines</code>)."
    return f'<p class="note">{note}</p>' + table(header, rows)


def _per_factor_section(ev) -> str:
    sae, base = ev["sae"], ev.get("baselines") or {}
    sup_edit, acc = base.get("edit", {}), base.get("probe_accuracy", {})
    cols = [("sparse_probe_k1_{}", sae), ("sparse_probe_k2_{}", sae), ("sparse_probe_k5_{}", sae),
            ("edit_flip_{}", sae), ("edit_keep_{}", sae), ("edit_success_{}", sae), ("edit_success_{}", sup_edit)]
    rows = [[n, *(src.get(key.format(n), float("nan")) for key, src in cols), acc.get(n, float("nan"))]
            for n in ev["factor_names"]]
    header = ["factor", "SAE k=1", "SAE k=2", "SAE k=5", "SAE edit flip", "SAE edit keep", "SAE edit success",
              "supervised edit success", "raw probe accuracy"]
    return ('<p class="note">k-sparse probing accuracy of the SAE per factor, the edit test per factor, and the '
            "test accuracy of the linear probes on raw activations that judge the edits.</p>" + table(header, rows))


def _reconstruction_section(ev) -> str:
    rec = ev.get("reconstruction") or {}
    if not rec:
        raise UntwineError("evaluation.json holds no reconstruction metrics")
    return ('<p class="note">From <code>untwine sae evaluate</code> on every row (see '
            "<code>untwine.sae.metrics</code> for each definition).</p>"
            + table(["metric", "value"], [[k, float("nan") if v is None else v] for k, v in rec.items()]))


def _heatmap_section(ev) -> str:
    from untwine.viz.heatmaps import heatmap_figure, order_latents

    shown = np.asarray(ev.get("shown") or [], dtype=int)
    if shown.size == 0:
        raise UntwineError("no latent carries information about any factor")
    imgs = []
    for key, title in (("normalized_mi", "normalised MI I(z;v)/H(v)"), ("dci_importance", "DCI importance R")):
        m = ev["matrices"].get(key)
        if m is None:
            continue
        sub = np.asarray(m, dtype=np.float64)[shown]
        order = order_latents(sub)
        fig = heatmap_figure(sub, ev["factor_names"], title=title, order=order)
        fig.axes[0].set_xticklabels([str(int(j)) for j in shown[order]], fontsize=8)  # the SAE's latent indices
        imgs.append(img(figure_png_bytes(fig), f"{title} heatmap"))
    d_sae = len(ev["matrices"]["normalized_mi"])
    return (f'<p class="note">Rows: factors; columns: the {len(shown)} of {d_sae} latents with the largest '
            "normalised MI for some factor (a few per factor), labelled by latent index and grouped by the factor "
            "each relates to most. A concept dictionary shows one bright cell per column.</p>"
            f'<div class="row">{"".join(imgs)}</div>')


def _sentences_section(ev) -> str:
    tops = ev.get("top_sentences") or {}
    if not tops:
        return ('<p class="note">No sentences: ACTS was not an <code>untwine lm activations</code> layer directory '
                "whose parent holds sentences.txt and rows.npy.</p>")
    nmi = np.asarray(ev["matrices"]["normalized_mi"], dtype=np.float64)
    names = ev["factor_names"]
    rows = []
    for j, lst in tops.items():
        k = int(nmi[int(j)].argmax())
        text = " | ".join(f"{v:.3g}: {s}" for v, s in lst) or "(never active)"
        rows.append([f"latent {j}", names[k], float(nmi[int(j), k]), text])
    body = table(["latent", "factor (most MI)", "normalised MI", "top sentences (code: sentence)"], rows)
    return ('<p class="note">For each latent of the heatmaps, the sentences with its largest codes.</p>'
            + body.replace('<td class="k">', '<td class="k" style="text-align:left">'))


def _images_section(ev) -> str:
    from untwine.viz.top_images import top_images_html

    return top_images_html(ev["top_images"], ev["matrices"]["normalized_mi"], ev["factor_names"])


def _config_section(sae_dir) -> str:
    cfg = read_json(Path(sae_dir) / "cfg.json", what="SAE config")
    rows = [[k, v if isinstance(v, (int, float, bool)) else str(v)] for k, v in flatten(cfg).items()]
    return '<p class="note">The SAE\'s cfg.json (SAELens layout).</p>' + table(["key", "value"], rows)


def _curves_section(sae_dir) -> str:
    from untwine.sae.train import TRAINING
    from untwine.viz.curves import curves_figure

    p = Path(sae_dir) / TRAINING
    log = (read_json(p, what="training log").get("log") or []) if p.is_file() else []
    if not log:
        return f'<p class="note">No training log ({TRAINING}).</p>'
    cols = {k: np.array([float(r.get(k, np.nan)) for r in log]) for k in log[0]}
    return img(figure_png_bytes(curves_figure(cols)), "training curves")


def sae_report_html(sae_dir, evaluation=None) -> str:
    """The page for the SAE in ``sae_dir`` with ``evaluation`` (the contents of evaluation.json, or None)."""
    sections, nav = [], []

    def add(anchor, heading, builder):
        nav.append(f'<a href="#{anchor}">{esc(heading)}</a>')
        sections.append(section(anchor, heading, guard(builder)))

    if evaluation is None:
        add("scores", "Scores against the baselines", lambda: _missing(sae_dir))
    else:
        add("summary", "In short", lambda: _summary_section(evaluation))
        add("scores", "Scores against the baselines", lambda: _scores_section(evaluation))
        add("factors", "Per factor", lambda: _per_factor_section(evaluation))
        add("reconstruction", "Reconstruction", lambda: _reconstruction_section(evaluation))
        add("heatmaps", "Factor x latent heatmaps", lambda: _heatmap_section(evaluation))
        if evaluation.get("top_images"):
            add("images", "Top images", lambda: _images_section(evaluation))
        else:
            add("sentences", "Top sentences", lambda: _sentences_section(evaluation))
    add("config", "Configuration", lambda: _config_section(sae_dir))
    add("curves", "Training curves", lambda: _curves_section(sae_dir))
    cfg = read_json(Path(sae_dir) / "cfg.json", what="SAE config")
    arch = (cfg.get("untwine") or {}).get("architecture") or cfg.get("architecture")
    title = f"{arch} SAE, {cfg.get('d_sae')} latents on d_in {cfg.get('d_in')}"
    st = (evaluation or {}).get("settings", {})
    source = f"from {st['rows']} activation rows (seed {st.get('seed')})" if "rows" in st else "(not evaluated)"
    return page(title, f"SAE {Path(sae_dir).resolve().name}", source, nav, sections)


def build_sae_report(sae_dir, *, out=None) -> Path:
    """Write the SAE's page (default ``SAE_DIR/report.html``) from its ``evaluation.json``; returns the path."""
    from untwine.concepts.sae_evaluation import EVALUATION

    p = Path(sae_dir) / EVALUATION
    try:
        evaluation = read_json(p, what="SAE evaluation") if p.is_file() else None
    except ValueError:
        raise UntwineError(f"{p} is not valid JSON (re-run `untwine sae evaluate ... --factors`)") from None
    if evaluation is not None and not (isinstance(evaluation, dict) and "sae" in evaluation and "matrices" in evaluation):
        raise UntwineError(f"{p}: not an SAE concept evaluation (re-run `untwine sae evaluate ... --factors`)")
    path = Path(out) if out is not None else Path(sae_dir) / REPORT_FILE
    atomic_write_text(path, sae_report_html(sae_dir, evaluation))
    return path
