"""Running a study: every run trained, evaluated and recorded, in parallel, fault tolerant.

:func:`run_study` expands a :class:`~untwine.study.spec.StudySpec` into runs and
executes :func:`execute_run` for each run that is not finished yet:

* locally in ``workers`` processes (``concurrent.futures.ProcessPoolExecutor``
  with the *spawn* start method; each worker uses ``cores // workers`` torch
  threads), or in this process when ``workers == 1``;
* or, with ``ray="auto"`` / ``ray="HOST:PORT"``, as Ray tasks on an existing
  cluster (``ray.init(address=...)``; untwine must be installed on every node and
  the study directory must be on a file system every node sees).

The study directory holds ``study.yaml`` (the resolved spec), ``runs/RUN_ID/``
(one run directory per run, as made by ``untwine train``) and
``results.sqlite`` (:mod:`untwine.study.results`).

Idempotent and fault tolerant:

* a run is *finished* when the database says ``done`` and its run directory
  holds an evaluation at the study's step count with the study's evaluation
  settings; finished runs are skipped;
* an interrupted run (a checkpoint below the step count) is resumed from its
  latest checkpoint (``train(..., resume=True)``); a trained but unevaluated run
  is only evaluated;
* a run that raises is recorded as ``failed`` with its error and retried up to
  ``spec.retries`` more times (resuming from its last checkpoint); the other runs
  go on.  A worker process that dies (out of memory, killed) counts as a failed
  attempt of the runs it may have held, and the pool is rebuilt.

Several runners may share one study directory (two terminals, or cluster jobs on one
file system): a runner works only on runs whose lease it holds in the results
database (:func:`untwine.study.results.claim`), renews its leases while it works and
releases them when a run is finished or has failed for good.  The other runners move
on to unclaimed runs, then wait for the rest: runs another runner finishes count as
done, and the runs of a runner that died (its leases expire after
:data:`LEASE_SECONDS`) are taken over.  Every run is trained once.

After the runs, UDR (:mod:`untwine.study.udr`) is computed for every
configuration with at least two finished seeds: each run's model encodes the
same ``udr.num_points`` inputs and the per-run score goes into the ``metrics``
table as ``udr``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from untwine.errors import UntwineError
from untwine.files import atomic_write_text, read_scores, read_yaml
from untwine.study import results as db
from untwine.study.spec import RunSpec, StudySpec, expand

RUNS_DIR = "runs"
SPEC_COPY = "study.yaml"
#: how long a runner's claim on a run lasts without renewal (it renews every quarter of it)
LEASE_SECONDS = 60.0
#: how often a runner with nothing to do looks again at runs other runners hold
POLL_SECONDS = 2.0


@dataclass
class StudyResult:
    """What :func:`run_study` did."""

    out: Path
    runs: list[str]
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    udr: dict[str, float] = field(default_factory=dict)
    udr_errors: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0
    reports: dict[str, dict] = field(default_factory=dict)  #: run id -> execute_run's last report

    @property
    def ok(self) -> bool:
        return not self.failed


# -- helpers ---------------------------------------------------------------------------------
def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if not isinstance(exc, UntwineError):
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg[:500]


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


def _task(run: RunSpec, out: Path, db_file: Path | None, threads: int) -> dict[str, Any]:
    t = run.to_dict()
    t["run_dir"] = str(out / RUNS_DIR / run.run_id)
    t["db"] = str(db_file) if db_file is not None else None
    t["threads"] = int(threads)
    return t


# -- one run (runs in a worker) -----------------------------------------------------------------
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
            _limit_threads(threads)
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
        report["error"] = _one_line(exc)
        report["traceback"] = traceback.format_exc(limit=20)
    report["wall_seconds"] = time.perf_counter() - t0
    if conn is not None:
        try:
            if report["ok"]:
                db.finish_run(conn, rid, report["scores"], **_timings(report))
            else:
                db.set_status(conn, rid, "failed", error=report["error"], **_timings(report))
            report["recorded"] = True
        except Exception as exc:  # recording failed: the parent records instead
            report["recorded"] = False
            report["record_error"] = _one_line(exc)
        finally:
            conn.close()
    return report


def _timings(report: dict) -> dict[str, float]:
    """The timings of a report that were measured (None: nothing trained / evaluated in this attempt)."""
    return {k: float(report[k]) for k in ("train_seconds", "eval_seconds", "wall_seconds") if report.get(k) is not None}


def _train_and_evaluate(task: dict[str, Any], info: dict[str, Any]) -> dict[str, float]:
    from untwine.train import evaluate_run, is_run_dir, open_run, train
    from untwine.train.config import EvaluationConfig
    from untwine.train.run import METRICS_FILE

    run_dir = Path(task["run_dir"])
    tr = dict(task["train"])
    steps = int(tr.pop("steps"))
    device = tr.pop("device", "auto")
    ev = dict(task["evaluation"])

    ckpt_step = None
    if is_run_dir(run_dir):
        ck = open_run(run_dir).checkpoint
        ckpt_step = ck.step if ck is not None else None
    t = time.perf_counter()
    if ckpt_step is not None and ckpt_step > steps:
        raise UntwineError(
            f"run {task['run_id']} is already trained to step {ckpt_step}, beyond the study's {steps} steps "
            f"(raise train.steps or delete {run_dir})"
        )
    if ckpt_step is not None:
        info["resumed_from"] = ckpt_step
        if ckpt_step < steps:
            run = train(out=run_dir, resume=True, steps=steps, device=device,
                        **{k: v for k, v in tr.items() if k in ("checkpoint_every", "keep_checkpoints")})
            info["train_seconds"] = float(getattr(run, "train_seconds", time.perf_counter() - t))
            info["trained_steps"] = steps - ckpt_step
    else:
        run = train(
            task["model"],
            task["dataset_ref"],
            steps=steps,
            out=run_dir,
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
    if evaluation_matches(run_dir, ev, steps):
        scores = read_scores(run_dir / METRICS_FILE)
        info["reused_evaluation"] = True
    else:
        scores = evaluate_run(run_dir, EvaluationConfig.from_dict(dict(ev, device=device)), write=True)
    info["eval_seconds"] = time.perf_counter() - t
    return {k: float(v) for k, v in scores.items()}


def _limit_threads(threads: int) -> None:
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


def _init_worker(threads: int) -> None:
    _limit_threads(threads)


# -- progress -----------------------------------------------------------------------------------
class _Reporter:
    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self.enabled = enabled
        self._p = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        if self.console.is_terminal:
            self._p = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self._task = self._p.add_task(title, total=total, status="")
            self._p.start()

    def say(self, msg: str) -> None:
        if not self.enabled:
            return
        if self._p is not None:
            self._p.console.print(msg, highlight=False)
        else:
            from rich.text import Text

            print(Text.from_markup(msg).plain, file=sys.stderr, flush=True)

    def update(self, completed: int, status: str) -> None:
        if self._p is not None:
            self._p.update(self._task, completed=completed, status=status)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None


# -- the study ------------------------------------------------------------------------------------
def write_spec_copy(spec: StudySpec, out: Path) -> None:
    text = "# untwine study (resolved); re-run with `untwine study run` on the original file\n"
    atomic_write_text(out / SPEC_COPY, text + yaml.safe_dump(spec.to_dict(), sort_keys=False))


def finished_runs(out, runs: list[RunSpec]) -> set[str]:
    """Ids of the runs recorded ``done`` whose run directory holds a matching evaluation."""
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
        if row and row["status"] == "done" and evaluation_matches(Path(out) / RUNS_DIR / r.run_id, r.evaluation, r.steps):
            done.add(r.run_id)
    return done


def run_study(
    spec: StudySpec,
    out,
    *,
    workers: int = 1,
    ray: str | None = None,
    progress: bool = True,
    threads: int | None = None,
    udr: bool | None = None,
) -> StudyResult:
    """Execute every unfinished run of ``spec`` into study directory ``out`` (see the module docstring)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UntwineError(f"--workers must be a positive integer, got {workers!r}")
    t_start = time.perf_counter()
    if ray is not None:
        if not isinstance(ray, str) or not ray.strip():
            raise UntwineError(f"--ray expects auto or HOST:PORT, got {ray!r}")
        _import_ray()  # one-line error before any work when ray is missing
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UntwineError(f"--out {out} exists and is not a directory")
    runs = expand(spec)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUNS_DIR).mkdir(exist_ok=True)
    write_spec_copy(spec, out)
    db_file = db.db_path(out)
    conn = db.connect(db_file, check=True)
    try:
        db.register_runs(conn, [dict(r.to_dict(), run_dir=str(Path(RUNS_DIR) / r.run_id)) for r in runs])
    finally:
        conn.close()

    result = StudyResult(out=out, runs=[r.run_id for r in runs])
    finished = finished_runs(out, runs)
    result.skipped = [r.run_id for r in runs if r.run_id in finished]
    todo = [r for r in runs if r.run_id not in finished]

    cores = available_cores()
    if ray is not None:
        n_threads = threads or 1
    else:
        n_threads = threads or max(1, cores // min(workers, max(1, len(todo))))
    rep = _Reporter(progress, len(runs), f"study {spec.name}")
    rep.update(len(finished), "")
    if result.skipped:
        rep.say(f"{len(result.skipped)} of {len(runs)} runs already finished in {out}; skipping them")
    try:
        if todo:
            if ray is not None:
                _execute_ray(spec, todo, out, db_file, ray, n_threads, result, rep, len(finished))
            else:
                _execute_local(spec, todo, out, db_file, workers, n_threads, result, rep, len(finished))
        if udr if udr is not None else spec.udr["enabled"]:
            compute_study_udr(spec, runs, out, result=result, say=rep.say)
        conn = db.connect(db_file)
        try:
            db.refresh_view(conn)
        finally:
            conn.close()
    finally:
        rep.close()
    result.wall_seconds = time.perf_counter() - t_start
    return result


def _record_from_parent(db_file: Path, report: dict) -> None:
    conn = db.connect(db_file)
    try:
        if report.get("ok"):
            db.finish_run(conn, report["run_id"], report.get("scores", {}), **_timings(report))
        else:
            db.set_status(conn, report["run_id"], "failed", error=report.get("error"), **_timings(report))
    finally:
        conn.close()


class _Claims:
    """This runner's leases on runs in the results database, renewed while it works on them.

    Several ``untwine study run`` processes (two terminals, or cluster jobs sharing the
    study directory) may work on one study: each run is trained by the runner that holds
    its lease.  A background thread renews the held leases every ``LEASE_SECONDS / 4``; a
    runner that dies stops renewing, and its runs are taken over once their leases expire.
    """

    def __init__(self, db_file: Path) -> None:
        import socket
        import threading
        import uuid

        self.db_file = db_file
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="untwine-study-leases", daemon=True)
        self._thread.start()

    def _call(self, fn, *args):
        conn = db.connect(self.db_file)
        try:
            return fn(conn, *args)
        finally:
            conn.close()

    def claim(self, run_id: str) -> bool:
        ok = self._call(db.claim, run_id, self.owner, LEASE_SECONDS)
        if ok:
            with self._lock:
                self.held.add(run_id)
        return ok

    def release(self, run_id: str) -> None:
        with self._lock:
            self.held.discard(run_id)
        self._call(db.release, run_id, self.owner)

    def _renew_loop(self) -> None:
        while not self._stop.wait(LEASE_SECONDS / 4):
            with self._lock:
                held = list(self.held)
            try:
                self._call(db.renew, held, self.owner, LEASE_SECONDS)
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for rid in list(self.held):
            try:
                self.release(rid)
            except Exception:  # noqa: BLE001 - an expiring lease frees it anyway
                pass


