"""Per-run time limits and SIGTERM: the checks before a sweep, and what a run sees.

The sweeps killed and timed out for real (subprocesses, pools) are in
tests/reliability/test_faults.py; these are the in-process behaviours.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

import metalab
from metalab._signals import TimeLimit, check_timeout
from metalab.errors import InvalidArgumentError, InvalidTypeError, RunTimeout


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, InvalidArgumentError), (-1.5, InvalidArgumentError), (float("inf"), InvalidArgumentError),
     (float("nan"), InvalidArgumentError), ("10", InvalidTypeError), (True, InvalidTypeError)],
)  # fmt: skip
def test_a_timeout_that_is_not_seconds_is_refused_with_the_value(value, error):
    with pytest.raises(error, match=rf"run\(timeout={value!r}\)"):
        check_timeout("run", value)


def test_timeouts_in_seconds_are_kept():
    assert check_timeout("run", None) is None
    assert check_timeout("run", 2) == 2.0


def _sleepy(params, capture):
    try:
        time.sleep(params["s"])
    except Exception:  # an operation that swallows everything must still be stopped
        capture.metric("swallowed", 1)
    capture.metric("slept", params["s"])


def _experiment() -> metalab.Experiment:
    op = metalab.operation(name="sleepy")(_sleepy)
    return metalab.Experiment("t", "1", {}, op, metalab.grid(s=[0.0, 5.0, 0.01]), metalab.seeds(1))


def test_a_run_past_its_timeout_fails_and_the_others_run(tmp_path):
    started = time.monotonic()
    results = metalab.run(_experiment(), store=tmp_path / "s", timeout=0.5)
    assert time.monotonic() - started < 4
    by_sleep = {run.params["s"]: run.record for run in results}
    assert by_sleep[0.0].ok and by_sleep[0.01].ok
    late = by_sleep[5.0]
    assert not late.ok and late.error["type"] == "RunTimeout"
    assert "timeout=0.5 s" in late.error["message"] and "swallowed" not in late.metrics


def test_a_timeout_with_threads_is_refused_before_any_run(tmp_path):
    with pytest.raises(InvalidArgumentError, match="process executor"):
        metalab.run(_experiment(), store=tmp_path / "s", executor="thread", timeout=1)
    assert not (tmp_path / "s").exists()


def test_a_timeout_outside_the_main_thread_is_refused(tmp_path):
    errors = []

    def sweep() -> None:
        try:
            metalab.run(_experiment(), store=tmp_path / "s", timeout=1)
        except InvalidArgumentError as exc:
            errors.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


def test_a_time_limit_that_ends_in_time_raises_nothing_later():
    with TimeLimit(0.2):
        pass
    time.sleep(0.3)  # the alarm was disarmed: nothing fires here


def test_run_timeout_is_not_an_exception_an_operation_would_catch():
    assert not issubclass(RunTimeout, Exception)


def _deaf(params, capture):
    if params["s"] > 1:
        # Deaf to the alarm, as C code that blocks signals or never returns would be.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(params["s"])
    capture.metric("slept", params["s"])


def test_a_run_no_signal_reaches_is_ended_with_its_worker(tmp_path):
    op = metalab.operation(name="deaf")(_deaf)
    grid = metalab.grid(s=[0.0, 0.001, 60.0, 0.002, 0.003, 0.004])
    exp = metalab.Experiment("deaf", "1", {}, op, grid, metalab.seeds(1))
    started = time.monotonic()
    results = metalab.run(
        exp, store=tmp_path / "s", executor=metalab.ProcessExecutor(2), timeout=0.5
    )
    assert time.monotonic() - started < 30
    assert len(results) == 6 and len(results.successful) == 5
    [stuck] = results.failed
    assert stuck.params["s"] == 60 and stuck.record.error["type"] == "RunTimeout"
    assert "worker process was ended" in stuck.record.error["message"]
