"""Running a study: every run trained, evaluated and recorded, in parallel, fault tolerant.

:func:`run_study` expands a :class:`~untwine.study.spec.StudySpec` into runs and hands
each unfinished run to :func:`schedule`, the one scheduling loop, which executes
:func:`~untwine.study.worker.execute_run` through an executor
(:mod:`untwine.study.executors`):

* in this process when ``workers == 1``; in ``workers`` processes otherwise (each with
  ``cores // workers`` torch threads);
* or, with ``ray="auto"`` / ``ray="HOST:PORT"``, as Ray tasks on an existing cluster.

The study directory's layout (``study.yaml``, ``runs/RUN_ID/``, ``results.sqlite``) is
:mod:`untwine.study.folder`; the results database is :mod:`untwine.study.results`.

Idempotent and fault tolerant:

* finished runs (:func:`~untwine.study.folder.finished_runs`) are skipped;
* an interrupted run is resumed from its latest checkpoint, a trained but unevaluated
  run is only evaluated (:mod:`untwine.study.worker`);
* a run that raises is recorded as ``failed`` with its error and retried up to
  ``spec.retries`` more times (resuming from its last checkpoint); the other runs go on.
  A worker process that dies (out of memory, killed) counts as a failed attempt of the
  runs it may have held, and the pool is rebuilt.

Several runners may share one study directory (two terminals, or cluster jobs on one
file system): a runner works only on runs whose lease it holds
(:mod:`untwine.study.leases`), renews its leases while it works and releases them when a
run is finished or has failed for good.  The other runners move on to unclaimed runs,
then wait for the rest: runs another runner finishes count as done, and the runs of a
runner that died (its leases expire after :data:`~untwine.study.leases.LEASE_SECONDS`)
are taken over.  Every run is trained once.

After the runs, UDR (:func:`untwine.study.udr.compute_study_udr`) is computed for every
configuration with at least two finished seeds and stored in the ``metrics`` table as
``udr``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from untwine.errors import UntwineError
from untwine.study import results as db
from untwine.study.executors import Executor, PoolExecutor, RayExecutor, SerialExecutor, import_ray
from untwine.study.folder import RUNS_DIR, finished_runs, write_spec_copy
from untwine.study.leases import Leases
from untwine.progress import OpenPhase, Phases
from untwine.study.spec import RunSpec, StudySpec, expand
from untwine.study.udr import compute_study_udr
from untwine.study.worker import one_line, record_report

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


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Bookkeeper:
    """Attempts, retries, leases and progress of one runner, whatever executes its runs."""

    def __init__(self, spec: StudySpec, out: Path, db_file: Path, result: StudyResult, rep: OpenPhase,
                 completed: int) -> None:
        self.spec, self.out, self.db_file, self.result, self.rep = spec, out, db_file, result, rep
        self.completed = completed
        self.attempts: dict[str, int] = {}
        self.running = 0
        self.leases = Leases(db_file)
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
            if self.leases.claim(run.run_id):
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
        self.leases.close()

    def start(self, run: RunSpec) -> None:
        self.attempts[run.run_id] = self.attempts.get(run.run_id, 0) + 1
        conn = db.connect(self.db_file)
        try:
            db.count_attempt(conn, run.run_id)
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
                conn = db.connect(self.db_file)
                try:
                    record_report(conn, report)
                finally:
                    conn.close()
            except Exception as exc:  # noqa: BLE001 - report, keep going
                self.rep.say(f"[red]could not record {rid} in the results database: {one_line(exc)}[/red]")
        if report.get("ok"):
            self.leases.release(rid)
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
        self.leases.release(rid)
        self.result.failed[rid] = str(report.get("error"))
        self.completed += 1
        self.rep.say(f"[red]failed[/red] {rid} after {n} attempt(s): {report.get('error')}")
        self.rep.update(self.completed, self.status())
        return False


def schedule(executor: Executor, book: Bookkeeper, todo: list[RunSpec]) -> None:
    """The scheduling loop: claim runs and submit them while the executor has room, record
    each report as it comes (a failed run goes back to the queue while it has retries
    left), and look again at the runs other runners hold until none is left."""
    queue = list(todo)
    try:
        while queue or executor.in_flight() or book.waiting:
            while executor.in_flight() < executor.slots:
                run = book.take(queue)
                if run is None:
                    break
                book.start(run)
                executor.submit(run)
            if not executor.in_flight():
                book.wait_for_others(queue)
                continue
            book.running = executor.in_flight()
            book.rep.update(book.completed, book.status())
            over = executor.wait()
            for i, (run, report) in enumerate(over):
                book.running = executor.in_flight() + len(over) - i - 1
                if book.finish(run, report):
                    queue.append(run)
            queue.extend(book.waiting)  # look again at what other runners held
            book.waiting.clear()
    except KeyboardInterrupt:
        executor.cancel()
        raise


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
        import_ray()  # one-line error before any work when ray is missing
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
    phases = Phases(progress)
    rep = OpenPhase(phases, f"study {spec.name} (runs)", len(runs), len(finished))
    if result.skipped:
        rep.say(f"{len(result.skipped)} of {len(runs)} runs already finished in {out}; skipping them")
    try:
        if todo:
            if ray is not None:
                executor: Executor = RayExecutor(out, n_threads, address=ray)
            elif workers == 1:
                executor = SerialExecutor(out, db_file, n_threads)
            else:
                executor = PoolExecutor(out, db_file, n_threads, workers=workers, runs=len(todo))
            book = None
            try:
                book = Bookkeeper(spec, out, db_file, result, rep, len(finished))
                schedule(executor, book, todo)
            finally:
                executor.close()  # before the leases go: no run is still executing
                if book is not None:
                    book.close()
        if udr if udr is not None else spec.udr["enabled"]:
            compute_study_udr(spec, runs, out, result=result, say=rep.say)
        conn = db.connect(db_file)
        try:
            db.refresh_view(conn)
        finally:
            conn.close()
    finally:
        rep.close()
        phases.close()
    result.wall_seconds = time.perf_counter() - t_start
    return result


# -- moved: import these from their modules; the names here go after one release ------------------
from untwine.study.folder import SPEC_COPY, evaluation_matches, load_study_spec  # noqa: E402,F401
from untwine.study.leases import LEASE_SECONDS  # noqa: E402,F401
from untwine.study.udr import representations_for_udr  # noqa: E402,F401
from untwine.study.worker import execute_run  # noqa: E402,F401
