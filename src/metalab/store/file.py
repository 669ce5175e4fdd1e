r"""Append-only file store, the default store. Imports errors, record and store._base.

A store is a folder a person can browse (layout and line format: ``docs/store.md``)::

    README.md                          this layout, for someone browsing
    manifest.json                      the current experiment manifest
    manifests/<UTC time>-<sha8>.json   earlier manifests, kept when it changed
    records/<host>-<pid>-<hex8>.jsonl  one append-only segment per writing process
    records/<host>-<pid>-<hex8>.states its states index (a cache, see _Segment)
    index/run-ids-<key>.bin            run IDs of a sweep by position (a cache)
    artifacts/<run_id>/<filename>      the files runs produced
    verifications/<UTC time>-<host>-<hex8>.json   outcomes of metalab verify
    derived/<function>-<sha12>.jsonl   derived metrics of one function's code (appended)

Each process appends its records to a segment of its own, so writers on many
processes and machines never share a file, and no lock is needed between them.
A record line is ``<crc32 as 8 hex> <compact JSON>\n``, written with one ``write``:
kill -9 loses nothing written (the kernel holds it). Segments are fsynced at most once
a second (by the first record a second after the last sync) and on
:meth:`FileStore.flush`, so power loss may lose the records of the last second.
Readers check every line's CRC but parse only its header,
``{"run_id":...,"status":...,"attempt":n,``, unless they need the whole record
(:class:`_Lines`); where a segment's states index covers it, they read the index and
check the segment with one CRC-32 pass instead (:class:`_Segment`).
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import json
import operator
import os
import re
import secrets
import socket
import struct
import threading
import time
import warnings
import weakref
import zlib
from collections.abc import Iterable, Iterator
from itertools import compress
from pathlib import Path, PurePosixPath
from time import monotonic
from typing import Any, TypeVar

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import FAILED, SUCCESS, ArtifactRef, RunRecord, gc_paused, records_from_json
from metalab.store._base import (
    Store,
    StoreWarning,
    _check_run_ids,
    _contiguous_ids,
    _forget_in_forked_children,
)

__all__ = ["FileStore"]

# fsync costs 125 µs to 2 ms against 0.8 µs for the append itself (notes/store-facts.md),
# several times the whole per-run budget; syncing once a second bounds what power loss
# can take, as SQLite's WAL does with synchronous=NORMAL. A sync every 64 records cost
# 8 us per record more than this (20.5 against 12.4 us per put_record, 20,000 records).
_SYNC_EVERY_SECONDS = 1.0

_COPY_CHUNK = 1 << 20

# latest_records() reads the ends of this many most recently written segments: the
# writers of one sweep, with room for several sweeps at once.
_LATEST_SEGMENTS = 64

# The header of a frame of index/run-ids-<key>.bin: first position, count, CRC-32 of the IDs.
_FRAME = struct.Struct("<QII")

_README = """\
# metalab store

This folder holds one metalab experiment. Everything in it is plain text except the
artifacts, which are the files the runs produced.

- `manifest.json`: the experiment (name, version, parameters, seeds) as last run.
- `manifests/<UTC time>-<first 8 hex of its SHA-256>.json`: earlier manifests, kept
  when the manifest changed; the time is when that version was written.
- `records/<host>-<pid>-<random>.jsonl`: run records, one file per writing process.
  Each line is the CRC-32 of the JSON as 8 lowercase hex digits, a space, one JSON
  object (a run record; its first keys are "run_id", "status" and "attempt"), and a
  newline. Skip a line whose CRC does not match (torn or
  corrupted) and a last line without its newline (torn, or still being written).
  A run may have several records; its current one has the highest "attempt"; among
  equal attempts a success beats a failure.
- `records/<host>-<pid>-<random>.states`: an index of the segment of the same name
  (run IDs by status and attempt, per append, with CRCs) that lets metalab count
  states without reading the records. Deleting it loses nothing.
- `index/run-ids-<key>.bin`: the run IDs of a sweep in order, so that a resume need
  not compute them. Deleting it loses nothing.
- `artifacts/<run id>/<file>`: the files a run produced, listed in its record's
  "artifacts" with their size and SHA-256.
- `derived/<function>-<first 12 hex of its code's SHA-256>.jsonl`: derived metrics,
  one JSON object a line (run_id, attempt, and metrics or error), computed after the
  runs by a function of them; the runs' records are never changed.

Reading the records without metalab:

    import json, pathlib, zlib

    for segment in sorted(pathlib.Path("records").glob("*.jsonl")):
        with open(segment, "rb") as lines:
            for line in lines:
                crc, _, body = line.partition(b" ")
                if line.endswith(b"\\n") and crc == b"%08x" % zlib.crc32(body[:-1]):
                    print(json.loads(body))
