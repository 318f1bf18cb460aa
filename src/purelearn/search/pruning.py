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
  there at its best when it stopped: it stands in for the finished trials the study does not
  have yet, since without it members training together would be judged only against each
  other, and half of them pruned again at every validation. Once enough finished trials got
  there, they and the peers still training set the bar: the least hopeless of a population of
  hopeless members is no longer kept going by the others' low marks.
- ``successive-halving``: rungs at ``min_examples`` x reduction^k examples; a trial reaching
  a rung goes on only if its best so far is among the best 1/reduction of every trial that
  reached that rung, itself included (asynchronous: the first at a rung always goes on).

A trial's value "by e examples" is its best validation error over its validations up to its
first one at or after e; the trials of one population validate at the same points, so there
the comparison is exact. The verdicts depend only on the curves a :class:`Pruner` was given
and the values it is asked about, in that order: a test can fix them.
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


def best_by(curve: tuple, examples: int) -> float | None:
    """The best validation error by the first validation at or after ``examples`` (None: the
    curve never got there)."""
    seen, best = curve
    k = int(np.searchsorted(seen, examples))
    return None if k == len(seen) else float(best[k])


class Pruner:
    """The verdicts of one rule in one process: ``history`` holds the curves of trials that
    finished (the driver's, sent with the batch, and those trained here since, via ``add``);
    ``judge`` is asked about the members of a population that validated at the same point."""

    def __init__(self, pruning: Pruning, history=(), news=None):
        """``history``: finished trials as (examples seen, best so far) pairs or curves;
        ``news``: a callable giving the pairs of trials that finished elsewhere since (a worker
        hears of them from the driver while it trains), or None."""
        self.pruning, self.news = pruning, news
        self.history = [c if isinstance(c, tuple) else points(c) for c in history]

    def catch_up(self) -> None:
        """Add what finished elsewhere since the last verdict."""
        if self.news is not None:
            self.history.extend(self.news())

    def add(self, curve: list[dict]) -> None:
        """A finished trial's curve joins what later trials are compared with."""
        if curve:
            self.history.append(points(curve))

    def start(self, epoch: int) -> int:
        return self.pruning.min_examples or epoch

    def judge(self, examples: int, previous: int, best: np.ndarray, epoch: int, stopped=()) -> list[str | None]:
        """For members that all validated after ``examples`` seen (the one before at
        ``previous``), with best validation errors so far ``best``: why each stops now (None:
        it goes on). ``epoch``: their training examples, the default warm-up. ``stopped``: the
        best errors of their peers that this rule stopped earlier."""
        self.catch_up()
        rule, start = self.pruning.rule, self.start(epoch)
        if rule == "median" and examples >= start:
            return self._median(examples, best, [float(v) for v in stopped])
        if rule == "successive-halving" and examples >= start:
            return self._halving(examples, previous, best, start)
        return [None] * len(best)

    def _others(self, at: int) -> list[float]:
        """The finished trials' best errors by ``at``, of those that got there."""
        values = (best_by(c, at) for c in self.history)
        return [v for v in values if v is not None]

    def _median(self, examples: int, best: np.ndarray, stopped: list[float]) -> list[str | None]:
        known = self._others(examples)
        if len(known) < self.pruning.min_trials:     # the stopped peers stand in for a thin history
            known += stopped
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
                competing = sorted(self._others(rung) + [float(v) for v in best])
                bar = competing[max(len(competing) // r - 1, 0)]
                for j, value in enumerate(best):
                    if verdicts[j] is None and value > bar:
                        verdicts[j] = (f"pruned by successive halving at the rung of {rung:,} examples seen: "
                                       f"best validation error {value:.4g}, not among the best 1/{r} of "
                                       f"{len(competing)} trials there (<= {bar:.4g})")
            rung *= r
        return verdicts
