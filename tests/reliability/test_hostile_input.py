"""Hostile and bad input: every case ends in a clear error or a safe result.

Covered: artifact names that are paths, NUL, dots or 10,000 characters (and that
nothing lands outside the store); param and metric names with newlines, quotes, HTML,
emoji, bidirectional overrides, combining marks and terminal escapes (exact round trip
through the store, and `metalab table`/`show` output that keeps its shape); pickles in
a store, which must never run without ``allow_pickle=True``; symbolic links inside a
store that point outside it, for reading and for writing; folders that are not stores;
corrupted manifests; a record line whose CRC fails; params that are lambdas, files,
generators, cycles or ints too large for JSON; huge metric payloads; seeds out of range;
an experiment renamed onto another one's store; run IDs and record paths that try to
leave the store; non-str metric names; NaN params; a manifest with a huge version.

A clear error is a metalab error (``InvalidArgumentError``, ``InvalidTypeError``, ...)
whose message names the offending value and says how to fix it; the tests check both.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import unicodedata
import warnings
import zlib
from pathlib import Path

import pytest

import metalab
from metalab import cli
from metalab.errors import (
    CaseIndexError,
    FingerprintError,
    InvalidArgumentError,
    InvalidTypeError,
    MetalabError,
)
from metalab.record import SUCCESS, ArtifactRef, RunRecord
from metalab.store import FileStore, StoreWarning

# ------------------------------------------------------------------------------ helpers


class TouchOnUnpickle:
    """Pickles as a call to ``Path.touch(marker)``: unpickling it creates the marker.

    A stand-in for a hostile pickle: it proves code ran, and harms nothing.
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@metalab.operation
def artifact_named(params, capture):
    capture.artifact(params["name"], b"payload")


@metalab.operation
def metric_per_param(params, capture):
    # Each param's name is also a metric's name, so both kinds of name are exercised.
    for name in params:
        capture.metric(f"m:{name}", 1.5)


@metalab.operation
def square(params, capture):
    capture.metric("y", params["x"] ** 2)


@metalab.operation
def pickled_model(params, capture):
    capture.artifact("model", TouchOnUnpickle(params["marker"]), kind="pickle")
    capture.artifact("weights", [0.5, 0.25])
    capture.metric("y", 1.0)


@metalab.operation
def data_and_output(params, capture):
    print("hello from the run")
    capture.artifact("data", b"inside the store")


@metalab.operation
def huge_metric(params, capture):
    capture.metric(params["name"], _HUGE[params["name"]]())


_HUGE = {
    "string_50MB": lambda: "x" * 50_000_000,
    "list_1e7": lambda: [0.5] * 10_000_000,
    "int_10e5000": lambda: 10**5000,
}


def experiment(op, cases, name="hostile", version="1"):
    return metalab.Experiment(name, version, {}, op, metalab.manual(cases), metalab.seeds(0))


def snapshot(folder: Path, *, skip: Path | None = None) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed), with each file's size and mtime."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if skip is not None and (path == skip or skip in path.parents):
                continue
            info = path.lstat()
            # A folder's own times change with its entries, which are listed anyway.
            facts = (
                (info.st_mode,) if path.is_dir() else (info.st_mode, info.st_size, info.st_mtime_ns)
            )
            entries[str(path.relative_to(folder))] = facts
    return entries


def call_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def is_control(char: str) -> bool:
    """Whether a terminal would act on ``char`` rather than show it (see cli._printable)."""
    bidi = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in bidi


def escaped(text: str) -> str:
    return "".join(c.encode("unicode_escape").decode() if is_control(c) else c for c in text)


def display_width(text: str) -> int:
    """Terminal columns of ``text``: the CLI's own measure, itself pinned just below."""
    return cli._width(text)


def test_display_width_counts_terminal_columns():
    # Wide CJK and emoji take 2 columns, combining accents and format characters 0.
    cases = {"abc": 3, "模型": 4, "😀": 2, "e\u0301": 1, "a\u200fb": 2, "é": 1}
    assert {text: cli._width(text) for text in cases} == cases


def write_lines(segment: Path, records: list[RunRecord]) -> None:
    """Append records as FileStore writes them: ``<crc32> <json>\\n``."""
    with segment.open("ab") as file:
        for record in records:
            body = record.to_json()
            file.write(b"%08x %s\n" % (zlib.crc32(body), body))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    # Relative paths an attack might use ("../x", "runs/...") resolve inside tmp_path.
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------- artifact names

