"""ExecutorContract: the promises of metalab.executors._base, checked on every executor.

A backend (dask, slurm) gets the whole suite by subclassing ExecutorContract with an
``executor`` fixture. Functions given to ``map_chunks`` are lambdas and closures, which
cloudpickle ships by value, so worker processes never import this module (and pytest).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalab.errors import InvalidArgumentError
from metalab.executors import Executor, ProcessExecutor, SerialExecutor, ThreadExecutor


class Stream:
    """Chunks of ``size`` consecutive ints, endless unless ``n_chunks``; counts those taken."""

    def __init__(self, n_chunks: int | None = None, size: int = 1) -> None:
        self.n_chunks = n_chunks
        self.size = size
        self.pulled = 0

    def __iter__(self) -> Iterator[list[int]]:
        while self.n_chunks is None or self.pulled < self.n_chunks:
            start = self.pulled * self.size
            self.pulled += 1
            yield list(range(start, start + self.size))


def _names(folder: Path, prefix: str) -> set[str]:
    return {path.name.removeprefix(prefix) for path in folder.glob(f"{prefix}*")}


def _interrupt_main_thread_after(seconds: float) -> threading.Timer:
    """Send SIGINT to the main thread, as Ctrl-C would, from a timer thread."""
    main = threading.main_thread().ident
    assert main is not None
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


class ExecutorContract:
    """Tests every executor passes; a subclass supplies the ``executor`` fixture."""

    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError("a subclass provides the executor under test")

    def test_every_chunk_comes_back_once_with_its_results(self, executor):
        chunks = [[i, i + 1] for i in range(0, 40, 2)]
        outcomes = list(executor.map_chunks(lambda chunk: [x * x for x in chunk], chunks))
        assert sorted(outcomes) == [(chunk, [x * x for x in chunk]) for chunk in chunks]

    def test_empty_stream_yields_nothing(self, executor):
        assert list(executor.map_chunks(lambda chunk: chunk, iter([]))) == []

    def test_lazy_stream_of_100000_items_is_pulled_a_bounded_number_of_chunks_ahead(self, executor):
        stream = Stream(n_chunks=100, size=1_000)
        total, ahead = 0, []
        for received, (_, results) in enumerate(
            executor.map_chunks(lambda chunk: [sum(chunk)], stream), start=1
        ):
            ahead.append(stream.pulled - received)
            total += results[0]
        assert total == sum(range(100_000))
        assert len(ahead) == 100
        assert max(ahead) <= 2 * executor.max_workers

    def test_exception_raised_by_fn_reaches_the_consumer(self, executor):
        def fail_on_three(chunk):
            if chunk == [3]:
                raise ValueError("chunk 3 is bad")
            return chunk

        with pytest.raises(ValueError, match="chunk 3 is bad"):
            list(executor.map_chunks(fail_on_three, Stream(n_chunks=8)))

    def test_closing_early_runs_no_chunk_beyond_those_in_flight(self, executor, tmp_path):
        def mark(chunk):
            (tmp_path / f"start-{chunk[0]}").touch()
            return chunk

        stream = Stream(n_chunks=1_000)
        outcomes = executor.map_chunks(mark, stream)
        next(outcomes)
        outcomes.close()
        assert stream.pulled <= 2 * executor.max_workers
        assert len(_names(tmp_path, "start-")) <= stream.pulled

    def test_closing_early_waits_for_running_chunks(self, executor, tmp_path):
        def slow(chunk):
            (tmp_path / f"start-{chunk[0]}").touch()
            time.sleep(0.05)
            (tmp_path / f"end-{chunk[0]}").touch()
            return chunk

        outcomes = executor.map_chunks(slow, Stream())
        next(outcomes)
        outcomes.close()
        assert _names(tmp_path, "start-") == _names(tmp_path, "end-")

    def test_closing_early_leaves_no_child_processes(self, executor):
        outcomes = executor.map_chunks(lambda chunk: chunk, Stream())
        next(outcomes)
        outcomes.close()
        assert multiprocessing.active_children() == []

    def test_exception_in_consumer_loop_leaves_no_child_processes(self, executor):
        def consume():
            for _ in executor.map_chunks(lambda chunk: chunk, Stream()):
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            consume()
        assert multiprocessing.active_children() == []

    def test_ctrl_c_during_the_map_raises_and_leaves_no_child_processes(self, executor):
        def slow(chunk):
            time.sleep(0.02)
            return chunk

        # The stream never ends, so the interrupt must land inside the map.
        timer = _interrupt_main_thread_after(0.2)
        with pytest.raises(KeyboardInterrupt):
            list(executor.map_chunks(slow, Stream()))
        timer.join()
        assert multiprocessing.active_children() == []

    def test_executor_runs_again_after_a_finished_map(self, executor):
        list(executor.map_chunks(lambda chunk: chunk, [[1]]))
        outcomes = executor.map_chunks(lambda chunk: [x + 1 for x in chunk], [[1], [2]])
        assert sorted(outcomes) == [([1], [2]), ([2], [3])]

    @pytest.mark.parametrize("n_items", [0, 1, 7, 1_000, 10**9])
    def test_chunk_size_is_between_one_and_the_number_of_items(self, executor, n_items):
        assert 1 <= executor.chunk_size(n_items) <= max(1, n_items)

    def test_chunk_size_rejects_a_negative_number_of_items(self, executor):
        with pytest.raises(InvalidArgumentError, match=r"n_items=-1"):
            executor.chunk_size(-1)


class TestSerialExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Executor:
        return SerialExecutor()


class TestThreadExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Executor:
        return ThreadExecutor(max_workers=2)


class TestProcessExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> Executor:
        return ProcessExecutor(max_workers=2)
