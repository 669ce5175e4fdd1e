"""SerialExecutor: chunks in the calling thread, in order. Imports _validate, executors._base.

The reference executor: no threads, no pickling, and an exception or a debugger
breakpoint in the function surfaces exactly where it happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from metalab._validate import check_int
from metalab.executors._base import Executor, WorkerLost

__all__ = ["SerialExecutor"]

T = TypeVar("T")
R = TypeVar("R")


class SerialExecutor(Executor):
    """Runs each chunk in the calling thread, one after another, in the order given.

    >>> list(SerialExecutor().map_chunks(lambda chunk: [x * 2 for x in chunk], [[1, 2], [3]]))
    [([1, 2], [2, 4]), ([3], [6])]
    """

    runs_in_caller = True

    def map_chunks(
        self, fn: Callable[[list[T]], list[R]], chunks: Iterable[list[T]]
    ) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
        """Run ``fn`` on each chunk in turn, taking the next chunk only when asked."""
        for chunk in chunks:
            yield chunk, fn(chunk)

    def chunk_size(self, n_items: int) -> int:
        """Up to 1024 items per chunk."""
        check_int("SerialExecutor.chunk_size", "n_items", n_items, minimum=0)
        # A chunk costs nothing to hand over in one thread; the cap only bounds how many
        # results wait in a chunk before the runner sees them.
        return max(1, min(1024, n_items))
