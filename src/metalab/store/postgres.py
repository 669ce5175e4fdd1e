"""PostgreSQL store, for many writers and readers. Imports errors, _optional, record, store.

One store is one schema of a database (``docs/postgres.md``)::

    <schema>.manifests         id, written_at, body: every manifest written, the last current
    <schema>.records           seq, run_id (bytea), status, attempt, finished_at, body (text)
    <schema>.experiment_files  filename, data: files about the whole experiment (git diffs)
    <schema>.run_id_index      key, start, ids: run IDs of a sweep by position (a cache)
    <schema>.verifications     id, written_at, body: outcomes of metalab verify
    <schema>.derived           id, function, code_sha256, run_id, body: derived metrics

``records.body`` is the record exactly as :meth:`RunRecord.to_json` wrote it; the
other columns repeat what resume and the current-record rule need, so that those are
answered by SQL without parsing JSON. Artifacts are files, written by a
:class:`FileStore` rooted at the folder the user names (``artifacts=``).

psycopg (version 3) is imported when a store is made, never by ``import metalab``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from metalab._optional import require
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import FAILED, SUCCESS, ArtifactRef, RunRecord, gc_paused, records_from_json
from metalab.store._base import (
    Store,
    _check_run_ids,
    _contiguous_ids,
    _forget_in_forked_children,
)
from metalab.store.file import FileStore

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# The current record of each run, as FileStore chooses it: highest attempt; among equal
# attempts a success, then the latest finished_at, then the later-written row. The
# (run_id, attempt) index gives DISTINCT ON its first two keys in order.
_CURRENT = """
SELECT DISTINCT ON (run_id) seq, run_id, status, attempt{extra}
FROM {schema}.records
ORDER BY run_id, attempt DESC, (status = 'success') DESC, finished_at DESC, seq DESC
"""

_TABLES = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.manifests (
    id bigserial PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now(),
    body text NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.records (
    seq bigserial PRIMARY KEY,
    run_id bytea NOT NULL,
    status text NOT NULL CHECK (status IN ('success', 'failed')),
    attempt integer NOT NULL,
    finished_at text COLLATE "C" NOT NULL,
    body text NOT NULL
);
CREATE INDEX IF NOT EXISTS records_run_id_attempt ON {schema}.records (run_id, attempt);
CREATE TABLE IF NOT EXISTS {schema}.experiment_files (
    filename text PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now(),
    data bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.run_id_index (
    key text NOT NULL,
    start bigint NOT NULL,
    ids bytea NOT NULL,
    PRIMARY KEY (key, start)
);
"""

# Made by the first verification, not with the other tables: stores made before it
# existed get it too.
_VERIFICATIONS = """
CREATE TABLE IF NOT EXISTS {schema}.verifications (
    id bigserial PRIMARY KEY,
    written_at timestamptz NOT NULL DEFAULT now(),
    body text NOT NULL
)
"""

# Made by the first derived metric stored, as verifications is.
_DERIVED = """
CREATE TABLE IF NOT EXISTS {schema}.derived (
    id bigserial PRIMARY KEY,
    function text NOT NULL,
    code_sha256 text NOT NULL,
    run_id text NOT NULL,
    body text NOT NULL
)
"""

_COPY_RECORDS = "COPY {schema}.records (run_id, status, attempt, finished_at, body) FROM STDIN"


