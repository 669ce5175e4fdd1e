"""Derived metrics on real stores: computed once, again on a change, failures, bad input.

Every store here is made by a real sweep (``metalab.run`` in this process); the
derived functions are ordinary functions of a Run.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import metalab
from metalab.derived import (
    PREFIX,
    DerivedMetricWarning,
    current_derived,
    resolve_derived,
)
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.store import FileStore, PackStore, StoreWarning, pack_store, unpack_store


@metalab.operation(name="fit", version="1")
def fit(params, seeds, capture):
    x = params["x"]
    if x == 4:
        raise RuntimeError("diverged")
    capture.metric("train", x * 2 + seeds.replicate_index / 10)
    capture.metric("test", x + seeds.replicate_index / 10)
    for step in range(3):
        capture.metric("loss", 1.0 / (step + 1 + x), step=step)


def experiment() -> metalab.Experiment:
    return metalab.Experiment(
        "fit", "1", {}, fit, metalab.grid(x=[1, 2, 3, 4]), metalab.seeds(base=1, replicates=2)
    )


@pytest.fixture
def store(tmp_path) -> Path:
    """A store of 8 runs: x in 1..4, two replicates each; the two runs of x=4 failed."""
    path = tmp_path / "runs"
    metalab.run(experiment(), store=path)
    return path


class Calls:
    """A derived function that counts the runs it was called on."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []

    def gap(self, run):
        self.run_ids.append(run.run_id)
        return {"gap": run.metrics["train"] - run.metrics["test"]}


def gap(run):
    return {"gap": run.metrics["train"] - run.metrics["test"]}


