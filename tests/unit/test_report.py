"""metalab.report: what the page is given (aggregated, bounded), escaping, writing, the CLI."""

from __future__ import annotations

import json
import re

import pytest

import metalab
import metalab.report as report
from metalab.cli import main
from metalab.errors import InvalidArgumentError, InvalidTypeError, MetalabError
from metalab.store import FileStore, open_store

pytest.importorskip("plotly", reason="the report needs plotly (pip install -e '.[report]')")

XSS = "<img src=x onerror=alert(1)>"


@metalab.operation
def noisy(params, seeds, capture):
    if params["a"] == 3 and seeds.replicate_index == 0:
        raise ValueError(f"a={params['a']} is bad")
    if params["b"] == "z" and seeds.replicate_index == 1:
        raise RuntimeError("z broke")
    rng = seeds.rng()
    for step in range(4):
        capture.metric("loss", params["a"] / (step + 1) + rng.random(), step=step)
    capture.metric("acc", params["a"] * 0.1 + rng.random())


def sweep(folder, **overrides):
    spec = dict(
        name="rep",
        version="1",
        context={},
        operation=noisy,
        params=metalab.grid(a=[1, 2, 3], b=["x", "z"]),
        seeds=metalab.seeds(base=3, replicates=3),
    )
    spec.update(overrides)
    metalab.run(metalab.Experiment(**spec), store=folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("report") / "store")


@pytest.fixture(scope="module")
def data(store):
    opened = open_store(store, create=False)
    return report._report_data(opened, None)


def embedded(page: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="metalab-data">(.*?)</script>', page, re.S
    )
    assert match, "the page holds no data script"
    return json.loads(match.group(1))


def test_counts_done_failed_and_pending(data):
    # 18 runs: a=3 fails in replicate 0 (2 runs), b=z fails in replicate 1 (3 runs).
    assert data["counts"] == {"done": 13, "failed": 5, "pending": 0, "total": 18, "verified": 0}


def test_pending_counts_the_runs_the_manifest_plans_but_the_store_lacks(tmp_path):
    folder = sweep(tmp_path / "store", params=metalab.grid(a=[1, 2], b=["x"]))
    opened = open_store(folder, create=False)
    manifest = opened.read_manifest()
    opened.write_manifest({**manifest, "total_runs": manifest["total_runs"] + 5})
    counts = report._report_data(opened, None)["counts"]
    assert counts["pending"] == 5


def test_table_is_the_results_table(data, store):
    expected = metalab.load_results(store).table()
    table = data["table"]
    assert table["columns"] == [*expected[0], "verified"]
    assert table["rows"] == [[*row.values(), None] for row in expected]


def test_table_has_a_row_per_run_and_roles_per_column(data, store):
    table = data["table"]
    assert len(table["rows"]) == 18
    roles = dict(zip(table["columns"], table["roles"], strict=True))
    assert roles == {
        "run_id": "run_id",
        "status": "status",
        "a": "param",
        "b": "param",
        "loss": "metric",
        "acc": "metric",
        "replicate_index": "replicate_index",
        "duration": "duration",
        "verified": "verified",
    }
    assert [row[0] for row in table["rows"]] == [run.run_id for run in metalab.load_results(store)]


def test_verified_runs_say_so_in_the_table_and_are_counted(tmp_path):
    folder = sweep(tmp_path / "store", params=metalab.grid(a=[1, 2], b=["x"]))
    opened = open_store(folder, create=False)
    first, second = [run.run_id for run in metalab.load_results(folder).successful][:2]
    when = "2026-12-01T10:02:03.123Z"
    opened.put_verification(
        {
            "verified_at": when,
            "host": "lab-7",
            "runs": [
                {"run_id": first, "outcome": "identical"},
                {"run_id": second, "outcome": "differing", "reason": "code changed"},
            ],
        }
    )
    data = report._report_data(opened, None)
    assert data["counts"]["verified"] == 1
    verified = {row[0]: row[-1] for row in data["table"]["rows"]}
    assert verified[first] == "verified identical on 2026-12-01 10:02:03 UTC on lab-7"
    assert verified[second] == (
        "verified differing on 2026-12-01 10:02:03 UTC on lab-7 (code changed)"
    )


def test_nonfinite_metrics_are_shown_as_text_not_dropped():
    assert [report._table_cell(v) for v in (float("nan"), float("inf"), 1.5, [1, 2])] == [
        "nan",
        "inf",
        1.5,
        "[1, 2]",
    ]


def test_metric_plot_shows_the_summary_means_and_confidence_intervals(data, store):
    plot = next(p for p in data["metric_plots"] if (p["metric"], p["param"]) == ("acc", "a"))
    (trace,) = plot["figures"][""]["data"]
    rows = metalab.load_results(store).summary("a")
    summary = {row["a"]: row for row in rows if row["metric"] == "acc"}
    assert list(trace["x"]) == [1, 2, 3]
    assert list(trace["y"]) == pytest.approx([summary[a]["mean"] for a in (1, 2, 3)])
    assert list(trace["error_y"]["array"]) == pytest.approx(
        [summary[a]["ci95_high"] - summary[a]["mean"] for a in (1, 2, 3)]
    )
    assert list(trace["customdata"]) == [summary[a]["count"] for a in (1, 2, 3)]


