"""context_spec, FilePath, DirPath and context fingerprints."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import shutil

import pytest
from hypothesis import given, settings

import strategies as sts  # tests/ is on sys.path: tests/conftest.py is rootdir-relative
from metalab import context as context_module
from metalab.context import DirPath, FilePath, context_fingerprint, context_spec
from metalab.errors import FingerprintError, InvalidArgumentError, InvalidTypeError
from metalab.fingerprint import fingerprint


@context_spec
class Data:
    path: FilePath
    vocab_size: int = 10000


@context_spec
class OtherData:
    path: FilePath
    vocab_size: int = 10000


@context_spec
class Settings:
    options: dict
    n: int = 1


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def reads(monkeypatch):
    """Count the times a file's content is actually read."""
    counted: list[str] = []
    real = context_module._sha256_of_file

    def counting(path):
        counted.append(path)
        return real(path)

    monkeypatch.setattr(context_module, "_sha256_of_file", counting)
    return counted


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"a,b\n1,2\n")
    return path


# --- what goes into the fingerprint (pinned: it feeds every run ID) ----------------


def test_dict_context_fingerprint_is_golden(data_file):
    file_hash = _sha(b"a,b\n1,2\n")
    expected = _sha(b'{"data":{"$$file":"' + file_hash.encode() + b'"},"n":3}')
    assert context_fingerprint({"n": 3, "data": FilePath(data_file)}) == expected


def test_spec_fingerprint_is_golden():
    assert Settings(options={"k": 1}).fingerprint == _sha(
        b'{"$$spec":"Settings","n":1,"options":{"k":1}}'
    )


def test_none_and_empty_dict_have_the_fingerprint_of_an_empty_dict():
    assert context_fingerprint(None) == context_fingerprint({}) == fingerprint({})


def test_context_fingerprint_of_a_spec_is_its_fingerprint_property(data_file):
    spec = Data(path=FilePath(data_file))
    assert context_fingerprint(spec) == spec.fingerprint


def test_fingerprint_is_independent_of_dict_order(data_file):
    forward = {"a": 1, "b": FilePath(data_file), "c": {"x": [1, 2], "y": None}}
    backward = {"c": {"y": None, "x": [1, 2]}, "b": FilePath(data_file), "a": 1}
    assert context_fingerprint(forward) == context_fingerprint(backward)


def test_two_spec_classes_with_equal_fields_differ(data_file):
    assert Data(FilePath(data_file)).fingerprint != OtherData(FilePath(data_file)).fingerprint


def test_spec_and_dict_with_equal_values_differ():
    assert Settings(options={}).fingerprint != context_fingerprint({"options": {}, "n": 1})


def test_user_dollar_keys_cannot_forge_a_file_payload(data_file):
    forged = {"data": {"$file": _sha(b"a,b\n1,2\n")}}
    assert context_fingerprint(forged) != context_fingerprint({"data": FilePath(data_file)})


def test_user_dollar_keys_cannot_forge_a_spec():
    forged = {"$spec": "Settings", "n": 1, "options": {}}
    assert context_fingerprint(forged) != Settings(options={}).fingerprint


def test_nested_file_path_in_dict_context_is_hashed_by_content(tmp_path, data_file):
    before = context_fingerprint({"inputs": {"files": [FilePath(data_file), 2]}})
    data_file.write_bytes(b"a,b\n9,9\n")
    assert context_fingerprint({"inputs": {"files": [FilePath(data_file), 2]}}) != before


def test_tuples_are_resolved_like_lists(data_file):
    as_tuple = context_fingerprint({"files": (FilePath(data_file),)})
    assert as_tuple == context_fingerprint({"files": [FilePath(data_file)]})


@given(sts.param_dicts)
@settings(max_examples=100, deadline=None)
def test_dict_fingerprint_is_independent_of_insertion_order(params):
    reordered = dict(reversed(params.items()))
    assert context_fingerprint(params) == context_fingerprint(reordered)


def test_nested_spec_is_resolved_with_its_files(data_file):
    @context_spec
    class Outer:
        inner: Data

    before = Outer(Data(FilePath(data_file))).fingerprint
    data_file.write_bytes(b"changed")
    assert Outer(Data(FilePath(data_file))).fingerprint != before


def test_nested_spec_differs_from_a_dict_of_its_fields(data_file):
    as_spec = context_fingerprint({"d": Data(FilePath(data_file))})
    assert as_spec != context_fingerprint({"d": {"path": FilePath(data_file), "vocab_size": 10000}})


