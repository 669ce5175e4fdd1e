"""Sweep progress: a rich bar on a terminal, plain lines elsewhere. Imports _optional.

The runner reports each skipped and finished run; :class:`Progress` shows done,
failed and skipped counts, the rate and the time left. With ``enabled=True`` it uses
rich when installed and stderr is a terminal, and otherwise prints one plain line to
stderr at most every ``interval`` seconds (for logs and batch jobs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any

from metalab._optional import optional
from metalab.record import FAILED

__all__ = ["Progress"]


class Progress:
    """Counts runs of a sweep and shows them when ``enabled``."""

    def __init__(self, total: int, *, enabled: bool, interval: float = 10.0) -> None:
        self.total = total
        self.done = self.failed = self.skipped_count = 0
        self._enabled = enabled
        self._interval = interval
        self._start = time.monotonic()
        self._last_line = self._start
        self._bar: Any = None
        self._task: Any = None
        rich_progress = optional("rich.progress") if enabled and sys.stderr.isatty() else None
        if rich_progress is not None:
            console = optional("rich.console").Console(stderr=True)  # stdout is the user's
            self._bar = rich_progress.Progress(
                rich_progress.TextColumn("[bold]{task.description}"),
                rich_progress.BarColumn(),
                rich_progress.MofNCompleteColumn(),
                rich_progress.TextColumn("{task.fields[counts]}"),
                rich_progress.TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task("runs", total=total, counts="")
            self._bar.start()

    def skipped(self, count: int = 1) -> None:
        """Count ``count`` runs skipped because they were already done."""
        self.skipped_count += count
        self._show()

    def finished(self, statuses: Iterable[str]) -> None:
        """Count runs that just ended, by status."""
        for status in statuses:
            self.done += 1
            self.failed += status == FAILED
        self._show()

    def _rate(self) -> float:
        return self.done / max(time.monotonic() - self._start, 1e-9)

    def _summary(self) -> str:
        rate = self._rate()
        left = self.total - self.done - self.skipped_count
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        return (
            f"{self.done - self.failed} done, {self.failed} failed, {self.skipped_count} "
            f"skipped of {self.total} ({rate:.1f} runs/s, ETA {eta})"
        )

    def _show(self) -> None:
        if not self._enabled:
            return
        if self._bar is not None:
            counts = (
                f"failed {self.failed}, skipped {self.skipped_count}, {self._rate():.1f} runs/s"
            )
            completed = self.done + self.skipped_count
            self._bar.update(self._task, completed=completed, counts=counts)
            return
        now = time.monotonic()
        if now - self._last_line >= self._interval:
            self._last_line = now
            print(f"metalab: {self._summary()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Stop the bar, or print the final line."""
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.stop()
        else:
            print(f"metalab: {self._summary()}", file=sys.stderr, flush=True)