def test_values_show_in_run_table_summary_and_dataframe(store):
    result = metalab.load_results(store).compute_derived(gap)
    done = result.successful
    assert [run.derived for run in done] == [
        {"gap": run.metrics["train"] - run.metrics["test"]} for run in done
    ]
    assert all(run.derived == {} for run in result.failed)
    assert all("derived.gap" not in run.metrics for run in result)  # captured ones only

    row = result.table()[0]
    assert list(row) == [
        "run_id",
        "status",
        "x",
        "train",
        "test",
        "loss",
        "derived.gap",
        "replicate_index",
        "duration",
    ]
    assert row["derived.gap"] == pytest.approx(1.0)
    summary = [r for r in result.summary("x") if r["x"] == 3]
    assert [r["metric"] for r in summary] == ["train", "test", "loss", "derived.gap"]
    assert summary[3]["mean"] == pytest.approx(3.0) and summary[3]["count"] == 2

    loaded = metalab.load_results(store)  # a later load reads them from the store
    frame = loaded.to_dataframe()
    assert list(frame["derived.gap"])[:6] == pytest.approx([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    assert frame["derived.gap"].isna().sum() == 2  # the failed runs
    assert frame.equals(metalab.results.Results(list(loaded)).to_dataframe())


def test_computed_once_then_nothing_to_do(store):
    calls = Calls()
    metalab.load_results(store).compute_derived(calls.gap)
    assert len(calls.run_ids) == 6  # the successful runs only
    again = metalab.load_results(store).compute_derived(calls.gap)
    assert len(calls.run_ids) == 6
    assert again[0].derived == {"gap": pytest.approx(1.0)}
    [written] = (store / "derived").iterdir()
    assert len(written.read_bytes().splitlines()) == 6


def test_run_computes_after_the_sweep_and_a_resume_computes_only_new_runs(tmp_path):
    calls = Calls()
    small = metalab.Experiment("fit", "1", {}, fit, metalab.grid(x=[1, 2]), metalab.seeds(1, 2))
    result = metalab.run(small, store=tmp_path / "s", derived_metrics=[calls.gap])
    assert len(calls.run_ids) == 4
    assert result.table()[0]["derived.gap"] == pytest.approx(1.0)
    bigger = metalab.Experiment("fit", "1", {}, fit, metalab.grid(x=[1, 2, 3]), metalab.seeds(1, 2))
    result = metalab.run(bigger, store=tmp_path / "s", derived_metrics=[calls.gap])
    assert len(calls.run_ids) == 6  # only the two new runs
    assert [row["derived.gap"] for row in result.table()] == pytest.approx([1, 1, 2, 2, 3, 3])


def test_a_changed_function_computes_again_and_hides_old_values(store):
    def score(run):
        return {"score": 1}

    metalab.load_results(store).compute_derived(score)
    first = score

    def score(run):
        """A docstring alone would change nothing; the body does."""
        return {"score": 2}

    changed = metalab.load_results(store).compute_derived(score)
    assert {run.derived["score"] for run in changed.successful} == {2}
    assert {row["derived.score"] for row in metalab.load_results(store).successful.table()} == {2}
    assert len(list((store / "derived").iterdir())) == 2  # both codes kept

    # Halfway through a third code, the runs it has not reached show nothing, not
    # the values of an older code.
    def score(run):
        return {"score": 3}

    metalab.load_results(store).filter(x=1).compute_derived(score)
    shown = {run.params["x"]: run.derived for run in metalab.load_results(store).successful}
    assert shown == {1: {"score": 3}, 2: {}, 3: {}}

    back = metalab.load_results(store).compute_derived(first)  # back to the first code
    assert {run.derived["score"] for run in back.successful} == {1}
    assert {run.derived["score"] for run in metalab.load_results(store).successful} == {1}


def test_comments_and_docstrings_do_not_change_the_code_hash():
    def metric(run):
        return {"a": 1}

    plain = resolve_derived("t", [metric])[0].code_sha256

    def metric(run):
        """Documented now."""
        # and commented
        return {"a": 1}

    assert resolve_derived("t", [metric])[0].code_sha256 == plain


def test_a_function_that_raises_marks_those_runs_failed_and_keeps_the_others(store):
    def fragile(run):
        if run.params["x"] == 2:
            raise ZeroDivisionError("x=2 divides by nothing")
        return {"half": run.params["x"] / 2}

    with pytest.warns(DerivedMetricWarning, match=r"'fragile' raised on 2 run\(s\)"):
        result = metalab.load_results(store).compute_derived(fragile, gap)
    by_x = {run.params["x"]: run for run in result.successful}
    error = by_x[2].derived_errors["fragile"]
    assert error["type"] == "ZeroDivisionError" and "x=2 divides" in error["message"]
    assert "raise ZeroDivisionError" in error["traceback"]
    assert by_x[2].derived == {"gap": pytest.approx(2.0)}  # the other function still ran
    assert by_x[3].derived == {"gap": pytest.approx(3.0), "half": 1.5}
    assert by_x[3].derived_errors == {}

    loaded = {run.params["x"]: run for run in metalab.load_results(store).successful}
    assert loaded[2].derived_errors["fragile"] == error
    assert loaded[3].derived == {"gap": pytest.approx(3.0), "half": 1.5}
    # The failure is stored: the same code does not try that run again.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DerivedMetricWarning)
        metalab.load_results(store).compute_derived(fragile)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (0.5, r"returned 0\.5 \(float\) for run [0-9a-f]{32}; it must return a dict"),
        ([("a", 1)], r"returned \[\('a', 1\)\] \(list\).*e\.g\. return \{'gap': 0\.25\}"),
        ({"a": "0.5"}, r"returned 'a': '0\.5' \(str\).*convert it, e\.g\. float\(value\)"),
        ({"a": None}, r"returned 'a': None \(NoneType\)"),
        ({"a": [1, 2]}, r"returned 'a': \[1, 2\] \(list\)"),
        ({1: 2.0}, r"returned the key 1 .*non-empty str"),
    ],
)
def test_a_result_that_is_not_a_dict_of_numbers_is_refused_by_name(store, returned, message):
    seen = []

    def bad(run):
        seen.append(run.run_id)
        return {"ok": 1} if len(seen) < 3 else returned

    with pytest.raises(InvalidTypeError, match=message) as caught:
        metalab.load_results(store).compute_derived(bad)
    assert "'bad'" in str(caught.value) and seen[-1] in str(caught.value)
    # The two values computed before the bad one are kept.
    kept = [run for run in metalab.load_results(store) if run.derived]
    assert [run.run_id for run in kept] == seen[:2]


