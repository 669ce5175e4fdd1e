"""Signals the runner uses: a per-run time limit, and SIGTERM as an interrupt. Imports errors.

- :class:`TimeLimit` raises :class:`~metalab.errors.RunTimeout` inside a run that goes
  past its ``timeout=``, through ``SIGALRM``: it stops Python code and system calls
  that wait (``time.sleep``, reads, locks), not C code that never returns to Python.
  Signals reach only the main thread, which is where the serial executor and each
  worker process of the process executor run their runs.
- :func:`sigterm_as_interrupt` turns SIGTERM (``kill PID``, a scheduler's cancel) into
  :class:`~metalab.errors.Terminated`, a ``KeyboardInterrupt``, so the sweep stops
  as on Ctrl-C: finished runs written, the store flushed, the workers stopped.
"""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError, RunTimeout, Terminated

__all__ = ["TimeLimit", "check_timeout", "in_main_thread", "sigterm_as_interrupt"]


def check_timeout(where: str, timeout: Any) -> float | None:
    """Return ``timeout`` as seconds (a float > 0), or None; raise for anything else."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidTypeError(
            f"{where}(timeout={timeout!r}): must be a number of seconds or None, got "
            f"{type(timeout).__name__}; e.g. timeout=600 for ten minutes a run."
        )
    if not (math.isfinite(timeout) and timeout > 0):
        raise InvalidArgumentError(
            f"{where}(timeout={timeout!r}): must be a finite number of seconds above 0; "
            f"pass None for no limit."
        )
    return float(timeout)


def in_main_thread() -> bool:
    """Whether the caller runs in the main thread, the only one signals reach."""
    return threading.current_thread() is threading.main_thread()


class TimeLimit:
    """Raise :class:`RunTimeout` in this (main) thread when a block runs over ``seconds``.

    ``None`` sets no limit and costs nothing. The alarm is disarmed before the handler
    is removed, and a handler that fires as the block ends raises nothing.

    >>> import time
    >>> try:
    ...     with TimeLimit(0.05):
    ...         time.sleep(5)
    ... except RunTimeout as exc:
    ...     print(exc)
    the run went past timeout=0.05 s and was stopped
    """

    __slots__ = ("_armed", "_previous", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._armed = False
        self._previous: Any = None

    def __enter__(self) -> TimeLimit:
        if self.seconds is not None:
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.seconds is not None:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    def _expire(self, signum: int, frame: FrameType | None) -> None:
        if self._armed:
            self._armed = False
            raise RunTimeout(f"the run went past timeout={self.seconds:g} s and was stopped")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (main thread only)."""
    if not in_main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Terminated("stopped by SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
