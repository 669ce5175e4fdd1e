"""``metalab ui``: a read-only local web dashboard over a folder of stores.

Imports errors, _optional, _listing, capture, record, store and report.
Starlette and uvicorn (``pip install 'metalab[ui]'``) and plotly, whose plotly.js the
pages load from ``/static/plotly.min.js`` (no CDN), are imported when an app is made.

Pages, for the stores under ROOT (found as ``metalab ls`` finds them)::

    /                                   the stores, their counts refreshed every 2 s
    /e/<store>                          one experiment: its report (metalab.report)
    /e/<store>/runs?status=&page=       its runs, 100 a page, to open or pick to compare
    /e/<store>/run/<run_id>             one run: params, seeds, metrics, step curves, ...
    /e/<store>/run/<run_id>/artifact/<name>   an artifact's bytes
    /e/<store>/compare?runs=a,b,c       runs side by side, differences marked
    /api/stores                         the list page's numbers, as JSON

``<store>`` is the store folder's path relative to ROOT (empty when ROOT is a store)
and a run ID may be given by a unique prefix, as ``metalab show`` takes it.

The server only reads: stores are opened with ``create=False``. A request resolves to
a file inside ROOT or gets 404: path parts ``..``, ``.``, hidden names and symbolic
links that lead out of ROOT are refused, as are artifact links that leave their store.
Everything a store holds is shown as text (HTML-escaped, or set with ``textContent``
by the page scripts), artifacts are served with a sandboxing Content-Security-Policy,
and the pages themselves run only the scripts under ``/static``.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import math
import mimetypes
import os
import re
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from metalab._listing import StoreSummary, find_stores, summarise_store
from metalab._optional import require
from metalab.capture import decode_steps
from metalab.errors import InvalidArgumentError, MetalabError
from metalab.record import SUCCESS, RunRecord, records_from_json
from metalab.results import verdicts, verified_text
from metalab.store import PackStore, Store, open_store

__all__ = ["create_app", "serve"]

_FEATURE = "metalab ui"
# Host names a browser sends for a server bound to loopback. Other Host headers are
# refused, so a web page cannot reach the dashboard by rebinding its own DNS name
# to 127.0.0.1.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
# Rows of the run table per page: a 100,000-run store is browsed, not rendered whole.
_RUNS_PER_PAGE = 100
# Reports kept built (the report of 100,000 runs is 19 MB).
_REPORTS_KEPT = 4
# Side by side, wider than this stops being readable.
_COMPARE_LIMIT = 20
# Printed output longer than this is cut to its end, as `metalab show --tail` does.
_TEXT_LIMIT = 200_000
_SHORT_ID = 12
_RUN_ID = re.compile(r"[0-9a-f]{1,64}")
# A record's JSON starts with its run ID (record.HEADER_FIELDS), so finding a run
# reads only this much of each line, not the whole record.
_HEAD = re.compile(rb'\{"run_id":"([0-9a-f]*)"')
# The fields up to the replicate index, as RunRecord.to_json writes them.
_ORDER = re.compile(
    rb'\{"run_id":"[0-9a-f]*","status":"([a-z]*)","attempt":\d+,'
    rb'"experiment":"(?:[^"\\]|\\.)*","version":"(?:[^"\\]|\\.)*",'
    rb'"case_index":(\d+),"replicate_index":(\d+),'
)
# Artifacts a browser may show in the page; anything else is downloaded.
_INLINE_TYPES = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/svg+xml",
    "text/plain",
    "text/csv",
    "application/json",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    # Plotly sets styles inline; images are artifacts and Plotly's data: URLs.
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_BAR_STYLE = "padding:8px 24px;background:#24292f;color:#fff;font:14px system-ui,sans-serif"
# An artifact, or the report, runs in an opaque origin: an SVG or HTML file with a
# script in it cannot read the dashboard or the other stores.
_SANDBOX_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Refusal(Exception):
    """A request answered with an error page: ``status`` and a message for the reader."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(root: str | os.PathLike[str], *, allowed_hosts: Sequence[str] | None = None) -> Any:
    """Return the dashboard over the stores under ``root``, as a Starlette app.

    Args:
        root: The folder holding the stores (``metalab ls`` finds the same ones).
        allowed_hosts: Host names the server answers to; ``None`` means the loopback
            names (``127.0.0.1``, ``localhost``), ``["*"]`` any.

    Raises:
        InvalidArgumentError: ``root`` is not a folder.
        MissingDependencyError: starlette or plotly is not installed.

    """
    folder = Path(root)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise InvalidArgumentError(
            f"metalab ui {os.fspath(root)}: {os.fspath(root)!r} {what}; pass the folder "
            f"that holds your stores (the runner's default is ./runs)."
        )
    starlette = require("starlette.applications", feature=_FEATURE, extra="ui")
    routing = require("starlette.routing", feature=_FEATURE, extra="ui")
    trusted = require("starlette.middleware.trustedhost", feature=_FEATURE, extra="ui")
    middleware = require("starlette.middleware", feature=_FEATURE, extra="ui")
    require("plotly", feature=_FEATURE, extra="ui")  # checked now, not on the first page
    dashboard = _Dashboard(folder)
    return starlette.Starlette(
        routes=[
            routing.Route("/", dashboard.stores_page),
            routing.Route("/api/stores", dashboard.stores_api),
            routing.Route("/static/ui.js", _static(_SCRIPT, "text/javascript")),
            routing.Route("/static/ui.css", _static(_STYLE, "text/css")),
            routing.Route("/static/plotly.min.js", _plotly_response),
            routing.Route("/e/{rest:path}", dashboard.experiment_route),
        ],
        exception_handlers={_Refusal: _refusal_page, 404: _not_found_page},
        middleware=[
            middleware.Middleware(
                trusted.TrustedHostMiddleware,
                allowed_hosts=list(allowed_hosts or _LOOPBACK_HOSTS),
            )
        ],
    )


