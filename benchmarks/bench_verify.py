"""``metalab verify --all`` replay throughput on a store of trivial runs.

A script defines ``runs`` trivial runs (one metric each); ``metalab run --workers 2``
sweeps it into a store, then ``metalab verify STORE --all --workers 2`` replays every
run from the script in fresh worker processes, compares each with the store bit for
bit, and appends its outcome. Both are timed as commands in a fresh interpreter, so
the figures include start-up, the pool and every read and write.

The floor is the sweep itself (same runs, same workers): a replay runs each run once
more, so verifying cannot cost less than sweeping; the ratio is what the comparison,
the scratch store and the reading of both stores add.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import Row

SCRIPT = """
import metalab

@metalab.operation(name="trivial", version="1")
def trivial(params, capture):
    capture.metric("y", params["x"] * 0.5)

exp = metalab.Experiment(
    "trivial", "1", {}, trivial, metalab.grid(x=list(range({runs}))), metalab.seeds(0)
)
"""


def _timed(*args: str, cwd: Path) -> float:
    metalab = Path(sys.executable).with_name("metalab")
    start = time.perf_counter()
    done = subprocess.run([str(metalab), *args], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"metalab {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return elapsed


def measure(workdir: Path, runs: int, workers: int = 2) -> list[Row]:
    folder = workdir / f"verify-{runs}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "sweep.py").write_text(SCRIPT.replace("{runs}", str(runs)))
    sweep = _timed(
        "run",
        "sweep.py",
        "--store",
        "store",
        "--workers",
        str(workers),
        "--no-progress",
        cwd=folder,
    )
    verify = _timed("verify", "store", "--all", "--workers", str(workers), cwd=folder)
    return [
        Row(
            f"metalab verify --all, {runs:,} trivial runs, {workers} workers",
            verify,
            "s",
            None,
            sweep,
            note=f"{runs / verify:,.0f} runs/s replayed and compared; floor: the sweep "
            f"itself ({runs / sweep:,.0f} runs/s)",
        )
    ]


if __name__ == "__main__":
    import tempfile

    for row in measure(Path(tempfile.mkdtemp()), int(sys.argv[1]) if len(sys.argv) > 1 else 10_000):
        print(row)
