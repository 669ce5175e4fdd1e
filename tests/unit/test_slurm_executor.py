"""SlurmExecutor's settings and the cutting of a plan into array-task blocks (no cluster)."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys

import pytest

import metalab
from metalab.cluster import _Block, _blocks
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.executors import SlurmExecutor
from metalab.params import ParamCase


def _items(positions: list[int], width: int, attempts: dict[int, int] | None = None):
    attempts = attempts or {}
    for position in positions:
        case, replicate = divmod(position, width)
        yield (
            ParamCase({"x": case}, index=case),
            replicate,
            f"id{position}",
            attempts.get(position, 1),
        )


def test_blocks_are_contiguous_spans_of_sweep_positions():
    # Positions 3 and 7 are done (skipped by the plan); 5 was tried once before.
    todo = [0, 1, 2, 4, 5, 6, 8, 9]
    blocks = _blocks(_items(todo, width=2, attempts={5: 2}), width=2, per_task=3)
    assert [block.spans for block in blocks] == [
        ((0, 3),),
        ((4, 3),),
        ((8, 2),),
    ]
    assert [block.attempts for block in blocks] == [{}, {5: 2}, {}]
    assert [list(block.positions()) for block in blocks] == [[0, 1, 2], [4, 5, 6], [8, 9]]


def test_a_block_of_a_huge_sweep_pickles_small():
    # A million contiguous runs are one span: the task gets two numbers, not the cases.
    blocks = _blocks(_items(range(1_000_000), width=4), width=4, per_task=1_000_000)
    assert len(blocks) == 1 and blocks[0].spans == ((0, 1_000_000),)
    assert len(pickle.dumps(blocks[0])) < 200


def test_runs_per_task_defaults_to_at_most_1000_tasks():
    assert SlurmExecutor().runs_per_task(12) == 1
    assert SlurmExecutor().runs_per_task(1_000_001) == 1001
    assert SlurmExecutor(chunk_size=50).runs_per_task(12) == 50


def test_settings_become_submitit_parameters_and_sbatch_options(tmp_path):
    executor = SlurmExecutor(
        folder=tmp_path,
        partition="gpu",
        time=30,
        mem="16G",
        gpus_per_task=1,
        setup=["module load cuda"],
        account="proj",
        exclusive=True,
    )
    assert executor.folder == tmp_path
    assert executor._parameters() == {
        "time": 30,
        "cpus_per_task": 1,
        "job_name": "metalab",
        "setup": ["module load cuda"],
        "additional_parameters": {"account": "proj", "exclusive": True, "mem": "16G"},
        "partition": "gpu",
        "gpus_per_task": 1,
    }
    assert SlurmExecutor(folder="rel").folder == (os.getcwd() / __import__("pathlib").Path("rel"))


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"time": 0}, InvalidArgumentError, r"time=0\): must be a whole number >= 1"),
        ({"time": "1:00:00"}, InvalidArgumentError, "minutes of each array task"),
        ({"cpus_per_task": True}, InvalidArgumentError, "cpus_per_task=True"),
        ({"mem": "16 GB"}, InvalidArgumentError, "mem='16 GB'.*e.g. mem='16G'"),
        ({"chunk_size": -1}, InvalidArgumentError, "chunk_size=-1"),
        ({"setup": "module load x"}, InvalidTypeError, "must be a list of shell lines"),
        ({"partition": ""}, InvalidTypeError, "partition=''"),
        ({"folder": 3}, InvalidTypeError, "folder=3"),
        ({"qos": [1]}, InvalidTypeError, r"qos=\[1\]\): an extra sbatch option"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, error, message):
    with pytest.raises(error, match=message):
        SlurmExecutor(**settings)


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="needs SLURM's client commands")
def test_run_with_no_controller_to_answer_fails_before_touching_the_store(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": str(tmp_path / "no-such.conf")},
        check=True,
    )
    assert "scontrol show config failed" in done.stdout
    assert "is the SLURM controller up" in done.stdout
    assert not (tmp_path / "store").exists()


SCRIPT = (
    "import sys, metalab\n"
    "@metalab.operation(name='op', version='1')\n"
    "def op(params, seeds, capture):\n"
    "    capture.metric('y', 1)\n"
    "exp = metalab.Experiment(name='op', version='1', operation=op,\n"
    "    params=metalab.grid(x=[1]), seeds=metalab.seeds(base=1, replicates=1))\n"
    "try:\n"
    "    metalab.run(exp, store=sys.argv[1], executor='slurm')\n"
    "except metalab.MetalabError as exc:\n"
    "    print(exc)\n"
)


def test_run_without_sbatch_fails_before_touching_the_store(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},  # no sbatch there
        check=True,
    )
    assert "no 'sbatch' on this machine's PATH" in done.stdout
    assert not (tmp_path / "store").exists()


def test_block_round_trips_through_the_submission_record():
    block = _Block(((0, 3), (7, 2)), {8: 3})
    assert list(block.positions()) == [0, 1, 2, 7, 8]
    assert metalab.SlurmExecutor is SlurmExecutor
