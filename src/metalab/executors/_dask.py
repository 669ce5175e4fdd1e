"""DaskExecutor: chunks run on a Dask cluster. Imports errors, _optional, _validate, executors.

:class:`DaskExecutor` runs each chunk as one task of a ``distributed`` cluster: a
``LocalCluster`` of worker processes it starts and stops itself, or an existing
scheduler it joins by address. ``dask`` and ``distributed`` are imported when an
executor is made, never by ``import metalab``.
"""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from types import ModuleType
from typing import Any, TypeVar

from metalab._optional import require
from metalab._validate import check_int
from metalab.errors import InvalidArgumentError, InvalidTypeError, Terminated
from metalab.executors._base import Executor, WorkerLost, _pickled_function

__all__ = ["DaskExecutor"]

T = TypeVar("T")
R = TypeVar("R")

#: Functions unpickled in this worker process, by the key of their payload's task.
_loaded: OrderedDict[str, Callable[[list[Any]], list[Any]]] = OrderedDict()
_loaded_lock = threading.Lock()
# A runner maps one function up to three times (first pass, then the retries of lost
# runs); a few more cover workers shared by several runners.
_LOADED_MAX = 8

#: What a chunk task returns when the map was closed before the task began.
_SKIPPED = "metalab-skipped"


class _Work:
    """A chunk and what the worker needs to run it, opaque to Dask's task parser.

    Dask looks inside lists and tuples given to a task for futures and tasks; a
    chunk of work items is plain data and must reach the function untouched.
    """

    __slots__ = ("chunk", "fn_key", "stop")

    def __init__(self, fn_key: str, stop: str, chunk: list[Any]) -> None:
        self.fn_key = fn_key
        self.stop = stop
        self.chunk = chunk

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Work, (self.fn_key, self.stop, self.chunk))


def _payload(data: bytes) -> bytes:
    """Task holding the pickled function; Dask copies its result to each worker once."""
    return data


def _run_chunk(payload: bytes, work: _Work) -> Any:
    """Run the function pickled in ``payload`` on a chunk, unless the map was closed."""
    distributed = require("distributed", feature="DaskExecutor()", extra="dask")
    # One scheduler round trip per chunk: a chunk that has not begun when the consumer
    # closes the stream must not run, and only the scheduler knows the stream is closed.
    if distributed.Event(work.stop).is_set():
        return _SKIPPED
    with _loaded_lock:
        fn = _loaded.get(work.fn_key)
        if fn is None:
            # Unpickled once per worker and kept: the runner's function carries the
            # experiment and caches built for it, as ProcessExecutor's workers do.
            fn = _loaded[work.fn_key] = pickle.loads(payload)
            while len(_loaded) > _LOADED_MAX:
                _loaded.popitem(last=False)
        else:
            _loaded.move_to_end(work.fn_key)
    return fn(work.chunk)


