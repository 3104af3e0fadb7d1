"""Representation health across layers and token-frequency groups (the seed question of
"Rare Tokens Degenerate All Tokens", Yu et al. 2022: do rare tokens' embeddings
degenerate, and does the degeneration spread?).

Two views, each scored with :func:`untwine.metrics.health.health_report`:

* :func:`layer_health`: each layer's activations (e.g. the concept corpus, mean-pooled);
* :func:`embedding_health`: the model's *input* token embeddings grouped by word
  frequency.  Only whole-word vocabulary entries are used (lower-case letters only: no
  ``##`` continuation pieces, special or ``[unused]`` tokens); each word's frequency is
  its Zipf value from the ``wordfreq`` package (offline, English; ``log10`` of
  occurrences per billion words, 0 for unknown words), binned by
  :data:`FREQUENCY_BINS`.  Hubness and the intrinsic dimensions depend on the number of
  rows, so every group is subsampled (seeded) to the same size: the smallest group's,
  at most ``max_rows``.

:func:`health_figures` draws one figure per measure (left: across layers; right: across
frequency groups) and :func:`health_report_html` puts them and the numbers in one
self-contained HTML page.
"""

from __future__ import annotations

import math
import re

import numpy as np

from untwine.errors import UntwineError
from untwine.metrics.health import MAX_PAIR_ROWS, MEASURES, health_report, subsample

#: (label, lowest Zipf value, highest Zipf value (exclusive)), most frequent first
FREQUENCY_BINS = (
    ("zipf>=5", 5.0, math.inf),
    ("zipf 4-5", 4.0, 5.0),
    ("zipf 3-4", 3.0, 4.0),
    ("zipf<3", -math.inf, 3.0),
)
_WORD = re.compile(r"[a-z]+")


def word_frequencies(vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Token ids, Zipf frequencies and words of the whole-word entries of ``vocab`` (token -> id)."""
    try:
        from wordfreq import zipf_frequency
    except ImportError:
        raise UntwineError("word frequencies need the wordfreq package; install the [lm] extra: pip install 'untwine[lm]'") from None
    words = sorted((w for w in vocab if _WORD.fullmatch(w)), key=lambda w: vocab[w])
    if not words:
        raise UntwineError("the tokenizer's vocabulary has no whole-word (lower-case letter) entries")
    ids = np.array([vocab[w] for w in words], dtype=np.int64)
    zipf = np.array([zipf_frequency(w, "en") for w in words], dtype=np.float64)
    return ids, zipf, words


def frequency_groups(vocab: dict[str, int], bins=FREQUENCY_BINS) -> dict[str, np.ndarray]:
    """Token ids of each frequency bin (module docstring), most frequent first."""
    ids, zipf, _ = word_frequencies(vocab)
    return {label: ids[(zipf >= lo) & (zipf < hi)] for label, lo, hi in bins}


def embedding_health(
    embeddings, groups: dict[str, np.ndarray], *, max_rows: int = MAX_PAIR_ROWS, seed: int = 0, **kwargs
) -> dict[str, dict[str, float]]:
    """:func:`health_report` of the embedding rows of each group, every group subsampled to one size."""
    emb = np.asarray(embeddings)
    sizes = {g: len(ix) for g, ix in groups.items()}
    small = [g for g, s in sizes.items() if s < 3]
    if small:
        raise UntwineError(f"frequency group(s) {', '.join(small)} hold fewer than 3 tokens")
    n = min(min(sizes.values()), max_rows)
    out = {}
    for g, ix in groups.items():
        rows = subsample(emb[np.asarray(ix)], n, seed)
        rep = health_report(rows, max_rows=None, seed=seed, **kwargs)
        rep["group_tokens"] = float(sizes[g])
        rep["sample_seed"] = float(seed)
        out[g] = rep
    return out


def layer_health(acts_by_layer: dict[int | str, object], *, max_rows: int = MAX_PAIR_ROWS, seed: int = 0, **kwargs):
    """:func:`health_report` of each layer's activations (``{layer: array or ACTS path}``; a layer is a
    hidden-state number or, for ``untwine activations`` folders, a module path)."""
    from untwine.activations.reader import read_activations

    out = {}
    for layer, acts in acts_by_layer.items():
        x = acts if isinstance(acts, np.ndarray) else read_activations(acts)
        out[int(layer) if str(layer).isdigit() else str(layer)] = health_report(x, max_rows=max_rows, seed=seed,
                                                                                **kwargs)
    return out


def is_activation_run(path) -> bool:
    """Whether ``path`` is an activations folder (:meth:`ActivationFolder.is_folder
    <untwine.activations.layout.ActivationFolder.is_folder>`)."""
    from untwine.activations.layout import ActivationFolder

    return ActivationFolder.is_folder(path)


def run_health(run_dir, *, frequency: bool = False, max_rows: int = MAX_PAIR_ROWS, seed: int = 0, **kwargs):
    """Health of every layer of an ``untwine lm activations`` directory, and with ``frequency`` of
    its model's input embeddings by word-frequency group: ``(layers, groups)`` (``groups`` None without)."""
    from untwine.activations.layout import DEFAULT_COMMAND, ActivationFolder, writing_command

    folder = ActivationFolder(run_dir)
    info = folder.summary()
    if frequency and writing_command(info) != DEFAULT_COMMAND:
        raise UntwineError(f"--frequency needs a language model's activations (`{DEFAULT_COMMAND}`); "
                           f"{run_dir} was written by `{writing_command(info)}`")
    layers = layer_health(folder.layer_dirs(), max_rows=max_rows, seed=seed, **kwargs)
    groups = None
    if frequency:
        from untwine.lm.activations import LanguageModel

        lm = LanguageModel(info.get("model_path") or info["model"], device="cpu")
        groups = embedding_health(lm.input_embeddings(), frequency_groups(lm.tokenizer.get_vocab()),
                                  max_rows=max_rows, seed=seed, **kwargs)
    return layers, groups


