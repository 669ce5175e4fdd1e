"""The examples run as their docstrings say, and print the same numbers every time.

Each example runs as a subprocess in its own empty folder, at its small size
(``METALAB_EXAMPLE_SMALL=1``) where it has one.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import metalab
from metalab.store import open_store

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_pi_example_sweeps_nine_runs_then_resumes_without_rerunning(tmp_path):
    script = str(EXAMPLES / "pi_mc.py")
    first = subprocess.run(
        [sys.executable, script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    rows = ast.literal_eval(first.stdout)
    assert len(rows) == 9
    assert (tmp_path / "runs" / "pi_mc" / "manifest.json").is_file()
    # Pins run IDs, seeds and NumPy streams end to end.
    assert rows[0]["run_id"] == "c52c9d696e2be4d3e4ed9aa429ddf026"
    assert (rows[0]["n_samples"], rows[0]["replicate_index"], rows[0]["pi_estimate"]) == (
        1000,
        0,
        3.064,
    )
    # Resumed: nothing runs again, so even the stored durations are identical.
    again = subprocess.run(
        [sys.executable, script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert again.stdout == first.stdout


def run_example(name: str, folder: Path, *args: str) -> str:
    """Run ``examples/<name> ARGS`` at its small size in ``folder``; return what it printed."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "METALAB_EXAMPLE_SMALL": "1", "MPLBACKEND": "Agg"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def load_example(name: str, monkeypatch) -> ModuleType:
    """Import ``examples/<name>`` as a module at its small size (its main block does not run)."""
    monkeypatch.setenv("METALAB_EXAMPLE_SMALL", "1")
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sklearn_sweep_gives_each_setting_a_confidence_interval_and_a_plot(tmp_path):
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (the dev extra)")
    printed = run_example("sklearn_sweep.py", tmp_path).splitlines()
    assert len(printed) == 2 and all("95% CI [" in line for line in printed), printed
    result = metalab.load_results(tmp_path / "runs" / "sklearn_sweep")
    assert len(result) == 4 and len(result.successful) == 4
    # The folds differ between replicates: the seeds decide them.
    assert len({run.metrics["accuracy"] for run in result}) > 1
    assert all(run.steps("fold_accuracy")[0] == [0, 1, 2] for run in result)
    rows = [row for row in result.summary(group_by="max_depth") if row["metric"] == "accuracy"]
    assert [row["count"] for row in rows] == [2, 2]
    assert all(row["ci95_low"] < row["mean"] < row["ci95_high"] for row in rows)
    assert (tmp_path / "sklearn_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_torch_training_is_deterministic_and_its_checkpoint_loads(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason="the example needs torch (the torch extra)")
    first, again = tmp_path / "first", tmp_path / "again"
    first.mkdir(), again.mkdir()
    printed = run_example("torch_training.py", first)
    assert len(printed.splitlines()) == 4
    # deterministic=True and seeds from the SeedBundle: a fresh store, the same numbers.
    assert run_example("torch_training.py", again) == printed
    result = metalab.load_results(first / "runs" / "torch_training")
    run = result[0]
    steps, losses = run.steps("train_loss")
    assert steps == list(range(30)) and losses[-1] < losses[0]
    example = load_example("torch_training.py", monkeypatch)
    model = example.make_model(run.params["hidden"])
    model.load_state_dict(torch.load(run.artifact("checkpoint.pt")))
    _, _, x_val, y_val = example.make_data(run.seeds)
    with torch.no_grad():
        val_loss = torch.nn.functional.mse_loss(model(x_val), y_val).item()
    assert val_loss == run.metrics["val_loss"]
    assert (first / "torch_loss.png").is_file()


def test_preprocessing_cache_reruns_exactly_the_runs_of_the_edited_file(tmp_path):
    def runs(site: str) -> dict[str, str]:
        store = tmp_path / "runs" / f"polyfit_{site}"
        return {run.run_id: run.started_at for run in metalab.load_results(store)}

    assert run_example("preprocessing_cache.py", tmp_path).splitlines() == [
        "north: preprocessed (north-seed11-baab2a5caf569ec8.json)",
        "north: 4 run(s) computed, 0 reused",
        "south: preprocessed (south-seed11-092fb4c46a3bab58.json)",
        "south: 4 run(s) computed, 0 reused",
    ]
    north, south = runs("north"), runs("south")
    assert "0 run(s) computed, 4 reused" in run_example("preprocessing_cache.py", tmp_path)
    assert (runs("north"), runs("south")) == (north, south)

    with open(tmp_path / "data" / "raw" / "north.csv", "a") as raw:
        raw.write("0.95,2.5\n")
    printed = run_example("preprocessing_cache.py", tmp_path).splitlines()
    assert printed[0].startswith("north: preprocessed (north-seed11-")
    assert printed[1:] == [
        "north: 4 run(s) computed, 0 reused",
        "south: preprocessing cached (south-seed11-092fb4c46a3bab58.json)",
        "south: 0 run(s) computed, 4 reused",
    ]
    # North: its 4 earlier runs are kept, 4 new ones added; south: not one record changed.
    assert north.items() <= runs("north").items() and len(runs("north")) == 8
    assert runs("south") == south


def test_slurm_and_dask_example_gives_the_same_results_on_dask_and_on_slurm(
    tmp_path, monkeypatch, slurm_cluster
):
    pytest.importorskip("distributed", reason="the example needs dask (the dask extra)")
    on_dask, on_slurm, serial = (tmp_path / name for name in ("dask", "slurm", "serial"))
    for folder in (on_dask, on_slurm, serial):
        folder.mkdir()
    dask_lines = run_example("slurm_and_dask.py", on_dask, "--profile", "dask").splitlines()
    assert len(dask_lines) == 12
    workers = {run.record.worker for run in metalab.load_results(on_dask / "runs/gauss_area")}
    assert all("Dask-" in worker for worker in workers), workers

    # The profile chosen by the environment; the fixture points SLURM_CONF at the cluster.
    monkeypatch.setenv("METALAB_PROFILE", "slurm")
    assert run_example("slurm_and_dask.py", on_slurm).splitlines() == dask_lines
    sweep = metalab.SlurmSweep.attach(open_store(on_slurm / "runs" / "gauss_area"))
    assert len(sweep.tasks) == 3  # 12 runs, chunk_size = 4 in examples/metalab.toml
    assert any((on_slurm / "slurm-logs").iterdir())

    # An argument wins over the profile: no SLURM job this time.
    printed = run_example("slurm_and_dask.py", serial, "--executor", "serial")
    assert printed.splitlines() == dask_lines and not (serial / "slurm-logs").exists()
