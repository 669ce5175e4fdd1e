"""The machine's NVIDIA GPUs, as ``nvidia-smi`` lists them. Imports no metalab module.

Provenance records them (model and driver) and ``ProcessExecutor(gpus=...)`` counts
them; both ask here, and ``nvidia-smi`` is asked once per process: it can take
seconds, and neither the GPUs nor the driver change under a program.
"""

from __future__ import annotations

import functools
import subprocess
from typing import Any

__all__ = ["gpus"]

# nvidia-smi answers in well under a second, but can take seconds while the driver
# loads on a machine without the persistence daemon.
_NVIDIA_SMI_TIMEOUT_S = 20


@functools.cache
def gpus() -> list[dict[str, Any]] | None:
    """Return ``[{"index", "name", "driver_version"}]`` per GPU; None where nvidia-smi fails.

    Cached: callers that change the list must copy it first.
    """
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,driver_version", "--format=csv,noheader"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return parse_gpu_query(done.stdout)
    except ValueError:  # a line this parser does not know: no facts rather than wrong ones
        return None


def parse_gpu_query(text: str) -> list[dict[str, Any]]:
    """Read ``nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader``.

    One GPU a line, MIG instances not listed, so its length is the number of GPUs.

    >>> parse_gpu_query("0, NVIDIA H200, 570.86.15")
    [{'index': 0, 'name': 'NVIDIA H200', 'driver_version': '570.86.15'}]
    """
    found = []
    for line in text.splitlines():
        if line.strip():
            # The name is the middle field, so a comma in it cannot shift the others.
            index, rest = line.split(",", 1)
            name, driver = rest.rsplit(",", 1)
            found.append(
                {"index": int(index), "name": name.strip(), "driver_version": driver.strip()}
            )
    return found