class _Bookkeeper:
    """Attempts, retries, leases and reporting shared by the local and the Ray executors."""

    def __init__(self, spec, out, db_file, result, rep, completed):
        self.spec, self.out, self.db_file, self.result, self.rep = spec, out, db_file, result, rep
        self.completed = completed
        self.attempts: dict[str, int] = {}
        self.running = 0
        self.claims = _Claims(db_file)
        self.waiting: list[RunSpec] = []  #: runs another runner holds

    def take(self, queue: list[RunSpec]) -> RunSpec | None:
        """The next run of ``queue`` this runner may work on (claimed), or None.

        Runs another runner finished meanwhile are counted as done; runs another live
        runner holds wait in :attr:`waiting`.
        """
        while queue:
            run = queue.pop(0)
            if run.run_id not in self.attempts and finished_runs(self.out, [run]):
                self.result.skipped.append(run.run_id)
                self.completed += 1
                self.rep.say(f"{run.run_id} was finished by another runner")
                self.rep.update(self.completed, self.status())
                continue
            if self.claims.claim(run.run_id):
                return run
            self.waiting.append(run)
        return None

    def wait_for_others(self, queue: list[RunSpec]) -> None:
        """Nothing to do here while other runners hold the remaining runs: wait a little, then
        look at them again (finished, or a lease that expired with its runner)."""
        if self.waiting:
            time.sleep(POLL_SECONDS)
            queue.extend(self.waiting)
            self.waiting.clear()

    def close(self) -> None:
        self.claims.close()

    def start(self, run: RunSpec) -> None:
        self.attempts[run.run_id] = self.attempts.get(run.run_id, 0) + 1
        conn = db.connect(self.db_file)
        try:
            db.write(conn, lambda c: c.execute("UPDATE runs SET attempts = attempts + 1 WHERE run_id = ?", (run.run_id,)))
        finally:
            conn.close()

    def status(self) -> str:
        return f"{self.running} running, {len(self.result.failed)} failed"

    def finish(self, run: RunSpec, report: dict) -> bool:
        """Record one attempt's report; returns True when the run should be tried again."""
        rid = run.run_id
        self.result.reports[rid] = report
        if not report.get("recorded"):
            try:
                _record_from_parent(self.db_file, report)
            except Exception as exc:  # noqa: BLE001 - report, keep going
                self.rep.say(f"[red]could not record {rid} in the results database: {_one_line(exc)}[/red]")
        if report.get("ok"):
            self.claims.release(rid)
            self.result.failed.pop(rid, None)
            self.result.done.append(rid)
            self.completed += 1
            extra = "resumed, " if report.get("resumed_from") is not None else ""
            self.rep.say(
                f"[green]done[/green] {rid} ({extra}train {report.get('train_seconds') or 0:.1f}s, "
                f"eval {report.get('eval_seconds') or 0:.1f}s)"
            )
            self.rep.update(self.completed, self.status())
            return False
        n = self.attempts.get(rid, 1)
        allowed = 1 + self.spec.retries
        if n < allowed:
            self.rep.say(f"[yellow]failed[/yellow] {rid} (attempt {n}/{allowed}, retrying): {report.get('error')}")
            return True
        self.claims.release(rid)
        self.result.failed[rid] = str(report.get("error"))
        self.completed += 1
        self.rep.say(f"[red]failed[/red] {rid} after {n} attempt(s): {report.get('error')}")
        self.rep.update(self.completed, self.status())
        return False


