"""Speed of parameter sources and seeds: prints each figure beside its target.

Run: python benchmarks/bench_params.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import time

import metalab


def _rate(count: int, run) -> float:
    """Items per second of ``run()`` (which processes ``count`` items), best of 3."""
    best = float("inf")
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def _drain(iterable) -> None:
    for _ in iterable:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 items instead of 10^6")
    n = 100_000 if parser.parse_args().quick else 1_000_000

    grid = metalab.grid(
        a=list(range(100)), b=[f"s{i}" for i in range(100)], c=[0.1 * i for i in range(n // 10_000)]
    )
    space = {
        "learning_rate": metalab.loguniform(1e-4, 1e-1),
        "dropout": metalab.uniform(0.1, 0.5),
        "hidden_dim": metalab.choice([64, 128, 256]),
    }
    rand = metalab.random(space, n_trials=n, seed=123)
    huge = metalab.grid(**{f"k{i:02d}": list(range(10)) for i in range(12)})
    plan = metalab.seeds(base=42, replicates=n)
    indices = range(0, 10**12, 10**12 // 10_000)

    rows = [
        (
            f"grid: iterate {len(grid):,} cases",
            _rate(len(grid), lambda: _drain(grid)),
            "cases/s",
            300_000,
        ),
        (
            f"random: iterate {n:,} trials (3 keys)",
            _rate(n, lambda: _drain(rand)),
            "trials/s",
            100_000,
        ),
        (
            "grid 10^12 cases: source[i]",
            _rate(len(indices), lambda: [huge[i] for i in indices]),
            "lookups/s",
            None,
        ),
        (
            f"seeds: {n:,} bundles + derive()",
            _rate(n, lambda: [b.derive("default") for b in plan]),
            "bundles/s",
            None,
        ),
        (
            f"fingerprint of {n // 10:,} grid cases",
            _rate(n // 10, lambda: [grid[i].fingerprint for i in range(n // 10)]),
            "cases/s",
            None,
        ),
    ]
    print(f"{'figure':<44} {'measured':>14}  {'target':>12}")
    for label, rate, unit, target in rows:
        goal = f">= {target:,}" if target else "-"
        flag = "" if target is None or rate >= target else "  BELOW TARGET"
        print(f"{label:<44} {rate:>14,.0f}  {goal:>12}  {unit}{flag}")


if __name__ == "__main__":
    main()
