"""environment, git_state, provenance and the per-run facts."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import pytest

from metalab import provenance as provenance_module
from metalab.errors import InvalidArgumentError
from metalab.provenance import (
    environment,
    git_state,
    process_peak_memory,
    provenance,
    utc_now,
)


@pytest.fixture(autouse=True)
def hermetic_git(monkeypatch, tmp_path):
    """Keep git from finding an enclosing repository or the user's configuration."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def _git(repo, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository on branch main with one commit of model.py."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "--initial-branch=main")
    (root / "model.py").write_text("rate = 0.1\n")
    _git(root, "add", "model.py")
    _git(root, "commit", "-m", "first")
    return root


@pytest.fixture
def fake_git(tmp_path, monkeypatch):
    """Put a `git` running the given shell body first on PATH."""

    def install(body: str) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        script = bin_dir / "git"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", str(bin_dir))

    return install


# --- git_state -----------------------------------------------------------------------


def test_clean_repo_gives_commit_branch_and_not_dirty(repo):
    state = git_state(repo)
    assert state == {
        "commit": _git(repo, "rev-parse", "HEAD"),
        "branch": "main",
        "dirty": False,
        "untracked": [],
        "diff": "",
    }


def test_modified_file_makes_the_tree_dirty_and_shows_in_the_diff(repo):
    (repo / "model.py").write_text("rate = 0.2\n")
    state = git_state(repo)
    assert state["dirty"] is True
    assert "-rate = 0.1\n+rate = 0.2\n" in state["diff"]


def test_staged_change_is_in_the_diff(repo):
    (repo / "model.py").write_text("rate = 0.3\n")
    _git(repo, "add", "model.py")
    assert "+rate = 0.3\n" in git_state(repo)["diff"]


def test_untracked_file_is_listed_without_making_the_tree_dirty(repo):
    (repo / "notes.txt").write_text("todo\n")
    state = git_state(repo)
    assert state["untracked"] == ["notes.txt"]
    assert state["dirty"] is False


def test_ignored_file_is_not_listed(repo):
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "run.log").write_text("x\n")
    assert git_state(repo)["untracked"] == [".gitignore"]


def test_renamed_file_is_dirty_and_not_untracked(repo):
    _git(repo, "mv", "model.py", "net.py")
    state = git_state(repo)
    assert (state["dirty"], state["untracked"]) == (True, [])


def test_subdirectory_reports_the_whole_repository(repo):
    (repo / "sub").mkdir()
    (repo / "sub" / "new.py").write_text("x = 1\n")
    state = git_state(repo / "sub")
    assert state["commit"] == _git(repo, "rev-parse", "HEAD")
    assert state["untracked"] == ["sub/"]


def test_non_ascii_file_names_are_not_quoted(repo):
    (repo / "données.txt").write_text("a\n")
    _git(repo, "add", "données.txt")
    _git(repo, "commit", "-m", "data")
    (repo / "données.txt").write_text("b\n")
    assert "diff --git a/données.txt b/données.txt" in git_state(repo)["diff"]


def test_detached_head_has_no_branch(repo):
    _git(repo, "checkout", "--detach")
    assert git_state(repo)["branch"] is None


def test_repository_without_commits_has_no_commit(tmp_path):
    _git(tmp_path, "init", "--initial-branch=main")
    assert git_state(tmp_path) == {
        "commit": None,
        "branch": "main",
        "dirty": False,
        "untracked": [],
        "diff": "",
    }


def test_outside_any_repository_is_none(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) is None


