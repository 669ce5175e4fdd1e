"""Shared pytest configuration."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services import unavailable

# Stand-in modules that hide optional extras from subprocesses; never test modules.
collect_ignore = ["shadow"]


# -- a private PostgreSQL server, for PostgresStore ------------------------------------
_POSTGRES_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of a private PostgreSQL server, started by scripts/postgres.sh for the session.

    When the server cannot start (no PostgreSQL 15 and no way to install it, or no
    `postgres` user), the tests that use it fail in CI and are skipped elsewhere.
    """
    with _service(_POSTGRES_SCRIPT, "METALAB_PG_DIR", "PostgreSQL server") as dsn:
        yield dsn


@contextlib.contextmanager
def _service(script: Path, folder_variable: str, what: str) -> Iterator[str]:
    """Start a service with ``script start`` in a folder of this session; stop it after.

    Yields the last line the script printed. A start that fails is tried once more;
    then the tests fail or are skipped (:func:`services.unavailable`).
    """
    env = {**os.environ, folder_variable: f"/tmp/metalab-{script.stem}-test-{os.getpid()}"}

    def start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), "start"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )

    started = start()
    try:
        if started.returncode != 0:
            subprocess.run(["bash", str(script), "stop"], env=env, check=False)
            started = start()
        if started.returncode != 0:
            unavailable(
                f"no {what} could be started here (scripts/{script.name} start: "
                f"{started.stderr.strip()[-500:]})"
            )
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, check=False)


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test's store; dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- a private one-node SLURM cluster, for SlurmExecutor --------------------------------
_SLURM_SCRIPT = _POSTGRES_SCRIPT.with_name("slurm.sh")


@dataclass(frozen=True)
class SlurmCluster:
    """What tests need to know about the private SLURM cluster of the session."""

    conf: Path
    partition: str
    cpus: int
    max_array_size: int


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A private one-node SLURM cluster, started by scripts/slurm.sh for the session.

    Sets SLURM_CONF in os.environ for the session, so sbatch, squeue and submitit reach
    it. When it cannot start (no SLURM and no way to install it, not root, or daemons
    that refuse to start), the tests that use it fail in CI and are skipped elsewhere.
    """
    with (
        _service(_SLURM_SCRIPT, "METALAB_SLURM_DIR", "SLURM cluster") as conf,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("SLURM_CONF", conf)
        config = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, check=True
        ).stdout
        cpus = subprocess.run(
            ["sinfo", "-h", "-p", "debug", "-o", "%c"], capture_output=True, text=True, check=True
        ).stdout
        yield SlurmCluster(
            conf=Path(conf),
            partition="debug",
            cpus=int(cpus),
            max_array_size=int(re.search(r"^MaxArraySize\s*=\s*(\d+)", config, re.M)[1]),
        )