def test_plain_object_context_is_rejected_with_the_fix():
    with pytest.raises(InvalidTypeError, match=r"@metalab.context_spec.*or pass a dict"):
        context_fingerprint(object())


def test_unfingerprintable_dict_value_names_its_key():
    with pytest.raises(FingerprintError, match=r"context\['model'\]"):
        context_fingerprint({"model": object()})


# --- context_spec --------------------------------------------------------------------


def test_spec_is_a_frozen_dataclass():
    spec = Settings(options={})
    assert dataclasses.is_dataclass(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.n = 2


def test_spec_fields_keep_their_defaults_and_order():
    assert Settings({"k": 1}) == Settings(options={"k": 1}, n=1)


def test_unfingerprintable_field_value_error_names_the_field():
    with pytest.raises(FingerprintError, match=r"Settings: field 'options'.*Settings\.options"):
        Settings(options={"model": object()})


def test_building_a_spec_never_reads_files(tmp_path, reads):
    Data(path=FilePath(tmp_path / "not-there.csv"))
    assert reads == []


def test_spec_fingerprint_follows_file_content(data_file):
    spec = Data(path=FilePath(data_file))
    before = spec.fingerprint
    data_file.write_bytes(b"other content")
    assert spec.fingerprint != before


def test_spec_subclass_checks_fields_and_differs_from_its_base():
    @context_spec
    class MoreSettings(Settings):
        extra: str = "x"

    with pytest.raises(FingerprintError, match="field 'options'"):
        MoreSettings(options={"bad": object()})
    assert MoreSettings(options={}).fingerprint != Settings(options={}).fingerprint


def test_spec_user_post_init_runs_before_the_check():
    @context_spec
    class Normalised:
        sizes: object

        def __post_init__(self):
            object.__setattr__(self, "sizes", list(self.sizes))

    assert Normalised(sizes=range(3)).sizes == [0, 1, 2]


def test_field_named_fingerprint_is_rejected():
    with pytest.raises(InvalidArgumentError, match="'fingerprint' is taken"):

        @context_spec
        class Clash:
            fingerprint: str = "x"


def test_context_spec_on_a_non_class_is_rejected():
    with pytest.raises(InvalidTypeError, match="expected a class"):
        context_spec(lambda: None)


# --- FilePath ------------------------------------------------------------------------


def test_file_path_is_path_like_and_prints_its_path(data_file):
    data = FilePath(data_file)
    assert os.fspath(data) == str(data) == str(data_file)
    with open(data, "rb") as handle:
        assert handle.read() == b"a,b\n1,2\n"


def test_file_path_is_frozen_and_equal_for_str_and_path(data_file):
    data = FilePath(data_file)
    assert data == FilePath(str(data_file))
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.path = "elsewhere"


def test_file_path_survives_pickling(data_file):
    data = FilePath(data_file, hash_path=True)
    assert pickle.loads(pickle.dumps(data)) == data


def test_file_payload_is_the_content_hash(data_file):
    assert FilePath(data_file).payload() == {"$file": _sha(b"a,b\n1,2\n")}


def test_file_is_hashed_in_chunks_larger_than_one(tmp_path, monkeypatch):
    monkeypatch.setattr(context_module, "_CHUNK_BYTES", 4)
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 3)
    assert FilePath(path).payload()["$file"] == _sha(bytes(range(256)) * 3)


def test_changing_file_content_changes_the_fingerprint(data_file):
    before = context_fingerprint({"data": FilePath(data_file)})
    data_file.write_bytes(b"a,b\n1,3\n")
    assert context_fingerprint({"data": FilePath(data_file)}) != before