class PostgresStore(Store):
    """A store in a PostgreSQL schema; artifacts in a folder (``docs/postgres.md``).

    ``dsn`` is a libpq connection string, ``postgresql://user@host:5432/db`` or
    ``host=... dbname=...``; a URL may carry this store's options as query parameters,
    ``?schema=name&artifacts=/shared/folder``, so that one string names the whole store
    (for ``load_results`` and the command line). ``schema`` (default ``"metalab"``)
    holds the store's tables; several stores share a database under different schemas.
    ``artifacts`` is the folder artifact files go to (a :class:`FileStore` folder, which
    every writer must see, e.g. on a shared filesystem); without it ``put_artifact``
    raises, naming the fix, since a folder no other node sees would lose files silently.

    The schema and tables are made on first open unless ``create=False``, which requires
    them. Every ``put_*`` commits before it returns (durable, as the server's
    ``synchronous_commit`` makes commits). Any number of processes may write at once.

    A store pickles as its DSN and options; the copy (and a process forked from this
    one) opens a connection of its own on first use. Thread-safe.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        artifacts: str | os.PathLike[str] | None = None,
        create: bool = True,
    ) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise InvalidTypeError(
                f"PostgresStore(dsn={dsn!r:.80}): must be a non-empty str, a libpq "
                f"connection string such as 'postgresql://user@host:5432/dbname'."
            )
        self._psycopg = require("psycopg", feature="PostgresStore", extra="postgres")
        self._dsn, url_options = _split_options(dsn)
        schema = _merge_option(dsn, "schema", schema, url_options.get("schema"))
        artifacts = _merge_option(dsn, "artifacts", artifacts, url_options.get("artifacts"))
        schema = "metalab" if schema is None else schema
        if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidArgumentError(
                f"PostgresStore(schema={schema!r}): must be a plain SQL name (letters, "
                f"digits and '_', not starting with a digit, at most 63), e.g. 'sweep_2026'."
            )
        self._schema = schema
        self._quoted = f'"{schema}"'
        self._given = dsn
        self._artifacts_path = None if artifacts is None else os.path.abspath(artifacts)
        # Made on first use: a reader (create=False) of a store whose runs wrote no
        # artifact yet must not fail for want of the folder.
        self._artifacts: FileStore | None = None
        self._create = create
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = 0
        _forget_in_forked_children(self)
        with self._lock:
            self._open_schema(create=create)

    def __reduce__(self) -> tuple[Any, tuple[str, str, str | None]]:
        return (_reopen, (self._given, self._schema, self._artifacts_path))

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    @property
    def location(self) -> str:
        """The DSN (password hidden) with the schema and artifacts folder as URL options."""
        options = {"schema": self._schema}
        if self._artifacts_path is not None:
            options["artifacts"] = self._artifacts_path
        hidden = _redacted(self._dsn)
        if "://" not in hidden:
            return f"{hidden} ({', '.join(f'{k}={v}' for k, v in options.items())})"
        glue = "&" if "?" in hidden else "?"
        return hidden + glue + urllib.parse.urlencode(options, safe="/")

    # -- connection -------------------------------------------------------------------

    def _connection(self) -> Any:
        """Return this process's connection, opening one if needed (call under the lock)."""
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            # Inherited through a fork without the at-fork hook having run: the socket is
            # the parent's, and must be neither used nor closed from here.
            _disown(conn)
            conn = self._conn = None
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self._dsn, autocommit=True)
            except self._psycopg.Error as exc:
                raise InvalidArgumentError(
                    f"{self!r}: cannot connect ({' '.join(str(exc).split())}); check the "
                    f"DSN and that the server runs (bash scripts/postgres.sh start gives a "
                    f"private one)."
                ) from exc
            self._conn, self._pid = conn, os.getpid()
        return conn

    def _open_schema(self, *, create: bool) -> None:
        conn = self._connection()
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{self._quoted}.records",)
        ).fetchone()[0]
        if exists:
            return
        if not create:
            raise InvalidArgumentError(
                f"{self!r}: there is no metalab store in schema {self._schema!r} of that "
                f"database; check the DSN and schema, or open it with create=True to "
                f"start a new store."
            )
        with conn.transaction():
            # Two processes creating the same tables at once race in the catalog (a
            # unique violation on pg_type); the lock makes the second wait and find them.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"metalab:{self._schema}",))
            conn.execute(_TABLES.format(schema=self._quoted))

    def _run(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Execute one statement (committed on return) and return its rows."""
        with self._lock:
            cursor = self._connection().execute(query.format(schema=self._quoted), params)
            return cursor.fetchall() if cursor.description is not None else []

    # -- manifests ----------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any] | None:
        """Return the manifest written last, or None when none was written."""
        rows = self._run("SELECT id, body FROM {schema}.manifests ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        return self._manifest(*rows[0])

    def _manifest(self, row_id: int, body: str) -> dict[str, Any]:
        """Return the manifest of a row of the manifests table, refusing a non-object."""
        try:
            manifest = json.loads(body)
        except ValueError as exc:
            manifest = exc
        if not isinstance(manifest, dict):
            raise InvalidArgumentError(
                f"{self!r}.read_manifest(): row id={row_id} of {self._schema}.manifests is "
                f"not a JSON object; delete that row to go back to the manifest before it."
            )
        return manifest

    def manifest_history(self) -> list[dict[str, Any]]:
        """Return every manifest row's JSON, oldest first, the current one last."""
        rows = self._run("SELECT id, body FROM {schema}.manifests ORDER BY id")
        return [self._manifest(row_id, body) for row_id, body in rows]

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Add ``manifest`` as the current one; earlier rows stay as history.

        Writing a manifest equal to the current one adds nothing. The text is the one
        FileStore writes to ``manifest.json`` (sorted keys, indented).
        """
        if not isinstance(manifest, dict):
            raise InvalidTypeError(
                f"{self!r}.write_manifest(manifest={manifest!r:.80}): must be a dict, "
                f"got {type(manifest).__name__}."
            )
        try:
            text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(
                f"{self!r}.write_manifest(): the manifest is not JSON ({exc}); "
                f"it may hold only str-keyed dicts, lists, str, numbers, bool and None."
            ) from exc
        schema = self._quoted
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                # One writer at a time, so two equal manifests never both go in.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"metalab:{self._schema}:m",)
                )
                last = conn.execute(
                    f"SELECT body FROM {schema}.manifests ORDER BY id DESC LIMIT 1"
                ).fetchone()
                if last is None or last[0] != text:
                    conn.execute(f"INSERT INTO {schema}.manifests (body) VALUES (%s)", (text,))

    # -- records ------------------------------------------------------------------------

    def put_record(self, record: RunRecord) -> None:
        """Insert ``record``; committed when this returns."""
        if not isinstance(record, RunRecord):
            raise InvalidTypeError(
                f"{self!r}.put_record(record={record!r:.80}): must be a RunRecord, "
                f"got {type(record).__name__}."
            )
        try:
            body = record.to_json()
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(
                f"{self!r}.put_record(record.run_id={record.run_id!r}): the record is not "
                f"JSON ({exc}); params, metrics and the other fields may hold only "
                f"str-keyed dicts, lists, str, numbers, bool and None."
            ) from exc
        self._insert([self._row("put_record", body)])

    def put_record_json(self, body: bytes) -> None:
        """Insert a record given as :meth:`RunRecord.to_json` bytes; committed on return."""
        self._insert([self._row("put_record_json", body)])

    def put_records_json(self, bodies: list[bytes]) -> None:
        """Insert records given as :meth:`RunRecord.to_json` bytes: one COPY, one commit.

        Each is checked before any is written; the batch is committed whole or not at all.
        """
        rows = [self._row("put_records_json", body) for body in bodies]
        if rows:
            self._insert(rows)

    def _row(self, method: str, body: bytes) -> tuple[bytes, str, int, str, str]:
        """Return the columns of a record's row, refusing what is not one record's JSON."""
        entry: Any = None
        if isinstance(body, bytes) and b"\n" not in body:
            try:
                entry = json.loads(body)
            except ValueError:
                entry = None
        if isinstance(entry, dict):
            rid, status = entry.get("run_id"), entry.get("status")
            attempt, finished = entry.get("attempt"), entry.get("finished_at")
            if (
                isinstance(rid, str)
                and status in (SUCCESS, FAILED)
                and type(attempt) is int
                and isinstance(finished, str)
            ):
                # A text column holds no NUL; the run ID is bytea, the body escapes them.
                return rid.encode(), status, attempt, finished.replace("\0", ""), body.decode()
        raise InvalidArgumentError(
            f"{self!r}.{method}(body={body!r:.80}): must be the bytes of one "
            f"RunRecord.to_json(); pass a RunRecord to put_record() instead."
        )

    def _insert(self, rows: list[tuple[bytes, str, int, str, str]]) -> None:
        with self._lock:
            conn = self._connection()
            copy_in = _COPY_RECORDS.format(schema=self._quoted)
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(copy_in) as copy:
                for row in rows:
                    copy.write_row(row)

    def run_states(self, *, verify: bool = True) -> dict[str, tuple[str, int]]:
        """Map each run ID to the ``(status, attempt)`` of its current record.

        Chosen by the server (one DISTINCT ON query). ``verify`` changes nothing: the
        server checks its pages itself, so there are no stored bytes to check here.
        """
        rows = self._run(_CURRENT.format(schema="{schema}", extra=""))
        states: dict[tuple[str, int], tuple[str, int]] = {}
        with gc_paused():
            return {
                rid.decode(): states.setdefault((status, attempt), (status, attempt))
                for _, rid, status, attempt in rows
            }

    def records_json(self) -> list[bytes]:
        """Return the current records' JSON as written, in the order they were written."""
        query = f"SELECT body FROM ({_CURRENT}) AS current ORDER BY seq"
        rows = self._run(query.format(schema="{schema}", extra=", body"))
        return [body.encode() for (body,) in rows]

    def all_records_json(self) -> list[bytes]:
        """Return every record's JSON as written, earlier attempts too, in write order."""
        rows = self._run("SELECT body FROM {schema}.records ORDER BY seq")
        return [body.encode() for (body,) in rows]

    def records_ndjson(self) -> bytes:
        """Return the current records' JSON, newline-terminated, joined by the server."""
        query = f"SELECT string_agg(body, E'\\n' ORDER BY seq) FROM ({_CURRENT}) AS current"
        [(text,)] = self._run(query.format(schema="{schema}", extra=", body"))
        return b"" if text is None else text.encode() + b"\n"

    def records(self) -> Iterator[RunRecord]:
        """Yield the current record of every run, in the order they were written."""
        yield from records_from_json(self.records_json())

    def latest_records(self, count: int) -> list[RunRecord]:
        """Return up to ``count`` of the records written last, oldest first (by finished_at)."""
        if count <= 0:
            return []
        rows = self._run(
            "SELECT body FROM {schema}.records ORDER BY seq DESC LIMIT %s", (int(count),)
        )
        records = records_from_json([body.encode() for (body,) in reversed(rows)])
        return sorted(records, key=lambda record: record.finished_at)

    # -- run-ID index -------------------------------------------------------------------

    def run_id_index(self, key: str) -> bytes:
        """Return the run IDs kept under ``key``, from position 0 on without a gap.

        Rows that overlap must agree (two planners of one sweep compute the same IDs);
        if they do not, the index is not trusted and nothing is returned.
        """
        rows = self._run(
            "SELECT start, ids FROM {schema}.run_id_index WHERE key = %s ORDER BY start",
            (key,),
        )
        return _contiguous_ids(rows)

    def extend_run_id_index(self, key: str, start: int, ids: bytes) -> None:
        """Keep ``ids`` (16 bytes each) for positions ``start`` on, under ``key``."""
        _check_run_ids(f"{self!r}.extend_run_id_index", ids)
        self._run(
            "INSERT INTO {schema}.run_id_index (key, start, ids) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (key, start, bytes(ids)),
        )

    # -- files --------------------------------------------------------------------------

    def put_experiment_file(self, filename: str, data: bytes) -> str:
        """Keep ``data`` in the experiment_files table; return ``experiment/<filename>``."""
        if (
            not isinstance(filename, str)
            or filename in ("", ".", "..")
            or any(c in filename for c in "/\\\0")
        ):
            raise InvalidArgumentError(
                f"{self!r}.put_experiment_file(filename={filename!r}): must be one file "
                f"name: a non-empty str without '/', '\\' or NUL, e.g. 'git-0123abcd.diff'."
            )
        self._run(
            "INSERT INTO {schema}.experiment_files (filename, data) VALUES (%s, %s) "
            "ON CONFLICT (filename) DO UPDATE SET data = excluded.data, written_at = now()",
            (filename, bytes(data)),
        )
        return f"experiment/{filename}"

    def experiment_files(self) -> list[str]:
        """Return ``experiment/<filename>`` of every row of experiment_files, sorted."""
        rows = self._run("SELECT filename FROM {schema}.experiment_files")
        return sorted(f"experiment/{filename}" for (filename,) in rows)

    def put_verification(self, outcome: dict[str, Any]) -> str:
        """Insert the outcome of a verification; return ``verifications/<row id>``."""
        body = json.dumps(outcome, sort_keys=True, ensure_ascii=False)
        self._run(_VERIFICATIONS)
        [(row_id,)] = self._run(
            "INSERT INTO {schema}.verifications (body) VALUES (%s) RETURNING id", (body,)
        )
        return f"verifications/{row_id}"

    def verifications(self) -> list[dict[str, Any]]:
        """Return the verification outcomes, oldest first (none when the table is missing)."""
        [(exists,)] = self._run(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{self._quoted}.verifications",)
        )
        if not exists:
            return []
        rows = self._run("SELECT body FROM {schema}.verifications ORDER BY id")
        return [json.loads(body) for (body,) in rows]

    def put_derived(self, entries: list[dict[str, Any]]) -> None:
        """Insert derived-metric entries, one row each, in one transaction."""
        rows = []
        for entry in entries:
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(key), str) for key in ("function", "code_sha256", "run_id")
            ):
                raise InvalidTypeError(
                    f"{self!r}.put_derived(entries=[{entry!r:.80}, ...]): each entry must be a "
                    f"dict with 'function', 'code_sha256' and 'run_id' str, as "
                    f"metalab.derived makes them."
                )
            body = json.dumps(entry, sort_keys=True, ensure_ascii=False)
            rows.append((entry["function"], entry["code_sha256"], entry["run_id"], body))
        if not rows:
            return
        self._run(_DERIVED)
        with self._lock:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self._quoted}.derived (function, code_sha256, run_id, body) "
                    f"VALUES (%s, %s, %s, %s)",
                    rows,
                )

    def derived_entries(self) -> list[dict[str, Any]]:
        """Return the derived-metric entries in the order inserted (none without the table)."""
        [(exists,)] = self._run("SELECT to_regclass(%s) IS NOT NULL", (f"{self._quoted}.derived",))
        if not exists:
            return []
        rows = self._run("SELECT body FROM {schema}.derived ORDER BY id")
        return [json.loads(body) for (body,) in rows]

    def read_file(self, path: str) -> bytes:
        """Return a file a record names: from experiment_files, else the artifacts folder."""
        relative = PurePosixPath(path) if isinstance(path, str) else None
        if relative is None or relative.is_absolute() or ".." in relative.parts or "\\" in path:
            raise InvalidArgumentError(
                f"{self!r}.read_file({path!r}): must be a '/'-separated path inside the "
                f"store, without '..'; pass a path this store returned."
            )
        if len(relative.parts) == 2 and relative.parts[0] == "experiment":
            rows = self._run(
                "SELECT data FROM {schema}.experiment_files WHERE filename = %s",
                (relative.parts[1],),
            )
            if not rows:
                raise FileNotFoundError(
                    f"{self!r}.read_file({path!r}): no such experiment file in "
                    f"{self._schema}.experiment_files."
                )
            return bytes(rows[0][0])
        return self._artifact_store("read_file", path).read_file(path)

    def put_artifact(
        self,
        run_id: str,
        name: str,
        filename: str,
        data: bytes | bytearray | os.PathLike[str],
        *,
        kind: str,
    ) -> ArtifactRef:
        """Write ``data`` into the artifacts folder as :meth:`FileStore.put_artifact` does."""
        return self._artifact_store("put_artifact", filename).put_artifact(
            run_id, name, filename, data, kind=kind
        )

    def artifact_path(self, ref: ArtifactRef) -> Path:
        """Return the file in the artifacts folder that holds the artifact ``ref`` names."""
        if not isinstance(ref, ArtifactRef):
            raise InvalidTypeError(
                f"{self!r}.artifact_path(ref={ref!r:.80}): must be an ArtifactRef, "
                f"got {type(ref).__name__}."
            )
        return self._artifact_store("artifact_path", ref.path).artifact_path(ref)

    def _artifact_store(self, method: str, what: str) -> FileStore:
        if self._artifacts is not None:
            return self._artifacts
        if self._artifacts_path is None:
            raise InvalidArgumentError(
                f"{self!r}.{method}({what!r}): this store has no artifacts folder, and "
                f"artifact files (and a run's printed output and steps) live in one; "
                f"open it as PostgresStore(dsn, artifacts='/a/folder/every/node/sees') "
                f"or add '?artifacts=/that/folder' to the DSN."
            )
        self._artifacts = FileStore(self._artifacts_path, create=self._create)
        return self._artifacts

    # -- lifetime -----------------------------------------------------------------------

    def flush(self) -> None:
        """Nothing to do: every ``put_*`` has committed, and a commit is on disk."""
        if self._artifacts is not None:
            self._artifacts.flush()

    def close(self) -> None:
        """Close this process's connection; the next call opens a new one."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
            elif conn is not None:
                _disown(conn)

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's connection and a lock it may have held."""
        self._lock = threading.Lock()
        if self._conn is not None:
            _disown(self._conn)
            self._conn = None


