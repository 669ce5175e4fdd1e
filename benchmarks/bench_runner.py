"""Per-run overhead of metalab.run on a trivial operation, and the cost of a full resume.

Run: python benchmarks/bench_runner.py [--runs N]
The floor is a plain Python loop doing the same operation; overhead is the difference.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import metalab


def pi_100(params, seeds, capture):
    rng = seeds.numpy()
    x, y = rng.random(100), rng.random(100)
    capture.metric("pi", float(4.0 * (x**2 + y**2 <= 1).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    n = parser.parse_args().runs
    op = metalab.operation(name="pi_100", version="1")(pi_100)
    exp = metalab.Experiment(
        "bench", "1", {}, op, metalab.grid(i=list(range(n))), metalab.seeds(base=1)
    )

    start = time.perf_counter()
    for bundle_index in range(n):
        rng = np.random.default_rng(bundle_index)
        x, y = rng.random(100), rng.random(100)
        float(4.0 * (x**2 + y**2 <= 1).mean())
    floor = (time.perf_counter() - start) / n

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        metalab.run(exp, store=folder)
        sweep = (time.perf_counter() - start) / n
        start = time.perf_counter()
        metalab.run(exp, store=folder)
        resume = time.perf_counter() - start

    print(f"{'figure':<48} {'measured':>12}")
    print(f"{'operation alone (plain loop)':<48} {floor * 1e6:>9.1f} us")
    print(f"{f'run(): {n:,} runs, serial, file store':<48} {sweep * 1e6:>9.1f} us/run")
    print(f"{'run() overhead per run':<48} {(sweep - floor) * 1e6:>9.1f} us/run")
    print(f"{f'resume with all {n:,} runs done':<48} {resume:>10.2f} s")


if __name__ == "__main__":
    main()
