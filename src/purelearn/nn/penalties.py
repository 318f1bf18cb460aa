"""Penalties of §3.2: weight decay norms Omega(theta) and activation sparsity.

Weight decay is applied to gradients by ``purelearn.optim.add_decay`` (with the B/T scaling);
the norms here are its reference definitions. Sparsity penalties act on the hidden activations h
of each minibatch and are added to the criterion, with one coefficient per member.
"""

from __future__ import annotations

import torch

from ..errors import unknown


def l2_norm(w: torch.Tensor) -> torch.Tensor:
    """Omega_2 = sum of squared weights (its gradient is 2w)."""
    return w.pow(2).sum()


def l1_norm(w: torch.Tensor) -> torch.Tensor:
    """Omega_1 = sum of absolute weights (its gradient is sign(w))."""
    return w.abs().sum()


def _kl(h, rho):
    # KL between Bernoulli(rho) and Bernoulli(mean activation), per unit; h must lie in (0, 1).
    m = h.mean(1).clamp(1e-6, 1 - 1e-6)
    return rho * torch.log(rho / m) + (1 - rho) * torch.log((1 - rho) / (1 - m))


SPARSITY = {
    # Each maps activations h [P, B, H] and target rho [P, 1] to a per-unit penalty [P, H].
    "l1": lambda h, rho: h.abs().mean(1),
    "student_t": lambda h, rho: torch.log1p(h.pow(2)).mean(1),
    "kl": _kl,
    "squared": lambda h, rho: (h.mean(1) - rho).pow(2),
}
SPARSITY_KINDS = ("none",) + tuple(SPARSITY)


def sparsity_penalty(kind: str, h: torch.Tensor, rho: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Penalty per member, [P]: summed over the (unmasked) units of one layer.

    ``l1``: mean |h|; ``student_t``: mean log(1 + h^2); ``kl``: KL(rho || mean h) for units
    in (0, 1) (sigmoid); ``squared``: (mean h - rho)^2. Means run over the minibatch.
    """
    if kind not in SPARSITY:
        raise unknown("sparsity penalty (train.sparsity)", kind, SPARSITY_KINDS)
    per_unit = SPARSITY[kind](h, rho.view(-1, 1))
    if mask is not None:
        per_unit = per_unit * mask.view(per_unit.shape[0], -1)
    return per_unit.sum(-1)