class DaskExecutor(Executor):
    """Runs chunks as tasks on a Dask cluster, local or joined by ``address``.

    With ``address=None`` each :meth:`map_chunks` starts a ``distributed.LocalCluster``
    of ``n_workers`` worker processes (default: one per CPU) of one thread each when
    first iterated, and closes it when the stream ends. With an address such as
    ``"tcp://10.0.0.5:8786"`` it joins that scheduler with a ``distributed.Client`` and
    leaves the cluster running; ``n_workers`` then only says how many chunks to plan
    for (default: the scheduler's worker threads when first asked).

    The function is pickled once with cloudpickle and reaches each worker once; each
    chunk is one task, at most ``2 * max_workers`` of them in flight, and outcomes
    stream back as tasks finish. A worker that dies has its tasks rescheduled by Dask
    (up to the scheduler's ``distributed.scheduler.allowed-failures``); a chunk whose
    workers keep dying comes back as :class:`WorkerLost`. As with any cluster of
    spawned processes, a script must start its work under
    ``if __name__ == "__main__":``.
    """

    uses_processes = True

    def __init__(self, address: str | None = None, n_workers: int | None = None) -> None:
        if address is not None:
            if not isinstance(address, str):
                raise InvalidTypeError(
                    f"DaskExecutor(address={address!r}): must be a scheduler address such "
                    f"as 'tcp://127.0.0.1:8786', or None for a local cluster, got "
                    f"{type(address).__name__}."
                )
            if not address.strip():
                raise InvalidArgumentError(
                    f"DaskExecutor(address={address!r}): empty; pass the scheduler's "
                    f"address such as 'tcp://127.0.0.1:8786', or None for a local cluster."
                )
        if n_workers is not None:
            n_workers = check_int("DaskExecutor", "n_workers", n_workers, minimum=1)
        elif address is None:
            n_workers = os.cpu_count() or 1
        self.address = address
        self.n_workers = n_workers
        self._distributed: ModuleType = require(
            "distributed", feature="DaskExecutor()", extra="dask"
        )
        self._cloudpickle = require("cloudpickle", feature="DaskExecutor()", extra="dask")
        self._threads: int | None = n_workers

    @property
    def max_workers(self) -> int:  # type: ignore[override]
        """Chunks that may run at once: the workers started, or the scheduler's threads."""
        if self._threads is None:
            client = self._connect()
            try:
                self._threads = _thread_count(client)
            finally:
                client.close()
        return self._threads

    def chunk_size(self, n_items: int) -> int:
        """Aim at four or more chunks per worker and at most 256 items per chunk."""
        check_int("DaskExecutor.chunk_size", "n_items", n_items, minimum=0)
        # As ProcessExecutor's: spare chunks let idle workers help at the end of a
        # sweep, and the cap bounds what a dead worker takes with it.
        return max(1, min(256, n_items // (4 * self.max_workers)))

    def map_chunks(
        self, fn: Callable[[list[T]], list[R]], chunks: Iterable[list[T]]
    ) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
        """Run ``fn`` on each chunk as a Dask task; yield ``(chunk, outcome)`` as each ends.

        The cluster (or the connection to it) is set up at the first ``next()``. An
        exception raised by ``fn`` is re-raised here, after the chunks still running
        have finished.
        """
        payload = _pickled_function("DaskExecutor.map_chunks", fn, self._cloudpickle)
        return self._stream(payload, iter(chunks))

    def _connect(self, cluster: Any = None) -> Any:
        """Return a Client of ``cluster``, or of the scheduler at ``self.address``."""
        distributed = self._distributed
        if cluster is not None:
            return distributed.Client(cluster, set_as_default=False)
        try:
            return distributed.Client(self.address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InvalidArgumentError(
                f"DaskExecutor(address={self.address!r}): no Dask scheduler answered "
                f"({type(exc).__name__}: {exc}); start one (`dask scheduler`) and pass "
                f"the address it prints, or pass address=None for a local cluster."
            ) from exc

    def _stream(
        self, payload: bytes, chunks: Iterator[list[T]]
    ) -> Iterator[tuple[list[T], list[R] | WorkerLost]]:
        distributed = self._distributed
        cluster = _start_cluster(distributed, self.n_workers) if self.address is None else None
        client = None
        in_flight: dict[Any, list[T]] = {}
        stop = done = None
        interrupted = False
        try:
            client = self._connect(cluster)
            if self.address is not None and self.n_workers is None:
                self._threads = _thread_count(client)
            # More chunks queued than workers keeps every worker busy while the consumer
            # handles an outcome; twice as many bounds what the scheduler holds.
            window = 2 * self.max_workers
            token = uuid.uuid4().hex
            stop = distributed.Event(f"metalab-stop-{token}", client=client)
            # A task rather than a scatter: were every worker holding the function to
            # die, the scheduler runs this task again, where scattered data is lost.
            fn = client.submit(_payload, payload, key=f"metalab-fn-{token}")
            done = distributed.as_completed(loop=client.loop)
            index = 0

            def refill() -> None:
                nonlocal index
                for chunk in islice(chunks, window - len(in_flight)):
                    work = _Work(fn.key, stop.name, chunk)
                    future = client.submit(_run_chunk, fn, work, key=f"metalab-{token}-{index}")
                    index += 1
                    in_flight[future] = chunk
                    done.add(future)

            while True:
                # Refilled after the consumer took the last outcome, not before: a stream
                # closed at its first outcome has then pulled no more than one window.
                refill()
                if not in_flight:
                    return
                future = next(done)
                chunk = in_flight.pop(future)
                outcome = _outcome(distributed, future)
                future.release()
                yield chunk, outcome
        except Terminated:
            # SIGTERM reached the runner alone: stop now rather than at the end of the
            # running chunks; records not yet written are run again on resume.
            interrupted = True
            raise
        finally:
            _wind_down(client, stop, done, in_flight, wait=not interrupted)
            if cluster is not None:
                cluster.close()


def _outcome(distributed: ModuleType, future: Any) -> Any:
    """Return a finished task's results, WorkerLost if its workers kept dying; else raise."""
    try:
        return future.result()
    except distributed.KilledWorker as exc:
        tries = getattr(exc, "allowed_failures", 0) + 1
        last = getattr(getattr(exc, "last_worker", None), "address", "unknown")
        # The same reason for every chunk of one death: the runner reports it per run.
        return WorkerLost(
            f"dask worker process died running the chunk, on each of {tries} tries "
            f"(distributed.KilledWorker; the last worker was {last})"
        )


def _wind_down(client: Any, stop: Any, done: Any, in_flight: dict[Any, Any], *, wait: bool) -> None:
    """Keep chunks not yet begun from running, wait for the running ones, disconnect."""
    if client is None:
        return
    try:
        if in_flight:
            if stop is not None:
                stop.set()
            if wait and done is not None:
                # Tasks that had not begun see the event and return at once; ``done``
                # holds just the futures still in flight.
                for _ in done:
                    pass
            client.cancel(list(in_flight))
        if stop is not None:
            stop.clear()  # the scheduler forgets a cleared event nobody waits on
    finally:
        in_flight.clear()
        client.close()


def _thread_count(client: Any) -> int:
    """Worker threads the scheduler has now, at least one."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return max(1, sum(worker.get("nthreads", 1) for worker in workers.values()))


def _start_cluster(distributed: ModuleType, n_workers: int | None) -> Any:
    """Start a LocalCluster of ``n_workers`` processes, and close it if interrupted.

    The cluster starts in a helper thread: a Ctrl-C during the seconds of start-up
    lands in this thread's wait, which then waits for the cluster to exist and closes
    it, rather than leaving worker processes that nobody can reach.
    """
    made: dict[str, Any] = {}
    finished = threading.Event()

    def start() -> None:
        try:
            made["cluster"] = distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",  # any free port: 8787 may be taken
            )
        except BaseException as exc:
            made["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=start, name="metalab-dask-start", daemon=True).start()
    try:
        # An Event, not Thread.join: a join interrupted by Ctrl-C may return at once
        # when called again (Python 3.11), before the cluster exists.
        finished.wait()
    except BaseException:
        finished.wait()
        if "cluster" in made:
            made["cluster"].close()
        raise
    if "error" in made:
        raise made["error"]
    return made["cluster"]
