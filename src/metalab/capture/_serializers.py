"""Artifact codecs: how each kind of object becomes a file, and back. Imports errors, _optional.

A codec is a ``kind`` with three functions:

- ``encode(obj) -> (data, extension)``: ``data`` is bytes, or a :class:`pathlib.Path` whose
  file the store copies as is; ``extension`` ends the file name, e.g. ``".npy"``.
- ``decode(path) -> obj``: read a stored file back.
- ``matches(obj) -> bool`` (optional): whether ``Capture.artifact`` picks this kind for
  ``obj`` when no kind is given.

Built-in kinds, tried in this order when no kind is given (codecs added with
:func:`register_codec` are tried first, so a user's type never falls to a built-in):

=========  ===============================  ============  ================================
kind       chosen for                       file          decoded as
=========  ===============================  ============  ================================
numpy      ``numpy.ndarray``                ``.npy``      ``numpy.load`` (never unpickles)
bytes      ``bytes``, ``bytearray``         ``.bin``      ``bytes``
file       ``os.PathLike`` to a file        its suffix    the stored file's ``Path``
parquet    ``pandas.DataFrame`` (pyarrow)   ``.parquet``  ``pandas.read_parquet``
figure     matplotlib ``Figure``            ``.png``      the PNG's bytes
                                                          (``Capture.figure`` also stores
                                                          an SVG twin)
text       ``str``                          ``.txt``      ``str`` (UTF-8, newlines kept)
json       dict, list, tuple, int, float,   ``.json``     ``json.loads`` (written with
           bool, None (NaN allowed)                       sorted keys, indent 2; tuples
                                                          come back as lists, int keys
                                                          as str, as json does)
pickle     never chosen: ``kind="pickle"``  ``.pkl``      ``pickle.loads`` (protocol 5),
                                                          only with ``allow_pickle=True``
=========  ===============================  ============  ================================

numpy, pandas and matplotlib objects are recognised by their type's module name, so
checking an object never imports a library it does not come from.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metalab._optional import optional, require
from metalab.errors import (
    InvalidArgumentError,
    InvalidTypeError,
    MetalabError,
    MissingDependencyError,
)

__all__ = [
    "Codec",
    "decode_artifact",
    "encode_artifact",
    "register_codec",
    "render_figure",
    "select_codec",
]

#: What an encoder returns: the bytes (or a file to copy) and the file name's extension.
Encoded = tuple[bytes | Path, str]

# Failures a codec raises when it cannot take a particular object (pyarrow's errors
# derive from ValueError, TypeError and NotImplementedError; pickle of a local
# function raises AttributeError).
_ENCODE_FAILURES = (
    TypeError,
    ValueError,
    AttributeError,
    NotImplementedError,
    pickle.PicklingError,
)


@dataclass(frozen=True, slots=True)
class Codec:
    """How one kind of artifact is written and read back (see the module docstring).

    ``encode`` is None for ``figure``, which :meth:`Capture.figure` writes itself
    because it stores two files.
    """

    kind: str
    encode: Callable[[Any], Encoded] | None
    decode: Callable[[Path], Any]
    matches: Callable[[Any], bool] | None = None


def _comes_from(obj: Any, package: str) -> bool:
    """Tell whether ``obj``'s type, or a base of it, comes from ``package``; imports nothing."""
    return any(cls.__module__.partition(".")[0] == package for cls in type(obj).__mro__)


def _is_instance(obj: Any, package: str, module: str, name: str) -> bool:
    # The import is free: an object of the package exists, so it is already loaded.
    return _comes_from(obj, package) and isinstance(
        obj, getattr(importlib.import_module(module), name)
    )


def _is_ndarray(obj: Any) -> bool:
    return _is_instance(obj, "numpy", "numpy", "ndarray")


def _is_dataframe(obj: Any) -> bool:
    return _is_instance(obj, "pandas", "pandas", "DataFrame")


def _is_figure(obj: Any) -> bool:
    return _is_instance(obj, "matplotlib", "matplotlib.figure", "Figure")


def _encode_numpy(array: Any) -> Encoded:
    buffer = io.BytesIO()
    # allow_pickle=False: an object array would otherwise be pickled inside the .npy.
    importlib.import_module("numpy").save(buffer, array, allow_pickle=False)
    return buffer.getvalue(), ".npy"


def _decode_numpy(path: Path) -> Any:
    numpy = require("numpy", feature="decode_artifact('numpy')", extra="numpy")
    try:
        return numpy.load(path, allow_pickle=False)
    except ValueError as exc:
        # Most often an array of Python objects, which .npy keeps as a pickle: metalab
        # never writes one (see _encode_numpy), so the file was put there by someone else.
        raise InvalidArgumentError(
            f"decode_artifact('numpy', {str(path)!r}): numpy cannot load it without "
            f"unpickling ({exc}); an array of Python objects is stored as a pickle, and "
            f"loading one runs whatever code its writer chose. If you trust the file, "
            f"load it yourself with numpy.load(path, allow_pickle=True)."
        ) from None


