"""DaskExecutor: time from submission to the first and the last result of a 1,000-run sweep.

A plain script (not part of run_all.py): ``python benchmarks/bench_dask.py``. Each run
is trivial and records ``time.time()`` as it ends, so "first result" is the earliest
run end after ``metalab.run`` was called and "last" the latest; "returned" is when
``metalab.run`` came back, with every record in the store. Three set-ups, each into a
fresh store: serial; ``DaskExecutor(n_workers=2)``, which starts and stops its own
LocalCluster inside the call; and ``DaskExecutor(address)`` joining a 2-worker
LocalCluster already running, which leaves out the start-up.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import metalab


@metalab.operation(name="trivial", version="1")
def trivial(params, capture):
    capture.metric("ended", time.time())


def _experiment(n_runs: int) -> metalab.Experiment:
    return metalab.Experiment(
        "trivial", "1", {}, trivial, metalab.grid(i=list(range(n_runs))), metalab.seeds(base=1)
    )


def _measure(label: str, store: Path, executor: object, n_runs: int) -> None:
    start = time.time()
    result = metalab.run(_experiment(n_runs), store=store, executor=executor)
    returned = time.time() - start
    ends = sorted(run.metrics["ended"] - start for run in result)
    assert len(ends) == n_runs and all(run.status == "success" for run in result)
    print(
        f"{label:<34} first {ends[0]:7.3f} s   last {ends[-1]:7.3f} s   "
        f"returned {returned:7.3f} s   ({n_runs / returned:,.0f} runs/s)"
    )


def main(n_runs: int = 1_000) -> None:
    """Print the three set-ups' figures."""
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _measure("serial", root / "serial", None, n_runs)
        _measure(
            "DaskExecutor(n_workers=2)", root / "local", metalab.DaskExecutor(n_workers=2), n_runs
        )
        with LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        ) as cluster:
            executor = metalab.DaskExecutor(cluster.scheduler_address)
            _measure("DaskExecutor(address), warm", root / "warm", executor, n_runs)


if __name__ == "__main__":
    main()
