"""Polyak averaging (§3.1.1, footnote 19): predictions use the running mean of the iterates."""

from __future__ import annotations

import torch


def polyak_init(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in params.items()}


def polyak_update(average: dict[str, torch.Tensor], params: dict[str, torch.Tensor], step: int) -> None:
    """avg_t = avg_{t-1} + (theta_t - avg_{t-1}) / (t + 1): the mean of theta_0..theta_t."""
    with torch.no_grad():
        for name, a in average.items():
            a.add_(params[name] - a, alpha=1.0 / (step + 1))
