"""A whole store in one file, read in place: PackStore, pack_store, unpack_store.

Imports errors, _json, _optional, _version, record, store._base and store.file (whose record
reader and file helpers it shares). pyarrow (the ``parquet`` extra) is imported when a
pack is made or opened.

A pack is a zip file (layout: ``docs/pack.md``)::

    README.md                      this layout, for someone who unzips it
    manifest.json, manifests/...   the store's manifests, as they were
    records.parquet                one row per record (every attempt), a ``current`` flag
    steps.parquet                  every per-step series: run_id, name, step, value
    artifacts/<run_id>/<file>      the files the runs produced, as they were
    experiment/<file>              files about the whole experiment
    verifications/, derived/       outcomes of metalab verify; derived metrics
    checksums.json                 SHA-256 and size of every other member

Parquet members are stored uncompressed by the zip (their pages are compressed
already), so they can be sliced out of the file as they are; other members are
deflated unless their suffix says they are compressed. Opening a pack checks that its
members are exactly those listed, and the SHA-256 of the manifest and the records;
other members are checked when first read. Loading a pack runs no code and writes
nothing, except that :meth:`PackStore.artifact_path` extracts an artifact into a
private temporary folder (decoders take a path), removed with the store.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import warnings
import weakref
import zipfile
import zlib
from array import array
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from metalab._json import compact_encoder
from metalab._optional import require
from metalab._version import __version__
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import ArtifactRef, RunRecord, gc_paused, records_from_json
from metalab.store._base import Store, StoreWarning, _forget_in_forked_children
from metalab.store.file import (
    FileStore,
    _derived_lines,
    _fsync_dir,
    _Lines,
    _make_dir,
    _warn_damage,
)

__all__ = ["PACK_FORMAT", "PackStore", "pack_store", "unpack_store"]

# How a pack's file name ends: open_store opens such a path (or any existing file) as
# a PackStore.
_SUFFIX = ".metalab.zip"

#: Version of the pack layout, in ``checksums.json``.
PACK_FORMAT = 1

_CHECKSUMS = "checksums.json"
_RECORDS = "records.parquet"
_STEPS = "steps.parquet"
_README = "README.md"
# The members metalab writes itself; every other member is a file of the store.
_TABLES = (_RECORDS, _STEPS)
# Folders of a store copied into a pack file by file (records/ and index/ become
# records.parquet; the states indexes and run-ID indexes are caches).
# pyarrow 26 aborts the process at exit ("terminate called without an active
# exception", exit 134) in about one run of two after a threaded Parquet read; read on
# the calling thread (members are small, and the read is not the cost of a load).
_ONE_THREAD = {"use_threads": False}
_FOLDERS = ("manifests", "experiment", "artifacts", "verifications", "derived")
# Deflating these gains nothing: their content is compressed already.
_COMPRESSED = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".gz", ".bz2", ".xz", ".zst", ".zip"}
_COMPRESSED |= {".npz", ".parquet", ".pt", ".mp4"}
# Zip times are local and 2-second grained: a fixed one makes equal stores give equal
# packs byte for byte.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20
# Records are written back by unpack_store this many at a time (one write each).
_UNPACK_BATCH = 10_000

# The JSON fields of a record kept as JSON text columns: their shapes vary by run.
_JSON_FIELDS = ("params", "seeds", "metrics", "nonfinite_metrics", "artifacts", "error", "tags")
# The first columns of records.parquet, before "current" and the other fields.
_HEAD_COLUMNS = ("run_id", "status", "attempt")
# The columns a PackStore reads.
_READ_COLUMNS = ("run_id", "status", "attempt", "current", "finished_at", "json")
_INT_FIELDS = ("attempt", "case_index", "replicate_index", "pid", "peak_memory")
_TEXT_FIELDS = ("run_id", "status", "experiment", "version", "started_at", "finished_at")
_TEXT_FIELDS += ("host", "worker", "steps", "logs", "stdout", "stderr")

_PACK_README = """\
# metalab pack

One metalab store in one zip file; `docs/pack.md` of metalab describes it in full.

- `records.parquet`: one row per run record, every attempt; `current` marks the record
  that counts for its run. `params`, `metrics`, `seeds`, `error`, `artifacts`, `tags`
  and `nonfinite_metrics` are JSON text; `json` is the whole record as metalab wrote it.
