"""ParamCase, the ParamSource contract and the manifest registry of sources.

Imports errors, fingerprint and _validate; nothing here knows of seeds, stores or
executors.

A source is a finite, indexable sequence of :class:`ParamCase`: ``len(source)``,
``source[i]`` (negative too; :class:`~metalab.errors.CaseIndexError` out of range)
and iteration, where ``list(source)[i] == source[i]`` always. A source describes
itself as a JSON-ready manifest dict with a ``"type"`` key naming its class, and
:func:`source_from_manifest` rebuilds any source from one.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from metalab._json import compact_encoder
from metalab._validate import check_index
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.fingerprint import fingerprint, fingerprint_of_canonical

__all__ = ["MAX_INT_BITS", "ParamCase", "ParamSource", "plain_value", "source_from_manifest"]

#: Largest size, in bits, of an int parameter value: 13,000 bits is about 3,900 decimal
#: digits, safely below the 4,300 digits Python's ``int`` to text conversion allows by
#: default (records and manifests are JSON text).
MAX_INT_BITS = 13_000
_INT_BOUND = 1 << MAX_INT_BITS


_SCALARS = frozenset({str, int, float, bool, type(None)})
_to_json = compact_encoder(ensure_ascii=False)


class ParamCase(Mapping[str, Any]):
    """One parameter configuration: an immutable mapping of names to values.

    Besides the mapping (``case["lr"]``, ``dict(case)``), a case knows its ``index`` in
    its source, its ``tags`` and its :attr:`fingerprint`. It compares equal to another
    case with the same params, index and tags, and to a plain mapping with the same params.

    >>> case = ParamCase({"lr": 0.1, "batch": 32}, index=3)
    >>> case["lr"], case.index, sorted(case)
    (0.1, 3, ['batch', 'lr'])
    """

    __slots__ = ("_canonical", "_fingerprint", "_params", "index", "tags")

    _params: dict[str, Any]
    index: int
    tags: tuple[str, ...]

    def __init__(
        self, params: Mapping[str, Any], index: int = 0, tags: tuple[str, ...] = ()
    ) -> None:
        # object.__setattr__ because __setattr__ is closed to keep the case immutable.
        set_slot = object.__setattr__
        # A list or dict value is copied, so an operation that mutates what it was given
        # cannot change the cases a source hands out later.
        set_slot(
            self,
            "_params",
            {k: v if type(v) in _SCALARS else copy.deepcopy(v) for k, v in params.items()},
        )
        set_slot(self, "index", index)
        set_slot(self, "tags", tuple(tags))
        set_slot(self, "_fingerprint", None)
        set_slot(self, "_canonical", None)

    @classmethod
    def with_canonical(
        cls, params: dict[str, str | int | float | bool | None], index: int, canonical: bytes
    ) -> ParamCase:
        """Return the case of ``params`` whose canonical encoding is ``canonical``, untagged.

        For sources that make many cases from a few plain values: ``params`` must be
        a new dict of str, int, float, bool or None values with its keys in sorted
        order, taken as it is, and ``canonical`` must equal
        :func:`~metalab.fingerprint.canonical` of it (built from
        :func:`~metalab.fingerprint.flat_entry`). A case costs a sweep's planning
        then a join instead of an encoding (docs/performance.md).

        >>> case = ParamCase.with_canonical({"x": 1}, 0, b'{"x":1}')
        >>> case.fingerprint == ParamCase({"x": 1}).fingerprint
        True
        """
        case = cls.__new__(cls)
        set_slot = object.__setattr__
        set_slot(case, "_params", params)
        set_slot(case, "index", index)
        set_slot(case, "tags", ())
        set_slot(case, "_fingerprint", None)
        set_slot(case, "_canonical", canonical)
        return case

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ParamCase is immutable; cannot set {name!r}.")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ParamCase is immutable; cannot delete {name!r}.")

    def __getitem__(self, key: str) -> Any:
        return self._params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ParamCase):
            return (self._params, self.index, self.tags) == (other._params, other.index, other.tags)
        if isinstance(other, Mapping):
            return self._params == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # values may be lists

    def __repr__(self) -> str:
        return f"ParamCase({self._params!r}, index={self.index}, tags={self.tags!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ParamCase, (self._params, self.index, self.tags))

    @property
    def params(self) -> Mapping[str, Any]:
        """A read-only view of the parameter dict."""
        return MappingProxyType(self._params)

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the params alone (index and tags excluded)."""
        if self._fingerprint is None:
            known = self._canonical
            object.__setattr__(
                self,
                "_fingerprint",
                fingerprint(self._params, where="params")
                if known is None
                else fingerprint_of_canonical(known),
            )
        return self._fingerprint

    def to_dict(self) -> dict[str, Any]:
        """Return a new plain dict of the params."""
        return dict(self._params)

    def to_json(self) -> str:
        """Return the params as compact JSON, keys in order, non-ASCII text as it is.

        As a run's record holds them. A case made :meth:`with_canonical` gives its
        canonical text, which is the same JSON unless it escaped non-ASCII text.

        >>> ParamCase({"lr": 0.1, "name": "café"}).to_json()
        '{"lr":0.1,"name":"café"}'
        """
        known = self._canonical
        if known is not None and b"\\u" not in known:
            return known.decode("ascii")
        return _to_json(self._params)


