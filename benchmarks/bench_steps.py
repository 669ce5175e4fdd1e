"""Per-step metrics in one run: ``capture.metric(name, value, step=i)`` calls per second,
and the peak resident memory of a run that logs 10,000,000 steps.

The rate is timed inside the operation, around the loop of calls. Its floor is a plain
loop appending the step and the value to two ``array`` objects (what a capture must do
at least). The memory floor is a fresh interpreter holding the same steps in two arrays;
the run's peak is ``ru_maxrss`` of this process, which ``run_all.py`` started afresh.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import HERE, Row, peak_rss_mb, python

import metalab

_TIMES: list[float] = []


def _log_steps(params, capture):
    metric = capture.metric
    start = time.perf_counter()
    for step in range(params["steps"]):
        metric("loss", 0.5, step=step)
    _TIMES.append(time.perf_counter() - start)


def _run(workdir: Path, steps: int) -> None:
    op = metalab.operation(name="log_steps", version="1")(_log_steps)
    exp = metalab.Experiment(
        "steps", "1", {}, op, metalab.grid(steps=[steps]), metalab.seeds(base=1)
    )
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        results = metalab.run(exp, store=folder)
        if results[0].status != "success":
            raise RuntimeError(f"the steps run failed: {results[0].error}")


def _plain_rate(steps: int) -> float:
    from array import array

    at, values = array("q"), array("d")
    add_step, add_value = at.append, values.append
    start = time.perf_counter()
    for step in range(steps):
        add_step(step)
        add_value(0.5)
    return steps / (time.perf_counter() - start)


_PLAIN_MEMORY = """
import sys
from array import array
sys.path.insert(0, sys.argv[2])
from _common import peak_rss_of_this_image_mb
at, values = array("q"), array("d")
for step in range(int(sys.argv[1])):
    at.append(step)
    values.append(0.5)
print(peak_rss_of_this_image_mb())
"""


def measure_rate(workdir: Path, steps: int) -> list[Row]:
    _run(workdir, steps)
    rate = steps / _TIMES[-1]
    floor = max(_plain_rate(steps) for _ in range(2))
    return [
        Row(
            f"per-step metric calls in one run ({steps:,} steps)",
            rate,
            "calls/s",
            1_000_000,
            floor,
            lower_is_better=False,
        )
    ]


def measure_memory(workdir: Path, steps: int) -> list[Row]:
    floor = float(python(_PLAIN_MEMORY, str(steps), str(HERE)).stdout)
    before = peak_rss_mb()
    start = time.perf_counter()
    _run(workdir, steps)
    took = time.perf_counter() - start
    return [
        Row(
            f"peak RSS of one run logging {steps:,} steps",
            peak_rss_mb(),
            "MB",
            None,
            floor,
            note=f"no target but finishing; {before:.0f} MB before the run, run took {took:.1f} s",
        )
    ]
