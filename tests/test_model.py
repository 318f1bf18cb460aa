"""The model a study keeps is its best trial's, and it predicts on data as loaded."""

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import purelearn as pl
from purelearn.data import load, prepare
from purelearn.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import objectives  # noqa: E402

SPACE = pl.Space(x=pl.Uniform(0, 1))


def test_a_tied_best_keeps_the_lowest_numbered_trials_model_even_when_it_finishes_last(tmp_path):
    """Two workers: trial 1 reaches 0.2 first, trial 0 ties it a second later. The best trial is
    0 (lowest value, then lowest number), and the model kept is trial 0's own."""
    study = pl.tune(objectives.tied(), SPACE, trials=3, store=tmp_path / "s.db", study="tie", workers=2)
    assert [t.status for t in study.trials] == ["complete"] * 3
    assert study.trials[0].ended > study.trials[1].ended
    assert study.best.number == 0
    assert float(study.best_model().params["b0"][0, 0]) == 0
    assert Store(tmp_path / "s.db").best_model(study.record)[0] == 0


def test_predictions_apply_the_fitted_preprocessing_to_raw_inputs(tmp_path):
    data = load("digits")
    splits = prepare(data, preprocess=["standardize", "pca(20)"], seed=0)
    r = pl.fit(splits, pl.Member(pl.MLP(hidden=(16,)), pl.Training(lr=0.1, max_epochs=2)))
    X_raw, y = splits.read_test()
    assert X_raw.shape[1] == 64 and X_raw.max() > 1                # as loaded: pixels 0..16
    by_hand = splits.preprocess(X_raw)                             # the steps fitted on train
    z = torch.tanh(torch.as_tensor(by_hand) @ r.params["W0"].T + r.params["b0"]) @ r.params["W1"].T + r.params["b1"]
    assert np.array_equal(r.predict(X_raw), z.argmax(1).numpy())
    assert (r.predict(X_raw) == y).mean() > 0.8
    r.model.save(tmp_path / "m.pt")
    again = pl.Model.load(tmp_path / "m.pt")
    assert np.array_equal(again.predict(X_raw), r.predict(X_raw))
    with pytest.raises(pl.DataError, match="64 features"):
        again.predict(X_raw[:, :10])
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(pl.PurelearnError, match="not a purelearn model"):
        pl.Model.load(tmp_path / "junk.pt")


def test_class_labels_come_back_as_loaded(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    labels = np.where(X[:, 0] > 0, 1_000_000_000, -7)           # two classes, not a billion outputs
    np.savez(tmp_path / "d.npz", X=X, y=labels)
    splits = prepare(load(str(tmp_path / "d.npz")), seed=0)
    assert splits.n_outputs == 2 and splits.classes == (-7, 1_000_000_000)
    r = pl.fit(splits, pl.Member(pl.MLP(hidden=(8,)), pl.Training(lr=0.1, max_epochs=5)))
    X_test, y_test = splits.read_test()
    assert set(np.unique(y_test)) == {-7, 1_000_000_000}
    assert set(np.unique(r.predict(X_test))) <= {-7, 1_000_000_000} and (r.predict(X_test) == y_test).mean() > 0.9


def test_the_studys_model_predicts_raw_data_and_scores_the_test_split(tmp_path):
    cfg = pl.config.load_config(None, ["data.preprocess=['scale']", "model.hidden=[16]", "train.max_epochs=2"])
    study = pl.tune(cfg, {"train.lr": "loguniform(1e-2, 1)"}, trials=4, store=tmp_path / "t.db", study="t")
    model = study.best_model()
    splits = cfg.data.splits()
    X, y = splits.read_test()
    assert model.error(X, y) == pytest.approx(float((model.predict(X) != y).mean()))
    assert study.evaluate_test() == pytest.approx(model.error(X, y))
    wrong = float((model.predict(splits.preprocess(X)) != y).mean())   # inputs scaled twice: a different answer
    assert wrong != pytest.approx(model.error(X, y))


def test_the_store_keeps_the_models_of_the_k_best_trials(tmp_path):
    cfg = pl.config.load_config(None, ["model.hidden=[8]", "train.max_epochs=1"])
    space = {"train.lr": "loguniform(1e-3, 1)"}
    db = tmp_path / "k.db"
    study = pl.tune(cfg, space, trials=6, store=db, study="k", keep_models=2, workers=1)
    ranked = sorted(study.trials, key=lambda t: t.rank)
    kept = study.models()
    assert list(kept) == [t.number for t in ranked[:2]]                  # the two best, best first
    X, y = cfg.data.splits().read_test()
    for number, model in kept.items():                                   # each is that trial's own model
        trial = next(t for t in study.trials if t.number == number)
        assert model.spec.hidden == (8,) and trial.value == min(c["valid_error"] for c in trial.curve)
    assert study.best_model().to_bytes() == kept[ranked[0].number].to_bytes()
    every = pl.tune(cfg, space, trials=4, store=db, study="all", keep_models=0, workers=1)
    assert sorted(every.models()) == [0, 1, 2, 3]
    with pytest.raises(pl.ConfigError, match="keep_models"):
        pl.tune(cfg, space, trials=1, store=db, study="bad", keep_models=-1)


def test_a_schema_2_store_keeps_its_best_model_when_upgraded(tmp_path):
    db = tmp_path / "old.db"
    study = pl.tune(objectives.tied(), SPACE, trials=3, store=db, study="o")
    best = study.store.best_model(study.record)
    with sqlite3.connect(db) as c:                 # as schema 2 had it: one model per study
        c.execute("ALTER TABLE models RENAME TO m3")
        c.execute("CREATE TABLE models (study_id INTEGER PRIMARY KEY, trial_number INTEGER NOT NULL, "
                  "data BLOB NOT NULL)")
        c.execute("INSERT INTO models SELECT study_id, trial_number, data FROM m3 LIMIT 1")
        c.execute("DROP TABLE m3")
        c.execute("UPDATE purelearn_info SET value = '2' WHERE key = 'schema_version'")
    reopened = Store(db)
    assert reopened.best_model(reopened.study("o")) == best
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT value FROM purelearn_info WHERE key = 'schema_version'").fetchone() == ("4",)
