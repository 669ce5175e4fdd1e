"""The HTML report of a store: one self-contained file that works offline.

Imports errors, _optional, record, store, derived, results and plotting (for its order
of param values); plotly is imported when a report is built (``pip install 'metalab[report]'``).
Like :mod:`metalab.results`, a report only reads the store and never imports the runner.

:func:`build_report` returns the page as text and :func:`write_report` writes it; the
``metalab report`` command calls the latter. The page holds its own scripts, styles,
data and figures, and a Content-Security-Policy that lets nothing load from elsewhere,
so it can be mailed, attached to a paper or opened years later without a network:

- the experiment (name, version, operation, parameter space, seed plan), its provenance
  (git commit and dirty flag, Python, key packages, hosts) and counts of done, failed
  and pending runs;
- every run in a table that sorts, filters (status, params, metric ranges) and pages in
  the browser; derived metrics (:mod:`metalab.derived`) are columns ``derived.<metric>``
  after the captured ones, and have metric plots of their own under that name;
- each metric against each swept param: replicate means with 95% confidence intervals
  (:meth:`Results.summary <metalab.results.Results.summary>`), optionally split by a
  second param;
- per-step curves, aggregated here: the mean and 95% band at each step, with the series
  of a few runs per curve kept for display on demand;
- failures grouped by exception type, with one traceback each;
- figures captured with ``capture.figure``, inline (a bounded number).

Store contents reach the page only as JSON inside ``<script type="application/json">``,
with ``<``, ``>`` and ``&`` escaped, and the page's script inserts every string with
``textContent``: a param named ``<img src=x onerror=alert(1)>`` is shown as text.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from metalab._optional import require
from metalab.derived import PREFIX, current_derived, derived_metrics
from metalab.errors import InvalidArgumentError, InvalidTypeError, MetalabError
from metalab.plotting import _key, _label, _sorted_unique
from metalab.record import SUCCESS, RunRecord
from metalab.results import (
    Run,
    _band,
    _column_names,
    _describe,
    _table_columns,
    json_safe,
    verdicts,
    verified_text,
)
from metalab.store import Store, open_store

__all__ = ["build_report", "write_report"]

# In the head of every report: how write_report tells a report it may replace.
_GENERATOR = '<meta name="generator" content="metalab report">'

# Bounds on what is embedded besides the run table (which holds every run), so that a
# report stays quick to write and to open; the page says what each one left out.
_MAX_FIGURES = 24  # captured figures shown inline
_MAX_FIGURE_BYTES = 2 * 2**20  # a PNG larger than this is left out
_MAX_CURVES = 10  # curves per step plot, and values of a param to split a plot by
_RUNS_PER_CURVE = 20  # runs whose own series are kept, per curve
# Runs whose step files are read, per curve: each read costs ~0.1 ms, and a band from
# 2,000 runs is as narrow as a line; 10 curves of 2,000 keep a report under 10 s.
_STEP_RUNS_PER_CURVE = 2000
_MAX_POINTS = 500  # steps per curve (evenly spaced when a series has more)
_MAX_MESSAGES = 5  # distinct messages listed per failure type
_MAX_RUN_IDS = 10  # run IDs listed per failure type
# Packages whose versions a reader of a paper's supplement most often needs; all of
# them are listed too, folded.
_KEY_PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "scikit-learn",
    "torch",
    "jax",
    "tensorflow",
    "matplotlib",
    "plotly",
)
_ASSETS = ("report.html", "report.css", "report.js")
_SLOT = re.compile(r"\{\{(TITLE|CSS|PLOTLY|DATA|JS)\}\}")


def build_report(store: str | os.PathLike[str] | Store, *, title: str | None = None) -> str:
    """Return the HTML report of ``store`` (a folder, a PostgreSQL URL or a Store).

    The store is only read. ``title`` defaults to ``"<name> <version>"`` from the
    manifest. Needs plotly (``pip install 'metalab[report]'``).
    """
    if title is not None and not isinstance(title, str):
        raise InvalidTypeError(
            f"build_report(title={title!r:.80}): must be a str or None (the experiment's "
            f"name and version), got {type(title).__name__}."
        )
    plotly = require("plotly.offline", feature="build_report()", extra="report")
    data = _report_data(open_store(store, create=False), title)
    return _render(data, plotly.get_plotlyjs())


def write_report(
    store: str | os.PathLike[str] | Store, path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Write the report of ``store`` to ``path`` and return the path.

    ``path`` may be a report written before, which is replaced; any other existing
    file is refused, so a typo cannot overwrite data. The file appears whole or not at
    all (written beside it, then renamed).
    """
    target = Path(path)
    if target.is_dir():
        raise InvalidArgumentError(
            f"write_report(path={str(path)!r}): that is a folder; give a file name, "
            f"e.g. {str(target / 'report.html')!r}."
        )
    if target.exists() and not _is_report(target):
        raise InvalidArgumentError(
            f"write_report(path={str(path)!r}): the file exists and is not a metalab "
            f"report; delete it or write the report to another path."
        )
    text = build_report(store, title=title)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600), a report is for sharing.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a file :func:`write_report` wrote (its head names the generator)."""
    with path.open("rb") as file:
        return _GENERATOR.encode() in file.read(512)


# ------------------------------------------------------------------------------ data


def _report_data(store: Store, title: str | None) -> dict[str, Any]:
    """Return everything the page shows, as JSON-ready values (aggregated, bounded).

    Works on the records' JSON as the store returns it (``records_ndjson``), not on
    :class:`Results`: Run objects for 100,000 runs take 3 s of the 10 s a report may
    take. Runs are built only for the records whose steps or figures are read.
    """
    manifest = store.read_manifest()
    manifest = manifest if isinstance(manifest, dict) else {}
    records = sorted(
        (json.loads(line) for line in store.records_ndjson().splitlines()),
        key=lambda record: (record["case_index"], record["replicate_index"]),
    )
    _add_derived(store, records)
    verified = verdicts(store.verifications())
    successful = [record for record in records if record["status"] == SUCCESS]
    total = manifest.get("total_runs")
    name = str(manifest.get("name", "?"))
    version = str(manifest.get("version", "?"))
    swept = _swept_params(records)
    return {
        "title": title if title is not None else f"{name} {version}",
        "store": store.location,
        # From the manifest, which may hold NaN (JSON has none); the rest is finite.
        "experiment": json_safe(_experiment(manifest)),
        "provenance": json_safe(_provenance(manifest, records)),
        "counts": {
            "done": len(successful),
            "failed": len(records) - len(successful),
            "pending": max(total - len(records), 0) if isinstance(total, int) else None,
            "total": total if isinstance(total, int) else None,
            "verified": sum(
                verified.get(record["run_id"], {}).get("outcome") == "identical"
                for record in successful
            ),
        },
        "table": _table(records, verified),
        "metric_plots": _metric_plots(successful, swept),
        "step_plots": _step_plots(store, manifest, successful, swept),
        "failures": _failures(records),
        "figures": _figures(
            _runs(
                store,
                manifest,
                [r for r in records if any(a.get("kind") == "figure" for a in r["artifacts"])],
            )
        ),
    }


def _add_derived(store: Store, records: list[dict[str, Any]]) -> None:
    """Add each run's derived metrics to its record's metrics, as ``derived.<metric>``.

    The run table and the metric plots then show them after the captured metrics, named
    as :meth:`Results.table <metalab.results.Results.table>` names them.
    """
    entries = store.derived_entries()
    if not entries:
        return
    attempts = {record["run_id"]: record["attempt"] for record in records}
    current = current_derived(entries, attempts)
    for record in records:
        found = derived_metrics(current.get(record["run_id"], {}))
        if found:
            derived = {PREFIX + name: value for name, value in found.items()}
            record["metrics"] = {**record["metrics"], **derived}


def _runs(store: Store, manifest: dict[str, Any], records: list[dict[str, Any]]) -> list[Run]:
    """Return the Runs of ``records``, to read their files (steps, figures) safely."""
    return [Run(RunRecord.from_dict(record), store, manifest) for record in records]


def _experiment(manifest: dict[str, Any]) -> dict[str, Any]:
    operation = manifest.get("operation") or {}
    return {
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "operation": {
            key: operation.get(key) for key in ("name", "module", "version", "code_sha256")
        },
        "params": manifest.get("params"),
        "seeds": manifest.get("seeds"),
        "tags": manifest.get("tags") or [],
        "metadata": manifest.get("metadata") or {},
        "total_runs": manifest.get("total_runs"),
        "metalab_version": manifest.get("metalab_version"),
    }


def _provenance(manifest: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    facts = manifest.get("provenance") or {}
    environment = facts.get("environment") or {}
    packages = environment.get("packages") or {}
    git = facts.get("git")
    return {
        "timestamp": facts.get("timestamp"),
        "git": None
        if not isinstance(git, dict)
        else {key: git.get(key) for key in ("commit", "branch", "dirty", "error")},
        "python": (environment.get("python") or {}).get("version"),
        "platform": environment.get("platform"),
        "metalab": environment.get("metalab"),
        "key_packages": {name: packages[name] for name in _KEY_PACKAGES if name in packages},
        "packages": packages,
        "hosts": dict(Counter(record.get("host") for record in records).most_common()),
    }


def _fast_key(value: Any) -> Any:
    """Return a hashable stand-in for a param value, cheaper than ``_key`` for scalars.

    The type is kept, so that 1, 1.0 and True stay apart as ``_key`` keeps them.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return (kind, value)
    return _key(value)


