"""ThreadExecutor: chunks on a thread pool. Imports _validate, executors._pool (the pool driver).

Threads suit operations that release the GIL (numpy, torch, I/O); nothing is copied,
so the function and the items need not pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from functools import partial
from typing import Any, TypeVar

from metalab.executors._pool import _PoolExecutor, _PoolFactory

__all__ = ["ThreadExecutor"]

T = TypeVar("T")
R = TypeVar("R")


class ThreadExecutor(_PoolExecutor):
    """Runs chunks in ``max_workers`` threads of this process (default: one per CPU).

    >>> ThreadExecutor(max_workers=2).chunk_size(1000)
    125
    """

    def _prepare(self, fn: Callable[[list[T]], list[R]]) -> tuple[_PoolFactory, Callable[..., Any]]:
        return partial(futures.ThreadPoolExecutor, self.max_workers), fn
