"""SeedBundle, SeedPlan, seed_everything and seeded."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metalab
from metalab.errors import CaseIndexError, InvalidArgumentError, InvalidTypeError
from metalab.seeds import SeedBundle, SeedPlan, seed_everything, seeded

seed_values = st.integers(min_value=0, max_value=2**64 - 1)
replicates = st.none() | st.integers(min_value=0, max_value=10**6)
names = st.text(max_size=20)

# Golden values computed independently of metalab (hashlib over the documented text)
# and written here as literals: any change of the derivation fails these tests.
GOLDEN_DERIVE = [
    (42, 0, "default", 2164880486899767195),
    (42, 0, "sampling", 16451810078227672686),
    (42, 0, "init", 2781896170809305741),
    (42, 1, "default", 17311043386426800777),
    (42, 1, "sampling", 7123876089204018361),
    (42, 1, "init", 454289513212333999),
    (42, None, "sampling", 16451810078227672686),
    (0, 2, "default", 8341133279077647527),
    (0, 2, "init", 5702016562406702884),
    (2**64 - 1, 7, "default", 6195000384157342105),
    (2**64 - 1, 7, "sampling", 2373801378932454410),
]


@pytest.mark.parametrize(("root", "replicate", "name", "expected"), GOLDEN_DERIVE)
def test_derive_matches_golden_values(root, replicate, name, expected):
    assert SeedBundle(root, replicate).derive(name) == expected


def test_numpy_seed_is_derived_seed_modulo_2_32():
    assert SeedBundle(42, 0).numpy_seed() == 852875163
    assert SeedBundle(42, 1).numpy_seed("sampling") == 686263481


def test_numpy_generator_golden_draws_use_all_64_bits():
    rng = SeedBundle(42, 0).numpy()
    assert rng.random(3).tolist() == [0.8407249503430587, 0.5459397771703873, 0.34812653859881426]
    assert SeedBundle(42, 0).numpy().integers(0, 1000, 3).tolist() == [654, 840, 532]
    assert SeedBundle(42, 1).numpy().random(2).tolist() == [0.8215793329069273, 0.9267622125299336]
    # The same draws as seeding with the full derived seed, not its low 32 bits.
    truncated = np.random.default_rng(SeedBundle(42, 0).numpy_seed()).random()
    assert truncated != 0.8407249503430587


def test_rng_golden_draws():
    assert SeedBundle(42, 0).rng().random() == 0.1710347192907522
    assert SeedBundle(42, 1).rng().random() == 0.8906146867913312


def test_for_preprocessing_golden_root_seed():
    prep = SeedBundle.for_preprocessing(42)
    assert prep == SeedBundle(5875625451538769114, None)
    assert SeedBundle.for_preprocessing(0).root_seed == 12923151559852436587
    assert prep.derive("default") == 7753140183719244741


@given(base=seed_values, name=names)
@settings(max_examples=200, deadline=None)
def test_for_preprocessing_never_equals_a_replicate_stream(base, name):
    prep = SeedBundle.for_preprocessing(base)
    replicate_seeds = {SeedBundle(base, i).derive(name) for i in range(5)}
    assert prep.derive(name) not in replicate_seeds
    assert prep.replicate_index is None


@given(root=seed_values, replicate=replicates, a=names, b=names)
@settings(max_examples=300, deadline=None)
def test_derived_seeds_differ_across_names(root, replicate, a, b):
    bundle = SeedBundle(root, replicate)
    assert (bundle.derive(a) == bundle.derive(b)) == (a == b)


@given(root=seed_values, i=st.integers(0, 10**6), j=st.integers(0, 10**6), name=names)
@settings(max_examples=300, deadline=None)
def test_derived_seeds_differ_across_replicates(root, i, j, name):
    same = SeedBundle(root, i).derive(name) == SeedBundle(root, j).derive(name)
    assert same == (i == j)


@given(a=seed_values, b=seed_values, name=names)
@settings(max_examples=300, deadline=None)
def test_derived_seeds_differ_across_roots(a, b, name):
    assert (SeedBundle(a, 0).derive(name) == SeedBundle(b, 0).derive(name)) == (a == b)


@given(root=seed_values, replicate=replicates, name=names)
@settings(max_examples=200, deadline=None)
def test_derived_seeds_are_64_bit_and_numpy_seeds_32_bit(root, replicate, name):
    bundle = SeedBundle(root, replicate)
    assert 0 <= bundle.derive(name) < 2**64
    assert bundle.numpy_seed(name) == bundle.derive(name) % 2**32


def test_names_containing_separator_do_not_collide():
    # "1:a" with name "b" and "1" with name "a:b" would collide in a naive encoding.
    assert SeedBundle(1, 0).derive("a:2") != SeedBundle(1, 2).derive("a")
    assert SeedBundle(12, 0).derive("3") != SeedBundle(1, 0).derive("23")


def test_bundle_is_frozen_hashable_and_picklable():
    bundle = SeedBundle(42, 3)
    with pytest.raises(AttributeError):
        bundle.root_seed = 1  # type: ignore[misc]
    assert {bundle, SeedBundle(42, 3)} == {bundle}
    assert pickle.loads(pickle.dumps(bundle)) == bundle


@given(root=seed_values, replicate=replicates)
def test_to_dict_round_trips_through_json(root, replicate):
    bundle = SeedBundle(root, replicate)
    assert SeedBundle.from_dict(json.loads(json.dumps(bundle.to_dict()))) == bundle


def test_from_dict_without_replicate_index():
    assert SeedBundle.from_dict({"root_seed": 5}) == SeedBundle(5, None)


def test_fingerprint_distinguishes_none_from_replicate_zero():
    assert SeedBundle(42, None).derive("x") == SeedBundle(42, 0).derive("x")
    assert SeedBundle(42, None).fingerprint != SeedBundle(42, 0).fingerprint


@pytest.mark.parametrize(
    ("args", "error", "shown"),
    [
        ((-1,), InvalidArgumentError, "-1"),
        ((2**64,), InvalidArgumentError, "18446744073709551616"),
        ((1.5,), InvalidTypeError, "1.5"),
        ((True,), InvalidTypeError, "True"),
        (("42",), InvalidTypeError, "'42'"),
        ((42, -1), InvalidArgumentError, "replicate_index=-1"),
        ((42, 1.0), InvalidTypeError, "replicate_index=1.0"),
    ],
)
def test_bundle_rejects_bad_seeds(args, error, shown):
    with pytest.raises(error, match="SeedBundle") as info:
        SeedBundle(*args)
    assert shown in str(info.value)


def test_derive_rejects_non_str_name():
    with pytest.raises(InvalidTypeError, match="name=3"):
        SeedBundle(1).derive(3)  # type: ignore[arg-type]


def test_from_dict_rejects_missing_root_seed():
    with pytest.raises(InvalidArgumentError, match="root_seed"):
        SeedBundle.from_dict({"seed": 1})


def test_plan_yields_bundles_per_replicate():
    plan = metalab.seeds(base=42, replicates=3)
    assert isinstance(plan, SeedPlan)
    assert len(plan) == 3
    assert list(plan) == [SeedBundle(42, 0), SeedBundle(42, 1), SeedBundle(42, 2)]
    assert plan[-1] == SeedBundle(42, 2)
    assert plan[-3] == plan[0]


@pytest.mark.parametrize("index", [3, -4, 100])
def test_plan_index_out_of_range_raises_index_error(index):
    with pytest.raises(CaseIndexError, match=f"\\[{index}\\]") as info:
        SeedPlan(42, 3)[index]
    assert isinstance(info.value, IndexError)


@pytest.mark.parametrize(
    ("kwargs", "error", "shown"),
    [
        ({"base": 42, "replicates": 0}, InvalidArgumentError, "replicates=0"),
        ({"base": 42, "replicates": -2}, InvalidArgumentError, "replicates=-2"),
        ({"base": 42, "replicates": 2.0}, InvalidTypeError, "replicates=2.0"),
        ({"base": -5, "replicates": 1}, InvalidArgumentError, "base=-5"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs, error, shown):
    with pytest.raises(error) as info:
        SeedPlan(**kwargs)
    assert shown in str(info.value)


@given(base=seed_values, n=st.integers(1, 1000))
def test_plan_manifest_round_trips_through_json(base, n):
    plan = SeedPlan(base, n)
    manifest = json.loads(json.dumps(plan.to_manifest_dict()))
    assert SeedPlan.from_manifest_dict(manifest) == plan
    assert manifest == {"type": "SeedPlan", "base": base, "replicates": n}


def test_plan_from_original_metalab_manifest_without_type():
    assert SeedPlan.from_manifest_dict({"base": 7, "replicates": 2}) == SeedPlan(7, 2)


def test_seed_everything_with_int_seeds_like_the_libraries_do():
    seed_everything(42)
    ours = (random.random(), np.random.random())
    random.seed(42)
    np.random.seed(42)
    assert ours == (random.random(), np.random.random())


def test_seed_everything_with_bundle_uses_derived_streams():
    bundle = SeedBundle(42, 1)
    seed_everything(bundle)
    ours = random.random()
    assert ours == random.Random(bundle.derive("random")).random()


def test_seed_everything_accepts_64_bit_seed_for_numpy_legacy():
    seed_everything(2**64 - 1)
    first = np.random.random()
    seed_everything(2**64 - 1)
    assert np.random.random() == first
    seed_everything(2**64 - 2)
    assert np.random.random() != first


def test_seed_everything_rejects_bad_input_before_touching_state():
    state = random.getstate()
    with pytest.raises(InvalidArgumentError, match="-3"):
        seed_everything(-3)
    with pytest.raises(InvalidTypeError, match="deterministic='yes'"):
        seed_everything(1, deterministic="yes")  # type: ignore[arg-type]
    assert random.getstate() == state


def test_seeded_restores_previous_states_even_on_error():
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), np.random.random())
    random.seed(5)
    np.random.seed(5)
    with pytest.raises(RuntimeError), seeded(123):
        inside = random.random()
        raise RuntimeError("boom")
    assert inside == random.Random(123).random()
    assert (random.random(), np.random.random()) == expected
