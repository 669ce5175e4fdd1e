r"""Contexts: the read-only data every run shares, and their fingerprints.

Imports errors and fingerprint.

A context is a ``@context_spec`` instance, a dict, or None (the same as ``{}``). Its
fingerprint goes into every run ID, so data files are identified by their *content*:
:class:`FilePath` and :class:`DirPath` name a file or a directory, and the fingerprint
holds the SHA-256 of what is in it. Moving the same data to another path keeps every
run ID (pass ``hash_path=True`` to make the path count too); editing a file changes
them all.

What goes into a context fingerprint: :func:`metalab.fingerprint.fingerprint` of a
payload built from the context by these rules.

- ``None`` and ``{}``: the empty dict.
- A dict: the dict, each value resolved by these rules. A user key starting with
  ``$`` gets one more ``$`` in front (on top of the escape the canonical encoding
  adds), so a user dict never looks like one of the tagged forms below.
- A ``@context_spec`` instance: ``{"$spec": <the class's __qualname__>, <field>:
  <value>, ...}`` over all its dataclass fields, values resolved. The class name makes
  two spec classes with equal fields differ; the module name is left out because it
  depends on how the script is started (``__main__`` or ``pkg.exp``), which must not
  change run IDs.
- A :class:`FilePath`: ``{"$file": <SHA-256 hex of the file's bytes>}``.
- A :class:`DirPath`: ``{"$dir": [[<relative POSIX path>, <SHA-256 hex>], ...]}``, one
  pair per regular file matching the pattern, sorted by path; names are included, so
  renaming a file changes it. The pattern itself is not included: what counts is
  which files it picked.
- With ``hash_path=True``, either form gains ``"$path": <os.path.abspath(path)>``.
- Lists and tuples are resolved item by item; FilePath, DirPath and nested
  ``@context_spec`` instances may sit anywhere inside dicts, lists and tuples. Every
  other value is taken as it is and must be fingerprintable.

Content is hashed lazily: building a FilePath or a context never reads a file. The
first fingerprint streams each file in 1 MiB chunks, and the digest is cached for the
process under the file's absolute path together with its size, mtime, ctime and
inode: an unchanged file is never read again, a changed one is hashed anew. (A rewrite
that keeps the size and lands within the same timestamp tick is not seen; that is
the price of not reading every file on every fingerprint.)

>>> context_fingerprint(None) == context_fingerprint({}) == fingerprint({})
True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from metalab.errors import FingerprintError, InvalidArgumentError, InvalidTypeError
from metalab.fingerprint import check_encodable, fingerprint

__all__ = ["DirPath", "FilePath", "context_fingerprint", "context_spec"]

_T = TypeVar("_T")

_CHUNK_BYTES = 1 << 20
_SPEC_MARK = "_metalab_context_spec"
_RESERVED = "fingerprint"

#: ``{absolute path: ((size, mtime_ns, ctime_ns, inode), sha256 hex)}``. One entry per
#: path, replaced when the file changes, so the cache grows with distinct files only.
#: Threads may race to fill an entry; both compute the same digest, so no lock.
_DIGESTS: dict[str, tuple[tuple[int, int, int, int], str]] = {}


@dataclasses.dataclass(frozen=True)
class _ContentPath:
    """What FilePath and DirPath share: a path fingerprinted by content."""

    path: str
    hash_path: bool = dataclasses.field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        kind = type(self).__name__
        path = self.path
        if not isinstance(path, str | os.PathLike) or isinstance(os.fspath(path), bytes):
            raise InvalidTypeError(
                f"{kind}(path={path!r}): path must be a str or a pathlib.Path, "
                f"got {type(path).__name__}."
            )
        if not os.fspath(path):
            raise InvalidArgumentError(
                f"{kind}(path=''): the path is empty; give the data's path, absolute or "
                f"relative to the working directory."
            )
        if not isinstance(self.hash_path, bool):
            raise InvalidTypeError(
                f"{kind}({os.fspath(path)!r}, hash_path={self.hash_path!r}): "
                f"hash_path must be True or False."
            )
        # Frozen: the converted path is stored the one way a frozen dataclass allows.
        object.__setattr__(self, "path", os.fspath(path))

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def _tagged(self, tag: str, content: Any) -> dict[str, Any]:
        payload = {tag: content}
        if self.hash_path:
            payload["$path"] = os.path.abspath(self.path)
        return payload


@dataclasses.dataclass(frozen=True)
class FilePath(_ContentPath):
    """A data file in a context, fingerprinted by its content, not its path.

    ``str()`` and ``os.fspath()`` give the path as given, so a FilePath can be passed
    to ``open`` directly. ``hash_path=True`` makes the absolute path part of the
    fingerprint too. The file is read only when a fingerprint is first needed.

    >>> data = FilePath("data/train.csv")
    >>> str(data), data.hash_path
    ('data/train.csv', False)
    """

    def payload(self) -> dict[str, Any]:
        """Return what stands for this file in a context fingerprint (see the module doc).

        Raises :class:`~metalab.errors.InvalidArgumentError` when the path is not a
        regular file.
        """
        return self._tagged("$file", _file_digest(self.path, f"FilePath({self.path!r})"))


@dataclasses.dataclass(frozen=True)
class DirPath(_ContentPath):
    """A data directory in a context, fingerprinted by the files ``pattern`` matches.

    ``pattern`` is a :meth:`pathlib.Path.glob` pattern relative to the directory
    (default ``"**/*"``: every file at any depth, hidden ones included); only regular
    files count. Each file's relative path and content go into the fingerprint; the
    directory's own path does not, unless ``hash_path=True``.

    >>> images = DirPath("data/images", "*.png")
    >>> str(images), images.pattern
    ('data/images', '*.png')
    """

    pattern: str = "**/*"

    def __post_init__(self) -> None:
        super().__post_init__()
        pattern = self.pattern
        if not isinstance(pattern, str) or not pattern or os.path.isabs(pattern):
            raise InvalidArgumentError(
                f"DirPath({self.path!r}, pattern={pattern!r}): pattern must be a non-empty "
                f"glob relative to the directory, such as '**/*' or '*.csv'."
            )

    def payload(self) -> dict[str, Any]:
        """Return what stands for this directory in a context fingerprint (see the module doc).

        Raises :class:`~metalab.errors.InvalidArgumentError` when the path is not a
        directory.
        """
        where = f"DirPath({self.path!r})"
        root = Path(os.path.abspath(self.path))
        if not root.is_dir():
            raise InvalidArgumentError(
                f"{where}: no directory at {str(root)!r}; check the path (for a single "
                f"file use FilePath)."
            )
        files = sorted(
            (found.relative_to(root).as_posix(), str(found))
            for found in root.glob(self.pattern)
            if found.is_file()
        )
        return self._tagged("$dir", [[name, _file_digest(full, where)] for name, full in files])


def context_spec(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen dataclass usable as a context, with a ``.fingerprint``.

    Field values must be fingerprintable (see :mod:`metalab.fingerprint`) or be
    :class:`FilePath`, :class:`DirPath` or another context spec, also inside dicts,
    lists and tuples; this is checked when an instance is built, without reading any
    file. ``fingerprint`` is
    recomputed on each access, so an edited data file is noticed; unchanged files are
    not read again.

    >>> @context_spec
    ... class Data:
    ...     vocab_size: int = 10000
    >>> Data().fingerprint == Data(vocab_size=10000).fingerprint != Data(5).fingerprint
    True
    """
    if not isinstance(cls, type):
        raise InvalidTypeError(
            f"context_spec({cls!r:.80}): expected a class; write @metalab.context_spec "
            f"directly above 'class ...:'."
        )
    declared = vars(cls)
    if _RESERVED in declared or _RESERVED in declared.get("__annotations__", {}):
        raise InvalidArgumentError(
            f"context_spec({cls.__qualname__}): the name {_RESERVED!r} is taken by the "
            f"context's fingerprint property; rename that field or attribute."
        )
    spec = dataclasses.dataclass(frozen=True)(cls)
    spec.__init__ = _checking_fields(spec.__init__)
    spec.fingerprint = property(_spec_fingerprint, doc="SHA-256 of the context's payload.")
    setattr(spec, _SPEC_MARK, True)
    return spec


