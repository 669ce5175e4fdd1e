"""FileStore: layout, line format, torn and corrupt lines, many writers, crashes, forks.

The behaviour every store owes is tested in tests/contract/test_store_contract.py;
this file tests what is particular to the folder layout. Writer processes are real
subprocesses, each bounded to a few hundred small records.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import threading
import warnings
import zlib
from pathlib import Path

import pytest

import metalab.store.file as file_module
from contract.test_store_contract import make_record
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import ArtifactRef
from metalab.store import FileStore, Store, StoreWarning, open_store

# Writes records "<tag>-0", "<tag>-1", ... to the store at argv[1] and prints each
# index once put_record has returned; a count of 0 means until killed.
WRITER = """
import itertools, sys
from metalab.record import RunRecord
from metalab.store import FileStore

store = FileStore(sys.argv[1])
tag, count, pad = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in itertools.count() if count == 0 else range(count):
    store.put_record(RunRecord(
        run_id=f"{tag}-{i}", experiment="e", version="1", case_index=i, replicate_index=0,
        params={"i": i, "pad": "x" * pad}, seeds={}, status="success",
    ))
    print(i, flush=True)
store.close()
"""


def _writer(root: Path, tag: str, count: int, *, pad: int = 100) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), tag, str(count), str(pad)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _segments(root: Path) -> list[Path]:
    return sorted((root / "records").glob("*.jsonl"))


def _ids(store: FileStore) -> list[str]:
    return sorted(record.run_id for record in store.records())


def _state_ids(store: FileStore) -> list[str]:
    return sorted(store.run_states())


# Both ways of reading a store: whole records, and the header scan of run_states.
READERS = pytest.mark.parametrize("read_ids", [_ids, _state_ids], ids=["records", "run_states"])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path):
    store = FileStore(root)
    yield store
    store.close()


def _fill(store: FileStore, count: int) -> Path:
    """Write records r0..r{count-1} and return the segment holding them."""
    for i in range(count):
        store.put_record(make_record(f"r{i}"))
    store.flush()
    [segment] = _segments(Path(store.location))
    return segment


# Layout and line format


def test_new_store_has_a_readme_describing_the_layout(root):
    FileStore(root)
    readme = (root / "README.md").read_text()
    for part in ("manifest.json", "manifests/", "records/", "artifacts/", "CRC-32"):
        assert part in readme


def test_segment_is_named_for_host_pid_and_random_hex(store, root):
    store.put_record(make_record("r"))
    [segment] = _segments(root)
    assert re.fullmatch(rf"[\w.-]+-{os.getpid()}-[0-9a-f]{{8}}\.jsonl", segment.name)


def test_line_is_crc32_hex_space_compact_json_newline(store):
    record = make_record("r", params={"name": "ünï"})
    store.put_record(record)
    [path] = _segments(Path(store.location))
    line = path.read_bytes()
    body = json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
    assert line == b"%08x %s\n" % (zlib.crc32(body), body)


def test_line_starts_with_run_id_status_and_attempt(store):
    store.put_record(make_record("9f2c", status="failed", attempt=3))
    [path] = _segments(Path(store.location))
    assert re.match(
        rb'[0-9a-f]{8} \{"run_id":"9f2c","status":"failed","attempt":3,', path.read_bytes()
    )


def test_readme_snippet_reads_records_without_metalab(store, root, monkeypatch, capsys):
    store.put_record(make_record("r"))
    readme = (root / "README.md").read_text()
    snippet = readme.split("Reading the records without metalab:")[1]
    code = "\n".join(line.removeprefix("    ") for line in snippet.splitlines())
    monkeypatch.chdir(root)
    exec(code, {})
    assert capsys.readouterr().out == f"{make_record('r').to_dict()}\n"


def test_docs_reader_finds_the_done_runs(tmp_path, monkeypatch):
    docs = (Path(__file__).parents[2] / "docs" / "store.md").read_text()
    [code] = [block for block in docs.split("```python")[1:] if "def read_records" in block]
    store = FileStore(tmp_path / "runs" / "pi_mc")
    store.put_record(make_record("ok"))
    store.put_record(make_record("bad", status="failed"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(code.split("```")[0], namespace)
    assert namespace["done"] == {"ok"}


def test_location_is_the_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert FileStore("runs/exp").location == str(tmp_path / "runs" / "exp")


# Damaged lines


@READERS
def test_torn_last_record_is_ignored_with_a_warning_at_every_offset(store, read_ids):
    segment = _fill(store, 3)
    data = segment.read_bytes()
    last_start = data.rindex(b"\n", 0, len(data) - 1) + 1
    for offset in range(last_start + 1, len(data)):
        segment.write_bytes(data[:offset])
        with pytest.warns(StoreWarning, match="1 damaged line.* of 3, the last one incomplete"):
            assert read_ids(store) == ["r0", "r1"]


@READERS
def test_truncation_at_a_line_boundary_loads_silently(store, read_ids):
    segment = _fill(store, 3)
    data = segment.read_bytes()
    segment.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_ids(store) == ["r0", "r1"]


@READERS
def test_bad_crc_in_the_middle_is_skipped_with_one_warning_naming_the_file(store, read_ids):
    segment = _fill(store, 5)
    lines = segment.read_bytes().splitlines(keepends=True)
    for n in (1, 3):
        lines[n] = lines[n].replace(b'"exp"', b'"EXP"')
    segment.write_bytes(b"".join(lines))
    with pytest.warns(StoreWarning) as caught:
        assert read_ids(store) == ["r0", "r2", "r4"]
    [warning] = caught
    assert str(segment) in str(warning.message)
    assert "2 damaged line(s) of 5" in str(warning.message)


@READERS
def test_line_with_valid_crc_but_bad_json_is_skipped(store, read_ids):
    segment = _fill(store, 2)
    with segment.open("ab") as file:
        file.write(b"%08x %s\n" % (zlib.crc32(b"{not json"), b"{not json"))
    with pytest.warns(StoreWarning, match="1 damaged line"):
        assert read_ids(store) == ["r0", "r1"]


def test_done_ids_skip_damaged_lines_too(store):
    segment = _fill(store, 2)
    segment.write_bytes(segment.read_bytes()[:-5])
    with pytest.warns(StoreWarning):
        assert store.done_ids() == {"r0"}


def _append_line(segment: Path, entry: dict) -> None:
    body = json.dumps(entry, separators=(",", ":")).encode()
    with segment.open("ab") as file:
        file.write(b"%08x %s\n" % (zlib.crc32(body), body))


def test_a_line_in_another_key_order_is_still_read(store):
    # Written by an older metalab, or by hand: no header to scan, so it is parsed whole.
    segment = _fill(store, 2)
    _append_line(segment, dict(sorted(make_record("sorted", status="failed").to_dict().items())))
    store.put_record(make_record("r2"))
    store.flush()
    assert store.run_states() == {
        "r0": ("success", 1),
        "r1": ("success", 1),
        "sorted": ("failed", 1),
        "r2": ("success", 1),
    }
    assert _ids(store) == ["r0", "r1", "r2", "sorted"]


def test_a_line_without_a_status_or_with_a_bad_attempt_is_damaged(store):
    segment = _fill(store, 1)
    _append_line(segment, {"run_id": "no-status"})
    _append_line(segment, {"run_id": "text-attempt", "status": "success", "attempt": "2"})
    with pytest.warns(StoreWarning, match="2 damaged line"):
        assert store.run_states() == {"r0": ("success", 1)}


def test_run_states_parse_no_json_when_lines_have_the_header(store, monkeypatch):
    _fill(store, 3)
    store.put_record(make_record("r1", attempt=2, status="failed"))
    store.flush()

    def refuse(*args, **kwargs):
        raise AssertionError("json.loads was called")

    monkeypatch.setattr(file_module.json, "loads", refuse)
    assert store.run_states() == {"r0": ("success", 1), "r1": ("failed", 2), "r2": ("success", 1)}


def test_records_parse_only_the_current_lines(store, monkeypatch):
    for attempt in (1, 2, 3):
        store.put_record(make_record("r", attempt=attempt, status="failed"))
    parsed = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text: parsed.append(text) or real_loads(text))
    [record] = store.records()
    assert record.attempt == 3 and len(parsed) == 1


@pytest.mark.parametrize("block", [7, 64, 300, 1 << 20])
def test_blocks_of_any_size_read_the_same_lines(store, monkeypatch, block):
    # Lines shorter and longer than a block, a damaged one, and a torn end.
    for i in range(12):
        store.put_record(make_record(f"r{i}", params={"pad": "x" * (i * 37)}, attempt=1 + i % 2))
    store.flush()
    [segment] = _segments(Path(store.location))
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"exp"', b'"EXP"')
    segment.write_bytes(b"".join(lines) + lines[0][:30])
    monkeypatch.setattr(file_module, "_BLOCK", block)
    expected = {f"r{i}": ("success", 1 + i % 2) for i in range(12) if i != 5}
    with pytest.warns(StoreWarning, match="2 damaged line.* of 13, the last one incomplete"):
        assert store.run_states() == expected
    with pytest.warns(StoreWarning):
        assert [r.run_id for r in store.records()] == list(expected)


def test_records_json_is_what_the_store_contracts_default_would_make(store):
    store.put_record(make_record("a", metrics={"x": 0.1, "inf": float("inf")}))
    store.put_record(make_record("b", params={"name": "ünï"}, status="failed"))
    store.put_record(make_record("b", attempt=2))
    assert store.records_json() == Store.records_json(store)
    assert store.done_ids() == Store.done_ids(store) == {"a", "b"}


def test_equal_attempts_in_two_segments_rank_by_finish_then_segment_order(root):
    first, second = FileStore(root), FileStore(root)
    first.put_record(make_record("late", finished_at="2026-01-02T00:00:00Z", duration=1.0))
    second.put_record(make_record("late", finished_at="2026-01-01T00:00:00Z", duration=2.0))
    first.put_record(make_record("same", duration=1.0))
    second.put_record(make_record("same", duration=2.0))
    first.close()
    second.close()
    later = 2.0 if _segments(root)[1].read_bytes().count(b'"duration":2.0') else 1.0
    durations = {record.run_id: record.duration for record in FileStore(root).records()}
    assert durations == {"late": 1.0, "same": later}


# Group fsync


@pytest.fixture
def segment_syncs(monkeypatch, root):
    """Count fsyncs of record segments; freeze the store's clock at 0 (advance by hand)."""
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # not the folder fsyncs
            synced.append(fd)
        real_fsync(fd)

    clock = [0.0]
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(file_module, "monotonic", lambda: clock[0])
    return synced, clock


