"""Shared pieces of the benchmarks run by ``run_all.py``: rows, timers, operations, stores.

Every benchmark module exposes ``measure(workdir, **sizes) -> list[Row]``; ``run_all.py``
calls it in a fresh interpreter and prints the rows of all of them as one table. A row
carries its floor: the same work done by a plain Python loop, measured in the same process
and the same minute, so the ratio survives a noisy machine better than the raw figure.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import metalab

HERE = Path(__file__).resolve().parent


@dataclass
class Row:
    """One line of the table.

    ``lower_is_better`` says how to read ``measured`` against ``target``; the ratio is
    always ``cost / floor cost``, so 1.0 is the floor and bigger is worse, for times and
    sizes (measured / floor) as for rates and speed-ups (floor / measured).
    """

    figure: str
    measured: float | None
    unit: str
    target: float | None = None
    floor: float | None = None
    lower_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Cost over the floor's cost (1.0 is the floor), or None without both numbers."""
        if not self.measured or not self.floor:
            return None
        if self.lower_is_better:
            return self.measured / self.floor
        return self.floor / self.measured

    @property
    def meets_target(self) -> bool | None:
        """Whether ``measured`` is on the right side of ``target``; None without both."""
        if self.measured is None or self.target is None:
            return None
        if self.lower_is_better:
            return self.measured <= self.target
        return self.measured >= self.target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Least wall time of ``repeats`` calls of ``fn``, in seconds, GC collected before each."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_rss_mb() -> float:
    """This process's peak resident size so far, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_of_this_image_mb() -> float:
    """Peak resident size since this process last exec'd, in MB (VmHWM, Linux).

    ``ru_maxrss`` survives ``exec``: a child started by a process of 500 MB reports at
    least 500 MB. Floors measured in a fresh interpreter use this instead.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def current_rss_mb() -> float:
    """This process's resident size now, in MB (from /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def python(code: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (this venv, -I would drop the venv's path)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )


# -- the trivial operation of the issue: NumPy pi on 100 points, one metric ---------------


def pi_100(params, seeds, capture):
    rng = seeds.numpy()
    x, y = rng.random(100), rng.random(100)
    capture.metric("pi", float(4.0 * (x**2 + y**2 <= 1).mean()))


def pi_100_plain(index: int) -> float:
    """The operation's own work, without metalab: what a plain loop would run.

    Its generator gets a 64-bit seed, as ``SeedBundle.numpy()`` gives one (NumPy takes
    about 3 us longer to seed from 64 bits than from a small int, which is not metalab's).
    """
    import numpy as np

    rng = np.random.default_rng((index * 0x9E3779B97F4A7C15 + 1) % 2**64)
    x, y = rng.random(100), rng.random(100)
    return float(4.0 * (x**2 + y**2 <= 1).mean())


def pi_experiment(n_runs: int) -> metalab.Experiment:
    """``n_runs`` runs of :func:`pi_100`: a grid of (n_runs // 1000) x 1000 cases.

    Two small axes, not one axis of n_runs values, so the manifest stays a few hundred
    bytes however large the sweep, as it would for a real sweep.
    """
    width = min(n_runs, 1000)
    if n_runs % width:
        raise ValueError(f"pi_experiment(n_runs={n_runs}): must be below or a multiple of 1000")
    params = metalab.grid(block=list(range(n_runs // width)), i=list(range(width)))
    op = metalab.operation(name="pi_100", version="1")(pi_100)
    return metalab.Experiment("bench_pi", "1", {}, op, params, metalab.seeds(base=1))


def template_record(workdir: Path) -> dict[str, Any]:
    """The record dict metalab writes for one run of :func:`pi_100` (for plain floors)."""
    store = workdir / "template"
    if not store.exists():
        metalab.run(pi_experiment(1), store=store)
    record = next(iter(metalab.load_results(store))).record
    return record.to_dict()


def plain_append_loop(workdir: Path, n_runs: int, template: dict[str, Any]) -> float:
    """Seconds a plain loop takes to run the op and append its record as one JSON line.

    The floor of a sweep: the operation, then the same record (fresh run ID, params,
    metric and times) as ``<crc32> <json>\\n`` with one ``os.write`` per run; no fsync.
    """
    path = workdir / "plain.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    try:
        gc.collect()
        start = time.perf_counter()
        for index in range(n_runs):
            began = time.perf_counter()
            value = pi_100_plain(index)
            record = dict(template)
            record["run_id"] = f"{index:032x}"
            record["case_index"] = index
            record["params"] = {"block": index // 1000, "i": index % 1000}
            record["metrics"] = {"pi": value}
            record["duration"] = time.perf_counter() - began
            body = dumps(record).encode()
            os.write(fd, b"%08x %s\n" % (zlib.crc32(body), body))
        return time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()


def plain_op_loop(n_runs: int) -> float:
    """Seconds a plain loop takes to run the operation alone ``n_runs`` times."""
    gc.collect()
    start = time.perf_counter()
    for index in range(n_runs):
        pi_100_plain(index)
    return time.perf_counter() - start


def done_store(workdir: Path, n_runs: int) -> Path:
    """A store in which every run of ``pi_experiment(n_runs)`` is done; built once, kept.

    Built with ``FileStore.put_records_json`` (64 records an append, as a worker writes
    them, with the manifest and the run-ID index ``run`` writes) rather than by running
    the sweep: the 1,000,000-run
    store takes under a minute this way. Kept under ``workdir`` for the next benchmark.
    """
    from metalab.provenance import provenance, utc_now
    from metalab.record import SUCCESS, RunRecord
    from metalab.store import FileStore

    path = workdir / f"done-{n_runs}"
    ready = path / ".complete-3"  # -3: in batches, with its run-ID index
    if ready.exists():
        return path
    if path.exists():
        import shutil

        shutil.rmtree(path)  # a build that was interrupted
    exp = pi_experiment(n_runs)
    store = FileStore(path)
    store.write_manifest(exp.manifest(provenance=provenance()[0]))
    template = template_record(workdir)
    bundle = exp.seeds[0]
    seeds = bundle.to_dict()
    fields = {
        k: v
        for k, v in template.items()
        if k in ("host", "pid", "worker", "peak_memory", "experiment", "version")
    }
    ids, batch = bytearray(), []
    for index in range(n_runs):
        case = exp.params[index]
        stamp = utc_now()
        ids += bytes.fromhex(exp.run_id(case, bundle))
        if len(batch) == 64:  # as the runner writes them: 64 records an append
            store.put_records_json(batch)
            batch = []
        batch.append(
            RunRecord(
                run_id=ids[-16:].hex(),
                case_index=index,
                replicate_index=bundle.replicate_index,
                params=case.to_dict(),
                seeds=seeds,
                status=SUCCESS,
                metrics={"pi": 3.0 + (index % 1000) / 1000},
                started_at=stamp,
                finished_at=stamp,
                duration=7e-5,
                **fields,
            ).to_json()
        )
    store.put_records_json(batch)
    # The run-ID index a sweep leaves behind (run() writes it as it plans).
    store.extend_run_id_index(exp.sweep_fingerprint, 0, bytes(ids))
    store.close()
    ready.touch()
    return path


def records_folder_lines(store: Path):
    """Yield every record line of a file store's segments (for plain floors)."""
    for segment in sorted((store / "records").glob("*.jsonl")):
        with open(segment, "rb") as lines:
            yield from lines


def postgres_main(
    doc: str, measure: Callable[[str, Path, int], list[tuple[str, float, str]]]
) -> None:
    """Parse ``--runs --dsn --workdir``; start a server unless given one; print ``measure``'s rows.

    ``measure(dsn, workdir, runs)`` returns ``(figure, value, unit)`` rows; a rate (unit
    ending ``/s``) prints as a whole number, anything else with three decimals.
    """
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--dsn", default=os.environ.get("METALAB_POSTGRES_DSN"))
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "metalab-bench"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    script = HERE.parent / "scripts" / "postgres.sh"
    env = {**os.environ, "METALAB_PG_DIR": f"/tmp/metalab-pg-bench-{os.getpid()}"}
    dsn = args.dsn
    if dsn is None:
        dsn = subprocess.run(
            ["bash", str(script), "start"], env=env, capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    try:
        for figure, value, unit in measure(dsn, workdir, args.runs):
            shown = f"{value:,.0f}" if unit.endswith("/s") else f"{value:.3f}"
            print(f"{figure:<56} {shown:>10} {unit}")
    finally:
        if args.dsn is None:
            subprocess.run(["bash", str(script), "stop"], env=env, check=False)