def health_figures(layers: dict[int, dict] | None = None, groups: dict[str, dict] | None = None, *, dpi: int = 90):
    """One PNG per measure: value across layers (left) and across frequency groups (right)."""
    from untwine.viz._images import figure_png_bytes, new_figure

    if not layers and not groups:
        raise UntwineError("nothing to draw: give layer or frequency-group results")
    out = {}
    for m in MEASURES:
        panels = [p for p in (("layers", layers), ("groups", groups)) if p[1]]
        fig = new_figure((4.2 * len(panels), 3.0))
        for i, (kind, res) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            keys = list(res)
            vals = [res[k].get(m, float("nan")) for k in keys]
            if kind == "layers":
                ax.plot(keys, vals, marker="o", color="tab:blue")
                ax.set_xticks(keys)
                ax.set_xlabel("layer (0 = embeddings)" if all(isinstance(k, int) for k in keys) else "layer")
                ax.set_title(f"{m}: activations by layer", fontsize=9)
            else:
                ax.bar(range(len(keys)), vals, color="tab:orange")
                ax.set_xticks(range(len(keys)))
                ax.set_xticklabels(keys, fontsize=8)
                ax.set_xlabel("input embeddings by word frequency")
                ax.set_title(f"{m}: token embeddings", fontsize=9)
            ax.set_ylabel(m)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        out[m] = figure_png_bytes(fig, dpi=dpi)
    return out


def _measures_table(res: dict) -> str:
    from untwine.viz.html import table

    rows = [[str(k), *(rep.get(m, float("nan")) for m in MEASURES), f"{int(rep['rows_sampled'])} of {int(rep['rows'])}"]
            for k, rep in res.items()]
    return table(["", *MEASURES, "rows used (pair measures)"], rows)


def health_report_html(layers=None, groups=None, *, title: str = "Representation health", note: str = "") -> str:
    """A self-contained HTML page (:mod:`untwine.viz.html`): the numbers and one figure per measure."""
    from untwine.viz.html import esc, img, page, section

    figs = health_figures(layers, groups)
    parts = [("layers", "Activations by layer", layers), ("embeddings", "Input token embeddings by word frequency", groups)]
    sections = [section(a, t, _measures_table(res)) for a, t, res in parts if res]
    if note:
        sections.insert(0, section("note", "About", f'<p class="note">{esc(note)}</p>'))
    sections.append(section("figures", "Figures", "".join(img(png, m) for m, png in figs.items())))
    nav = [f'<a href="#{a}">{esc(t)}</a>' for a, t, res in parts if res]
    return page(title, "", "", nav, sections)


__all__ = [
    "FREQUENCY_BINS",
    "embedding_health",
    "frequency_groups",
    "health_figures",
    "health_report_html",
    "is_activation_run",
    "layer_health",
    "run_health",
    "word_frequencies",
]
