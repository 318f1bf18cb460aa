"""Early stopping with patience (§3.1.1), one state per member of a population."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import torch


class Patience:
    """The patience rule of the Deep Learning Tutorials, counted in examples seen.

    Training goes on until ``examples >= patience_until``. When the validation error reaches a
    new minimum at t examples, the best point moves to t; if the new minimum beats the old by
    more than the relative ``improvement``, patience grows to t * increase (multiply) or
    t + increase (add) — never shrinks. All arrays are indexed by member.
    """

    def __init__(self, patience, increase, additive, improvement):
        self.until = np.asarray(patience, dtype=np.float64).copy()
        self.increase = np.asarray(increase, dtype=np.float64)
        self.additive = np.asarray(additive, dtype=bool)
        self.improvement = np.asarray(improvement, dtype=np.float64)
        self.best = np.full(len(self.until), np.inf)
        self.best_at = np.zeros(len(self.until), dtype=np.int64)

    def observe(self, ids: np.ndarray, examples: int, error: np.ndarray,
                accept: np.ndarray | None = None) -> np.ndarray:
        """Record validation ``error`` of members ``ids``; returns which reached a new minimum.
        ``accept`` (optional) vetoes minima that failed the significance test."""
        new = error < self.best[ids]
        if accept is not None:
            new &= accept
        big = new & (error < self.best[ids] * (1 - self.improvement[ids]))
        grown = np.where(self.additive[ids], examples + self.increase[ids], examples * self.increase[ids])
        self.until[ids] = np.where(big, np.maximum(self.until[ids], grown), self.until[ids])
        self.best[ids] = np.where(new, error, self.best[ids])
        self.best_at[ids] = np.where(new, examples, self.best_at[ids])
        return new

    def exhausted(self, ids: np.ndarray, examples: int) -> np.ndarray:
        return examples >= self.until[ids]

    def left(self, ids: np.ndarray, examples: int) -> np.ndarray:
        return np.maximum(self.until[ids] - examples, 0)


def significant(best: torch.Tensor, new: torch.Tensor, level) -> torch.Tensor:
    """Footnote 16: is the new per-example validation error ``new`` [P, N] significantly lower
    than the best so far ``best`` [P, N]? One-sided paired z-test at ``level`` (one per
    member, in (0, 0.5)); a member without a finite best always passes."""
    d = (best - new).double()
    n = d.shape[1]
    mean, std = d.mean(1), d.std(1)
    z = torch.tensor([NormalDist().inv_cdf(1 - float(a)) for a in np.atleast_1d(level)],
                     dtype=torch.float64, device=d.device)
    passed = torch.where(std > 0, mean / (std / n ** 0.5) > z, mean > 0)
    return passed | ~torch.isfinite(best).all(1)
