"""SlurmExecutor: time from submission to the first and the last result of a 1,000-run sweep.

A plain script (not part of run_all.py): ``python benchmarks/bench_slurm.py``. It starts
a private one-node cluster with ``scripts/slurm.sh`` (as root; installs SLURM if missing)
and stops it at the end. Each run is trivial and records ``time.time()`` as it ends, so
"first result" is the earliest run end after ``metalab.run`` was called, "last" the
latest, "submitted" when ``run`` returned its handle and "waited" when ``wait()`` did.
Rows differ in runs per array task: starting a task costs seconds of scheduling and
interpreter start-up, which is why short runs want many per task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import metalab

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm.sh"


@metalab.operation(name="trivial", version="1")
def trivial(params, capture):
    capture.metric("ended", time.time())


def _measure(root: Path, n_runs: int, chunk_size: int) -> None:
    exp = metalab.Experiment(
        "trivial", "1", {}, trivial, metalab.grid(i=list(range(n_runs))), metalab.seeds(base=1)
    )
    executor = metalab.SlurmExecutor(
        folder=root / f"slurm-{chunk_size}", partition="debug", time=10, chunk_size=chunk_size
    )
    start = time.time()
    sweep = metalab.run(exp, store=root / f"store-{chunk_size}", executor=executor)
    submitted = time.time() - start
    result = sweep.wait(timeout=1800, poll=0.5)
    waited = time.time() - start
    ends = sorted(run.metrics["ended"] - start for run in result)
    assert len(ends) == n_runs and all(run.status == "success" for run in result)
    print(
        f"{n_runs} runs, {chunk_size:>4} a task ({len(sweep.tasks):>3} tasks): "
        f"submitted {submitted:6.2f} s   first {ends[0]:6.2f} s   last {ends[-1]:6.2f} s   "
        f"waited {waited:6.2f} s"
    )


def main(n_runs: int = 1_000) -> None:
    """Start a cluster, print one row per task size, stop the cluster."""
    folder = tempfile.mkdtemp(prefix="metalab-bench-slurm-")
    os.chmod(folder, 0o755)  # munged runs as the munge user, with its socket in there
    env = {**os.environ, "METALAB_SLURM_DIR": f"{folder}/cluster"}
    conf = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    os.environ["SLURM_CONF"] = conf
    try:
        print(f"{os.cpu_count()} CPUs, one node; Python {sys.version.split()[0]}")
        for chunk_size in (1000, 100, 50, 10):
            _measure(Path(folder), n_runs, chunk_size)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, check=False)


if __name__ == "__main__":
    main()
