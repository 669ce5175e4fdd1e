"""Sweeps on a real SLURM cluster (scripts/slurm.sh), through SlurmExecutor and submitit.

Every test submits real job arrays to the session's one-node cluster and waits with a
time limit: SLURM accepts a job it can never start and lets it pend forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import metalab
from metalab import SlurmExecutor, SlurmSweep
from metalab.store import open_store

WAIT = 180  # seconds a test waits for its arrays; they take 5-20 s on an idle node


@metalab.operation(name="slurm_noisy", version="1")
def noisy(params, seeds, capture, context):
    with open(context["log"], "a") as log:
        log.write(f"{params['x']} {seeds.replicate_index} {os.getpid()}\n")
    if params["x"] == context.get("fail_at"):
        raise ValueError(f"x={params['x']} fails on purpose")
    time.sleep(context.get("sleep", 0.0))
    capture.metric("y", params["x"] * 10 + seeds.rng().random())
    capture.metric("z", seeds.rng().gauss(0.0, 1.0))


def _experiment(tmp_path: Path, n: int = 6, replicates: int = 2, **context):
    return metalab.Experiment(
        name="slurm_noisy",
        version="1",
        context={"log": str(tmp_path / "executions.log"), **context},
        operation=noisy,
        params=metalab.grid(x=list(range(n))),
        seeds=metalab.seeds(base=7, replicates=replicates),
    )


def _executions(tmp_path: Path) -> list[str]:
    log = tmp_path / "executions.log"
    return log.read_text().splitlines() if log.exists() else []


def _essence(result) -> list[tuple]:
    return [(r.run_id, r.status, json.dumps(r.params), r.record.seeds, r.metrics) for r in result]


def _executor(tmp_path: Path, **settings) -> SlurmExecutor:
    return SlurmExecutor(folder=tmp_path / "slurm", partition="debug", time=5, **settings)


def _until(predicate, what: str, limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_sweep_returns_a_handle_at_once_and_matches_a_serial_sweep(tmp_path, slurm_cluster):
    exp = _experiment(tmp_path)
    serial = metalab.run(exp, store=tmp_path / "serial")
    started = time.monotonic()
    sweep = metalab.run(
        exp, store=tmp_path / "slurm-store", executor=_executor(tmp_path, chunk_size=5)
    )
    assert isinstance(sweep, SlurmSweep)
    assert time.monotonic() - started < 10, "run() waited for the sweep"
    # 12 runs, 5 a task: contiguous blocks of positions 0-4, 5-9, 10-11.
    assert len(sweep.tasks) == 3 and sweep.runs == 12
    assert [block.spans for block in sweep._blocks] == [((0, 5),), ((5, 5),), ((10, 2),)]
    result = sweep.wait(timeout=WAIT)
    assert _essence(result) == _essence(serial)
    assert len(_executions(tmp_path)) == 24  # 12 serial + 12 on SLURM, none twice
    status = sweep.status()
    assert (status["done"], status["failed"], status["pending"], status["ENDED"]) == (12, 0, 0, 3)
    # Every record says which array task ran it.
    assert {r.record.worker.split(":")[0] for r in result} == {os.uname().nodename}

    # Resume across submissions: everything is done, so nothing is submitted.
    again = metalab.run(exp, store=tmp_path / "slurm-store", executor=_executor(tmp_path))
    assert again.tasks == [] and again.runs == 0
    assert _essence(again.wait(timeout=WAIT)) == _essence(serial)


def test_failed_runs_carry_the_task_job_id_and_log(tmp_path, slurm_cluster):
    exp = _experiment(tmp_path, n=3, fail_at=1)
    sweep = metalab.run(exp, store=tmp_path / "s", executor=_executor(tmp_path, chunk_size=3))
    result = sweep.wait(timeout=WAIT)
    failed = list(result.failed)
    assert len(failed) == 2 and len(result.successful) == 4
    for run in failed:
        assert run.error["type"] == "ValueError"
        job = run.error["slurm_job"]
        assert job in {task.job_id for task in sweep.tasks}
        assert Path(run.error["slurm_log"]).is_file()
        assert job.split("_")[0] in run.error["slurm_log"]


def test_a_sweep_longer_than_max_array_size_is_split_into_arrays(tmp_path, slurm_cluster):
    exp = _experiment(tmp_path, n=5, replicates=1)
    executor = _executor(tmp_path, chunk_size=1, max_array_size=2)
    sweep = metalab.run(exp, store=tmp_path / "s", executor=executor)
    assert len(sweep.tasks) == 5
    assert len(sweep.job_ids) == 3  # 2 + 2 + 1 tasks
    assert len(sweep.wait(timeout=WAIT).successful) == 5


def test_cancelled_tasks_leave_their_runs_failed_with_the_job_id_and_resume_runs_them(
    tmp_path, slurm_cluster
):
    exp = _experiment(tmp_path, n=4, replicates=2, sleep=1.0)
    store = tmp_path / "s"
    sweep = metalab.run(exp, store=store, executor=_executor(tmp_path, chunk_size=4))
    _until(lambda: len(_executions(tmp_path)) >= 1, "the first run to start")
    sweep.cancel()
    result = sweep.wait(timeout=WAIT)
    lost = [run for run in result.failed if run.error["type"] == "SlurmTaskLost"]
    assert lost, "cancelling mid-sweep left no run unfinished"
    assert len(result) == 8, "every run is recorded: done or lost"
    for run in lost:
        assert run.error["slurm_job"] in run.error["message"]
        assert "CANCELLED" in run.error["message"]
        assert run.error["slurm_log"] in run.error["message"]
    done_before = {run.run_id for run in result.successful}

    # Resume: only the lost runs are submitted again, as their second attempt.
    resumed = metalab.run(exp, store=store, executor=_executor(tmp_path, chunk_size=8))
    assert resumed.runs == len(lost)
    final = resumed.wait(timeout=WAIT)
    assert len(final.successful) == 8
    assert {run.run_id: run.record.attempt for run in final if run.run_id not in done_before} == {
        run.run_id: 2 for run in lost
    }
    assert _essence(final) == _essence(metalab.run(exp, store=tmp_path / "serial"))


def test_a_preempted_task_is_requeued_and_finishes_its_block_without_repeating(
    tmp_path, slurm_cluster
):
    exp = _experiment(tmp_path, n=3, replicates=2, sleep=1.0)
    sweep = metalab.run(exp, store=tmp_path / "s", executor=_executor(tmp_path, chunk_size=6))
    _until(lambda: len(_executions(tmp_path)) >= 2, "two runs to start")
    # What SLURM sends before preemption or the time limit (submitit's --signal=USR2@90).
    job = sweep.tasks[0].job_id
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    # SLURM holds a requeued job for two minutes (BeginTime); let it start sooner, but
    # not at once: slurmd refuses to launch a job it is still cleaning up ("already
    # killed"), and the job then fails.
    _until(lambda: _requeued(job), "the task to be requeued")
    time.sleep(5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    result = sweep.wait(timeout=WAIT)
    assert len(result.successful) == 6 and not list(result.failed)
    # A run interrupted by the signal runs again after the requeue; a finished one never.
    executed = [line.rsplit(" ", 1)[0] for line in _executions(tmp_path)]
    assert sorted(set(executed)) == sorted(f"{x} {r}" for x in range(3) for r in range(2))
    assert len(executed) - len(set(executed)) <= 1
    assert all(run.record.attempt == 1 for run in result)


def _requeued(job: str) -> bool:
    shown = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job], capture_output=True, text=True
    ).stdout
    return "JobState=PENDING" in shown and "Restarts=1" in shown


def test_attach_follows_the_sweep_from_another_process(tmp_path, slurm_cluster):
    exp = _experiment(tmp_path, n=2, replicates=2)
    store = tmp_path / "s"
    sweep = metalab.run(exp, store=store, executor=_executor(tmp_path, chunk_size=2))
    script = (
        "import json, sys, metalab; from metalab.store import open_store\n"
        "sweep = metalab.SlurmSweep.attach(open_store(sys.argv[1], create=False))\n"
        "print(json.dumps([sweep.job_ids, sweep.runs, len(sweep.wait(timeout=170))]))\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(store)], capture_output=True, text=True, timeout=WAIT
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == [sweep.job_ids, 4, 4]
    # `metalab status` follows it too.
    shown = subprocess.run(
        [sys.executable, "-m", "metalab", "status", str(store)], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert f"arrays {', '.join(sweep.job_ids)}; 2 tasks: 2 ended" in shown.stdout
    assert "state:       finished" not in shown.stdout and "complete" in shown.stdout


def test_attach_to_a_store_never_submitted_says_how_to_submit(tmp_path):
    exp = _experiment(tmp_path, n=1, replicates=1)
    metalab.run(exp, store=tmp_path / "s")
    with pytest.raises(metalab.InvalidArgumentError, match="no SLURM submission"):
        SlurmSweep.attach(open_store(tmp_path / "s", create=False))


SCRIPT = """
import metalab

