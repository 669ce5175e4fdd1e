"""Cached preprocessing: editing one data file re-runs exactly the runs that read it.

Two measuring sites each have a raw data file, ``data/raw/<site>.csv`` (made on the
first start; edit them as you like). Each is preprocessed once, with randomness from
``SeedBundle.for_preprocessing(BASE_SEED)``: the rows are shuffled and a quarter of
them is held out. The result is cached under a name that holds the base seed and the
raw file's SHA-256, so it is made again only when one of them changes.

Each site then has its own experiment: polynomial fits of degree 1, 2, 3, whose
context names the preprocessed file with ``metalab.FilePath``. The file's content is
part of every run ID of that experiment, so after an edit of ``north.csv``

- the preprocessing of north runs again, and the 6 north runs are computed again
  (their IDs changed);
- south is untouched: its cached file is reused and its 6 runs are skipped.

    python examples/preprocessing_cache.py           # computes 12 runs
    python examples/preprocessing_cache.py           # computes none
    echo "0.95,2.5" >> data/raw/north.csv
    python examples/preprocessing_cache.py           # computes the 6 north runs only

``METALAB_EXAMPLE_SMALL=1`` fits degrees 1 and 2 only (4 runs per site).
"""

import csv
import hashlib
import json
import math
import os
from pathlib import Path

import metalab

SMALL = os.environ.get("METALAB_EXAMPLE_SMALL") == "1"
BASE_SEED = 11
SITES = ["north", "south"]
RAW, PREPARED = Path("data/raw"), Path("data/prepared")


def write_raw(site):
    """Make a raw file of 40 (x, y) rows for ``site``: a curve that differs per site."""
    tilt = 1.0 if site == "north" else -0.5
    rows = [(i / 40, tilt * i / 40 + math.sin(i / 6)) for i in range(40)]
    with open(RAW / f"{site}.csv", "w", newline="") as out:
        csv.writer(out).writerows([("x", "y"), *rows])


def prepare(site):
    """Return the preprocessed file of ``site``, made now only if not cached.

    The name holds the base seed and the SHA-256 of the raw file: a new seed or an
    edited raw file gives a new name, so a stale file is never reused.
    """
    raw = RAW / f"{site}.csv"
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:16]
    target = PREPARED / f"{site}-seed{BASE_SEED}-{digest}.json"
    if target.exists():
        print(f"{site}: preprocessing cached ({target.name})")
        return target
    with open(raw, newline="") as source:
        rows = [(float(x), float(y)) for x, y in list(csv.reader(source))[1:]]
    rng = metalab.SeedBundle.for_preprocessing(BASE_SEED).rng("split")
    rng.shuffle(rows)
    held_out = len(rows) // 4
    PREPARED.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name, then renamed: a crash never leaves half a file
    # under the name that the cache trusts.
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps({"test": rows[:held_out], "train": rows[held_out:]}))
    partial.replace(target)
    print(f"{site}: preprocessed ({target.name})")
    return target


def fit_polynomial(points, degree):
    """Least-squares polynomial coefficients (lowest power first), by normal equations."""
    size = degree + 1
    a = [[sum(x ** (i + j) for x, _ in points) for j in range(size)] for i in range(size)]
    b = [sum(y * x**i for x, y in points) for i in range(size)]
    for col in range(size):  # Gauss-Jordan elimination with partial pivoting
        pivot = max(range(col, size), key=lambda row: abs(a[row][col]))
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for row in range(size):
            if row != col:
                factor = a[row][col] / a[col][col]
                a[row] = [u - factor * v for u, v in zip(a[row], a[col], strict=True)]
                b[row] -= factor * b[col]
    return [b[i] / a[i][i] for i in range(size)]


@metalab.operation(name="polyfit", version="1")
def fit(params, seeds, context, capture):
    """Fit a polynomial to a bootstrap sample of the training rows; score it on the test rows."""
    data = json.loads(Path(context["data"]).read_text())
    rng = seeds.rng("bootstrap")
    sample = [rng.choice(data["train"]) for _ in data["train"]]
    coefficients = fit_polynomial(sample, params["degree"])

    def predict(x):
        return sum(c * x**i for i, c in enumerate(coefficients))

    errors = [(predict(x) - y) ** 2 for x, y in data["test"]]
    capture.metric("test_mse", sum(errors) / len(errors))


def experiment(site, data):
    """The sweep of one site: its own name (and store), with its data file as context."""
    return metalab.Experiment(
        name=f"polyfit_{site}",
        version="1",
        context={"data": metalab.FilePath(data)},
        operation=fit,
        params=metalab.grid(degree=[1, 2] if SMALL else [1, 2, 3]),
        seeds=metalab.seeds(base=BASE_SEED, replicates=2),
    )


def run_site(site):
    """Run the site's sweep; print and return how many of its runs were computed now."""
    exp = experiment(site, prepare(site))
    store = Path("runs") / exp.name
    before = {run.run_id for run in metalab.load_results(store)} if store.exists() else set()
    current = {exp.run_id(case, bundle) for case in exp.params for bundle in exp.seeds}
    metalab.run(exp, store=store)
    computed = len(current - before)
    print(f"{site}: {computed} run(s) computed, {len(current) - computed} reused")
    return computed


if __name__ == "__main__":
    RAW.mkdir(parents=True, exist_ok=True)
    for site in SITES:
        if not (RAW / f"{site}.csv").exists():
            write_raw(site)
    for site in SITES:
        run_site(site)
