"""SeedBundle.torch and the torch side of seed_everything/seeded (needs the torch extra)."""

from __future__ import annotations

import os

import pytest

from metalab.seeds import SeedBundle, seed_everything, seeded

torch = pytest.importorskip("torch", reason="the torch extra is not installed")


def test_torch_generator_golden_draws():
    # torch.Generator().manual_seed(derive(name)), CPU Philox/MT stream of torch itself.
    generator = SeedBundle(42, 0).torch()
    assert torch.rand(3, generator=generator).tolist() == [
        0.26145535707473755,
        0.2523987293243408,
        0.5615890026092529,
    ]
    init = SeedBundle(42, 0).torch("init")
    assert torch.randint(0, 1000, (3,), generator=init).tolist() == [953, 685, 326]


def test_torch_generator_on_explicit_cpu_device():
    generator = SeedBundle(7, 1).torch("x", device="cpu")
    assert generator.device.type == "cpu"
    assert generator.initial_seed() == SeedBundle(7, 1).derive("x")


def test_seed_everything_seeds_torch_global_generator():
    seed_everything(42)
    ours = torch.rand(2).tolist()
    torch.manual_seed(42)
    assert ours == torch.rand(2).tolist()


def test_seed_everything_with_bundle_seeds_torch_from_derived_seed():
    bundle = SeedBundle(42, 3)
    seed_everything(bundle)
    assert torch.initial_seed() == bundle.derive("torch")


def test_seeded_deterministic_sets_and_restores_every_switch(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.manual_seed(1)
    expected = torch.rand(1).item()
    torch.manual_seed(1)
    before = torch.are_deterministic_algorithms_enabled()
    with seeded(99, deterministic=True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic is True
        assert torch.backends.cudnn.benchmark is False
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.initial_seed() == 99
    assert torch.are_deterministic_algorithms_enabled() == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert torch.rand(1).item() == expected


def test_seed_everything_keeps_a_user_cublas_setting(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with seeded(1, deterministic=True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_generator_on_cuda_is_reproducible():
    first = torch.rand(4, device="cuda", generator=SeedBundle(42, 0).torch(device="cuda"))
    again = torch.rand(4, device="cuda", generator=SeedBundle(42, 0).torch(device="cuda"))
    assert torch.equal(first, again)
