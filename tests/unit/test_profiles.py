"""Project profiles: finding the file, validating it, choosing a profile, and using it.

Sweeps run for real (serial, thread and process executors) in a fresh working folder
with its own ``metalab.toml``; the executor a profile chose is told by the process and
thread that wrote each record.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

import metalab
from metalab import cli
from metalab.errors import InvalidArgumentError, InvalidTypeError, MissingDependencyError
from metalab.executors import DaskExecutor, ProcessExecutor, SlurmExecutor, ThreadExecutor
from metalab.profiles import Profile, find_config, load_config, select_profile

PROJECT = """\
store_root = "kept"
[profiles.procs]
executor = "process"
workers = 2
[profiles.threads]
executor = "thread"
workers = 3
store = "elsewhere"
[profiles.slurm]
executor = "slurm"
store = "postgresql://me@db/x?schema=s"
slurm = { partition = "cpu", time = 30, setup = ["module load x"], sbatch = { account = "p" } }
"""


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A working folder holding PROJECT as metalab.toml, with METALAB_PROFILE unset."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METALAB_PROFILE", raising=False)
    (tmp_path / "metalab.toml").write_text(PROJECT)
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@metalab.operation(name="where_am_i", version="1")
def where_am_i(params, seeds, capture):
    capture.metric("x", params["x"] + seeds.rng().random())


def experiment() -> metalab.Experiment:
    return metalab.Experiment(
        name="where_am_i",
        version="1",
        context={},
        operation=where_am_i,
        params=metalab.grid(x=[1, 2, 3, 4]),
        seeds=metalab.seeds(base=3, replicates=2),
    )


def workers(result) -> set[tuple[int, str]]:
    """The (pid, thread) of the workers that wrote ``result``'s records."""
    places = (run.record.worker.split(":", 2) for run in result)
    return {(int(pid), thread) for _, pid, thread in places}


# ------------------------------------------------------------------------------ finding


def test_metalab_toml_beside_the_script_wins_over_the_working_folder(tmp_path, monkeypatch):
    script = write(tmp_path / "scripts", "exp.py", "")
    beside = write(tmp_path / "scripts", "metalab.toml", "")
    write(tmp_path / "work", "metalab.toml", "")
    monkeypatch.chdir(tmp_path / "work")
    assert find_config(script) == beside.resolve()
    assert find_config(script.parent) == beside.resolve()  # a folder is taken as is
    assert find_config(tmp_path / "elsewhere.py") == (tmp_path / "work" / "metalab.toml")


def test_the_nearest_pyproject_with_a_tool_metalab_table_is_found_upward(tmp_path, monkeypatch):
    write(tmp_path, "pyproject.toml", '[tool.metalab]\nstore_root = "r"\n')
    write(tmp_path / "a", "pyproject.toml", "[tool.ruff]\nline-length = 99\n")  # no table
    # A broken file without the table does not stop the search: it is never parsed.
    write(tmp_path / "a" / "b", "pyproject.toml", "[tool.ruff\n")
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert find_config(tmp_path / "a" / "b" / "exp.py") == tmp_path / "pyproject.toml"
    assert load_config(tmp_path / "pyproject.toml").store_root == "r"


def test_no_project_file_means_no_profile_and_the_usual_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METALAB_PROFILE", raising=False)
    assert find_config(tmp_path / "exp.py") is None
    chosen = select_profile(script=tmp_path / "exp.py")
    assert chosen == Profile(None)
    assert chosen.store_for("pi") == Path("runs/pi") and chosen.make_executor() is None
    with pytest.raises(InvalidArgumentError, match=r"run\(profile='gpu'\): there is no project"):
        select_profile("gpu", script=tmp_path / "exp.py")


# --------------------------------------------------------------------------- validating


def error_of(tmp_path: Path, text: str, name: str = "metalab.toml") -> str:
    path = write(tmp_path, name, text)
    with pytest.raises((InvalidArgumentError, InvalidTypeError)) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    return str(caught.value).replace(str(path), "FILE")