def _encode_bytes(data: bytes | bytearray) -> Encoded:
    return bytes(data), ".bin"


def _read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _encode_file(source: os.PathLike[str]) -> Encoded:
    path = Path(os.fsdecode(source))
    if not path.is_file():
        raise InvalidArgumentError(
            f"{str(path)!r} is not an existing file; pass the path of a file (to store a "
            f"folder, archive it first, e.g. with shutil.make_archive)."
        )
    return path, path.suffix


def _decode_file(path: Path) -> Path:
    return path


def _require_pyarrow(action: str, alternative: str) -> None:
    if optional("pyarrow") is None:
        raise MissingDependencyError(
            f"{action} needs pyarrow, which is not installed; pip install pyarrow{alternative}."
        )


def _encode_parquet(frame: Any) -> Encoded:
    _require_pyarrow("saving a DataFrame as Parquet", ", or pass kind='pickle'")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow")
    return buffer.getvalue(), ".parquet"


def _decode_parquet(path: Path) -> Any:
    pandas = require("pandas", feature="decode_artifact('parquet')", extra="pandas")
    _require_pyarrow("decode_artifact('parquet'): reading Parquet", "")
    return pandas.read_parquet(path, engine="pyarrow")


def _encode_text(text: str) -> Encoded:
    return text.encode("utf-8"), ".txt"


def _decode_text(path: Path) -> str:
    # Decoding the bytes, not read_text(), keeps "\r\n" as written.
    return path.read_bytes().decode("utf-8")


def _is_json_value(obj: Any) -> bool:
    return obj is None or isinstance(obj, dict | list | tuple | str | int | float)


def _encode_json(value: Any) -> Encoded:
    text = json.dumps(value, sort_keys=True, indent=2, allow_nan=True)
    return (text + "\n").encode("ascii"), ".json"


def _decode_json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _encode_pickle(obj: Any) -> Encoded:
    return pickle.dumps(obj, protocol=5), ".pkl"


def _decode_pickle(path: Path) -> Any:
    return pickle.loads(path.read_bytes())


_BUILTINS: dict[str, Codec] = {
    codec.kind: codec
    for codec in (
        Codec("numpy", _encode_numpy, _decode_numpy, _is_ndarray),
        Codec("bytes", _encode_bytes, _read_bytes, lambda obj: isinstance(obj, bytes | bytearray)),
        Codec("file", _encode_file, _decode_file, lambda obj: isinstance(obj, os.PathLike)),
        Codec("parquet", _encode_parquet, _decode_parquet, _is_dataframe),
        Codec("figure", None, _read_bytes, _is_figure),
        Codec("text", _encode_text, _decode_text, lambda obj: isinstance(obj, str)),
        Codec("json", _encode_json, _decode_json, _is_json_value),
        Codec("pickle", _encode_pickle, _decode_pickle),
    )
}
_REGISTERED: dict[str, Codec] = {}


def register_codec(
    kind: str,
    encode: Callable[[Any], Encoded],
    decode: Callable[[Path], Any],
    matches: Callable[[Any], bool] | None = None,
) -> None:
    r"""Teach ``Capture.artifact`` and :func:`decode_artifact` a new artifact kind.

    ``encode(obj)`` returns ``(bytes or pathlib.Path, extension)``; ``decode(path)``
    reads the file back; ``matches(obj)``, if given, lets ``Capture.artifact`` choose
    this kind by itself (registered kinds are tried before the built-in ones).
    Registering a kind again replaces it, so re-running a notebook cell works; the
    built-in kinds cannot be replaced. Example (lists of text rows as CSV files)::

        register_codec(
            "csv_rows",
            encode=lambda rows: ("\n".join(rows).encode(), ".csv"),
            decode=lambda path: path.read_text().split("\n"),
        )
    """
    where = f"register_codec({kind!r})"
    if not isinstance(kind, str) or not kind:
        error = InvalidArgumentError if kind == "" else InvalidTypeError
        raise error(f"{where}: kind must be a non-empty str, e.g. 'csv'; got {kind!r}.")
    if kind in _BUILTINS:
        raise InvalidArgumentError(
            f"{where}: {kind!r} is a built-in kind and cannot be replaced; register your "
            f"codec under another kind, e.g. {kind + '_custom'!r}, and pass that kind."
        )
    for role, function in (("encode", encode), ("decode", decode), ("matches", matches)):
        if not callable(function) and not (role == "matches" and function is None):
            raise InvalidTypeError(
                f"{where}: {role}={function!r:.80} is not callable; pass a function."
            )
    _REGISTERED.pop(kind, None)
    _REGISTERED[kind] = Codec(kind, encode, decode, matches)


