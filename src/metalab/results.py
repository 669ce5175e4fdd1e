"""Results: the runs in a store as objects, tables, summaries, exports and plots.

Imports errors, _optional, seeds, record, capture, store and derived. Results read stores and
never import the runner, so a store can be loaded without the experiment's code, and
while a sweep is still writing to it (a run counts once its record is complete). A
store's results are read on first use and then kept (``docs/store.md``, *Reading*). The
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
import hashlib
import html
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cached_property
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from metalab._optional import optional, require
from metalab.capture import decode_artifact, decode_steps
from metalab.derived import (
    PREFIX,
    DerivedFunction,
    compute_derived,
    current_derived,
    derived_metrics,
    resolve_derived,
)
from metalab.errors import CaseIndexError, InvalidArgumentError, InvalidTypeError
from metalab.record import FAILED, SUCCESS, ArtifactRef, RunRecord, records_from_json
from metalab.seeds import SeedBundle
from metalab.store import Store, StoreWarning, open_store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from pandas import DataFrame

    from metalab.verify import Verification

__all__ = ["Results", "Run", "csv_cell", "find_runs", "json_safe", "load_results"]

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


def _band(
    groups: Iterable[tuple[Any, Iterable[Any]]],
) -> tuple[list[Any], list[float], list[float], list[float]]:
    """Return ``(xs, means, lows, highs)`` of ``(x, values)`` groups: a curve with its band.

    The band is the 95% interval, or the mean itself below two finite values; a group
    with no finite value is left out. Shared by ``plot_steps`` and the HTML report.

    >>> _band([(0, [1.0, 3.0]), (1, [float("nan")]), (2, [5.0])])[:2]
    ([0, 2], [2.0, 5.0])
    """
    xs: list[Any] = []
    means: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for x, values in groups:
        stats = _describe(values)
        if stats["mean"] is None:
            continue
        xs.append(x)
        means.append(stats["mean"])
        lows.append(stats["mean"] if stats["ci95_low"] is None else stats["ci95_low"])
        highs.append(stats["mean"] if stats["ci95_high"] is None else stats["ci95_high"])
    return xs, means, lows, highs


class Run:
    """One run of a store: its record, plus access to its artifacts, steps and logs.

    ``manifest`` is the store's experiment manifest, shared by every run of one
    :class:`Results` (read once); :attr:`provenance` takes the experiment's facts from it.
    ``derived`` holds the run's current derived-metric entries by function name
    (:func:`metalab.derived.current_derived`).
    """

    __slots__ = ("_derived", "_manifest", "_store", "_verified", "record")

    def __init__(
        self,
        record: RunRecord,
        store: Store,
        manifest: dict[str, Any] | None = None,
        verified: dict[str, Any] | None = None,
        derived: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.record = record
        self._store = store
        self._manifest = manifest
        self._verified = verified
        self._derived = {} if derived is None else derived

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self.status!r}, params={self.params!r})"

    def _repr_html_(self) -> str:
        """Return the run as an HTML table: ID, status, params, metrics (and error)."""
        rows = [("run_id", self.run_id), ("status", self.status)]
        rows += [(f"params.{key}", value) for key, value in self.params.items()]
        rows += [(f"metrics.{key}", _cell(value, 6)) for key, value in self.metrics.items()]
        rows += [(f"{PREFIX}{key}", _cell(value, 6)) for key, value in self.derived.items()]
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
    def derived(self) -> dict[str, Any]:
        """The run's derived metrics, by metric name (``docs/derived.md``); a fresh dict.

        Those of the current code of each derived-metric function, computed on this
        attempt of the run; tables, summaries and plots name them ``derived.<metric>``.
        """
        return derived_metrics(self._derived)

    @property
    def derived_errors(self) -> dict[str, dict[str, str]]:
        """``{"type", "message", "traceback"}`` by the name of each derived function that raised."""
        return {
            name: dict(entry["error"]) for name, entry in self._derived.items() if "error" in entry
        }

    def _measured(self) -> dict[str, Any]:
        """Return the final metrics, then the derived ones as ``derived.<metric>``."""
        if not self._derived:
            return self.record.metrics
        derived = {PREFIX + name: value for name, value in self.derived.items()}
        return {**self.record.metrics, **derived}

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact names mapped to their kinds."""
        return {ref.name: ref.kind for ref in self.record.artifacts}

    def artifact(self, name: str, *, allow_pickle: bool = False) -> Any:
        """Return the artifact ``name`` decoded by its kind (pickles only with ``allow_pickle``).

        A file whose SHA-256 is no longer the one recorded when the run captured it
        (edited or corrupted since) is still read, with a ``StoreWarning``.

        The file must lie inside the store folder once symbolic links are followed: a
        store copied from elsewhere cannot make this read, say, ``~/.ssh`` through a link.
        """
        for ref in self.record.artifacts:
            if ref.name == name:
                path = self._store.artifact_path(ref)
                where = f"Run({self.run_id}).artifact({name!r})"
                _check_inside_store(where, self._store, path)
                _check_sha256(where, ref, path)
                return decode_artifact(ref.kind, path, allow_pickle=allow_pickle)
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
        return decode_steps(self._read_file("steps", self.record.steps))

    def _read_file(self, what: str, relpath: str) -> bytes:
        """Return the bytes of the run's file ``relpath``, refusing one a link leads outside."""
        path = os.path.join(self._store.location, relpath)
        _check_inside_store(f"Run({self.run_id}).{what}", self._store, path)
        return self._store.read_file(relpath)

    def plot_steps(self, name: str, ax: Axes | None = None) -> Figure:
        """Draw the per-step series ``name`` of this run; return the matplotlib Figure.

        Drawn on ``ax`` when given (its figure is returned). Needs matplotlib
        (``pip install 'metalab[plot]'``); see :func:`metalab.plotting.plot_run_steps`.
        """
        # Imported here: plotting needs matplotlib, and builds on this module.
        from metalab.plotting import plot_run_steps

        return plot_run_steps(self, name, ax=ax)

    def _text(self, what: str, relpath: str | None) -> str:
        return "" if relpath is None else self._read_file(what, relpath).decode("utf-8")

    @property
    def logs(self) -> str:
        """The lines the run logged through ``capture.log`` or its runtime logger."""
        return self._text("logs", self.record.logs)

    @property
    def stdout(self) -> str:
        """What the run printed to standard output."""
        return self._text("stdout", self.record.stdout)

    @property
    def stderr(self) -> str:
        """What the run printed to standard error."""
        return self._text("stderr", self.record.stderr)

    @property
    def started_at(self) -> str:
        """ISO 8601 UTC start time."""
        return self.record.started_at

    @property
    def duration(self) -> float:
        """Wall time of the operation, in seconds."""
        return self.record.duration

    @property
    def verification(self) -> dict[str, Any] | None:
        """The latest ``metalab verify`` outcome for this run, or None if never verified.

        ``{"outcome", "reason", "detail", "verified_at", "host"}``; ``outcome`` is
        ``"identical"``, ``"differing"`` or ``"could not replay"`` (``docs/verify.md``).
        """
        return None if self._verified is None else dict(self._verified)

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


