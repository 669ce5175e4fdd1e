"""The runner's peak memory over a long sweep of trivial runs, and its growth.

Serial, and on a ProcessExecutor of 2 workers (the runner's own memory: workers are
other processes). Afterwards the store is loaded (``to_dataframe()``, every run) to show it
still loads.

Measured in a process of its own that ``run_all.py`` started afresh: ``ru_maxrss`` after
the sweep, and a thread sampling the resident size every 0.2 s beside the bytes of
records written so far, which says whether memory stays flat as the sweep goes on. The
sweep ends when the last record is written; ``run()`` then loads the results it
returns, which the samples tell apart. The floor is the peak of a fresh interpreter
running the plain loop (op plus one JSON line appended per run) over at most 100,000
runs: a plain loop's memory does not grow with the number of runs.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

from _common import (
    HERE,
    Row,
    current_rss_mb,
    peak_rss_mb,
    pi_experiment,
    python,
    template_record,
)

import metalab

_PLAIN = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from _common import peak_rss_of_this_image_mb, plain_append_loop
template = json.loads(Path(sys.argv[2]).read_text())
plain_append_loop(Path(sys.argv[3]), int(sys.argv[4]), template)
print(peak_rss_of_this_image_mb())
"""


def _written(folder: Path) -> int:
    """Bytes in the record segments of the store at ``folder`` so far."""
    try:
        return sum(path.stat().st_size for path in (folder / "records").iterdir())
    except OSError:
        return 0


def measure(workdir: Path, runs: int, executor: str = "serial") -> list[Row]:
    """Rows for a sweep of ``runs`` on ``executor`` ("serial" or "process", 2 workers)."""
    template = workdir / "template.json"
    template.write_text(json.dumps(template_record(workdir)))
    plain_runs = min(runs, 100_000)
    floor = float(python(_PLAIN, str(HERE), str(template), str(workdir), str(plain_runs)).stdout)
    exp = pi_experiment(runs)
    store = workdir / f"memory-{executor}-{runs}"
    # A store left by an earlier invocation would make this a resume, not a sweep.
    shutil.rmtree(store, ignore_errors=True)
    samples: list[tuple[int, float]] = []  # (record bytes written, RSS in MB)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append((_written(store), current_rss_mb()))

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    try:
        metalab.run(
            exp,
            store=store,
            executor=metalab.ProcessExecutor(2) if executor == "process" else None,
        )
    finally:
        stop.set()
        sampler.join()
    took = time.perf_counter() - start
    peak = peak_rss_mb()
    total = _written(store)

    def at(fraction: float) -> float:
        """RSS at the first sample where ``fraction`` of the records were written."""
        return next((rss for written, rss in samples if written >= fraction * total), 0.0)

    during = max((rss for written, rss in samples if written < total), default=0.0)
    after = [rss for written, rss in samples if written >= total]
    # run() may return without loading every record; then nothing is sampled after.
    ending = f"{max(after):.0f} MB" if after else "no sample (returned within 0.2 s)"
    path = "/".join(f"{at(f):.0f}" for f in (0.1, 0.25, 0.5, 0.75, 0.9))
    # The last check: the store of the sweep loads afterwards, every run in it.
    began = time.perf_counter()
    loaded = len(metalab.load_results(store).to_dataframe())
    load_took = time.perf_counter() - began
    if loaded != runs:
        raise RuntimeError(f"the store of the {runs:,}-run sweep loaded {loaded:,} runs")
    return [
        Row(
            f"runner peak RSS, {runs:,}-run {executor} sweep",
            peak,
            "MB",
            300,
            floor,
            note=(
                f"{runs / took:,.0f} runs/s; sampled peak while runs were written "
                f"{during:.0f} MB; after the last one (run() building its results) {ending}; "
                f"the store then loaded {loaded:,} runs in {load_took:.1f} s"
            ),
        ),
        Row(
            f"runner RSS growth from 25% to 90% of that sweep's records ({executor})",
            at(0.9) - at(0.25),
            "MB",
            10,
            None,
            note=f"target 'flat' read as under 10 MB; RSS at 10/25/50/75/90%: {path} MB",
        ),
    ]
