"""The study directory: its layout, the resolved spec copy and which of its runs are finished.

A study directory holds ``study.yaml`` (the resolved spec, :data:`SPEC_COPY`),
``runs/RUN_ID/`` (one run directory per run, as made by ``untwine train``, under
:data:`RUNS_DIR`) and ``results.sqlite`` (:mod:`untwine.study.results`).

A run is *finished* when the results database says ``done`` and its run directory
holds an evaluation at the study's step count with the study's evaluation settings
(:func:`evaluation_matches`); :func:`finished_runs` lists them, so a study run again
skips them.  (This module, the worker and UDR import nothing from
:mod:`untwine.study.spec`, which imports :mod:`untwine.study.udr`: no import cycle.)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from untwine.files import atomic_write_text, read_yaml
from untwine.study import results as db

RUNS_DIR = "runs"
SPEC_COPY = "study.yaml"


def run_dir(out, run_id: str) -> Path:
    """The run directory of run ``run_id`` in study directory ``out``."""
    return Path(out) / RUNS_DIR / run_id


def write_spec_copy(spec, out: Path) -> None:
    """Write the resolved :class:`~untwine.study.spec.StudySpec` ``spec`` into the study directory."""
    text = "# untwine study (resolved); re-run with `untwine study run` on the original file\n"
    atomic_write_text(Path(out) / SPEC_COPY, text + yaml.safe_dump(spec.to_dict(), sort_keys=False))


def load_study_spec(out):
    """The resolved spec copy a study directory holds (for `results`/`compare`), or None."""
    p = Path(out) / SPEC_COPY
    return read_yaml(p, what="study copy") if p.is_file() else None


def evaluation_matches(run_dir, evaluation: dict, steps: int) -> bool:
    """Whether ``run_dir`` holds metrics computed at ``steps`` with the evaluation settings
    ``evaluation`` (a study's evaluation section: the EvaluationConfig without its device)."""
    from untwine.train.config import EvaluationConfig
    from untwine.train.evaluate import read_settings, saved_config
    from untwine.train.run import METRICS_FILE

    p = Path(run_dir)
    if not (p / METRICS_FILE).is_file():
        return False
    try:
        s = read_settings(p)
        if not s or int(s["step"]) != int(steps):
            return False
        return saved_config(s).identity() == EvaluationConfig.from_dict(evaluation).identity()
    except (KeyError, TypeError, ValueError):
        return False


def finished_runs(out, runs: list) -> set[str]:
    """Ids of the runs (:class:`~untwine.study.spec.RunSpec`) recorded ``done`` whose run directory
    holds a matching evaluation."""
    p = db.db_path(out)
    if not p.is_file():
        return set()
    conn = db.connect(p)
    try:
        rows = db.run_rows(conn)
    finally:
        conn.close()
    done = set()
    for r in runs:
        row = rows.get(r.run_id)
        if row and row["status"] == "done" and evaluation_matches(run_dir(out, r.run_id), r.evaluation, r.steps):
            done.add(r.run_id)
    return done