def test_records_within_a_second_are_not_fsynced_one_by_one(store, segment_syncs):
    synced, _ = segment_syncs
    for i in range(1000):
        store.put_record(make_record(f"r{i}"))
    assert synced == []


def test_segment_is_fsynced_by_a_record_a_second_after_the_last_sync(store, segment_syncs):
    synced, clock = segment_syncs
    store.put_record(make_record("r0"))
    clock[0] = 1.0
    store.put_record(make_record("r1"))
    assert len(synced) == 1


def test_flush_fsyncs_pending_records(store, segment_syncs):
    synced, _ = segment_syncs
    store.put_record(make_record("r0"))
    store.flush()
    assert len(synced) == 1


# Many writers, readers during writes, crashes


def test_four_writer_processes_lose_and_duplicate_nothing(store, root):
    writers = [_writer(root, f"w{n}", 500) for n in range(4)]
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = list(store.records())
    assert sorted(r.run_id for r in records) == sorted(
        f"w{n}-{i}" for n in range(4) for i in range(500)
    )
    assert len(_segments(root)) == 4


def test_reader_during_appends_sees_only_complete_records(store, root):
    writer = _writer(root, "w", 1000, pad=5000)
    seen = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while writer.poll() is None:
            records = list(store.records())
            for record in records:
                assert record.params == {"i": int(record.run_id[2:]), "pad": "x" * 5000}
            assert len(records) >= seen
            seen = len(records)
    writer.communicate(timeout=60)
    # The only damage a live reader may meet is a last line still being written.
    assert all("incomplete" in str(w.message) for w in caught)
    assert len(list(store.records())) == 1000


