"""ProcessExecutor: chunks run in worker processes. Imports errors, _optional, _validate, executors.

:class:`ProcessExecutor` runs chunks in worker processes: it ships the function once
per worker with cloudpickle, so lambdas and closures from ``__main__`` or a notebook
work, and turns a worker's death into :class:`~metalab.executors._base.WorkerLost`.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Callable
from concurrent import futures
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from metalab._optional import require
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.executors._base import _pickled_function
from metalab.executors._pool import _PoolExecutor, _PoolFactory

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

__all__ = ["ProcessExecutor"]

T = TypeVar("T")
R = TypeVar("R")

# Set in each worker process by the pool initializer, which runs before any chunk.
_worker_fn: Callable[[list[Any]], list[Any]]


def _load_fn(payload: bytes, parent: int) -> None:
    """Pool initializer: unpickle the chunk function once, and die with the parent."""
    global _worker_fn
    threading.Thread(target=_exit_when_gone, args=(parent,), daemon=True).start()
    try:
        # Plain pickle reads cloudpickle's output; cloudpickle is imported as needed.
        _worker_fn = pickle.loads(payload)
    except Exception as exc:
        # An initializer error breaks the pool, and every chunk would come back as
        # WorkerLost; raised by each chunk instead, it reaches the caller.
        _worker_fn = partial(_reraise, exc)


def _exit_when_gone(parent: int) -> None:
    """Exit this worker once the process that made the pool is gone.

    A pool's workers outlive a parent killed with SIGKILL and would go on running the
    chunks they hold; a resume started meanwhile would run those runs a second time.
    A worker's parent is the forkserver, not the runner, so the runner's pid is watched.
    """
    while True:
        time.sleep(_PARENT_POLL_SECONDS)
        if not _alive(parent):
            os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie (dead, not yet reaped by its parent) does not.

    ``kill(pid, 0)`` succeeds on a zombie, and a runner killed by a parent that reads
    its output before reaping it stays one for as long as that takes.
    """
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or its pid reused by another user
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (command) state ...": the command may hold spaces and parentheses.
            return stat.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):  # no /proc (macOS): kill(pid, 0) is all there is
        return True


_PARENT_POLL_SECONDS = 0.25


def _reraise(exc: Exception, chunk: list[Any]) -> list[Any]:
    raise exc


def _run_chunk(chunk: list[Any]) -> list[Any]:
    """Run the function :func:`_load_fn` loaded in this worker on one chunk."""
    return _worker_fn(chunk)


class ProcessExecutor(_PoolExecutor):
    """Runs chunks in ``max_workers`` worker processes (default: one per CPU).

    The function is pickled once with cloudpickle and loaded once per worker, so
    lambdas, closures and functions defined in ``__main__`` or a notebook work; chunks
    are pickled with the standard pickle. A worker that dies (segfault, ``os._exit``,
    SIGKILL from the OOM killer) turns every chunk in flight into :class:`WorkerLost`,
    whose reason gives the exit code or signal; a new pool then runs the other chunks.

    ``mp_context`` names the start method; the default is ``'forkserver'`` where it
    exists, else ``'spawn'``, never ``'fork'``: a forked worker inherits every lock
    that the parent's other threads held at that moment, and can wait on one forever.
    As with any such pool, each worker imports the main module, so a script must start
    its work under ``if __name__ == "__main__":``.
    """

    uses_processes = True

    def __init__(self, max_workers: int | None = None, *, mp_context: str | None = None) -> None:
        super().__init__(max_workers)
        self._context = _mp_context(mp_context)
        self._cloudpickle = require("cloudpickle", feature="ProcessExecutor()", extra=None)

    def _prepare(self, fn: Callable[[list[T]], list[R]]) -> tuple[_PoolFactory, Callable[..., Any]]:
        payload = _pickled_function("ProcessExecutor.map_chunks", fn, self._cloudpickle)
        new_pool = partial(
            futures.ProcessPoolExecutor,
            self.max_workers,
            mp_context=self._context,
            initializer=_load_fn,
            initargs=(payload, os.getpid()),
        )
        return new_pool, _run_chunk


def _mp_context(mp_context: object) -> BaseContext:
    """Return the context of the start method named; None picks forkserver, else spawn."""
    # Imported here, not at the top: importing multiprocessing puts __main__ in
    # sys.modules a second time (as __mp_main__), and `import metalab` stays clear of it.
    import multiprocessing

    available = multiprocessing.get_all_start_methods()
    if mp_context is None:
        return multiprocessing.get_context("forkserver" if "forkserver" in available else "spawn")
    if not isinstance(mp_context, str):
        raise InvalidTypeError(
            f"ProcessExecutor(mp_context={mp_context!r}): must be a start method name or "
            f"None, got {type(mp_context).__name__}."
        )
    if mp_context not in available:
        raise InvalidArgumentError(
            f"ProcessExecutor(mp_context={mp_context!r}): unknown start method; this "
            f"platform has {', '.join(available)}. Pass one of them, or None for the default."
        )
    return multiprocessing.get_context(mp_context)