def test_git_not_installed_is_none(repo, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_state(repo) is None


def test_odd_git_failure_is_reported_not_raised(repo, fake_git):
    fake_git('echo "fatal: something odd" >&2; exit 2')
    assert git_state(repo) == {
        "error": "git status --porcelain=v2 --branch -z --untracked-files=normal failed "
        "(exit 2): fatal: something odd"
    }


def test_hanging_git_times_out_into_an_error(repo, fake_git, monkeypatch):
    monkeypatch.setattr(provenance_module, "_GIT_TIMEOUT_S", 0.2)
    fake_git(f"exec {shutil.which('sleep')} 5")  # PATH holds only the fake git
    assert git_state(repo) == {"error": "git status took longer than 0.2 s"}


def test_path_that_is_not_a_directory_raises(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"git_state\(path=.*missing.*not a directory"):
        git_state(tmp_path / "missing")


# --- provenance ----------------------------------------------------------------------


def test_provenance_returns_the_diff_apart_with_its_hash(repo):
    (repo / "model.py").write_text("rate = 0.2\n")
    facts, diff = provenance(repo)
    assert "+rate = 0.2\n" in diff
    assert "diff" not in facts["git"]
    assert facts["git"]["diff_sha256"] == hashlib.sha256(diff.encode("utf-8")).hexdigest()
    assert facts["git"]["dirty"] is True


def test_provenance_of_a_clean_repository_has_no_diff(repo):
    facts, diff = provenance(repo)
    assert diff is None
    assert facts["git"]["diff_sha256"] is None


def test_provenance_outside_a_repository_has_no_git(tmp_path):
    facts, diff = provenance(tmp_path)
    assert (facts["git"], diff) == (None, None)


def test_provenance_facts_are_json_with_environment_and_timestamp(repo):
    facts, _ = provenance(repo)
    assert json.loads(json.dumps(facts)) == facts
    assert set(facts) == {"timestamp", "environment", "git"}


# --- environment ---------------------------------------------------------------------


def test_environment_names_python_host_and_platform():
    env = environment()
    assert env["python"]["version"] == sys.version
    assert env["hostname"] == socket.gethostname()
    assert env["cpu_count"] == os.cpu_count()
    assert env["machine"]


def test_environment_lists_installed_package_versions():
    assert environment()["packages"]["pytest"] == importlib.metadata.version("pytest")


def test_environment_gives_the_metalab_version():
    assert environment()["metalab"] == importlib.metadata.version("metalab")


def _fake_distribution(site, dist_info: str, metadata: str) -> None:
    folder = site / dist_info
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(textwrap.dedent(metadata))


def test_package_names_are_normalised(tmp_path, monkeypatch):
    _fake_distribution(tmp_path, "Fancy_Lib-1.0.dist-info", "Name: Fancy_Lib.Core\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert environment()["packages"]["fancy-lib-core"] == "1.0"


def test_package_headers_are_read_not_the_description(tmp_path, monkeypatch):
    metadata = "Metadata-Version: 2.1\nName: fancy\nVersion: 2.0\n\nName: other\nVersion: 9\n"
    _fake_distribution(tmp_path, "fancy-2.0.dist-info", metadata)
    monkeypatch.syspath_prepend(str(tmp_path))
    packages = environment()["packages"]
    assert (packages["fancy"], "other" in packages) == ("2.0", False)


def test_first_distribution_on_sys_path_wins(tmp_path, monkeypatch):
    _fake_distribution(tmp_path / "b", "dup-2.0.dist-info", "Name: dup\nVersion: 2.0\n")
    _fake_distribution(tmp_path / "a", "dup-1.0.dist-info", "Name: dup\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    assert environment()["packages"]["dup"] == "1.0"


def test_a_distribution_installed_after_a_first_look_is_seen(tmp_path, monkeypatch):
    # The package list is kept between calls, and read again when sys.path changes.
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "late-lib" not in environment()["packages"]
    _fake_distribution(tmp_path, "late_lib-1.0.dist-info", "Name: late-lib\nVersion: 1.0\n")
    assert environment()["packages"]["late-lib"] == "1.0"
    for dist_info in tmp_path.iterdir():
        shutil.rmtree(dist_info)
    assert "late-lib" not in environment()["packages"]


def test_environment_is_fast():
    start = time.perf_counter()
    environment()
    assert time.perf_counter() - start < 0.2


def _environment_in_subprocess(prelude: str) -> dict:
    code = f"""
        import json, sys
        {prelude}
        from metalab.provenance import environment
        env = environment()
        print(json.dumps({{"torch": env.get("torch"), "loaded": "torch" in sys.modules,
                          "real": str(sys.modules["torch"].__version__)
                          if "torch" in sys.modules else None}}))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_environment_never_imports_torch():
    assert _environment_in_subprocess("") == {"torch": None, "loaded": False, "real": None}


def test_environment_reports_torch_when_the_program_imported_it():
    result = _environment_in_subprocess("import torch")
    facts = result["torch"]
    assert facts["version"] == result["real"]
    assert facts["cuda_available"] == (facts["device_count"] > 0)
    assert set(facts) == {
        "version",
        "cuda_version",
        "cudnn_version",
        "cuda_available",
        "cuda_initialized",
        "device_count",
        "devices",
    }


def test_broken_torch_facts_become_none(monkeypatch):
    class BrokenTorch:
        __version__ = "9.9"

        @property
        def cuda(self):
            raise RuntimeError("driver exploded")

    monkeypatch.setitem(sys.modules, "torch", BrokenTorch())
    facts = environment()["torch"]
    assert facts["version"] == "9.9"
    assert facts["device_count"] is None and facts["cuda_available"] is None


# --- per-run facts -------------------------------------------------------------------


def test_utc_now_is_iso_8601_utc_with_microseconds_and_z():
    stamp = utc_now()
    parsed = datetime.fromisoformat(stamp)
    assert stamp.endswith("Z") and len(stamp) == 27
    assert parsed.tzinfo == UTC
    assert abs(datetime.now(UTC) - parsed) < timedelta(seconds=5)


def test_utc_now_strings_sort_in_time_order():
    first = utc_now()
    time.sleep(0.001)
    assert utc_now() > first


def test_process_peak_memory_is_in_bytes():
    block = b"\x01" * (64 * 1024 * 1024)  # touched pages, so they count as resident
    assert process_peak_memory() >= len(block)
