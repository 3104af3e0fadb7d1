"""Where the runs of a study execute: the caller's process, a process pool or a Ray cluster.

The one scheduling loop (:func:`untwine.study.runner.schedule`) talks to an
:class:`Executor` only: it submits tasks (:meth:`~Executor.submit`) while fewer than
:attr:`~Executor.slots` are in flight and waits (:meth:`~Executor.wait`) for the next reports.
Every executor runs :func:`untwine.study.worker.execute_run`:

* :class:`SerialExecutor` (``workers == 1``): in this process, one run at a time; only
  torch's thread count is set (and restored afterwards);
* :class:`PoolExecutor`: in ``workers`` processes (``concurrent.futures.ProcessPoolExecutor``
  with the *spawn* start method, each limited to ``threads`` torch and BLAS threads); a
  worker process that dies (out of memory, killed) counts as a failed attempt of every run
  the pool held, and the pool is rebuilt;
* :class:`RayExecutor` (``ray="auto"`` / ``"HOST:PORT"``): as Ray tasks on an existing
  cluster (``ray.init(address=...)``; untwine must be installed on every node and the study
  directory must be on a file system every node sees).  The parent records the results: a
  cluster's nodes may not share a file system fit for SQLite WAL.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from untwine.errors import UntwineError
from untwine.study.spec import RunSpec
from untwine.study.worker import execute_run, limit_threads, make_task, one_line

DIED = "worker process died (killed or out of memory)"


class Executor:
    """Runs :func:`~untwine.study.worker.execute_run` on tasks; see the module docstring."""

    #: how many runs may be in flight at once
    slots: float = 1

    def __init__(self, out: Path, db_file: Path | None, threads: int) -> None:
        self.out, self.db_file, self.threads = out, db_file, threads

    def task(self, run: RunSpec) -> dict[str, Any]:
        """The task :func:`execute_run` gets for ``run``."""
        return make_task(run, self.out, self.db_file, self.threads)

    def submit(self, run: RunSpec) -> None:
        raise NotImplementedError

    def in_flight(self) -> int:
        raise NotImplementedError

    def wait(self) -> list[tuple[RunSpec, dict]]:
        """Block until at least one submitted run is over; its ``(run, report)`` pairs."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Give up the runs in flight (the study was interrupted)."""

    def close(self) -> None:
        """Free the executor's resources."""


class SerialExecutor(Executor):
    slots = 1

    def __init__(self, out: Path, db_file: Path | None, threads: int) -> None:
        import torch

        super().__init__(out, db_file, threads)
        self._old_threads = torch.get_num_threads()
        self._next: tuple[RunSpec, dict] | None = None

    def task(self, run: RunSpec) -> dict[str, Any]:
        return dict(super().task(run), limit_blas=False)  # the caller's process: only torch's threads, restored

    def submit(self, run: RunSpec) -> None:
        self._next = (run, self.task(run))

    def in_flight(self) -> int:
        return int(self._next is not None)

    def wait(self) -> list[tuple[RunSpec, dict]]:
        run, task = self._next
        self._next = None
        return [(run, execute_run(task))]

    def close(self) -> None:
        import torch

        torch.set_num_threads(self._old_threads)


class PoolExecutor(Executor):
    def __init__(self, out: Path, db_file: Path | None, threads: int, *, workers: int, runs: int) -> None:
        super().__init__(out, db_file, threads)
        self.slots = workers
        self._size = min(workers, runs)
        self._inflight: dict[Future, RunSpec] = {}
        self._pool: ProcessPoolExecutor | None = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._size, mp_context=get_context("spawn"), initializer=limit_threads,
                                   initargs=(self.threads,))

    def submit(self, run: RunSpec) -> None:
        self._inflight[self._pool.submit(execute_run, self.task(run))] = run

    def in_flight(self) -> int:
        return len(self._inflight)

    def wait(self) -> list[tuple[RunSpec, dict]]:
        done, _ = wait(list(self._inflight), return_when=FIRST_COMPLETED)
        over, broken = [], False
        for fut in done:
            run = self._inflight.pop(fut)
            try:
                report = fut.result()
            except BrokenProcessPool:
                broken = True
                report = {"run_id": run.run_id, "ok": False, "error": DIED}
            except Exception as exc:  # noqa: BLE001 - e.g. a task that could not be pickled
                report = {"run_id": run.run_id, "ok": False, "error": one_line(exc)}
            over.append((run, report))
        if broken:
            # every other task of the broken pool is lost too: count it as a failed attempt
            over += [(run, {"run_id": run.run_id, "ok": False, "error": DIED}) for run in self._inflight.values()]
            self._inflight.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return over

    def cancel(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def import_ray():
    try:
        import ray
    except ImportError:
        raise UntwineError("--ray needs the ray package (pip install 'untwine[ray]')") from None
    return ray


class RayExecutor(Executor):
    slots = math.inf  # the cluster queues what it cannot start yet

    def __init__(self, out: Path, threads: int, *, address: str) -> None:
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
            except Exception as exc:  # noqa: BLE001 - connection problems are user input
                raise UntwineError(f"--ray {address}: cannot connect to a Ray cluster ({one_line(exc)})") from None
        super().__init__(out.resolve(), None, threads)  # None: the parent records results
        self._remote = ray.remote(num_cpus=threads, max_retries=0)(execute_run)
        self._inflight: dict[Any, RunSpec] = {}

    def task(self, run: RunSpec) -> dict[str, Any]:
        t = super().task(run)
        if not Path(t["dataset_ref"]).is_absolute() and os.sep in t["dataset_ref"]:
            t["dataset_ref"] = str(Path(t["dataset_ref"]).resolve())
        return t

    def submit(self, run: RunSpec) -> None:
        self._inflight[self._remote.remote(self.task(run))] = run

    def in_flight(self) -> int:
        return len(self._inflight)

    def wait(self) -> list[tuple[RunSpec, dict]]:
        ready, _ = self._ray.wait(list(self._inflight), num_returns=1)
        over = []
        for ref in ready:
            run = self._inflight.pop(ref)
            try:
                report = self._ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - worker died, node lost ...
                report = {"run_id": run.run_id, "ok": False, "error": f"Ray task failed: {one_line(exc)}"}
            over.append((run, report))
        return over

    def cancel(self) -> None:
        for ref in self._inflight:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
