"""The knobs of a search space at their bounds: what is refused, the grids, the border margins,
the widened intervals and the integer priors, each checked against a hand computation (see
TESTING.md, search/space.py)."""

import math

import numpy as np
import pytest

from purelearn.errors import ConfigError
from purelearn.search import Choice, Fixed, IntLogUniform, IntUniform, Uniform, parse_dimension, parse_space
from purelearn.search.space import format_value


@pytest.mark.parametrize("make, message", [
    (lambda: Uniform(0.0, math.inf), "finite"),
    (lambda: Uniform(-math.inf, 0.0), "finite"),
    (lambda: IntUniform(1, 4.5), "whole numbers"),
    (lambda: IntUniform(1.5, 4), "whole numbers"),
    (lambda: Uniform(False, 1.0), "must be numbers"),
    (lambda: Uniform(0.0, True), "must be numbers"),
    (lambda: Choice(("a", "b"), weights=(1, -1)), "weights"),
    (lambda: Choice(("a", "b"), weights=(0, 0)), "weights"),
    (lambda: Choice(("a", "b"), weights=(1,)), "weights"),
])
def test_a_knob_that_cannot_be_searched_is_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_a_choice_may_give_a_value_no_weight():
    c = Choice(("a", "b"), weights=(0, 1))
    assert {c.sample(np.random.default_rng(i)) for i in range(50)} == {"b"}


def test_grids_of_one_value_of_k_values_and_of_every_integer():
    assert Uniform(0.0, 2.0).grid(1) == [1.0]
    assert IntUniform(1, 10).grid(3) == [1, 6, 10]          # k given: k values, not every integer
    assert IntUniform(1, 101).grid(0) == list(range(1, 102))  # 101 integers: still listed
    with pytest.raises(ConfigError, match="too many integers"):
        IntUniform(1, 102).grid(0)


def test_the_border_margin_is_the_outer_tenth_exclusive():
    x = Uniform(0.0, 10.0)
    assert x.near_border(0.99) == "low" and x.near_border(1.0) is None
    assert x.near_border(9.01) == "high" and x.near_border(9.0) is None


def test_an_interval_grows_by_half_its_width_up_to_its_hard_bound():
    assert Uniform(0.0, 1.0, hard=(-10.0, 10.0)).expanded("low") == Uniform(-0.5, 1.0, hard=(-10.0, 10.0))
    assert Uniform(0.0, 1.0, hard=(-10.0, 10.0)).expanded("high") == Uniform(0.0, 1.5, hard=(-10.0, 10.0))
    assert IntUniform(1, 4, hard=(1, 10)).expanded("low") is None            # already at its hard bound
    assert IntUniform(1, 4, hard=(0, 10)).expanded("low") == IntUniform(0, 4, hard=(0, 10))
    assert Uniform(1.0, 2.0, hard=(-10.0, 10.0)).expanded("low").low == 0.5


def test_each_integer_gets_the_prior_mass_of_its_half_width_neighbourhood():
    rng = np.random.default_rng(0)
    draws = np.array([IntLogUniform(1, 4).sample(rng) for _ in range(4000)])
    # on the log scale from 0.5 to 4.5: 1 holds log(3) / log(9) = 1/2 of the mass
    assert abs(np.mean(draws == 1) - 0.5) < 0.03
    assert abs(np.mean(draws == 4) - math.log(4.5 / 3.5) / math.log(9)) < 0.03
    away = np.array([IntLogUniform(3, 6).sample(rng) for _ in range(4000)])
    assert abs(np.mean(away == 3) - math.log(3.5 / 2.5) / math.log(6.5 / 2.5)) < 0.03
    flat = np.array([IntUniform(1, 4).sample(rng) for _ in range(4000)])
    assert all(abs(np.mean(flat == v) - 0.25) < 0.03 for v in (1, 2, 3, 4))


def test_a_fixed_knob_is_its_one_value():
    f = Fixed(7)
    assert f.grid(5) == [7] and f.sample(np.random.default_rng(0)) == 7 and f.describe() == "fixed(7)"