def _execute_local(spec, todo, out, db_file, workers, threads, result, rep, completed) -> None:
    book = _Bookkeeper(spec, out, db_file, result, rep, completed)
    try:
        _run_local(book, todo, out, db_file, workers, threads, rep)
    finally:
        book.close()


def _run_local(book, todo, out, db_file, workers, threads, rep) -> None:
    tasks = {r.run_id: _task(r, out, db_file, threads) for r in todo}
    queue = list(todo)
    if workers == 1:
        for t in tasks.values():
            t["limit_blas"] = False  # runs in the caller's process: only torch's thread count is set (and restored)
        import torch

        old = torch.get_num_threads()
        try:
            while queue or book.waiting:
                run = book.take(queue)
                if run is None:
                    book.wait_for_others(queue)
                    continue
                book.start(run)
                book.running = 1
                rep.update(book.completed, book.status())
                report = execute_run(tasks[run.run_id])
                book.running = 0
                if book.finish(run, report):
                    queue.append(run)
        finally:
            torch.set_num_threads(old)
        return

    pool: ProcessPoolExecutor | None = None
    inflight: dict[Future, RunSpec] = {}

    def new_pool():
        return ProcessPoolExecutor(
            max_workers=min(workers, len(todo)), mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)
        )

    try:
        pool = new_pool()
        while queue or inflight or book.waiting:
            while len(inflight) < workers:
                run = book.take(queue)
                if run is None:
                    break
                book.start(run)
                inflight[pool.submit(execute_run, tasks[run.run_id])] = run
            if not inflight:
                book.wait_for_others(queue)
                continue
            book.running = len(inflight)
            rep.update(book.completed, book.status())
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                run = inflight.pop(fut)
                try:
                    report = fut.result()
                except BrokenProcessPool:
                    broken = True
                    report = {"run_id": run.run_id, "ok": False, "error": "worker process died (killed or out of memory)"}
                except Exception as exc:  # noqa: BLE001 - e.g. a task that could not be pickled
                    report = {"run_id": run.run_id, "ok": False, "error": _one_line(exc)}
                book.running = len(inflight)
                if book.finish(run, report):
                    queue.append(run)
            if broken:
                # every other task of the broken pool is lost too: count it as a failed attempt
                for fut, run in list(inflight.items()):
                    inflight.pop(fut)
                    report = {"run_id": run.run_id, "ok": False, "error": "worker process died (killed or out of memory)"}
                    if book.finish(run, report):
                        queue.append(run)
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
            queue.extend(book.waiting)  # look again at what other runners held
            book.waiting.clear()
    except KeyboardInterrupt:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UntwineError("--ray needs the ray package (pip install 'untwine[ray]')") from None
    return ray