def test_every_metric_is_plotted_against_every_param_and_split_by_the_other(data, store):
    pairs = {(p["metric"], p["param"]): p for p in data["metric_plots"]}
    assert set(pairs) == {("loss", "a"), ("loss", "b"), ("acc", "a"), ("acc", "b")}
    split = pairs[("acc", "a")]["figures"]
    assert set(split) == {"", "b"}
    assert [t["name"] for t in split["b"]["data"]] == ["b=x", "b=z"]
    summary = metalab.load_results(store).summary(["a", "b"])
    for trace, b in zip(split["b"]["data"], ["x", "z"], strict=True):
        rows = {r["a"]: r for r in summary if r["b"] == b and r["metric"] == "acc"}
        assert list(trace["y"]) == pytest.approx([rows[a]["mean"] for a in trace["x"]])
        # a=3, b=z has one successful run: no interval, an error bar of zero.
        assert list(trace["error_y"]["arrayminus"]) == pytest.approx(
            [rows[a]["mean"] - (rows[a]["ci95_low"] or rows[a]["mean"]) for a in trace["x"]]
        )
    # Text params are categories, in sorted order.
    by_b = pairs[("acc", "b")]["figures"][""]
    assert by_b["layout"]["xaxis"]["type"] == "category"
    assert list(by_b["data"][0]["x"]) == ["x", "z"]


def test_step_curves_are_the_mean_across_replicates_of_each_case(data, store):
    (plot,) = data["step_plots"]
    assert plot["name"] == "loss" and plot["by"] == "case"
    traces = plot["figure"]["data"]
    assert len(traces) == 2 * 6  # a band and a mean line per case
    runs = [r for r in metalab.load_results(store).successful if r.params == {"a": 1, "b": "x"}]
    mean = next(t for t in traces if t["name"] == "a=1, b=x" and t.get("mode") == "lines")
    expected = [sum(r.steps("loss")[1][s] for r in runs) / len(runs) for s in range(4)]
    assert list(mean["x"]) == [0, 1, 2, 3]
    assert list(mean["y"]) == pytest.approx(expected)
    assert len(plot["runs"]) == plot["runs_counted"] == 13


def test_step_runs_kept_per_curve_are_bounded(store, monkeypatch):
    monkeypatch.setattr(report, "_RUNS_PER_CURVE", 1)
    opened = open_store(store, create=False)
    plot = report._report_data(opened, None)["step_plots"][0]
    assert len(plot["runs"]) == 6  # one per case
    assert not plot["sampled"]


def test_step_files_read_per_curve_are_bounded(store, monkeypatch):
    monkeypatch.setattr(report, "_STEP_RUNS_PER_CURVE", 2)
    opened = open_store(store, create=False)
    plot = report._report_data(opened, None)["step_plots"][0]
    assert plot["sampled"] and plot["runs_counted"] == 6 * 2 - 1  # a=3, b=z has one run


def test_many_cases_are_grouped_by_a_param_with_few_values(tmp_path):
    folder = sweep(
        tmp_path / "t",
        params=metalab.grid(a=[1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12], b=["x", "y"]),
        seeds=metalab.seeds(base=1),
    )
    results = metalab.load_results(folder)
    records = [run.record.to_dict() for run in results.successful]
    by, curves = report._curves(records, ["a", "b"])
    assert by == "b"
    assert [label for label, _ in curves] == ["b=x", "b=y"]


def test_long_series_are_thinned_keeping_first_and_last_step():
    steps = report._evenly(list(range(2000)), report._MAX_POINTS)
    assert len(set(steps)) == report._MAX_POINTS
    assert steps[0] == 0 and steps[-1] == 1999
    assert report._evenly([1, 2], 5) == [1, 2]
    kept, means, _, _ = report._step_stats([(list(range(2000)), [1.0] * 2000)])
    assert len(kept) == report._MAX_POINTS and set(means) == {1.0}


def test_failures_are_grouped_by_type_with_one_traceback(data):
    groups = {group["type"]: group for group in data["failures"]}
    assert list(groups) == ["RuntimeError", "ValueError"]  # largest first
    assert groups["RuntimeError"]["count"] == 3
    assert groups["ValueError"]["messages"] == [("a=3 is bad", 2)]
    assert "raise ValueError" in groups["ValueError"]["traceback"]


@metalab.operation
def drawing(params, capture):
    import matplotlib.figure

    figure = matplotlib.figure.Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, params["i"]])
    capture.figure("line", figure)
    capture.metric("i", params["i"])


