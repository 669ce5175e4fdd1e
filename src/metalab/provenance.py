"""Where and from what code an experiment ran: environment, packages, git. Imports errors.

Standard library only. Everything here is best effort and never fails a run: a fact
that cannot be read is ``None``, and git trouble is reported inside the result.

- :func:`environment`: Python, platform, host, CPU count, installed packages, the
  metalab version, the NVIDIA GPUs (model and driver, from ``nvidia-smi``) and, only
  when the program has already imported torch, torch and CUDA facts.
- :func:`git_state`: commit, branch, dirty flag, untracked paths and the diff of
  the work tree against ``HEAD``.
- :func:`provenance`: both, plus a timestamp, split into manifest-ready facts and the
  diff text, which the caller stores as a file of its own.
- :func:`utc_now` and :func:`process_peak_memory`: per-run facts.

>>> env = environment()
>>> env["packages"]["pytest"] == importlib.metadata.version("pytest")
True
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from metalab._nvidia import gpus as nvidia_gpus
from metalab.errors import InvalidArgumentError

__all__ = [
    "environment",
    "git_state",
    "process_peak_memory",
    "provenance",
    "utc_now",
    "utc_text",
]

_GIT_TIMEOUT_S = 5
# English messages (so "not a git repository" can be recognised) and no index.lock:
# reading provenance must not block, or be blocked by, the user's own git commands.
_GIT_ENV = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_OPTIONAL_LOCKS": "0"}
_OUTSIDE_WORK_TREE = ("not a git repository", "must be run in a work tree")
_NAME = re.compile(r"^Name:[ \t]*(\S+)", re.MULTILINE)
_VERSION = re.compile(r"^Version:[ \t]*(\S+)", re.MULTILINE)


def environment() -> dict[str, Any]:
    """Return facts about the interpreter, machine and installed packages.

    Keys: ``python`` (``version``: ``sys.version``, ``implementation``), ``platform``
    (``platform.platform()``), ``machine``, ``hostname``, ``cpu_count``, ``metalab``
    (its version), ``packages`` (``{name: version}`` of every installed distribution,
    names normalised as in PEP 503: lowercase, runs of ``-_.`` as ``-``), ``gpus``
    (see below), ``cuda_visible_devices`` (that variable, None when unset) and, only
    when the program has imported torch (it is never imported here), ``torch``:
    ``version``, ``cuda_version`` and ``cudnn_version`` (None without CUDA),
    ``cuda_available``, ``cuda_initialized``, ``device_count`` and ``devices`` (the
    device names; None unless the program has initialised CUDA, see below).

    CUDA is never initialised here: that would break CUDA in every worker forked
    afterwards. So ``cuda_available`` is ``torch.cuda.device_count() > 0``, counted
    through NVML, rather than ``torch.cuda.is_available()``, and device names are
    read only once the program has used CUDA itself (call this again then to get them).

    ``gpus`` lists the machine's NVIDIA GPUs as ``nvidia-smi`` numbers them:
    ``[{"index": 0, "name": "NVIDIA H100 80GB HBM3", "driver_version": "550.54.15"}]``;
    None where ``nvidia-smi`` is missing or fails. It is asked once per process:
    it can take a second, and neither the GPUs nor the driver change under a program.

    >>> env = environment()
    >>> env["python"]["version"] == sys.version
    True
    """
    facts: dict[str, Any] = {
        "python": {
            "version": sys.version,
            "implementation": platform.python_implementation(),
        },
        "platform": _guarded(platform.platform),
        "machine": _guarded(platform.machine),
        "hostname": _guarded(socket.gethostname),
        "cpu_count": os.cpu_count(),
        "metalab": _metalab_version(),
        "packages": _packages(),
        "gpus": _gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        facts["torch"] = _torch_facts(torch)
    return facts


def git_state(path: str | os.PathLike[str] = ".") -> dict[str, Any] | None:
    """Return the git state of the work tree holding the directory ``path``.

    None when ``path`` is not inside a git work tree or git is not installed. Else
    ``{"commit", "branch", "dirty", "untracked", "diff"}``:

    - ``commit``: the full hash of ``HEAD``; None before the first commit.
    - ``branch``: the current branch; None when ``HEAD`` is detached.
    - ``dirty``: True when tracked files, staged or not, differ from ``HEAD`` (as
      ``git describe --dirty`` has it; untracked files alone do not count).
    - ``untracked``: untracked, not ignored paths relative to the repository root, as
      ``git status`` shows them (an untracked directory once, as ``dir/``).
    - ``diff``: ``git diff HEAD`` (staged and unstaged changes; binary files as
      "Binary files differ"), decoded as UTF-8 with undecodable bytes replaced.

    Git failing in an unexpected way (a timeout after 5 s, a refused repository) gives
    ``{"error": message}`` instead; only a ``path`` that is not a directory raises.
    """
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise InvalidArgumentError(
            f"git_state(path={directory!r}): not a directory; give a directory inside the "
            f"repository, e.g. '.'."
        )
    try:
        return _read_git_state(directory)
    except FileNotFoundError:  # no git executable
        return None
    except OSError as exc:
        return {"error": f"git could not be run: {exc}"}
    except _GitError as exc:
        return {"error": str(exc)}


def provenance(path: str | os.PathLike[str] = ".") -> tuple[dict[str, Any], str | None]:
    """Return ``(facts, diff)``: manifest-ready facts, and the git diff to store apart.

    ``facts`` is ``{"timestamp": utc_now(), "environment": environment(), "git": ...}``
    where ``git`` is :func:`git_state` of ``path`` without its ``diff``, plus
    ``diff_sha256`` (SHA-256 of the diff's UTF-8 bytes, None for a clean tree); it is
    None outside a git work tree. ``diff`` is the diff text, or None when there is
    none to store (clean tree, no repository, or a git error). A diff can be large,
    so it stays out of the facts and the caller writes it to a file of its own.
    """
    git = git_state(path)
    diff = None
    if git is not None and "diff" in git:
        diff = git.pop("diff") or None
        git["diff_sha256"] = None if diff is None else _sha256(diff)
    return {"timestamp": utc_now(), "environment": environment(), "git": git}, diff


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 with microseconds and a ``Z``.

    Always 27 characters (``2025-01-31T09:05:00.000123Z``), so the strings sort in
    time order; :meth:`datetime.datetime.fromisoformat` reads them back.

    >>> len(utc_now()), utc_now()[10], utc_now()[-1]
    (27, 'T', 'Z')
    """
    return utc_text(time.time_ns())


def utc_text(ns: int) -> str:
    """Return ``time.time_ns()`` value ``ns`` as :func:`utc_now` writes the time.

    The runner takes a run's times as ``time_ns()`` and writes them out later.

    >>> utc_text(1_700_000_000_123_456_789)
    '2023-11-14T22:13:20.123456Z'
    """
    global _utc_prefix
    # Runs take two times each: the date and time of day are formatted once a second
    # (0.4 us a call, against 2.4 us for datetime.isoformat each time).
    second, nanos = divmod(ns, 1_000_000_000)
    cached_second, prefix = _utc_prefix
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _utc_prefix = (second, prefix)  # one tuple, so threads never see half of it
    return f"{prefix}.{nanos // 1000:06d}Z"


# (second since the epoch, "YYYY-MM-DDTHH:MM:SS") of the latest time written.
_utc_prefix: tuple[int, str] = (-1, "")


def process_peak_memory() -> int:
    """Return this process's peak resident memory in bytes; 0 where it cannot be known.

    Read from ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which Linux and the BSDs
    give in KiB and macOS in bytes; child processes are not counted. Windows has no
    ``resource`` module, so it gives 0.

    >>> process_peak_memory() > 0
    True
    """
    try:
        import resource  # Unix only
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class _GitError(Exception):
    """Git failed in a way worth reporting, not merely 'no repository here'."""


def _git(cwd: str, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run git in ``cwd`` and return its output; exit codes outside ``ok`` raise _GitError."""
    command = ["git", "-c", "core.quotepath=off", *args]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **_GIT_ENV},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _GitError(f"git {args[0]} took longer than {_GIT_TIMEOUT_S} s") from None
    if done.returncode not in ok:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise _GitError(f"git {' '.join(args)} failed (exit {done.returncode}): {message}")
    return done.stdout.decode("utf-8", "replace")


def _read_git_state(directory: str) -> dict[str, Any] | None:
    # One status call gives commit, branch and changes (its paths are relative to the
    # repository root, wherever it runs); a diff of a dirty tree is the only other
    # call. Each call costs a sweep about 3 ms, and five of them were a third of a
    # 10,000-run sweep's fixed cost.
    try:
        status = _git(
            directory, "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=normal"
        )
    except _GitError as exc:
        if any(sign in str(exc) for sign in _OUTSIDE_WORK_TREE):
            return None
        raise
    commit, branch, dirty, untracked = _parse_status(status)
    # A tree with no tracked change has an empty diff: a clean tree costs one call.
    diff = (
        _git(directory, "diff", "HEAD", "--no-color", "--no-ext-diff") if commit and dirty else ""
    )
    return {
        "commit": commit,
        "branch": branch,
        "dirty": dirty,
        "untracked": untracked,
        "diff": diff,
    }


def _parse_status(text: str) -> tuple[str | None, str | None, bool, list[str]]:
    """Return (commit, branch, tracked changes exist, untracked paths) of a v2 status.

    ``text`` is ``git status --porcelain=v2 --branch -z``: ``# branch.oid`` (a hash, or
    ``(initial)`` before the first commit) and ``# branch.head`` (a name, or
    ``(detached)``) headers, then an entry per changed path: ``1`` changed, ``2``
    renamed or copied (its source path follows as an entry of its own), ``u``
    unmerged, ``?`` untracked.
    """
    commit = branch = None
    dirty, untracked = False, []
    entries = iter(text.split("\0"))
    for entry in entries:
        kind = entry[:2]
        if kind == "# ":
            header, _, value = entry[2:].partition(" ")
            if header == "branch.oid" and value != "(initial)":
                commit = value
            elif header == "branch.head" and value != "(detached)":
                branch = value
        elif kind == "? ":
            untracked.append(entry[2:])
        elif kind in ("1 ", "2 ", "u "):
            dirty = True
            if kind == "2 ":
                next(entries, None)  # a rename or copy is followed by its source path
    return commit, branch, dirty, untracked


def _packages() -> dict[str, str]:
    """Return :func:`_read_packages`, read again only when a folder on ``sys.path`` changed.

    Reading them costs a sweep about 8 ms. Installing, upgrading or removing a
    distribution adds or removes entries in a folder on ``sys.path``, which changes
    that folder's modification time; so does a new ``.pth`` file.
    """
    global _packages_seen
    key = tuple((entry, _modified(entry or ".")) for entry in sys.path)
    seen = _packages_seen
    if seen is None or seen[0] != key:
        seen = _packages_seen = (key, _read_packages())
    return dict(seen[1])


# (sys.path with each entry's modification time, the packages found there) last read.
_packages_seen: tuple[tuple[tuple[str, int | None], ...], dict[str, str]] | None = None


def _modified(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _read_packages() -> dict[str, str]:
    """Return ``{normalised name: version}`` of the installed distributions.

    Finds the ``Name`` and ``Version`` headers with a regex: the email parser behind
    ``Distribution.metadata`` costs about 0.6 ms per distribution (measured), too slow
    for an environment with hundreds of packages; this costs about 0.1 ms. Both
    headers are required and come before the body, so the first match is the header.
    """
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        name, version = _NAME.search(text), _VERSION.search(text)
        if name and version:
            # The first one on sys.path wins, as it is the one `import` finds.
            normalised = re.sub(r"[-_.]+", "-", name.group(1)).lower()
            found.setdefault(normalised, version.group(1))
    return dict(sorted(found.items()))


def _gpus() -> list[dict[str, Any]] | None:
    """Return a fresh copy of :func:`metalab._nvidia.gpus`, which callers may then change."""
    found = nvidia_gpus()
    return None if found is None else [dict(gpu) for gpu in found]


def _metalab_version() -> str | None:
    try:
        return importlib.metadata.version("metalab")
    except importlib.metadata.PackageNotFoundError:
        # Run from a source tree that was never installed: the loaded package knows.
        return getattr(sys.modules.get("metalab"), "__version__", None)


def _torch_facts(torch: Any) -> dict[str, Any]:
    """Return the ``torch`` facts of :func:`environment`, never initialising CUDA."""
    count = _guarded(lambda: int(torch.cuda.device_count()))
    initialised = _guarded(lambda: bool(torch.cuda.is_initialized()))
    devices = None
    if initialised and count:
        devices = _guarded(lambda: [torch.cuda.get_device_name(i) for i in range(count)])
    return {
        "version": _guarded(lambda: str(torch.__version__)),
        "cuda_version": _guarded(lambda: torch.version.cuda),
        "cudnn_version": _guarded(lambda: torch.backends.cudnn.version()),
        "cuda_available": None if count is None else count > 0,
        "cuda_initialized": initialised,
        "device_count": count,
        "devices": devices,
    }


def _guarded(read: Callable[[], Any]) -> Any:
    """Return ``read()``, or None if it raises: provenance must never fail a run."""
    try:
        return read()
    except Exception:
        return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
