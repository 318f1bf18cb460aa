"""Output units paired with their training criterion (§3.2): softmax + negative log-likelihood,
sigmoid + cross-entropy, linear + squared error. Each returns per-example values with a leading
member dimension, so a population computes all its members' losses at once."""

from __future__ import annotations

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
        target = (y.expand(z.shape[:2]) if y.dim() == 1 else y).reshape(-1)
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), target, reduction="none").view(z.shape[:2])
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(z, y.expand_as(z), reduction="none").sum(-1)
    return (z - y).pow(2).sum(-1)


def example_errors(output: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Error per example, [P, B]: misclassification (softmax), fraction of wrong labels
    (sigmoid), squared error (linear)."""
    if output == "softmax":
        return (z.argmax(-1) != y).to(z.dtype)
    if output == "sigmoid":
        return ((z > 0).to(z.dtype) != y).to(z.dtype).mean(-1)
    return (z - y).pow(2).sum(-1)
