"""Run the reliability tests and print their figures as a markdown table.

    .venv/bin/python scripts/reliability_figures.py            # every test in tests/reliability
    .venv/bin/python scripts/reliability_figures.py -k kill_9  # extra arguments go to pytest

Each reliability test appends one JSON line of figures per fault it injects to the file
named by ``METALAB_RELIABILITY_FIGURES`` (``faults_injected``, ``runs_completed``,
``records_lost``, and figures of its own). This script points that variable at a
temporary file, runs pytest, joins each line with the test's outcome (from pytest's
JUnit XML report) and prints one table row per line. It exits with pytest's status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ("faults_injected", "runs_completed", "records_lost")


def outcomes(report: Path) -> dict[str, str]:
    """Map ``file::test[params]`` to passed, failed, error or skipped, from JUnit XML."""
    found = {}
    for case in ET.parse(report).iter("testcase"):
        # classname is the module as a dotted path: tests.reliability.test_faults
        path = case.get("classname", "").replace(".", "/") + ".py"
        result = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                result = {"failure": "failed"}.get(child.tag, child.tag)
        found[f"{path}::{case.get('name')}"] = result
    return found


def main(argv: list[str]) -> int:
    """Run pytest on tests/reliability with ``argv``, print the table, return its status."""
    with tempfile.TemporaryDirectory() as folder:
        figures, report = Path(folder, "figures.jsonl"), Path(folder, "report.xml")
        env = dict(os.environ, METALAB_RELIABILITY_FIGURES=str(figures))
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/reliability",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        status = subprocess.run(
            [*command, f"--junitxml={report}", *argv], cwd=ROOT, env=env, check=False
        ).returncode
        lines = figures.read_text().splitlines() if figures.exists() else []
        results = outcomes(report) if report.exists() else {}
    print()
    print("| fault | test | faults injected | runs completed | records lost | other | result |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for line in lines:
        entry = json.loads(line)
        test = entry.pop("test", "")
        fault = entry.pop("fault", "")
        numbers = [str(entry.pop(key, "")) for key in STANDARD]
        other = ", ".join(f"{key} {value}" for key, value in entry.items())
        name = test.split("::", 1)[-1]
        print(
            f"| {fault} | `{name}` | {' | '.join(numbers)} | {other} | "
            f"{results.get(test, 'not run')} |"
        )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
