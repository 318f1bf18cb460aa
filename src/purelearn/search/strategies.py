"""Search strategies behind one ask/tell interface (§3.3-3.4).

``ask(number)`` proposes the parameters of trial ``number`` (trials are numbered 0, 1, ...), or
returns None when the strategy must first hear results it is waiting for; ``tell(number, params,
value)`` reports a finished trial (value None for a failed one); ``exhausted`` says nothing is
left to propose. A strategy rebuilds its state from a replay of ask/tell over a study's trials,
so a resumed study continues where it was. Lower values are better.

Each strategy proposes from the space in force when it is asked: once the border rule has widened
an interval (``set_space``), later trials search the widened one. While the border rule may widen
(``pace`` set), a strategy holds back trials until results arrive (see ``Strategy.ask``).
"""

from __future__ import annotations

import abc
import inspect
import math

import numpy as np

from ..errors import ConfigError, unknown
from .space import Choice, Space, _Numeric


class Strategy(abc.ABC):
    name = "strategy"

    def __init__(self, space: Space, seed: int = 0):
        self.space, self.seed = space, seed
        self.results: dict[int, tuple[dict, float]] = {}  # number -> (params, value) of finished trials
        self.exhausted = False
        self.pace: int | None = None                      # set by the border rule, see ask()
        self.waiting: set[int] = set()                    # trials proposed whose results haven't come
        self._best: tuple[float, int] | None = None       # (value, number), kept as results arrive
        self.pruned: set[int] = set()                     # trials stopped early: results, never the best

    def ask(self, number: int) -> dict | None:
        """The parameters of trial ``number``, or None while waiting for results.

        With ``pace`` set, at most max(pace, results heard) trials wait for results at once. A
        driver asks for a whole batch before it hears anything (a population of 64 trains as one
        computation): unpaced, every trial of the study could be drawn from the first space and an
        interval the border rule widens would never be searched. Paced, the batches grow 8, 8, 16,
        32, ... and each is drawn from the space in force when it is asked."""
        if self.pace is not None and len(self.waiting) >= max(self.pace, len(self.results)):
            return None
        params = self.propose(number)
        if params is not None:
            self.waiting.add(number)
        return params

    @abc.abstractmethod
    def propose(self, number: int) -> dict | None:
        """The parameters of trial ``number`` from the current space, or None while waiting for
        results this strategy needs."""

    def tell(self, number: int, params: dict, value: float | None, pruned=None) -> None:
        """A finished trial's result. ``pruned``: a pruned trial's curve as (examples seen, best
        validation error so far) arrays; ``value`` is then its best before it stopped, which
        the strategies other than TPE take as is (it is worse than the trials it lost to)."""
        value = math.inf if value is None or math.isnan(value) else value
        self.results[number] = (params, value)
        self.waiting.discard(number)
        if pruned is not None:
            self.pruned.add(number)        # never the best a strategy refines around
        elif self._best is None or (value, number) < self._best:
            self._best = (value, number)

    def replay(self, number: int, params: dict, value: float | None, pruned=None) -> None:
        """Re-live a stored trial on resume: propose (to rebuild the bookkeeping), then tell."""
        self.propose(number)
        self.tell(number, params, value, pruned)

    def final(self, params: dict) -> bool:
        """Whether the trial is a candidate for the study's best (not a step towards one)."""
        return True

    def released_models(self) -> list[int]:
        """Trials whose trained models the strategy needed and no longer does."""
        return []

    def set_space(self, space: Space) -> None:
        """Called when border expansion grows an interval (§3.3.1)."""
        self.space = space

    def best(self, numbers=None) -> tuple[dict, float] | None:
        """(params, value) of the best finished trial, among ``numbers`` if given; ties go to the
        earlier trial."""
        if numbers is None:
            return None if self._best is None else (self.results[self._best[1]][0], self._best[0])
        items = [(v, n, p) for n, (p, v) in self.results.items() if n in numbers and n not in self.pruned]
        if not items:
            return None
        v, n, p = min(items, key=lambda t: (t[0], t[1]))
        return p, v

    def rng(self, *key) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])


class RandomSearch(Strategy):
    """Independent draws from the priors (§3.4). Trial i's draw depends only on (seed, i) and the
    space in force when it is asked (the initial one, or as the border rule widened it): extending
    or resuming a study never repeats a configuration, and trials asked after a widening search
    the widened interval."""

    name = "random"

    def propose(self, number):
        return self.space.sample(self.rng(number))


