"""What ``untwine study run`` shows while it works: a progress bar on a terminal, lines otherwise."""

from __future__ import annotations

import sys


class StudyProgress:
    """A rich progress bar of ``total`` runs (on a terminal) and messages on stderr; silent when not ``enabled``."""

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
