"""The ``metalab`` command: parse, call runner or results, print. Imports anything in metalab.

:func:`main` is the console script's entry point and ``python -m metalab``'s; it
returns the exit status rather than exiting, so tests call it in-process::

    metalab run FILE.py[:EXPERIMENT] [--store PATH] [--workers N] [--executor KIND]
                                     [--profile NAME]      metalab profiles [PATH]
    metalab ls [ROOT]            metalab status STORE       metalab show STORE RUN_ID
    metalab failed STORE         metalab table STORE [...]  metalab diff STORE RUN_A RUN_B
    metalab report STORE [-o FILE]
    metalab verify STORE [--sample N | --all] [--experiment FILE.py[:EXPERIMENT]] [--json]
    metalab pack STORE -o FILE.metalab.zip   metalab unpack FILE DST
    metalab copy SRC DST [--experiment NAME ...]
    metalab ui [ROOT] [--port 8765] [--host 127.0.0.1]

Exit status: 0 success; 1 ``metalab run`` finished but some runs failed, or ``metalab
verify`` found runs that differ or could not be replayed; 2 an error
(bad arguments, a missing or malformed store, a script that cannot be loaded), shown
as one ``error: ...`` line on stderr, or as the full stack with ``--traceback``;
130 interrupted with Ctrl-C; 143 stopped by SIGTERM; 141 the reader of the output went
away (``| head``).
Every command but ``run`` only reads: stores are opened with ``create=False``, and
nothing is written into them (``pack`` and ``unpack`` write a new file or folder
elsewhere, ``copy`` writes into DST, ``verify`` appends its outcome to the store). A
pack (``.metalab.zip``) is read wherever a store folder is.

Needs the standard library only (argparse); rich, when installed, draws tables on a
terminal, and ``table --format parquet`` needs pyarrow.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shlex
import socket
import sys
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from metalab._listing import find_stores, parse_time, summarise_store
from metalab._optional import optional, require
from metalab._version import __version__
from metalab.cluster import SlurmSweep
from metalab.errors import InvalidArgumentError, MetalabError, Terminated
from metalab.executors import Executor, SlurmExecutor
from metalab.profiles import Profile, find_config, load_config, select_profile
from metalab.record import SUCCESS, RunRecord
from metalab.report import write_report
from metalab.results import Results, Run, csv_cell, find_runs, json_safe, verified_text
from metalab.runner import run as run_experiment
from metalab.store import PackStore, Store, StoreWarning, open_store, pack_store, unpack_store
from metalab.store._copy import nested_target
from metalab.verify import as_script, load_experiment, script_target, verify

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUNS_FAILED",
    "main",
]

EXIT_OK = 0
EXIT_RUNS_FAILED = 1
EXIT_ERROR = 2  # as argparse uses for a usage error, so every refusal exits alike
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the output was cut short by its reader

# A sweep is called running while its last record is younger than this, unless the
# processes that wrote its last records are known to be gone. Five minutes: longer
# than most runs take, short enough that a dead sweep is not "running" for long.
_IDLE_AFTER_S = 300.0
# The rate is measured over the latest runs only (up to this many, and not across a
# pause longer than _IDLE_AFTER_S), so a sweep resumed today is not averaged with
# yesterday's session.
_RATE_WINDOW = 50
# Run IDs are 32 hex digits; 12 fit a table and stay unique in any real sweep, and
# `metalab show` accepts them as a prefix.
_SHORT_ID = 12
# A wider cell (a long provenance string) is cut, with "...", in side-by-side views.
_CELL_WIDTH = 48
_STDOUT_TAIL = 20

_FORMATS = ("table", "csv", "json", "parquet")
_EXECUTORS = ("serial", "thread", "process", "dask", "slurm")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``metalab`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", StoreWarning)
            warnings.showwarning = _warning_printer(warnings.showwarning)
            return args.handler(args)
    except BrokenPipeError:
        # The reader (e.g. `| head`) has gone: stop quietly, and keep Python from
        # failing again when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (MetalabError, OSError) as exc:
        if args.traceback:
            raise
        # One line, whatever the message holds: scripts and shells read stderr by line.
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as exc:
        if args.traceback:
            raise
        kept = "; the runs that finished are kept, and the same command resumes"
        how = " by SIGTERM" if isinstance(exc, Terminated) else ""
        print(f"error: interrupted{how}{kept if args.command == 'run' else ''}.", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _warning_printer(usual: Callable[..., None]) -> Callable[..., None]:
    """Show store warnings as one ``warning:`` line each; others ``usual``'s way."""

    def show(message: Warning | str, category: type[Warning], *rest: Any, **named: Any) -> None:
        if issubclass(category, StoreWarning):
            print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:  # the user's own warnings keep their file and line
            usual(message, category, *rest, **named)

    return show


