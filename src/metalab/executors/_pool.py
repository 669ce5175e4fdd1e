"""A bounded window of chunks on a concurrent.futures pool, shared by thread and process.

Imports errors, _validate and executors._base.

:class:`_PoolExecutor` drives any ``concurrent.futures`` pool with at most
``2 * max_workers`` chunks in flight and turns a broken pool (a worker process died)
into :class:`~metalab.executors._base.WorkerLost` outcomes for the chunks it held.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

from metalab._validate import check_int
from metalab.errors import Terminated
from metalab.executors._base import Executor, WorkerLost

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

T = TypeVar("T")
R = TypeVar("R")

#: Makes a fresh pool; a pool whose worker died cannot take new work.
_PoolFactory = Callable[[], futures.Executor]


class _PoolExecutor(Executor):
    """Runs chunks on a ``concurrent.futures`` pool, at most ``2 * max_workers`` in flight.

    Each :meth:`map_chunks` call starts its own pool and shuts it down when its iterator
    is exhausted, closed or garbage-collected, so :meth:`close` has nothing to release.
    Subclasses say how to make the pool and what to submit for ``fn`` in :meth:`_prepare`.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            max_workers = os.cpu_count() or 1
        self.max_workers = check_int(type(self).__name__, "max_workers", max_workers, minimum=1)

    def chunk_size(self, n_items: int) -> int:
        """Aim at four or more chunks per worker and at most 256 items per chunk."""
        check_int(f"{type(self).__name__}.chunk_size", "n_items", n_items, minimum=0)
        # Four chunks per worker let the others pick up work while one runs a slow chunk
        # at the end of a sweep; 8, 16 or 32 gave the same speed-ups within noise on 20 ms
        # and 1 ms runs (benchmarks/bench_chunks.py --scan), the pool's start-up being
        # the larger loss. The cap bounds what a dead worker takes with it (every chunk
        # in flight is lost) and keeps progress moving. Handing a chunk over and back
        # costs ~25 us on threads and ~0.13 ms on processes (bench_chunks.py; 2 workers,
        # Python 3.11), which even chunks of one item repay with any run worth running
        # in parallel.
        return max(1, min(256, n_items // (4 * self.max_workers)))

    def map_chunks(
        self, fn: Callable[[list[T]], list[R]], chunks: Iterable[list[T]]
    ) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
        """Run ``fn`` on each chunk in the pool; yield ``(chunk, outcome)`` as each ends.

        An exception raised by ``fn`` is re-raised here, after the chunks still running
        have finished; the pool is started at the first ``next()``.
        """
        new_pool, task = self._prepare(fn)
        return self._stream(new_pool, task, iter(chunks))

    @abc.abstractmethod
    def _prepare(self, fn: Callable[[list[T]], list[R]]) -> tuple[_PoolFactory, Callable[..., Any]]:
        """Return a pool factory and the callable to submit with each chunk."""

    def _stream(
        self, new_pool: _PoolFactory, task: Callable[..., Any], chunks: Iterator[list[T]]
    ) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
        # More chunks queued than workers keeps every worker busy while the consumer
        # handles an outcome; twice as many bounds the memory a long stream can take.
        window = 2 * self.max_workers
        in_flight: dict[futures.Future[list[R]], list[T]] = {}
        pool = new_pool()
        try:
            while True:
                for chunk in islice(chunks, window - len(in_flight)):
                    try:
                        future = pool.submit(task, chunk)
                    except futures.BrokenExecutor:
                        # A worker died between chunks (the OOM killer picks idle ones too).
                        yield from _settle_broken(pool, in_flight)
                        pool = new_pool()
                        future = pool.submit(task, chunk)
                    in_flight[future] = chunk
                if not in_flight:
                    return
                done, _ = futures.wait(in_flight, return_when=futures.FIRST_COMPLETED)
                if any(isinstance(future.exception(), futures.BrokenExecutor) for future in done):
                    yield from _settle_broken(pool, in_flight)
                    pool = new_pool()
                    continue
                for future in done:
                    yield in_flight.pop(future), future.result()
        except Terminated:
            # SIGTERM reached the runner alone (Ctrl-C reaches the whole process group):
            # interrupt the workers too, so they write what finished and stop now
            # rather than at the end of their chunks.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGINT)
            raise
        finally:
            # Chunks already handed to a worker cannot be recalled; shutdown waits for them.
            pool.shutdown(wait=True, cancel_futures=True)


def _settle_broken(
    pool: futures.Executor, in_flight: dict[futures.Future[list[R]], list[T]]
) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
    """Yield every chunk of a broken pool: its results if it finished, else WorkerLost."""
    # The pool forgets its processes on shutdown, and only they know how the worker died.
    processes: list[BaseProcess] = list((getattr(pool, "_processes", None) or {}).values())
    # Waiting joins the pool's manager thread, so every future is settled and every
    # worker reaped (its exit code known) when this returns.
    pool.shutdown(wait=True)
    lost = WorkerLost(_death_reason(processes))
    outcomes = list(in_flight.items())
    in_flight.clear()
    for future, chunk in outcomes:
        broken = isinstance(future.exception(), futures.BrokenExecutor)
        yield chunk, lost if broken else future.result()


def _death_reason(processes: list[BaseProcess]) -> str:
    """Say how a pool's worker died, from the exit codes of the pool's processes."""
    codes = [p.exitcode for p in processes if p.exitcode is not None]
    # Once a worker dies the pool sends SIGTERM to the others, so another code is the
    # culprit's; when all say SIGTERM, something outside sent it to the culprit too.
    culprits = [code for code in codes if code != -signal.SIGTERM] or codes
    if not culprits:
        return "worker process died (exit code unknown)"
    return "; ".join(_describe_exit(code) for code in sorted(set(culprits)))


def _describe_exit(code: int) -> str:
    if code >= 0:
        return f"worker process died (exit code {code})"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    return f"worker process killed by signal {name}"
