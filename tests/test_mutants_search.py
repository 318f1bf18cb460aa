"""Tests written against the mutants of search/efficiency.py and search/border.py that survived
tests/test_search.py (see TESTING.md): exact edges of every comparison, checked against
independent computations (brute-force enumeration of subsets, hand-computed positions)."""

import itertools
import math

import numpy as np
import pytest

from purelearn.search import (BorderRule, Expansion, IntUniform, Space, Uniform, best_of_subsets,
                              border_warnings, efficiency_curve, make_strategy, plateau)


def _brute(values, N):
    mins = [min(c) for c in itertools.combinations(values, N)]
    return float(np.mean(mins)), float(np.std(mins))


# --- efficiency.py -------------------------------------------------------------------------------

def test_subset_size_must_lie_in_one_to_n():
    values = [0.3, 0.1, 0.2]
    for bad in (0, -1, 4):
        with pytest.raises(ValueError):
            best_of_subsets(values, bad)
    assert best_of_subsets(values, 1) == pytest.approx(_brute(values, 1), abs=1e-12)
    assert best_of_subsets(values, 3) == pytest.approx((0.1, 0.0), abs=1e-12)
    assert best_of_subsets([5.0], 1) == (5.0, 0.0)


@pytest.mark.parametrize("values", [[4, 1, 3, 2], [2, 2, 1, 7, 7], [0.5, -1.5, 3.0, -1.5, 2.0, 9.0, 0.25]])
def test_best_of_subsets_equals_enumeration_for_every_size(values):
    for N in range(1, len(values) + 1):
        mean, std = best_of_subsets(values, N)
        bm, bs = _brute(values, N)
        assert mean == pytest.approx(bm, abs=1e-12) and std == pytest.approx(bs, abs=1e-12)


def test_efficiency_curve_rows():
    values = [3.0, 1.0, 2.0, 0.5]
    rows = efficiency_curve(values)
    assert [r["n"] for r in rows] == [1, 2, 3, 4]
    assert [r["best_of_first"] for r in rows] == [3.0, 1.0, 1.0, 0.5]
    for r in rows:
        assert (r["mean_best"], r["std_best"]) == pytest.approx(_brute(values, r["n"]), abs=1e-12)
    assert efficiency_curve([]) == []


def test_plateau_needs_four_trials():
    for n in (0, 1, 2, 3):
        r = plateau([1.0 - 0.1 * i for i in range(n)])
        assert r["plateau"] is False and r["gain_from_last_doubling"] is None and "too few" in r["message"]
    r = plateau([0.1] * 4)                                      # exactly 4 is enough to judge
    assert r["plateau"] is True and r["gain_from_last_doubling"] == 0.0


def test_plateau_gain_is_the_brute_force_difference_of_expected_bests():
    values = [0.9, 0.5, 0.7, 0.3, 0.8]                          # odd n: the half is n // 2 = 2
    r = plateau(values, tolerance=0.0)
    half, full = _brute(values, 2)[0], _brute(values, 5)[0]
    assert r["gain_from_last_doubling"] == pytest.approx(half - full, abs=1e-12)
    assert half - full == pytest.approx(0.49 - 0.3)          # (4*.3 + 3*.5 + 2*.7 + .8) / 10 = .49
    assert r["plateau"] is False


def test_plateau_compares_the_relative_gain_with_the_tolerance():
    # half = 0.5 (best of 2 of [0.5]*3 + [0.485]), full = 0.485: rel gain about 3%.
    values = [0.5, 0.5, 0.5, 0.485]
    half, full = _brute(values, 2)[0], min(values)
    rel = (half - full) / abs(half)
    assert 0.01 < rel < 0.05
    assert plateau(values)["plateau"] is False                   # default tolerance 1%
    assert plateau(values, tolerance=0.05)["plateau"] is True
    assert plateau(values, tolerance=rel / 2)["plateau"] is False
    assert plateau(values, tolerance=rel * 2)["plateau"] is True
    # exactly at the tolerance: not a plateau (the test is rel < tolerance)
    got = plateau(values)["gain_from_last_doubling"]
    exact = got / abs(best_of_subsets(values, 2)[0])
    assert plateau(values, tolerance=exact)["plateau"] is False
    assert plateau(values, tolerance=float(np.nextafter(exact, 1)))["plateau"] is True
    # negative values: the relative gain divides by |half|
    neg = [-v for v in (1.0, 1.0, 1.0, 1.03)]
    r = plateau(neg, tolerance=0.01)                            # half = -1.015, full = -1.03: 1.48%
    assert r["plateau"] is False and r["gain_from_last_doubling"] == pytest.approx(0.015)
    assert plateau(neg, tolerance=0.02)["plateau"] is True


