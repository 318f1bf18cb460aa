"""The search strategies' steps checked value by value against hand computations: the windows of
grid rounds and coordinate steps, the best trial's ties, multi-resolution's boxes, and what TPE
is told (see TESTING.md, search/strategies.py)."""

import math

import numpy as np
import pytest

from purelearn.errors import ConfigError
from purelearn.search import Choice, Fixed, IntUniform, Space, Uniform, When
from purelearn.search.strategies import (CoordinateDescent, GridSearch, MultiResolution, RandomSearch, TPE,
                                         _axis, frozen_trial, grid_points)


def _run_block(strategy, first, f):
    """Ask every trial from ``first`` until the strategy waits; tell each f(params)."""
    asked, n = [], first
    while (p := strategy.ask(n)) is not None:
        asked.append(p)
        n += 1
    for i, p in enumerate(asked):
        strategy.tell(first + i, p, f(p))
    return asked, n


def test_a_window_around_a_centre_is_shrink_wide_and_clipped_to_the_interval():
    x = Uniform(0.0, 1.0)
    assert _axis(x, 3, 0.5, 0.5) == pytest.approx([0.25, 0.5, 0.75])
    assert _axis(x, 3, 0.1, 0.5) == pytest.approx([0.0, 0.175, 0.35])       # clipped at the low end
    assert _axis(x, 3, 0.9, 0.5) == pytest.approx([0.65, 0.825, 1.0])       # and at the high end
    n = IntUniform(1, 10)
    # a window narrower than one integer still looks at the next integers, inside the interval
    assert _axis(n, 3, 5, 0.01) == [4, 5, 6]
    assert _axis(n, 3, 10, 0.01) == [9, 10]
    assert _axis(n, 3, 1, 0.01) == [1, 2]
    assert _axis(n, 3, 9, 0.01) == [8, 9, 10] and _axis(n, 3, 2, 0.01) == [1, 2, 3]    # the ends themselves
    assert _axis(x, 4, None, 1.0) == x.grid(4)


def test_finer_grids_shrink_by_one_over_k_minus_one_around_the_best():
    space = Space(x=Uniform(0.0, 1.0))
    grid = GridSearch(space, k=3, rounds=3)
    f = lambda p: (p["x"] - 0.3) ** 2  # noqa: E731
    first, n = _run_block(grid, 0, f)
    assert sorted(p["x"] for p in first) == pytest.approx([0.0, 0.5, 1.0])
    second, m = _run_block(grid, n, f)
    assert sorted(p["x"] for p in second) == pytest.approx([0.25, 0.5, 0.75])     # width 1/2 around 0.5
    third, end = _run_block(grid, m, f)
    assert sorted(p["x"] for p in third) == pytest.approx([0.125, 0.25, 0.375])   # width 1/4 around 0.25
    assert grid.ask(end) is None and grid.exhausted


def test_a_finer_grid_centres_on_the_best_so_far_when_the_last_grid_missed_it():
    # k = 4 puts no value on the centre itself: the second grid's best (1/18 off) is worse than
    # the first grid's (at 1/3), and the third grid is laid around 1/3, not around it
    grid = GridSearch(Space(x=Uniform(0.0, 1.0)), k=4, rounds=3)
    f = lambda p: (p["x"] - 1 / 3) ** 2  # noqa: E731
    _, n = _run_block(grid, 0, f)
    second, m = _run_block(grid, n, f)
    assert sorted(p["x"] for p in second) == pytest.approx([3 / 18, 5 / 18, 7 / 18, 9 / 18])
    third, _ = _run_block(grid, m, f)
    assert sorted(p["x"] for p in third) == pytest.approx([15 / 54, 17 / 54, 19 / 54, 21 / 54])


def test_a_grid_block_waits_for_the_results_of_the_last():
    grid = GridSearch(Space(x=Uniform(0.0, 1.0)), k=2, rounds=2)
    assert [grid.ask(i) is not None for i in range(3)] == [True, True, False]    # two values, then wait
    grid.tell(0, {"x": 0.0}, 1.0)
    assert grid.ask(2) is None                      # one result of two is not enough
    grid.tell(1, {"x": 1.0}, 0.5)
    assert grid.ask(2) is not None


def test_the_grid_options_at_their_bounds():
    assert len(grid_points(Space(x=Uniform(0.0, 1.0)), 2)) == 2
    GridSearch(Space(x=Uniform(0.0, 1.0)), k=2)
    with pytest.raises(ConfigError, match="search.k"):
        GridSearch(Space(x=Uniform(0.0, 1.0)), k=1)
    with pytest.raises(ConfigError, match="rounds"):
        GridSearch(Space(n=IntUniform(1, 4)), rounds=2)
    # integer knobs alone need no k: every integer of the interval
    whole = GridSearch(Space(n=IntUniform(1, 4)))
    assert sorted(p["n"] for p in _run_block(whole, 0, lambda p: p["n"])[0]) == [1, 2, 3, 4]


