"""What a chunk costs on the pool executors, and whether more chunks per worker pay.

Run: python benchmarks/bench_chunks.py [--scan]; ``run_all.py`` runs the per-chunk cost
as the ``chunks`` entry. The cost is the wall time per chunk of a stream of one-item
chunks of a function that does nothing, on 2 workers, once the pool is up: the price
of handing a chunk over and getting its results back. Its floor is the same stream
through ``map`` of a plain ``concurrent.futures`` pool of the same kind (fork for
processes), which submits everything at once instead of keeping a window.

``--scan`` runs the speed-up sweeps of ``bench_process`` with chunk sizes aiming at 4,
8, 16 and 32 chunks per worker (``_PoolExecutor.chunk_size`` aims at 4): more chunks
shorten the tail where one worker idles, and cost a chunk hand-over each.
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

from _common import HERE, Row

import metalab
from metalab.executors import ProcessExecutor, ThreadExecutor

_ITEM = ("0123456789abcdef0123456789abcdef", 7, 0, 1)  # the runner's items look like this


def _echo(chunk: list) -> list:
    return [(item[0], "success") for item in chunk]


def _per_chunk(executor: metalab.Executor, n_chunks: int) -> float:
    """Seconds per chunk of ``n_chunks`` one-item chunks, the pool's start left out."""
    outcomes = executor.map_chunks(_echo, ([_ITEM] for _ in range(n_chunks + 1)))
    next(outcomes)
    start = time.perf_counter()
    for _ in outcomes:
        pass
    return (time.perf_counter() - start) / n_chunks


def _plain_per_chunk(pool: futures.Executor, n_chunks: int) -> float:
    """The same on a plain pool's ``map`` (every chunk submitted at once, no window)."""
    with pool:
        pool.submit(_echo, [_ITEM]).result()
        start = time.perf_counter()
        for _ in pool.map(_echo, ([_ITEM] for _ in range(n_chunks))):
            pass
        return (time.perf_counter() - start) / n_chunks


def measure(workdir: Path, chunks: int = 3000) -> list[Row]:
    import multiprocessing

    rows = []
    for executor, plain in (
        (
            ProcessExecutor(2),
            lambda: futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")),
        ),
        (ThreadExecutor(2), lambda: futures.ThreadPoolExecutor(2)),
    ):
        measured = min(_per_chunk(executor, chunks) for _ in range(3))
        floor = min(_plain_per_chunk(plain(), chunks) for _ in range(3))
        rows.append(
            Row(
                f"{type(executor).__name__}(2): one chunk handed over and back",
                measured * 1e6,
                "us",
                None,
                floor * 1e6,
                note="trivial function, one item per chunk, 4 chunks in flight",
            )
        )
    return rows


def _scan() -> None:
    import bench_process

    class Aiming(ProcessExecutor):
        def __init__(self, per_worker: int) -> None:
            super().__init__(2)
            self.per_worker = per_worker

        def chunk_size(self, n_items: int) -> int:
            return max(1, min(256, n_items // (self.per_worker * self.max_workers)))

    for ms, runs in ((20, 100), (1, 2_000), (20, 250), (1, 5_000)):
        exp = bench_process._experiment(ms, runs)
        with tempfile.TemporaryDirectory() as folder:
            serial = min(bench_process._sweep(exp, Path(folder, f"s{i}"), None) for i in range(2))
            speedups = {}
            for per_worker in (4, 8, 16, 32):
                sweeps = [
                    bench_process._sweep(exp, Path(folder, f"{per_worker}-{i}"), Aiming(per_worker))
                    for i in range(2)
                ]
                speedups[per_worker] = serial / min(sweeps)
        shown = "  ".join(f"{k:>2}/worker {v:.2f}x" for k, v in speedups.items())
        print(f"{ms:>2} ms x {runs:>5,} runs: serial {serial:.2f} s  {shown}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    if "--scan" in sys.argv:
        _scan()
    else:
        for row in measure(Path(tempfile.gettempdir())):
            print(f"{row.figure:<52} {row.measured:8.1f} us  (plain pool {row.floor:.1f} us)")
