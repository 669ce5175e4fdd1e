"""Lazy imports of optional dependencies with an install hint. Imports errors.

``import metalab`` costs the standard library only; a feature that needs numpy,
torch, pandas or rich imports it through :func:`require` at the moment it is used.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from metalab.errors import MissingDependencyError


def require(module: str, *, feature: str, extra: str | None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra.

    ``extra=None``: a dependency of metalab itself (imported late to keep ``import
    metalab`` cheap), which only a broken install lacks; the hint names the package.

    >>> require("json", feature="demo", extra="numpy").__name__
    'json'
    """
    # SeedBundle.numpy() calls this once per run: the sys.modules look-up takes 0.1 us
    # where import_module takes 1.5 us. A None entry (import blocked) falls through.
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module if extra is None else f"'metalab[{extra}]'"
        raise MissingDependencyError(
            f"{feature}: {module} is not installed; pip install {package}."
        ) from exc


def optional(module: str) -> ModuleType | None:
    """Import ``module`` if it is installed, else return None (for best-effort features)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