def test_plateau_with_a_tiny_expected_best():
    values = [0.004, 0.004, 0.004, 0.002]                       # |half| << 1: divide by |half|, not by 1
    half = _brute(values, 2)[0]
    rel = (half - 0.002) / half
    assert rel > 0.2
    assert plateau(values, tolerance=0.1)["plateau"] is False


# --- border.py: border_warnings -----------------------------------------------------------------

def test_no_warnings_without_a_finished_trial():
    space = Space(x=Uniform(0, 1))
    assert border_warnings(space, []) == []
    assert border_warnings(space, [({"x": 0.5}, None), ({"x": 0.95}, math.nan), ({"x": 0.99}, math.inf)]) == []


def test_failed_nan_and_inf_trials_are_not_the_best():
    space = Space(x=Uniform(0, 1))
    base = [({"x": v}, 1.0) for v in (0.2, 0.4, 0.6, 0.8)] + [({"x": 0.5}, 0.1)]
    for bad in (None, math.nan, math.inf):
        assert border_warnings(space, base + [({"x": 0.99}, bad)]) == []
    assert any("high edge" in w for w in border_warnings(space, base + [({"x": 0.99}, 0.0)]))


def test_low_edge_warning_and_hard_bound():
    space = Space(x=Uniform(0, 1))
    finished = [({"x": v}, v) for v in (0.05, 0.3, 0.6, 0.9)]
    (w,) = border_warnings(space, finished)
    assert "near the low edge of the searched interval [0, 1]" in w
    assert "further down; widen it or set expand = true" in w
    hard = border_warnings(Space(x=Uniform(0, 1, hard=(0, 5))), finished)
    assert len(hard) == 1 and "0 is its hard bound, so the knob can't go further down" in hard[0]
    high_hard = border_warnings(Space(x=Uniform(0, 1, hard=(0, 5))), [({"x": v}, -v) for v in (0.05, 0.3, 0.6, 0.97)])
    assert len(high_hard) == 1 and "further up; widen it" in high_hard[0] and "hard bound" not in high_hard[0]


def test_low_side_widening_not_yet_searched_then_searched():
    space = Space(x=Uniform(-0.5, 1))
    grown = [Expansion("x", "low", (0, 1), (-0.5, 1), 8)]
    finished = [({"x": v}, v) for v in (0.0, 0.3, 0.6, 0.9)]     # best exactly at the old low edge
    (w,) = border_warnings(space, finished, grown)
    assert "[0, 1]" in w and "widened to [-0.5, 1], but no trial has gone past 0 yet" in w
    reached = finished + [({"x": -0.45}, -0.45)]
    (w,) = border_warnings(space, reached, grown)
    assert "already widened 1 time(s)" in w and "further down" in w
    # the widening of another knob, or of the other side, doesn't count
    other = [Expansion("y", "low", (0, 1), (-0.5, 1), 8)]
    assert "widen it or set expand = true" in border_warnings(Space(x=Uniform(0, 1)), finished, other)[0]
    other_side = [Expansion("x", "high", (0, 1), (0, 1.5), 8)]
    (w,) = border_warnings(Space(x=Uniform(0, 1.5)), finished, other_side)
    assert "widen it or set expand = true" in w and "[0, 1]" in w


def test_the_edge_of_the_searched_part_counts_when_the_interval_is_wider():
    # x widened high to [0, 1.5]; the best at 0.97 is near the high edge of [0, 1] but not of [0, 1.5]
    space = Space(x=Uniform(0, 1.5))
    grown = [Expansion("x", "high", (0, 1), (0, 1.5), 8)]
    finished = [({"x": v}, -v) for v in (0.1, 0.4, 0.7, 0.97)]
    (w,) = border_warnings(space, finished, grown)
    assert "[0, 1]" in w and "no trial has gone past 1 yet" in w


