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
from typing import Any, TextIO

__all__ = ["CapturedOutput", "capture_output"]


class CapturedOutput:
    """The text one :func:`capture_output` block printed; read it during or after the block."""

    __slots__ = ("_streams",)

    def __init__(self) -> None:
        # Made on the first write: most runs print nothing, and a million runs would
        # otherwise make two million empty buffers.
        self._streams: dict[str, io.StringIO] = {}

    @property
    def stdout(self) -> str:
        """What the block wrote to ``sys.stdout``."""
        return self._text("stdout")

    @property
    def stderr(self) -> str:
        """What the block wrote to ``sys.stderr``."""
        return self._text("stderr")

    def texts(self) -> dict[str, str]:
        r"""Map ``"stdout"``/``"stderr"`` to what the block wrote there, if anything.

        >>> with capture_output() as out:
        ...     print("hi")
        >>> out.texts()
        {'stdout': 'hi\n'}
        """
        return {name: text for name, stream in self._streams.items() if (text := stream.getvalue())}

    def take(self) -> dict[str, str]:
        r"""Return :meth:`texts` and empty the block's text, for the next run in the block.

        The runner opens one block per chunk and takes each run's text after it:
        entering a block per run cost more than the rest of a trivial run's capture.

        >>> with capture_output() as out:
        ...     print("first")
        ...     first = out.take()
        ...     print("second")
        >>> first, out.take()
        ({'stdout': 'first\n'}, {'stdout': 'second\n'})
        """
        if not self._streams:
            return {}
        texts = self.texts()
        self._streams = {}
        return texts

    def _text(self, name: str) -> str:
        stream = self._streams.get(name)
        return "" if stream is None else stream.getvalue()

    def _write(self, name: str, text: str) -> int:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = io.StringIO()
        return stream.write(text)


class _ThreadRoutedStream:
    """Stands in for ``sys.<name>``: routes writes to the calling thread's capture."""

    def __init__(self, name: str, original: TextIO | None) -> None:
        self._name = name
        self._original = original

    def write(self, text: str) -> int:
        capture = _active.capture
        if capture is not None:
            return capture._write(self._name, text)
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


class capture_output:  # lower case: it reads as a function, ``with capture_output():``
    """Capture what this thread prints to ``sys.stdout``/``sys.stderr`` inside the block.

    Thread-aware: other threads' output is unaffected (see the module docstring for
    what cannot be captured). A class rather than a generator: the runner enters one
    per run, and this costs a third of what ``@contextmanager`` did.
    """

    __slots__ = ("_captured", "_outer")

    def __enter__(self) -> CapturedOutput:
        global _users
        self._captured = CapturedOutput()
        self._outer = _active.capture
        if self._outer is not None:
            # Nested in this thread: the outer block keeps the proxies installed until
            # after this one ends, so no count is needed (the runner nests one per run).
            _active.capture = self._captured
            return self._captured
        with _lock:
            if _users == 0:
                for name in ("stdout", "stderr"):
                    _proxies[name] = _ThreadRoutedStream(name, getattr(sys, name))
                    setattr(sys, name, _proxies[name])
            _users += 1
        _active.capture = self._captured
        return self._captured

    def __exit__(self, *exc_info: object) -> None:
        global _users
        _active.capture = self._outer
        if self._outer is not None:
            return
        with _lock:
            _users -= 1
            if _users == 0:
                for name, proxy in _proxies.items():
                    if getattr(sys, name) is proxy:
                        setattr(sys, name, proxy._original)
                _proxies.clear()
