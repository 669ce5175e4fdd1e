"""The canonical encoding, fingerprints and run IDs."""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metalab.errors import FingerprintError
from metalab.fingerprint import (
    RUN_ID_HEX_DIGITS,
    canonical,
    fingerprint,
    run_id,
    run_id_function,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, b"null"),
        (True, b"true"),
        (1, b"1"),
        (1.0, b"1.0"),
        (-0.0, b"-0.0"),
        (1e16, b"1e+16"),
        (0.1, b"0.1"),
        (2**70, b"1180591620717411303424"),
        ("é", b'"\\u00e9"'),
        ([1, (2, 3)], b"[1,[2,3]]"),
        ({"b": 1, "a": 2}, b'{"a":2,"b":1}'),
        ({"$x": 1, "x": 2}, b'{"$$x":1,"x":2}'),
        (float("nan"), b'{"$float":"nan"}'),
        (float("inf"), b'{"$float":"inf"}'),
        (float("-inf"), b'{"$float":"-inf"}'),
        ({2, 1}, b'{"$set":[1,2]}'),
        (b"\x00\xff", b'{"$bytes":"00ff"}'),
    ],
)
def test_canonical_encoding_rules(value, text):
    assert canonical(value) == text


def test_fingerprint_is_sha256_of_canonical_text():
    # Literal digest of b'{"lr":0.1,"n":3}', computed with hashlib: pins the whole scheme.
    assert fingerprint({"n": 3, "lr": 0.1}) == hashlib.sha256(b'{"lr":0.1,"n":3}').hexdigest()
    assert fingerprint({"n": 3, "lr": 0.1}) == (
        "470853b65698754ca2396b7e89b6c485ddd34584b48f0651c29931b48699a304"
    )


def test_one_one_point_zero_and_true_differ():
    assert len({fingerprint(1), fingerprint(1.0), fingerprint(True), fingerprint("1")}) == 4


def test_user_dollar_keys_cannot_forge_tagged_forms():
    assert fingerprint({"$float": "nan"}) != fingerprint(float("nan"))
    assert fingerprint({"$bytes": "00"}) != fingerprint(b"\x00")


def test_numpy_scalars_encode_as_python_values():
    assert canonical(np.float64(0.5)) == canonical(0.5)
    assert canonical(np.int64(3)) == canonical(3)
    assert canonical(np.bool_(True)) == canonical(True)
    assert canonical(np.float32(0.1)) == canonical(float(np.float32(0.1)))
    assert canonical({"x": [np.int32(1)]}) == b'{"x":[1]}'


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (object(), "object"),
        ({1: "a"}, "key 1"),
        ({"a": [1, {"b": object()}]}, "value['a'][1]['b']"),
        (np.zeros(3), "ndarray"),
    ],
)
def test_unencodable_values_name_where_and_fix(value, shown):
    with pytest.raises(FingerprintError) as info:
        canonical(value)
    assert shown in str(info.value)
    assert isinstance(info.value, TypeError)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=5), json_like, max_size=6), st.randoms())
@settings(max_examples=200, deadline=None)
def test_fingerprint_is_independent_of_key_order(mapping, rng):
    items = list(mapping.items())
    rng.shuffle(items)
    assert fingerprint(OrderedDict(items)) == fingerprint(mapping)


@given(json_like)
@settings(max_examples=200, deadline=None)
def test_canonical_is_ascii_and_deterministic(value):
    text = canonical(value)
    assert text.isascii()
    assert canonical(value) == text


@given(st.floats(), st.floats())
def test_distinct_floats_have_distinct_encodings(a, b):
    same_value = a == b or (math.isnan(a) and math.isnan(b))
    if same_value and math.copysign(1, a) == math.copysign(1, b):
        assert canonical(a) == canonical(b)
    else:
        assert canonical(a) != canonical(b)


def test_run_id_golden_value_and_length():
    rid = run_id(experiment="pi_mc", version="0.1", context="c" * 64, params="p" * 64, seeds="s")
    identity = (
        b'{"context":"'
        + b"c" * 64
        + b'","experiment":"pi_mc","params":"'
        + b"p" * 64
        + b'","scheme":"metalab.run_id/1","seeds":"s","version":"0.1"}'
    )
    assert rid == hashlib.sha256(identity).hexdigest()[:RUN_ID_HEX_DIGITS]
    assert rid == "6b2b07b3f8809d750a26a97ff006442a"


def test_run_id_changes_with_every_component():
    base = dict(experiment="e", version="1", context="c", params="p", seeds="s")
    ids = {run_id(**base)}
    for key in base:
        ids.add(run_id(**{**base, key: base[key] + "x"}))
    assert len(ids) == 1 + len(base)


def test_run_id_rejects_non_str_component():
    with pytest.raises(FingerprintError, match="version=1"):
        run_id(experiment="e", version=1, context="c", params="p", seeds="s")  # type: ignore[arg-type]


@given(st.text(), st.text(), st.text(), st.text(), st.text())
@settings(max_examples=200, deadline=None)
def test_bound_run_id_function_equals_run_id(experiment, version, context, params, seeds):
    bound = run_id_function(experiment=experiment, version=version, context=context)
    expected = run_id(
        experiment=experiment, version=version, context=context, params=params, seeds=seeds
    )
    assert bound(params, seeds) == expected