# ---------------------------------------------------------------------------- parser


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metalab",
        description="Run metalab experiments and look at their stores.",
        epilog="Run 'metalab COMMAND --help' for a command's options and an example.\n"
        "Exit status: 0 ok, 1 some runs failed (run), 2 error, 130 interrupted, "
        "143 stopped by SIGTERM.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"metalab {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, show the stack, not one line"
    )
    # Also accepted after the command; SUPPRESS keeps the value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an error, show the stack, not one line",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], summary: str, *examples: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog="example" + "s" * (len(examples) > 1) + ":\n  " + "\n  ".join(examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    run = command(
        "run",
        _cmd_run,
        "Run the experiment defined in a Python script; skip the runs already done.",
        "metalab run pi.py --workers 4",
        "metalab run sweeps.py:lr_sweep --store runs/lr --executor thread",
        "metalab run pi.py --executor slurm --slurm partition=cpu --slurm time=30 --detach",
    )
    run.add_argument(
        "target",
        metavar="FILE.py[:EXPERIMENT]",
        help="the script, and the variable holding the Experiment if it defines several",
    )
    run.add_argument("--store", metavar="PATH", help="store folder (default: runs/<name>)")
    run.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="run N at a time (worker processes unless --executor says otherwise)",
    )
    run.add_argument("--executor", choices=_EXECUTORS, help="where runs execute (default: serial)")
    run.add_argument(
        "--profile",
        metavar="NAME",
        help="a profile of metalab.toml or pyproject.toml [tool.metalab]: its executor and "
        "store, under the options given here (default: $METALAB_PROFILE, else the file's "
        "default_profile); see 'metalab profiles'",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --executor dask: a running Dask scheduler to join, e.g. tcp://host:8786 "
        "(default: a local cluster of --workers processes)",
    )
    run.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --executor slurm: a SlurmExecutor setting, e.g. --slurm partition=gpu "
        "--slurm time=120 --slurm mem=16G --slurm setup='module load cuda' (repeatable; "
        "any other key is passed to sbatch, e.g. --slurm account=proj). --workers N "
        "sets array_parallelism",
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="with --executor slurm: return once the arrays are submitted; follow them "
        "with 'metalab status STORE' (default: wait, then print the summary)",
    )
    run.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="refuse a store that already holds runs (unless --overwrite)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="run everything again; old records stay as earlier attempts",
    )
    run.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop a run that takes longer and record it as failed (RunTimeout)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show progress on stderr (default: on)",
    )

    profiles = command(
        "profiles",
        _cmd_profiles,
        "List the profiles of the project file (metalab.toml, or [tool.metalab] in "
        "pyproject.toml): executor, settings, store, and where each is defined.",
        "metalab profiles",
        "metalab profiles sweeps/exp.py",
    )
    profiles.add_argument(
        "path",
        nargs="?",
        help="the script (or folder) whose project file to read (default: the working folder)",
    )

    ls = command(
        "ls",
        _cmd_ls,
        "List the stores under a folder, with run counts and last activity.",
        "metalab ls runs",
    )
    ls.add_argument("root", nargs="?", default="runs", help="folder to search (default: runs)")

    status = command(
        "status",
        _cmd_status,
        "Show done, failed and pending runs of a sweep, with its rate and ETA while it runs.",
        "metalab status runs/pi_mc",
    )
    status.add_argument("store", help="store folder")

    show = command(
        "show",
        _cmd_show,
        "Show one run: params, seeds, metrics, artifacts, logs, output and error.",
        "metalab show runs/pi_mc 3f2a9c",
    )
    show.add_argument("store", help="store folder")
    show.add_argument("run_id", metavar="RUN_ID", help="a run ID, or a prefix unique in the store")
    show.add_argument(
        "--tail",
        type=_positive_int,
        default=_STDOUT_TAIL,
        metavar="N",
        help=f"show the last N lines of stdout and stderr (default: {_STDOUT_TAIL})",
    )

    failed = command(
        "failed",
        _cmd_failed,
        "Group the failed runs by error type and message, with one traceback each.",
        "metalab failed runs/pi_mc",
    )
    failed.add_argument("store", help="store folder")

    table = command(
        "table",
        _cmd_table,
        "Print or export the run table, or with --group-by the summary across replicates; "
        "derived metrics are the columns (or metrics) named derived.<metric>.",
        "metalab table runs/pi_mc --group-by n_samples",
        "metalab table runs/pi_mc --format csv -o pi.csv",
    )
    table.add_argument("store", help="store folder")
    table.add_argument(
        "--group-by",
        nargs="+",
        metavar="PARAM",
        help="summarise each metric (mean, std, 95%% CI, count) per value of these params",
    )
    table.add_argument(
        "--format",
        choices=_FORMATS,
        help="output format (default: from the -o suffix, else table)",
    )
    table.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of stdout (parquet needs it)"
    )

    diff = command(
        "diff",
        _cmd_diff,
        "Compare two runs side by side: params, seeds, metrics and provenance.",
        "metalab diff runs/pi_mc 3f2a 9c1b",
    )
    diff.add_argument("store", help="store folder")
    diff.add_argument("run_a", metavar="RUN_A", help="a run ID or unique prefix")
    diff.add_argument("run_b", metavar="RUN_B", help="a run ID or unique prefix")
    diff.add_argument(
        "--all", action="store_true", help="also show the provenance entries that are equal"
    )

    verify_command = command(
        "verify",
        _cmd_verify,
        "Replay a sample of finished runs in fresh processes; check they give the same bits.",
        "metalab verify runs/pi_mc",
        "metalab verify runs/pi_mc --all --workers 4",
        "metalab verify runs/pi_mc --experiment pi.py:exp --sample 50 --json",
    )
    verify_command.add_argument("store", help="store folder or PostgreSQL URL")
    how_many = verify_command.add_mutually_exclusive_group()
    how_many.add_argument(
        "--sample",
        type=_positive_int,
        metavar="N",
        help="replay N completed runs chosen at random with --seed (default: 20, or all if fewer)",
    )
    how_many.add_argument("--all", action="store_true", help="replay every completed run")
    verify_command.add_argument(
        "--experiment",
        metavar="FILE.py[:EXPERIMENT]",
        help="replay with this script's experiment (default: the entry point the store's "
        "manifest records)",
    )
    verify_command.add_argument(
        "--workers", type=_positive_int, metavar="N", help="replay worker processes"
    )
    verify_command.add_argument(
        "--seed", type=int, default=0, help="seed of the sample's choice (default: 0)"
    )
    verify_command.add_argument(
        "--json", action="store_true", help="print the outcome as JSON instead of a table"
    )

    report = command(
        "report",
        _cmd_report,
        "Write one self-contained HTML report of a store (works offline; needs plotly).",
        "metalab report runs/pi_mc -o pi_mc.html",
    )
    report.add_argument("store", help="store folder or PostgreSQL URL")
    report.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="report.html",
        help="where to write it (default: ./report.html); replaces an earlier report, "
        "refuses any other existing file",
    )

    pack = command(
        "pack",
        _cmd_pack,
        "Pack a store into one file that every reading command, load_results and the "
        "report read in place (needs pyarrow).",
        "metalab pack runs/pi_mc -o pi_mc.metalab.zip",
        "metalab table pi_mc.metalab.zip --group-by n_samples",
    )
    pack.add_argument("store", help="store folder")
    pack.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        required=True,
        help="the pack to write; its name ends with .metalab.zip",
    )
    pack.add_argument("--force", action="store_true", help="replace FILE if it exists")

    unpack = command(
        "unpack",
        _cmd_unpack,
        "Rebuild a writable store from a pack, into a new folder; a sweep can resume there.",
        "metalab unpack pi_mc.metalab.zip runs/pi_mc",
    )
    unpack.add_argument("pack", metavar="FILE", help="the pack (a .metalab.zip file)")
    unpack.add_argument("target", metavar="DST", help="a new (or empty) folder for the store")

    copy = command(
        "copy",
        _cmd_copy,
        "Copy experiments between stores (folders, PostgreSQL): records of every attempt, "
        "their files, manifests; what DST holds is skipped, so running it again finishes "
        "or updates a copy.",
        "metalab copy runs/pi_mc 'postgresql://me@db/lab?schema=pi_mc&artifacts=/shared/pi_mc'",
        "metalab copy runs backup/runs --experiment pi_mc",
    )
    copy.add_argument(
        "source",
        metavar="SRC",
        help="store folder or PostgreSQL URL; or a folder of stores, each copied",
    )
    copy.add_argument(
        "target",
        metavar="DST",
        help="store folder or PostgreSQL URL (made if missing); from a folder of stores, "
        "each goes to DST/<its folder> (a URL: to schema <schema>_<its folder>)",
    )
    copy.add_argument(
        "--experiment",
        action="append",
        default=[],
        metavar="NAME",
        help="copy only the stores of the experiment NAME (repeatable)",
    )

    ui = command(
        "ui",
        _cmd_ui,
        "Serve a read-only web dashboard over the stores under a folder (needs metalab[ui]).",
        "metalab ui runs",
        "metalab ui runs --port 9000",
    )
    ui.add_argument("root", nargs="?", default="runs", help="folder to serve (default: runs)")
    ui.add_argument(
        "--port", type=int, default=8765, help="port to listen on (default: 8765; 0: any free one)"
    )
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; no login)",
    )
    return parser