BAD_ARTIFACT_NAMES = {
    "slash": "sub/model",
    "backslash": "sub\\model",
    "dotdot": "..",
    "dotdot_slash": "../escaped",
    "deep_escape": "../../../../escaped",
    "nul": "model\0.bin",
    "absolute": "/ABSOLUTE/escaped",  # made absolute inside tmp_path below
    "windows_absolute": "C:\\escaped",
    "dot": ".",
    "dots_only": "....",
    "empty": "",
    "hidden": ".bashrc",
    "10000_chars": "n" * 10_000,
}


@pytest.mark.parametrize("key", list(BAD_ARTIFACT_NAMES))
def test_artifact_name_that_could_leave_the_folder_fails_the_run_and_writes_nothing_outside(
    workdir, key
):
    name = BAD_ARTIFACT_NAMES[key]
    if key == "absolute":
        name = str(workdir / "escaped")
    store = workdir / "store"
    # The parent of tmp_path holds the other tests' folders: a write anywhere near shows.
    before = snapshot(workdir.parent, skip=store)
    [run] = metalab.run(experiment(artifact_named, [{"name": name}]), store=store)
    assert snapshot(workdir.parent, skip=store) == before
    # "../../../../escaped" from the store or the working folder reaches further up.
    assert not any((folder / "escaped").exists() for folder in workdir.parents)
    assert run.status == "failed"
    assert run.error["type"] == "InvalidArgumentError"
    message = run.error["message"]
    assert repr(name)[:40] in message  # names the value (long ones shortened)
    assert "Choose a plain name such as 'predictions'" in message
    assert len(message) < 500
    # Only the run's own output folder, if any, exists under artifacts/.
    assert not any(path.name.startswith("escaped") for path in store.rglob("*"))


@pytest.mark.parametrize("name", ["a..b", "模型 😀 e\u0301", "con"])
def test_odd_but_valid_artifact_name_is_stored_inside_the_store_and_loads_back(workdir, name):
    store = workdir / "store"
    [run] = metalab.run(experiment(artifact_named, [{"name": name}]), store=store)
    assert run.status == SUCCESS
    [ref] = run.record.artifacts
    assert (store / ref.path).resolve().parent.parent == (store / "artifacts").resolve()
    assert metalab.load_results(store)[0].artifact(name) == b"payload"


# ------------------------------------------------------------ param and metric names

WEIRD_NAMES = {
    "newline": "new\nline",
    "quotes": 'say "hi" it\'s',
    "html": "<script>alert('x')</script>",
    "emoji": "loss 😀🎉",
    "rtl_override": "rtl \u202etxt.exe",
    "combining": "e\u0301t\u0301e\u0301",
    "terminal_escape": "\x1b[31mred\x1b[0m \x1b]0;title\x07",
    "nul": "nul\0byte",
    "crlf_tab": "tab\there\r\nline",
    "line_separator": "line\u2028sep",
}


@pytest.mark.parametrize("key", list(WEIRD_NAMES))
def test_weird_param_and_metric_names_round_trip_and_keep_cli_output_whole(workdir, capsys, key):
    name = WEIRD_NAMES[key]
    store = workdir / "store"
    metalab.run(experiment(metric_per_param, [{name: name}]), store=store)

    [run] = metalab.load_results(store)
    assert run.params == {name: name}
    assert run.metrics == {f"m:{name}": 1.5}

    code, out, err = call_cli(capsys, "table", store)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3, out  # header, rule, one run: no name splits a line
    assert not any(is_control(c) for c in out.replace("\n", ""))
    assert escaped(name) in lines[0] and escaped(name) in lines[2]

    code, out, err = call_cli(capsys, "show", store, run.run_id)
    assert (code, err) == (0, "")
    assert not any(is_control(c) for c in out.replace("\n", ""))
    assert f"  {escaped(name)}:" in out.split("\nparams\n")[1].splitlines()[0]

    # Exports keep the exact text: CSV quotes it, JSON escapes it.
    code, out, _ = call_cli(capsys, "table", store, "--format", "csv")
    header, row = list(csv.reader(io.StringIO(out)))
    assert code == 0 and row[header.index(name)] == name and f"m:{name}" in header
    code, out, _ = call_cli(capsys, "table", store, "--format", "json")
    assert code == 0 and json.loads(out)[0][name] == name


