"""Sweeps into a PostgresStore on a real server: executors, resume, results, the CLI."""

from __future__ import annotations

import json

import pytest

import metalab
from metalab import cli
from metalab.store import open_store


@metalab.operation(name="pg_sweep", version="1")
def noisy_square(params, seeds, capture):
    rng = seeds.rng()
    capture.metric("y", params["x"] ** 2 + rng.random())
    capture.metric("draw", rng.random())
    if params["x"] == 3:
        print("x is three")  # printed output is kept as an artifact file


def sweep() -> metalab.Experiment:
    return metalab.Experiment(
        name="pg_sweep",
        version="1",
        context={},
        operation=noisy_square,
        params=metalab.grid(x=[1, 2, 3, 4, 5]),
        seeds=metalab.seeds(base=11, replicates=3),
    )


def runs_of(store) -> dict[str, tuple]:
    """Everything a sweep computed, by run ID: params, seeds and metrics, exactly."""
    return {
        record.run_id: (
            json.dumps(record.params, sort_keys=True),
            json.dumps(record.seeds, sort_keys=True),
            json.dumps(record.metrics, sort_keys=True),
            record.status,
        )
        for record in store.records()
    }


@pytest.fixture
def dsn(postgres_dsn, postgres_schema, tmp_path) -> str:
    """One store's whole DSN: server, schema and artifacts folder."""
    return f"{postgres_dsn}?schema={postgres_schema}&artifacts={tmp_path}/artifacts"


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_sweep_equals_a_file_store_sweep_and_resume_skips_done_runs(dsn, tmp_path, executor):
    chosen = metalab.ProcessExecutor(2) if executor == "process" else None
    result = metalab.run(sweep(), store=dsn, executor=chosen)
    assert len(result) == 15 and all(run.status == "success" for run in result)
    metalab.run(sweep(), store=tmp_path / "file-store")
    store = open_store(dsn)
    assert runs_of(store) == runs_of(metalab.FileStore(tmp_path / "file-store"))
    printed = [run for run in result if run.params["x"] == 3]
    assert {run.stdout for run in printed} == {"x is three\n"}

    before = len(store.latest_records(1000))
    again = metalab.run(sweep(), store=dsn, executor=chosen, resume=True)
    assert len(again) == 15
    assert len(store.latest_records(1000)) == before  # nothing was run again
    store.close()


def test_load_results_takes_a_dsn(dsn):
    metalab.run(sweep(), store=dsn)
    frame = metalab.load_results(dsn).to_dataframe()
    assert len(frame) == 15
    assert sorted(frame["x"].unique()) == [1, 2, 3, 4, 5]


def test_cli_status_and_table_take_a_dsn(dsn, capsys):
    metalab.run(sweep(), store=dsn)
    capsys.readouterr()
    assert cli.main(["status", dsn]) == 0
    status = capsys.readouterr().out
    assert "done" in status and "15 of 15" in status and "***" not in status
    assert cli.main(["table", dsn, "--group-by", "x"]) == 0
    table = capsys.readouterr().out
    assert all(str(x) in table for x in range(1, 6))


def test_cli_on_a_dsn_without_a_store_says_so(postgres_dsn, capsys):
    code = cli.main(["status", f"{postgres_dsn}?schema=no_such_store"])
    assert code != 0
    assert "no metalab store in schema 'no_such_store'" in capsys.readouterr().err


SCRIPT = """
import metalab


@metalab.operation(name="square", version="1")
def square(params, seeds, capture):
    capture.metric("y", params["x"] ** 2 + seeds.rng().random())


exp = metalab.Experiment(
    "square", "1", {}, square, metalab.grid(x=[1, 2, 3]), metalab.seeds(0, 2)
)
"""


def test_cli_run_takes_a_dsn_as_its_store_and_skips_done_runs_the_second_time(
    dsn, tmp_path, capsys
):
    script = tmp_path / "square.py"
    script.write_text(SCRIPT)
    assert cli.main(["run", str(script), "--store", dsn, "--no-progress"]) == 0
    assert "6 done, 0 failed, 0 skipped" in capsys.readouterr().out
    assert cli.main(["run", str(script), "--store", dsn, "--no-progress"]) == 0
    assert "0 done, 0 failed, 6 skipped" in capsys.readouterr().out
    assert not (tmp_path / "postgresql:").exists()