def test_a_widened_integer_interval_is_searched_along_its_new_part_only():
    grid = GridSearch(Space(n=IntUniform(1, 4), x=Choice(("a", "b"))))
    asked, n = _run_block(grid, 0, lambda p: abs(p["n"] - 3) + (p["x"] == "b"))
    assert len(asked) == 8
    grid.set_space(Space(n=IntUniform(1, 8), x=Choice(("a", "b"))))
    new, _ = _run_block(grid, n, lambda p: 0.0)
    # every integer of the new part, the other knob at the best point (n = 3, x = "a")
    assert sorted(new, key=lambda p: p["n"]) == [{"n": v, "x": "a"} for v in (5, 6, 7, 8)]


def test_an_integer_interval_widened_past_100_values_is_searched_at_100_of_them():
    grid = GridSearch(Space(n=IntUniform(1, 4)))
    _, n = _run_block(grid, 0, lambda p: -p["n"])
    grid.set_space(Space(n=IntUniform(1, 300)))
    new = sorted(p["n"] for p in _run_block(grid, n, lambda p: 0.0)[0])
    spread = IntUniform(1, 300).grid(100)            # 100 values, both ends included
    assert len(spread) == 100 and new == [v for v in spread if v > 4] and new[-1] == 300


def test_the_best_is_the_lowest_value_and_the_earlier_trial_on_a_tie():
    s = RandomSearch(Space(x=Uniform(0.0, 1.0)))
    s.tell(0, {"x": 0.1}, 0.5)
    s.tell(1, {"x": 0.2}, 0.3)
    s.tell(2, {"x": 0.3}, 0.3)                      # a tie: the earlier trial stays the best
    s.tell(3, {"x": 0.4}, 0.1, pruned=(np.array([10]), np.array([0.1])))   # pruned: never the best
    assert s.best() == ({"x": 0.2}, 0.3)
    assert s.best(range(4)) == ({"x": 0.2}, 0.3)
    assert s.best([0, 2]) == ({"x": 0.3}, 0.3)      # among those numbers only
    assert s.best([2, 1]) == ({"x": 0.2}, 0.3)      # a tie among them: the earlier number
    assert s.best([3]) is None


def test_coordinate_descent_alternates_the_learning_rate_and_halves_a_span_that_did_not_move():
    space = Space({"train.lr": Uniform(0.0, 1.0), "x": Uniform(0.0, 1.0)})
    cd = CoordinateDescent(space, k=3)
    f = lambda p: (p["train.lr"] - 0.5) ** 2 + (p["x"] - 0.5) ** 2  # noqa: E731
    start, n = _run_block(cd, 0, f)
    assert start == [{"train.lr": 0.5, "x": 0.5}]   # the middle of every knob
    moved = []
    for _ in range(4):
        step, n = _run_block(cd, n, f)
        moved.append({k for p in step for k in p if p[k] != 0.5})
    assert moved == [{"train.lr"}, {"x"}, {"train.lr"}, {"x"}]
    # the best never moved from the middle: each knob's span halved once on its second step
    assert cd.span == {"train.lr": 0.5, "x": 0.5}
    step, n = _run_block(cd, n, f)                 # the learning rate's third step: a quarter wide
    assert sorted(p["train.lr"] for p in step) == pytest.approx([0.375, 0.625])
    assert cd.span["train.lr"] == 0.25


def test_coordinate_descent_visits_the_other_knobs_in_turn_between_learning_rate_steps():
    space = Space({"train.lr": Uniform(0.0, 1.0), "a": Uniform(0.0, 1.0), "b": Uniform(0.0, 1.0)})
    cd = CoordinateDescent(space, k=3)
    f = lambda p: sum((v - 0.5) ** 2 for v in p.values())  # noqa: E731
    _, n = _run_block(cd, 0, f)
    moved = []
    for _ in range(4):
        step, n = _run_block(cd, n, f)
        moved.append({k for p in step for k in p if p[k] != 0.5})
    assert moved == [{"train.lr"}, {"a"}, {"train.lr"}, {"b"}]


def test_coordinate_descent_starts_in_the_middle_and_ends_when_every_span_is_spent():
    space = Space({"train.lr": Uniform(0.0, 1.0), "c": Choice(("a", "b")),
                   "m": Uniform(0.0, 1.0, when=When("c", "==", "b"))})
    cd = CoordinateDescent(space, k=2)
    f = lambda p: (p["train.lr"] - 0.5) ** 2 + (p["c"] == "b")  # noqa: E731
    start, n = _run_block(cd, 0, f)
    assert start == [{"train.lr": 0.5, "c": "a"}]   # a choice's first value; m absent where c = "a"
    for _ in range(60):                            # the best stays put: each lr step halves its span
        if cd.exhausted:
            break
        _, n = _run_block(cd, n, f)
    assert cd.exhausted and cd.span["train.lr"] < 1e-3


def test_coordinate_descent_waits_for_its_step():
    cd = CoordinateDescent(Space({"train.lr": Uniform(0.0, 1.0)}), k=3)
    assert cd.ask(0) is not None and cd.ask(1) is None
    cd.tell(0, {"train.lr": 0.5}, 1.0)
    assert cd.ask(1) is not None


