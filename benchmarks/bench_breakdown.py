"""Where a trivial run's serial overhead goes: the same sweep with parts taken away.

Run: python benchmarks/bench_breakdown.py [--runs N]. Prints the table of
docs/performance.md ("Serial overhead per run"): sweeps of the issue's π operation, of
an operation that logs one metric, of one that does nothing, the plan alone (cases,
fingerprints, run IDs, without a store) and the π operation in a plain loop; each in
microseconds a run, best of 3. Not a ``run_all.py`` entry: it explains rows 2 and 3.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import best_of, pi_100, plain_op_loop

import metalab
from metalab import runner


def _nothing(params, seeds, capture):
    pass


def _one_metric(params, seeds, capture):
    capture.metric("pi", 3.14)


def _experiment(op: Callable[..., Any], runs: int) -> metalab.Experiment:
    params = metalab.grid(block=list(range(runs // 1000)), i=list(range(1000)))
    operation = metalab.operation(name="pi_100", version="1")(op)
    return metalab.Experiment("bench_pi", "1", {}, operation, params, metalab.seeds(base=1))


def _best_us(runs: int, once: Callable[[], Any]) -> float:
    return best_of(3, once) / runs * 1e6


class _NoIndex:
    """Stands in for the store in the plan: no run-ID index known, none kept."""

    def run_id_index(self, key: str) -> bytes:
        return b""

    def extend_run_id_index(self, key: str, start: int, ids: bytes) -> None:
        pass


class _Quiet:
    def skipped(self, count: int = 1) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="a multiple of 1000")
    runs = parser.parse_args().runs
    folder = Path(tempfile.mkdtemp(prefix="metalab-breakdown-"))

    def sweep(op: Callable[..., Any]) -> float:
        def once() -> None:
            shutil.rmtree(folder / "store", ignore_errors=True)
            metalab.run(_experiment(op, runs), store=folder / "store")

        return _best_us(runs, once)

    def plan() -> None:
        list(runner._plan(_experiment(_nothing, runs), _NoIndex(), {}, set(), _Quiet()))

    rows = [
        ("the π operation (as in the table)", lambda: sweep(pi_100)),
        ("an operation that logs one metric and nothing else", lambda: sweep(_one_metric)),
        ("an operation that does nothing", lambda: sweep(_nothing)),
        ("the plan alone (cases, fingerprints, run IDs)", lambda: _best_us(runs, plan)),
        ("the π operation alone, plain loop", lambda: _best_us(runs, lambda: plain_op_loop(runs))),
    ]
    try:
        print("| sweep | µs per run |\n| --- | --- |")
        for label, measure in rows:
            print(f"| {label} | {measure():.1f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
