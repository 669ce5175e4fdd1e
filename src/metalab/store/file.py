r"""Append-only file store, the default store. Imports errors, record and store._base.

A store is a folder a person can browse (layout and line format: ``docs/store.md``)::

    README.md                          this layout, for someone browsing
    manifest.json                      the current experiment manifest
    manifests/<UTC time>-<sha8>.json   earlier manifests, kept when it changed
    records/<host>-<pid>-<hex8>.jsonl  one append-only segment per writing process
    artifacts/<run_id>/<filename>      the files runs produced

Each process appends its records to a segment of its own, so writers on many
processes and machines never share a file, and no lock is needed between them.
A record line is ``<crc32 as 8 hex> <compact JSON>\n``, written with one ``write``:
kill -9 loses nothing written (the kernel holds it). Segments are fsynced in groups
(every 64 records or 1 s, and on :meth:`FileStore.flush`), so power loss may lose the
records of the last second that were not flushed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import secrets
import socket
import threading
import time
import warnings
import weakref
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from time import monotonic
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import SUCCESS, ArtifactRef, RunRecord
from metalab.store._base import Store, StoreWarning

__all__ = ["FileStore"]

# fsync costs 125 µs against 0.8 µs for the append itself (notes/store-facts.md), five
# times the whole per-run budget; syncing in groups bounds what power loss can take,
# as SQLite's WAL does with synchronous=NORMAL.
_SYNC_EVERY_RECORDS = 64
_SYNC_EVERY_SECONDS = 1.0

_COPY_CHUNK = 1 << 20

_README = """\
# metalab store

This folder holds one metalab experiment. Everything in it is plain text except the
artifacts, which are the files the runs produced.

- `manifest.json`: the experiment (name, version, parameters, seeds) as last run.
- `manifests/<UTC time>-<first 8 hex of its SHA-256>.json`: earlier manifests, kept
  when the manifest changed; the time is when that version was written.
- `records/<host>-<pid>-<random>.jsonl`: run records, one file per writing process.
  Each line is the CRC-32 of the JSON as 8 lowercase hex digits, a space, one JSON
  object (a run record), and a newline. Skip a line whose CRC does not match (torn or
  corrupted) and a last line without its newline (torn, or still being written).
  A run may have several records; its current one has the highest "attempt"; among
  equal attempts a success beats a failure.
- `artifacts/<run id>/<file>`: the files a run produced, listed in its record's
  "artifacts" with their size and SHA-256.

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
        _STORES.add(self)

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
            return json.loads(text)
        except ValueError as exc:
            raise InvalidArgumentError(
                f"{self!r}.read_manifest(): {str(path)!r} is not valid JSON ({exc}); "
                f"restore an earlier version from manifests/, or delete it to start afresh."
            ) from exc

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
        with self._lock:
            if self._segment is None:
                self._segment = _Segment(self._root / "records")
            self._segment.append(line)

    def records(self) -> Iterator[RunRecord]:
        """Yield the current record of every run, reading all segments.

        The current record has the highest ``attempt``; among equal attempts a success
        beats a failure, then the latest ``finished_at``, then the one later in segment
        order (segments sorted by name, lines in file order). Damaged lines are skipped
        with one :class:`StoreWarning` per segment.
        """
        with _gc_paused():
            current = [RunRecord.from_dict(entry) for entry in self._current_entries()]
        yield from current

    def done_ids(self) -> set[str]:
        """Return the IDs of runs whose current record is a success, without building records."""
        with _gc_paused():
            return {
                entry["run_id"]
                for entry in self._current_entries()
                if entry.get("status") == SUCCESS
            }

    def _current_entries(self) -> list[dict[str, Any]]:
        best: dict[str, tuple[tuple[int, bool, str, int], dict[str, Any]]] = {}
        for position, entry in enumerate(_entries(self._root / "records")):
            rank = (
                entry.get("attempt", 1),
                entry.get("status") == SUCCESS,
                entry.get("finished_at", ""),
                position,
            )
            held = best.get(entry["run_id"])
            if held is None or rank > held[0]:
                best[entry["run_id"]] = (rank, entry)
        return [entry for _, entry in best.values()]

    def put_experiment_file(self, filename: str, data: bytes) -> str:
        """Write ``experiment/<filename>`` atomically; return that path."""
        target = _path_part(f"{self!r}.put_experiment_file", "filename", filename)
        _make_dir(self._root / "experiment")
        _write_atomic(self._root / "experiment" / target, [bytes(data)])
        return f"experiment/{target}"

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

    def _forget_parent_writer(self) -> None:
        """In a forked child: drop the parent's segment and a lock it may have held."""
        self._lock = threading.Lock()
        if self._segment is not None:
            self._segment.release()
            self._segment = None


