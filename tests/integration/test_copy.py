"""Copying experiments between stores (Store.copy_to, metalab copy), on a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import metalab
from metalab import cli
from metalab.errors import InvalidArgumentError
from metalab.record import SUCCESS, RunRecord
from metalab.store import FileStore, open_store


@metalab.operation(name="copied", version="1")
def stepped(params, seeds, capture):
    rng = seeds.rng()
    for step in range(3):
        capture.metric("loss", 1.0 / (step + 1) + rng.random(), step=step)
    capture.metric("x2", params["x"] ** 2)
    capture.artifact("table", {"x": params["x"], "draw": rng.random()})
    capture.artifact("blob", bytes(range(params["x"] * 10)), kind="bytes")
    capture.log(f"x is {params['x']}")
    print("printed", params["x"])
    if params["x"] == 2:
        raise ValueError("two fails")


def experiment(version: str = "1") -> metalab.Experiment:
    return metalab.Experiment(
        name="copied",
        version=version,
        context={},
        operation=stepped,
        params=metalab.grid(x=[1, 2, 3]),
        seeds=metalab.seeds(base=7, replicates=2),
    )


@pytest.fixture
def source(tmp_path) -> FileStore:
    """A file store of 6 runs, each run twice (earlier attempts kept), one case failing."""
    store = FileStore(tmp_path / "source")
    metalab.run(experiment(), store=store)
    metalab.run(experiment(), store=store, overwrite=True)
    store.put_experiment_file("notes.txt", b"kept with the experiment")
    store.put_verification({"verified": 6, "equal": True})
    return store


@pytest.fixture
def dsn(postgres_dsn, postgres_schema, tmp_path) -> str:
    """A whole PostgreSQL store DSN: server, a fresh schema, an artifacts folder."""
    return f"{postgres_dsn}?schema={postgres_schema}&artifacts={tmp_path}/pg-artifacts"


@pytest.fixture(params=["file", "postgres"])
def target(request, tmp_path) -> str:
    """Where a copy goes: a new folder, or a new PostgreSQL schema."""
    if request.param == "file":
        return str(tmp_path / "target")
    return request.getfixturevalue("dsn")


def same_content(a, b) -> None:
    """Assert that two stores hold the same records, steps, logs and files, run by run."""
    assert Counter(a.all_records_json()) == Counter(b.all_records_json())
    same_manifests(a.manifest_history(), b.manifest_history())
    assert a.verifications() == b.verifications() == [{"verified": 6, "equal": True}]
    assert a.experiment_files() == b.experiment_files()
    for path in a.experiment_files():
        assert a.read_file(path) == b.read_file(path)
    ours, theirs = metalab.load_results(a), metalab.load_results(b)
    assert len(ours) == len(theirs) == 6
    copies = {run.run_id: run for run in theirs}
    for run in ours:
        copy = copies[run.run_id]
        assert copy.record == run.record
        assert copy.steps("loss") == run.steps("loss")
        assert (copy.logs, copy.stdout, copy.stderr) == (run.logs, run.stdout, run.stderr)
        if run.status == SUCCESS:
            assert copy.artifact("table") == run.artifact("table")
            assert copy.artifact("blob") == run.artifact("blob")
        for ref in run.record.artifacts:
            assert hash_of(b.artifact_path(ref)) == ref.sha256 == hash_of(a.artifact_path(ref))


def same_manifests(ours: list[dict], theirs: list[dict]) -> None:
    """Assert the same manifests, the same current one last.

    In any order before it: a file store orders manifests written within one tick of
    the file system's clock by their hash.
    """
    assert sorted(map(json.dumps, ours)) == sorted(map(json.dumps, theirs))
    assert ours[-1] == theirs[-1]


def hash_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(params=["file", "postgres"])
def empty(request, tmp_path):
    """An empty store of each kind."""
    if request.param == "file":
        return FileStore(tmp_path / "empty")
    return open_store(request.getfixturevalue("dsn"))


def test_all_records_json_holds_every_attempt_in_write_order(empty):
    records = [
        RunRecord("r1", "e", "1", 0, 0, {}, {}, "failed"),
        RunRecord("r2", "e", "1", 1, 0, {}, {}, SUCCESS),
        RunRecord("r1", "e", "1", 0, 0, {}, {}, SUCCESS, attempt=2),
    ]
    for record in records:
        empty.put_record(record)
    assert empty.all_records_json() == [record.to_json() for record in records]
    assert len(empty.records_json()) == 2


def test_manifest_history_and_experiment_files_are_listed(empty):
    assert (empty.manifest_history(), empty.experiment_files()) == ([], [])
    for version in ("1", "2", "3"):
        empty.write_manifest({"name": "e", "version": version})
    same_manifests(empty.manifest_history(), [{"name": "e", "version": v} for v in "123"])
    empty.put_experiment_file("b.diff", b"b")
    empty.put_experiment_file("a.json", b"a")
    assert empty.experiment_files() == ["experiment/a.json", "experiment/b.diff"]


def test_round_trip_file_postgres_file_gives_identical_records_steps_and_files(
    source, dsn, tmp_path
):
    there = source.copy_to(dsn)
    back = open_store(dsn).copy_to(tmp_path / "back")
    same_content(source, open_store(dsn))
    same_content(source, FileStore(tmp_path / "back"))
    # Every attempt of every run, the files of both attempts' records, once each.
    for report in (there, back):
        assert (report.records, report.records_copied) == (12, 12)
        assert report.files == report.files_copied > 0
        assert report.verifications == report.verifications_copied == 1
        # notes.txt, and a git diff per manifest when the tree is dirty.
        assert report.experiment_files == len(source.experiment_files()) >= 1
        assert report.manifests_copied == len(source.manifest_history()) >= 1
        assert report.experiment == "copied" and report.version == "1"
        assert report.missing == ()


def test_a_second_copy_adds_nothing_and_a_later_one_only_what_is_new(source, target):
    first = source.copy_to(target)
    again = source.copy_to(target)
    assert (again.records_copied, again.files_copied, again.experiment_files_copied) == (0, 0, 0)
    assert again.manifests_copied == again.verifications_copied == 0
    assert again.records == first.records
    metalab.run(experiment(), store=source, overwrite=True)  # six more records
    later = source.copy_to(target)
    assert (later.records, later.records_copied) == (18, 6)
    assert Counter(open_store(target).all_records_json()) == Counter(source.all_records_json())
    assert "6 of 18 records" in later.summary()


def test_current_records_agree_after_a_copy(source, target):
    source.copy_to(target)
    copied = open_store(target)
    assert copied.run_states() == source.run_states()
    assert sorted(copied.records_json()) == sorted(source.records_json())


def test_a_damaged_file_in_the_target_is_copied_again(source, tmp_path):
    source.copy_to(tmp_path / "target")
    ref = next(iter(source.records())).artifacts[0]
    damaged = FileStore(tmp_path / "target").artifact_path(ref)
    damaged.write_bytes(b"bit rot")
    report = source.copy_to(tmp_path / "target")
    assert report.files_copied == 1 and report.records_copied == 0
    assert hash_of(damaged) == ref.sha256


def test_a_file_missing_in_the_source_is_reported_not_invented(source, tmp_path):
    ref = next(iter(source.records())).artifacts[0]
    source.artifact_path(ref).unlink()
    report = source.copy_to(tmp_path / "target")
    assert report.missing == (ref.path,)
    assert "1 file(s) missing in the source" in report.summary()
    assert not FileStore(tmp_path / "target").artifact_path(ref).exists()


def test_manifest_history_is_copied_in_order(source, tmp_path):
    source.write_manifest({**source.read_manifest(), "note": "edited"})
    history = source.manifest_history()
    assert len(history) >= 2 and history[-1]["note"] == "edited"
    report = source.copy_to(tmp_path / "target")
    assert report.manifests_copied == len(history)
    same_manifests(FileStore(tmp_path / "target").manifest_history(), history)
    assert source.copy_to(tmp_path / "target").manifests_copied == 0


def test_a_target_of_another_version_is_refused_naming_both(source, target):
    metalab.run(experiment("2"), store=target)
    before = (open_store(target).all_records_json(), open_store(target).manifest_history())
    with pytest.raises(InvalidArgumentError) as refused:
        source.copy_to(target)
    after = (open_store(target).all_records_json(), open_store(target).manifest_history())
    assert after == before  # refused before anything was written
    message = str(refused.value)
    assert "'copied' version '2'" in message and "'copied' version '1'" in message
    assert "new store" in message


def test_a_target_with_its_own_runs_of_the_same_version_is_merged(source, tmp_path):
    other = FileStore(tmp_path / "other")
    metalab.run(experiment(), store=other)  # the same version, written elsewhere
    report = source.copy_to(other)
    assert report.records_copied == 12
    assert len(other.all_records_json()) == 18
    assert other.read_manifest() == source.read_manifest()


def test_a_copy_onto_itself_is_refused(source, dsn):
    with pytest.raises(InvalidArgumentError, match="the same store"):
        source.copy_to(Path(source.location) / ".." / "source")
    store = open_store(dsn)
    with pytest.raises(InvalidArgumentError, match="the same store"):
        store.copy_to(dsn.replace("pg-artifacts", "elsewhere"))


def test_a_dsn_that_cannot_connect_says_where_and_why_without_the_password(source):
    dsn = "postgresql://me:s3cret-pw@127.0.0.1:1/nowhere"
    with pytest.raises(InvalidArgumentError) as refused:
        source.copy_to(dsn)
    message = str(refused.value)
    assert "cannot connect" in message and "127.0.0.1:1" in message
    assert "s3cret-pw" not in message


def test_a_postgres_target_without_an_artifacts_folder_names_the_fix(
    source, postgres_dsn, postgres_schema
):
    with pytest.raises(InvalidArgumentError, match=r"artifacts="):
        source.copy_to(f"{postgres_dsn}?schema={postgres_schema}")


# -- kill -9 mid-copy --------------------------------------------------------------------

_COPY_SCRIPT = textwrap.dedent(
    """
    import sys
    from metalab.store import open_store
    open_store(sys.argv[1], create=False).copy_to(sys.argv[2])
    """
)


def big_source(folder: Path, runs: int) -> FileStore:
    """A store of ``runs`` records in one attempt, every 10th run naming one file."""
    store = FileStore(folder)
    store.write_manifest({"name": "big", "version": "1"})
    bodies = []
    for i in range(runs):
        run_id = f"{i:032x}"
        refs = []
        if i % 10 == 0:
            refs = [store.put_artifact(run_id, "a", "a.bin", os.urandom(256), kind="bytes")]
        bodies.append(
            RunRecord(run_id, "big", "1", i, 0, {"i": i}, {}, SUCCESS, artifacts=refs).to_json()
        )
    store.put_records_json(bodies)
    return store


def held_records(target: str) -> int:
    """How many records the target holds now (0 before it exists)."""
    if "://" not in target and not Path(target, "records").is_dir():
        return 0
    try:
        return len(open_store(target, create=False).all_records_json())
    except InvalidArgumentError:  # the schema is not made yet
        return 0


def test_kill_9_mid_copy_then_a_second_copy_loses_nothing_and_doubles_nothing(
    tmp_path, target, recwarn
):
    source = big_source(tmp_path / "big", 6000)
    copying = subprocess.Popen(
        [sys.executable, "-c", _COPY_SCRIPT, source.location, target],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 120
    while held_records(target) == 0 and copying.poll() is None:
        assert time.monotonic() < deadline, "the copy wrote no record in 120 s"
        time.sleep(0.002)
    copying.send_signal(signal.SIGKILL)
    copying.wait()
    cut_short = held_records(target)
    assert 0 < cut_short < 6000, "the kill came after the copy ended: make the source bigger"

    report = source.copy_to(target)
    assert report.records_copied == 6000 - cut_short
    held = Counter(open_store(target).all_records_json())
    assert held == Counter(source.all_records_json())  # each record exactly once
    copied = open_store(target)
    for record in source.records():
        for ref in record.artifacts:
            assert hash_of(copied.artifact_path(ref)) == ref.sha256


# -- metalab copy ------------------------------------------------------------------------


def test_cli_copy_prints_one_line_per_experiment(source, target, capsys):
    assert cli.main(["copy", source.location, target]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("copied 1: 12 of 12 records")
    assert cli.main(["copy", source.location, target]) == 0
    assert "0 of 12 records" in capsys.readouterr().out


def test_cli_copies_each_store_of_a_folder_or_those_named(tmp_path, target, capsys):
    runs = tmp_path / "runs"
    metalab.run(experiment(), store=runs / "copied")
    other = FileStore(runs / "nested" / "other")
    other.write_manifest({"name": "other", "version": "3"})
    other.put_record(RunRecord("r", "other", "3", 0, 0, {}, {}, SUCCESS))

    assert cli.main(["copy", str(runs), target, "--experiment", "other"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nested/other: other 3: 1 of 1 records")
    assert cli.main(["copy", str(runs), target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["copied", "nested/other"]
    assert "0 of 1 records" in lines[1]


def test_cli_copy_refuses_an_experiment_name_it_cannot_find(source, tmp_path, capsys):
    status = cli.main(["copy", source.location, str(tmp_path / "t"), "--experiment", "nope"])
    assert status == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "'nope'" in err and "'copied'" in err


def test_cli_copy_help_has_an_example(capsys):
    assert cli.main(["copy", "--help"]) == 0
    assert "metalab copy runs/pi_mc" in capsys.readouterr().out
