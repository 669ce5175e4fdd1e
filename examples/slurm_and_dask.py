"""The same sweep on Dask and on SLURM, the executor chosen by a profile or an argument.

A Monte Carlo estimate of the area under ``exp(-x^2)`` on [0, 2] (the exact value is
0.882081...), for three sample sizes, four seeded replicates each. Where it runs is
not part of the experiment: ``metalab.toml`` beside this script holds the profiles
``local`` (worker processes), ``dask`` (a Dask cluster started on this machine) and
``slurm`` (job arrays), and the results are the same on each, to the last digit::

    python examples/slurm_and_dask.py --profile dask
    python examples/slurm_and_dask.py --profile slurm     # waits for the arrays
    METALAB_PROFILE=slurm python examples/slurm_and_dask.py
    python examples/slurm_and_dask.py --executor process  # an argument wins

The command line does the same: ``metalab run examples/slurm_and_dask.py --profile
dask``. Each prints one line per run. Edit the ``slurm`` profile's partition, time and
setup lines for your cluster (the store must be on a file system the nodes see), and
set ``address`` in the ``dask`` profile to join a running scheduler.
``METALAB_EXAMPLE_SMALL=1`` draws fewer samples (12 runs either way).
"""

import argparse
import math
import os

import metalab

SMALL = os.environ.get("METALAB_EXAMPLE_SMALL") == "1"


@metalab.operation(name="gauss_area", version="1")
def gauss_area(params, seeds, capture):
    rng = seeds.rng()
    n = params["n_samples"]
    hits = sum(math.exp(-((2.0 * rng.random()) ** 2)) for _ in range(n))
    capture.metric("area", 2.0 * hits / n)


exp = metalab.Experiment(
    name="gauss_area",
    version="1",
    context={},
    operation=gauss_area,
    params=metalab.grid(n_samples=[100, 1000, 10000] if SMALL else [10_000, 100_000, 1_000_000]),
    seeds=metalab.seeds(base=2024, replicates=4),
)

if __name__ == "__main__":  # Dask's and the process executor's workers import this script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="a profile of metalab.toml (local, dask, slurm)")
    parser.add_argument("--executor", help="an executor name; wins over the profile's")
    args = parser.parse_args()
    result = metalab.run(exp, executor=args.executor, profile=args.profile)
    if isinstance(result, metalab.SlurmSweep):  # run() returned once the arrays were queued
        result = result.wait(timeout=600)
    for run in sorted(result, key=lambda r: (r.params["n_samples"], r.seeds.replicate_index)):
        print(run.params["n_samples"], run.seeds.replicate_index, run.metrics["area"], run.run_id)