def test_figures_are_embedded_as_png_data_and_bounded(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "figs"
    exp = metalab.Experiment("figs", "1", {}, drawing, metalab.grid(i=[1, 2, 3]), metalab.seeds(0))
    metalab.run(exp, store=folder, progress=False)
    monkeypatch.setattr(report, "_MAX_FIGURES", 2)
    opened = open_store(folder, create=False)
    figures = report._report_data(opened, None)["figures"]
    assert len(figures["shown"]) == 2 and figures["left_out"] == 1
    assert figures["shown"][0]["src"].startswith("data:image/png;base64,iVBORw0KGgo")


def test_script_json_cannot_close_the_script_element():
    value = {"name": "</script><script>alert(1)</script><!-- & \u2028"}
    text = report._script_json(value)
    assert not set("<>&") & set(text)
    assert json.loads(text) == value


@metalab.operation
def hostile(params, capture):
    capture.metric(XSS, params[XSS] * 1.5)


def test_store_strings_reach_the_page_only_escaped(tmp_path):
    folder = tmp_path / "xss"
    exp = metalab.Experiment(
        "xss",
        "1",
        {},
        hostile,
        metalab.grid(**{XSS: [1, 2]}),
        metalab.seeds(0),
        metadata={"m": XSS},
    )
    metalab.run(exp, store=folder, progress=False)
    page = report.build_report(folder, title=XSS)
    assert "<title>&lt;img src=x onerror=alert(1)&gt;</title>" in page
    data = embedded(page)
    assert data["title"] == XSS
    assert XSS in data["table"]["columns"]
    # Plotly reads tags in its labels: they are given escaped, so they show as text.
    figure = data["metric_plots"][0]["figures"][""]
    assert figure["layout"]["xaxis"]["title"]["text"] == "&lt;img src=x onerror=alert(1)&gt;"
    outside_plotly = page.split("<script>\n", 1)[0] + page.rsplit("</script>\n<script>", 1)[1]
    assert XSS not in outside_plotly


def test_page_is_self_contained_with_a_strict_policy(store):
    page = report.build_report(store)
    assert (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:" in page
    )
    assert page.count("<script") == 3  # data, Plotly once, the page's own
    assert not re.search(r"""<(?:script|link|img|iframe)[^>]*(?:src|href)=["']?https?:""", page)
    assert embedded(page)["title"] == "rep 1"


def test_write_report_replaces_a_report_but_no_other_file(store, tmp_path):
    path = report.write_report(store, tmp_path / "out" / "r.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert report.write_report(store, path) == path
    other = tmp_path / "notes.html"
    other.write_text("my notes")
    with pytest.raises(InvalidArgumentError, match="not a metalab report"):
        report.write_report(store, other)
    assert other.read_text() == "my notes"
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        report.write_report(store, tmp_path)


def test_build_report_refuses_a_missing_store(tmp_path):
    with pytest.raises(MetalabError):
        report.build_report(tmp_path / "none")


def test_cli_writes_the_report(store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(store)]) == 0
    assert "wrote report.html" in capsys.readouterr().out
    assert embedded((tmp_path / "report.html").read_text(encoding="utf-8"))["counts"]["done"] == 13
    assert main(["report", str(store), "-o", "other.html"]) == 0
    assert (tmp_path / "other.html").is_file()


def test_cli_refuses_a_bad_store_and_a_path_inside_it(store, tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "error: metalab report" in capsys.readouterr().err
    assert main(["report", str(store), "-o", str(store / "r.html")]) == 2
    assert "inside the store" in capsys.readouterr().err
    assert not (store / "r.html").exists()


def test_build_report_refuses_a_title_that_is_not_text(store):
    with pytest.raises(InvalidTypeError, match="title"):
        report.build_report(store, title=3)


def test_cli_reports_a_postgres_store(postgres_dsn, postgres_schema, tmp_path, capsys):
    dsn = f"{postgres_dsn}?schema={postgres_schema}&artifacts={tmp_path}/artifacts"
    sweep(dsn)
    out = tmp_path / "pg.html"
    assert main(["report", dsn, "-o", str(out)]) == 0, capsys.readouterr().err
    data = embedded(out.read_text(encoding="utf-8"))
    assert data["counts"] == {"done": 13, "failed": 5, "pending": 0, "total": 18, "verified": 0}
    assert data["step_plots"][0]["runs_counted"] == 13


def test_a_store_with_no_runs_yet_reports_them_pending(tmp_path):
    grid = metalab.grid(a=[1, 2], b=["x"])
    exp = metalab.Experiment("empty", "1", {}, noisy, grid, metalab.seeds(0))
    FileStore(tmp_path / "store").write_manifest(exp.manifest())
    data = embedded(report.build_report(tmp_path / "store"))
    assert data["counts"] == {"done": 0, "failed": 0, "pending": 2, "total": 2, "verified": 0}
    assert data["table"]["rows"] == []
    assert data["metric_plots"] == data["step_plots"] == data["failures"] == []
