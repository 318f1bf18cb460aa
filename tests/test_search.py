import itertools
import math

import numpy as np
import pytest

import purelearn as pl
from purelearn.errors import ConfigError
from purelearn.search import (BorderRule, Choice, Expansion, IntLogUniform, IntUniform, LogUniform, Space, Uniform,
                              When, best_of_subsets, border_warnings, efficiency_curve, grid_points, make_strategy,
                              parse_space, plateau)


def test_priors_are_uniform_on_their_scale():
    rng = np.random.default_rng(0)
    lr = [LogUniform(1e-4, 1).sample(rng) for _ in range(20000)]
    decades = np.histogram(np.log10(lr), bins=4, range=(-4, 0))[0] / 20000
    assert np.allclose(decades, 0.25, atol=0.015)
    units = [IntLogUniform(1, 8).sample(rng) for _ in range(20000)]
    assert set(units) == set(range(1, 9)) and np.mean(np.array(units) <= 2) > np.mean(np.array(units) >= 7)
    ints = [IntUniform(0, 3).sample(rng) for _ in range(8000)]
    assert np.allclose(np.bincount(ints) / 8000, 0.25, atol=0.02)
    picks = [Choice(("a", "b"), weights=(3, 1)).sample(rng) for _ in range(8000)]
    assert picks.count("a") / 8000 == pytest.approx(0.75, abs=0.02)


def test_toml_forms_and_conditions():
    space = parse_space({"train.lr": "loguniform(1e-4, 1)", "model.layers": "intuniform(1, 3)",
                         "model.units_2": "intloguniform(16, 1024) if model.layers >= 2",
                         "model.activation": 'choice("tanh", "rectifier", weights=[2, 1])',
                         "train.momentum": "uniform(0, 0.9, hard=[0, 1])", "train.batch_size": 32})
    assert isinstance(space.dims["train.lr"], LogUniform) and space.dims["train.lr"].hard == (0.0, math.inf)
    assert space.dims["model.units_2"].when == When("model.layers", ">=", 2)
    assert space.dims["model.activation"].weights == (2, 1)
    assert space.dims["train.momentum"].hard == (0, 1)
    draws = [space.sample(np.random.default_rng(i)) for i in range(200)]
    assert all(("model.units_2" in d) == (d["model.layers"] >= 2) for d in draws)
    assert all(d["train.batch_size"] == 32 for d in draws)


@pytest.mark.parametrize("text, message", [
    ("loguniform(0, 1)", "can't touch 0"), ("uniform(1, 1)", "empty or inverted"), ("uniform(2, 1)", "inverted"),
    ("loguniform(1e-3, 10, hard=[0, 1])", "hard bounds"), ("uniformm(0, 1)", "Did you mean 'uniform'"),
    ('__import__("os").system("true")', "form"), ("uniform(0, 1) if nothing >= 2", "doesn't exist"),
    ("uniform(0, x)", "only numbers"), ("choice()", "at least one value")])
def test_bad_knobs_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_space({"k": text})


def test_unknown_strategy_and_gridless_continuous_knob():
    space = Space(x=Uniform(0, 1))
    with pytest.raises(ConfigError, match="Did you mean 'grid'"):
        make_strategy("gird", space)
    with pytest.raises(ConfigError, match="search.k"):
        make_strategy("grid", space)


def _run(strategy, f, budget):
    n, values = 0, []
    while n < budget and not strategy.exhausted:
        params = strategy.ask(n)
        if params is None:
            assert strategy.exhausted, "a sequential run never waits"
            break
        v = f(params)
        strategy.tell(n, params, v)
        values.append(v)
        n += 1
    return values


def test_grid_visits_its_cross_product_exactly_once_in_shuffled_order():
    space = Space({"a": Uniform(0, 1), "b": LogUniform(1, 100), "c": Choice(("x", "y")),
                   "d": IntUniform(1, 3, when=When("c", "==", "y"))})
    expected = [(a, b, "x", None) for a in (0.0, 0.5, 1.0) for b in (1.0, 10.0, 100.0)] + \
               [(a, b, "y", d) for a in (0.0, 0.5, 1.0) for b in (1.0, 10.0, 100.0) for d in (1, 2, 3)]
    s = make_strategy("grid", space, seed=1, k=3)
    seen = []
    for n in range(len(expected)):
        p = s.ask(n)
        s.tell(n, p, 0.0)
        seen.append((p["a"], p["b"], p["c"], p.get("d")))
    assert sorted(seen, key=str) == sorted(expected, key=str)
    assert seen != sorted(seen, key=str)                     # shuffled
    assert s.ask(len(expected)) is None and s.exhausted