def _execute_ray(spec, todo, out, db_file, address, threads, result, rep, completed) -> None:
    ray = _import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
        except Exception as exc:  # noqa: BLE001 - connection problems are user input
            raise UntwineError(f"--ray {address}: cannot connect to a Ray cluster ({_one_line(exc)})") from None
    book = _Bookkeeper(spec, out, db_file, result, rep, completed)
    remote = ray.remote(num_cpus=threads, max_retries=0)(execute_run)
    # the parent records results: a cluster's nodes may not share a file system fit for SQLite WAL
    tasks = {r.run_id: _task(r, out.resolve(), None, threads) for r in todo}
    for t in tasks.values():
        if not Path(t["dataset_ref"]).is_absolute() and os.sep in t["dataset_ref"]:
            t["dataset_ref"] = str(Path(t["dataset_ref"]).resolve())
    inflight: dict[Any, RunSpec] = {}
    queue = list(todo)
    try:
        while queue or inflight or book.waiting:
            while (run := book.take(queue)) is not None:
                book.start(run)
                inflight[remote.remote(tasks[run.run_id])] = run
            if not inflight:
                book.wait_for_others(queue)
                continue
            book.running = len(inflight)
            rep.update(book.completed, book.status())
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                run = inflight.pop(ref)
                try:
                    report = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker died, node lost ...
                    report = {"run_id": run.run_id, "ok": False, "error": f"Ray task failed: {_one_line(exc)}"}
                book.running = len(inflight)
                if book.finish(run, report):
                    queue.append(run)
            queue.extend(book.waiting)  # look again at what other runners held
            book.waiting.clear()
    except KeyboardInterrupt:
        for ref in inflight:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
        raise
    finally:
        book.close()