def test_kill_9_loses_no_acknowledged_record(store, root):
    writer = _writer(root, "k", 0)
    stall_guard = threading.Timer(30, writer.kill)
    stall_guard.start()
    try:
        acked = 0
        while acked < 300:
            assert writer.stdout.readline(), "writer ended early"
            acked += 1
        writer.send_signal(signal.SIGKILL)
        # Not communicate(): with a timeout it reads the pipe past the lines buffered here.
        acked += len(writer.stdout.read().splitlines())
        writer.wait(timeout=30)
    finally:
        stall_guard.cancel()
        writer.kill()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)  # a torn last line is allowed
        found = set(store.done_ids())
    assert {f"k-{i}" for i in range(acked)} <= found
    assert len(found) <= acked + 1


def test_pickled_copy_in_another_process_writes_its_own_segment(store, root):
    store.put_record(make_record("parent"))
    code = (
        "import pickle, sys; from metalab.record import RunRecord; "
        "store = pickle.load(sys.stdin.buffer); "
        "store.put_record(RunRecord.from_dict(pickle.load(sys.stdin.buffer))); store.close()"
    )
    payload = pickle.dumps(store) + pickle.dumps(make_record("child").to_dict())
    subprocess.run([sys.executable, "-c", code], input=payload, check=True, timeout=60)
    by_segment = {segment.read_text().count('"run_id":"child"') for segment in _segments(root)}
    assert len(_segments(root)) == 2 and by_segment == {0, 1}
    assert store.done_ids() == {"parent", "child"}