def test_change_with_restored_mtime_but_new_size_is_seen(data_file):
    before = FilePath(data_file).payload()
    old = data_file.stat()
    data_file.write_bytes(b"a,b\n1,2\n3,4\n")
    os.utime(data_file, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert FilePath(data_file).payload() != before


def test_change_with_same_size_but_new_mtime_is_seen(data_file):
    before = FilePath(data_file).payload()
    old = data_file.stat()
    data_file.write_bytes(b"a,b\n7,8\n")
    os.utime(data_file, ns=(old.st_atime_ns, old.st_mtime_ns + 1_000_000_000))
    assert FilePath(data_file).payload() == {"$file": _sha(b"a,b\n7,8\n")} != before


def test_unchanged_file_is_read_only_once(data_file, reads):
    spec = Data(path=FilePath(data_file))
    assert spec.fingerprint == spec.fingerprint
    context_fingerprint({"d": FilePath(data_file)})
    assert reads == [str(data_file)]


def test_changed_file_is_read_again(data_file, reads):
    FilePath(data_file).payload()
    data_file.write_bytes(b"longer content than before")
    FilePath(data_file).payload()
    assert len(reads) == 2


def test_same_content_at_two_paths_has_one_fingerprint(tmp_path, data_file):
    copy = tmp_path / "copy" / "renamed.csv"
    copy.parent.mkdir()
    shutil.copy(data_file, copy)
    assert Data(FilePath(data_file)).fingerprint == Data(FilePath(copy)).fingerprint


def test_hash_path_makes_the_path_count(tmp_path, data_file):
    copy = tmp_path / "copy.csv"
    shutil.copy(data_file, copy)
    assert FilePath(data_file, hash_path=True).payload() != FilePath(copy, hash_path=True).payload()
    assert FilePath(data_file, hash_path=True).payload() == {
        "$file": _sha(b"a,b\n1,2\n"),
        "$path": str(data_file),
    }


def test_missing_file_error_names_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(InvalidArgumentError, match=r"FilePath\(.*nope\.csv.*no file at"):
        context_fingerprint({"data": FilePath(missing)})


def test_file_path_to_a_directory_points_to_dir_path(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"not a regular file.*use DirPath"):
        FilePath(tmp_path).payload()


@pytest.mark.parametrize("bad", [b"data.csv", 3, None])
def test_file_path_rejects_non_path_types(bad):
    with pytest.raises(InvalidTypeError, match=r"FilePath\(path="):
        FilePath(bad)


def test_file_path_rejects_an_empty_path():
    with pytest.raises(InvalidArgumentError, match="path is empty"):
        FilePath("")


def test_file_path_rejects_non_bool_hash_path(data_file):
    with pytest.raises(InvalidTypeError, match="hash_path must be True or False"):
        FilePath(data_file, hash_path=1)


# --- DirPath -------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.csv").write_bytes(b"1")
    (root / "sub" / "b.csv").write_bytes(b"2")
    (root / "notes.txt").write_bytes(b"3")
    return root


def test_dir_payload_lists_sorted_relative_paths_with_content_hashes(data_dir):
    assert DirPath(data_dir).payload() == {
        "$dir": [["a.csv", _sha(b"1")], ["notes.txt", _sha(b"3")], ["sub/b.csv", _sha(b"2")]]
    }


def test_adding_a_file_changes_the_dir_fingerprint(data_dir):
    before = DirPath(data_dir).payload()
    (data_dir / "c.csv").write_bytes(b"4")
    assert DirPath(data_dir).payload() != before


def test_removing_a_file_changes_the_dir_fingerprint(data_dir):
    before = DirPath(data_dir).payload()
    (data_dir / "a.csv").unlink()
    assert DirPath(data_dir).payload() != before


def test_renaming_a_file_changes_the_dir_fingerprint(data_dir):
    before = DirPath(data_dir).payload()
    (data_dir / "a.csv").rename(data_dir / "z.csv")
    assert DirPath(data_dir).payload() != before


def test_editing_a_file_changes_the_dir_fingerprint(data_dir):
    before = DirPath(data_dir).payload()
    (data_dir / "sub" / "b.csv").write_bytes(b"22")
    assert DirPath(data_dir).payload() != before


def test_pattern_filters_the_files(data_dir):
    csvs = DirPath(data_dir, "**/*.csv")
    before = csvs.payload()
    (data_dir / "notes.txt").write_bytes(b"edited")
    assert csvs.payload() == before
    assert [name for name, _ in csvs.payload()["$dir"]] == ["a.csv", "sub/b.csv"]


def test_same_directory_content_at_two_paths_has_one_fingerprint(tmp_path, data_dir):
    copy = shutil.copytree(data_dir, tmp_path / "elsewhere")
    assert DirPath(data_dir).payload() == DirPath(copy).payload()
    assert DirPath(data_dir, hash_path=True).payload() != DirPath(copy, hash_path=True).payload()


def test_missing_directory_error_names_the_path(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"DirPath\(.*gone.*no directory at"):
        DirPath(tmp_path / "gone").payload()


@pytest.mark.parametrize("pattern", ["", "/abs/*", 3])
def test_dir_path_rejects_bad_patterns(tmp_path, pattern):
    with pytest.raises(InvalidArgumentError, match="pattern must be a non-empty glob"):
        DirPath(tmp_path, pattern)
