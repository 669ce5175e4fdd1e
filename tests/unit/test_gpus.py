"""GPU pinning of ProcessExecutor, Runtime.device and the GPU facts of provenance.

Which GPU each worker gets is a pure function, tested here on any machine; the worker
environment is tested in real worker processes with GPU IDs the test chooses (nothing
there starts CUDA, so no GPU is needed); the refusals are tested for real, with
``CUDA_VISIBLE_DEVICES=""`` hiding whatever GPUs the machine has. That the workers
really compute on their GPUs is tests/integration/test_determinism.py's, on a GPU.
"""

from __future__ import annotations

import copy
import os
import shutil
import time

import pytest

from metalab import ProcessExecutor
from metalab._nvidia import parse_gpu_query
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.executors._process import _parse_visible_devices, _visible_gpus, _worker_gpus
from metalab.operation import Runtime
from metalab.provenance import environment

needs_gpu = pytest.mark.skipif(
    not _visible_gpus(), reason="no NVIDIA GPU here: nvidia-smi is missing or lists none"
)


# --- which GPU each worker gets --------------------------------------------------------


def test_one_worker_per_gpu_by_default():
    assert _worker_gpus(["0", "1", "2"], 3) == ["0", "1", "2"]


def test_more_workers_than_gpus_share_them_round_robin():
    assert _worker_gpus(["2", "5"], 5) == ["2", "5", "2", "5", "2"]


def test_fewer_workers_than_gpus_use_the_first():
    assert _worker_gpus(["0", "1", "2", "3"], 2) == ["0", "1"]


def test_visible_devices_unset_shows_every_gpu():
    assert _parse_visible_devices(None, 3) == ["0", "1", "2"]


def test_visible_devices_keep_their_order_and_stop_at_the_first_unknown_gpu():
    # As CUDA reads the variable: "9" names no GPU of four, so "0" after it is hidden.
    assert _parse_visible_devices("3, 1,9,0", 4) == ["3", "1"]


@pytest.mark.parametrize("value", ["", "-1", "none", "٣"])
def test_visible_devices_that_name_no_gpu_hide_them_all(value):
    assert _parse_visible_devices(value, 4) == []


def test_visible_devices_may_name_gpus_by_uuid():
    assert _parse_visible_devices("GPU-8f3a,MIG-11", 1) == ["GPU-8f3a", "MIG-11"]


def test_no_gpu_at_all_shows_none_whatever_the_variable_says():
    assert _parse_visible_devices("0,1", 0) == []


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("gpus", ["all", [0], (0, 1)])
def test_gpus_where_none_are_visible_is_refused_naming_the_value_and_the_fix(monkeypatch, gpus):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    started = time.perf_counter()
    with pytest.raises(InvalidArgumentError) as refused:
        ProcessExecutor(2, gpus=gpus)
    message = str(refused.value)
    assert message.startswith(f"ProcessExecutor(gpus={gpus!r}): this machine has no NVIDIA GPU")
    assert "CUDA_VISIBLE_DEVICES=''" in message
    assert "drop gpus= to run on the CPU" in message
    assert time.perf_counter() - started < 25  # refused when made, never after a hang


@pytest.mark.parametrize(
    ("gpus", "error", "fix"),
    [
        ("0,1", InvalidArgumentError, "a string must be 'all'; to name GPUs, pass"),
        ("ALL", InvalidArgumentError, "e.g. gpus=[0, 1]"),
        (0, InvalidTypeError, "must be 'all' or a list of GPU numbers, e.g. gpus=[0, 1], got int"),
        ({0, 1}, InvalidTypeError, "got set"),
        ([0, 1.0], InvalidTypeError, "GPU numbers must be ints, e.g. gpus=[0, 1]; got float 1.0"),
        ([True], InvalidTypeError, "got bool True"),
        ([], InvalidArgumentError, "give each GPU once"),
        ([0, 0], InvalidArgumentError, "raise max_workers instead"),
        ([-1], InvalidArgumentError, "by its number from 0"),
    ],
)
def test_malformed_gpus_are_refused_before_looking_for_gpus(monkeypatch, gpus, error, fix):
    # No nvidia-smi on PATH: the shape of the value alone decides.
    monkeypatch.setenv("PATH", "")
    with pytest.raises(error) as refused:
        ProcessExecutor(gpus=gpus)
    assert str(refused.value).startswith(f"ProcessExecutor(gpus={gpus!r}): ")
    assert fix in str(refused.value)


