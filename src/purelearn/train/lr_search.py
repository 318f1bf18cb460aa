"""Finding the learning rate the chapter's way (§2.1, §3.1.1): the largest rate at which the
training criterion does not diverge, found by factors of 3, then a factor of 2 below it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from ..errors import ConfigError
from ..nn import family_of
from .fit import check_member, fit
from .hyper import Member
from .result import Result

CHUNK = 4096          # training examples per forward pass when measuring the criterion


@dataclass(frozen=True)
class RateRun:
    """One short run: the training criterion (mean training loss, penalties left out) at the
    initial parameters and after the run. ``diverged``: the end is not below the start (or is
    NaN/inf); for a run the engine stopped as diverged, ``end_criterion`` is the mean training
    loss of its last minibatches."""

    rate: float
    start_criterion: float
    end_criterion: float
    diverged: bool
    result: Result


class RateSearch(NamedTuple):
    """What :func:`find_learning_rate` found; unpacks as ``rate, runs``.

    ``rate``: the recommendation, the largest stable rate divided by the margin. ``runs``: the
    search path in the order it was walked, the start first and the run that ended the search
    last (rates trained alongside but off the path are left out)."""

    rate: float
    runs: tuple[RateRun, ...]

    @property
    def largest_stable(self) -> float:
        return max(r.rate for r in self.runs if not r.diverged)

    @property
    def direction(self) -> str:
        """'up' when the start was stable (the search grew the rate), else 'down'."""
        return "down" if self.runs[0].diverged else "up"


def find_learning_rate(splits, member: Member, *, start: float = 1.0, factor: float = 3.0, margin: float = 2.0,
                       epochs: int = 1, tries: int = 5, rounds: int = 3, device="cpu") -> RateSearch:
    """The learning rate of §2.1: "the optimal learning rate is usually close to (by a factor of
    2) the largest learning rate that does not cause divergence of the training criterion".

    A rate diverges when the training criterion after a short run (``epochs``) is not below its
    value at the start: "if the learning rate is too large, the average loss will increase".
    From ``start`` (1 by default, the top of the chapter's typical range for standardized
    inputs: start large), a stable rate is multiplied by ``factor`` until the next one diverges;
    a diverging one is divided by ``factor`` until one is stable ("try again with 3 times smaller
    learning rate, etc., until no divergence is observed"). The recommendation is the largest
    stable rate divided by ``margin`` (2, the chapter's factor).

    Each run keeps the member's other settings (averaging, significance and early stopping
    aside: the iterates themselves are judged). Candidates train as one population of ``tries``
    rates (start x factor^k for k around 0), so the search costs about one run; a search that
    leaves that range continues in its direction with another population, at most ``rounds``
    in all.

    >>> from purelearn.data import load, prepare
    >>> from purelearn.nn import MLP
    >>> from purelearn.train import Training
    >>> splits = prepare(load("digits"), preprocess=["standardize"])
    >>> found = find_learning_rate(splits, Member(MLP((16,)), Training(batch_size=64)))
    >>> found.rate == found.largest_stable / 2
    True
    """
    if not start > 0 or not factor > 1 or not margin >= 1 or tries < 1 or rounds < 1 or epochs < 1:
        raise ConfigError(f"find_learning_rate: need start > 0, factor > 1, margin >= 1, and tries, rounds and "
                          f"epochs >= 1 (got start={start}, factor={factor}, margin={margin}, tries={tries}, "
                          f"rounds={rounds}, epochs={epochs}).")
    member = check_member(member, splits)
    first = _criterion(splits, member, family_of(member.model).init(member.model, splits.n_features,
                                                                    splits.n_outputs, member.train.seed))
    short = replace(member.train, max_epochs=epochs, patience=10 ** 12, polyak=False, significance=0.0,
                    valid_every=epochs * len(splits.X_train) + 1)      # one validation, at the end
    runs: dict[int, RateRun] = {}

    def train(exponents):
        rates = [float(start * factor ** k) for k in exponents]
        results = fit(splits, [replace(member, train=replace(short, lr=r)) for r in rates], device=device)
        for k, rate, result in zip(exponents, rates, results):
            runs[k] = _judge(splits, rate, first, result)

    train(range(-(tries // 2), tries - tries // 2))
    up = not runs[0].diverged
    step, path, trained = (1 if up else -1), [0], 1
    while True:
        k = path[-1] + step
        if k not in runs:
            if trained == rounds:
                raise _no_boundary(up, start * factor ** path[-1], trained)
            train(range(k, k + step * tries, step))
            trained += 1
        path.append(k)
        if runs[k].diverged == up:           # up: the first that diverges; down: the first stable
            break
    found = tuple(runs[k] for k in path)
    return RateSearch(max(r.rate for r in found if not r.diverged) / margin, found)


def _judge(splits, rate: float, first: float, result: Result) -> RateRun:
    if result.diverged:
        return RateRun(rate, first, result.curve[-1]["train_loss"], True, result)
    end = _criterion(splits, result.member, result.params)
    return RateRun(rate, first, end, not end < first, result)


def _criterion(splits, member: Member, params: dict[str, torch.Tensor]) -> float:
    """The mean training loss of a member's parameters over the whole training set."""
    model, family = member.model, family_of(member.model)
    inputs = splits.X_train if family.supervised else splits.inputs()     # as the member trains
    y = torch.as_tensor(splits.y_train, dtype=torch.int64 if splits.task == "classification" else torch.float32)
    total, n = 0.0, len(inputs)
    for s in range(0, n, CHUNK):
        X = torch.as_tensor(inputs[s:s + CHUNK])
        total += family.loss(model, params, X, y[s:s + CHUNK]).double().sum().item()
    return total / n


def _no_boundary(up: bool, last: float, trained: int) -> ConfigError:
    if up:
        return ConfigError(f"find_learning_rate: no rate up to {last:.3g} made the training criterion rise "
                           f"({trained} rounds); start higher or raise rounds.")
    return ConfigError(f"find_learning_rate: every rate down to {last:.3g} made the training criterion rise "
                       f"({trained} rounds); lower start, raise rounds, or check the data and model.")
