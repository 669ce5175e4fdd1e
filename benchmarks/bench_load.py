"""``load_results(store).to_dataframe()`` on a store of done runs.

The floor is a plain loop that reads every record line, parses its JSON, flattens
run ID, status, params, metrics, replicate and duration into a dict, and hands the list
to ``pandas.DataFrame``. pandas is imported before either is timed.
"""

from __future__ import annotations

import json
from pathlib import Path

from _common import Row, best_of, done_store, records_folder_lines

import metalab


def _plain_dataframe(store: Path):
    import pandas as pd

    rows = []
    for line in records_folder_lines(store):
        entry = json.loads(line.partition(b" ")[2])
        row = {"run_id": entry["run_id"], "status": entry["status"]}
        row.update(entry["params"])
        row.update(entry["metrics"])
        row["replicate_index"] = entry["replicate_index"]
        row["duration"] = entry["duration"]
        rows.append(row)
    return pd.DataFrame(rows)


def measure(workdir: Path, runs: int) -> list[Row]:
    import pandas  # noqa: F401  (its import time belongs to neither side)

    store = done_store(workdir, runs)
    repeats = 3 if runs <= 100_000 else 1
    measured = best_of(repeats, lambda: metalab.load_results(store).to_dataframe())
    floor = best_of(repeats, lambda: _plain_dataframe(store))
    return [
        Row(
            f"load_results().to_dataframe(), {runs:,} runs",
            measured,
            "s",
            0.5 if runs <= 100_000 else 5.0,
            floor,
            note="store built with FileStore.put_records_json, 64 a batch",
        )
    ]
