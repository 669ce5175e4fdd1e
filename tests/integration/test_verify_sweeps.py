"""metalab verify on real sweeps: replays in fresh processes, diagnoses, both stores, the CLI.

Each sweep is started the way users start one (``metalab run FILE.py``, or
``metalab.run`` on the experiment a script defines); the script is then edited on disk
as a user would, and ``metalab verify`` replays runs from it in worker processes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import metalab
from metalab import cli
from metalab.store import StoreWarning, open_store
from metalab.verify import (
    CHANGED,
    DIFFERING,
    EDITED,
    IDENTICAL,
    NOT_DETERMINISTIC,
    CodeDriftWarning,
    VerificationWarning,
    load_experiment,
    verify,
)

SCRIPT = '''
import math
import metalab

@metalab.operation
def train(params, seeds, capture):
    """A small deterministic 'training' run: a metric, a series, an artifact."""
    rng = seeds.rng()
    loss = 1.0
    for step in range(5):
        loss *= 0.5 + 0.1 * rng.random()
        capture.metric("loss", loss, step=step)
    capture.metric("final", loss + params["x"])  # FINAL
    capture.metric("undefined", math.nan)
    capture.metric("signed_zero", -0.0)
    capture.artifact("weights", {"x": params["x"], "loss": loss})

exp = metalab.Experiment(
    "train", "1", {}, train, metalab.grid(x=[1, 2, 3, 4]), metalab.seeds(7, 3)
)
'''


@pytest.fixture
def script(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def edit(script: Path, old: str, new: str) -> None:
    text = script.read_text()
    assert old in text
    script.write_text(text.replace(old, new))


def sweep(script: Path, store: str | Path) -> None:
    assert cli.main(["run", str(script), "--store", str(store), "--no-progress"]) == 0


def test_verify_passes_on_a_real_sweep_and_is_recorded_for_show(script, capsys):
    sweep(script, "runs/train")
    capsys.readouterr()
    assert cli.main(["verify", "runs/train", "--all", "--workers", "2"]) == 0
    table = capsys.readouterr().out
    assert "verified 12 of 12 completed run(s) of train 1" in table
    assert table.splitlines()[3].split() == ["12", "12", "0", "0"]

    store = metalab.FileStore("runs/train")
    [record] = store.verifications()
    assert record["experiment"] == "train" and len(record["runs"]) == 12
    run = metalab.load_results("runs/train")[0]
    assert run.verification["outcome"] == IDENTICAL
    assert cli.main(["show", "runs/train", run.run_id]) == 0
    assert f"verified identical on {record['verified_at'][:10]}" in capsys.readouterr().out


def test_default_sample_is_twenty_or_all_if_fewer(script):
    sweep(script, "runs/train")
    outcome = verify("runs/train")
    assert outcome.ok and len(outcome.runs) == 12 and outcome.sample == 12


def test_a_nondeterministic_operation_is_diagnosed_with_both_values(script, capsys):
    sweep(script, "runs/train")
    edit(script, "# FINAL", "\n    capture.metric('clock', __import__('time').time_ns())")
    capsys.readouterr()
    assert cli.main(["verify", "runs/train", "--sample", "3"]) == 1
    out = capsys.readouterr().out
    outcome = verify("runs/train", sample=3)
    assert [v.outcome for v in outcome.runs] == [DIFFERING] * 3
    for verdict in outcome.runs:
        assert verdict.reason == NOT_DETERMINISTIC
        assert verdict.detail.startswith("metric 'clock': ")
        assert verdict.detail.endswith("(first vs second replay)")
        first, _, second = verdict.detail.removeprefix("metric 'clock': ").partition(" vs ")
        assert int(first) != int(second.split()[0])
    assert NOT_DETERMINISTIC in out


def test_changed_code_is_diagnosed_with_the_code_hash_difference(script):
    sweep(script, "runs/train")
    before = metalab.FileStore("runs/train").read_manifest()["operation"]["code_sha256"]
    edit(script, 'loss + params["x"]', 'loss + params["x"] + 1e-12')
    after = load_experiment("test", script, "exp").operation.code_sha256
    outcome = verify("runs/train", sample=4)
    assert {(v.outcome, v.reason) for v in outcome.runs} == {(DIFFERING, CHANGED)}
    assert all(v.detail.startswith("metric 'final': ") for v in outcome.runs)
    assert ["operation code hash", before[:12], after[:12]] in outcome.provenance_difference


def test_a_comment_only_edit_changes_nothing(script):
    sweep(script, "runs/train")
    edit(script, "# FINAL", "# the final loss, offset by x (reworded)")
    edit(script, '"""A small deterministic', '"""A reworded docstring; a small deterministic')
    outcome = verify("runs/train", sample="all")
    assert outcome.ok and outcome.count(IDENTICAL) == 12


def test_an_artifact_edited_after_the_sweep_is_caught_and_flagged_on_load(script):
    sweep(script, "runs/train")
    results = metalab.load_results("runs/train")
    victim = results[5]
    path = Path("runs/train") / victim.record.artifacts[0].path
    path.write_text(path.read_text().replace('"x": ', '"x":  '))
    outcome = verify("runs/train", sample="all")
    [bad] = [v for v in outcome.runs if v.outcome != IDENTICAL]
    assert (bad.run_id, bad.reason) == (victim.run_id, EDITED)
    assert (
        "artifact 'weights'" in bad.detail and victim.record.artifacts[0].sha256[:12] in bad.detail
    )
    with pytest.warns(StoreWarning, match="changed after capture"):
        victim.artifact("weights")


def test_run_verify_k_replays_after_the_sweep_and_warns_on_a_difference(script, tmp_path):
    exp = load_experiment("test", script, "exp")
    with warnings.catch_warnings():
        warnings.simplefilter("error", VerificationWarning)
        metalab.run(exp, store=tmp_path / "store", verify=3)
    [outcome] = metalab.FileStore(tmp_path / "store").verifications()
    assert [v["outcome"] for v in outcome["runs"]] == [IDENTICAL] * 3
    edit(script, "# FINAL", "\n    capture.metric('clock', __import__('time').time_ns())")
    noisy = load_experiment("test", script, "exp")
    with (
        pytest.warns(VerificationWarning, match="not deterministic"),
        pytest.warns(CodeDriftWarning),  # the code did change
    ):
        metalab.run(noisy, store=tmp_path / "store", verify=2)


def test_results_verify_and_json_output(script, capsys):
    sweep(script, "runs/train")
    outcome = metalab.load_results("runs/train").verify(sample=2, seed=3)
    assert outcome.ok and len(outcome.runs) == 2
    capsys.readouterr()
    assert cli.main(["verify", "runs/train", "--sample", "2", "--seed", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [v["run_id"] for v in printed["runs"]] == [v.run_id for v in outcome.runs]


def test_verify_passes_on_a_postgres_sweep(script, postgres_dsn, postgres_schema, tmp_path):
    dsn = f"{postgres_dsn}?schema={postgres_schema}&artifacts={tmp_path}/artifacts"
    sweep(script, dsn)
    outcome = verify(dsn, sample="all", workers=2)
    assert outcome.ok and outcome.count(IDENTICAL) == 12
    store = open_store(dsn, create=False)
    assert [v["verified_at"] for v in store.verifications()] == [outcome.verified_at]
    edit(script, 'loss + params["x"]', 'loss + params["x"] * 2')
    changed = verify(dsn, sample=2)
    assert {v.reason for v in changed.runs} == {CHANGED}
    assert len(store.verifications()) == 2
    store.close()
