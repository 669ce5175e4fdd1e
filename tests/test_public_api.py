"""The public surface: __all__ lists exactly the public names, each documented."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import metalab
import metalab.params

PUBLIC_MODULES = [metalab, metalab.params, importlib.import_module("metalab.seeds")]
PACKAGE_DIR = Path(metalab.__file__).parent


def _public_names(module) -> set[str]:
    """Names a user can reach: a package's re-exports, a module's own definitions."""
    is_package = hasattr(module, "__path__")
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name != "annotations"  # from __future__ import annotations
        and not inspect.ismodule(value)
        and (is_package or getattr(value, "__module__", module.__name__) == module.__name__)
    }


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_equals_public_names(module):
    assert set(module.__all__) - {"__version__"} == _public_names(module)


@pytest.mark.parametrize("name", sorted(set(metalab.__all__) - {"__version__"}))
def test_every_public_name_has_a_docstring(name):
    assert inspect.getdoc(getattr(metalab, name))


def test_metalab_seeds_is_the_factory_and_module_stays_importable():
    from metalab.seeds import SeedPlan

    assert isinstance(metalab.seeds(base=1), SeedPlan)


def _metalab_modules() -> list[str]:
    names = ["metalab"]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="metalab."):
        names.append(info.name)
    return names


# Value modules sit at the bottom of the architecture: they may import only these.
ALLOWED_IMPORTS = {
    "metalab.errors": set(),
    "metalab._optional": {"metalab.errors"},
    "metalab._validate": {"metalab.errors"},
    "metalab.fingerprint": {"metalab.errors"},
    "metalab.seeds": {
        "metalab.errors",
        "metalab._optional",
        "metalab._validate",
        "metalab.fingerprint",
    },
}


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


@pytest.mark.parametrize("module_name", sorted(ALLOWED_IMPORTS))
def test_value_modules_import_only_lower_layers(module_name):
    assert _imports_of(module_name) <= ALLOWED_IMPORTS[module_name]


@pytest.mark.parametrize(
    "module_name", [m for m in _metalab_modules() if m.startswith("metalab.params")]
)
def test_params_never_imports_seeds_or_higher_layers(module_name):
    allowed = {"metalab.errors", "metalab._validate", "metalab.fingerprint"}
    imported = {m for m in _imports_of(module_name) if not m.startswith("metalab.params")}
    assert imported <= allowed


@pytest.mark.parametrize("module_name", _metalab_modules())
def test_every_module_has_a_docstring_naming_its_role(module_name):
    assert importlib.import_module(module_name).__doc__
