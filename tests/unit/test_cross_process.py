"""Seeds, fingerprints and run IDs are equal across processes and PYTHONHASHSEED values."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import metalab
from metalab.fingerprint import fingerprint, run_id

bundles = list(metalab.seeds(base=42, replicates=3))
grid = metalab.grid(lr=[0.1, 1e-3], name=["a", "b", "c"], flag=[True, False])
rand = metalab.random(
    {"x": metalab.uniform(0, 1), "k": metalab.choice(["p", "q", "r"])}, n_trials=5, seed=9
)
# A set of strings iterates in an order that depends on PYTHONHASHSEED.
context = {"tokens": {"alpha", "beta", "gamma", "delta", "epsilon"}, "n": 3}
for bundle in bundles:
    print(bundle.derive("init"), bundle.rng().random())
for case in [*grid, *rand]:
    print(case.fingerprint, sorted(case.items()))
    for bundle in bundles:
        print(run_id(experiment="e", version="1", context=fingerprint(context),
                     params=case.fingerprint, seeds=bundle.fingerprint))
"""


def _output(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def test_seeds_and_run_ids_do_not_depend_on_hash_randomisation():
    outputs = {seed: _output(seed) for seed in ("0", "1", "12345", "random")}
    assert len(outputs["0"].splitlines()) == 3 + (12 + 5) * 4
    assert len(set(outputs.values())) == 1, "output differs between PYTHONHASHSEED values"
