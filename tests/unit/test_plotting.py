"""Plots drawn from a real sweep: axes, lines, bands, labels and the values drawn."""

from __future__ import annotations

import statistics
import sys

import pytest

import metalab
from metalab.errors import InvalidArgumentError, MissingDependencyError

pytest.importorskip("matplotlib")


@metalab.operation(name="fit", version="1")
def fit(params, seeds, capture):
    lr, opt = params["lr"], params["opt"]
    if lr == 0.1 and opt == "adam" and seeds.replicate_index == 0:
        raise ValueError("diverged")
    noise = seeds.rng().random() / 10
    capture.metric("acc", lr * 5 + (0.2 if opt == "adam" else 0.0) + noise)
    for step in range(5):
        capture.metric("loss", 1.0 / (step + 1) + noise + (0.5 if opt == "sgd" else 0.0), step=step)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """18 runs: lr 0.1, 0.01, 0.001 (given out of order) x opt x 3 replicates; one fails."""
    exp = metalab.Experiment(
        name="fit",
        version="1",
        context={},
        operation=fit,
        params=metalab.grid(lr=[0.1, 0.01, 0.001], opt=["sgd", "adam"]),
        seeds=metalab.seeds(base=11, replicates=3),
    )
    return metalab.run(exp, store=tmp_path_factory.mktemp("fit") / "store")


def _lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_plot_draws_one_line_and_band_per_hue_value(result):
    ax = result.plot(x="lr", y="acc", hue="opt").axes[0]
    assert sorted(_lines_by_label(ax)) == ["adam", "sgd"]
    assert len(ax.collections) == 2, "one confidence band per line"


def test_plot_labels_axes_and_legend(result):
    ax = result.plot(x="lr", y="acc", hue="opt").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("lr", "acc")
    assert ax.get_legend().get_title().get_text() == "opt"


def test_plot_line_goes_through_replicate_means_in_x_order(result):
    line = _lines_by_label(result.plot(x="lr", y="acc", hue="opt").axes[0])["sgd"]
    means = [
        statistics.mean(run.metrics["acc"] for run in result.filter(lr=lr, opt="sgd"))
        for lr in (0.001, 0.01, 0.1)
    ]
    assert list(line.get_xdata()) == [0.001, 0.01, 0.1]
    assert list(line.get_ydata()) == pytest.approx(means)


def test_plot_band_spans_the_summary_interval(result):
    ax = result.plot(x="lr", y="acc", hue="opt").axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    band = ax.collections[labels.index("sgd")].get_paths()[0].vertices[:, 1]
    rows = [r for r in result.summary(["opt", "lr"]) if r["opt"] == "sgd" and r["metric"] == "acc"]
    assert band.min() == pytest.approx(min(r["ci95_low"] for r in rows))
    assert band.max() == pytest.approx(max(r["ci95_high"] for r in rows))


def test_plot_uses_successful_runs_only(result):
    line = _lines_by_label(result.plot(x="lr", y="acc", hue="opt").axes[0])["adam"]
    runs = result.filter(lr=0.1, opt="adam").successful
    assert len(runs) == 2
    assert line.get_ydata()[-1] == pytest.approx(statistics.mean(r.metrics["acc"] for r in runs))


def test_plot_without_hue_draws_one_line_and_no_legend(result):
    ax = result.plot(x="lr", y="acc").axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["acc"]
    assert ax.get_legend() is None


def test_plot_of_a_string_param_places_values_as_ticks(result):
    ax = result.plot(x="opt", y="acc").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adam", "sgd"]
    assert list(ax.get_lines()[0].get_xdata()) == [0, 1]


def test_plot_draws_on_a_given_axes_and_returns_its_figure(result):
    from matplotlib.figure import Figure

    figure = Figure()
    ax = figure.add_subplot()
    assert result.plot(x="lr", y="acc", ax=ax) is figure
    assert len(ax.get_lines()) == 1


def test_plot_of_an_unknown_metric_lists_the_metrics(result):
    with pytest.raises(InvalidArgumentError, match=r"y='accuracy'.*acc, loss"):
        result.plot(x="lr", y="accuracy")


def test_plot_of_an_unknown_param_lists_the_params(result):
    with pytest.raises(InvalidArgumentError, match=r"x='rate'.*lr, opt"):
        result.plot(x="rate", y="acc")


def test_plotted_figure_saves_as_png(result, tmp_path):
    result.plot(x="lr", y="acc", hue="opt").savefig(tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_names_the_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingDependencyError, match=r"metalab\[plot\]"):
        result.plot(x="lr", y="acc")


def test_plot_steps_draws_the_mean_curve_per_hue(result):
    ax = result.plot_steps("loss", hue="opt").axes[0]
    line = _lines_by_label(ax)["sgd"]
    curves = [run.steps("loss")[1] for run in result.filter(opt="sgd")]
    assert list(line.get_xdata()) == [0, 1, 2, 3, 4]
    assert list(line.get_ydata()) == pytest.approx(
        [statistics.mean(c) for c in zip(*curves, strict=True)]
    )
    assert len(ax.collections) == 2


def test_plot_steps_labels_step_and_series(result):
    ax = result.plot_steps("loss", hue="opt").axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "loss")
    assert ax.get_legend().get_title().get_text() == "opt"


def test_plot_steps_of_an_unknown_series_lists_the_series(result):
    with pytest.raises(InvalidArgumentError, match=r"'acc'.*are: loss"):
        result.plot_steps("acc")


def test_run_plot_steps_draws_its_series_as_logged(result):
    run = result[0]
    ax = run.plot_steps("loss").axes[0]
    (line,) = ax.get_lines()
    assert (list(line.get_xdata()), list(line.get_ydata())) == run.steps("loss")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("step", "loss")
    assert run.run_id in ax.get_title()
