"""Derived metrics: functions of a finished run, computed afterwards and stored beside it.

Imports errors, operation (the code hash), record and store. Results
(:meth:`Results.compute_derived <metalab.results.Results.compute_derived>` and the
values shown on load), the report and the runner (``run(derived_metrics=...)``) import
it; it takes runs as the objects results hand it, never importing results.

A derived metric is a function ``fn(run) -> {"name": number, ...}`` of a
:class:`~metalab.results.Run`. Each value computed is appended to the store as an
*entry* (:meth:`Store.put_derived <metalab.store.Store.put_derived>`), a plain dict::

    {"function": "gap", "code_sha256": "<64 hex>", "run_id": "<32 hex>", "attempt": 1,
     "computed_at": "<UTC ISO time>", "metrics": {"gap": 0.25}}   # or "error": {...}

keyed by the function's name and the SHA-256 of its code (normalised as an
operation's is: comments, docstrings and formatting do not count). Run records are
never touched, and run IDs never depend on derived metrics. Of a function's entries,
those of the code computed last are current (:func:`current_derived`): a changed
function hides the values of its earlier code until computed again, and switching back
to an earlier code computes again. An entry counts only for the attempt of the run it
was computed on: a run made again needs its derived metrics again. Tables, summaries,
plots and the report name derived metrics ``derived.<metric>`` (:data:`PREFIX`).
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.operation import _source_sha256
from metalab.store import Store, StoreWarning

__all__ = [
    "PREFIX",
    "DerivedFunction",
    "DerivedMetricWarning",
    "compute_derived",
    "current_derived",
    "derived_metrics",
    "resolve_derived",
]

#: What names a derived metric in tables, summaries, plots and the report:
#: ``derived.<metric>``.
PREFIX = "derived."

# Entries appended to the store at a time while computing: an interrupted computation
# keeps what it computed, and a large one is not held whole in memory.
_BATCH = 500


class DerivedMetricWarning(UserWarning):
    """A derived-metric function raised on some runs; their errors are kept with tracebacks."""


@dataclass(frozen=True)
class DerivedFunction:
    """A derived-metric function checked and ready: the callable, its name and code hash.

    Attributes:
        func: The function, called with one :class:`~metalab.results.Run`.
        name: Its ``__name__``: with the code hash, the key of its stored values.
        code_sha256: SHA-256 of its code, normalised as an operation's code is.

    """

    func: Callable[[Any], Any]
    name: str
    code_sha256: str

    def entry(self, where: str, run: Any) -> dict[str, Any]:
        """Call the function on ``run``; return the entry to store (metrics or error).

        An exception in the function becomes the entry's ``error`` (type, message,
        traceback). A result that is not a mapping of metric names to numbers raises
        :class:`~metalab.errors.InvalidTypeError`: that is a bug in the function, the
        same on every run, which a stored error would only hide.
        """
        base = {
            "function": self.name,
            "code_sha256": self.code_sha256,
            "run_id": run.run_id,
            "attempt": run.record.attempt,
        }
        try:
            result = self.func(run)
        except Exception as exc:
            error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": "".join(traceback.format_exception(exc)),
            }
            return {**base, "computed_at": _now(), "error": error}
        return {**base, "computed_at": _now(), "metrics": self._checked(where, run, result)}

    def _checked(self, where: str, run: Any, result: Any) -> dict[str, int | float | bool]:
        """Return ``result`` as ``{name: int | float | bool}``, or raise naming the value."""
        if not isinstance(result, Mapping):
            raise InvalidTypeError(
                f"{where}: the derived metric {self.name!r} returned {result!r:.80} "
                f"({type(result).__name__}) for run {run.run_id}; it must return a dict "
                f"of metric names to numbers, e.g. return {{'gap': 0.25}}."
            )
        metrics: dict[str, int | float | bool] = {}
        for key, value in result.items():
            if not isinstance(key, str) or not key:
                raise InvalidTypeError(
                    f"{where}: the derived metric {self.name!r} returned the key {key!r:.80} "
                    f"for run {run.run_id}; metric names must be non-empty str, e.g. 'gap'."
                )
            if isinstance(value, bool) or _numpy_bool(value):
                metrics[key] = bool(value)
            elif isinstance(value, numbers.Integral):
                metrics[key] = int(value)
            elif isinstance(value, numbers.Real):
                metrics[key] = float(value)
            else:
                raise InvalidTypeError(
                    f"{where}: the derived metric {self.name!r} returned {key!r}: "
                    f"{value!r:.80} ({type(value).__name__}) for run {run.run_id}; each "
                    f"value must be a number (int, float or bool): convert it, e.g. "
                    f"float(value), or leave the key out."
                )
        return metrics


def resolve_derived(where: str, specs: Any) -> list[DerivedFunction]:
    """Check ``specs`` (a function or ``"package.module:fn"``, or a list of them).

    Returns one :class:`DerivedFunction` each, in order. Raises before anything is
    computed: an import that fails, a name the module lacks, something not callable, a
    function without a name of its own (a lambda) or taking no argument, and two
    functions of one name. None stands for none.
    """
    if specs is None:
        return []
    if callable(specs) or isinstance(specs, str | DerivedFunction):
        specs = [specs]
    if not isinstance(specs, Sequence):
        raise InvalidTypeError(
            f"{where}(derived_metrics={specs!r:.80}): must be a list of functions or "
            f"'package.module:function' strings, e.g. derived_metrics=[gap, 'mylab.metrics:gap']."
        )
    functions = [_resolve(where, spec) for spec in specs]
    seen: dict[str, DerivedFunction] = {}
    for function in functions:
        if function.name in seen and seen[function.name].func is not function.func:
            raise InvalidArgumentError(
                f"{where}: two derived-metric functions are named {function.name!r} "
                f"({seen[function.name].func!r} and {function.func!r}); a function's name "
                f"keys its stored values, so rename one."
            )
        seen[function.name] = function
    return list({function.name: function for function in functions}.values())


def _resolve(where: str, spec: Any) -> DerivedFunction:
    if isinstance(spec, DerivedFunction):
        return spec
    func = _imported(where, spec) if isinstance(spec, str) else spec
    if not callable(func):
        raise InvalidTypeError(
            f"{where}: derived metric {spec!r:.80} is a {type(func).__name__}, not a "
            f"function; pass a function of a Run that returns a dict of numbers."
        )
    name = getattr(func, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidArgumentError(
            f"{where}: derived metric {func!r:.80} has no name of its own ({name!r}); its "
            f"name keys its stored values: define it with def, e.g. def gap(run): ..."
        )
    try:
        inspect.signature(func).bind(None)
    except TypeError:
        raise InvalidArgumentError(
            f"{where}: derived metric {name!r} cannot be called with one argument; it "
            f"is called as {name}(run) with a metalab Run: def {name}(run): ..."
        ) from None
    except ValueError:  # no signature to read (a builtin): calling it will tell
        pass
    return DerivedFunction(func, name, _source_sha256(func))


def _imported(where: str, spec: str) -> Any:
    """Return the object ``"package.module:attr.path"`` names, importing the module."""
    module_name, colon, path = spec.partition(":")
    if not colon or not module_name or not path:
        raise InvalidArgumentError(
            f"{where}: derived metric {spec!r}: a string must be 'package.module:function', "
            f"e.g. 'mylab.metrics:gap'."
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(
            f"{where}: derived metric {spec!r}: cannot import {module_name!r} ({exc}); check "
            f"the module path, and that it is importable here (installed, or on sys.path)."
        ) from exc
    for part in path.split("."):
        if not hasattr(found, part):
            raise InvalidArgumentError(
                f"{where}: derived metric {spec!r}: {module_name!r} has no {path!r}; check "
                f"the name after the ':'."
            )
        found = getattr(found, part)
    return found


def compute_derived(
    where: str,
    targets: Iterable[tuple[Any, Store, dict[str, dict[str, Any]]]],
    functions: Sequence[DerivedFunction],
) -> int:
    """Compute ``functions`` over the runs of ``targets`` that lack a current value; store.

    Each target is ``(run, its store, its current entries by function name)``; the
    entries are updated in place once stored. A run whose entry for a function has that
    function's code hash is skipped: values are computed once per code. Entries are
    appended to each run's store in batches, so an interruption keeps what was done.
    An exception in a function is kept as that run's error, the other runs go on, and a
    :class:`DerivedMetricWarning` says how many failed. Returns the entries written.
    """
    targets = list(targets)
    for store in _stores(targets).values():
        store.put_derived([])  # a store that keeps none refuses now, before any work
    written = 0
    for function in functions:
        pending: list[tuple[Any, Store, dict[str, dict[str, Any]], dict[str, Any]]] = []
        failed = []
        try:
            for run, store, entries in targets:
                if entries.get(function.name, {}).get("code_sha256") == function.code_sha256:
                    continue
                entry = function.entry(where, run)
                if "error" in entry:
                    failed.append(entry)
                else:
                    _check_unclaimed(where, function, run.run_id, entry["metrics"], entries)
                pending.append((run, store, entries, entry))
                if len(pending) >= _BATCH:
                    written += _store(pending)
        finally:
            written += _store(pending)
        if failed:
            first = failed[0]
            warnings.warn(
                f"{where}: the derived metric {function.name!r} raised on {len(failed)} "
                f"run(s), first on {first['run_id']}: {first['error']['type']}: "
                f"{first['error']['message']}; the other values are kept, and each "
                f"traceback is in Run.derived_errors[{function.name!r}].",
                DerivedMetricWarning,
                stacklevel=3,
            )
    return written


def _stores(targets: list[tuple[Any, Store, Any]]) -> dict[int, Store]:
    return {id(store): store for _, store, _ in targets}


def _store(pending: list[tuple[Any, Store, dict[str, dict[str, Any]], dict[str, Any]]]) -> int:
    """Append the pending entries to their stores, then show them on their runs; clear."""
    by_store: dict[int, list[dict[str, Any]]] = {}
    for _, store, _, entry in pending:
        by_store.setdefault(id(store), []).append(entry)
    stores = _stores([(None, store, None) for _, store, _, _ in pending])
    for key, entries in by_store.items():
        stores[key].put_derived(entries)
    for _, _, current, entry in pending:
        current[entry["function"]] = entry
    count = len(pending)
    pending.clear()
    return count


def _check_unclaimed(
    where: str,
    function: DerivedFunction,
    run_id: str,
    metrics: dict[str, Any],
    entries: dict[str, dict[str, Any]],
) -> None:
    """Refuse a metric name that another derived function already gives this run."""
    for other, entry in entries.items():
        clash = sorted(set(metrics) & set(entry.get("metrics") or {}))
        if other != function.name and clash:
            raise InvalidArgumentError(
                f"{where}: the derived metric {function.name!r} returned {clash[0]!r} for "
                f"run {run_id}, which the derived metric {other!r} already gives it; one "
                f"name would show two values: rename the metric in one of them."
            )


def current_derived(
    entries: Iterable[Any], attempts: Mapping[str, int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Return the current entry of each (run, function): ``{run_id: {function: entry}}``.

    ``entries`` are a store's (:meth:`Store.derived_entries
    <metalab.store.Store.derived_entries>`), ``attempts`` the attempt of each run's
    current record. Of each function, only the code whose entries were computed last
    counts; an entry counts for its run's current attempt only; of several entries for
    one run and code, the latest. A malformed entry is skipped with a ``StoreWarning``.
    """
    valid = []
    skipped = 0
    latest: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if not _well_formed(entry):
            skipped += 1
            continue
        valid.append(entry)
        stamp = (entry["computed_at"], entry["code_sha256"])
        if stamp > latest.get(entry["function"], ("", "")):
            latest[entry["function"]] = stamp
    if skipped:
        warnings.warn(
            f"{skipped} derived-metric entr{'y' if skipped == 1 else 'ies'} of the store "
            f"skipped: not of the form Store.put_derived writes (edited by hand?).",
            StoreWarning,
            stacklevel=3,
        )
    current: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in valid:
        name = entry["function"]
        if entry["code_sha256"] != latest[name][1]:
            continue
        if attempts.get(entry["run_id"]) != entry["attempt"]:
            continue
        of_run = current.setdefault(entry["run_id"], {})
        if name not in of_run or entry["computed_at"] >= of_run[name]["computed_at"]:
            of_run[name] = entry
    return current


def derived_metrics(entries: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the metrics of a run's current entries (by function), in function-name order."""
    metrics: dict[str, Any] = {}
    for name in sorted(entries):
        metrics.update(entries[name].get("metrics") or {})
    return metrics


def _well_formed(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    texts = ("function", "code_sha256", "run_id", "computed_at")
    attempt = entry.get("attempt")
    return (
        all(isinstance(entry.get(key), str) for key in texts)
        and isinstance(attempt, int)
        and not isinstance(attempt, bool)
        and (isinstance(entry.get("metrics"), dict) != isinstance(entry.get("error"), dict))
    )


def _numpy_bool(value: Any) -> bool:
    """Whether ``value`` is a NumPy bool scalar (NumPy numbers are ``numbers`` already)."""
    dtype = getattr(value, "dtype", None)
    return getattr(dtype, "kind", None) == "b" and getattr(value, "ndim", None) == 0


def _now() -> str:
    # Microseconds: the code computed last is told by this time (current_derived).
    return datetime.now(UTC).isoformat(timespec="microseconds")
