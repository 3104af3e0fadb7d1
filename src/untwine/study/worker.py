"""One run of a study: train (or resume) and evaluate it, and record its report.

:func:`execute_run` runs in whichever process an executor chooses
(:mod:`untwine.study.executors`): the caller's, a pool worker or a Ray task.  It takes a
plain dict (:func:`make_task`), so it pickles everywhere, and never raises for a failing
run: the report says what happened.

* an interrupted run (a checkpoint below the step count) is resumed from its latest
  checkpoint (``train(..., resume=True)``); a trained but unevaluated run is only
  evaluated; an evaluation with the study's settings at the step count is reused;
* with a results database in the task, the worker records the run there itself
  (:func:`record_report`); when that fails (or without one) the caller records it.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

from untwine.errors import UntwineError
from untwine.files import read_scores
from untwine.study import results as db
from untwine.study.folder import evaluation_matches, run_dir


def one_line(exc: BaseException) -> str:
    """An exception as one line (its type named unless it is an :class:`UntwineError`)."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if not isinstance(exc, UntwineError):
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg[:500]


def make_task(run, out: Path, db_file: Path | None, threads: int) -> dict[str, Any]:
    """The dict :func:`execute_run` takes: the :class:`~untwine.study.spec.RunSpec` ``run``'s
    :meth:`~untwine.study.spec.RunSpec.to_dict` plus ``run_dir``,
    ``db`` (None: the caller records) and ``threads``."""
    t = run.to_dict()
    t["run_dir"] = str(run_dir(out, run.run_id))
    t["db"] = str(db_file) if db_file is not None else None
    t["threads"] = int(threads)
    return t


def limit_threads(threads: int) -> None:
    """``threads`` torch threads and BLAS/OpenMP threads in this process (no oversubscription)."""
    import torch

    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:  # numpy/scipy/scikit-learn BLAS pools; threadpoolctl comes with scikit-learn
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except Exception:  # noqa: BLE001 - best effort
        pass


def timings(report: dict) -> dict[str, float]:
    """The timings of a report that were measured (None: nothing trained / evaluated in this attempt)."""
    return {k: float(report[k]) for k in ("train_seconds", "eval_seconds", "wall_seconds") if report.get(k) is not None}


def record_report(conn, report: dict) -> None:
    """Record one attempt's report in the results database: ``done`` with its scores, or ``failed``."""
    if report.get("ok"):
        db.finish_run(conn, report["run_id"], report.get("scores", {}), **timings(report))
    else:
        db.set_status(conn, report["run_id"], "failed", error=report.get("error"), **timings(report))


def execute_run(task: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; never raises for a failing run.

    ``task``: a :meth:`RunSpec.to_dict` plus ``run_dir``, ``db`` (the results
    database to record into, or None when the caller records) and ``threads``.
    Returns a report: ``run_id``, ``ok``, ``error``, ``scores``,
    ``train_seconds`` (pure training loop time), ``eval_seconds``,
    ``wall_seconds``, ``trained_steps``, ``resumed_from``, ``reused_evaluation``.
    """
    t0 = time.perf_counter()
    rid = task["run_id"]
    report: dict[str, Any] = {
        "run_id": rid,
        "ok": False,
        "error": None,
        "scores": {},
        "train_seconds": None,
        "eval_seconds": None,
        "wall_seconds": 0.0,
        "trained_steps": 0,
        "resumed_from": None,
        "reused_evaluation": False,
        "pid": os.getpid(),
    }
    conn = None
    try:
        threads = int(task.get("threads") or 0)
        if threads > 0 and task.get("limit_blas", True):
            limit_threads(threads)
        elif threads > 0:
            import torch

            torch.set_num_threads(threads)
        if task.get("db"):
            conn = db.connect(task["db"])
            db.set_status(conn, rid, "running")
        info: dict[str, Any] = {}
        try:
            report["scores"] = _train_and_evaluate(task, info)
        finally:
            report.update(info)
        report["ok"] = True
    except Exception as exc:  # a failing run must never stop the study
        report["error"] = one_line(exc)
        report["traceback"] = traceback.format_exc(limit=20)
    report["wall_seconds"] = time.perf_counter() - t0
    if conn is not None:
        try:
            record_report(conn, report)
            report["recorded"] = True
        except Exception as exc:  # recording failed: the parent records instead
            report["recorded"] = False
            report["record_error"] = one_line(exc)
        finally:
            conn.close()
    return report


def _train_and_evaluate(task: dict[str, Any], info: dict[str, Any]) -> dict[str, float]:
    from untwine.train import evaluate_run, is_run_dir, open_run, train
    from untwine.train.config import EvaluationConfig
    from untwine.train.run import METRICS_FILE

    rdir = Path(task["run_dir"])
    tr = dict(task["train"])
    steps = int(tr.pop("steps"))
    device = tr.pop("device", "auto")
    ev = dict(task["evaluation"])

    ckpt_step = None
    if is_run_dir(rdir):
        ck = open_run(rdir).checkpoint
        ckpt_step = ck.step if ck is not None else None
    t = time.perf_counter()
    if ckpt_step is not None and ckpt_step > steps:
        raise UntwineError(
            f"run {task['run_id']} is already trained to step {ckpt_step}, beyond the study's {steps} steps "
            f"(raise train.steps or delete {rdir})"
        )
    if ckpt_step is not None:
        info["resumed_from"] = ckpt_step
        if ckpt_step < steps:
            run = train(out=rdir, resume=True, steps=steps, device=device,
                        **{k: v for k, v in tr.items() if k in ("checkpoint_every", "keep_checkpoints")})
            info["train_seconds"] = float(getattr(run, "train_seconds", time.perf_counter() - t))
            info["trained_steps"] = steps - ckpt_step
    else:
        run = train(
            task["model"],
            task["dataset_ref"],
            steps=steps,
            out=rdir,
            seed=int(task["seed"]),
            device=device,
            hparams=task["hparams"],
            overwrite=True,  # clears what an attempt that never checkpointed left behind
            progress=False,
            **tr,
        )
        info["train_seconds"] = float(getattr(run, "train_seconds", time.perf_counter() - t))
        info["trained_steps"] = steps

    t = time.perf_counter()
    if evaluation_matches(rdir, ev, steps):
        scores = read_scores(rdir / METRICS_FILE)
        info["reused_evaluation"] = True
    else:
        scores = evaluate_run(rdir, EvaluationConfig.from_dict(dict(ev, device=device)), write=True)
    info["eval_seconds"] = time.perf_counter() - t
    return {k: float(v) for k, v in scores.items()}