def _positive_int(text: str) -> int:
    """Argparse type of --workers and --tail: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    """Argparse type of --timeout: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


# ------------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    """Run ``metalab run``: load the script's experiment, run it, print one summary line."""
    where = f"metalab run {args.target}"
    path, name = script_target(where, args.target)
    profile = select_profile(args.profile, script=path, where=where)
    executor = _executor(where, args.executor, args.workers, args.scheduler, args.slurm, profile)
    if args.detach and not isinstance(executor, SlurmExecutor):
        raise InvalidArgumentError(f"{where}: --detach is for --executor slurm; drop it.")
    with as_script(path):
        exp = load_experiment(where, path, name)
        store = _store_target(args.store) if args.store else profile.store_for(exp.name)
        done_before = _done_ids(store)
        if not args.resume and not args.overwrite and (done_before or _has_records(store)):
            raise InvalidArgumentError(
                f"{where} --no-resume: the store {str(store)!r} already holds runs of "
                f"{exp.name!r}; drop --no-resume to continue it, add --overwrite to run "
                f"everything again (old records stay as earlier attempts), or pass "
                f"--store NEW_FOLDER."
            )
        if args.overwrite:
            done_before = set()
        submitted = run_experiment(
            exp,
            store=store,
            executor=executor,
            resume=args.resume,
            progress=args.progress,
            overwrite=args.overwrite,
            timeout=args.timeout,
            profile=profile,
        )
    if isinstance(submitted, SlurmSweep):
        print(
            f"{exp.name} {exp.version}: {submitted.runs} runs submitted as "
            f"{len(submitted.tasks)} SLURM array task(s) (arrays "
            f"{', '.join(submitted.job_ids) or 'none'}); logs in {submitted.folder}; "
            f"follow with: metalab status {shlex.quote(str(store))}",
            file=sys.stderr if not args.detach else sys.stdout,
        )
        if args.detach:
            return EXIT_OK
        submitted.wait()
    # From the states, not the runs: a million Run objects would take half a minute.
    with warnings.catch_warnings():  # the sweep has warned of damage already
        warnings.simplefilter("ignore", StoreWarning)
        states = open_store(store, create=False).run_states()
    succeeded = {rid for rid, (status, _) in states.items() if status == SUCCESS}
    skipped = len(succeeded & done_before)
    failed = len(states) - len(succeeded)
    hint = f"; see: metalab failed {shlex.quote(str(store))}" if failed else ""
    print(
        f"{exp.name} {exp.version}: {len(succeeded) - skipped} done, {failed} failed, "
        f"{skipped} skipped (done before) of {exp.total_runs}; store: {store}{hint}"
    )
    return EXIT_RUNS_FAILED if failed else EXIT_OK


def _cmd_profiles(args: argparse.Namespace) -> int:
    """Run ``metalab profiles``: the project file, and each profile with its settings."""
    path = find_config(args.path)
    if path is None:
        print(
            "no project file: no metalab.toml here, and no pyproject.toml with a "
            "[tool.metalab] table above; see docs/profiles.md to write one."
        )
        return EXIT_OK
    config = load_config(path)
    chosen = config.select(where="metalab profiles").name
    print(f"project file: {path}")
    print(
        f"store_root: {config.store_root or 'runs (the default)'}; default_profile: "
        f"{config.default_profile or 'none'}; METALAB_PROFILE: "
        f"{os.environ.get('METALAB_PROFILE') or 'unset'}"
    )
    rows = [
        [
            f"{name} *" if name == chosen else name,
            profile.executor or "(none)",
            " ".join(f"{key}={value}" for key, value in profile.settings.items()),
            profile.store or "runs",
            profile.source,
            f"not installed: {profile.missing}" if profile.missing else "",
        ]
        for name, profile in config.profiles.items()
    ]
    _write_table(sys.stdout, ["profile", "executor", "settings", "store", "defined at", ""], rows)
    if chosen is not None:
        print("* the profile used when none is named")
    return EXIT_OK


