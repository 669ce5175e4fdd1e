"""Copy an experiment from one store into another. Imports errors, record and store.

:func:`copy_store` is what :meth:`Store.copy_to` and ``metalab copy`` call. It writes in
an order that keeps the destination whole at every moment, so that a copy killed at any
point is finished by running it again: the experiment files, the manifests (oldest
first), then, a batch of records at a time, the files those records name and after them
the records. Nothing the destination holds already is written again: records are
compared by their bytes, files by their SHA-256. It ends with a check of both sides and
returns a :class:`CopyReport` (``docs/copy.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError, MetalabError
from metalab.record import ArtifactRef, RunRecord
from metalab.store._base import Store
from metalab.store.file import FileStore
from metalab.store.postgres import PostgresStore

__all__ = ["CopyReport", "copy_store", "nested_target"]

# Records per put_records_json call: one write (file store) or one COPY and commit
# (PostgreSQL). A kill -9 loses at most the batch being written, which the next copy
# writes again; 1,000 amortises a commit (1,600 single-record commits/s against 37,600
# records/s batched, docs/postgres.md) while keeping the files of a batch few.
_BATCH = 1000

# The start RunRecord.to_json writes, as the file store's put_records_json requires it;
# a record without it (other key order, a run ID that needs escapes) goes through
# put_record, which writes its to_json().
_TO_JSON_HEAD = re.compile(
    rb'\{"run_id":"[^"\\\n]*","status":"(?:success|failed)","attempt":\d+[,}]'
)

# Where every store puts a run's files: artifacts/<run folder>/<file name>.
_RUN_FILE = re.compile(r"artifacts/([^/\\\0]+)/([^/\\\0]+)")

_RUN_FILE_FIELDS = ("steps", "logs", "stdout", "stderr")


@dataclass(frozen=True)
class CopyReport:
    """What one copy wrote, and what its final check compared.

    Counts of records, files and experiment files are of the source; ``*_copied`` says
    how many of them this copy wrote (the others were in the target already).

    Attributes:
        source: Where it copied from (the source's ``location``).
        target: Where it copied to.
        experiment: The experiment's name, from the source manifest (``""`` if none).
        version: Its version (``""`` if none).
        records: Records in the source: every attempt of every run, each once.
        records_copied: Records written to the target.
        files: Files the records name (artifacts, per-step metrics, logs, printed output).
        files_copied: Files written to the target.
        bytes_copied: Their size in bytes.
        experiment_files: Files about the whole experiment (git diffs, verification).
        experiment_files_copied: Experiment files written (or replaced) in the target.
        manifests_copied: Manifests written to the target (earlier versions first).
        verifications: Verification outcomes in the source (``metalab verify``).
        verifications_copied: Verification outcomes written to the target.
        missing: Files a source record names that the source itself lacks; the target's
            record names them as the source's does.
        derived: Derived-metric entries in the source (:mod:`metalab.derived`).
        derived_copied: Derived-metric entries written to the target.

    """

    source: str
    target: str
    experiment: str
    version: str
    records: int
    records_copied: int
    files: int
    files_copied: int
    bytes_copied: int
    experiment_files: int
    experiment_files_copied: int
    manifests_copied: int
    verifications: int
    verifications_copied: int
    missing: tuple[str, ...] = ()
    derived: int = 0
    derived_copied: int = 0

    def summary(self) -> str:
        """Return one line: what was copied, what was there, and that the check passed."""
        name = f"{self.experiment} {self.version}".strip() or "(no manifest)"
        lacking = f"; {len(self.missing)} file(s) missing in the source too" * bool(self.missing)
        derived = f"{self.derived_copied} of {self.derived} derived-metric entries, " * bool(
            self.derived
        )
        return (
            f"{name}: {self.records_copied:,} of {self.records:,} records, "
            f"{self.files_copied:,} of {self.files:,} files ({_size(self.bytes_copied)}), "
            f"{self.experiment_files_copied} of {self.experiment_files} experiment files, "
            f"{derived}{self.verifications_copied} of {self.verifications} verification records "
            f"and {self.manifests_copied} manifest(s) copied, the rest already there; "
            f"checked: every record in the target once, every file's SHA-256 equal on both "
            f"sides{lacking}."
        )

    def __str__(self) -> str:
        return self.summary()


def copy_store(source: Store, target: Store | str | os.PathLike[str]) -> CopyReport:
    """Copy ``source``'s experiment into ``target``; return what was copied and checked.

    ``target`` is a store, or what :func:`~metalab.store.open_store` takes (a folder,
    made if missing, or a PostgreSQL URL). Copies every record (earlier attempts too),
    the files they name, the experiment files and the manifest history. Run IDs and
    record bytes are kept; what the target holds already is skipped, so a second copy
    adds only what is missing and a copy cut short (even by kill -9) is finished by
    running it again. A target holding another experiment, or another version of it,
    is refused, as is a copy onto itself. Raises :class:`~metalab.errors.MetalabError`
    when the final check finds a record or file that differs.
    """
    # Imported here: metalab.store's __init__ imports this module.
    from metalab.store import open_store

    if not isinstance(source, Store):
        raise InvalidTypeError(
            f"copy_store(source={source!r:.80}): must be a Store, got "
            f"{type(source).__name__}; open it with metalab.store.open_store(path)."
        )
    destination = open_store(target)
    try:
        return _copy(source, destination)
    finally:
        if destination is not target:  # opened here: its connection or segment too
            destination.close()


def _copy(source: Store, destination: Store) -> CopyReport:
    """Copy ``source`` into ``destination`` as :func:`copy_store` describes."""
    where = f"copy {source.location} -> {destination.location}"
    if _same_store(source, destination):
        raise InvalidArgumentError(
            f"{where}: the source and the target are the same store; name another "
            f"folder, or another schema (?schema=name) of the database."
        )
    history = source.manifest_history()
    # First without writing: another experiment in the target is refused untouched.
    _copy_manifests(where, history, destination, dry=True)
    experiment_files = source.experiment_files()
    experiment_copied = _copy_experiment_files(where, source, destination, experiment_files)
    manifests_copied = _copy_manifests(where, history, destination, dry=False)
    files = _Files(where, source, destination)
    written = [_as_written(body) for body in source.all_records_json()]
    held = Counter(destination.all_records_json())
    records_copied = 0
    for start in range(0, len(written), _BATCH):
        batch = written[start : start + _BATCH]
        for body, record in batch:
            files.copy(_files_named(body, record))
        # A source line kept twice (the same bytes) is one record: written once.
        new = [(body, record) for body, record in batch if held[body] == 0]
        held.update(body for body, _ in new)
        _put(destination, new)
        records_copied += len(new)
    # After the records: a verification outcome never speaks of a record not there.
    verifications = Counter(map(_canonical, source.verifications()))
    verifications_copied = _copy_verifications(source, destination, verifications)
    derived = Counter(map(_canonical, source.derived_entries()))
    derived_copied = _copy_derived(source, destination, derived)
    destination.flush()
    _check(where, source, destination, written, files, experiment_files, verifications, derived)
    current = history[-1] if history else {}
    return CopyReport(
        source=source.location,
        target=destination.location,
        experiment=str(current.get("name", "")),
        version=str(current.get("version", "")),
        records=len({body for body, _ in written}),
        records_copied=records_copied,
        files=len(files.hashes) + len(files.missing),
        files_copied=files.copied,
        bytes_copied=files.bytes_copied,
        experiment_files=len(experiment_files),
        experiment_files_copied=experiment_copied,
        manifests_copied=manifests_copied,
        verifications=verifications.total(),
        verifications_copied=verifications_copied,
        missing=tuple(files.missing),
        derived=derived.total(),
        derived_copied=derived_copied,
    )


def nested_target(target: str, name: str) -> str:
    """Return where the store called ``name`` goes when several are copied into ``target``.

    A folder gets ``<target>/<name>``. A PostgreSQL URL gets one schema per store,
    ``<schema>_<name>`` (``name`` alone without ``?schema=``), made a SQL name, and its
    artifacts folder ``<artifacts>/<name>``.
    """
    scheme = target.partition("://")[0].lower()
    if scheme not in ("postgresql", "postgres"):
        return os.path.join(target, *PurePosixPath(name).parts)
    parts = urllib.parse.urlsplit(target)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = dict(pairs)
    schema = re.sub(r"\W", "_", "_".join(filter(None, [options.get("schema"), name])))
    if not re.match(r"[A-Za-z_]", schema):
        schema = f"s_{schema}"
    options["schema"] = schema[:63]
    if "artifacts" in options:
        options["artifacts"] = os.path.join(options["artifacts"], *PurePosixPath(name).parts)
    query = urllib.parse.urlencode(list(options.items()), safe="/")
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _same_store(a: Store, b: Store) -> bool:
    """Tell whether ``a`` and ``b`` are one store (one folder, or one database schema)."""
    if isinstance(a, FileStore) and isinstance(b, FileStore):
        return os.path.realpath(a.location) == os.path.realpath(b.location)
    if isinstance(a, PostgresStore) and isinstance(b, PostgresStore):
        # The location also names the artifacts folder, which does not make another store.
        return (a._dsn, a._schema) == (b._dsn, b._schema)
    return False


def _identity(manifest: dict[str, Any]) -> tuple[Any, Any]:
    return manifest.get("name"), manifest.get("version")


def _copy_manifests(where: str, history: list[dict[str, Any]], target: Store, *, dry: bool) -> int:
    """Write the manifests of ``history`` the target lacks; return how many (``dry``: none).

    A target whose manifests are the first of ``history`` (a copy cut short) gets the
    rest; a target of the same experiment version with manifests of its own gets the
    source's current one. Any other target is refused, before anything is written.
    """
    held = target.manifest_history()
    if not history:
        return 0
    if held == history[: len(held)]:
        todo = history[len(held) :]
    elif _identity(held[-1]) == _identity(history[-1]):
        todo = [history[-1]] if held[-1] != history[-1] else []
    else:
        (name, version), (their_name, their_version) = _identity(history[-1]), _identity(held[-1])
        raise InvalidArgumentError(
            f"{where}: the target holds experiment {their_name!r} version {their_version!r}, "
            f"the source {name!r} version {version!r}; a store holds one version of one "
            f"experiment, so they are never mixed. Copy into a new store (another folder, "
            f"or another schema with ?schema=name)."
        )
    if not dry:
        for manifest in todo:
            target.write_manifest(manifest)
    return len(todo)


def _copy_experiment_files(where: str, source: Store, target: Store, paths: list[str]) -> int:
    """Copy the experiment files whose bytes differ in the target; return how many."""
    copied = 0
    for path in paths:
        data = source.read_file(path)
        if _read_or_none(target, path) == data:
            continue
        placed = target.put_experiment_file(PurePosixPath(path).name, data)
        if placed != path:
            raise InvalidArgumentError(
                f"{where}: the target keeps experiment file {path!r} as {placed!r}, where "
                f"the manifest would not find it; copy into a FileStore or PostgresStore."
            )
        copied += 1
    return copied


def _canonical(outcome: dict[str, Any]) -> str:
    """Return a verification outcome or derived entry as JSON that equal ones share."""
    return json.dumps(outcome, sort_keys=True, ensure_ascii=False)


def _copy_verifications(source: Store, target: Store, wanted: Counter[str]) -> int:
    """Append the source's verification outcomes the target lacks, oldest first."""
    lacking = wanted - Counter(map(_canonical, target.verifications()))
    copied = 0
    for outcome in source.verifications():
        key = _canonical(outcome)
        if lacking[key] > 0:
            target.put_verification(outcome)
            lacking[key] -= 1
            copied += 1
    return copied


def _copy_derived(source: Store, target: Store, wanted: Counter[str]) -> int:
    """Append the source's derived-metric entries the target lacks, in the source's order."""
    lacking = wanted - Counter(map(_canonical, target.derived_entries()))
    entries = []
    for entry in source.derived_entries():
        key = _canonical(entry)
        if lacking[key] > 0:
            entries.append(entry)
            lacking[key] -= 1
    for start in range(0, len(entries), _BATCH):
        target.put_derived(entries[start : start + _BATCH])
    return len(entries)


def _read_or_none(store: Store, path: str) -> bytes | None:
    try:
        return store.read_file(path)
    except FileNotFoundError:
        return None


def _as_written(body: bytes) -> tuple[bytes, RunRecord | None]:
    """Return the bytes the target will hold for the record ``body``, with how to write it.

    A body as :meth:`RunRecord.to_json` writes it goes as it is (``None``); another is
    parsed and written by ``put_record``, whose bytes are its ``to_json()``.
    """
    if _TO_JSON_HEAD.match(body):
        return body, None
    record = RunRecord.from_dict(json.loads(body))
    return record.to_json(), record


def _put(target: Store, records: list[tuple[bytes, RunRecord | None]]) -> None:
    """Write ``records`` in order: runs of plain bodies in one call, others one by one."""
    plain: list[bytes] = []
    for body, record in records:
        if record is None:
            plain.append(body)
            continue
        if plain:
            target.put_records_json(plain)
            plain = []
        target.put_record(record)
    if plain:
        target.put_records_json(plain)


def _files_named(body: bytes, record: RunRecord | None) -> Iterator[str]:
    """Yield the store paths of the files a record names (a figure's SVG twin too)."""
    if record is None and b'"artifacts/' not in body:
        # Every file path starts so: most records name no file, and then need no
        # parsing (it took a quarter of a 100,000-run copy into PostgreSQL).
        return
    entry = record.to_dict() if record is not None else json.loads(body)
    for key in _RUN_FILE_FIELDS:
        if isinstance(entry.get(key), str):
            yield entry[key]
    for ref in entry.get("artifacts") or ():
        yield ref["path"]
        for value in (ref.get("extra") or {}).values():
            if isinstance(value, str) and _RUN_FILE.fullmatch(value):
                yield value


class _Files:
    """The files of the records copied so far: each copied once, hashed on both sides."""

    def __init__(self, where: str, source: Store, target: Store) -> None:
        self.where = where
        self.source = source
        self.target = target
        self.hashes: dict[str, tuple[str, str]] = {}  # path: (source, target) SHA-256
        self.missing: list[str] = []
        self.copied = 0
        self.bytes_copied = 0

    def copy(self, paths: Iterable[str]) -> None:
        """Make each file of ``paths`` hold the source's bytes in the target, unless done."""
        for path in paths:
            if path not in self.hashes and path not in self.missing:
                self._copy(path)

    def _copy(self, path: str) -> None:
        place = _RUN_FILE.fullmatch(path) if isinstance(path, str) else None
        if place is None or {place[1], place[2]} & {".", ".."}:
            raise InvalidArgumentError(
                f"{self.where}: a record names the file {path!r}, not a path "
                f"'artifacts/<run>/<file>' as stores write; fix or remove that record."
            )
        # Only the path counts: both built-in stores find a file by it alone.
        ref = ArtifactRef(name=place[2], kind="file", path=path, size=0, sha256="")
        origin = self.source.artifact_path(ref)
        source_sha = _sha256(origin)
        if source_sha is None:
            self.missing.append(path)
            return
        target_sha = _sha256(self.target.artifact_path(ref))
        if target_sha != source_sha:
            placed = self.target.put_artifact(place[1], place[2], place[2], origin, kind="file")
            if placed.path != path:
                raise InvalidArgumentError(
                    f"{self.where}: the target keeps {path!r} as {placed.path!r}, where the "
                    f"copied record would not find it; copy into a FileStore or PostgresStore."
                )
            target_sha = placed.sha256
            self.copied += 1
            self.bytes_copied += placed.size
        self.hashes[path] = (source_sha, target_sha)


def _sha256(path: Path) -> str | None:
    """SHA-256 of the file at ``path``, hex; None when there is none."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _check(
    where: str,
    source: Store,
    target: Store,
    written: list[tuple[bytes, RunRecord | None]],
    files: _Files,
    experiment_files: list[str],
    verifications: Counter[str],
    derived: Counter[str],
) -> None:
    """Raise unless every record, file, experiment file, verification, derived entry is there.

    Records by their bytes, read back from the target: each must be there, and no more
    often than in the source. Files by the SHA-256 of their bytes on both sides.
    """
    wanted = Counter(body for body, _ in written)
    held = Counter(target.all_records_json())
    problems = [
        f"{held[body]} of the record {body[:60]!r}... (the source has {count})"
        for body, count in wanted.items()
        if not 1 <= held[body] <= count
    ]
    problems += [
        f"file {path!r}: SHA-256 {theirs[:12]} in the target, {ours[:12]} in the source"
        for path, (ours, theirs) in files.hashes.items()
        if ours != theirs
    ]
    problems += [
        f"experiment file {path!r} differs"
        for path in experiment_files
        if _read_or_none(target, path) != source.read_file(path)
    ]
    if verifications - Counter(map(_canonical, target.verifications())):
        problems.append("a verification record is missing")
    if derived - Counter(map(_canonical, target.derived_entries())):
        problems.append("a derived-metric entry is missing")
    if source.read_manifest() is not None and target.read_manifest() != source.read_manifest():
        problems.append("the current manifest differs")
    if problems:
        raise MetalabError(
            f"{where}: the check after copying found {len(problems)} difference(s): "
            f"{'; '.join(problems[:5])}{' ...' * (len(problems) > 5)}. Was the source "
            f"written to meanwhile? Run the same copy again to bring the target up to date."
        )


def _size(count: int) -> str:
    """Return a byte count for people: 512 B, 3.4 MB."""
    size, unit = float(count), "B"
    for bigger in ("kB", "MB", "GB"):
        if size < 1000:
            break
        size, unit = size / 1000, bigger
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
