"""Fault injection: real faults against real sweeps, and nothing may be lost (issue 6).

Every fault here is real: kill -9 of processes, a segfault, memory exhausted under
RLIMIT_AS, a hanging run, truncated files, a full tmpfs, concurrent writer processes,
readers racing writers, SIGINT and SIGTERM. The sweeps run in subprocesses from
``_sweep_script.py`` (cases ``x`` in a range, one seeded replicate, standard library
only) except where a test needs a callback in its own process.

What is covered, and the sizes:

1. kill -9 of the runner at 20 moments per executor (serial; process with 2 workers),
   drawn from a seeded ``random.Random`` (a third by time after start-up, the rest
   when the store holds k records): one 300-run sweep is killed, resumed and killed
   again 20 times, then resumed to the end. Its params, seeds and metrics equal an
   uninterrupted sweep's bit for bit, every run is loaded once, no run has two success
   lines, no line is torn. Also: the workers of a killed runner exit while the dead
   runner is still unreaped (a zombie), as when its parent reads its output first.
2. A pool worker killed with SIGKILL while its run sleeps (the run is retried and
   succeeds, as ``runner._dispatch`` designs), a worker that segfaults and a run that
   exhausts memory under ``RLIMIT_AS``: each recorded with its reason, the other runs
   of the 12 or 16 finish. A run hanging past ``run(timeout=2.0)``: recorded failed
   as ``RunTimeout``, serial and process (``timeout=`` is being added to metalab.run).
3. The newest segment truncated at every byte offset of its last line (12 runs): the
   earlier records load, the torn one is skipped with one StoreWarning; at 5 offsets a
   resume re-runs exactly that run.
4. A 256 KiB tmpfs filled by a 200-run sweep with 20 KB artifacts (serial; process):
   a "No space left on device" error, completed runs readable with intact artifacts;
   remounted at 16 MiB, a resume finishes.
5. Many writers. Four processes run overlapping shards of one 300-run sweep into one
   store at once. A shard is the same experiment (name, version, context, seeds) over
   a sub-range of ``x``: run IDs derive from those and from each case's params, never
   from its position (``experiment.py``, ``fingerprint.py``), so a run shared by two
   shards has one ID and two racing writers write it twice at most, with equal
   values. This mirrors splitting a sweep over SLURM array jobs, which the same full
   experiment everywhere would not (every writer would then race on every run). Only
   ``case_index``, the position within the shard, may differ between the two copies.
   Then 8 writers x 10,000 runs (disjoint shards): 80,000 intact lines, 80,000
   unique run IDs, each with its own params and metrics.
6. Readers during writes: ``load_results`` and ``metalab status`` in a loop while a
   2,000-run process-pool sweep writes: no crash, every loaded record whole, counts
   never decrease.
7. SIGINT (to the process group, as Ctrl-C in a terminal) and SIGTERM (to the runner,
   as ``kill PID``) to ``metalab run``, serial and process: exit 130 or 143 with one
   line and no traceback, pool workers gone, finished runs kept, a resume completes.

Each test appends its figures (faults injected, runs completed, records lost) as a
JSON line to ``$METALAB_RELIABILITY_FIGURES`` when set (``scripts/reliability_figures.py``
collects them). Every subprocess runs in a session of its own with a timeout; a
fixture fails the test if any process of those sessions, or any pool worker of this
process, outlives it, and then kills it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import itertools
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import metalab
from metalab import cli
from metalab.store import StoreWarning

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "_sweep_script.py"
PYTHON = sys.executable

SWEEP_RUNS = 300  # _sweep_script's default range
KILLS = 20


# -- figures ---------------------------------------------------------------------------


def _figures(fault: str, **figures: Any) -> None:
    """Append this test's figures as one JSON line to $METALAB_RELIABILITY_FIGURES."""
    path = os.environ.get("METALAB_RELIABILITY_FIGURES")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    with open(path, "a") as out:
        out.write(json.dumps({"test": test, "fault": fault, **figures}) + "\n")


# -- processes ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, ppid, session)`` of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[3])


def _processes() -> dict[int, tuple[str, int, int]]:
    """Every live (not zombie) process: pid -> (state, ppid, session)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None and stat[0] != "Z":
            found[int(entry)] = stat
    return found


def _session(sid: int) -> list[int]:
    """The live processes of session ``sid``: a runner, its forkserver and its workers."""
    return sorted(pid for pid, (_, _, session) in _processes().items() if session == sid)


def _descendants(root: int) -> set[int]:
    """The live descendants of ``root``."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in _processes().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _stray_descendants(before: set[int]) -> list[int]:
    """Descendants of this process started since ``before``, bar multiprocessing's helpers.

    The forkserver and the resource tracker serve every pool of this process for its
    whole life; the workers they fork are their children, so those still count.
    """
    me = os.getpid()
    processes = _processes()
    stray = []
    for pid in _descendants(me) - before:
        helper = b"multiprocessing.forkserver" in _cmdline(pid) or (
            b"multiprocessing.resource_tracker" in _cmdline(pid)
        )
        if not (helper and pid in processes and processes[pid][1] == me):
            stray.append(pid)
    return sorted(stray)


