"""Controlled overfitting (§4.1): a network that can't fit a few hundred examples has a bug or
a bad optimizer. The member is trained on a small training subset, by its own SGD settings and
by L-BFGS (which needs no learning rate); its training error must fall to near zero. If SGD
fails where L-BFGS succeeds, the optimizer's settings are at fault; if both fail, the model or
the code."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..nn import family_of
from ..train import Data, Member, check_member, fit

NEAR_ZERO = 0.02        # a training error at most this is "fitted"


@dataclass
class Overfit:
    examples: int
    sgd_error: float | None = None
    lbfgs_error: float | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is not None or (self.sgd_error <= NEAR_ZERO and self.lbfgs_error <= NEAR_ZERO)

    @property
    def verdict(self) -> str:
        if self.skipped:
            return f"not checked: {self.skipped}"
        fitted = f"{self.examples} training examples (error <= {NEAR_ZERO})"
        if self.ok:
            return f"SGD and L-BFGS both fit {fitted}"
        if self.lbfgs_error <= NEAR_ZERO:
            return (f"L-BFGS fits {fitted} but SGD does not: the optimizer's settings are at fault "
                    "(train.lr first, then batch size and epochs; §3.1.1)")
        return f"neither SGD nor L-BFGS fits {fitted}: the model or the code is at fault"

    def summary(self) -> dict:
        return {"ok": self.ok, "examples": self.examples, "sgd_error": self.sgd_error,
                "lbfgs_error": self.lbfgs_error, "verdict": self.verdict}


def check_overfitting(member: Member, splits, *, examples: int = 100, epochs: int = 1000,
                      lbfgs_steps: int = 300, family=None) -> Overfit:
    """Fit the first ``examples`` training examples with the member's SGD for ``epochs`` and
    with L-BFGS for ``lbfgs_steps``; the errors are on those same examples."""
    family = family or family_of(member.model)
    if not family.supervised:
        return Overfit(0, skipped=f"the {family.name} has no training error to bring to zero")
    small = replace(splits, X_train=splits.X_train[:examples], y_train=splits.y_train[:examples],
                    X_valid=splits.X_train[:examples], y_valid=splits.y_train[:examples], X_unlabeled=None)
    n = len(small.X_train)
    member = check_member(member, small)
    # up to ``epochs``, but done once the error stops falling for 100 epochs (at 0 it can't fall)
    long = replace(member.train, max_epochs=epochs, patience=n * 100, valid_every=n * 5,
                   batch_size=min(member.train.batch_size, n))
    sgd = fit(small, replace(member, train=long)).best_valid_error
    return Overfit(n, sgd, _lbfgs_error(family, member, small, lbfgs_steps))


def _lbfgs_error(family, member: Member, small, steps: int) -> float:
    """The training error after L-BFGS (strong Wolfe line search) on the member's criterion,
    with the gradients of its own training signal (a wrong one fails here too)."""
    data = Data(small, torch.device("cpu"), leave_out=False)
    drawn = family.init(member.model, data.n_in, data.n_out, member.train.seed)
    params, extras = family.stack([member], [drawn], data)
    X, y = data.X_train.unsqueeze(0), data.y_train.unsqueeze(0)
    optimizer = torch.optim.LBFGS(list(params.values()), max_iter=steps, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-10, tolerance_change=1e-12)

    def closure():
        _, criterion, grads = family.signal(member.model, member.train, params, extras, X, y)
        for name, w in params.items():
            w.grad = grads[name].detach().clone()
        return criterion.sum()

    with torch.no_grad():
        try:
            optimizer.step(closure)
        except RuntimeError:          # a criterion that overflowed: a model that can't be fitted
            return float("inf")
        errors, _ = family.evaluate(member.model, params, extras, data.X_valid, data.y_valid)
    error = float(errors.mean())
    return error if math.isfinite(error) else float("inf")
