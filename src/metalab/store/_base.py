"""The store contract every backend keeps. Imports errors and record.

A store holds one experiment: its manifest, its run records and the artifacts the
records name. Guarantees every backend owes (the contract tests check them):

- Durable on return: when ``put_record`` returns, a kill -9 of this process loses
  nothing of that record (it is with the kernel); ``flush()`` (called at the end of a
  sweep and on interrupt) also survives power loss.
- Never half a record: a reader sees a record whole or not at all; a torn record
  (crash mid-write) is skipped with a ``StoreWarning`` and its run is re-run on resume.
- Many writers: any number of processes, on one machine or several sharing a
  filesystem, may call ``put_record``/``put_artifact`` on one store at once.
- Artifacts before records: ``put_artifact`` returns only once the artifact is
  complete under its final name, so a record never names a missing file.
- Picklable: a store pickles as its location; the copy in a worker process opens its
  own files on first use.
"""

from __future__ import annotations

import abc
import os
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalab.errors import InvalidArgumentError
from metalab.record import SUCCESS, ArtifactRef, RunRecord, records_from_json

if TYPE_CHECKING:
    from metalab.store._copy import CopyReport

__all__ = ["Store", "StoreWarning"]


class StoreWarning(UserWarning):
    """Something in a store was skipped or repaired on read (e.g. a torn last record)."""


class Store(abc.ABC):
    """Base class of stores; see the module docstring for the guarantees."""

    #: Refuses every write (a pack): commands that would write say so before any work.
    read_only: bool = False

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages (a path or a URL)."""

    @abc.abstractmethod
    def read_manifest(self) -> dict[str, Any] | None:
        """Return the experiment manifest last written, or None for an empty store."""

    @abc.abstractmethod
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Save the experiment manifest (atomically; earlier ones are kept as history)."""

    @abc.abstractmethod
    def put_artifact(
        self, run_id: str, name: str, filename: str, data: bytes | Path, *, kind: str
    ) -> ArtifactRef:
        """Store ``data`` (bytes, or a file to copy) as ``filename`` of run ``run_id``."""

    @abc.abstractmethod
    def put_record(self, record: RunRecord) -> None:
        """Append ``record``; durable against kill -9 when this returns."""

    def put_record_json(self, body: bytes) -> None:
        """Append a record given as :meth:`RunRecord.to_json` bytes (the runner's path).

        Same guarantees as :meth:`put_record`. This default parses ``body`` and calls
        it; a backend that keeps the JSON as it is writes ``body`` without parsing.
        """
        self.put_record(records_from_json([body])[0])

    def put_records_json(self, bodies: list[bytes]) -> None:
        """Append several records given as :meth:`RunRecord.to_json` bytes, in order.

        Durable against kill -9 when this returns, as :meth:`put_record`; a crash
        during the call may keep any prefix of them. A backend that can append them
        at once (one ``write``, one transaction) overrides this loop.
        """
        for body in bodies:
            self.put_record_json(body)

    def run_id_index(self, key: str) -> bytes:
        """Return the run IDs kept under ``key``: 16 raw bytes each, for positions 0, 1, ...

        A cache of what a sweep computed (``key`` is the experiment's
        ``sweep_fingerprint``), so that a resume skips done runs without computing
        their IDs again. Only whole, checked entries from position 0 on are returned;
        a backend that keeps no index returns ``b""`` (the default).
        """
        return b""

    def extend_run_id_index(self, key: str, start: int, ids: bytes) -> None:
        """Keep run IDs (16 raw bytes each) of positions ``start``, ``start + 1``, ...

        Under ``key``, for :meth:`run_id_index`. Best effort: the index is a cache,
        never needed for correctness. The default keeps nothing.
        """
        return None  # nothing kept: resumes compute the IDs

    @abc.abstractmethod
    def put_experiment_file(self, filename: str, data: bytes) -> str:
        """Store a file about the whole experiment (e.g. a git diff); return its path."""

    def put_verification(self, outcome: dict[str, Any]) -> str:
        """Append the outcome of a verification (``metalab verify``); return where it lies.

        Append-only, like records: run records are never edited. A backend that
        keeps no verifications raises (this default).
        """
        raise InvalidArgumentError(
            f"{self!r}.put_verification(): this store keeps no verification records; "
            f"verify a FileStore or a PostgresStore."
        )

    def verifications(self) -> list[dict[str, Any]]:
        """Return every verification outcome appended, oldest first (the default: none)."""
        return []

    def put_derived(self, entries: list[dict[str, Any]]) -> None:
        """Append derived-metric entries (:mod:`metalab.derived`), each a JSON-ready dict.

        An entry holds ``function``, ``code_sha256``, ``run_id``, ``attempt``,
        ``computed_at`` and ``metrics`` or ``error``. Append-only, beside the records,
        which are never edited; an empty list writes nothing but is refused as any other
        by a store that keeps no derived metrics (this default).
        """
        raise InvalidArgumentError(
            f"{self!r}.put_derived(): this store keeps no derived metrics; compute them "
            f"on a FileStore or a PostgresStore."
        )

    def derived_entries(self) -> list[dict[str, Any]]:
        """Return every derived-metric entry appended (the default: none).

        In the order written for each (function, code hash); readers choose the current
        ones by their ``computed_at`` (:func:`metalab.derived.current_derived`).
        """
        return []

    @abc.abstractmethod
    def records(self) -> Iterator[RunRecord]:
        """Yield the current record of every run.

        The current record is the one with the highest ``attempt`` (a retry or an
        ``overwrite`` re-run supersedes what came before); among equal attempts (two
        writers racing on one run) a success beats a failure, then the latest
        ``finished_at`` wins.
        """

    @abc.abstractmethod
    def run_states(self, *, verify: bool = True) -> dict[str, tuple[str, int]]:
        """Map every run ID to the ``(status, attempt)`` of its current record.

        The current record is chosen as by :meth:`records`; this is all a resume needs,
        so a backend reads no more of each record than it must. ``verify=False`` lets
        a backend skip checks of the stored bytes that cost a full read (for a display
        such as ``metalab status``; a resume always verifies).
        """

    def done_ids(self) -> set[str]:
        """Return the run IDs whose current record is a success."""
        return {rid for rid, (status, _) in self.run_states().items() if status == SUCCESS}

    def records_ndjson(self) -> bytes:
        """Return the current records' JSON, each followed by a newline, in one bytes.

        For readers that parse in bulk (pyarrow's JSON reader takes exactly this).
        """
        return b"".join(line + b"\n" for line in self.records_json())

    def latest_records(self, count: int) -> list[RunRecord]:
        """Return up to ``count`` of the records written last, oldest first (for displays).

        Records, not current records: a run retried just now may appear twice. The
        default reads every record; a backend overrides it to read only recent ones.
        """
        latest = sorted(self.records(), key=lambda record: record.finished_at)
        return latest[-count:] if count > 0 else []

    def records_json(self) -> list[bytes]:
        """Return the current records as :meth:`RunRecord.to_json`, in :meth:`records` order.

        For readers that parse in bulk (a table loaded with pyarrow); a backend that
        stores this JSON returns it without parsing.
        """
        return [record.to_json() for record in self.records()]

    def all_records_json(self) -> list[bytes]:
        """Return every intact record as :meth:`RunRecord.to_json`, earlier attempts too.

        In the order they were written (for a copy of the whole store). This default
        returns only the current records; a backend that keeps every attempt, as both
        built-in ones do, overrides it.
        """
        return self.records_json()

    def manifest_history(self) -> list[dict[str, Any]]:
        """Return every manifest kept, oldest first, the current one last.

        This default returns only the current one (or none); a backend that keeps
        earlier manifests overrides it.
        """
        manifest = self.read_manifest()
        return [] if manifest is None else [manifest]

    def experiment_files(self) -> list[str]:
        """Return the paths of the files about the whole experiment, sorted.

        Each is a path :meth:`read_file` takes, as :meth:`put_experiment_file`
        returned it. This default knows none; a backend that keeps them overrides it.
        """
        return []

    def copy_to(self, other: Store | str | os.PathLike[str]) -> CopyReport:
        """Copy this store's experiment into ``other`` (a store, folder or PostgreSQL URL).

        Every record (earlier attempts too), the files they name, the experiment files
        and the manifests; what ``other`` already holds is skipped, so a copy cut short
        is finished by the same call. Ends with a check of counts and SHA-256 hashes on
        both sides; see ``docs/copy.md``.
        """
        # Imported here: _copy imports this module (and the backends).
        from metalab.store._copy import copy_store

        return copy_store(self, other)

    @abc.abstractmethod
    def artifact_path(self, ref: ArtifactRef) -> Path:
        """Return a local path from which the artifact's bytes can be read."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """Return the bytes of a file a record names (``steps``, ``logs``, ...)."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Make every record written so far survive power loss."""

    def close(self) -> None:
        """Flush and release files or connections; the store can be used again after."""
        self.flush()

    def _after_fork(self) -> None:  # noqa: B027  (most stores hold nothing to drop)
        """In a forked child: drop the parent's files, connections and locks (if any)."""