# -- UDR over the seeds of each configuration ----------------------------------------------------
def representations_for_udr(run_dirs: list[Path], x, *, batch: int = 256) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Mean representations ``[N, D]`` and average per-latent KL ``[D]`` (None for deterministic encoders) of each run on ``x``."""
    from untwine.train import open_run

    reps, kls = [], []
    for d in run_dirs:
        encoded = open_run(d).encoder(batch_size=batch).encode(x, posterior=True)
        reps.append(encoded.codes)
        kls.append(encoded.latent_kl())
    return reps, kls


def compute_study_udr(
    spec: StudySpec,
    runs: list[RunSpec],
    out,
    *,
    result: StudyResult | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """UDR per run for every configuration with >= 2 finished seeds; stored as metric ``udr``."""
    from untwine import data
    from untwine.study.udr import udr_scores
    from untwine.train import open_run

    say = say or (lambda m: None)
    out = Path(out)
    conn = db.connect(db.db_path(out))
    scores: dict[str, float] = {}
    try:
        rows = db.run_rows(conn)
        groups: dict[str, list[RunSpec]] = {}
        for r in runs:
            if rows.get(r.run_id, {}).get("status") == "done":
                groups.setdefault(r.config_id, []).append(r)
        settings = {k: spec.udr[k] for k in ("num_points", "correlation", "kl_threshold", "seed")}
        datasets: dict[str, Any] = {}
        for cid, members in groups.items():
            if len(members) < 2:
                continue
            members.sort(key=lambda r: r.seed)
            dirs = [out / RUNS_DIR / r.run_id for r in members]
            try:
                sig = json.dumps({"runs": [[r.run_id, open_run(d).step] for r, d in zip(members, dirs)], **settings}, sort_keys=True)
                have = {
                    row[0]
                    for row in conn.execute(
                        f"SELECT run_id FROM metrics WHERE name = 'udr' AND value IS NOT NULL AND run_id IN ({','.join('?' * len(members))})",
                        [r.run_id for r in members],
                    )
                }
                if db.get_meta(conn, f"udr:{cid}") == sig and have == {r.run_id for r in members}:
                    for r in members:
                        v = conn.execute("SELECT value FROM metrics WHERE run_id = ? AND name = 'udr'", (r.run_id,)).fetchone()[0]
                        scores[r.run_id] = float(v)
                    continue
                ref = members[0].dataset_ref
                if ref not in datasets:  # the same inputs for every configuration on this dataset
                    import torch

                    rng = np.random.default_rng(int(settings["seed"]))
                    _, x = data.load(ref).sample(int(settings["num_points"]), rng)
                    datasets[ref] = (x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))).float()
                reps, kls = representations_for_udr(dirs, datasets[ref])
                kl_arg = kls if all(k is not None for k in kls) else None
                s = udr_scores(reps, kl_arg, correlation=settings["correlation"], kl_threshold=settings["kl_threshold"], seed=settings["seed"])
                for r, v in zip(members, s):
                    db.record_metrics(conn, r.run_id, {"udr": float(v)}, replace=False)
                    scores[r.run_id] = float(v)
                db.set_meta(conn, f"udr:{cid}", sig)
                hp = ", ".join(f"{k}={v}" for k, v in members[0].hparams.items()) or "defaults"
                say(f"udr {members[0].model} ({hp}) on {members[0].dataset}, seeds {[r.seed for r in members]}: "
                    + ", ".join(f"{v:.3f}" for v in s))
            except Exception as exc:  # noqa: BLE001 - UDR must not lose the study's results
                msg = _one_line(exc)
                if result is not None:
                    result.udr_errors[cid] = msg
                say(f"[red]UDR failed for {members[0].run_id} and its seeds: {msg}[/red]")
    finally:
        conn.close()
    if result is not None:
        result.udr.update(scores)
    return scores


def load_study_spec(out):
    """The resolved spec copy a study directory holds (for `results`/`compare`), or None."""
    p = Path(out) / SPEC_COPY
    return read_yaml(p, what="study copy") if p.is_file() else None