def _executor(
    where: str,
    kind: str | None,
    workers: int | None,
    scheduler: str | None = None,
    slurm: Sequence[str] = (),
    profile: Profile | None = None,
) -> Executor | SlurmExecutor | None:
    """Return what ``run(executor=...)`` gets: ``--workers N`` alone means N processes.

    Without ``--executor``, the profile's executor; the options given override its
    settings (those of another kind of executor drop them).
    """
    profile = profile or Profile(None)
    kind = kind or profile.executor
    if scheduler is not None and kind != "dask":
        raise InvalidArgumentError(
            f"{where}: --scheduler {scheduler} joins a Dask cluster; add --executor dask."
        )
    if slurm and kind != "slurm":
        raise InvalidArgumentError(
            f"{where}: --slurm {slurm[0]} is a SLURM setting; add --executor slurm."
        )
    overrides: dict[str, Any] = {} if scheduler is None else {"address": scheduler}
    if kind == "slurm":
        overrides = _slurm_settings(where, slurm)
        if workers is not None:
            overrides["array_parallelism"] = workers
    elif workers is not None:
        if kind == "serial" and workers > 1:
            raise InvalidArgumentError(
                f"{where}: --executor serial runs one run at a time, but --workers is "
                f"{workers}; drop --workers, or pass --executor thread or --executor process."
            )
        if kind == "dask":
            overrides["n_workers"] = workers
        elif kind != "serial":
            kind, overrides["max_workers"] = kind or "process", workers
    return profile.make_executor(kind, **overrides)


