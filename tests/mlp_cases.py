"""MLP trainings whose results were recorded before the model-family seam
(tests/fixtures/mlp-before-families.json): the engine must still give them, to float rounding.
``python tests/mlp_cases.py`` writes the fixture again (only ever from a commit known to be right)."""

import json
import sys
from pathlib import Path

import numpy as np

from purelearn import MLP, Member, Training, fit
from purelearn.data import from_arrays, load, prepare

FIXTURE = Path(__file__).parent / "fixtures" / "mlp-before-families.json"

# (name, members): populations that go through every path of the engine
CASES = {
    "plain-sgd-padded": [Member(MLP((w,), "tanh"), Training(lr=lr, max_epochs=3, seed=i, valid_every=400))
                         for i, (w, lr) in enumerate([(40, 0.1), (48, 0.05), (37, 0.2)])],
    "sigmoid-padded": [Member(MLP((w, 20), "sigmoid"), Training(lr=0.3, max_epochs=2, seed=i + 3))
                       for i, w in enumerate([30, 36])],
    "momentum-decay-schedule": [Member(MLP((32,), "rectifier"),
                                       Training(lr=0.05, momentum=m, l2=(1e-3, 0.0), l1=1e-5, tau=500, max_epochs=3,
                                                lr_scale=(1.0, 0.5), seed=7 + i, patience=800, patience_mode="add",
                                                patience_increase=300))
                                for i, m in enumerate([0.5, 0.9])],
    "sparsity-kl": [Member(MLP((30,), "sigmoid"), Training(lr=0.3, max_epochs=2, sparsity="kl", sparsity_coef=c,
                                                           seed=11 + i)) for i, c in enumerate([0.05, 0.2])],
    "polyak-adaptive": [Member(MLP((24,)), Training(lr=0.1, polyak=True, adaptive_tau=0.05, max_epochs=3, seed=13))],
    "adam-significance": [Member(MLP((24,)), Training(lr=0.003, optimizer="adam", significance=0.1, max_epochs=3,
                                                      seed=17))],
    "adagrad-nesterov": [Member(MLP((24,)), Training(lr=0.05, optimizer="adagrad", max_epochs=2, seed=19)),
                         Member(MLP((24,)), Training(lr=0.05, momentum=0.9, momentum_form="nesterov",
                                                     max_epochs=2, seed=19))],
}


def regression_splits():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 6)).astype(np.float32)
    y = (X[:, :2] @ np.array([[1.0, -2.0], [0.5, 1.0]]) + 0.1 * rng.normal(size=(600, 2))).astype(np.float32)
    return prepare(from_arrays(X, y, task="regression"), seed=0)


def results():
    digits = prepare(load("digits"), preprocess=["standardize"], seed=0)
    out = {name: fit(digits, members) for name, members in CASES.items()}
    out["regression"] = fit(regression_splits(), [Member(MLP((16,)), Training(lr=0.02, max_epochs=3, seed=23))])
    return out


def summary(result) -> dict:
    return {"stopped_because": result.stopped_because, "examples_seen": result.examples_seen,
            "examples_seen_at_best": result.examples_seen_at_best, "best_valid_error": result.best_valid_error,
            "curve": [[r["examples_seen"], r["train_loss"], r["valid_loss"], r["valid_error"]] for r in result.curve],
            "params": {k: [float(v.double().sum()), float(v.double().abs().sum())] for k, v in result.params.items()}}


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps({name: [summary(r) for r in rs] for name, rs in results().items()}, indent=1))
    print(f"wrote {FIXTURE}", file=sys.stderr)