def serve(root: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the dashboard over ``root`` at ``http://host:port/`` until Ctrl-C.

    Binds the loopback address unless ``host`` says otherwise (``0.0.0.0`` lets other
    machines in: the dashboard has no login). Port 0 picks a free port.

    Raises:
        InvalidArgumentError: ``root`` is not a folder, ``port`` is out of range, or the
            address cannot be bound (the port is taken).
        MissingDependencyError: starlette, uvicorn or plotly is not installed.

    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidArgumentError(
            f"metalab ui --port {port!r}: must be a port number from 0 to 65535 (0 picks "
            f"a free one); the default is 8765."
        )
    uvicorn = require("uvicorn", feature=_FEATURE, extra="ui")
    loopback = host in _LOOPBACK_HOSTS
    app = create_app(root, allowed_hosts=None if loopback else ["*"])
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise InvalidArgumentError(
            f"metalab ui --host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
            f"pass another --port, or --port 0 for a free one."
        ) from None
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"metalab ui: the stores under {os.fspath(root)} at http://{shown}:{bound}/ "
        f"(read-only; Ctrl-C stops)",
        file=sys.stderr,
        flush=True,
    )
    # The access log would print a line per refresh of the list page, every 2 s.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    # uvicorn shuts down on Ctrl-C and then raises it again; it is how a dashboard
    # stops, not an interruption of work.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])


# ------------------------------------------------------------------------- the routes


