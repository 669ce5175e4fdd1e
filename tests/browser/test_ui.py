"""`metalab ui` over stores made by real sweeps: over HTTP, and in headless Chromium.

The HTTP tests need no browser; the browser tests use the fixtures of conftest.py
(Debian's Chromium driven by Playwright) and save a screenshot of each page they check.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import uvicorn

import metalab
from metalab.errors import InvalidArgumentError
from metalab.store import FileStore
from metalab.ui import create_app, serve

XSS = "<img src=x onerror=alert(1)>"
STEPS = 6
# The operation fails for x >= 4 until a resumed sweep opens this gate: a store that
# is partly done, then completed while the dashboard shows it.
_GATE = {"open": True}


@metalab.operation(name="ui_demo", version="1")
def demo(params, seeds, capture):
    x = params["x"]
    print(f"stdout of x={x}")
    capture.log(f"working on x={x}")
    for step in range(STEPS):
        capture.metric("loss", 1.0 / (step + 1 + x), step=step)
        capture.metric(XSS, step * x, step=step)
    capture.metric("score", x + seeds.rng().random())
    capture.artifact(XSS, {"x": x})
    capture.artifact("notes", f"notes of x={x}")
    if x == 2:
        capture.figure("curve", _figure(x))
    if x == 3:
        raise ValueError("x=3 is bad")
    if x >= 4 and not _GATE["open"]:
        raise RuntimeError("not ready yet")


def _figure(x):
    from matplotlib.figure import Figure  # a dev dependency (metalab[plot])

    figure = Figure(figsize=(3, 2))
    figure.subplots().plot([0, 1, 2], [0, x, 2 * x])
    return figure


EXPERIMENT = metalab.Experiment(
    "ui_demo",
    "1",
    {},
    demo,
    metalab.grid(x=list(range(6)), **{XSS: ["<script>alert(2)</script>"]}),
    metalab.seeds(0, 2),
)
TOTAL = 12  # 6 values of x, 2 replicates each
DONE = 10  # x == 3 always fails
DONE_BEFORE_GATE = 6  # x in 0, 1, 2


def sweep(store: Path, *, gate_open: bool = True) -> metalab.Results:
    _GATE["open"] = gate_open
    try:
        return metalab.run(EXPERIMENT, store=store)
    finally:
        _GATE["open"] = True


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """Serve ``root`` from a thread, on a free loopback port; yield the base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(root), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    """GET ``path`` exactly as written (no dot-segment removal): status, headers, body."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def snapshot(folder: Path) -> dict[str, tuple[bool, int, int]]:
    return {
        path.relative_to(folder).as_posix(): (
            path.is_dir(),
            path.lstat().st_size,
            path.lstat().st_mtime_ns,
        )
        for path in folder.rglob("*")
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A root holding one finished sweep (10 done, 2 failed), served for the module."""
    root = tmp_path_factory.mktemp("ui-root")
    store = root / "lab" / "ui_demo"
    results = sweep(store)
    runs = {(run.params["x"], run.record.replicate_index): run.run_id for run in results}
    with serving(root) as url:
        yield SimpleNamespace(root=root, store=store, url=url, runs=runs)


def run_url(site: SimpleNamespace, x: int, replicate: int = 0) -> str:
    return f"{site.url}/e/lab/ui_demo/run/{site.runs[x, replicate]}"


# ------------------------------------------------------------------------- over HTTP


def test_list_api_counts_the_runs_of_each_store(site):
    status, headers, body = get(site.url, "/api/stores")
    assert status == 200 and headers["content-type"] == "application/json"
    (store,) = json.loads(body)["stores"]
    assert {key: store[key] for key in ("path", "url", "name", "done", "failed", "total")} == {
        "path": "lab/ui_demo",
        "url": "/e/lab/ui_demo",
        "name": "ui_demo",
        "done": DONE,
        "failed": TOTAL - DONE,
        "total": TOTAL,
    }
    assert store["pending"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/e/../../etc/passwd",
        "/e/lab/../../../etc/passwd",
        "/e/%2e%2e/%2e%2e/etc/passwd",
        "/e/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/e/lab/ui_demo/%2e%2e/ui_demo",
        "/e//etc/passwd",
        "/e/%2Fetc%2Fpasswd",
        "/e/lab/ui_demo/run/{run}/artifact/..%2F..%2Fmanifest.json",
        "/static/../../etc/passwd",
        "/e/lab",
        "/e/nothing-here",
        "/e/lab/ui_demo/nothing-here",
    ],
)
def test_paths_outside_the_root_or_unknown_get_404(site, path):
    status, _, body = get(site.url, path.format(run=site.runs[0, 0]))
    assert status == 404, body[:200]
    assert b"root:" not in body  # /etc/passwd's first line


