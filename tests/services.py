"""What a test does when a service it needs (PostgreSQL, SLURM, Chromium) cannot start.

scripts/test sets ``METALAB_REQUIRE_SERVICES=1``, so in CI such tests fail: a service
that cannot start must not pass as skipped tests. Elsewhere (a machine without root, or
``METALAB_REQUIRE_SERVICES=0``) they are skipped with the reason.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(why: str) -> NoReturn:
    """Fail the test with ``why`` where services are required, else skip it."""
    if os.environ.get("METALAB_REQUIRE_SERVICES") == "1":
        pytest.fail(
            f"{why}; on a machine where it cannot run, METALAB_REQUIRE_SERVICES=0 skips "
            f"these tests",
            pytrace=False,
        )
    pytest.skip(why)
