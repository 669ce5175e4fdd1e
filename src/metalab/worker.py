"""What runs in a worker: a chunk of runs executed, captured and written to the store.

Imports the value modules, capture, record, provenance and store; knows nothing of
executors or of how a sweep is planned. :class:`RunChunk` is picklable, so the same
object runs a chunk in the caller, in a pool worker, on a Dask worker or in a SLURM
array task: the worker runs the operation, captures, and writes the records itself,
64 at a time or within 30 ms (:class:`_RecordBatch`).
"""

from __future__ import annotations

import copy
import errno
import functools
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalab._signals import TimeLimit
from metalab.capture import Capture, CapturedOutput, CaptureResult, capture_output
from metalab.context import context_fingerprint
from metalab.errors import MetalabError, RunTimeout, StoreFullError
from metalab.experiment import Experiment
from metalab.operation import Runtime
from metalab.params import ParamCase
from metalab.provenance import process_peak_memory, utc_now, utc_text
from metalab.record import FAILED, NOTHING_RARE, SUCCESS, RecordEncoder, RunRecord
from metalab.seeds import SeedBundle
from metalab.store import Store

__all__ = ["NO_SPACE", "Item", "RunChunk", "store_full"]

# One work item: (case, replicate index, run ID, attempt).
Item = tuple[ParamCase, int, str, int]

#: The errnos of a full disk or quota.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def store_full(message: str, cause: OSError) -> StoreFullError:
    """Return a StoreFullError saying ``message``, with the errno of the OSError ``cause``."""
    full = StoreFullError(message)
    full.errno = cause.errno
    return full