def test_forked_child_writes_its_own_segment(store, root):
    store.put_record(make_record("parent"))
    pid = os.fork()
    if pid == 0:  # the child: write, then leave without running pytest's teardown
        try:
            store.put_record(make_record("child"))
            store.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    store.put_record(make_record("parent-after"))
    assert len(_segments(root)) == 2
    assert store.done_ids() == {"parent", "child", "parent-after"}


def test_records_from_a_non_json_value_are_refused_naming_the_run(store):
    with pytest.raises(InvalidTypeError, match=r"run_id='r'.*not JSON"):
        store.put_record(make_record("r", metrics={"x": object()}))


# Artifacts


def test_artifact_write_leaves_no_temporary_file(store, root):
    store.put_artifact("r1", "a", "a.bin", b"x" * 10_000, kind="bytes")
    assert [p.name for p in (root / "artifacts" / "r1").iterdir()] == ["a.bin"]


def test_artifact_ref_path_is_relative_with_slashes(store):
    ref = store.put_artifact("r1", "a", "a.bin", b"x", kind="bytes")
    assert ref.path == "artifacts/r1/a.bin"


def test_large_artifact_from_a_path_is_copied_with_its_sha256(store, tmp_path):
    source = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 5)  # several copy chunks
    source.write_bytes(data)
    ref = store.put_artifact("r1", "big", "big.bin", source, kind="file")
    assert store.artifact_path(ref).read_bytes() == data
    assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("filename", ["", ".", "..", "a/b", "..\\x", "nul\0"])
def test_artifact_filename_must_be_one_plain_name(store, filename):
    with pytest.raises(InvalidArgumentError, match="must be one file name"):
        store.put_artifact("r1", "a", filename, b"x", kind="bytes")


def test_artifact_data_given_as_str_is_refused_with_the_fix(store):
    with pytest.raises(InvalidTypeError, match=r"pass Path\(text\) or text.encode\(\)"):
        store.put_artifact("r1", "a", "a.txt", "hello", kind="text")


