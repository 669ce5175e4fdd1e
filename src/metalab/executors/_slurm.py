"""SLURM job arrays through submitit. Imports errors and _optional only.

:class:`SlurmExecutor` holds the ``sbatch`` settings and submits one function over a
list of arguments as job arrays, one array task per argument, split where the
cluster's ``MaxArraySize`` says; it then tells the state of each task from ``squeue``
and ``scontrol`` (never from ``sacct``: clusters without an accounting database are
common, and submitit then waits forever on a task that died hard). What the tasks do,
and what becomes of a task that ended early, is the caller's business
(:mod:`metalab.cluster`).
"""

from __future__ import annotations

import getpass
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalab._optional import require
from metalab.errors import InvalidArgumentError, InvalidTypeError, MetalabError

__all__ = ["SlurmExecutor", "SlurmTask"]

#: At most this many array tasks a sweep, unless ``chunk_size`` says otherwise.
_DEFAULT_TASKS = 1000


@dataclass(frozen=True, slots=True)
class SlurmTask:
    """One array task: ``job_id`` is ``"<array job>_<index>"``; ``log`` its stderr file."""

    job_id: str
    log: str

    @property
    def array_job_id(self) -> str:
        """The ID of the array the task belongs to (what ``scancel`` takes)."""
        return self.job_id.partition("_")[0]


