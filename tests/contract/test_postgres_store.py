"""The store contract on PostgresStore, against a real server (scripts/postgres.sh)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from test_store_contract import StoreContract, make_record

from metalab.errors import InvalidArgumentError
from metalab.record import FAILED, SUCCESS
from metalab.store import PostgresStore, open_store


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, postgres_dsn, postgres_schema, tmp_path) -> Iterator[PostgresStore]:
        store = PostgresStore(postgres_dsn, schema=postgres_schema, artifacts=tmp_path / "art")
        yield store
        store.close()

    def test_records_json_that_is_not_a_record_is_refused_before_any_is_written(self, store):
        good = make_record("good").to_json()
        for bad in (b"not json", good + b"\n" + good, "text", b'{"run_id": 1}'):
            with pytest.raises(InvalidArgumentError, match=r"RunRecord\.to_json"):
                store.put_records_json([good, bad])
        assert store.records_json() == []

    def test_a_later_written_record_wins_among_equal_attempts_statuses_and_times(self, store):
        first = make_record("r", duration=1.0)
        second = make_record("r", duration=2.0)
        store.put_record(first)
        store.put_record(second)
        assert list(store.records()) == [second]

    def test_latest_records_are_the_last_written_oldest_first(self, store):
        for i in range(5):
            store.put_record(make_record(f"r{i}", finished_at=f"2026-01-0{i + 1}T00:00:00Z"))
        assert [r.run_id for r in store.latest_records(2)] == ["r3", "r4"]
        assert store.latest_records(0) == []

    def test_records_ndjson_is_the_records_json_each_with_a_newline(self, store):
        assert store.records_ndjson() == b""
        store.put_record(make_record("a"))
        store.put_record(make_record("b", status=FAILED))
        assert store.records_ndjson() == b"".join(line + b"\n" for line in store.records_json())

    def test_manifest_history_keeps_earlier_manifests_once(self, store, postgres_dsn):
        import psycopg

        for version in ("1", "1", "2", "2", "1"):
            store.write_manifest({"version": version})
        with psycopg.connect(postgres_dsn) as conn:
            bodies = conn.execute(
                f'SELECT body FROM "{store._schema}".manifests ORDER BY id'
            ).fetchall()
        assert [b.count('"1"') for (b,) in bodies] == [1, 0, 1]
        assert store.read_manifest() == {"version": "1"}

    def test_run_id_index_returns_what_was_kept_from_position_zero(self, store):
        ids = bytes(range(16)) * 3
        assert store.run_id_index("k") == b""
        store.extend_run_id_index("k", 1, ids[16:])
        assert store.run_id_index("k") == b""  # position 0 is missing
        store.extend_run_id_index("k", 0, ids[:32])
        assert store.run_id_index("k") == ids
        store.extend_run_id_index("k", 0, b"\xff" * 16)  # a second write of position 0
        assert store.run_id_index("k") == ids  # is ignored: the first one stays
        store.extend_run_id_index("k", 2, b"\xff" * 16)  # disagrees with what is kept
        assert store.run_id_index("k") == b""  # planners disagree: trust none of it

    def test_put_artifact_without_an_artifacts_folder_names_the_fix(
        self, postgres_dsn, postgres_schema
    ):
        store = PostgresStore(postgres_dsn, schema=postgres_schema)
        with pytest.raises(InvalidArgumentError, match="artifacts="):
            store.put_artifact("r", "w", "w.bin", b"x", kind="bytes")
        store.close()

    def test_open_store_takes_a_dsn_with_schema_and_artifacts_options(
        self, store, postgres_dsn, postgres_schema, tmp_path
    ):
        store.put_record(make_record("a"))
        for scheme in ("postgresql", "postgres"):
            url = postgres_dsn.replace("postgresql", scheme, 1)
            opened = open_store(f"{url}?schema={postgres_schema}&artifacts={tmp_path}/art")
            assert isinstance(opened, PostgresStore)
            assert opened.run_states() == {"a": (SUCCESS, 1)}
            assert opened.location == store.location.replace("postgresql", scheme, 1)
            opened.close()

    def test_a_missing_store_is_an_error_for_readers(self, postgres_dsn):
        with pytest.raises(InvalidArgumentError, match="no metalab store in schema 'nothing'"):
            open_store(f"{postgres_dsn}?schema=nothing", create=False)

    def test_pickles_as_its_dsn_and_options_without_the_connection(self, store):
        copy = pickle.loads(pickle.dumps(store))
        assert copy.location == store.location and copy._conn is not store._conn

    def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(self, store):
        store.put_record(make_record("parent-before"))
        pid = os.fork()
        if pid == 0:  # the child: write through the inherited store, then exit at once
            code = 0
            try:
                store.put_record(make_record("child"))
                store.close()
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's own connection still works: the child neither used nor closed it.
        store.put_record(make_record("parent-after"))
        assert set(store.run_states()) == {"parent-before", "child", "parent-after"}


def test_three_writer_processes_at_once_lose_nothing(postgres_dsn, postgres_schema):
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    writer = textwrap.dedent(
        """
        import sys
        from metalab.record import RunRecord
        from metalab.store import PostgresStore

        store = pickle_target = PostgresStore(sys.argv[1], schema=sys.argv[2])
        name = sys.argv[3]
        for batch in range(20):
            bodies = [
                RunRecord(run_id=f"{name}-{batch}-{i}", experiment="e", version="1",
                          case_index=i, replicate_index=0, params={"i": i}, seeds={},
                          status="success", finished_at="2026-01-01T00:00:00Z").to_json()
                for i in range(25)
            ]
            store.put_records_json(bodies)
            store.put_record(RunRecord.from_dict({**__import__("json").loads(bodies[0]),
                                                  "run_id": f"{name}-{batch}-single"}))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", writer, postgres_dsn, postgres_schema, name])
        for name in ("w0", "w1", "w2")
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    states = store.run_states()
    assert len(states) == 3 * 20 * 26
    assert set(states.values()) == {(SUCCESS, 1)}
    store.close()
