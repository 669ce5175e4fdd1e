"""Plots of results: a metric against a param, per-step curves. Imports results and below.

Imports errors, _optional, record and results. :meth:`Results.plot
<metalab.results.Results.plot>`, :meth:`Results.plot_steps
<metalab.results.Results.plot_steps>` and :meth:`Run.plot_steps
<metalab.results.Run.plot_steps>` import this module when called, and call the
functions here. matplotlib is imported when a plot is drawn
(``pip install 'metalab[plot]'``).

Figures are made with ``matplotlib.figure.Figure``, not pyplot: nothing joins pyplot's
global list of open figures, so plotting in a loop leaks nothing and no display is
needed. Save one with ``fig.savefig("plot.png")``; in a notebook, a figure returned as a
cell's value is shown. Pass ``ax=`` to draw into a figure of your own.

Bands are 95% confidence intervals of the mean across runs (Student t, as in
:meth:`Results.summary <metalab.results.Results.summary>`); only successful runs are
drawn, and NaN or infinite values are left out.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from metalab._optional import require
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import SUCCESS
from metalab.results import Results, Run, _band, _describe

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_metric", "plot_run_steps", "plot_steps"]

# Band opacity: light enough that overlapping bands of several hues stay readable.
_BAND_ALPHA = 0.2


def plot_metric(
    results: Results, x: str, y: str, hue: str | None = None, ax: Axes | None = None
) -> Figure:
    """Draw metric ``y`` against param ``x``: the mean across replicates, with a 95% CI band.

    ``y`` may be a derived metric, named ``derived.<metric>``.

    Points are sorted by ``x`` (numbers by value; other values, such as strings, are
    placed evenly in sorted order with their values as tick labels). One line per
    value of param ``hue``, labelled with it, under a legend titled ``hue``. A point
    from one finite value has a band of zero width. Axis labels are ``x`` and ``y``.
    Returns the figure drawn on (``ax``'s figure when ``ax`` is given).
    """
    where = f"plot(x={x!r}, y={y!r}, hue={hue!r})"
    runs = [run for run in results if run.status == SUCCESS]
    # Derived metrics too, as derived.<metric> (Results.compute_derived).
    measured = {id(run): run._measured() for run in runs}
    _check_name(where, "x", x, _names(run.params for run in runs), "param")
    _check_name(where, "y", y, _names(measured.values()), "metric")
    if hue is not None:
        _check_name(where, "hue", hue, _names(run.params for run in runs), "param")
    figure, ax = _figure_and_axes(where, ax)
    points = [run for run in runs if x in run.params and y in measured[id(run)]]
    x_values = _sorted_unique(run.params[x] for run in points)
    numeric = all(_is_number(value) for value in x_values)
    position = {_key(v): (v if numeric else i) for i, v in enumerate(x_values)}
    for hue_value, members in _by_hue(points, hue):
        by_x: dict[str, list[Any]] = {}
        for run in members:
            by_x.setdefault(_key(run.params[x]), []).append(measured[id(run)][y])
        xs, means, lows, highs = [], [], [], []
        for value in x_values:
            stats = _describe(by_x.get(_key(value), []))
            if stats["mean"] is None:  # no run of this hue at this x, or none finite
                continue
            xs.append(position[_key(value)])
            means.append(stats["mean"])
            lows.append(stats["mean"] if stats["ci95_low"] is None else stats["ci95_low"])
            highs.append(stats["mean"] if stats["ci95_high"] is None else stats["ci95_high"])
        label = y if hue is None else _label(hue_value)
        _line_with_band(ax, xs, means, lows, highs, label, marker="o")
    if not numeric:
        ax.set_xticks(range(len(x_values)), [_label(value) for value in x_values])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hue is not None:
        ax.legend(title=hue)
    return figure


def plot_steps(
    results: Results, name: str, hue: str | None = None, ax: Axes | None = None
) -> Figure:
    """Draw the per-step series ``name``: at each step, the mean across runs and a 95% band.

    Runs without that series are left out. Where a run logged one step more than
    once, its last value counts. One curve per value of param ``hue``, labelled with
    it, under a legend titled ``hue``. Axis labels are ``step`` and ``name``. Returns the
    figure drawn on (``ax``'s figure when ``ax`` is given).
    """
    where = f"plot_steps({name!r}, hue={hue!r})"
    runs = [run for run in results if run.status == SUCCESS]
    if hue is not None:
        _check_name(where, "hue", hue, _names(run.params for run in runs), "param")
    series: list[tuple[Run, dict[int, float]]] = []
    known: set[str] = set()
    for run in runs:
        every = run._step_series()
        known.update(every)
        if name in every:
            steps, values = every[name]
            series.append((run, dict(zip(steps, values, strict=True))))
    if not series:
        raise InvalidArgumentError(
            f"{where}: no successful run has a per-step series {name!r}; the series "
            f"logged with capture.metric(name, value, step=...) are: "
            f"{', '.join(sorted(known)) or 'none'}."
        )
    figure, ax = _figure_and_axes(where, ax)
    by_run = {id(run): values for run, values in series}
    for hue_value, members in _by_hue([run for run, _ in series], hue):
        curves = [by_run[id(run)] for run in members]
        xs, means, lows, highs = _band(
            (step, [curve[step] for curve in curves if step in curve])
            for step in sorted({step for curve in curves for step in curve})
        )
        label = name if hue is None else _label(hue_value)
        _line_with_band(ax, xs, means, lows, highs, label)
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    if hue is not None:
        ax.legend(title=hue)
    return figure


def plot_run_steps(run: Run, name: str, ax: Axes | None = None) -> Figure:
    """Draw the per-step series ``name`` of one run, as logged; title: the run ID.

    Axis labels are ``step`` and ``name``. Returns the figure drawn on.
    """
    steps, values = run.steps(name)
    figure, ax = _figure_and_axes(f"Run({run.run_id}).plot_steps({name!r})", ax)
    ax.plot(steps, values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(name)
    ax.set_title(f"run {run.run_id}")
    return figure


def _figure_and_axes(where: str, ax: Any) -> tuple[Any, Any]:
    """Return (figure, axes): ``ax`` and its figure, or a new figure with one axes."""
    matplotlib_figure = require("matplotlib.figure", feature=where, extra="plot")
    if ax is None:
        figure = matplotlib_figure.Figure(layout="constrained")
        return figure, figure.add_subplot()
    matplotlib_axes = require("matplotlib.axes", feature=where, extra="plot")
    if not isinstance(ax, matplotlib_axes.Axes):
        raise InvalidTypeError(
            f"{where}(ax={ax!r:.80}): must be a matplotlib Axes, got {type(ax).__name__}; "
            f"pass fig.add_subplot() or one of plt.subplots()'s axes, or None."
        )
    return ax.figure, ax


def _line_with_band(
    ax: Any,
    xs: list[Any],
    means: list[float],
    lows: list[float],
    highs: list[float],
    label: str,
    **style: Any,
) -> None:
    (line,) = ax.plot(xs, means, label=label, **style)
    ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=_BAND_ALPHA, linewidth=0)


def _by_hue(runs: list[Run], hue: str | None) -> list[tuple[Any, list[Run]]]:
    """Split ``runs`` by the value of param ``hue`` (sorted); all together when None."""
    if hue is None:
        return [(None, runs)]
    groups: dict[str, tuple[Any, list[Run]]] = {}
    for run in runs:
        value = run.params.get(hue)
        groups.setdefault(_key(value), (value, []))[1].append(run)
    return [groups[_key(value)] for value in _sorted_unique(v for v, _ in groups.values())]


def _names(mappings: Any) -> list[str]:
    return list(dict.fromkeys(name for mapping in mappings for name in mapping))


def _check_name(where: str, arg: str, name: Any, known: list[str], what: str) -> None:
    if not isinstance(name, str):
        raise InvalidTypeError(
            f"{where}: {arg} must be a {what} name (str), got {type(name).__name__}."
        )
    if name not in known:
        raise InvalidArgumentError(
            f"{where}: {arg}={name!r} is not a {what} of the successful runs; "
            f"use one of: {', '.join(known) or 'none'}."
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key(value: Any) -> str:
    """Return a hashable stand-in for a param value (values may be lists or dicts)."""
    return json.dumps(value, sort_keys=True, default=repr)


def _sorted_unique(values: Any) -> list[Any]:
    """Return the distinct ``values``: numbers by value first, then the rest by text."""
    unique = {_key(value): value for value in values}
    return sorted(
        unique.values(),
        key=lambda v: (0, v, "") if _is_number(v) and not math.isnan(v) else (1, 0, _key(v)),
    )


def _label(value: Any) -> str:
    return _key(value) if isinstance(value, dict | list) else str(value)
