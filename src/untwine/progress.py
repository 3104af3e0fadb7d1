"""Progress of long work, by phase: a live bar on a terminal, one quiet line per phase in logs.

    phases = Phases()                       # enabled; Phases(False) is silent
    with phases.phase("encoding", total=15000) as ph:
        for batch in ...:
            ph.advance(len(batch))

On a terminal (stderr is a TTY) each phase is a rich progress bar (a spinner when the
total is unknown) that stays on screen with its time when done.  Otherwise, as in a log
file or CI, each phase prints one line when it ends: ``name: 12.3 s`` (with the count
when it had a total), and nothing while it runs.

Work that is not one ``with`` block (a training loop, a study's runs) holds a phase open
with :class:`OpenPhase`; :class:`StepProgress` is the training loops' (the loss terms and
steps/s beside the bar, and in logs one line per tenth of the run); :meth:`Phases.say`
prints a message above the bars (a plain line in logs).  Every command's progress goes
through this module.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack, contextmanager


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

    def say(self, msg: str) -> None:
        """A message (rich markup allowed): above the bars on a terminal, a plain line otherwise."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(msg, highlight=False)
        else:
            from rich.text import Text

            print(Text.from_markup(msg).plain, file=sys.stderr, flush=True)

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


def terms_text(terms: dict[str, float]) -> str:
    """Loss terms as shown beside a training bar: ``loss 0.1234  kl 5.678``."""
    return "  ".join(f"{k} {v:.4g}" for k, v in terms.items())


class OpenPhase:
    """A phase of ``phases`` held open across calls rather than a ``with`` block:
    :meth:`update` it, :meth:`close` it once (its line in logs then)."""

    def __init__(self, phases: Phases, name: str, total: int | None = None, start: int = 0) -> None:
        self.phases = phases
        self._stack = ExitStack()
        self._phase = self._stack.enter_context(phases.phase(name, total=total))
        self._phase.update(start)

    def update(self, done: int, note: str = "") -> None:
        self._phase.update(done, note)

    def say(self, msg: str) -> None:
        self.phases.say(msg)

    def close(self) -> None:
        self._stack.close()


class StepProgress(OpenPhase):
    """The ``training`` phase of a loop of ``total`` steps from ``start``: on a terminal the bar
    shows steps/s and the loss terms; in logs one line per tenth of the run (at the first
    update past each tenth), ``title: step 300/1000  41.2 steps/s  terms``."""

    def __init__(self, phases: Phases, total: int, start: int, title: str) -> None:
        super().__init__(phases, "training", total, start)
        self.total, self.title = total, title
        self._t0, self._s0 = time.perf_counter(), start
        self._every = max(1, (total - start) // 10)
        self._next = start + self._every
        self._terms = ""

    def update(self, step: int, terms: str | None = None) -> None:
        """At ``step``; ``terms`` (text) replaces the last ones shown when given."""
        if terms is not None:
            self._terms = terms
        rate = (step - self._s0) / max(time.perf_counter() - self._t0, 1e-9)
        text = f"{rate:.1f} steps/s  {self._terms}".rstrip()
        super().update(step, text)
        if not self.phases.enabled or self.phases.on_terminal:
            return
        if step >= self._next or step == self.total:
            while self._next <= step:
                self._next += self._every
            print(f"{self.title}: step {step}/{self.total}  {text}", file=sys.stderr, flush=True)
