"""Sweeps submitted to SLURM: the plan cut into blocks, the array task, and the handle.

Imports the value modules, worker, results, store and the SLURM executor; the runner
calls :func:`submit` when ``run()`` is given a :class:`~metalab.SlurmExecutor`.

Each array task gets a :class:`_Block`: spans of sweep positions (position =
case index x replicates + replicate) and the attempt of each run tried before. It
finds each case by index, so the sweep itself is never pickled, and writes its runs
to the shared store as any worker does. What was submitted is kept in the store
(``experiment/slurm.json``), so :meth:`SlurmSweep.attach` follows the sweep from any
terminal. Nothing here asks ``sacct``: the task states come from ``squeue`` and
``scontrol``, and what a task ended without running is read off the store.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from metalab._optional import require
from metalab._signals import sigterm_as_interrupt
from metalab.errors import InvalidArgumentError, Terminated
from metalab.executors._slurm import SlurmExecutor, SlurmTask, cancel, ended_state, task_states
from metalab.experiment import Experiment
from metalab.record import SUCCESS
from metalab.results import Results
from metalab.store import Store, open_store
from metalab.worker import Item, RunChunk

__all__ = ["SlurmSweep"]

#: Where a store keeps what was last submitted to SLURM.
_SUBMISSION = "slurm.json"


@dataclass(frozen=True)
class _Block:
    """The runs one array task takes: ``(first position, count)`` spans, in sweep order.

    ``attempts`` maps the position of each run tried before to its attempt now; the
    others are first attempts.
    """

    spans: tuple[tuple[int, int], ...]
    attempts: dict[int, int] = field(default_factory=dict)

    def positions(self) -> Iterator[int]:
        """Yield the block's sweep positions in order."""
        for first, count in self.spans:
            yield from range(first, first + count)


def _blocks(items: Iterable[Item], width: int, per_task: int) -> list[_Block]:
    """Cut the planned ``items`` into blocks of ``per_task`` runs, as position spans."""
    blocks: list[_Block] = []
    spans: list[list[int]] = []
    attempts: dict[int, int] = {}
    taken = 0
    for case, replicate, _, attempt in items:
        position = case.index * width + replicate
        if spans and spans[-1][0] + spans[-1][1] == position:
            spans[-1][1] += 1
        else:
            spans.append([position, 1])
        if attempt != 1:
            attempts[position] = attempt
        taken += 1
        if taken == per_task:
            blocks.append(_Block(tuple(map(tuple, spans)), attempts))  # type: ignore[arg-type]
            spans, attempts, taken = [], {}, 0
    if taken:
        blocks.append(_Block(tuple(map(tuple, spans)), attempts))  # type: ignore[arg-type]
    return blocks


class _Preempted(Terminated):
    """SLURM asked the task to stop (preemption, or its time is nearly up)."""


@dataclass
class _ArrayTask:
    """What each array task runs: its block of runs, through a :class:`RunChunk`."""

    chunk: RunChunk

    def __call__(self, block: _Block, requeued: bool = False) -> dict[str, int]:
        """Run the block's runs (those not done yet, if SLURM requeued the task)."""
        exp, store = self.chunk.exp, self.chunk.store
        done: set[str] = set()
        if requeued:
            done = {rid for rid, (status, _) in store.run_states().items() if status == SUCCESS}
        self.chunk.where = _task_facts()
        width = len(exp.seeds)
        items = []
        for position in block.positions():
            index, replicate = divmod(position, width)
            case = exp.params[index]
            rid = exp.run_id(case, exp.seeds[replicate])
            if rid not in done:
                items.append((case, replicate, rid, block.attempts.get(position, 1)))
        # submitit's own handler of SLURM's warning signal would exit in the middle of a
        # run, which would then be recorded as failed: stop between runs instead (the
        # finished ones are written), then let submitit requeue the task.
        usual = signal.getsignal(signal.SIGUSR2)

        def preempted(signum: int, frame: Any) -> None:
            raise _Preempted("SLURM preempted the task, or its time is nearly up")

        signal.signal(signal.SIGUSR2, preempted)
        try:
            # scancel sends SIGTERM, which submitit ignores: stop between runs too.
            with sigterm_as_interrupt():
                statuses = self.chunk(items)
        except _Preempted:
            if callable(usual):
                usual(signal.SIGUSR2, None)  # checkpoint() below, requeue, exit
            raise
        finally:
            signal.signal(signal.SIGUSR2, usual)
        return dict(collections.Counter(status for _, status in statuses))

    def checkpoint(self, block: _Block, requeued: bool = False) -> Any:
        """Tell submitit how to requeue the task: the same block, skipping done runs."""
        submitit = require("submitit", feature="SlurmExecutor", extra="slurm")
        return submitit.helpers.DelayedSubmission(self, block, True)