class _Snapshot:
    """What :class:`Results` reads from a store: each part on first use, then kept.

    The records are kept as the JSON the store holds (about their size on disk); the
    Run objects are built from it when first needed, and :meth:`Results.to_dataframe`
    can build a table from it with pyarrow without them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        """The store's manifest."""
        return self.store.read_manifest()

    @cached_property
    def ndjson(self) -> bytes:
        """The current record of every run, as JSON lines (each ends with a newline)."""
        return self.store.records_ndjson()

    @cached_property
    def records_json(self) -> list[bytes]:
        """The current record of every run, as JSON, in the store's order."""
        return _Lines(self.ndjson).all()

    def runs(self, lines: list[bytes] | None = None) -> list[Run]:
        """Build the runs of ``lines`` (default: every record), by (case, replicate)."""
        records = sorted(
            records_from_json(self.records_json if lines is None else lines),
            key=lambda r: (r.case_index, r.replicate_index),
        )
        verified = self.verified
        derived = current_derived(
            self.derived_entries, {record.run_id: record.attempt for record in records}
        )
        return [
            Run(
                record,
                self.store,
                self.manifest,
                verified.get(record.run_id),
                derived.get(record.run_id),
            )
            for record in records
        ]

    @cached_property
    def derived_entries(self) -> list[dict[str, Any]]:
        """Every derived-metric entry of the store (:meth:`Store.derived_entries`)."""
        return self.store.derived_entries()

    @cached_property
    def verified(self) -> dict[str, dict[str, Any]]:
        """The latest verification outcome of each verified run, by run ID."""
        return verdicts(self.store.verifications())