def _wait_for(predicate: Callable[[], Any], timeout: float, poll: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


class _Spawner:
    """Starts subprocesses in sessions of their own, and checks that none outlives a test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, args: list[Any], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        # Output goes to files, not pipes: a reader of pipes reaps its child only after
        # EOF, which workers that inherited the pipes can hold back (see the zombie test).
        out = (self.folder / f"{name}.out").open("wb")
        err = (self.folder / f"{name}.err").open("wb")
        with out, err:
            proc = subprocess.Popen(
                [str(arg) for arg in args],
                env=env,
                cwd=self.folder,  # not a git repository: provenance stays quick
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        proc.name = name  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    def adopt(self, proc: subprocess.Popen[Any]) -> None:
        self.started.append(proc)

    def output(self, proc: subprocess.Popen[bytes]) -> tuple[str, str]:
        name = proc.name  # type: ignore[attr-defined]
        return (
            (self.folder / f"{name}.out").read_text(errors="replace"),
            (self.folder / f"{name}.err").read_text(errors="replace"),
        )

    def wait(self, proc: subprocess.Popen[bytes], timeout: float) -> int:
        """Wait for ``proc``; on timeout kill its session and fail, showing its stderr."""
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc, signal.SIGKILL, group=True)
            pytest.fail(f"{proc.args} ran past {timeout} s; stderr: {self.output(proc)[1][-2000:]}")

    def kill(self, proc: subprocess.Popen[Any], sig: int, *, group: bool = False) -> list[int]:
        """Send ``sig``, reap the process, and return its session's survivors after 10 s."""
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        _wait_for(lambda: not _session(proc.pid), timeout=10, poll=0.01)
        return _session(proc.pid)

    def close(self) -> list[str]:
        """Kill what is left of every session started; return what had to be killed."""
        problems = []
        for proc in self.started:
            if proc.poll() is None:
                problems.append(f"{proc.args} still running")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            if not _wait_for(lambda proc=proc: not _session(proc.pid), timeout=10, poll=0.01):
                survivors = _session(proc.pid)
                problems.append(f"session of {proc.args}: {survivors} outlived it")
                for pid in survivors:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        return problems


@pytest.fixture
def procs(tmp_path):
    spawner = _Spawner(tmp_path)
    yield spawner
    problems = spawner.close()
    assert not problems, f"processes outlived the test: {problems}"


@pytest.fixture(autouse=True)
def _no_stray_children():
    # Pool workers this process started (in-process sweeps) must be gone at the end.
    before = _descendants(os.getpid())
    yield
    _wait_for(lambda: not _stray_descendants(before), timeout=10, poll=0.02)
    stray = _stray_descendants(before)
    for pid in stray:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not stray, f"child processes outlived the test: {stray}"


def _env(**faults: Any) -> dict[str, str]:
    """This environment with ``FAULTS_<NAME>`` set from ``faults`` (see _sweep_script)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FAULTS_")}
    env.update({f"FAULTS_{key.upper()}": str(value) for key, value in faults.items()})
    return env


def _cli_run(store: Path, executor: str) -> list[Any]:
    workers = ["--workers", "2"] if executor == "process" else []
    return [
        PYTHON,
        "-m",
        "metalab",
        "run",
        SCRIPT,
        "--store",
        store,
        "--executor",
        executor,
        *workers,
        "--no-progress",
    ]


# -- the store, read as docs/store.md describes it ------------------------------------------


def _line_count(store: Path) -> int:
    """Newline-terminated lines in all segments (cheap enough to poll)."""
    total = 0
    for segment in (store / "records").glob("*.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            total += segment.read_bytes().count(b"\n")
    return total


def _segment_lines(store: Path) -> list[tuple[str, bytes, dict[str, Any] | None]]:
    """Every line of every segment: ``(segment, raw line, record or None if damaged)``.

    A final fragment without its newline is a line too, and damaged.
    """
    lines = []
    for segment in sorted((store / "records").glob("*.jsonl")):
        parts = segment.read_bytes().split(b"\n")
        tail = parts.pop()
        for raw in [part + b"\n" for part in parts] + ([tail] if tail else []):
            crc, _, body = raw.partition(b" ")
            intact = raw.endswith(b"\n") and crc == b"%08x" % zlib.crc32(body[:-1])
            lines.append((segment.name, raw, json.loads(body) if intact else None))
    return lines


def _success_lines(store: Path) -> Counter[str]:
    """How many intact success lines each run has across all segments."""
    return Counter(
        record["run_id"]
        for _, _, record in _segment_lines(store)
        if record is not None and record["status"] == "success"
    )


def _bits(value: Any) -> Any:
    """``value`` with every float as its exact hex form: equal means equal bit for bit."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, dict):
        return tuple(sorted((key, _bits(item)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_bits(item) for item in value)
    return value


def _load(store: Path) -> tuple[list[Any], list[str]]:
    """The runs of ``store`` and the StoreWarnings loading them gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = list(metalab.load_results(store))
    return runs, [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]


def _identities(runs: list[Any], *, position: bool = True) -> dict[str, Any]:
    """Run ID -> what must not change: status, params, seeds, metrics (and position)."""
    found = {}
    for run in runs:
        record = run.record
        fields = [record.status, record.params, record.seeds, record.metrics]
        if position:
            fields += [record.case_index, record.replicate_index]
        found[run.run_id] = _bits(fields)
    return found


def _compare(found: dict[str, Any], expected: dict[str, Any]) -> dict[str, list[str]]:
    """What differs between two run-ID -> identity maps (empty lists when they agree)."""
    return {
        "lost": sorted(set(expected) - set(found)),
        "unexpected": sorted(set(found) - set(expected)),
        "changed": sorted(rid for rid in set(found) & set(expected) if found[rid] != expected[rid]),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Any]:
    """Identities of the uninterrupted 300-run sweep (serial), by run ID."""
    folder = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(
        [PYTHON, SCRIPT, folder / "store", "serial"],
        env=_env(),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    runs, damage = _load(folder / "store")
    assert len(runs) == SWEEP_RUNS and not damage
    assert all(run.status == "success" for run in runs)
    return _identities(runs)


# -- 1. kill -9 of the runner ----------------------------------------------------------------

# Seconds each run sleeps: long enough that a moment falls between records, short enough
# for 20 kills and a resume in seconds. The process executor's runs are longer because
# the workers of a killed runner go on with their chunks until they notice (they poll
# every 0.25 s): at 10 ms a run they finished 25 runs after each kill, and 20 kills used
# up the 300 runs.
_RUN_SLEEP = {"serial": 0.004, "process": 0.04}


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_kill_9_at_20_random_moments_then_resume_equals_an_uninterrupted_sweep(
    tmp_path, procs, reference, executor
):
    store = tmp_path / "store"
    env = _env(sleep=_RUN_SLEEP[executor])
    # Seeded: the same 20 draws (kind of moment, delay or k) on every run of the test.
    rng = random.Random(f"metalab issue 6: kill -9, {executor}")
    moments = []
    for kill in range(KILLS):
        held = _line_count(store)
        proc = procs.spawn([PYTHON, SCRIPT, store, executor], env, f"sweep-{kill}")
        # A third of the moments by time (they fall in start-up, the manifest, the pool's
        # start or the first runs), the rest once the store holds k records. Both stop
        # within a few runs, so that 20 moments fall inside one 300-run sweep.
        if rng.random() < 1 / 3:
            delay, target = rng.uniform(0.0, 0.3), held + 10
            moment = f"{delay:.3f} s after start"
        else:
            delay, target = 60.0, held + rng.randint(1, 6)
            moment = f"when the store holds {target} records"
        start = time.monotonic()
        _wait_for(
            lambda proc=proc, target=target, start=start, delay=delay: (
                proc.poll() is not None
                or _line_count(store) >= target
                or time.monotonic() - start >= delay
            ),
            timeout=60,
        )
        assert proc.poll() is None, (
            f"kill {kill} ({moment}): the sweep ended first (exit {proc.returncode}, "
            f"{_line_count(store)} records); moments so far (moment, records before, "
            f"after): {moments}; stderr: {procs.output(proc)[1][-2000:]}"
        )
        # Reaped at once, as a shell does, and its workers waited for: a resume started
        # while they still finish their chunk (up to 0.25 s) could run those runs twice.
        survivors = procs.kill(proc, signal.SIGKILL)
        assert not survivors, f"kill {kill}: {survivors} outlived the killed runner by 10 s"
        moments.append((moment, held, _line_count(store)))
    assert moments[-1][2] < SWEEP_RUNS, f"the sweep completed during the kills: {moments}"

    final = procs.spawn([PYTHON, SCRIPT, store, executor], env, "final")
    returncode = procs.wait(final, timeout=120)
    runs, damage = _load(store)
    diff = _compare(_identities(runs), reference)
    successes = _success_lines(store)
    twice = sorted(rid for rid, count in successes.items() if count > 1)
    torn = [raw[:80] for _, raw, record in _segment_lines(store) if record is None]
    _figures(
        f"kill -9 of the runner ({executor})",
        faults_injected=KILLS,
        runs_completed=len(runs),
        records_lost=len(diff["lost"]),
        completed_twice=len(twice),
        torn_lines=len(torn),
    )
    assert returncode == 0, procs.output(final)[1][-3000:]
    assert len(runs) == len({run.run_id for run in runs}) == SWEEP_RUNS
    assert diff == {"lost": [], "unexpected": [], "changed": []}, moments
    assert not twice, f"runs reported complete twice: {twice[:5]}"
    # A killed process never tears a line: each is handed to the kernel by one write().
    assert not torn and not damage, (torn, damage)


def test_pool_workers_exit_when_the_killed_runner_is_not_yet_reaped(tmp_path, procs):
    # The parent of a sweep that reads its output before reaping it (communicate(), as
    # subprocess.run(capture_output=True) does) keeps a killed runner a zombie until the
    # pipes close. Its workers hold those pipes: they must see the runner gone anyway,
    # or they go on running their chunks and the reader waits forever.
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [PYTHON, SCRIPT, store, "process"],
        env=_env(sleep=0.02),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    procs.adopt(proc)
    survivors: list[int] = []
    try:
        assert _wait_for(lambda: _line_count(store) >= 5, timeout=60), "the sweep never started"
        os.kill(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            survivors = _session(proc.pid)
    finally:
        if proc.poll() is None:  # the sweep never got going: stop it
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # reaped: the workers now see the runner gone
        proc.communicate(timeout=30)
    _figures(
        "kill -9 of an unreaped runner (process)",
        faults_injected=1,
        runs_completed=_line_count(store),
        records_lost=0,
        workers_left_running=len(survivors),
    )
    assert not survivors, (
        f"5 s after kill -9 of the runner (pid {proc.pid}, not yet reaped), its pool "
        f"processes {survivors} still ran and held its output pipes open: a worker takes "
        f"a zombie parent for a live one"
    )


# -- 2. faults in pool workers and hanging runs ---------------------------------------------


def _executions(log: Path) -> Counter[int]:
    """How many times each ``x`` started, from a log of ``x pid`` lines."""
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in log.read_text().splitlines())


def test_a_pool_worker_killed_mid_run_is_retried_and_the_others_finish(tmp_path):
    log, marker, victim = tmp_path / "executions.log", tmp_path / "victim.pid", 5

    @metalab.operation(name="victim", version="1")
    def sleepy(params, context, capture):
        with open(context["log"], "a") as out:
            out.write(f"{params['x']} {os.getpid()}\n")
        if params["x"] == context["victim"]:
            with open(context["marker"], "a") as out:
                out.write(f"{os.getpid()}\n")
            time.sleep(1.0)
        else:
            time.sleep(0.05)
        capture.metric("x", params["x"])

    exp = metalab.Experiment(
        "victim",
        "1",
        {"log": str(log), "marker": str(marker), "victim": victim},
        sleepy,
        metalab.grid(x=list(range(16))),
        metalab.seeds(0),
    )
    killed: list[tuple[int, bool]] = []
    finished = threading.Event()

    def kill_the_victims_worker() -> None:
        # The worker running the sleeping run: named by the run itself, and checked to
        # be a pool process of this runner (a descendant of this process) before the kill.
        _wait_for(
            lambda: finished.is_set() or (marker.exists() and marker.read_text().strip()),
            timeout=60,
        )
        if not finished.is_set() and marker.exists() and marker.read_text().strip():
            pid = int(marker.read_text().split()[0])
            killed.append((pid, pid in _descendants(os.getpid())))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victims_worker)
    killer.start()
    try:
        result = metalab.run(exp, store=tmp_path / "s", executor=metalab.ProcessExecutor(2))
    finally:
        finished.set()
        killer.join(timeout=70)
    runs = list(result)
    ran = _executions(log)
    twice = [rid for rid, count in _success_lines(tmp_path / "s").items() if count > 1]
    _figures(
        "kill -9 of a pool worker",
        faults_injected=len(killed),
        runs_completed=sum(run.status == "success" for run in runs),
        records_lost=16 - len(runs),
        victim_executions=ran[victim],
    )
    assert len(killed) == 1 and killed[0][1], f"expected one pool worker killed: {killed}"
    assert killed[0][0] != os.getpid()
    assert sorted(run.params["x"] for run in runs) == list(range(16))
    failed = {run.params["x"]: run.error for run in runs if run.status != "success"}
    assert not failed, f"a worker lost once is retried, so every run succeeds: {failed}"
    assert ran[victim] == 2, f"the killed run ran {ran[victim]} times, expected 2 (one retry)"
    assert not twice


def test_a_segfaulting_worker_is_recorded_failed_and_the_others_finish(tmp_path):
    log = tmp_path / "executions.log"

    @metalab.operation(name="segv", version="1")
    def crash(params, context, capture):
        with open(context["log"], "a") as out:
            out.write(f"{params['x']} {os.getpid()}\n")
        if params["x"] == 5:
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        time.sleep(0.02)
        capture.metric("x", params["x"])

    exp = metalab.Experiment(
        "segv", "1", {"log": str(log)}, crash, metalab.grid(x=list(range(12))), metalab.seeds(0)
    )
    result = metalab.run(exp, store=tmp_path / "s", executor=metalab.ProcessExecutor(2))
    runs = list(result)
    ran = _executions(log)
    _figures(
        "segfault in a pool worker",
        faults_injected=ran[5],
        runs_completed=sum(run.status == "success" for run in runs),
        records_lost=12 - len(runs),
    )
    assert sorted(run.params["x"] for run in runs) == list(range(12))
    failed = {run.params["x"]: run.error for run in runs if run.status != "success"}
    assert list(failed) == [5], failed
    assert "SIGSEGV" in failed[5]["message"], failed[5]
    # runner._dispatch retries a run whose worker died before recording it failed.
    assert ran[5] >= 2, f"the segfaulting run ran {ran[5]} time(s): never retried"
    assert not [rid for rid, n in _success_lines(tmp_path / "s").items() if n > 1]


def test_a_run_that_exhausts_memory_is_recorded_failed_and_the_others_finish(tmp_path):
    @metalab.operation(name="oom", version="1")
    def hog(params, capture):
        if params["x"] == 5:
            # The worker may use 64 MiB more address space than it holds now; the run
            # then grows until an allocation fails. The limit is left in place, as a
            # job-wide limit would be: what the run held is freed once it has failed.
            with open("/proc/self/status") as status:
                size = next(int(line.split()[1]) << 10 for line in status if "VmSize" in line)
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 20), hard))
            held = []
            while True:
                held.append(bytearray(1 << 20))
        time.sleep(0.02)
        capture.metric("x", params["x"])

    exp = metalab.Experiment("oom", "1", {}, hog, metalab.grid(x=list(range(12))), metalab.seeds(0))
    runs = list(metalab.run(exp, store=tmp_path / "s", executor=metalab.ProcessExecutor(2)))
    _figures(
        "memory exhausted (RLIMIT_AS)",
        faults_injected=1,
        runs_completed=sum(run.status == "success" for run in runs),
        records_lost=12 - len(runs),
    )
    assert sorted(run.params["x"] for run in runs) == list(range(12))
    failed = {run.params["x"]: run.error for run in runs if run.status != "success"}
    assert list(failed) == [5], failed
    assert failed[5]["type"] == "MemoryError", failed[5]


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_run_past_its_timeout_is_recorded_failed_and_the_others_finish(tmp_path, procs, executor):
    # metalab.run(timeout=2.0) is being added (issue 6): this is the behaviour it owes.
    store = tmp_path / "store"
    env = _env(stop=12, hang_x=3, timeout=2.0, sleep=0.01)
    start = time.monotonic()
    proc = procs.spawn([PYTHON, SCRIPT, store, executor], env, "sweep")
    returncode = procs.wait(proc, timeout=90)
    elapsed = time.monotonic() - start
    stderr = procs.output(proc)[1]
    runs = _load(store)[0] if (store / "records").is_dir() else []
    failed = {run.params["x"]: run.error for run in runs if run.status != "success"}
    _figures(
        f"run past its timeout ({executor})",
        faults_injected=1,
        runs_completed=sum(run.status == "success" for run in runs),
        records_lost=12 - len(runs),
        exit_code=returncode,
    )
    assert returncode == 0, f"the sweep failed (exit {returncode}): {stderr[-2000:]}"
    assert elapsed < 30, f"the sweep took {elapsed:.0f} s: the hung run was not stopped at 2 s"
    assert sorted(run.params["x"] for run in runs) == list(range(12))
    assert list(failed) == [3], failed
    assert failed[3]["type"] == "RunTimeout", failed[3]
    message = failed[3]["message"]
    assert re.search(r"time", message, re.IGNORECASE) and re.search(r"\b2(\.0+)?\s*s", message), (
        f"the message should name the 2 s timeout: {message!r}"
    )


# -- 3. torn writes -------------------------------------------------------------------------


def test_a_torn_last_record_at_every_byte_offset_is_skipped_and_rerun(tmp_path):
    log = tmp_path / "executions.log"

    @metalab.operation(name="torn", version="1")
    def measure(params, seeds, context, capture):
        with open(context["log"], "a") as out:
            out.write(f"{params['x']} {os.getpid()}\n")
        capture.metric("u", seeds.rng().random() * params["x"])

    exp = metalab.Experiment(
        "torn", "1", {"log": str(log)}, measure, metalab.grid(x=list(range(12))), metalab.seeds(5)
    )
    original = tmp_path / "original"
    metalab.run(exp, store=original)
    full = _identities(_load(original)[0])
    segment = max((original / "records").glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    data = segment.read_bytes()
    start = data.rindex(b"\n", 0, len(data) - 1) + 1  # where the last line begins
    torn_id = json.loads(data[start:].partition(b" ")[2])["run_id"]
    kept = {rid: identity for rid, identity in full.items() if rid != torn_id}

    # The load check at every offset on one copy, rewriting the segment each time.
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    target = copy / "records" / segment.name
    bad: list[str] = []
    for offset in range(len(data) - start):
        target.write_bytes(data[: start + offset])
        runs, damage = _load(copy)
        if _identities(runs) != kept:
            bad.append(f"offset {offset}: loaded {sorted(_identities(runs))} ")
        # At offset 0 the line is simply not there; any other cut leaves a torn line.
        expected_warnings = 0 if offset == 0 else 1
        if len(damage) != expected_warnings or (damage and segment.name not in damage[0]):
            bad.append(f"offset {offset}: StoreWarnings {damage}")

    # A resume after a few of those cuts runs the torn run again, and only it.
    length = len(data) - start
    resumed = []
    for offset in sorted({0, 1, length // 2, length - 2, length - 1}):
        store = tmp_path / f"resume-{offset}"
        shutil.copytree(original, store)
        (store / "records" / segment.name).write_bytes(data[: start + offset])
        before = len(log.read_text().splitlines())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StoreWarning)
            metalab.run(exp, store=store)
        again = [line.split()[0] for line in log.read_text().splitlines()[before:]]
        runs, _ = _load(store)
        resumed.append((offset, again, _identities(runs) == full))
    _figures(
        "torn last record",
        faults_injected=length,
        runs_completed=12,
        records_lost=len(bad),
        resumes=len(resumed),
    )
    assert not bad, bad[:10]
    torn_x = str(full[torn_id][1][0][1])  # the params' x of the torn run
    assert all(again == [torn_x] and equal for _, again, equal in resumed), resumed


# -- 4. full disk ---------------------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 256 KiB tmpfs; remount it bigger with ``mount -o remount,size=16m``."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        reason = done.stderr.lower()
        if "permission denied" in reason or "not permitted" in reason or "superuser" in reason:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
        pytest.fail(f"mount -t tmpfs failed: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], timeout=30).returncode != 0:
            # Busy (a process still holds a file there): detach it all the same.
            subprocess.run(["umount", "-l", str(mountpoint)], timeout=30, check=True)


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_full_disk_stops_the_sweep_clearly_and_a_resume_finishes(
    tiny_tmpfs, procs, reference, executor
):
    store = tiny_tmpfs / "store"
    env = _env(stop=200, artifact_bytes=20_000)
    proc = procs.spawn(_cli_run(store, executor), env, "full")
    returncode = procs.wait(proc, timeout=120)
    stderr = procs.output(proc)[1]
    runs, _ = _load(store)
    completed = [run for run in runs if run.status == "success"]
    # Every run recorded as done is whole: its artifact is there, with its SHA-256.
    unreadable = []
    for run in completed:
        for ref in run.record.artifacts:
            path = store / ref.path
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != ref.sha256:
                unreadable.append(run.run_id)
    # Damage only as the last fragment of a segment: no record after a short write.
    lines = _segment_lines(store)
    inner_damage = [
        raw[:80]
        for i, (name, raw, record) in enumerate(lines)
        if record is None and i + 1 < len(lines) and lines[i + 1][0] == name
    ]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]

    remount = subprocess.run(
        ["mount", "-o", "remount,size=16m", str(tiny_tmpfs)], capture_output=True, timeout=30
    )
    assert remount.returncode == 0, remount.stderr
    again = procs.spawn(_cli_run(store, executor), env, "resume")
    resumed_code = procs.wait(again, timeout=120)
    final, _ = _load(store)
    expected = {rid: v for rid, v in reference.items() if dict(v[1])["x"] < 200}
    diff = _compare(_identities(final), expected)
    twice = [rid for rid, n in _success_lines(store).items() if n > 1]
    _figures(
        f"full disk ({executor})",
        faults_injected=1,
        runs_completed=len(final),
        records_lost=len(diff["lost"]) + len(unreadable),
        completed_before_full=len(completed),
    )
    assert returncode == 2, f"exit {returncode}; stderr: {stderr[-2000:]}"
    assert len(errors) == 1 and "No space left on device" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    assert completed, "no run completed before the disk filled: the test proves nothing"
    assert not unreadable, f"completed runs with a missing or damaged artifact: {unreadable}"
    assert not inner_damage, f"records appended after a torn line: {inner_damage}"
    assert resumed_code == 0, procs.output(again)[1][-2000:]
    assert diff == {"lost": [], "unexpected": [], "changed": []}
    assert not twice


# -- 5. many writers ----------------------------------------------------------------------


def test_four_writers_on_overlapping_shards_lose_and_duplicate_nothing(tmp_path, procs, reference):
    store = tmp_path / "store"
    shards = [(50 * i, 50 * i + 150) for i in range(4)]  # each x is in one to three shards
    writers = [
        procs.spawn(
            [PYTHON, SCRIPT, store, "serial"],
            _env(start=lo, stop=hi, sleep=0.002),
            f"writer-{lo}-{hi}",
        )
        for lo, hi in shards
    ]
    codes = [procs.wait(writer, timeout=120) for writer in writers]
    runs, damage = _load(store)
    # case_index is each writer's position in its own shard; everything else must agree.
    expected = {rid: v[:4] for rid, v in reference.items()}
    diff = _compare(_identities(runs, position=False), expected)
    lines = _segment_lines(store)
    per_writer = Counter((name, record["run_id"]) for name, _, record in lines if record)
    rewritten = [key for key, count in per_writer.items() if count > 1]
    raced = sum(count - 1 for count in _success_lines(store).values())
    _figures(
        "4 writers, overlapping shards",
        faults_injected=4,
        runs_completed=len(runs),
        records_lost=len(diff["lost"]),
        duplicate_success_lines=raced,
    )
    assert codes == [0, 0, 0, 0], [procs.output(w)[1][-1000:] for w in writers]
    assert len(runs) == len({run.run_id for run in runs}) == SWEEP_RUNS
    assert diff == {"lost": [], "unexpected": [], "changed": []}
    assert all(record is not None for _, _, record in lines) and not damage
    assert not rewritten, f"a writer wrote one run twice: {rewritten[:5]}"
    # A run is written at most once by each shard that holds it.
    holders = {
        rid: sum(lo <= dict(v[1])["x"] < hi for lo, hi in shards) for rid, v in expected.items()
    }
    overwritten = {rid: n for rid, n in _success_lines(store).items() if n > holders.get(rid, 0)}
    assert not overwritten, overwritten


def test_eight_writers_of_ten_thousand_runs_each_lose_nothing(tmp_path, procs, reference):
    writers, per_writer = 8, 10_000
    store = tmp_path / "store"
    start = time.monotonic()
    spawned = [
        procs.spawn(
            [PYTHON, SCRIPT, store, "serial"],
            _env(start=i * per_writer, stop=(i + 1) * per_writer),
            f"writer-{i}",
        )
        for i in range(writers)
    ]
    codes = [procs.wait(writer, timeout=300) for writer in spawned]
    elapsed = time.monotonic() - start
    lines = _segment_lines(store)
    intact = [record for _, _, record in lines if record is not None]
    ids = Counter(record["run_id"] for record in intact)

    # The run IDs every writer had to write, derived as the runner derives them; the
    # first 300 are checked against the reference sweep, so the derivation is the real one.
    @metalab.operation(name="faults", version="1")
    def same_identity(params):
        pass

    total = writers * per_writer
    exp = metalab.Experiment(
        "faults",
        "1",
        {},
        same_identity,
        metalab.grid(x=list(range(total))),
        metalab.seeds(base=2024, replicates=1),
    )
    bundle = exp.seeds[0]
    x_of = {exp.run_id(case, bundle): case["x"] for case in exp.params}
    assert set(reference) <= set(x_of)
    miswired = [
        r["run_id"]
        for r in intact
        if x_of.get(r["run_id"]) != r["params"]["x"] or r["metrics"]["x"] != r["params"]["x"]
    ]
    runs, damage = _load(store)
    _figures(
        "8 writers x 10,000 runs",
        faults_injected=writers,
        runs_completed=len(runs),
        records_lost=len(set(x_of) - set(ids)),
        seconds=round(elapsed, 1),
    )
    assert codes == [0] * writers, [procs.output(w)[1][-1000:] for w in spawned]
    assert len(lines) == len(intact) == total, "damaged or missing lines"
    assert len(ids) == total and max(ids.values()) == 1, "a run was written twice"
    assert set(ids) == set(x_of), "runs lost or unexpected"
    assert not miswired, miswired[:5]
    assert len(runs) == total and not damage
    assert len({run.record.pid for run in runs}) == writers


# -- 6. readers during writes -----------------------------------------------------------------

_FIELDS = ("run_id", "status", "params", "seeds", "metrics", "started_at", "finished_at")


def test_readers_during_writes_never_crash_or_see_half_a_run(tmp_path, procs):
    store, total = tmp_path / "store", 2000
    writer = procs.spawn(
        [PYTHON, SCRIPT, store, "process"], _env(stop=total, sleep=0.002), "writer"
    )
    assert _wait_for(lambda: (store / "manifest.json").exists(), timeout=60)
    loads, statuses, counts, done_counts, problems = 0, 0, [], [], []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = writer.poll() is None
        runs, _ = _load(store)  # StoreWarnings for a line being written are allowed
        loads += 1
        counts.append(len(runs))
        for run in runs:
            record = run.record
            missing = [name for name in _FIELDS if not getattr(record, name)]
            if missing or set(record.metrics) != {"u", "wave", "x"} or record.status != "success":
                problems.append(f"{run.run_id}: half a run ({missing}, {record.metrics})")
        if loads % 3 == 0:  # metalab status, in this process and now and then as a command
            out = io.StringIO()
            if loads % 15 == 0:
                done = subprocess.run(
                    [PYTHON, "-m", "metalab", "status", str(store)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                code, text, err = done.returncode, done.stdout, done.stderr
            else:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                    code = cli.main(["status", str(store)])
                text, err = out.getvalue(), ""
            statuses += 1
            match = re.search(r"done:?\s+(\d+) of (\d+)", text)
            if code != 0 or match is None or "Traceback" in err:
                problems.append(f"metalab status: exit {code}: {text!r} {err[-500:]!r}")
            else:
                done_counts.append(int(match[1]))
        if not running:
            break
    returncode = procs.wait(writer, timeout=60)
    decreasing = [b for a, b in itertools.pairwise(counts) if b < a]
    decreasing += [b for a, b in itertools.pairwise(done_counts) if b < a]
    _figures(
        "readers during writes",
        faults_injected=loads + statuses,
        runs_completed=counts[-1] if counts else 0,
        records_lost=total - (counts[-1] if counts else 0),
        reads_mid_sweep=sum(0 < c < total for c in counts),
    )
    assert returncode == 0, procs.output(writer)[1][-2000:]
    assert not problems, problems[:5]
    assert not decreasing, f"counts went down: {counts} / {done_counts}"
    assert sum(0 < c < total for c in counts) >= 5, f"too few reads mid-sweep: {counts}"
    assert counts[-1] == total and done_counts and done_counts[-1] <= total


# -- 7. interrupts ----------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["serial", "process"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_cleanly_and_a_resume_completes(
    tmp_path, procs, reference, sig, executor
):
    store = tmp_path / "store"
    env = _env(sleep=0.01)
    proc = procs.spawn(_cli_run(store, executor), env, "interrupted")
    assert _wait_for(lambda: _line_count(store) >= 20 or proc.poll() is not None, timeout=60)
    assert proc.poll() is None, procs.output(proc)[1][-2000:]
    # Ctrl-C in a terminal reaches the whole foreground group, workers too; `kill PID`,
    # `timeout` and `docker stop` send SIGTERM to the runner alone.
    survivors = procs.kill(proc, sig, group=sig == signal.SIGINT)
    stderr = procs.output(proc)[1]
    kept, damage = _load(store)
    incomplete = [run.run_id for run in kept if run.status != "success" or not run.metrics]

    again = procs.spawn(_cli_run(store, executor), env, "resume")
    resumed_code = procs.wait(again, timeout=120)
    runs, _ = _load(store)
    diff = _compare(_identities(runs), reference)
    twice = [rid for rid, n in _success_lines(store).items() if n > 1]
    _figures(
        f"{sig.name} ({executor})",
        faults_injected=1,
        runs_completed=len(runs),
        records_lost=len(diff["lost"]),
        kept_at_interrupt=len(kept),
        exit_code=proc.returncode,
    )
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    assert proc.returncode == expected, (
        f"{sig.name}: exit {proc.returncode} (a negative code is death by that signal, "
        f"without the clean stop); stderr: {stderr[-1500:]!r}"
    )
    # One line saying so, as for Ctrl-C: no traceback, no warnings from dying helpers.
    assert "Traceback" not in stderr and len(stderr.splitlines()) <= 3, stderr[-3000:]
    assert re.search(r"interrupt|terminat|stopp", stderr, re.IGNORECASE), (
        f"{sig.name}: no line says the sweep was stopped: {stderr!r}"
    )
    assert not survivors, f"pool processes {survivors} outlived the runner"
    assert 20 <= len(kept) < SWEEP_RUNS and not incomplete and not damage
    assert resumed_code == 0, procs.output(again)[1][-2000:]
    assert diff == {"lost": [], "unexpected": [], "changed": []}
    assert not twice
