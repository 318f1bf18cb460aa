"""Hidden-unit non-linearities of §3.2 (and softsign, §6.1).

Each comes in three forms: out of place (for autograd), in place (for the hand-derived training
step and for validation, where no graph is kept), and its backward: a gradient with respect to
h = act(z) turned into one with respect to z, written in terms of h alone, so the backward
pass needs only the kept outputs. The backward uses ATen's fused kernels where one exists (3x
faster than composing the slope from elementwise operations).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from ..errors import unknown


def _tanh(x: torch.Tensor) -> torch.Tensor:
    # tanh(x) = 2 sigmoid(2x) - 1. On the CPUs measured here torch.sigmoid is vectorized and
    # torch.tanh is not (3-4x slower); the two agree to 2e-7 absolute.
    return torch.tanh(x) if x.is_cuda else torch.sigmoid(x * 2) * 2 - 1


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    return x.tanh_() if x.is_cuda else x.mul_(2).sigmoid_().mul_(2).sub_(1)


def _softsign_(x: torch.Tensor) -> torch.Tensor:
    return x.div_(x.abs().add_(1))


class Activation(NamedTuple):
    apply: Callable            # act(z), a new tensor
    apply_: Callable           # act(z) written over z
    backward: Callable         # (g, h) -> g * act'(z), from h = act(z)


aten = torch.ops.aten
ACTIVATIONS = {
    "sigmoid": Activation(torch.sigmoid, torch.sigmoid_, aten.sigmoid_backward),           # g h (1 - h)
    "tanh": Activation(_tanh, _tanh_, aten.tanh_backward),                                 # g (1 - h^2)
    "rectifier": Activation(torch.relu, torch.relu_, lambda g, h: aten.threshold_backward(g, h, 0)),
    # hard_tanh(z) = clamp(z, -1, 1): slope 1 strictly inside, where h = z; 0 at the corners.
    "hard_tanh": Activation(F.hardtanh, F.hardtanh_, lambda g, h: aten.hardtanh_backward(g, h, -1, 1)),
    # softsign(z) = z / (1 + |z|): slope 1 / (1 + |z|)^2 = (1 - |h|)^2.
    "softsign": Activation(F.softsign, _softsign_, lambda g, h: g * (1 - h.abs()).pow(2)),
}
ALIASES = {"relu": "rectifier", "hardtanh": "hard_tanh", "logistic": "sigmoid"}


def canonical(name: str) -> str:
    """The activation's name in the chapter's words ('relu' -> 'rectifier'); unknown names raise."""
    name = ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        raise unknown("activation (model.activation)", name, list(ACTIVATIONS) + list(ALIASES))
    return name


def activation(name: str) -> Activation:
    return ACTIVATIONS[canonical(name)]
