r"""Capture what a run prints to sys.stdout and sys.stderr, per thread. Imports no metalab module.

Runs may execute in several threads of one process at once, so swapping
``sys.stdout`` per run (as :func:`contextlib.redirect_stdout` does) would mix their
output. Instead, while any capture is active, ``sys.stdout`` and ``sys.stderr`` are
proxies that send each write to the capture active *in the writing thread*, and
pass writes from every other thread through to the streams they replaced. The
proxies are installed when the first capture starts and removed when the last one
ends (a count under a lock).

Limits, by design:

- Captured text is stored only, not echoed; the runner may show it when a run fails.
- Only Python-level writes to ``sys.stdout``/``sys.stderr`` are seen. Output that C
  extensions or subprocesses write to file descriptors 1 and 2, and bytes written to
  ``sys.stdout.buffer``, go straight to the terminal.
- Threads started by the run are not its thread: their output passes through.
- Nested captures in one thread: the inner one takes the output until it ends.
- If other code replaces ``sys.stdout`` while a capture is active, the proxy is left
  where it is at the end (it passes writes through), rather than undoing that change.

>>> with capture_output() as out:
...     print("hello")
>>> out.stdout
'hello\n'
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["CapturedOutput", "capture_output"]


class CapturedOutput:
    """The text one :func:`capture_output` block printed; read it during or after the block."""

    def __init__(self) -> None:
        self._streams = {"stdout": io.StringIO(), "stderr": io.StringIO()}

    @property
    def stdout(self) -> str:
        """What the block wrote to ``sys.stdout``."""
        return self._streams["stdout"].getvalue()

    @property
    def stderr(self) -> str:
        """What the block wrote to ``sys.stderr``."""
        return self._streams["stderr"].getvalue()


class _ThreadRoutedStream:
    """Stands in for ``sys.<name>``: routes writes to the calling thread's capture."""

    def __init__(self, name: str, original: TextIO | None) -> None:
        self._name = name
        self._original = original

    def write(self, text: str) -> int:
        capture = _active.capture
        if capture is not None:
            return capture._streams[self._name].write(text)
        # sys.stdout is None under pythonw; writes are dropped there, as before.
        return 0 if self._original is None else self._original.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _active.capture is None and self._original is not None:
            self._original.flush()

    def __getattr__(self, attribute: str) -> Any:
        # encoding, isatty(), fileno(), buffer ...: those of the replaced stream.
        return getattr(self._original, attribute)


class _Active(threading.local):
    capture: CapturedOutput | None = None


_active = _Active()
_lock = threading.Lock()
_users = 0
_proxies: dict[str, _ThreadRoutedStream] = {}


@contextmanager
def capture_output() -> Iterator[CapturedOutput]:
    """Capture what this thread prints to ``sys.stdout``/``sys.stderr`` inside the block.

    Thread-aware: other threads' output is unaffected (see the module docstring for
    what cannot be captured).
    """
    global _users
    captured = CapturedOutput()
    with _lock:
        if _users == 0:
            for name in ("stdout", "stderr"):
                _proxies[name] = _ThreadRoutedStream(name, getattr(sys, name))
                setattr(sys, name, _proxies[name])
        _users += 1
    outer, _active.capture = _active.capture, captured
    try:
        yield captured
    finally:
        _active.capture = outer
        with _lock:
            _users -= 1
            if _users == 0:
                for name, proxy in _proxies.items():
                    if getattr(sys, name) is proxy:
                        setattr(sys, name, proxy._original)
                _proxies.clear()