def test_values_are_shown_to_four_significant_digits():
    assert format_value(0.000123456) == "0.0001235" and format_value(3) == "3" and format_value("tanh") == "tanh"


# knob: (a form at its hard bounds, one past the low bound, one past the high bound or None)
MEANINGS = {
    "train.lr": ("uniform(0, 10)", "uniform(-1, 1)", None),
    "train.momentum": ("uniform(0, 0.999)", "uniform(-0.1, 0.5)", "uniform(0, 1)"),
    "train.l1": ("uniform(0, 1)", "uniform(-1, 1)", None),
    "train.l2": ("uniform(0, 1)", "uniform(-1, 1)", None),
    "train.sparsity_coef": ("uniform(0, 1)", "uniform(-1, 1)", None),
    "train.sparsity_target": ("uniform(1e-6, 0.999999)", "uniform(0, 0.5)", "uniform(0.1, 1)"),
    "train.batch_size": ("intuniform(1, 64)", "intuniform(0, 64)", None),
    "train.patience": ("intuniform(1, 100)", "intuniform(0, 100)", None),
    "train.tau": ("uniform(1, 100)", "uniform(0.5, 100)", None),
    "train.alpha": ("uniform(1e-6, 2)", "uniform(0, 2)", None),
    "train.improvement": ("uniform(0, 0.999)", "uniform(-0.1, 0.5)", "uniform(0, 1)"),
    "train.adaptive_tau": ("uniform(0, 0.999)", "uniform(-0.1, 0.5)", "uniform(0, 1)"),
    "model.layers": ("intuniform(1, 4)", "intuniform(0, 4)", None),
    "model.units": ("intuniform(1, 4)", "intuniform(0, 4)", None),
    "model.units_2": ("intuniform(1, 4)", "intuniform(0, 4)", None),
    "model.init_scale": ("uniform(1e-6, 2)", "uniform(0, 2)", None),
    "data.valid": ("uniform(0.01, 0.9)", "uniform(0.005, 0.5)", "uniform(0.1, 0.95)"),
    "data.test": ("uniform(0, 0.9)", "uniform(-0.1, 0.5)", "uniform(0.1, 0.95)"),
}


@pytest.mark.parametrize("knob", MEANINGS)
def test_a_knob_whose_meaning_bounds_it_is_searched_within_those_bounds(knob):
    inside, below, above = MEANINGS[knob]
    parse_dimension(knob, inside)
    for form in (below, above):
        if form is not None:
            with pytest.raises(ConfigError, match="hard bounds"):
                parse_dimension(knob, form)
    assert parse_dimension("other.knob", "uniform(-5, 5)").hard == (-math.inf, math.inf)   # no meaning known


def test_an_interval_may_touch_its_hard_bounds_but_not_cross_them():
    assert parse_dimension("x", "uniform(0, 1, hard=[0, 1])").hard == (0, 1)
    for crossing in ("uniform(-0.001, 1, hard=[0, 1])", "uniform(0, 1.001, hard=[0, 1])"):
        with pytest.raises(ConfigError, match="hard bounds"):
            parse_dimension("x", crossing)


def test_a_knob_form_takes_two_numbers_and_reads_true_and_false():
    for bad in ("uniform(1)", 'uniform("a", 2)', "uniform(true, 2)", "uniform(1, 2, 3)"):
        with pytest.raises(ConfigError, match="two numbers"):
            parse_dimension("x", bad)
    with pytest.raises(ConfigError, match="takes no argument 'weights'; allowed: hard"):
        parse_dimension("x", "uniform(0, 1, weights=[1])")
    assert parse_dimension("x", "choice(true, false, True, False)").values == (True, False, True, False)


def test_an_empty_search_space_is_refused():
    for bad in ({}, [], "train.lr"):
        with pytest.raises(ConfigError, match="missing or empty"):
            parse_space(bad)