def grid_points(space: Space, k: int, centre: dict | None = None, shrink: float = 1.0) -> list[dict]:
    """The cross-product of k values per numerical knob (log-spaced for log knobs) and every value
    of each choice; conditional knobs appear only where their condition holds. With ``centre``,
    numerical intervals shrink to ``shrink`` of their width around it (sequences of grids)."""
    points = [{}]
    for name, dim in space.dims.items():
        values = _axis(dim, k, None if centre is None else centre.get(name), shrink)
        grown = []
        for p in points:
            if dim.when is None or dim.when.holds(p):
                grown.extend({**p, name: v} for v in values)
            else:
                grown.append(p)
        points = grown
    return points


def _axis(dim, k, centre, shrink):
    if not dim.numeric or centre is None:
        return dim.grid(k)
    u = dim.to_unit(centre)
    lo, hi = max(0.0, u - shrink / 2), min(1.0, u + shrink / 2)
    values = [dim.from_unit(lo + (hi - lo) * i / (k - 1)) for i in range(k)]
    if dim.integer:      # rounding may swallow a narrow window: always look at the next integers
        values += [v for v in (centre - 1, centre + 1) if dim.low <= v <= dim.high]
    return sorted(dict.fromkeys(values))


class GridSearch(Strategy):
    """K values per numerical knob, the cross-product visited in a seeded shuffled order (a
    partial grid is still a fair sample); then, if ``rounds`` > 1, finer grids centred on the
    best point so far, each 1/(k-1) the width of the last (§3.3.3). When the rounds are done, intervals
    the border rule widened since the last grid was laid out are searched along their new parts,
    the other knobs held at the best point."""

    name = "grid"

    def __init__(self, space, seed=0, k=None, rounds=1):
        super().__init__(space, seed)
        continuous = [n for n, d in space.numeric().items() if not d.integer]
        if k is None and continuous:
            raise ConfigError(f"grid search needs the number of values per numerical knob (search.k) for "
                              f"{', '.join(continuous)}.")
        if k is not None:
            _whole("k", k, 2, "a grid puts k values on each numerical knob, both ends included")
        _whole("rounds", rounds, 1, "rounds counts the successive grids, the first included")
        if rounds > 1 and k is None:
            raise ConfigError(f"search.rounds = {rounds}: finer grids shrink by 1/(k - 1) each round, so they "
                              "need search.k (values per knob, >= 2).")
        self.k, self.rounds = k or 0, rounds
        self.blocks: list[tuple[int, list[dict], Space]] = []  # (first trial number, points, their space)

    def _next_points(self) -> list[dict]:
        """The first grid, a finer grid around the best point while rounds remain, then the new
        parts of intervals widened since the last block ([] when nothing is left)."""
        r = len(self.blocks)
        if r == 0:
            return grid_points(self.space, self.k)
        _, _, laid_out = self.blocks[-1]
        best = self.best()[0]              # of every grid so far: a finer grid may miss the last centre
        if r < self.rounds:
            return grid_points(self.space, self.k, best, shrink=(1 / (self.k - 1)) ** r)
        seen = [p for p, _ in self.results.values()]
        points = []
        for name, dim in self.space.numeric().items():
            old = laid_out.dims[name]
            if (dim.low, dim.high) == (old.low, old.high):
                continue
            # Without k (integer knobs only) every integer of the new part, up to 100 values.
            k = self.k or int(min(dim.high - dim.low + 1, 100))
            outside = [v for v in dim.grid(k) if not old.low <= v <= old.high]
            for v in outside or [dim.low if dim.low < old.low else dim.high]:
                if (point := _with(self.space, best, name, v)) not in seen + points:
                    points.append(point)
        return points

    def propose(self, number):
        if not self.blocks:
            self._lay_out(0, self._next_points())
        first, points, _ = self.blocks[-1]
        if number < first + len(points):
            return points[number - first] if number >= first else None
        if not all(n in self.results for n in range(first, first + len(points))):
            return None                               # the next block needs this one's results
        points = self._next_points()
        if not points:
            self.exhausted = True
            return None
        self._lay_out(number, points)
        return self.propose(number)

    def _lay_out(self, start: int, points: list[dict]) -> None:
        order = self.rng(len(self.blocks)).permutation(len(points))
        self.blocks.append((start, [points[i] for i in order], self.space))


