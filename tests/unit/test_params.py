"""Tests of the parameter sources: grid, random and manual sources and ParamCase.

The golden random cases below were computed outside this file, with the standard
library alone, by the algorithm the original metalab fixes: case ``i`` of
``RandomSource(space, n_trials, seed)`` is drawn by
``random.Random(seed * 1_000_000_007 + i)``, one draw per key in sorted key order.
They are literals so that any change of the algorithm fails loudly.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metalab
import strategies as sts  # tests/ is on sys.path: tests/conftest.py is rootdir-relative
from metalab import (
    CaseIndexError,
    GridSource,
    InvalidArgumentError,
    InvalidTypeError,
    ManualSource,
    ParamCase,
    RandomSource,
)

PROPERTY = settings(max_examples=60, deadline=None)


def assert_case_is(case: ParamCase, expected: dict[str, Any]) -> None:
    """Assert equal params with equal types (``1``, ``1.0`` and ``True`` are == in Python)."""
    assert dict(case) == expected
    assert [type(case[key]) for key in expected] == [type(value) for value in expected.values()]
    assert case.fingerprint == metalab.fingerprint(expected)


def assert_same_cases(actual: list[ParamCase], expected: list[ParamCase]) -> None:
    """Assert equal cases (params, index, tags) with equal fingerprints."""
    assert actual == expected
    assert [c.fingerprint for c in actual] == [c.fingerprint for c in expected]


# --------------------------------------------------------------------------------------
# Golden grid cases: sorted keys, itertools.product order, rightmost key fastest.
# --------------------------------------------------------------------------------------


def test_grid_two_keys_golden_cases_follow_sorted_keys_with_rightmost_fastest() -> None:
    source = metalab.grid(learning_rate=[0.01, 0.1], batch_size=[32, 64])
    expected = [
        {"batch_size": 32, "learning_rate": 0.01},
        {"batch_size": 32, "learning_rate": 0.1},
        {"batch_size": 64, "learning_rate": 0.01},
        {"batch_size": 64, "learning_rate": 0.1},
    ]
    assert len(source) == 4
    for index, params in enumerate(expected):
        assert_case_is(source[index], params)
    assert [dict(case) for case in source] == expected


def test_grid_bool_and_int_golden_cases_keep_their_types() -> None:
    source = metalab.grid(n_samples=[1000, 10000, 100000], store_points=[True, False])
    expected = [
        {"n_samples": 1000, "store_points": True},
        {"n_samples": 1000, "store_points": False},
        {"n_samples": 10000, "store_points": True},
        {"n_samples": 10000, "store_points": False},
        {"n_samples": 100000, "store_points": True},
        {"n_samples": 100000, "store_points": False},
    ]
    for index, params in enumerate(expected):
        assert_case_is(source[index], params)


def test_grid_three_keys_given_out_of_order_golden_cases() -> None:
    source = metalab.grid(z=["a", "b"], a=[1.5, None, -2], m=[[1], {"k": "v"}])
    first = [
        {"a": 1.5, "m": [1], "z": "a"},
        {"a": 1.5, "m": [1], "z": "b"},
        {"a": 1.5, "m": {"k": "v"}, "z": "a"},
        {"a": 1.5, "m": {"k": "v"}, "z": "b"},
        {"a": None, "m": [1], "z": "a"},
    ]
    assert len(source) == 12
    assert list(source[0]) == ["a", "m", "z"]
    for index, params in enumerate(first):
        assert_case_is(source[index], params)
    assert_case_is(source[-1], {"a": -2, "m": {"k": "v"}, "z": "b"})


def test_grid_cases_carry_their_index_and_no_tags() -> None:
    source = metalab.grid(x=[1, 2, 3])
    assert [(case.index, case.tags) for case in source] == [(0, ()), (1, ()), (2, ())]
    assert source[-1].index == 2


def test_grid_without_keys_has_one_empty_case() -> None:
    source = metalab.grid()
    assert len(source) == 1
    assert dict(source[0]) == {}
    assert list(source) == [ParamCase({}, 0, ())]


# --------------------------------------------------------------------------------------
# Golden random cases (computed independently from the stdlib algorithm).
# --------------------------------------------------------------------------------------


def _all_five_space() -> dict[str, Any]:
    # Inserted out of sorted order on purpose: draws follow sorted key order.
    return {
        "optimizer": metalab.choice(["sgd", "adam", "rmsprop"]),
        "lr": metalab.loguniform(1e-4, 1e-1),
        "momentum": metalab.uniform(0.0, 0.99),
        "n_samples": metalab.loguniform_int(1000, 1_000_000),
        "batch": metalab.randint(16, 256),
    }


ALL_FIVE_GOLDEN = {
    (0, 0): {
        "batch": 232,
        "lr": 0.001431317296384311,
        "momentum": 0.8813414816287597,
        "n_samples": 1323,
        "optimizer": "rmsprop",
    },
    (0, 1): {
        "batch": 50,
        "lr": 0.005100486759046465,
        "momentum": 0.7942424105565017,
        "n_samples": 1546,
        "optimizer": "sgd",
    },
    (0, 2): {
        "batch": 236,
        "lr": 0.06974008320384788,
        "momentum": 0.0559858540495406,
        "n_samples": 1797,
        "optimizer": "sgd",
    },
    (0, 999_999): {
        "batch": 69,
        "lr": 0.0005415910050541353,
        "momentum": 0.6614513407897217,
        "n_samples": 88673,
        "optimizer": "sgd",
    },
    (123, 0): {
        "batch": 191,
        "lr": 0.0006974468318851038,
        "momentum": 0.4834264364891094,
        "n_samples": 4581,
        "optimizer": "rmsprop",
    },
    (123, 1): {
        "batch": 115,
        "lr": 0.0007310891304065385,
        "momentum": 0.16665409992888852,
        "n_samples": 2367,
        "optimizer": "rmsprop",
    },
    (123, 2): {
        "batch": 207,
        "lr": 0.0004996365077369306,
        "momentum": 0.5704886624905261,
        "n_samples": 123221,
        "optimizer": "adam",
    },
    (123, 999_999): {
        "batch": 166,
        "lr": 0.0007751923040018194,
        "momentum": 0.23505471375777903,
        "n_samples": 1741,
        "optimizer": "rmsprop",
    },
}


@pytest.mark.parametrize(("seed", "index"), sorted(ALL_FIVE_GOLDEN))
def test_random_all_five_distributions_golden_case(seed: int, index: int) -> None:
    source = metalab.random(_all_five_space(), n_trials=1_000_000, seed=seed)
    case = source[index]
    assert_case_is(case, ALL_FIVE_GOLDEN[seed, index])
    assert list(case) == ["batch", "lr", "momentum", "n_samples", "optimizer"]


def test_random_all_five_distributions_golden_first_cases_by_iteration() -> None:
    source = metalab.random(_all_five_space(), n_trials=3, seed=123)
    assert [dict(case) for case in source] == [ALL_FIVE_GOLDEN[123, i] for i in range(3)]


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, {"n_samples": 689351, "store": False}),
        (1, {"n_samples": 14470, "store": True}),
        (2, {"n_samples": 173940, "store": True}),
        (19, {"n_samples": 9565, "store": True}),
        (-1, {"n_samples": 9565, "store": True}),
    ],
)
def test_random_docstring_space_seed_123_golden_case(index: int, expected: dict) -> None:
    source = metalab.random(
        space={
            "store": metalab.choice([True, False]),
            "n_samples": metalab.loguniform_int(1000, 1_000_000),
        },
        n_trials=20,
        seed=123,
    )
    assert_case_is(source[index], expected)


@pytest.mark.parametrize(
    ("seed", "index", "x"),
    [
        (0, 0, 0.6888437030500962),
        (0, 1, -0.7312715117751976),
        (0, 2, 0.9120685437784988),
        (0, 999_999, -0.5796294473922678),
        (123, 0, 0.892293627351048),
        (123, 1, -0.22635477352157074),
        (123, 2, 0.4936001037491071),
        (123, 999_999, 0.17311467672094416),
    ],
)
def test_random_single_uniform_golden_case(seed: int, index: int, x: float) -> None:
    source = metalab.random({"x": metalab.uniform(-1.0, 1.0)}, n_trials=1_000_000, seed=seed)
    assert_case_is(source[index], {"x": x})


def test_random_case_tags_are_trial_index() -> None:
    source = metalab.random({"x": metalab.uniform(0, 1)}, n_trials=4, seed=5)
    assert [case.tags for case in source] == [(f"trial_{i}",) for i in range(4)]
    assert source[-1].tags == ("trial_3",)
    assert source[-1].index == 3


# --------------------------------------------------------------------------------------
# Properties.
# --------------------------------------------------------------------------------------


@PROPERTY
@given(spec=sts.grid_specs(sts.param_values))
def test_grid_getitem_equals_iterated_case_at_every_index(spec: dict[str, list]) -> None:
    source = metalab.grid(**spec)
    cases = list(source)
    n = len(cases)
    for i in range(n):
        assert source[i] == cases[i]
        assert source[i].fingerprint == cases[i].fingerprint
        assert source[i - n] == cases[i]
        assert cases[i].index == i


@PROPERTY
@given(
    spec=sts.grid_specs(
        st.one_of(
            sts.json_scalars,
            st.floats(),  # NaN and infinities: not flat, so those grids take the slow path
            st.text(alphabet='$é"\\x', max_size=3),
        )
    )
)
def test_grid_iteration_fingerprints_and_json_equal_the_general_encodings(
    spec: dict[str, list],
) -> None:
    # Iteration joins each value's pre-encoded entry; indexing and fingerprint() encode.
    for case in metalab.grid(**spec):
        assert case.fingerprint == metalab.fingerprint(dict(case))
        assert case.to_json() == json.dumps(dict(case), ensure_ascii=False, separators=(",", ":"))
        assert pickle.loads(pickle.dumps(case)).fingerprint == case.fingerprint


@PROPERTY
@given(spec=sts.grid_specs())
def test_grid_len_is_product_of_value_list_lengths(spec: dict[str, list]) -> None:
    source = metalab.grid(**spec)
    assert len(source) == math.prod(len(values) for values in spec.values())
    assert len(list(source)) == len(source)


@PROPERTY
@given(spec=sts.grid_specs())
def test_grid_iterates_in_product_order_over_sorted_keys(spec: dict[str, list]) -> None:
    keys = sorted(spec)
    expected: list[dict] = [{}]
    for key in keys:  # build the product by hand, leftmost key slowest
        expected = [{**prefix, key: value} for prefix in expected for value in spec[key]]
    assert [dict(case) for case in metalab.grid(**spec)] == expected


@PROPERTY
@given(
    space=sts.random_spaces,
    n_trials=st.integers(0, 12),
    seed=sts.seeds,
    shuffler=st.randoms(use_true_random=False),
)
def test_random_source_cases_do_not_depend_on_access_order(
    space: dict, n_trials: int, seed: int, shuffler: random.Random
) -> None:
    in_order = list(metalab.random(space, n_trials=n_trials, seed=seed))
    source = metalab.random(space, n_trials=n_trials, seed=seed)
    order = list(range(n_trials))
    shuffler.shuffle(order)
    shuffled = {i: source[i] for i in order}
    assert_same_cases([shuffled[i] for i in range(n_trials)], in_order)


@PROPERTY
@given(space=sts.random_spaces, n_trials=st.integers(0, 12), seed=sts.seeds)
def test_random_source_rebuilt_from_same_arguments_replays_same_cases(
    space: dict, n_trials: int, seed: int
) -> None:
    first = list(metalab.random(space, n_trials=n_trials, seed=seed))
    again = list(metalab.random(dict(reversed(space.items())), n_trials=n_trials, seed=seed))
    assert_same_cases(again, first)


@PROPERTY
@given(space=sts.random_spaces, n_trials=st.integers(1, 12), seed=sts.seeds)
def test_random_source_negative_index_counts_from_the_end(
    space: dict, n_trials: int, seed: int
) -> None:
    source = metalab.random(space, n_trials=n_trials, seed=seed)
    cases = list(source)
    assert [source[i - n_trials] for i in range(n_trials)] == cases


@PROPERTY
@given(
    bounds=st.tuples(st.integers(-50, 50), st.integers(1, 50)),
    log_bounds=st.tuples(st.integers(1, 1000), st.integers(1, 1000)),
    seed=sts.seeds,
)
def test_integer_distributions_stay_within_inclusive_bounds(
    bounds: tuple[int, int], log_bounds: tuple[int, int], seed: int
) -> None:
    low, width = bounds
    log_low, log_width = log_bounds
    source = metalab.random(
        {
            "r": metalab.randint(low, low + width),
            "g": metalab.loguniform_int(log_low, log_low + log_width),
        },
        n_trials=20,
        seed=seed,
    )
    for case in source:
        assert type(case["r"]) is int
        assert low <= case["r"] <= low + width
        assert type(case["g"]) is int
        assert log_low <= case["g"] <= log_low + log_width


def test_integer_distributions_reach_both_inclusive_bounds() -> None:
    source = metalab.random(
        {"r": metalab.randint(0, 1), "g": metalab.loguniform_int(1, 2)}, n_trials=200, seed=0
    )
    assert {case["r"] for case in source} == {0, 1}
    assert {case["g"] for case in source} == {1, 2}


def _json_round_trip(source: metalab.ParamSource) -> metalab.ParamSource:
    return metalab.source_from_manifest(json.loads(json.dumps(source.to_manifest_dict())))


@PROPERTY
@given(spec=sts.grid_specs())
def test_grid_manifest_json_round_trip_gives_equal_cases(spec: dict[str, list]) -> None:
    source = metalab.grid(**spec)
    rebuilt = _json_round_trip(source)
    assert isinstance(rebuilt, GridSource)
    assert len(rebuilt) == len(source)
    assert_same_cases(list(rebuilt), list(source))


@PROPERTY
@given(space=sts.random_spaces, n_trials=st.integers(0, 10), seed=sts.seeds)
def test_random_manifest_json_round_trip_gives_equal_cases(
    space: dict, n_trials: int, seed: int
) -> None:
    source = metalab.random(space, n_trials=n_trials, seed=seed)
    rebuilt = _json_round_trip(source)
    assert isinstance(rebuilt, RandomSource)
    assert len(rebuilt) == n_trials
    assert_same_cases(list(rebuilt), list(source))


@PROPERTY
@given(cases=sts.manual_cases, tags=st.lists(st.text(max_size=5), max_size=3))
def test_manual_manifest_json_round_trip_gives_equal_cases(
    cases: list[dict], tags: list[str]
) -> None:
    source = metalab.manual(cases, tags=tags)
    rebuilt = _json_round_trip(source)
    assert isinstance(rebuilt, ManualSource)
    assert len(rebuilt) == len(cases)
    assert_same_cases(list(rebuilt), list(source))


@pytest.mark.parametrize(
    "source",
    [
        metalab.grid(x=[(1, 2), (3, (4, 5))]),
        metalab.manual([{"x": (1, [2, 3])}]),
        metalab.random({"x": metalab.choice([(1, 2)])}, n_trials=2, seed=0),
    ],
    ids=["grid", "manual", "choice"],
)
def test_tuple_values_survive_json_manifest_round_trip(source: metalab.ParamSource) -> None:
    # Tuples are accepted values, and a rebuilt source must yield identical cases.
    assert_same_cases(list(_json_round_trip(source)), list(source))


@PROPERTY
@given(params=sts.param_dicts, shuffler=st.randoms(use_true_random=False))
def test_param_case_fingerprint_does_not_depend_on_insertion_order(
    params: dict, shuffler: random.Random
) -> None:
    items = list(params.items())
    shuffler.shuffle(items)
    reordered = ParamCase(dict(items))
    assert reordered.fingerprint == ParamCase(params).fingerprint
    assert reordered.fingerprint == metalab.fingerprint(params)
    assert reordered == ParamCase(params)


# --------------------------------------------------------------------------------------
# A 10**12-case grid indexes by arithmetic, never materialising the product.
# --------------------------------------------------------------------------------------


def _huge_grid() -> GridSource:
    return metalab.grid(**{f"d{position:02}": list(range(10)) for position in range(12)})


def _digits_case(number: int) -> dict[str, int]:
    return {f"d{position:02}": int(digit) for position, digit in enumerate(f"{number:012}")}


def test_huge_grid_len_is_ten_to_the_twelfth() -> None:
    assert len(_huge_grid()) == 10**12


def test_huge_grid_last_case_is_all_nines() -> None:
    case = _huge_grid()[10**12 - 1]
    assert case == _digits_case(999_999_999_999)
    assert case.index == 10**12 - 1


def test_huge_grid_case_holds_the_decimal_digits_of_its_index() -> None:
    case = _huge_grid()[123456789012]
    assert case == {
        "d00": 1,
        "d01": 2,
        "d02": 3,
        "d03": 4,
        "d04": 5,
        "d05": 6,
        "d06": 7,
        "d07": 8,
        "d08": 9,
        "d09": 0,
        "d10": 1,
        "d11": 2,
    }
    assert case.index == 123456789012


def test_huge_grid_negative_index_counts_from_the_end() -> None:
    source = _huge_grid()
    assert source[-(10**12)] == _digits_case(0)
    assert source[-1] == _digits_case(999_999_999_999)
    assert source[-2].index == 10**12 - 2


# --------------------------------------------------------------------------------------
# ManualSource.
# --------------------------------------------------------------------------------------


def test_manual_negative_index_counts_from_the_end() -> None:
    source = metalab.manual([{"lr": 0.01}, {"lr": 0.1}, {"lr": 1.0}])
    assert source[-1] == {"lr": 1.0}
    assert source[-1].index == 2
    assert source[-3] == {"lr": 0.01}
    assert source[-3].index == 0


def test_manual_case_tags_are_given_tags_then_manual_index() -> None:
    source = metalab.manual([{"a": 1}, {"a": 2}], tags=["baseline", "v2"])
    assert [case.tags for case in source] == [
        ("baseline", "v2", "manual_0"),
        ("baseline", "v2", "manual_1"),
    ]
    assert source[-1].tags == ("baseline", "v2", "manual_1")


def test_manual_case_tags_without_given_tags_are_manual_index() -> None:
    source = metalab.manual([{"a": 1}, {"a": 2}])
    assert [case.tags for case in source] == [("manual_0",), ("manual_1",)]


def test_manual_source_ignores_later_changes_to_the_input_list() -> None:
    cases = [{"a": 1}, {"a": 2}]
    source = metalab.manual(cases)
    cases.append({"a": 3})
    cases[0] = {"a": 99}
    assert len(source) == 2
    assert list(source) == [{"a": 1}, {"a": 2}]


def test_manual_source_ignores_later_changes_to_the_input_dicts() -> None:
    first = {"a": 1, "nested": [1, 2], "d": {"k": "v"}}
    source = metalab.manual([first])
    first["a"] = 100
    first["extra"] = True
    first["nested"].append(3)
    first["d"]["k"] = "changed"
    assert_case_is(source[0], {"a": 1, "nested": [1, 2], "d": {"k": "v"}})


def test_manual_source_ignores_later_changes_to_the_tags_list() -> None:
    tags = ["baseline"]
    source = metalab.manual([{"a": 1}], tags=tags)
    tags.append("late")
    assert source[0].tags == ("baseline", "manual_0")


@pytest.mark.parametrize(
    "source",
    [
        metalab.grid(x=[[1, 2]], y=[{"k": [0]}]),
        metalab.manual([{"x": [1, 2], "y": {"k": [0]}}]),
        metalab.random(
            {"x": metalab.choice([[1, 2]]), "y": metalab.choice([{"k": [0]}])}, n_trials=1, seed=0
        ),
    ],
    ids=["grid", "manual", "choice"],
)
def test_mutating_a_returned_case_value_does_not_change_the_source(
    source: metalab.ParamSource,
) -> None:
    # An operation that changes a list it was given must not change later cases.
    case = source[0]
    try:
        case["x"].append(3)
        case["y"]["k"].append(1)
    except (AttributeError, TypeError):
        pass  # values handed out frozen are fine too
    assert source[0] == {"x": [1, 2], "y": {"k": [0]}}
    assert source[0].fingerprint == metalab.fingerprint({"x": [1, 2], "y": {"k": [0]}})


# --------------------------------------------------------------------------------------
# ParamCase.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["index", "tags", "_params", "_fingerprint", "params", "new"])
def test_param_case_setting_an_attribute_raises_attribute_error(name: str) -> None:
    case = ParamCase({"a": 1}, index=3, tags=("t",))
    with pytest.raises(AttributeError):
        setattr(case, name, 0)
    assert case == ParamCase({"a": 1}, index=3, tags=("t",))


@pytest.mark.parametrize("name", ["index", "tags", "_params"])
def test_param_case_deleting_an_attribute_raises_attribute_error(name: str) -> None:
    case = ParamCase({"a": 1}, index=3, tags=("t",))
    with pytest.raises(AttributeError):
        delattr(case, name)
    assert (case.index, case.tags, dict(case)) == (3, ("t",), {"a": 1})


def test_param_case_has_no_item_assignment_or_deletion() -> None:
    case = ParamCase({"a": 1})
    with pytest.raises(TypeError):
        case["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        del case["a"]  # type: ignore[attr-defined]
    assert not hasattr(case, "__setitem__")
    assert dict(case) == {"a": 1}


def test_param_case_params_view_is_read_only() -> None:
    case = ParamCase({"a": 1})
    with pytest.raises(TypeError):
        case.params["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        case.params["b"] = 2  # type: ignore[index]
    assert case.params == {"a": 1}


def test_param_case_ignores_later_changes_to_its_input_dict() -> None:
    params = {"a": 1}
    case = ParamCase(params)
    params["a"] = 2
    assert case == {"a": 1}


def test_param_case_equals_plain_dict_with_same_params_either_way() -> None:
    case = ParamCase({"lr": 0.1, "batch": 32}, index=7, tags=("x",))
    plain = {"batch": 32, "lr": 0.1}
    assert case == plain
    assert plain == case  # dict.__eq__ defers to ParamCase.__eq__
    assert case != {"batch": 32, "lr": 0.2}
    assert case != {"batch": 32}
    assert case != {"batch": 32, "lr": 0.1, "extra": None}


def test_param_case_equality_with_another_case_includes_index_and_tags() -> None:
    case = ParamCase({"a": 1}, index=1, tags=("t",))
    assert case == ParamCase({"a": 1}, index=1, tags=("t",))
    assert case != ParamCase({"a": 1}, index=2, tags=("t",))
    assert case != ParamCase({"a": 1}, index=1, tags=())


@PROPERTY
@given(
    params=sts.param_dicts,
    index=st.integers(0, 10**12),
    tags=st.lists(st.text(max_size=5), max_size=3).map(tuple),
)
def test_param_case_pickle_round_trip_is_equal(params: dict, index: int, tags: tuple) -> None:
    case = ParamCase(params, index=index, tags=tags)
    restored = pickle.loads(pickle.dumps(case))
    assert type(restored) is ParamCase
    assert restored == case
    assert (restored.index, restored.tags) == (index, tags)
    assert restored.fingerprint == case.fingerprint


def test_param_case_fingerprint_ignores_index_and_tags() -> None:
    assert (
        ParamCase({"a": 1}, index=0, tags=()).fingerprint
        == ParamCase({"a": 1}, index=5, tags=("t",)).fingerprint
    )


def test_param_case_fingerprint_distinguishes_int_float_and_bool() -> None:
    prints = {ParamCase({"a": value}).fingerprint for value in (1, 1.0, True)}
    assert len(prints) == 3


# --------------------------------------------------------------------------------------
# Bad input: the right exception type, and a message naming the offending value.
# --------------------------------------------------------------------------------------


def test_grid_empty_value_list_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match=r"grid\(lr=\[\]\)"):
        metalab.grid(lr=[], batch=[1])


@pytest.mark.parametrize("values", ["abc", 5, None, {"a": 1}, {1, 2}])
def test_grid_non_list_values_are_rejected(values: Any) -> None:
    with pytest.raises(InvalidTypeError) as info:
        metalab.grid(lr=values)
    assert f"lr={values!r}" in str(info.value)


def test_grid_manifest_with_non_str_key_is_rejected() -> None:
    with pytest.raises(InvalidTypeError) as info:
        GridSource.from_manifest_dict({"type": "GridSource", "spec": {7: [1, 2]}})
    assert "7" in str(info.value)


def test_manual_case_with_non_str_key_is_rejected() -> None:
    with pytest.raises(InvalidTypeError) as info:
        metalab.manual([{"a": 1}, {("t", 1): 2}])
    assert "('t', 1)" in str(info.value)


@pytest.mark.parametrize("value", [object(), 1j, b"raw", {1, 2}, [1, object()]])
def test_grid_unencodable_value_is_rejected(value: Any) -> None:
    bad = value[1] if isinstance(value, list) else value
    with pytest.raises(InvalidTypeError) as info:
        metalab.grid(x=[0, value])
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("value", [object(), 1j])
def test_manual_unencodable_value_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidTypeError) as info:
        metalab.manual([{"x": value}])
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("value", [object(), 1j])
def test_choice_unencodable_option_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidTypeError) as info:
        metalab.choice([1, value])
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    "factory",
    [metalab.uniform, metalab.loguniform, metalab.randint, metalab.loguniform_int],
    ids=["uniform", "loguniform", "randint", "loguniform_int"],
)
@pytest.mark.parametrize(("low", "high"), [(5, 5), (9, 3)], ids=["equal", "swapped"])
def test_distribution_low_not_below_high_is_rejected(factory: Any, low: int, high: int) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        factory(low, high)
    message = str(info.value)
    assert f"low={low}" in message
    assert f"high={high}" in message


@pytest.mark.parametrize(
    ("factory", "low"),
    [
        (metalab.loguniform, 0.0),
        (metalab.loguniform, -1.5),
        (metalab.loguniform_int, 0),
        (metalab.loguniform_int, -3),
    ],
)
def test_log_scale_distribution_low_not_positive_is_rejected(factory: Any, low: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        factory(low, 10)
    assert f"low={low!r}" in str(info.value)


def test_choice_empty_options_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match=r"choice\(options=\[\]\)"):
        metalab.choice([])


@pytest.mark.parametrize("n_trials", [-1, -(10**9)])
def test_random_negative_n_trials_is_rejected(n_trials: int) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        metalab.random({"x": metalab.uniform(0, 1)}, n_trials=n_trials, seed=0)
    assert f"n_trials={n_trials}" in str(info.value)


@pytest.mark.parametrize("dist", [0.5, "uniform", [0, 1], None, {"type": "Uniform"}])
def test_random_space_with_non_distribution_is_rejected(dist: Any) -> None:
    with pytest.raises(InvalidTypeError) as info:
        metalab.random({"ok": metalab.uniform(0, 1), "lr": dist}, n_trials=1, seed=0)
    message = str(info.value)
    assert "'lr'" in message
    assert repr(dist) in message


SOURCES_FOR_INDEXING = {
    "grid": lambda: metalab.grid(a=[1, 2], b=["x", "y", "z"]),
    "random": lambda: metalab.random({"x": metalab.uniform(0, 1)}, n_trials=6, seed=1),
    "manual": lambda: metalab.manual([{"a": i} for i in range(6)]),
    "empty_random": lambda: metalab.random({"x": metalab.uniform(0, 1)}, n_trials=0, seed=1),
    "empty_manual": lambda: metalab.manual([]),
}


@pytest.mark.parametrize("kind", sorted(SOURCES_FOR_INDEXING))
@pytest.mark.parametrize("offset", [0, 1, 10**15], ids=["just_past", "one_more", "far"])
def test_positive_index_out_of_range_raises_case_index_error(kind: str, offset: int) -> None:
    source = SOURCES_FOR_INDEXING[kind]()
    index = len(source) + offset
    with pytest.raises(CaseIndexError) as info:
        source[index]
    assert isinstance(info.value, IndexError)
    assert str(index) in str(info.value)


@pytest.mark.parametrize("kind", sorted(SOURCES_FOR_INDEXING))
@pytest.mark.parametrize("offset", [1, 2, 10**15], ids=["just_past", "one_more", "far"])
def test_negative_index_out_of_range_raises_case_index_error(kind: str, offset: int) -> None:
    source = SOURCES_FOR_INDEXING[kind]()
    index = -len(source) - offset
    with pytest.raises(CaseIndexError) as info:
        source[index]
    assert str(index) in str(info.value)


@pytest.mark.parametrize("kind", ["grid", "random", "manual"])
@pytest.mark.parametrize("index", [1.0, "0", None, True, slice(0, 2), np.int64(1)])
def test_non_int_index_raises_invalid_type_error(kind: str, index: Any) -> None:
    source = SOURCES_FOR_INDEXING[kind]()
    with pytest.raises(InvalidTypeError) as info:
        source[index]
    assert repr(index) in str(info.value)


@pytest.mark.parametrize("manifest", [{"type": "NoSuchSource"}, {"spec": {}}, "GridSource"])
def test_source_from_manifest_unknown_type_lists_known_types(manifest: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        metalab.source_from_manifest(manifest)
    message = str(info.value)
    if isinstance(manifest, dict) and "type" in manifest:
        assert repr(manifest["type"]) in message
    for known in ("GridSource", "ManualSource", "RandomSource"):
        assert known in message


def test_random_manifest_with_unknown_distribution_type_is_rejected() -> None:
    manifest = {
        "type": "RandomSource",
        "space": {"lr": {"type": "NoSuchDistribution", "low": 0, "high": 1}},
        "n_trials": 1,
        "seed": 0,
    }
    with pytest.raises(InvalidArgumentError) as info:
        metalab.source_from_manifest(manifest)
    message = str(info.value)
    assert "'NoSuchDistribution'" in message
    assert "'lr'" in message
    assert "Uniform" in message  # lists the known ones


# --------------------------------------------------------------------------------------
# Custom distributions.
# --------------------------------------------------------------------------------------


@metalab.register_distribution
class BiasedCoinForTests:
    """A user distribution: True with probability ``p``."""

    def __init__(self, p: float) -> None:
        self.p = p

    def sample(self, rng: random.Random) -> bool:
        return rng.random() < self.p

    def to_manifest_dict(self) -> dict[str, Any]:
        return {"type": "BiasedCoinForTests", "p": self.p}

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> BiasedCoinForTests:
        return cls(p=manifest["p"])


def test_custom_distribution_is_a_distribution() -> None:
    assert isinstance(BiasedCoinForTests(0.5), metalab.Distribution)


def test_custom_distribution_draws_from_the_per_index_generator() -> None:
    seed, p = 9, 0.3
    source = metalab.random({"flip": BiasedCoinForTests(p)}, n_trials=50, seed=seed)
    expected = [random.Random(seed * 1_000_000_007 + i).random() < p for i in range(50)]
    assert [case["flip"] for case in source] == expected
    assert True in expected
    assert False in expected


def test_custom_distribution_round_trips_through_json_manifest() -> None:
    source = metalab.random(
        {"flip": BiasedCoinForTests(0.7), "x": metalab.uniform(0, 1)}, n_trials=20, seed=4
    )
    manifest = json.loads(json.dumps(source.to_manifest_dict()))
    assert manifest["space"]["flip"] == {"type": "BiasedCoinForTests", "p": 0.7}
    assert_same_cases(list(metalab.source_from_manifest(manifest)), list(source))


@pytest.mark.parametrize(
    "missing", ["sample", "to_manifest_dict", "from_manifest_dict"], ids=lambda m: f"no_{m}"
)
def test_register_distribution_missing_a_method_is_rejected(missing: str) -> None:
    methods = {
        "sample": lambda self, rng: 0,
        "to_manifest_dict": lambda self: {"type": "Incomplete"},
        "from_manifest_dict": classmethod(lambda cls, manifest: cls()),
    }
    del methods[missing]
    incomplete = type("Incomplete", (), methods)
    with pytest.raises(InvalidTypeError) as info:
        metalab.register_distribution(incomplete)
    message = str(info.value)
    assert "Incomplete" in message
    assert missing in message


# --------------------------------------------------------------------------------------
# NumPy scalars become plain Python values.
# --------------------------------------------------------------------------------------

NUMPY_SCALARS = [
    (np.int64(3), 3),
    (np.int32(-7), -7),
    (np.uint8(200), 200),
    (np.float64(0.1), 0.1),
    (np.float32(0.25), 0.25),
    (np.bool_(True), True),
    (np.bool_(False), False),
]

SOURCE_BUILDERS = {
    "grid": lambda value: metalab.grid(x=[value]),
    "manual": lambda value: metalab.manual([{"x": value}]),
    "choice": lambda value: metalab.random({"x": metalab.choice([value])}, n_trials=1, seed=0),
    "grid_nested": lambda value: metalab.grid(x=[[value]]),
    "manual_nested": lambda value: metalab.manual([{"x": {"k": value}}]),
}


def _unwrap(kind: str, value: Any) -> Any:
    if kind == "grid_nested":
        return value[0]
    if kind == "manual_nested":
        return value["k"]
    return value


@pytest.mark.parametrize("kind", sorted(SOURCE_BUILDERS))
@pytest.mark.parametrize(
    ("numpy_value", "python_value"), NUMPY_SCALARS, ids=[type(n).__name__ for n, _ in NUMPY_SCALARS]
)
def test_numpy_scalar_values_come_out_as_plain_python_values(
    kind: str, numpy_value: Any, python_value: Any
) -> None:
    case = SOURCE_BUILDERS[kind](numpy_value)[0]
    value = _unwrap(kind, case["x"])
    assert type(value) is type(python_value)
    assert value == python_value


@pytest.mark.parametrize("kind", sorted(SOURCE_BUILDERS))
@pytest.mark.parametrize(
    ("numpy_value", "python_value"), NUMPY_SCALARS, ids=[type(n).__name__ for n, _ in NUMPY_SCALARS]
)
def test_numpy_scalar_case_fingerprint_equals_python_value_fingerprint(
    kind: str, numpy_value: Any, python_value: Any
) -> None:
    from_numpy = SOURCE_BUILDERS[kind](numpy_value)[0]
    from_python = SOURCE_BUILDERS[kind](python_value)[0]
    assert from_numpy.fingerprint == from_python.fingerprint
    assert from_numpy == from_python


def test_numpy_scalar_grid_manifest_is_json_serialisable() -> None:
    source = metalab.grid(x=[np.int64(1), np.float64(2.5), np.bool_(False)])
    manifest = json.loads(json.dumps(source.to_manifest_dict()))
    assert manifest["spec"] == {"x": [1, 2.5, False]}


def test_random_space_with_a_distribution_class_instead_of_instance_is_rejected():
    with pytest.raises(InvalidTypeError, match="Uniform"):
        metalab.random({"x": metalab.Uniform}, n_trials=1, seed=0)


def test_custom_distribution_numpy_draws_come_out_as_python_floats():
    class NumpyDraw:
        def sample(self, rng: random.Random) -> Any:
            return np.float64(rng.random())

        def to_manifest_dict(self) -> dict[str, Any]:
            return {"type": "NumpyDraw"}

    value = metalab.random({"x": NumpyDraw()}, n_trials=1, seed=0)[0]["x"]
    assert type(value) is float


def test_incomplete_distribution_manifest_names_the_missing_field():
    manifest = {"type": "RandomSource", "n_trials": 1, "seed": 0}
    manifest["space"] = {"x": {"type": "Uniform", "low": 0}}
    with pytest.raises(InvalidArgumentError, match="'high'"):
        metalab.source_from_manifest(manifest)


def test_uniform_range_that_overflows_is_rejected():
    with pytest.raises(InvalidArgumentError, match="overflows"):
        metalab.uniform(-1.7e308, 1.7e308)


def test_registering_a_second_class_under_a_builtin_name_is_rejected():
    class Choice:
        def sample(self, rng: random.Random) -> int:
            return 0

        def to_manifest_dict(self) -> dict[str, Any]:
            return {"type": "Choice"}

        @classmethod
        def from_manifest_dict(cls, manifest: dict[str, Any]) -> Choice:
            return cls()

    with pytest.raises(InvalidArgumentError, match="rename the class"):
        metalab.register_distribution(Choice)
    assert metalab.choice([1]).to_manifest_dict()["options"] == [1]


def test_a_non_int_bound_without_a_range_reads_cleanly():
    # No range to state: the message must not read "must be an int , got float".
    with pytest.raises(InvalidTypeError, match=r"randint\(low=1\.5\): must be an int, got float\."):
        metalab.randint(1.5, 3)
