"""What a run leaves behind: RunRecord and ArtifactRef, plain values. Imports errors.

A record is written once, when its run ends, and never changed; a retried run writes
a new record with a higher ``attempt``. Stores keep records as JSON objects made by
:meth:`RunRecord.to_dict`, so every field here is a JSON value;
:func:`records_from_json` reads many of them back at once.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from metalab._json import compact_encoder, quoted
from metalab.errors import InvalidArgumentError

__all__ = [
    "FAILED",
    "HEADER_FIELDS",
    "RECORD_FORMAT",
    "SUCCESS",
    "ArtifactRef",
    "RecordEncoder",
    "RunRecord",
    "gc_paused",
    "records_from_json",
]

SUCCESS = "success"
FAILED = "failed"

#: Version of the record layout written by :meth:`RunRecord.to_dict`.
RECORD_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A file a run produced, stored beside its record.

    Attributes:
        name: The name given to ``capture.artifact`` (unique within the run).
        kind: How it was encoded: ``json``, ``numpy``, ``bytes``, ``file``, ``parquet``,
            ``pickle``, ``text`` or ``figure``.
        path: Where it lies, relative to the store's root, with ``/`` separators.
        size: Its size in bytes.
        sha256: SHA-256 of its bytes, hex.
        extra: Further paths or facts (a figure's SVG twin, a DataFrame's shape).

    """

    name: str
    kind: str
    path: str
    size: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything known about one finished run (successful or failed).

    ``metrics`` holds the final value of each metric; per-step series live in the file
    named by ``steps`` when the run logged any; ``logs``, ``stdout`` and ``stderr`` name
    the files of the run's log lines and printed output (all paths relative to the
    store root, None when there was nothing to keep). Non-finite
    metric values are kept and their names listed in ``nonfinite_metrics``.
    ``error`` is ``{"type", "message", "traceback"}`` for a failed run.
    Times are ISO 8601 UTC strings; ``duration`` is in seconds; ``peak_memory`` is the
    worker process's peak resident size in bytes when the run ended.
    """

    run_id: str
    experiment: str
    version: str
    case_index: int
    replicate_index: int
    params: dict[str, Any]
    seeds: dict[str, Any]
    status: str
    attempt: int = 1
    metrics: dict[str, Any] = field(default_factory=dict)
    nonfinite_metrics: list[str] = field(default_factory=list)
    steps: str | None = None
    artifacts: list[ArtifactRef] = field(default_factory=list)
    logs: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    error: dict[str, str] | None = None
    started_at: str = ""
    finished_at: str = ""
    duration: float = 0.0
    host: str = ""
    pid: int = 0
    worker: str = ""
    peak_memory: int = 0
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in (SUCCESS, FAILED):
            raise InvalidArgumentError(
                f"RunRecord(status={self.status!r}): must be {SUCCESS!r} or {FAILED!r}."
            )

    @property
    def ok(self) -> bool:
        """True for a successful run."""
        return self.status == SUCCESS

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form, with ``"format": RECORD_FORMAT``.

        The keys come in :data:`HEADER_FIELDS` order first (``run_id``, ``status``,
        ``attempt``), then the other fields as declared, then ``format``: a store reads
        which runs are done from the start of each line (``docs/store.md``).
        """
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        data["artifacts"] = [ref.to_dict() for ref in self.artifacts]
        data["format"] = RECORD_FORMAT
        return data

    def to_json(self) -> bytes:
        """Return :meth:`to_dict` as compact UTF-8 JSON, as stores keep it.

        Non-finite numbers are written ``NaN``, ``Infinity`` and ``-Infinity``; a value
        that is not JSON raises ``TypeError`` or ``ValueError``.
        """
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Rebuild from :meth:`to_dict` output; unknown keys from newer writers are ignored."""
        values = {key: value for key, value in data.items() if key in _RECORD_FIELDS}
        values["artifacts"] = [ArtifactRef.from_dict(a) for a in data.get("artifacts", [])]
        return cls(**values)


#: The fields :meth:`RunRecord.to_dict` puts first, in this order: all a resume or a
#: status count needs, readable without parsing the rest of a stored line.
HEADER_FIELDS = ("run_id", "status", "attempt")

# dataclasses.fields() rebuilds its tuple on every call: half the cost of loading a
# record. A dict keeps the written order (stable JSON) with O(1) membership.
_RECORD_FIELDS = dict.fromkeys([*HEADER_FIELDS, *(f.name for f in fields(RunRecord))])


_dumps = compact_encoder(ensure_ascii=False)


class RecordEncoder:
    """Encodes the records of one worker's runs exactly as :meth:`RunRecord.to_json` does.

    The runner's hot path: the fields that stay the same across a worker's runs
    (experiment, version, host, pid, worker) are encoded once, a case's params once
    for all its replicates, and no :class:`RunRecord` is built. A sweep of trivial
    runs spent a fifth of its time building records and turning them into dicts.

    >>> encoder = RecordEncoder("e", "1", host="h", pid=7, worker="h:7:main")
    >>> record = RunRecord("r", "e", "1", 0, 0, {"x": 1}, {}, SUCCESS, host="h", pid=7,
    ...                    worker="h:7:main", metrics={"pi": 3.1})
    >>> encoder.encode("r", SUCCESS, 1, 0, 0, encoder.json({"x": 1}), encoder.json({}),
    ...                metrics={"pi": 3.1}) == record.to_json()
    True
    """

    __slots__ = ("_middle", "_tail")

    def __init__(self, experiment: str, version: str, *, host: str, pid: int, worker: str):
        self._middle = f',"experiment":{_dumps(experiment)},"version":{_dumps(version)}'
        self._tail = f',"host":{_dumps(host)},"pid":{pid:d},"worker":{_dumps(worker)}'

    @staticmethod
    def json(value: Any) -> str:
        """Return ``value`` as the compact JSON the record holds (for :meth:`encode`)."""
        return _dumps(value)

    def encode(
        self,
        run_id: str,
        status: str,
        attempt: int,
        case_index: int,
        replicate_index: int,
        params_json: str,
        seeds_json: str,
        *,
        metrics: dict[str, Any] | None = None,
        nonfinite_metrics: list[str] | None = None,
        steps: str | None = None,
        artifacts: list[ArtifactRef] | None = None,
        logs: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        error: dict[str, str] | None = None,
        started_at: str = "",
        finished_at: str = "",
        duration: float = 0.0,
        peak_memory: int = 0,
        tags_json: str = "[]",
    ) -> bytes:
        """Return the record's JSON; ``*_json`` arguments are already encoded by :meth:`json`.

        Raises ``TypeError`` or ``ValueError`` for a value that is not JSON, as
        :meth:`RunRecord.to_json` does.
        """
        if status not in (SUCCESS, FAILED):
            raise InvalidArgumentError(
                f"RecordEncoder.encode(status={status!r}): must be {SUCCESS!r} or {FAILED!r}."
            )
        return self.line(
            run_id,
            status,
            attempt,
            case_index,
            replicate_index,
            params_json,
            seeds_json,
            _dumps(metrics) if metrics else "{}",
            self.rare_json(
                nonfinite_metrics=nonfinite_metrics,
                steps=steps,
                artifacts=artifacts,
                logs=logs,
                stdout=stdout,
                stderr=stderr,
                error=error,
            ),
            started_at,
            finished_at,
            duration,
            peak_memory,
            tags_json,
        )

    @staticmethod
    def rare_json(
        *,
        nonfinite_metrics: list[str] | None = None,
        steps: str | None = None,
        artifacts: list[ArtifactRef] | None = None,
        logs: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        error: dict[str, str] | None = None,
    ) -> str:
        """Return the fields that most runs leave empty, encoded for :meth:`line`."""
        if not (nonfinite_metrics or artifacts) and (error, steps, logs, stdout, stderr) == _NONES:
            return NOTHING_RARE
        return (
            f',"nonfinite_metrics":{_dumps(nonfinite_metrics or [])}'
            f',"steps":{_dumps(steps)}'
            f',"artifacts":{_dumps([ref.to_dict() for ref in artifacts or []])}'
            f',"logs":{_dumps(logs)},"stdout":{_dumps(stdout)},"stderr":{_dumps(stderr)}'
            f',"error":{_dumps(error)}'
        )

    def line(
        self,
        run_id: str,
        status: str,
        attempt: int,
        case_index: int,
        replicate_index: int,
        params_json: str,
        seeds_json: str,
        metrics_json: str,
        rare: str,
        started_at: str,
        finished_at: str,
        duration: float,
        peak_memory: int,
        tags_json: str,
    ) -> bytes:
        """Return the record's JSON from parts already encoded: the runner's hot path.

        ``status`` must be :data:`SUCCESS` or :data:`FAILED` (not checked here), and
        ``rare`` is :meth:`rare_json`'s text, :data:`NOTHING_RARE` for most runs.
        Positional arguments only, as the runner passes them: keywords cost a trivial
        run 0.3 us more.
        """
        return (
            f'{{"run_id":{quoted(run_id)},"status":"{status}","attempt":{attempt:d}'
            f'{self._middle},"case_index":{case_index:d},"replicate_index":{replicate_index:d}'
            f',"params":{params_json},"seeds":{seeds_json},"metrics":{metrics_json}{rare}'
            f',"started_at":{quoted(started_at)}'
            f',"finished_at":{quoted(finished_at)},"duration":{float(duration)!r}'
            f'{self._tail},"peak_memory":{peak_memory:d},"tags":{tags_json}'
            f',"format":{RECORD_FORMAT}}}'
        ).encode()


_NONES = (None, None, None, None, None)
#: :meth:`RecordEncoder.rare_json` of a run with no artifacts, files, error or NaN.
NOTHING_RARE = (
    ',"nonfinite_metrics":[],"steps":null,"artifacts":[],"logs":null,"stdout":null'
    ',"stderr":null,"error":null'
)


def records_from_json(lines: Iterable[bytes | str]) -> list[RunRecord]:
    """Return the records of JSON objects made by :meth:`RunRecord.to_json`, in order.

    >>> record = RunRecord("r", "e", "1", 0, 0, {}, {}, SUCCESS)
    >>> records_from_json([record.to_json()]) == [record]
    True
    """
    with gc_paused():
        return [RunRecord.from_dict(json.loads(line)) for line in lines]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading many records.

    It would walk every new dict and tuple again and again: loading a million records
    takes 9.7 s with it and 4.0 s without (notes/store-facts.md).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
