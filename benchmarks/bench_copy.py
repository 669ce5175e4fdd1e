"""Copy rate between stores at 100,000 runs, against a real server (not part of run_all).

    .venv/bin/python benchmarks/bench_copy.py [--runs 100000] [--dsn postgresql://...]

Without ``--dsn`` it starts a private server with ``scripts/postgres.sh`` and stops it
at the end. The source is ``_common.done_store`` (the pi_100 sweep every resume
benchmark uses: ~560-byte records, no files). Each copy is the whole of
``Store.copy_to``: reading both sides, writing, and the final check. Figures go to
``docs/copy.md``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import done_store, postgres_main

from metalab.store import CopyReport, FileStore, PostgresStore


def timed(copy: Callable[[], CopyReport], runs: int) -> tuple[float, CopyReport]:
    """Return the rate of one copy in runs/s, and its report."""
    start = time.perf_counter()
    report = copy()
    return runs / (time.perf_counter() - start), report


def expect(report: CopyReport, copied: int) -> None:
    """Refuse a copy that did not write ``copied`` records: its figure would mislead."""
    if report.records_copied != copied:
        raise RuntimeError(f"expected {copied:,} records copied: {report.summary()}")


def measure(dsn: str, workdir: Path, runs: int) -> list[tuple[str, float, str]]:
    source = FileStore(done_store(workdir, runs))
    target = PostgresStore(
        dsn, schema=f"bench_{uuid.uuid4().hex[:8]}", artifacts=workdir / "copy-artifacts"
    )
    rows = []
    rate, report = timed(lambda: source.copy_to(target), runs)
    expect(report, runs)
    rows.append((f"file -> PostgreSQL, {runs:,} runs", rate, "runs/s"))
    rate, report = timed(lambda: source.copy_to(target), runs)
    expect(report, 0)
    rows.append((f"file -> PostgreSQL again (nothing to copy), {runs:,} runs", rate, "runs/s"))
    back = Path(tempfile.mkdtemp(dir=workdir, prefix="copy-back-"))
    rate, report = timed(lambda: target.copy_to(back), runs)
    expect(report, runs)
    rows.append((f"PostgreSQL -> file, {runs:,} runs", rate, "runs/s"))
    other = Path(tempfile.mkdtemp(dir=workdir, prefix="copy-file-"))
    rate, report = timed(lambda: source.copy_to(other), runs)
    expect(report, runs)
    rows.append((f"file -> file, {runs:,} runs", rate, "runs/s"))
    target.close()
    for folder in (back, other):
        shutil.rmtree(folder)
    return rows


if __name__ == "__main__":
    postgres_main(__doc__, measure)
