"""DaskExecutor on real Dask clusters: the executor contract, sweeps, resume, dead workers.

One LocalCluster of 2 worker processes, started in a helper process for the module,
serves most tests through ``DaskExecutor(address=...)``; the tests of the executor's
own LocalCluster (start, stop, no child processes left) start theirs. A scheduler and
a worker started as separate processes (the ``dask`` command) serve one sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

dask = pytest.importorskip("dask", reason="pip install 'metalab[dask]'")
distributed = pytest.importorskip("distributed", reason="pip install 'metalab[dask]'")
psutil = pytest.importorskip("psutil", reason="installed with distributed")

from test_executor_contract import ExecutorContract  # noqa: E402

import metalab  # noqa: E402
from metalab.errors import InvalidArgumentError, InvalidTypeError  # noqa: E402
from metalab.executors import DaskExecutor, Executor, WorkerLost, resolve_executor  # noqa: E402

_BIN = Path(sys.executable).parent
# Workers started outside pytest import this module to unpickle its operations.
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}

_CLUSTER_SCRIPT = """
import sys
from distributed import LocalCluster

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=":0") as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the test closes our stdin
"""


#: The pid of the process holding the module's cluster, while it runs.
_helper: set[int] = set()


def _descendants() -> set[int]:
    """Pids of this process's descendants, less the module's cluster and its workers.

    The shared cluster's nannies replace a killed worker with a new process, which
    the cluster fixture checks at its end; multiprocessing's resource tracker, started
    with the first spawned process, stays for the life of the interpreter by design.
    """
    pids = set()
    shared = set()
    for child in psutil.Process().children(recursive=True):
        if "resource_tracker" in " ".join(_cmdline(child)):
            continue
        if child.pid in _helper:
            shared |= {p.pid for p in _children(child)}
        pids.add(child.pid)
    return pids - shared - _helper


def _children(process) -> list:
    try:
        return process.children(recursive=True)
    except psutil.Error:
        return []


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _gone(pids: set[int], within: float = 10.0) -> set[int]:
    """Return those of ``pids`` still running after waiting up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        alive = {pid for pid in pids if psutil.pid_exists(pid) and not _zombie(pid)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    """The address of a LocalCluster of 2 processes living in a helper process."""
    before = _descendants()
    helper = subprocess.Popen(
        [sys.executable, "-c", _CLUSTER_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_ENV,
    )
    _helper.add(helper.pid)
    try:
        assert helper.stdout is not None
        address = helper.stdout.readline().strip()
        assert address.startswith("tcp://127.0.0.1:"), address
        yield address
    finally:
        _helper.clear()
        started = _descendants() - before
        assert helper.stdin is not None
        helper.stdin.close()
        helper.wait(timeout=30)
        assert _gone(started) == set(), "the helper cluster left processes behind"


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    before = _descendants()
    yield
    assert _gone(_descendants() - before) == set(), "a test left processes running"


class TestDaskExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, request, cluster_address) -> Executor:
        # Tests about the executor's own processes need its own LocalCluster (~2 s to
        # start); the others share the module's cluster, joined by address.
        if "child_processes" in request.node.name:
            return DaskExecutor(n_workers=2)
        return DaskExecutor(address=cluster_address)


# -- arguments -------------------------------------------------------------------------


def test_n_workers_below_one_is_refused_with_the_value():
    with pytest.raises(InvalidArgumentError, match=r"n_workers=0"):
        DaskExecutor(n_workers=0)


def test_address_must_be_a_string():
    with pytest.raises(InvalidTypeError, match=r"address=8786"):
        DaskExecutor(address=8786)  # type: ignore[arg-type]


def test_unreachable_address_names_the_address(monkeypatch):
    executor = DaskExecutor(address="tcp://127.0.0.1:9")  # discard port: nothing listens
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(InvalidArgumentError, match=r"tcp://127\.0\.0\.1:9"),
    ):
        list(executor.map_chunks(lambda chunk: chunk, [[1]]))


def test_unpicklable_fn_is_refused_before_any_cluster_starts():
    lock = threading.Lock()
    with pytest.raises(InvalidTypeError, match="does not pickle"):
        DaskExecutor(n_workers=1).map_chunks(lambda chunk: [lock], [[1]])


def test_dask_is_a_known_executor_name_and_near_misses_are_suggested():
    assert isinstance(resolve_executor("dask"), DaskExecutor)
    assert resolve_executor("dask").max_workers == (os.cpu_count() or 1)
    with pytest.raises(InvalidArgumentError, match="did you mean 'dask'"):
        resolve_executor("dusk")
    assert metalab.DaskExecutor is DaskExecutor


def test_max_workers_of_a_joined_cluster_is_its_thread_count(cluster_address):
    assert DaskExecutor(address=cluster_address).max_workers == 2
    assert DaskExecutor(address=cluster_address, n_workers=5).max_workers == 5


# -- sweeps ----------------------------------------------------------------------------


@metalab.operation(name="noisy", version="1")
def noisy(params, seeds, capture, context):
    # One line per execution, so tests count executions, not just records.
    with open(context["log"], "a") as log:
        log.write(f"{params['x']} {seeds.replicate_index} {os.getpid()}\n")
    time.sleep(context.get("sleep", 0.0))
    capture.metric("y", params["x"] * 10 + seeds.rng().random())
    capture.metric("z", seeds.rng().gauss(0.0, 1.0))