@metalab.operation(name="square", version="1")
def square(params, seeds, capture):
    capture.metric("y", params["x"] ** 2 + seeds.rng().random())

exp = metalab.Experiment(
    name="square", version="1", operation=square,
    params=metalab.grid(x=[1, 2, 3]), seeds=metalab.seeds(base=3, replicates=2),
)
"""


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metalab", *argv], cwd=cwd, capture_output=True, text=True
    )


def test_cli_submits_waits_and_resumes_on_slurm(tmp_path, slurm_cluster):
    (tmp_path / "square.py").write_text(SCRIPT)
    slurm = ["--executor", "slurm", "--slurm", "partition=debug", "--slurm", "chunk_size=4"]
    detached = _cli("run", "square.py", *slurm, "--detach", cwd=tmp_path)
    assert detached.returncode == 0, detached.stderr
    assert "6 runs submitted as 2 SLURM array task(s)" in detached.stdout
    assert "follow with: metalab status runs/square" in detached.stdout
    _until(
        lambda: "2 tasks: 2 ended" in _cli("status", "runs/square", cwd=tmp_path).stdout,
        "the detached sweep to end",
    )
    # Waiting (the default) prints the usual summary; everything is done, nothing is run.
    waited = _cli("run", "square.py", *slurm, cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.strip().startswith("square 1: 0 done, 0 failed, 6 skipped")
    assert "0 runs submitted as 0 SLURM array task(s)" in waited.stderr


def test_cli_refuses_slurm_settings_without_the_slurm_executor(tmp_path):
    (tmp_path / "square.py").write_text(SCRIPT)
    wrong = _cli("run", "square.py", "--slurm", "partition=debug", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "add --executor slurm" in wrong.stderr
    bad = _cli("run", "square.py", "--executor", "slurm", "--slurm", "partition", cwd=tmp_path)
    assert bad.returncode == 2 and "must be KEY=VALUE" in bad.stderr
    detach = _cli("run", "square.py", "--detach", cwd=tmp_path)
    assert detach.returncode == 2 and "--detach is for --executor slurm" in detach.stderr
    assert not (tmp_path / "runs").exists(), "nothing ran"
