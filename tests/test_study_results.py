"""The results database (concurrent writers, the wide view, queries) and the comparison summary."""

import math
import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from untwine.errors import UntwineError
from untwine.study import results as db
from untwine.study.compare import compare_study, rank_correlation, summarize


def _run(rid, model="m", seed=0, hparams=None, config_id=None):
    return {
        "run_id": rid,
        "config_id": config_id or f"{model}-{sorted((hparams or {}).items())}",
        "model": model,
        "dataset": "toy",
        "seed": seed,
        "hparams": hparams or {},
        "train": {"steps": 10, "batch_size": 8},
    }


def _writer(args):
    path, worker, n = args
    conn = db.connect(path, timeout=60)
    try:
        for i in range(n):
            rid = f"w{worker}-{i}"
            db.set_status(conn, rid, "running")
            db.finish_run(conn, rid, {"mig": worker + i / 1000, "sap": float("nan")}, train_seconds=0.1, wall_seconds=0.2)
    finally:
        conn.close()
    return n


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "results.sqlite"
    workers, n = 4, 40
    conn = db.connect(path)
    db.register_runs(conn, [_run(f"w{w}-{i}", seed=i) for w in range(workers) for i in range(n)])
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with mp.get_context("spawn").Pool(workers) as pool:
        assert pool.map(_writer, [(str(path), w, n) for w in range(workers)]) == [n] * workers
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0] == workers * n
    assert conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'mig'").fetchone()[0] == workers * n
    assert conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'sap' AND value IS NULL").fetchone()[0] == workers * n
    assert conn.execute("SELECT value FROM metrics WHERE run_id = 'w3-7' AND name = 'mig'").fetchone()[0] == pytest.approx(3.007)
    conn.close()


def _study_db(tmp_path):
    """A synthetic study: model a leads on mig, b on sap; recon = -mig exactly."""
    conn = db.connect(db.db_path(tmp_path))
    rows, scores = [], {}
    rng = np.random.default_rng(0)
    for model, base in (("a", 0.6), ("b", 0.2)):
        for beta in (1, 4, 16):
            for seed in range(3):
                rid = f"{model}-beta{beta}-s{seed}"
                rows.append(_run(rid, model, seed, {"beta": beta}, config_id=f"{model}{beta}"))
                mig = base + 0.01 * beta + 0.001 * seed
                scores[rid] = {"mig": mig, "sap": 1 - mig + rng.normal(0, 0.001), "reconstruction": -mig, "seed": float(seed)}
    rows.append(_run("a-broken", "a", 9, {"beta": 1}))
    db.register_runs(conn, rows)
    for rid, s in scores.items():
        db.finish_run(conn, rid, s, train_seconds=1.0)
    db.set_status(conn, "a-broken", "failed", error="RuntimeError: boom")
    conn.close()
    return scores


def test_wide_view_query_where_sort_and_name_clashes(tmp_path):
    _study_db(tmp_path)
    cols, rows, info = db.query(tmp_path, where="model = 'a' AND beta >= 4 AND status = 'done'", sort="mig")
    assert len(rows) == 6 and all(r["model"] == "a" and r["beta"] >= 4 for r in rows)
    assert [r["mig"] for r in rows] == sorted((r["mig"] for r in rows), reverse=True)
    assert rows[0]["run_id"] == "a-beta16-s2"
    # a metric named like a runs column gets a prefix, hyper-parameters keep their name
    assert info["metrics"]["seed"] == "m_seed" and info["hparams"]["beta"] == "beta"
    _, rows, _ = db.query(tmp_path, sort="mig", descending=False, status="done")
    assert rows[0]["run_id"] == "b-beta1-s0"
    _, rows, _ = db.query(tmp_path, where="status = 'failed'")
    assert [(r["run_id"], r["error"], r["mig"]) for r in rows] == [("a-broken", "RuntimeError: boom", None)]
    # the view is a real SQL view any client can query
    conn = sqlite3.connect(db.db_path(tmp_path))
    assert conn.execute("SELECT COUNT(*) FROM results WHERE mig > 0.5").fetchone()[0] == 9
    conn.close()
    with pytest.raises(UntwineError, match="no such column: nope"):
        db.query(tmp_path, where="nope > 1")
    with pytest.raises(UntwineError, match="--sort"):
        db.query(tmp_path, sort="nope")
    with pytest.raises(UntwineError, match="no results database"):
        db.query(tmp_path / "elsewhere")


