"""Run every metalab benchmark, each in a fresh interpreter, and print one table.

Run: python benchmarks/run_all.py [--quick] [--only NAME ...] [--markdown] [--json PATH]

Each row shows a figure of issue 5 beside its target and beside its floor: the same work
done by a plain Python loop, measured in the same process a moment before or after,
so the ratio (cost over the floor's cost) holds on a busy machine where the raw figure
moves. Every entry runs in a subprocess of its own, so one entry's memory peak, imports
and garbage never reach another's. Stores that several entries read (``done-<N>``) are
built once per invocation, or kept between invocations with ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Entry:
    """One benchmark run in its own process: ``module.function(workdir, **kwargs)``."""

    name: str
    module: str
    full: dict[str, Any]
    #: Arguments under --quick; None leaves the entry out of a quick run.
    quick: dict[str, Any] | None
    function: str = "measure"
    about: str = field(default="", compare=False)


# Quick sizes keep `--quick` under 3 minutes on the 2-core machine of issue 5 with the
# runner at ~0.5 ms/run (its speed when this harness was written); the full sizes are
# the issue's.
ENTRIES = [
    Entry("import", "bench_import", {}, {}, about="import metalab, fresh interpreter"),
    Entry("overhead-10k", "bench_overhead", {"runs": 10_000}, {"runs": 10_000}),
    Entry("overhead-100k", "bench_overhead", {"runs": 100_000}, {"runs": 100_000}),
    Entry("resume-10k", "bench_resume", {"runs": 10_000}, {"runs": 10_000}),
    Entry("resume-1m", "bench_resume", {"runs": 1_000_000}, {"runs": 100_000}),
    Entry("load-100k", "bench_load", {"runs": 100_000}, {"runs": 100_000}),
    Entry("load-1m", "bench_load", {"runs": 1_000_000}, None),
    Entry("process-20ms", "bench_process", {"ms": 20, "runs": 250}, {"ms": 20, "runs": 100}),
    Entry("process-1ms", "bench_process", {"ms": 1, "runs": 5_000}, {"ms": 1, "runs": 2_000}),
    Entry("chunks", "bench_chunks", {"chunks": 3_000}, {"chunks": 1_000}),
    Entry(
        "steps-rate",
        "bench_steps",
        {"steps": 1_000_000},
        {"steps": 1_000_000},
        function="measure_rate",
    ),
    Entry(
        "steps-10m",
        "bench_steps",
        {"steps": 10_000_000},
        {"steps": 2_000_000},
        function="measure_memory",
    ),
    Entry("memory-1m", "bench_memory", {"runs": 1_000_000}, {"runs": 100_000}),
    Entry(
        "memory-1m-process",
        "bench_memory",
        {"runs": 1_000_000, "executor": "process"},
        {"runs": 100_000, "executor": "process"},
    ),
    Entry("status-1m", "bench_status", {"runs": 1_000_000}, {"runs": 100_000}),
    Entry("params", "bench_params", {"items": 1_000_000}, {"items": 100_000}),
    Entry("report-100k", "bench_report", {"runs": 100_000}, {"runs": 100_000}),
    Entry("verify-10k", "bench_verify", {"runs": 10_000}, {"runs": 10_000}),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 3 minutes")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="entries whose name starts with NAME (e.g. 'resume', 'process-1ms')",
    )
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows here")
    parser.add_argument(
        "--workdir", type=Path, help="keep stores here between invocations (default: a temp dir)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.quick, args.workdir, args.out)
    entries = _select(args.only, args.quick)
    if args.list:
        for entry in ENTRIES:
            quick = "left out" if entry.quick is None else entry.quick
            print(f"{entry.name:<16} {entry.module}.{entry.function}{entry.full}  quick: {quick}")
        return 0
    if not entries:
        known = ", ".join(entry.name for entry in ENTRIES)
        parser.error(f"--only {' '.join(args.only)}: no entry matches; known: {known}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="metalab-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows, took = _run_entries(entries, args.quick, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    facts = _machine(took, args.quick)
    print(_markdown(rows, facts) if args.markdown else _plain(rows, facts))
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "rows": rows}, indent=2) + "\n")
    return 0


def _select(only: list[str] | None, quick: bool) -> list[Entry]:
    chosen = [e for e in ENTRIES if not only or any(e.name.startswith(n) for n in only)]
    return [entry for entry in chosen if not quick or entry.quick is not None]


def _run_entries(
    entries: list[Entry], quick: bool, workdir: Path
) -> tuple[list[dict[str, Any]], float]:
    """Run each entry in a child interpreter; return all rows and the wall time taken."""
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    for number, entry in enumerate(entries, start=1):
        print(f"[{number}/{len(entries)}] {entry.name} ...", end=" ", file=sys.stderr, flush=True)
        out = workdir / f"{entry.name}.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", entry.name]
        command += ["--workdir", str(workdir), "--out", str(out)] + ["--quick"] * quick
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        took = time.perf_counter() - start
        if done.returncode == 0 and out.exists():
            rows += json.loads(out.read_text())
            print(f"{took:.1f} s", file=sys.stderr, flush=True)
        else:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"FAILED after {took:.1f} s:\n{done.stderr[-3000:]}", file=sys.stderr)
            rows.append({"figure": entry.name, "measured": None, "note": f"failed: {last}"})
    return rows, time.perf_counter() - began


def _child(name: str, quick: bool, workdir: Path, out: Path) -> int:
    """In the child interpreter: run one entry and write its rows to ``out`` as JSON."""
    import importlib

    [entry] = [e for e in ENTRIES if e.name == name]
    sys.path.insert(0, str(HERE))
    measure = getattr(importlib.import_module(entry.module), entry.function)
    kwargs = entry.quick if quick else entry.full
    rows = measure(workdir, **kwargs)
    out.write_text(json.dumps([row.to_dict() for row in rows]))
    return 0


def _machine(took: float, quick: bool) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "took_s": round(took, 1),
        "mode": "quick" if quick else "full",
    }


# -- the table ----------------------------------------------------------------------------


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    if unit.endswith("/s") or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _cells(row: dict[str, Any]) -> list[str]:
    unit = row.get("unit", "")
    lower = row.get("lower_is_better", True)
    measured, target, floor = row.get("measured"), row.get("target"), row.get("floor")
    goal = f"{'<=' if lower else '>='} {_number(target, unit)}" if target is not None else "-"
    ratio = "-"
    if measured and floor:
        ratio = f"{(measured / floor) if lower else (floor / measured):.2f}"
    verdict = ""
    if measured is None:
        verdict = "FAILED"
    elif target is not None:
        verdict = "ok" if (measured <= target if lower else measured >= target) else "MISSED"
    return [row["figure"], _number(measured, unit), goal, _number(floor, unit), ratio, verdict]


_HEADER = ["figure", "measured", "target", "floor (plain loop)", "ratio", "verdict"]


def _notes(rows: list[dict[str, Any]], facts: dict[str, Any]) -> list[str]:
    lines = [
        "ratio: cost over the floor's cost (1.00 is the floor; above is worse; for rates "
        "and speed-ups, floor / measured).",
    ]
    lines += [f"[{i}] {row['note']}" for i, row in enumerate(rows, start=1) if row.get("note")]
    lines.append(
        f"{facts['mode']} run on {facts['cpus']} CPUs, Python {facts['python']}, "
        f"{facts['platform']}; load average at the end {facts['load_average']}; "
        f"took {facts['took_s']:.0f} s."
    )
    return lines


def _plain(rows: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    table = [["#", *_HEADER]] + [[str(i), *_cells(r)] for i, r in enumerate(rows, start=1)]
    widths = [max(len(line[c]) for line in table) for c in range(len(table[0]))]
    text = []
    for line in table:
        cells = [
            cell.ljust(width) if c in (0, 1) else cell.rjust(width)
            for c, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
    return "\n".join([*text, "", *_notes(rows, facts)])


def _markdown(rows: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    lines = ["| # | " + " | ".join(_HEADER) + " |", "|---" * (len(_HEADER) + 1) + "|"]
    for i, row in enumerate(rows, start=1):
        lines.append(f"| {i} | " + " | ".join(_cells(row)) + " |")
    return "\n".join([*lines, "", *(f"- {note}" for note in _notes(rows, facts))])


if __name__ == "__main__":
    sys.exit(main())