@dataclass
class RunChunk:
    """Runs a chunk of work items in a worker and persists each run's record there."""

    exp: Experiment
    store: Store
    timeout: float | None = None
    #: Facts added to each failed run's error, e.g. the SLURM job ID and log of the task.
    where: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A fingerprintable context is plain data, so it always deep-copies.
        self._pristine = copy.deepcopy(self.exp.context)
        self._replicates: dict[int, tuple[SeedBundle, str]] = {}
        wants = self.exp.operation.wants
        # An operation that does not ask for the context cannot change it, and one that
        # does not ask for its runtime never sees an output folder: neither costs then.
        self._checks_context = "context" in wants
        self._gives_runtime = "runtime" in wants
        self._limit = TimeLimit(self.timeout)
        self._runner_pid = os.getpid()  # pickled along: a worker sees it is not the runner
        self._current: tuple[Item, float] | None = None  # the run going on, since when

    def __repr__(self) -> str:  # what an executor's error names, e.g. "does not pickle"
        return (
            f"the operation {self.exp.operation.name!r} of experiment {self.exp.name!r} "
            f"(with its context)"
        )

    def __call__(self, chunk: list[Item]) -> list[tuple[str, str]]:
        """Run and record each item of ``chunk``; return their ``(run ID, status)``."""
        worker = f"{_hostname()}:{os.getpid()}:{threading.current_thread().name}"
        batch = _RecordBatch(
            self.store,
            RecordEncoder(
                self.exp.name, self.exp.version, host=_hostname(), pid=os.getpid(), worker=worker
            ),
        )
        statuses = []
        watchdog = None
        if self.timeout is not None and os.getpid() != self._runner_pid:
            watchdog = _Watchdog(self, batch)
        # One output capture for the chunk, from which each run takes what it printed:
        # entering one per run cost a trivial run more than the rest of its capture.
        call = self.exp.operation.caller()
        with capture_output() as printed:
            try:
                for item in chunk:
                    finished = self._run_one(worker, printed, call, *item)
                    statuses.append((item[2], batch.add(finished)))
            finally:
                if watchdog is not None:
                    watchdog.stop()
                batch.close()  # what ran before a Ctrl-C or an error is kept
        return statuses

    def _replicate(self, replicate: int) -> tuple[SeedBundle, str]:
        """Return the replicate's seed bundle and its JSON, made once per worker."""
        known = self._replicates.get(replicate)
        if known is None:
            bundle = self.exp.seeds[replicate]
            known = self._replicates[replicate] = (bundle, RecordEncoder.json(bundle.to_dict()))
        return known

    def _run_one(
        self,
        worker: str,
        printed: CapturedOutput,
        call: Callable[..., Any],
        case: ParamCase,
        replicate: int,
        rid: str,
        attempt: int,
    ) -> _Finished:
        exp = self.exp
        bundle, seeds_json = self._replicate(replicate)
        sink = _ArtifactSink(self.store, rid)
        capture = Capture(rid, sink)
        runtime = Runtime(rid, attempt, worker, capture.log) if self._gives_runtime else None
        error = None
        started_ns, start = time.time_ns(), time.perf_counter()
        if self.timeout is not None:
            self._current = ((case, replicate, rid, attempt), time.monotonic())
        try:
            try:
                with self._limit:
                    call(case, bundle, capture, exp.context, runtime)
            except StoreFullError:
                raise  # not the run's failure: the sweep stops, and resumes later
            except (Exception, SystemExit, RunTimeout) as exc:  # the run's failure
                error = _describe(exc)
            if error is None and self._checks_context:
                error = self._context_changed()
            if runtime is not None:
                for path in runtime.take_output_files():
                    try:
                        capture.artifact(path.name, path)
                    except MetalabError as exc:  # e.g. the same name given to capture.artifact
                        error = error or _describe(exc)
        finally:
            if runtime is not None:
                runtime.close()
        duration = time.perf_counter() - start
        finished_ns = time.time_ns()
        self._current = None
        result = capture.finish()
        printed_texts = printed.take()
        if error is None and not (
            result.steps is not None
            or result.log_lines
            or printed_texts
            or result.nonfinite_metrics
            or result.artifacts
        ):  # as in almost every run
            status, rare = SUCCESS, NOTHING_RARE
        else:
            status, rare = self._rare(sink, result, printed_texts, error)
        return (
            rid,
            status,
            attempt,
            case,
            replicate,
            seeds_json,
            started_ns,
            finished_ns,
            duration,
            result.metrics,
            rare,
        )

    def _rare(
        self,
        sink: _ArtifactSink,
        result: CaptureResult,
        printed: dict[str, str],
        error: dict[str, str] | None,
    ) -> tuple[str, str]:
        """Store a run's series, log and printed text; return its status and rare fields."""
        files: dict[str, str] = {}
        try:
            if result.steps is not None:
                files["steps"] = sink("_steps", "_steps.bin", result.steps, "steps").path
            if result.log_lines:
                text = "\n".join(result.log_lines).encode()
                files["logs"] = sink("_log", "_run.log", text, "text").path
            for stream, text in printed.items():
                files[stream] = sink(f"_{stream}", f"_{stream}.txt", text.encode(), "text").path
        except MetalabError as exc:  # e.g. its artifact folder is a link out of the store
            error = error or _describe(exc)
        if error is not None and self.where:
            error = {**error, **self.where}
        rare = RecordEncoder.rare_json(
            nonfinite_metrics=result.nonfinite_metrics,
            artifacts=result.artifacts,
            error=error,
            **files,
        )
        return (SUCCESS if error is None else FAILED), rare

    def _context_changed(self) -> dict[str, str] | None:
        """Fail the run if the operation changed the shared context, and restore it."""
        context = self.exp.context
        # Equality with the pristine copy settles almost every run at a fraction of the
        # cost of a fingerprint; the fingerprint decides when they differ (NaN != NaN).
        if context == self._pristine or (
            context_fingerprint(context) == self.exp.context_fingerprint
        ):
            return None
        self.exp.context = copy.deepcopy(self._pristine)  # later runs see the declared one
        return {
            "type": "ContextMutatedError",
            "message": "the operation changed the context, which is shared by every run "
            "and must stay read-only; copy what you need to change.",
            "traceback": "",
        }

    def record_lost(self, item: Item, reason: str) -> None:
        """Record as failed a run whose worker died every time it ran it."""
        self.record_failure(item, {"type": "WorkerLost", "message": reason, "traceback": ""})

    def record_failure(self, item: Item, error: dict[str, str]) -> None:
        """Record as failed, with ``error``, a run that left no record of its own."""
        case, replicate, rid, attempt = item
        now = utc_now()
        self.store.put_record(
            RunRecord(
                run_id=rid,
                experiment=self.exp.name,
                version=self.exp.version,
                case_index=case.index,
                replicate_index=replicate,
                params=case.to_dict(),
                seeds=self.exp.seeds[replicate].to_dict(),
                status=FAILED,
                attempt=attempt,
                error={**error, **self.where},
                started_at=now,
                finished_at=now,
                host=_hostname(),
                pid=os.getpid(),
            )
        )


