"""Comparing the runs of a study: the plots of the literature and a text summary.

:func:`compare_study` reads the results database of a study directory (finished
runs only) and writes, into ``FIG_DIR`` (default ``STUDY_DIR/compare``):

* ``distributions.png``: per metric, one box per model (per model and dataset
  when the study has several datasets) over all its seeds and hyper-parameters,
  every run drawn as a point (Locatello et al. 2019, Fig. 6 style);
* ``rank_correlation.png``: the Spearman rank-correlation matrix between metrics
  across runs (Locatello et al. 2019, Fig. 4 style); also ``rank_correlation.csv``;
* ``hparams_MODEL_HPARAM.png``: for each model and each hyper-parameter taking at
  least two values, every metric against that hyper-parameter: mean +- std over
  seeds, one line per combination of the model's other hyper-parameters;
* ``summary.txt``: per metric (and dataset), which model leads -- the model whose
  best configuration has the best mean over seeds -- with that configuration's
  mean, std across seeds and seed count, and the runner-up.

Direction: higher is better except for the keys the metric table marks (:func:`lower_is_better`);
counts (:data:`untwine.metrics.registry.COUNTS`, e.g. ``num_passive_latents``) have none, so no
leader is named for them.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from untwine.errors import UntwineError
from untwine.study import results as db

def is_count(metric: str) -> bool:
    """Whether ``metric`` is a count with no better direction (``mean.KEY`` keys follow ``KEY``)."""
    from untwine.metrics import registry

    return metric.rsplit(".", 1)[-1] in registry.COUNTS


def lower_is_better(metric: str) -> bool:
    """Whether smaller values of ``metric`` are better (from the metric table; ``mean.KEY``-style
    keys of the representation comparison follow their ``KEY``)."""
    from untwine.metrics import registry

    return metric.rsplit(".", 1)[-1] in registry.lower_is_better()


SUMMARY_FILE = "summary.txt"


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))


def load_done(study_dir) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Finished runs of a study: ``(rows, metric names, hparam names)``; each row has
    ``model``, ``dataset``, ``seed``, ``config_id``, ``hparams`` (dict) and ``metrics`` (dict)."""
    conn = db.connect(db.db_path(study_dir), create=False, check=True)
    try:
        runs = db.run_rows(conn)
        met: dict[str, dict[str, float]] = {}
        for rid, name, value in db.metric_values(conn):
            if _finite(value):
                met.setdefault(rid, {})[name] = float(value)
    finally:
        conn.close()
    rows = []
    for rid, r in runs.items():
        if r["status"] != "done":
            continue
        rows.append(dict(r, metrics=met.get(rid, {})))
    metrics = sorted({m for r in rows for m in r["metrics"]})
    hps = sorted({h for r in rows for h in r["hparams"]})
    return rows, metrics, hps


def _better(metric: str, a: float, b: float) -> bool:
    return a < b if lower_is_better(metric) else a > b


def _fmt_hp(hp: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(hp.items())) or "defaults"