def context_fingerprint(context: Any) -> str:
    """Return the fingerprint of a context: a ``@context_spec`` instance, a dict or None.

    Files named by :class:`FilePath` / :class:`DirPath` are hashed by content (rules in
    the module doc).

    >>> context_fingerprint({"b": 2, "a": 1}) == context_fingerprint({"a": 1, "b": 2})
    True
    """
    if context is None:
        context = {}
    if getattr(type(context), _SPEC_MARK, False):
        return context.fingerprint
    if isinstance(context, Mapping):
        return fingerprint(_resolved(context, _payload, "context"), where="context")
    raise InvalidTypeError(
        f"context_fingerprint({context!r:.80}): a context must be a @metalab.context_spec "
        f"instance, a dict or None, got {type(context).__name__}. Decorate its class "
        f"with @metalab.context_spec, or pass a dict of its values."
    )


def _checking_fields(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a spec's ``__init__`` so a bad field value fails when the context is built.

    Wrapping ``__init__`` rather than ``__post_init__`` keeps a spec subclassing another
    spec from checking twice: the dataclass machinery writes a fresh ``__init__`` for it.
    """

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        qualname = type(self).__qualname__
        for field in dataclasses.fields(self):
            where = f"{qualname}.{field.name}"
            try:
                # Paths stand in as None here: content is hashed lazily, never on build.
                check_encodable(
                    _resolved(getattr(self, field.name), _no_content, where), where=where
                )
            except FingerprintError as exc:
                raise FingerprintError(
                    f"{qualname}: field {field.name!r} cannot be fingerprinted, so it cannot "
                    f"be part of a context (FilePath, DirPath and context specs are allowed "
                    f"too, also inside dicts, lists and tuples). {exc}"
                ) from None

    return __init__


def _spec_fingerprint(self: Any) -> str:
    where = type(self).__qualname__
    try:
        payload = _spec_payload(self, _payload)
    except RecursionError:
        raise _cyclic(where) from None
    return fingerprint(payload, where=where)


def _spec_payload(spec: Any, content: Callable[[FilePath | DirPath], Any]) -> dict[str, Any]:
    # Field names are identifiers, so they never start with "$" and need no escape.
    payload = {"$spec": type(spec).__qualname__}
    for field in dataclasses.fields(spec):
        payload[field.name] = _resolve(getattr(spec, field.name), content)
    return payload


def _payload(path: FilePath | DirPath) -> Any:
    return path.payload()


def _no_content(path: FilePath | DirPath) -> Any:
    return None


def _resolved(value: Any, content: Callable[[FilePath | DirPath], Any], where: str) -> Any:
    """:func:`_resolve`, turning the RecursionError of a value that holds itself into an error."""
    try:
        return _resolve(value, content)
    except RecursionError:
        raise _cyclic(where) from None


def _cyclic(where: str) -> FingerprintError:
    return FingerprintError(
        f"fingerprint: {where} contains itself (a list or dict holding itself, directly "
        f"or further down) or is nested more deeply than Python can follow; a context "
        f"must be a tree of values. Pass a copy without the cycle."
    )


def _resolve(value: Any, content: Callable[[FilePath | DirPath], Any]) -> Any:
    """Return ``value`` with each FilePath/DirPath replaced by ``content(path)``.

    A nested context spec becomes its payload, its own paths replaced the same way.

    User keys starting with ``$`` get one more ``$`` so that, once the canonical
    encoding has escaped everything again, no user dict equals a tagged payload.
    Anything else is left for the canonical encoding to accept or reject.
    """
    if isinstance(value, FilePath | DirPath):
        return content(value)
    if getattr(type(value), _SPEC_MARK, False):
        return _spec_payload(value, content)
    if isinstance(value, Mapping):
        return {
            ("$" + key if isinstance(key, str) and key.startswith("$") else key): _resolve(
                item, content
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_resolve(item, content) for item in value]
    return value


def _file_digest(path: str, where: str) -> str:
    """Return the SHA-256 hex of the file at ``path``, from the cache while it is unchanged."""
    absolute = os.path.abspath(path)
    try:
        info = os.stat(absolute)
    except (FileNotFoundError, NotADirectoryError):
        raise InvalidArgumentError(
            f"{where}: no file at {absolute!r}; check the path, or create the file before "
            f"the context is fingerprinted."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        hint = "use DirPath for a directory" if stat.S_ISDIR(info.st_mode) else "give a file"
        raise InvalidArgumentError(
            f"{where}: {absolute!r} is not a regular file; only a file's content can be "
            f"hashed ({hint})."
        )
    # ctime is in the key on top of size/mtime/inode: tools that restore mtime after a
    # same-size rewrite (cp -p, rsync -t) cannot restore ctime.
    key = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    cached = _DIGESTS.get(absolute)
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = _sha256_of_file(absolute)
    _DIGESTS[absolute] = (key, digest)
    return digest


def _sha256_of_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