def test_random_search_is_a_function_of_seed_and_trial_number():
    space = Space(x=Uniform(0, 1), y=LogUniform(1e-3, 1))
    a, b = make_strategy("random", space, seed=5), make_strategy("random", space, seed=5)
    assert [a.ask(i) for i in range(10)] == [b.ask(i) for i in reversed(range(10))][::-1]
    assert make_strategy("random", space, seed=6).ask(0) != a.ask(0)
    assert len({tuple(a.ask(i).values()) for i in range(500)}) == 500


def _quadratic(opt):
    """A separable quadratic in unit coordinates, its minimum at ``opt``."""
    space = Space(x=Uniform(0, 1), y=LogUniform(1e-3, 1), z=Uniform(-1, 1))
    dims = space.dims
    return space, lambda p: sum((dims[k].to_unit(p[k]) - opt[k]) ** 2 for k in opt)


@pytest.mark.parametrize("name, options", [("coordinate", {"k": 5}), ("multires", {"stage_size": 12, "keep": 3})])
def test_coordinate_and_multires_beat_a_grid_of_the_same_resolution(name, options):
    opt = {"x": 0.625, "y": 0.25, "z": 0.875}                # on the 9-point grid of every axis
    space, f = _quadratic(opt)
    grid = [f(p) for p in grid_points(space, 9)]
    assert len(grid) == 729 and min(grid) < 1e-12             # the grid must run whole to find it
    target = sorted(set(grid))[1]                             # within one grid step of the optimum
    values = _run(make_strategy(name, space, seed=0, **options), f, 729)
    cost = int(np.argmax(np.array(values) <= target)) + 1
    assert min(values) <= target and cost < 729 / 6, cost


def test_border_expansion_finds_an_optimum_outside_the_interval():
    space = Space(lr=LogUniform(1e-4, 1e-2), x=Uniform(0, 1))
    f = lambda p: (math.log10(p["lr"]) - 0.5) ** 2 + (p["x"] - 0.5) ** 2     # optimum at lr = 10**0.5
    s = make_strategy("random", space, seed=0)
    rule = BorderRule(s, expand=True)
    best = math.inf
    for n in range(300):
        p = s.ask(n)
        v = f(p)
        s.tell(n, p, v)
        rule.after_tell()
        best = min(best, v)
    assert s.space.dims["lr"].high > 10 ** 0.5 and all(e.side == "high" for e in rule.expansions if e.knob == "lr")
    assert abs(math.log10(s.best()[0]["lr"]) - 0.5) < 0.2
    frozen = make_strategy("random", space, seed=0)
    assert min(f(frozen.ask(n)) for n in range(300)) > 4      # without expansion it stays far away


def _in_batches(strategy, rule, f, total):
    """The driver's order: ask for as many trials as the strategy gives (a whole population at
    once) before any result is told, then tell them all. Returns the (number, params) asked, and
    for each expansion the number of trials asked before it."""
    asked, before = [], {}
    while len(asked) < total:
        batch = []
        while len(asked) + len(batch) < total and (p := strategy.ask(len(asked) + len(batch))) is not None:
            batch.append((len(asked) + len(batch), p))
        if strategy.exhausted and not batch:
            break
        assert batch, "a strategy waiting for results nobody will tell"
        asked += batch
        for n, p in batch:
            strategy.tell(n, p, f(p))
            before.update({e: len(asked) for e in rule.after_tell()})
    return asked, before


LR_HIGH = lambda p: (math.log10(p["lr"]) - 0.5) ** 2 + (p["x"] - 0.5) ** 2     # optimum at lr = 10**0.5