class _Segment:
    """One process's append-only record file, fsynced in groups."""

    def __init__(self, folder: Path) -> None:
        _make_dir(folder)
        # A hostname may hold characters that are awkward in file names.
        host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
        self.path = folder / f"{host}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        # O_EXCL: two processes never share a segment, even on a name clash (which
        # then fails loudly instead of interleaving).
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o666)
        self.release = weakref.finalize(self, os.close, self.fd)
        _fsync_dir(folder)
        self.unsynced = 0
        self.synced_at = monotonic()

    def append(self, line: bytes) -> None:
        """Write ``line`` whole, then fsync if the group is full or a second old."""
        view = memoryview(line)
        while view:
            # A short write is allowed (signals, full disks, network filesystems); only
            # this process appends here, so the rest lands right after it.
            view = view[os.write(self.fd, view) :]
        self.unsynced += 1
        if (
            self.unsynced >= _SYNC_EVERY_RECORDS
            or monotonic() - self.synced_at >= _SYNC_EVERY_SECONDS
        ):
            self.sync()

    def sync(self) -> None:
        """Fsync the records written since the last sync."""
        if self.unsynced:
            os.fsync(self.fd)
            self.unsynced = 0
        self.synced_at = monotonic()

    def close(self) -> None:
        """Sync, then close the file."""
        self.sync()
        self.release()


# Every live store, so that a forked child can drop its parent's segments and locks:
# the same fix the logging module applies to its handlers' locks.
_STORES: weakref.WeakSet[FileStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forget_parent_writer()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
    """Create the folder ``path`` if missing, its entry fsynced into the parent."""
    try:
        path.mkdir()
    except FileExistsError:
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
        payload = json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":"))
        body = payload.encode()
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(
            f"FileStore.put_record(record.run_id={record.run_id!r}): the record is not "
            f"JSON ({exc}); params, metrics and the other fields may hold only str-keyed "
            f"dicts, lists, str, numbers, bool and None (convert NumPy values with .item() "
            f"or .tolist())."
        ) from exc
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _entries(folder: Path) -> Iterator[dict[str, Any]]:
    """Yield the record dicts of every segment in ``folder``, segments sorted by name."""
    for segment in sorted(folder.glob("*.jsonl")):
        yield from _segment_entries(segment)


def _segment_entries(segment: Path) -> Iterator[dict[str, Any]]:
    """Yield the intact record dicts of one segment; warn once if any line is damaged."""
    damaged = total = 0
    torn = False
    with segment.open("rb") as lines:
        for line in lines:
            total += 1
            if not line.endswith(b"\n"):
                # The end of what is written so far (a write in progress or a crash); read
                # on and a line the writer has since completed would come as a bad second half.
                torn = True
                damaged += 1
                break
            entry = _decode_line(line)
            if entry is None:
                damaged += 1
            else:
                yield entry
    if damaged:
        tail = ", the last one incomplete (torn by a crash, or still being written)" if torn else ""
        warnings.warn(
            f"{str(segment)!r}: skipped {damaged} damaged line(s) of {total}{tail}; "
            f"their runs count as not done and run again on resume.",
            StoreWarning,
            # Point at the caller of records() or done_ids().
            stacklevel=4,
        )


def _decode_line(line: bytes) -> dict[str, Any] | None:
    """Return the record dict of a complete line, or None if its CRC or JSON is bad."""
    crc, _, body = line.partition(b" ")
    if crc != b"%08x" % zlib.crc32(body[:-1]):
        return None
    try:
        entry = json.loads(body)
    except ValueError:
        return None
    is_record = isinstance(entry, dict) and isinstance(entry.get("run_id"), str)
    return entry if is_record else None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: it would walk every new dict, doubling a bulk load's time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