def _middle(dim):
    """The middle of an interval (on its scale), the first value of a choice."""
    return dim.from_unit(0.5) if dim.numeric else dim.grid(1)[0]


def _start_point(space: Space) -> dict:
    return _with(space, {}, None, None)


class CoordinateDescent(Strategy):
    """One knob at a time from the best configuration so far (§3.3.2): k values of the knob along
    its axis (the others held at the best), the learning rate revisited every other step. When a
    knob's step leaves the best where it was, the span searched around it on that knob halves."""

    name = "coordinate"

    def __init__(self, space, seed=0, k=5, lr_knob="train.lr"):
        super().__init__(space, seed)
        _whole("k", k, 2, "coordinate descent tries k values of one knob per step, both ends included")
        self.k, self.lr_knob = k, lr_knob
        self.steps: list[tuple[int, list[dict]]] = []   # (first trial number, proposals)
        self.span = {n: 1.0 for n in space.dims}
        self.last_centre: dict[str, object] = {}
        self.step_index = 0

    def _order(self) -> list[str]:
        knobs = [n for n, d in self.space.dims.items() if d.numeric or isinstance(d, Choice)]
        if self.lr_knob not in knobs:
            return knobs
        others = [n for n in knobs if n != self.lr_knob] or [self.lr_knob]
        return [x for o in others for x in (self.lr_knob, o)]

    def _next_step(self) -> list[dict]:
        if not self.steps:
            return [_start_point(self.space)]
        order = self._order()
        seen = {tuple(sorted(p.items())) for p, _ in self.results.values()}
        for _ in range(2 * len(order)):
            knob = order[self.step_index % len(order)]
            self.step_index += 1
            centre, dim = self.best()[0], self.space.dims[knob]
            if knob not in centre or (dim.numeric and self.span[knob] < 1e-3):
                continue
            if self.last_centre.get(knob) == centre[knob]:
                self.span[knob] /= 2                      # the last step on this knob didn't move it
            self.last_centre[knob] = centre[knob]
            values = _axis(dim, self.k, centre[knob], self.span[knob]) if dim.numeric else dim.grid(self.k)
            props = [p for v in values if tuple(sorted((p := _with(self.space, centre, knob, v)).items())) not in seen]
            if props:
                return props
        return []

    def propose(self, number):
        if self.steps:
            first, props = self.steps[-1]
            if number < first + len(props):
                return props[number - first] if number >= first else None
            if not all(n in self.results for n in range(first, first + len(props))):
                return None
        props = self._next_step()
        if not props:
            self.exhausted = True
            return None
        self.steps.append((number, props))
        return self.propose(number)


def _with(space: Space, point: dict, knob: str, value) -> dict:
    """``point`` with one knob changed, conditional knobs added (at their middle) or dropped to
    stay consistent."""
    out = {}
    for name, dim in space.dims.items():
        if dim.when is None or dim.when.holds(out):
            out[name] = value if name == knob else point.get(name, _middle(dim))
    return out


class MultiResolution(Strategy):
    """Coarse to fine (§3.3.2): a first stage of random draws over the whole space, then each
    stage draws around the ``keep`` best points so far, in a box half as wide as the last
    (choices keep the centre's value with growing probability)."""

    name = "multires"

    def __init__(self, space, seed=0, stage_size=16, keep=3):
        super().__init__(space, seed)
        _whole("stage_size", stage_size, 1, "multires draws stage_size trials per stage")
        _whole("keep", keep, 1, "each multires stage draws around the keep best points so far")
        self.stage_size, self.keep = stage_size, keep

    def propose(self, number):
        stage, i = divmod(number, self.stage_size)
        rng = self.rng(number)
        if stage == 0:
            return self.space.sample(rng)
        first = stage * self.stage_size
        if not all(n in self.results for n in range(first)):
            return None
        ranked = sorted(((v, n) for n, (p, v) in self.results.items() if n < first))
        centre = self.results[ranked[i % min(self.keep, len(ranked))][1]][0]
        width = 0.5 ** stage
        point = {}
        for name, dim in self.space.dims.items():
            if dim.when is not None and not dim.when.holds(point):
                continue
            if name in centre and dim.numeric:
                u = dim.to_unit(centre[name]) + width * (rng.random() - 0.5)
                point[name] = dim.from_unit(min(max(u, 0.0), 1.0))
            elif name in centre and rng.random() > width:
                point[name] = centre[name]
            else:
                point[name] = dim.sample(rng)
        return point


