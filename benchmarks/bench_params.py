"""Speed of parameter sources and seeds: prints each figure beside its target.

Run: python benchmarks/bench_params.py [--quick]; ``run_all.py`` runs it as one entry
(``--only params``) through :func:`measure`.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
from pathlib import Path

from _common import Row, best_of

import metalab


def _rate(count: int, run) -> float:
    """Items per second of ``run()`` (which processes ``count`` items), best of 3."""
    return count / best_of(3, run)


def _drain(iterable) -> None:
    for _ in iterable:
        pass


def _plain_grid(axes: dict[str, list]) -> None:
    """A plain grid: one dict per combination, from itertools.product."""
    keys = list(axes)
    for combo in itertools.product(*axes.values()):
        dict(zip(keys, combo, strict=True))


def _plain_random(n: int) -> None:
    """Plain random trials of the same three keys, from one random.Random."""
    rng = random.Random(123)
    low, high = math.log(1e-4), math.log(1e-1)
    for _ in range(n):
        {
            "learning_rate": math.exp(rng.uniform(low, high)),
            "dropout": rng.uniform(0.1, 0.5),
            "hidden_dim": rng.choice((64, 128, 256)),
        }


Figure = tuple[str, float, str, int | None, float | None]


def rows(n: int) -> list[Figure]:
    """``(label, rate, unit, target, floor rate)`` of each figure, for ``n`` items."""
    axes = {
        "a": list(range(100)),
        "b": [f"s{i}" for i in range(100)],
        "c": [0.1 * i for i in range(n // 10_000)],
    }
    grid = metalab.grid(**axes)
    space = {
        "learning_rate": metalab.loguniform(1e-4, 1e-1),
        "dropout": metalab.uniform(0.1, 0.5),
        "hidden_dim": metalab.choice([64, 128, 256]),
    }
    rand = metalab.random(space, n_trials=n, seed=123)
    huge = metalab.grid(**{f"k{i:02d}": list(range(10)) for i in range(12)})
    plan = metalab.seeds(base=42, replicates=n)
    indices = range(0, 10**12, 10**12 // 10_000)

    return [
        (
            f"grid: iterate {len(grid):,} cases",
            _rate(len(grid), lambda: _drain(grid)),
            "cases/s",
            300_000,
            _rate(len(grid), lambda: _plain_grid(axes)),
        ),
        (
            f"random: iterate {n:,} trials (3 keys)",
            _rate(n, lambda: _drain(rand)),
            "trials/s",
            100_000,
            _rate(n, lambda: _plain_random(n)),
        ),
        (
            "grid 10^12 cases: source[i]",
            _rate(len(indices), lambda: [huge[i] for i in indices]),
            "lookups/s",
            None,
            None,
        ),
        (
            f"seeds: {n:,} bundles + derive()",
            _rate(n, lambda: [b.derive("default") for b in plan]),
            "bundles/s",
            None,
            None,
        ),
        (
            f"fingerprint of {n // 10:,} grid cases",
            _rate(n // 10, lambda: [grid[i].fingerprint for i in range(n // 10)]),
            "cases/s",
            None,
            None,
        ),
    ]


def measure(workdir: Path, items: int) -> list[Row]:
    """The figures as rows of ``run_all.py``'s table."""
    return [
        Row(label, rate, unit, target, floor, lower_is_better=False)
        for label, rate, unit, target, floor in rows(items)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 items instead of 10^6")
    n = 100_000 if parser.parse_args().quick else 1_000_000
    print(f"{'figure':<44} {'measured':>14}  {'target':>12}  {'plain floor':>12}")
    for label, rate, unit, target, floor in rows(n):
        goal = f">= {target:,}" if target else "-"
        plain = f"{floor:,.0f}" if floor else "-"
        flag = "" if target is None or rate >= target else "  BELOW TARGET"
        print(f"{label:<44} {rate:>14,.0f}  {goal:>12}  {plain:>12}  {unit}{flag}")


if __name__ == "__main__":
    main()