def _swept_params(records: list[dict[str, Any]]) -> list[str]:
    """Return the params that take more than one value (every param if none does)."""
    values: dict[str, set[Any]] = {}
    for record in records:
        for name, value in record["params"].items():
            values.setdefault(name, set()).add(_fast_key(value))
    swept = [name for name, seen in values.items() if len(seen) > 1]
    return swept or list(values)


def _table(records: list[dict[str, Any]], verified: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the run table (as :meth:`Results.table`) as columns, their roles and rows.

    A last column says how ``metalab verify`` last found each run verified, if it did.
    """
    param_columns, metric_columns = _column_names(
        (name for record in records for name in record["params"]),
        (name for record in records for name in record["metrics"]),
    )
    params, metrics = list(param_columns), list(metric_columns)
    rows = []
    for record in records:
        given, measured = record["params"], record["metrics"]
        rows.append(
            [
                record["run_id"],
                record["status"],
                *[_table_cell(given.get(name)) for name in params],
                *[_table_cell(measured.get(name)) for name in metrics],
                record["replicate_index"],
                record["duration"],
                verified_text(verified.get(record["run_id"])),
            ]
        )
    # A role per column, by which the page offers filters: "param", "metric", or the
    # column's own name for the fixed ones.
    roles = ["run_id", "status", *["param"] * len(params), *["metric"] * len(metrics)]
    return {
        "columns": [*_table_columns(param_columns, metric_columns), "verified"],
        "roles": [*roles, "replicate_index", "duration", "verified"],
        "rows": rows,
    }


def _table_cell(value: Any) -> Any:
    """Return a cell as JSON has it: NaN and infinities as text, lists and dicts as JSON."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind is list or kind is dict:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    return value


def _metric_plots(records: list[dict[str, Any]], swept: list[str]) -> list[dict[str, Any]]:
    """Return, per (metric, swept param), the figure unsplit and split by each other param.

    The statistics are those of :meth:`Results.summary` (the same ``_describe``), for
    every grouping at once: ``summary`` would read every run once per grouping.
    """
    if not records:
        return []
    go = require("plotly.graph_objects", feature="build_report()", extra="report")
    hues = [
        name
        for name in swept
        if len({_fast_key(record["params"].get(name)) for record in records}) <= _MAX_CURVES
    ]
    groupings = [(x, hue) for x in swept for hue in [None, *(h for h in hues if h != x)]]
    stats = {grouping: _grouped_stats(records, grouping) for grouping in groupings}
    metrics = list(dict.fromkeys(name for record in records for name in record["metrics"]))
    return [
        {
            "metric": metric,
            "param": x,
            "figures": {
                hue or "": _metric_figure(go, stats[x, hue], metric, x, hue)
                for x_name, hue in groupings
                if x_name == x
            },
        }
        for metric in metrics
        for x in swept
    ]


def _grouped_stats(
    records: list[dict[str, Any]], grouping: tuple[str, str | None]
) -> dict[Any, tuple[tuple[Any, Any], dict[str, dict[str, Any]]]]:
    """Return, per (x value, hue value) met, those values and each metric's statistics."""
    x, hue = grouping
    values: dict[Any, tuple[tuple[Any, Any], dict[str, list[Any]]]] = {}
    for record in records:
        params = record["params"]
        if x not in params:
            continue
        pair = (params[x], None if hue is None else params.get(hue))
        key = (_fast_key(pair[0]), _fast_key(pair[1]))
        metrics = values.setdefault(key, (pair, {}))[1]
        for name, value in record["metrics"].items():
            metrics.setdefault(name, []).append(value)
    return {
        key: (pair, {name: _describe(found) for name, found in metrics.items()})
        for key, (pair, metrics) in values.items()
    }


def _metric_figure(
    go: Any,
    stats: dict[Any, tuple[tuple[Any, Any], dict[str, dict[str, Any]]]],
    metric: str,
    x: str,
    hue: str | None,
) -> dict[str, Any]:
    """Return the Plotly figure of ``metric`` against ``x``: means with 95% CI error bars."""
    points = [
        (pair, found[metric])
        for pair, found in stats.values()
        if metric in found and found[metric]["mean"] is not None
    ]
    x_values = _sorted_unique(pair[0] for pair, _ in points)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in x_values)
    order = {_key(value): index for index, value in enumerate(x_values)}
    traces = []
    for hue_value in _sorted_unique(pair[1] for pair, _ in points):
        line = sorted(
            ((pair[0], row) for pair, row in points if _key(pair[1]) == _key(hue_value)),
            key=lambda point: order[_key(point[0])],
        )
        traces.append(
            go.Scatter(
                x=[value if numeric else _text(_label(value)) for value, _ in line],
                y=[row["mean"] for _, row in line],
                error_y={
                    "type": "data",
                    "array": [_half(row, "ci95_high") for _, row in line],
                    "arrayminus": [_half(row, "ci95_low") for _, row in line],
                },
                customdata=[row["count"] for _, row in line],
                hovertemplate="%{x}: %{y} (n=%{customdata})<extra></extra>",
                mode="lines+markers",
                name=_text(metric if hue is None else f"{hue}={_label(hue_value)}"),
            )
        )
    layout = _layout(f"{metric} by {x}", x, metric, legend=hue)
    if not numeric:
        layout["xaxis"]["type"] = "category"
    return go.Figure(data=traces, layout=layout).to_plotly_json()


