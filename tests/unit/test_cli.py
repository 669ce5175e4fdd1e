"""The metalab command, called in-process on stores made by real sweeps.

Stores: one from metalab.run with failures, NaN and artifacts (serial); one from
`metalab run --workers 2` (process executor); one from `python -m metalab run` killed
with SIGKILL half-way. Read commands are checked to leave every store file as it was.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import metalab
from metalab import cli
from metalab.errors import InvalidArgumentError

COMMANDS = ["run", "ls", "status", "show", "failed", "table", "diff"]
READ_COMMANDS = ["status", "show", "failed", "table", "diff"]


# ---------------------------------------------------------------- stores from real sweeps


@metalab.operation(name="mixed", version="2")
def mixed(params, seeds, capture):
    x = params["x"]
    print(f"working on x={x}")
    capture.log(f"x={x} mode={params['mode']}")
    if x == 3:
        raise ValueError("x=3 is bad")
    if x == 4:
        raise KeyError("no entry for x=4")
    for step in range(3):
        capture.metric("loss", 1.0 / (step + 1 + x), step=step)
    capture.metric("y", x + seeds.rng().random())
    capture.metric("ratio", math.nan if x == 2 else 0.5)
    capture.artifact("config", {"x": x})


PROCESS_SCRIPT = """
import os
import metalab
from scaling import scale  # a sibling module: workers must find it on sys.path

OFFSET = 0.5


def shifted(x):  # defined in the script, so shipped to the workers by value
    return scale(x) + OFFSET


@metalab.operation(name="scaled", version="1")
def scaled(params, capture):
    capture.metric("y", shifted(params["x"]))
    capture.metric("pid", os.getpid())


exp = metalab.Experiment(
    "scaled", "1", {}, scaled, metalab.grid(x=list(range(8))), metalab.seeds(1, 1)
)
"""

SLOW_SCRIPT = """
import time
import metalab


@metalab.operation(name="slow", version="1")
def slow(params, seeds, capture):
    time.sleep(0.02)
    capture.metric("v", seeds.rng().random() + params["x"])


exp = metalab.Experiment(
    "slow", "1", {}, slow, metalab.grid(x=list(range(150))), metalab.seeds(3, 2)
)
"""

SQUARE_SCRIPT = """
import pathlib
import metalab


@metalab.operation(name="square", version="1")
def square(params, seeds, capture):
    print(f"x={params['x']}")
    if params["x"] == FAIL_AT:
        raise RuntimeError("failing on purpose")
    capture.metric("y", params["x"] ** 2 + seeds.rng().random())


FAIL_AT = None
exp = metalab.Experiment(
    "square", "1", {}, square, metalab.grid(x=[1, 2, 3]), metalab.seeds(0, 2)
)

