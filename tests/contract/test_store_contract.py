"""The Store contract (metalab.store._base), written once and run on every backend.

A backend's test class subclasses :class:`StoreContract` and supplies the ``store``
fixture (an empty store), as optuna's ``StorageTestCase`` does; FileStore's is below.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import FAILED, SUCCESS, RunRecord
from metalab.store import FileStore, Store
from strategies import json_values, param_dicts


def make_record(run_id: str, **fields: Any) -> RunRecord:
    """A RunRecord for ``run_id``; ``fields`` override the defaults."""
    values: dict[str, Any] = {
        "run_id": run_id,
        "experiment": "exp",
        "version": "1",
        "case_index": 0,
        "replicate_index": 0,
        "params": {"x": 1},
        "seeds": {"base": 42},
        "status": SUCCESS,
        "finished_at": "2026-01-01T00:00:00Z",
    }
    values.update(fields)
    return RunRecord(**values)


# Each backend's class runs these property tests (differing executors, by design); the
# store fixture is per test, and an example only adds records under fresh run IDs.
_ONE_CLASS_PER_BACKEND = [HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]


class StoreContract:
    """Tests every Store backend must pass; subclasses provide an empty ``store``."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("a backend's test class supplies the store fixture")

    def test_empty_store_has_no_manifest(self, store):
        assert store.read_manifest() is None

    def test_empty_store_has_no_records_and_no_done_ids(self, store):
        assert list(store.records()) == []
        assert store.run_states() == {}
        assert store.records_json() == []
        assert store.done_ids() == set()

    def test_manifest_round_trips(self, store):
        manifest = {"name": "pi", "params": {"n": [1, 2]}, "note": "ünïcødé"}
        store.write_manifest(manifest)
        assert store.read_manifest() == manifest

    def test_second_manifest_replaces_the_first(self, store):
        store.write_manifest({"version": "1"})
        store.write_manifest({"version": "2"})
        assert store.read_manifest() == {"version": "2"}

    def test_record_with_artifact_round_trips(self, store):
        ref = store.put_artifact("r1", "weights", "w.bin", b"\x00\x01", kind="bytes")
        record = make_record("r1", artifacts=[ref], metrics={"loss": 0.5}, tags=["a"])
        store.put_record(record)
        assert list(store.records()) == [record]

    @pytest.mark.parametrize("success_first", [True, False], ids=["success-first", "fail-first"])
    def test_success_beats_failure_of_the_same_attempt_whatever_the_order(
        self, store, success_first
    ):
        success = make_record("r", status=SUCCESS, attempt=1)
        failure = make_record("r", status=FAILED, attempt=1, error={"type": "E"})
        for record in (success, failure) if success_first else (failure, success):
            store.put_record(record)
        assert list(store.records()) == [success]
        assert store.run_states() == {"r": (SUCCESS, 1)}
        assert store.done_ids() == {"r"}

    def test_a_later_attempt_supersedes_an_earlier_success(self, store):
        success = make_record("r", status=SUCCESS, attempt=1)
        rerun = make_record("r", status=FAILED, attempt=2, error={"type": "E"})
        store.put_record(rerun)
        store.put_record(success)
        assert list(store.records()) == [rerun]
        assert store.run_states() == {"r": (FAILED, 2)}
        assert store.done_ids() == set()

    def test_higher_attempt_wins_among_failures(self, store):
        records = [make_record("r", status=FAILED, attempt=n) for n in (2, 3, 1)]
        for record in records:
            store.put_record(record)
        assert list(store.records()) == [records[1]]
        assert store.run_states() == {"r": (FAILED, 3)}

    def test_later_finish_wins_among_equal_attempts(self, store):
        late = make_record("r", status=FAILED, finished_at="2026-01-02T00:00:00Z")
        early = make_record("r", status=FAILED, finished_at="2026-01-01T00:00:00Z")
        store.put_record(late)
        store.put_record(early)
        assert list(store.records()) == [late]

    def test_later_finish_wins_among_equal_successes_too(self, store):
        early = make_record("r", finished_at="2026-01-01T00:00:00Z", duration=1.0)
        late = make_record("r", finished_at="2026-01-02T00:00:00Z", duration=2.0)
        store.put_record(late)
        store.put_record(early)
        assert list(store.records()) == [late]
        assert store.run_states() == {"r": (SUCCESS, 1)}

    def test_run_states_give_each_current_records_status_and_attempt(self, store):
        store.put_record(make_record("ok"))
        store.put_record(make_record("bad", status=FAILED))
        store.put_record(make_record("retried", status=FAILED))
        store.put_record(make_record("retried", attempt=2))
        store.put_record(make_record("rerun", attempt=2, status=FAILED))
        store.put_record(make_record("rerun", attempt=1))
        assert store.run_states() == {
            "ok": (SUCCESS, 1),
            "bad": (FAILED, 1),
            "retried": (SUCCESS, 2),
            "rerun": (FAILED, 2),
        }
        assert store.run_states() == {r.run_id: (r.status, r.attempt) for r in store.records()}

    def test_records_json_is_the_current_records_as_json_in_records_order(self, store):
        store.put_record(make_record("a", metrics={"x": 1.5}))
        store.put_record(make_record("b", status=FAILED))
        store.put_record(make_record("b", attempt=2, params={"x": "ünï"}))
        parsed = [json.loads(line) for line in store.records_json()]
        assert parsed == [record.to_dict() for record in store.records()]
        assert [entry["run_id"] for entry in parsed] == ["a", "b"]

    def test_non_finite_metrics_round_trip_through_records_json(self, store):
        store.put_record(make_record("r", metrics={"nan": math.nan, "inf": -math.inf}))
        [entry] = [json.loads(line) for line in store.records_json()]
        assert math.isnan(entry["metrics"]["nan"]) and entry["metrics"]["inf"] == -math.inf

    def test_experiment_file_round_trips_through_read_file(self, store):
        path = store.put_experiment_file("git-0123abcd.diff", b"--- a\n+++ b\n")
        assert store.read_file(path) == b"--- a\n+++ b\n"

    def test_read_file_refuses_paths_outside_the_store(self, store):
        with pytest.raises(InvalidArgumentError, match=r"\.\."):
            store.read_file("../outside.txt")

    def test_done_ids_are_the_runs_whose_current_record_is_a_success(self, store):
        store.put_record(make_record("ok"))
        store.put_record(make_record("bad", status=FAILED))
        store.put_record(make_record("retried", status=FAILED))
        store.put_record(make_record("retried", attempt=2))
        assert store.done_ids() == {"ok", "retried"}

    def test_put_record_rejects_what_is_not_a_record(self, store):
        with pytest.raises(InvalidTypeError, match="must be a RunRecord"):
            store.put_record({"run_id": "r"})

    def test_artifact_bytes_are_readable_with_size_and_sha256(self, store):
        data = b"artifact bytes" * 1000
        ref = store.put_artifact("r1", "blob", "blob.bin", data, kind="bytes")
        assert (ref.name, ref.kind, ref.size) == ("blob", "bytes", len(data))
        assert ref.sha256 == hashlib.sha256(data).hexdigest()
        assert store.artifact_path(ref).read_bytes() == data

    def test_artifact_from_a_path_is_copied(self, store, tmp_path):
        source = tmp_path / "source.txt"
        source.write_bytes(b"copied")
        ref = store.put_artifact("r1", "text", "out.txt", source, kind="file")
        source.write_bytes(b"changed afterwards")
        assert store.artifact_path(ref).read_bytes() == b"copied"
        assert ref.sha256 == hashlib.sha256(b"copied").hexdigest()

    def test_pickled_copy_writes_to_the_same_store(self, store):
        copy = pickle.loads(pickle.dumps(store))
        copy.put_record(make_record("from-copy"))
        copy.close()
        store.put_record(make_record("from-original"))
        assert store.done_ids() == {"from-copy", "from-original"}

    def test_records_from_many_threads_all_arrive(self, store):
        def write(thread: int) -> None:
            for i in range(50):
                store.put_record(make_record(f"t{thread}-{i}"))

        threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store.done_ids()) == 400

    def test_records_given_as_json_read_back_equal(self, store):
        records = [make_record("a"), make_record("b", status=FAILED), make_record("c")]
        store.put_record_json(records[0].to_json())
        store.put_records_json([record.to_json() for record in records[1:]])
        assert sorted(store.records(), key=lambda r: r.run_id) == records

    def test_store_is_usable_after_close(self, store):
        store.put_record(make_record("before"))
        store.close()
        store.put_record(make_record("after"))
        store.flush()
        assert store.done_ids() == {"before", "after"}

    @settings(max_examples=30, deadline=None, suppress_health_check=_ONE_CLASS_PER_BACKEND)
    @given(
        run_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
        params=param_dicts,
        metrics=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    )
    def test_written_record_reads_back_equal(self, store, run_id, params, metrics):
        record = make_record(run_id, params=params, metrics=metrics)
        store.put_record(record)
        assert [r for r in store.records() if r.run_id == run_id] == [record]
        assert store.run_states()[run_id] == (SUCCESS, 1)

    @settings(max_examples=30, deadline=None, suppress_health_check=_ONE_CLASS_PER_BACKEND)
    @given(run_id=st.text(min_size=1, max_size=12))
    def test_any_run_id_reads_back(self, store, run_id):
        # Quotes, backslashes, control and non-ASCII characters need escapes or UTF-8.
        store.put_record(make_record(run_id, status=FAILED))
        assert store.run_states()[run_id] == (FAILED, 1)
        assert store.done_ids() == set()
        assert [r.run_id for r in store.records() if r.run_id == run_id] == [run_id]


class TestFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FileStore]:
        store = FileStore(tmp_path / "store")
        yield store
        store.close()

    def test_records_json_that_is_not_a_record_is_refused_before_any_is_written(self, store):
        good = make_record("good").to_json()
        for bad in (b"not json", good + b"\n" + good, "text"):
            with pytest.raises(InvalidArgumentError, match=r"RunRecord\.to_json"):
                store.put_records_json([good, bad])
        assert store.records_json() == []