def _half(row: dict[str, Any], bound: str) -> float:
    """Return the distance from the mean to a CI bound (0 where there is no interval)."""
    return 0.0 if row[bound] is None else abs(row[bound] - row["mean"])


def _step_plots(
    store: Store, manifest: dict[str, Any], records: list[dict[str, Any]], swept: list[str]
) -> list[dict[str, Any]]:
    """Return, per step series, mean and 95% band per curve, and a few runs' own series.

    The runs are split into curves once (:func:`_curves`); of a curve with more than
    _STEP_RUNS_PER_CURVE runs, that many evenly spread over it are read.
    """
    records = [record for record in records if record.get("steps")]
    if not records:
        return []
    go = require("plotly.graph_objects", feature="build_report()", extra="report")
    # Set, not left to Plotly: a band and its mean line are two traces of one colour.
    colors = require("plotly.colors", feature="build_report()", extra="report")
    palette = colors.DEFAULT_PLOTLY_COLORS
    by, curves = _curves(records, swept)
    read = []
    for label, members in curves:
        runs = _runs(store, manifest, _evenly(members, _STEP_RUNS_PER_CURVE))
        read.append((label, [(run, run._step_series()) for run in runs]))
    names = dict.fromkeys(name for _, pairs in read for _, series in pairs for name in series)
    plots = []
    for name in names:
        traces, single, counted = [], [], 0
        for number, (label, pairs) in enumerate(read):
            found = [(run, series[name]) for run, series in pairs if name in series]
            if not found:
                continue
            counted += len(found)
            color = palette[number % len(palette)]
            steps, means, lows, highs = _step_stats([pair for _, pair in found])
            traces += _band_traces(go, steps, means, lows, highs, label, color)
            for run, pair in found[:_RUNS_PER_CURVE]:
                points = _evenly(list(zip(*pair, strict=True)), _MAX_POINTS)
                single.append(
                    {
                        "run_id": run.run_id,
                        "curve": _text(label),  # the legend group of the curve's traces
                        "color": color,
                        "x": [step for step, _ in points],
                        "y": [_finite(value) for _, value in points],
                    }
                )
        figure = go.Figure(data=traces, layout=_layout(name, "step", name, legend=by))
        plots.append(
            {
                "name": name,
                "by": by,
                "runs_counted": counted,
                "sampled": any(len(members) > _STEP_RUNS_PER_CURVE for _, members in curves),
                "read_limit": _STEP_RUNS_PER_CURVE,
                "figure": figure.to_plotly_json(),
                "runs": single,
            }
        )
    return plots


