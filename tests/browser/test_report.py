"""The report of a real sweep, opened from disk in headless Chromium: what a person sees."""

from __future__ import annotations

import pytest

import metalab
from metalab.report import write_report
from metalab.store import FileStore

pytest.importorskip("plotly", reason="the report needs plotly (pip install -e '.[report]')")
pytest.importorskip("matplotlib", reason="the sweep captures a figure (pip install -e '.[plot]')")

XSS = "<img src=x onerror=alert(1)>"
REPLICATES = 12  # 9 cases x 12 = 108 runs: more than the table's page of 100


@metalab.operation
def train(params, seeds, capture):
    if params["lr"] == 0.3 and seeds.replicate_index < 2:
        raise ValueError(f"lr={params['lr']} diverged")
    if params["width"] == 64 and seeds.replicate_index == 5:  # 3 runs; with lr's, 9 fail
        raise MemoryError("out of memory")
    rng = seeds.rng()
    for step in range(6):
        capture.metric("loss", params["lr"] * 10 / (step + 1) + rng.random(), step=step)
    capture.metric("acc", params["width"] / 100 + rng.random() / 10)
    if params["lr"] == 0.1 and params["width"] == 16 and seeds.replicate_index == 0:
        import matplotlib.figure

        figure = matplotlib.figure.Figure(figsize=(3, 2))
        figure.add_subplot().plot([0, 1, 2], [2, 1, 0.5])
        capture.figure("loss_curve", figure)


@metalab.operation
def hostile(params, seeds, capture):
    import matplotlib.figure

    capture.metric(XSS, params[XSS] + seeds.rng().random())
    capture.metric("y", float(params[XSS]), step=0)
    figure = matplotlib.figure.Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1])
    capture.figure(XSS, figure)


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    exp = metalab.Experiment(
        "train",
        "1",
        {},
        train,
        metalab.grid(lr=[0.1, 0.2, 0.3], width=[16, 32, 64]),
        metalab.seeds(base=0, replicates=REPLICATES),
    )
    results = metalab.run(exp, store=folder / "store", progress=False)
    return write_report(folder / "store", folder / "report.html"), results


@pytest.fixture
def opened(page, sweep_report):
    path, _ = sweep_report
    page.goto(path.as_uri())
    page.wait_for_function("window.metalabReady === true")
    return page


def rows(page) -> int:
    return page.locator("#runs-table tbody tr").count()


def column(page, name: str) -> list[str]:
    index = page.evaluate(
        "name => [...document.querySelectorAll('#runs-table thead th')]"
        ".findIndex(th => th.textContent === name)",
        name,
    )
    return page.eval_on_selector_all(
        "#runs-table tbody tr", f"trs => trs.map(tr => tr.children[{index}].textContent)"
    )


def traces(page, plot_id: str) -> tuple[int, int]:
    """Return (traces in the plot's data, trace groups Plotly drew in its SVG)."""
    data = page.evaluate(f"document.getElementById('{plot_id}').data.length")
    drawn = page.locator(f"#{plot_id} .scatterlayer .trace").count()
    return data, drawn


def test_overview_counts_and_provenance(opened, sweep_report, page_log, screenshot):
    _, results = sweep_report
    failed = len(results.failed)
    assert opened.text_content("#count-done b") == str(108 - failed)
    assert opened.text_content("#count-failed b") == str(failed) == "9"  # 6 + 3
    assert opened.text_content("#count-pending b") == "0"
    assert "train" in opened.text_content("#experiment")
    assert "GridSource" in opened.text_content("#experiment")
    provenance = opened.text_content("#provenance")
    assert "python" in provenance and "hosts" in provenance
    screenshot(opened, "report")
    page_log.assert_clean()
    assert all(url.startswith(("file://", "data:")) for url in page_log.requests)


def test_table_pages_sorts_and_filters(opened, page_log, screenshot):
    assert rows(opened) == 100
    assert opened.text_content("#runs-count") == "108 of 108 runs, 100 a page"
    opened.click("#page-next")
    assert rows(opened) == 8
    assert opened.text_content("#page-info") == "page 2 of 2"
    opened.click("#page-prev")

    first = column(opened, "acc")
    opened.click("#runs-table thead th:has-text('acc') button")
    ascending = [float(v) for v in column(opened, "acc") if v]
    assert ascending == sorted(ascending) and column(opened, "acc") != first
    opened.click("#runs-table thead th:has-text('acc') button")
    descending = [float(v) for v in column(opened, "acc") if v]
    assert descending == sorted(descending, reverse=True)

    opened.select_option("#filter-status", "failed")
    assert rows(opened) == 9
    assert set(column(opened, "status")) == {"failed"}
    opened.select_option("#filter-status", "")
    opened.select_option("select[data-param='lr']", "0.3")
    assert rows(opened) == 36 and set(column(opened, "lr")) == {"0.3"}
    opened.fill("input[data-metric='acc'][data-bound='min']", "0.5")
    kept = [float(v) for v in column(opened, "acc")]
    assert kept and min(kept) >= 0.5 and set(column(opened, "width")) == {"64"}
    assert rows(opened) == 12 - 2 - 1  # lr 0.3, width 64: 2 diverged, 1 out of memory
    screenshot(opened, "table-filtered")
    opened.click("#filter-reset")
    assert rows(opened) == 100
    page_log.assert_clean()