#: The start of a record's JSON: its run ID (record.HEADER_FIELDS).
_RUN_ID_HEAD = re.compile(rb'\{"run_id":"([0-9a-f]*)"')


def find_runs(store: Store, prefix: str) -> tuple[list[Run], int]:
    """Return the runs of ``store`` whose ID starts with ``prefix``, and how many it holds.

    The run whose ID is ``prefix`` comes alone. Only the matching records are parsed:
    finding one run of a 100,000-run store takes a tenth of loading them all.
    """
    snapshot = _Snapshot(store)
    found: dict[str, bytes] = {}
    for line in snapshot.records_json:
        head = _RUN_ID_HEAD.match(line)
        rid = head.group(1).decode() if head else str(json.loads(line).get("run_id"))
        if rid.startswith(prefix):
            found[rid] = line
    if prefix in found:
        found = {prefix: found[prefix]}
    return snapshot.runs(list(found.values())), len(snapshot.records_json)


def verdicts(outcomes: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the latest verdict of each run ``metalab verify`` checked, by run ID.

    ``outcomes`` are a store's verification records, oldest first; a verdict is
    ``{"outcome", "reason", "detail", "verified_at", "host"}`` (:attr:`Run.verification`).
    """
    latest: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        when = {"verified_at": outcome.get("verified_at"), "host": outcome.get("host")}
        for verdict in outcome.get("runs") or []:
            if isinstance(verdict, dict) and isinstance(verdict.get("run_id"), str):
                latest[verdict["run_id"]] = {
                    "outcome": verdict.get("outcome"),
                    "reason": verdict.get("reason", ""),
                    "detail": verdict.get("detail", ""),
                    **when,
                }
    return latest


def verified_text(verdict: dict[str, Any] | None) -> str | None:
    """Return a verdict as people read it; None for a run never verified.

    >>> verified_text({"outcome": "identical", "reason": "", "host": "h",
    ...                "verified_at": "2026-12-01T10:02:03.5Z"})
    'verified identical on 2026-12-01 10:02:03 UTC on h'
    """
    if verdict is None:
        return None
    when = str(verdict.get("verified_at") or "?")[:19].replace("T", " ")
    reason = f" ({verdict['reason']})" if verdict.get("reason") else ""
    return f"verified {verdict.get('outcome')} on {when} UTC on {verdict.get('host')}{reason}"


class Results:
    """The runs of one store, ordered by (case index, replicate index).

    ``manifest`` is the store's experiment manifest (None when unknown); runs loaded
    by :meth:`from_store` share it.
    """

    def __init__(self, runs: list[Run], manifest: dict[str, Any] | None = None) -> None:
        # Set here, these shadow the cached properties that from_store's results read.
        self._runs = runs
        self._manifest = manifest
        self._snapshot: _Snapshot | None = None

    @classmethod
    def from_store(cls, store: Store) -> Results:
        """Return the runs of ``store``, read on first use and then kept.

        Nothing is read here, so ``metalab.run`` can return the results of a million
        runs without holding them. The first use (``len``, iteration, indexing, a
        table, ``manifest``, ...) reads the manifest and the current record of every
        run, once: later uses see the store as it was then.
        """
        results = cls.__new__(cls)
        results._snapshot = _Snapshot(store)
        return results

    # Only results made by from_store get here (it sets _snapshot); __init__ sets these.
    @cached_property
    def _runs(self) -> list[Run]:
        return self._snapshot.runs()

    @cached_property
    def _manifest(self) -> dict[str, Any] | None:
        return self._snapshot.manifest

    @cached_property
    def _by_id(self) -> dict[str, Run]:
        return {run.run_id: run for run in self._runs}

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
        if self._snapshot is not None and "_runs" not in vars(self):
            return self._snapshot.ndjson.count(b"\n")  # counting needs no Run objects
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

    def verify(
        self,
        sample: int | str | None = None,
        experiment: Any = None,
        *,
        workers: int | None = None,
        seed: int = 0,
    ) -> Verification:
        """Replay a sample of this store's completed runs and compare them bit for bit.

        As ``metalab verify`` (``docs/verify.md``): ``sample`` runs chosen with ``seed``
        (None: 20, or all if fewer; ``"all"``: every one), replayed in fresh processes
        with ``experiment`` (an Experiment, ``"FILE.py[:VARIABLE]"``, or None for the
        entry point the manifest records). The outcome is appended to the store and
        returned; these results keep what they had read.
        """
        if self._snapshot is None:
            raise InvalidArgumentError(
                "Results.verify(): these results were not loaded from a store; use "
                "metalab.load_results(STORE).verify()."
            )
        # Imported here: replays need the worker and the executors, which reading does not.
        from metalab.verify import verify

        return verify(
            self._snapshot.store, sample=sample, experiment=experiment, workers=workers, seed=seed
        )

    def compute_derived(self, *functions: Callable[[Run], Any] | str | DerivedFunction) -> Results:
        """Compute derived metrics of the successful runs here, store them, and return self.

        Each function (or ``"package.module:function"``) takes a :class:`Run` and returns
        a dict of metric names to numbers (``docs/derived.md``). It is computed only for
        runs without a value from the same code: a second call computes nothing, and a
        changed function computes again. Values are appended to each run's store beside
        its records and shown at once by these results (as :attr:`Run.derived`, and as
        ``derived.<metric>`` in tables, summaries and plots), and by results loaded
        later. A function that raises on a run keeps that run's error
        (:attr:`Run.derived_errors`) and goes on, with a
        :class:`~metalab.derived.DerivedMetricWarning`; one that returns something other
        than a dict of numbers raises :class:`~metalab.errors.InvalidTypeError` (the
        values computed before are kept). Failed runs get no derived metrics.
        """
        resolved = resolve_derived("Results.compute_derived", list(functions))
        targets = [(run, run._store, run._derived) for run in self._runs if run.status == SUCCESS]
        compute_derived("Results.compute_derived()", targets, resolved)
        return self

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

        Derived metrics (:meth:`compute_derived`) follow the metrics, as
        ``derived.<metric>``.

        With pyarrow installed, the DataFrame of results loaded from a store is built
        by pyarrow from the records' JSON, seven times faster at 100,000 runs; it equals
        the one built row by row, which is used wherever pyarrow would type a column
        otherwise.
        """
        _check_bool("Results.table", "as_dataframe", as_dataframe)
        if not as_dataframe:
            return self._table()[1]
        pandas = _pandas("Results.table(as_dataframe=True)")
        # Derived metrics live beside the records' JSON, which is all pyarrow reads.
        if self._snapshot is not None and not self._has_derived() and optional("pyarrow"):
            frame = _arrow_frame(self._snapshot.ndjson)
            if frame is not None:
                return frame
        columns, rows = self._table()
        return pandas.DataFrame(rows, columns=columns)

    def _has_derived(self) -> bool:
        """Whether any run may show derived metrics (without building the runs if unbuilt)."""
        if self._snapshot is not None and "_runs" not in vars(self):
            return bool(self._snapshot.derived_entries)
        return any(run._derived for run in self._runs)

    def to_dataframe(self) -> DataFrame:
        """Return :meth:`table` as a pandas DataFrame (``pip install 'metalab[pandas]'``)."""
        return self.table(as_dataframe=True)

    def _table(self) -> tuple[list[str], list[dict[str, Any]]]:
        measured = [run._measured() for run in self._runs]
        param_columns, metric_columns = _column_names(
            (name for run in self._runs for name in run.params), _metric_names(measured)
        )
        columns = _table_columns(param_columns, metric_columns)
        rows = []
        for run, values in zip(self._runs, measured, strict=True):
            row: dict[str, Any] = {"run_id": run.run_id, "status": run.status}
            row.update((column, run.params.get(p)) for p, column in param_columns.items())
            row.update((column, values.get(m)) for m, column in metric_columns.items())
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
            writer.writerows([csv_cell(row[c]) for c in columns] for row in rows)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`table` to ``path`` as a JSON list of row objects.

        JSON has no NaN or infinity: non-finite values are written as ``null``.
        """
        _, rows = self._table()
        text = json.dumps(json_safe(rows), indent=2, ensure_ascii=False, allow_nan=False)
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

        Derived metrics (:meth:`compute_derived`) come after the captured ones, their
        ``metric`` named ``derived.<metric>``.

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
            measured = [run._measured() for run in members]
            for metric in _metric_names(measured):
                present = [found[metric] for found in measured if metric in found]
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


def _column_names(
    params: Iterable[str], metrics: Iterable[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Return the :meth:`Results.table` column of each param and metric, in first-seen order."""
    param_names = dict.fromkeys(params)
    param_columns = {p: f"param.{p}" if p in _RUN_COLUMNS else p for p in param_names}
    metric_columns = {
        m: f"metric.{m}" if m in param_names or m in _RUN_COLUMNS else m
        for m in dict.fromkeys(metrics)
    }
    return param_columns, metric_columns


def _metric_names(measured: list[dict[str, Any]]) -> list[str]:
    """Return the metric names of runs' :meth:`Run._measured`: captured, then derived.

    Each kind in the order its names first appear.
    """
    names = dict.fromkeys(name for values in measured for name in values)
    return sorted(names, key=lambda name: name.startswith(PREFIX))


def _table_columns(param_columns: dict[str, str], metric_columns: dict[str, str]) -> list[str]:
    """Return the columns of :meth:`Results.table`, in order."""
    return [
        "run_id",
        "status",
        *param_columns.values(),
        *metric_columns.values(),
        "replicate_index",
        "duration",
    ]


# A JSON string (kept as it is) or a bare non-finite number, which Python's json module
# writes and pyarrow's JSON reader refuses.
_NONFINITE = re.compile(rb'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')
# Column types that pyarrow converts to what pandas infers from the same Python values.
_SCALAR_TYPES = ("null", "bool", "int64", "double", "string")
# pandas keeps an integer beyond int64 as an object (or uint64); pyarrow reads it as a
# double. Doubles this large take the row path, where that difference cannot arise.
_INT64_LIMIT = 2.0**63


def _arrow_frame(data: bytes) -> DataFrame | None:
    """Return the :meth:`Results.table` DataFrame of these records, built by pyarrow.

    ``data`` is the records' JSON lines (:meth:`Store.records_ndjson`). pyarrow's JSON reader
    skips building Runs and rows: 0.6 s against 4.3 s for 100,000 runs, store read
    included (``docs/store.md``). Returns None where the two paths could differ, and the caller
    builds the table row by row: pyarrow cannot read the records (a column of mixed
    types), a param or metric column is not a plain scalar (lists, dicts, strings
    pyarrow takes for timestamps), two columns share a name, an integer is beyond
    int64, or a non-finite value lies in a column pandas would not make float64.
    """
    if not data:
        return None
    pyarrow = require("pyarrow", feature="Results.to_dataframe()", extra="parquet")
    compute = require("pyarrow.compute", feature="Results.to_dataframe()", extra="parquet")
    arrow_json = require("pyarrow.json", feature="Results.to_dataframe()", extra="parquet")
    refused = (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, pyarrow.ArrowNotImplementedError)
    lines = _Lines(data)
    nonfinite: dict[int, dict[str, Any]] = {}
    try:
        table = arrow_json.read_json(pyarrow.BufferReader(data))
    except refused:
        # pyarrow reads no NaN or Infinity: write those values as null for it, and put
        # them back from the records' own parse below. Anything else it refuses is
        # left to the row-by-row table.
        if b"NaN" not in data and b"Infinity" not in data:
            return None
        fixed = lines.all()
        for index, line in enumerate(fixed):
            if b"NaN" in line or b"Infinity" in line:
                nonfinite[index] = json.loads(line)
                fixed[index] = _NONFINITE.sub(_null_unless_string, line)
        try:
            table = arrow_json.read_json(pyarrow.BufferReader(b"\n".join(fixed)))
        except refused:
            return None
    order = compute.sort_indices(
        table, sort_keys=[("case_index", "ascending"), ("replicate_index", "ascending")]
    )
    fields = {part: _struct_fields(table.schema.field(part).type) for part in ("params", "metrics")}
    if any(str(kind) not in _SCALAR_TYPES for kinds in fields.values() for kind in kinds.values()):
        return None
    # Columns come in the order names first appear in the sorted runs, as in _table;
    # usually the first run names them all, so few records are parsed for it.
    seen: dict[str, dict[str, None]] = {"params": {}, "metrics": {}}
    for index in order:
        entry = json.loads(lines[index.as_py()])
        for part in seen:
            seen[part].update(dict.fromkeys(entry[part]))
        if all(len(seen[part]) == len(fields[part]) for part in seen):
            break
    param_columns, metric_columns = _column_names(seen["params"], seen["metrics"])
    columns = _table_columns(param_columns, metric_columns)
    if len(set(columns)) < len(columns):
        return None
    arrays = [table.column("run_id"), table.column("status")]
    for part, names in (("params", param_columns), ("metrics", metric_columns)):
        positions = list(fields[part])
        arrays += [compute.struct_field(table.column(part), [positions.index(n)]) for n in names]
    arrays += [table.column("replicate_index"), table.column("duration")]
    for array in arrays:
        if array.type != "double":
            continue
        # Integers beyond int64 come as doubles; infinities (read as such) are floats.
        finite = compute.if_else(compute.is_finite(array), compute.abs(array), 0.0)
        largest = compute.max(finite).as_py()
        if largest is not None and largest >= _INT64_LIMIT:
            return None
    frame = pyarrow.table(arrays, names=columns).take(order).to_pandas()
    return _put_back_nonfinite(frame, nonfinite, order, param_columns, metric_columns)


class _Lines:
    """The lines of JSON-lines ``data`` by index, found when first asked for.

    The column order needs the first few records in sweep order only: those are
    found by scanning for newlines, not by splitting a million lines.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._starts = [0]  # start of each line found so far

    def __getitem__(self, index: int) -> bytes:
        data, starts = self._data, self._starts
        while len(starts) <= index + 1:
            starts.append(data.index(b"\n", starts[-1]) + 1)
        return data[starts[index] : starts[index + 1] - 1]

    def all(self) -> list[bytes]:
        """Every line, as a list."""
        lines = self._data.split(b"\n")
        del lines[-1]  # after the last newline: nothing
        return lines


def _struct_fields(kind: Any) -> dict[str, Any]:
    """Return the field names and types of a pyarrow struct type."""
    return {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}


def _null_unless_string(match: re.Match[bytes]) -> bytes:
    return match[0] if match[0].startswith(b'"') else b"null"


def _put_back_nonfinite(
    frame: DataFrame,
    entries: dict[int, dict[str, Any]],
    order: Any,
    param_columns: dict[str, str],
    metric_columns: dict[str, str],
) -> DataFrame | None:
    """Put the non-finite values of ``entries`` (records by line) back into ``frame``.

    They were read as null: NaN already, in a float64 column, which is where pandas
    puts them too; infinities are written in. Returns None if one is in a column that
    is not float64 (pandas would have typed it otherwise).
    """
    if not entries:
        return frame
    row_of = dict(zip(order.to_pylist(), range(len(order)), strict=True))
    cells: dict[str, dict[int, float]] = {}
    for index, entry in entries.items():
        values = [(param_columns[p], v) for p, v in entry["params"].items()]
        values += [(metric_columns[m], v) for m, v in entry["metrics"].items()]
        values.append(("duration", entry["duration"]))
        for column, value in values:
            if isinstance(value, float) and not math.isfinite(value):
                cells.setdefault(column, {})[row_of[index]] = value
    for column, values in cells.items():
        if frame[column].dtype != "float64":
            return None
        array = frame[column].to_numpy(copy=True)
        for row, value in values.items():
            array[row] = value
        frame[column] = array
    return frame


def _check_inside_store(where: str, store: Store, path: Any) -> None:
    """Refuse ``path`` if, links followed, it leaves the folder of a store kept in a folder."""
    location = store.location
    if not os.path.isdir(location):  # a store elsewhere (a URL) hands out its own files
        return
    root = os.path.realpath(location)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise InvalidArgumentError(
            f"{where}: {os.fspath(path)!r} leads to {real!r}, outside the store folder "
            f"{root!r} (a symbolic link); artifacts are read only from inside the store. "
            f"Replace the link with a copy of the file if you trust it."
        )


def _check_sha256(where: str, ref: ArtifactRef, path: Any) -> None:
    """Warn when the artifact's file no longer has the SHA-256 recorded at capture time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != ref.sha256:
        warnings.warn(
            f"{where}: the file {ref.path} has SHA-256 {digest.hexdigest()[:12]}..., but the "
            f"run captured {ref.sha256[:12]}...: it was changed after capture (edited or "
            f"corrupted); 'metalab verify' replays the run to get it back.",
            StoreWarning,
            stacklevel=3,
        )


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


def csv_cell(value: Any) -> Any:
    """Return ``value`` as a CSV cell: None empty, lists and dicts as JSON text."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def json_safe(value: Any) -> Any:
    """Return ``value`` as strict JSON would hold it: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
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
