"""What a run leaves behind: RunRecord and ArtifactRef, plain values. Imports errors.

A record is written once, when its run ends, and never changed; a retried run writes
a new record with a higher ``attempt``. Stores keep records as JSON objects made by
:meth:`RunRecord.to_dict`, so every field here is a JSON value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from metalab.errors import InvalidArgumentError

__all__ = ["FAILED", "RECORD_FORMAT", "SUCCESS", "ArtifactRef", "RunRecord"]

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
        """Return the JSON-ready form, with ``"format": RECORD_FORMAT``."""
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        data["artifacts"] = [ref.to_dict() for ref in self.artifacts]
        data["format"] = RECORD_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Rebuild from :meth:`to_dict` output; unknown keys from newer writers are ignored."""
        values = {key: value for key, value in data.items() if key in _RECORD_FIELDS}
        values["artifacts"] = [ArtifactRef.from_dict(a) for a in data.get("artifacts", [])]
        return cls(**values)


# dataclasses.fields() rebuilds its tuple on every call: half the cost of loading a
# record. A dict keeps the declared order (stable JSON) with O(1) membership.
_RECORD_FIELDS = dict.fromkeys(f.name for f in fields(RunRecord))