if __name__ == "__main__":
    pathlib.Path(__file__).with_name("main-block-ran").write_text("yes")
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def call(*argv: object) -> tuple[int, str, str]:
    """Run the command in-process where capsys is not at hand (module fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli_run(capsys):
    def run(*argv: object) -> tuple[int, str, str]:
        code = cli.main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli") / "runs"


@pytest.fixture(scope="module")
def mixed_store(root) -> Path:
    exp = metalab.Experiment(
        "mixed",
        "2",
        {},
        mixed,
        metalab.grid(x=[1, 2, 3, 4], mode=["a", "b"]),
        metalab.seeds(base=5, replicates=2),
    )
    metalab.run(exp, store=root / "mixed")
    return root / "mixed"


@pytest.fixture(scope="module")
def process_sweep(root, tmp_path_factory) -> SimpleNamespace:
    scripts = tmp_path_factory.mktemp("scripts")
    write(scripts, "scaling.py", "def scale(x):\n    return 10 * x\n")
    script = write(scripts, "scaled.py", PROCESS_SCRIPT)
    store = root / "scaled"
    code, out, err = call("run", script, "--workers", "2", "--store", store, "--no-progress")
    return SimpleNamespace(store=store, code=code, out=out, err=err)


@pytest.fixture(scope="module")
def killed_sweep(root, tmp_path_factory) -> SimpleNamespace:
    """A `python -m metalab run` sweep: status taken while it runs, then SIGKILL."""
    script = write(tmp_path_factory.mktemp("slow"), "slow.py", SLOW_SCRIPT)
    store = root / "nested" / "slow"
    proc = subprocess.Popen(
        [sys.executable, "-m", "metalab", "run", str(script), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_record_lines(store)) < 10:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep wrote no records"
            time.sleep(0.05)
        running = call("status", store)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    return SimpleNamespace(store=store, running=running, total=300)


def _record_lines(store: Path) -> list[str]:
    return [
        line
        for segment in (store / "records").glob("*.jsonl")
        for line in segment.read_text().splitlines()
    ]


def snapshot(folder: Path) -> dict[str, tuple[bool, int, int]]:
    """Every entry under ``folder``: (is a folder, size, mtime in ns)."""
    return {
        path.relative_to(folder).as_posix(): (
            path.is_dir(),
            path.stat().st_size,
            path.stat().st_mtime_ns,
        )
        for path in folder.rglob("*")
    }


def results(store: Path) -> metalab.Results:
    return metalab.load_results(store)


# ------------------------------------------------------------------------------- help


def test_help_names_every_command(cli_run):
    code, out, _ = cli_run("--help")
    assert code == 0
    for name in COMMANDS:
        assert f"\n    {name} " in out
    assert "--traceback" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_a_description_and_an_example(cli_run, command):
    code, out, _ = cli_run(command, "--help")
    assert code == 0
    assert out.startswith(f"usage: metalab {command}")
    assert "example" in out and f"\n  metalab {command} " in out


def test_no_command_prints_help_to_stderr_and_exits_2(cli_run):
    code, out, err = cli_run()
    assert (code, out) == (cli.EXIT_ERROR, "")
    assert "usage: metalab" in err


def test_a_usage_error_exits_2(cli_run):
    code, _, err = cli_run("run", "x.py", "--workers", "0")
    assert code == 2
    assert "--workers: must be a whole number >= 1, got '0'" in err


# -------------------------------------------------------------------------------- run


def test_run_runs_the_only_experiment_without_the_scripts_main_block(
    cli_run, tmp_path, monkeypatch
):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli_run("run", "square.py", "--no-progress")
    assert code == 0
    assert out == "square 1: 6 done, 0 failed, 0 skipped (done before) of 6; store: runs/square\n"
    assert len(results(tmp_path / "runs" / "square").successful) == 6
    assert not (script.parent / "main-block-ran").exists()
    assert sys.argv[0] != "square.py" and str(tmp_path) not in sys.path, "restored"


def test_run_again_skips_the_runs_done_before(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    cli_run("run", script, "--store", tmp_path / "s", "--no-progress")
    code, out, _ = cli_run("run", script, "--store", tmp_path / "s", "--no-progress")
    assert code == 0
    assert "0 done, 0 failed, 6 skipped (done before) of 6" in out


def test_run_exits_1_when_runs_failed_and_points_at_metalab_failed(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT.replace("FAIL_AT = None", "FAIL_AT = 2"))
    code, out, _ = cli_run("run", script, "--store", tmp_path / "s", "--no-progress")
    assert code == cli.EXIT_RUNS_FAILED
    assert "4 done, 2 failed, 0 skipped" in out
    assert out.rstrip().endswith(f"see: metalab failed {tmp_path / 's'}")


SLEEPY_SCRIPT = """
import time
import metalab

@metalab.operation(name="sleepy")
def sleepy(params, capture):
    time.sleep(params["s"])
    capture.metric("slept", params["s"])