def test_numpy_numbers_are_stored_as_plain_numbers(store):
    def stats(run):
        values = np.array(run.steps("loss")[1])
        return {"mean": values.mean(), "n": np.int64(values.size), "low": values.min() < 0.2}

    metalab.load_results(store).compute_derived(stats)
    derived = metalab.load_results(store)[0].derived
    assert derived == {"mean": pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3), "n": 3, "low": False}
    assert [type(derived[k]) for k in ("mean", "n", "low")] == [float, int, bool]


def test_a_metric_name_given_by_two_functions_is_refused(store):
    def other(run):
        return {"gap": 0.0}

    metalab.load_results(store).compute_derived(gap)
    with pytest.raises(InvalidArgumentError, match=r"'other' returned 'gap'.*'gap' already"):
        metalab.load_results(store).compute_derived(other)


def test_a_rerun_attempt_shows_no_derived_values_until_computed_again(store):
    metalab.load_results(store).compute_derived(gap)
    metalab.run(experiment(), store=store, resume=False, overwrite=True)
    assert all(run.derived == {} for run in metalab.load_results(store))
    calls = Calls()
    result = metalab.load_results(store).compute_derived(calls.gap)
    assert len(calls.run_ids) == 6
    assert result[0].derived == {"gap": pytest.approx(1.0)}


def test_functions_named_by_module_path(store, tmp_path, monkeypatch):
    (tmp_path / "mylab_metrics.py").write_text(
        "def ratio(run):\n    return {'ratio': run.metrics['train'] / run.metrics['test']}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = metalab.load_results(store).compute_derived("mylab_metrics:ratio")
    assert result[0].derived == {"ratio": pytest.approx(2.0)}
    sys.modules.pop("mylab_metrics", None)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("mylab.metrics.gap", InvalidArgumentError, r"must be 'package\.module:function'"),
        ("no_such_module_x:gap", InvalidArgumentError, r"cannot import 'no_such_module_x'"),
        ("json:no_such_name", InvalidArgumentError, r"'json' has no 'no_such_name'"),
        ("json:__doc__", InvalidTypeError, r"is a str, not a function"),
        (42, InvalidTypeError, r"derived metric 42 is a int, not a function"),
        (lambda run: {}, InvalidArgumentError, r"no name of its own .*def gap\(run\)"),
        (lambda: {}, InvalidArgumentError, r"no name of its own"),
    ],
)
def test_bad_function_specs_are_refused_before_any_work(tmp_path, spec, error, message):
    with pytest.raises(error, match=message):
        metalab.run(experiment(), store=tmp_path / "s", derived_metrics=[spec])
    assert not (tmp_path / "s").exists()  # refused before the sweep


def test_a_function_that_takes_no_run_or_two_names_alike_are_refused():
    def nothing():
        return {}

    with pytest.raises(InvalidArgumentError, match=r"'nothing' cannot be called with one arg"):
        resolve_derived("run", [nothing])

    def twin(run):
        return {}

    first = twin

    def twin(run):
        return {"b": 1}

    with pytest.raises(InvalidArgumentError, match=r"two derived-metric functions are named"):
        resolve_derived("run", [first, twin])
    assert len(resolve_derived("run", [twin, twin])) == 1


def test_results_not_from_a_store_compute_into_their_runs_stores(store):
    subset = metalab.load_results(store).filter(x=2)
    subset.compute_derived(gap)
    assert [run.derived for run in subset] == [{"gap": pytest.approx(2.0)}] * 2
    shown = {run.params["x"]: run.derived for run in metalab.load_results(store).successful}
    assert shown[1] == {} and shown[2] == {"gap": pytest.approx(2.0)}


def test_plot_draws_a_derived_metric(store):
    result = metalab.load_results(store).compute_derived(gap)
    figure = result.plot("x", "derived.gap")
    [line] = figure.axes[0].get_lines()
    assert list(line.get_ydata()) == pytest.approx([1.0, 2.0, 3.0])
    assert figure.axes[0].get_ylabel() == "derived.gap"


def test_report_shows_derived_columns_and_plots(store):
    metalab.load_results(store).compute_derived(gap)
    from metalab.report import _report_data

    data = _report_data(FileStore(store, create=False), None)
    assert "derived.gap" in data["table"]["columns"]
    at = data["table"]["columns"].index("derived.gap")
    assert [row[at] for row in data["table"]["rows"]][:2] == pytest.approx([1.0, 1.0])
    assert {plot["metric"] for plot in data["metric_plots"]} == {
        "train",
        "test",
        "loss",
        "derived.gap",
    }


