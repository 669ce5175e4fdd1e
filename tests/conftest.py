"""Shared pytest configuration."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Stand-in modules that hide optional extras from subprocesses; never test modules.
collect_ignore = ["shadow"]


# -- a private PostgreSQL server, for PostgresStore ------------------------------------
_POSTGRES_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The DSN of a private PostgreSQL server, started by scripts/postgres.sh for the session.

    Tests that use it are skipped only when the server cannot start on this machine
    (no PostgreSQL 15 and no way to install it, or no `postgres` user).
    """
    env = {**os.environ, "METALAB_PG_DIR": f"/tmp/metalab-pg-test-{os.getpid()}"}
    started = subprocess.run(
        ["bash", str(_POSTGRES_SCRIPT), "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(_POSTGRES_SCRIPT), "stop"], env=env, check=False)
        pytest.skip(
            f"no PostgreSQL server could be started here (scripts/postgres.sh start: "
            f"{started.stderr.strip()[-500:]})"
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(_POSTGRES_SCRIPT), "stop"], env=env, check=False)


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test's store; dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
