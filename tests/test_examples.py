"""The examples run as the README says, and print the same numbers every time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_pi_example_sweeps_nine_runs_then_resumes_without_rerunning(tmp_path):
    script = str(EXAMPLES / "pi_mc.py")
    first = subprocess.run(
        [sys.executable, script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    rows = ast.literal_eval(first.stdout)
    assert len(rows) == 9
    assert (tmp_path / "runs" / "pi_mc" / "manifest.json").is_file()
    # Pins run IDs, seeds and NumPy streams end to end.
    assert rows[0]["run_id"] == "c52c9d696e2be4d3e4ed9aa429ddf026"
    assert (rows[0]["n_samples"], rows[0]["replicate_index"], rows[0]["pi_estimate"]) == (
        1000,
        0,
        3.064,
    )
    # Resumed: nothing runs again, so even the stored durations are identical.
    again = subprocess.run(
        [sys.executable, script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert again.stdout == first.stdout
