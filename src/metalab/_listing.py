"""The stores under a folder, each summed up. Imports record and store.

What ``metalab ls`` prints and ``metalab ui`` lists: :func:`find_stores` walks a folder
for store folders and :func:`summarise_store` counts a store's runs. Both only read,
and their cost does not grow with a store's size beyond its states index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metalab.record import SUCCESS
from metalab.store import PackStore, open_store


@dataclass(frozen=True)
class StoreSummary:
    """One store's counts, as a listing shows them.

    Attributes:
        folder: The store folder, or the pack file.
        manifest: Its experiment manifest (``{}`` when it has none yet).
        done: Runs whose current record is a success.
        failed: Runs whose current record is a failure.
        total: The runs the sweep plans (the manifest's ``total_runs``), None if unknown.
        last_activity: When the latest run finished, else when the manifest was written.

    """

    folder: Path
    manifest: dict[str, Any]
    done: int
    failed: int
    total: int | None
    last_activity: datetime


def find_stores(root: Path, *, packs: bool = False) -> Iterator[Path]:
    """Yield every folder under ``root`` (itself included) holding a manifest.json.

    With ``packs``, also every pack file (``*.metalab.zip``) outside those folders.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        if "manifest.json" in filenames:
            dirnames.clear()  # records/ and artifacts/ hold no stores, and can be huge
            yield Path(dirpath)
            continue
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        if packs:
            found = (name for name in filenames if name.endswith(PackStore.SUFFIX))
            yield from (Path(dirpath, name) for name in sorted(found))


def summarise_store(folder: Path) -> StoreSummary:
    """Count the runs of the store in ``folder`` (or the pack file), without writing to it.

    Raises :class:`~metalab.errors.MetalabError` or ``OSError`` for a store that cannot
    be read (a listing skips it and says why).
    """
    store = open_store(folder, create=False)
    manifest = store.read_manifest() or {}  # it refuses a manifest that is not an object
    # From the states and the latest record alone: a listing must stay quick on stores
    # of a million runs (docs/performance.md).
    states = store.run_states(verify=False)
    done = sum(status == SUCCESS for status, _ in states.values())
    finished = [parse_time(record.finished_at) for record in store.latest_records(1)]
    moments = [moment for moment in finished if moment is not None]
    total = manifest.get("total_runs")
    return StoreSummary(
        folder=folder,
        manifest=manifest,
        done=done,
        failed=len(states) - done,
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        last_activity=max(moments) if moments else _mtime(_written(folder)),
    )


def parse_time(text: str) -> datetime | None:
    """Parse a record's ISO 8601 UTC time; None for an empty or unreadable one."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _written(folder: Path) -> Path:
    """Return the file whose time says when a store was last written: manifest or pack."""
    return folder if folder.is_file() else folder / "manifest.json"


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
