"""Early stopping with patience (§3.1.1), one state per member of a population."""

from __future__ import annotations

import math

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
    than the best so far ``best`` [P, N]? McNemar's exact test, one-sided, at ``level`` (one per
    member, in (0, 0.5)).

    Only the discordant examples carry evidence: b of them were wrong at the best point and
    are right now, c were right and are wrong now. Under the null hypothesis (equal error
    rates) each discordant example is equally likely to fall either way, so b ~ Binomial(b + c,
    1/2) and the p-value is P(X >= b). A new minimum passes when p <= level; with no discordant
    example there is no evidence, and it does not pass. For errors that are not 0/1 (the
    fraction of wrong labels, a squared error) an example counts as better or worse by the sign
    of its change: the same test is then the sign test. A member without a finite best always
    passes.
    """
    better = (new < best).sum(1)
    worse = (new > best).sum(1)
    p = binomial_tail(better, better + worse)
    level = torch.as_tensor(np.atleast_1d(level), dtype=torch.float64, device=p.device)
    passed = (better + worse > 0) & (p <= level)
    return passed | ~torch.isfinite(best).all(1)


def binomial_tail(k: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """P(X >= k) for X ~ Binomial(n, 1/2), elementwise over whole-number tensors k, n (float64).

    Summed term by term in log space (log C(n, j) - n log 2 from lgamma, then logsumexp over
    j = k..n), so it is exact to rounding even where the tail is far below float64's smallest
    normal number; a normal approximation would accept "3 fewer errors, none new" (exact p =
    1/8) at 5%."""
    k, n = k.double(), n.double()
    j = torch.arange(int(n.max().item()) + 1 if n.numel() else 1, dtype=torch.float64, device=n.device)
    n_, k_ = n.unsqueeze(-1), k.unsqueeze(-1)
    terms = (torch.lgamma(n_ + 1) - torch.lgamma(j + 1) - torch.lgamma((n_ - j).clamp(min=0) + 1)
             - n_ * math.log(2))
    terms = torch.where((j >= k_) & (j <= n_), terms, -math.inf)
    return torch.logsumexp(terms, -1).exp().clamp(max=1.0)
