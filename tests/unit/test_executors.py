"""SerialExecutor, ThreadExecutor, ProcessExecutor and resolve_executor.

What every executor promises is in tests/contract/test_executor_contract.py; these
tests cover what each one adds. Functions run in worker processes are lambdas and
closures, shipped by value, so the workers never import this module.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
import threading
import time
from collections import defaultdict

import pytest

from metalab.errors import InvalidArgumentError, InvalidTypeError, MissingDependencyError
from metalab.executors import (
    ProcessExecutor,
    SerialExecutor,
    ThreadExecutor,
    WorkerLost,
    resolve_executor,
)

POOL_EXECUTORS = [ThreadExecutor, ProcessExecutor]


class Unloadable:
    """Pickles fine but cannot be unpickled: loading imports a module that does not exist."""

    def __reduce__(self):
        return importlib.import_module, ("metalab_module_that_does_not_exist",)


# SerialExecutor


def test_serial_runs_chunks_in_the_calling_thread_in_order():
    here = threading.get_ident()
    outcomes = SerialExecutor().map_chunks(lambda chunk: [threading.get_ident()], [[3], [1], [2]])
    assert list(outcomes) == [([3], [here]), ([1], [here]), ([2], [here])]


def test_serial_takes_the_next_chunk_only_when_asked():
    pulled = []
    chunks = (pulled.append(i) or [i] for i in range(3))
    outcomes = SerialExecutor().map_chunks(lambda chunk: chunk, chunks)
    next(outcomes)
    assert pulled == [0]


@pytest.mark.parametrize(("n_items", "size"), [(0, 1), (1, 1), (500, 500), (5_000, 1_024)])
def test_serial_chunk_size_is_the_number_of_items_up_to_1024(n_items, size):
    assert SerialExecutor().chunk_size(n_items) == size


# ThreadExecutor and ProcessExecutor


@pytest.mark.parametrize("executor_class", POOL_EXECUTORS)
def test_max_workers_defaults_to_the_cpu_count(executor_class):
    assert executor_class().max_workers == os.cpu_count()


@pytest.mark.parametrize("executor_class", POOL_EXECUTORS)
def test_max_workers_below_one_is_rejected(executor_class):
    name = executor_class.__name__
    with pytest.raises(
        InvalidArgumentError, match=rf"^{name}\(max_workers=0\): must be an int >= 1"
    ):
        executor_class(0)


@pytest.mark.parametrize("executor_class", POOL_EXECUTORS)
@pytest.mark.parametrize("max_workers", [2.0, "2", True])
def test_max_workers_that_is_not_an_int_is_rejected(executor_class, max_workers):
    with pytest.raises(InvalidTypeError, match=r"max_workers=.*must be an int"):
        executor_class(max_workers)


@pytest.mark.parametrize("executor_class", POOL_EXECUTORS)
@pytest.mark.parametrize(
    ("n_items", "size"), [(0, 1), (7, 1), (100, 12), (2_048, 256), (10**6, 256)]
)
def test_pool_chunk_size_aims_at_four_chunks_per_worker_and_at_most_256_items(
    executor_class, n_items, size
):
    assert executor_class(max_workers=2).chunk_size(n_items) == size


def test_only_the_process_executor_uses_processes():
    flags = {cls.__name__: cls.uses_processes for cls in (SerialExecutor, *POOL_EXECUTORS)}
    assert flags == {"SerialExecutor": False, "ThreadExecutor": False, "ProcessExecutor": True}


def test_thread_runs_chunks_at_the_same_time():
    # Each chunk waits for the other one; run one after the other, they would time out.
    barrier = threading.Barrier(2, timeout=5)
    outcomes = ThreadExecutor(max_workers=2).map_chunks(lambda chunk: [barrier.wait()], [[0], [1]])
    assert sorted(results[0] for _, results in outcomes) == [0, 1]


def test_thread_runs_a_function_that_does_not_pickle():
    lock = threading.Lock()

    def locked(chunk):
        with lock:
            return chunk

    assert list(ThreadExecutor(max_workers=1).map_chunks(locked, [[1]])) == [([1], [1])]


def test_thread_close_early_cancels_chunks_not_yet_started():
    started, release = [], threading.Event()

    def work(chunk):
        started.append(chunk[0])
        if chunk != [0]:
            release.wait(timeout=5)
        return chunk

    # Two workers, four chunks in flight: chunk 0 ends, 1 (and maybe 2) block, 3 waits
    # in the queue until the map is closed, and must then never start.
    outcomes = ThreadExecutor(max_workers=2).map_chunks(work, ([i] for i in range(10)))
    assert next(outcomes) == ([0], [0])
    timer = threading.Timer(0.2, release.set)
    timer.start()
    outcomes.close()
    timer.join()
    assert max(started) <= 2


# ProcessExecutor


@pytest.fixture
def process_executor() -> ProcessExecutor:
    return ProcessExecutor(max_workers=2)


def test_process_runs_a_lambda_defined_here(process_executor):
    outcomes = process_executor.map_chunks(lambda chunk: [x * 2 for x in chunk], [[1, 2], [3]])
    assert sorted(outcomes) == [([1, 2], [2, 4]), ([3], [6])]


def test_process_runs_a_closure_over_local_state(process_executor):
    offset = 10

    def shift(chunk):
        return [x + offset for x in chunk]

    assert list(process_executor.map_chunks(shift, [[1]])) == [([1], [11])]


def test_process_runs_chunks_in_worker_processes(process_executor):
    outcomes = process_executor.map_chunks(lambda chunk: [os.getpid()], [[i] for i in range(8)])
    pids = {results[0] for _, results in outcomes}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_process_loads_fn_once_per_worker(process_executor):
    # Each copy of fn has its own list: one copy per chunk would count 1 every time.
    calls = []

    def count(chunk):
        calls.append(chunk)
        return [(os.getpid(), len(calls))]

    counts = defaultdict(list)
    for _, [(pid, n_calls)] in process_executor.map_chunks(count, [[i] for i in range(20)]):
        counts[pid].append(n_calls)
    assert {pid: sorted(seen) for pid, seen in counts.items()} == {
        pid: list(range(1, len(seen) + 1)) for pid, seen in counts.items()
    }


def test_process_exception_carries_the_remote_traceback(process_executor):
    def explode(chunk):
        raise ValueError(f"bad chunk {chunk}")

    with pytest.raises(ValueError, match=r"bad chunk \[1\]") as caught:
        list(process_executor.map_chunks(explode, [[1]]))
    assert "in explode" in str(caught.value.__cause__)


def test_process_fn_that_does_not_pickle_is_rejected_by_map_chunks(process_executor):
    lock = threading.Lock()

    with pytest.raises(
        InvalidTypeError, match=r"does not pickle.*inside the function, or use ThreadExecutor"
    ):
        process_executor.map_chunks(lambda chunk: [lock.locked()], [[1]])


def test_process_fn_that_cannot_load_in_the_worker_raises_in_the_consumer(process_executor):
    unloadable = Unloadable()

    with pytest.raises(ModuleNotFoundError, match="metalab_module_that_does_not_exist"):
        list(process_executor.map_chunks(lambda chunk: [unloadable], [[1], [2]]))


WORKER_DEATHS = [
    pytest.param(lambda: os._exit(1), "worker process died (exit code 1)", id="os._exit(1)"),
    pytest.param(lambda: ctypes.string_at(0), "killed by signal SIGSEGV", id="segfault"),
    pytest.param(
        lambda: os.kill(os.getpid(), signal.SIGKILL), "killed by signal SIGKILL", id="SIGKILL"
    ),
]


@pytest.mark.parametrize(("die", "reason"), WORKER_DEATHS)
def test_process_chunk_whose_worker_dies_comes_back_as_worker_lost(process_executor, die, reason):
    def work(chunk):
        if chunk == [3]:
            die()
        return [x * 2 for x in chunk]

    outcomes = {
        chunk[0]: outcome
        for chunk, outcome in process_executor.map_chunks(work, [[i] for i in range(16)])
    }
    lost = {i for i, outcome in outcomes.items() if isinstance(outcome, WorkerLost)}
    assert sorted(outcomes) == list(range(16))
    assert reason in outcomes[3].reason
    # Only the chunks in flight when the worker died (at most 2 * max_workers) are lost.
    assert len(lost) <= 4
    assert {i: outcomes[i] for i in outcomes if i not in lost} == {
        i: [2 * i] for i in range(16) if i not in lost
    }


@pytest.mark.parametrize("die", [pytest.param(p.values[0], id=p.id) for p in WORKER_DEATHS])
def test_process_runs_a_new_map_after_a_worker_died(process_executor, die):
    list(process_executor.map_chunks(lambda chunk: die(), [[0]]))
    outcomes = process_executor.map_chunks(lambda chunk: [x + 1 for x in chunk], [[1], [2]])
    assert sorted(outcomes) == [([1], [2]), ([2], [3])]


def test_process_worker_killed_from_outside_loses_only_chunks_in_flight(process_executor):
    outcomes = process_executor.map_chunks(lambda chunk: [os.getpid()], ([i] for i in range(12)))
    first, [pid] = next(outcomes)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)  # let the pool notice, so that the next submit finds it broken
    rest = list(outcomes)
    assert sorted(chunk[0] for chunk in [first, *(chunk for chunk, _ in rest)]) == list(range(12))
    assert sum(isinstance(outcome, WorkerLost) for _, outcome in rest) <= 4


def test_process_default_start_method_is_forkserver(process_executor):
    # A forkserver worker is the child of the fork server, not of this process.
    [(_, [parent])] = process_executor.map_chunks(lambda chunk: [os.getppid()], [[0]])
    assert parent != os.getpid()


def test_process_mp_context_chooses_the_start_method():
    executor = ProcessExecutor(max_workers=1, mp_context="spawn")
    [(_, [parent])] = executor.map_chunks(lambda chunk: [os.getppid()], [[0]])
    assert parent == os.getpid()


def test_process_unknown_start_method_is_rejected():
    with pytest.raises(
        InvalidArgumentError, match=r"^ProcessExecutor\(mp_context='forx'\): unknown start method"
    ):
        ProcessExecutor(mp_context="forx")


def test_process_start_method_that_is_not_a_string_is_rejected():
    with pytest.raises(InvalidTypeError, match=r"mp_context=1\): must be a start method name"):
        ProcessExecutor(mp_context=1)


def test_process_without_cloudpickle_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cloudpickle", None)
    with pytest.raises(
        MissingDependencyError,
        match=r"ProcessExecutor\(\): cloudpickle is not installed; pip install cloudpickle\.$",
    ):
        ProcessExecutor()


# resolve_executor


def test_resolve_none_is_a_serial_executor():
    assert type(resolve_executor(None)) is SerialExecutor


def test_resolve_an_executor_returns_it_unchanged():
    executor = ThreadExecutor(max_workers=3)
    assert resolve_executor(executor) is executor


@pytest.mark.parametrize("executor_class", [SerialExecutor, *POOL_EXECUTORS])
def test_resolve_a_name_makes_a_default_executor_of_the_class_it_names(executor_class):
    name = executor_class.__name__.removesuffix("Executor").lower()
    executor = resolve_executor(name)
    assert type(executor) is executor_class
    assert executor.max_workers == executor_class().max_workers


def test_resolve_a_misspelt_name_suggests_the_closest_one():
    with pytest.raises(InvalidArgumentError) as caught:
        resolve_executor("proces")
    assert str(caught.value) == (
        "run(executor='proces'): unknown executor 'proces'; did you mean 'process'? "
        "Known: dask, process, serial, thread."
    )


def test_resolve_an_unknown_name_lists_the_known_ones():
    with pytest.raises(InvalidArgumentError) as caught:
        resolve_executor("gpu")
    assert str(caught.value) == (
        "run(executor='gpu'): unknown executor 'gpu'. Known: dask, process, serial, thread."
    )


def test_resolve_a_value_that_is_not_a_name_or_executor_is_rejected():
    with pytest.raises(InvalidTypeError, match=r"^run\(executor=3\): must be an Executor"):
        resolve_executor(3)
