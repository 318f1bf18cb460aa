"""Cross-validation folds (data.folds): the split, members of every fold in one population, and
K-fold trials in tune."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from purelearn import Member, Training, fit, tune
from purelearn.config import Config
from purelearn.data import load, prepare
from purelearn.data.splits import fold_of, split_indices
from purelearn.errors import ConfigError
from purelearn.execute.objective import apply_params
from purelearn.nn import MLP, RBM, AutoEncoder


@pytest.fixture(scope="module")
def digits_data():
    return load("digits")


def test_folds_are_equal_stratified_and_leave_at_most_k_minus_1_over(digits_data):
    y = digits_data.y[:1001]
    where = fold_of(y, 4, seed=3, stratify=True)
    sizes = np.bincount(where[where >= 0])
    assert list(sizes) == [250] * 4 and (where == -1).sum() == 1
    for c in np.unique(y):
        per_fold = [(y[where == k] == c).sum() for k in range(4)]
        assert max(per_fold) - min(per_fold) <= 1            # dealt in turn within each class
    assert not np.array_equal(where, fold_of(y, 4, seed=4, stratify=True))


def test_the_folds_partition_what_the_test_split_leaves(digits_data):
    y = digits_data.y
    plain = split_indices(y, (0.2, 0.2), 0, stratify=True)
    parts = [split_indices(y, (0.2, 0.2), 0, stratify=True, folds=3, fold=k) for k in range(3)]
    for train, valid, test in parts:
        np.testing.assert_array_equal(test, plain[2])          # the test split does not move
        assert not set(train) & set(valid)
        assert set(train) | set(valid) == set(plain[0]) | set(plain[1])
    valids = [set(v) for _, v, _ in parts]
    assert not (valids[0] & valids[1]) and not (valids[1] & valids[2])
    assert len(set().union(*valids)) >= len(plain[0]) + len(plain[1]) - 2


@pytest.mark.parametrize("model", [MLP(hidden=(16,)), AutoEncoder(hidden=12, corruption="masking", corruption_level=0.2),
                                   RBM(hidden=12)], ids=["mlp", "dae", "rbm"])
def test_members_of_every_fold_train_together_as_they_would_alone(digits_data, model):
    steps = ["scale"] if model.family != "mlp" else ["standardize"]
    S = [prepare(digits_data, folds=3, fold=k, test=0.2, preprocess=steps) for k in range(3)]
    member = lambda k: Member(model, Training(lr=0.05, max_epochs=2, seed=10 + k), fold=k)  # noqa: E731
    together = fit(S, [member(k) for k in (2, 0, 1)])
    for k, t in zip((2, 0, 1), together):
        alone = fit(S[k], replace(member(k), fold=0))
        assert t.best_valid_error == pytest.approx(alone.best_valid_error, abs=1e-6)
        assert t.examples_seen == alone.examples_seen
        for name in alone.params:
            torch.testing.assert_close(t.params[name], alone.params[name], atol=1e-4, rtol=1e-4)
        assert t.preprocessing is S[k].steps


def test_a_member_of_a_fold_the_data_lacks_is_refused(digits):
    with pytest.raises(ValueError, match="fold 1"):
        fit(digits, Member(MLP(hidden=(8,)), Training(max_epochs=1), fold=1))


def test_a_k_fold_trial_is_the_mean_of_its_folds_trained_alone():
    config = Config().with_values({"data.name": "digits", "data.preprocess": ["standardize"], "data.folds": 3,
                                   "model.hidden": [16], "train.max_epochs": 3})
    study = tune(config, {"train.lr": "loguniform(0.01, 0.5)"}, trials=3, workers=1, population=3)
    splits = [replace(config.data, fold=k).splits() for k in range(3)]
    for trial in study.trials:
        cfg = apply_params(config, trial.params, trial.seed)
        alone = [fit(splits[k], cfg.member()) for k in range(3)]
        assert trial.value == pytest.approx(np.mean([r.best_valid_error for r in alone]), abs=1e-6)
        assert all(row["folds"] == 3 and isinstance(row["examples_seen"], int) for row in trial.curve)
        assert len(trial.curve) == min(len(r.curve) for r in alone)
        first = trial.curve[0]
        assert first["valid_error"] == pytest.approx(np.mean([r.curve[0]["valid_error"] for r in alone]), abs=1e-6)


@pytest.mark.parametrize("values, says", [({"data.folds": 1}, "data.folds = 1"),
                                          ({"data.folds": 3, "data.fold": 3}, "data.fold = 3")])
def test_bad_folds_are_named(values, says):
    with pytest.raises(ConfigError, match=says):
        Config().with_values(values).data.splits()


@pytest.mark.parametrize("values, says", [({"train.monitor": 500}, "train.monitor"),
                                          ({"pretrain.levels": 1}, "pre-trained stack")])
def test_folds_refuse_what_watches_or_stacks_one_network(values, says):
    config = Config().with_values({"data.name": "digits", "data.folds": 2, "train.max_epochs": 1, **values})
    study = tune(config, {"train.lr": "loguniform(0.01, 0.5)"}, trials=1, workers=1, population=1)
    assert study.trials[0].status == "failed" and says in study.trials[0].error
