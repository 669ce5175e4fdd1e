r"""Canonical encoding, SHA-256 fingerprints and run IDs. Imports errors only.

Everything metalab identifies (parameter cases, contexts, seed bundles, runs) is
identified by the SHA-256 of one canonical byte encoding, defined here and nowhere
else. The rules are part of the storage format: changing any of them changes every
run ID, so they are pinned by golden tests.

The encoding of a value ``v`` is the ASCII text of a JSON document built as follows.

=====================================  ==============================================
value                                  encoded as
=====================================  ==============================================
``None``, ``True``, ``False``          ``null``, ``true``, ``false``
``int`` (not ``bool``)                 decimal integer: ``1``
finite ``float``                       Python's shortest round-trip ``repr``: ``1.0``,
                                       ``1e+16``, ``-0.0`` (always has ``.`` or ``e``,
                                       so ``1``, ``1.0`` and ``True`` all differ)
``nan``, ``inf``, ``-inf``             ``{"$float":"nan"}``, ``{"$float":"inf"}``,
                                       ``{"$float":"-inf"}``
``str``                                JSON string, non-ASCII as ``\uXXXX`` escapes
``list``, ``tuple``                    JSON array (a tuple encodes like the equal
                                       list: manifests travel as JSON, which has none)
``dict`` / mapping with ``str`` keys   JSON object, keys sorted by code point; a key
                                       starting with ``$`` gets one more ``$`` in
                                       front, so user keys never look like the tagged
                                       forms in this table
``set``, ``frozenset``                 ``{"$set":[...]}``, elements sorted by their
                                       own encoding
``bytes``                              ``{"$bytes":"<lowercase hex>"}``
NumPy scalar (``np.float64`` ...)      the equal Python value (``.item()``); numpy
                                       is never imported to recognise one
anything else                          :class:`~metalab.errors.FingerprintError`
=====================================  ==============================================

The JSON text has no whitespace (separators ``,`` and ``:``). It depends neither on
dict insertion order, nor on ``PYTHONHASHSEED``, nor on the platform: Python's float
``repr`` is correctly rounded everywhere, and ``hash()`` is never used.

>>> canonical({"b": 1, "a": [1.0, True, None]})
b'{"a":[1.0,true,null],"b":1}'
>>> fingerprint({"a": 1}) == fingerprint({"a": 1.0})
False
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from metalab._json import compact_encoder
from metalab.errors import FingerprintError

__all__ = [
    "RUN_ID_HEX_DIGITS",
    "canonical",
    "check_encodable",
    "fingerprint",
    "fingerprint_of_canonical",
    "flat_entry",
    "run_id",
    "run_id_function",
]

#: Hex digits kept in a run ID: 128 bits, so that even 10^9 runs in one store
#: collide with probability about 1.5e-21 (64 bits would give 2.7%).
RUN_ID_HEX_DIGITS = 32

_RUN_ID_SCHEME = "metalab.run_id/1"

_ALLOWED = (
    "None, bool, int, float, str, list, tuple, dict with str keys, set, frozenset, "
    "bytes and NumPy scalars"
)

_NONFINITE = {"nan": {"$float": "nan"}, "inf": {"$float": "inf"}, "-inf": {"$float": "-inf"}}

_DUMPS = compact_encoder(ensure_ascii=True, sort_keys=True, allow_nan=False)


def _normalise(value: Any, where: str) -> Any:
    """Return ``value`` as a tree of plain JSON types following the module's rules."""
    # Exact type checks first: they cover nearly every parameter and are the fast path.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else _NONFINITE[repr(value)]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _normalise(float(value), where)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise FingerprintError(
                    f"fingerprint: {where} has a key {key!r} of type {type(key).__name__}; "
                    f"keys must be str. Convert the key, e.g. str({key!r})."
                )
            out["$" + key if key.startswith("$") else str(key)] = _normalise(
                item, f"{where}[{key!r}]"
            )
        return out
    if isinstance(value, set | frozenset):
        items = [_normalise(item, f"{where}{{...}}") for item in value]
        return {"$set": sorted(items, key=_DUMPS)}
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if kind.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _normalise(value.item(), where)
    raise FingerprintError(
        f"fingerprint: cannot encode {where} = {value!r:.80} of type {kind.__name__}; "
        f"allowed: {_ALLOWED}. Convert it to one of those first "
        f"(an array: .tolist(); an object: a dict of its fields)."
    )


def canonical(value: Any, *, where: str = "value") -> bytes:
    r"""Return the canonical encoding of ``value`` (ASCII bytes; rules in the module doc).

    ``where`` names the value in error messages, e.g. ``"params"``.

    >>> canonical({"x": float("inf"), "$k": b"\x01"})
    b'{"$$k":{"$bytes":"01"},"x":{"$float":"inf"}}'
    """
    try:
        if type(value) is dict and _is_flat(value):
            # A parameter case is nearly always a flat dict of plain scalars: the encoder
            # (sorting keys, repr for floats) already writes it canonically.
            return _DUMPS(value).encode("ascii")
        return _DUMPS(_normalise(value, where)).encode("ascii")
    except (RecursionError, ValueError) as exc:
        raise _unencodable(where, exc) from None


_PLAIN = frozenset({str, int, bool, type(None)})


