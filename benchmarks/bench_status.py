"""``metalab status STORE`` on a store of done runs, as a person types it (a fresh process).

Both sides include the interpreter's start-up. The floor is a plain ``python -c`` that
reads every record line, parses its JSON and counts the statuses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import Row, done_store

_PLAIN = """
import collections, json, pathlib, sys
counts = collections.Counter()
for segment in sorted(pathlib.Path(sys.argv[1], "records").glob("*.jsonl")):
    with open(segment, "rb") as lines:
        for line in lines:
            counts[json.loads(line.partition(b" ")[2])["status"]] += 1
print(dict(counts))
"""


def _best_wall(command: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        best = min(best, time.perf_counter() - start)
    return best


def measure(workdir: Path, runs: int) -> list[Row]:
    store = done_store(workdir, runs)
    measured = _best_wall([sys.executable, "-m", "metalab", "status", str(store)])
    floor = _best_wall([sys.executable, "-c", _PLAIN, str(store)])
    bare = _best_wall([sys.executable, "-c", "pass"])
    return [
        Row(
            f"metalab status, {runs:,}-run store",
            measured,
            "s",
            1.0,
            floor,
            note=f"python start-up alone {bare * 1e3:.0f} ms; store built in batches of 64",
        )
    ]
