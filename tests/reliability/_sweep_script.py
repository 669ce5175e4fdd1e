"""The sweep that tests/reliability/test_faults.py runs in subprocesses (not a test module).

Configured by environment variables, so that ``python _sweep_script.py STORE [EXECUTOR]``
and ``metalab run _sweep_script.py --store STORE`` load the same experiment:

- ``FAULTS_START``, ``FAULTS_STOP``: the cases are ``x`` in ``range(START, STOP)``
  (default 0 to 300). A shard is a narrower range: run IDs depend on the experiment's
  name, version and context and on each case's params and seeds, never on the case's
  position, so a run has one ID in every shard that holds it.
- ``FAULTS_REPLICATES``: seeded replicates per case (default 1).
- ``FAULTS_SLEEP``: seconds each run sleeps (default 0), so that faults land mid-sweep.
- ``FAULTS_ARTIFACT_BYTES``: each run also stores an artifact of that many bytes.
- ``FAULTS_EXEC_LOG``: a file each execution appends ``x replicate pid`` to, so tests
  count executions rather than records.
- ``FAULTS_HANG_X``: the run of that ``x`` hangs (sleeps ten minutes).
- ``FAULTS_TIMEOUT``: passed to ``metalab.run(timeout=...)`` when set.

The operation needs only the standard library, and its metrics are floats that use
all 53 bits, so "bit for bit" comparisons mean something. Importing this module runs
nothing (pytest imports it when it collects doctests).
"""

from __future__ import annotations

import math
import os
import sys
import time

import metalab

START = int(os.environ.get("FAULTS_START", "0"))
STOP = int(os.environ.get("FAULTS_STOP", "300"))
REPLICATES = int(os.environ.get("FAULTS_REPLICATES", "1"))
SLEEP = float(os.environ.get("FAULTS_SLEEP", "0"))
ARTIFACT_BYTES = int(os.environ.get("FAULTS_ARTIFACT_BYTES", "0"))
EXEC_LOG = os.environ.get("FAULTS_EXEC_LOG", "")
HANG_X = int(os.environ.get("FAULTS_HANG_X", "-1"))
TIMEOUT = os.environ.get("FAULTS_TIMEOUT", "")


@metalab.operation(name="faults", version="1")
def faulty(params, seeds, capture):
    x = params["x"]
    if EXEC_LOG:
        with open(EXEC_LOG, "a") as log:
            log.write(f"{x} {seeds.replicate_index} {os.getpid()}\n")
    if x == HANG_X:
        time.sleep(600)
    if SLEEP:
        time.sleep(SLEEP)
    rng = seeds.rng()
    u = rng.random()
    capture.metric("u", u)
    capture.metric("wave", math.sin(x * u) / (1.0 + u))
    capture.metric("x", x)
    if ARTIFACT_BYTES:
        capture.artifact("blob", rng.randbytes(ARTIFACT_BYTES))


exp = metalab.Experiment(
    name="faults",
    version="1",
    context={},
    operation=faulty,
    params=metalab.grid(x=list(range(START, STOP))),
    seeds=metalab.seeds(base=2024, replicates=REPLICATES),
)


def main(argv: list[str]) -> None:
    store = argv[1]
    kind = argv[2] if len(argv) > 2 else "serial"
    # Two workers: this project's machine has two cores.
    executor = metalab.ProcessExecutor(2) if kind == "process" else kind
    # timeout= only when asked: metalab.run may not accept it yet.
    options = {"timeout": float(TIMEOUT)} if TIMEOUT else {}
    metalab.run(exp, store=store, executor=executor, **options)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv)