def _curves(
    records: list[dict[str, Any]], swept: list[str]
) -> tuple[str | None, list[tuple[str, list[dict[str, Any]]]]]:
    """Split runs into curves: by case when few, else by one param with few values, else all.

    Returns the grouping's name (``"case"``, a param name, or None for all runs) and
    (label, records) per curve, cases in sweep order, param values sorted.
    """
    cases: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        key = tuple(_fast_key(value) for value in record["params"].values())
        cases.setdefault(key, []).append(record)
        if len(cases) > _MAX_CURVES:
            break
    else:
        return "case", [
            (_case_label(members[0]["params"], swept), members) for members in cases.values()
        ]
    for name in swept:
        groups: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}
        for record in records:
            value = record["params"].get(name)
            groups.setdefault(_fast_key(value), (value, []))[1].append(record)
            if len(groups) > _MAX_CURVES:
                break
        else:
            by_key = {_key(value): members for value, members in groups.values()}
            values = _sorted_unique(value for value, _ in groups.values())
            return name, [(f"{name}={_label(v)}", by_key[_key(v)]) for v in values]
    return None, [("all runs", records)]


def _case_label(params: dict[str, Any], swept: list[str]) -> str:
    """Return ``"a=1, b=x"``: the swept params of a case (the others are the same in all)."""
    return ", ".join(f"{name}={_label(value)}" for name, value in params.items() if name in swept)


