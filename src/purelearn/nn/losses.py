"""Output units paired with their training criterion (§3.2): softmax + negative log-likelihood,
sigmoid + cross-entropy, linear + squared error. Each returns per-example values with a leading
member dimension, so a population computes all its members' losses at once."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ConfigError, unknown

OUTPUTS = ("softmax", "sigmoid", "linear")
DEFAULT_OUTPUT = {"classification": "softmax", "multilabel": "sigmoid", "regression": "linear"}


def output_for(output: str, task: str) -> str:
    """Resolve ``'auto'`` from the task and refuse an output that can't fit the targets."""
    if output == "auto":
        return DEFAULT_OUTPUT[task]
    if output not in OUTPUTS:
        raise unknown("output (model.output)", output, OUTPUTS + ("auto",))
    if (output == "softmax") != (task == "classification"):
        raise ConfigError(f"model.output = {output!r} does not fit a {task} task; "
                          f"use {DEFAULT_OUTPUT[task]!r} (or 'auto').")
    return output


def example_losses(output: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss per example, [P, B], from output pre-activations ``z`` [P, B, k]."""
    if output == "softmax":
        # Classes along dim 1: many times faster on CPU than flattening to [P*B, k].
        return F.cross_entropy(z.transpose(1, 2), y.expand(z.shape[:2]), reduction="none")
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, y.expand_as(z), reduction="none").sum(-1)
    return (z - y).pow(2).sum(-1)


def output_delta(output: str, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss per example [P, B] and its gradient with respect to ``z`` [P, B, k], by hand: each
    output is paired with its loss so that the gradient is prediction minus target (twice that
    for squared error). ``z`` is overwritten."""
    if output == "softmax":
        z = z.sub_(z.amax(-1, keepdim=True))       # shifted for a stable exp
        index = y.expand(z.shape[:2]).unsqueeze(-1) if y.dim() == 1 else y.unsqueeze(-1)
        p = z.exp()
        total = p.sum(-1, keepdim=True)
        losses = total.log().sub_(z.gather(-1, index)).squeeze(-1)
        return losses, p.div_(total).scatter_add_(-1, index, p.new_full(index.shape, -1.0))
    if output == "sigmoid":
        y = y.expand_as(z)
        return F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(-1), z.sigmoid_().sub_(y)
    diff = z.sub_(y)
    return diff.pow(2).sum(-1), diff.mul_(2)


def example_errors(output: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Error per example, [P, B]: misclassification (softmax), fraction of wrong labels
    (sigmoid), squared error (linear)."""
    if output == "softmax":
        return _not_argmax(z, y).to(z.dtype)
    if output == "sigmoid":
        return ((z > 0).to(z.dtype) != y).to(z.dtype).mean(-1)
    return (z - y).pow(2).sum(-1)


def _not_argmax(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmax(z, -1) != y, exactly (the first largest output wins, a NaN counting as the
    largest), from float reductions over the classes taken as the outer dimension, which is
    how the output layer lays z out: there they are vectorized, where on CPU argmax and boolean
    reductions are not (128 members x 359 examples x 10 classes, laid out so: 0.74 ms against
    6.1 ms for argmax, 1.65 ms for argmax with the classes inner)."""
    zt = z.transpose(-1, -2)                        # [..., k, N]
    top = zt.amax(-2)                               # NaN when the example's outputs hold one
    zy = zt.gather(-2, y.expand(z.shape[:-1]).unsqueeze(-2)).squeeze(-2)
    earlier = torch.arange(zt.shape[-2], device=z.device).unsqueeze(-1) < y.unsqueeze(-2)
    before = torch.where(earlier, zt, -math.inf).amax(-2)    # the largest of the classes before y
    first = (before < top) | (y == 0)
    right = torch.where(top.isnan(), zy.isnan() & ~before.isnan(), (zy == top) & first)
    return ~right
