"""Results: the runs in a store, as objects and tables. Imports seeds, record, capture, store.

Results read stores and never import the runner, so a store can be loaded without
the experiment's code. Runs are ordered by (case index, replicate index): the same
sweep gives the same order whatever executor ran it.

>>> import metalab, tempfile
>>> @metalab.operation
... def square(params, capture):
...     capture.metric("y", params["x"] ** 2)
>>> exp = metalab.Experiment("sq", "1", {}, square, metalab.grid(x=[1, 2]), metalab.seeds(0))
>>> result = metalab.run(exp, store=tempfile.mkdtemp())
>>> [run.metrics["y"] for run in result]
[1, 4]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from metalab.capture import decode_artifact, decode_steps
from metalab.errors import CaseIndexError, InvalidArgumentError, InvalidTypeError
from metalab.record import FAILED, SUCCESS, RunRecord
from metalab.seeds import SeedBundle
from metalab.store import Store, open_store

__all__ = ["Results", "Run", "load_results"]


class Run:
    """One run of a store: its record, plus access to its artifacts, steps and logs."""

    __slots__ = ("_store", "record")

    def __init__(self, record: RunRecord, store: Store) -> None:
        self.record = record
        self._store = store

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self.status!r}, params={self.params!r})"

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

    def steps(self, name: str) -> tuple[list[int], list[float]]:
        """Return the per-step series of metric ``name`` as (steps, values)."""
        series = self._step_series()
        if name not in series:
            known = ", ".join(sorted(series)) or "none"
            raise InvalidArgumentError(
                f"Run({self.run_id}).steps({name!r}): no per-step metric of that name; "
                f"this run has: {known}."
            )
        steps, values = series[name]
        return list(steps), list(values)

    def _step_series(self) -> dict[str, Any]:
        if self.record.steps is None:
            return {}
        return decode_steps(self._store.read_file(self.record.steps))

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


class Results:
    """The runs of one store, ordered by (case index, replicate index)."""

    def __init__(self, runs: list[Run]) -> None:
        self._runs = runs
        self._by_id = {run.run_id: run for run in runs}

    @classmethod
    def from_store(cls, store: Store) -> Results:
        """Load the current record of every run in ``store``."""
        records = sorted(store.records(), key=lambda r: (r.case_index, r.replicate_index))
        return cls([Run(record, store) for record in records])

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
        return Results([run for run in self._runs if run.status == SUCCESS])

    @property
    def failed(self) -> Results:
        """The runs that failed."""
        return Results([run for run in self._runs if run.status == FAILED])

    def filter(self, predicate: Callable[[Run], bool] | None = None, **params: Any) -> Results:
        """Keep runs whose params equal every given value, and that satisfy ``predicate``.

        >>> # result.filter(n_samples=1000) or result.filter(lambda run: run.metrics["y"] > 1)
        """
        return Results(
            [
                run
                for run in self._runs
                if all(key in run.params and run.params[key] == v for key, v in params.items())
                and (predicate is None or predicate(run))
            ]
        )

    def table(self) -> list[dict[str, Any]]:
        """One flat row per run: run_id, status, params, final metrics, replicate, duration."""
        return [
            {
                "run_id": run.run_id,
                "status": run.status,
                **run.params,
                **run.metrics,
                "replicate_index": run.record.replicate_index,
                "duration": run.duration,
            }
            for run in self._runs
        ]


def load_results(path: str | os.PathLike[str] | Store) -> Results:
    """Load the runs of an existing store (no experiment code needed)."""
    return Results.from_store(open_store(path, create=False))