class _Watchdog:
    """Ends a worker process whose run is stuck past its timeout where no signal reaches.

    ``timeout=`` raises :class:`RunTimeout` through SIGALRM, which Python handles only
    between bytecodes: a run stuck in C code that never returns, or that blocked the
    signal, would hold its worker forever. In a worker process (never the runner's), a
    thread then writes the chunk's finished records and the stuck run's failure, and
    ends the process; the runner sees the worker lost, finds the run recorded, and runs
    the chunk's other runs again elsewhere.
    """

    def __init__(self, task: RunChunk, batch: _RecordBatch) -> None:
        self._task = task
        self._batch = batch
        self._done = threading.Event()
        threading.Thread(target=self._watch, name="metalab-watchdog", daemon=True).start()

    def stop(self) -> None:
        """Stop watching (the chunk ended)."""
        self._done.set()

    def _watch(self) -> None:
        timeout = self._task.timeout
        assert timeout is not None
        grace = max(1.0, timeout / 10)
        while not self._done.wait(0.1):
            current = self._task._current
            if current is None or time.monotonic() - current[1] < timeout + grace:
                continue
            self._batch.close()
            self._task.record_failure(
                current[0],
                {
                    "type": "RunTimeout",
                    "message": f"the run went past timeout={timeout:g} s and did not stop "
                    f"within {grace:g} s more (stuck where no signal reaches: C code, or "
                    f"signals blocked); its worker process was ended",
                    "traceback": "",
                },
            )
            self._task.store.flush()
            os._exit(_STUCK_EXIT)


# A worker's exit code when its watchdog ended it (EX_SOFTWARE, as a process would).
_STUCK_EXIT = 70


#: A run that has ended, before its record is encoded (what :class:`_RecordBatch` takes):
#: run ID, status, attempt, case, replicate index, the replicate's seeds as JSON, start
#: and end as ``time.time_ns()``, duration in seconds, the final metrics, and the fields
#: most runs leave empty as :meth:`RecordEncoder.rare_json` encodes them. One flat tuple
#: a run, unpacked once when its record is encoded.
_Finished = tuple[str, str, int, ParamCase, int, str, int, int, float, dict[str, Any], str]