def test_wide_and_combining_characters_keep_the_table_columns_aligned(workdir, capsys):
    store = workdir / "store"
    cases = [
        {"名前": "宽字符", "e\u0301": "x", "emoji": "😀😀"},
        {"名前": "a", "e\u0301": "y", "emoji": "b"},
    ]
    metalab.run(experiment(metric_per_param, cases), store=store)
    code, out, _ = call_cli(capsys, "table", store)
    assert code == 0
    # The last column (duration) is right-aligned: every line ends at the same column.
    assert len({display_width(line) for line in out.splitlines()}) == 1, out


# --------------------------------------------------------------------------- pickles


@pytest.fixture
def pickle_store(workdir):
    marker = workdir / "unpickled"
    store = workdir / "store"
    metalab.run(experiment(pickled_model, [{"marker": str(marker)}]), store=store)
    assert not marker.exists()
    return store, marker


def test_pickled_artifact_is_never_unpickled_by_loading_or_the_cli(pickle_store, capsys):
    store, marker = pickle_store
    results = metalab.load_results(store)
    [run] = results
    assert run.artifacts == {"model": "pickle", "weights": "json"}
    assert run.artifact("weights") == [0.5, 0.25]
    results.table()
    results.summary()
    with pytest.raises(InvalidArgumentError) as caught:
        run.artifact("model")
    message = str(caught.value)
    assert "model.pkl" in message and "pass allow_pickle=True if you trust" in message
    for args in (
        ["show", store, run.run_id],
        ["table", store],
        ["table", store, "--format", "json"],
        ["status", store],
        ["failed", store],
        ["diff", store, run.run_id, run.run_id],
        ["ls", store.parent],
    ):
        assert call_cli(capsys, *args)[0] == 0
    assert not marker.exists()
    # The control: opting in does run the pickle, so the checks above could have failed.
    run.artifact("model", allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("value", ["false", 1, None], ids=["str_false", "int_1", "none"])
def test_allow_pickle_must_be_a_real_bool(pickle_store, value):
    store, marker = pickle_store
    [run] = metalab.load_results(store)
    with pytest.raises(InvalidTypeError) as caught:
        run.artifact("model", allow_pickle=value)
    assert f"allow_pickle={value!r}" in str(caught.value)
    assert "must be True or False" in str(caught.value)
    assert not marker.exists()


def test_numpy_artifact_holding_a_pickle_is_refused(workdir):
    numpy = pytest.importorskip("numpy")
    marker = workdir / "unpickled"

    @metalab.operation
    def array(params, capture):
        capture.artifact("array", numpy.zeros(3))

    store = workdir / "store"
    [run] = metalab.run(experiment(array, [{}]), store=store)
    # A .npy of Python objects embeds a pickle; metalab never writes one, a forger can.
    buffer = io.BytesIO()
    numpy.save(buffer, numpy.array([TouchOnUnpickle(str(marker))], dtype=object))
    (store / run.record.artifacts[0].path).write_bytes(buffer.getvalue())
    with (
        pytest.warns(StoreWarning, match="changed after capture"),
        pytest.raises(InvalidArgumentError) as caught,
    ):
        metalab.load_results(store)[0].artifact("array")
    assert "array.npy" in str(caught.value)
    assert "numpy.load(path, allow_pickle=True)" in str(caught.value)
    assert not marker.exists()


# -------------------------------------------------------------------------- symlinks


@pytest.fixture
def linked_store(workdir):
    """A store with one run's data artifact and stdout, and a secret file outside it."""
    store = workdir / "store"
    exp = experiment(data_and_output, [{}])
    [run] = metalab.run(exp, store=store)
    secret = workdir / "secret.txt"
    secret.write_text("SECRET outside the store")
    return store, exp, run, secret


@pytest.mark.parametrize("target", ["tmp_file", "etc_passwd"])
def test_artifact_file_that_is_a_symlink_out_of_the_store_is_not_read(linked_store, target):
    store, _, run, secret = linked_store
    path = store / run.record.artifacts[0].path
    path.unlink()
    path.symlink_to(secret if target == "tmp_file" else "/etc/passwd")
    with pytest.raises(InvalidArgumentError) as caught:
        metalab.load_results(store)[0].artifact("data")
    message = str(caught.value)
    assert str(path) in message and "outside the store" in message
    assert "Replace the link with a copy" in message


def test_artifact_folder_that_is_a_symlink_out_of_the_store_is_not_read(linked_store):
    store, _, run, secret = linked_store
    folder = store / "artifacts" / run.run_id
    outside = secret.parent / "outside"
    folder.rename(outside)
    folder.symlink_to(outside)
    with pytest.raises(InvalidArgumentError, match="outside the store"):
        metalab.load_results(store)[0].artifact("data")


def test_run_output_file_that_is_a_symlink_out_of_the_store_is_not_read(linked_store):
    store, _, run, secret = linked_store
    path = store / run.record.stdout
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(InvalidArgumentError, match="outside the store"):
        metalab.load_results(store)[0].stdout  # noqa: B018


def test_record_segment_that_is_a_symlink_out_of_the_store_is_not_loaded(workdir):
    store, elsewhere = workdir / "store", workdir / "elsewhere"
    metalab.run(experiment(square, [{"x": 1}]), store=store)
    metalab.run(experiment(square, [{"x": 2}]), store=elsewhere)
    [foreign] = (elsewhere / "records").glob("*.jsonl")
    (store / "records" / "zz-foreign.jsonl").symlink_to(foreign)
    # A refusal, or the store's own runs with a warning about the link, are both fine;
    # loading the runs of the file outside is not.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            runs = list(metalab.load_results(store))
        except InvalidArgumentError as exc:
            assert "zz-foreign" in str(exc)
            return
    assert [run.params for run in runs] == [{"x": 1}]
    assert any(
        issubclass(w.category, StoreWarning) and "zz-foreign" in str(w.message) for w in caught
    )


def test_records_folder_that_is_a_symlink_is_not_written_through(workdir):
    store, outside = workdir / "store", workdir / "outside"
    exp = experiment(square, [{"x": 1}, {"x": 2}])
    metalab.run(exp, store=store)
    outside.mkdir()
    (store / "records").rename(workdir / "moved-records")
    (store / "records").symlink_to(outside)
    try:
        metalab.run(exp, store=store)  # the records are out of sight: both runs again
    except MetalabError as exc:
        assert "records" in str(exc)
    assert list(outside.iterdir()) == []


def test_artifact_folder_that_is_a_symlink_is_not_written_through(workdir):
    store, outside = workdir / "store", workdir / "outside"
    exp = experiment(data_and_output, [{}])
    rid = exp.run_id(exp.params[0], exp.seeds[0])
    outside.mkdir()
    (store / "artifacts").mkdir(parents=True)
    (store / "artifacts" / rid).symlink_to(outside)
    try:
        metalab.run(exp, store=store)
    except MetalabError as exc:
        assert rid in str(exc)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("which", ["artifact_file", "manifest"])
def test_a_file_that_is_a_symlink_is_replaced_not_written_through(linked_store, which):
    store, exp, run, secret = linked_store
    path = store / (run.record.artifacts[0].path if which == "artifact_file" else "manifest.json")
    if which == "manifest":
        secret.write_text(path.read_text())  # a valid manifest, so the run goes ahead
    before = secret.read_bytes()
    path.unlink()
    path.symlink_to(secret)
    metalab.run(exp, store=store, overwrite=True)
    assert secret.read_bytes() == before
    assert not path.is_symlink()


# ----------------------------------------------------------------- not a store at all


def _not_a_store(kind: str, workdir: Path) -> Path:
    path = workdir / "target"
    if kind == "empty_folder":
        path.mkdir()
    elif kind == "random_files":
        path.mkdir()
        (path / "notes.txt").write_text("not a store")
        (path / "records").write_bytes(os.urandom(64))  # a file where a folder belongs
        (path / "blob.bin").write_bytes(os.urandom(256))
    elif kind == "a_file":
        path.write_bytes(b"just a file")
    return path


NOT_STORES = ["empty_folder", "random_files", "a_file", "missing"]


@pytest.mark.parametrize("kind", NOT_STORES)
def test_load_results_of_a_non_store_is_refused_or_empty_and_writes_nothing(workdir, kind):
    path = _not_a_store(kind, workdir)
    before = snapshot(workdir)
    if kind in ("a_file", "missing"):
        with pytest.raises(InvalidArgumentError) as caught:
            metalab.load_results(path)
        assert repr(str(path)) in str(caught.value)
        assert "pass a folder path" in str(caught.value) or "check the path" in str(caught.value)
    else:
        results = metalab.load_results(path)
        assert (len(results), list(results), results.table()) == (0, [], [])
    assert snapshot(workdir) == before


@pytest.mark.parametrize("kind", NOT_STORES)
@pytest.mark.parametrize("command", ["table", "status", "show", "failed"])
def test_cli_on_a_non_store_says_so_in_one_line_and_writes_nothing(workdir, capsys, kind, command):
    path = _not_a_store(kind, workdir)
    before = snapshot(workdir)
    code, out, err = call_cli(capsys, command, path, *(["abc"] if command == "show" else []))
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1
    assert repr(str(path)) in err
    assert "pass" in err or "check the path" in err
    assert snapshot(workdir) == before


# ---------------------------------------------------------------- corrupted manifests

BAD_MANIFESTS = {
    "not_json": b'{"name": "hostile", "version": ',
    "binary": bytes(range(256)),
    "empty_file": b"",
    "json_list": b'["hostile", "1"]',
    "json_string": b'"hostile"',
    "missing_keys": b"{}",
}


@pytest.mark.parametrize("key", list(BAD_MANIFESTS))
def test_corrupted_manifest_is_a_clear_error_and_the_records_are_untouched(workdir, capsys, key):
    store = workdir / "store"
    exp = experiment(square, [{"x": 1}, {"x": 2}])
    metalab.run(exp, store=store)
    manifest = store / "manifest.json"
    manifest.write_bytes(BAD_MANIFESTS[key])
    records = snapshot(store / "records")

    with pytest.raises(InvalidArgumentError) as caught:
        metalab.run(exp, store=store)
    message = str(caught.value)
    assert str(store) in message
    assert "manifest" in message or "store=" in message  # what is wrong, or the way out
    assert snapshot(store / "records") == records

    code, out, err = call_cli(capsys, "status", store)
    if key == "missing_keys":
        # Nothing to refuse: the unknown name and version show as "?".
        assert code == 0 and "experiment:  ? ?" in out
    else:
        assert code == 2 and err.count("\n") == 1
        assert repr(str(manifest)) in err and "manifests/" in err

    if key != "missing_keys":  # read_manifest refuses every manifest that is not an object
        with pytest.raises(InvalidArgumentError, match="restore an earlier version"):
            list(metalab.load_results(store))
    else:  # the runs themselves are intact and load
        assert sorted(run.params["x"] for run in metalab.load_results(store)) == [1, 2]


def test_manifest_with_a_huge_version_keeps_cli_output_short(workdir, capsys):
    store = workdir / "store"
    metalab.run(experiment(square, [{"x": 1}]), store=store)
    (store / "manifest.json").write_text(json.dumps({"name": "hostile", "version": "9" * 10**6}))
    for args in (["status", store], ["ls", workdir]):
        code, out, _ = call_cli(capsys, *args)
        assert code == 0 and len(out) < 2_000


def test_refusing_a_store_with_a_huge_version_gives_a_short_message(workdir):
    store = workdir / "store"
    exp = experiment(square, [{"x": 1}])
    metalab.run(exp, store=store)
    (store / "manifest.json").write_text(json.dumps({"name": "hostile", "version": "9" * 10**6}))
    with pytest.raises(InvalidArgumentError) as caught:
        metalab.run(exp, store=store)
    assert len(str(caught.value)) < 2_000


# ---------------------------------------------------------------- damaged record lines


def _flip_body_byte(line: bytes) -> bytes:
    at = line.index(b'"params"') + 3
    return line[:at] + bytes([line[at] ^ 0x01]) + line[at + 1 :]


def _flip_crc_digit(line: bytes) -> bytes:
    return (b"0" if line[:1] != b"0" else b"1") + line[1:]


LINE_DAMAGE = {
    "body_byte_flipped": _flip_body_byte,
    "crc_digit_changed": _flip_crc_digit,
    "replaced_by_garbage": lambda line: b"\x00\xff\xfe not a record at all \x80\n",
}


@pytest.mark.parametrize("key", list(LINE_DAMAGE))
def test_record_line_failing_its_check_is_skipped_with_a_warning_and_rerun(workdir, key):
    store = workdir / "store"
    calls = []

    @metalab.operation
    def counted(params, capture):
        calls.append(params["x"])
        capture.metric("y", params["x"])

    exp = experiment(counted, [{"x": 1}, {"x": 2}, {"x": 3}])
    metalab.run(exp, store=store)
    [segment] = (store / "records").glob("*.jsonl")
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[1] = LINE_DAMAGE[key](lines[1])
    segment.write_bytes(b"".join(lines))

    with pytest.warns(StoreWarning, match=r"skipped 1 damaged line\(s\) of 3"):
        assert sorted(run.params["x"] for run in metalab.load_results(store)) == [1, 3]
    calls.clear()
    with pytest.warns(StoreWarning, match=segment.name):
        result = metalab.run(exp, store=store)
        # The damaged line stays in its segment; the rerun's record supersedes it.
        assert sorted(run.params["x"] for run in result.successful) == [1, 2, 3]
    assert calls == [2]


# ------------------------------------------------------------------ params that are bad


def _self_list():
    items = [1]
    items.append(items)
    return items


def _self_dict():
    mapping = {"a": 1}
    mapping["self"] = mapping
    return mapping


def _mutual():
    inner = {"list": []}
    outer = [inner]
    inner["list"].append(outer)
    return outer


def _deep(depth=100_000):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


BAD_PARAM_VALUES = {
    "lambda": (lambda: lambda x: x, InvalidTypeError, "has type function"),
    # The test closes the file once the refusal is checked.
    "open_file": (lambda: open(__file__), InvalidTypeError, "has type TextIOWrapper"),  # noqa: SIM115
    "generator": (lambda: (i for i in range(3)), InvalidTypeError, "has type generator"),
    "object": (object, InvalidTypeError, "has type object"),
    "set": (lambda: {1, 2}, InvalidTypeError, "has type set"),
    "self_list": (_self_list, InvalidArgumentError, "grid(x)[0][1] is grid(x)[0] itself"),
    "self_dict": (_self_dict, InvalidArgumentError, "grid(x)[0]['self'] is grid(x)[0] itself"),
    "mutual_cycle": (_mutual, InvalidArgumentError, "is grid(x)[0] itself"),
    "nested_100000_deep": (_deep, InvalidArgumentError, "nested more deeply"),
    "int_10e5000": (lambda: 10**5000, InvalidArgumentError, "grid(x)[0] is an int of 16610 bits"),
}


@pytest.mark.parametrize("key", list(BAD_PARAM_VALUES))
def test_bad_param_value_is_refused_before_any_run_and_writes_no_store(workdir, key):
    make, error, says = BAD_PARAM_VALUES[key]
    value = make()
    store = workdir / "store"
    try:
        with pytest.raises(error) as caught:
            exp = metalab.Experiment(
                "hostile", "1", {}, square, metalab.grid(x=[value]), metalab.seeds(0)
            )
            metalab.run(exp, store=store)
    finally:
        if hasattr(value, "close"):
            value.close()
    message = str(caught.value)
    assert says in message
    assert "convert it" in message.lower() or "pass" in message.lower()  # the fix
    assert len(message) < 1_000
    assert not store.exists()


def test_generator_as_the_list_of_values_is_refused():
    with pytest.raises(InvalidTypeError, match=r"grid\(x=<generator.*values must be a list"):
        metalab.grid(x=(i for i in range(3)))


def test_cycle_in_a_manual_case_names_where_it_closes():
    pattern = r"manual\(cases\)\[0\]\['x'\]\['self'\] is manual\(cases\)\[0\]\['x'\] itself"
    with pytest.raises(InvalidArgumentError, match=pattern):
        metalab.manual([{"x": _self_dict()}])


@pytest.mark.parametrize("where", ["context", "metadata"])
def test_cycle_in_context_or_metadata_is_refused_when_the_experiment_is_built(where):
    cyclic = _self_dict()
    kwargs = {"context": cyclic} if where == "context" else {"metadata": cyclic}
    with pytest.raises(FingerprintError) as caught:
        metalab.Experiment(
            "hostile", "1", operation=square, params=metalab.grid(x=[1]),
            seeds=metalab.seeds(0), **kwargs,
        )  # fmt: skip
    assert "contains itself" in str(caught.value) and where in str(caught.value)
    assert "pass a copy without the cycle" in str(caught.value).lower()


@pytest.mark.parametrize("where", ["context", "metadata"])
def test_int_too_large_for_json_in_context_or_metadata_is_refused_when_built(where):
    kwargs = {where: {"big": [10**5000]}}
    with pytest.raises(FingerprintError) as caught:
        metalab.Experiment(
            "hostile", "1", operation=square, params=metalab.grid(x=[1]),
            seeds=metalab.seeds(0), **kwargs,
        )  # fmt: skip
    assert where in str(caught.value) and "4300 digits" in str(caught.value)
    assert "pass a very large int as a str" in str(caught.value)


def test_nan_and_infinite_params_round_trip_and_resume_skips_them(workdir):
    store = workdir / "store"
    calls = []

    @metalab.operation
    def counted(params, capture):
        calls.append(params["x"])
        capture.metric("y", 1.0)

    exp = metalab.Experiment(
        "hostile", "1", {}, counted, metalab.grid(x=[math.nan, math.inf, -math.inf]),
        metalab.seeds(0),
    )  # fmt: skip
    metalab.run(exp, store=store)
    loaded = [run.params["x"] for run in metalab.load_results(store)]
    assert math.isnan(loaded[0]) and loaded[1:] == [math.inf, -math.inf]
    calls.clear()
    metalab.run(exp, store=store)
    assert calls == []  # the same run IDs: a NaN param does not make its run look new


# ------------------------------------------------------------------- huge payloads


@pytest.mark.parametrize("name", list(_HUGE))
def test_huge_metric_fails_its_run_clearly_and_the_store_stays_readable(workdir, name):
    store = workdir / "store"
    exp = metalab.Experiment(
        "hostile", "1", {}, huge_metric, metalab.manual([{"name": name}]), metalab.seeds(0)
    )
    [run] = metalab.run(exp, store=store)
    assert run.status == "failed"
    message = run.error["message"]
    assert f"Capture.metric('{name}'" in message and len(message) < 1_000
    assert "math.log10(value)" in message or "pass a number" in message
    # Nothing of the payload was written: the store holds a few small files.
    assert sum(path.stat().st_size for path in store.rglob("*")) < 100_000
    assert [r.status for r in metalab.load_results(store)] == ["failed"]


def test_huge_int_in_metrics_records_none_of_them():
    capture = metalab.Capture("run", sink=lambda *args: None)
    with pytest.raises(InvalidArgumentError, match="too large to store"):
        capture.metrics({"fine": 1, "huge": -(10**5000)})
    assert capture.finish().metrics == {}


def test_huge_artifact_and_param_are_stored_and_load_back(workdir, capsys):
    store = workdir / "store"
    payload = os.urandom(1 << 20) * 20  # 20 MiB

    @metalab.operation
    def big(params, capture):
        capture.artifact("blob", payload)
        capture.metric("length", len(params["text"]))

    text = "p" * 5_000_000
    metalab.run(experiment(big, [{"text": text}]), store=store)
    [run] = metalab.load_results(store)
    assert run.params["text"] == text and run.artifact("blob") == payload
    code, out, _ = call_cli(capsys, "status", store)
    assert code == 0 and "done:        1 of 1" in out


# --------------------------------------------------------------------------- seeds

BAD_SEEDS = {
    "negative": (-1, InvalidArgumentError, "=-1"),
    "2**64": (2**64, InvalidArgumentError, "=18446744073709551616"),
    "10**5000": (10**5000, InvalidArgumentError, "=<an int of 16610 bits>"),
    "float": (1.5, InvalidTypeError, "=1.5"),
    "float_whole": (42.0, InvalidTypeError, "=42.0"),
    "nan": (math.nan, InvalidTypeError, "=nan"),
    "bool": (True, InvalidTypeError, "=True"),
    "str": ("42", InvalidTypeError, "='42'"),
    "none": (None, InvalidTypeError, "=None"),
}


@pytest.mark.parametrize("key", list(BAD_SEEDS))
@pytest.mark.parametrize("api", ["seeds", "SeedBundle"])
def test_out_of_range_seed_is_refused_naming_it_and_the_fix(api, key):
    value, error, shown = BAD_SEEDS[key]
    with pytest.raises(error) as caught:
        if api == "seeds":
            metalab.seeds(base=value)
        else:
            metalab.SeedBundle(root_seed=value)
    message = str(caught.value)
    assert ("SeedPlan(base" if api == "seeds" else "SeedBundle(root_seed") + shown in message
    assert "[0, 2**64)" in message and "Pass a whole number such as" in message


@pytest.mark.parametrize("base", [0, 2**64 - 1])
def test_seed_at_either_end_of_the_range_is_accepted(base):
    assert metalab.seeds(base=base)[0].root_seed == base
    assert 0 <= metalab.SeedBundle(base, 0).derive("x") < 2**64


# -------------------------------------------------------------- renamed experiments


@pytest.mark.parametrize("change", ["renamed", "new_version"])
def test_another_experiment_on_the_same_store_is_refused_naming_both(workdir, change):
    store = workdir / "store"
    metalab.run(experiment(square, [{"x": 1}], name="first"), store=store)
    before = snapshot(store)
    name, version = ("second", "1") if change == "renamed" else ("first", "2")
    with pytest.raises(InvalidArgumentError) as caught:
        metalab.run(experiment(square, [{"x": 1}], name=name, version=version), store=store)
    message = str(caught.value)
    assert f"run({name!r} version {version!r})" in message
    assert "holds experiment 'first' version '1'" in message
    assert f"store='runs/{name}-{version}'" in message
    assert snapshot(store) == before


# --------------------------------------------------------- store APIs given odd paths


@pytest.mark.parametrize("run_id", ["../escaped", "/escaped", "a/b", "..", "", "a\0b"])
def test_run_id_with_path_characters_is_refused_by_the_store(workdir, run_id):
    store = FileStore(workdir / "store")
    before = snapshot(workdir)
    with pytest.raises(InvalidArgumentError) as caught:
        store.put_artifact(run_id, "x", "x.bin", b"data", kind="bytes")
    assert f"run_id={run_id!r}" in str(caught.value) and "must be one file name" in str(
        caught.value
    )
    assert snapshot(workdir) == before


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "artifacts/../../secret.txt"])
def test_record_naming_an_artifact_outside_the_store_is_refused(workdir, path):
    (workdir / "secret.txt").write_text("SECRET")
    store = FileStore(workdir / "store")
    ref = ArtifactRef(name="data", kind="text", path=path, size=6, sha256="0" * 64)
    store.put_record(
        RunRecord("r" * 32, "hostile", "1", 0, 0, {}, {"root_seed": 0}, SUCCESS, artifacts=[ref])
    )
    store.close()
    [run] = metalab.load_results(workdir / "store")
    with pytest.raises(InvalidArgumentError) as caught:
        run.artifact("data")
    assert repr(path) in str(caught.value) and "inside the store" in str(caught.value)


def test_results_lookup_by_a_path_like_run_id_is_a_plain_miss(workdir):
    metalab.run(experiment(square, [{"x": 1}]), store=workdir / "store")
    with pytest.raises(CaseIndexError, match=r"Results\['\.\./\.\./etc/passwd'\]: no run"):
        metalab.load_results(workdir / "store")["../../etc/passwd"]


@pytest.mark.parametrize("name", [1, None, ("a", "b")], ids=["int", "none", "tuple"])
def test_metric_name_that_is_not_a_str_is_refused(name):
    capture = metalab.Capture("run", sink=lambda *args: None)
    with pytest.raises(InvalidTypeError) as caught:
        capture.metric(name, 1.0)
    assert f"name={name!r}" in str(caught.value) and "e.g. 'loss'" in str(caught.value)


def test_pickle_codec_is_never_picked_by_type_for_unknown_objects():
    capture = metalab.Capture("run", sink=lambda *args: None)
    # Pickles are written only when asked for by name, never chosen for an odd object.
    with pytest.raises(InvalidTypeError, match=r"pass kind='pickle' \(readable only with allow_"):
        capture.artifact("thing", TouchOnUnpickle("unused"))
