"""Stopping hopeless trials early (§3.3.1: give up some fidelity of each trial's result to run
many more trials).

A rule compares a running trial's best validation error by some number of examples seen with
what the study's other trials had by the same number: always at equal examples seen, never at
equal epochs or seconds (a trial with a larger minibatch or a slower network is not behind).

- ``median``: after a warm-up of ``min_examples``, a trial whose best validation error so far
  is worse than the median of the other trials' at the same point stops, once at least
  ``min_trials`` others reached that point. Of the finished trials, those that got there count
  (a trial pruned earlier did not: as Optuna's median compares with complete trials, so the bar
  is what the trials still training at that point reach). A trial's population peers count too.
  While fewer than ``min_trials`` finished trials got to a point, a peer pruned earlier counts
  there at its best when it stopped, and a trial training elsewhere that has not got there yet
  at its best so far: they stand in for the finished trials the study does not have yet. A
  best so far only falls, so each stands in at no less than it had, or will have, there, and
  the bar they make is no lower than the one the trials reaching the point will set. Without
  them, members training together would be judged only against each other (half of them
  pruned again at every validation), and a batch of trials started together would train
  unjudged until enough of them finished. Once enough finished trials got there, they and the
  trials still training set the bar: the least hopeless of a population of hopeless members is
  no longer kept going by the others' low marks.
- ``successive-halving``: rungs at ``min_examples`` x reduction^k examples; a trial reaching
  a rung goes on only if its best so far is among the best 1/reduction of every trial that
  reached that rung, itself included (asynchronous: the first at a rung always goes on).

A trial's value "by e examples" is its best validation error over its validations up to its
first one at or after e; the trials of one population validate at the same points, so there
the comparison is exact. Trials still training in other processes count as a population's
peers do, at the points they reached: each process shares its members' values as they
validate, through the driver. Two trials started together in two workers are then compared
from the first rung on, as they would be in one population, not only once one has finished
(the second to reach a rung, worse, stops there, as in Optuna's halving). The verdicts depend
only on the curves a :class:`Pruner` was given and heard of and the values it is asked about,
in that order: a test can fix them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, unknown

RULES = ("none", "median", "successive-halving")
CHOICES = ("auto", *RULES)


class Pruned(Exception):
    """Raised by a function objective's ``report`` when the study's rule stops its trial: let
    it propagate (the trial is recorded as pruned, at its best so far), as Optuna's
    ``TrialPruned``."""


@dataclass(frozen=True)
class Pruning:
    """A pruning rule and its settings, as ``[search]`` gives them (``prune``, ``prune_*``).
    ``min_examples`` 0: one epoch of the trial's training examples. 'auto' is decided when a
    study starts (``execute.decide_pruning``)."""

    rule: str = "none"
    min_examples: int = 0
    min_trials: int = 5
    reduction: int = 3

    def __post_init__(self):
        if self.rule not in CHOICES:
            raise unknown("pruning rule (search.prune)", self.rule, CHOICES)
        for key, low in (("min_examples", 0), ("min_trials", 1), ("reduction", 2)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"search.prune_{key} = {value!r} must be a whole number >= {low}.")

    @property
    def active(self) -> bool:
        return self.rule not in ("none", "auto")

    def describe(self) -> str:
        start = f"{self.min_examples:,} examples" if self.min_examples else "one epoch"
        if self.rule == "median":
            return (f"the median rule: after {start}, a trial worse than the median of at least "
                    f"{self.min_trials} others at the same examples seen stops")
        if self.rule == "successive-halving":
            return (f"successive halving: at {start} x {self.reduction}^k examples seen, only the best "
                    f"1/{self.reduction} of the trials that got there go on")
        return "none: every trial trains until its own early stopping"


def points(curve: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """A learning curve as (examples seen, best validation error so far) arrays."""
    seen = np.array([row["examples_seen"] for row in curve], dtype=np.int64)
    errors = np.array([row["valid_error"] for row in curve], dtype=np.float64)
    errors = np.where(np.isnan(errors), np.inf, errors)
    return seen, np.minimum.accumulate(errors) if len(errors) else errors


def note_points(running: dict, examples: int, values) -> None:
    """Extend the curves so far ``running`` (trial number -> (examples seen, best so far)
    lists) with each trial's best error by ``examples``; a trial heard of again from fewer
    examples was started again (its worker died) and its curve starts over."""
    for number, best in values:
        curve = running.get(number)
        if curve is None or examples <= curve[0][-1]:
            curve = running[number] = ([], [])
        curve[0].append(examples)
        curve[1].append(best)


def best_by(curve: tuple, examples: int) -> float | None:
    """The best validation error by the first validation at or after ``examples`` (None: the
    curve never got there)."""
    seen, best = curve
    k = int(np.searchsorted(seen, examples))
    return None if k == len(seen) else float(best[k])


class Pruner:
    """The verdicts of one rule in one process: ``history`` holds the curves of trials that
    finished (the driver's, sent with the batch, and those trained here since, via ``add``),
    ``running`` the curves so far of trials training in other processes; ``judge`` is asked
    about the members of a population that validated at the same point."""

    def __init__(self, pruning: Pruning, history=(), running=None, news=None, share=None):
        """``history``: finished trials as (examples seen, best so far) pairs or curves;
        ``running``: trial number -> (examples seen, best so far) lists of trials training
        elsewhere; ``news``: a callable giving what was heard from elsewhere since, as
        ("curve", number, pair) for a trial that finished and ("points", examples, [(number,
        best)]) for trials that validated (a worker hears it from the driver while it trains),
        or None; ``share``: a callable taking (examples, [(number, best)]) for this process's
        members as they are judged, or None when no other process listens."""
        self.pruning, self.news, self.share = pruning, news, share
        self.history = [c if isinstance(c, tuple) else points(c) for c in history]
        self.running = {n: (list(seen), list(best)) for n, (seen, best) in (running or {}).items()}

    def catch_up(self) -> None:
        """Add what was heard from elsewhere since the last verdict."""
        if self.news is None:
            return
        for kind, *rest in self.news():
            if kind == "curve":
                number, pair = rest
                self.running.pop(number, None)          # its whole curve supersedes what it reached
                self.history.append(pair)
            else:
                note_points(self.running, *rest)

    def add(self, curve: list[dict]) -> None:
        """A finished trial's curve joins what later trials are compared with."""
        if curve:
            self.history.append(points(curve))

    def start(self, epoch: int) -> int:
        return self.pruning.min_examples or epoch

    def judge(self, examples: int, previous: int, best: np.ndarray, epoch: int, stopped=(),
              who=None) -> list[str | None]:
        """For members that all validated after ``examples`` seen (the one before at
        ``previous``), with best validation errors so far ``best``: why each stops now (None:
        it goes on). ``epoch``: their training examples, the default warm-up. ``stopped``: the
        best errors of their peers that this rule stopped earlier. ``who``: their trial
        numbers, to share their values with other processes (None: not shared)."""
        self.catch_up()
        rule, start = self.pruning.rule, self.start(epoch)
        if rule == "median" and examples >= start:
            verdicts = self._median(examples, best, [float(v) for v in stopped])
        elif rule == "successive-halving" and examples >= start:
            verdicts = self._halving(examples, previous, best, start)
        else:
            verdicts = [None] * len(best)
        named = [(n, float(v)) for n, v in zip(who or (), best) if n is not None]
        if self.share is not None and named:
            self.share(examples, named)
        return verdicts

    def _others(self, at: int) -> tuple[list[float], list[float]]:
        """The best errors by ``at`` of the finished trials and of those training elsewhere,
        of those that got there."""
        def reached(curves):
            return [v for v in (best_by(c, at) for c in curves) if v is not None]
        return reached(self.history), reached(self.running.values())

    def _behind(self, at: int) -> list[float]:
        """The best errors so far of the trials training elsewhere that have not got to ``at``."""
        return [best[-1] for seen, best in self.running.values() if seen[-1] < at]

    def _median(self, examples: int, best: np.ndarray, stopped: list[float]) -> list[str | None]:
        finished, elsewhere = self._others(examples)
        known = finished + elsewhere
        if len(finished) < self.pruning.min_trials:     # upper bounds stand in for a thin history
            known += stopped + self._behind(examples)
        verdicts = []
        for j, value in enumerate(best):
            others = known + [float(v) for k, v in enumerate(best) if k != j]
            if len(others) < self.pruning.min_trials:
                verdicts.append(None)
                continue
            median = float(np.median(others))
            verdicts.append(f"pruned by the median rule at {examples:,} examples seen: best validation error "
                            f"{value:.4g} > {median:.4g}, the median of {len(others)} other trials there"
                            if value > median else None)
        return verdicts

    def _halving(self, examples: int, previous: int, best: np.ndarray, start: int) -> list[str | None]:
        r = self.pruning.reduction
        verdicts: list[str | None] = [None] * len(best)
        rung = start
        while rung <= examples:     # every rung crossed since the last validation (several if sparse)
            if rung > previous:
                finished, elsewhere = self._others(rung)
                competing = sorted(finished + elsewhere + [float(v) for v in best])
                bar = competing[max(len(competing) // r - 1, 0)]
                for j, value in enumerate(best):
                    if verdicts[j] is None and value > bar:
                        verdicts[j] = (f"pruned by successive halving at the rung of {rung:,} examples seen: "
                                       f"best validation error {value:.4g}, not among the best 1/{r} of "
                                       f"{len(competing)} trials there (<= {bar:.4g})")
            rung *= r
        return verdicts