exp = metalab.Experiment("sleepy", "1", {}, sleepy, metalab.grid(s=[0.0, 30.0]), metalab.seeds(1))
"""


def test_run_with_a_timeout_records_the_slow_run_as_failed(cli_run, tmp_path):
    script = write(tmp_path, "sleepy.py", SLEEPY_SCRIPT)
    code, out, _ = cli_run("run", script, "--store", tmp_path / "s", "--timeout", "0.3",
                           "--no-progress")  # fmt: skip
    assert code == cli.EXIT_RUNS_FAILED and "1 done, 1 failed" in out
    [late] = results(tmp_path / "s").failed
    assert late.params["s"] == 30.0 and late.record.error["type"] == "RunTimeout"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
def test_a_timeout_that_is_not_seconds_is_a_usage_error(cli_run, value):
    code, _, err = cli_run("run", "x.py", "--timeout", value)
    assert code == 2 and f"--timeout: must be a number of seconds > 0, got {value!r}" in err


def test_run_with_progress_reports_on_stderr(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    code, _, err = cli_run("run", script, "--store", tmp_path / "s")
    assert code == 0
    assert "metalab: 6 done, 0 failed, 0 skipped of 6" in err


def test_run_with_workers_ships_script_functions_to_worker_processes(process_sweep):
    assert process_sweep.code == 0, process_sweep.err
    assert "scaled 1: 8 done, 0 failed, 0 skipped (done before) of 8" in process_sweep.out
    runs = results(process_sweep.store)
    assert [run.metrics["y"] for run in runs] == [10 * x + 0.5 for x in range(8)]
    assert os.getpid() not in {run.metrics["pid"] for run in runs}


def test_run_of_a_script_with_several_experiments_needs_a_name(cli_run, tmp_path):
    script = write(
        tmp_path,
        "two.py",
        SQUARE_SCRIPT + "\nother = metalab.Experiment('other', '1', {}, square, "
        "metalab.grid(x=[5]), metalab.seeds(0))\nalias = other\n",
    )
    code, out, err = cli_run("run", script, "--no-progress")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "defines 2 experiments (alias, exp, other)" in err
    assert f"'metalab run {script}:alias'" in err

    store = tmp_path / "other-store"
    code, out, _ = cli_run("run", f"{script}:other", "--store", store, "--no-progress")
    assert code == 0 and "other 1: 1 done" in out
    assert results(store)[0].params == {"x": 5}


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        (":nothing", "defines no name 'nothing'; its experiments: exp."),
        (":square", "'square' is of type Operation, not a metalab.Experiment"),
    ],
)
def test_run_refuses_a_name_that_is_not_an_experiment(cli_run, tmp_path, suffix, message):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    code, _, err = cli_run("run", f"{script}{suffix}")
    assert code == 2 and message in err and err.count("\n") == 1


def test_run_refuses_a_script_without_experiment_or_missing(cli_run, tmp_path):
    empty = write(tmp_path, "empty.py", "x = 1\n")
    code, _, err = cli_run("run", empty)
    assert code == 2 and "defines no metalab.Experiment at module level" in err
    code, _, err = cli_run("run", tmp_path / "missing.py")
    assert code == 2 and "there is no file" in err and "missing.py" in err
    code, _, err = cli_run("run", tmp_path)
    assert code == 2 and "is a folder, not a script" in err


def test_a_script_that_fails_to_load_is_one_line_or_its_stack(cli_run, tmp_path):
    script = write(tmp_path, "broken.py", "import metalab\nvalue = 1 / 0\n")
    code, out, err = cli_run("run", script)
    assert (code, out) == (2, "")
    assert err == (
        f"error: metalab run {script}: the script raised ZeroDivisionError while loading: "
        f"division by zero; fix the script (--traceback shows where).\n"
    )
    with pytest.raises(InvalidArgumentError) as info:
        cli.main(["--traceback", "run", str(script)])
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_run_refuses_a_serial_executor_with_several_workers(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    code, _, err = cli_run("run", script, "--executor", "serial", "--workers", "3")
    assert code == 2 and "--executor serial runs one run at a time" in err
    assert not (tmp_path / "runs").exists()


def test_run_on_a_local_dask_cluster(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    code, out, _ = cli_run("run", script, "--store", tmp_path / "s", "--executor", "dask",
                           "--workers", "2", "--no-progress")  # fmt: skip
    assert code == 0 and "6 done, 0 failed" in out
    assert os.getpid() not in {run.record.pid for run in results(tmp_path / "s")}  # in workers


def test_a_scheduler_without_the_dask_executor_is_refused(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    code, _, err = cli_run("run", script, "--scheduler", "tcp://127.0.0.1:8786")
    assert code == 2 and "add --executor dask" in err


def test_run_with_a_thread_executor(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    argv = ["run", script, "--executor", "thread", "--workers", "2", "--no-progress"]
    code, out, _ = cli_run(*argv, "--store", tmp_path / "s")
    assert code == 0 and "6 done" in out
    assert {run.record.worker.split(":")[-1] for run in results(tmp_path / "s")} != {"MainThread"}


def test_no_resume_refuses_a_used_store_and_overwrite_runs_all_again(cli_run, tmp_path):
    script = write(tmp_path, "square.py", SQUARE_SCRIPT)
    store = tmp_path / "s"
    cli_run("run", script, "--store", store, "--no-progress")
    code, _, err = cli_run("run", script, "--store", store, "--no-resume", "--no-progress")
    assert code == 2 and "drop --no-resume to continue it, add --overwrite" in err
    code, out, _ = cli_run("run", script, "--store", store, "--overwrite", "--no-progress")
    assert code == 0 and "6 done, 0 failed, 0 skipped" in out
    assert {run.record.attempt for run in results(store)} == {2}


# --------------------------------------------------------------------------------- ls


def test_ls_lists_every_store_under_the_root_with_counts(
    cli_run, root, mixed_store, process_sweep, killed_sweep
):
    write(root / "not-a-store", "notes.txt", "hello")
    code, out, err = cli_run("ls", root)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "store",
        "name",
        "version",
        "done",
        "failed",
        "total",
        "last",
        "activity",
    ]
    rows = {line.split()[0]: line.split()[1:6] for line in lines[2:]}
    killed_done = len(results(killed_sweep.store))
    assert rows == {
        str(mixed_store): ["mixed", "2", "8", "8", "16"],
        str(killed_sweep.store): ["slow", "1", str(killed_done), "0", "300"],
        str(process_sweep.store): ["scaled", "1", "8", "0", "8"],
    }
    assert all(line.endswith(" ago)") for line in lines[2:])


def test_ls_without_stores_or_root(cli_run, tmp_path):
    assert cli_run("ls", tmp_path) == (0, f"no metalab stores under {tmp_path}\n", "")
    code, _, err = cli_run("ls", tmp_path / "nowhere")
    assert code == 2 and err.startswith("error: metalab ls") and "does not exist" in err


def test_ls_defaults_to_runs_in_the_working_folder(cli_run, mixed_store, monkeypatch):
    monkeypatch.chdir(mixed_store.parent.parent)
    code, out, _ = cli_run("ls")
    assert code == 0 and "runs/mixed" in out


# ----------------------------------------------------------------------------- status


def test_status_of_a_finished_sweep_with_failures(cli_run, mixed_store):
    code, out, _ = cli_run("status", mixed_store)
    assert code == 0
    fields = dict(line.split(":  ", 1) for line in out.splitlines())
    assert fields["experiment"].strip() == "mixed 2"
    assert fields["done"].strip() == "8 of 16"
    assert fields["failed"].strip() == "8"
    assert fields["pending"].strip() == "0"
    assert fields["state"].strip().startswith("finished, 8 failed")
    assert "ETA" not in fields


def test_status_of_a_complete_sweep(cli_run, process_sweep):
    code, out, _ = cli_run("status", process_sweep.store)
    assert code == 0 and "state:       complete" in out and "pending:     0" in out


def test_status_follows_a_sweep_while_it_runs_and_after_it_was_killed(cli_run, killed_sweep):
    code, out, err = killed_sweep.running
    assert (code, err) == (0, "")
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    assert fields["state"] == "running"
    assert float(fields["rate"].split()[0]) > 0
    assert fields["ETA"][-1] in "smhd"

    code, out, _ = cli_run("status", killed_sweep.store)
    fields = {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    done = len(results(killed_sweep.store))
    assert 10 <= done < killed_sweep.total
    assert fields["done"] == f"{done} of {killed_sweep.total}"
    assert fields["pending"] == str(killed_sweep.total - done)
    assert fields["state"].startswith("stopped")
    assert "ETA" not in fields


# ------------------------------------------------------------------------------- show


def test_show_prints_a_run_found_by_a_prefix(cli_run, mixed_store):
    run = results(mixed_store).filter(x=1, mode="b")[1]
    code, out, _ = cli_run("show", mixed_store, run.run_id[:8])
    assert code == 0
    assert out.startswith(f"run {run.run_id}  (mixed 2)\n  status:    success\n")
    sections = out.split("\n\n")
    assert sections[1] == "params\n  mode:  b\n  x:     1"
    assert sections[2] == "seeds\n  root_seed:        5\n  replicate_index:  1"
    assert f"  y:      {run.metrics['y']!r}" in sections[3]
    assert sections[4].startswith("artifacts\n  config:  json")
    assert sections[5].startswith("logs\n") and "x=1 mode=b" in sections[5]
    assert sections[6] == "stdout\n  working on x=1\n"
    assert "error" not in out


def test_show_prints_the_error_and_traceback_of_a_failed_run(cli_run, mixed_store):
    run = results(mixed_store).filter(x=3)[0]
    code, out, _ = cli_run("show", mixed_store, run.run_id)
    assert code == 0
    error = out.split("\nerror\n")[1]
    assert error.startswith("  ValueError: x=3 is bad\n  Traceback (most recent call last):")
    assert 'raise ValueError("x=3 is bad")' in error


def test_show_tail_limits_stdout(cli_run, mixed_store):
    run = results(mixed_store)[0]
    code, out, _ = cli_run("show", mixed_store, run.run_id, "--tail", "1")
    assert code == 0 and "stdout\n  working on x=1" in out


def test_show_refuses_an_ambiguous_or_unknown_run_id(cli_run, mixed_store):
    ids = sorted(run.run_id for run in results(mixed_store))
    # The longest prefix two run IDs share ('' when none: it matches every run). IDs are
    # not paths: a prefix by character is meant.
    shared = max((os.path.commonprefix(pair) for pair in itertools.pairwise(ids)), key=len)  # noqa: RUF071
    code, _, err = cli_run("show", mixed_store, shared)
    assert code == 2 and err.count("\n") == 1
    assert f"{shared!r} matches" in err and "give more digits" in err
    code, _, err = cli_run("show", mixed_store, "zz")
    assert code == 2 and "no run ID starts with 'zz' among the 16 run(s)" in err


# ----------------------------------------------------------------------------- failed


def test_failed_groups_failures_by_type_and_message_with_one_traceback_each(cli_run, mixed_store):
    code, out, _ = cli_run("failed", mixed_store)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "8 failed run(s) of 16, in 2 group(s)"
    headers = [line for line in lines if " x " in line and not line.startswith(" ")]
    assert headers == ["4 x ValueError: x=3 is bad", "4 x KeyError: 'no entry for x=4'"]
    assert out.count("Traceback (most recent call last):") == 2
    ids = {run.run_id[:12] for run in results(mixed_store).filter(x=3)}
    assert set(lines[lines.index(headers[0]) + 1].split(": ")[1].split(", ")) == ids


def test_failed_on_a_store_without_failures(cli_run, process_sweep):
    assert cli_run("failed", process_sweep.store) == (
        0,
        "no failed runs (8 run(s) in the store)\n",
        "",
    )


# ------------------------------------------------------------------------------ table


def test_table_prints_aligned_rows_with_short_run_ids(cli_run, mixed_store):
    code, out, _ = cli_run("table", mixed_store)
    assert code == 0
    lines = out.splitlines()
    assert (
        " ".join(lines[0].split()) == "run_id status mode x loss y ratio replicate_index duration"
    )
    assert set(lines[1]) == {"-", " "}
    first = results(mixed_store)[0]
    assert lines[2].split()[:4] == [first.run_id[:12], "success", "a", "1"]
    assert len(lines) == 2 + 16
    assert len({len(line) for line in lines[:2]}) == 1, "header and rule line up"


def test_table_group_by_prints_the_summary_across_replicates(cli_run, mixed_store):
    code, out, _ = cli_run("table", mixed_store, "--group-by", "mode", "x")
    assert code == 0
    lines = out.splitlines()
    assert " ".join(lines[0].split()) == "mode x metric mean std ci95_low ci95_high count nonfinite"
    summary = results(mixed_store).summary(group_by=["mode", "x"])
    assert len(lines) == 2 + len(summary)
    nan_row = next(line.split() for line in lines if line.split()[:3] == ["a", "2", "ratio"])
    assert nan_row[3:] == ["0", "2"], "no finite value: no statistics, count 0, 2 non-finite"


def test_table_csv_on_stdout_holds_the_results_table(cli_run, mixed_store):
    code, out, _ = cli_run("table", mixed_store, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = results(mixed_store).table()
    assert [row["run_id"] for row in rows] == [row["run_id"] for row in expected]
    assert [row["y"] for row in rows] == ["" if r["y"] is None else repr(r["y"]) for r in expected]
    assert {row["ratio"] for row in rows} == {"0.5", "nan", ""}


def test_table_json_and_parquet_files(cli_run, mixed_store, tmp_path):
    code, out, _ = cli_run("table", mixed_store, "-o", tmp_path / "t.json")
    assert (code, out) == (0, f"wrote 16 row(s) to {tmp_path / 't.json'}\n")
    rows = json.loads((tmp_path / "t.json").read_text())
    expected = results(mixed_store).table()
    assert [row["run_id"] for row in rows] == [row["run_id"] for row in expected]
    assert {row["ratio"] for row in rows} == {0.5, None}, "NaN is null, as in Results.to_json"

    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out_file = tmp_path / "summary.parquet"
    code, _, _ = cli_run(
        "table", mixed_store, "--group-by", "x", "--format", "parquet", "-o", out_file
    )
    assert code == 0
    frame = pandas.read_parquet(out_file)
    assert list(frame.columns[:2]) == ["x", "metric"]
    assert len(frame) == len(results(mixed_store).summary(group_by="x"))


def test_table_refusals(cli_run, mixed_store):
    code, _, err = cli_run("table", mixed_store, "--format", "parquet")
    assert code == 2 and "pass -o FILE.parquet" in err
    code, _, err = cli_run("table", mixed_store, "-o", mixed_store / "t.csv")
    assert code == 2 and "inside the store, which this command only reads" in err
    code, _, err = cli_run("table", mixed_store, "--group-by", "lr")
    assert (
        code == 2
        and "'lr' is not a param of these runs" in err
        and "group by some of: mode, x." in err
    )
    code, _, err = cli_run("table", mixed_store, "--format", "xml")
    assert code == 2 and "invalid choice: 'xml'" in err


def test_table_is_a_rich_table_on_a_terminal(mixed_store, monkeypatch):
    pytest.importorskip("rich")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert cli.main(["table", str(mixed_store), "--group-by", "mode"]) == 0
    shown = terminal.getvalue()
    assert "│" in shown or "┃" in shown
    assert "ratio" in shown and "mode" in shown


# ------------------------------------------------------------------------------- diff


def test_diff_shows_two_runs_side_by_side_marking_differences(cli_run, mixed_store):
    a, b = results(mixed_store).filter(x=1, mode="a")
    code, out, _ = cli_run("diff", mixed_store, a.run_id[:10], b.run_id)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split() == [a.run_id[:12], b.run_id[:12]]
    rows = {line[2:].split()[0]: line for line in lines if line[:2] in ("* ", "  ")}
    assert rows["x"].startswith("  ") and rows["mode"].startswith("  ")
    assert rows["replicate_index"].startswith("* ")
    assert rows["y"].split()[1:] == ["y", repr(a.metrics["y"]), repr(b.metrics["y"])]
    assert rows["y"].startswith("* ") and rows["loss"].startswith("  ")
    assert rows["started_at"].startswith("* ")
    assert "equal entries hidden; --all shows them" in out
    assert not any(key.startswith("experiment.") for key in rows), "equal, so hidden"
    _, full, _ = cli_run("diff", mixed_store, a.run_id, b.run_id, "--all")
    assert "\n  experiment.environment.python.version " in full


# ----------------------------------------------------------------- read-only, refusals


def _read_commands(store: Path, tmp_path: Path) -> list[list[object]]:
    ids = [run.run_id for run in results(store)]
    return [
        ["status", store],
        ["show", store, ids[0][:10]],
        ["failed", store],
        ["table", store],
        ["table", store, "--format", "json"],
        ["table", store, "--group-by", next(iter(results(store)[0].params))],
        ["table", store, "-o", tmp_path / "out.csv"],
        ["diff", store, ids[0], ids[-1], "--all"],
        ["ls", store.parent],
    ]


@pytest.mark.parametrize("which", ["mixed_store", "process_sweep", "killed_sweep"])
def test_read_commands_leave_the_store_unchanged(request, cli_run, tmp_path, which):
    made = request.getfixturevalue(which)
    store = made if isinstance(made, Path) else made.store
    before = snapshot(store)
    for argv in _read_commands(store, tmp_path):
        code, out, err = cli_run(*argv)
        assert (code, err) == (0, ""), argv
        assert out
        assert snapshot(store) == before, argv


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_refuse_a_folder_that_is_not_a_store_without_writing(
    cli_run, tmp_path, command
):
    folder = tmp_path / "plain"
    write(folder, "data.txt", "mine")
    before = snapshot(folder)
    extra = {"show": ["abc"], "diff": ["abc", "def"]}.get(command, [])
    code, out, err = cli_run(command, folder, *extra)
    assert (code, out) == (2, "")
    assert err == (
        f"error: metalab {command} {folder}: {str(folder)!r} is not a metalab store (it has "
        f"no manifest.json and no records/ folder); pass a store folder, e.g. one "
        f"'metalab ls' lists.\n"
    )
    assert snapshot(folder) == before
    assert not (folder / "README.md").exists()


def test_a_file_store_opened_for_reading_writes_no_readme(tmp_path):
    # What the read commands rely on, beyond their own check for a store's files.
    metalab.FileStore(tmp_path, create=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READ_COMMANDS)
def test_read_commands_refuse_a_file_and_a_missing_path_in_one_line(cli_run, tmp_path, command):
    extra = {"show": ["abc"], "diff": ["abc", "def"]}.get(command, [])
    file = write(tmp_path, "a-file", "x")
    code, _, err = cli_run(command, file, *extra)
    assert code == 2 and err.count("\n") == 1 and "is a file, but a store is a folder" in err
    code, _, err = cli_run(command, tmp_path / "gone", *extra)
    assert code == 2 and err.count("\n") == 1 and "there is no folder" in err
    assert not (tmp_path / "gone").exists()


def test_the_folder_of_stores_is_refused_naming_the_stores_in_it(cli_run, root, mixed_store):
    code, _, err = cli_run("status", root)
    assert code == 2 and err.count("\n") == 1
    assert f"it holds the store(s) {mixed_store}" in err and err.endswith("pass one of them.\n")


def test_ctrl_c_is_one_error_line_with_exit_status_130(cli_run, mixed_store, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_status", interrupted)
    assert cli_run("status", mixed_store) == (130, "", "error: interrupted.\n")
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--traceback", "status", str(mixed_store)])


def test_a_damaged_manifest_is_one_error_line(cli_run, process_sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(process_sweep.store, copy)
    (copy / "manifest.json").write_text("{not json")
    code, out, err = cli_run("status", copy)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1 and "is not valid JSON" in err


def test_a_torn_record_is_one_warning_line_and_the_rest_is_read(cli_run, process_sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(process_sweep.store, copy)
    segment = next((copy / "records").glob("*.jsonl"))
    with segment.open("ab") as file:
        file.write(b'0badc0de {"run_id": "torn')  # a write cut short by a crash
    code, out, err = cli_run("status", copy)
    assert code == 0 and "done:        8 of 8" in out
    assert err.count("\n") == 1 and err.startswith("warning: ") and "incomplete" in err


def test_traceback_flag_before_or_after_the_command_shows_the_stack(tmp_path):
    for argv in (
        ["--traceback", "status", str(tmp_path)],
        ["status", str(tmp_path), "--traceback"],
    ):
        with pytest.raises(InvalidArgumentError, match="is not a metalab store"):
            cli.main(argv)


# ---------------------------------------------------------------------- entry points


def test_python_m_metalab_and_the_console_script_show_help():
    entry_points = [[sys.executable, "-m", "metalab"]]
    script = Path(sys.executable).with_name("metalab")
    if script.exists():  # installed by `pip install -e .` from [project.scripts]
        entry_points.append([str(script)])
    for entry in entry_points:
        done = subprocess.run([*entry, "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("usage: metalab ")
        assert all(f"\n    {name} " in done.stdout for name in COMMANDS)


def test_the_command_needs_only_the_standard_library():
    code = (
        "import sys; before = set(sys.modules); import metalab.cli; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    foreign = [
        name
        for name in done.stdout.split()
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "metalab"
    ]
    assert foreign == []