def test_summary_names_leaders_with_spread_across_seeds(tmp_path):
    scores = _study_db(tmp_path)
    res = compare_study(tmp_path, tmp_path / "figs", metrics=["mig", "sap", "reconstruction"])
    lead = res["leaders"]["toy"]
    # mig: model a, best configuration beta 16, mean over seeds 0.76 + 0.001, std of (0, .001, .002) = 0.001
    assert lead["mig"]["leader"] == "a" and lead["mig"]["hparams"] == {"beta": 16}
    assert lead["mig"]["mean"] == pytest.approx(0.6 + 0.16 + 0.001) and lead["mig"]["std"] == pytest.approx(0.001)
    assert lead["mig"]["n"] == 3
    assert lead["sap"]["leader"] == "b" and lead["sap"]["hparams"] == {"beta": 1}
    # lower is better for the reconstruction error: a (recon = -mig) leads there too
    assert lead["reconstruction"]["leader"] == "a"
    assert "mig (higher is better): a leads with 0.761 +- 0.001 (n=3; beta=16); next b" in res["summary"]
    assert (tmp_path / "figs" / "summary.txt").read_text() == res["summary"]
    names = {p.name for p in res["figures"]}
    assert {"distributions.png", "rank_correlation.png", "hparams_a_beta.png", "hparams_b_beta.png"} <= names
    # mig and reconstruction are exact opposites: rank correlation -1
    corr = res["rank_correlation"]
    assert corr[0, 2] == pytest.approx(-1.0) and corr[0, 0] == pytest.approx(1.0)
    assert len(scores) == 18


def test_rank_correlation_is_nan_where_undefined():
    rows = [{"metrics": {"x": float(i), "y": 1.0}} for i in range(5)]
    c = rank_correlation(rows, ["x", "y"])
    assert c[0, 0] == pytest.approx(1.0) and math.isnan(c[0, 1]) and math.isnan(c[1, 1])
    text, data = summarize([{"model": "m", "dataset": "d", "config_id": "c", "hparams": {}, "metrics": {"x": 1.0}}], ["x"])
    assert data["d"]["x"]["leader"] == "m" and data["d"]["x"]["std"] == 0.0 and "n=1" in text
    tie = [{"model": m, "dataset": "d", "config_id": m, "hparams": {}, "metrics": {"udr": 0.0}} for m in ("p", "q")]
    text, data = summarize(tie, ["udr"])
    assert data["d"]["udr"]["leader"] is None and "no leader, p, q tie at 0" in text
    # a count has no better direction: values listed, nobody leads (not "higher is better")
    counts = [{"model": m, "dataset": "d", "config_id": m, "hparams": {}, "metrics": {"num_passive_latents": v}}
              for m, v in (("p", 2.0), ("q", 5.0))]
    text, data = summarize(counts, ["num_passive_latents"])
    assert data["d"]["num_passive_latents"]["leader"] is None
    assert "num_passive_latents (a count, no better direction): p 2, q 5" in text and "better)" not in text


def test_compare_without_finished_runs_is_one_line_error(tmp_path):
    conn = db.connect(db.db_path(tmp_path))
    db.register_runs(conn, [_run("x")])
    conn.close()
    with pytest.raises(UntwineError, match="no finished runs"):
        compare_study(tmp_path)
    with pytest.raises(UntwineError, match="not found"):
        compare_study(tmp_path / "nope")