def test_an_unknown_key_names_the_file_its_line_and_the_allowed_keys(tmp_path):
    message = error_of(
        tmp_path,
        """\
        [profiles.cluster]
        executor = "slurm"

        [profiles.cluster.slurm]
        partition = "cpu"
        tme = 30
        """,
    )
    assert message.startswith("FILE:6: profiles.cluster.slurm.tme: unknown key 'tme'")
    assert "did you mean 'time'?" in message and "Allowed: folder, partition, time," in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A key of an inline table, on the line of its table.
        (
            '[profiles.c]\nexecutor = "slurm"\n\nslurm = { partition = "cpu", time = "1h" }\n',
            "FILE:4: profiles.c.slurm.time: must be a whole number, got a string '1h'.",
        ),
        # A dotted key under the [profiles] table.
        (
            '[profiles]\nc.executor = "thread"\nc.workers = true\n',
            "FILE:3: profiles.c.workers: must be a whole number, got a boolean True.",
        ),
        # A key of a nested inline table.
        (
            '[profiles.c]\nexecutor = "slurm"\nslurm = { sbatch = { qos = 1.5 } }\n',
            "FILE:3: profiles.c.slurm.sbatch.qos: must be a string, whole number or boolean, "
            "got a number 1.5.",
        ),
        (
            '[profiles.g]\nexecutor = "process"\ngpus = "0,1"\n',
            'FILE:3: profiles.g.gpus: must be "all" or a list of GPU numbers, got a string '
            "'0,1'.",
        ),
        (
            'store_root = ["a"]\n',
            "FILE:1: store_root: must be a string, got an array ['a'].",
        ),
        (
            '[profiles]\nlocal = "process"\n',
            "FILE:2: profiles.local: a profile must be a table such as [profiles.local], got "
            "a string 'process'.",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_at_its_line(tmp_path, text, expected):
    assert error_of(tmp_path, text) == expected


def test_in_pyproject_the_keys_are_named_under_tool_metalab(tmp_path):
    message = error_of(
        tmp_path,
        '[project]\nname = "x"\n\n[tool.metalab.profiles.local]\nexecutor = "proces"\n',
        name="pyproject.toml",
    )
    assert message == (
        "FILE:5: tool.metalab.profiles.local.executor: unknown executor 'proces'; did you "
        "mean 'process'? Allowed: serial, thread, process, dask, slurm."
    )


def test_a_setting_of_another_executor_kind_is_refused(tmp_path):
    message = error_of(tmp_path, '[profiles.p]\nexecutor = "process"\naddress = "tcp://h:1"\n')
    assert message.startswith("FILE:3: profiles.p.address: 'address' is a setting of executor")
    assert "'dask'" in message and "this profile's executor is 'process'" in message


def test_a_default_profile_that_names_no_profile_is_refused(tmp_path):
    message = error_of(tmp_path, 'default_profile = "lcoal"\n[profiles.local]\n')
    assert message == (
        "FILE:1: default_profile: default_profile = 'lcoal' names no profile; did you mean "
        "'local'? Profiles: local."
    )


def test_an_sbatch_option_that_has_its_own_setting_is_refused(tmp_path):
    message = error_of(
        tmp_path, '[profiles.s]\nexecutor = "slurm"\nslurm.sbatch.partition = "cpu"\n'
    )
    assert message.startswith("FILE:3: profiles.s.slurm.sbatch.partition: 'partition' is a")


def test_a_toml_syntax_error_names_the_file_and_the_line(tmp_path):
    message = error_of(tmp_path, "[profiles.a]\nexecutor = \n")
    assert message.startswith("FILE: not valid TOML (") and "line 2" in message


# ----------------------------------------------------------------------------- choosing


def test_the_argument_wins_over_the_environment_which_wins_over_the_default(project, monkeypatch):
    (project / "metalab.toml").write_text('default_profile = "procs"\n' + PROJECT)
    assert select_profile().name == "procs"
    monkeypatch.setenv("METALAB_PROFILE", "threads")
    assert select_profile().name == "threads"
    assert select_profile("slurm").name == "slurm"


def test_an_unknown_profile_is_an_error_listing_the_profiles_and_the_file(project, monkeypatch):
    with pytest.raises(InvalidArgumentError) as caught:
        select_profile("thread")
    assert str(caught.value) == (
        f"run(profile='thread'): no profile 'thread' in {project / 'metalab.toml'}; did you "
        f"mean 'threads'? Profiles: procs, slurm, threads."
    )
    monkeypatch.setenv("METALAB_PROFILE", "gpu")
    with pytest.raises(InvalidArgumentError, match="run: METALAB_PROFILE='gpu': no profile"):
        select_profile()


def test_a_profile_holds_its_executor_settings_and_store(project):
    config = load_config("metalab.toml")
    threads, slurm = config.profiles["threads"], config.profiles["slurm"]
    assert threads.source == "metalab.toml:5" and slurm.source == "metalab.toml:9"
    executor = threads.make_executor()
    assert isinstance(executor, ThreadExecutor) and executor.max_workers == 3
    assert threads.store_for("pi") == Path("elsewhere/pi")
    assert config.profiles["procs"].store_for("pi") == Path("kept/pi")  # the store_root
    # A URL names the store itself.
    assert slurm.store_for("pi") == "postgresql://me@db/x?schema=s"
    cluster = slurm.make_executor()
    assert isinstance(cluster, SlurmExecutor)
    assert (cluster.partition, cluster.time, cluster.setup) == ("cpu", 30, ["module load x"])
    assert cluster.slurm_extra == {"account": "p"}
    # Overrides win; another kind of executor drops the profile's settings.
    assert slurm.make_executor(time=5).time == 5
    assert threads.make_executor("process").max_workers == (os.cpu_count() or 1)


def test_a_profile_whose_executor_is_not_installed_gives_the_install_hint(project, monkeypatch):
    (project / "metalab.toml").write_text(
        PROJECT + '[profiles.dask]\nexecutor = "dask"\naddress = "tcp://10.0.0.5:8786"\n'
    )
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(MissingDependencyError) as caught:
        metalab.run(experiment(), profile="dask")
    assert str(caught.value).startswith(
        f"profile 'dask' ({project / 'metalab.toml'}:13): DaskExecutor(): distributed is not "
        f"installed; pip install 'metalab[dask]'."
    )
    assert not (project / "kept").exists()  # refused before the store was made


def test_a_profile_value_the_executor_refuses_is_reported_with_the_profile(project):
    (project / "metalab.toml").write_text('[profiles.s]\nexecutor = "slurm"\nslurm.mem = "4 GB"\n')
    with pytest.raises(InvalidArgumentError, match=r"^profile 's' \(.*metalab.toml:1\): Slurm"):
        select_profile("s").make_executor()


def test_a_process_profile_passes_its_gpus_to_the_executor(project):
    (project / "metalab.toml").write_text(
        '[profiles.g]\nexecutor = "process"\nworkers = 2\ngpus = [0, 1]\n'
    )
    profile = select_profile("g")
    assert profile.settings == {"max_workers": 2, "gpus": [0, 1]}
    # This machine has no GPU: the executor the profile makes says so, naming the profile.
    with pytest.raises(InvalidArgumentError, match=r"^profile 'g' \(.*metalab.toml:1\): .*gpus"):
        profile.make_executor()


# ------------------------------------------------------------------------------ running


def test_run_with_a_profile_uses_its_executor_and_store(project):
    result = metalab.run(experiment(), profile="procs")
    assert (project / "kept" / "where_am_i" / "manifest.json").is_file()
    assert len(result.successful) == 8
    assert os.getpid() not in {pid for pid, _ in workers(result)}  # worker processes

    threads = metalab.run(experiment(), profile="threads")
    assert (project / "elsewhere" / "where_am_i" / "manifest.json").is_file()
    assert {pid for pid, _ in workers(threads)} == {os.getpid()}
    assert [run.metrics for run in threads] == [run.metrics for run in result]


def test_explicit_arguments_win_over_the_profile(project, monkeypatch):
    monkeypatch.setenv("METALAB_PROFILE", "procs")
    result = metalab.run(experiment(), store=project / "mine", executor="serial")
    assert (project / "mine" / "manifest.json").is_file() and not (project / "kept").exists()
    assert workers(result) == {(os.getpid(), "MainThread")}  # serial, in this thread


def test_the_default_profile_applies_to_a_plain_run(project):
    (project / "metalab.toml").write_text('default_profile = "threads"\n' + PROJECT)
    result = metalab.run(experiment())
    assert (project / "elsewhere" / "where_am_i").is_dir()
    assert {pid for pid, _ in workers(result)} == {os.getpid()}
    assert "MainThread" not in {thread for _, thread in workers(result)}


SCRIPT = """
import metalab

@metalab.operation(name="cli_profiled", version="1")
def op(params, seeds, capture):
    capture.metric("x", params["x"])

exp = metalab.Experiment(name="cli_profiled", version="1", context={}, operation=op,
                         params=metalab.grid(x=[1, 2, 3]), seeds=metalab.seeds(base=1))
"""


def test_metalab_run_profile_picks_executor_and_store_and_options_override(project, capsys):
    script = write(project / "sweeps", "exp.py", SCRIPT)
    # The project file is found from the working folder, the script having none beside it.
    assert cli.main(["run", str(script), "--profile", "procs", "--no-progress"]) == 0
    result = metalab.load_results(project / "kept" / "cli_profiled")
    assert len(result) == 3 and os.getpid() not in {pid for pid, _ in workers(result)}
    assert "store: kept/cli_profiled" in capsys.readouterr().out

    # --store and --executor win; --workers alone re-sizes the profile's executor.
    assert cli.main(["run", str(script), "--profile", "procs", "--store", "own",
                     "--executor", "serial", "--no-progress"]) == 0  # fmt: skip
    assert workers(metalab.load_results(project / "own")) == {(os.getpid(), "MainThread")}
    assert cli.main(["run", str(script), "--profile", "threads", "--workers", "1",
                     "--no-progress"]) == 0  # fmt: skip
    assert len(workers(metalab.load_results(project / "elsewhere" / "cli_profiled"))) == 1


def test_metalab_run_with_an_unknown_profile_exits_2_naming_it(project, capsys):
    script = write(project, "exp.py", SCRIPT)
    assert cli.main(["run", str(script), "--profile", "gpu"]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: metalab run {script} --profile gpu: no profile 'gpu' in {project / 'metalab.toml'}"
    )


def test_metalab_profiles_lists_each_profile_with_its_settings_and_source(
    project, capsys, monkeypatch
):
    monkeypatch.setenv("METALAB_PROFILE", "threads")
    assert cli.main(["profiles"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"project file: {project / 'metalab.toml'}"
    assert out[1] == "store_root: kept; default_profile: none; METALAB_PROFILE: threads"
    rows = {line.split()[0]: line for line in out[4:7]}
    assert "max_workers=2" in rows["procs"] and "metalab.toml:2" in rows["procs"]
    assert rows["threads"].startswith("threads *") and "elsewhere" in rows["threads"]
    assert "partition=cpu" in rows["slurm"] and "account=p" in rows["slurm"]
    assert out[-1] == "* the profile used when none is named"


def test_metalab_profiles_without_a_project_file_says_how_to_write_one(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["profiles", str(tmp_path)]) == 0
    assert "no project file" in capsys.readouterr().out


def test_dask_profile_settings_reach_the_executor(project):
    (project / "metalab.toml").write_text('[profiles.d]\nexecutor = "dask"\nworkers = 2\n')
    executor = select_profile("d").make_executor()
    assert isinstance(executor, DaskExecutor) and executor.n_workers == 2
    assert isinstance(select_profile("d").make_executor("process"), ProcessExecutor)
    with pytest.raises(InvalidArgumentError, match=r"unknown executor; did you mean 'dask'\?"):
        select_profile("d").make_executor("dsk")
