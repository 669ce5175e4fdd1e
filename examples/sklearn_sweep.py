"""A scikit-learn hyperparameter sweep with seeded cross-validation, stored in ./runs.

A random forest on the breast cancer dataset that scikit-learn ships (no download),
swept over ``max_depth`` and ``n_estimators``. Each replicate is one seed: it decides
how the rows are split into cross-validation folds and how the forest is grown, so
the replicates show how much the score moves with the seed alone, and the summary
gives each setting a 95% confidence interval over them. Each fold's accuracy is kept
as a per-step series, the mean over the folds as the run's metric.

    python examples/sklearn_sweep.py            # 6 settings x 5 seeds x 5 folds, ~10 s
    METALAB_EXAMPLE_SMALL=1 python examples/sklearn_sweep.py   # 2 x 2 x 3, for tests

It prints the summary (one row per setting) and writes ``sklearn_sweep.png``. Run it
again and nothing is computed: the runs are in ``runs/sklearn_sweep``.
"""

import os

import metalab

SMALL = os.environ.get("METALAB_EXAMPLE_SMALL") == "1"


@metalab.operation(name="sklearn_sweep", version="1")
def cross_validate(params, seeds, capture):
    """Score one forest setting by k-fold cross-validation, with folds from the seeds."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold

    x, y = load_breast_cancer(return_X_y=True)
    # scikit-learn takes 32-bit seeds: numpy_seed() is derive(name) % 2**32.
    folds = StratifiedKFold(
        n_splits=params["folds"], shuffle=True, random_state=seeds.numpy_seed("cv")
    )
    scores = []
    for fold, (train, test) in enumerate(folds.split(x, y)):
        model = RandomForestClassifier(
            n_estimators=params["n_estimators"],
            max_depth=params["max_depth"],
            random_state=seeds.numpy_seed("forest"),
        )
        model.fit(x[train], y[train])
        scores.append(model.score(x[test], y[test]))
        capture.metric("fold_accuracy", scores[-1], step=fold)
    capture.metric("accuracy", sum(scores) / len(scores))


exp = metalab.Experiment(
    name="sklearn_sweep",
    version="1",
    operation=cross_validate,
    params=metalab.grid(
        max_depth=[2, 4] if SMALL else [2, 4, 8],
        n_estimators=[10] if SMALL else [10, 50],
        # A param, not a constant: the fold count changes the scores, so it must be part
        # of the run IDs, or a small run's results would be taken for a full one's.
        folds=[3 if SMALL else 5],
    ),
    seeds=metalab.seeds(base=2024, replicates=2 if SMALL else 5),
)

if __name__ == "__main__":
    result = metalab.run(exp)  # ./runs/sklearn_sweep
    for row in result.summary(group_by=["max_depth", "n_estimators"]):
        if row["metric"] == "accuracy":
            print(
                f"max_depth={row['max_depth']} n_estimators={row['n_estimators']}: "
                f"accuracy {row['mean']:.4f}, 95% CI [{row['ci95_low']:.4f}, "
                f"{row['ci95_high']:.4f}] over {row['count']} seeds"
            )
    fig = result.plot(x="max_depth", y="accuracy", hue="n_estimators")
    fig.savefig("sklearn_sweep.png")