class ParamSource(abc.ABC):
    """Base of every parameter source: a finite, indexable sequence of :class:`ParamCase`.

    A subclass implements ``__len__``, ``_case(position)`` for ``0 <= position < len``,
    ``to_manifest_dict()`` (whose ``"type"`` is the class name) and the classmethod
    ``from_manifest_dict()``. Defining the subclass registers it with
    :func:`source_from_manifest`; the registry key is the class name.
    """

    _registry: ClassVar[dict[str, type[ParamSource]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        ParamSource._registry[cls.__name__] = cls

    @abc.abstractmethod
    def __len__(self) -> int:
        """Return the number of cases."""

    @abc.abstractmethod
    def _case(self, position: int) -> ParamCase:
        """Return the case at ``position``, already checked to be in range."""

    @abc.abstractmethod
    def to_manifest_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description from which the source can be rebuilt."""

    @classmethod
    @abc.abstractmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> ParamSource:
        """Rebuild the source from :meth:`to_manifest_dict` output."""

    def __getitem__(self, index: int) -> ParamCase:
        """Return the case at ``index`` (negative counts from the end) without iterating."""
        return self._case(check_index(type(self).__name__, index, len(self)))

    def __iter__(self) -> Iterator[ParamCase]:
        return map(self._case, range(len(self)))


def source_from_manifest(manifest: dict[str, Any]) -> ParamSource:
    """Rebuild any parameter source from its ``to_manifest_dict()`` output.

    >>> from metalab.params import grid
    >>> source_from_manifest(grid(x=[1, 2]).to_manifest_dict())[1]["x"]
    2
    """
    kind = manifest.get("type") if isinstance(manifest, dict) else None
    cls = ParamSource._registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        known = ", ".join(sorted(ParamSource._registry))
        raise InvalidArgumentError(
            f"source_from_manifest(type={kind!r}): unknown parameter source type; "
            f"known: {known}. A custom source must be imported (defined) before its "
            f"manifest is loaded."
        )
    return cls.from_manifest_dict(manifest)


def plain_value(value: Any, where: str) -> Any:
    """Return ``value`` as a JSON-like parameter value, or raise naming ``where``.

    Parameter values must be None, bool, int, float, str, or lists, tuples and
    str-keyed dicts of those, so that every case can be fingerprinted and every
    manifest written as JSON. Values come back as JSON would give them: NumPy scalars
    become the equal Python value and tuples become lists, so a source rebuilt from
    its JSON manifest yields identical cases. A container that holds itself, one
    nested deeper than Python can recurse, and an int of more than
    :data:`MAX_INT_BITS` bits are refused: none of them can be written as JSON.

    >>> plain_value((1, {"a": 2.5}), "grid(x)[0]")
    [1, {'a': 2.5}]
    """
    try:
        return _plain(value, where, {})
    except RecursionError:
        raise InvalidArgumentError(
            f"{where} is nested more deeply than Python can follow; parameter values "
            f"must be small JSON-like trees. Store the structure in a file (a "
            f"metalab.FilePath in the context) and pass its name as the parameter."
        ) from None


def _plain(value: Any, where: str, parents: dict[int, str]) -> Any:
    """:func:`plain_value`, with ``parents`` mapping the containers being converted to where."""
    kind = type(value)
    if value is None or kind is float or kind is str or kind is bool:
        return value
    if kind is int:
        return _checked_int(value, where)
    for builtin in (bool, int, float, str):  # subclasses such as np.float64 or IntEnum
        if isinstance(value, builtin):
            return _checked_int(int(value), where) if builtin is int else builtin(value)
    if isinstance(value, list | tuple | Mapping):
        # A container that holds itself has no JSON form; without this check the
        # conversion would recurse until RecursionError, naming nothing.
        outer = parents.get(id(value))
        if outer is not None:
            raise InvalidArgumentError(
                f"{where} is {outer} itself: a {kind.__name__} that contains itself cannot "
                f"be a parameter value. Pass a copy without the cycle, e.g. the items "
                f"as a plain list or dict."
            )
        parents[id(value)] = where
        try:
            if isinstance(value, list | tuple):
                return [_plain(item, f"{where}[{i}]", parents) for i, item in enumerate(value)]
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidTypeError(
                        f"{where} has a key {key!r} of type {type(key).__name__}; "
                        f"parameter dict keys must be str."
                    )
                out[key] = _plain(item, f"{where}[{key!r}]", parents)
            return out
        finally:
            del parents[id(value)]
    if kind.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return _plain(value.item(), where, parents)
    raise InvalidTypeError(
        f"{where} = {value!r:.80} has type {kind.__name__}; parameter values must be "
        f"None, bool, int, float, str, or lists, tuples and str-keyed dicts of those. "
        f"Convert it first (an array: .tolist())."
    )


def _checked_int(value: int, where: str) -> int:
    if -_INT_BOUND < value < _INT_BOUND:
        return value
    # repr() of such an int raises (Python's int-to-text limit), so the size is shown.
    raise InvalidArgumentError(
        f"{where} is an int of {value.bit_length()} bits (about "
        f"{int(value.bit_length() * 0.30103)} digits); parameter ints must stay below "
        f"2**{MAX_INT_BITS} in size, because records and manifests are written as JSON "
        f"and Python writes no int of more than 4300 digits. Pass it as a str, or as a "
        f"float if an approximation will do."
    )
