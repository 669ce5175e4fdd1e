"""``pack_store`` and ``load_results(pack).to_dataframe()`` on a store of done runs.

Floors: packing is set against zipping the store folder as it is (``shutil.make_archive``,
deflate), the pack's size against the store's files on disk, and loading a pack against
loading the store it came from. pandas and pyarrow are imported before anything is timed.
Run alone with ``python benchmarks/bench_pack.py [RUNS]`` (default 100,000).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import Row, best_of, done_store

import metalab
from metalab.store import pack_store


def _size_on_disk(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(workdir: Path, runs: int) -> list[Row]:
    import pandas  # noqa: F401  (import times belong to neither side)
    import pyarrow.parquet  # noqa: F401

    store = done_store(workdir, runs)
    pack = workdir / f"done-{runs}.metalab.zip"
    pack.unlink(missing_ok=True)
    start = time.perf_counter()
    pack_store(store, pack)
    packing = time.perf_counter() - start
    start = time.perf_counter()
    zipped = Path(shutil.make_archive(str(workdir / f"plain-{runs}"), "zip", store))
    zipping = time.perf_counter() - start
    zipped.unlink()
    repeats = 3 if runs <= 100_000 else 1
    from_pack = best_of(repeats, lambda: metalab.load_results(pack).to_dataframe())
    from_store = best_of(repeats, lambda: metalab.load_results(store).to_dataframe())
    return [
        Row(f"pack_store, {runs:,} runs", packing, "s", floor=zipping, note="floor: zip -r"),
        Row(
            f"pack size, {runs:,} runs",
            pack.stat().st_size / 2**20,
            "MiB",
            floor=_size_on_disk(store) / 2**20,
            note="floor: the store's files",
        ),
        Row(
            f"load_results(pack).to_dataframe(), {runs:,} runs",
            from_pack,
            "s",
            0.5 if runs <= 100_000 else 5.0,
            floor=from_store,
            note="floor: the same from the store folder",
        ),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="metalab-bench-pack-") as folder:
        for row in measure(Path(folder), int(sys.argv[1]) if len(sys.argv) > 1 else 100_000):
            print(
                f"{row.figure:<48} {row.measured:9.3f} {row.unit:<4} floor {row.floor:9.3f}"
                f"  ({row.note})"
            )