@pytest.mark.parametrize("name, options", [("random", {}), ("tpe", {"startup": 8})])
def test_a_widened_interval_is_searched_when_trials_are_asked_in_batches(name, options):
    space = Space(lr=LogUniform(1e-4, 1e-2), x=Uniform(0, 1))
    s = make_strategy(name, space, seed=0, **options)
    rule = BorderRule(s, expand=True)
    asked, before = _in_batches(s, rule, LR_HIGH, 64)
    first = next(e for e in rule.expansions if e.knob == "lr")
    later = [p["lr"] for n, p in asked if n >= before[first]]
    assert later and all(p["lr"] <= 1e-2 for n, p in asked if n < before[first])
    assert any(lr > 1e-2 for lr in later)                     # the new part of the interval is searched
    assert s.best()[0]["lr"] > 1e-2 and s.best()[1] < LR_HIGH({"lr": 1e-2, "x": 0.5})


def test_a_grid_searches_the_new_part_of_a_widened_interval_after_its_rounds():
    space = Space(lr=LogUniform(1e-4, 1e-2), x=Uniform(0, 1))
    s = make_strategy("grid", space, seed=0, k=5)
    rule = BorderRule(s, expand=True)
    asked, _ = _in_batches(s, rule, LR_HIGH, 40)
    assert [p for _, p in asked[:25]] and all(p["lr"] <= 1e-2 for _, p in asked[:25])   # the 5 x 5 grid first
    beyond = [p for _, p in asked[25:]]
    assert beyond and all(p["lr"] > 1e-2 and p["x"] == 0.5 for p in beyond)           # along lr, x at the best
    assert s.best()[0]["lr"] > 1e-2


def test_random_search_draws_from_the_space_in_force_when_asked():
    space = Space(lr=LogUniform(1e-4, 1e-2), x=Uniform(0, 1))
    wide = space.replaced("lr", LogUniform(1e-4, 1))
    s = make_strategy("random", space, seed=3)
    before = [s.ask(i) for i in range(4)]
    s.set_space(wide)
    assert before == [make_strategy("random", space, seed=3).ask(i) for i in range(4)]
    assert [s.ask(i) for i in range(4, 8)] == [make_strategy("random", wide, seed=3).ask(i) for i in range(4, 8)]


def test_tune_with_expand_searches_past_the_initial_interval():
    space = pl.Space(lr=pl.LogUniform(1e-4, 1e-2), x=pl.Uniform(0, 1))
    study = pl.tune(lambda p, report: LR_HIGH(p), space, expand=True, trials=40, seed=0)
    widened = [e for e in study.record.settings["expansions"] if e["knob"] == "lr"]
    assert widened and widened[0]["side"] == "high"
    after = [t.params["lr"] for t in study.trials if t.number >= widened[0]["after_trials"]]
    assert any(lr > 1e-2 for lr in after)
    assert study.best.params["lr"] > 1e-2 and study.best.value < LR_HIGH({"lr": 1e-2, "x": 0.5})


def test_the_border_warning_stays_until_the_widened_part_is_searched():
    # Every best trial has k = 2, the top of [1, 2]: the 8th result widens k to [1, 3], and the
    # study ends before any trial tries k = 3.
    space = pl.Space(k=pl.IntUniform(1, 2), x=pl.Uniform(0, 1))
    study = pl.tune(lambda p, report: -p["k"] + p["x"] / 10, space, expand=True, trials=8, seed=0)
    assert study.record.space["k"] == "intuniform(1, 3)"
    edge = [w for w in study.warnings() if w.startswith("k:") and "edge" in w]
    assert edge and "[1, 2]" in edge[0] and "no trial has gone past 2" in edge[0]


