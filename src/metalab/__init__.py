"""metalab: reproducible computational experiments.

A run is ``(Context, Params, SeedBundle) -> RunRecord + Artifacts``. This package
exposes the public surface; ``import metalab`` loads the standard library only, and
numpy, torch and the other extras are imported by the feature that needs them.

>>> import metalab
>>> plan = metalab.seeds(base=42, replicates=3)
>>> params = metalab.grid(n_samples=[1000, 10000])
>>> len(plan) * len(params)
6

Note that ``metalab.seeds`` is the factory function; the module of the same name is
reached with ``from metalab.seeds import SeedBundle``.
"""

from __future__ import annotations

from metalab.errors import (
    CaseIndexError,
    FingerprintError,
    InvalidArgumentError,
    InvalidTypeError,
    MetalabError,
    MissingDependencyError,
)
from metalab.fingerprint import canonical, fingerprint, run_id
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

__version__ = "0.2.0.dev0"

__all__ = [
    "CaseIndexError",
    "Choice",
    "Distribution",
    "FingerprintError",
    "GridSource",
    "InvalidArgumentError",
    "InvalidTypeError",
    "LogUniform",
    "LogUniformInt",
    "ManualSource",
    "MetalabError",
    "MissingDependencyError",
    "ParamCase",
    "ParamSource",
    "RandInt",
    "RandomSource",
    "SeedBundle",
    "SeedPlan",
    "Uniform",
    "__version__",
    "canonical",
    "choice",
    "fingerprint",
    "grid",
    "loguniform",
    "loguniform_int",
    "manual",
    "randint",
    "random",
    "register_distribution",
    "run_id",
    "seed_everything",
    "seeded",
    "seeds",
    "source_from_manifest",
    "uniform",
]