def _lookup(kind: Any, where: str) -> Codec:
    codec = (_REGISTERED.get(kind) or _BUILTINS.get(kind)) if isinstance(kind, str) else None
    if codec is None:
        known = ", ".join(sorted({*_BUILTINS, *_REGISTERED}))
        raise InvalidArgumentError(
            f"{where}: unknown artifact kind {kind!r}; known kinds: {known}. "
            f"Add one with metalab.capture.register_codec."
        )
    return codec


def select_codec(obj: Any, kind: str | None, where: str) -> Codec:
    """Return the codec for ``obj``: the one named ``kind``, or the first that matches."""
    if kind is not None:
        codec = _lookup(kind, where)
        if codec.matches is not None and not codec.matches(obj):
            raise InvalidTypeError(
                f"{where}: kind {kind!r} does not take {type(obj).__name__} {obj!r:.80}; "
                f"leave kind=None to choose by type, or pass kind='pickle'."
            )
        return codec
    for codec in (*_REGISTERED.values(), *_BUILTINS.values()):
        if codec.matches is not None and codec.matches(obj):
            return codec
    raise InvalidTypeError(
        f"{where}: no artifact kind takes {type(obj).__name__} {obj!r:.80}; chosen by type "
        f"are NumPy arrays, bytes, paths to files, DataFrames, matplotlib figures, str and "
        f"JSON values (dict, list, numbers, bool, None). Convert it, pass kind='pickle' "
        f"(readable only with allow_pickle=True), or add a kind with register_codec."
    )


def encode_artifact(codec: Codec, obj: Any, where: str) -> Encoded:
    """Run ``codec.encode(obj)``, turning a failure into a metalab error naming ``where``."""
    try:
        data, extension = codec.encode(obj)
    except MetalabError as exc:
        # Built-in encoders say what is wrong; this adds which call it was.
        raise type(exc)(f"{where}: {exc}") from None
    except _ENCODE_FAILURES as exc:
        fix = (
            "make it picklable, or store its state with another kind"
            if codec.kind == "pickle"
            else "convert it (arrays: .tolist(), NumPy scalars: .item()) or pass kind='pickle'"
        )
        raise InvalidTypeError(
            f"{where}: kind {codec.kind!r} cannot encode {type(obj).__name__} "
            f"{obj!r:.80} ({type(exc).__name__}: {exc}); {fix}."
        ) from exc
    if not isinstance(data, bytes | Path) or not _is_extension(extension):
        raise InvalidTypeError(
            f"{where}: the {codec.kind!r} codec returned ({type(data).__name__}, "
            f"{extension!r:.40}); encode must return (bytes or pathlib.Path, an extension "
            f"such as '.csv' or '')."
        )
    return data, extension


def _is_extension(extension: Any) -> bool:
    return isinstance(extension, str) and (
        extension == "" or (extension.startswith(".") and not any(c in extension for c in "/\\\0"))
    )


def render_figure(fig: Any, *, dpi: int, salt: str, where: str) -> tuple[bytes, bytes]:
    """Return ``fig`` as PNG bytes at ``dpi`` and as SVG bytes.

    Neither file carries a date or the matplotlib version, and the SVG's element IDs
    are derived from ``salt`` (the artifact name), so the same figure gives the same
    bytes in every run and every process, and ``metalab verify`` can compare them.
    """
    if not _is_figure(fig):
        raise InvalidTypeError(
            f"{where}: expected a matplotlib Figure, got {type(fig).__name__} {fig!r:.80}; "
            f"pass the Figure from plt.subplots() or plt.gcf()."
        )
    matplotlib = importlib.import_module("matplotlib")
    png, svg = io.BytesIO(), io.BytesIO()
    # Without the version, a matplotlib upgrade that draws the same pixels changes nothing.
    fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    return png.getvalue(), svg.getvalue()


def decode_artifact(kind: str, path: str | os.PathLike[str], *, allow_pickle: bool = False) -> Any:
    """Read back an artifact of ``kind`` stored at ``path`` (see the module's table).

    Pickles are refused unless ``allow_pickle=True``: loading one runs whatever code
    its writer chose.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> _ = path.write_text('{"layers": 50}')
    >>> decode_artifact("json", path)
    {'layers': 50}
    """
    where = f"decode_artifact({kind!r}, {os.fspath(path)!r})"
    if not isinstance(allow_pickle, bool):
        # A truthy stand-in such as the str "false" must not open the door to pickles.
        raise InvalidTypeError(
            f"{where}: allow_pickle={allow_pickle!r} must be True or False; pass "
            f"allow_pickle=True only for a store you trust."
        )
    codec = _lookup(kind, where)
    if codec.kind == "pickle" and not allow_pickle:
        raise InvalidArgumentError(
            f"{where}: loading a pickle runs whatever code its writer put in it, so pickles "
            f"are refused by default; pass allow_pickle=True if you trust the store this "
            f"file came from."
        )
    return codec.decode(Path(path))
