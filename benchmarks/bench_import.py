"""``import metalab`` in a fresh interpreter, best of 5, and which extras it loads.

The floor is importing, in a fresh interpreter, just the standard-library modules that
``import metalab`` loads: what the import would cost if metalab's own code were free.
"""

from __future__ import annotations

import json
from pathlib import Path

from _common import Row, python

_EXTRAS = ("numpy", "pandas", "pyarrow", "matplotlib", "rich", "torch", "cloudpickle")

_TIME_IMPORT = """
import sys, time
start = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
print(time.perf_counter() - start)
"""

_LOADED = """
import json, sys
before = set(sys.modules)
import metalab
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _best(names: list[str], repeats: int = 5) -> float:
    return min(float(python(_TIME_IMPORT, *names).stdout) for _ in range(repeats))


def measure(workdir: Path) -> list[Row]:
    loaded = json.loads(python(_LOADED).stdout)
    extras = sorted({name.split(".")[0] for name in loaded} & set(_EXTRAS))
    stdlib = [name for name in loaded if name.split(".")[0] not in ("metalab", *_EXTRAS)]
    measured = _best(["metalab"])
    floor = _best(stdlib)
    own = sum(name.startswith("metalab") for name in loaded)
    return [
        Row(
            "import metalab (fresh interpreter, best of 5)",
            measured * 1e3,
            "ms",
            60,
            floor * 1e3,
            note=(
                f"{own} metalab modules, {len(stdlib)} other modules; extras loaded: "
                f"{', '.join(extras) or 'none'}"
            ),
        )
    ]
