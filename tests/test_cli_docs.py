"""docs/cli.md stays true: its scripts are run and its transcripts compared with real output.

A fenced block after ``<!-- cli-script: NAME -->`` is written to NAME in an empty folder;
a fenced block after ``<!-- cli-output: PHASE -->`` is a terminal transcript: each
``$ COMMAND`` line is run there with bash, and what it prints (stdout and stderr) must
equal the lines below it once both sides are normalised (see :func:`normalise`).

Phases run in this order, each block within a phase in page order:

- ``sweep``: the folder holds only the scripts; these blocks make the stores.
- ``read``: the finished store ``runs/pi_mc``; these commands only read.
- ``running``: ``slow.py`` is started in the background and holds at run 110 until a
  file ``go`` appears, so the running sweep is looked at while it is surely running.
- ``write``: after the sweep ``slow.py`` ends; commands that write (``verify`` appends to
  the store, ``pack``, ``unpack``, ``copy``, ``run --profile``), so that what they make
  changes no transcript of an earlier phase.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
BIN = Path(sys.executable).parent
PHASES = ("sweep", "read", "running", "write")
DOC_FOLDER = "/tmp/demo"  # the folder the page's transcripts were made in
FENCE = r"\n```[a-z]*\n(.*?)\n```"
# Provenance rows of `metalab diff` that differ between any two runs, or not, by chance.
VOLATILE_ROWS = {"pid", "worker", "host", "started_at", "finished_at", "duration", "peak_memory"}
# Commands the page describes without a transcript: a server runs until it is stopped.
NO_TRANSCRIPT = {"ui"}
# Each (pattern, replacement) is one documented normalisation (docs/cli.md says which).
RULES = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC)"), "<time>"),
    (re.compile(r"\((\d+[smhd] ?)+ ago\)"), "(<age> ago)"),
    (re.compile(r"\d+\.\d runs/(s|min)"), r"<rate> runs/\1"),
    (re.compile(r"ETA:? +(\d+[smhd] ?)+"), "ETA <eta>"),
    (re.compile(r"(duration: +)[\d.e-]+ s"), r"\1<seconds> s"),
    (re.compile(r"(worker: +)\S+"), r"\1<host>:<pid>:<thread>"),
    (re.compile(r"^(verified .* on )\S+$"), r"\1<host>"),
    (re.compile(r"\(\d+(\.\d+)? [KMG]?i?B\)"), "(<size>)"),
    (re.compile(r"\((\d+) equal entries hidden"), "(<n> equal entries hidden"),
    (re.compile(r"marks the \d+ row\(s\)"), "marks the <n> row(s)"),
    (re.compile(r'File "[^"]*/metalab/([\w/]+\.py)", line \d+'), r'File "<src>/metalab/\1"'),
]


def blocks(kind: str) -> list[tuple[str, str]]:
    """Return ``(argument, block text)`` for each ``<!-- KIND: argument -->`` block."""
    text = PAGE.read_text(encoding="utf-8")
    return re.findall(rf"<!-- {kind}: (\S+) -->{FENCE}", text, re.DOTALL)


def normalise(transcript: str) -> list[str]:
    """Return the lines of ``transcript`` with what truly varies between runs replaced.

    Times, ages, rates and ETAs, sizes of written files, run durations (the
    ``duration`` column of run tables, ``show``'s ``duration:``), the worker's host and
    pid, the host a verification ran on, the provenance rows of ``diff`` that depend on
    timing and on which worker ran (left out, with the counts of hidden and marked rows),
    source line numbers of metalab's own frames, and spacing (column widths follow the
    widest value, which may be a duration).
    """
    lines, header, separator = [], [], ","
    for line in transcript.splitlines():
        cells = line.split(",") if "," in line else line.split()
        if cells[:1] == ["run_id"] and cells[-1] == "duration":  # a run table or its CSV
            header, separator = cells, "," if "," in line else "  "
        elif line.strip() == "" or line.startswith("$ "):
            header = []
        elif header and not set(line) <= {"-", " "}:
            # Empty cells (a failed run's metrics) vanish from a split on spaces, so the
            # last cell is replaced rather than the cell at the header's position.
            line = line.rstrip().rsplit(separator.strip() or " ", 1)[0] + separator + "<duration>"
        if line.lstrip("* ").split(" ")[0] in VOLATILE_ROWS:
            continue
        for pattern, replacement in RULES:
            line = pattern.sub(replacement, line)
        line = re.sub(r"-{2,}", "--", re.sub(r" {2,}", "  ", line.rstrip()))
        lines.append(line)
    return lines


def replay(block: str, folder: Path) -> str:
    """Run each ``$`` line of ``block`` in ``folder`` with bash; return the transcript."""
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    assert commands, f"a cli-output block without a '$ command' line:\n{block}"
    # Each command sees the exit status of the one before (for `echo $?`), not the
    # status of the echo that prints its own `$` line.
    script = "status=0\n" + "".join(
        f"echo '$ {command}'\n(exit $status)\n"
        f"{command.replace(DOC_FOLDER, str(folder))} 2>&1\nstatus=$?\n"
        for command in commands
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(folder), "COLUMNS": "100"},
    )
    return done.stdout.replace(str(folder), DOC_FOLDER)


def check(block: str, folder: Path) -> None:
    """Replay ``block`` and assert it shows what the page says, with a diff if not."""
    actual = replay(block, folder)
    if normalise(actual) != normalise(block):
        pytest.fail(
            f"docs/cli.md is out of date. The page shows:\n{block}\n\nThe commands now "
            f"print:\n{actual}\nPaste the new output into the page (or fix the command)."
        )


def wait_for(predicate, what: str, seconds: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_page_marks_scripts_and_transcripts_of_every_phase():
    assert {name for name, _ in blocks("cli-script")} == {"pi.py", "slow.py", "metalab.toml"}
    phases = [phase for phase, _ in blocks("cli-output")]
    assert set(phases) == set(PHASES), phases
    commands = " ".join(block for _, block in blocks("cli-output"))
    assert "$ metalab run pi.py --profile " in commands
    for command in set(commands_of_metalab()) - NO_TRANSCRIPT:
        assert f"$ metalab {command} " in commands or f"$ metalab {command}\n" in commands


def commands_of_metalab() -> list[str]:
    """Return the commands that ``metalab --help`` lists, in its order."""
    done = subprocess.run([str(BIN / "metalab"), "--help"], capture_output=True, text=True)
    listing = done.stdout.split("\ncommands:\n", 1)[1]
    return re.findall(r"^ {4}([a-z]+) ", listing, re.MULTILINE)


def test_every_command_of_metalab_help_has_a_section():
    commands = commands_of_metalab()
    assert {"run", "ls", "verify", "pack", "ui"} <= set(commands), commands
    headings = re.findall(r"^##.*$", PAGE.read_text(encoding="utf-8"), re.MULTILINE)
    named = set(re.findall(r"`metalab (\w+)", "\n".join(headings)))
    missing = [command for command in commands if command not in named]
    assert not missing, f"docs/cli.md: no '## `metalab COMMAND ...`' heading for {missing}"


def test_normalise_keeps_what_matters():
    table = "run_id  pi_estimate  duration\n------  --  --\nc52c  3.1  0.0026\n"
    assert normalise(table) == normalise(table.replace("0.0026", "1.5e-05"))
    assert normalise(table) != normalise(table.replace("3.1", "3.2"))
    csv = "run_id,n,duration\nab,1,0.5\n"
    assert normalise(csv) == ["run_id,n,duration", "ab,1,<duration>"]
    assert normalise("last run:  2026-11-28 13:45:11Z (3m 05s ago)") == [
        "last run:  <time> (<age> ago)"
    ]
    assert normalise("* pid  1  2\n* pi_estimate  3.1  3.2") == ["* pi_estimate  3.1  3.2"]
    assert normalise("verified identical on 2026-12-01 04:46:34 UTC on vm") == [
        "verified identical on <time> on <host>"
    ]
    assert normalise("verified 6 of 6 ... on vm") != normalise("verified 5 of 6 ... on vm")


def test_transcripts_match_real_output(tmp_path):
    for name, source in blocks("cli-script"):
        (tmp_path / name).write_text(source + "\n", encoding="utf-8")
    transcripts = blocks("cli-output")
    for phase in ("sweep", "read"):
        for block in (block for p, block in transcripts if p == phase):
            check(block, tmp_path)
    sweep = subprocess.Popen(
        [str(BIN / "metalab"), "run", "slow.py", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: (
                b"done:        110 of 200"
                in subprocess.run(
                    [str(BIN / "metalab"), "status", "runs/slow"], cwd=tmp_path, capture_output=True
                ).stdout
            ),
            "slow.py to reach run 110",
        )
        for block in (block for p, block in transcripts if p == "running"):
            check(block, tmp_path)
    finally:
        (tmp_path / "go").touch()
        _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 0, stderr.decode()
    for block in (block for p, block in transcripts if p == "write"):
        check(block, tmp_path)