def _experiment(tmp_path: Path, n: int = 6, replicates: int = 3, **context):
    return metalab.Experiment(
        name="noisy",
        version="1",
        context={"log": str(tmp_path / "executions.log"), **context},
        operation=noisy,
        params=metalab.grid(x=list(range(n))),
        seeds=metalab.seeds(base=11, replicates=replicates),
    )


def _executions(tmp_path: Path) -> list[str]:
    log = tmp_path / "executions.log"
    return log.read_text().splitlines() if log.exists() else []


def _essence(result) -> list[tuple]:
    return [(r.run_id, r.status, json.dumps(r.params), r.record.seeds, r.metrics) for r in result]


def test_sweep_on_its_own_local_cluster_matches_serial_and_resumes(tmp_path, cluster_address):
    exp = _experiment(tmp_path)
    serial = metalab.run(exp, store=tmp_path / "serial")
    assert len(_executions(tmp_path)) == 18

    dask = metalab.run(exp, store=tmp_path / "dask", executor=DaskExecutor(n_workers=2))
    assert len(_executions(tmp_path)) == 36
    assert _essence(dask) == _essence(serial)
    assert len({line.split()[2] for line in _executions(tmp_path)[18:]}) == 2, "2 workers ran"

    # Resume: every run is done, so nothing runs again.
    again = metalab.run(exp, store=tmp_path / "dask", executor=DaskExecutor(cluster_address))
    assert len(_executions(tmp_path)) == 36
    assert _essence(again) == _essence(serial)


def test_resume_runs_only_the_runs_not_done(tmp_path, cluster_address):
    small = _experiment(tmp_path, n=2)
    metalab.run(small, store=tmp_path / "s", executor=DaskExecutor(cluster_address))
    assert len(_executions(tmp_path)) == 6
    full = _experiment(tmp_path, n=5)
    result = metalab.run(full, store=tmp_path / "s", executor=DaskExecutor(cluster_address))
    later = _executions(tmp_path)[6:]
    assert sorted(int(line.split()[0]) for line in later) == sorted([2, 3, 4] * 3)
    assert _essence(result) == _essence(metalab.run(full, store=tmp_path / "serial"))


def test_sweep_on_a_scheduler_and_worker_started_as_separate_processes(tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [
            str(_BIN / "dask"),
            "scheduler",
            "--host=127.0.0.1",
            "--port=0",
            "--no-dashboard",
            f"--scheduler-file={scheduler_file}",
        ],
        env=_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.monotonic() + 30
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline, "the scheduler did not start"
            assert scheduler.poll() is None, "the scheduler exited"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [
                str(_BIN / "dask"),
                "worker",
                address,
                "--nthreads=2",
                "--nworkers=1",
                "--host=127.0.0.1",
                "--no-dashboard",
            ],
            env=_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=30)
            worker_pids = set(client.run(os.getpid).values())

        exp = _experiment(tmp_path)
        result = metalab.run(exp, store=tmp_path / "dask", executor=DaskExecutor(address))
        assert {line.split()[2] for line in _executions(tmp_path)} == {
            str(pid) for pid in worker_pids
        }, "the runs ran in the separate worker process"
        assert _essence(result) == _essence(metalab.run(exp, store=tmp_path / "serial"))
        assert scheduler.poll() is None and worker.poll() is None, "the cluster is left running"
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


def test_runs_of_a_killed_worker_still_finish(tmp_path, cluster_address):
    exp = _experiment(tmp_path, n=8, replicates=2, sleep=0.15)
    with distributed.Client(cluster_address, set_as_default=False) as client:
        victim = next(iter(client.run(os.getpid).values()))

        def kill_when_it_has_run() -> None:
            while str(victim) not in {line.split()[2] for line in _executions(tmp_path)}:
                time.sleep(0.02)
            os.kill(victim, 9)

        killer = threading.Thread(target=kill_when_it_has_run, daemon=True)
        killer.start()
        result = metalab.run(exp, store=tmp_path / "dask", executor=DaskExecutor(cluster_address))
        killer.join(timeout=10)
        assert not killer.is_alive()
        assert not psutil.pid_exists(victim) or _zombie(victim)
        # The nanny replaces the dead worker; the module's cluster goes on with 2.
        client.wait_for_workers(2, timeout=30)

    assert len(result) == 16
    assert [r.status for r in result] == ["success"] * 16
    # The victim died inside a run (it logs as a run starts), which then ran again.
    assert len(_executions(tmp_path)) > 16
    (tmp_path / "serial").mkdir()
    serial = metalab.run(_experiment(tmp_path / "serial", n=8, replicates=2), store=tmp_path / "s")
    assert [r.metrics for r in result] == [r.metrics for r in serial]


def test_a_task_whose_workers_keep_dying_comes_back_as_worker_lost():
    def die(chunk):
        if chunk == [0]:
            os._exit(1)
        return chunk

    # One worker and no retry: the first death gives up on the chunk.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        outcomes = dict(
            (chunk[0], outcome)
            for chunk, outcome in DaskExecutor(n_workers=1).map_chunks(die, [[0], [1]])
        )
    assert isinstance(outcomes[0], WorkerLost)
    assert "died" in outcomes[0].reason and "KilledWorker" in outcomes[0].reason
    # Chunk [1] waited on the same worker, so Dask may count that death against it too.
    assert outcomes[1] in ([1], outcomes[0])