def test_border_warnings_judge_the_edge_of_what_was_searched():
    lr = LogUniform(1e-4, 1e-1)
    space = Space(lr=lr)
    grown = [Expansion("lr", "high", (1e-4, 1e-2), (1e-4, 1e-1), 8)]
    old = [({"lr": v}, 1.0) for v in (1e-4, 1e-3, 3e-3)] + [({"lr": 9.5e-3}, 0.5)]
    assert any("no trial has gone past 0.01" in w for w in border_warnings(space, old, grown))
    searched = old + [({"lr": v}, 0.9) for v in (0.03, 0.09)]   # the new part tried, and worse
    assert not [w for w in border_warnings(space, searched, grown) if "edge" in w]
    at_top = searched + [({"lr": 0.095}, 0.1)]
    assert any("already widened 1 time" in w for w in border_warnings(space, at_top, grown))
    unwidened = border_warnings(Space(lr=LogUniform(1e-4, 1e-2)), old)
    assert any("widen it or set expand = true" in w for w in unwidened)
    hard = border_warnings(Space(m=Uniform(0, 0.999, hard=(0, 0.999))), [({"m": v}, 1 - v) for v in (0.1, 0.5, 0.999)])
    assert any("0.999 is its hard bound" in w for w in hard)


def test_tpe_behind_the_same_interface():
    space, f = _quadratic({"x": 0.3, "y": 0.7, "z": 0.5})
    values = _run(make_strategy("tpe", space, seed=0, startup=8), f, 60)
    assert min(values[30:]) < min(values[:8]) and min(values) < 0.02


def test_efficiency_curve_equals_brute_force_enumeration():
    rng = np.random.default_rng(1)
    for n in (1, 5, 9, 12):
        values = rng.random(n).round(2)                        # ties included
        rows = efficiency_curve(values)
        for N in range(1, n + 1):
            mins = [min(c) for c in itertools.combinations(values, N)]
            assert rows[N - 1]["mean_best"] == pytest.approx(np.mean(mins), abs=1e-12)
            assert rows[N - 1]["std_best"] == pytest.approx(np.std(mins), abs=1e-9)
            assert rows[N - 1]["best_of_first"] == min(values[:N])
    mean, std = best_of_subsets(rng.random(5000), 2500)        # large n stays finite and exact-ish
    assert 0 <= mean < 1e-3 and std < 1e-3


def test_plateau_test():
    assert plateau([0.1] * 16)["plateau"] is True
    assert plateau(list(np.linspace(1, 0.1, 16)))["plateau"] is False
    assert plateau([0.5, 0.4])["plateau"] is False


def test_a_space_survives_its_toml_form_exactly():
    """A study stores its space as text and rebuilds it on resume: nothing may be lost."""
    space = Space({"lr": LogUniform(1.2345678901e-4, 0.75, hard=(1e-9, 10)), "n": IntLogUniform(16, 1024),
                   "m": Uniform(0, 0.9, hard=(0, 1)), "a": Choice(("tanh", "relu"), weights=(2, 1)),
                   "u2": IntUniform(1, 9, when=When("n", ">=", 32))})
    again = parse_space(space.to_dict())
    assert all(again.dims[k] == space.dims[k] for k in space.dims) and again.to_dict() == space.to_dict()


def test_a_resumed_study_keeps_the_widenings_it_recorded(tmp_path):
    """Results arrive out of order, so on resume the space is rebuilt from the recorded
    widenings, not by replaying the border rule in trial-number order (which here widens nothing:
    every best value sits in the middle)."""
    space = pl.Space(lr=pl.LogUniform(1e-4, 1e-2), x=pl.Uniform(0, 1))
    middle = lambda p, report: (math.log10(p["lr"]) + 3) ** 2 + (p["x"] - 0.5) ** 2    # noqa: E731
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = pl.tune(middle, space, expand=True, trials=10, store=url, seed=4)
    assert study.record.settings["expansions"] == []
    wide = space.replaced("lr", LogUniform(1e-4, 10 ** -0.5))   # as if a run had widened it after 9 results
    study.record.settings["expansions"] = [Expansion("lr", "high", (1e-4, 1e-2), (1e-4, 10 ** -0.5), 9).__dict__]
    study.record.space = wide.to_dict()
    study.store.update_study(study.record)
    again = pl.tune(middle, space, expand=True, trials=12, store=url, seed=4)
    drawn = [t.params["lr"] for t in again.trials if t.number >= 10]
    assert drawn == [make_strategy("random", wide, seed=4).ask(n)["lr"] for n in (10, 11)]
    assert [e["after_trials"] for e in again.record.settings["expansions"]] == [9]
