"""metalab verify's pieces: the code hash, exact-bits comparison, sampling, entry points, drift.

The whole replay loop, on real sweeps and both stores, is in tests/integration/test_verify.py.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from array import array
from pathlib import Path

import pytest

import metalab
from metalab import FileStore, cli
from metalab.errors import InvalidArgumentError
from metalab.verify import (
    CodeDriftWarning,
    _bits,
    _difference,
    _Digest,
    load_experiment,
    replay_facts,
    verify,
)

SCRIPT = '''
import metalab

@metalab.operation
def square(params, seeds, capture):
    """Square x, plus noise from the run's seeds."""
    capture.metric("y", params["x"] ** 2 + seeds.rng().random())  # BODY

exp = metalab.Experiment("sq", "1", {}, square, metalab.grid(x=[1, 2, 3]), metalab.seeds(0, 2))
'''


def write_script(folder: Path, body: str | None = None, *, name: str = "sweep.py") -> Path:
    """Write the sweep script; ``body`` replaces the operation's line marked BODY."""
    text = SCRIPT
    if body is not None:
        line = next(line for line in text.splitlines() if "# BODY" in line)
        text = text.replace(line, textwrap.indent(body, "    "))
    path = folder / name
    path.write_text(text)
    return path


def code_hash(folder: Path, body: str | None = None, text: str | None = None) -> str:
    path = write_script(folder, body, name="hashed.py")
    if text is not None:
        path.write_text(text)
    return load_experiment("test", path, "exp").operation.code_sha256


# ----------------------------------------------------------------------- code hash


def test_code_hash_ignores_comments_docstrings_and_formatting(tmp_path):
    plain = code_hash(tmp_path)
    edited = SCRIPT.replace('"""Square x, plus noise from the run\'s seeds."""', '"""Other."""')
    edited = edited.replace("# BODY", "# a new comment").replace(
        'capture.metric("y", params["x"] ** 2', "capture.metric(  'y',  params['x']**2"
    )
    assert edited != SCRIPT
    assert code_hash(tmp_path, text=edited) == plain


def test_code_hash_changes_when_the_code_does(tmp_path):
    plain = code_hash(tmp_path)
    assert code_hash(tmp_path, 'capture.metric("y", params["x"] ** 3)') != plain


def test_run_ids_do_not_depend_on_the_operation_code(tmp_path):
    one = load_experiment("test", write_script(tmp_path, name="a.py"), "exp")
    two = load_experiment(
        "test", write_script(tmp_path, 'capture.metric("y", 0)', name="b.py"), "exp"
    )
    assert one.operation.code_sha256 != two.operation.code_sha256
    ids = [one.run_id(case, bundle) for case in one.params for bundle in one.seeds]
    assert ids == [two.run_id(case, bundle) for case in two.params for bundle in two.seeds]


# ------------------------------------------------------------------ exact bits


def test_bits_make_nan_equal_nan_and_tell_signed_zeros_and_types_apart():
    assert _bits(math.nan) == _bits(float("nan"))
    assert _bits(0.0) != _bits(-0.0)
    assert _bits(1) != _bits(1.0)
    assert _bits(True) != _bits(1)
    assert _bits(0.1 + 0.2) != _bits(0.3)


def test_difference_names_the_first_differing_fact_and_both_values():
    series = (array("q", [0, 1, 2]), array("d", [1.0, 0.5, math.nan]))
    other = (array("q", [0, 1, 2]), array("d", [1.0, 0.25, math.nan]))
    same = {"status": "success", "metric 'y'": math.nan, "series 'loss'": series}
    assert _difference(same, dict(same)) is None
    assert _difference(same, {**same, "series 'loss'": other}) == (
        "series 'loss': 0.5 at step 1 (position 1) vs 0.25 at step 1 (position 1)"
    )
    assert _difference(same, {**same, "metric 'y'": -0.0}) == "metric 'y': nan vs -0.0"
    digest = {**same, "artifact 'm'": _Digest("a" * 64)}
    assert _difference(digest, {**same, "artifact 'm'": _Digest("b" * 64)}) == (
        "artifact 'm': sha256 aaaaaaaaaaaa vs sha256 bbbbbbbbbbbb"
    )
    assert _difference(same, {**same, "metric 'z'": 1}) == "metric 'z': (none) vs 1"


# ------------------------------------------------------------ entry points, errors


@pytest.fixture
def swept(tmp_path, monkeypatch):
    """A finished sweep made by `metalab run sweep.py`: (script, store folder)."""
    monkeypatch.chdir(tmp_path)
    script = write_script(tmp_path)
    assert cli.main(["run", str(script), "--store", "store", "--no-progress"]) == 0
    return script, tmp_path / "store"


def test_metalab_run_records_the_entry_point_and_code_history(swept):
    script, store = swept
    manifest = metalab.FileStore(store).read_manifest()
    assert manifest["entry_point"] == {"script": str(script.resolve()), "variable": "exp"}
    [entry] = manifest["code_history"]
    assert entry["code_sha256"] == manifest["operation"]["code_sha256"]


def test_replay_facts_carry_the_code_history_over_a_change(tmp_path):
    one = load_experiment("test", write_script(tmp_path, name="a.py"), "exp")
    two = load_experiment(
        "test", write_script(tmp_path, 'capture.metric("y", 0)', name="b.py"), "exp"
    )
    first = replay_facts(one, None, "2026-01-01T00:00:00.000000Z", 0)
    again = replay_facts(one, first, "2026-01-02T00:00:00.000000Z", 4)
    assert again["code_history"] == first["code_history"]  # unchanged code: no entry
    changed = replay_facts(two, again, "2026-01-03T00:00:00.000000Z", 6)
    assert [(e["code_sha256"], e["done_before"]) for e in changed["code_history"]] == [
        (one.operation.code_sha256, 0),
        (two.operation.code_sha256, 6),
    ]
    assert changed["entry_point"]["script"].endswith("b.py")


def test_a_sample_larger_than_the_store_names_the_count_and_the_fix(swept):
    _, store = swept
    with pytest.raises(InvalidArgumentError, match=r"sample=7 is larger .* 6 completed .*--all"):
        verify(store, sample=7)


def test_a_bad_sample_value_is_refused(swept):
    _, store = swept
    with pytest.raises(InvalidArgumentError, match="sample=0 must be a whole number"):
        verify(store, sample=0)


def test_the_sample_is_seeded_and_reproducible(swept):
    _, store = swept
    first = [v.run_id for v in verify(store, sample=3, seed=5).runs]
    assert first == [v.run_id for v in verify(store, sample=3, seed=5).runs]
    others = {tuple(v.run_id for v in verify(store, sample=3, seed=s).runs) for s in range(6)}
    assert len(others) > 1


def test_a_missing_entry_point_says_which_and_how_to_pass_experiment(swept):
    script, store = swept
    script.rename(script.with_name("moved.py"))
    with pytest.raises(
        InvalidArgumentError, match=r"entry point '.*sweep.py:exp' no longer exists.*--experiment"
    ):
        verify(store)
    assert verify(store, experiment=script.with_name("moved.py")).ok


def test_an_entry_point_that_no_longer_imports_says_how_to_pass_experiment(swept):
    script, store = swept
    script.write_text(script.read_text() + "\nimport no_such_module_here\n")
    with pytest.raises(
        InvalidArgumentError,
        match=r"ModuleNotFoundError.*entry point .* no longer loads.*--experiment",
    ):
        verify(store)


def test_an_experiment_of_another_version_is_refused(swept):
    script, store = swept
    other = script.with_name("other.py")
    other.write_text(script.read_text().replace('"sq", "1"', '"sq", "2"'))
    with pytest.raises(
        InvalidArgumentError, match=r"version '2', but the store holds 'sq' version '1'"
    ):
        verify(store, experiment=f"{other}:exp")


def test_a_store_without_entry_point_asks_for_experiment(tmp_path):
    exp = load_experiment("test", write_script(tmp_path), "exp")
    exp.entry_point = None  # as metalab.run called from a notebook leaves it
    metalab.run(exp, store=tmp_path / "store")
    with pytest.raises(InvalidArgumentError, match=r"records no entry point.*--experiment"):
        verify(tmp_path / "store")


# ------------------------------------------------------------------- code drift


def test_resume_with_changed_code_warns_once_with_the_count_and_the_ways_out(tmp_path):
    store = tmp_path / "store"
    metalab.run(load_experiment("t", write_script(tmp_path, name="a.py"), "exp"), store=store)
    changed = load_experiment(
        "t", write_script(tmp_path, 'capture.metric("y", 0)', name="b.py"), "exp"
    )
    for _ in range(2):  # the runs made by the old code stay in the store: warned each resume
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metalab.run(changed, store=store)
        [drift] = [w for w in caught if issubclass(w.category, CodeDriftWarning)]
        message = str(drift.message)
        assert "6 completed run(s)" in message
        assert "bump the experiment's version" in message and "metalab verify" in message


def _drift_warnings(exp, store) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metalab.run(exp, store=store)
    return [str(w.message) for w in caught if issubclass(w.category, CodeDriftWarning)]


def test_drift_counts_the_runs_each_code_completed_without_reading_records(tmp_path, monkeypatch):
    # A fails for x >= 2 (2 runs done), B completes the rest (4), then A again: the
    # runs B made are counted from the code history, A's own never.
    store = tmp_path / "store"
    body_a = 'if params["x"] >= 2:\n    raise ValueError(params["x"])\ncapture.metric("y", 1)'
    code_a = load_experiment("t", write_script(tmp_path, body_a, name="a.py"), "exp")
    code_b = load_experiment(
        "t", write_script(tmp_path, 'capture.metric("y", 2)', name="b.py"), "exp"
    )
    metalab.run(code_a, store=store)

    def no_reading(self):
        raise AssertionError("the drift check read the records")

    monkeypatch.setattr(FileStore, "records", no_reading)
    [to_b] = _drift_warnings(code_b, store)
    hash_a, hash_b = code_a.operation.code_sha256[:12], code_b.operation.code_sha256[:12]
    assert "2 completed run(s)" in to_b and f"(code hash {hash_a}; now {hash_b})" in to_b
    for _ in range(2):  # warned on each resume, as long as B's runs are in the store
        [back_to_a] = _drift_warnings(code_a, store)
        assert "4 completed run(s)" in back_to_a
        assert f"(code hash {hash_b}; now {hash_a})" in back_to_a


def test_drift_in_a_store_whose_history_kept_no_counts_reads_the_records(tmp_path):
    store = tmp_path / "store"
    metalab.run(load_experiment("t", write_script(tmp_path, name="a.py"), "exp"), store=store)
    opened = FileStore(store)
    manifest = opened.read_manifest()
    for entry in manifest["code_history"]:
        del entry["done_before"]  # as written before the counts were kept
    opened.write_manifest(manifest)
    changed = load_experiment(
        "t", write_script(tmp_path, 'capture.metric("y", 0)', name="b.py"), "exp"
    )
    [drift] = _drift_warnings(changed, store)
    assert "6 completed run(s)" in drift


def test_overwrite_starts_the_code_history_afresh(tmp_path):
    store = tmp_path / "store"
    metalab.run(load_experiment("t", write_script(tmp_path, name="a.py"), "exp"), store=store)
    changed = load_experiment(
        "t", write_script(tmp_path, 'capture.metric("y", 0)', name="b.py"), "exp"
    )
    metalab.run(changed, store=store, overwrite=True)  # every run made again by the new code
    assert _drift_warnings(changed, store) == []
    [entry] = FileStore(store).read_manifest()["code_history"]
    assert (entry["code_sha256"], entry["done_before"]) == (changed.operation.code_sha256, 0)


def test_a_comment_only_edit_gives_no_drift_warning(tmp_path):
    store = tmp_path / "store"
    metalab.run(load_experiment("t", write_script(tmp_path, name="a.py"), "exp"), store=store)
    commented = write_script(tmp_path, name="b.py")
    commented.write_text(commented.read_text().replace("# BODY", "# reworded comment"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CodeDriftWarning)
        metalab.run(load_experiment("t", commented, "exp"), store=store)
