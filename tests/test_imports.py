"""`import metalab` costs the standard library only; extras fail with an install hint."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SHADOW = Path(__file__).parent / "shadow"


def _run(code: str, *, hide_extras: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"}
    if hide_extras:
        env["PYTHONPATH"] = str(SHADOW)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_import_loads_only_standard_library_modules():
    result = _run(
        """
        import json, sys
        before = set(sys.modules)
        import metalab
        print(json.dumps(sorted(set(sys.modules) - before)))
        """
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    foreign = [
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "metalab"
    ]
    assert foreign == []


def test_import_and_pure_python_features_work_without_numpy_or_torch():
    result = _run(
        """
        import metalab
        bundle = metalab.seeds(42, 2)[1]
        print(bundle.derive("x"), bundle.rng().random(), len(metalab.grid(a=[1, 2])))
        metalab.seed_everything(bundle)
        """,
        hide_extras=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == str(__import__("metalab").SeedBundle(42, 1).derive("x"))


def test_numpy_feature_without_numpy_names_the_extra():
    result = _run(
        """
        import metalab
        try:
            metalab.SeedBundle(1).numpy()
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """,
        hide_extras=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "MissingDependencyError SeedBundle.numpy(): numpy is not installed; "
        "pip install 'metalab[numpy]'."
    )


def test_torch_feature_without_torch_names_the_extra():
    result = _run(
        """
        import metalab
        try:
            metalab.SeedBundle(1).torch()
        except ImportError as exc:
            print(exc)
        """,
        hide_extras=True,
    )
    assert "pip install 'metalab[torch]'" in result.stdout, result.stderr


def test_postgres_store_without_psycopg_names_the_extra():
    result = _run(
        """
        import metalab
        try:
            metalab.PostgresStore("postgresql://localhost/db")
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """,
        hide_extras=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "MissingDependencyError PostgresStore: psycopg is not installed; "
        "pip install 'metalab[postgres]'."
    )
