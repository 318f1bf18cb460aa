"""A space or strategy option that can't work is refused before any trial runs or anything is
stored, by the space's structure (every choice, both ends of every interval), not by sampling."""

from pathlib import Path

import pytest

import purelearn as pl
from purelearn.config import load_config, load_search
from purelearn.errors import ConfigError
from purelearn.search import check_space, parse_space
from purelearn.store import Store

ROOT = Path(__file__).resolve().parents[1]
LR = {"train.lr": "loguniform(1e-2, 1)"}

BAD = [  # (space, strategy, options, what the message must say)
    ({"train.lr": "fixed(-1)"}, "random", {}, r"'train.lr' = fixed\(-1\) can take -1 .*finite number > 0"),
    ({"train.lr": -1}, "random", {}, r"'train.lr' = fixed\(-1\) can take -1 .*finite number > 0"),
    ({"model.activation": 'choice("tanh", "sigmoidd")'}, "random", {},
     r"'model.activation' .* can take 'sigmoidd' .*Did you mean 'sigmoid'.*Allowed: .*rectifier"),
    ({"train.lr": "uniform(0, inf)"}, "random", {}, r"'train.lr'.*both ends must be finite"),
    ({"model.units": "intuniform(1.5, 3)"}, "random", {}, r"'model.units'.*whole numbers, e.g. intuniform\(2, 3\)"),
    ({"train.lr": "loguniform(-1, 1)"}, "random", {}, r"'train.lr'.*must stay above 0"),
    ({"model.units": "intloguniform(0, 64)"}, "random", {}, r"'model.units'.*must stay above 0"),
    ({"train.l2": "uniform(0.1, 0.1)"}, "random", {}, r"'train.l2'.*empty or inverted; need low < high"),
    ({"train.lr": "loguniform(1, 0.1)"}, "random", {}, r"'train.lr'.*need low < high"),
    ({"train.momentum": "uniform(0.5, 1, hard=[0, 1])"}, "random", {},
     r"'train.momentum' .* can take 1.0 \(its high end\).*in \[0, 1\)"),
    ({"train.batch_size": "intloguniform(16, 100000)"}, "random", {},
     r"'train.batch_size' .* can take 100000 \(its high end\).*from 1 to the training-set size"),
    ({"train.batch_size": "uniform(16, 128)"}, "random", {},
     r"'train.batch_size' .* can take 70.88 \(a value inside the interval\).*whole number"),
    ({"train.optimizer": 'choice("sgd", "adamm")'}, "random", {}, r"'train.optimizer' .* 'adamm'.*Allowed: adagrad, adam, sgd"),
    ({"model.layers": "intuniform(1, 2)", "model.units_2": "choice(16, -4) if model.layers >= 2"}, "random", {},
     r"'model.units_2' = choice\(16, -4\) if model.layers >= 2 can take -4 .*whole number >= 1"),
    ({"train.lrr": "loguniform(1e-3, 1)"}, "random", {}, r"'train.lrr'.*Did you mean 'lr'"),
    ({"train.sparsity_target": "uniform(0.5, 1, hard=[0, 1])"}, "random", {},
     r"'train.sparsity_target' .* 1.0 \(its high end\).*in \(0, 1\)"),
    (LR, "coordinate", {"k": 1}, r"search.k = 1 can't work .*whole number >= 2"),
    (LR, "multires", {"keep": 0}, r"search.keep = 0 can't work .*whole number >= 1"),
    (LR, "multires", {"stage_size": 0}, r"search.stage_size = 0 can't work .*whole number >= 1"),
    (LR, "tpe", {"startup": -1}, r"search.startup = -1 can't work .*whole number >= 0"),
    (LR, "grid", {"k": 1}, r"search.k = 1 can't work .*whole number >= 2"),
    (LR, "grid", {"k": 3, "rounds": 0}, r"search.rounds = 0 can't work .*whole number >= 1"),
    (LR, "random", {"k": 3}, r"search.k is not an option of the random strategy"),
]


@pytest.fixture(scope="module")
def digits_config():
    return load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=1"])


@pytest.mark.parametrize("space, strategy, options, message", BAD, ids=[m[:40] for *_, m in BAD])
def test_a_space_or_option_that_cant_work_is_refused_before_anything_is_stored(
        tmp_path, digits_config, space, strategy, options, message):
    db = tmp_path / "s.db"
    with pytest.raises(ConfigError, match=message):
        pl.tune(digits_config, space, strategy=strategy, options=options, trials=1, store=db, study="s")
    assert not db.exists() or Store(db).study_names() == []


def test_a_knob_is_checked_only_where_its_condition_can_hold(digits_config):
    knob = {"model.units_2": "choice(16, -4) if model.layers >= 2"}
    check_space(parse_space({"model.layers": 1} | knob), digits_config)          # never exists: never set
    with pytest.raises(ConfigError, match="can take -4"):
        check_space(parse_space({"model.layers": "intuniform(1, 3)"} | knob), digits_config)
    deep = {"model.layers": "intuniform(1, 3)", "model.units_3": "choice(8, 0) if model.layers > 2"}
    with pytest.raises(ConfigError, match=r"'model.units_3' .* can take 0"):   # layers = 3 has to be found
        check_space(parse_space(deep), digits_config)


def test_every_bad_knob_is_named_and_good_values_beside_bad_ones_are_not(digits_config):
    space = parse_space({"model.activation": 'choice("sigmoidd", "tanh")', "train.lr": "fixed(-1)",
                         "train.l2": "loguniform(1e-6, 1e-1)"})
    with pytest.raises(ConfigError) as refused:
        check_space(space, digits_config)
    lines = str(refused.value).splitlines()
    assert len(lines) == 2 and "'sigmoidd'" in lines[0] and "'train.lr'" in lines[1]


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.toml")
                                           if "[search" in p.read_text()))
def test_the_example_searches_pass_the_checks(example):
    config, spec, table = load_search(ROOT / "examples" / example)
    space = parse_space(table)
    options = spec.options()
    if spec.strategy == "layerwise":             # its knobs as the trials set them, level by level
        from purelearn.search.layerwise import concrete_space

        options["levels"] = config.pretrain.levels
        check_space(concrete_space(space, config.pretrain.levels), config)
    else:
        check_space(space, config)
    pl.search.make_strategy(spec.strategy, space, spec.seed, **options)