def _slurm_settings(where: str, pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``--slurm KEY=VALUE`` options: whole numbers become ints; setup lines add up."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.isidentifier():
            raise InvalidArgumentError(
                f"{where}: --slurm {pair!r} must be KEY=VALUE, e.g. --slurm partition=gpu."
            )
        if key == "setup":
            settings.setdefault("setup", []).append(value)
        else:
            settings[key] = int(value) if value.isdigit() else value
    return settings


def _is_dsn(target: str) -> bool:
    """Whether ``target`` is a PostgreSQL URL (a PostgresStore), not a folder path."""
    return target.partition("://")[0].lower() in ("postgresql", "postgres")


def _store_target(target: str) -> Path | str:
    """Return ``--store``'s value as a folder path, or as it is if it is a DSN."""
    return target if _is_dsn(target) else Path(target)


def _has_records(folder: Path | str) -> bool:
    if isinstance(folder, str):  # a DSN
        return bool(_done_ids(folder, every=True))
    return any((folder / "records").glob("*.jsonl"))


def _done_ids(folder: Path | str, *, every: bool = False) -> set[str]:
    """Return the IDs of the runs already done in ``folder`` (all runs if ``every``)."""
    if isinstance(folder, str):  # a DSN: its tables are made now, as run() would next
        states = open_store(folder).run_states()
        return {rid for rid, (status, _) in states.items() if every or status == SUCCESS}
    if not (folder / "records").is_dir():
        return set()
    # The sweep about to start reads the same records and warns once about damage.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        return open_store(folder, create=False).done_ids()


# --------------------------------------------------------------------------- readers


def _open_for_reading(command: str, path: str) -> tuple[Store, dict[str, Any] | None]:
    """Open an existing store without writing to it; return it and its manifest."""
    where = f"metalab {command} {path}"
    if _is_dsn(path):  # a PostgresStore: it says itself when there is no store there
        store = open_store(path, create=False)
        return store, store.read_manifest()
    folder = Path(path)
    if not folder.exists():
        raise InvalidArgumentError(
            f"{where}: there is no folder {path!r}; check the path ('metalab ls' lists "
            f"the stores under ./runs)."
        )
    if folder.is_file() and folder.name.endswith(PackStore.SUFFIX):
        store = open_store(folder, create=False)
        return store, store.read_manifest()
    if not folder.is_dir():
        raise InvalidArgumentError(
            f"{where}: {path!r} is a file, but a store is a folder (or a pack, named "
            f"*{PackStore.SUFFIX}); pass the store folder (the one holding manifest.json)."
        )
    if not (folder / "manifest.json").is_file() and not (folder / "records").is_dir():
        # A common slip is naming the folder of stores (./runs) instead of one store.
        inside = sorted(str(sub) for sub in folder.iterdir() if (sub / "manifest.json").is_file())
        hint = (
            f"it holds the store(s) {', '.join(inside[:5])}{', ...' * (len(inside) > 5)}; "
            f"pass one of them"
            if inside
            else "pass a store folder, e.g. one 'metalab ls' lists"
        )
        raise InvalidArgumentError(
            f"{where}: {path!r} is not a metalab store (it has no manifest.json and no "
            f"records/ folder); {hint}."
        )
    store = open_store(folder, create=False)
    manifest = store.read_manifest()
    if manifest is not None and not isinstance(manifest, dict):
        raise InvalidArgumentError(
            f"{where}: {str(folder / 'manifest.json')!r} holds a JSON "
            f"{type(manifest).__name__}, not an object; restore an earlier manifest "
            f"from manifests/."
        )
    return store, manifest


def _find_run(where: str, store: Store, prefix: str) -> Run:
    """Return the run whose ID is ``prefix`` or the only one starting with it."""
    matches, count = find_runs(store, prefix)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InvalidArgumentError(
            f"{where}: no run ID starts with {prefix!r} among the {count} run(s) "
            f"of this store; 'metalab table' lists them."
        )
    shown = ", ".join(run.run_id for run in matches[:10])
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    raise InvalidArgumentError(
        f"{where}: {prefix!r} matches {len(matches)} runs ({shown}{more}); give more "
        f"digits of the run ID."
    )


def _cmd_ls(args: argparse.Namespace) -> int:
    """Run ``metalab ls``: one row per store under ROOT."""
    root = Path(args.root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise InvalidArgumentError(
            f"metalab ls {args.root}: {args.root!r} {what}; pass the folder that holds "
            f"your stores (the runner's default is ./runs)."
        )
    now = datetime.now(UTC)
    rows = []
    for folder in find_stores(root, packs=True):
        try:
            summary = summarise_store(folder)
        except (MetalabError, OSError) as exc:
            # One bad store should not hide the others.
            print(f"warning: skipped: {' '.join(str(exc).split())}", file=sys.stderr)
            continue
        last = summary.last_activity
        rows.append(
            [
                str(folder),
                _brief(summary.manifest.get("name", "?")),
                _brief(summary.manifest.get("version", "?")),
                summary.done,
                summary.failed,
                "?" if summary.total is None else summary.total,
                f"{_stamp(last)} ({_ago(now - last)})",
            ]
        )
    if not rows:
        print(f"no metalab stores under {args.root}")
        return EXIT_OK
    header = ["store", "name", "version", "done", "failed", "total", "last activity"]
    _write_table(sys.stdout, header, rows)
    return EXIT_OK


def _cmd_ui(args: argparse.Namespace) -> int:
    """Run ``metalab ui``: serve the dashboard until Ctrl-C."""
    # Imported here: the dashboard needs starlette and uvicorn, an extra.
    from metalab.ui import serve

    serve(args.root, host=args.host, port=args.port)
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    """Run ``metalab status``: counts of the whole sweep, whether it runs, its rate and ETA."""
    store, manifest = _open_for_reading("status", args.store)
    manifest = manifest or {}
    # Counts from the states alone and the rate from the latest records: the cost of
    # a status must not grow with the store (0.5 s for a million runs, docs/performance.md).
    states = store.run_states(verify=False)
    done = sum(status == SUCCESS for status, _ in states.values())
    failed = len(states) - done
    total = manifest.get("total_runs")
    pending = max(total - len(states), 0) if isinstance(total, int) else None
    finished = sorted(
        (
            (moment, record)
            for record in store.latest_records(_RATE_WINDOW)
            if (moment := parse_time(record.finished_at))
        ),
        key=lambda pair: pair[0],
    )
    now = datetime.now(UTC)
    state, rate = _state(pending, failed, finished, now)
    slurm, queued = _slurm_lines(store)
    if queued:  # tasks that wait write nothing, and their PIDs are not this host's
        state = f"on SLURM: {queued} array task(s) queued or running"
    name, version = _brief(manifest.get("name", "?")), _brief(manifest.get("version", "?"))
    lines = [
        ("experiment", f"{name} {version}"),
        ("store", store.location),
        ("done", f"{done} of {total if total is not None else '?'}"),
        ("failed", failed),
        ("pending", pending if pending is not None else "?"),
        ("state", state),
    ]
    if finished:
        last = finished[-1][0]
        lines.append(("last run", f"{_stamp(last)} ({_ago(now - last)})"))
    if rate is not None:
        lines.append(("rate", f"{rate * 60:.1f} runs/min"))
        if pending:
            lines.append(("ETA", _duration(pending / rate)))
    print("\n".join(_pairs(lines + slurm, indent="")))
    return EXIT_OK


def _slurm_lines(store: Store) -> tuple[list[tuple[str, object]], int]:
    """Lines on the store's last SLURM submission, and how many of its tasks are queued."""
    try:
        sweep = SlurmSweep.attach(store)
    except InvalidArgumentError:
        return [], 0
    queued = 0
    try:
        counts = sweep.task_counts()
        queued = len(sweep.tasks) - counts["ENDED"]
        tasks = ", ".join(f"{count} {state.lower()}" for state, count in sorted(counts.items()))
    except MetalabError as exc:  # e.g. no squeue on this machine
        tasks = f"states unknown here ({exc})"
    lines: list[tuple[str, object]] = [
        ("slurm", f"arrays {', '.join(sweep.job_ids)}; {len(sweep.tasks)} tasks: {tasks}"),
        ("slurm logs", sweep.folder),
    ]
    return lines, queued


def _state(
    pending: int | None,
    failed: int,
    finished: list[tuple[datetime, RunRecord]],
    now: datetime,
) -> tuple[str, float | None]:
    """Say whether the sweep is running; return that and its rate in runs/s (if running)."""
    if pending == 0:
        if failed:
            return f"finished, {failed} failed (the next 'metalab run' runs them again)", None
        return "complete", None
    if not finished:
        return "not started", None
    recent = _recent(finished)
    alive = _writers_alive(record for _, record in recent)
    if alive is False:
        return "stopped (the processes that wrote the last runs have exited)", None
    age = (now - recent[-1][0]).total_seconds()
    if alive is None and age > _IDLE_AFTER_S:
        return f"idle or stopped (no run finished for {_duration(age)})", None
    span = (recent[-1][0] - recent[0][0]).total_seconds()
    rate = (len(recent) - 1) / span if len(recent) > 1 and span > 0 else None
    return "running", rate


def _recent(finished: list[tuple[datetime, RunRecord]]) -> list[tuple[datetime, RunRecord]]:
    """Return the latest runs of the current session: no pause longer than _IDLE_AFTER_S."""
    start = len(finished) - 1
    while start > 0 and len(finished) - start < _RATE_WINDOW:
        if (finished[start][0] - finished[start - 1][0]).total_seconds() > _IDLE_AFTER_S:
            break
        start -= 1
    return finished[start:]


def _writers_alive(records: Iterable[RunRecord]) -> bool | None:
    """Whether a process that wrote ``records`` still runs; None if that cannot be known.

    Known only for processes of this machine on POSIX (``kill(pid, 0)`` sends nothing;
    on Windows signal 0 is CTRL_C_EVENT). A reused PID can make a dead sweep look alive,
    which the age of its last record then does not correct: rare, and only a display.
    """
    if os.name != "posix":
        return None
    host = socket.gethostname()
    pids = set()
    for record in records:
        if record.host != host or record.pid <= 0:
            return None
        pids.add(record.pid)
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except OSError:  # PermissionError: it exists, under another user
            return True
        return True
    return False


def _cmd_show(args: argparse.Namespace) -> int:
    """Run ``metalab show``: everything about one run."""
    store, _ = _open_for_reading("show", args.store)
    run = _find_run(f"metalab show {args.store} {args.run_id}", store, args.run_id)
    record = run.record
    heading = f"run {run.run_id}  ({_brief(record.experiment)} {_brief(record.version)})"
    out: list[str] = [_printable(heading)]
    out += _pairs(
        [
            ("status", run.status),
            ("attempt", record.attempt),
            ("started", record.started_at),
            ("duration", f"{record.duration:.3f} s"),
            ("worker", record.worker or f"{record.host}:{record.pid}"),
        ]
    )
    if run.verification is not None:
        out.append(_printable(verified_text(run.verification) or ""))
    out += _section("params", list(run.params.items()))
    out += _section("seeds", list(record.seeds.items()))
    out += _section("metrics", list(run.metrics.items()))
    if run.derived or run.derived_errors:
        failures = [
            (f"{name} failed", f"{e['type']}: {e['message']}")
            for name, e in run.derived_errors.items()
        ]
        out += _section("derived metrics", [*run.derived.items(), *failures])
    artifacts = [
        (ref.name, f"{ref.kind:<8} {_size(ref.size):>9}  {ref.path}") for ref in record.artifacts
    ]
    out += _section("artifacts", artifacts)
    for title, text in (("logs", run.logs), ("stdout", run.stdout), ("stderr", run.stderr)):
        lines = text.splitlines()
        if not lines:
            continue
        if title != "logs" and len(lines) > args.tail:
            title = f"{title} (last {args.tail} of {len(lines)} lines)"
            lines = lines[-args.tail :]
        out += ["", title, *(f"  {line}" for line in lines)]
    if run.error:
        out += ["", "error", f"  {run.error.get('type')}: {run.error.get('message')}"]
        out += [f"  {line}" for line in run.error.get("traceback", "").rstrip().splitlines()]
    print("\n".join(out))
    return EXIT_OK


def _cmd_failed(args: argparse.Namespace) -> int:
    """Run ``metalab failed``: failures grouped by (type, message), one traceback each."""
    store, _ = _open_for_reading("failed", args.store)
    results = Results.from_store(store)
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in results.failed:
        error = run.error or {}
        key = (str(error.get("type", "?")), str(error.get("message", "")))
        groups.setdefault(key, []).append(run)
    failed = sum(len(runs) for runs in groups.values())
    if not failed:
        print(f"no failed runs ({len(results)} run(s) in the store)")
        return EXIT_OK
    print(f"{failed} failed run(s) of {len(results)}, in {len(groups)} group(s)")
    for (kind, message), runs in sorted(groups.items(), key=lambda item: -len(item[1])):
        ids = ", ".join(run.run_id[:_SHORT_ID] for run in runs[:5])
        more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
        print(f"\n{len(runs)} x {kind}: {message}")
        print(f"  runs: {ids}{more}")
        traceback = (runs[0].error or {}).get("traceback", "").rstrip()
        for line in traceback.splitlines() or ["(no traceback recorded)"]:
            print(f"  {line}")
    return EXIT_OK


def _cmd_table(args: argparse.Namespace) -> int:
    """Run ``metalab table``: the run table or the summary, printed or written to a file."""
    store, _ = _open_for_reading("table", args.store)
    where = f"metalab table {args.store}"
    kind = args.format or _format_of(args.output)
    if kind == "parquet" and not args.output:
        raise InvalidArgumentError(
            f"{where} --format parquet: Parquet is binary and is not printed; pass -o FILE.parquet."
        )
    if args.output:
        _refuse_inside(where, store, Path(args.output))
    results = Results.from_store(store)
    # Results rows all hold every column (None where a run lacks one), in table order.
    rows = results.summary(group_by=args.group_by) if args.group_by else results.table()
    _note_derived_failures(results)
    columns = list(rows[0]) if rows else []
    if kind == "parquet":
        _write_parquet(args.output, columns, rows)
    elif args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as file:
            _write_rows(file, kind, columns, rows)
    else:
        _write_rows(sys.stdout, kind, columns, rows)
    if args.output:
        print(f"wrote {len(rows)} row(s) to {args.output}")
    return EXIT_OK


def _note_derived_failures(results: Results) -> None:
    """Say on stderr which derived metrics failed on some runs: their cells are empty."""
    failed: dict[str, list[str]] = {}
    for run in results:
        for name in run.derived_errors:
            failed.setdefault(name, []).append(run.run_id)
    for name, run_ids in failed.items():
        print(
            f"note: derived metric {name!r} failed on {len(run_ids)} run(s); "
            f"'metalab show STORE {run_ids[0][:_SHORT_ID]}' shows the error.",
            file=sys.stderr,
        )


def _format_of(output: str | None) -> str:
    """Return the format that the suffix of ``output`` names; ``table`` for others or none."""
    suffix = Path(output).suffix.lower().lstrip(".") if output else ""
    return suffix if suffix in _FORMATS else "table"


def _refuse_inside(where: str, store: Store, output: Path) -> None:
    """Refuse an output file inside the store folder: reading commands never write there."""
    root = Path(store.location).resolve()
    target = output.resolve()
    if target == root or root in target.parents:
        raise InvalidArgumentError(
            f"{where} -o {output}: that is inside the store, which this command only "
            f"reads; write the file elsewhere."
        )


def _write_rows(file: TextIO, kind: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as csv, json or an aligned table; cells as ``Results.to_csv/to_json``."""
    if kind == "csv":
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([csv_cell(row.get(column)) for column in columns] for row in rows)
    elif kind == "json":
        text = json.dumps(json_safe(rows), indent=2, ensure_ascii=False, allow_nan=False)
        file.write(text + "\n")
    elif not rows:
        file.write("no runs in the store yet\n")
    else:
        cells = [[row.get(column) for column in columns] for row in rows]
        if "run_id" in columns:  # the short form `metalab show` accepts; exports keep all
            at = columns.index("run_id")
            for line in cells:
                line[at] = str(line[at])[:_SHORT_ID]
        _write_table(file, columns, cells)


def _write_parquet(path: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as Parquet; a column pyarrow cannot type as one becomes JSON text."""
    feature = "metalab table --format parquet"
    pyarrow = require("pyarrow", feature=feature, extra="parquet")
    parquet = require("pyarrow.parquet", feature=feature, extra="parquet")
    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        try:
            arrays[column] = pyarrow.array(values)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):
            texts = [None if value is None else json.dumps(value) for value in values]
            arrays[column] = pyarrow.array(texts, pyarrow.string())
    parquet.write_table(pyarrow.table(arrays), path)


def _cmd_diff(args: argparse.Namespace) -> int:
    """Run ``metalab diff``: two runs side by side, differing rows marked with '*'."""
    store, _ = _open_for_reading("diff", args.store)
    where = f"metalab diff {args.store}"
    a = _find_run(f"{where} {args.run_a}", store, args.run_a)
    b = _find_run(f"{where} {args.run_b}", store, args.run_b)
    sections = [
        ("params", a.params, b.params),
        ("seeds", a.record.seeds, b.record.seeds),
        ("metrics", a.metrics, b.metrics),
        ("provenance", _flat(a.provenance), _flat(b.provenance)),
    ]
    # Either a section title (str) or a row: (mark, key, value in A, value in B).
    lines: list[str | tuple[str, str, str, str]] = []
    for title, left, right in sections:
        keys = list(dict.fromkeys([*left, *right]))
        differing = {key for key in keys if left.get(key, _MISSING) != right.get(key, _MISSING)}
        # Provenance is mostly the environment, equal for runs of one store.
        hidden = 0 if args.all or title != "provenance" else len(keys) - len(differing)
        lines.append(title + (f" ({hidden} equal entries hidden; --all shows them)" * bool(hidden)))
        lines += [
            (
                "*" if key in differing else " ",
                _printable(str(key)),
                _side(left, key),
                _side(right, key),
            )
            for key in keys
            if not hidden or key in differing
        ]
    rows = [line for line in lines if isinstance(line, tuple)]
    key_width = max([_width(row[1]) for row in rows] + [1])
    a_width = max([_width(row[2]) for row in rows] + [_SHORT_ID])
    print(f"  {'':<{key_width}}  {'run A':<{a_width}}  run B")
    print(f"  {'':<{key_width}}  {a.run_id[:_SHORT_ID]:<{a_width}}  {b.run_id[:_SHORT_ID]}")
    for line in lines:
        if isinstance(line, str):
            print(line)
        else:
            mark, key, left_text, right_text = line
            line_text = f"{mark} {_pad(key, key_width)}  {_pad(left_text, a_width)}  {right_text}"
            print(line_text.rstrip())
    print(f"* marks the {sum(row[0] == '*' for row in rows)} row(s) that differ")
    return EXIT_OK


_MISSING = object()


def _side(values: dict[str, Any], key: str) -> str:
    """Return one side's cell in a diff row."""
    if key not in values:
        return "(missing)"
    return "None" if values[key] is None else _fit(_cell(values[key], precise=True))


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys, so nested provenance lines up key by key."""
    if not isinstance(values, dict):
        return {prefix.rstrip("."): values} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _cmd_copy(args: argparse.Namespace) -> int:
    """Run ``metalab copy``: copy each store SRC names into DST; one line per store."""
    for label, source, target in _stores_to_copy(args.source, args.target, args.experiment):
        print(f"{label}{source.copy_to(target).summary()}")
    return EXIT_OK


def _stores_to_copy(
    source: str, target: str, experiments: list[str]
) -> list[tuple[str, Store, str]]:
    """Return ``(label, store, where it goes)`` for each store SRC names, as --experiment picks.

    SRC is one store (a URL, a file, or a folder with a manifest or records) or a
    folder of stores; those are labelled by their folder under SRC.
    """
    where = f"metalab copy {source}"
    folder = Path(source)
    if "://" in source or folder.is_file() or _is_store_folder(folder):
        stores = [("", open_store(source, create=False), target)]
    elif folder.is_dir():
        stores = [
            (f"{name}: ", open_store(found, create=False), nested_target(target, name))
            for found in find_stores(folder)
            for name in [found.relative_to(folder).as_posix()]
        ]
        if not stores:
            raise InvalidArgumentError(
                f"{where}: no store under {source!r} (no folder holding a manifest.json); "
                f"pass a store folder, a folder of stores, or a PostgreSQL URL."
            )
    else:
        raise InvalidArgumentError(
            f"{where}: there is no store or folder at {source!r}; check the path."
        )
    if not experiments:
        return stores
    names = {id(store): (store.read_manifest() or {}).get("name") for _, store, _ in stores}
    chosen = [entry for entry in stores if names[id(entry[1])] in experiments]
    if not chosen:
        raise InvalidArgumentError(
            f"{where} --experiment {' '.join(map(repr, experiments))}: no store of that "
            f"experiment there; it holds {', '.join(sorted(map(repr, set(names.values()))))}."
        )
    return chosen


def _is_store_folder(folder: Path) -> bool:
    return (folder / "manifest.json").is_file() or (folder / "records").is_dir()


def _cmd_verify(args: argparse.Namespace) -> int:
    """Run ``metalab verify``: replay runs, print the table; exit 1 on any difference."""
    store, _ = _open_for_reading("verify", args.store)
    outcome = verify(
        store,
        sample="all" if args.all else args.sample,
        experiment=args.experiment,
        workers=args.workers,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(outcome.to_dict(), indent=2))
    else:
        print("\n".join(_printable(line) for line in outcome.lines()))
    return EXIT_OK if outcome.ok else EXIT_RUNS_FAILED


def _cmd_report(args: argparse.Namespace) -> int:
    """Run ``metalab report``: write the store's HTML report, outside the store."""
    store, _ = _open_for_reading("report", args.store)
    _refuse_inside(f"metalab report {args.store}", store, Path(args.output))
    path = write_report(store, args.output)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); open it in a web browser")
    return EXIT_OK


def _cmd_pack(args: argparse.Namespace) -> int:
    """Run ``metalab pack``: the store in one file, written beside nothing of the store."""
    store, _ = _open_for_reading("pack", args.store)
    counts = pack_store(store, args.output, force=args.force)
    print(
        f"packed {counts['runs']} run(s) ({counts['records']} record(s)) and "
        f"{counts['files']} file(s) into {args.output} ({_size(counts['bytes'])})"
    )
    return EXIT_OK


def _cmd_unpack(args: argparse.Namespace) -> int:
    """Run ``metalab unpack``: a writable file store rebuilt from a pack."""
    store = unpack_store(args.pack, args.target)
    print(f"unpacked {args.pack} into {store.location}; 'metalab run' can resume there")
    return EXIT_OK


# -------------------------------------------------------------------------- printing


def _write_table(file: TextIO, header: list[str], rows: list[list[Any]]) -> None:
    """Write aligned columns; with rich on a terminal, a rich table."""
    numeric = [
        all(_is_number(row[i]) or row[i] is None for row in rows) for i in range(len(header))
    ]
    header = [_printable(name) for name in header]
    text = [[_printable(_cell(value)) for value in row] for row in rows]
    rich_console = optional("rich.console") if _is_terminal(file) else None
    if rich_console is not None:
        rich_table, rich_text = optional("rich.table"), optional("rich.text")
        table = rich_table.Table(show_edge=False)
        for name, right in zip(header, numeric, strict=True):
            table.add_column(name, justify="right" if right else "left")
        for row in text:  # Text, not str: a value like "[1, 2]" is not rich markup
            table.add_row(*(rich_text.Text(cell) for cell in row))
        rich_console.Console(file=file).print(table)
        return
    widths = [
        max([_width(name)] + [_width(row[i]) for row in text]) for i, name in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            _pad(cell, width, right=right)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    file.write(line(header) + "\n")
    file.write(line(["-" * width for width in widths]) + "\n")
    for row in text:
        file.write(line(row) + "\n")


def _is_terminal(file: TextIO) -> bool:
    isatty = getattr(file, "isatty", None)
    return bool(isatty and isatty())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any, *, precise: bool = False) -> str:
    """Format a value for reading: floats to 6 digits unless ``precise``; None as empty."""
    if value is None:
        return ""
    if isinstance(value, float) and not precise:
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _brief(value: Any) -> Any:
    """Cut a manifest's text to a cell's width (a store may hold a name of any length)."""
    return _fit(value) if isinstance(value, str) else value


def _fit(text: str) -> str:
    text = _printable(" ".join(text.split()))
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 3] + "..."


