"""PostgresStore throughput at 100,000 runs, against a real server (not part of run_all).

    .venv/bin/python benchmarks/bench_postgres.py [--runs 100000] [--dsn postgresql://...]

Without ``--dsn`` it starts a private server with ``scripts/postgres.sh`` and stops it
at the end. The records are those of ``_common.done_store`` (the pi_100 sweep every
resume benchmark uses), written again into PostgreSQL with ``put_records_json``, 64 a
call, as a worker writes them. Figures go to ``docs/postgres.md``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from _common import best_of, done_store, pi_experiment, postgres_main

import metalab
from metalab.store import FileStore, PostgresStore


def measure(dsn: str, workdir: Path, runs: int) -> list[tuple[str, float, str]]:
    source = FileStore(done_store(workdir, runs))
    bodies = source.records_json()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(dsn, schema=schema, artifacts=workdir / "pg-artifacts")
    store.write_manifest(source.read_manifest())
    rows = []

    start = time.perf_counter()
    for first in range(0, len(bodies), 64):
        store.put_records_json(bodies[first : first + 64])
    took = time.perf_counter() - start
    rows.append((f"put_records_json, {runs:,} records, 64 a call", runs / took, "records/s"))

    single = PostgresStore(dsn, schema=f"{schema}_single")
    count = min(runs, 5_000)
    start = time.perf_counter()
    for body in bodies[:count]:
        single.put_record_json(body)
    took = time.perf_counter() - start
    rows.append((f"put_record_json, {count:,} records, 1 a call", count / took, "records/s"))

    states = best_of(3, lambda: store.run_states())
    rows.append((f"run_states(), {runs:,} runs", states, "s"))
    ndjson = best_of(3, store.records_ndjson)
    rows.append((f"records_ndjson(), {runs:,} runs", ndjson, "s"))
    frame = best_of(3, lambda: metalab.load_results(store).to_dataframe())
    rows.append((f"load_results(dsn).to_dataframe(), {runs:,} runs", frame, "s"))

    exp = pi_experiment(runs)
    before = len(store.latest_records(runs + 1))
    # The first resume computes the run IDs and keeps them (run_id_index); later ones read them.
    first = best_of(1, lambda: metalab.run(exp, store=store, resume=True))
    rows.append((f"run(resume=True), all {runs:,} done, no run-ID index", first, "s"))
    again = best_of(3, lambda: metalab.run(exp, store=store, resume=True))
    rows.append((f"run(resume=True), all {runs:,} done, with the index", again, "s"))
    if len(store.latest_records(runs + 1)) != before:
        raise RuntimeError("the resume ran runs again: the store was not complete")
    store.close()
    single.close()
    return rows


if __name__ == "__main__":
    postgres_main(__doc__, measure)
