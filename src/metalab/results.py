"""Results: the runs in a store as objects, tables, summaries, exports and plots.

Imports errors, _optional, seeds, record, capture and store. Results read stores and
never import the runner, so a store can be loaded without the experiment's code, and
while a sweep is still writing to it (a run counts once its record is complete). The
plot methods import :mod:`metalab.plotting` when called; pandas, pyarrow, rich and
matplotlib are imported by the method that needs them.

Runs are ordered by (case index, replicate index): the same sweep gives the same order
whatever executor ran it.

>>> import metalab, tempfile
>>> @metalab.operation
... def square(params, capture):
...     capture.metric("y", params["x"] ** 2)
>>> exp = metalab.Experiment("sq", "1", {}, square, metalab.grid(x=[1, 2]), metalab.seeds(0))
>>> result = metalab.run(exp, store=tempfile.mkdtemp())
>>> [run.metrics["y"] for run in result]
[1, 4]
>>> [(row["x"], row["y"]) for row in result.table()]
[(1, 1), (2, 4)]
"""

from __future__ import annotations

import copy
import csv
import html
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from metalab._optional import optional, require
from metalab.capture import decode_artifact, decode_steps
from metalab.errors import CaseIndexError, InvalidArgumentError, InvalidTypeError
from metalab.record import FAILED, SUCCESS, RunRecord
from metalab.seeds import SeedBundle
from metalab.store import Store, open_store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from pandas import DataFrame

__all__ = ["Results", "Run", "load_results"]

#: Columns of :meth:`Results.table` that are not params or metrics.
_RUN_COLUMNS = ("run_id", "status", "replicate_index", "duration")
#: Columns of :meth:`Results.summary` after the group's params.
_STAT_COLUMNS = ("metric", "mean", "std", "ci95_low", "ci95_high", "count", "nonfinite")
#: Rows shown by the notebook view of :class:`Results`; the rest are counted.
_HTML_ROWS = 50

# Student t quantiles t(0.975, df) for df = 1..30, to 10 significant digits
# (computed with mpmath from the regularized incomplete beta function).
_T975 = (
    12.70620474,
    4.302652730,
    3.182446305,
    2.776445105,
    2.570581836,
    2.446911851,
    2.364624252,
    2.306004135,
    2.262157163,
    2.228138852,
    2.200985160,
    2.178812830,
    2.160368656,
    2.144786688,
    2.131449546,
    2.119905299,
    2.109815578,
    2.100922040,
    2.093024054,
    2.085963447,
    2.079613845,
    2.073873068,
    2.068657610,
    2.063898562,
    2.059538553,
    2.055529439,
    2.051830516,
    2.048407142,
    2.045229642,
    2.042272456,
)
_Z975 = NormalDist().inv_cdf(0.975)


def _t975(df: int) -> float:
    """Return the 0.975 quantile of Student's t with ``df`` degrees of freedom (df >= 1).

    A table up to 30; beyond, the Cornish-Fisher expansion around the normal quantile
    (Abramowitz and Stegun 26.7.5), off by less than 1e-7 there, where a flat 1.96 would
    make the interval 4% too narrow at df=31. No scipy needed.

    >>> round(_t975(2), 4), round(_t975(40), 4), round(_t975(10**6), 4)
    (4.3027, 2.0211, 1.96)
    """
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    terms = (
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return z + sum(term / df**power for power, term in enumerate(terms, start=1))


def _describe(values: Iterable[Any]) -> dict[str, Any]:
    """Return mean, sample std, 95% t interval, count and nonfinite count of ``values``.

    Non-finite values are left out of the statistics and counted in ``nonfinite``;
    ``std`` and the interval are None below two finite values, ``mean`` below one.
    Shared by :meth:`Results.summary` and :mod:`metalab.plotting`.

    >>> _describe([1.0, 2.0, 3.0, float("nan")])["count"], _describe([2, 4])["mean"]
    (3, 3.0)
    """
    finite: list[float] = []
    nonfinite = 0
    for value in values:
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range: infinite as a float
            number = math.inf
        if math.isfinite(number):
            finite.append(number)
        else:
            nonfinite += 1
    count = len(finite)
    mean = std = low = high = None
    if count:
        mean = math.fsum(finite) / count
    if count > 1:
        # Two passes with fsum: exact enough, and far faster than statistics.stdev,
        # which works in fractions (plot_steps calls this once per step).
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in finite) / (count - 1))
        half = _t975(count - 1) * std / math.sqrt(count)
        low, high = mean - half, mean + half
    return {
        "mean": mean,
        "std": std,
        "ci95_low": low,
        "ci95_high": high,
        "count": count,
        "nonfinite": nonfinite,
    }


