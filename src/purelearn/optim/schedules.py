"""Learning-rate schedules of §3.1.1, one per member."""

from __future__ import annotations

import math

import torch

from .base import select


def schedule_rate(lr0: float, tau: float, alpha: float, t: int) -> float:
    """Eq. (2) with power alpha: eps_t = eps0 * (tau / max(t, tau)) ** alpha (constant while
    t <= tau; tau = inf keeps it constant forever)."""
    return lr0 * (tau / max(t, tau)) ** alpha if math.isfinite(tau) else lr0


class Schedule:
    """Eq. (2) for a population: [P] tensors ``lr0``, ``tau``, ``alpha``.

    Adaptive tau: a member with ``threshold`` > 0 and tau = inf keeps its rate constant until the
    relative improvement of its training criterion from one epoch to the next falls below the
    threshold; tau is then set to the current step, and the O(1/t^alpha) decrease begins.
    """

    def __init__(self, lr0, tau, alpha, threshold):
        self.lr0, self.tau, self.alpha, self.threshold = (
            torch.as_tensor(v, dtype=torch.float32).clone() for v in (lr0, tau, alpha, threshold))
        self.last = torch.full_like(self.lr0, float("nan"))
        self._note_constant()

    def _note_constant(self) -> None:
        # With every tau infinite the rates are lr0: skip the per-step arithmetic.
        self.constant = bool(torch.isinf(self.tau).all())

    def rates(self, step: int) -> torch.Tensor:
        if self.constant:
            return self.lr0
        ratio = torch.where(self.tau < step, self.tau / step, 1.0)   # Python scalars: any device
        return self.lr0 * ratio.pow(self.alpha)

    def end_epoch(self, step: int, criterion: torch.Tensor) -> None:
        """Feed the epoch's mean training criterion [P]; may start the decrease (adaptive tau)."""
        improvement = (self.last - criterion) / self.last.abs()
        start = (self.threshold > 0) & torch.isinf(self.tau) & (improvement < self.threshold)
        self.tau = torch.where(start, float(max(step, 1)), self.tau)
        self.last = criterion.clone()
        self._note_constant()

    def select(self, keep: torch.Tensor) -> "Schedule":
        for name in ("lr0", "tau", "alpha", "threshold", "last"):
            setattr(self, name, select(getattr(self, name), keep))
        self._note_constant()
        return self

    def to(self, device) -> "Schedule":
        for name in ("lr0", "tau", "alpha", "threshold", "last"):
            setattr(self, name, getattr(self, name).to(device))
        return self