def test_multires_draws_in_a_box_half_as_wide_per_stage_around_the_keep_best():
    space = Space(x=Uniform(0.0, 1.0), c=Choice(("a", "b", "c", "d")))
    mr = MultiResolution(space, seed=3, stage_size=400, keep=2)
    points = [{"x": i / 400, "c": "abcd"[i % 4]} for i in range(400)]
    values = [abs(i / 400 - 0.995) for i in range(400)]
    for i in range(400):
        mr.tell(i, points[i], values[i])
    centres = [points[i] for i in sorted(range(400), key=lambda i: (values[i], i))[:2]]   # the two best
    assert centres[0] == {"x": 0.995, "c": "c"}
    stage = [mr.ask(400 + i) for i in range(400)]
    assert mr.ask(800) is None                      # stage 2 waits for every result of stage 1
    kept = 0
    for i, p in enumerate(stage):
        centre = centres[i % 2]
        assert 0.0 <= p["x"] <= 1.0 and abs(p["x"] - centre["x"]) <= 0.25 + 1e-12     # width 1/2
        # the draw, as documented: the centre moved by width x (u - 1/2), clipped to the interval
        rng = np.random.default_rng([3, 400 + i])
        assert p["x"] == pytest.approx(min(max(centre["x"] + 0.5 * (rng.random() - 0.5), 0.0), 1.0))
        kept += p["c"] == centre["c"]
    # a choice keeps the centre's value with probability 1 - width, else is drawn again (1/4)
    assert 0.55 < kept / 400 < 0.7
    assert any(p["x"] == 1.0 for p in stage)        # clipped at the top, never past it


def test_the_strategies_options_at_their_bounds():
    space = Space(x=Uniform(0.0, 1.0))
    CoordinateDescent(space, k=2)
    MultiResolution(space, stage_size=1, keep=1)
    TPE(space, startup=0)
    for make in (lambda: CoordinateDescent(space, k=1), lambda: MultiResolution(space, stage_size=0),
                 lambda: MultiResolution(space, keep=0), lambda: TPE(space, startup=-1)):
        with pytest.raises(ConfigError):
            make()


def test_a_paced_strategy_holds_back_trials_until_results_arrive():
    s = RandomSearch(Space(x=Uniform(0.0, 1.0)))
    s.pace = 2
    asked = [s.ask(i) for i in range(3)]
    assert asked[0] is not None and asked[1] is not None and asked[2] is None
    s.tell(0, asked[0], 0.1)
    assert s.ask(2) is not None and s.ask(3) is None


def test_multires_leaves_out_a_knob_whose_condition_fails():
    space = Space(c=Choice(("a", "b")), m=Uniform(0.0, 1.0, when=When("c", "==", "b")))
    mr = MultiResolution(space, seed=0, stage_size=40, keep=1)
    for i in range(40):
        mr.tell(i, {"c": "a"}, 0.0 if i == 0 else 1.0)
    for p in (mr.ask(40 + i) for i in range(40)):
        assert ("m" in p) == (p["c"] == "b")


def test_tpe_suggests_every_kind_of_knob_within_the_space():
    space = Space(x=Uniform(0.0, 1.0), n=IntUniform(2, 5), c=Choice(("a", "b")), f=Fixed(7))
    tpe = TPE(space, startup=3)
    for i in range(6):
        p = tpe.ask(i)
        assert 0 <= p["x"] <= 1 and p["n"] in range(2, 6) and p["c"] in ("a", "b") and p["f"] == 7
        tpe.tell(i, p, p["x"])


def test_tpe_is_told_complete_failed_and_pruned_trials_as_optuna_states():
    space = Space(x=Uniform(0.0, 1.0))
    tpe = TPE(space, startup=2)
    states = tpe.optuna.trial.TrialState
    for i, (value, pruned) in enumerate([(0.5, None), (None, None), (math.inf, None),
                                         (0.7, (np.array([10, 20]), np.array([0.9, 0.7])))]):
        params = tpe.ask(i)
        tpe.tell(i, params, value, pruned)
    got = [t.state for t in tpe.study.trials]
    assert got == [states.COMPLETE, states.FAIL, states.FAIL, states.PRUNED]
    assert tpe.study.trials[0].value == 0.5 and tpe.study.trials[3].intermediate_values == {10: 0.9, 20: 0.7}


def test_a_stored_trial_becomes_an_optuna_trial_with_what_the_space_searches():
    space = Space(x=Uniform(0.0, 1.0), c=Choice(("a", "b")), n=IntUniform(1, 4))
    t = frozen_trial(space, {"x": 1.0, "c": "b", "n": 5, "other": 3}, 0.2)
    assert t.params == {"x": 1.0, "c": 1}           # the interval's end is in; n = 5 lies outside
    assert t.value == 0.2 and set(t.distributions) == {"x", "c"}
    assert frozen_trial(space, {"x": 0.0, "n": 1}, 0.1).params == {"x": 0.0, "n": 1}
    pruned = frozen_trial(space, {"x": 0.5}, 0.3, tpe_state("PRUNED"), {5: 0.4})
    assert pruned.value is None and pruned.intermediate_values == {5: 0.4}


def tpe_state(name):
    import optuna

    return getattr(optuna.trial.TrialState, name)
