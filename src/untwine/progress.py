"""Progress of long work, by phase: a live bar on a terminal, one quiet line per phase in logs.

    phases = Phases()                       # enabled; Phases(False) is silent
    with phases.phase("encoding", total=15000) as ph:
        for batch in ...:
            ph.advance(len(batch))

On a terminal (stderr is a TTY) each phase is a rich progress bar (a spinner when the
total is unknown) that stays on screen with its time when done.  Otherwise, as in a log
file or CI, each phase prints one line when it ends: ``name: 12.3 s`` (with the count
when it had a total), and nothing while it runs.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Phase:
    """One running phase; :meth:`advance` moves it on by ``n`` items."""

    def __init__(self, owner: "Phases", name: str, total: int | None) -> None:
        self.owner, self.name, self.total = owner, name, total
        self.done = 0
        self.t0 = time.perf_counter()
        self._task = None
        if owner._bar is not None:
            self._task = owner._bar.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        self.done += int(n)
        if self._task is not None:
            self.owner._bar.update(self._task, advance=int(n))

    def update(self, done: int, note: str = "") -> None:
        """Set the count done to ``done``; on a terminal, show ``note`` beside the name."""
        self.done = int(done)
        if self._task is not None:
            self.owner._bar.update(self._task, completed=self.done, description=f"{self.name}  {note}" if note else self.name)

    def finish(self, *, failed: bool = False) -> float:
        """End the phase (its line in logs, unless it ``failed``: the error is the line then)."""
        seconds = time.perf_counter() - self.t0
        if self._task is not None:
            bar = self.owner._bar
            bar.update(self._task, total=self.total or max(self.done, 1), completed=self.total or max(self.done, 1))
        elif self.owner.enabled and not failed:
            count = f" ({self.done:,} of {self.total:,})" if self.total else ""
            print(f"{self.owner.prefix}{self.name}{count}: {seconds:.1f} s", file=sys.stderr, flush=True)
        return seconds


class Phases:
    """A sequence of phases reported together (see the module docstring)."""

    def __init__(self, enabled: bool = True, *, prefix: str = "") -> None:
        self.enabled = bool(enabled)
        self.prefix = prefix
        self._bar = None
        self.seconds: dict[str, float] = {}
        if self.enabled:
            from rich.console import Console

            console = Console(stderr=True)
            if console.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

                self._bar = Progress(
                    SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False,
                )
                self._bar.start()

    @contextmanager
    def phase(self, name: str, total: int | None = None, *, key: str | None = None):
        """A phase shown as ``name``; its seconds add up in :attr:`seconds` under ``key`` (default ``name``)."""
        ph = Phase(self, name, total)
        failed = True
        try:
            yield ph
            failed = False
        finally:
            k = key or name
            self.seconds[k] = self.seconds.get(k, 0.0) + ph.finish(failed=failed)

    @property
    def on_terminal(self) -> bool:
        """Whether the phases show as bars (enabled, stderr a terminal)."""
        return self._bar is not None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Phases":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
