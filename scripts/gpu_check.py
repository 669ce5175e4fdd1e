"""Check on a GPU machine that a torch sweep is bit-identical serially and on pinned workers.

    .venv/bin/python scripts/gpu_check.py          # under a minute on one GPU

Trains the network of ``examples/torch_training.py`` (2 learning rates x 2 seeds x 200
steps, ``seed_everything(seeds, deterministic=True)``) twice on CUDA: serially on
``cuda``, then with ``ProcessExecutor(gpus="all")``, one worker per GPU, each seeing its
own as ``cuda:0``. It compares every run's final metrics and per-step losses by their
bits and its checkpoint by SHA-256, then prints the verdict, the torch, CUDA and cuDNN
versions and the GPU model and driver. Exit status: 0 identical, 1 not, 2 no GPU.

``tests/integration/test_determinism.py`` runs the same experiment (from
:func:`make_experiment`) on the CPU, and on a GPU where there is one.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import metalab
from metalab.provenance import environment

_EXAMPLE_PATH = Path(__file__).resolve().parents[1] / "examples" / "torch_training.py"


def _load_example() -> Any:
    """Import the torch example as a module; its sweep, under ``__main__``, does not run."""
    spec = importlib.util.spec_from_file_location("torch_training_example", _EXAMPLE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def make_experiment(device: str | None = None, steps: int = 200) -> metalab.Experiment:
    """Return the example's sweep, trained on ``device`` (None: ``runtime.device``).

    Each run keeps ``train_loss`` per step, ``val_loss``, its weights (moved to the
    CPU) as ``checkpoint.pt`` and, as the text artifact ``device``, ``"cpu"`` or the
    model of the GPU it trained on.
    """
    fit = _load_example().fit

    @metalab.operation(name="torch_devices", version="1")
    def train(params, seeds, capture, runtime):
        import torch

        where = torch.device(device or runtime.device)
        model = fit(params, seeds, capture, where)
        name = "cpu" if where.type == "cpu" else torch.cuda.get_device_name(where)
        capture.artifact("device", name)
        weights = {key: value.cpu() for key, value in model.state_dict().items()}
        torch.save(weights, runtime.output_dir / "checkpoint.pt")

    return metalab.Experiment(
        name="torch_devices",
        version="1",
        operation=train,
        params=metalab.grid(lr=[0.01, 0.05], hidden=[16], steps=[steps]),
        seeds=metalab.seeds(base=7, replicates=2),
    )


def observed(results: metalab.Results) -> dict[tuple[int, int], dict[str, Any]]:
    """Return what each run left, keyed by (case, replicate), floats as their bits.

    Two sweeps are bit-identical when these are equal: final metrics and the
    ``train_loss`` series as IEEE-754 bits (so NaN equals NaN and -0.0 differs from
    0.0), artifacts as SHA-256.
    """
    return {
        (run.record.case_index, run.record.replicate_index): {
            "status": run.status,
            "metrics": {name: _bits(value) for name, value in run.metrics.items()},
            "train_loss": [_bits(value) for value in run.steps("train_loss")[1]],
            "artifacts": {ref.name: ref.sha256 for ref in run.record.artifacts},
        }
        for run in results
    }


def _bits(value: float) -> str:
    return struct.pack("<d", value).hex()


def main() -> int:
    """Run both sweeps on CUDA, print the comparison; return the exit status."""
    import torch

    if not torch.cuda.is_available():
        print(f"no GPU: torch {torch.__version__} sees no CUDA device; nothing to check")
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metalab-gpu-check-") as folder:
        serial = metalab.run(make_experiment("cuda"), store=Path(folder) / "serial")
        pinned_executor = metalab.ProcessExecutor(gpus="all")
        pinned = metalab.run(
            make_experiment(), store=Path(folder) / "pinned", executor=pinned_executor
        )
        first, second = observed(serial), observed(pinned)
        devices = sorted({run.artifact("device") for run in pinned})
    gpus = environment()["gpus"] or []
    cudnn = torch.backends.cudnn.version()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {cudnn}")
    for gpu in gpus:
        print(f"GPU {gpu['index']}: {gpu['name']}, driver {gpu['driver_version']}")
    pins = ", ".join(pinned_executor.gpus)
    print(f"{pinned_executor.max_workers} pinned worker(s), GPU(s) {pins}; trained on {devices}")
    failed = [key for key, run in second.items() if run["status"] != "success"]
    identical = first == second and not failed
    print(
        f"{len(first)} runs serially on cuda vs ProcessExecutor(gpus='all'): "
        f"{'bit-identical' if identical else 'DIFFERENT'} ({time.perf_counter() - started:.1f} s)"
    )
    if not identical:
        for key in sorted(first.keys() | second.keys()):
            if first.get(key) != second.get(key):
                print(f"  case {key[0]} replicate {key[1]}: {first.get(key)} vs {second.get(key)}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
