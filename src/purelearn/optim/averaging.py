"""Polyak averaging (§3.1.1, footnote 19): predictions use the running mean of the iterates."""

from __future__ import annotations

import torch


def polyak_init(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in params.items()}


def polyak_update(average: dict[str, torch.Tensor], params: dict[str, torch.Tensor], step: int,
                  start: int | torch.Tensor = 0) -> None:
    """avg_t = avg_{t-1} + (theta_t - avg_{t-1}) / (t - s + 1) from step s = ``start`` on, so
    that avg_t is the mean of theta_s..theta_t; before s it is theta_t itself. ``start`` is one
    step for all members or a [P, 1, 1] tensor of steps (0: from the initial parameters).

    A burn-in keeps the first, far-from-optimal iterates out of the mean: averaging pays once
    the iterates wander around a minimum, not on the way down from the random start."""
    with torch.no_grad():
        if isinstance(start, torch.Tensor):
            # lerp with weight 1 returns its end exactly: before the burn-in ends, avg_t = theta_t
            weight = (step - start).clamp_(min=0).add_(1).reciprocal_()
            for name, a in average.items():
                a.lerp_(params[name], weight)
        else:
            for name, a in average.items():
                a.lerp_(params[name], 1.0 / (max(step - start, 0) + 1))


def polyak_start(tau: torch.Tensor, steps_per_epoch: int) -> torch.Tensor:
    """The step at which each member's averaging starts, [P, 1, 1] from the schedule's [P] tau.

    With eq. (2), eps_t = eps0 tau / max(t, tau), the rate is constant up to step tau and then
    decreases: averaging starts with theta_tau, where the O(1/t^alpha) phase that averaging
    accompanies begins (§2.1, §3.1.1). With a constant rate (tau = inf, including a member whose
    adaptive tau is still unset) it starts after the first epoch, once the iterates have left
    the random initialization. A tau set later by the adaptive rule does not move the start."""
    finite = torch.isfinite(tau)
    steps = torch.where(finite, tau.nan_to_num(posinf=0.0).floor().clamp(min=1), float(steps_per_epoch))
    return steps.view(-1, 1, 1)