def _is_flat(mapping: dict[Any, Any]) -> bool:
    """Whether ``mapping`` encodes as itself: plain str keys, scalar finite values."""
    for key, item in mapping.items():
        if type(key) is not str or key[:1] == "$":
            return False
        kind = type(item)
        if kind not in _PLAIN and not (kind is float and math.isfinite(item)):
            return False
    return True


def fingerprint(value: Any, *, where: str = "value") -> str:
    """Return the SHA-256 of ``canonical(value)`` as 64 lowercase hex digits.

    >>> fingerprint([])
    '4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945'
    """
    return fingerprint_of_canonical(canonical(value, where=where))


def fingerprint_of_canonical(text: bytes) -> str:
    """Return the fingerprint of the value whose :func:`canonical` encoding is ``text``.

    >>> fingerprint_of_canonical(canonical([])) == fingerprint([])
    True
    """
    return hashlib.sha256(text).hexdigest()


def flat_entry(key: Any, value: Any) -> bytes | None:
    """Return ``key: value`` as :func:`canonical` writes it in a flat dict, or None.

    None when ``{key: value}`` is not flat (a ``$`` key, NaN, a list ...). The
    canonical encoding of a flat dict is its entries in sorted key order, joined by
    ``,`` inside braces: a source that makes many cases from a few values encodes
    each value once (see :meth:`ParamCase.with_canonical`).

    >>> flat_entry("lr", 0.1), flat_entry("lr", float("nan"))
    (b'"lr":0.1', None)
    """
    single = {key: value}
    return canonical(single)[1:-1] if _is_flat(single) else None


def check_encodable(value: Any, *, where: str) -> None:
    """Raise :class:`FingerprintError` unless ``value`` has a canonical encoding.

    Constructors call this so that a bad value fails when it is declared, not in
    the middle of a sweep.
    """
    canonical(value, where=where)


def _unencodable(where: str, exc: BaseException) -> FingerprintError:
    """Return the error for a value whose encoding raised ``exc`` (RecursionError, ValueError)."""
    if isinstance(exc, RecursionError):
        problem = (
            "contains itself (a list or dict holding itself, directly or further down) "
            "or is nested more deeply than Python can follow"
        )
        fix = "pass a copy without the cycle, or a flatter structure"
    else:  # json refuses ints beyond Python's int-to-text limit (4300 digits by default)
        problem = f"holds a value JSON text cannot hold ({exc})"
        fix = "pass a very large int as a str, or as a float if an approximation will do"
    return FingerprintError(f"fingerprint: {where} {problem}; {fix}.")


def run_id(
    *,
    experiment: str,
    version: str,
    context: str,
    params: str,
    seeds: str,
) -> str:
    """Return the run ID: 32 hex digits of SHA-256 over the run's identity.

    ``context``, ``params`` and ``seeds`` are the fingerprints of the context, the
    parameter case and the seed bundle. The ID is the first :data:`RUN_ID_HEX_DIGITS`
    hex digits of ``fingerprint`` of the mapping ``{"context": ..., "experiment": ...,
    "params": ..., "scheme": "metalab.run_id/1", "seeds": ..., "version": ...}``.

    >>> len(run_id(experiment="pi", version="0.1", context="c", params="p", seeds="s"))
    32
    """
    for name, text in (
        ("experiment", experiment),
        ("version", version),
        ("context", context),
        ("params", params),
        ("seeds", seeds),
    ):
        if not isinstance(text, str):
            raise FingerprintError(
                f"run_id({name}={text!r}): {name} must be a str, got {type(text).__name__}."
            )
    identity = {
        "context": context,
        "experiment": experiment,
        "params": params,
        "scheme": _RUN_ID_SCHEME,
        "seeds": seeds,
        "version": version,
    }
    return fingerprint(identity)[:RUN_ID_HEX_DIGITS]


def _quoted(text: str) -> str:
    """Return ``text`` as a JSON string; a fingerprint (hex digits) needs no escaping."""
    return f'"{text}"' if text.isalnum() and text.isascii() else _DUMPS(text)


def run_id_function(*, experiment: str, version: str, context: str) -> Callable[[str, str], str]:
    """Return ``f(params, seeds)`` equal to :func:`run_id` with the other parts bound.

    A sweep computes one run ID per run; this builds the canonical text around the two
    parts that change instead of encoding the whole identity each time.

    >>> f = run_id_function(experiment="pi", version="0.1", context="c")
    >>> f("p", "s") == run_id(experiment="pi", version="0.1", context="c", params="p", seeds="s")
    True
    """
    run_id(experiment=experiment, version=version, context=context, params="", seeds="")  # checks
    head = f'{{"context":{_DUMPS(context)},"experiment":{_DUMPS(experiment)},"params":'
    middle = f',"scheme":{_DUMPS(_RUN_ID_SCHEME)},"seeds":'
    tail = f',"version":{_DUMPS(version)}}}'
    sha256 = hashlib.sha256

    def bound_run_id(params: str, seeds: str) -> str:
        text = f"{head}{_quoted(params)}{middle}{_quoted(seeds)}{tail}"
        return sha256(text.encode("ascii")).hexdigest()[:RUN_ID_HEX_DIGITS]

    return bound_run_id