class _Dashboard:
    """The pages over one root folder; each method answers one route."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # The latest reports built, by store folder, with the state they were built at.
        self._reports: OrderedDict[Path, tuple[tuple[Any, ...], str]] = OrderedDict()
        self._reports_lock = threading.Lock()

    def stores_page(self, request: Any) -> Any:
        """``/``: the stores under the root; the page script refreshes the numbers."""
        body = (
            "<h1>Stores</h1>"
            f"<p class='muted'>under <code>{_esc(str(self.root))}</code>; "
            "<span id='refreshed'>refreshing every 2 s</span></p>"
            "<table class='stores'><thead><tr><th>store</th><th>experiment</th>"
            "<th>version</th><th class='num'>done</th><th class='num'>failed</th>"
            "<th class='num'>pending</th><th class='num'>total</th><th>progress</th>"
            "<th>last activity</th></tr></thead><tbody id='stores-body'></tbody></table>"
            "<p id='stores-empty' hidden>No metalab stores here yet.</p>"
        )
        return _page("metalab ui", body, data={"stores": self._stores()}, page="stores")

    def stores_api(self, request: Any) -> Any:
        """``/api/stores``: every store's counts, as JSON."""
        return _response(
            _json({"stores": self._stores()}), "application/json", {"Cache-Control": "no-store"}
        )

    def _stores(self) -> list[dict[str, Any]]:
        rows = []
        for folder in find_stores(self.root, packs=True):
            try:
                summary = summarise_store(folder)
            except (MetalabError, OSError) as exc:
                # One unreadable store should not hide the others.
                rows.append(_broken_row(self.root, folder, exc))
                continue
            rows.append(_store_row(self.root, summary))
        return rows

    def experiment_route(self, request: Any) -> Any:
        """``/e/<store>/...``: find the store, then the page the rest of the path names."""
        folder, parts, tail = self._locate(request.path_params["rest"])
        if tail == []:
            return self._report(folder, parts)
        if tail == ["runs"]:
            return self._runs_page(folder, parts, request.query_params)
        if tail == ["compare"]:
            return self._compare_page(folder, parts, request.query_params.getlist("runs"))
        if len(tail) == 2 and tail[0] == "run":
            return self._run_page(folder, parts, tail[1])
        if len(tail) == 4 and tail[0] == "run" and tail[2] == "artifact":
            return self._artifact(folder, tail[1], tail[3])
        raise _Refusal(404, "There is no such page.")

    def _locate(self, rest: str) -> tuple[Path, list[str], list[str]]:
        """Split ``rest`` into the store folder, its parts below the root, and the rest.

        The store is the first folder along the path holding a manifest.json (stores
        do not nest: ``metalab ls`` stops at one). Every step must stay inside the root
        once links are followed, and be a name ``metalab ls`` would walk into.
        """
        parts = rest.split("/")
        if parts[-1] == "":  # a trailing slash
            parts.pop()
        for depth in range(len(parts) + 1):
            folder = self.root.joinpath(*parts[:depth])
            if _inside(self.root, folder) is None:
                break
            if (folder / "manifest.json").is_file() or _is_pack(folder):
                return folder, parts[:depth], parts[depth:]
            if depth == len(parts) or not _walkable(parts[depth]):
                break
        raise _Refusal(404, "There is no store at this address under the dashboard's root.")

    def _runs_page(self, folder: Path, parts: list[str], query: Any) -> Any:
        summary = _summary(folder)
        store = open_store(folder, create=False)
        status = query.get("status") or ""
        if status not in ("", SUCCESS, "failed"):
            raise _Refusal(400, "status= takes 'success' or 'failed' (or nothing for all runs).")
        page_number = _page_number(query.get("page"))
        heads = [head for head in _heads(store) if not status or head[2] == status]
        pages = max(math.ceil(len(heads) / _RUNS_PER_PAGE), 1)
        if page_number > pages:
            raise _Refusal(
                404, f"There are {pages} page(s) of runs; page {page_number} is past them."
            )
        first = (page_number - 1) * _RUNS_PER_PAGE
        shown = records_from_json(head[3] for head in heads[first : first + _RUNS_PER_PAGE])
        name = summary.manifest.get("name", "?")
        version = summary.manifest.get("version", "?")
        url = _store_url(parts, "runs")
        filters = " ".join(
            f"<a href='{_esc(url + (f'?status={value}' if value else ''))}'"
            f"{' class=current' * (value == status)}>{label}</a>"
            for value, label in (("", "all"), (SUCCESS, "succeeded"), ("failed", "failed"))
        )
        paging = _paging(url, status, page_number, pages)
        body = (
            f"<h1>{_esc(name)} <span class='muted'>{_esc(version)}</span>: runs</h1>"
            f"<p>{_counts_text(summary)}; "
            f"<a href='{_esc(_store_url(parts))}'>the report</a></p>"
            f"<p class='filters'>show: {filters}</p>"
            f"<form method='get' action='{_esc(_store_url(parts, 'compare'))}'>"
            f"{_run_table(parts, shown)}{paging}"
            "<p><button type='submit'>compare the selected runs</button></p></form>"
        )
        crumbs = [(_store_url(parts), _store_label(parts)), (url, "runs")]
        return _page(f"{name} {version}: runs", body, crumbs=crumbs, page="runs")

    def _report(self, folder: Path, parts: list[str]) -> Any:
        """Answer with the experiment view: its report, under a bar of dashboard links."""
        report = self._built_report(folder)
        links = [
            ("/", "metalab ui"),
            (_store_url(parts), _store_label(parts)),
            (_store_url(parts, "runs"), "runs: open one, or compare several"),
        ]
        bar = " / ".join(
            f"<a style='color:#fff' href='{_esc(url)}'>{_esc(label)}</a>" for url, label in links
        )
        # The report's own Content-Security-Policy allows inline styles, not style sheets.
        bar = f"<div id='metalab-ui-bar' style='{_BAR_STYLE}'>{bar}</div>"
        body = re.search(r"<body[^>]*>", report)
        at = body.end() if body else 0
        page = report[:at] + bar + report[at:]
        return _response(page, "text/html; charset=utf-8", _SANDBOX_HEADERS)

    def _built_report(self, folder: Path) -> str:
        """Return the report of the store in ``folder``, built again only if the store changed.

        A report of 100,000 runs takes 13 s to build: kept, it is served again at once
        until a record or a manifest is written.
        """
        # Imported here: the report needs plotly, and is a module of its own.
        from metalab.report import build_report

        state = _state(folder)
        with self._reports_lock:
            kept = self._reports.get(folder)
        if kept is not None and kept[0] == state:
            return kept[1]
        try:
            report = build_report(open_store(folder, create=False))
        except (MetalabError, OSError) as exc:
            raise _Refusal(500, f"The report of this store cannot be built: {exc}") from None
        with self._reports_lock:
            self._reports[folder] = (state, report)
            self._reports.move_to_end(folder)
            while len(self._reports) > _REPORTS_KEPT:
                self._reports.popitem(last=False)
        return report

    def _run_page(self, folder: Path, parts: list[str], run_id: str) -> Any:
        store = open_store(folder, create=False)
        (record,) = _find_records(store, [run_id])
        links = {
            ref.name: _esc(_store_url(parts, "run", record.run_id, "artifact", ref.name))
            for ref in record.artifacts
        }
        artifacts = "".join(
            f"<tr><td><a href='{links[ref.name]}'>{_esc(ref.name)}</a></td>"
            f"<td>{_esc(ref.kind)}</td><td class='num'>{_esc(_size(ref.size))}</td>"
            f"<td><code>{_esc(ref.path)}</code></td></tr>"
            for ref in record.artifacts
        )
        images = "".join(
            f"<figure><img alt='{_esc(ref.name)}' src='{links[ref.name]}'>"
            f"<figcaption>{_esc(ref.name)}</figcaption></figure>"
            for ref in record.artifacts
            if ref.kind == "figure"
        )
        series = _step_series(folder, record)
        body = (
            f"<h1>Run <code>{_esc(record.run_id)}</code></h1>"
            + _pairs_table(
                "run",
                [
                    ("status", record.status),
                    ("experiment", f"{record.experiment} {record.version}"),
                    ("case, replicate", f"{record.case_index}, {record.replicate_index}"),
                    ("attempt", record.attempt),
                    ("started", record.started_at),
                    ("duration", f"{record.duration:.3f} s"),
                    ("worker", record.worker or f"{record.host}:{record.pid}"),
                    (
                        "verified",
                        verified_text(verdicts(store.verifications()).get(record.run_id))
                        or "never (metalab verify)",
                    ),
                ],
                status=record.status,
            )
            + _pairs_table("params", list(record.params.items()))
            + _pairs_table("seeds", list(record.seeds.items()))
            + _pairs_table("metrics", list(record.metrics.items()))
            + ("<h2>Step curves</h2><div id='plots'></div>" if series else "")
            + "<h2>Artifacts</h2>"
            + (
                "<table class='artifacts'><thead><tr><th>name</th><th>kind</th>"
                "<th class='num'>size</th><th>path</th></tr></thead>"
                f"<tbody>{artifacts}</tbody></table>"
                if artifacts
                else "<p class='muted'>(none)</p>"
            )
            + images
            + _error_section(record.error)
            + "".join(
                _text_section(title, folder, relpath)
                for title, relpath in (
                    ("logs", record.logs),
                    ("stdout", record.stdout),
                    ("stderr", record.stderr),
                )
            )
        )
        plots = [
            {"title": name, "traces": [{"name": record.run_id[:_SHORT_ID], "x": x, "y": y}]}
            for name, (x, y) in series.items()
        ]
        crumbs = [
            (_store_url(parts), _store_label(parts)),
            (_store_url(parts, "run", record.run_id), record.run_id[:_SHORT_ID]),
        ]
        return _page(
            f"run {record.run_id[:_SHORT_ID]}",
            body,
            crumbs=crumbs,
            data={"plots": plots},
            page="run",
        )

    def _compare_page(self, folder: Path, parts: list[str], asked: list[str]) -> Any:
        prefixes = [prefix for value in asked for prefix in value.split(",") if prefix.strip()]
        prefixes = list(dict.fromkeys(prefix.strip() for prefix in prefixes))
        if not 2 <= len(prefixes) <= _COMPARE_LIMIT:
            raise _Refusal(
                400,
                f"Compare takes 2 to {_COMPARE_LIMIT} runs, as ?runs=ID,ID (IDs or unique "
                f"prefixes); {len(prefixes)} given. Select them in the run table.",
            )
        store = open_store(folder, create=False)
        records = _find_records(store, prefixes)
        ids = [record.run_id for record in records]
        header = "".join(
            f"<th><a href='{_esc(_store_url(parts, 'run', rid))}'>{_esc(rid[:_SHORT_ID])}</a></th>"
            for rid in ids
        )
        sections = [
            (
                "run",
                [
                    {
                        "status": r.status,
                        "case, replicate": f"{r.case_index}, {r.replicate_index}",
                        "attempt": r.attempt,
                        "duration": f"{r.duration:.3f} s",
                    }
                    for r in records
                ],
            ),
            ("params", [r.params for r in records]),
            ("seeds", [r.seeds for r in records]),
            ("metrics", [r.metrics for r in records]),
        ]
        rows = []
        differing = 0
        for title, sides in sections:
            rows.append(f"<tr class='section'><th colspan='{len(ids) + 1}'>{title}</th></tr>")
            for key in dict.fromkeys(key for side in sides for key in side):
                cells = [_cell(side[key]) if key in side else None for side in sides]
                differs = len({json.dumps(cell) for cell in cells}) > 1
                differing += differs
                rows.append(
                    f"<tr{' class=differs' * differs}><th>{_esc(str(key))}</th>"
                    + "".join(
                        "<td class='missing'>(missing)</td>"
                        if cell is None
                        else f"<td>{_esc(cell)}</td>"
                        for cell in cells
                    )
                    + "</tr>"
                )
        series = {record.run_id: _step_series(folder, record) for record in records}
        names = list(dict.fromkeys(name for steps in series.values() for name in steps))
        plots = [
            {
                "title": name,
                "traces": [
                    {"name": rid[:_SHORT_ID], "x": steps[name][0], "y": steps[name][1]}
                    for rid, steps in series.items()
                    if name in steps
                ],
            }
            for name in names
        ]
        body = (
            f"<h1>{len(ids)} runs side by side</h1>"
            f"<p class='muted'>{differing} row(s) differ, highlighted.</p>"
            f"<table class='compare'><thead><tr><th></th>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            + ("<h2>Step curves</h2><div id='plots'></div>" if plots else "")
        )
        crumbs = [
            (_store_url(parts), _store_label(parts)),
            (_store_url(parts, "compare") + "?runs=" + ",".join(ids), "compare"),
        ]
        return _page("compare runs", body, crumbs=crumbs, data={"plots": plots}, page="compare")

    def _artifact(self, folder: Path, run_id: str, name: str) -> Any:
        store = open_store(folder, create=False)
        (record,) = _find_records(store, [run_id])
        refs = [ref for ref in record.artifacts if ref.name == name]
        if not refs:
            raise _Refusal(404, "This run has no artifact of that name.")
        responses = require("starlette.responses", feature=_FEATURE, extra="ui")
        filename = PurePosixPath(refs[0].path).name
        kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        inline = kind in _INLINE_TYPES
        media_type = (
            kind + ("; charset=utf-8" if kind.startswith("text/") else "")
            if inline
            else "application/octet-stream"
        )
        disposition = "inline" if inline else "attachment"
        if isinstance(store, PackStore):
            # The member, checked against the pack's checksums, from memory: the pack's
            # temporary extraction would be gone before a file response streams it.
            headers = {
                **_SANDBOX_HEADERS,
                "Content-Disposition": f"{disposition}; filename*=utf-8''{quote(filename)}",
            }
            data = store.read_file(refs[0].path)
            return responses.Response(data, media_type=media_type, headers=headers)
        path = _inside(folder, store.artifact_path(refs[0]))
        if path is None or not path.is_file():
            raise _Refusal(404, "The artifact's file is missing, or a link leads out of its store.")
        return responses.FileResponse(
            path,
            media_type=media_type,
            headers=_SANDBOX_HEADERS,
            filename=path.name,
            content_disposition_type=disposition,
        )


