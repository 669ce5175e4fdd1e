"""Progress: a rich bar on a terminal, plain lines elsewhere, nothing when disabled."""

from __future__ import annotations

import io

import pytest

from metalab.progress import Progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_disabled_progress_prints_nothing_but_still_counts(capsys):
    progress = Progress(total=3, enabled=False)
    progress.skipped()
    progress.finished(["success", "failed"])
    progress.close()
    assert capsys.readouterr().err == ""
    assert (progress.done, progress.failed, progress.skipped_count) == (2, 1, 1)


def test_plain_lines_are_rate_limited_and_a_final_line_is_printed(capsys):
    progress = Progress(total=4, enabled=True, interval=3600)
    progress.finished(["success"] * 3)
    assert capsys.readouterr().err == ""
    progress.close()
    assert "metalab: 3 done, 0 failed, 0 skipped of 4" in capsys.readouterr().err


def test_rich_bar_on_a_terminal_shows_counts(monkeypatch):
    pytest.importorskip("rich")
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    progress = Progress(total=5, enabled=True)
    progress.skipped()
    progress.finished(["success", "failed"])
    progress.close()
    shown = terminal.getvalue()
    assert "3/5" in shown
    assert "failed 1, skipped 1" in shown
