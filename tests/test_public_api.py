"""The public surface: __all__ lists exactly the public names, each documented."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import metalab
import metalab.params

PUBLIC_MODULES = [
    metalab,
    metalab.params,
    importlib.import_module("metalab.seeds"),
    importlib.import_module("metalab.capture"),
    importlib.import_module("metalab.store"),
    importlib.import_module("metalab.executors"),
]
PACKAGE_DIR = Path(metalab.__file__).parent


def _public_names(module) -> set[str]:
    """Names a user can reach: what a module or package defines or re-exports from below."""
    names = {name for name in dir(module) if not name.startswith("_")}  # lazy names too
    return {
        name
        for name in names - {"annotations", "TYPE_CHECKING"}  # typing helpers, not API
        if not inspect.ismodule(value := getattr(module, name))
        and getattr(value, "__module__", module.__name__).startswith(module.__name__)
    }


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_equals_public_names(module):
    assert set(module.__all__) - {"__version__"} == _public_names(module)


@pytest.mark.parametrize("name", sorted(set(metalab.__all__) - {"__version__"}))
def test_every_public_name_has_a_docstring(name):
    assert inspect.getdoc(getattr(metalab, name))


def test_import_metalab_defers_the_run_engine():
    code = "import sys, metalab; print(sorted(m for m in sys.modules if m.startswith('metalab')))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for engine in ("metalab.runner", "metalab.store", "metalab.executors", "metalab.capture"):
        assert f"'{engine}'" not in loaded
    assert metalab.run.__module__ == "metalab.runner"  # served on first use


def test_metalab_seeds_is_the_factory_and_module_stays_importable():
    from metalab.seeds import SeedPlan

    assert isinstance(metalab.seeds(base=1), SeedPlan)


def _metalab_modules() -> list[str]:
    names = ["metalab"]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="metalab."):
        names.append(info.name)
    return names


# The architecture, bottom up: a module may import only from its own layer's
# foundations listed here (a package's modules may also import each other).
BASE = {
    "metalab.errors",
    "metalab._nvidia",
    "metalab._json",
    "metalab._optional",
    "metalab._validate",
    "metalab._version",
}
VALUES = BASE | {"metalab.fingerprint"}
DEFINITIONS = VALUES | {
    "metalab.seeds",
    "metalab.params",
    "metalab.context",
    "metalab.operation",
    "metalab.record",
}
ALLOWED_IMPORTS = {
    "metalab.errors": set(),
    "metalab._version": set(),
    "metalab._json": set(),
    "metalab._nvidia": set(),
    "metalab._signals": {"metalab.errors"},
    "metalab._optional": {"metalab.errors"},
    "metalab._validate": {"metalab.errors"},
    "metalab.fingerprint": {"metalab.errors", "metalab._json"},
    "metalab.seeds": VALUES,
    "metalab.params": VALUES,
    "metalab.context": VALUES,
    "metalab.operation": BASE,
    "metalab.record": BASE,
    "metalab.experiment": DEFINITIONS,
    # Siblings: none of these imports another.
    "metalab.provenance": VALUES,
    "metalab.capture": BASE | {"metalab.record"},
    "metalab.store": BASE | {"metalab.record"},
    "metalab.executors": BASE,
    "metalab.progress": BASE | {"metalab.record"},
    # The project file's profiles name executors; the runner and the CLI read them.
    "metalab.profiles": BASE | {"metalab.executors"},
    # Derived metrics: functions of runs, computed after a sweep and kept in the store.
    "metalab.derived": DEFINITIONS | {"metalab.store"},
    # Results (and their plots, one layer) read stores and never import the runner;
    # Results.verify imports the replays when called.
    "metalab.results": DEFINITIONS
    | {"metalab.capture", "metalab.store", "metalab.derived", "metalab.plotting", "metalab.verify"},
    "metalab.plotting": DEFINITIONS | {"metalab.capture", "metalab.store", "metalab.results"},
    "metalab.report": DEFINITIONS
    | {
        "metalab.capture",
        "metalab.store",
        "metalab.derived",
        "metalab.results",
        "metalab.plotting",
    },
    # What `metalab ls` lists, and the dashboard that also shows reports: readers too.
    "metalab._listing": BASE | {"metalab.record", "metalab.store"},
    "metalab.ui": DEFINITIONS
    | {
        "metalab._listing",
        "metalab.capture",
        "metalab.store",
        "metalab.results",
        "metalab.report",
    },
    # What runs in a worker: never the planning, the executors or the results.
    "metalab.worker": DEFINITIONS
    | {
        "metalab._signals",
        "metalab.experiment",
        "metalab.provenance",
        "metalab.capture",
        "metalab.store",
    },
    # Replays of finished runs (metalab verify): a worker's RunChunk, in process workers.
    "metalab.verify": DEFINITIONS
    | {
        "metalab.experiment",
        "metalab.provenance",
        "metalab.capture",
        "metalab.store",
        "metalab.executors",
        "metalab.worker",
    },
    # SLURM submission and its handle, beside the runner, which calls it.
    "metalab.cluster": DEFINITIONS
    | {
        "metalab._signals",
        "metalab.experiment",
        "metalab.worker",
        "metalab.store",
        "metalab.executors",
        "metalab.results",
    },
    "metalab.runner": DEFINITIONS
    | {
        "metalab._signals",
        "metalab.experiment",
        "metalab.provenance",
        "metalab.store",
        "metalab.executors",
        "metalab.progress",
        "metalab.profiles",
        "metalab.derived",
        "metalab.results",
        "metalab.verify",
        "metalab.worker",
        "metalab.cluster",
    },
}
ALLOWED_IMPORTS["metalab.cli"] = set(ALLOWED_IMPORTS)  # the command may use every layer
ALLOWED_IMPORTS["metalab.__main__"] = {"metalab.cli"}


def _imports_of(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("metalab"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("metalab"))
    return found


def _layer_of(module_name: str) -> str:
    for name in sorted(ALLOWED_IMPORTS, key=len, reverse=True):
        if module_name == name or module_name.startswith(name + "."):
            return name
    raise AssertionError(f"{module_name} is in no layer of ALLOWED_IMPORTS; add it")


@pytest.mark.parametrize("module_name", [m for m in _metalab_modules() if m != "metalab"])
def test_modules_import_only_lower_layers(module_name):
    layer = _layer_of(module_name)
    outside = {m for m in _imports_of(module_name) if _layer_of(m) != layer}
    assert {_layer_of(m) for m in outside} <= ALLOWED_IMPORTS[layer]


@pytest.mark.parametrize("module_name", _metalab_modules())
def test_every_module_has_a_docstring_naming_its_role(module_name):
    assert importlib.import_module(module_name).__doc__
