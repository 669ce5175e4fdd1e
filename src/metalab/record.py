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

from metalab.errors import InvalidArgumentError

__all__ = [
    "FAILED",
    "HEADER_FIELDS",
    "RECORD_FORMAT",
    "SUCCESS",
    "ArtifactRef",
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
