"""Serial overhead per trivial run: ``metalab.run`` into a FileStore minus the op's own time.

The operation is the issue's trivial run (NumPy pi on 100 points, one metric). Its own
time is a plain loop running it alone, taken before and after the sweep (the lower one
counts, so a busy minute does not flatter metalab). The floor is a plain loop that runs
it and appends the same record as one ``<crc32> <json>`` line with ``os.write``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from _common import Row, pi_experiment, plain_append_loop, plain_op_loop, template_record

import metalab


def measure(workdir: Path, runs: int) -> list[Row]:
    template = template_record(workdir)
    exp = pi_experiment(runs)
    # Repeated where short (sweeps into fresh stores); the best of each counts. The
    # floor is a difference of two plain loops, so those get one more try than sweeps.
    repeats = 3 if runs <= 10_000 else 1
    op = plain_op_loop(runs)
    plain = min(plain_append_loop(workdir, runs, template) for _ in range(repeats + 1))
    sweeps = []
    for attempt in range(repeats):
        store = workdir / f"overhead-{runs}-{attempt}"
        shutil.rmtree(store, ignore_errors=True)  # one kept by --workdir would be a resume
        start = time.perf_counter()
        metalab.run(exp, store=store)
        sweeps.append(time.perf_counter() - start)
    op = min(op, plain_op_loop(runs))
    sweep = min(sweeps)
    return [
        Row(
            f"serial overhead per trivial run, {runs:,} runs",
            (sweep - op) / runs * 1e6,
            "us/run",
            25,
            (plain - op) / runs * 1e6,
            note=(
                f"sweep {sweep / runs * 1e6:.0f} us/run ({sweep:.1f} s), "
                f"op alone {op / runs * 1e6:.0f} us/run"
            ),
        )
    ]