def test_numpy_integers_are_gpu_numbers_too(monkeypatch):
    np = pytest.importorskip("numpy")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    # Past the type check, to the search for GPUs, which finds none visible.
    with pytest.raises(InvalidArgumentError, match="this machine has no NVIDIA GPU"):
        ProcessExecutor(gpus=list(np.arange(2)))


def test_gpus_with_forked_workers_are_refused():
    with pytest.raises(InvalidArgumentError, match=r"mp_context='fork'\): a forked worker"):
        ProcessExecutor(gpus=[0], mp_context="fork")


@needs_gpu
def test_a_gpu_number_this_machine_lacks_is_refused_with_the_range():
    count = len(_visible_gpus())
    with pytest.raises(InvalidArgumentError) as refused:
        ProcessExecutor(gpus=[count])
    assert f"no GPU {count} here; this machine has {count} GPU(s)" in str(refused.value)
    assert f"numbered 0 to {count - 1}" in str(refused.value)


@needs_gpu
def test_all_gpus_make_one_worker_each():
    executor = ProcessExecutor(gpus="all")
    assert executor.gpus == _visible_gpus()
    assert executor.max_workers == len(executor.gpus)


# --- what a pinned worker sees ----------------------------------------------------------


def _worker_view(chunk: list[float]) -> list[tuple[int, str, str, str, str | None]]:
    """Return, for each item, the worker's pid, GPU variables and Runtime's view."""
    time.sleep(chunk[0])  # keeps this worker busy, so that the other takes chunks too
    runtime = Runtime("r", 1, "w", lambda message, level: None)
    return [
        (
            os.getpid(),
            os.environ["CUDA_VISIBLE_DEVICES"],
            os.environ["CUDA_DEVICE_ORDER"],
            runtime.device,
            runtime.gpu,
        )
    ]


def test_each_worker_sees_its_own_gpu_as_cuda_0(monkeypatch):
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    executor = ProcessExecutor(2)
    # GPU IDs chosen here, as _chosen_gpus would have found them: nothing in the
    # workers starts CUDA, so the IDs need not name real GPUs.
    executor.gpus = ["3", "GPU-5"]
    seen = [
        outcome[0] for _, outcome in executor.map_chunks(_worker_view, [[0.2] for _ in range(8)])
    ]
    by_worker = {pid: rest for pid, *rest in seen}
    assert sorted(by_worker.values()) == [
        ["3", "PCI_BUS_ID", "cuda:0", "3"],
        ["GPU-5", "PCI_BUS_ID", "cuda:0", "GPU-5"],
    ]
    assert os.getpid() not in by_worker


def test_runtime_outside_a_pinned_worker_is_on_the_cpu(monkeypatch):
    monkeypatch.delenv("METALAB_GPU", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the user's own choice pins nothing
    runtime = Runtime("r", 1, "w", lambda message, level: None)
    assert (runtime.device, runtime.gpu) == ("cpu", None)


def test_unpinned_process_workers_compute_on_the_cpu():
    def view(chunk):
        return [(Runtime("r", 1, "w", lambda message, level: None).device, os.getpid())]

    [(_, [(device, pid)])] = list(ProcessExecutor(1).map_chunks(view, [[0]]))
    assert (device, pid != os.getpid()) == ("cpu", True)


# --- provenance ------------------------------------------------------------------------


def test_gpu_query_is_read_with_commas_in_a_name():
    text = "0, NVIDIA H200, 570.86.15\n1, Tesla V100-SXM2-16GB, rev. B, 535.1\n\n"
    assert parse_gpu_query(text) == [
        {"index": 0, "name": "NVIDIA H200", "driver_version": "570.86.15"},
        {"index": 1, "name": "Tesla V100-SXM2-16GB, rev. B", "driver_version": "535.1"},
    ]


def test_environment_lists_the_gpus_nvidia_smi_reports():
    gpus = environment()["gpus"]
    if shutil.which("nvidia-smi") is None:
        assert gpus is None
    else:
        assert gpus and all(gpu["name"] and gpu["driver_version"] for gpu in gpus)
        assert [gpu["index"] for gpu in gpus] == list(range(len(gpus)))


def test_environment_gpu_facts_are_a_fresh_copy_each_time():
    first = environment()["gpus"]
    kept = copy.deepcopy(first)
    if first:
        first[0]["name"] = "changed"
        first.clear()
    assert environment()["gpus"] == kept


def test_environment_records_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert environment()["cuda_visible_devices"] == "1,0"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert environment()["cuda_visible_devices"] is None
