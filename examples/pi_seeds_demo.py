"""Preview of the π sweep: a grid of sample sizes x 3 seeded replicates, run by hand.

Each (case, replicate) gets its own 64-bit NumPy stream and a stable run ID; run this
twice, or on another machine, and every number and ID is the same. (Once the runner
lands, ``metalab.run(exp)`` does this loop, stores the runs and resumes.)
"""

from __future__ import annotations

import metalab

params = metalab.grid(n_samples=[1000, 10000, 100000])
plan = metalab.seeds(base=42, replicates=3)

print(f"{'run_id':<34}{'n_samples':>10}{'replicate':>10}{'pi_estimate':>14}")
for case in params:
    for bundle in plan:
        rng = bundle.numpy()
        x, y = rng.random(case["n_samples"]), rng.random(case["n_samples"])
        pi_estimate = 4.0 * float((x**2 + y**2 <= 1).mean())
        rid = metalab.run_id(
            experiment="pi_mc",
            version="0.1",
            context=metalab.fingerprint({}),
            params=case.fingerprint,
            seeds=bundle.fingerprint,
        )
        print(f"{rid:<34}{case['n_samples']:>10}{bundle.replicate_index:>10}{pi_estimate:>14.5f}")
