"""Capture, the codec registry, decode_artifact and capture_output."""

from __future__ import annotations

import hashlib
import math
import re
import sys
import threading
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from metalab.capture import (
    Capture,
    CaptureResult,
    _serializers,
    capture_output,
    decode_artifact,
    decode_steps,
    register_codec,
)
from metalab.errors import InvalidArgumentError, InvalidTypeError, MissingDependencyError
from metalab.record import ArtifactRef


class FakeSink:
    """An in-memory artifact sink: records each call and writes the bytes under a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[tuple[str, str, bytes | Path, str]] = []

    def __call__(self, name: str, filename: str, data: bytes | Path, kind: str) -> ArtifactRef:
        self.calls.append((name, filename, data, kind))
        payload = data if isinstance(data, bytes) else data.read_bytes()
        (self.folder / filename).write_bytes(payload)
        return ArtifactRef(
            name=name,
            kind=kind,
            path=f"runs/r1/{filename}",
            size=len(payload),
            sha256=hashlib.sha256(payload).hexdigest(),
        )

    def stored(self, ref: ArtifactRef) -> Path:
        return self.folder / ref.path.rsplit("/", 1)[1]


@pytest.fixture
def sink(tmp_path: Path) -> FakeSink:
    folder = tmp_path / "store"
    folder.mkdir()
    return FakeSink(folder)


@pytest.fixture
def capture(sink: FakeSink) -> Capture:
    return Capture("r1", sink)


@pytest.fixture
def fresh_registry(monkeypatch):
    """Codecs registered by a test vanish after it."""
    monkeypatch.setattr(_serializers, "_REGISTERED", {})


def _round_trip(sink: FakeSink, ref: ArtifactRef, **flags):
    return decode_artifact(ref.kind, sink.stored(ref), **flags)


# --- constructor -------------------------------------------------------------------


def test_capture_refuses_a_run_id_that_is_not_a_str(sink):
    with pytest.raises(InvalidTypeError, match=r"Capture\(run_id=7\): run_id must be a str"):
        Capture(7, sink)


def test_capture_refuses_a_sink_that_is_not_callable():
    with pytest.raises(InvalidTypeError, match=r"Capture\(sink='store'\): sink must be callable"):
        Capture("r1", "store")


# --- metrics -------------------------------------------------------------------------


def test_final_value_is_the_last_one_given(capture):
    capture.metric("loss", 0.5)
    capture.metric("loss", 0.25)
    assert capture.finish().metrics == {"loss": 0.25}


def test_final_value_follows_call_order_across_step_and_plain_calls(capture):
    capture.metric("a", 1.0)
    capture.metric("a", 2.0, step=0)
    capture.metric("b", 3.0, step=0)
    capture.metric("b", 4.0)
    assert capture.finish().metrics == {"a": 2.0, "b": 4.0}


def test_metrics_records_every_entry(capture):
    capture.metrics({"precision": 0.92, "recall": 0.89})
    assert capture.finish().metrics == {"precision": 0.92, "recall": 0.89}


def test_metrics_with_a_step_adds_to_each_series(capture):
    capture.metrics({"a": 1.0, "b": 2.0}, step=3)
    series = decode_steps(capture.finish().steps)
    assert {name: (list(s), list(v)) for name, (s, v) in series.items()} == {
        "a": ([3], [1.0]),
        "b": ([3], [2.0]),
    }


def test_nonfinite_final_values_are_kept_and_flagged(capture):
    capture.metrics({"nan": float("nan"), "inf": float("inf"), "fine": 1.0})
    capture.metric("recovered", float("nan"))
    capture.metric("recovered", 0.0)
    result = capture.finish()
    assert math.isnan(result.metrics["nan"])
    assert result.metrics["inf"] == math.inf
    assert result.nonfinite_metrics == ["nan", "inf"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (np.array(2.5), 2.5),
    ],
    ids=["float32", "float64", "int64", "bool_", "0-d array"],
)
def test_numpy_scalars_become_the_equal_python_number(capture, value, expected):
    capture.metric("m", value)
    final = capture.finish().metrics["m"]
    assert (final, type(final)) == (expected, type(expected))


def test_bool_values_are_kept_as_bool(capture):
    capture.metric("converged", True)
    assert capture.finish().metrics["converged"] is True


def test_str_value_is_refused_naming_the_metric_and_value(capture):
    with pytest.raises(InvalidTypeError, match=r"Capture.metric\('loss', 'high'\): .* got str"):
        capture.metric("loss", "high")


@pytest.mark.parametrize("value", [None, [1.0], 1 + 2j, Decimal("1.5"), np.str_("x")], ids=repr)
def test_values_of_other_types_are_refused(capture, value):
    with pytest.raises(InvalidTypeError, match="must be an int, float, bool or NumPy scalar"):
        capture.metric("m", value)


def test_array_value_is_refused_with_a_hint_to_reduce_or_store_it(capture):
    with pytest.raises(InvalidTypeError, match=r"shape \(3,\); log a scalar .*capture.artifact"):
        capture.metric("m", np.zeros(3), step=0)


@pytest.mark.parametrize(
    ("name", "error"), [("", InvalidArgumentError), (3, InvalidTypeError), ([1], InvalidTypeError)]
)
@pytest.mark.parametrize("step", [None, 0])
def test_metric_names_must_be_non_empty_str(capture, name, error, step):
    with pytest.raises(error, match="metric name must"):
        capture.metric(name, 1.0, step=step)


@pytest.mark.parametrize(
    ("step", "error", "message"),
    [
        (-1, InvalidArgumentError, r"step must be in \[0, 2\*\*63\)"),
        (2**63, InvalidArgumentError, r"step must be in \[0, 2\*\*63\)"),
        (1.0, InvalidTypeError, "step must be an int >= 0"),
        (True, InvalidTypeError, "step must be an int >= 0"),
        ("3", InvalidTypeError, "step must be an int >= 0"),
    ],
)
def test_bad_steps_are_refused_naming_the_metric(capture, step, error, message):
    with pytest.raises(error, match=message) as caught:
        capture.metric("loss", 1.0, step=step)
    assert str(caught.value).startswith(f"Capture.metric('loss', step={step!r})")


def test_numpy_integer_step_is_accepted(capture):
    capture.metric("loss", 1.0, step=np.int64(4))
    assert list(decode_steps(capture.finish().steps)["loss"][0]) == [4]


def test_int_too_large_for_a_float_series_is_refused(capture):
    with pytest.raises(InvalidArgumentError, match="too large for a float64 series"):
        capture.metric("count", 10**400, step=0)


def test_metrics_refuses_a_non_mapping(capture):
    with pytest.raises(InvalidTypeError, match=r"values must be a dict .* got list"):
        capture.metrics([("a", 1.0)])


def test_metrics_with_a_bad_entry_records_nothing(capture):
    with pytest.raises(InvalidTypeError):
        capture.metrics({"good": 1.0, "bad": "x"})
    assert capture.finish().metrics == {}


def test_step_values_are_buffered_not_sent_to_the_sink(capture, sink):
    for step in range(1000):
        capture.metric("loss", 1.0 / (step + 1), step=step)
    assert sink.calls == []


def test_finish_encodes_every_step_in_call_order(capture):
    for step, value in [(0, 0.5), (1, 0.25), (1, 0.2), (0, float("nan"))]:
        capture.metric("loss", value, step=step)
    steps, values = decode_steps(capture.finish().steps)["loss"]
    assert list(steps) == [0, 1, 1, 0]
    assert values.tobytes() == np.array([0.5, 0.25, 0.2, np.nan]).tobytes()


def test_steps_is_none_without_step_metrics(capture):
    capture.metric("accuracy", 0.9)
    assert capture.finish().steps is None


# --- artifacts: kinds chosen by type --------------------------------------------------


def test_numpy_array_is_stored_as_npy_and_decodes_equal(capture, sink):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    ref = capture.artifact("predictions", array)
    assert (ref.kind, sink.calls[0][1]) == ("numpy", "predictions.npy")
    decoded = _round_trip(sink, ref)
    assert decoded.dtype == array.dtype
    assert np.array_equal(decoded, array)


def test_numpy_object_array_is_refused_with_a_pickle_hint(capture):
    with pytest.raises(InvalidTypeError, match=r"kind 'numpy' cannot encode .*kind='pickle'"):
        capture.artifact("objects", np.array([{}, None], dtype=object))


@pytest.mark.parametrize("data", [b"\x00\xffraw", bytearray(b"grow")], ids=["bytes", "bytearray"])
def test_bytes_are_stored_as_bin(capture, sink, data):
    ref = capture.artifact("blob", data)
    assert (ref.kind, sink.calls[0][1]) == ("bytes", "blob.bin")
    assert _round_trip(sink, ref) == bytes(data)


def test_path_to_a_file_is_copied_as_is_keeping_its_suffix(capture, sink, tmp_path):
    source = tmp_path / "table.csv"
    source.write_text("a,b\n1,2\n")
    ref = capture.artifact("table", source)
    assert ref.kind == "file"
    assert sink.calls[0][1:3] == ("table.csv", source)
    assert _round_trip(sink, ref).read_text() == "a,b\n1,2\n"


def test_name_that_already_ends_with_the_extension_does_not_get_it_twice(capture, sink, tmp_path):
    source = tmp_path / "weights.pt"
    source.write_bytes(b"w")
    capture.artifact("model.pt", source)
    capture.artifact("notes.txt", "text")
    assert [call[1] for call in sink.calls] == ["model.pt", "notes.txt"]


def test_any_pathlike_to_a_file_is_a_file_artifact(capture, sink, tmp_path):
    source = tmp_path / "weights"
    source.write_bytes(b"w")

    class Location:
        def __fspath__(self) -> str:
            return str(source)

    capture.artifact("weights", Location())
    assert sink.calls[0][1:] == ("weights", source, "file")


@pytest.mark.parametrize("target", ["missing.txt", "."], ids=["missing", "folder"])
def test_path_that_is_not_an_existing_file_is_refused(capture, tmp_path, target):
    with pytest.raises(InvalidArgumentError, match=r"Capture.artifact\('f'\): .* not an existing"):
        capture.artifact("f", tmp_path / target)


def test_str_is_stored_as_utf8_text_and_keeps_line_endings(capture, sink):
    text = "π ≈ 3.14\r\nsecond line\n"
    ref = capture.artifact("notes", text)
    assert (ref.kind, sink.calls[0][1]) == ("text", "notes.txt")
    assert sink.calls[0][2] == text.encode("utf-8")
    assert _round_trip(sink, ref) == text


def test_json_value_is_stored_with_sorted_keys_and_indent_2(capture, sink):
    ref = capture.artifact("config", {"model": "resnet", "layers": 50})
    assert (ref.kind, sink.calls[0][1]) == ("json", "config.json")
    assert sink.calls[0][2] == b'{\n  "layers": 50,\n  "model": "resnet"\n}\n'


def test_json_round_trip_keeps_nan_and_turns_tuples_into_lists(capture, sink):
    ref = capture.artifact("values", {"x": [1, (2, 3)], "bad": float("nan"), "none": None})
    decoded = _round_trip(sink, ref)
    assert decoded["x"] == [1, [2, 3]]
    assert math.isnan(decoded["bad"])
    assert decoded["none"] is None


def test_json_value_holding_an_unencodable_item_is_refused_with_a_pickle_hint(capture):
    with pytest.raises(InvalidTypeError, match=r"kind 'json' cannot encode dict .*kind='pickle'"):
        capture.artifact("config", {"tags": {"a", "b"}})


def test_object_of_no_known_kind_is_refused_suggesting_pickle(capture):
    with pytest.raises(InvalidTypeError, match=r"no artifact kind takes object .*kind='pickle'"):
        capture.artifact("thing", object())


# --- artifacts: explicit kinds and pickle ---------------------------------------------


def test_pickle_is_used_only_when_asked_and_round_trips_with_allow_pickle(capture, sink):
    value = {"when": Decimal("1.5"), "set": {1, 2}}
    ref = capture.artifact("state", value, kind="pickle")
    assert (ref.kind, sink.calls[0][1]) == ("pickle", "state.pkl")
    assert _round_trip(sink, ref, allow_pickle=True) == value


def test_pickle_is_written_with_protocol_5(capture, sink):
    capture.artifact("state", [1], kind="pickle")
    assert sink.calls[0][2][:2] == b"\x80\x05"


def test_decode_artifact_refuses_pickle_without_allow_pickle(capture, sink):
    ref = capture.artifact("state", [1], kind="pickle")
    with pytest.raises(InvalidArgumentError, match=r"runs whatever code .* allow_pickle=True"):
        _round_trip(sink, ref)


def test_unpicklable_object_is_refused(capture):
    lock = threading.Lock()
    with pytest.raises(InvalidTypeError, match=r"kind 'pickle' cannot encode .* make it picklable"):
        capture.artifact("lock", lock, kind="pickle")


def test_unknown_kind_is_refused_listing_the_known_kinds(capture):
    with pytest.raises(InvalidArgumentError, match=r"unknown artifact kind 'yaml'; known kinds: b"):
        capture.artifact("config", {}, kind="yaml")


def test_explicit_kind_that_does_not_take_the_object_is_refused(capture):
    with pytest.raises(InvalidTypeError, match=r"kind 'numpy' does not take list"):
        capture.artifact("values", [1, 2], kind="numpy")


def test_explicit_json_kind_stores_a_str_as_json(capture, sink):
    ref = capture.artifact("greeting", "hi", kind="json")
    assert sink.calls[0][1:3] == ("greeting.json", b'"hi"\n')
    assert _round_trip(sink, ref) == "hi"


# --- artifacts: DataFrame and figure ---------------------------------------------------


def test_dataframe_is_stored_as_parquet_and_decodes_equal(capture, sink):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"lr": [0.1, 0.01], "loss": [0.5, 0.25]})
    ref = capture.artifact("table", frame)
    assert (ref.kind, sink.calls[0][1]) == ("parquet", "table.parquet")
    pd.testing.assert_frame_equal(_round_trip(sink, ref), frame)


def test_dataframe_without_pyarrow_suggests_installing_it_or_pickle(capture, monkeypatch):
    pd = pytest.importorskip("pandas")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    with pytest.raises(MissingDependencyError, match="pip install pyarrow, or pass kind='pickle'"):
        capture.artifact("table", pd.DataFrame({"a": [1]}))


@pytest.fixture
def figure():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def test_figure_is_one_ref_for_the_png_with_its_svg_twin_in_extra(capture, sink, figure):
    ref = capture.figure("curve", figure, dpi=50)
    assert [call[:2] + call[3:] for call in sink.calls] == [
        ("curve", "curve.png", "figure"),
        ("curve", "curve.svg", "figure"),
    ]
    assert (ref.kind, ref.path, ref.extra) == (
        "figure",
        "runs/r1/curve.png",
        {"svg": "runs/r1/curve.svg", "dpi": 50},
    )
    assert capture.finish().artifacts == [ref]


def test_figure_files_are_png_and_svg(capture, sink, figure):
    capture.figure("curve", figure)
    assert sink.calls[0][2].startswith(b"\x89PNG\r\n")
    assert b"<svg" in sink.calls[1][2]


def test_figure_decodes_to_the_png_bytes(capture, sink, figure):
    ref = capture.figure("curve", figure)
    assert _round_trip(sink, ref) == sink.calls[0][2]


def test_same_figure_gives_the_same_svg_bytes_in_every_run(sink, figure):
    first, second = Capture("r1", sink), Capture("r2", sink)
    first.figure("curve", figure)
    second.figure("curve", figure)
    assert sink.calls[1][2] == sink.calls[3][2]


def test_artifact_with_a_figure_stores_it_as_figure_does(capture, sink, figure):
    ref = capture.artifact("curve", figure)
    assert ref.kind == "figure"
    assert [call[1] for call in sink.calls] == ["curve.png", "curve.svg"]


def test_figure_refuses_an_object_that_is_not_a_figure(capture):
    with pytest.raises(InvalidTypeError, match=r"Capture.figure\('curve'\): expected a matplotlib"):
        capture.figure("curve", [1, 2])


def test_figure_refuses_a_dpi_below_1(capture, figure):
    with pytest.raises(InvalidArgumentError, match=r"Capture.figure\(dpi=0\): must be an int >= 1"):
        capture.figure("curve", figure, dpi=0)


# --- artifact names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "the name is empty"),
        ("a/b", "contains '/'"),
        ("a\\b", "contains '/'"),
        ("a\0b", "contains '/'"),
        (".", "starts with '.'"),
        ("..", "starts with '.'"),
        (".hidden", "starts with '.'"),
        ("x" * 201, "has 201 characters, more than 200"),
    ],
    ids=["empty", "slash", "backslash", "nul", "dot", "dotdot", "hidden", "long"],
)
def test_bad_artifact_names_are_refused_naming_the_name_and_fix(capture, name, problem):
    with pytest.raises(InvalidArgumentError) as caught:
        capture.artifact(name, b"x")
    message = str(caught.value)
    assert message.startswith(f"Capture.artifact({name!r})")
    assert problem in message
    assert "Choose a plain name" in message


def test_artifact_name_of_200_characters_is_accepted(capture, sink):
    capture.artifact("x" * 200, b"x")
    assert sink.calls[0][1] == "x" * 200 + ".bin"


def test_artifact_name_that_is_not_a_str_is_refused(capture):
    with pytest.raises(InvalidTypeError, match="the name must be a str, got int"):
        capture.artifact(3, b"x")


def test_same_artifact_name_twice_is_refused(capture):
    capture.artifact("model", b"1")
    with pytest.raises(InvalidArgumentError, match="already has an artifact named 'model'"):
        capture.artifact("model", {"other": "kind"})


def test_names_whose_files_would_collide_are_refused(capture):
    capture.artifact("x", "text")  # stored as x.txt
    with pytest.raises(InvalidArgumentError, match=r"stored as 'x\.txt', which artifact 'x'"):
        capture.artifact("x.txt", "more text")


def test_failed_encoding_leaves_the_name_free(capture):
    with pytest.raises(InvalidTypeError):
        capture.artifact("config", {"s": {1}})
    assert capture.artifact("config", {"s": [1]}).kind == "json"


# --- the codec registry -----------------------------------------------------------------


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


def _encode_point(point: Point) -> tuple[bytes, str]:
    return f"{point.x},{point.y}".encode(), ".pt"


def _decode_point(path: Path) -> Point:
    return Point(*map(int, path.read_text().split(",")))


def test_registered_codec_is_chosen_by_its_matcher_and_decodes(capture, sink, fresh_registry):
    register_codec("point", _encode_point, _decode_point, lambda obj: isinstance(obj, Point))
    ref = capture.artifact("origin", Point(3, 4))
    assert (ref.kind, sink.calls[0][1]) == ("point", "origin.pt")
    decoded = _round_trip(sink, ref)
    assert (decoded.x, decoded.y) == (3, 4)


def test_registered_codec_is_tried_before_the_built_ins(capture, fresh_registry):
    register_codec("pairs", lambda obj: (b"", ".pairs"), bytes, lambda obj: obj == [1, 2])
    assert capture.artifact("p", [1, 2]).kind == "pairs"


def test_registered_codec_without_matcher_needs_its_kind(capture, fresh_registry):
    register_codec("point", _encode_point, _decode_point)
    with pytest.raises(InvalidTypeError, match="no artifact kind takes Point"):
        capture.artifact("origin", Point(3, 4))
    assert capture.artifact("origin", Point(3, 4), kind="point").kind == "point"


def test_registering_a_kind_again_replaces_it(capture, fresh_registry):
    register_codec("point", lambda p: (b"old", ".pt"), _decode_point)
    register_codec("point", _encode_point, _decode_point)
    capture.artifact("origin", Point(1, 2), kind="point")
    assert capture._sink.calls[0][2] == b"1,2"


def test_built_in_kinds_cannot_be_replaced(fresh_registry):
    with pytest.raises(InvalidArgumentError, match="'json' is a built-in kind"):
        register_codec("json", _encode_point, _decode_point)


def test_register_codec_refuses_a_non_callable(fresh_registry):
    with pytest.raises(InvalidTypeError, match=r"decode='read' is not callable"):
        register_codec("point", _encode_point, "read")


def test_register_codec_refuses_an_empty_kind(fresh_registry):
    with pytest.raises(InvalidArgumentError, match="kind must be a non-empty str"):
        register_codec("", _encode_point, _decode_point)


def test_codec_returning_a_bad_result_is_refused(capture, fresh_registry):
    register_codec("broken", lambda obj: ("text", "txt"), _decode_point)
    with pytest.raises(InvalidTypeError, match=r"the 'broken' codec returned \(str, 'txt'\)"):
        capture.artifact("x", 1, kind="broken")


def test_decode_artifact_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(InvalidArgumentError, match="unknown artifact kind 'yaml'"):
        decode_artifact("yaml", tmp_path / "x.yaml")


# --- logs and finishing --------------------------------------------------------------------


def test_log_keeps_lines_with_utc_time_and_level(capture):
    capture.log("started")
    capture.log("slow step", level="warning")
    lines = capture.finish().log_lines
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp + " INFO started", lines[0])
    assert re.fullmatch(stamp + " WARNING slow step", lines[1])


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_log_accepts_each_level(capture, level):
    capture.log("x", level=level)
    assert f" {level.upper()} x" in capture.finish().log_lines[0]


def test_log_refuses_an_unknown_level_listing_the_levels(capture):
    with pytest.raises(
        InvalidArgumentError, match=r"level='fatal'.*'debug', 'info', 'warning', 'error'"
    ):
        capture.log("x", level="fatal")


def test_log_refuses_a_message_that_is_not_a_str(capture):
    with pytest.raises(InvalidTypeError, match=r"Capture.log\(42\): message must be a str"):
        capture.log(42)


def test_finish_returns_everything_captured(capture, sink):
    capture.metric("loss", 0.5, step=0)
    ref = capture.artifact("config", {"a": 1})
    capture.log("done")
    result = capture.finish()
    assert isinstance(result, CaptureResult)
    assert (result.metrics, result.nonfinite_metrics, result.artifacts) == (
        {"loss": 0.5},
        [],
        [ref],
    )
    assert len(result.log_lines) == 1
    assert decode_steps(result.steps)["loss"][1].tolist() == [0.5]


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("metric", ("loss", 1.0)),
        ("metrics", ({"loss": 1.0},)),
        ("artifact", ("x", b"x")),
        ("figure", ("x", None)),
        ("log", ("x",)),
        ("finish", ()),
    ],
)
def test_every_method_refuses_after_finish(capture, method, args):
    capture.finish()
    with pytest.raises(InvalidArgumentError, match=rf"Capture.{method}\(\): capture is closed"):
        getattr(capture, method)(*args)


# --- capture_output -----------------------------------------------------------------------


def test_capture_output_keeps_stdout_and_stderr_apart():
    with capture_output() as out:
        print("to out")
        print("to err", file=sys.stderr)
    assert (out.stdout, out.stderr) == ("to out\n", "to err\n")


def test_capture_output_does_not_echo(capsys):
    with capture_output():
        print("hidden")
    assert capsys.readouterr().out == ""


def test_capture_output_restores_the_streams_afterwards():
    before = (sys.stdout, sys.stderr)
    with capture_output():
        assert sys.stdout is not before[0]
    assert (sys.stdout, sys.stderr) == before


def test_capture_output_restores_the_streams_when_the_block_raises():
    before = sys.stdout
    with pytest.raises(KeyError), capture_output():
        raise KeyError("boom")
    assert sys.stdout is before


def test_two_threads_capturing_at_once_keep_their_output_apart():
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def run(tag: str) -> None:
        with capture_output() as out:
            for i in range(50):
                barrier.wait()  # both threads print each line at the same time
                print(f"{tag}{i}")
        results[tag] = out.stdout

    threads = [threading.Thread(target=run, args=(tag,)) for tag in "ab"]
    before = sys.stdout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {tag: "".join(f"{tag}{i}\n" for i in range(50)) for tag in "ab"}
    assert sys.stdout is before


def test_output_of_a_thread_without_capture_passes_through(capsys):
    printed = threading.Event()

    def other() -> None:
        print("passes")
        printed.set()

    with capture_output() as out:
        thread = threading.Thread(target=other)
        thread.start()
        printed.wait()
        thread.join()
    assert out.stdout == ""
    assert capsys.readouterr().out == "passes\n"


def test_nested_capture_takes_the_output_until_it_ends():
    with capture_output() as outer:
        print("1")
        with capture_output() as inner:
            print("2")
        print("3")
    assert (outer.stdout, inner.stdout) == ("1\n3\n", "2\n")
