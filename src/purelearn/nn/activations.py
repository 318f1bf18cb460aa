"""Hidden-unit non-linearities of §3.2 (and softsign, §6.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import unknown

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "rectifier": torch.relu,
    "hard_tanh": F.hardtanh,
    "softsign": F.softsign,
}
ALIASES = {"relu": "rectifier", "hardtanh": "hard_tanh", "logistic": "sigmoid"}


def canonical(name: str) -> str:
    """The activation's name in the chapter's words ('relu' -> 'rectifier'); unknown names raise."""
    name = ALIASES.get(name, name)
    if name not in ACTIVATIONS:
        raise unknown("activation (model.activation)", name, list(ACTIVATIONS) + list(ALIASES))
    return name


def activation(name: str):
    return ACTIVATIONS[canonical(name)]
