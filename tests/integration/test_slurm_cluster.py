"""The private SLURM cluster of scripts/slurm.sh is real: it schedules, runs and cancels jobs.

These tests pin down the cluster SlurmExecutor is tested on: sbatch arrays, submitit's
map_array (with sacct failing, as it does without an accounting database) and scancel,
read back through squeue and scontrol, the commands SlurmExecutor reads states from.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Generous: the first job after slurmctld starts waits about 3 s, and this machine's
# CPUs are shared with other test sessions.
TIMEOUT_S = 120


def slurm(*args: str) -> str:
    """The stdout of one SLURM command; fails the test on a non-zero exit."""
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` every 0.2 s until true; fail naming `what` after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT_S} s waiting for {what}")
        time.sleep(0.2)


def task_states(job_id: str, *, finished: bool = False) -> dict[int, str]:
    """Array task index -> state, from squeue; `finished` also lists ended tasks."""
    states = ["--states=all"] if finished else []
    out = slurm("squeue", "-h", "-r", "-j", job_id, *states, "-o", "%K %T")
    return {int(index): state for index, state in (line.split() for line in out.splitlines())}


@pytest.fixture
def cancel_after() -> Iterator[list[str]]:
    """Job IDs a test appends to, cancelled when it ends so no job outlives its test."""
    job_ids: list[str] = []
    yield job_ids
    if job_ids:
        subprocess.run(["scancel", *job_ids], check=False)


def test_the_node_is_idle_with_the_machine_cpus(slurm_cluster):
    nodes = slurm("sinfo", "-h", "-N", "-p", slurm_cluster.partition, "-o", "%N %t %c")
    assert nodes.split() == [os.uname().nodename.split(".")[0], "idle", str(os.cpu_count())]
    assert slurm_cluster.cpus == os.cpu_count()
    assert slurm_cluster.max_array_size == int(os.environ.get("METALAB_SLURM_MAX_ARRAY_SIZE", 1001))
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)


def test_an_sbatch_array_runs_every_task(slurm_cluster, tmp_path: Path, cancel_after):
    job_id = slurm(
        "sbatch",
        "--parsable",
        "--array=0-3",
        f"--output={tmp_path}/slurm-%A_%a.out",
        "--wrap",
        f'echo "task $SLURM_ARRAY_TASK_ID" > {tmp_path}/out-$SLURM_ARRAY_TASK_ID.txt',
    ).strip()
    cancel_after.append(job_id)
    wait_until(lambda: not task_states(job_id), f"array job {job_id} to leave squeue")
    for index in range(4):
        assert (tmp_path / f"out-{index}.txt").read_text() == f"task {index}\n"
    assert task_states(job_id, finished=True) == dict.fromkeys(range(4), "COMPLETED")


def test_submitit_map_array_returns_every_result(slurm_cluster, tmp_path: Path, cancel_after):
    submitit = pytest.importorskip("submitit", reason="pip install 'metalab[slurm]'")
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(partition=slurm_cluster.partition, time=5)
    # A lambda is pickled by value; a function of this module would not import on the node.
    jobs = executor.map_array(
        lambda x: (x * x, int(os.environ["SLURM_ARRAY_TASK_ID"])), [1, 2, 3, 4]
    )
    cancel_after.append(jobs[0].job_id.split("_")[0])
    # sacct fails without an accounting database, so submitit never learns a state and
    # job.result() would wait forever for a task that died: wait on result files instead.
    wait_until(lambda: all(job.done() for job in jobs), "submitit's 4 array tasks")
    assert [job.result() for job in jobs] == [(1, 0), (4, 1), (9, 2), (16, 3)]


def test_scancel_removes_a_running_array_task(slurm_cluster, tmp_path: Path, cancel_after):
    job_id = slurm(
        "sbatch", "--parsable", "--array=0-1", f"--output={tmp_path}/%a.out", "--wrap", "sleep 300"
    ).strip()
    cancel_after.append(job_id)
    wait_until(lambda: task_states(job_id).get(0) == "RUNNING", f"task {job_id}_0 to run")
    slurm("scancel", f"{job_id}_0")
    wait_until(lambda: 0 not in task_states(job_id), f"task {job_id}_0 to leave squeue")
    assert task_states(job_id, finished=True)[0] == "CANCELLED"
    assert "JobState=CANCELLED" in slurm("scontrol", "show", "job", f"{job_id}_0")
    assert task_states(job_id).get(1) in {"PENDING", "RUNNING"}
