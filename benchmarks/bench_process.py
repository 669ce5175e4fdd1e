"""ProcessExecutor(2) speed-up over serial, for CPU-bound operations of a given duration.

The operation spins on ``time.thread_time`` until it has used ``ms`` of CPU: a sleep
would overlap for free, and a wall-clock spin would hide two workers fighting the
runner for 2 cores; CPU time is the same work whoever runs it. Serial and process
sweeps run the same experiment into fresh stores, through ``metalab.run``, so the
figure includes the pool's start-up, shipping the task and writing records.

The floor is a plain ``multiprocessing.Pool(2)`` (the platform's default start method,
fork on Linux) mapping the same spin and appending the same JSON line, against the same
plain loop run serially: the speed-up this machine gives without metalab. Everything is
measured twice, alternating, and the best of each counts.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zlib
from pathlib import Path

from _common import Row

import metalab


def spin(params, capture):
    """Use ``params['ms']`` milliseconds of CPU in this thread; record how many loops."""
    end = time.thread_time() + params["ms"] / 1000
    loops = 0
    while time.thread_time() < end:
        loops += 1
    capture.metric("loops", loops)


def _experiment(ms: float, n_runs: int) -> metalab.Experiment:
    op = metalab.operation(name=f"spin_{ms}ms", version="1")(spin)
    params = metalab.grid(ms=[ms], i=list(range(n_runs)))
    return metalab.Experiment(f"spin_{ms}ms", "1", {}, op, params, metalab.seeds(base=1))


def _plain_spin(task: tuple[float, int, str]) -> int:
    """The plain floor's unit of work: spin, then append one JSON line to a file."""
    ms, index, folder = task
    end = time.thread_time() + ms / 1000
    loops = 0
    while time.thread_time() < end:
        loops += 1
    body = json.dumps({"run_id": f"{index:032x}", "metrics": {"loops": loops}}).encode()
    fd = _segment(folder)
    os.write(fd, b"%08x %s\n" % (zlib.crc32(body), body))
    return loops


_SEGMENTS: dict[str, int] = {}


def _segment(folder: str) -> int:
    """This process's append-only file in ``folder``, opened once (as a store would)."""
    if folder not in _SEGMENTS:
        path = os.path.join(folder, f"{os.getpid()}.jsonl")
        _SEGMENTS[folder] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _SEGMENTS[folder]


def _plain_times(ms: float, n_runs: int, folder: Path) -> tuple[float, float]:
    """Seconds of the plain loop serially, then on a plain ``multiprocessing.Pool(2)``."""
    import multiprocessing

    tasks = [(ms, i, str(folder)) for i in range(n_runs)]
    start = time.perf_counter()
    for task in tasks:
        _plain_spin(task)
    serial = time.perf_counter() - start
    start = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        pool.map(_plain_spin, tasks)
    return serial, time.perf_counter() - start


def _sweep(exp: metalab.Experiment, store: Path, executor: metalab.Executor | None) -> float:
    start = time.perf_counter()
    metalab.run(exp, store=store, executor=executor)
    return time.perf_counter() - start


def measure(workdir: Path, ms: float, runs: int) -> list[Row]:
    exp = _experiment(ms, runs)
    # Serial and parallel alternate, twice, each into a fresh store; the best of each
    # counts, so a burst of load from elsewhere on a 2-core machine costs less.
    serials, parallels, floors = [], [], []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        root = Path(folder)
        for attempt in range(2):
            serials.append(_sweep(exp, root / f"serial-{attempt}", None))
            executor = metalab.ProcessExecutor(2)
            parallels.append(_sweep(exp, root / f"process-{attempt}", executor))
            (root / f"plain-{attempt}").mkdir()
            plain_serial, plain_parallel = _plain_times(ms, runs, root / f"plain-{attempt}")
            floors.append(plain_serial / plain_parallel)
    serial, parallel, floor = min(serials), min(parallels), max(floors)
    target = 1.85 if ms >= 20 else 1.6
    return [
        Row(
            f"ProcessExecutor(2) speed-up, {ms:g} ms ops ({runs:,} runs)",
            serial / parallel,
            "x",
            target,
            floor,
            lower_is_better=False,
            note=(
                f"serial {serial:.2f} s, process {parallel:.2f} s; load average "
                f"{os.getloadavg()[0]:.2f} after (other work on the machine drags the floor too)"
            ),
        )
    ]
