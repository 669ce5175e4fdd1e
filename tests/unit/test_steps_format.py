"""The per-step series file: encode_steps and decode_steps."""

from __future__ import annotations

import json
import struct
from array import array

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metalab.capture import decode_steps, encode_steps
from metalab.errors import InvalidArgumentError, InvalidTypeError

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
float64s = st.floats(allow_nan=True, allow_infinity=True)
series_lists = st.lists(st.tuples(int64s, float64s), max_size=20)
series_dicts = st.dictionaries(st.text(max_size=10), series_lists, max_size=5)


def _as_arrays(pairs: list[tuple[int, float]]) -> tuple[array, array]:
    return array("q", [step for step, _ in pairs]), array("d", [value for _, value in pairs])


@given(series_dicts)
def test_round_trip_keeps_every_step_and_value_bit_for_bit(raw):
    series = {name: _as_arrays(pairs) for name, pairs in raw.items()}
    decoded = decode_steps(encode_steps(series))
    assert decoded.keys() == series.keys()
    for name, (steps, values) in series.items():
        assert decoded[name][0] == steps
        assert decoded[name][1].tobytes() == values.tobytes()


def test_nan_payloads_and_infinities_are_preserved_bitwise():
    quiet_nan_with_payload = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    values = array("d", [quiet_nan_with_payload, float("-nan"), float("inf"), float("-inf")])
    data = encode_steps({"x": (array("q", range(4)), values)})
    assert decode_steps(data)["x"][1].tobytes() == values.tobytes()


def test_decoded_series_are_int64_and_float64_arrays():
    steps, values = decode_steps(encode_steps({"loss": ([0, 1], [0.5, 0.25])}))["loss"]
    assert (steps.typecode, values.typecode) == ("q", "d")


def test_layout_matches_the_documented_numpy_recipe():
    data = encode_steps({"b": ([5], [2.0]), "a": ([0, 1, 2], [0.5, 0.25, float("nan")])})
    assert data.startswith(b"MLSTEPS1\n")
    header_end = data.index(b"\n", 9) + 1
    header = json.loads(data[9:header_end])
    assert header == {
        "byteorder": "little",
        "metrics": {"a": {"count": 3, "offset": 0}, "b": {"count": 1, "offset": 48}},
    }
    meta = header["metrics"]["a"]
    at, n = header_end + meta["offset"], meta["count"]
    assert np.frombuffer(data, "<i8", n, at).tolist() == [0, 1, 2]
    assert np.frombuffer(data, "<f8", n, at + 8 * n)[:2].tolist() == [0.5, 0.25]


def test_bytes_do_not_depend_on_insertion_order():
    one = {"a": ([0], [1.0]), "b": ([0], [2.0])}
    assert encode_steps(one) == encode_steps(dict(reversed(one.items())))


def test_header_stays_one_line_when_a_name_holds_a_newline():
    data = encode_steps({"line\nbreak": ([0], [1.0])})
    assert list(decode_steps(data)) == ["line\nbreak"]


def test_empty_series_round_trips():
    steps, values = decode_steps(encode_steps({"none": ([], [])}))["none"]
    assert (len(steps), len(values)) == (0, 0)


def test_a_million_steps_round_trip():
    steps = array("q", range(1_000_000))
    values = array("d", range(1_000_000))
    decoded_steps, decoded_values = decode_steps(encode_steps({"loss": (steps, values)}))["loss"]
    assert decoded_steps == steps
    assert decoded_values == values


def test_encode_refuses_steps_and_values_of_different_lengths():
    with pytest.raises(InvalidArgumentError, match=r"encode_steps\('x'\): 2 steps but 1 values"):
        encode_steps({"x": ([0, 1], [1.0])})


def test_encode_refuses_values_that_are_not_numbers():
    with pytest.raises(InvalidTypeError, match=r"encode_steps\('x'\): values must be"):
        encode_steps({"x": ([0], ["high"])})


def test_decode_refuses_data_without_the_magic():
    with pytest.raises(InvalidArgumentError, match="not a per-step file"):
        decode_steps(b"PK\x03\x04 something else")


def test_decode_refuses_a_damaged_header():
    with pytest.raises(InvalidArgumentError, match="header line is damaged"):
        decode_steps(b"MLSTEPS1\n{not json\n")


def test_decode_refuses_a_file_cut_short():
    data = encode_steps({"loss": ([0, 1], [0.5, 0.25])})
    with pytest.raises(InvalidArgumentError, match="cut short"):
        decode_steps(data[:-1])
