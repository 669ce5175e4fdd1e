"""The executor contract. Imports errors only.

An executor runs a function over chunks of work items and yields each chunk's
outcome as it completes. It knows nothing of experiments or stores: the runner hands
it a picklable function that runs and persists a chunk of runs, so a worker saves
its own runs (as submitit and joblib do).

A chunk whose worker died (a segfault, ``os._exit``, the OOM killer) comes back as
:class:`WorkerLost` instead of results; the executor replaces the dead worker and
goes on with the other chunks. What to do with the lost items is the caller's choice.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from metalab.errors import InvalidTypeError

__all__ = ["ChunkOutcome", "Executor", "WorkerLost"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """The worker running a chunk died before returning; ``reason`` says how."""

    reason: str


ChunkOutcome = tuple[list[Any], list[Any] | WorkerLost]


class Executor(abc.ABC):
    """Runs ``fn(chunk) -> list of results`` over chunks, yielding outcomes as they finish.

    Subclasses set the capability flags and implement :meth:`map_chunks`.
    """

    #: Items run in other processes (the function and items must pickle).
    uses_processes: bool = False
    #: Chunks run in the thread that called :meth:`map_chunks`.
    runs_in_caller: bool = False
    #: Number of chunks that may run at once.
    max_workers: int = 1

    @abc.abstractmethod
    def map_chunks(
        self, fn: Callable[[list[T]], list[R]], chunks: Iterable[list[T]]
    ) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
        """Run ``fn`` on each chunk; yield ``(chunk, results or WorkerLost)`` as each ends.

        Chunks are taken from ``chunks`` lazily, a bounded number ahead, so a stream of
        millions of chunks is never held in memory. Closing the iterator early (or an
        exception, or KeyboardInterrupt, in the consumer) cancels chunks not yet started
        and waits for the running ones.
        """

    def chunk_size(self, n_items: int) -> int:
        """Items per chunk the runner should send for a sweep of ``n_items``."""
        return 1


def _pickled_function(where: str, fn: Callable[..., Any], cloudpickle: Any) -> bytes:
    """Return ``fn`` pickled by cloudpickle, for workers in other processes; raise if it won't.

    ``where`` names the caller (``ProcessExecutor.map_chunks``); ``cloudpickle`` is the
    module, imported by the caller with its install hint.
    """
    try:
        return cloudpickle.dumps(fn)
    except Exception as exc:
        raise InvalidTypeError(
            f"{where}: {fn!r} does not pickle, so it cannot reach the workers "
            f"({type(exc).__name__}: {exc}); create what it captures (locks, open files, "
            f"connections) inside the function, or use ThreadExecutor."
        ) from exc