def test_a_pack_holds_derived_values_and_refuses_to_compute(store, tmp_path):
    metalab.load_results(store).compute_derived(gap)
    pack = tmp_path / "fit.metalab.zip"
    pack_store(store, pack)
    packed = metalab.load_results(pack)
    assert packed[0].derived == {"gap": pytest.approx(1.0)}
    assert PackStore(pack).derived_entries() == FileStore(store).derived_entries()
    back = unpack_store(pack, tmp_path / "back")
    assert back.derived_entries() == FileStore(store).derived_entries()
    calls = Calls()

    def other(run):
        calls.gap(run)
        return {"other": 1}

    with pytest.raises(InvalidArgumentError, match=r"a pack is read-only"):
        packed.compute_derived(other)
    assert calls.run_ids == []  # refused before computing anything


def test_copy_takes_derived_values_along(store, tmp_path):
    metalab.load_results(store).compute_derived(gap)
    report = FileStore(store).copy_to(tmp_path / "copy")
    assert (report.derived, report.derived_copied) == (6, 6)
    assert "6 of 6 derived-metric entries" in report.summary()
    assert metalab.load_results(tmp_path / "copy")[0].derived == {"gap": pytest.approx(1.0)}
    again = FileStore(store).copy_to(tmp_path / "copy")
    assert again.derived_copied == 0


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(store):
    metalab.load_results(store).compute_derived(gap)
    [path] = (store / "derived").iterdir()
    with path.open("ab") as file:
        file.write(b'{"function": "gap", "code_sha')  # a crash mid-append
    assert len(FileStore(store).derived_entries()) == 6
    metalab.run(experiment(), store=store, resume=False, overwrite=True)
    with pytest.warns(StoreWarning, match="not a derived-metric entry"):
        result = metalab.load_results(store).compute_derived(gap)
        assert len(FileStore(store).derived_entries()) == 12
    assert result[0].derived == {"gap": pytest.approx(1.0)}


def test_current_derived_keeps_the_latest_code_and_skips_malformed_entries():
    def entry(code, when, value, attempt=1, run="r1"):
        return {
            "function": "f",
            "code_sha256": code,
            "run_id": run,
            "attempt": attempt,
            "computed_at": when,
            "metrics": {"m": value},
        }

    entries = [
        entry("b", "2026-01-02", 2),
        entry("a", "2026-01-01", 1),
        entry("a", "2026-01-01", 0, run="r2"),
        entry("b", "2026-01-03", 3),
        entry("b", "2026-01-04", 4, attempt=1, run="r2"),
        {"function": "f", "metrics": {}},
        ["not", "an", "entry"],
    ]
    with pytest.warns(StoreWarning, match="2 derived-metric entries of the store skipped"):
        current = current_derived(entries, {"r1": 1, "r2": 2})
    assert {run: entries["f"]["metrics"] for run, entries in current.items()} == {"r1": {"m": 3}}


def test_show_and_table_on_the_command_line_mark_derived_values(store, capsys):
    def fragile(run):
        if run.params["x"] == 3:
            raise KeyError("no such thing")
        return {"double": 2 * run.params["x"]}

    with pytest.warns(DerivedMetricWarning):
        result = metalab.load_results(store).compute_derived(gap, fragile)
    from metalab import cli

    assert cli.main(["table", str(store)]) == 0
    out, err = capsys.readouterr()
    header = out.splitlines()[0].split()
    # Functions in name order: fragile's metrics, then gap's.
    assert header[-4:] == ["derived.double", "derived.gap", "replicate_index", "duration"]
    assert "derived metric 'fragile' failed on 2 run(s)" in err
    failed_run = next(run for run in result if run.params["x"] == 3)
    assert cli.main(["show", str(store), failed_run.run_id[:12]]) == 0
    shown = capsys.readouterr().out
    assert "derived metrics" in shown and "fragile failed" in shown and "KeyError" in shown
    assert cli.main(["table", str(store), "--group-by", "x", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["metric"] for row in rows if row["x"] == 1] == [
        "train",
        "test",
        "loss",
        f"{PREFIX}double",
        f"{PREFIX}gap",
    ]