"""


class FileStore(Store):
    """The default store: a folder of append-only JSON-lines segments and artifact files.

    ``path`` is the store folder; it is created (with its parents) unless
    ``create=False``, which requires it to exist. Keeps every guarantee of
    :class:`~metalab.store.Store`; the layout and line format are in the module doc.

    A store pickles as its path: the copy in a worker process (or a process forked
    from this one) writes to a segment of its own, opened on its first record.
    ``put_record`` is thread-safe.

    >>> import tempfile
    >>> store = FileStore(tempfile.mkdtemp())
    >>> store.read_manifest() is None, store.done_ids()
    (True, set())
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self._root = _open_root(path, create=create)
        self._lock = threading.Lock()
        self._segment: _Segment | None = None
        _forget_in_forked_children(self)

    def __reduce__(self) -> tuple[type[FileStore], tuple[str]]:
        return (type(self), (str(self._root),))

    def __repr__(self) -> str:
        return f"FileStore({str(self._root)!r})"

    @property
    def location(self) -> str:
        """The store folder, as an absolute path."""
        return str(self._root)

    def read_manifest(self) -> dict[str, Any] | None:
        """Return the manifest in ``manifest.json``, or None when none was written."""
        path = self._root / "manifest.json"
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest = json.loads(text)
        except ValueError as exc:
            manifest = exc
        if not isinstance(manifest, dict):
            problem = (
                f"not valid JSON ({manifest})"
                if isinstance(manifest, ValueError)
                else f"JSON but not an object (a {type(manifest).__name__})"
            )
            raise InvalidArgumentError(
                f"{self!r}.read_manifest(): {str(path)!r} is {problem}; restore an earlier "
                f"version from manifests/, or delete it to start afresh."
            )
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace ``manifest.json`` atomically; a different previous one goes to manifests/.

        The previous manifest is kept as ``manifests/<UTC time it was written>-<first 8
        hex digits of its SHA-256>.json``; writing an equal manifest changes nothing.
        """
        if not isinstance(manifest, dict):
            raise InvalidTypeError(
                f"{self!r}.write_manifest(manifest={manifest!r:.80}): must be a dict, "
                f"got {type(manifest).__name__}."
            )
        try:
            text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(
                f"{self!r}.write_manifest(): the manifest is not JSON ({exc}); "
                f"it may hold only str-keyed dicts, lists, str, numbers, bool and None."
            ) from exc
        content = text.encode() + b"\n"
        current = self._root / "manifest.json"
        try:
            previous = current.read_bytes()
            written = time.gmtime(current.stat().st_mtime)
        except FileNotFoundError:
            previous = None
        if previous == content:
            return
        if previous is not None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", written)
            digest = hashlib.sha256(previous).hexdigest()[:8]
            _make_dir(self._root / "manifests")
            _write_atomic(self._root / "manifests" / f"{stamp}-{digest}.json", [previous])
        _write_atomic(current, [content])

    def put_artifact(
        self,
        run_id: str,
        name: str,
        filename: str,
        data: bytes | bytearray | os.PathLike[str],
        *,
        kind: str,
    ) -> ArtifactRef:
        """Store ``data`` as ``artifacts/<run_id>/<filename>``; return its reference.

        ``data`` is bytes, or the path of a file to copy (streamed, never read whole).
        The file is written under a temporary name in the same folder, fsynced and
        renamed, so it is complete under its final name before this returns.
        """
        where = f"{self!r}.put_artifact"
        folder = _path_part(where, "run_id", run_id)
        target = _path_part(where, "filename", filename)
        for label, text in (("name", name), ("kind", kind)):
            if not isinstance(text, str):
                raise InvalidTypeError(
                    f"{where}({label}={text!r}): must be a str, got {type(text).__name__}."
                )
        chunks = _chunks_of(where, data)
        _make_dir(self._root / "artifacts")
        _make_dir(self._root / "artifacts" / folder)
        size, sha256 = _write_atomic(self._root / "artifacts" / folder / target, chunks)
        return ArtifactRef(
            name=name, kind=kind, path=f"artifacts/{folder}/{target}", size=size, sha256=sha256
        )

    def put_record(self, record: RunRecord) -> None:
        """Append ``record`` to this process's segment with one ``write``.

        When this returns the line is with the kernel (a kill -9 loses nothing); it is
        fsynced with the next group, at the latest by :meth:`flush`.
        """
        if not isinstance(record, RunRecord):
            raise InvalidTypeError(
                f"{self!r}.put_record(record={record!r:.80}): must be a RunRecord, "
                f"got {type(record).__name__}."
            )
        line = _encode_line(record)
        self._append(line, [_BODY_HEAD.match(line, 9)])

    def put_record_json(self, body: bytes) -> None:
        """Append a record given as :meth:`RunRecord.to_json` bytes, as :meth:`put_record`.

        ``body`` is written as given, after a check that it starts with the header
        a reader looks for; it must be one such record, without a newline.
        """
        line, head = self._framed("put_record_json", body)
        self._append(line, [head])

    def put_records_json(self, bodies: list[bytes]) -> None:
        """Append records given as :meth:`RunRecord.to_json` bytes with one ``write``.

        Each is checked as by :meth:`put_record_json` before any is written. A crash
        during the write keeps a prefix of whole lines and at most one torn line,
        which readers skip.
        """
        framed = [self._framed("put_records_json", body) for body in bodies]
        self._append(b"".join([line for line, _ in framed]), [head for _, head in framed])

    def _framed(self, method: str, body: bytes) -> tuple[bytes, re.Match[bytes]]:
        """Return the segment line of ``body`` and its header's match; refuse a non-record."""
        head = _BODY_HEAD.match(body) if isinstance(body, bytes) else None
        if head is None or b"\n" in body:
            raise InvalidArgumentError(
                f"{self!r}.{method}(body={body!r:.80}): must be the bytes of one "
                f"RunRecord.to_json(); pass a RunRecord to put_record() instead."
            )
        return _frame(body), head

    def _append(self, lines: bytes, heads: list[re.Match[bytes] | None]) -> None:
        """Append ``lines`` (whole records) whose bodies start with ``heads``."""
        with self._lock:
            if self._segment is None:
                self._segment = _Segment(self._root / "records")
            self._segment.append(lines, heads)

    def run_states(self, *, verify: bool = True) -> dict[str, tuple[str, int]]:
        """Map each run ID to the ``(status, attempt)`` of its current record.

        Reads each segment's states index rather than its records, checking the
        records it covers by their CRC-32 (all of their bytes, at memory speed) unless
        ``verify=False``; lines past the index are read by their headers (their CRCs
        checked). See :class:`_Lines`, and ``docs/store.md`` for the figures.
        """
        return self._current(bodies=False, verify=verify)

    def records_ndjson(self) -> bytes:
        """Return the current records' JSON, each followed by a newline, in one bytes.

        When every run has one record (the usual case) the records an index covers are
        copied from the segments at memory speed, checked by their CRC-32, without
        being split into a million lines; otherwise as :meth:`records_json`.
        """
        with gc_paused():
            lines = _Lines(self._records_folder(), keep_bodies=False, blob=True)
        if len(set(lines.rids)) < len(lines.rids) or lines.blob is None:
            return super().records_ndjson()
        _warn_damage(lines, depth=1)
        return b"".join(lines.blob)

    def latest_records(self, count: int) -> list[RunRecord]:
        """Return up to ``count`` of the records written last, oldest first.

        Reads the last ``count`` lines of the most recently written segments only (by
        modification time), so its cost does not grow with the store. Damaged lines
        are skipped silently: this serves displays.
        """
        if count <= 0:
            return []
        folder = self._root / "records"
        try:
            segments = [
                (path.stat().st_mtime, path)
                for path in folder.glob("*.jsonl")
                if not path.is_symlink()
            ]
        except OSError:  # a segment removed meanwhile: a display may just try again
            return []
        bodies: list[bytes] = []
        for _, segment in sorted(segments, reverse=True)[:_LATEST_SEGMENTS]:
            bodies += _last_lines(segment, count)
        with gc_paused():
            records = [
                RunRecord.from_dict(entry)
                for entry in map(json.loads, bodies)
                if isinstance(entry, dict) and isinstance(entry.get("finished_at", ""), str)
            ]
        return sorted(records, key=lambda record: record.finished_at)[-count:]

    def records_json(self) -> list[bytes]:
        """Return the current records as their JSON lines from the segments, unparsed."""
        return list(self._current(bodies=True).values())

    def records(self) -> Iterator[RunRecord]:
        """Yield the current record of every run, reading all segments.

        The current record has the highest ``attempt``; among equal attempts a success
        beats a failure, then the latest ``finished_at``, then the one later in segment
        order (segments sorted by name, lines in file order). Damaged lines are skipped
        with one :class:`StoreWarning` per segment. Only the current records are parsed.
        """
        yield from records_from_json(self.records_json())

    def all_records_json(self) -> list[bytes]:
        """Return every intact record line's JSON, earlier attempts too, unparsed.

        Segments sorted by name, lines in file order; damaged lines are skipped with
        one :class:`StoreWarning` per segment, as every reader does.
        """
        with gc_paused():
            lines = _Lines(self._records_folder(), keep_bodies=True)
        _warn_damage(lines, depth=1)
        return lines.bodies

    def manifest_history(self) -> list[dict[str, Any]]:
        """Return the manifests in ``manifests/`` oldest first, then the current one.

        Ordered by the time in their names (to the second), then by when each was put
        in ``manifests/``, which happens in the order they were replaced; manifests
        replaced within one tick of the file system's clock keep an uncertain order.
        """
        current = self.read_manifest()
        if current is None:
            return []
        kept = [(p.name[:16], p.stat().st_mtime_ns, p) for p in self._root.glob("manifests/*.json")]
        history = []
        for *_, path in sorted(kept):
            try:
                manifest = json.loads(path.read_bytes())
            except ValueError as exc:
                raise InvalidArgumentError(
                    f"{self!r}.manifest_history(): {str(path)!r} is not valid JSON ({exc}); "
                    f"restore it, or move it out of manifests/ to drop that version."
                ) from exc
            history.append(manifest)
        return [*history, current]

    def experiment_files(self) -> list[str]:
        """Return ``experiment/<name>`` of every file in ``experiment/``, sorted."""
        folder = self._root / "experiment"
        if not folder.is_dir():
            return []
        # Names starting with "." are _write_atomic's temporary files.
        return sorted(
            f"experiment/{path.name}"
            for path in folder.iterdir()
            if path.is_file() and not path.name.startswith(".")
        )

    def _current(self, *, bodies: bool, verify: bool = True) -> dict[str, Any]:
        """Map each run ID to its current line's JSON (``bodies``) or (status, attempt)."""
        with gc_paused():
            lines = _Lines(self._records_folder(), keep_bodies=bodies, verify=verify)
            current = lines.current(lines.bodies if bodies else lines.states)
        _warn_damage(lines, depth=2)  # run_states, records_json, ...: their caller
        return current

    def _records_folder(self) -> Path:
        """Return ``records/``, refusing one that is a link out of the store."""
        records = self._root / "records"
        if records.is_symlink():
            raise InvalidArgumentError(
                f"{self!r}: {str(records)!r} is a symbolic link; a store reads records only "
                f"from inside its own folder. Replace the link with the folder it points to."
            )
        return records

    def run_id_index(self, key: str) -> bytes:
        """Return the run IDs kept under ``key`` in ``index/run-ids-<key>.bin`` (see there).

        The file is frames of ``<start: u64><count: u32><crc32: u32>`` and ``count``
        16-byte IDs, appended by every process that planned part of the sweep. Frames
        are checked by CRC; those that overlap must agree, or the index is ignored.
        """
        path = self._root / "index" / f"run-ids-{_path_part('run_id_index', 'key', key)}.bin"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return b""
        frames = []
        offset = 0
        while offset + _FRAME.size <= len(data):
            start, count, crc = _FRAME.unpack_from(data, offset)
            ids = data[offset + _FRAME.size : offset + _FRAME.size + 16 * count]
            if len(ids) != 16 * count or zlib.crc32(ids) != crc:
                break  # torn by a crash: what follows cannot be trusted
            frames.append((start, ids))
            offset += _FRAME.size + len(ids)
        return _contiguous_ids(frames)

    def extend_run_id_index(self, key: str, start: int, ids: bytes) -> None:
        """Append one frame to ``index/run-ids-<key>.bin`` with a single ``write``."""
        _check_run_ids(f"{self!r}.extend_run_id_index", ids)
        name = f"run-ids-{_path_part('extend_run_id_index', 'key', key)}.bin"
        frame = _FRAME.pack(start, len(ids) // 16, zlib.crc32(ids)) + ids
        try:
            _make_dir(self._root / "index")
            fd = os.open(self._root / "index" / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, frame)  # not fsynced: a cache, checked frame by frame on read
            finally:
                os.close(fd)
        except OSError:
            return  # a full disk or a read-only store: resumes compute the IDs instead

    def put_experiment_file(self, filename: str, data: bytes) -> str:
        """Write ``experiment/<filename>`` atomically; return that path."""
        target = _path_part(f"{self!r}.put_experiment_file", "filename", filename)
        _make_dir(self._root / "experiment")
        _write_atomic(self._root / "experiment" / target, [bytes(data)])
        return f"experiment/{target}"

    def put_verification(self, outcome: dict[str, Any]) -> str:
        """Write ``verifications/<UTC time>-<host>-<hex8>.json`` atomically; return that path."""
        host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{stamp}-{host}-{secrets.token_hex(4)}.json"
        data = json.dumps(outcome, indent=1, sort_keys=True, ensure_ascii=False).encode()
        _make_dir(self._root / "verifications")
        _write_atomic(self._root / "verifications" / name, [data + b"\n"])
        return f"verifications/{name}"

    def verifications(self) -> list[dict[str, Any]]:
        """Return the verification outcomes in ``verifications/``, oldest first.

        A file that is not a JSON object is skipped with a ``StoreWarning``.
        """
        found = []
        for path in sorted((self._root / "verifications").glob("*.json")):
            try:
                outcome = json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                outcome = exc
            if isinstance(outcome, dict) and not path.is_symlink():
                found.append(outcome)
            else:
                warnings.warn(
                    f"{str(path)!r}: skipped: not a verification record ({outcome!r:.80}).",
                    StoreWarning,
                    stacklevel=2,
                )
        return found

    def put_derived(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` to ``derived/<function>-<sha12>.jsonl``, one JSON line each.

        A file's new lines go in one ``O_APPEND`` write, then fsync: on a local
        filesystem, writers in several processes never interleave within a line; a reader
        skips a last line without its newline (torn by a crash; the next append starts
        on a new line).
        """
        where = f"{self!r}.put_derived"
        files: dict[str, list[bytes]] = {}
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("code_sha256"), str):
                raise InvalidTypeError(
                    f"{where}(entries=[{entry!r:.80}, ...]): each entry must be a dict with "
                    f"'function' and 'code_sha256' str, as metalab.derived makes them."
                )
            name = f"{entry.get('function')}-{entry['code_sha256'][:12]}.jsonl"
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
            files.setdefault(_path_part(where, "function", name), []).append(line.encode())
        if not files:
            return
        folder = self._root / "derived"
        _make_dir(folder)
        for name, lines in files.items():
            fd = os.open(folder / name, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                size = os.fstat(fd).st_size
                torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                data = memoryview(b"\n" * torn + b"\n".join(lines) + b"\n")
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)

    def derived_entries(self) -> list[dict[str, Any]]:
        """Return the entries of every ``derived/*.jsonl``, each file in the order written."""
        found = []
        for path in sorted((self._root / "derived").glob("*.jsonl")):
            if path.is_symlink():
                warnings.warn(
                    f"{str(path)!r}: skipped: a symbolic link, and a store reads only its own "
                    f"files.",
                    StoreWarning,
                    stacklevel=2,
                )
                continue
            found += _derived_lines(path.read_bytes(), str(path))
        return found

    def read_file(self, path: str) -> bytes:
        """Return the bytes of ``path`` (relative to the store folder, as records name it)."""
        return self._inside(path, "read_file").read_bytes()

    def artifact_path(self, ref: ArtifactRef) -> Path:
        """Return the file holding the artifact ``ref`` names (inside the store folder)."""
        if not isinstance(ref, ArtifactRef):
            raise InvalidTypeError(
                f"{self!r}.artifact_path(ref={ref!r:.80}): must be an ArtifactRef, "
                f"got {type(ref).__name__}."
            )
        return self._inside(ref.path, "artifact_path")

    def _inside(self, path: str, method: str) -> Path:
        """Resolve a store-relative path, refusing any that would leave the store."""
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts or "\\" in path:
            raise InvalidArgumentError(
                f"{self!r}.{method}({path!r}): must be a '/'-separated path inside the "
                f"store, without '..'; pass a path this store returned."
            )
        return self._root.joinpath(*relative.parts)

    def flush(self) -> None:
        """Fsync this process's segment, so every record written survives power loss."""
        with self._lock:
            if self._segment is not None:
                self._segment.sync()

    def close(self) -> None:
        """Flush and close this process's segment; a later record opens a new one."""
        with self._lock:
            if self._segment is not None:
                self._segment.close()
                self._segment = None

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's segment and a lock it may have held."""
        self._lock = threading.Lock()
        if self._segment is not None:
            self._segment.release()
            self._segment = None


class _Segment:
    """One process's append-only record file, fsynced in groups, and its states index.

    Beside ``<name>.jsonl`` the segment keeps ``<name>.states``: for each append, the
    appended records' run IDs grouped by state, then a trailer with the CRC of those
    entries, the segment's size after the append and the CRC-32 of the whole segment
    up to there. A reader that wants only states reads this file instead of parsing
    every record line (:meth:`_Lines._read_states`). It is written after the records
    it describes, so a crash leaves it behind the segment, never ahead of it.
    """

    def __init__(self, folder: Path) -> None:
        _make_dir(folder)
        # A hostname may hold characters that are awkward in file names.
        host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
        self.path = folder / f"{host}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        # O_EXCL: two processes never share a segment, even on a name clash (which
        # then fails loudly instead of interleaving).
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL
        self.fd = os.open(self.path, flags, 0o666)
        self.states_fd = os.open(self.path.with_suffix(".states"), flags, 0o666)
        self.release = weakref.finalize(self, _close_all, self.fd, self.states_fd)
        _fsync_dir(folder)
        self.unsynced = 0
        self.synced_at = monotonic()
        self.size = 0
        self.crc = 0
        self.indexing = True

    def append(self, lines: bytes, heads: list[re.Match[bytes] | None]) -> None:
        """Write ``lines`` whole, then their states; fsync if the last sync is a second old."""
        written = 0
        try:
            while written < len(lines):
                # A short write is allowed (signals, full disks, network filesystems);
                # only this process appends here, so the rest lands right after it.
                written += os.write(self.fd, memoryview(lines)[written:])
        except BaseException:
            # A full disk stops a write midway: keep the whole lines that got in and cut
            # the torn one, which every read would otherwise warn about.
            whole = lines.rfind(b"\n", 0, written) + 1
            self.indexing = False  # those lines have no index frame: read line by line
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size + whole)
            raise
        self.size += len(lines)
        self.crc = zlib.crc32(lines, self.crc)
        if self.indexing:
            self._index(heads)
        self.unsynced += 1
        if monotonic() - self.synced_at >= _SYNC_EVERY_SECONDS:
            self.sync()

    def _index(self, heads: list[re.Match[bytes] | None]) -> None:
        groups: dict[bytes, list[bytes]] = {}
        for head in heads:
            # A run ID with spaces or escapes cannot be listed: the rest of the segment
            # is then read line by line, as if it had no index.
            if head is None or not head[1].isalnum():
                self.indexing = False
                return
            groups.setdefault(_state_code(head[2]), []).append(head[1])
        entries = b"".join(b"%s %s\n" % (code, b" ".join(ids)) for code, ids in groups.items())
        trailer = b"#%08x %x %08x\n" % (zlib.crc32(entries), self.size, self.crc)
        try:
            os.write(self.states_fd, entries + trailer)
        except OSError:
            # The index only saves readers time: a full disk here must not fail the
            # records, which are written. Readers read what follows line by line.
            self.indexing = False

    def sync(self) -> None:
        """Fsync the records written since the last sync (the index is not: a cache)."""
        if self.unsynced:
            os.fsync(self.fd)
            self.unsynced = 0
        self.synced_at = monotonic()

    def close(self) -> None:
        """Sync, then close the files."""
        self.sync()
        self.release()


def _close_all(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def _state_code(key: bytes) -> bytes:
    """``success","attempt":3`` (a header's state) as the states index writes it: ``s3``."""
    status, _, attempt = key.partition(b'","attempt":')
    return status[:1] + attempt


def _open_root(path: Any, *, create: bool) -> Path:
    """Return the absolute store folder for ``path``, creating it if allowed."""
    where = f"FileStore({path!r})"
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InvalidTypeError(
            f"{where}: the path must be a str or os.PathLike, got {type(path).__name__}; "
            f"pass the store folder, e.g. './runs/my_experiment'."
        )
    # Absolute, so a pickled copy in a worker with another working directory agrees.
    root = Path(os.path.abspath(path))
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(
            f"{where}: {str(root)!r} exists and is not a folder, but a file store is a "
            f"folder; pass a folder path, or move the file away."
        )
    if not create:
        if not root.is_dir():
            raise InvalidArgumentError(
                f"{where}: there is no store at {str(root)!r} (no such folder); check the "
                f"path, or pass create=True to start a new store."
            )
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(
            f"{where}: cannot create the folder {str(root)!r} ({exc.strerror}); "
            f"choose a path in a folder you can write to."
        ) from exc
    if not (root / "README.md").exists():
        _write_atomic(root / "README.md", [_README.encode()])
    return root


def _path_part(where: str, label: str, value: Any) -> str:
    """Return ``value`` if it can name one file or folder, else raise."""
    if not isinstance(value, str):
        raise InvalidTypeError(
            f"{where}({label}={value!r}): must be a str, got {type(value).__name__}."
        )
    if value in ("", ".", "..") or any(c in value for c in "/\\\0"):
        raise InvalidArgumentError(
            f"{where}({label}={value!r}): must be one file name: not empty, '.' or '..', "
            f"and without '/', '\\' or NUL; e.g. 'model.pt'."
        )
    return value


def _chunks_of(where: str, data: Any) -> Iterable[bytes]:
    """Return ``data`` (bytes, or a file to copy) as chunks to write."""
    if isinstance(data, bytes | bytearray):
        return [data]
    if not isinstance(data, os.PathLike):
        hint = (
            "; a str is ambiguous: pass Path(text) or text.encode()"
            if isinstance(data, str)
            else ""
        )
        raise InvalidTypeError(
            f"{where}(data={data!r:.80}): must be bytes or a pathlib.Path to copy, "
            f"got {type(data).__name__}{hint}."
        )
    source = Path(data)
    if not source.is_file():
        raise InvalidArgumentError(
            f"{where}(data={data!r}): there is no file at {str(source)!r}; "
            f"pass the path of an existing file, or the bytes themselves."
        )
    return _file_chunks(source)


def _derived_lines(data: bytes, where: str) -> list[dict[str, Any]]:
    """Return the JSON objects of a derived-metrics file's lines (:meth:`FileStore.put_derived`).

    The part after the last newline is a line being written, or torn by a crash: left
    out. A complete line that is not a JSON object is skipped with a ``StoreWarning``.
    """
    found = []
    for line in data.split(b"\n")[:-1]:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            found.append(entry)
        elif line:
            warnings.warn(
                f"{where!r}: skipped a line that is not a derived-metric entry ({line[:80]!r}).",
                StoreWarning,
                stacklevel=3,
            )
    return found


def _file_chunks(source: Path) -> Iterator[bytes]:
    with source.open("rb") as file:
        yield from iter(lambda: file.read(_COPY_CHUNK), b"")


def _write_atomic(target: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write ``chunks`` to ``target`` by temp file, fsync and rename; return size, SHA-256."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    digest = hashlib.sha256()
    size = 0
    # os.open rather than tempfile.mkstemp: mkstemp makes the file private (0o600),
    # and a store is often read by colleagues; the umask decides instead.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return size, digest.hexdigest()


def _make_dir(path: Path) -> None:
    """Create the folder ``path`` if missing, its entry fsynced into the parent.

    A folder of the store that is a symbolic link is refused: writing through it
    would put files outside the store.
    """
    try:
        path.mkdir()
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise InvalidArgumentError(
                f"FileStore: {str(path)!r} is a symbolic link or not a folder, and a store "
                f"writes only inside its own folder; replace it with a real folder (move "
                f"what it points to into the store)."
            ) from None
        return
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Fsync a folder, so the names just created or renamed in it survive power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_line(record: RunRecord) -> bytes:
    r"""Return the segment line for ``record``: ``<crc32 8 hex> <compact JSON>\n``."""
    try:
        body = record.to_json()
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(
            f"FileStore.put_record(record.run_id={record.run_id!r}): the record is not "
            f"JSON ({exc}); params, metrics and the other fields may hold only str-keyed "
            f"dicts, lists, str, numbers, bool and None (convert NumPy values with .item() "
            f"or .tolist())."
        ) from exc
    return _frame(body)


def _frame(body: bytes) -> bytes:
    r"""Return the segment line of a record's JSON: ``<crc32 8 hex> <body>\n``."""
    return b"%08x %s\n" % (zlib.crc32(body), body)


# -- reading ------------------------------------------------------------------------

# The start of a line as put_record writes it: RunRecord.to_dict() puts run_id, status
# and attempt first, so the scan learns a run's state without parsing the whole line.
# Group 2 (e.g. `success","attempt":1`) is the key of a cache of (status, attempt) tuples.
_HEAD = rb'\{"run_id":"([^"\\\n]*)","status":"((?:success|failed)","attempt":\d+)[,}]'
_BODY_HEAD = re.compile(_HEAD)
# A whole line split into CRC, body, run ID and state key; the other lines of a block
# follow a newline. One findall per block finds every line and header in C: 0.9 µs a
# 560-byte line, where a split and a header match per line took 1.2 µs.
_LINE = rb"([0-9a-f]{8}) (" + _HEAD + rb"[^\n]*)"
_FIRST_LINE = re.compile(_LINE)
_NEXT_LINES = re.compile(rb"\n" + _LINE)

# The trailer of a frame of a segment's states index (see _Segment): CRC-32 of the
# frame's entries, the segment's size after the frame's records, its CRC-32 up to there.
_TRAILER = re.compile(rb"(?m)^#([0-9a-f]{8}) ([0-9a-f]+) ([0-9a-f]{8})\n")

# Segments are read this many bytes at a time: memory stays flat whatever their size,
# and 4 MiB blocks scanned faster than 16 or 64 MiB ones (fewer cache misses).
_BLOCK = 4 << 20

_T = TypeVar("_T")


class _States(dict[bytes, tuple[str, int]]):
    """``(status, attempt)`` by the header bytes that say it, each tuple made once."""

    def __missing__(self, key: bytes) -> tuple[str, int]:
        status, _, attempt = key.partition(b'","attempt":')
        state = self[key] = (status.decode(), int(attempt))
        return state


class _Blocks:
    """The complete lines of a segment, a block at a time; then whether its end was torn."""

    def __init__(self, segment: Path, start: int = 0) -> None:
        self.segment = segment
        self.start = start
        self.torn = False

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        """Yield ``(block, end)``: ``block[: end + 1]`` is complete lines, newline last."""
        offset, size = self.start, _BLOCK
        with self.segment.open("rb", buffering=0) as file:
            # Each block starts where the last complete line ended (the partial line at
            # its end is read again with the next block): no copying blocks together.
            while block := os.pread(file.fileno(), size, offset):
                end = block.rfind(b"\n")
                if end >= 0:
                    offset, size = offset + end + 1, _BLOCK
                    yield block, end
                elif len(block) == size:  # one line longer than a block: read it whole
                    size *= 2
                else:
                    # A last line without its newline is the end of what is written so
                    # far: a write in progress or a crash.
                    self.torn = True
                    return


class _Lines:
    """The intact record lines of segments, in order: run ID, ``(status, attempt)``, body.

    A line is intact when it ends with a newline and its CRC matches; a line whose CRC
    matches is taken as its writer wrote it. A block of lines takes the fast path when
    every line in it starts with the header put_record writes (:data:`_HEAD`) with an
    ASCII run ID and every CRC matches: one ``findall`` for all headers, the CRCs
    compared all at once, no JSON parsed. Any other block is read line by line, and a
    line without that header (other key orders, a run ID with escapes) is parsed whole
    with ``json``, so it still counts. ``bodies`` holds each line's JSON when
    ``keep_bodies``, else stays empty; ``damage`` one message per damaged segment.
    """

    def __init__(
        self, folder: Path, *, keep_bodies: bool, verify: bool = True, blob: bool = False
    ) -> None:
        """Read every segment in ``folder``, sorted by name.

        Without ``keep_bodies`` the states come from each segment's states index where
        it has one, checked against the segment's CRC-32 unless ``verify`` is False.
        With ``blob``, ``blob`` collects every intact line's JSON, newline-terminated, in
        segment order: the ranges an index covers are copied without their CRC prefix
        (checked by the segment's CRC-32), never split into lines.
        """
        self.rids: list[str] = []
        self.states: list[tuple[str, int]] = []
        self.bodies: list[bytes] = []
        self.damage: list[str] = []
        self._keep_bodies = keep_bodies
        self._verify = verify
        self._known = _States()
        self._coded: dict[str, tuple[str, int]] = {}
        self.blob: list[bytes] | None = [] if blob else None
        for segment in sorted(folder.glob("*.jsonl")):
            if segment.is_symlink():
                # Another store's file, or any file: never read through a link.
                self.damage.append(
                    f"{str(segment)!r}: skipped: a symbolic link, and a store reads records "
                    f"only from files inside its own folder."
                )
                continue
            self._read(segment)

    def _read(self, segment: Path) -> None:
        damaged = total = 0
        blocks = _Blocks(segment, 0 if self._keep_bodies else self._read_states(segment))
        before = len(self.bodies)
        # A blob takes the bodies of the lines past the index from the line scan.
        keep_bodies = self._keep_bodies or self.blob is not None
        for block, end in blocks:
            lines, bad = self._add(block, end, keep_bodies)
            total += lines
            damaged += bad
        if self.blob is not None:  # the lines past the index, read one by one
            self.blob += [body + b"\n" for body in self.bodies[before:]]
            del self.bodies[before:]
        if blocks.torn:
            total += 1
            damaged += 1
        if damaged:
            tail = ", the last one incomplete (torn by a crash, or still being written)"
            self.damage.append(
                f"{str(segment)!r}: skipped {damaged} damaged line(s) of {total}"
                f"{tail if blocks.torn else ''}; their runs count as not done and run "
                f"again on resume."
            )

    def _read_states(self, segment: Path) -> int:
        """Take the states of the lines the segment's states index covers; return their size.

        The index's frames are each checked by their CRC, the lines they cover by the
        segment's CRC-32 up to there (when verifying): a damaged index or segment
        gives 0, and the segment is then read line by line.
        """
        try:
            index = segment.with_suffix(".states").read_bytes()
        except OSError:
            return 0
        frames, covered, crc, position = [], 0, 0, 0
        for trailer in _TRAILER.finditer(index):
            entries = index[position : trailer.start()]
            if zlib.crc32(entries) != int(trailer[1], 16):
                break  # torn by a crash: the frames before it still hold
            frames.append(entries)
            covered, crc, position = int(trailer[2], 16), int(trailer[3], 16), trailer.end()
        if not covered:
            return 0
        # A blob reads the covered lines anyway: their CRC-32 then costs nothing more.
        pieces: list[bytes] | None = [] if self.blob is not None else None
        if (self._verify or pieces is not None) and _crc32_of(segment, covered, pieces) != crc:
            return 0
        if pieces is not None and self.blob is not None:
            self.blob += pieces
        coded = self._coded
        for line in b"".join(frames).decode("ascii").split("\n")[:-1]:
            code, *ids = line.split(" ")
            state = coded.get(code)
            if state is None:
                state = coded[code] = (SUCCESS if code[0] == "s" else FAILED, int(code[1:]))
            self.rids += ids
            self.states += [state] * len(ids)
        return covered

    def _add(self, block: bytes, end: int, keep_bodies: bool) -> tuple[int, int]:
        """Append the intact lines of ``block[: end + 1]``; return how many lines, how many bad."""
        found = _NEXT_LINES.findall(block, 0, end)
        first = _FIRST_LINE.match(block, 0, end)
        if first is not None:
            found.insert(0, first.groups())
        if found:
            crcs, bodies, rids, keys = zip(*found, strict=True)
            # A match is one whole line, so the matches cover the block ("<crc> <body>\n"
            # each) exactly when every line has the header.
            covered = sum(map(len, bodies)) + 10 * len(bodies) == end + 1
            if covered and b"".join(rids).isascii():
                computed = struct.pack(f">{len(bodies)}I", *map(zlib.crc32, bodies))
                if binascii.hexlify(computed) == b"".join(crcs):
                    self.rids += map(bytes.decode, rids)
                    self.states += map(self._known.__getitem__, keys)
                    if keep_bodies:
                        self.bodies += bodies
                    return len(bodies), 0
        lines = block.split(b"\n")
        del lines[-1]  # what follows the last newline: read with the next block
        damaged = 0
        for line in lines:
            decoded = self._decode(line)
            if decoded is None:
                damaged += 1
                continue
            self.rids.append(decoded[0])
            self.states.append(decoded[1])
            if keep_bodies:
                self.bodies.append(decoded[2])
        return len(lines), damaged

    def _decode(self, line: bytes) -> tuple[str, tuple[str, int], bytes] | None:
        """Return run ID, state and body of a line, or None if its CRC or JSON is bad."""
        crc, _, body = line.partition(b" ")
        if crc != b"%08x" % zlib.crc32(body):
            return None
        try:
            head = _BODY_HEAD.match(body)
            if head is not None:
                return head[1].decode(), self._known[head[2]], body
            entry = json.loads(body)
        except ValueError:  # not JSON, or a run ID that is not UTF-8
            return None
        if not isinstance(entry, dict):
            return None
        rid, status, attempt = entry.get("run_id"), entry.get("status"), entry.get("attempt", 1)
        if isinstance(rid, str) and status in (SUCCESS, FAILED) and type(attempt) is int:
            return rid, (status, attempt), body
        return None

    def current(self, values: list[_T]) -> dict[str, _T]:
        """Map each run ID, in order of first appearance, to ``values[i]`` of its current line i.

        ``values`` runs parallel to the lines: ``states``, or ``bodies`` if kept. The
        current line has the highest attempt; among equal attempts a success beats a
        failure, then the latest ``finished_at``, then the later line. ``finished_at``
        is not in the header: lines of one run with equal (attempt, status) have equal
        states, so only their bodies can differ, and only those are parsed for it.
        """
        rids = self.rids
        # The last line of each run: all there is to it when every run has one line. A
        # million-entry dict costs 0.3 s here, so the common case builds just this one.
        current = dict(zip(rids, values, strict=True))
        if len(current) == len(rids):
            return current
        last = dict(zip(rids, range(len(rids)), strict=True))
        # The lines that are not their run's last, found in C: a Python loop over a
        # million lines would cost more than the ranking itself.
        positions = range(len(rids))
        earlier = compress(positions, map(operator.ne, map(last.__getitem__, rids), positions))
        lines_of: dict[str, list[int]] = {}
        for index in earlier:
            lines_of.setdefault(rids[index], [last[rids[index]]]).append(index)
        for rid, indices in lines_of.items():
            ranks = {i: (self.states[i][1], self.states[i][0] == SUCCESS) for i in indices}
            top = max(ranks.values())
            best = [i for i, rank in ranks.items() if rank == top]
            chosen = max(best)
            if len(best) > 1 and self._keep_bodies:
                chosen = max(best, key=lambda i: (_finished_at(self.bodies[i]), i))
            current[rid] = values[chosen]
        return current


def _warn_damage(lines: _Lines, *, depth: int) -> None:
    """Warn once per damaged segment, at the caller of the public method ``depth`` calls up."""
    for message in lines.damage:
        warnings.warn(message, StoreWarning, stacklevel=depth + 2)


def _last_lines(segment: Path, count: int) -> list[bytes]:
    """Return the bodies of up to ``count`` intact lines at the end of ``segment``."""
    with segment.open("rb", buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        span = 1 << 16
        while True:
            start = max(0, size - span)
            tail = os.pread(file.fileno(), size - start, start)
            lines = tail.split(b"\n")
            del lines[-1]  # after the last newline: nothing, or a torn line
            if start > 0:
                del lines[0]  # cut by the start of the span
            if len(lines) >= count or start == 0:
                break
            span *= 4
    bodies = []
    for line in lines[-count:]:
        crc, _, body = line.partition(b" ")
        if crc == b"%08x" % zlib.crc32(body):
            bodies.append(body)
    return bodies


def _crc32_of(segment: Path, size: int, bodies: list[bytes] | None = None) -> int | None:
    """CRC-32 of the first ``size`` bytes of ``segment``; None if it is shorter.

    ``size`` ends a line. With ``bodies``, each block of whole lines read is also
    appended to it without the lines' CRC prefixes (the JSON, newline-terminated).
    """
    crc, offset = 0, 0
    with segment.open("rb", buffering=0) as file:
        while offset < size:
            block = os.pread(file.fileno(), min(_BLOCK, size - offset), offset)
            if not block:
                return None
            if bodies is not None:
                # Whole lines only, so that every prefix starts a line of the block.
                end = block.rfind(b"\n") + 1
                if end == 0:  # one line longer than a block: read up to its end
                    block = os.pread(file.fileno(), size - offset, offset)
                    end = block.rfind(b"\n") + 1
                    if end == 0:
                        return None  # cut short: not what the index says it holds
                block = block[:end]
                lines = block.split(b"\n")
                lines[-1] = b""  # what follows the last newline: nothing
                bodies.append(b"\n".join([line[9:] for line in lines]))
            crc = zlib.crc32(block, crc)
            offset += len(block)
    return crc


def _finished_at(body: bytes) -> str:
    """Return the ``finished_at`` of a record line's JSON (``""`` when it has none)."""
    try:
        finished = json.loads(body).get("finished_at", "")
    except ValueError:  # a header with a broken rest: no time to rank it by
        return ""
    return finished if isinstance(finished, str) else ""