def _step_stats(
    series: list[tuple[Any, Any]],
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Return steps and the mean and 95% CI bounds across ``series`` at each step."""
    by_step: dict[int, list[float]] = {}
    for steps, values in series:
        # Where a run logged one step more than once its last value counts, as in plots.
        for step, value in dict(zip(steps, values, strict=True)).items():
            by_step.setdefault(step, []).append(value)
    return _band((step, by_step[step]) for step in _evenly(sorted(by_step), _MAX_POINTS))


def _evenly(items: list[Any], limit: int) -> list[Any]:
    """Return ``items``, or ``limit`` of them evenly spread, the first and last kept."""
    if len(items) <= limit:
        return items
    return [items[round(i * (len(items) - 1) / (limit - 1))] for i in range(limit)]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _band_traces(
    go: Any,
    steps: list[int],
    means: list[float],
    lows: list[float],
    highs: list[float],
    label: str,
    color: str,
) -> list[Any]:
    """Return a curve's band (one closed polygon) and its mean line, sharing a legend entry."""
    group = _text(label)
    return [
        go.Scatter(
            x=steps + steps[::-1],
            y=highs + lows[::-1],
            fill="toself",
            fillcolor=color.replace("rgb(", "rgba(").replace(")", ", 0.2)"),
            line={"width": 0, "color": color},
            hoverinfo="skip",
            legendgroup=group,
            showlegend=False,
            name=f"{group} 95% CI",
        ),
        go.Scatter(
            x=steps, y=means, mode="lines", name=group, legendgroup=group, line={"color": color}
        ),
    ]


def _layout(title: str, x: str, y: str, *, legend: str | None) -> dict[str, Any]:
    return {
        "title": {"text": _text(title)},
        "xaxis": {"title": {"text": _text(x)}},
        "yaxis": {"title": {"text": _text(y)}},
        "legend": {"title": {"text": _text(legend or "")}},
        "showlegend": True,
        "template": "plotly_white",
        "height": 380,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    }


def _text(value: str) -> str:
    """Return ``value`` for a Plotly label: Plotly reads tags in labels, so escape them."""
    return html.escape(value, quote=False)


def _failures(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group the failed runs by exception type, largest group first; one traceback each."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for record in records:
        if record["status"] != SUCCESS:
            error = record.get("error") or {}
            groups.setdefault(str(error.get("type", "?")), []).append((record["run_id"], error))
    out = []
    for kind, members in sorted(groups.items(), key=lambda item: -len(item[1])):
        messages = Counter(str(error.get("message", "")) for _, error in members)
        out.append(
            {
                "type": kind,
                "count": len(members),
                "messages": messages.most_common(_MAX_MESSAGES),
                "more_messages": max(len(messages) - _MAX_MESSAGES, 0),
                "run_ids": [run_id for run_id, _ in members[:_MAX_RUN_IDS]],
                "traceback": str(members[0][1].get("traceback", "")),
            }
        )
    return out


def _figures(runs: list[Run]) -> dict[str, Any]:
    """Return captured figures as PNG data URIs, up to _MAX_FIGURES, and how many were not."""
    shown: list[dict[str, Any]] = []
    left_out = 0
    for run in runs:
        for ref in run.record.artifacts:
            if ref.kind != "figure":
                continue
            if len(shown) >= _MAX_FIGURES or ref.size > _MAX_FIGURE_BYTES:
                left_out += 1
                continue
            try:
                png = run._read_file(f"artifact({ref.name!r})", ref.path)
            except (MetalabError, OSError):
                left_out += 1  # a missing or outside file: the report shows the rest
                continue
            shown.append(
                {
                    "run_id": run.run_id,
                    "name": ref.name,
                    "params": _label(run.params),
                    "src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                }
            )
    return {"shown": shown, "left_out": left_out, "limit": _MAX_FIGURES}


# ---------------------------------------------------------------------------- render


def _render(data: dict[str, Any], plotly_js: str) -> str:
    """Fill the page template: styles, Plotly, the data as escaped JSON, the page script."""
    package = resources.files(__name__)
    template, css, js = (package.joinpath(name).read_text("utf-8") for name in _ASSETS)
    slots = {
        "TITLE": html.escape(str(data["title"])),
        "CSS": css,
        "PLOTLY": plotly_js,
        "DATA": _script_json(data),
        "JS": js,
    }
    # One pass, so that no filled-in text is searched for slots again.
    return _SLOT.sub(lambda match: slots[match.group(1)], template)


def _script_json(value: Any) -> str:
    """Return ``value`` as JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` escaped.

    No text of the store can then close the script element or open a comment in it.
    """
    text = json.dumps(
        value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=repr
    )
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