def test_artifact_from_a_missing_file_is_refused_naming_it(store, tmp_path):
    with pytest.raises(InvalidArgumentError, match="no file at"):
        store.put_artifact("r1", "a", "a.txt", tmp_path / "missing", kind="file")


@pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "artifacts/../../x"])
def test_artifact_path_refuses_a_reference_leaving_the_store(store, path):
    ref = ArtifactRef(name="a", kind="bytes", path=path, size=0, sha256="")
    with pytest.raises(InvalidArgumentError, match="inside the store"):
        store.artifact_path(ref)


# Opening a store


def test_path_that_is_a_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("")
    with pytest.raises(InvalidArgumentError, match="exists and is not a folder") as info:
        FileStore(path)
    assert repr(str(path)) in str(info.value)


def test_missing_folder_with_create_false_is_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="pass create=True"):
        FileStore(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


def test_folder_is_created_with_its_parents(tmp_path):
    FileStore(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c" / "README.md").is_file()


def test_path_of_the_wrong_type_is_refused(tmp_path):
    with pytest.raises(InvalidTypeError, match=r"must be a str or os\.PathLike"):
        FileStore(b"/tmp/x")


@pytest.mark.parametrize(
    "name", ["with space", 'quote\'s "double"', "ünïcødé λ", "semi;colon $HOME", "new\nline"]
)
def test_hostile_folder_names_work(tmp_path, name):
    store = FileStore(tmp_path / name / name)
    store.write_manifest({"name": name})
    ref = store.put_artifact("r1", "a", "a.bin", b"data", kind="bytes")
    store.put_record(make_record("r1", artifacts=[ref]))
    store.close()
    reopened = FileStore(tmp_path / name / name, create=False)
    [record] = reopened.records()
    assert reopened.read_manifest() == {"name": name}
    assert reopened.artifact_path(record.artifacts[0]).read_bytes() == b"data"


# Manifest history


def test_manifest_history_keeps_the_previous_version_when_it_changes(store, root):
    store.write_manifest({"version": "1"})
    first = (root / "manifest.json").read_bytes()
    store.write_manifest({"version": "2"})
    [kept] = (root / "manifests").iterdir()
    assert kept.read_bytes() == first
    digest = hashlib.sha256(first).hexdigest()[:8]
    assert re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{digest}\.json", kept.name)


def test_manifest_history_is_not_added_to_when_unchanged(store, root):
    store.write_manifest({"version": "1"})
    store.write_manifest({"version": "1"})
    assert not (root / "manifests").exists()


def test_manifest_is_written_without_temporary_files(store, root):
    store.write_manifest({"version": "1"})
    store.write_manifest({"version": "2"})
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "manifest.json", "manifests"]


def test_corrupt_manifest_is_reported_with_the_fix(store, root):
    (root / "manifest.json").write_text("{broken")
    with pytest.raises(InvalidArgumentError, match="restore an earlier version"):
        store.read_manifest()


def test_manifest_that_is_not_json_is_refused(store):
    with pytest.raises(InvalidTypeError, match="not JSON"):
        store.write_manifest({"x": {1, 2}})


# open_store


def test_open_store_makes_a_file_store_from_a_path(root):
    store = open_store(root)
    assert isinstance(store, FileStore) and store.location == str(root)


def test_open_store_returns_a_store_as_is(store):
    assert open_store(store) is store


def test_open_store_names_an_unreachable_postgres_server_without_echoing_the_password():
    # Port 1 on loopback: nothing listens, so the connection is refused at once.
    with pytest.raises(InvalidArgumentError, match="cannot connect") as info:
        open_store("postgresql://user:secret@127.0.0.1:1/metalab?connect_timeout=2")
    assert "secret" not in str(info.value)
    assert "user:***@127.0.0.1:1" in str(info.value)


def test_open_store_refuses_an_unknown_url_scheme():
    with pytest.raises(InvalidArgumentError, match="unknown store URL scheme 's3'"):
        open_store("s3://bucket/runs")


def test_open_store_refuses_other_types():
    with pytest.raises(InvalidTypeError, match="folder path"):
        open_store(42)
