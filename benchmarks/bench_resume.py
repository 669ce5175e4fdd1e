"""``run(exp, resume=True)`` on a store in which every run is already done.

The store is built by ``_common.done_store`` (records written with FileStore.put_records_json,
not by running the sweep). The floor is a plain loop that reads every record line,
checks its CRC, parses its JSON and keeps the IDs of successful runs in a set: what a
resume without an index must do at least.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from _common import Row, best_of, done_store, pi_experiment, records_folder_lines

import metalab


def _plain_done_ids(store: Path) -> set[str]:
    done = set()
    for line in records_folder_lines(store):
        crc, _, body = line.partition(b" ")
        if crc == b"%08x" % zlib.crc32(body[:-1]):
            entry = json.loads(body)
            if entry["status"] == "success":
                done.add(entry["run_id"])
    return done


def measure(workdir: Path, runs: int) -> list[Row]:
    store = done_store(workdir, runs)
    exp = pi_experiment(runs)
    segments = sorted((store / "records").iterdir())
    repeats = 3 if runs <= 100_000 else 1
    measured = best_of(repeats, lambda: metalab.run(exp, store=store, resume=True))
    if sorted((store / "records").iterdir()) != segments:
        raise RuntimeError(f"resume of {store} ran runs again; the store was not complete")
    floor = best_of(repeats, lambda: _plain_done_ids(store))
    return [
        Row(
            f"run(resume=True), all {runs:,} runs done",
            measured,
            "s",
            0.1 if runs <= 10_000 else 3.0,
            floor,
            note="store built with FileStore.put_records_json, 64 a batch",
        )
    ]
