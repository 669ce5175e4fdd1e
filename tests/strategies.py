"""Hypothesis strategies shared by the test suite.

Kept in one place (as attrs does in ``tests/strategies.py``) so every test draws
parameter values, grid specs and random spaces the same way.

``json_values`` draws only what JSON keeps exactly (no tuples, no NaN or infinity),
so a value that goes through ``json.loads(json.dumps(...))`` comes back equal and of
the same type. ``param_values`` adds tuples, which metalab also accepts.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

import metalab

__all__ = [
    "distributions",
    "grid_specs",
    "json_scalars",
    "json_values",
    "manual_cases",
    "param_dicts",
    "param_names",
    "param_values",
    "random_spaces",
    "seeds",
]

#: Parameter names: any short str (grid keys reach GridSource through **kwargs,
#: which takes any str, not only identifiers).
param_names = st.text(max_size=8)

#: JSON scalars that survive a JSON round trip unchanged: no NaN or infinity.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)

#: JSON-like values: scalars, lists and str-keyed dicts of them, nested a little.
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(param_names, inner, max_size=3),
    ),
    max_leaves=6,
)

#: Everything metalab accepts as a parameter value, tuples included.
param_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(param_names, inner, max_size=3),
    ),
    max_leaves=6,
)

#: One parameter dict (a case's params).
param_dicts = st.dictionaries(param_names, json_values, max_size=4)


def grid_specs(values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[dict]:
    """Grid specs: up to 4 names, each with 1 to 4 values (so at most 256 cases)."""
    return st.dictionaries(param_names, st.lists(values, min_size=1, max_size=4), max_size=4)


#: Lists of parameter dicts for ManualSource.
manual_cases = st.lists(param_dicts, max_size=5)

#: Seeds RandomSource accepts: [0, 2**64).
seeds = st.integers(min_value=0, max_value=2**64 - 1)


def _ordered_pair(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    """Two distinct values from ``elements``, smaller first."""
    return (
        st.tuples(elements, elements)
        .filter(lambda pair: pair[0] != pair[1])
        .map(lambda pair: (min(pair), max(pair)))
    )


# Moderate float bounds: rng.uniform(low, high) computes high - low, which overflows
# to infinity for bounds near the float limits.
_bound_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
_positive_floats = st.floats(min_value=1e-6, max_value=1e6)

#: Every built-in distribution with valid arguments.
distributions = st.one_of(
    _ordered_pair(_bound_floats).map(lambda b: metalab.uniform(*b)),
    _ordered_pair(_positive_floats).map(lambda b: metalab.loguniform(*b)),
    _ordered_pair(st.integers(1, 10**6)).map(lambda b: metalab.loguniform_int(*b)),
    _ordered_pair(st.integers(-(10**6), 10**6)).map(lambda b: metalab.randint(*b)),
    st.lists(json_values, min_size=1, max_size=4).map(metalab.choice),
)

#: RandomSource spaces: up to 5 names, each with a distribution.
random_spaces = st.dictionaries(param_names, distributions, max_size=5)