class SlurmExecutor:
    """Run a sweep as SLURM job arrays, submitted with submitit; ``run()`` returns at once.

    Each array task takes a contiguous block of the sweep's runs, finds each case by
    its index, runs it and writes its record to the store, which must therefore be a
    folder every node sees (or a PostgreSQL store). ``metalab.run(exp,
    executor=SlurmExecutor(...))`` submits and returns a :class:`~metalab.SlurmSweep`
    handle (``wait()``, ``status()``, ``cancel()``, ``results()``).

    Args:
        folder: Where submitit keeps each task's pickled work, stdout and stderr log.
            Must be visible from the compute nodes. Default ``slurm`` in the current
            folder (made absolute now).
        partition: ``--partition``; default: the cluster's default partition.
        time: ``--time``, in minutes, of each array task (default 60).
        cpus_per_task: ``--cpus-per-task`` (default 1).
        mem: ``--mem`` of each task, in SLURM's syntax (``"4G"``, ``"500M"``).
        gpus_per_task: ``--gpus-per-task``.
        array_parallelism: At most this many tasks of an array run at once (``%N``).
        chunk_size: Runs a task takes; default: the sweep split into at most 1000
            tasks. Give short runs more per task: starting a task costs seconds.
        setup: Shell lines run before each task (``module load ...``, ``source
            venv/bin/activate``).
        max_array_size: Tasks per array; default: the cluster's ``MaxArraySize``
            (``scontrol show config``). Larger sweeps are split into several arrays.
        python: The interpreter the tasks run (default: this one).
        **slurm_extra: Any other ``sbatch`` option, e.g. ``account="proj"``,
            ``qos="short"``, ``constraint="a100"``.

    >>> SlurmExecutor(folder="/tmp/slurm", partition="debug", time=30).time
    30

    """

    def __init__(
        self,
        folder: str | os.PathLike[str] = "slurm",
        *,
        partition: str | None = None,
        time: int = 60,
        cpus_per_task: int = 1,
        mem: str | None = None,
        gpus_per_task: int | None = None,
        array_parallelism: int | None = None,
        chunk_size: int | None = None,
        setup: Sequence[str] = (),
        max_array_size: int | None = None,
        python: str | None = None,
        **slurm_extra: str | int | bool,
    ) -> None:
        if not isinstance(folder, str | os.PathLike):
            raise InvalidTypeError(
                f"SlurmExecutor(folder={folder!r}): must be a folder path the compute nodes "
                f"see, e.g. folder='slurm'."
            )
        self.folder = Path(folder).absolute()
        self.partition = _optional_text("partition", partition)
        self.time = _whole("time", time, "minutes of each array task, e.g. time=120")
        self.cpus_per_task = _whole("cpus_per_task", cpus_per_task, "e.g. cpus_per_task=4")
        if mem is not None and not (isinstance(mem, str) and re.fullmatch(r"\d+[KMGT]?B?", mem)):
            raise InvalidArgumentError(
                f"SlurmExecutor(mem={mem!r}): must be SLURM's --mem syntax, a whole number "
                f"with an optional unit K, M, G or T, e.g. mem='16G'."
            )
        self.mem = mem
        self.gpus_per_task = _whole("gpus_per_task", gpus_per_task, "e.g. gpus_per_task=1", True)
        self.array_parallelism = _whole(
            "array_parallelism", array_parallelism, "e.g. array_parallelism=50", True
        )
        self.chunk_size = _whole("chunk_size", chunk_size, "runs per task, e.g. 100", True)
        if isinstance(setup, str) or not all(isinstance(line, str) for line in setup):
            raise InvalidTypeError(
                f"SlurmExecutor(setup={setup!r:.80}): must be a list of shell lines, e.g. "
                f"setup=['module load python/3.11']."
            )
        self.setup = list(setup)
        self.max_array_size = _whole(
            "max_array_size", max_array_size, "e.g. max_array_size=1000", True
        )
        self.python = _optional_text("python", python)
        for key, value in slurm_extra.items():
            if not isinstance(value, str | int | bool):
                raise InvalidTypeError(
                    f"SlurmExecutor({key}={value!r:.80}): an extra sbatch option must be a "
                    f"str, int or bool (True for a flag), e.g. account='proj'."
                )
        self.slurm_extra = dict(slurm_extra)

    def __repr__(self) -> str:
        return f"SlurmExecutor(folder={str(self.folder)!r}, partition={self.partition!r})"

    def runs_per_task(self, n_runs: int) -> int:
        """Return how many runs each array task takes, for a sweep of ``n_runs`` to run."""
        return self.chunk_size or max(1, math.ceil(n_runs / _DEFAULT_TASKS))

    def submit(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[SlurmTask]:
        """Submit ``fn(arg)`` for each of ``args`` as array tasks; return the tasks in order.

        ``fn`` and each argument are pickled by submitit (cloudpickle) into
        :attr:`folder`. Arrays longer than the cluster allows are split.
        """
        submitit = self.check()
        executor = submitit.SlurmExecutor(folder=str(self.folder), python=self.python)
        executor.update_parameters(**self._parameters())
        per_array = self.max_array_size or cluster_max_array_size()
        tasks: list[SlurmTask] = []
        for start in range(0, len(args), per_array):
            block = args[start : start + per_array]
            jobs = executor.map_array(fn, block)
            tasks += [SlurmTask(job.job_id, str(job.paths.stderr)) for job in jobs]
        return tasks

    def check(self) -> Any:
        """Raise unless submitit is installed and a SLURM controller answers; return submitit.

        ``run`` calls it before it touches the store.
        """
        submitit = require("submitit", feature="SlurmExecutor", extra="slurm")
        if shutil.which("sbatch") is None:
            raise MetalabError(
                "SlurmExecutor: no 'sbatch' on this machine's PATH, so no SLURM cluster to "
                "submit to; run on a login node of the cluster, or choose another executor."
            )
        # Asks the controller, so that a cluster out of reach is said before any work.
        cluster_max_array_size()
        return submitit

    def _parameters(self) -> dict[str, Any]:
        """Return the settings in submitit's names."""
        extra: dict[str, Any] = {key.replace("_", "-"): v for key, v in self.slurm_extra.items()}
        if self.mem is not None:  # submitit's own `mem` takes gigabytes as a number
            extra["mem"] = self.mem
        parameters: dict[str, Any] = {
            "time": self.time,
            "cpus_per_task": self.cpus_per_task,
            "job_name": "metalab",
            "setup": self.setup,
            "additional_parameters": extra,
        }
        for name in ("partition", "gpus_per_task", "array_parallelism"):
            value = getattr(self, name)
            if value is not None:
                parameters[name] = value
        return parameters


def cluster_max_array_size() -> int:
    """Return the cluster's MaxArraySize (array indices run from 0 to it less one)."""
    text = _slurm_command(["scontrol", "show", "config"])
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", text, re.MULTILINE)
    # SLURM's documented default when the line is missing.
    return int(found.group(1)) if found else 1001


def task_states(tasks: Sequence[SlurmTask]) -> dict[str, str]:
    """Return ``{job ID: state}`` of those ``tasks`` still queued or running (``squeue``).

    A task that has left the queue is absent; ask :func:`ended_state` how it ended.
    """
    if not tasks:
        return {}
    # All of the user's jobs, not `--jobs`: squeue fails as a whole on an ID it has
    # forgotten (MinJobAge after the end), which would hide the others.
    text = _slurm_command(["squeue", "--noheader", "--array", "--format", "%i %T"])
    wanted = {task.job_id for task in tasks}
    states = {}
    for line in text.splitlines():  # --array: one line per task, pending ones too
        job_id, _, state = line.strip().partition(" ")
        if job_id in wanted:
            states[job_id] = state
    return states


def ended_state(task: SlurmTask) -> str:
    """How a task that left the queue ended (``COMPLETED``, ``TIMEOUT``, ...), if SLURM knows.

    ``scontrol`` remembers a finished job for ``MinJobAge`` seconds (300 by default);
    after that the state is ``"ENDED"``.
    """
    text = _slurm_command(["scontrol", "--oneliner", "show", "job", task.job_id], missing_ok=True)
    found = re.search(r"\bJobState=(\S+)", text)
    return found.group(1) if found else "ENDED"


def cancel(tasks: Sequence[SlurmTask]) -> None:
    """``scancel`` the arrays ``tasks`` belong to (their queued and running tasks)."""
    arrays = sorted({task.array_job_id for task in tasks})
    if arrays:
        _slurm_command(["scancel", *arrays])


def _slurm_command(argv: list[str], *, missing_ok: bool = False) -> str:
    """Run a SLURM client command for the current user; return its stdout.

    ``missing_ok``: a job SLURM no longer knows is not an error (empty output).
    """
    if shutil.which(argv[0]) is None:
        raise MetalabError(
            f"SlurmExecutor: no {argv[0]!r} on this machine's PATH; SLURM's client "
            f"commands are needed to follow a sweep (run where sbatch and squeue are)."
        )
    if argv[0] == "squeue":
        argv = [*argv, "--user", getpass.getuser()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        if missing_ok and ("Invalid job id" in done.stderr or "not found" in done.stderr):
            return ""
        raise MetalabError(
            f"SlurmExecutor: {' '.join(argv)} failed (exit {done.returncode}): "
            f"{' '.join(done.stderr.split())[-300:]}; is the SLURM controller up, and "
            f"SLURM_CONF right?"
        )
    return done.stdout


def _whole(name: str, value: Any, example: str, optional: bool = False) -> Any:
    """Return ``value`` if it is an int >= 1 (or None when ``optional``); else raise."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"SlurmExecutor({name}={value!r}): must be a whole number >= 1, {example}."
        )
    return value


def _optional_text(name: str, value: Any) -> str | None:
    """Return ``value`` if it is None or a non-empty str; else raise."""
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise InvalidTypeError(f"SlurmExecutor({name}={value!r}): must be a non-empty str.")
    return value
