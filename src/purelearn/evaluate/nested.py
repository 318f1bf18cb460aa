"""Double cross-validation (§3): the generalization error of the whole learner, its selection of
hyper-parameters included. Outer folds estimate it; inside each outer training part the inner
folds (or a validation split) select; each outer test fold is read once, after selection."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from ..errors import ConfigError
from ..search.space import format_value
from .learner import HyperLearner


@dataclass
class OuterFold:
    """One outer fold: the knobs its inner selection chose, the validation error they were
    chosen on (inner) and the error of the refitted learner on the fold held out (outer)."""

    fold: int
    examples: int            # the outer training part
    params: dict
    inner: float
    outer: float
    trials: int
    seconds: float


@dataclass
class NestedEstimate:
    """The nested estimate (mean and standard deviation of the outer errors) beside the
    non-nested one (the inner errors selected on), whose difference is the optimism of
    reporting the error that selection minimized."""

    folds: list[OuterFold] = field(default_factory=list)
    inner_folds: int = 0              # 0: an inner validation split

    @property
    def outer(self) -> tuple[float, float]:
        return _mean_std([f.outer for f in self.folds])

    @property
    def inner(self) -> tuple[float, float]:
        return _mean_std([f.inner for f in self.folds])

    @property
    def optimism(self) -> tuple[float, float]:
        """The outer minus the inner error, mean and standard deviation over the folds."""
        return _mean_std([f.outer - f.inner for f in self.folds])

    def to_dict(self) -> dict:
        return {"folds": [asdict(f) for f in self.folds], "inner_folds": self.inner_folds,
                "nested": dict(zip(("mean", "std"), self.outer)),
                "non_nested": dict(zip(("mean", "std"), self.inner)),
                "optimism": dict(zip(("mean", "std"), self.optimism))}


    def lines(self) -> list[str]:
        """The estimate as a table, a line per outer fold, then the three summaries."""
        inner = f"{self.inner_folds} inner folds" if self.inner_folds else "an inner validation split"
        out = [f"{len(self.folds)} outer folds, selection by {inner}",
               f"{'fold':>4}  {'examples':>8}  {'trials':>6}  {'inner':>7}  {'outer':>7}  selected"]
        for f in self.folds:
            chosen = ", ".join(f"{k}={format_value(v)}" for k, v in f.params.items())
            out.append(f"{f.fold:>4}  {f.examples:>8}  {f.trials:>6}  {f.inner:7.4f}  {f.outer:7.4f}  {chosen}")
        for name, (mean, std) in (("nested estimate (outer folds)", self.outer),
                                  ("non-nested (best inner, selected on)", self.inner),
                                  ("optimism of the non-nested", self.optimism)):
            out.append(f"{name + ':':<38} {mean:.4f} +- {std:.4f}")
        return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def check_outer(outer, n: int) -> None:
    if not isinstance(outer, int) or isinstance(outer, bool) or outer < 2:
        raise ConfigError(f"outer = {outer!r}: double cross-validation needs a whole number of outer folds >= 2.")
    if outer > n:
        raise ConfigError(f"outer = {outer}: {n} examples make at most {n} folds.")


def double_cross_validation(learner: HyperLearner, X, y, *, outer: int = 5, seed: int = 0,
                            progress=None) -> NestedEstimate:
    """Estimate ``learner``'s generalization error by ``outer``-fold cross-validation (stratified
    for a classification): each outer training part is given to a clone of ``learner``, whose
    own ``cv`` or validation split selects inside it; its error (the validation criterion:
    misclassification, or squared error) on the outer fold is read once. ``progress(fold)`` is
    called with each finished :class:`OuterFold`."""
    X, y = np.asarray(X), np.asarray(y)
    check_outer(outer, len(X))
    classification = learner.task == "classification"
    splitter = (StratifiedKFold if classification else KFold)(outer, shuffle=True, random_state=seed)
    estimate = NestedEstimate()
    for k, (train, test) in enumerate(splitter.split(X, y)):
        start = time.perf_counter()
        fitted = clone(learner).fit(X[train], y[train])
        fold = OuterFold(k, len(train), fitted.best_params_, float(fitted.best_valid_error_),
                         fitted.error(X[test], y[test]), len(fitted.study_.trials), time.perf_counter() - start)
        estimate.folds.append(fold)
        estimate.inner_folds = fitted.study_.config().data.folds
        if progress is not None:
            progress(fold)
    return estimate