# ------------------------------------------------------------------- reading stores


def _inside(root: Path, path: Path | str) -> Path | None:
    """Return ``path`` with links followed if that lies inside ``root`` (resolved), else None."""
    real = Path(os.path.realpath(path))
    return real if real == root.resolve() or root.resolve() in real.parents else None


def _is_pack(path: Path) -> bool:
    """Whether ``path`` is a pack file (``metalab pack``), which the dashboard reads in place."""
    return path.name.endswith(PackStore.SUFFIX) and path.is_file()


def _walkable(name: str) -> bool:
    """Whether ``metalab ls`` would walk into a folder so named (and it names no other place)."""
    return bool(name) and not name.startswith(".") and "\\" not in name and "\0" not in name


def _state(folder: Path) -> tuple[Any, ...]:
    """Return what changes when a store gets a record or a manifest: its files' sizes and times.

    Records are appended to ``records/*.jsonl`` and manifests replaced atomically
    (docs/store.md), so an unchanged state means unchanged contents.
    """
    if _is_pack(folder):  # a pack never changes but by being replaced
        files = [folder]
    else:
        files = [folder / "manifest.json", *sorted((folder / "records").glob("*.jsonl"))]
    stats = []
    for path in files:
        with contextlib.suppress(OSError):  # gone since the listing: left out of the state
            stat = path.stat()
            stats.append((path.name, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(stats)


def _summary(folder: Path) -> StoreSummary:
    try:
        return summarise_store(folder)
    except (MetalabError, OSError) as exc:
        raise _Refusal(500, f"This store cannot be read: {exc}") from None


def _heads(store: Store) -> list[tuple[int, int, str, bytes]]:
    """Return ``(case, replicate, status, JSON line)`` of every current record, in order.

    Read from the start of each line where it has the usual form (12x faster than
    parsing 100,000 records: 0.2 s against 2.4 s), else from the parsed line; the
    rows shown are parsed into records later.
    """
    heads = []
    for line in store.records_json():
        head = _ORDER.match(line)
        if head:
            heads.append((int(head[2]), int(head[3]), head[1].decode(), line))
            continue
        entry = json.loads(line)
        case, replicate = entry.get("case_index", 0), entry.get("replicate_index", 0)
        heads.append((case, replicate, str(entry.get("status")), line))
    heads.sort(key=lambda head: head[:2])
    return heads


def _find_records(store: Store, prefixes: list[str]) -> list[RunRecord]:
    """Return the current record of each run ``prefixes`` names (an ID or a unique prefix).

    Reads the stored JSON lines and parses only the ones that match, so a run page of
    a 100,000-run store builds one record, not 100,000. A prefix that matches no run,
    or several, is answered with 404, with the same words as ``metalab show``.
    """
    for prefix in prefixes:
        if not _RUN_ID.fullmatch(prefix):
            raise _Refusal(404, "A run ID is hexadecimal digits (0-9, a-f).")
    lines = store.records_json()
    matches: dict[str, dict[str, bytes]] = {prefix: {} for prefix in prefixes}
    for line in lines:
        head = _HEAD.match(line)
        rid = head.group(1).decode() if head else str(json.loads(line).get("run_id"))
        for prefix, found in matches.items():
            if rid.startswith(prefix):
                found[rid] = line
    chosen = []
    for prefix, found in matches.items():
        if prefix in found:
            found = {prefix: found[prefix]}
        if not found:
            raise _Refusal(
                404,
                f"No run ID starts with {prefix!r} among the {len(lines)} run(s) of this store.",
            )
        if len(found) > 1:
            raise _Refusal(
                404,
                f"{prefix!r} matches {len(found)} runs; give more digits of the run ID.",
            )
        chosen.append(next(iter(found.values())))
    return records_from_json(chosen)


def _store_file(folder: Path, relpath: str) -> bytes:
    """Return the bytes of the store file ``relpath``, refusing one outside the store."""
    path = _inside(folder, folder / relpath)
    if path is None:
        raise InvalidArgumentError(f"{relpath!r} leads out of the store folder; it is not read.")
    return path.read_bytes()


def _step_series(folder: Path, record: RunRecord) -> dict[str, tuple[list[int], list[Any]]]:
    """Return the run's per-step series, non-finite values as None (gaps in a plot)."""
    if record.steps is None:
        return {}
    try:
        decoded = decode_steps(_store_file(folder, record.steps))
    except (MetalabError, OSError):
        return {}  # a damaged or missing file: the page still shows the rest of the run
    return {
        name: (list(steps), [value if math.isfinite(value) else None for value in values])
        for name, (steps, values) in decoded.items()
    }


# ------------------------------------------------------------------------- rendering


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` in it."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _cell(value: Any) -> str:
    """Return ``value`` as a table shows it: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf, -inf
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _size(size: int) -> str:
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def _store_url(parts: Sequence[str], *tail: str) -> str:
    return "/e/" + "/".join(quote(part, safe="") for part in (*parts, *tail))


def _store_label(parts: Sequence[str]) -> str:
    return "/".join(parts) or "(the root folder)"


def _store_row(root: Path, summary: StoreSummary) -> dict[str, Any]:
    parts = summary.folder.relative_to(root).parts
    total = summary.total
    pending = None if total is None else max(total - summary.done - summary.failed, 0)
    return {
        "path": _store_label(parts),
        "url": _store_url(parts),
        "name": str(summary.manifest.get("name", "?")),
        "version": str(summary.manifest.get("version", "?")),
        "done": summary.done,
        "failed": summary.failed,
        "pending": pending,
        "total": total,
        "last_activity": summary.last_activity.astimezone(UTC).isoformat(),
        "error": None,
    }


def _broken_row(root: Path, folder: Path, exc: BaseException) -> dict[str, Any]:
    parts = folder.relative_to(root).parts
    return {
        "path": _store_label(parts),
        "url": _store_url(parts),
        "error": " ".join(str(exc).split()),
    }


def _counts_text(summary: StoreSummary) -> str:
    total = "?" if summary.total is None else summary.total
    last = summary.last_activity.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"<span class='ok'>{summary.done} done</span>, "
        f"<span class='bad'>{summary.failed} failed</span> of {total} runs; "
        f"last activity {last}"
    )


def _page_number(text: str | None) -> int:
    if text is None:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise _Refusal(400, "page= takes a page number from 1 on.")
    return int(text)


def _paging(url: str, status: str, page: int, pages: int) -> str:
    if pages == 1:
        return ""
    query = f"status={status}&" if status else ""
    links = []
    if page > 1:
        links.append(f"<a href='{_esc(f'{url}?{query}page={page - 1}#runs')}'>previous</a>")
    links.append(f"page {page} of {pages}")
    if page < pages:
        links.append(f"<a href='{_esc(f'{url}?{query}page={page + 1}#runs')}'>next</a>")
    return f"<p class='paging'>{' · '.join(links)}</p>"


def _run_table(parts: list[str], records: list[RunRecord]) -> str:
    if not records:
        return "<p class='muted'>No runs here yet.</p>"
    params = list(dict.fromkeys(key for record in records for key in record.params))
    metrics = list(dict.fromkeys(key for record in records for key in record.metrics))
    head = "".join(
        f"<th>{_esc(name)}</th>"
        for name in ["", "run", "status", "case", "rep", *params, *metrics, "duration"]
    )
    rows = []
    for record in records:
        values = [
            *(record.params.get(name) for name in params),
            *(record.metrics.get(name) for name in metrics),
        ]
        cells = "".join(
            "<td></td>" if value is None else f"<td>{_esc(_brief(value))}</td>" for value in values
        )
        rid = record.run_id
        rows.append(
            f"<tr><td><input type='checkbox' name='runs' value='{_esc(rid)}' "
            f"aria-label='select {_esc(rid[:_SHORT_ID])}'></td>"
            f"<td><a href='{_esc(_store_url(parts, 'run', rid))}'><code>{_esc(rid[:_SHORT_ID])}"
            f"</code></a></td><td class='{_esc(record.status)}'>{_esc(record.status)}</td>"
            f"<td>{record.case_index}</td><td>{record.replicate_index}</td>{cells}"
            f"<td>{record.duration:.3f} s</td></tr>"
        )
    return (
        f"<table class='runs'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _brief(value: Any) -> str:
    """Return a run table's cell: floats to 6 significant digits, long texts cut."""
    text = f"{value:.6g}" if isinstance(value, float) else _cell(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pairs_table(title: str, pairs: list[tuple[str, Any]], *, status: str = "") -> str:
    if not pairs:
        return f"<h2>{_esc(title)}</h2><p class='muted'>(none)</p>"
    rows = "".join(
        f"<tr><th>{_esc(key)}</th><td{f' class={_esc(status)}' * (key == 'status')}>"
        f"{_esc(_cell(value))}</td></tr>"
        for key, value in pairs
    )
    return f"<h2>{_esc(title)}</h2><table class='pairs {_esc(title)}'><tbody>{rows}</tbody></table>"


def _error_section(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    return (
        "<h2>Error</h2>"
        f"<p class='bad'><strong>{_esc(error.get('type', '?'))}</strong>: "
        f"{_esc(error.get('message', ''))}</p>"
        f"<pre class='traceback'>{_esc(error.get('traceback', ''))}</pre>"
    )


def _text_section(title: str, folder: Path, relpath: str | None) -> str:
    if relpath is None:
        return ""
    try:
        text = _store_file(folder, relpath).decode("utf-8", errors="replace")
    except (MetalabError, OSError) as exc:
        return f"<h2>{title}</h2><p class='bad'>cannot be read: {_esc(exc)}</p>"
    note = ""
    if len(text) > _TEXT_LIMIT:
        note = f"<p class='muted'>the last {_TEXT_LIMIT} of {len(text)} characters</p>"
        text = text[-_TEXT_LIMIT:]
    return f"<h2>{title}</h2>{note}<pre class='{title}'>{_esc(text)}</pre>"


def _page(
    title: str,
    body: str,
    *,
    page: str,
    crumbs: Iterable[tuple[str, str]] = (),
    data: dict[str, Any] | None = None,
) -> Any:
    """Return a whole HTML page: nav, ``body``, and ``data`` as JSON for the page script."""
    nav = " / ".join(
        [
            "<a href='/'>metalab ui</a>",
            *(f"<a href='{_esc(url)}'>{_esc(label)}</a>" for url, label in crumbs),
        ]
    )
    scripts = "<script src='/static/ui.js'></script>"
    if data and data.get("plots"):
        scripts = "<script src='/static/plotly.min.js'></script>" + scripts
    embedded = (
        f"<script type='application/json' id='page-data'>{_json(data)}</script>" if data else ""
    )
    text = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><link rel='stylesheet' href='/static/ui.css'>"
        f"<link rel='icon' href='data:,'></head><body data-page='{page}'><nav>{nav}</nav>"
        f"<main>{body}</main>{embedded}{scripts}</body></html>"
    )
    return _response(text, "text/html; charset=utf-8", _PAGE_HEADERS)


def _response(
    body: str | bytes, media_type: str, headers: dict[str, str], status: int = 200
) -> Any:
    responses = require("starlette.responses", feature=_FEATURE, extra="ui")
    return responses.Response(body, status_code=status, media_type=media_type, headers=headers)


def _refusal_page(request: Any, exc: _Refusal) -> Any:
    titles = {400: "Bad request", 404: "Not found", 500: "Cannot read"}
    title = titles.get(exc.status, "Error")
    body = f"<h1>{title}</h1><p>{_esc(exc)}</p><p><a href='/'>all stores</a></p>"
    text = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><link rel='stylesheet' href='/static/ui.css'></head>"
        f"<body><nav><a href='/'>metalab ui</a></nav><main>{body}</main></body></html>"
    )
    return _response(text, "text/html; charset=utf-8", _PAGE_HEADERS, status=exc.status)


def _not_found_page(request: Any, exc: Exception) -> Any:
    return _refusal_page(request, _Refusal(404, "There is no such page."))


def _static(text: str, media_type: str) -> Any:
    def endpoint(request: Any) -> Any:
        return _response(text, f"{media_type}; charset=utf-8", {"Cache-Control": "no-cache"})

    return endpoint


@functools.cache
def _plotly_js() -> bytes:
    offline = require("plotly.offline", feature=_FEATURE, extra="ui")
    return offline.get_plotlyjs().encode()


def _plotly_response(request: Any) -> Any:
    # An hour: plotly.js is 4.6 MB, and changes only with the installed plotly.
    return _response(
        _plotly_js(), "text/javascript; charset=utf-8", {"Cache-Control": "max-age=3600"}
    )


# ------------------------------------------------------------------ page assets

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
nav { padding: 10px 24px; background: #24292f; color: #fff; }
nav a { color: #fff; text-decoration: none; } nav a:hover { text-decoration: underline; }
main { padding: 8px 24px 48px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; background: #fff; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e3; text-align: left;
  vertical-align: top; }
thead th { background: #f0f0f0; }
.num { text-align: right; }
.muted { color: #6e6e73; }
.ok, .success { color: #1a7f37; } .bad, .failed { color: #cf222e; }
.bar { width: 160px; height: 10px; background: #e3e3e3; display: flex; border-radius: 3px;
  overflow: hidden; }
.bar .done { background: #2da44e; } .bar .failed-part { background: #cf222e; }
tr.differs { background: #fff8c5; }
tr.section th { background: #eaeef2; }
td.missing { color: #6e6e73; font-style: italic; }
pre { background: #fff; border: 1px solid #e3e3e3; padding: 8px; overflow: auto;
  max-height: 480px; white-space: pre-wrap; }
.plot { width: 100%; max-width: 900px; }
figure img { max-width: 600px; border: 1px solid #e3e3e3; }
a.current { font-weight: bold; }
"""

_SCRIPT = r"""
"use strict";
(function () {
  function pageData() {
    const node = document.getElementById("page-data");
    return node ? JSON.parse(node.textContent) : {};
  }
  function cell(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function ago(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return seconds + "s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h ago";
    return Math.floor(seconds / 86400) + "d ago";
  }
  function storeRow(store) {
    const row = cell("tr");
    row.dataset.store = store.path;
    const link = cell("a", store.path);
    link.href = store.url;
    const first = cell("td");
    first.append(link);
    row.append(first);
    if (store.error) {
      const problem = cell("td", "cannot be read: " + store.error, "bad");
      problem.colSpan = 8;
      row.append(problem);
      return row;
    }
    row.append(cell("td", store.name), cell("td", store.version));
    row.append(cell("td", store.done, "num done"), cell("td", store.failed, "num failed"));
    row.append(cell("td", store.pending === null ? "?" : store.pending, "num pending"));
    row.append(cell("td", store.total === null ? "?" : store.total, "num total"));
    const bar = cell("div", null, "bar");
    const whole = store.total || store.done + store.failed || 1;
    const done = cell("div", null, "done");
    done.style.width = (100 * store.done / whole) + "%";
    const failed = cell("div", null, "failed-part");
    failed.style.width = (100 * store.failed / whole) + "%";
    bar.append(done, failed);
    bar.title = store.done + " done, " + store.failed + " failed of " + (store.total ?? "?");
    const progress = cell("td");
    progress.append(bar);
    row.append(progress);
    const last = cell("td", ago(store.last_activity));
    last.title = store.last_activity;
    row.append(last);
    return row;
  }
  function showStores(stores) {
    document.getElementById("stores-body").replaceChildren(...stores.map(storeRow));
    document.getElementById("stores-empty").hidden = stores.length > 0;
  }
  function refreshStores() {
    const note = document.getElementById("refreshed");
    fetch("/api/stores", {cache: "no-store"})
      .then((response) => response.ok ? response.json() : Promise.reject(response.status))
      .then((answer) => {
        showStores(answer.stores);
        note.textContent = "updated " + new Date().toLocaleTimeString() + ", every 2 s";
      })
      .catch(() => { note.textContent = "cannot reach the server; trying again"; })
      .finally(() => setTimeout(refreshStores, 2000));
  }
  // Plotly reads a few HTML tags in titles and legends; names from a store are text.
  function plotText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function drawPlots(plots) {
    const box = document.getElementById("plots");
    for (const plot of plots) {
      const node = cell("div", null, "plot");
      node.dataset.metric = plot.title;
      box.append(node);
      const traces = plot.traces.map((trace) => ({
        type: "scatter",
        mode: trace.x.length > 1 ? "lines" : "markers",
        name: plotText(trace.name),
        x: trace.x,
        y: trace.y,
      }));
      Plotly.newPlot(node, traces, {
        title: {text: plotText(plot.title)},
        height: 320,
        margin: {t: 48, r: 24, b: 48, l: 64},
        xaxis: {title: {text: "step"}},
        showlegend: traces.length > 1,
      }, {displaylogo: false, responsive: true});
    }
  }
  const data = pageData();
  if (data.stores) {
    showStores(data.stores);
    setTimeout(refreshStores, 2000);
  }
  if (data.plots && data.plots.length) drawPlots(data.plots);
  window.metalabReady = true;
})();
"""