def test_each_plot_draws_its_traces(opened, sweep_report, page_log, screenshot):
    _, results = sweep_report
    plots = opened.evaluate(
        "[...document.querySelectorAll('#metric-plots .plot')]"
        ".map(d => [d.id, d.dataset.metric, d.dataset.param])"
    )
    assert sorted((metric, param) for _, metric, param in plots) == [
        ("acc", "lr"),
        ("acc", "width"),
        ("loss", "lr"),
        ("loss", "width"),
    ]
    for plot_id, _, _ in plots:
        assert traces(opened, plot_id) == (1, 1)
    # Split "acc by lr" by width: one line per width.
    plot_id = next(pid for pid, metric, param in plots if (metric, param) == ("acc", "lr"))
    opened.select_option(f".plot-card:has(#{plot_id}) select", "width")
    opened.wait_for_function(f"document.getElementById('{plot_id}').data.length === 3")
    assert traces(opened, plot_id) == (3, 3)

    # Per-step: 9 cases, each a band and a mean line; the runs' own series on demand.
    assert traces(opened, "step-plot-0") == (18, 18)
    opened.check("#steps .plot-card input[type=checkbox]")
    successful = len(results.successful)
    opened.wait_for_function(
        f"document.getElementById('step-plot-0').data.length === {18 + successful}"
    )
    assert traces(opened, "step-plot-0") == (18 + successful, 18 + successful)
    screenshot(opened, "plots")
    opened.uncheck("#steps .plot-card input[type=checkbox]")
    assert traces(opened, "step-plot-0") == (18, 18)
    page_log.assert_clean()


def test_failures_grouped_by_type_and_figure_shown(opened, page_log):
    groups = opened.eval_on_selector_all(
        ".failure", "divs => divs.map(d => [d.dataset.type, d.querySelector('h3').textContent])"
    )
    assert groups == [  # the largest group first
        ["ValueError", "6 \u00d7 ValueError"],
        ["MemoryError", "3 \u00d7 MemoryError"],
    ]
    assert opened.locator(".failure details pre").count() == 2
    assert "raise ValueError" in opened.text_content(".failure[data-type=ValueError] pre")
    images = opened.locator("#figure-list img")
    assert images.count() == 1
    assert opened.evaluate("document.querySelector('#figure-list img').naturalWidth") > 0
    assert "loss_curve" in opened.text_content("#figure-list figcaption")
    page_log.assert_clean()


def test_hostile_names_are_shown_as_text(page, page_log, screenshot, tmp_path):
    exp = metalab.Experiment(
        "xss", "1", {}, hostile, metalab.grid(**{XSS: [1, 2]}), metalab.seeds(0, 2)
    )
    metalab.run(exp, store=tmp_path / "store", progress=False)
    path = write_report(tmp_path / "store", tmp_path / "report.html")
    page.goto(path.as_uri())
    page.wait_for_function("window.metalabReady === true")
    headers = page.eval_on_selector_all(
        "#runs-table thead th", "ths => ths.map(t => t.textContent)"
    )
    assert XSS in headers and f"metric.{XSS}" in headers  # a metric named as a param
    assert XSS in page.text_content("#filters")
    assert XSS in page.text_content("#figure-list figcaption")
    axis = page.text_content("#metric-plot-0 .g-xtitle")
    assert axis == XSS
    assert page.locator("img[src='x']").count() == 0
    screenshot(page, "hostile")
    assert page_log.dialogs == []
    page_log.assert_clean()


def test_a_store_with_no_runs_opens_clean(page, page_log, tmp_path):
    grid = metalab.grid(lr=[0.1], width=[16])
    exp = metalab.Experiment("empty", "1", {}, train, grid, metalab.seeds(0))
    FileStore(tmp_path / "store").write_manifest(exp.manifest())
    page.goto(write_report(tmp_path / "store", tmp_path / "report.html").as_uri())
    page.wait_for_function("window.metalabReady === true")
    assert page.text_content("#count-pending b") == "1"
    assert rows(page) == 0 and page.text_content("#runs-count") == "0 of 0 runs"
    assert "No run failed." in page.text_content("#failures")
    page_log.assert_clean()


@metalab.operation
def many(params, capture):
    for name in ("m1", "m2", "m3", "m4"):
        capture.metric(name, sum(params.values()) + len(name))


def test_plots_beyond_the_first_twelve_draw_when_scrolled_to(page, page_log, tmp_path):
    grid = metalab.grid(p1=[1, 2], p2=[1, 2], p3=[1, 2], p4=[1, 2])  # 4 x 4 = 16 plots
    metalab.run(
        metalab.Experiment("many", "1", {}, many, grid, metalab.seeds(0)),
        store=tmp_path / "store",
        progress=False,
    )
    page.goto(write_report(tmp_path / "store", tmp_path / "report.html").as_uri())
    page.wait_for_function("window.metalabReady === true")
    drawn = "id => (document.getElementById(id).data || []).length"
    assert page.evaluate(drawn, "metric-plot-11") == 1
    assert page.evaluate(drawn, "metric-plot-15") == 0
    page.locator("#metric-plot-15").scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({drawn})('metric-plot-15') === 1")
    assert page.locator("#metric-plot-15 .scatterlayer .trace").count() == 1
    page_log.assert_clean()
