"""ProcessExecutor: chunks run in worker processes. Imports errors, _optional, _validate, executors.

:class:`ProcessExecutor` runs chunks in worker processes: it ships the function once
per worker with cloudpickle, so lambdas and closures from ``__main__`` or a notebook
work, and turns a worker's death into :class:`~metalab.executors._base.WorkerLost`.
With ``gpus=``, each worker is pinned to one NVIDIA GPU through ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import operator
import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from metalab._nvidia import gpus as nvidia_gpus
from metalab._optional import require
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.executors._base import _pickled_function
from metalab.executors._pool import _PoolExecutor, _PoolFactory

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext
    from multiprocessing.sharedctypes import Synchronized

__all__ = ["ProcessExecutor"]

T = TypeVar("T")
R = TypeVar("R")

# Set in each worker process by the pool initializer, which runs before any chunk.
_worker_fn: Callable[[list[Any]], list[Any]]

#: What a pinned worker's GPU is called in its environment; ``Runtime.device`` and
#: ``Runtime.gpu`` (metalab.operation, which cannot import executors) read it.
_PINNED_GPU = "METALAB_GPU"

#: The GPUs of each worker of one pool, and a counter from which each takes its slot.
_Pinning = tuple[list[str], "Synchronized[int]"]


def _load_fn(payload: bytes, parent: int, pinning: _Pinning | None = None) -> None:
    """Pool initializer: pin its GPU, unpickle the chunk function once, die with the parent."""
    global _worker_fn
    if pinning is not None:
        # Before unpickling: that imports the user's modules, which may start CUDA.
        _pin_gpu(*pinning)
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


def _pin_gpu(slots: list[str], taken: Synchronized[int]) -> None:
    """Show this worker only the GPU of the next free slot, as CUDA's ``cuda:0``."""
    with taken.get_lock():
        slot = taken.value
        taken.value += 1
    gpu = slots[slot % len(slots)]
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    # CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi, whose numbers
    # gpus= takes and provenance records, numbers them in PCI bus order.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    os.environ[_PINNED_GPU] = gpu


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

    ``gpus`` pins each worker to one NVIDIA GPU: ``"all"`` for every GPU this process
    may use, or a list of GPU numbers as ``nvidia-smi`` (or, where it is set,
    ``CUDA_VISIBLE_DEVICES``) numbers them. Each worker sees its GPU alone, as
    ``cuda:0``, and the operation's ``runtime.device`` says so; ``max_workers`` then
    defaults to one worker per GPU, and more workers share the GPUs in turn. Asking
    for a GPU this machine lacks, or ``gpus`` with ``mp_context='fork'``, raises
    :class:`~metalab.errors.InvalidArgumentError` here, before any work.

    Attributes:
        gpus: The ``CUDA_VISIBLE_DEVICES`` value of each GPU the workers are pinned to,
            in the order they take them; None without ``gpus``.

    """

    uses_processes = True

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        mp_context: str | None = None,
        gpus: Sequence[int] | str | None = None,
    ) -> None:
        self._context = _mp_context(mp_context)
        self.gpus = None if gpus is None else _chosen_gpus(gpus, self._context)
        if max_workers is None and self.gpus is not None:
            max_workers = len(self.gpus)
        super().__init__(max_workers)
        self._cloudpickle = require("cloudpickle", feature="ProcessExecutor()", extra=None)

    def _prepare(self, fn: Callable[[list[T]], list[R]]) -> tuple[_PoolFactory, Callable[..., Any]]:
        payload = _pickled_function("ProcessExecutor.map_chunks", fn, self._cloudpickle)
        return partial(self._new_pool, payload), _run_chunk

    def _new_pool(self, payload: bytes) -> futures.ProcessPoolExecutor:
        pinning = None
        if self.gpus is not None:
            # A fresh counter per pool: a pool that replaces a broken one hands the
            # GPUs out again from the first slot.
            pinning = (_worker_gpus(self.gpus, self.max_workers), self._context.Value("i", 0))
        return futures.ProcessPoolExecutor(
            self.max_workers,
            mp_context=self._context,
            initializer=_load_fn,
            initargs=(payload, os.getpid(), pinning),
        )


def _worker_gpus(gpus: Sequence[str], max_workers: int) -> list[str]:
    """Return the GPU of each of ``max_workers`` workers: ``gpus`` in turn, round robin.

    >>> _worker_gpus(["0", "1"], 3)
    ['0', '1', '0']
    """
    return [gpus[slot % len(gpus)] for slot in range(max_workers)]


def _visible_gpus() -> list[str]:
    """Return the NVIDIA GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries.

    The GPUs ``nvidia-smi`` lists (``metalab._nvidia.gpus``), numbered from 0 in its
    order, or, where ``CUDA_VISIBLE_DEVICES`` is set, the entries of that list that name
    one of them (see :func:`_parse_visible_devices`). Empty where ``nvidia-smi`` is
    missing or fails.
    """
    return _parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"), len(nvidia_gpus() or []))


def _parse_visible_devices(value: str | None, count: int) -> list[str]:
    """Return the GPUs a ``CUDA_VISIBLE_DEVICES`` of ``value`` shows on ``count`` GPUs.

    None shows them all. Otherwise, as CUDA reads it, the comma-separated entries up to
    the first that names no GPU: a number below ``count``, or a ``GPU-`` or ``MIG-``
    UUID (taken on trust); so ``""`` and ``"-1"`` hide every GPU.

    >>> _parse_visible_devices(None, 2), _parse_visible_devices("3,1,9,0", 4)
    (['0', '1'], ['3', '1'])
    """
    if count == 0:
        return []
    if value is None:
        return [str(index) for index in range(count)]
    shown = []
    for entry in (part.strip() for part in value.split(",")):
        if not (
            (entry.isascii() and entry.isdigit() and int(entry) < count)
            or entry.startswith(("GPU-", "MIG-"))
        ):
            break
        shown.append(entry)
    return shown


def _chosen_gpus(gpus: object, context: BaseContext) -> list[str]:
    """Return the ``CUDA_VISIBLE_DEVICES`` entries of the GPUs ``gpus`` asks for."""
    where = f"ProcessExecutor(gpus={gpus!r})"
    numbers: list[int] | None = None  # None: all
    if isinstance(gpus, str):
        if gpus != "all":
            raise InvalidArgumentError(
                f"{where}: a string must be 'all'; to name GPUs, pass their numbers as a "
                f"list, e.g. gpus=[0, 1]."
            )
    elif isinstance(gpus, Sequence):
        numbers = [_gpu_number(where, number) for number in gpus]
        if not numbers or min(numbers) < 0 or len(set(numbers)) < len(numbers):
            raise InvalidArgumentError(
                f"{where}: give each GPU once, by its number from 0 (as nvidia-smi lists "
                f"them), e.g. gpus=[0, 1]; to put several workers on one GPU, raise "
                f"max_workers instead."
            )
    else:
        raise InvalidTypeError(
            f"{where}: must be 'all' or a list of GPU numbers, e.g. gpus=[0, 1], got "
            f"{type(gpus).__name__}."
        )
    if context.get_start_method() == "fork":
        # A forked worker inherits the parent's CUDA state, which a child cannot use,
        # and a parent that started CUDA has already fixed which GPUs it sees.
        raise InvalidArgumentError(
            f"ProcessExecutor(gpus={gpus!r}, mp_context='fork'): a forked worker cannot "
            f"be pinned to a GPU; drop mp_context= (forkserver) or pass mp_context='spawn'."
        )
    visible = _visible_gpus()
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen_as = "" if hidden is None else f" with CUDA_VISIBLE_DEVICES={hidden!r}"
    if not visible:
        raise InvalidArgumentError(
            f"{where}: this machine has no NVIDIA GPU to pin workers to (nvidia-smi "
            f"lists none{seen_as}); drop gpus= to run on the CPU, or run where "
            f"nvidia-smi lists GPUs."
        )
    if numbers is None:
        return visible
    missing = [number for number in numbers if number >= len(visible)]
    if missing:
        raise InvalidArgumentError(
            f"{where}: no GPU {missing[0]} here; this machine has {len(visible)} GPU(s)"
            f"{seen_as}, numbered 0 to {len(visible) - 1}; pass numbers from that range, "
            f"or gpus='all'."
        )
    return [visible[number] for number in numbers]


def _gpu_number(where: str, number: object) -> int:
    """Return ``number`` as an int (a NumPy integer will do); refuse anything else."""
    if isinstance(number, bool) or not hasattr(number, "__index__"):
        raise InvalidTypeError(
            f"{where}: GPU numbers must be ints, e.g. gpus=[0, 1]; got "
            f"{type(number).__name__} {number!r}."
        )
    return operator.index(number)


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