def test_few_values_warning_edges():
    def warns(dim, xs):
        space = Space(x=dim)
        finished = [({"x": v}, (v - 0.5 * (dim.low + dim.high)) ** 2) for v in xs]
        return any("tried at only" in w for w in border_warnings(space, finished))
    u = Uniform(0, 1)
    assert warns(u, [0.5]) and warns(u, [0.4, 0.6]) and warns(u, [0.4, 0.5, 0.6])
    assert not warns(u, [0.3, 0.4, 0.5, 0.6])
    assert warns(IntUniform(1, 9), [4, 5, 6])                     # 3 of 9 values
    assert not warns(IntUniform(1, 3), [1, 2, 3])                 # all its 3 values tried
    assert not warns(IntUniform(1, 2), [1, 2])                    # all its 2 values tried
    assert warns(IntUniform(1, 5), [2, 3])
    assert warns(IntUniform(1, 4), [1, 2, 3])                     # 3 of its 4 values: one is untried
    # a knob no trial set (a conditional knob never active) gets no such warning
    space = Space(x=Uniform(0, 1), y=Uniform(0, 1))
    finished = [({"x": v}, (v - 0.5) ** 2) for v in (0.3, 0.4, 0.5, 0.6)]
    assert border_warnings(space, finished) == []


# --- border.py: BorderRule ----------------------------------------------------------------------

def _tell(s, xs):
    for x in xs:
        n = len(s.results)
        s.tell(n, {"x": x}, -x)                                  # best at the highest x


def test_the_rule_waits_for_min_trials_then_widens():
    s = make_strategy("random", Space(x=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=True)
    assert s.pace == 8
    _tell(s, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.99])
    assert rule.after_tell() == [] and rule.expansions == []     # 7 < 8 results
    _tell(s, [0.7])
    (e,) = rule.after_tell()
    assert (e.knob, e.side, e.old, e.new, e.after_trials) == ("x", "high", (0, 1), (0, 1.5), 8)
    assert s.space.dims["x"] == Uniform(0, 1.5) and rule.expansions == [e]


def test_the_rule_does_not_widen_the_same_side_again_within_min_trials():
    s = make_strategy("random", Space(x=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=True, min_trials=4)
    _tell(s, [0.1, 0.2, 0.3, 0.99])
    assert len(rule.after_tell()) == 1                            # [0, 1.5] at 4 results
    for k in range(3):                                            # 5, 6, 7 results: too soon
        _tell(s, [1.49 + k * 0.001])
        assert rule.after_tell() == []
    _tell(s, [1.495])                                             # 8 results: 8 - 4 >= 4
    (e,) = rule.after_tell()
    assert e.old == (0, 1.5) and e.new == (0, 2.25) and e.after_trials == 8


def test_the_rule_widens_the_other_side_even_right_after():
    s = make_strategy("random", Space(x=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=True, min_trials=4)
    _tell(s, [0.1, 0.2, 0.3, 0.99])
    (first,) = rule.after_tell()
    for i, x in enumerate([-0.1, -0.2, -0.3, -0.4]):             # then the best moves to the low side
        s.tell(len(s.results), {"x": x}, -10 - i)
    # the new best lies outside [0, 1.5] below: near its low edge, widened at once
    s.tell(len(s.results), {"x": 0.01}, -100)
    (e,) = rule.after_tell()
    assert first.side == "high" and e.side == "low" and e.new == (-0.75, 1.5)


def test_the_rule_stays_off_without_expand_or_a_usable_best():
    s = make_strategy("random", Space(x=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=False)
    assert s.pace is None
    _tell(s, [0.1] * 7 + [0.99] * 5)
    assert rule.after_tell() == [] and s.space.dims["x"] == Uniform(0, 1)
    s = make_strategy("random", Space(x=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=True)
    for n in range(10):
        s.tell(n, {"x": 0.99}, math.inf)
    assert rule.after_tell() == []
    s = make_strategy("random", Space(x=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=True)
    _tell(s, [0.5, 0.45, 0.55, 0.4, 0.6, 0.42, 0.58, 0.52])        # best 0.6: not near an edge
    assert rule.after_tell() == []


def test_the_rule_stops_at_a_hard_bound():
    s = make_strategy("random", Space(x=Uniform(0, 1, hard=(0, 1))), seed=0)
    rule = BorderRule(s, expand=True, min_trials=4)
    _tell(s, [0.1, 0.2, 0.3, 0.99])
    assert rule.after_tell() == [] and rule.expansions == []
    s = make_strategy("random", Space(x=Uniform(0, 1, hard=(0, 1.2))), seed=0)
    rule = BorderRule(s, expand=True, min_trials=4)
    _tell(s, [0.1, 0.2, 0.3, 0.99])
    (e,) = rule.after_tell()
    assert e.new == (0, 1.2)


def test_the_rule_skips_a_knob_the_best_trial_lacks():
    s = make_strategy("random", Space(x=Uniform(0, 1), y=Uniform(0, 1)), seed=0)
    rule = BorderRule(s, expand=True, min_trials=4)
    _tell(s, [0.1, 0.2, 0.3, 0.99])
    (e,) = rule.after_tell()
    assert e.knob == "x"
