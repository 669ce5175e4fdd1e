"""Distributions a RandomSource draws from. Imports errors, _validate, params._base.

A distribution is any object with ``sample(rng: random.Random)`` and
``to_manifest_dict()`` (the :class:`Distribution` protocol). To be rebuilt from a
manifest, its class must also have a ``from_manifest_dict`` classmethod and be
registered with :func:`register_distribution`; the registry key, which is the
manifest's ``"type"``, is the class name.

The draws are those of the original metalab, one ``rng`` call each, so the same
space, seed and index give the same numbers there and here.
"""

from __future__ import annotations

import math
import random as _stdlib_random
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from metalab._validate import check_int, check_real
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.params._base import plain_value

__all__ = [
    "Choice",
    "Distribution",
    "LogUniform",
    "LogUniformInt",
    "RandInt",
    "Uniform",
    "choice",
    "distribution_from_manifest",
    "loguniform",
    "loguniform_int",
    "randint",
    "register_distribution",
    "uniform",
]


@runtime_checkable
class Distribution(Protocol):
    """What a RandomSource needs of a distribution.

    >>> import random
    >>> class Coin:
    ...     def sample(self, rng: random.Random) -> bool:
    ...         return rng.random() < 0.5
    ...     def to_manifest_dict(self) -> dict:
    ...         return {"type": "Coin"}
    >>> isinstance(Coin(), Distribution)
    True
    """

    def sample(self, rng: _stdlib_random.Random) -> Any:
        """Draw one value using only ``rng``."""
        ...

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict whose ``"type"`` is the class name."""
        ...


_REGISTRY: dict[str, type] = {}


def register_distribution(cls: type) -> type:
    """Class decorator: let manifests name ``cls`` so RandomSource can rebuild it.

    ``cls`` needs ``sample``, ``to_manifest_dict`` and a ``from_manifest_dict``
    classmethod; its manifest ``"type"`` must be ``cls.__name__``.
    """
    missing = [
        name
        for name in ("sample", "to_manifest_dict", "from_manifest_dict")
        if not callable(getattr(cls, name, None))
    ]
    if missing:
        raise InvalidTypeError(
            f"register_distribution({cls.__name__}): missing {', '.join(missing)}; "
            f"a distribution needs sample(rng), to_manifest_dict() and the classmethod "
            f"from_manifest_dict(manifest)."
        )
    known = _REGISTRY.get(cls.__name__)
    if known is not None and (known.__module__, known.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise InvalidArgumentError(
            f"register_distribution({cls.__module__}.{cls.__qualname__}): the manifest type "
            f"{cls.__name__!r} already names {known.__module__}.{known.__qualname__}; "
            f"rename the class."
        )
    _REGISTRY[cls.__name__] = cls
    return cls


def distribution_from_manifest(manifest: dict[str, Any], *, where: str = "space") -> Any:
    """Rebuild a registered distribution from its manifest dict."""
    kind = manifest.get("type") if isinstance(manifest, dict) else None
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidArgumentError(
            f"{where}: unknown distribution type {kind!r}; known: "
            f"{', '.join(sorted(_REGISTRY))}. Register a custom one with "
            f"metalab.register_distribution before loading its manifest."
        )
    try:
        return cls.from_manifest_dict(manifest)
    except KeyError as missing:
        raise InvalidArgumentError(
            f"{where}: the {kind} manifest {manifest!r:.120} lacks the field {missing}; "
            f"write it with {kind}.to_manifest_dict()."
        ) from None


def _check_bounds(name: str, low: Any, high: Any, *, integer: bool, positive: bool) -> None:
    """Validate ``low < high`` (both finite; ints if ``integer``; > 0 if ``positive``)."""
    where = f"{name}(low={low!r}, high={high!r})"
    check = check_int if integer else check_real
    check(name, "low", low)
    check(name, "high", high)
    if positive and low <= 0:
        raise InvalidArgumentError(
            f"{where}: low must be > 0 on a log scale (got low={low!r}); "
            f"use a positive lower bound, or uniform/randint for ranges that include 0."
        )
    if low >= high:
        fix = "swap them" if low > high else "use choice([value]) for a constant"
        raise InvalidArgumentError(
            f"{where}: low must be below high (got low={low!r}, high={high!r}); {fix}."
        )
    if not math.isfinite(high - low):  # rng.uniform would draw inf
        raise InvalidArgumentError(
            f"{where}: high - low overflows a float; narrow the range or use loguniform."
        )


class _Bounded:
    """Manifest round trip shared by the four two-bound distributions."""

    low: Any
    high: Any

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return ``{"type": <class name>, "low": ..., "high": ...}``."""
        return {"type": type(self).__name__, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> Any:
        """Rebuild from :meth:`to_manifest_dict` output."""
        return cls(low=manifest["low"], high=manifest["high"])  # type: ignore[call-arg]


@register_distribution
@dataclass(frozen=True)
class Uniform(_Bounded):
    """Uniform distribution over [low, high): ``rng.uniform(low, high)``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("uniform", self.low, self.high, integer=False, positive=False)

    def sample(self, rng: _stdlib_random.Random) -> float:
        """Draw one value."""
        return rng.uniform(self.low, self.high)


@register_distribution
@dataclass(frozen=True)
class LogUniform(_Bounded):
    """Log-uniform distribution over [low, high): ``exp(rng.uniform(log low, log high))``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        _check_bounds("loguniform", self.low, self.high, integer=False, positive=True)

    def sample(self, rng: _stdlib_random.Random) -> float:
        """Draw one value."""
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@register_distribution
@dataclass(frozen=True)
class LogUniformInt(_Bounded):
    """Log-uniform distribution over integers in [low, high], rounded to nearest."""

    low: int
    high: int

    def __post_init__(self) -> None:
        _check_bounds("loguniform_int", self.low, self.high, integer=True, positive=True)

    def sample(self, rng: _stdlib_random.Random) -> int:
        """Draw one value."""
        return round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@register_distribution
@dataclass(frozen=True)
class RandInt(_Bounded):
    """Uniform distribution over integers in [low, high] (high inclusive)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        _check_bounds("randint", self.low, self.high, integer=True, positive=False)

    def sample(self, rng: _stdlib_random.Random) -> int:
        """Draw one value."""
        return rng.randint(self.low, self.high)


@register_distribution
@dataclass(frozen=True)
class Choice:
    """Uniform choice from a list of options: ``rng.choice(options)``."""

    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.options, list | tuple):
            raise InvalidTypeError(
                f"choice(options={self.options!r:.80}): options must be a list, got "
                f"{type(self.options).__name__}; write choice([a, b, c])."
            )
        if not self.options:
            raise InvalidArgumentError(
                "choice(options=[]): options must not be empty; give at least one value."
            )
        options = tuple(
            plain_value(option, f"choice(options)[{i}]") for i, option in enumerate(self.options)
        )
        object.__setattr__(self, "options", options)

    def sample(self, rng: _stdlib_random.Random) -> Any:
        """Draw one value."""
        return rng.choice(self.options)

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return ``{"type": "Choice", "options": [...]}``."""
        return {"type": "Choice", "options": list(self.options)}

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> Choice:
        """Rebuild from :meth:`to_manifest_dict` output."""
        return cls(options=tuple(manifest["options"]))


def uniform(low: float, high: float) -> Uniform:
    """Create a uniform distribution over [low, high).

    >>> uniform(0.1, 0.5)
    Uniform(low=0.1, high=0.5)
    """
    return Uniform(low=low, high=high)


def loguniform(low: float, high: float) -> LogUniform:
    """Create a log-uniform distribution over [low, high); needs ``0 < low < high``."""
    return LogUniform(low=low, high=high)


def loguniform_int(low: int, high: int) -> LogUniformInt:
    """Create a log-uniform distribution over integers in [low, high]; needs ``0 < low < high``."""
    return LogUniformInt(low=low, high=high)


def randint(low: int, high: int) -> RandInt:
    """Create a uniform distribution over integers in [low, high], high inclusive."""
    return RandInt(low=low, high=high)


def choice(options: list[Any]) -> Choice:
    """Create a uniform choice distribution from a non-empty list of options.

    >>> choice([64, 128, 256]).options
    (64, 128, 256)
    """
    return Choice(options=options)  # type: ignore[arg-type]  # normalised to a tuple