def _task_facts() -> dict[str, str]:
    """Return the SLURM job ID and log of the task running here, for failed runs' errors."""
    submitit = require("submitit", feature="SlurmExecutor", extra="slurm")
    environment = submitit.JobEnvironment()
    return {"slurm_job": environment.job_id, "slurm_log": str(environment.paths.stderr)}


def submit(
    exp: Experiment,
    executor: SlurmExecutor,
    store: Store,
    items: Iterator[Item],
    timeout: float | None,
    pending: int,
) -> SlurmSweep:
    """Submit the planned ``items`` (about ``pending`` runs) as job arrays; return the handle.

    The items are streamed into position spans: a million-run plan never sits in memory.
    """
    blocks = _blocks(items, len(exp.seeds), executor.runs_per_task(max(pending, 1)))
    tasks = executor.submit(_ArrayTask(RunChunk(exp, store, timeout)), blocks) if blocks else []
    sweep = SlurmSweep(store, tasks, blocks, folder=str(executor.folder), exp=exp)
    store.put_experiment_file(_SUBMISSION, sweep._to_json())
    return sweep


class SlurmSweep:
    """A sweep submitted to SLURM: follow it, wait for it, cancel it, load its results.

    ``metalab.run(exp, executor=SlurmExecutor(...))`` returns one as soon as the arrays
    are submitted; :meth:`attach` gives one for a store from any other process.
    A task that ends before running all its runs (cancelled, killed, out of time or
    memory) leaves them for the next ``run`` of the same sweep, which resumes; the
    handle made by ``run`` also records them as failed (error type
    ``SlurmTaskLost``, with the task's job ID and log) when :meth:`wait` sees the
    task end.
    """

    def __init__(
        self,
        store: Store,
        tasks: list[SlurmTask],
        blocks: list[_Block],
        *,
        folder: str,
        exp: Experiment | None = None,
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.folder = folder
        self._blocks = blocks
        self._exp = exp

    @classmethod
    def attach(cls, store: str | os.PathLike[str] | Store) -> SlurmSweep:
        """Return the handle of the last sweep ``store`` (a store, its path or URL) submitted.

        Raises:
            InvalidArgumentError: ``store`` has never been given to a SLURM executor.

        """
        store = open_store(store, create=False)
        try:
            data = json.loads(store.read_file(f"experiment/{_SUBMISSION}"))
        except (FileNotFoundError, KeyError) as exc:
            raise InvalidArgumentError(
                f"SlurmSweep.attach({store.location}): no SLURM submission is recorded in "
                f"this store; submit with metalab.run(exp, store, executor=SlurmExecutor(...))."
            ) from exc
        tasks = [SlurmTask(job_id, log) for job_id, log, _, _ in data["tasks"]]
        blocks = [
            _Block(tuple(map(tuple, spans)), {int(k): v for k, v in attempts.items()})
            for _, _, spans, attempts in data["tasks"]
        ]
        return cls(store, tasks, blocks, folder=data["folder"])

    def _to_json(self) -> bytes:
        tasks = [
            [task.job_id, task.log, block.spans, block.attempts]
            for task, block in zip(self.tasks, self._blocks, strict=True)
        ]
        return json.dumps({"folder": self.folder, "tasks": tasks}).encode()

    @property
    def job_ids(self) -> list[str]:
        """The IDs of the submitted arrays (what ``squeue -j`` and ``scancel`` take)."""
        return sorted({task.array_job_id for task in self.tasks}, key=int)

    @property
    def runs(self) -> int:
        """Runs submitted."""
        return sum(count for block in self._blocks for _, count in block.spans)

    def __repr__(self) -> str:
        return (
            f"SlurmSweep(jobs={self.job_ids}, tasks={len(self.tasks)}, runs={self.runs}, "
            f"store={self.store.location!r})"
        )

    def status(self) -> dict[str, int]:
        """Count the store's runs and the sweep's array tasks by state, now.

        ``done``, ``failed`` and ``pending`` count runs of the whole experiment in
        the store (pending: not recorded yet); the other keys count array tasks by
        their SLURM state (``PENDING``, ``RUNNING``, ...), and ``ENDED`` those that
        have left the queue, e.g. ``{'done': 412, 'failed': 3, 'pending': 585,
        'RUNNING': 2, 'PENDING': 6, 'ENDED': 4}``.
        """
        states = self.store.run_states(verify=False)
        manifest = self.store.read_manifest() or {}
        done = sum(status == SUCCESS for status, _ in states.values())
        failed = len(states) - done
        total = int(manifest.get("total_runs", len(states)))
        counts = {"done": done, "failed": failed, "pending": max(0, total - len(states))}
        return {**counts, **self.task_counts()}

    def task_counts(self) -> dict[str, int]:
        """Count the sweep's array tasks by SLURM state; ``ENDED``: those out of the queue."""
        queued = task_states(self.tasks)
        counts = dict(collections.Counter(queued.values()))
        counts["ENDED"] = len(self.tasks) - len(queued)
        return counts

    def wait(self, timeout: float | None = None, poll: float = 2.0) -> Results:
        """Wait until every array task has left the queue; return the store's results.

        Runs a task ended without recording are recorded as failed (``SlurmTaskLost``,
        with the task's SLURM job ID, how it ended and its log), if this handle was
        made by ``run``; the next ``run`` of the sweep runs them again.

        Raises:
            TimeoutError: tasks are still queued or running after ``timeout`` seconds.

        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while task_states(self.tasks):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"SlurmSweep.wait(timeout={timeout}): jobs {', '.join(self.job_ids)} are "
                    f"still queued or running; wait again, or cancel()."
                )
            time.sleep(poll)
        if self._exp is not None:
            self._record_lost(self._exp)
        return self.results()

    def cancel(self) -> None:
        """Cancel the sweep's queued and running array tasks (``scancel``).

        Runs already recorded are kept; the next ``run`` of the sweep resumes.
        """
        cancel(self.tasks)

    def results(self) -> Results:
        """Load the runs in the store now (finished or not, the sweep goes on)."""
        return Results.from_store(self.store)

    def _record_lost(self, exp: Experiment) -> None:
        """Record as failed each run an ended task left without a record of its attempt."""
        states = self.store.run_states()
        width = len(exp.seeds)
        chunk = RunChunk(exp, self.store)
        for task, block in zip(self.tasks, self._blocks, strict=True):
            how = None
            for position in block.positions():
                index, replicate = divmod(position, width)
                case = exp.params[index]
                rid = exp.run_id(case, exp.seeds[replicate])
                attempt = block.attempts.get(position, 1)
                if states.get(rid, ("", 0))[1] >= attempt:
                    continue
                how = how or ended_state(task)
                chunk.record_failure(
                    (case, replicate, rid, attempt),
                    {
                        "type": "SlurmTaskLost",
                        "message": f"SLURM task {task.job_id} ended ({how}) before this run "
                        f"finished; see its log {task.log}. Run the sweep again: it resumes.",
                        "traceback": _log_tail(task.log),
                        "slurm_job": task.job_id,
                        "slurm_log": task.log,
                    },
                )
        self.store.flush()


def _log_tail(path: str, size: int = 4000) -> str:
    """Return the last ``size`` bytes of a task's log (where SLURM says why it stopped)."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - size))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""
