"""Results and Run on real stores: tables, summaries, display, exports, HTML, loading.

Every store here is made by a real sweep (metalab.run, in this process or in a
subprocess that is killed half-way or whose code this process cannot import).
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import metalab
import metalab.results as results_module
from metalab.errors import CaseIndexError, InvalidArgumentError, InvalidTypeError
from metalab.store import FileStore


@metalab.operation(name="train", version="1")
def train(params, seeds, capture):
    lr, width = params["lr"], params["width"]
    if lr == 1.0 and width == 16:
        raise ValueError(f"diverged at lr={lr}")
    noise = seeds.rng().random() / 100
    capture.metric("acc", 1.0 - lr / 10 + width / 1000 + noise)
    capture.metric("ratio", math.nan if seeds.replicate_index == 0 else 0.5 + noise)
    for step in range(4):
        capture.metric("loss", 1.0 / (step + 1) + noise, step=step)
    capture.artifact("config", {"lr": lr, "width": width})
    capture.artifact("state", {"lr": lr}, kind="pickle")
    print(f"training lr={lr}")


def train_experiment():
    return metalab.Experiment(
        name="train",
        version="1",
        context={},
        operation=train,
        params=metalab.grid(lr=[0.01, 0.1, 1.0], width=[8, 16]),
        seeds=metalab.seeds(base=5, replicates=3),
    )


@metalab.operation
def draw(params, seeds, capture):
    capture.metric("v", seeds.rng().random())


@metalab.operation
def clash(params, capture):
    capture.metric("lr", params["lr"] * 2)
    capture.metric("status", 1)


@metalab.operation
def mixed(params, seeds, capture):
    if params["kind"] == "bad" and seeds.replicate_index == 1:
        raise ValueError("bad kind")
    capture.metric("score", params["x"] * 2 + seeds.rng().random())
    capture.metric("ratio", math.nan if seeds.replicate_index == 0 else 0.25)
    capture.metric("edge", math.inf if params["x"] == 1 else -math.inf if params["flag"] else 1.0)
    if params["flag"]:
        capture.metric("only_flagged", seeds.replicate_index)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="module")
def result(stores):
    """18 runs: 3 lr x 2 width x 3 replicates; the 3 runs of (lr=1.0, width=16) fail."""
    return metalab.run(train_experiment(), store=stores / "train")


@pytest.fixture(scope="module")
def wide(stores):
    """80 runs: 2 string params x 40 replicates, with HTML-unsafe param values."""
    exp = metalab.Experiment(
        "wide", "1", {}, draw, metalab.grid(tag=["<a>", "b&c"]), metalab.seeds(1, 40)
    )
    return metalab.run(exp, store=stores / "wide")


SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy
    import metalab

    @metalab.operation(name="foreign", version="1")
    def foreign(params, seeds, capture):
        time.sleep(params["sleep"])
        capture.metric("v", params["x"] + seeds.rng().random())
        capture.metric("loss", 1.0, step=0)
        capture.metric("loss", 0.5, step=1)
        capture.artifact("config", {"x": params["x"]})
        capture.artifact("weights", numpy.arange(3.0) * params["x"])

    store, cases, sleep = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    grid = metalab.grid(x=list(range(cases)), sleep=[sleep])
    exp = metalab.Experiment("foreign", "1", {}, foreign, grid, metalab.seeds(3, 2))
    metalab.run(exp, store=store)
    """
)


def _sweep(tmp: Path, store: Path, cases: int, sleep: float) -> subprocess.Popen[bytes]:
    script = tmp / "foreign_sweep.py"
    script.write_text(SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), str(store), str(cases), str(sleep)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _records_written(store: Path) -> int:
    folder = store / "records"
    if not folder.is_dir():
        return 0
    return sum(path.read_bytes().count(b"\n") for path in folder.glob("*.jsonl"))