- `steps.parquet`: the per-step series of every run: `run_id`, `name`, `step`, `value`.
- `manifest.json`, `manifests/`: the experiment manifest, and earlier ones.
- `artifacts/<run id>/<file>`, `experiment/<file>`: the files, as the store held them.
- `checksums.json`: the SHA-256 and size of every other member.

With DuckDB, after `unzip` (or any zip tool):

    SELECT run_id, json_extract(metrics, '$.loss') FROM 'records.parquet' WHERE current;
"""


class PackStore(Store):
    """A store packed into one file by :func:`pack_store`, read in place and never written.

    ``path`` is the pack file. Opening it checks its members against ``checksums.json``
    and reads the manifest and the records, verified; other members are verified when
    first read. A member that fails its checksum, a truncated file or a member that is
    not listed is refused with an :class:`~metalab.errors.InvalidArgumentError` naming
    it. Needs pyarrow (``pip install 'metalab[parquet]'``). Write methods raise
    :class:`~metalab.errors.InvalidArgumentError`: ``metalab unpack`` gives a store that a
    sweep can write to. A pack pickles as its path.
    """

    #: How a pack's file name ends (:func:`pack_store` writes no other).
    SUFFIX = _SUFFIX
    read_only = True

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        where = f"PackStore({path!r})"
        if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
            raise InvalidTypeError(
                f"{where}: the path must be a str or os.PathLike, got {type(path).__name__}."
            )
        self._path = Path(os.path.abspath(path))
        if create:
            raise InvalidArgumentError(
                f"{self!r}: a pack is read-only, and a sweep cannot write to it; unpack it "
                f"first ('metalab unpack {self._path} DST') and run into DST."
            )
        if not self._path.is_file():
            raise InvalidArgumentError(
                f"{self!r}: there is no pack file at {str(self._path)!r}; check the path "
                f"('metalab pack STORE -o FILE{_SUFFIX}' makes one)."
            )
        self._pyarrow = require("pyarrow", feature="reading a pack", extra="parquet")
        self._parquet = require("pyarrow.parquet", feature="reading a pack", extra="parquet")
        self._lock = threading.Lock()
        self._verified: set[str] = set()
        self._cache: Path | None = None
        try:
            self._zip = zipfile.ZipFile(self._path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise self._refusal(f"it is not a readable zip file ({exc})") from None
        self._release = weakref.finalize(self, self._zip.close)
        _forget_in_forked_children(self)
        self._sums = self._checksums()
        self._manifest_bytes = self._read_manifest_bytes()
        records = self._pyarrow.BufferReader(self._member(_RECORDS))
        # Only what metalab reads: the JSON text columns are for other readers.
        self._rows = self._parquet.read_table(records, columns=list(_READ_COLUMNS), **_ONE_THREAD)

    def __reduce__(self) -> tuple[type[PackStore], tuple[str]]:
        return (type(self), (str(self._path),))

    def __repr__(self) -> str:
        return f"PackStore({str(self._path)!r})"

    @property
    def location(self) -> str:
        """The pack file, as an absolute path."""
        return str(self._path)

    def _refusal(self, problem: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"{self!r}: {problem}; the pack is truncated or was changed after it was made. "
            f"Make it again with 'metalab pack', or copy it again from where it came from."
        )

    def _checksums(self) -> dict[str, str]:
        """Return ``checksums.json``'s digests, refusing a pack whose members differ from it."""
        try:
            data = json.loads(self._zip.read(_CHECKSUMS))
            sums = {name: entry["sha256"] for name, entry in data["members"].items()}
            fmt = data["format"]
        except KeyError:
            raise self._refusal(f"it has no valid {_CHECKSUMS}") from None
        except (zipfile.BadZipFile, ValueError, TypeError, AttributeError) as exc:
            raise self._refusal(f"its {_CHECKSUMS} is damaged ({exc})") from None
        if fmt != PACK_FORMAT:
            raise InvalidArgumentError(
                f"{self!r}: pack format {fmt!r} is not one this metalab reads "
                f"({PACK_FORMAT}); read it with the metalab version that made it."
            )
        members = [info.filename for info in self._zip.infolist() if not info.is_dir()]
        for name in members:
            if name != _CHECKSUMS and name not in sums:
                raise self._refusal(f"member {name!r} is not listed in {_CHECKSUMS}")
            _inside("PackStore", name)
        missing = sorted(set(sums) - set(members))
        if missing:
            raise self._refusal(f"member {missing[0]!r} listed in {_CHECKSUMS} is missing")
        return sums

    def _member(self, name: str) -> bytes:
        """Return the bytes of member ``name``, checked against its SHA-256 on first read."""
        if name not in self._sums:
            raise FileNotFoundError(f"{self!r}: no member {name!r} in this pack")
        try:
            data = self._zip.read(name)  # also checks the zip's own CRC-32
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise self._refusal(f"member {name!r} cannot be read ({exc})") from None
        if name not in self._verified:
            if hashlib.sha256(data).hexdigest() != self._sums[name]:
                raise self._refusal(f"member {name!r} fails its SHA-256 checksum")
            with self._lock:
                self._verified.add(name)
        return data

    def _read_manifest_bytes(self) -> bytes | None:
        try:
            return self._member("manifest.json")
        except FileNotFoundError:
            return None

    def read_manifest(self) -> dict[str, Any] | None:
        """Return the manifest the store had when packed, or None when it had none."""
        if self._manifest_bytes is None:
            return None
        try:
            manifest = json.loads(self._manifest_bytes)
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict):
            raise InvalidArgumentError(
                f"{self!r}.read_manifest(): its manifest.json is not a JSON object (the "
                f"store packed had it so); unpack it and restore an earlier manifest."
            )
        return manifest

    # -- records ----------------------------------------------------------------------

    @cached_property
    def _current(self) -> tuple[list[str], list[int]]:
        """The current rows: their run IDs and row numbers, in order of first appearance.

        The order :meth:`FileStore.records` gives for the store that was packed.
        """
        rids = self._rows.column("run_id").to_pylist()
        flags = self._rows.column("current").to_pylist()
        rows = {rid: row for row, (rid, flag) in enumerate(zip(rids, flags, strict=True)) if flag}
        first = [rid for rid in dict.fromkeys(rids) if rid in rows]
        return first, [rows[rid] for rid in first]

    def run_states(self, *, verify: bool = True) -> dict[str, tuple[str, int]]:
        """Map each run ID to the ``(status, attempt)`` of its current record (checked at open)."""
        rids, rows = self._current
        statuses = self._rows.column("status").to_pylist()
        attempts = self._rows.column("attempt").to_pylist()
        return {rid: (statuses[row], attempts[row]) for rid, row in zip(rids, rows, strict=True)}

    def records_json(self) -> list[bytes]:
        """Return the current records as :meth:`RunRecord.to_json`, as the store held them."""
        _, rows = self._current
        bodies = self._rows.column("json").to_pylist()
        return [bodies[row].encode() for row in rows]

    def records_ndjson(self) -> bytes:
        """Return the current records' JSON, each followed by a newline, in one bytes."""
        return b"".join([body + b"\n" for body in self.records_json()])

    def records(self) -> Iterator[RunRecord]:
        """Yield the current record of every run, in the packed store's order."""
        yield from records_from_json(self.records_json())

    def all_records_json(self) -> list[bytes]:
        """Return every record, earlier attempts too, as JSON, in the order written."""
        return [body.encode() for body in self._rows.column("json").to_pylist()]

    def manifest_history(self) -> list[dict[str, Any]]:
        """Return the manifests of ``manifests/`` by name (time written), then the current."""
        current = self.read_manifest()
        if current is None:
            return []
        names = sorted(name for name in self._sums if name.startswith("manifests/"))
        return [*(json.loads(self._member(name)) for name in names), current]

    def experiment_files(self) -> list[str]:
        """Return the paths of the files in ``experiment/``, sorted."""
        return sorted(name for name in self._sums if name.startswith("experiment/"))

    def verifications(self) -> list[dict[str, Any]]:
        """Return the outcomes of ``metalab verify`` kept in the pack, oldest first."""
        names = sorted(name for name in self._sums if name.startswith("verifications/"))
        return [json.loads(self._member(name)) for name in names]

    def derived_entries(self) -> list[dict[str, Any]]:
        """Return the derived-metric entries of ``derived/``, each file in the order written."""
        names = sorted(name for name in self._sums if name.startswith("derived/"))
        return [entry for name in names for entry in _derived_lines(self._member(name), name)]

    def latest_records(self, count: int) -> list[RunRecord]:
        """Return up to ``count`` of the records that finished last, oldest first."""
        if count <= 0:
            return []
        compute = require("pyarrow.compute", feature="reading a pack", extra="parquet")
        order = compute.sort_indices(self._rows.column("finished_at"))
        latest = self._rows.column("json").take(order[-count:]).to_pylist()
        return records_from_json([body.encode() for body in latest])

    # -- files ------------------------------------------------------------------------

    def read_file(self, path: str) -> bytes:
        """Return the bytes of the store file ``path`` (as records name it), verified.

        Raises ``FileNotFoundError`` when the pack holds no such file.
        """
        name = _inside(f"{self!r}.read_file", path)
        if name in _TABLES or name == _CHECKSUMS:
            raise FileNotFoundError(f"{self!r}: {path!r} is not a file of the packed store")
        return self._member(name)

    def artifact_path(self, ref: ArtifactRef) -> Path:
        """Return a file holding the artifact ``ref`` names, extracted on first use.

        Decoders read a path, so the member (verified) is written once into a private
        temporary folder of this store, never beside the pack, and removed when the
        store is closed or dropped.
        """
        if not isinstance(ref, ArtifactRef):
            raise InvalidTypeError(
                f"{self!r}.artifact_path(ref={ref!r:.80}): must be an ArtifactRef, "
                f"got {type(ref).__name__}."
            )
        name = _inside(f"{self!r}.artifact_path", ref.path)
        if name not in self._sums or name in _TABLES or name == _CHECKSUMS:
            raise FileNotFoundError(f"{self!r}: no file {ref.path!r} in this pack")
        with self._lock:
            if self._cache is None:
                self._cache = Path(tempfile.mkdtemp(prefix="metalab-pack-"))
                self._drop_cache = weakref.finalize(self, shutil.rmtree, self._cache, True)
            target = self._cache.joinpath(*PurePosixPath(name).parts)
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                self._extract(name, target)
        return target

    def _extract(self, name: str, target: Path, *, sync: bool = False) -> None:
        """Copy member ``name`` into the file ``target`` a chunk at a time, checked as it goes.

        An artifact may be larger than memory; a file failing its SHA-256 is removed.
        With ``sync`` the file is fsynced before it takes its name (for a store).
        """
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        digest = hashlib.sha256()
        try:
            with self._zip.open(name) as member, temp.open("wb") as file:
                for chunk in _chunks(member):
                    digest.update(chunk)
                    file.write(chunk)
                if sync:
                    file.flush()
                    os.fsync(file.fileno())
            if digest.hexdigest() != self._sums[name]:
                raise self._refusal(f"member {name!r} fails its SHA-256 checksum")
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            temp.unlink(missing_ok=True)
            raise self._refusal(f"member {name!r} cannot be read ({exc})") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        os.replace(temp, target)

    def flush(self) -> None:
        """Nothing to do: a pack is never written."""

    def _after_fork(self) -> None:
        """In a forked child: open the pack afresh (the parent's file offset is shared).

        The extracted artifacts stay the parent's to remove.
        """
        self._lock = threading.Lock()
        if self._cache is not None:
            self._drop_cache.detach()
            self._cache = None
        self._release()
        self._zip = zipfile.ZipFile(self._path)
        self._release = weakref.finalize(self, self._zip.close)

    def close(self) -> None:
        """Remove the extracted artifacts; the pack can still be read after."""
        with self._lock:
            if self._cache is not None:
                self._drop_cache()
                self._cache = None

    # -- writing: refused -------------------------------------------------------------

    def _read_only(self, method: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"{self!r}.{method}(): a pack is read-only; unpack it ('metalab unpack "
            f"{self._path} DST') and write to the store in DST."
        )

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Refused: a pack is read-only."""
        raise self._read_only("write_manifest")

    def put_artifact(
        self, run_id: str, name: str, filename: str, data: bytes | Path, *, kind: str
    ) -> ArtifactRef:
        """Refused: a pack is read-only."""
        raise self._read_only("put_artifact")

    def put_record(self, record: RunRecord) -> None:
        """Refused: a pack is read-only."""
        raise self._read_only("put_record")

    def put_record_json(self, body: bytes) -> None:
        """Refused: a pack is read-only."""
        raise self._read_only("put_record_json")

    def put_records_json(self, bodies: list[bytes]) -> None:
        """Refused: a pack is read-only."""
        raise self._read_only("put_records_json")

    def put_experiment_file(self, filename: str, data: bytes) -> str:
        """Refused: a pack is read-only."""
        raise self._read_only("put_experiment_file")

    def put_derived(self, entries: list[dict[str, Any]]) -> None:
        """Refused: a pack is read-only."""
        raise self._read_only("put_derived")

    def steps_table(self) -> Any:
        """Return ``steps.parquet`` as a pyarrow Table: ``run_id``, ``name``, ``step``, ``value``.

        Every per-step series of every record in one table (the same values as the
        runs' per-step files), for analyses across runs.
        """
        return self._parquet.read_table(
            self._pyarrow.BufferReader(self._member(_STEPS)), **_ONE_THREAD
        )


def pack_store(
    source: str | os.PathLike[str] | FileStore,
    target: str | os.PathLike[str],
    *,
    force: bool = False,
) -> dict[str, int]:
    """Pack the file store ``source`` into the one file ``target``; return what it holds.

    ``target`` must end with ``.metalab.zip``; an existing one is refused unless
    ``force``. The pack is written under a temporary name beside ``target`` and renamed
    when complete. Records being written meanwhile are packed if complete. Returns the
    counts ``records``, ``runs``, ``files`` (members copied from the store) and ``bytes``
    (the pack's size). Needs pyarrow (``pip install 'metalab[parquet]'``).
    """
    where = f"pack_store({os.fspath(source) if not isinstance(source, Store) else source!r})"
    store = source if isinstance(source, Store) else FileStore(source, create=False)
    if not isinstance(store, FileStore):
        raise InvalidArgumentError(
            f"{where}: only a file store can be packed, not a {type(store).__name__}; copy "
            f"it into a folder first ('metalab copy'), then pack that folder."
        )
    target_path = _pack_target(where, target, force=force, root=Path(store.location))
    pyarrow = require("pyarrow", feature="pack_store()", extra="parquet")
    parquet = require("pyarrow.parquet", feature="pack_store()", extra="parquet")
    root = Path(store.location)
    with gc_paused():
        lines = _Lines(root / "records", keep_bodies=True)
        current = lines.current(list(range(len(lines.bodies))))
    _warn_damage(lines, depth=0)
    flags = [False] * len(lines.bodies)
    for row in current.values():
        flags[row] = True
    records = _records_table(pyarrow, lines.bodies, flags)
    files = _store_files(root)
    named = records.select(["steps", "run_id"]).to_pydict()
    run_of = {path: rid for path, rid in zip(named["steps"], named["run_id"], strict=True) if path}
    steps = _steps_table(pyarrow, root, run_of)
    temp = target_path.with_name(f".{target_path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with zipfile.ZipFile(temp, "w", allowZip64=True) as pack:
            sums = {_README: _add_bytes(pack, _README, _PACK_README.encode())}
            for name, table in ((_RECORDS, records), (_STEPS, steps)):
                sums[name] = _add_bytes(pack, name, _parquet_bytes(parquet, table))
            for name in files:
                sums[name] = _add_file(pack, name, root.joinpath(*name.split("/")))
            index = {"format": PACK_FORMAT, "metalab": __version__, "members": sums}
            _add_bytes(pack, _CHECKSUMS, json.dumps(index, indent=1, sort_keys=True).encode())
        os.replace(temp, target_path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return {
        "records": len(lines.bodies),
        "runs": len(current),
        "files": len(files),
        "bytes": target_path.stat().st_size,
    }


def unpack_store(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> FileStore:
    """Rebuild the file store of the pack ``source`` in the folder ``target``; return it.

    ``target`` must not exist, or be an empty folder. Every file comes back with its
    bytes, and every record (each attempt) with its JSON, so a sweep resumed on the
    store skips the runs that are done. Built in a temporary folder beside ``target``
    and renamed when complete.
    """
    pack = source if isinstance(source, PackStore) else PackStore(source)
    where = f"unpack_store({pack.location!r}, {os.fspath(target)!r})"
    target_path = Path(os.path.abspath(target))
    if target_path.exists() and (not target_path.is_dir() or any(target_path.iterdir())):
        raise InvalidArgumentError(
            f"{where}: {str(target_path)!r} exists and is not an empty folder; pass a new "
            f"folder, or remove that one first."
        )
    target_path.parent.mkdir(parents=True, exist_ok=True)
    temp = target_path.with_name(f".{target_path.name}.{secrets.token_hex(4)}.tmp")
    try:
        rebuilt = FileStore(temp)
        for name in pack._sums:
            if name in _TABLES or name == _README:
                continue
            folder = temp
            *parents, filename = name.split("/")
            for part in parents:
                folder = folder / part
                _make_dir(folder)
            pack._extract(name, folder / filename, sync=True)
        bodies = pack.all_records_json()
        for start in range(0, len(bodies), _UNPACK_BATCH):
            rebuilt.put_records_json(bodies[start : start + _UNPACK_BATCH])
        rebuilt.close()
        for folder, _, _ in os.walk(temp):  # the names of the files just written
            _fsync_dir(Path(folder))
        if target_path.exists():
            target_path.rmdir()
        os.replace(temp, target_path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return FileStore(target_path, create=False)


# -- helpers ------------------------------------------------------------------------


def _inside(where: str, path: Any) -> str:
    """Return ``path`` if it names a file inside a store ('/'-separated, no '..'), else raise."""
    if not isinstance(path, str):
        raise InvalidTypeError(f"{where}({path!r}): must be a str, got {type(path).__name__}.")
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts or "\\" in path or "\0" in path:
        raise InvalidArgumentError(
            f"{where}({path!r}): must be a '/'-separated path inside the store, without "
            f"'..'; pass a path a record names."
        )
    return "/".join(parts)


def _pack_target(where: str, target: Any, *, force: bool, root: Path) -> Path:
    """Return the pack file to write, refusing a bad name, an existing file or the store."""
    if isinstance(target, bytes) or not isinstance(target, str | os.PathLike):
        raise InvalidTypeError(
            f"{where}: target={target!r:.80} must be a file path (str or os.PathLike), "
            f"got {type(target).__name__}."
        )
    path = Path(os.path.abspath(target))
    if not path.name.endswith(_SUFFIX) or path.name == _SUFFIX:
        raise InvalidArgumentError(
            f"{where}: target {os.fspath(target)!r} must end with {_SUFFIX!r}, which is "
            f"how metalab knows a pack; e.g. {path.name.split('.')[0] or 'sweep'}{_SUFFIX}."
        )
    if path.is_dir() or (path.exists() and not force):
        raise InvalidArgumentError(
            f"{where}: {str(path)!r} exists; choose another name, or pass force=True "
            f"('--force') to replace it."
        )
    real_root = root.resolve()
    if real_root == path.parent.resolve() or real_root in path.parent.resolve().parents:
        raise InvalidArgumentError(
            f"{where}: {str(path)!r} is inside the store being packed; write it elsewhere."
        )
    if not path.parent.is_dir():
        raise InvalidArgumentError(
            f"{where}: the folder {str(path.parent)!r} does not exist; create it first."
        )
    return path


def _records_table(pyarrow: Any, bodies: list[bytes], flags: list[bool]) -> Any:
    """Return the table of ``records.parquet``: one row per record line, in their order."""
    dumps = compact_encoder(ensure_ascii=False)
    types = dict.fromkeys(_TEXT_FIELDS, pyarrow.string())
    types |= dict.fromkeys(_INT_FIELDS, pyarrow.int64())
    types["duration"] = pyarrow.float64()
    with gc_paused():
        entries = [json.loads(body) for body in bodies]
        columns = {name: [entry.get(name) for entry in entries] for name in types}
        columns |= {name: [dumps(entry.get(name)) for entry in entries] for name in _JSON_FIELDS}
    types |= dict.fromkeys(_JSON_FIELDS, pyarrow.string())
    arrays = {name: pyarrow.array(columns[name], types[name]) for name in _HEAD_COLUMNS}
    arrays["current"] = pyarrow.array(flags, pyarrow.bool_())
    arrays |= {
        name: pyarrow.array(values, types[name])
        for name, values in columns.items()
        if name not in _HEAD_COLUMNS
    }
    arrays["json"] = pyarrow.array([body.decode() for body in bodies], pyarrow.string())
    return pyarrow.table(arrays)


def _steps_table(pyarrow: Any, root: Path, paths: dict[str, str]) -> Any:
    """Return the table of ``steps.parquet`` from the per-step files ``paths`` maps to runs.

    Reads the per-step format (``metalab.capture``'s ``_steps`` module documents it) by
    its header and copies each series' bytes as they are: NaN and infinities stay bit
    for bit. A file that is missing or not in that format is left out, with a warning.
    """
    runs: list[str] = []
    names: dict[str, int] = {}  # each name once: a dictionary with repeats packs unstably
    run_index, name_index = array("i"), array("i")
    steps, values = array("q"), array("d")
    for path, run_id in sorted(paths.items()):
        try:
            data = root.joinpath(*path.split("/")).read_bytes()
            series = _step_series(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(
                f"pack_store: per-step file {path!r} left out of {_STEPS} ({exc}); it is "
                f"packed as a file all the same.",
                StoreWarning,
                stacklevel=3,
            )
            continue
        runs.append(run_id)
        for name, start, count in series:
            run_index.extend(array("i", [len(runs) - 1]) * count)
            name_index.extend(array("i", [names.setdefault(name, len(names))]) * count)
            steps.frombytes(data[start : start + 8 * count])
            values.frombytes(data[start + 8 * count : start + 16 * count])
    if sys.byteorder != "little":
        steps.byteswap()
        values.byteswap()
    dictionary = pyarrow.DictionaryArray.from_arrays
    return pyarrow.table(
        {
            "run_id": dictionary(pyarrow.array(run_index, pyarrow.int32()), runs),
            "name": dictionary(pyarrow.array(name_index, pyarrow.int32()), list(names)),
            "step": pyarrow.array(steps, pyarrow.int64()),
            "value": pyarrow.array(values, pyarrow.float64()),
        }
    )


def _step_series(data: bytes) -> list[tuple[str, int, int]]:
    """Return ``(name, first byte, count)`` of each series of a per-step file."""
    magic = b"MLSTEPS1\n"
    if not data.startswith(magic):
        raise ValueError("not a per-step file")
    end = data.index(b"\n", len(magic)) + 1
    header = json.loads(data[len(magic) : end])
    if header["byteorder"] != "little":
        raise ValueError(f"byteorder {header['byteorder']!r}")
    series = []
    for name, meta in header["metrics"].items():
        start, count = end + int(meta["offset"]), int(meta["count"])
        if start + 16 * count > len(data):
            raise ValueError(f"series {name!r} is cut short")
        series.append((name, start, count))
    return series


def _store_files(root: Path) -> list[str]:
    """Return the store's files to pack, as '/'-separated paths, in a stable order.

    Symbolic links are left out with a warning (a store reads only its own files), as
    are the temporary files of writes in progress.
    """
    names = ["manifest.json"] if (root / "manifest.json").is_file() else []
    for folder in _FOLDERS:
        for directory, subfolders, filenames in os.walk(root / folder):
            subfolders.sort()
            for filename in sorted(filenames):
                path = Path(directory, filename)
                if filename.startswith(".") and filename.endswith(".tmp"):
                    continue
                name = path.relative_to(root).as_posix()
                if path.is_symlink() or not path.is_file():
                    warnings.warn(
                        f"pack_store: {name!r} left out: a symbolic link or not a file, and "
                        f"a pack holds only the store's own files.",
                        StoreWarning,
                        stacklevel=3,
                    )
                    continue
                names.append(name)
    return names


def _parquet_bytes(parquet: Any, table: Any) -> bytes:
    sink = io.BytesIO()
    parquet.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    stored = name.endswith(".parquet") or Path(name).suffix.lower() in _COMPRESSED
    info.compress_type = zipfile.ZIP_STORED if stored or size == 0 else zipfile.ZIP_DEFLATED
    return info


def _add_bytes(pack: zipfile.ZipFile, name: str, data: bytes) -> dict[str, Any]:
    pack.writestr(_zip_info(name, len(data)), data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _add_file(pack: zipfile.ZipFile, name: str, path: Path) -> dict[str, Any]:
    """Stream the file at ``path`` into member ``name``; return its checksum entry."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        total = os.fstat(file.fileno()).st_size
        info = _zip_info(name, total)
        with pack.open(info, "w", force_zip64=total >= 1 << 31) as member:
            for chunk in _chunks(file):
                member.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def _chunks(file: Any) -> Iterable[bytes]:
    return iter(lambda: file.read(_CHUNK), b"")