class TPE(Strategy):
    """Sequential model-based optimization with Optuna's TPE sampler, used as a library; in
    parallel, pending trials are handled by its constant-liar mode."""

    name = "tpe"

    def __init__(self, space, seed=0, startup=10):
        super().__init__(space, seed)
        _whole("startup", startup, 0, "TPE runs startup random trials before its model is used")
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=True)
        self.study = optuna.create_study(sampler=sampler)
        self.pending: dict[int, object] = {}

    def _suggest(self, trial, name, dim):
        if isinstance(dim, Choice):
            return dim.values[trial.suggest_categorical(name, list(range(len(dim.values))))]
        if not dim.numeric:
            return dim.value
        if dim.integer:
            return trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        return trial.suggest_float(name, dim.low, dim.high, log=dim.log)

    def propose(self, number):
        trial = self.study.ask()
        params = {}
        for name, dim in self.space.dims.items():
            if dim.when is None or dim.when.holds(params):
                params[name] = self._suggest(trial, name, dim)
        self.pending[number] = trial
        return params

    def replay(self, number, params, value, pruned=None):
        self.tell(number, params, value, pruned)       # TPE needs the results, not the old asks

    def tell(self, number, params, value, pruned=None):
        """A pruned trial is told as Optuna tells its own: PRUNED, with its curve as intermediate
        values by examples seen, so TPE ranks it below every complete trial, the longer-lived
        first."""
        super().tell(number, params, value, pruned)
        trial = self.pending.pop(number, None)
        states = self.optuna.trial.TrialState
        state = states.COMPLETE if value is not None and math.isfinite(value) else states.FAIL
        steps = {}
        if pruned is not None:
            state, steps = states.PRUNED, {int(e): float(v) for e, v in zip(*pruned) if math.isfinite(v)}
        if trial is not None:
            for step, v in steps.items():
                trial.report(v, step)
            self.study.tell(trial, value if state == states.COMPLETE else None, state=state)
        else:                                           # a trial from before a resume
            self.study.add_trial(frozen_trial(self.space, params, value, state, steps))


def frozen_trial(space: Space, params: dict, value: float | None, state=None, steps=None):
    """A finished trial as an optuna ``FrozenTrial`` (COMPLETE unless ``state`` says otherwise,
    with ``steps``, {step: value}, as its intermediate values):
    each knob of ``space`` with its optuna distribution, a choice as the index of its value (as
    TPE suggests it); a knob ``space`` doesn't search (fixed, unknown, or a value outside its
    interval) is left out."""
    import optuna

    d = optuna.distributions
    state = optuna.trial.TrialState.COMPLETE if state is None else state
    dists, stored = {}, {}
    for name, v in params.items():
        dim = space.dims.get(name)
        if isinstance(dim, Choice) and v in dim.values:
            dists[name], stored[name] = d.CategoricalDistribution(list(range(len(dim.values)))), dim.values.index(v)
        elif isinstance(dim, _Numeric) and dim.low <= v <= dim.high:
            dists[name] = (d.IntDistribution(int(dim.low), int(dim.high), log=dim.log) if dim.integer
                           else d.FloatDistribution(dim.low, dim.high, log=dim.log))
            stored[name] = v
    ok = state == optuna.trial.TrialState.COMPLETE
    return optuna.trial.create_trial(params=stored, distributions=dists, value=value if ok else None, state=state,
                                     intermediate_values=steps)


STRATEGIES = {"random": RandomSearch, "grid": GridSearch, "coordinate": CoordinateDescent,
              "multires": MultiResolution, "tpe": TPE}


def _whole(option: str, value, least: int, why: str) -> None:
    """Refuse a strategy option that can't work, when the strategy is made (before a study is stored)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(f"search.{option} = {value!r} can't work ({why}): use a whole number >= {least}.")


def make_strategy(name: str, space: Space, seed: int = 0, **options) -> Strategy:
    """The strategy ``name`` on ``space``; its options are checked here, so a study that can't
    run is refused before anything is stored."""
    if name not in STRATEGIES:
        raise unknown("strategy (search.strategy)", name, STRATEGIES)
    allowed = [p for p in inspect.signature(STRATEGIES[name]).parameters if p not in ("space", "seed")]
    for option in options:
        if option not in allowed:
            raise ConfigError(f"search.{option} is not an option of the {name} strategy; "
                              f"its options: {', '.join(allowed) or 'none'}.")
    return STRATEGIES[name](space, seed, **options)