def summarize(rows: list[dict[str, Any]], metrics: list[str]) -> tuple[str, dict[str, Any]]:
    """The text summary and its data: per (dataset, metric) the leading model and its spread across seeds."""
    datasets = sorted({r["dataset"] for r in rows})
    lines = [f"{len(rows)} finished runs; models: {', '.join(sorted({r['model'] for r in rows}))}; datasets: {', '.join(datasets)}"]
    lines.append("leader = model whose best configuration has the best mean over seeds (mean +- std across seeds, n seeds)")
    data: dict[str, Any] = {}
    for ds in datasets:
        sub = [r for r in rows if r["dataset"] == ds]
        if len(datasets) > 1:
            lines.append("")
            lines.append(f"dataset {ds}:")
        for m in metrics:
            best_per_model: dict[str, tuple[float, float, int, dict]] = {}
            configs: dict[tuple[str, str], list[dict]] = {}
            for r in sub:
                if m in r["metrics"]:
                    configs.setdefault((r["model"], r["config_id"]), []).append(r)
            for (model, _), members in configs.items():
                vals = np.array([x["metrics"][m] for x in members])
                mean, std = float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
                cur = best_per_model.get(model)
                if cur is None or _better(m, mean, cur[0]):
                    best_per_model[model] = (mean, std, len(vals), members[0]["hparams"])
            if not best_per_model:
                continue
            order = sorted(best_per_model.items(), key=lambda kv: kv[1][0], reverse=not lower_is_better(m))
            lead, (mean, std, n, hp) = order[0]
            arrow = "lower is better" if lower_is_better(m) else "higher is better"
            tied = [k for k, v in order[1:] if v[0] == mean]
            count = is_count(m)
            if count:  # no direction: list the models' values, name nobody
                text = f"  {m} (a count, no better direction): " + ", ".join(
                    f"{k} {v[0]:.4g}" for k, v in sorted(best_per_model.items()))
            elif tied:
                text = f"  {m} ({arrow}): no leader, {', '.join([lead, *tied])} tie at {mean:.4g} (+- {std:.2g}, n={n})"
            else:
                text = f"  {m} ({arrow}): {lead} leads with {mean:.4g} +- {std:.2g} (n={n}; {_fmt_hp(hp)})"
            if len(order) > 1 and not tied and not count:
                second, (m2, s2, n2, _) = order[1]
                text += f"; next {second} {m2:.4g} +- {s2:.2g} (n={n2})"
            lines.append(text)
            data.setdefault(ds, {})[m] = {
                "leader": None if tied or count else lead,
                "mean": mean,
                "std": std,
                "n": n,
                "hparams": hp,
                "ranking": [[k, v[0], v[1], v[2]] for k, v in order],
            }
    return "\n".join(lines) + "\n", data


def _grid(n: int, ncols: int = 4) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(math.ceil(n / ncols)), ncols


def _group_label(r: dict, many_datasets: bool) -> str:
    return f"{r['model']}\n{Path(r['dataset']).stem}" if many_datasets else r["model"]


