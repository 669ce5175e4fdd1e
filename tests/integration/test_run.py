"""metalab.run end to end: the π example, executors, resume, failures, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import metalab
from metalab.errors import InvalidArgumentError, InvalidTypeError


@metalab.operation(name="pi_mc", version="0.1")
def estimate_pi(params, seeds, capture):
    n = params["n_samples"]
    rng = seeds.numpy()
    x, y = rng.random(n), rng.random(n)
    capture.metric("pi_estimate", 4.0 * (x**2 + y**2 <= 1).mean())


def pi_experiment(**overrides):
    spec = dict(
        name="pi_mc",
        version="0.1",
        context={},
        operation=estimate_pi,
        params=metalab.grid(n_samples=[1000, 10000, 100000]),
        seeds=metalab.seeds(base=42, replicates=3),
    )
    spec.update(overrides)
    return metalab.Experiment(**spec)


@metalab.operation(name="counted", version="1")
def counted(params, seeds, capture, context):
    # Appends one line per execution, so tests count executions, not just outputs.
    with open(context["log"], "a") as log:
        log.write(f"{params['x']} {seeds.replicate_index}\n")
    if params["x"] == context.get("fail_x"):
        raise ValueError(f"x={params['x']} is bad")
    capture.metric("y", params["x"] * 10 + seeds.rng().random())


def counted_experiment(tmp_path: Path, **context):
    log = tmp_path / "executions.log"
    return (
        metalab.Experiment(
            name="counted",
            version="1",
            context={"log": str(log), **context},
            operation=counted,
            params=metalab.grid(x=[1, 2, 3, 4]),
            seeds=metalab.seeds(base=7, replicates=2),
        ),
        log,
    )


def executions(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_pi_example_runs_nine_runs_with_stable_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = metalab.run(pi_experiment())
    assert (tmp_path / "runs" / "pi_mc").is_dir()
    assert len(result) == 9
    assert all(run.status == "success" for run in result)
    rows = result.table()
    assert [(row["n_samples"], row["replicate_index"]) for row in rows][:4] == [
        (1000, 0),
        (1000, 1),
        (1000, 2),
        (10000, 0),
    ]
    # The same numbers as the seeds-only demo: SeedBundle(42, 0).numpy() on 1000 points.
    assert rows[0]["pi_estimate"] == 3.064
    assert abs(rows[-1]["pi_estimate"] - 3.14159) < 0.02


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_executors_give_bit_identical_metrics_to_serial(tmp_path, executor):
    serial = metalab.run(pi_experiment(), store=tmp_path / "serial")
    other = metalab.run(pi_experiment(), store=tmp_path / executor, executor=executor)
    assert [r.run_id for r in other] == [r.run_id for r in serial]
    assert [r.metrics for r in other] == [r.metrics for r in serial]


def test_resume_skips_done_runs_and_retries_failures(tmp_path):
    exp, log = counted_experiment(tmp_path, fail_x=3)
    first = metalab.run(exp, store=tmp_path / "store")
    assert len(executions(log)) == 8
    assert len(first.successful) == 6 and len(first.failed) == 2
    failure = first.failed[0]
    assert failure.error["type"] == "ValueError"
    assert "x=3 is bad" in failure.error["traceback"]
    assert "runner.py" not in failure.error["traceback"], "starts at the user's frame"
    assert "in counted" in failure.error["traceback"]

    # Resuming executes the two failed runs again, and nothing else.
    second = metalab.run(exp, store=tmp_path / "store")
    assert len(executions(log)) == 10
    assert [e.split()[0] for e in executions(log)[8:]] == ["3", "3"]
    assert len(second) == 8
    assert {r.record.attempt for r in second.failed} == {2}


def test_rerun_of_a_finished_sweep_executes_nothing(tmp_path):
    exp, log = counted_experiment(tmp_path)
    metalab.run(exp, store=tmp_path / "s")
    again = metalab.run(exp, store=tmp_path / "s")
    assert len(executions(log)) == 8
    assert len(again.successful) == 8


def test_resume_false_on_a_used_store_is_refused_unless_overwrite(tmp_path):
    exp, log = counted_experiment(tmp_path)
    metalab.run(exp, store=tmp_path / "s")
    with pytest.raises(InvalidArgumentError, match="overwrite=True"):
        metalab.run(exp, store=tmp_path / "s", resume=False)
    result = metalab.run(exp, store=tmp_path / "s", resume=False, overwrite=True)
    assert len(executions(log)) == 16
    assert {r.record.attempt for r in result} == {2}


def test_store_of_another_version_is_refused_naming_both(tmp_path):
    metalab.run(pi_experiment(params=metalab.grid(n_samples=[10])), store=tmp_path / "s")
    with pytest.raises(InvalidArgumentError) as info:
        metalab.run(pi_experiment(version="0.2"), store=tmp_path / "s")
    assert "'0.1'" in str(info.value) and "'0.2'" in str(info.value)


def test_store_path_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "not-a-folder"
    path.write_text("x")
    with pytest.raises(InvalidArgumentError, match="not-a-folder"):
        metalab.run(pi_experiment(), store=path)


def test_operation_that_mutates_the_context_fails_that_run_only(tmp_path):
    @metalab.operation
    def mutate(params, context, capture):
        capture.metric("seen", context["seen"])
        if params["x"] == 1:
            context["seen"] = 99

    exp = metalab.Experiment(
        "mut", "1", {"seen": 0}, mutate, metalab.grid(x=[1, 2]), metalab.seeds(0)
    )
    result = metalab.run(exp, store=tmp_path / "s")
    assert result[0].status == "failed"
    assert result[0].error["type"] == "ContextMutatedError"
    assert result[1].status == "success"
    assert result[1].metrics == {"seen": 0}, "the next run sees the declared context"


def test_capture_outputs_land_in_the_store(tmp_path):
    @metalab.operation
    def rich_run(params, capture, runtime):
        print("hello from the run")
        capture.metric("loss", 1.0, step=0)
        capture.metric("loss", 0.5, step=1)
        capture.artifact("config", {"layers": 3})
        capture.log("done")
        runtime.logger.warning("careful")
        (runtime.output_dir / "model.txt").write_text("weights")

    exp = metalab.Experiment("rich", "1", {}, rich_run, metalab.grid(x=[1]), metalab.seeds(0))
    run = metalab.run(exp, store=tmp_path / "s")[0]
    assert run.status == "success", run.error
    assert run.metrics == {"loss": 0.5}
    assert run.steps("loss") == ([0, 1], [1.0, 0.5])
    assert run.artifact("config") == {"layers": 3}
    assert run.artifacts == {"config": "json", "model.txt": "file"}
    assert "hello from the run" in run.stdout
    assert "done" in run.logs and "careful" in run.logs


@pytest.mark.parametrize("executor", ["serial", "thread"])
def test_each_run_keeps_only_what_it_printed(tmp_path, executor):
    # The runs of a chunk share one output capture and take their text in turn.
    @metalab.operation
    def chatty(params):
        x = params["x"]
        if x % 3 == 0:
            print(f"run {x}")
        if x % 4 == 0:
            print(f"warning {x}", file=sys.stderr)
        if x == 5:
            print("about to fail")
            raise ValueError("five")

    exp = metalab.Experiment(
        "chatty", "1", {}, chatty, metalab.grid(x=list(range(12))), metalab.seeds(0)
    )
    runs = {
        run.params["x"]: run for run in metalab.run(exp, store=tmp_path / "s", executor=executor)
    }
    for x, run in runs.items():
        said = (f"run {x}\n" if x % 3 == 0 else "") + ("about to fail\n" if x == 5 else "")
        assert (run.stdout, run.stderr) == (said, f"warning {x}\n" if x % 4 == 0 else "")
    assert runs[5].status == "failed" and runs[4].status == "success"


def test_worker_that_exits_is_recorded_failed_and_the_sweep_finishes(tmp_path):
    @metalab.operation
    def sometimes_exit(params, capture):
        if params["x"] == 2:
            os._exit(1)
        capture.metric("x", params["x"])

    exp = metalab.Experiment(
        "exit", "1", {}, sometimes_exit, metalab.grid(x=[1, 2, 3, 4, 5, 6]), metalab.seeds(0)
    )
    result = metalab.run(exp, store=tmp_path / "s", executor=metalab.ProcessExecutor(2))
    assert len(result) == 6
    assert [r.params["x"] for r in result.failed] == [2]
    assert result.failed[0].error["type"] == "WorkerLost"
    assert len(result.successful) == 5


def test_bad_run_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(InvalidTypeError, match="Experiment"):
        metalab.run("pi", store=tmp_path / "s")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="did you mean 'process'"):
        metalab.run(pi_experiment(), store=tmp_path / "s", executor="proces")
    assert not (tmp_path / "s").exists()


SWEEP_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import metalab

    @metalab.operation(name="slow", version="1")
    def slow(params, seeds, capture):
        time.sleep(0.01)
        capture.metric("v", seeds.rng().random() + params["x"])

    exp = metalab.Experiment(
        "slow", "1", {}, slow, metalab.grid(x=list(range(40))), metalab.seeds(3, 2)
    )
    executor = sys.argv[2] if len(sys.argv) > 2 else None
    metalab.run(exp, store=sys.argv[1], executor=executor)
    print("DONE")
    """
)


