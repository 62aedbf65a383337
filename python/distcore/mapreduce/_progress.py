"""Progress bars for long jobs: one line per phase (tasks done, records), on stderr."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Shows one bar per phase when ``enabled`` (``None``: when stderr is a terminal)."""

    def __init__(self, enabled: bool | None) -> None:
        self._enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bars: dict[str, Any] = {}
        self._records: dict[str, int] = {}
        self._progress: Any = None

    def __enter__(self) -> Progress:
        if self._enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tasks  {task.fields[records]:,} records"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def phase(self, name: str, total: int | None) -> None:
        """Starts a phase of ``total`` tasks (``None``: not known in advance)."""
        if self._progress is not None:
            self._records[name] = 0
            self._bars[name] = self._progress.add_task(name, total=total, records=0)

    def advance(self, name: str, records: int) -> None:
        """One more task of phase ``name`` done, with ``records`` records."""
        if self._progress is not None and name in self._bars:
            self._records[name] += records
            self._progress.update(self._bars[name], advance=1, records=self._records[name])