class Run:
    """One run of a store: its record, plus access to its artifacts, steps and logs.

    ``manifest`` is the store's experiment manifest, shared by every run of one
    :class:`Results` (read once); :attr:`provenance` takes the experiment's facts from it.
    """

    __slots__ = ("_manifest", "_store", "record")

    def __init__(
        self, record: RunRecord, store: Store, manifest: dict[str, Any] | None = None
    ) -> None:
        self.record = record
        self._store = store
        self._manifest = manifest

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self.status!r}, params={self.params!r})"

    def _repr_html_(self) -> str:
        """Return the run as an HTML table: ID, status, params, metrics (and error)."""
        rows = [("run_id", self.run_id), ("status", self.status)]
        rows += [(f"params.{key}", value) for key, value in self.params.items()]
        rows += [(f"metrics.{key}", _cell(value, 6)) for key, value in self.metrics.items()]
        if self.error is not None:
            rows.append(("error", f"{self.error['type']}: {self.error['message']}"))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
            f"<td>{html.escape(_cell(value))}</td></tr>"
            for name, value in rows
        )
        return f"<table class='metalab-run'><tbody>{body}</tbody></table>"

    @property
    def run_id(self) -> str:
        """The run's stable ID."""
        return self.record.run_id

    @property
    def params(self) -> dict[str, Any]:
        """The run's parameters."""
        return self.record.params

    @property
    def seeds(self) -> SeedBundle:
        """The run's seed bundle."""
        return SeedBundle.from_dict(self.record.seeds)

    @property
    def status(self) -> str:
        """``"success"`` or ``"failed"``."""
        return self.record.status

    @property
    def metrics(self) -> dict[str, Any]:
        """The final value of each metric."""
        return self.record.metrics

    @property
    def error(self) -> dict[str, str] | None:
        """``{"type", "message", "traceback"}`` of a failed run, else None."""
        return self.record.error

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact names mapped to their kinds."""
        return {ref.name: ref.kind for ref in self.record.artifacts}

    def artifact(self, name: str, *, allow_pickle: bool = False) -> Any:
        """Return the artifact ``name`` decoded by its kind (pickles only with ``allow_pickle``)."""
        for ref in self.record.artifacts:
            if ref.name == name:
                return decode_artifact(
                    ref.kind, self._store.artifact_path(ref), allow_pickle=allow_pickle
                )
        known = ", ".join(sorted(self.artifacts)) or "none"
        raise InvalidArgumentError(
            f"Run({self.run_id}).artifact({name!r}): no such artifact; this run has: {known}."
        )

    def steps(
        self, name: str, as_dataframe: bool = False
    ) -> tuple[list[int], list[float]] | DataFrame:
        """Return the per-step series of metric ``name``.

        As ``(steps, values)`` lists by default, in the order they were logged; with
        ``as_dataframe=True`` as a pandas DataFrame with columns ``step`` (int64) and
        ``value`` (float64). NaN and infinities are kept.
        """
        _check_bool(f"Run({self.run_id}).steps", "as_dataframe", as_dataframe)
        series = self._step_series()
        if name not in series:
            known = ", ".join(sorted(series)) or "none"
            raise InvalidArgumentError(
                f"Run({self.run_id}).steps({name!r}): no per-step metric of that name; "
                f"this run has: {known}."
            )
        steps, values = series[name]
        if as_dataframe:
            pandas = _pandas(f"Run.steps({name!r}, as_dataframe=True)")
            return pandas.DataFrame(
                {
                    "step": pandas.Series(list(steps), dtype="int64"),
                    "value": pandas.Series(list(values), dtype="float64"),
                }
            )
        return list(steps), list(values)

    def _step_series(self) -> dict[str, Any]:
        if self.record.steps is None:
            return {}
        return decode_steps(self._store.read_file(self.record.steps))

    def plot_steps(self, name: str, ax: Axes | None = None) -> Figure:
        """Draw the per-step series ``name`` of this run; return the matplotlib Figure.

        Drawn on ``ax`` when given (its figure is returned). Needs matplotlib
        (``pip install 'metalab[plot]'``); see :func:`metalab.plotting.plot_run_steps`.
        """
        # Imported here: plotting needs matplotlib, and builds on this module.
        from metalab.plotting import plot_run_steps

        return plot_run_steps(self, name, ax=ax)

    def _text(self, relpath: str | None) -> str:
        return "" if relpath is None else self._store.read_file(relpath).decode("utf-8")

    @property
    def logs(self) -> str:
        """The lines the run logged through ``capture.log`` or its runtime logger."""
        return self._text(self.record.logs)

    @property
    def stdout(self) -> str:
        """What the run printed to standard output."""
        return self._text(self.record.stdout)

    @property
    def stderr(self) -> str:
        """What the run printed to standard error."""
        return self._text(self.record.stderr)

    @property
    def started_at(self) -> str:
        """ISO 8601 UTC start time."""
        return self.record.started_at

    @property
    def duration(self) -> float:
        """Wall time of the operation, in seconds."""
        return self.record.duration

    @property
    def provenance(self) -> dict[str, Any]:
        """Where and how the run ran, plus the experiment's provenance under ``"experiment"``.

        Keys from the record: ``host``, ``pid``, ``worker``, ``started_at``,
        ``finished_at``, ``duration``, ``peak_memory`` (bytes) and ``attempt``;
        ``experiment`` is the manifest's environment and git facts (``{}`` when the
        store has no manifest). A fresh copy on each access.
        """
        record = self.record
        experiment = (self._manifest or {}).get("provenance") or {}
        return {
            "host": record.host,
            "pid": record.pid,
            "worker": record.worker,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "duration": record.duration,
            "peak_memory": record.peak_memory,
            "attempt": record.attempt,
            "experiment": copy.deepcopy(experiment),
        }


class Results:
    """The runs of one store, ordered by (case index, replicate index).

    ``manifest`` is the store's experiment manifest (None when unknown); runs loaded
    by :meth:`from_store` share it.
    """

    def __init__(self, runs: list[Run], manifest: dict[str, Any] | None = None) -> None:
        self._runs = runs
        self._by_id = {run.run_id: run for run in runs}
        self._manifest = manifest

    @classmethod
    def from_store(cls, store: Store) -> Results:
        """Load the current record of every run in ``store``, and its manifest (read once)."""
        manifest = store.read_manifest()
        records = sorted(store.records(), key=lambda r: (r.case_index, r.replicate_index))
        return cls([Run(record, store, manifest) for record in records], manifest)

    def _subset(self, runs: list[Run]) -> Results:
        return Results(runs, self._manifest)

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The store's experiment manifest (name, version, params, seeds, provenance), or None.

        None for an empty store and for results not loaded from a store. A fresh copy
        on each access.
        """
        return copy.deepcopy(self._manifest)

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def __getitem__(self, key: int | str) -> Run:
        """Return a run by position (``result[0]``) or by run ID (``result["9f2c..."]``)."""
        if isinstance(key, str):
            if key not in self._by_id:
                raise CaseIndexError(f"Results[{key!r}]: no run with that ID in these results.")
            return self._by_id[key]
        if isinstance(key, bool) or not isinstance(key, int):
            raise InvalidTypeError(f"Results[{key!r}]: use an int position or a run ID str.")
        try:
            return self._runs[key]
        except IndexError:
            raise CaseIndexError(
                f"Results[{key}]: out of range for {len(self._runs)} run(s)."
            ) from None

    def __repr__(self) -> str:
        return f"Results({len(self.successful)} successful, {len(self.failed)} failed)"

    @property
    def successful(self) -> Results:
        """The runs that succeeded."""
        return self._subset([run for run in self._runs if run.status == SUCCESS])

    @property
    def failed(self) -> Results:
        """The runs that failed."""
        return self._subset([run for run in self._runs if run.status == FAILED])

    def filter(self, predicate: Callable[[Run], bool] | None = None, **params: Any) -> Results:
        """Keep runs whose params equal every given value, and that satisfy ``predicate``.

        >>> # result.filter(n_samples=1000) or result.filter(lambda run: run.metrics["y"] > 1)
        """
        return self._subset(
            [
                run
                for run in self._runs
                if all(key in run.params and run.params[key] == v for key, v in params.items())
                and (predicate is None or predicate(run))
            ]
        )

    # -- tables ------------------------------------------------------------------------

    def table(self, as_dataframe: bool = False) -> list[dict[str, Any]] | DataFrame:
        """Return one flat row per run, as a list of dicts or (``as_dataframe=True``) pandas.

        Columns, in order: ``run_id``, ``status``, every param, every final metric,
        ``replicate_index``, ``duration``. Params and metrics are listed in the order
        they first appear in the runs; a run that lacks one (a failed run has no
        metrics) has None there (NaN in a numeric DataFrame column). A metric with the
        name of a param or of a fixed column is named ``metric.<name>``; a param with
        the name of a fixed column, ``param.<name>``.
        """
        _check_bool("Results.table", "as_dataframe", as_dataframe)
        columns, rows = self._table()
        if as_dataframe:
            return _pandas("Results.table(as_dataframe=True)").DataFrame(rows, columns=columns)
        return rows

    def to_dataframe(self) -> DataFrame:
        """Return :meth:`table` as a pandas DataFrame (``pip install 'metalab[pandas]'``)."""
        return self.table(as_dataframe=True)

    def _table(self) -> tuple[list[str], list[dict[str, Any]]]:
        params = dict.fromkeys(name for run in self._runs for name in run.params)
        metrics = dict.fromkeys(name for run in self._runs for name in run.metrics)
        param_columns = {p: f"param.{p}" if p in _RUN_COLUMNS else p for p in params}
        metric_columns = {
            m: f"metric.{m}" if m in params or m in _RUN_COLUMNS else m for m in metrics
        }
        columns = ["run_id", "status", *param_columns.values(), *metric_columns.values()]
        columns += ["replicate_index", "duration"]
        rows = []
        for run in self._runs:
            row: dict[str, Any] = {"run_id": run.run_id, "status": run.status}
            row.update((column, run.params.get(p)) for p, column in param_columns.items())
            row.update((column, run.metrics.get(m)) for m, column in metric_columns.items())
            row["replicate_index"] = run.record.replicate_index
            row["duration"] = run.duration
            rows.append(row)
        return columns, rows

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`table` to ``path`` as CSV (UTF-8, a header line; no pandas needed).

        A missing value is an empty field; NaN and infinities are written ``nan``,
        ``inf``, ``-inf``; list and dict params are written as JSON text.
        """
        columns, rows = self._table()
        with _open_for_writing("Results.to_csv", path) as file:
            writer = csv.writer(file)
            writer.writerow(columns)
            writer.writerows([_csv_cell(row[c]) for c in columns] for row in rows)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`table` to ``path`` as a JSON list of row objects.

        JSON has no NaN or infinity: non-finite values are written as ``null``.
        """
        _, rows = self._table()
        text = json.dumps(_json_safe(rows), indent=2, ensure_ascii=False, allow_nan=False)
        with _open_for_writing("Results.to_json", path) as file:
            file.write(text + "\n")

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`table` to ``path`` as Parquet (``pip install 'metalab[parquet]'``).

        Each column gets the type pyarrow infers (None becomes null, ints mixed with
        floats become float64); a column pyarrow cannot type as one (e.g. a metric
        that is a bool in some runs and an int in others) is written as JSON text.
        """
        where = "Results.to_parquet()"
        pyarrow = require("pyarrow", feature=where, extra="parquet")
        parquet = require("pyarrow.parquet", feature=where, extra="parquet")
        _check_path(where, path)
        columns, rows = self._table()
        arrays = {}
        for column in columns:
            values = [row[column] for row in rows]
            try:
                arrays[column] = pyarrow.array(values)
            except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):
                arrays[column] = pyarrow.array(
                    [None if v is None else json.dumps(v) for v in values], pyarrow.string()
                )
        try:
            parquet.write_table(pyarrow.table(arrays), os.fspath(path))
        except OSError as exc:
            raise _unwritable(where, path, exc) from exc

    # -- summaries ---------------------------------------------------------------------

    def summary(self, group_by: Sequence[str] | str | None = None) -> list[dict[str, Any]]:
        """Return the statistics of every metric in each group of successful runs.

        One row per (group, metric), in long format: the group's param values, then
        ``metric``, ``mean``, ``std`` (sample, ddof=1), ``ci95_low``, ``ci95_high``,
        ``count`` and ``nonfinite``. ``group_by`` is a param name or a list of them;
        None groups by every param, so each group is one case and its replicates.
        Groups come in the order they first appear in the runs.

        Only successful runs count. NaN and infinite values are left out of the
        statistics and counted in ``nonfinite``; ``count`` is the number of finite
        values. ``std`` and the interval are None when ``count`` is below 2. The 95%
        interval is ``mean ± t(0.975, count - 1) * std / sqrt(count)`` with Student's t
        quantile (a table up to 30 degrees of freedom, an expansion beyond: no scipy).
        A group param named like one of those columns is named ``param.<name>``.

        >>> # result.summary("lr") -> [{"lr": 0.1, "metric": "acc", "mean": 0.91, ...}, ...]
        """
        return self._summary("summary", group_by)[1]

    def _summary(
        self, method: str, group_by: Sequence[str] | str | None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        names = self._group_names(method, group_by)
        columns = [f"param.{n}" if n in _STAT_COLUMNS else n for n in names]
        groups: dict[str, tuple[tuple[Any, ...], list[Run]]] = {}
        for run in self._runs:
            if run.status != SUCCESS:
                continue
            values = tuple(run.params.get(name) for name in names)
            # Param values may be lists or dicts (unhashable): key groups by their JSON.
            key = json.dumps(values, sort_keys=True, default=repr)
            groups.setdefault(key, (values, []))[1].append(run)
        rows = []
        for values, members in groups.values():
            metrics = dict.fromkeys(name for run in members for name in run.metrics)
            for metric in metrics:
                present = [run.metrics[metric] for run in members if metric in run.metrics]
                stats = _describe(present)
                rows.append({**dict(zip(columns, values, strict=True)), "metric": metric, **stats})
        return columns, rows

    def _group_names(self, method: str, group_by: Sequence[str] | str | None) -> list[str]:
        known = list(dict.fromkeys(name for run in self._runs for name in run.params))
        if group_by is None:
            return known
        names = [group_by] if isinstance(group_by, str) else group_by
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise InvalidTypeError(
                f"Results.{method}(group_by={group_by!r}): must be a param name, a list of "
                f"param names, or None (every param)."
            )
        unknown = [name for name in names if name not in known]
        # Empty results know no params; there is nothing to group, so nothing is wrong.
        if unknown and self._runs:
            raise InvalidArgumentError(
                f"Results.{method}(group_by={group_by!r}): {unknown[0]!r} is not a param of "
                f"these runs; group by some of: {', '.join(known) or 'none'}."
            )
        return list(names)

    def display(self, group_by: Sequence[str] | str | None = None) -> None:
        """Print :meth:`summary` as a table: a rich table when rich is installed, else text.

        Columns: the group's params, ``metric``, ``mean``, ``std``, ``95% CI`` and ``n``
        (the finite values), plus ``nonfinite`` when any value was NaN or infinite.
        """
        columns, rows = self._summary("display", group_by)
        header, cells = _display_cells(columns, rows)
        title = self._title()
        if optional("rich") is not None:
            rich_console = require("rich.console", feature="Results.display()", extra="rich")
            rich_table = require("rich.table", feature="Results.display()", extra="rich")
            table = rich_table.Table(title=title)
            for index, name in enumerate(header):
                numeric = index >= len(columns) + 1
                # A wrapped number reads as two; rich shortens text columns instead.
                table.add_column(name, justify="right" if numeric else "left", no_wrap=numeric)
            for line in cells:
                table.add_row(*line)
            console = rich_console.Console()
            if not console.is_terminal and not console.is_jupyter:
                # A pipe or file has no width to fit: print the table whole, not
                # squeezed to rich's default of 80 columns.
                unbounded = console.options.update_width(1 << 16)
                width = max(console.width, console.measure(table, options=unbounded).maximum)
                console = rich_console.Console(width=width)
            console.print(table)
            return
        print(title)
        print(_plain_table(header, cells, numeric_from=len(columns) + 1))

    def _title(self) -> str:
        manifest = self._manifest or {}
        name = f"{manifest['name']} {manifest.get('version', '')}: " if "name" in manifest else ""
        successful = len(self.successful)
        return f"{name}{successful} successful run{'' if successful == 1 else 's'}"

    def _repr_html_(self) -> str:
        """Return :meth:`table` as an HTML table: the first 50 rows, then how many more."""
        columns, rows = self._table()
        # Params as given; metrics and durations rounded to 6 significant digits.
        params = dict.fromkeys(name for run in self._runs for name in run.params)
        digits = [None if c in params or c == "replicate_index" else 6 for c in columns]
        head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(_cell(row[c], d))}</td>"
                for c, d in zip(columns, digits, strict=True)
            )
            + "</tr>"
            for row in rows[:_HTML_ROWS]
        )
        more = len(rows) - _HTML_ROWS
        tail = f"<p>… {more} more run{'' if more == 1 else 's'}</p>" if more > 0 else ""
        return (
            f"<p>{html.escape(repr(self))}</p><table class='metalab-results'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"
        )

    # -- plots -------------------------------------------------------------------------

    def plot(self, x: str, y: str, hue: str | None = None, ax: Axes | None = None) -> Figure:
        """Draw metric ``y`` against param ``x``: replicate means with a 95% CI band.

        One line per value of param ``hue`` (one line when None); returns the
        matplotlib Figure (``ax``'s when given). Needs matplotlib
        (``pip install 'metalab[plot]'``); see :func:`metalab.plotting.plot_metric`.
        """
        # Imported here: plotting needs matplotlib, and builds on this module.
        from metalab.plotting import plot_metric

        return plot_metric(self, x, y, hue=hue, ax=ax)

    def plot_steps(self, name: str, hue: str | None = None, ax: Axes | None = None) -> Figure:
        """Draw the per-step mean of series ``name`` across runs, with a 95% CI band.

        One curve per value of param ``hue`` (one when None); returns the Figure. See
        :func:`metalab.plotting.plot_steps`.
        """
        from metalab.plotting import plot_steps

        return plot_steps(self, name, hue=hue, ax=ax)


def load_results(path: str | os.PathLike[str] | Store) -> Results:
    """Load the runs of an existing store; reads only, and needs no experiment code.

    Safe while a sweep is still writing to the store: the runs whose records are
    complete are loaded (a record being written is skipped, with a ``StoreWarning``).
    """
    return Results.from_store(open_store(path, create=False))


# -- helpers ---------------------------------------------------------------------------


def _check_bool(where: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{where}({name}={value!r}): must be True or False.")


def _pandas(feature: str) -> Any:
    return require("pandas", feature=feature, extra="pandas")


def _check_path(where: str, path: Any) -> None:
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InvalidTypeError(
            f"{where}(path={path!r:.80}): must be a file path (str or os.PathLike), "
            f"got {type(path).__name__}."
        )


def _unwritable(where: str, path: Any, exc: OSError) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{where}({os.fspath(path)!r}): cannot write there ({exc.strerror or exc}); "
        f"choose a path in an existing folder you can write to."
    )


def _open_for_writing(where: str, path: Any) -> Any:
    _check_path(where, path)
    try:
        # newline="": the csv module writes its own line ends.
        return open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise _unwritable(where, path, exc) from exc


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _cell(value: Any, digits: int | None = None) -> str:
    """Return ``value`` as table text: '' for None, floats to ``digits`` significant if given.

    Params are shown as given (``digits=None``: ``1.0`` stays ``1.0``); computed values
    are rounded for reading.

    >>> _cell(1.0), _cell(2 / 3, 3), _cell(None), _cell([1, 2])
    ('1.0', '0.667', '', '[1, 2]')
    """
    if value is None:
        return ""
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _display_cells(
    columns: list[str], rows: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    """Return the header and text cells of :meth:`Results.display`."""
    show_nonfinite = any(row["nonfinite"] for row in rows)
    header = [*columns, "metric", "mean", "std", "95% CI", "n"]
    header += ["nonfinite"] if show_nonfinite else []
    cells = []
    for row in rows:
        low, high = row["ci95_low"], row["ci95_high"]
        interval = "" if low is None else f"[{_cell(low, 5)}, {_cell(high, 5)}]"
        line = [_cell(row[c]) for c in columns]
        line += [row["metric"], _cell(row["mean"], 5), _cell(row["std"], 3), interval]
        line += [str(row["count"])]
        line += [str(row["nonfinite"])] if show_nonfinite else []
        cells.append(line)
    return header, cells


def _plain_table(header: list[str], cells: list[list[str]], *, numeric_from: int) -> str:
    """Return ``cells`` under ``header`` as aligned text; numbers right-aligned."""
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(texts: list[str]) -> str:
        padded = [
            text.rjust(width) if i >= numeric_from else text.ljust(width)
            for i, (text, width) in enumerate(zip(texts, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(texts) for texts in cells)])
