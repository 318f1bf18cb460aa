"""The update rules of §3.1.1, §3.2 and §6.2 as small transforms (see ``base``)."""

from __future__ import annotations

import torch

from ..errors import unknown
from .base import Transform

MOMENTUM_FORMS = ("average", "classical", "nesterov")


def add_decay(l2: dict[str, torch.Tensor], l1: dict[str, torch.Tensor]) -> Transform:
    """Add the gradient of the weight penalty lambda2 * sum(w^2) + lambda1 * sum|w| (§3.2).

    ``l2``/``l1`` map parameter names to [P, 1, 1] coefficients (names absent are not
    penalized: biases by default). The gradient is scaled by ``ctx['decay_scale']`` = B'/T
    (B' the size of this minibatch, T the training-set size) so that the penalty adds up to
    exactly lambda * Omega(theta) over one epoch, short last minibatch included.
    """
    def init(params):
        return {"l2": dict(l2), "l1": dict(l1)}

    def update(grads, state, params, decay_scale=1.0, **ctx):
        for name, coef in state["l2"].items():
            grads[name].addcmul_(params[name], coef, value=2.0 * decay_scale)
        for name, coef in state["l1"].items():
            grads[name].addcmul_(params[name].sign(), coef, value=decay_scale)
        return grads

    return Transform(init, update)


def momentum(coef: torch.Tensor, form: str = "average") -> Transform:
    """Momentum with coefficient m ([P, 1, 1]).

    ``average``: the chapter's moving average g_bar <- (1 - beta) g_bar + beta g with
    beta = 1 - m (m = 0 is plain SGD); ``classical``: v <- m v + g; ``nesterov``:
    v <- m v + g and the step follows g + m v.
    """
    if form not in MOMENTUM_FORMS:
        raise unknown("momentum form (train.momentum_form)", form, MOMENTUM_FORMS)

    def init(params):
        return {"m": coef, "one_minus_m": 1 - coef,
                "v": {k: torch.zeros_like(p) for k, p in params.items()}}

    def update(grads, state, params, **ctx):
        m = state["m"]
        for name, g in grads.items():
            v = state["v"][name]
            if form == "average":
                v.mul_(m).addcmul_(g, state["one_minus_m"])
                g.copy_(v)
            else:
                v.mul_(m).add_(g)
                if form == "classical":
                    g.copy_(v)
                else:
                    g.addcmul_(v, m)
        return grads

    return Transform(init, update)


def adagrad(eps: float = 1e-8) -> Transform:
    """Per-parameter rates (§6.2): divide by the root of the sum of past squared gradients."""
    def init(params):
        return {k: torch.zeros_like(p) for k, p in params.items()}

    def update(grads, state, params, **ctx):
        for name, g in grads.items():
            acc = state[name].addcmul_(g, g)
            g.div_(acc.sqrt().add_(eps))
        return grads

    return Transform(init, update)


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Transform:
    """Adam (Kingma & Ba 2015), with bias correction from ``ctx['step']``."""
    def init(params):
        return {"m": {k: torch.zeros_like(p) for k, p in params.items()},
                "v": {k: torch.zeros_like(p) for k, p in params.items()}}

    def update(grads, state, params, step=1, **ctx):
        c1, c2 = 1 - b1 ** step, 1 - b2 ** step
        for name, g in grads.items():
            m = state["m"][name].mul_(b1).add_(g, alpha=1 - b1)
            v = state["v"][name].mul_(b2).addcmul_(g, g, value=1 - b2)
            torch.div(m, c1, out=g)
            g.div_(v.div(c2).sqrt_().add_(eps))
        return grads

    return Transform(init, update)


def scale_by_layer(factors: dict[str, torch.Tensor]) -> Transform:
    """Layer-specific learning rates (§3.1.1): multiply each named parameter's step by its
    [P, 1, 1] factor."""
    def init(params):
        return dict(factors)

    def update(grads, state, params, **ctx):
        for name, f in state.items():
            grads[name].mul_(f)
        return grads

    return Transform(init, update)
