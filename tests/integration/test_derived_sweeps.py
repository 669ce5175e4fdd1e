"""Derived metrics on real sweeps: scripts run from the command line, edited on disk; PostgreSQL.

The sweep is started as users start one (``metalab run FILE.py`` with worker
processes); the derived function lives in a module on disk, named
``"module:function"``, and is computed in fresh interpreters, as a user would from a
notebook or a script the next day. The module is then edited, and ``metalab table``
shows what is current.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import metalab
from metalab import cli
from metalab.store import open_store

SCRIPT = """
import metalab

@metalab.operation
def train(params, seeds, capture):
    rng = seeds.rng()
    capture.metric("train_acc", 0.9 + params["lr"] / 10 + rng.random() / 100)
    capture.metric("test_acc", 0.8 + rng.random() / 100)

exp = metalab.Experiment(
    "train", "1", {}, train, metalab.grid(lr=[0.1, 0.2, 0.3]), metalab.seeds(3, 2)
)
"""

METRICS = """
import os

def gap(run):
    with open(os.environ["CALLS_FILE"], "a") as calls:  # counts the calls, across processes
        calls.write(run.run_id + "\\n")
    return {"gap": round(run.metrics["train_acc"] - run.metrics["test_acc"], 9)}  # GAP
"""


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "mymetrics.py").write_text(METRICS)
    return tmp_path


def compute(project: Path, store: str) -> subprocess.CompletedProcess[str]:
    """Compute ``mymetrics:gap`` over ``store`` in a fresh interpreter, as a user would."""
    code = f"import metalab; metalab.load_results({store!r}).compute_derived('mymetrics:gap')"
    env = {**os.environ, "PYTHONPATH": str(project), "CALLS_FILE": str(project / "calls")}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True
    )


def calls(project: Path) -> int:
    path = project / "calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def table(store: str, capsys, *extra: str) -> list[dict]:
    assert cli.main(["table", store, "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_computed_once_recomputed_when_edited_and_shown_by_metalab_table(project, capsys):
    assert cli.main(["run", "train.py", "--store", "runs/train", "--executor", "process",
                     "--workers", "2", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert "derived.gap" not in table("runs/train", capsys)[0]

    done = compute(project, "runs/train")
    assert done.returncode == 0, done.stderr
    assert calls(project) == 6
    rows = table("runs/train", capsys)
    assert list(rows[0])[-3:] == ["derived.gap", "replicate_index", "duration"]
    expected = [round(row["train_acc"] - row["test_acc"], 9) for row in rows]
    assert [row["derived.gap"] for row in rows] == expected

    # Once: a second computation, in another process, computes nothing.
    assert compute(project, "runs/train").returncode == 0
    assert calls(project) == 6

    # A comment changes nothing; a changed body computes every run again.
    (project / "mymetrics.py").write_text(METRICS.replace("# GAP", "# the gap, rounded"))
    assert compute(project, "runs/train").returncode == 0
    assert calls(project) == 6
    (project / "mymetrics.py").write_text(METRICS.replace("round(", "100 * round("))
    assert compute(project, "runs/train").returncode == 0
    assert calls(project) == 12
    rows = table("runs/train", capsys)
    assert [row["derived.gap"] for row in rows] == pytest.approx([100 * g for g in expected])

    summary = table("runs/train", capsys, "--group-by", "lr")
    gap_rows = [row for row in summary if row["metric"] == "derived.gap"]
    assert [row["lr"] for row in gap_rows] == [0.1, 0.2, 0.3]
    assert all(row["count"] == 2 for row in gap_rows)

    # The records were never touched: the runs are what the sweep made.
    assert all("derived.gap" not in run.metrics for run in metalab.load_results("runs/train"))


def test_run_with_derived_metrics_on_postgres_then_copied_to_a_folder(
    postgres_dsn, postgres_schema, project, monkeypatch
):
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("CALLS_FILE", str(project / "calls"))
    namespace: dict = {}
    exec(compile(SCRIPT, str(project / "train.py"), "exec"), namespace)
    dsn = f"{postgres_dsn}?schema={postgres_schema}&artifacts={project}/artifacts"

    result = metalab.run(namespace["exp"], store=dsn, derived_metrics=["mymetrics:gap"])
    assert calls(project) == 6
    gaps = [run.derived["gap"] for run in result]
    assert gaps == [round(run.metrics["train_acc"] - run.metrics["test_acc"], 9) for run in result]
    again = metalab.run(namespace["exp"], store=dsn, derived_metrics=["mymetrics:gap"])
    assert calls(project) == 6  # resumed: nothing to run, nothing to derive
    assert [run.derived["gap"] for run in again] == gaps
    assert [row["derived.gap"] for row in metalab.load_results(dsn).table()] == gaps

    def gap(run):  # another code under the same name: computed again, and current
        return {"gap": -1.0}

    assert {run.derived["gap"] for run in metalab.load_results(dsn).compute_derived(gap)} == {-1.0}
    assert {run.derived["gap"] for run in metalab.load_results(dsn)} == {-1.0}
    assert len(open_store(dsn).derived_entries()) == 12

    report = open_store(dsn).copy_to(project / "copy")
    assert (report.derived, report.derived_copied) == (12, 12)
    assert {run.derived["gap"] for run in metalab.load_results(project / "copy")} == {-1.0}
