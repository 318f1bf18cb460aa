"""Greedy layer-wise pre-training, the probe and fine-tuning (§1.1), and data.labeled."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from purelearn.cli import main
from purelearn.config import Config, flatten, load_config, to_toml
from purelearn.data import load, prepare
from purelearn.errors import ConfigError
from purelearn.nn import MLP, AutoEncoder, family_of
from purelearn.train import Member, Training, fit
from purelearn.train.stack import Stack, encoded, finetuned, load_model, probe, train_stack

QUICK = ["data.preprocess=['scale']", "pretrain.levels=2", "pretrain.hidden=16", "pretrain.lr=0.1",
         "pretrain.max_epochs=2", "train.max_epochs=3", "train.lr=0.1"]


@pytest.fixture(scope="module")
def scaled():
    return prepare(load("digits"), preprocess=["scale"], seed=0, labeled=200)


def test_labeled_keeps_that_many_labels_per_class_and_the_rest_as_unlabeled_inputs():
    full = prepare(load("digits"), preprocess=["scale"], seed=0)
    part = prepare(load("digits"), preprocess=["scale"], seed=0, labeled=200)
    assert len(part.X_train) == 200 and len(part.X_train) + len(part.X_unlabeled) == len(full.X_train)
    share = 200 * np.bincount(full.y_train) / len(full.y_train)
    assert np.abs(np.bincount(part.y_train) - share).max() < 1   # stratified: each class its share
    # the same training inputs, split into labeled and unlabeled, in no other way changed
    rows = lambda X: {r.tobytes() for r in X}                    # noqa: E731
    assert rows(part.inputs()) == rows(full.X_train) and not rows(part.X_train) & rows(part.X_unlabeled)
    assert np.array_equal(part.X_valid, full.X_valid)
    assert len(prepare(load("digits"), seed=0, labeled=0.25).X_train) == round(0.25 * len(full.X_train))


@pytest.mark.parametrize("bad", [-1, 1.5, 100000])
def test_a_labeled_count_out_of_range_is_refused(bad):
    with pytest.raises(ConfigError, match="data.labeled"):
        prepare(load("digits"), seed=0, labeled=bad)


def test_a_family_that_learns_its_inputs_trains_on_the_unlabeled_ones_too(scaled):
    member = Member(AutoEncoder(hidden=8), Training(lr=0.1, max_epochs=1))
    assert fit(scaled, member).examples_seen == len(scaled.inputs())
    supervised = Member(MLP(hidden=(8,)), Training(lr=0.1, max_epochs=1))
    assert fit(scaled, supervised).examples_seen == len(scaled.X_train) == 200


def test_pretraining_config_reads_shared_and_per_level_keys_and_round_trips(tmp_path):
    c = load_config(None, [*QUICK, "level2.corruption_level=0.3", "level2.hidden=12", "level1.family=rbm"])
    one, two = c.levels()
    assert one.model.family == "rbm" and one.model.hidden == 16 and one.train.lr == 0.1
    assert two.model == AutoEncoder(hidden=12, corruption_level=0.3) and two.train.max_epochs == 2
    assert c.member().model.hidden == (16, 12) and c.member().model.activation == "sigmoid"
    path = tmp_path / "c.toml"
    path.write_text(to_toml(c))
    again = load_config(path)
    assert again.levels() == c.levels() and again.member() == c.member()
    assert Config().with_values(flatten(c.to_dict())).to_dict() == c.to_dict()
    assert Config().to_dict() == Config().with_values({}).to_dict() and "pretrain" not in Config().to_dict()


@pytest.mark.parametrize("extra, message", [
    (["level3.hidden=4"], r"\[level3\] is set but pretrain.levels = 2"),
    (["pretrain.corruption=1"], "expected a string"),
    (["level2.lr=fast"], "level2.lr = 'fast': expected a number"),
    (["level1.family=mlp"], "family of pre-training level 1.*Allowed: autoencoder, rbm"),
    (["level2.k=1"], "key of pre-training level 2 .of the autoencoder family. 'k'"),
    (["model.hidden=[5]"], "leave model.hidden out"),
    (["pretrain.levels=-1"], "pretrain.levels = -1 must be >= 0"),
    (["level2.family=rbm", "pretrain.activation=tanh"], "key of pre-training level 2 .of the rbm family. 'activation'"),
    (["level1.activation=tanh"], "different activations"),
])
def test_bad_pretraining_keys_are_named(extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*QUICK, *extra]).member()


def test_pretraining_off_leaves_level_tables_unused():
    c = load_config(None, [*QUICK, "level2.hidden=12", "pretrain.levels=0", "model.hidden=[7]"])
    assert c.member().model.hidden == (7,) and c.levels() == []


def test_each_level_trains_on_the_code_of_the_one_below_and_the_network_starts_from_their_encoders(scaled):
    c = load_config(None, [*QUICK, "level2.hidden=12"])
    result = train_stack(scaled, c.levels(), c.member())
    one, two = result.stack.levels
    # level 2's result is what training it alone on level 1's code (computed by hand) gives
    W, b = one.params["W0"], one.params["b0"]
    code = lambda X: torch.sigmoid(torch.as_tensor(X) @ W.T + b).numpy()         # noqa: E731
    by_hand = replace(scaled, X_train=code(scaled.X_train), X_valid=code(scaled.X_valid),
                      X_unlabeled=code(scaled.X_unlabeled), steps=[])
    alone = fit(by_hand, c.levels()[1])
    assert alone.best_valid_error == pytest.approx(result.levels[1].result.best_valid_error, rel=1e-5)
    assert torch.allclose(alone.params["W0"], two.params["W0"], atol=1e-5)
    # the fine-tuned network's hidden layers start as the encoders: its top layer is the stack's code
    member = finetuned(result.stack, c.member(), scaled)
    X = scaled.X_valid
    top = family_of(member.model).encode(member.model, member.start, torch.as_tensor(X)).numpy()
    assert np.allclose(top, code2(two, code(X)), atol=1e-5)
    assert np.allclose(encoded(scaled, result.stack.levels).X_valid, code2(two, code(X)), atol=1e-5)
    raw = load("digits").X[:5]
    assert np.allclose(result.stack.encode(raw), code2(two, code(scaled.preprocess(raw))), atol=1e-5)
    assert result.finetune.member.model.hidden == (16, 12)
    assert [lv.number for lv in result.levels] == [1, 2] and all(lv.probe_error < 0.5 for lv in result.levels)


def code2(level, h):
    return torch.sigmoid(torch.as_tensor(h) @ level.params["W0"].T + level.params["b0"]).numpy()


def test_the_probe_reads_a_code_that_holds_the_label_and_not_one_of_noise(scaled, rng):
    onehot = lambda y: np.eye(10, dtype=np.float32)[y]                            # noqa: E731
    perfect = replace(scaled, X_train=onehot(scaled.y_train), X_valid=onehot(scaled.y_valid))
    assert probe(perfect) == 0.0
    noise = replace(scaled, X_train=rng.random((200, 16), np.float32),
                    X_valid=rng.random((len(scaled.y_valid), 16), np.float32))
    assert probe(noise) > 0.7


def test_a_stack_is_stored_and_read_back_whole(scaled):
    c = load_config(None, QUICK)
    stack = train_stack(scaled, c.levels(), c.member()).stack
    back = load_model(stack.to_bytes())
    assert isinstance(back, Stack) and back.widths == (16, 16)
    X = load("digits").X[:7]
    assert np.array_equal(back.encode(X), stack.encode(X))


def test_train_reports_each_level_and_the_fine_tuning_as_json(capsys, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[data]\nname = "digits"\nlabeled = 300\n')
    assert main(["train", str(cfg), "--json", *sum((["--set", q] for q in QUICK), [])]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [lv["level"] for lv in out["levels"]] == [1, 2]
    assert {"criterion", "probe_error", "examples_seen", "seconds"} <= set(out["levels"][0])
    assert out["finetune"]["examples_seen"] == 3 * 300
    assert "level 2/2: a 16-16 autoencoder" in captured.err and "fine-tuning the 64-16-16-10 network" in captured.err


def test_a_random_search_over_a_stack_trains_each_trial_whole(tmp_path):
    from purelearn.execute import tune

    config = load_config(None, [*QUICK, "data.labeled=300"])
    study = tune(config, {"pretrain.corruption_level": "uniform(0, 0.5)", "level2.hidden": "choice(8, 12)"},
                 trials=3, study="s", workers=1)
    assert [t.status for t in study.trials] == ["complete"] * 3
    best = study.best
    model = study.best_model()
    assert model.spec.hidden == (16, best.params["level2.hidden"])
    # the same configuration trained by hand gives the trial's value
    cfg = study.best_config()
    splits = cfg.data.splits()
    again = train_stack(splits, cfg.levels(), cfg.member())
    assert again.finetune.best_valid_error == pytest.approx(best.value)


def test_the_probe_of_values_is_ridge_regression_and_of_one_class_the_error_of_guessing_it(scaled, rng):
    X = rng.normal(size=(200, 5)).astype(np.float32)
    Xv = rng.normal(size=(80, 5)).astype(np.float32)
    w = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    y, yv = X @ w + 0.1 * rng.normal(size=200), Xv @ w + 0.1 * rng.normal(size=80)
    values = replace(scaled, X_train=X, y_train=y, X_valid=Xv, y_valid=yv, task="regression")
    # ridge (penalty 1, intercept not penalized) in closed form
    mx, my = X.mean(0), y.mean()
    coef = np.linalg.solve((X - mx).T @ (X - mx) + np.eye(5), (X - mx).T @ (y - my))
    expected = np.mean(((Xv - mx) @ coef + my - yv) ** 2)
    assert probe(values) == pytest.approx(expected, rel=1e-4) and probe(values) < 0.05
    two = np.isin(scaled.y_train, [0, 1])
    twoclass = replace(scaled, X_train=scaled.y_train[two, None].astype(np.float32), y_train=scaled.y_train[two],
                       X_valid=scaled.y_valid[:, None].astype(np.float32), y_valid=scaled.y_valid)
    assert probe(replace(twoclass, X_valid=twoclass.X_valid[scaled.y_valid < 2],
                         y_valid=scaled.y_valid[scaled.y_valid < 2])) == 0.0   # a read-out, not a guess
    one_class = replace(scaled, y_train=np.full(200, 3))
    assert probe(one_class) == pytest.approx(np.mean(scaled.y_valid != 3))
    assert probe(replace(scaled, task="multilabel")) is None


def test_no_level_leaves_the_splits_as_they_are_and_an_empty_input_encodes_to_no_rows(scaled):
    assert encoded(scaled, []) is scaled
    c = load_config(None, [*QUICK, "level2.hidden=12"])
    stack = train_stack(scaled, c.levels(), c.member()).stack
    from purelearn.train.stack import encode_through

    assert encode_through(stack.levels, np.zeros((0, 64), np.float32)).shape == (0, 12)


def test_pretraining_probes_by_default_and_says_what_each_level_trains_on(scaled):
    import time

    from purelearn.train.stack import pretrain, train_level

    c = load_config(None, QUICK)
    lines = []
    start = time.perf_counter()
    stack, levels = pretrain(scaled, c.levels(), announce=lines.append)
    elapsed = time.perf_counter() - start
    assert all(lv.probe_error is not None for lv in levels)
    assert all(0 < lv.seconds <= elapsed for lv in levels) and sum(lv.seconds for lv in levels) <= elapsed
    assert lines[0] == f"level 1/2: a 64-16 autoencoder on {len(scaled.inputs()):,} inputs " \
                       f"({len(scaled.X_unlabeled):,} of them unlabeled)"
    assert "probe error" in lines[1] and lines[2].startswith("level 2/2: a 16-16 autoencoder")
    assert all(round(v, 3) == v for v in (levels[0].summary()["seconds"],))
    everything = prepare(load("digits"), preprocess=["scale"], seed=0)
    quiet = []
    pretrain(everything, c.levels()[:1], announce=quiet.append, probe_it=False)
    assert "unlabeled" not in quiet[0] and "probe" not in quiet[1]
    # a level given only the levels below it computes their code itself
    level, _, _ = train_level(scaled, stack.levels[:1], c.levels()[1])
    assert level.result.best_valid_error == pytest.approx(levels[1].result.best_valid_error, rel=1e-5)
    assert level.probe_error == levels[1].probe_error


def test_stored_models_are_read_as_what_they_are_and_nothing_else_is(scaled, tmp_path):
    from purelearn.errors import PurelearnError
    from purelearn.train.stack import FORMAT

    c = load_config(None, QUICK)
    result = train_stack(scaled, c.levels(), c.member())
    model_bytes = result.finetune.model.to_bytes()
    assert not isinstance(load_model(model_bytes), Stack)
    with pytest.raises(PurelearnError, match="not a purelearn model"):
        load_model(b"not a model")
    with pytest.raises(PurelearnError, match="not a purelearn stack"):
        Stack.from_bytes(model_bytes)
    import io
    from collections import OrderedDict as Payload        # a class: refused where tensors and plain values are read

    buf = io.BytesIO()
    torch.save({"format": FORMAT, "levels": [], "extra": Payload(), "fn": np.linalg.solve}, buf)
    with pytest.raises(PurelearnError, match="not a purelearn stack"):
        Stack.from_bytes(buf.getvalue())
    # reading a stored model never runs code from it
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "levels": [], "x": _Runs(str(marker))}, buf)
    with pytest.raises(PurelearnError):
        load_model(buf.getvalue())
    assert not marker.exists()


class _Runs:
    """Unpickled, it would make a folder: what a hostile file could do instead."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return os.makedirs, (self.path,)


def test_train_with_monitor_prints_and_reports_each_levels_statistics(capsys, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[data]\nname = "digits"\nlabeled = 300\n')
    quick = [*sum((["--set", q] for q in QUICK), []), "--monitor", "300"]
    assert main(["train", str(cfg), *quick]) == 0
    out = capsys.readouterr().out
    # a table after each level's line and after the fine-tuning's
    tables = out.split("layer statistics after")
    assert len(tables) == 4 and "level 1:" in tables[0] and "level 2:" in tables[1] and "fine-tuned:" in tables[2]
    assert main(["train", str(cfg), "--json", *quick]) == 0
    summary = json.loads(capsys.readouterr().out)
    for part in summary["levels"] + [summary["finetune"]]:
        assert part["statistics"]["examples_seen"][0] == 0 and len(part["statistics"]["examples_seen"]) > 1
