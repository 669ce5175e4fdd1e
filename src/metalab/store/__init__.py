"""Stores: where an experiment's manifest, run records and artifacts are kept.

Imports errors, record and its own modules. :class:`Store` (in ``_base``) is the
contract; :class:`FileStore` is the default backend, :class:`PostgresStore` the one for
many machines (psycopg is imported when one is made); :class:`PackStore` a whole store
in one file, read in place (:func:`pack_store` makes one, :func:`unpack_store` gives
back a file store); :func:`open_store` turns what a user passes as ``store=`` into a
store.
"""

from __future__ import annotations

import os
import re
import zipfile

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.store._base import Store, StoreWarning
from metalab.store._copy import CopyReport
from metalab.store.file import FileStore
from metalab.store.pack import PackStore, pack_store, unpack_store
from metalab.store.postgres import PostgresStore

__all__ = [
    "CopyReport",
    "FileStore",
    "PackStore",
    "PostgresStore",
    "Store",
    "StoreWarning",
    "open_store",
    "pack_store",
    "unpack_store",
]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(target: str | os.PathLike[str] | Store, *, create: bool = True) -> Store:
    """Return the store ``target`` names: a Store as is, a folder path as a FileStore.

    A ``postgresql://`` or ``postgres://`` URL names a :class:`PostgresStore` (options
    in its query string: ``?schema=name&artifacts=/folder``). A path ending with
    ``.metalab.zip``, or an existing zip file, names a read-only :class:`PackStore`.

    With ``create=False`` (for readers) a missing store is an error, and nothing is
    written to an existing one.

    >>> import tempfile
    >>> type(open_store(tempfile.mkdtemp())).__name__
    'FileStore'
    """
    if isinstance(target, Store):
        return target
    if isinstance(target, str):
        scheme, separator, _ = target.partition("://")
        if separator and scheme.lower() in _POSTGRES_SCHEMES:
            return PostgresStore(target, create=create)
        if separator and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            raise InvalidArgumentError(
                f"open_store({_redacted(target)!r}): unknown store URL scheme {scheme!r}; "
                f"pass a folder path, or a Store instance."
            )
    if isinstance(target, str | os.PathLike):
        # A file store is a folder: a zip file a reader names can only be a pack (renamed).
        named = os.fspath(target)
        if named.endswith(PackStore.SUFFIX) or (
            not create and os.path.isfile(named) and zipfile.is_zipfile(named)
        ):
            return PackStore(target, create=create)
        return FileStore(target, create=create)
    raise InvalidTypeError(
        f"open_store(target={target!r:.80}): must be a folder path (str or os.PathLike) or "
        f"a Store, got {type(target).__name__}."
    )


def _redacted(url: str) -> str:
    """Hide a password in ``url`` (``scheme://user:secret@host``), which must not be echoed."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"