def _sweep(script: Path, store: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), str(store), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _metrics(store: Path) -> dict[str, dict]:
    return {run.run_id: run.metrics for run in metalab.load_results(store)}


def test_kill_9_then_resume_equals_an_uninterrupted_sweep(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    reference = _sweep(script, tmp_path / "reference")
    assert reference.wait(timeout=120) == 0
    for delay in (0.4, 0.9):
        store = tmp_path / f"killed-{delay}"
        proc = _sweep(script, store)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        partial = len(_metrics(store)) if store.exists() else 0
        assert partial < 80
        resumed = _sweep(script, store)
        assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
        assert _metrics(store) == _metrics(tmp_path / "reference")
        records = [
            json.loads(line.split(" ", 1)[1])
            for segment in (store / "records").iterdir()
            for line in segment.read_text().splitlines()
            if line.endswith("}")
        ]
        assert len({r["run_id"] for r in records}) == 80
        successes = [r["run_id"] for r in records if r["status"] == "success"]
        assert len(successes) == len(set(successes)), "a run was completed twice"


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    store = tmp_path / "shared"
    first, second = _sweep(script, store), _sweep(script, store)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.wait(timeout=120) == 0, second.stderr.read()
    results = metalab.load_results(store)
    assert len(results) == 80
    assert all(run.status == "success" for run in results)


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    reference = _sweep(script, tmp_path / "reference")
    assert reference.wait(timeout=120) == 0
    store = tmp_path / "interrupted"
    proc = _sweep(script, store)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    assert 0 < len(_metrics(store)) < 80
    resumed = _sweep(script, store)
    assert resumed.wait(timeout=120) == 0
    assert _metrics(store) == _metrics(tmp_path / "reference")


def test_progress_without_a_terminal_prints_plain_lines(tmp_path, capsys):
    exp, _ = counted_experiment(tmp_path, fail_x=2)
    metalab.run(exp, store=tmp_path / "s", progress=True)
    assert "metalab: 6 done, 2 failed, 0 skipped of 8" in capsys.readouterr().err
    metalab.run(exp, store=tmp_path / "s", progress=True)
    assert "metalab: 0 done, 2 failed, 6 skipped of 8" in capsys.readouterr().err


def test_manifest_records_provenance_and_saves_the_git_diff(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "train.py").write_text("lr = 0.1\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=repo, check=True)
    (repo / "train.py").write_text("lr = 0.2\n")
    monkeypatch.chdir(repo)
    metalab.run(pi_experiment(params=metalab.grid(n_samples=[10])), store=tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    facts = manifest["provenance"]
    assert facts["git"]["dirty"] is True
    first_diff = facts["git"]["diff_file"]
    assert "lr = 0.2" in (tmp_path / "s" / first_diff).read_text()
    (repo / "train.py").write_text("lr = 0.3\n")
    metalab.run(pi_experiment(params=metalab.grid(n_samples=[10])), store=tmp_path / "s")
    second = json.loads((tmp_path / "s" / "manifest.json").read_text())
    second_diff = second["provenance"]["git"]["diff_file"]
    assert second_diff != first_diff
    assert "lr = 0.2" in (tmp_path / "s" / first_diff).read_text(), "earlier diff kept"
    assert "lr = 0.3" in (tmp_path / "s" / second_diff).read_text()
    assert manifest["operation"]["name"] == "pi_mc"
    assert manifest["params"]["type"] == "GridSource"
    assert manifest["seeds"] == {"type": "SeedPlan", "base": 42, "replicates": 3}


ORPHAN_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import metalab

    @metalab.operation(name="pids", version="1")
    def pids(params, context):
        with open(context["pids"], "a") as out:
            out.write(f"{os.getpid()}\\n")
        time.sleep(0.05)

    if __name__ == "__main__":
        exp = metalab.Experiment(
            "pids", "1", {"pids": sys.argv[2]}, pids, metalab.grid(x=list(range(400))),
            metalab.seeds(0),
        )
        metalab.run(exp, store=sys.argv[1], executor=metalab.ProcessExecutor(2))
    """
)


def test_pool_workers_exit_when_the_runner_is_killed(tmp_path):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT)
    pids = tmp_path / "pids.txt"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "s"), str(pids)])
    deadline = time.monotonic() + 60
    while (not pids.exists() or len(set(pids.read_text().split())) < 2) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    workers = {int(pid) for pid in pids.read_text().split()}
    assert len(workers) >= 2
    time.sleep(2.0)  # workers poll their parent every 0.25 s
    assert [pid for pid in workers if _running(pid)] == [], "workers outlived the runner"


def _running(pid: int) -> bool:
    """True if ``pid`` is a live process (a zombie waiting to be reaped has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stored_run_ids_are_the_experiments_run_ids(tmp_path):
    exp = pi_experiment(params=metalab.grid(n_samples=[10, 20]))
    result = metalab.run(exp, store=tmp_path / "s")
    expected = [exp.run_id(case, bundle) for case in exp.params for bundle in exp.seeds]
    assert [run.run_id for run in result] == expected
