"""Double cross-validation of a whole search, two ways, same outer and inner folds, same 16
candidates (a 4 x 4 grid of widths and learning rates), same SGD (batch 32, no momentum, tanh, at
most 30 epochs, early stopping), on standardized digits:

1. purelearn: ``evaluate.double_cross_validation`` of a ``HyperLearner(cv=3)`` searching the grid
   (each trial's 3 inner folds train as members of shared populations), n_jobs = 2;
2. scikit-learn: ``cross_val_score`` of ``GridSearchCV(Pipeline(StandardScaler, MLPClassifier),
   cv=3, n_jobs=2)``, the nested cross-validation of scikit-learn's own example.

Wall-clock seconds, the nested estimate (mean +- std of the outer errors) and the non-nested one
(the mean of the selected inner scores). The estimates need not agree (different learners); the
time is what compares. Medians of ``--repeats`` runs, the two side by side in each, each run in
a fresh process (scikit-learn's worker pool leaves threads behind, and purelearn then spawns its
workers instead of forking them).

    python benchmarks/nested_cv.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from purelearn import HyperLearner  # noqa: E402
from purelearn.evaluate import double_cross_validation  # noqa: E402

WIDTHS, RATES = (32, 64, 128, 256), (0.01, 0.03, 0.1, 0.3)
EPOCHS, OUTER, INNER = 30, 5, 3


def ours(X, y):
    config = {"data": {"preprocess": ["standardize"]}, "model": {"activation": "tanh"},
              "train": {"max_epochs": EPOCHS, "batch_size": 32, "patience": 5000},
              "search": {"strategy": "grid"}}
    space = {"model.units": f"choice{WIDTHS}", "train.lr": f"choice{RATES}"}
    learner = HyperLearner(config, space=space, trials=len(WIDTHS) * len(RATES), cv=INNER, n_jobs=2, random_state=0)
    start = time.perf_counter()
    estimate = double_cross_validation(learner, X, y, outer=OUTER, seed=0)
    return time.perf_counter() - start, estimate.outer, estimate.inner[0]


def theirs(X, y):
    mlp = MLPClassifier(solver="sgd", momentum=0.0, batch_size=32, activation="tanh", max_iter=EPOCHS,
                        early_stopping=True, validation_fraction=0.1, n_iter_no_change=5, random_state=0)
    grid = GridSearchCV(make_pipeline(StandardScaler(), mlp),
                        {"mlpclassifier__hidden_layer_sizes": [(w,) for w in WIDTHS],
                         "mlpclassifier__learning_rate_init": list(RATES)},
                        cv=StratifiedKFold(INNER, shuffle=True, random_state=0), n_jobs=2)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_validate(grid, X, y, cv=StratifiedKFold(OUTER, shuffle=True, random_state=0),
                                return_estimator=True)
    seconds = time.perf_counter() - start
    errors = 1 - scores["test_score"]
    inner = np.mean([1 - est.best_score_ for est in scores["estimator"]])
    return seconds, (float(errors.mean()), float(errors.std(ddof=1))), float(inner)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", choices=("ours", "theirs"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        X, y = load_digits(return_X_y=True)
        print(json.dumps((ours if args.one == "ours" else theirs)(X, y)))
        return
    print(machine())
    print(f"digits, {OUTER} outer x {INNER} inner folds, {len(WIDTHS) * len(RATES)} candidates, <= {EPOCHS} epochs")
    runs = {"purelearn evaluate": [], "scikit-learn GridSearchCV(MLPClassifier)": []}
    for r in range(args.repeats):
        for name, side in zip(runs, ("ours", "theirs")):
            out = subprocess.run([sys.executable, __file__, "--one", side], capture_output=True, text=True, check=True)
            s, (m, sd), inner = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append((s, (m, sd), inner))
            s, (m, sd), inner = runs[name][-1]
            print(f"  run {r + 1} {name}: {s:.1f} s, nested {m:.4f} +- {sd:.4f}, non-nested {inner:.4f}", flush=True)
    print(f"| {'':42} | seconds (median) | nested error | non-nested |")
    for name, results in runs.items():
        s = statistics.median(r[0] for r in results)
        m, sd = results[0][1]
        print(f"| {name:42} | {s:16.1f} | {m:.4f} +- {sd:.4f} | {results[0][2]:.4f} |")
    ratio = statistics.median(r[0] for r in runs["scikit-learn GridSearchCV(MLPClassifier)"]) / \
        statistics.median(r[0] for r in runs["purelearn evaluate"])
    print(f"purelearn is {ratio:.2f}x faster (median over {args.repeats} runs)")


if __name__ == "__main__":
    main()