@pytest.mark.parametrize(
    "run_id", ["0" * 32, "ffffffffffff", "not-hex", "ABCDEF", "0123456789abcdef" * 5]
)
def test_an_unknown_run_gets_404(site, run_id):
    assert get(site.url, f"/e/lab/ui_demo/run/{quote(run_id)}")[0] == 404
    status, _, _ = get(site.url, f"/e/lab/ui_demo/compare?runs={site.runs[0, 0]},{run_id}")
    assert status == 404


def test_a_run_is_found_by_a_unique_prefix_of_its_id(site):
    run_id = site.runs[1, 0]
    status, _, body = get(site.url, f"/e/lab/ui_demo/run/{run_id[:10]}")
    assert status == 200 and run_id.encode() in body


def test_a_symlink_out_of_the_root_gets_404(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    sweep(outside / "secret")
    # A copy whose artifact file is a link to a file outside the root.
    shutil.copytree(outside / "secret", root / "copy")
    artifact = next((root / "copy" / "artifacts").rglob("notes.txt"))
    artifact.unlink()
    (tmp_path / "private.txt").write_text("private")
    artifact.symlink_to(tmp_path / "private.txt")
    (root / "linked").symlink_to(outside / "secret")  # a whole store linked in
    (root / "etc").symlink_to("/etc")
    run_id = artifact.parent.name
    with serving(root) as url:
        assert [row["path"] for row in json.loads(get(url, "/api/stores")[2])["stores"]] == ["copy"]
        for path in [
            "/e/linked",
            f"/e/linked/run/{run_id}",
            "/e/etc/passwd",
            f"/e/copy/run/{run_id}/artifact/notes",
        ]:
            status, _, body = get(url, path)
            assert status == 404, path
            assert b"private" not in body
        assert get(url, f"/e/copy/run/{run_id}")[0] == 200


def test_an_unreadable_store_is_listed_with_the_reason(site, tmp_path):
    shutil.copytree(site.store, tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("[1, 2]")
    with serving(tmp_path) as url:
        bad, good = json.loads(get(url, "/api/stores")[2])["stores"]
        assert (good["path"], good["done"], good["failed"]) == ("good", DONE, TOTAL - DONE)
        assert bad["path"] == "bad" and "is JSON but not an object" in bad["error"]
        status, _, body = get(url, "/e/bad")
        assert status == 500 and b"cannot be built" in body


def test_artifacts_are_served_sandboxed_as_their_bytes(site):
    base = f"/e/lab/ui_demo/run/{site.runs[2, 1]}/artifact/"
    status, headers, body = get(site.url, base + "notes")
    assert (status, body) == (200, b"notes of x=2")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-security-policy"].startswith("sandbox")
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = get(site.url, base + quote(XSS, safe=""))
    assert status == 200 and json.loads(body) == {"x": 2}
    assert get(site.url, base + "no-such-artifact")[0] == 404


def test_a_pack_under_the_root_is_served_in_place(site, tmp_path):
    from metalab.store import PackStore, pack_store

    root = tmp_path / "root"
    root.mkdir()
    pack_store(site.store, root / f"demo{PackStore.SUFFIX}")
    before = snapshot(root)
    with serving(root) as url:
        status, _, body = get(url, "/api/stores")
        (listed,) = json.loads(body)["stores"]
        assert (listed["url"], listed["done"], listed["total"]) == (
            f"/e/demo{PackStore.SUFFIX}",
            DONE,
            TOTAL,
        )
        run_id = site.runs[2, 1]
        status, _, page = get(url, f"{listed['url']}/run/{run_id}")
        assert status == 200 and run_id.encode() in page
        assert get(url, f"{listed['url']}/runs")[0] == 200
        status, _, report = get(url, listed["url"])  # the report, built from the pack
        assert status == 200 and b"ui_demo" in report
        status, headers, data = get(url, f"{listed['url']}/run/{run_id}/artifact/notes")
        assert status == 200 and "sandbox" in headers["content-security-policy"]
        assert data == (site.store / f"artifacts/{run_id}/notes.txt").read_bytes()
    assert snapshot(root) == before, "serving a pack wrote next to it"


def test_run_page_says_when_and_where_the_run_was_verified(tmp_path):
    store = tmp_path / "root" / "verified"
    run_id = next(iter(sweep(store).successful)).run_id
    FileStore(store, create=False).put_verification(
        {
            "verified_at": "2026-12-01T10:02:03Z",
            "host": "lab-7",
            "runs": [{"run_id": run_id, "outcome": "identical"}],
        }
    )
    with serving(tmp_path / "root") as url:
        status, _, page = get(url, f"/e/verified/run/{run_id}")
    assert status == 200
    assert b"verified identical on 2026-12-01 10:02:03 UTC on lab-7" in page


def test_store_contents_reach_pages_only_escaped(site):
    for path in [
        "/",
        "/api/stores",
        "/e/lab/ui_demo",
        "/e/lab/ui_demo/runs",
        f"/e/lab/ui_demo/run/{site.runs[0, 0]}",
        f"/e/lab/ui_demo/compare?runs={site.runs[0, 0]},{site.runs[1, 0]}",
    ]:
        status, _, body = get(site.url, path)
        assert status == 200, path
        assert b"<img src=x" not in body and b"<script>alert" not in body, path
    page = get(site.url, f"/e/lab/ui_demo/run/{site.runs[0, 0]}")[2].decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # in the tables
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in page  # in the plots' JSON


def test_pages_only_read_the_stores(site):
    before = snapshot(site.root)
    paths = ["/", "/api/stores", "/e/lab/ui_demo", "/e/lab/ui_demo/runs?status=failed"]
    paths += [f"/e/lab/ui_demo/run/{rid}" for rid in site.runs.values()]
    paths += [f"/e/lab/ui_demo/compare?runs={','.join(site.runs.values())}"]
    for path in paths:
        assert get(site.url, path)[0] == 200, path
    assert snapshot(site.root) == before


def test_the_experiment_view_follows_its_store(tmp_path):
    store = tmp_path / "root" / "ui_demo"
    sweep(store, gate_open=False)
    with serving(tmp_path / "root") as url:
        first = get(url, "/e/ui_demo")[2]
        assert get(url, "/e/ui_demo")[2] == first  # kept while nothing changed
        counts = re.compile(rb'"done": ?(\d+), ?"failed": ?(\d+)')
        assert counts.search(first).groups() == (b"6", b"6")
        sweep(store)
        assert counts.search(get(url, "/e/ui_demo")[2]).groups() == (b"10", b"2")


def test_a_host_name_other_than_loopback_is_refused(site):
    assert get(site.url, "/", {"Host": "attacker.example"})[0] == 400
    assert get(site.url, "/", {"Host": "localhost:1234"})[0] == 200


def test_bad_requests_say_what_to_do(site):
    status, _, body = get(site.url, f"/e/lab/ui_demo/compare?runs={site.runs[0, 0]}")
    assert status == 400 and b"2 to 20 runs" in body
    assert get(site.url, "/e/lab/ui_demo/runs?page=0")[0] == 400
    assert get(site.url, "/e/lab/ui_demo/runs?page=2")[0] == 404
    assert get(site.url, "/e/lab/ui_demo/runs?status=odd")[0] == 400


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of sockets listening on ``port`` (IPv4), from /proc/net/tcp."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        hex_ip, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            addresses.add(socket.inet_ntoa(bytes.fromhex(hex_ip)[::-1]))
    return addresses


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_metalab_ui_binds_loopback_by_default(site):
    process = subprocess.Popen(
        [sys.executable, "-m", "metalab", "ui", str(site.root), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        match = re.search(r"at http://127\.0\.0\.1:(\d+)/ \(read-only", line)
        assert match, line
        port = int(match.group(1))
        status, _, body = get(f"http://127.0.0.1:{port}", "/api/stores")
        assert status == 200 and json.loads(body)["stores"][0]["done"] == DONE
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0  # Ctrl-C is how it stops: no error
        assert "error" not in process.stderr.read()


def test_serve_refuses_a_taken_port_and_create_app_a_missing_root(site, tmp_path):
    taken = int(site.url.rsplit(":", 1)[1])
    with pytest.raises(InvalidArgumentError, match=f"--port {taken}: cannot listen there"):
        serve(site.root, port=taken)
    with pytest.raises(InvalidArgumentError, match="--port 70000: must be a port number"):
        serve(site.root, port=70000)
    with pytest.raises(InvalidArgumentError, match="does not exist; pass the folder"):
        create_app(tmp_path / "nowhere")


def test_metalab_ui_help_shows_an_example():
    done = subprocess.run(
        [sys.executable, "-m", "metalab", "ui", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "metalab ui runs --port 9000" in done.stdout


# ------------------------------------------------------------------------ in Chromium


def _ready(page) -> None:
    page.wait_for_function("window.metalabReady === true")


def _cells(page, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()


def test_list_page_shows_the_store_with_its_counts(site, page, page_log, screenshot):
    page.goto(site.url + "/")
    _ready(page)
    row = page.locator("tr[data-store='lab/ui_demo']")
    assert row.locator("td.done").inner_text() == str(DONE)
    assert row.locator("td.failed").inner_text() == str(TOTAL - DONE)
    assert row.locator("td.pending").inner_text() == "0"
    assert row.locator("td.total").inner_text() == str(TOTAL)
    assert row.locator("td").nth(1).inner_text() == "ui_demo"
    width = page.evaluate("document.querySelector('.bar .done').style.width")
    assert float(width.rstrip("%")) == pytest.approx(100 * DONE / TOTAL)
    screenshot(page, "list")
    row.locator("a").click()
    page.wait_for_url("**/e/lab/ui_demo")
    page_log.assert_clean()


def test_list_page_refreshes_while_a_sweep_goes_on(tmp_path, page, page_log, screenshot):
    from playwright.sync_api import expect

    store = tmp_path / "root" / "ui_demo"
    sweep(store, gate_open=False)
    with serving(tmp_path / "root") as url:
        page.goto(url + "/")
        _ready(page)
        done = page.locator("tr[data-store='ui_demo'] td.done")
        expect(done).to_have_text(str(DONE_BEFORE_GATE))
        expect(page.locator("tr[data-store='ui_demo'] td.failed")).to_have_text("6")
        screenshot(page, "list-before-resume")
        page.evaluate("window.sameDocument = true")
        sweep(store)  # resumed: the runs that failed run again, and now succeed
        expect(done).to_have_text(str(DONE), timeout=10_000)
        expect(page.locator("tr[data-store='ui_demo'] td.failed")).to_have_text("2")
        assert page.evaluate("window.sameDocument") is True  # no reload
        screenshot(page, "list-after-resume")
    page_log.assert_clean()


def _plots(page) -> dict[str, int]:
    """Each drawn plot's metric name and number of traces."""
    return dict(
        page.evaluate(
            "Array.from(document.querySelectorAll('#plots .js-plotly-plot'))"
            ".map((node) => [node.dataset.metric, node.data.length])"
        )
    )


def test_run_page_shows_the_run(site, page, page_log, screenshot):
    page.goto(run_url(site, 2, 1))
    _ready(page)
    run = metalab.load_results(site.store)[site.runs[2, 1]]
    metrics = dict(
        zip(
            _cells(page, "table.metrics th"),
            _cells(page, "table.metrics td"),
            strict=True,
        )
    )
    assert metrics == {name: json.dumps(value) for name, value in run.metrics.items()}
    params = dict(
        zip(_cells(page, "table.params th"), _cells(page, "table.params td"), strict=True)
    )
    assert params == {"x": "2", XSS: "<script>alert(2)</script>"}
    assert _cells(page, "table.seeds th") == list(run.record.seeds)
    # Step curves: one plot per stepped metric, one trace each, drawn as SVG lines.
    assert _plots(page) == {"loss": 1, XSS: 1}
    assert page.locator("#plots .scatterlayer .trace path.js-line").count() == 2
    drawn = page.evaluate("document.querySelector('#plots [data-metric=loss]').data[0]")
    assert (drawn["x"], drawn["y"]) == (list(range(STEPS)), pytest.approx(run.steps("loss")[1]))
    assert "working on x=2" in page.locator("pre.logs").inner_text()
    assert page.locator("pre.stdout").inner_text().strip() == "stdout of x=2"
    assert page.get_by_role("heading", name="Error").count() == 0
    screenshot(page, "run")
    assert all(url.startswith(site.url + "/") for url in page_log.requests)  # no CDN
    figure = page.locator("figure img[alt=curve]")
    assert figure.evaluate("(image) => image.complete && image.naturalWidth") == 300
    with page.expect_response(lambda response: "/artifact/notes" in response.url) as answer:
        page.get_by_role("link", name="notes", exact=True).click()
    assert answer.value.status == 200 and answer.value.text() == "notes of x=2"
    page_log.assert_clean()


def test_failed_run_page_shows_the_error(site, page, page_log, screenshot):
    page.goto(run_url(site, 3))
    _ready(page)
    assert page.locator("table.run td.failed").inner_text() == "failed"
    assert page.locator("p.bad").inner_text() == "ValueError: x=3 is bad"
    traceback = page.locator("pre.traceback").inner_text()
    assert traceback.startswith("Traceback") and 'raise ValueError("x=3 is bad")' in traceback
    screenshot(page, "failed-run")
    page_log.assert_clean()


def test_compare_two_runs_picked_in_the_run_table(site, page, page_log, screenshot):
    page.goto(site.url + "/e/lab/ui_demo/runs")
    _ready(page)
    picked = [site.runs[0, 0], site.runs[5, 1]]
    for run_id in picked:
        page.locator(f"input[name=runs][value='{run_id}']").check()
    page.get_by_role("button", name="compare the selected runs").click()
    page.wait_for_url("**/compare?**")
    _ready(page)
    header = _cells(page, "table.compare thead th")
    assert header == ["", picked[0][:12], picked[1][:12]]
    rows = _compare_rows(page)
    assert rows["run", "case, replicate"] == (True, ["0, 0", "5, 1"])
    assert rows["params", "x"] == (True, ["0", "5"])
    assert rows["params", XSS] == (False, ["<script>alert(2)</script>"] * 2)
    assert rows["metrics", XSS] == (True, ["0", str(5 * (STEPS - 1))])
    assert rows["seeds", "replicate_index"] == (True, ["0", "1"])
    assert _plots(page) == {"loss": 2, XSS: 2}  # the curves of both runs, overlaid
    screenshot(page, "compare")
    page_log.assert_clean()


def _compare_rows(page) -> dict[tuple[str, str], tuple[bool, list[str]]]:
    """Each row of the compare table: (section, key) -> (highlighted, cells)."""
    rows, section = {}, ""
    for row in page.locator("table.compare tbody tr").all():
        classes = row.get_attribute("class") or ""
        if "section" in classes:
            section = row.inner_text().strip()
            continue
        key = row.locator("th").inner_text()
        rows[section, key] = ("differs" in classes, row.locator("td").all_inner_texts())
    return rows


def test_names_with_markup_are_shown_as_text(site, page, page_log, screenshot):
    compare = f"/e/lab/ui_demo/compare?runs={site.runs[1, 0]},{site.runs[2, 0]}"
    run = run_url(site, 1).removeprefix(site.url)
    for path in ["/", "/e/lab/ui_demo", "/e/lab/ui_demo/runs", run, compare]:
        page.goto(site.url + path)
        _ready(page)
        assert page.locator("img[src='x']").count() == 0, path
        assert path == "/" or page.get_by_text(XSS).count() > 0, path
    page.goto(run_url(site, 1))
    _ready(page)
    assert XSS in _cells(page, "table.params th") and XSS in _cells(page, "table.metrics th")
    assert page.get_by_role("link", name=XSS, exact=True).count() == 1  # artifact
    titles = page.locator("#plots .gtitle").all_text_contents()
    assert sorted(titles) == sorted(["loss", XSS])
    screenshot(page, "markup-as-text")
    assert page_log.dialogs == []
    page_log.assert_clean()


def test_experiment_page_is_the_report_with_links_to_the_runs(site, page, page_log, screenshot):
    page.goto(site.url + "/e/lab/ui_demo")
    _ready(page)  # the report's own script sets it once drawn
    assert page.locator("#metalab-ui-bar").inner_text().startswith("metalab ui / lab/ui_demo")
    assert "ui_demo" in page.locator("#title").inner_text()
    screenshot(page, "experiment")
    page.get_by_role("link", name="runs: open one, or compare several").click()
    page.wait_for_url("**/e/lab/ui_demo/runs")
    _ready(page)
    assert page.locator("table.runs tbody tr").count() == TOTAL
    page.get_by_role("link", name="failed", exact=True).click()
    page.wait_for_url("**status=failed")
    assert page.locator("table.runs td.failed").count() == TOTAL - DONE
    assert page.locator("table.runs tbody tr").count() == TOTAL - DONE
    screenshot(page, "runs-failed")
    page.locator("table.runs tbody a").first.click()
    page.wait_for_url(f"**/run/{site.runs[3, 0]}")
    page_log.assert_clean()
