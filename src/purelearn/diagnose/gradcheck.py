"""The gradient check of §4.1: a family's training signal against centered finite differences
of its criterion, in float64, per parameter tensor and per layer, so a wrong gradient is
located, not only detected.

The criterion is what the family's ``signal`` descends on a minibatch: the loss and the
penalties it computes (sparsity, contraction; weight decay is an update rule of its own, checked
against its formula in the tests of ``optim``). Its random draws (a denoising auto-encoder's
corruption) are replayed identically for every evaluation. A small tensor is checked entry by
entry; a large one along random directions d, comparing g.d with (C(w + e d) - C(w - e d)) / 2e,
so that a 784-500 layer takes seconds. An RBM's CD-k direction is not the gradient of any
criterion, so it has no such check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..nn import family_of
from ..nn.family import generators
from ..train import Data, Member, check_member

EPSILON = 1e-4          # the chapter's suggestion, on a float64 copy
TOLERANCE = 1e-6        # relative error above which a tensor's gradient is wrong


@dataclass
class TensorCheck:
    """One parameter tensor: its layer, how it was probed, and the relative error
    ||g - fd|| / (||g|| + ||fd||) of the gradient g against the finite differences fd."""

    name: str
    layer: int
    probed: str                 # "every entry" or "N directions"
    error: float
    ok: bool

    def summary(self) -> dict:
        return {"tensor": self.name, "layer": self.layer, "probed": self.probed,
                "relative_error": self.error, "ok": self.ok}


@dataclass
class GradientCheck:
    """The parameters' gradients (``tensors``) and each layer's gradient with respect to its
    pre-activations (``activations``: a TensorCheck named by the layer of units, its ``layer``
    the weight layer that computes it)."""

    family: str
    tensors: list[TensorCheck] = field(default_factory=list)
    skipped: str | None = None          # why the family has no gradient to check
    activations: list[TensorCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors + self.activations)

    @property
    def wrong_layers(self) -> list[int]:
        return sorted({t.layer for t in self.tensors + self.activations if not t.ok})

    def summary(self) -> dict:
        return {"family": self.family, "ok": self.ok, "wrong_layers": self.wrong_layers, "skipped": self.skipped,
                "tensors": [t.summary() for t in self.tensors], "activations": [t.summary() for t in self.activations]}


def check_gradients(member: Member, splits, *, family=None, examples: int = 16, epsilon: float = EPSILON,
                    directions: int = 6, every_entry_below: int = 128, tolerance: float = TOLERANCE,
                    seed: int = 0) -> GradientCheck:
    """Check ``member``'s gradients on its first ``examples`` training examples (``family``: the
    family to check, by default the member's own; a test passes a broken copy)."""
    family = family or family_of(member.model)
    if not hasattr(family, "gradient_of_criterion") or not family.gradient_of_criterion:
        return GradientCheck(family.name, skipped=f"the {family.name}'s update is not the gradient of a criterion")
    member = check_member(member, splits)
    data = Data(splits, torch.device("cpu"), leave_out=False, unlabeled=not family.supervised)
    drawn = family.init(member.model, data.n_in, data.n_out, member.train.seed) if member.start is None \
        else family.given(member.model, member.start, data.n_in, data.n_out)
    params, extras = family.stack([member], [drawn], data)
    params = {k: v.double() for k, v in params.items()}
    extras = _double(extras)
    X = data.X_train[:examples].double().unsqueeze(0)
    y = X if not family.supervised else data.y_train[:examples].unsqueeze(0)
    if y.is_floating_point():
        y = y.double()
    replay = _Replay(extras)

    def criterion(p) -> float:
        replay.rewind()
        return float(family.signal(member.model, member.train, p, extras, X, y)[1].sum())

    replay.rewind()
    grads = family.signal(member.model, member.train, params, extras, X, y)[2]
    rng = np.random.default_rng(seed)
    out = GradientCheck(family.name)
    for name, w in params.items():
        g = grads[name].double()
        probes = _probes(w, rng, directions, every_entry_below)
        probed = "every entry" if w.numel() <= every_entry_below else f"{directions} directions"
        analytic, numeric = [], []
        for d in probes:
            analytic.append(float((g * d).sum()))
            numeric.append((criterion({**params, name: w + epsilon * d})
                            - criterion({**params, name: w - epsilon * d})) / (2 * epsilon))
        a, n = np.array(analytic), np.array(numeric)
        scale = np.linalg.norm(a) + np.linalg.norm(n)
        error = float(np.linalg.norm(a - n) / scale) if scale > 0 else 0.0
        out.tensors.append(TensorCheck(name, family.layer(member.model, name), probed, error,
                                       math.isfinite(error) and error <= tolerance))
    out.activations = _activation_checks(family, member, params, extras, X, y, replay, epsilon, tolerance, rng,
                                         directions, every_entry_below)
    return out


