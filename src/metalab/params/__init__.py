"""Parameter sources: grids, random samples and explicit lists of cases.

Imports errors, _validate and fingerprint only; knows nothing of seeds, stores or
executors. See :mod:`metalab.params._base` for the contract every source keeps.
"""

from __future__ import annotations

from metalab.params._base import ParamCase, ParamSource, source_from_manifest
from metalab.params._distributions import (
    Choice,
    Distribution,
    LogUniform,
    LogUniformInt,
    RandInt,
    Uniform,
    choice,
    loguniform,
    loguniform_int,
    randint,
    register_distribution,
    uniform,
)
from metalab.params._grid import GridSource, grid
from metalab.params._manual import ManualSource, manual
from metalab.params._random import RandomSource, random

__all__ = [
    "Choice",
    "Distribution",
    "GridSource",
    "LogUniform",
    "LogUniformInt",
    "ManualSource",
    "ParamCase",
    "ParamSource",
    "RandInt",
    "RandomSource",
    "Uniform",
    "choice",
    "grid",
    "loguniform",
    "loguniform_int",
    "manual",
    "randint",
    "random",
    "register_distribution",
    "source_from_manifest",
    "uniform",
]
