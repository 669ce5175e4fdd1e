"""Bit-identical results on every executor and device, and figures that verify.

The torch sweep is ``scripts/gpu_check.py``'s (the network of
``examples/torch_training.py`` under ``seed_everything(seeds, deterministic=True)``):
run serially and in worker processes on the CPU here, and on pinned GPUs where torch
sees CUDA. Figures are stored without dates, versions or random IDs, so the same
figure gives the same bytes in every process and ``metalab verify`` passes on them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import metalab
from metalab import ProcessExecutor, cli
from metalab.capture import Capture
from metalab.record import ArtifactRef
from metalab.verify import CHANGED, DIFFERING, IDENTICAL, verify

GPU_CHECK = Path(__file__).parents[2] / "scripts" / "gpu_check.py"


def gpu_check() -> ModuleType:
    """Import scripts/gpu_check.py, whose main block does not run."""
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="the sweep trains a torch model (the torch extra)")


def test_torch_sweep_is_bit_identical_serially_and_in_two_worker_processes(torch, tmp_path):
    check = gpu_check()
    serial = metalab.run(check.make_experiment(steps=30), store=tmp_path / "serial")
    pooled = metalab.run(
        check.make_experiment(steps=30), store=tmp_path / "process", executor=ProcessExecutor(2)
    )
    first, second = check.observed(serial), check.observed(pooled)
    assert len(first) == 4 and {run["status"] for run in first.values()} == {"success"}
    assert first == second
    # The same numbers because the same computation, not because nothing varied:
    # each (learning rate, seed) trains its own curve.
    assert len({tuple(run["train_loss"]) for run in first.values()}) == 4
    assert set(first[0, 0]["artifacts"]) == {"checkpoint.pt", "device"}
    assert {run.artifact("device") for run in pooled} == {"cpu"}
    assert os.getpid() not in {run.record.pid for run in pooled}


def test_torch_sweep_is_bit_identical_serially_and_on_pinned_gpus(torch, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA GPU: torch {torch.__version__} sees none (cuda.is_available())")
    check = gpu_check()
    serial = metalab.run(check.make_experiment("cuda", steps=30), store=tmp_path / "serial")
    executor = ProcessExecutor(gpus="all")
    pinned = metalab.run(
        check.make_experiment(steps=30), store=tmp_path / "gpus", executor=executor
    )
    assert check.observed(serial) == check.observed(pinned)
    assert {run.artifact("device") for run in pinned} == {torch.cuda.get_device_name(0)}
    gpus = metalab.load_results(tmp_path / "gpus").manifest["provenance"]["environment"]["gpus"]
    assert gpus and all(gpu["name"] and gpu["driver_version"] for gpu in gpus)


# --- figures ---------------------------------------------------------------------------


def captured_figures(figures: dict[str, object]) -> list[bytes]:
    """Capture each figure under its name; return the files, PNG then SVG for each."""
    files: list[bytes] = []

    def sink(name: str, filename: str, data: bytes, kind: str) -> ArtifactRef:
        files.append(data)
        return ArtifactRef(name, kind, filename, len(data), hashlib.sha256(data).hexdigest())

    capture = Capture("r", sink)
    for name, fig in figures.items():
        capture.figure(name, fig)
    return files


DRAW = """
    import hashlib
    from matplotlib.figure import Figure
    from test_determinism import captured_figures

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [2, 0, 1], label="loss")
    ax.set_title("curve")
    ax.legend()
    print(" ".join(hashlib.sha256(data).hexdigest() for data in captured_figures({"c": fig})))
"""


def test_the_same_figure_gives_the_same_png_and_svg_bytes_in_two_processes():
    pytest.importorskip("matplotlib", reason="figures need matplotlib (the plot extra)")
    path = [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    hashes = [
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(DRAW)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join(path)},
        ).stdout.split()
        for _ in range(2)
    ]
    assert len(hashes[0]) == 2 and hashes[0] == hashes[1]


def test_stored_figures_carry_no_date_version_or_random_id():
    pytest.importorskip("matplotlib", reason="figures need matplotlib (the plot extra)")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    files = captured_figures({"a": fig, "b": fig})
    png, svg, png_again, svg_b = files
    assert png == png_again
    assert b"tEXt" not in png and b"tIME" not in png  # no Software text, no time chunk
    assert b"<dc:date>" not in svg and b"Matplotlib v" not in svg
    # Element IDs come from the artifact name: two names, two sets of IDs.
    assert svg != svg_b


VERIFY_SCRIPT = '''
import itertools

import metalab


@metalab.operation
def draw(params, seeds, capture):
    """A seeded noisy curve, kept as a figure and as its final value."""
    from matplotlib.figure import Figure

    rng = seeds.rng()
    values = list(itertools.accumulate(rng.gauss(0, params["scale"]) for _ in range(20)))
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot(values)
    capture.figure("curve", fig)
    capture.metric("last", values[-1])


params = metalab.grid(scale=[1.0, 2.0])
exp = metalab.Experiment("figures", "1", {}, draw, params, metalab.seeds(3, 2))
'''


@pytest.fixture
def figures_script(tmp_path, monkeypatch):
    """VERIFY_SCRIPT, swept by `metalab run` into ./runs of tmp_path; its path."""
    pytest.importorskip("matplotlib", reason="figures need matplotlib (the plot extra)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    script = tmp_path / "figures.py"
    script.write_text(VERIFY_SCRIPT)
    assert cli.main(["run", str(script), "--store", "runs", "--no-progress"]) == 0
    return script


def test_verify_passes_on_a_sweep_that_captures_figures(figures_script):
    stored = metalab.load_results("runs")
    assert {run.artifacts["curve"] for run in stored} == {"figure"}
    # The replays run in fresh worker processes: their figures must match byte for byte.
    outcome = verify("runs", sample="all", workers=2)
    assert [run.outcome for run in outcome.runs] == [IDENTICAL] * 4


def test_verify_catches_a_figure_that_changed(figures_script):
    # Only the figure changes (a thicker line); the metric stays the same.
    figures_script.write_text(VERIFY_SCRIPT.replace("plot(values)", "plot(values, linewidth=3)"))
    outcome = verify("runs", sample="all", workers=2)
    assert {(run.outcome, run.reason) for run in outcome.runs} == {(DIFFERING, CHANGED)}
    assert all(run.detail.startswith("artifact 'curve'") for run in outcome.runs), outcome.runs
