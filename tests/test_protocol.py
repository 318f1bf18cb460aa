"""§3's protocol: double cross-validation and the final runs with committees."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import StratifiedKFold

from purelearn import HyperLearner, Member, fit, tune
from purelearn.cli import main
from purelearn.config import Config
from purelearn.errors import ConfigError, TestSetError
from purelearn.evaluate import double_cross_validation, final_seeds, run_finals
from purelearn.evaluate.finals import _bootstraps
from purelearn.nn import family_of

SMALL = {"data": {"preprocess": ["standardize"]}, "train": {"max_epochs": 20, "patience": 2000}}


def small(**kw):
    return HyperLearner(SMALL, trials=2, population=2, random_state=0, **kw)


def test_double_cross_validation_reads_each_outer_fold_once_after_selection():
    X, y = load_iris(return_X_y=True)
    estimate = double_cross_validation(small(cv=2), X, y, outer=3, seed=1)
    assert [f.fold for f in estimate.folds] == [0, 1, 2] and estimate.inner_folds == 2
    # independently: the same outer folds, a clone fitted on each training part
    for fold, (train, test) in zip(estimate.folds, StratifiedKFold(3, shuffle=True, random_state=1).split(X, y)):
        learner = clone(small(cv=2)).fit(X[train], y[train])
        assert fold.examples == len(train) and fold.params == learner.best_params_
        assert fold.inner == pytest.approx(learner.best_valid_error_)
        assert fold.outer == pytest.approx(float((learner.predict(X[test]) != y[test]).mean()))
    outer = [f.outer for f in estimate.folds]
    assert estimate.outer == pytest.approx((np.mean(outer), np.std(outer, ddof=1)))
    assert estimate.optimism[0] == pytest.approx(estimate.outer[0] - estimate.inner[0])
    summary = estimate.to_dict()
    assert summary["nested"]["mean"] == estimate.outer[0] and len(summary["folds"]) == 3
    assert all(0 < f.seconds < 600 and f.trials == 2 for f in estimate.folds)
    text = estimate.lines()
    assert text[0] == "3 outer folds, selection by 2 inner folds" and len(text) == 2 + 3 + 3
    assert text[-3].startswith("nested estimate (outer folds):") and f"{estimate.outer[0]:.4f}" in text[-3]


def test_double_cross_validation_of_a_regression_scores_the_squared_error():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=120)
    estimate = double_cross_validation(small(task="regression"), X, y, outer=2)
    assert all(f.outer < np.var(y) for f in estimate.folds)         # better than the mean predictor


def test_outer_folds_are_checked():
    from purelearn.evaluate.nested import NestedEstimate, OuterFold, check_outer

    check_outer(5, 5)                                              # one example per fold is still folds
    one = NestedEstimate([OuterFold(0, 10, {}, 0.1, 0.2, 2, 1.0)])
    assert one.outer == (0.2, 0.0) and one.optimism == pytest.approx((0.1, 0.0))
    two = NestedEstimate([OuterFold(0, 10, {}, 0.1, 0.2, 2, 1.0), OuterFold(1, 10, {}, 0.1, 0.4, 2, 1.0)])
    assert two.outer == pytest.approx((0.3, 0.02 ** 0.5))          # sample std: ((0.1^2 + 0.1^2) / 1) ** 0.5
    assert "an inner validation split" in one.lines()[0]
    X, y = load_iris(return_X_y=True)
    for outer in (1, 0, 151, 2.5):
        with pytest.raises(ConfigError, match="outer"):
            double_cross_validation(small(), X, y, outer=outer)


@pytest.fixture(scope="module")
def study():
    config = Config().with_values({"data.name": "digits", "data.preprocess": ["standardize"], "model.hidden": [16],
                                   "train.max_epochs": 4})
    return tune(config, {"train.lr": "loguniform(0.02, 0.5)"}, trials=4, workers=1, population=4, seed=5)


def test_finals_train_the_best_configurations_with_new_seeds(study):
    finals = run_finals(study, top=2, seeds=3)
    best_two = sorted(study.finished(), key=lambda t: t.rank)[:2]
    assert [r.trial for r in finals.runs] == [t.number for t in best_two]
    seeds = final_seeds(5, 3)
    assert finals.runs[0].seeds == seeds and len(set(seeds)) == 3
    assert not set(seeds) & {t.seed for t in study.trials}
    # independently: one member alone with the best configuration and the first new seed
    config = study.best_config()
    splits = config.data.splits()
    alone = fit(splits, Member(config.member().model, replace(config.member().train, seed=seeds[0])))
    assert finals.runs[0].valid[0] == pytest.approx(alone.best_valid_error, abs=1e-6)
    assert finals.runs[0].searched == best_two[0].value
    text = "\n".join(finals.lines())
    assert "2 best configurations, 3 new seeds" in text and "committee of all 6 members" in text


def test_a_committee_averages_its_members_probabilities(study):
    finals = run_finals(study, top=1, seeds=3)
    config = study.best_config()
    splits = config.data.splits()
    members = [fit(splits, Member(config.member().model, replace(config.member().train, seed=s)))
               for s in finals.runs[0].seeds]
    # the split's inputs are already preprocessed: scored through the family, not Model.scores
    probs = torch.stack([torch.softmax(family_of(m.model.spec).predict(m.model.spec, m.params, splits.X_valid).double(), -1)
                         for m in members]).mean(0)
    expected = float((probs.argmax(-1).numpy() != splits.y_valid).mean())
    assert finals.runs[0].committee_valid == pytest.approx(expected)
    assert finals.committee_valid == pytest.approx(expected)          # one configuration: the same committee


def test_bagging_trains_each_member_on_its_own_bootstrap_sample(study):
    finals = run_finals(study, top=1, seeds=2, bagging=True)
    config = study.best_config()
    splits = config.data.splits()
    samples = _bootstraps(splits, finals.runs[0].seeds)
    assert len(samples[0].X_train) == len(splits.X_train)
    assert not np.array_equal(samples[0].y_train, samples[1].y_train)
    alone = fit(samples[1], Member(config.member().model, replace(config.member().train, seed=finals.runs[0].seeds[1])))
    assert finals.runs[0].valid[1] == pytest.approx(alone.best_valid_error, abs=1e-6)
    assert finals.bagging and "bagged committee" in finals.lines()[0]


def test_finals_read_the_test_split_once(tmp_path):
    config = Config().with_values({"data.name": "digits", "model.hidden": [8], "train.max_epochs": 2})
    study = tune(config, {"train.lr": "loguniform(0.02, 0.5)"}, trials=2, workers=1, store=str(tmp_path / "s.db"))
    finals = run_finals(study, top=1, seeds=2, evaluate_test=True)
    assert finals.committee_test is not None and len(finals.runs[0].test) == 2
    recorded = study.store.test_evaluations(study.record)
    assert [r["value"] for r in recorded] == [finals.runs[0].committee_test] and not recorded[0]["forced"]
    with pytest.raises(TestSetError):
        run_finals(study, top=1, seeds=2, evaluate_test=True)
    with pytest.raises(TestSetError):
        study.evaluate_test()
    run_finals(study, top=1, seeds=2, evaluate_test=True, force=True)
    assert [r["forced"] for r in study.store.test_evaluations(study.record)] == [False, True]


def test_cli_evaluate_and_finals(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PURELEARN_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "cv.toml"
    config.write_text('[data]\nname = "digits"\npreprocess = ["standardize"]\n[model]\nhidden = [16]\n'
                      '[train]\nmax_epochs = 2\n[search]\ntrials = 2\npopulation = "2"\n'
                      '[search.space]\n"train.lr" = "loguniform(0.05, 0.5)"\n')
    store = str(tmp_path / "cv.db")
    assert main(["evaluate", str(config), "--outer", "2", "--inner", "2", "--workers", "1", "--store", store,
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["folds"]) == 2 and out["inner_folds"] == 2 and {"nested", "non_nested", "optimism"} <= set(out)
    assert main(["evaluate", str(config), "--outer", "1", "--store", store]) == 2
    err = capsys.readouterr().err
    assert "outer folds >= 2" in err and "Traceback" not in err and "double cross-validation of" not in err
    assert main(["tune", str(config), "--store", store, "--study", "s", "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["finals", store, "--study", "s", "--top", "1", "--seeds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 1 and len(out["runs"][0]["valid"]) == 2
    assert main(["finals", store, "--study", "s", "--seeds", "0"]) == 2
    assert "seeds = 0" in capsys.readouterr().err


def test_final_seeds_lie_above_every_trial_seed_and_are_distinct():
    seeds = final_seeds(0, 500)
    assert all(2 ** 31 <= s < 2 ** 32 for s in seeds) and len(set(seeds)) == 500
    assert final_seeds(0, 500) == seeds and final_seeds(1, 5) != seeds[:5]


def test_the_finals_table_names_the_best_configuration_and_luck():
    from purelearn.evaluate.finals import FinalRun, Finals

    lucky = FinalRun(3, {"train.lr": 0.1}, 0.035, [1, 2, 3], [0.05, 0.06, 0.07], 0.04)    # mean 0.06, std 0.01
    steady = FinalRun(5, {"train.lr": 0.2}, 0.055, [1, 2, 3], [0.04, 0.055, 0.07], 0.03)   # the lowest mean
    edge = FinalRun(7, {"train.lr": 0.3}, 0.04, [1, 2, 3], [0.05, 0.06, 0.07], 0.05)       # exactly 2 std below
    text = Finals([lucky, steady, edge], False, 0.02).lines()
    assert "the best configuration's committee 0.0300" in text[-2] and "the best single member 0.0400" in text[-2]
    assert text[-1].startswith("trial(s) 3 searched more than two standard deviations below")
    assert "test (mean)" not in text[1]
    one = FinalRun(1, {}, 0.05, [1], [0.05], 0.05)
    assert Finals([one], False, 0.05).lines()[2].split()[2:5] == ["0.0500", "+-", "0.0000"]
    two = FinalRun(1, {}, 0.05, [1, 2], [0.04, 0.06], 0.05)
    assert Finals([two], False, 0.05).lines()[2].split()[2:5] == ["0.0500", "+-", "0.0141"]


def test_finals_default_to_three_configurations_of_ten_seeds_and_read_raw_test_inputs(tmp_path):
    config = Config().with_values({"data.name": "digits", "data.preprocess": ["standardize"], "model.hidden": [8],
                                   "train.max_epochs": 2})
    study = tune(config, {"train.lr": "loguniform(0.02, 0.5)"}, trials=4, workers=1, population=4)
    single = run_finals(study, top=1, seeds=1)
    assert len(single.runs) == 1 and len(single.runs[0].valid) == 1
    finals = run_finals(study, evaluate_test=True)
    assert len(finals.runs) == 3 and all(len(r.seeds) == 10 and len(r.test) == 10 for r in finals.runs)
    assert "test (mean)" in finals.lines()[1]
    # independently: the members retrained alone, scored on the raw test inputs through their preprocessing
    splits = config.data.splits()
    X, y = splits.read_test()
    run = finals.runs[0]
    cfg = study.best_config()
    assert run.trial == study.best.number
    for k, s in enumerate(run.seeds[:2]):
        alone = fit(splits, Member(cfg.member().model, replace(cfg.member().train, seed=s)))
        assert run.test[k] == pytest.approx(alone.model.error(X, y), abs=1e-9)


def test_a_regression_committee_is_scored_by_the_squared_error_of_the_mean(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    np.savez(tmp_path / "reg.npz", X=X, y=X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=300))
    config = Config().with_values({"data.name": str(tmp_path / "reg.npz"), "data.task": "regression",
                                   "data.preprocess": ["standardize"], "model.hidden": [8], "train.max_epochs": 3})
    study = tune(config, {"train.lr": "loguniform(0.005, 0.05)"}, trials=2, workers=1, population=2)
    finals = run_finals(study, top=1, seeds=3)
    splits, cfg = config.data.splits(), study.best_config()
    outputs = []
    for s in finals.runs[0].seeds:
        alone = fit(splits, Member(cfg.member().model, replace(cfg.member().train, seed=s)))
        outputs.append(family_of(alone.model.spec).predict(alone.model.spec, alone.model.params, splits.X_valid))
    mean = torch.stack(outputs).double().mean(0).numpy().reshape(-1)
    expected = float(np.mean((mean - np.asarray(splits.y_valid).reshape(-1)) ** 2))
    assert finals.runs[0].committee_valid == pytest.approx(expected, rel=1e-4)