def _contiguous_ids(frames: Iterable[tuple[int, bytes]]) -> bytes:
    """Join run-ID index frames ``(first position, 16-byte IDs)`` into the prefix from 0.

    Stops at the first gap (positions a planner that died never wrote); frames that
    overlap must agree, or no ID is trusted and ``b""`` is returned.
    """
    known = bytearray()
    for start, ids in sorted(frames, key=lambda frame: frame[0]):
        first = 16 * start
        if first > len(known):
            break
        overlap = known[first : first + len(ids)]
        if bytes(ids[: len(overlap)]) != overlap:
            return b""
        known += ids[len(overlap) :]
    return bytes(known)


def _check_run_ids(where: str, ids: bytes) -> None:
    """Refuse ``ids`` unless it is one or more 16-byte run IDs."""
    if len(ids) % 16 or not ids:
        raise InvalidArgumentError(
            f"{where}(ids=<{len(ids)} bytes>): must be one or more 16-byte run IDs "
            f"(bytes.fromhex of each 32-hex-digit run ID)."
        )


# Every live store that holds files or connections, so that a forked child drops what
# it inherited from its parent (the fix the logging module applies to its handlers'
# locks): a store registers itself with _forget_in_forked_children.
_FORKED_AWAY: weakref.WeakSet[Store] = weakref.WeakSet()


def _forget_in_forked_children(store: Store) -> None:
    """Have a forked child call ``store._after_fork()`` before it runs anything else."""
    _FORKED_AWAY.add(store)


def _after_fork_in_child() -> None:
    for store in list(_FORKED_AWAY):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