def _reopen(dsn: str, schema: str, artifacts: str | None) -> PostgresStore:
    """Unpickle a store: the same DSN and options, a connection of its own."""
    return PostgresStore(dsn, schema=schema, artifacts=artifacts)


# A connection inherited through fork shares its socket with the parent: closing it
# here would send the server a Terminate that ends the parent's session. The socket's
# descriptor is pointed at an unconnected socket instead, and the object kept alive,
# so that nothing of the parent's session is touched from the child.
_DISOWNED: list[Any] = []


def _disown(conn: Any) -> None:
    try:
        fd = conn.pgconn.socket
    except Exception:  # already closed: nothing shared
        return
    with socket.socket() as dummy:
        os.dup2(dummy.fileno(), fd)
    _DISOWNED.append(conn)


def _split_options(dsn: str) -> tuple[str, dict[str, str]]:
    """Split this store's options (``schema``, ``artifacts``) off a URL's query string."""
    if "://" not in dsn:
        return dsn, {}
    parts = urllib.parse.urlsplit(dsn)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in pairs if k in ("schema", "artifacts")}
    rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k not in options], safe="/")
    return urllib.parse.urlunsplit(parts._replace(query=rest)), options


def _merge_option(dsn: str, name: str, given: Any, in_url: str | None) -> Any:
    if in_url is None:
        return given
    if given is not None and str(given) != in_url:
        raise InvalidArgumentError(
            f"PostgresStore({_redacted(dsn)!r}, {name}={given!r}): the DSN says "
            f"{name}={in_url!r}; give it once, in the DSN or as the argument."
        )
    return in_url


def _redacted(dsn: str) -> str:
    """Hide a password in a URL (``user:secret@``) or key=value DSN (``password=...``)."""
    if "://" in dsn:
        scheme, _, rest = dsn.partition("://")
        credentials, at, host = rest.rpartition("@")
        if at and ":" in credentials:
            dsn = f"{scheme}://{credentials.partition(':')[0]}:***@{host}"
        return re.sub(r"([?&]password=)[^&]*", r"\1***", dsn)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
