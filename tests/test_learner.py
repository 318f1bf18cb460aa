"""HyperLearner: the pure learning algorithm of §3 as a scikit-learn estimator."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from purelearn import HyperLearner, Member, Training, fit
from purelearn.config import Config
from purelearn.evaluate import examples_at_best
from purelearn.nn import MLP

SMALL = {"data": {"preprocess": ["standardize"]}, "train": {"max_epochs": 20, "patience": 2000}}


def small(**kw):
    return HyperLearner(SMALL, trials=kw.pop("trials", 2), population=kw.pop("population", 2),
                        random_state=kw.pop("random_state", 0), **kw)


@parametrize_with_checks([small(), small(task="regression")])
def test_scikit_learn_checks(estimator, check):
    # Every check of scikit-learn passes: none is listed as an expected failure.
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def test_fit_selects_on_validation_and_refits_for_the_examples_at_best(iris):
    X, y = iris
    learner = small(trials=4, refit="retrain").fit(X, y)
    best = learner.study_.best
    assert learner.best_params_ == best.params and learner.best_valid_error_ == best.value
    assert len(learner.study_.finished()) == 4
    at = examples_at_best(best)
    row = next(r for r in best.curve if r["examples_seen"] == at)
    assert row["valid_error"] == best.value and all(r["valid_error"] >= best.value for r in best.curve)
    # the refit saw every example and stopped at the first update reaching that count
    batch = learner.study_.best_config().train.batch_size
    assert at <= learner.refit_examples_ < at + batch
    assert learner.score(X, y) > 0.9
    assert learner.predict_proba(X).shape == (150, 3)
    np.testing.assert_allclose(learner.predict_proba(X).sum(1), 1)


def test_refit_best_trial_keeps_the_selected_network(iris):
    X, y = iris
    kept = small(trials=3).fit(X, y)                             # the default
    assert kept.refit_examples_ is None
    np.testing.assert_array_equal(kept.predict(X), kept.study_.best_model().predict(X))
    retrained = small(trials=3, refit="retrain").fit(X, y)
    assert retrained.best_params_ == kept.best_params_           # same search, another refit
    assert not np.allclose(retrained.predict_proba(X), kept.predict_proba(X))


def test_the_retrained_network_is_the_best_configuration_on_every_example(iris):
    # Independently: train the selected config on all of (X, y) for the same examples.
    X, y = iris
    learner = small(trials=2, refit="retrain").fit(X, y)
    config = learner.study_.best_config()
    model = learner.model_
    assert model.spec.hidden == config.member().model.hidden
    mean, std = X.mean(0), X.std(0)
    np.testing.assert_allclose(model.preprocessing[0].state["mean"].ravel(), mean, rtol=1e-5)
    assert np.allclose(model.preprocessing[0].state["std"].ravel(), std, rtol=1e-4)


def test_max_examples_stops_a_member_at_the_first_update_reaching_it(digits):
    budget = Training(lr=0.1, max_examples=1000, valid_every=1000, patience=10 ** 6, seed=3)
    alone = fit(digits, Member(MLP(hidden=(16,)), budget))
    assert alone.stopped_because == "budget"
    assert alone.examples_seen == 1024 == alone.curve[-1]["examples_seen"]     # 32 updates of 32
    assert len(alone.curve) == 1
    other = Member(MLP(hidden=(16,)), Training(lr=0.1, max_epochs=2, valid_every=1000, seed=4))
    together = fit(digits, [Member(MLP(hidden=(16,)), budget), other], max_population=2)
    assert together[0].examples_seen == 1024 and together[1].stopped_because == "budget"
    assert together[1].examples_seen == 2 * len(digits.X_train)                  # the other went on
    for k in alone.params:
        torch.testing.assert_close(together[0].params[k], alone.params[k])


def test_cross_val_score_pipeline_and_grid_search(iris):
    X, y = iris
    assert is_classifier(small()) and is_regressor(small(task="regression"))
    scores = cross_val_score(small(), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    pipe = make_pipeline(MinMaxScaler(), small())
    assert pipe.fit(X, y).score(X, y) > 0.8
    grid = GridSearchCV(small(), {"validation_fraction": [0.2, 0.3]}, cv=2).fit(X, y)
    assert grid.best_params_["validation_fraction"] in (0.2, 0.3)


def test_string_labels_and_regression_outputs():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y]
    learner = small().fit(X, names)
    assert set(learner.predict(X)) <= set(names) and list(learner.classes_) == sorted(set(names))
    reg = small(task="regression").fit(X, np.stack([y, -y], 1).astype(float))
    assert reg.predict(X).shape == (300, 2) and reg.predict(X).dtype == np.float64


def test_pickled_learner_keeps_its_study(iris):
    X, y = iris
    learner = small(trials=3).fit(X, y)
    back = pickle.loads(pickle.dumps(learner))
    assert [t.value for t in back.study_.trials] == [t.value for t in learner.study_.trials]
    np.testing.assert_array_equal(back.predict_proba(X), learner.predict_proba(X))
    assert back.study_.best_model().n_inputs == 4          # the kept models came along


def test_a_store_resumes_and_extends_the_same_fit(iris, tmp_path, monkeypatch):
    monkeypatch.setenv("PURELEARN_CACHE", str(tmp_path / "cache"))
    X, y = iris
    store = str(tmp_path / "fits.db")
    first = small(trials=2, store=store).fit(X, y)
    again = small(trials=2, store=store).fit(X, y)
    assert again.study_.name == first.study_.name
    assert [t.ended for t in again.study_.trials] == [t.ended for t in first.study_.trials]   # nothing re-run
    more = small(trials=3, store=store).fit(X, y)
    assert len(more.study_.trials) == 3 and more.study_.name == first.study_.name
    other = small(trials=2, store=store, random_state=1).fit(X, y)
    assert other.study_.name != first.study_.name                   # another split: another study
    assert len(list((tmp_path / "cache" / "arrays").iterdir())) == 1


def test_no_data_file_is_left_behind_without_a_store(iris, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    small().fit(*iris)
    assert list(tmp_path.iterdir()) == []


def test_verbose_reports_progress(iris, capsys):
    small(trials=3, verbose=2, refit="retrain").fit(*iris)
    err = capsys.readouterr().err
    assert "searching 3 trials" in err and err.count("trial ") >= 3 and "refitted on all 150 examples" in err
    small(trials=3, verbose=1).fit(*iris)
    assert "kept the best trial's network" in capsys.readouterr().err
    small(trials=3).fit(*iris)
    assert capsys.readouterr().err == ""


def test_settings_from_a_file_a_dict_or_a_config(iris, tmp_path):
    X, y = iris
    path = tmp_path / "search.toml"
    path.write_text('[train]\nmax_epochs = 5\n[search]\ntrials = 3\nstrategy = "grid"\nk = 3\n'
                    '[search.space]\n"train.lr" = "loguniform(0.01, 1)"\n')
    from_file = HyperLearner(str(path), population=3, random_state=0).fit(X, y)
    assert from_file.study_.record.strategy == "grid" and len(from_file.study_.trials) == 3
    assert sorted(t.params["train.lr"] for t in from_file.study_.trials) == pytest.approx([0.01, 0.1, 1.0])
    from_config = HyperLearner(Config().with_values({"train.max_epochs": 3}), trials=2, random_state=0,
                               space={"train.lr": "loguniform(0.01, 0.1)"}).fit(X, y)
    assert set(from_config.best_params_) == {"train.lr"}
    assert from_config.study_.best_config().train.max_epochs == 3


@pytest.mark.parametrize("kw, says", [({"refit": "last"}, "refit"), ({"task": "ranking"}, "task"),
                                      ({"n_jobs": 0}, "n_jobs"), ({"validation_fraction": 1.5}, "validation_fraction"),
                                      ({"config": 3}, "config = 3")])
def test_bad_settings_are_named_in_fit(iris, kw, says):
    learner = HyperLearner(**kw)
    assert clone(learner).get_params()[next(iter(kw))] == next(iter(kw.values()))    # stored as given
    with pytest.raises(ValueError, match=says):
        learner.fit(*iris)


def test_n_jobs_runs_worker_processes(iris):
    learner = small(trials=4, n_jobs=2).fit(*iris)
    workers = {t.worker for t in learner.study_.trials}
    assert len(workers) == 2 and all("pid" in w for w in workers)
