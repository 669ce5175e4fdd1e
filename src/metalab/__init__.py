"""metalab: reproducible computational experiments.

A run is ``(Context, Params, SeedBundle) -> RunRecord + Artifacts``. This package
exposes the public surface; ``import metalab`` loads the standard library only, and
numpy, torch and the other extras are imported by the feature that needs them.

>>> import metalab
>>> plan = metalab.seeds(base=42, replicates=3)
>>> params = metalab.grid(n_samples=[1000, 10000])
>>> len(plan) * len(params)
6

``metalab.seeds`` and ``metalab.operation`` are the factory and the decorator; the
modules of the same names are reached with ``from metalab.seeds import SeedBundle``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metalab._version import __version__
from metalab.errors import (
    CaseIndexError,
    FingerprintError,
    InvalidArgumentError,
    InvalidTypeError,
    MetalabError,
    MissingDependencyError,
)
from metalab.fingerprint import canonical, fingerprint, run_id

# `operation` and `seeds` (below) are both a function and a submodule's name: loading
# the submodule sets the package attribute to it, and the from-import then rebinds it to
# the function. Both submodules load here, eagerly, so no later import resets them.
from metalab.operation import Operation, Runtime, operation
from metalab.params import (
    Choice,
    Distribution,
    GridSource,
    LogUniform,
    LogUniformInt,
    ManualSource,
    ParamCase,
    ParamSource,
    RandInt,
    RandomSource,
    Uniform,
    choice,
    grid,
    loguniform,
    loguniform_int,
    manual,
    randint,
    random,
    register_distribution,
    source_from_manifest,
    uniform,
)
from metalab.seeds import SeedBundle, SeedPlan, seed_everything, seeded, seeds

# The run engine loads on first use (PEP 562), which keeps `import metalab` cheap for
# scripts that only declare sweeps and for worker processes.
_LAZY = {
    "Capture": "metalab.capture",
    "DirPath": "metalab.context",
    "FilePath": "metalab.context",
    "context_spec": "metalab.context",
    "DaskExecutor": "metalab.executors",
    "Executor": "metalab.executors",
    "ProcessExecutor": "metalab.executors",
    "SerialExecutor": "metalab.executors",
    "SlurmExecutor": "metalab.executors",
    "ThreadExecutor": "metalab.executors",
    "SlurmSweep": "metalab.cluster",
    "Experiment": "metalab.experiment",
    "ArtifactRef": "metalab.record",
    "RunRecord": "metalab.record",
    "Results": "metalab.results",
    "Run": "metalab.results",
    "load_results": "metalab.results",
    "run": "metalab.runner",
    "FileStore": "metalab.store",
    "PostgresStore": "metalab.store",
    "Store": "metalab.store",
}

if TYPE_CHECKING:
    from metalab.capture import Capture
    from metalab.cluster import SlurmSweep
    from metalab.context import DirPath, FilePath, context_spec
    from metalab.executors import (
        DaskExecutor,
        Executor,
        ProcessExecutor,
        SerialExecutor,
        SlurmExecutor,
        ThreadExecutor,
    )
    from metalab.experiment import Experiment
    from metalab.record import ArtifactRef, RunRecord
    from metalab.results import Results, Run, load_results
    from metalab.runner import run
    from metalab.store import FileStore, PostgresStore, Store


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metalab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ArtifactRef",
    "Capture",
    "CaseIndexError",
    "Choice",
    "DaskExecutor",
    "DirPath",
    "Distribution",
    "Executor",
    "Experiment",
    "FilePath",
    "FileStore",
    "FingerprintError",
    "GridSource",
    "InvalidArgumentError",
    "InvalidTypeError",
    "LogUniform",
    "LogUniformInt",
    "ManualSource",
    "MetalabError",
    "MissingDependencyError",
    "Operation",
    "ParamCase",
    "ParamSource",
    "PostgresStore",
    "ProcessExecutor",
    "RandInt",
    "RandomSource",
    "Results",
    "Run",
    "RunRecord",
    "Runtime",
    "SeedBundle",
    "SeedPlan",
    "SerialExecutor",
    "SlurmExecutor",
    "SlurmSweep",
    "Store",
    "ThreadExecutor",
    "Uniform",
    "__version__",
    "canonical",
    "choice",
    "context_spec",
    "fingerprint",
    "grid",
    "load_results",
    "loguniform",
    "loguniform_int",
    "manual",
    "operation",
    "randint",
    "random",
    "register_distribution",
    "run",
    "run_id",
    "seed_everything",
    "seeded",
    "seeds",
    "source_from_manifest",
    "uniform",
]
