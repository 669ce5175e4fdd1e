"""GridSource: the Cartesian product of value lists. Imports errors, params._base.

Keys are sorted; cases come in ``itertools.product`` order over the sorted keys
(rightmost key fastest), as in the original metalab. ``source[i]`` decodes ``i`` in
mixed radix, so a 10^12-case grid indexes instantly and is never materialised.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.fingerprint import flat_entry
from metalab.params._base import ParamCase, ParamSource, plain_value

__all__ = ["GridSource", "grid"]


class GridSource(ParamSource):
    """Parameter source that generates the Cartesian product of value lists.

    >>> source = GridSource(learning_rate=[0.01, 0.1], batch_size=[32, 64])
    >>> len(source), dict(source[1])
    (4, {'batch_size': 32, 'learning_rate': 0.1})

    A grid with no keys has exactly one, empty, case.
    """

    def __init__(self, **kwargs: list[Any]) -> None:
        self._keys = tuple(sorted(kwargs))
        self._values = tuple(_check_values(key, kwargs[key]) for key in self._keys)
        self._sizes = tuple(len(values) for values in self._values)
        self._len = math.prod(self._sizes)

    def __len__(self) -> int:
        return self._len

    def _case(self, position: int) -> ParamCase:
        digits = []
        rest = position
        for size in reversed(self._sizes):  # rightmost key varies fastest
            rest, digit = divmod(rest, size)
            digits.append(digit)
        digits.reverse()
        params = {
            key: values[digit]
            for key, values, digit in zip(self._keys, self._values, digits, strict=True)
        }
        return ParamCase(params, position, ())

    def __iter__(self) -> Iterator[ParamCase]:
        keys = self._keys
        entries = self._flat_entries()
        if entries is None:  # a list, dict or NaN somewhere: each case copies and encodes
            for index, combo in enumerate(itertools.product(*self._values)):
                yield ParamCase(dict(zip(keys, combo, strict=True)), index, ())
            return
        # Keys are sorted, so a case's canonical encoding is its entries joined in order.
        combos = zip(itertools.product(*self._values), itertools.product(*entries), strict=True)
        made, join = ParamCase.with_canonical, b",".join
        for index, (combo, texts) in enumerate(combos):
            yield made(dict(zip(keys, combo, strict=True)), index, b"{%s}" % join(texts))

    def _flat_entries(self) -> list[list[bytes]] | None:
        """Each value's canonical ``"key":value`` entry by key, or None if one is not flat."""
        entries = []
        for key, values in zip(self._keys, self._values, strict=True):
            texts = [flat_entry(key, value) for value in values]
            if None in texts:
                return None
            entries.append(texts)
        return entries

    def __repr__(self) -> str:
        spec = ", ".join(
            f"{key}={list(values)!r}" for key, values in zip(self._keys, self._values, strict=True)
        )
        return f"GridSource({spec})"

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return ``{"type": "GridSource", "spec": {key: [values]}, "total_cases": n}``."""
        return {
            "type": "GridSource",
            "spec": {
                key: list(values) for key, values in zip(self._keys, self._values, strict=True)
            },
            "total_cases": self._len,
        }

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> GridSource:
        """Rebuild from :meth:`to_manifest_dict` output (``"spec"`` is required)."""
        spec = manifest.get("spec") if isinstance(manifest, dict) else None
        if not isinstance(spec, dict):
            raise InvalidArgumentError(
                f"GridSource.from_manifest_dict: expected a dict with a 'spec' mapping "
                f"names to value lists, got {manifest!r:.120}."
            )
        for key in spec:
            if not isinstance(key, str):
                raise InvalidTypeError(f"grid: parameter name {key!r} must be a str.")
        return cls(**spec)


def _check_values(key: Any, values: Any) -> tuple[Any, ...]:
    if not isinstance(key, str):
        raise InvalidTypeError(f"grid: parameter name {key!r} must be a str.")
    if not isinstance(values, list | tuple | range):
        raise InvalidTypeError(
            f"grid({key}={values!r:.80}): values must be a list, got {type(values).__name__}; "
            f"write grid({key}=[{values!r:.40}]) for a single value."
        )
    if len(values) == 0:
        raise InvalidArgumentError(
            f"grid({key}=[]): a parameter needs at least one value; drop the key or give values."
        )
    return tuple(plain_value(value, f"grid({key})[{i}]") for i, value in enumerate(values))


def grid(**kwargs: list[Any]) -> GridSource:
    """Create a :class:`GridSource`: every combination of the given value lists.

    >>> params = grid(n_samples=[1000, 10000, 100000], store_points=[True, False])
    >>> len(params)
    6
    """
    return GridSource(**kwargs)
