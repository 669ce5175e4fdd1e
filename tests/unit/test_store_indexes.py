"""FileStore's two indexes: the states index beside each segment, and the run-ID index.

Both are caches: every answer read through them must equal the answer of a full read
of the records, whatever happened to them (torn, behind, damaged, disagreeing). The
runner's use of the run-ID index (a resume computes no run IDs) is tested here too.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metalab
from contract.test_store_contract import make_record
from metalab.record import FAILED, SUCCESS
from metalab.store import FileStore, StoreWarning


def full_read(store: FileStore, tmp: Path) -> dict[str, tuple[str, int]]:
    """run_states() of a copy of ``store`` without its states index: every line read."""
    copy = tmp / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store.location, copy)
    for index in (copy / "records").glob("*.states"):
        index.unlink()
    return FileStore(copy).run_states()


# One write: (run ID, status, attempt) records appended by put_record (1) or together.
writes = st.lists(
    st.tuples(
        st.booleans(),
        st.lists(
            st.tuples(
                st.sampled_from(["a" * 32, "b" * 32, "c" * 32, "d e", "", "x"]),
                st.sampled_from([SUCCESS, FAILED]),
                st.integers(1, 3),
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    max_size=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=writes)
def test_states_through_the_index_equal_a_full_read(tmp_path, writes):
    root = tmp_path / "store"
    shutil.rmtree(root, ignore_errors=True)
    store = FileStore(root)
    for one_by_one, records in writes:
        made = [make_record(rid, status=status, attempt=n) for rid, status, n in records]
        if one_by_one:
            for record in made:
                store.put_record(record)
        else:
            store.put_records_json([record.to_json() for record in made])
    expected = full_read(store, tmp_path)
    assert store.run_states() == expected
    assert store.run_states(verify=False) == expected
    # The records as one blob: the same JSON as the list, in the same order.
    assert store.records_ndjson() == b"".join(line + b"\n" for line in store.records_json())


def batch_store(tmp_path: Path, batches: int = 3) -> FileStore:
    store = FileStore(tmp_path / "store")
    for batch in range(batches):
        records = [make_record(f"{batch:02d}{i:030x}") for i in range(4)]
        store.put_records_json([record.to_json() for record in records])
    return store


def test_every_append_leaves_a_frame_in_the_states_index(tmp_path):
    store = batch_store(tmp_path)
    [index] = (tmp_path / "store" / "records").glob("*.states")
    lines = index.read_bytes().splitlines()
    assert [line[:1] for line in lines] == [b"s", b"#"] * 3  # one state, one trailer each
    assert len(store.run_states()) == 12


def test_a_torn_index_is_read_up_to_its_last_whole_frame(tmp_path):
    store = batch_store(tmp_path)
    expected = full_read(store, tmp_path)
    [index] = (tmp_path / "store" / "records").glob("*.states")
    whole = index.read_bytes()
    last_frame = whole.rindex(b"#", 0, whole.rindex(b"#")) + 1
    for cut in range(last_frame, len(whole)):
        index.write_bytes(whole[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the records are intact: nothing to warn of
            assert store.run_states() == expected


def test_a_damaged_record_under_the_index_is_found_by_verifying(tmp_path):
    store = batch_store(tmp_path)
    [segment] = (tmp_path / "store" / "records").glob("*.jsonl")
    data = bytearray(segment.read_bytes())
    at = data.index(b'"exp"')  # inside the first record's body
    data[at + 1] ^= 0x01
    segment.write_bytes(bytes(data))
    with pytest.warns(StoreWarning, match="skipped 1 damaged line"):
        states = store.run_states()
    assert len(states) == 11  # the damaged run counts as not done: a resume reruns it
    # Without verifying (metalab status), the index is trusted as written.
    assert len(store.run_states(verify=False)) == 12


def test_records_past_the_index_are_read_line_by_line(tmp_path):
    store = batch_store(tmp_path)
    blob = store.records_ndjson()
    [index] = (tmp_path / "store" / "records").glob("*.states")
    whole = index.read_bytes()
    second_frame = whole.index(b"\n#") + 1
    second_frame = whole.index(b"\n", second_frame) + 1  # after the first trailer
    for cut in (second_frame, 0):  # behind its segment by two frames, then by all
        index.write_bytes(whole[:cut])
        assert store.run_states() == full_read(store, tmp_path)
        assert store.records_ndjson() == blob
    assert len(store.run_states()) == 12 and blob.count(b"\n") == 12


def test_a_damaged_record_is_left_out_of_the_blob_too(tmp_path):
    store = batch_store(tmp_path)
    [segment] = (tmp_path / "store" / "records").glob("*.jsonl")
    data = bytearray(segment.read_bytes())
    data[data.index(b'"exp"') + 1] ^= 0x01
    segment.write_bytes(bytes(data))
    with pytest.warns(StoreWarning, match="skipped 1 damaged line"):
        blob = store.records_ndjson()
    assert blob.count(b"\n") == 11
    with pytest.warns(StoreWarning):
        assert blob == b"".join(line + b"\n" for line in store.records_json())


def test_latest_records_are_the_last_written_oldest_first(tmp_path):
    store = FileStore(tmp_path / "store")
    for i in range(30):
        store.put_record(make_record(f"r{i}", finished_at=f"2026-01-01T00:00:{i:02d}Z"))
    latest = store.latest_records(5)
    assert [record.run_id for record in latest] == [f"r{i}" for i in range(25, 30)]
    assert store.latest_records(0) == []


# -- run-ID index --------------------------------------------------------------------


def ids(*numbers: int) -> bytes:
    return b"".join(number.to_bytes(16, "big") for number in numbers)


def test_run_id_index_keeps_frames_in_position_order(tmp_path):
    store = FileStore(tmp_path / "store")
    assert store.run_id_index("k") == b""
    store.extend_run_id_index("k", 2, ids(2, 3))
    store.extend_run_id_index("k", 0, ids(0, 1))
    store.extend_run_id_index("k", 1, ids(1, 2))  # an overlap that agrees
    assert store.run_id_index("k") == ids(0, 1, 2, 3)
    assert store.run_id_index("other") == b""


def test_run_id_index_stops_at_a_gap_and_at_a_torn_frame(tmp_path):
    store = FileStore(tmp_path / "store")
    store.extend_run_id_index("k", 0, ids(0, 1))
    store.extend_run_id_index("k", 5, ids(5))
    assert store.run_id_index("k") == ids(0, 1)
    [path] = (tmp_path / "store" / "index").iterdir()
    store.extend_run_id_index("k", 2, ids(2))
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])
    assert store.run_id_index("k") == ids(0, 1)


def test_run_id_index_that_disagrees_with_itself_is_ignored(tmp_path):
    store = FileStore(tmp_path / "store")
    store.extend_run_id_index("k", 0, ids(0, 1))
    store.extend_run_id_index("k", 1, ids(9))
    assert store.run_id_index("k") == b""


def test_run_id_index_refuses_what_is_not_run_ids(tmp_path):
    store = FileStore(tmp_path / "store")
    with pytest.raises(metalab.errors.InvalidArgumentError, match="16-byte"):
        store.extend_run_id_index("k", 0, b"short")


def _pi(params, seeds, capture):
    capture.metric("v", params["x"] * 2 + seeds.rng().random())


def _experiment(values: list[int]) -> metalab.Experiment:
    op = metalab.operation(name="pi", version="1")(_pi)
    return metalab.Experiment(
        "idx", "1", {}, op, metalab.grid(x=values), metalab.seeds(base=3, replicates=2)
    )


def _count_run_ids(exp: metalab.Experiment) -> list[int]:
    calls = [0]
    compute = exp.run_id_from

    def counted(params: str, seeds: str) -> str:
        calls[0] += 1
        return compute(params, seeds)

    exp.run_id_from = counted
    return calls


def test_a_resume_reads_run_ids_from_the_index_instead_of_computing_them(tmp_path):
    exp = _experiment(list(range(40)))
    first = metalab.run(exp, store=tmp_path / "s")
    exp = _experiment(list(range(40)))
    calls = _count_run_ids(exp)
    again = metalab.run(exp, store=tmp_path / "s")
    assert calls[0] <= 10  # the spot checks of the index, nothing more
    assert [run.record for run in again] == [run.record for run in first]


def test_a_changed_sweep_does_not_use_the_old_index(tmp_path):
    metalab.run(_experiment(list(range(10))), store=tmp_path / "s")
    exp = _experiment(list(range(5, 15)))  # same name and version, other cases
    calls = _count_run_ids(exp)
    results = metalab.run(exp, store=tmp_path / "s")
    assert calls[0] >= 20  # every run ID of the new sweep computed
    assert len(results) == 30 and all(run.record.ok for run in results)


def test_an_index_with_a_wrong_id_at_a_checked_position_is_not_trusted(tmp_path):
    exp = _experiment(list(range(10)))
    metalab.run(exp, store=tmp_path / "s")
    [path] = (tmp_path / "s" / "index").iterdir()
    # A frame that puts another run's ID at position 0 (overlaps must agree: start
    # afresh with only the bad frame).
    store = FileStore(tmp_path / "s")
    key = exp.sweep_fingerprint
    good = store.run_id_index(key)
    path.unlink()
    store.extend_run_id_index(key, 0, good[16:32] + good[16:])
    exp = _experiment(list(range(10)))
    calls = _count_run_ids(exp)
    results = metalab.run(exp, store=tmp_path / "s")
    assert calls[0] >= 20 and len(results) == 20


def test_a_segment_cut_short_of_its_index_reads_as_its_intact_lines(tmp_path):
    # A crash, or a copy cut short: the index promises more than the segment holds.
    store = batch_store(tmp_path)
    [segment] = (tmp_path / "store" / "records").glob("*.jsonl")
    whole = segment.read_bytes()
    last = whole.rindex(b"\n", 0, len(whole) - 1) + 1
    for cut in range(last + 1, len(whole), 7):
        segment.write_bytes(whole[:cut])
        with pytest.warns(StoreWarning, match="incomplete"):
            assert len(store.run_states()) == 11
        with pytest.warns(StoreWarning, match="incomplete"):
            blob = store.records_ndjson()
        with pytest.warns(StoreWarning):
            assert blob == b"".join(line + b"\n" for line in store.records_json())
