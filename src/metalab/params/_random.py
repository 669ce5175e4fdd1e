"""RandomSource: replayable random sampling. Imports errors, _validate, params._base/_distributions.

Case ``i`` is drawn by ``random.Random(seed * 1_000_000_007 + i)``, one draw per key
in sorted key order, as in the original metalab. Each index owns its generator, so
``source[i]`` is the same whatever was drawn before, in any process. (Two sources
with seeds ``s`` and ``s + 1`` would share cases only past index 1,000,000,006.)
"""

from __future__ import annotations

import random as _stdlib_random
from collections.abc import Mapping
from typing import Any

from metalab._validate import check_int
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.params._base import ParamCase, ParamSource, plain_value
from metalab.params._distributions import (
    Choice,
    Distribution,
    LogUniform,
    LogUniformInt,
    RandInt,
    Uniform,
    distribution_from_manifest,
)

__all__ = ["RandomSource", "random"]

_INDEX_STRIDE = 1_000_000_007
_BUILTIN = frozenset({Choice, LogUniform, LogUniformInt, RandInt, Uniform})


class RandomSource(ParamSource):
    """Parameter source of ``n_trials`` random samples from ``space``, replayable by index.

    >>> from metalab.params import uniform
    >>> source = RandomSource({"x": uniform(0, 1)}, n_trials=3, seed=1)
    >>> source[2] == list(source)[2]
    True
    """

    def __init__(self, space: Mapping[str, Distribution], n_trials: int, seed: int) -> None:
        if not isinstance(space, Mapping):
            raise InvalidTypeError(
                f"random(space={space!r:.80}): space must be a dict of parameter names "
                f"to distributions, e.g. {{'lr': metalab.loguniform(1e-4, 1e-1)}}."
            )
        for key, dist in space.items():
            if not isinstance(key, str):
                raise InvalidTypeError(f"random(space): parameter name {key!r} must be a str.")
            if isinstance(dist, type) or not isinstance(dist, Distribution):
                raise InvalidTypeError(
                    f"random(space[{key!r}]={dist!r:.80}): not a distribution; use "
                    f"metalab.uniform, loguniform, loguniform_int, randint or choice, or an "
                    f"object with sample(rng) and to_manifest_dict()."
                )
        self._keys = tuple(sorted(space))
        self._dists = tuple(space[key] for key in self._keys)
        # Built-in draws are plain Python values already; a custom one may return, say,
        # np.float64, which is converted so operations always get plain values.
        self._custom = tuple(type(d) not in _BUILTIN for d in self._dists)
        self._n_trials = check_int("random", "n_trials", n_trials, minimum=0)
        self._seed = check_int("random", "seed", seed, minimum=0, below=2**64)

    def __len__(self) -> int:
        return self._n_trials

    def _case(self, position: int) -> ParamCase:
        rng = _stdlib_random.Random(self._seed * _INDEX_STRIDE + position)
        params = {}
        for key, dist, custom in zip(self._keys, self._dists, self._custom, strict=True):
            value = dist.sample(rng)
            params[key] = plain_value(value, f"{dist!r:.60}.sample()") if custom else value
        return ParamCase(params, position, (f"trial_{position}",))

    def __repr__(self) -> str:
        return f"RandomSource(n_trials={self._n_trials}, seed={self._seed})"

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return ``{"type": "RandomSource", "space": {...}, "n_trials": n, "seed": s}``."""
        return {
            "type": "RandomSource",
            "space": {
                key: dist.to_manifest_dict()
                for key, dist in zip(self._keys, self._dists, strict=True)
            },
            "n_trials": self._n_trials,
            "seed": self._seed,
        }

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> RandomSource:
        """Rebuild from :meth:`to_manifest_dict` output; custom distributions must be registered."""
        if not isinstance(manifest, dict) or not isinstance(manifest.get("space"), dict):
            raise InvalidArgumentError(
                f"RandomSource.from_manifest_dict: expected a dict with 'space', 'n_trials' "
                f"and 'seed', got {manifest!r:.120}."
            )
        space = {
            key: distribution_from_manifest(dist, where=f"RandomSource space[{key!r}]")
            for key, dist in manifest["space"].items()
        }
        return cls(space=space, n_trials=manifest.get("n_trials"), seed=manifest.get("seed"))


def random(space: Mapping[str, Distribution], n_trials: int, seed: int) -> RandomSource:
    """Create a :class:`RandomSource` for replayable random parameter sampling.

    >>> from metalab.params import choice, loguniform_int
    >>> params = random(
    ...     space={"n_samples": loguniform_int(1000, 1000000), "store": choice([True, False])},
    ...     n_trials=20,
    ...     seed=123,
    ... )
    >>> len(params)
    20
    """
    return RandomSource(space=space, n_trials=n_trials, seed=seed)