# Characters that a terminal acts on rather than shows: C0 and C1 controls (newline,
# tab, ESC starting colour or cursor sequences, DEL), line and paragraph separators,
# and the bidirectional overrides that make text display in another order than it is
# stored ("rtl\u202egnp.exe" shows as "rtlexe.png"). Names and values come from stores,
# which may come from anyone, so the human-readable views show these escaped.
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def _printable(text: str) -> str:
    r"""Return ``text`` with terminal controls written as escapes: ``"a\nb"`` -> ``a\nb``.

    >>> _printable("new\nline \x1b[31mred\u202e")
    'new\\nline \\x1b[31mred\\u202e'
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if _is_control(char) else char
        for char in text
    )


def _width(text: str) -> int:
    """Return how many terminal columns ``text`` takes: wide characters 2, combining 0."""
    if text.isascii():
        return len(text)
    return sum(
        0
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(char) in ("W", "F")
        else 1
        for char in text
    )


def _pad(text: str, width: int, *, right: bool = False) -> str:
    """Pad ``text`` with spaces to ``width`` terminal columns (on the left if ``right``)."""
    fill = " " * max(width - _width(text), 0)
    return fill + text if right else text + fill


def _pairs(pairs: Sequence[tuple[str, Any]], indent: str = "  ") -> list[str]:
    keys = [_printable(str(key)) + ":" for key, _ in pairs]
    width = max((_width(key) for key in keys), default=0)
    return [
        f"{indent}{_pad(key, width)}  {_printable(_cell(value, precise=True))}"
        for key, (_, value) in zip(keys, pairs, strict=True)
    ]


def _section(title: str, pairs: Sequence[tuple[str, Any]]) -> list[str]:
    return ["", title, *(_pairs(pairs) if pairs else ["  (none)"])]


def _size(size: int) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    value, index = float(size), 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{size} B" if index == 0 else f"{value:.1f} {units[index]}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ago(delta: Any) -> str:
    return f"{_duration(max(delta.total_seconds(), 0.0))} ago"


def _duration(seconds: float) -> str:
    """``42s``, ``3m 10s``, ``2h 05m``, ``3d 4h``: short enough for a status line."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"
