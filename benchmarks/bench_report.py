"""``metalab report`` of a store of done runs: time to write it, time until it is usable.

Two figures, on the 100,000-run store the other benchmarks read
(``_common.done_store``: two swept params of 100 and 1,000 values, one metric):

- ``write_report(store, path)`` in this process, plotly imported beforehand (≤ 10 s).
  Floor: a plain loop that reads every record line, parses its JSON and writes the table
  rows as one JSON document (the least a page with every run in it needs).
- Time to interactive in headless Chromium (Debian's, ``scripts/chromium.sh``; ≤ 3 s):
  ``window.metalabReadyAt``, which the page sets once its table and every plot are
  drawn (ms since navigation began), in a fresh page of a running browser, best of 3;
  the first, in a browser just started, is noted. Floor: a page of the same Plotly and
  the same data that only parses both and draws nothing.

Run alone: ``python benchmarks/bench_report.py [RUNS]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, Row, best_of, done_store, records_folder_lines

_BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _plain_table(store: Path, out: Path) -> None:
    rows = []
    for line in records_folder_lines(store):
        entry = json.loads(line.partition(b" ")[2])
        cells = [entry["run_id"], entry["status"], *entry["params"].values()]
        cells += [*entry["metrics"].values(), entry["replicate_index"], entry["duration"]]
        rows.append(cells)
    out.write_text(json.dumps(rows), encoding="utf-8")


def _floor_page(report: Path, out: Path) -> None:
    """Write a page holding the report's Plotly and data that only parses them."""
    import plotly.offline

    text = report.read_text(encoding="utf-8")
    start = text.index('<script type="application/json"')
    data = text[start : text.index("</script>", start) + len("</script>")]
    out.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        + data
        + "<script>"
        + plotly.offline.get_plotlyjs()
        + "</script><script>JSON.parse(document.getElementById('metalab-data').textContent);"
        "window.metalabReadyAt = performance.now(); window.metalabReady = true;</script>"
        "</body></html>",
        encoding="utf-8",
    )


def _chromium() -> str | None:
    done = subprocess.run(
        ["bash", str(HERE.parent / "scripts" / "chromium.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else None


def _ready_times(chromium: str, pages: list[Path], repeats: int = 3) -> list[list[float]]:
    """Return, per page, the ms until ``window.metalabReady`` of each of ``repeats`` loads.

    Loads alternate between the pages, so a busy moment of the machine hits both alike.
    """
    from playwright.sync_api import sync_playwright

    times: list[list[float]] = [[] for _ in pages]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=_BROWSER_ARGS)
        try:
            for _ in range(repeats):
                for index, path in enumerate(pages):
                    page = browser.new_page()
                    page.goto(path.as_uri())
                    page.wait_for_function("window.metalabReady === true", timeout=120_000)
                    times[index].append(page.evaluate("window.metalabReadyAt"))
                    page.close()
        finally:
            browser.close()
    return times


def measure(workdir: Path, runs: int) -> list[Row]:
    import plotly.graph_objects  # noqa: F401  (its import time belongs to neither side)

    from metalab.report import write_report

    store = done_store(workdir, runs)
    report = workdir / f"report-{runs}.html"
    report.unlink(missing_ok=True)
    built = best_of(2, lambda: write_report(store, report))
    floor = best_of(2, lambda: _plain_table(store, workdir / "plain-table.json"))
    size = report.stat().st_size / 2**20
    rows = [
        Row(
            f"write_report(), {runs:,}-run store",
            built,
            "s",
            10.0,
            floor,
            note=f"{size:.1f} MiB file (Plotly alone is 4.6 MiB)",
        )
    ]
    chromium = _chromium()
    figure = f"report interactive in Chromium, {runs:,} runs"
    if chromium is None:
        rows.append(Row(figure, None, "s", 3.0, note="no Chromium here (scripts/chromium.sh)"))
        return rows
    floor_page = workdir / "floor-page.html"
    _floor_page(report, floor_page)
    report_times, floor_times = _ready_times(chromium, [report, floor_page])
    rows.append(
        Row(
            figure,
            min(report_times) / 1000,
            "s",
            3.0,
            min(floor_times) / 1000,
            note=f"first load {report_times[0] / 1000:.2f} s; floor: parse Plotly and data only",
        )
    )
    return rows


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="metalab-bench-report-") as folder:
        for row in measure(Path(folder), size):
            measured = "-" if row.measured is None else f"{row.measured:.2f} {row.unit}"
            floor = "-" if row.floor is None else f"{row.floor:.2f} {row.unit}"
            print(f"{row.figure}: {measured} (target <= {row.target} {row.unit}; ", end="")
            print(f"floor {floor}) {row.note}")
    print(f"took {time.perf_counter() - began:.0f} s")