def _activation_checks(family, member, params, extras, X, y, replay, epsilon, tolerance, rng, directions,
                       every_entry_below, examples: int = 4):
    """Each layer's gradient with respect to its pre-activations, as the family's ``inside``
    computes it (the MLP: its hand-derived deltas), against finite differences. On a batch of
    one example, moving the bias added to a layer's pre-activations moves them alone, so the
    criterion's slope along each bias entry is that example's gradient at that unit."""
    found: dict = {}
    for i in range(min(examples, X.shape[1])):
        x, t = X[:, i:i + 1], y[:, i:i + 1]
        replay.rewind()
        layers = family.inside(member.model, member.train, params, extras, x, t)[0]
        for layer in layers:
            if layer.grad is None or layer.bias is None:
                continue
            b = params[layer.bias]
            analytic, numeric = found.setdefault(layer.name, (layer.bias, [], []))[1:]
            for d in _probes(b, rng, directions, every_entry_below):
                analytic.append(float((layer.grad[0, 0] * d.view(-1)).sum()))
                numeric.append((_criterion(family, member, {**params, layer.bias: b + epsilon * d}, extras, x, t, replay)
                                - _criterion(family, member, {**params, layer.bias: b - epsilon * d}, extras, x, t,
                                             replay)) / (2 * epsilon))
    out = []
    for name, (bias, analytic, numeric) in found.items():
        a, n = np.array(analytic), np.array(numeric)
        scale = np.linalg.norm(a) + np.linalg.norm(n)
        error = float(np.linalg.norm(a - n) / scale) if scale > 0 else 0.0
        out.append(TensorCheck(name, family.layer(member.model, bias), f"{min(examples, X.shape[1])} examples one "
                               "at a time", error, math.isfinite(error) and error <= tolerance))
    return out


def _probes(w: torch.Tensor, rng, directions: int, every_entry_below: int) -> list[torch.Tensor]:
    """Each entry of a small tensor, or random unit directions through a large one."""
    if w.numel() <= every_entry_below:
        return [torch.zeros_like(w).view(-1).index_fill_(0, torch.tensor([i]), 1.0).view_as(w)
                for i in range(w.numel())]
    probes = [torch.as_tensor(rng.standard_normal(w.shape), dtype=w.dtype) for _ in range(directions)]
    return [d / d.norm() for d in probes]


def _criterion(family, member, params, extras, X, y, replay) -> float:
    replay.rewind()
    return float(family.signal(member.model, member.train, params, extras, X, y)[1].sum())


def _double(tree):
    """The family's extras with floating tensors in float64 (masks, coefficients)."""
    if isinstance(tree, dict):
        return {k: _double(v) for k, v in tree.items()}
    if isinstance(tree, list) and not hasattr(tree, "select"):
        return [_double(v) for v in tree]
    if isinstance(tree, torch.Tensor) and tree.is_floating_point():
        return tree.double()
    return tree


class _Replay:
    """Every random generator among the extras, set back to where it stood, so that each
    evaluation of the criterion draws the same corruption."""

    def __init__(self, extras):
        self.generators = generators(extras)
        self.states = [g.get_state() for g in self.generators]

    def rewind(self) -> None:
        for g, s in zip(self.generators, self.states):
            g.set_state(s)