class _RecordBatch:
    """Records of runs that ended, written together with one append.

    Encoding and writing each record between two runs of a trivial operation cost
    6 us a run more than doing it for 64 runs at a time: the operation's code and
    the encoder's evict each other from the CPU caches (docs/performance.md). So a
    run that took under :data:`_BATCH_SECONDS` waits, with at most
    :data:`_BATCH_RUNS` - 1 others, until the batch is full, or until a flusher
    thread, looking every :data:`_BATCH_SECONDS` / 2, finds the batch that old, even
    while a long run goes on. A longer run is written at once. A kill -9 may thus lose
    the records of runs that ended in its last 30 ms, which a resume runs again; never
    half a record. Call :meth:`close` when the chunk ends or is interrupted: it writes
    the rest. The flusher is never woken by a run (waking a thread per batch cost more
    than the batching saved): it polls.
    """

    def __init__(self, store: Store, encoder: RecordEncoder) -> None:
        self._store = store
        self._encoder = encoder
        self._pending: list[_Finished] = []
        self._since = 0.0  # time.monotonic() when the first pending run was added
        self._case_json = _CaseJson()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._failure: BaseException | None = None

    def add(self, finished: _Finished) -> str:
        """Take a run's record; write the batch if it is due. Return the run's status."""
        with self._lock:
            self._raise_failure()
            pending = self._pending
            pending.append(finished)
            if len(pending) >= _BATCH_RUNS or finished[8] >= _BATCH_SECONDS:
                self._write()
            elif len(pending) == 1:
                self._since = time.monotonic()
                if self._flusher is None:
                    self._flusher = threading.Thread(
                        target=self._flush_late, name="metalab-records", daemon=True
                    )
                    self._flusher.start()
        return finished[1]

    def close(self) -> None:
        """Write every record still waiting and stop the flusher."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            self._raise_failure()
            self._write()

    def _flush_late(self) -> None:
        while not self._stop.wait(_BATCH_SECONDS / 2):
            with self._lock:
                if not self._pending or time.monotonic() - self._since < _BATCH_SECONDS:
                    continue
                try:
                    self._write()
                except BaseException as exc:  # e.g. a full disk: raised in the run's thread
                    self._failure = exc
                    return

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _write(self) -> None:
        """Encode and append every record taken since the last write (lock held)."""
        if not self._pending:
            return
        line, case_json = self._encoder.line, self._case_json
        # The process's peak so far: within 30 ms of each run's end, and a peak that
        # only grows, so a later reading than the run's end differs little.
        peak_memory = process_peak_memory()
        bodies = []
        for (
            rid,
            status,
            attempt,
            case,
            replicate,
            seeds_json,
            started_ns,
            finished_ns,
            duration,
            metrics,
            rare,
        ) in self._pending:
            params_json, tags_json = case_json(case)
            bodies.append(
                line(
                    rid,
                    status,
                    attempt,
                    case.index,
                    replicate,
                    params_json,
                    seeds_json,
                    _dumps(metrics) if metrics else "{}",
                    rare,
                    utc_text(started_ns),
                    utc_text(finished_ns),
                    duration,
                    peak_memory,
                    tags_json,
                )
            )
        self._pending = []
        self._store.put_records_json(bodies)


#: At most this many finished runs wait for their records to be written together,
_BATCH_RUNS = 64
#: and for at most this long, in seconds.
_BATCH_SECONDS = 0.02


class _CaseJson:
    """A case's params and tags as record JSON, encoded once for all its replicates."""

    __slots__ = ("_case", "_json")

    def __init__(self) -> None:
        self._case: ParamCase | None = None
        self._json = ("", "")

    def __call__(self, case: ParamCase) -> tuple[str, str]:
        if case is not self._case:
            tags = _dumps(list(case.tags)) if case.tags else "[]"
            self._case, self._json = case, (case.to_json(), tags)
        return self._json


#: Compact JSON, as the record holds it.
_dumps = RecordEncoder.json


class _ArtifactSink:
    """Binds a store and a run ID into the sink a Capture writes artifacts through."""

    __slots__ = ("run_id", "store")

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def __call__(self, name: str, filename: str, data: bytes | Path, kind: str) -> Any:
        try:
            return self.store.put_artifact(self.run_id, name, filename, data, kind=kind)
        except OSError as exc:
            if exc.errno not in NO_SPACE:
                raise
            # Raised through the operation, which is not at fault: the runner stops.
            raise store_full(
                f"run {self.run_id}: no space left to store the artifact {name!r} in "
                f"{self.store.location} ({exc.strerror}).",
                exc,
            ) from exc


_PACKAGE_DIR = os.path.dirname(__file__)


@functools.cache
def _hostname() -> str:
    """Return the host name, asked once per process (every record carries it)."""
    return socket.gethostname()


def _describe(exc: BaseException) -> dict[str, str]:
    """Type, message and traceback of a run's exception, starting at the user's code."""
    tb = exc.__traceback__
    # The runner's and invoke()'s frames come first; they say nothing about the failure.
    while (
        tb is not None
        and tb.tb_next is not None
        and (tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR))
    ):
        tb = tb.tb_next
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
    }