def _wait_for_records(proc: subprocess.Popen[bytes], store: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while _records_written(store) < count:
        assert proc.poll() is None, "the sweep ended before writing enough records"
        assert time.monotonic() < deadline, "the sweep wrote too few records in 30 s"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A 400-run sweep killed with SIGKILL after its first records."""
    tmp = tmp_path_factory.mktemp("killed")
    proc = _sweep(tmp, tmp / "store", cases=200, sleep=0.02)
    _wait_for_records(proc, tmp / "store", 6)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return tmp / "store"


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A finished sweep whose operation lives in a script this process cannot import."""
    tmp = tmp_path_factory.mktemp("foreign")
    proc = _sweep(tmp, tmp / "store", cases=3, sleep=0)
    assert proc.wait(timeout=60) == 0
    return tmp / "store"


# -- Results as a sequence ---------------------------------------------------------------


def test_runs_are_ordered_by_case_then_replicate(result):
    order = [(run.params["lr"], run.params["width"], run.record.replicate_index) for run in result]
    assert order[:4] == [(0.01, 8, 0), (0.01, 8, 1), (0.01, 8, 2), (0.01, 16, 0)]
    assert len(result) == 18


def test_a_run_is_found_by_position_and_by_run_id(result):
    assert result[result[4].run_id] is result[4]


def test_unknown_run_id_raises_case_index_error(result):
    with pytest.raises(CaseIndexError, match="'nope'"):
        result["nope"]


def test_successful_and_failed_split_the_runs(result):
    assert (len(result.successful), len(result.failed)) == (15, 3)
    assert {(r.params["lr"], r.params["width"]) for r in result.failed} == {(1.0, 16)}


def test_filter_keeps_runs_matching_params_and_predicate(result):
    kept = result.filter(lambda run: run.record.replicate_index == 0, width=8)
    assert [run.params["lr"] for run in kept] == [0.01, 0.1, 1.0]


def test_subsets_keep_the_manifest(result):
    assert result.filter(width=8).successful.manifest == result.manifest


# -- table and exports -------------------------------------------------------------------


def test_table_columns_are_id_status_params_metrics_replicate_duration(result):
    assert list(result.table()[0]) == [
        "run_id",
        "status",
        "lr",
        "width",
        "acc",
        "ratio",
        "loss",
        "replicate_index",
        "duration",
    ]


def test_table_gives_none_for_metrics_a_failed_run_lacks(result):
    row = result.table()[-1]
    assert (row["status"], row["acc"], row["loss"]) == ("failed", None, None)


def test_metric_named_like_a_param_or_fixed_column_is_prefixed(tmp_path):
    exp = metalab.Experiment("clash", "1", {}, clash, metalab.grid(lr=[0.5]), metalab.seeds(0))
    row = metalab.run(exp, store=tmp_path / "s").table()[0]
    assert list(row)[2:5] == ["lr", "metric.lr", "metric.status"]
    assert (row["lr"], row["metric.lr"], row["status"]) == (0.5, 1.0, "success")


def test_to_dataframe_is_the_table_with_nan_for_missing(result):
    frame = result.to_dataframe()
    assert list(frame.columns) == list(result.table()[0])
    assert frame["acc"].isna().sum() == 3
    assert frame.equals(result.table(as_dataframe=True))


def test_table_refuses_a_non_bool_as_dataframe(result):
    with pytest.raises(InvalidTypeError, match="as_dataframe='yes'"):
        result.table(as_dataframe="yes")


def test_to_csv_writes_header_and_rows(result, tmp_path):
    result.to_csv(tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    table = result.table()
    assert list(rows[0]) == list(table[0])
    assert [float(r["acc"]) for r in rows[:15]] == [t["acc"] for t in table[:15]]
    assert rows[-1]["acc"] == "" and rows[0]["ratio"] == "nan"


def test_to_json_writes_a_list_of_rows_with_nan_as_null(result, tmp_path):
    result.to_json(tmp_path / "t.json")
    rows = json.loads((tmp_path / "t.json").read_text())
    assert len(rows) == 18 and rows[0]["run_id"] == result[0].run_id
    assert rows[0]["ratio"] is None and rows[1]["ratio"] == result[1].metrics["ratio"]


def test_to_parquet_round_trips_the_table(result, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    result.to_parquet(tmp_path / "t.parquet")
    back = pq.read_table(tmp_path / "t.parquet")
    assert back.column_names == list(result.table()[0])
    assert back.column("acc").to_pylist() == [row["acc"] for row in result.table()]


def test_export_to_a_missing_folder_names_the_path(result, tmp_path):
    with pytest.raises(InvalidArgumentError, match="no-such-folder"):
        result.to_csv(tmp_path / "no-such-folder" / "t.csv")


# -- summary -----------------------------------------------------------------------------


def test_summary_groups_by_every_param_by_default(result):
    rows = result.summary()
    assert list(rows[0]) == [
        "lr",
        "width",
        "metric",
        "mean",
        "std",
        "ci95_low",
        "ci95_high",
        "count",
        "nonfinite",
    ]
    assert len({(row["lr"], row["width"]) for row in rows}) == 5
    assert [row["metric"] for row in rows[:3]] == ["acc", "ratio", "loss"]


def test_summary_mean_std_and_t_interval_match_the_replicates(result):
    row = result.summary()[0]
    values = [run.metrics["acc"] for run in result.filter(lr=0.01, width=8)]
    mean, std = statistics.mean(values), statistics.stdev(values)
    half = 4.302652730 * std / math.sqrt(3)  # t(0.975, df=2)
    assert (row["lr"], row["width"], row["metric"], row["count"]) == (0.01, 8, "acc", 3)
    assert row["mean"] == pytest.approx(mean) and row["std"] == pytest.approx(std)
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx((mean - half, mean + half))


def test_summary_interval_beyond_30_degrees_uses_the_t_quantile(wide):
    row = wide.summary("tag")[0]
    values = [run.metrics["v"] for run in wide.filter(tag="<a>")]
    half = 2.022690920 * statistics.stdev(values) / math.sqrt(40)  # t(0.975, df=39)
    assert row["count"] == 40
    assert row["ci95_high"] - row["mean"] == pytest.approx(half, rel=1e-7)


def test_summary_counts_nonfinite_values_apart(result):
    row = next(r for r in result.summary() if r["metric"] == "ratio")
    assert (row["count"], row["nonfinite"]) == (2, 1)
    assert math.isfinite(row["mean"])


def test_summary_of_one_run_has_no_std_or_interval(result):
    rows = result.filter(lambda run: run.record.replicate_index == 1).summary()
    assert {(r["count"], r["std"], r["ci95_low"], r["ci95_high"]) for r in rows} == {
        (1, None, None, None)
    }


def test_summary_counts_successful_runs_only(result):
    rows = result.summary(["lr"])
    acc = {row["lr"]: row["count"] for row in rows if row["metric"] == "acc"}
    assert acc == {0.01: 6, 0.1: 6, 1.0: 3}


def test_summary_group_by_a_name_equals_a_list_of_it(result):
    assert result.summary("width") == result.summary(["width"])


def test_summary_by_an_unknown_param_lists_the_params(result):
    with pytest.raises(InvalidArgumentError, match=r"'depth'.*lr, width"):
        result.summary(["depth"])


# -- display and HTML ----------------------------------------------------------------


def test_display_prints_a_rich_table_when_rich_is_installed(result, capsys):
    pytest.importorskip("rich")
    result.display("lr")
    out = capsys.readouterr().out
    assert "━" in out and "95% CI" in out
    assert "train 1: 15 successful runs" in out


def test_display_without_rich_prints_aligned_text(result, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    result.display("lr")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "train 1: 15 successful runs"
    assert lines[1].split() == ["lr", "metric", "mean", "std", "95%", "CI", "n", "nonfinite"]
    assert len(lines) == 3 + 9  # title, header, rule, 3 lr x 3 metrics
    assert len({len(line) for line in lines[1:]}) == 1, "columns are aligned"


def test_results_html_shows_50_rows_then_how_many_more(wide):
    page = wide._repr_html_()
    assert page.count("<tr>") == 1 + 50
    assert "… 30 more runs" in page


def test_results_html_escapes_values(wide):
    page = wide._repr_html_()
    assert "&lt;a&gt;" in page and "b&amp;c" in page and "<a>" not in page


def test_run_html_lists_status_params_and_metrics(result):
    page = result[0]._repr_html_()
    for text in ("success", "params.lr", "0.01", "metrics.acc", result[0].run_id):
        assert text in page


# -- Run ---------------------------------------------------------------------------------


def test_run_steps_are_lists_by_default(result):
    steps, values = result[0].steps("loss")
    assert steps == [0, 1, 2, 3]
    assert values[-1] == result[0].metrics["loss"]


def test_run_steps_as_dataframe_has_step_and_value_columns(result):
    frame = result[0].steps("loss", as_dataframe=True)
    assert list(frame.columns) == ["step", "value"]
    assert (str(frame["step"].dtype), str(frame["value"].dtype)) == ("int64", "float64")
    assert frame["value"].tolist() == result[0].steps("loss")[1]


def test_run_steps_of_an_unknown_series_lists_the_known_ones(result):
    with pytest.raises(InvalidArgumentError, match="this run has: loss"):
        result[0].steps("acc")


def test_run_artifact_is_decoded_by_kind(result):
    assert result[0].artifact("config") == {"lr": 0.01, "width": 8}
    assert result[0].artifacts == {"config": "json", "state": "pickle"}


def test_run_pickled_artifact_needs_allow_pickle(result):
    with pytest.raises(InvalidArgumentError, match="allow_pickle=True"):
        result[0].artifact("state")
    assert result[0].artifact("state", allow_pickle=True) == {"lr": 0.01}


def test_run_seeds_is_the_runs_seed_bundle(result):
    assert result[2].seeds == metalab.SeedBundle(5, 2)


def test_failed_run_has_type_message_and_traceback(result):
    error = result.failed[0].error
    assert (error["type"], error["message"]) == ("ValueError", "diverged at lr=1.0")
    assert "train" in error["traceback"]


def test_run_stdout_holds_what_the_run_printed(result):
    assert result[0].stdout == "training lr=0.01\n"


def test_run_provenance_joins_record_and_experiment_facts(result):
    facts = result[0].provenance
    assert set(facts) == {
        "host",
        "pid",
        "worker",
        "started_at",
        "finished_at",
        "duration",
        "peak_memory",
        "attempt",
        "experiment",
    }
    assert facts["pid"] == os.getpid() and facts["attempt"] == 1
    assert facts["experiment"] == result.manifest["provenance"]


def test_results_manifest_is_the_stores_manifest(result, stores):
    assert result.manifest == json.loads((stores / "train" / "manifest.json").read_text())


# -- loading stores ----------------------------------------------------------------------


def test_store_made_by_the_process_executor_loads_like_a_serial_one(result, stores):
    other = metalab.run(train_experiment(), store=stores / "process", executor="process")
    assert {run.record.pid for run in other} != {os.getpid()}

    def comparable(results):
        return json.dumps([{**row, "duration": 0} for row in results.table()])

    assert comparable(metalab.load_results(stores / "process")) == comparable(result)


def test_loading_reads_without_writing(result, stores):
    def snapshot():
        return {
            path: (path.stat().st_size, path.stat().st_mtime_ns)
            for path in (stores / "train").rglob("*")
        }

    before = snapshot()
    loaded = metalab.load_results(stores / "train")
    loaded.table(), loaded.summary(), loaded[0].steps("loss"), loaded[0].artifact("config")
    assert snapshot() == before


def test_a_missing_store_is_refused_naming_the_path(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no store at"):
        metalab.load_results(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_killed_sweep_loads_its_complete_runs(killed):
    loaded = metalab.load_results(killed)
    assert 6 <= len(loaded) < 400
    assert len(loaded.successful) == len(loaded)
    assert all(row["v"] is not None for row in loaded.table())


def test_killed_sweep_summarises_what_is_complete(killed):
    loaded = metalab.load_results(killed)
    counts = [row["count"] for row in loaded.summary("sleep") if row["metric"] == "v"]
    assert counts == [len(loaded)]


def test_sweep_still_writing_loads_what_is_complete(tmp_path):
    proc = _sweep(tmp_path, tmp_path / "store", cases=200, sleep=0.02)
    try:
        _wait_for_records(proc, tmp_path / "store", 4)
        loaded = metalab.load_results(tmp_path / "store")
        assert proc.poll() is None, "the sweep was still running while we read"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert 4 <= len(loaded) < 400
    assert all(run.status == "success" and "v" in run.metrics for run in loaded)


def test_store_loads_without_the_experiments_code(foreign):
    assert importlib.util.find_spec("foreign_sweep") is None
    loaded = metalab.load_results(foreign)
    run = loaded.filter(x=2)[0]
    assert math.floor(run.metrics["v"]) == 2
    assert run.artifact("config") == {"x": 2}
    assert run.artifact("weights").tolist() == [0.0, 2.0, 4.0]
    assert run.steps("loss") == ([0, 1], [1.0, 0.5])
    assert loaded.manifest["operation"]["name"] == "foreign"


# -- loading on first use -----------------------------------------------------------------


@pytest.fixture
def read_counts(monkeypatch):
    """Count the reads of FileStore's records and manifests."""
    counts = {"records_ndjson": 0, "read_manifest": 0}
    for name in counts:
        real = getattr(FileStore, name)

        def counted(self, real=real, name=name):
            counts[name] += 1
            return real(self)

        monkeypatch.setattr(FileStore, name, counted)
    return counts


def test_results_from_a_store_read_nothing_until_used(stores, read_counts):
    loaded = metalab.Results.from_store(FileStore(stores / "train", create=False))
    assert read_counts == {"records_ndjson": 0, "read_manifest": 0}
    assert len(loaded) == 18
    loaded[0], list(loaded), loaded.table(), loaded.summary(), loaded.manifest, repr(loaded)
    assert read_counts == {"records_ndjson": 1, "read_manifest": 1}


def test_results_of_a_sweep_are_read_on_first_use_then_kept(tmp_path):
    exp = metalab.Experiment("v", "1", {}, draw, metalab.grid(x=[1, 2]), metalab.seeds(0))
    result = metalab.run(exp, store=tmp_path / "s")
    store = FileStore(tmp_path / "s", create=False)
    extra = next(iter(store.records()))
    store.put_record(dataclasses.replace(extra, run_id="added-after-run", case_index=9))
    assert len(result) == 3  # the record added before first use is there
    store.put_record(dataclasses.replace(extra, run_id="added-after-use", case_index=9))
    assert [run.run_id for run in result][-1] == "added-after-run"
    assert len(result.table()) == len(result.to_dataframe()) == 3


# -- the pyarrow DataFrame ------------------------------------------------------------------


def _row_by_row_frame(results, monkeypatch):
    """Return results.to_dataframe() as built without pyarrow."""
    with monkeypatch.context() as patch:
        patch.setattr(results_module, "optional", lambda name: None)
        return results.to_dataframe()


def _pyarrow_frame(results, monkeypatch):
    """Return results.to_dataframe(), failing if it is not built by pyarrow."""
    with monkeypatch.context() as patch:
        patch.setattr(results_module.Results, "_table", None)  # the row path needs it
        return results.to_dataframe()


def test_pyarrow_frame_equals_the_row_by_row_one(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    pandas = pytest.importorskip("pandas")
    grid = metalab.grid(x=[1, 2.5, 3], kind=["good", "bad"], flag=[True, False])
    exp = metalab.Experiment("mixed", "1", {}, mixed, grid, metalab.seeds(2, 3))
    metalab.run(exp, store=tmp_path / "s")
    fast = _pyarrow_frame(metalab.load_results(tmp_path / "s"), monkeypatch)
    slow = _row_by_row_frame(metalab.load_results(tmp_path / "s"), monkeypatch)
    pandas.testing.assert_frame_equal(fast, slow, check_exact=True)
    assert list(fast.columns) == [
        "run_id",
        "status",
        "flag",
        "kind",
        "x",
        "score",
        "ratio",
        "edge",
        "only_flagged",
        "replicate_index",
        "duration",
    ]
    assert fast["status"].tolist().count("failed") == 6
    assert fast["ratio"].isna().sum() == 12 + 6
    assert sorted(fast["edge"].dropna().unique().tolist()) == [-math.inf, 1.0, math.inf]


@pytest.mark.parametrize(
    "values",
    [[1, "a"], [True, 2], ["2026-01-01", "2026-01-02"], [[1, 2], [3]], [2**64, 1]],
    ids=["int-and-str", "bool-and-int", "dates", "lists", "beyond-int64"],
)
def test_columns_pyarrow_would_type_otherwise_give_the_row_by_row_frame(
    tmp_path, monkeypatch, values
):
    pytest.importorskip("pyarrow")
    pandas = pytest.importorskip("pandas")
    exp = metalab.Experiment(
        "v", "1", {}, draw, metalab.manual([{"p": v} for v in values]), metalab.seeds(0)
    )
    metalab.run(exp, store=tmp_path / "s")
    loaded = metalab.load_results(tmp_path / "s")
    frame = loaded.to_dataframe()
    pandas.testing.assert_frame_equal(
        frame, _row_by_row_frame(loaded, monkeypatch), check_exact=True
    )


def test_find_runs_parses_only_the_runs_a_prefix_names(tmp_path):
    from metalab.results import find_runs
    from metalab.store import open_store

    exp = metalab.Experiment(
        name="find",
        version="1",
        context={},
        operation=metalab.operation(name="find", version="1")(
            lambda params, capture: capture.metric("y", params["x"])
        ),
        params=metalab.grid(x=list(range(40))),
        seeds=metalab.seeds(base=1),
    )
    runs = list(metalab.run(exp, store=tmp_path / "s"))
    store = open_store(tmp_path / "s", create=False)
    target = runs[7]
    found, count = find_runs(store, target.run_id[:12])
    assert count == 40
    assert [(run.run_id, run.metrics, run.params) for run in found] == [
        (target.run_id, target.metrics, target.params)
    ]
    assert find_runs(store, target.run_id)[0][0].record == target.record
    # A one-digit prefix names several runs; a prefix of no run, none.
    first = target.run_id[0]
    assert {run.run_id for run in find_runs(store, first)[0]} == {
        run.run_id for run in runs if run.run_id.startswith(first)
    }
    assert find_runs(store, "zz") == ([], 40)