def plot_distributions(rows, metrics, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    many = len({r["dataset"] for r in rows}) > 1
    groups = sorted({_group_label(r, many) for r in rows})
    nr, nc = _grid(len(metrics))
    fig, axes = plt.subplots(nr, nc, figsize=(3.4 * nc, 2.9 * nr), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, m in zip(axes.ravel(), metrics):
        data = [[r["metrics"][m] for r in rows if _group_label(r, many) == g and m in r["metrics"]] for g in groups]
        pos = [i + 1 for i, d in enumerate(data) if d]
        ax.boxplot([d for d in data if d], positions=pos, widths=0.6, showfliers=False)
        for i, d in enumerate(data):
            if d:
                ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, len(d)), d, s=10, alpha=0.7, zorder=3)
        ax.set_xticks(range(1, len(groups) + 1))
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=7)
        ax.set_title(m + (" (lower better)" if lower_is_better(m) else ""), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("metric distributions per model (all seeds and hyper-parameters)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rank_correlation(rows, metrics) -> np.ndarray:
    """Spearman correlation between metrics over the runs where both are present (NaN when undefined)."""
    from scipy.stats import spearmanr

    k = len(metrics)
    out = np.full((k, k), np.nan)
    for i, j in itertools.combinations_with_replacement(range(k), 2):
        pairs = [(r["metrics"][metrics[i]], r["metrics"][metrics[j]]) for r in rows if metrics[i] in r["metrics"] and metrics[j] in r["metrics"]]
        if len(pairs) < 3:
            continue
        a, b = np.array(pairs).T
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        rho = float(spearmanr(a, b).statistic)
        out[i, j] = out[j, i] = rho
    return out


def plot_rank_correlation(corr: np.ndarray, metrics, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = len(metrics)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(np.ma.masked_invalid(corr), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(metrics, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(metrics, fontsize=7)
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if np.isfinite(corr[i, j]):
                    ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                            color="white" if abs(corr[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Spearman rank correlation")
    ax.set_title("rank correlation between metrics (across runs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sortable(v):
    return (0, float(v), "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0.0, str(v))


def plot_hparam_curves(rows, metrics, fig_dir: Path) -> list[Path]:
    """One figure per (model, hyper-parameter with >= 2 values): every metric vs that hyper-parameter."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = []
    for model in sorted({r["model"] for r in rows}):
        mrows = [r for r in rows if r["model"] == model]
        names = sorted({h for r in mrows for h in r["hparams"]})
        for h in names:
            values = sorted({json.dumps(r["hparams"].get(h)) for r in mrows}, key=lambda s: _sortable(json.loads(s)))
            if len(values) < 2:
                continue
            xs = [json.loads(v) for v in values]
            numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
            nr, nc = _grid(len(metrics))
            fig, axes = plt.subplots(nr, nc, figsize=(3.4 * nc, 2.8 * nr), squeeze=False)
            # one line per (dataset, other hyper-parameters)
            def other(r):
                return json.dumps([r["dataset"], {k: v for k, v in sorted(r["hparams"].items()) if k != h}])

            lines = sorted({other(r) for r in mrows})
            for ax, m in zip(axes.ravel(), metrics):
                for key in lines:
                    pts_x, mean, std = [], [], []
                    for i, x in enumerate(xs):
                        vals = [r["metrics"][m] for r in mrows if other(r) == key and json.dumps(r["hparams"].get(h)) == values[i] and m in r["metrics"]]
                        if vals:
                            pts_x.append(x if numeric else i)
                            mean.append(np.mean(vals))
                            std.append(np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
                    if not pts_x:
                        continue
                    ds, oth = json.loads(key)
                    label = ", ".join([*(f"{k}={v}" for k, v in oth.items()), *([Path(ds).stem] if len({r['dataset'] for r in mrows}) > 1 else [])])
                    ax.errorbar(pts_x, mean, yerr=std, marker="o", ms=3, capsize=3, label=label or None)
                if numeric and all(x > 0 for x in xs) and max(xs) / min(xs) >= 20:
                    ax.set_xscale("log")
                if not numeric:
                    ax.set_xticks(range(len(xs)))
                    ax.set_xticklabels([str(x) for x in xs], fontsize=7)
                ax.set_title(m, fontsize=9)
                ax.set_xlabel(h, fontsize=8)
                ax.tick_params(labelsize=7)
            for ax in axes.ravel()[len(metrics):]:
                ax.set_visible(False)
            handles, labels = axes.ravel()[0].get_legend_handles_labels()
            if labels:
                fig.legend(handles, labels, loc="lower right", fontsize=7)
            fig.suptitle(f"{model}: metrics vs {h} (mean +- std over seeds)", fontsize=10)
            fig.tight_layout()
            p = fig_dir / f"hparams_{_safe(model)}_{_safe(h)}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
    return paths


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s))


def compare_study(study_dir, out=None, *, metrics: list[str] | None = None) -> dict[str, Any]:
    """Write the comparison figures and ``summary.txt`` of a study (see the module docstring).

    Returns ``{"figures": [paths], "summary": text, "summary_path": path,
    "leaders": {dataset: {metric: {...}}}, "metrics": [...], "rank_correlation": array}``.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise UntwineError(f"study directory not found: {study_dir}")
    rows, all_metrics, _ = load_done(study_dir)
    if not rows:
        raise UntwineError(f"{study_dir}: no finished runs to compare yet")
    if metrics:
        unknown = [m for m in metrics if m not in all_metrics]
        if unknown:
            raise UntwineError(f"--metrics: no metric {unknown[0]!r} in the study; metrics: {', '.join(all_metrics)}")
        all_metrics = list(metrics)
    if not all_metrics:
        raise UntwineError(f"{study_dir}: the finished runs hold no metric values")
    fig_dir = Path(out) if out is not None else study_dir / "compare"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = [plot_distributions(rows, all_metrics, fig_dir / "distributions.png")]
    corr = rank_correlation(rows, all_metrics)
    figures.append(plot_rank_correlation(corr, all_metrics, fig_dir / "rank_correlation.png"))
    with open(fig_dir / "rank_correlation.csv", "w") as fh:
        fh.write("metric," + ",".join(all_metrics) + "\n")
        for m, row in zip(all_metrics, corr):
            fh.write(m + "," + ",".join("" if not np.isfinite(v) else f"{v:.6f}" for v in row) + "\n")
    figures += plot_hparam_curves(rows, all_metrics, fig_dir)
    text, leaders = summarize(rows, all_metrics)
    (fig_dir / SUMMARY_FILE).write_text(text)
    return {
        "figures": figures,
        "summary": text,
        "summary_path": fig_dir / SUMMARY_FILE,
        "leaders": leaders,
        "metrics": all_metrics,
        "rank_correlation": corr,
        "out": fig_dir,
    }
