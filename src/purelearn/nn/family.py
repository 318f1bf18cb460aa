"""What the training loop asks of a model family (§1.1-1.2: MLPs, auto-encoders, ...).

The loop (``train.population``) knows examples, schedules, patience and compaction; a family
knows its model: validating its spec, drawing and stacking members' parameters, which tensors
are weights of which layer, what members may share a population, and the computations on a
minibatch. Every method works on a population: parameters are a dict of tensors with a leading
member dimension P, and ``extras`` is the family's own per-member state (masks, coefficients,
generators) as a tree that ``optim.select`` compacts with the parameters.
"""

from __future__ import annotations

import abc
import contextlib
import numbers
from dataclasses import dataclass

import torch

from ..errors import ConfigError


class Members(list):
    """A per-member list of Python objects (generators, ...): ``optim.select`` keeps the members
    kept, as it does a tensor's rows."""

    def select(self, keep: torch.Tensor) -> "Members":
        return Members(self[i] for i in keep.tolist())


@dataclass
class Layer:
    """One layer of units of a population on a minibatch, as the diagnostics see it (§4.1-4.2).

    pre: the pre-activations z [P, B, H]; post: the units' outputs act(z) [P, B, H]; grad: each
    example's gradient of its own loss (and penalties) with respect to z, [P, B, H] (None where
    the family's update is not a gradient). The widths are padded to the widest member: member
    p's real units are ``family.sizes(its spec, ...)[size]``."""

    name: str                    # "hidden 1", "output", "code", "reconstruction", ...
    activation: str              # its non-linearity (an output's name for output units)
    size: int                    # its place in ``Family.sizes``
    pre: torch.Tensor
    post: torch.Tensor
    grad: torch.Tensor | None
    represents: bool = True      # a representation of the input (a linear probe reads it)
    bias: str | None = None      # the parameter added to its pre-activations (what moves them alone)


class Family(abc.ABC):
    """A model family; ``spec`` below is one member's model (a frozen dataclass of its own)."""

    name: str
    spec: type                         # the dataclass of one member's model
    supervised = True                  # learns targets y; otherwise its own input
    fused = False                      # has ``sgd_step``: plain SGD fused into its backward pass
    # its sgd_step replays from a captured CUDA graph (``train.replay``): it draws nothing from a
    # generator and keeps no tensor between steps, which a replay would freeze at their capture
    replayable = False
    leaves_out_constant_inputs = False  # may train without inputs zero in every training example
    gradient_of_criterion = True       # its training signal is the gradient of its criterion (§4.1 checks it)

    @abc.abstractmethod
    def check(self, spec, splits):
        """The validated spec, with names made canonical and defaults resolved for the data."""

    @abc.abstractmethod
    def n_layers(self, spec) -> int:
        """Weight layers, for the per-layer training knobs (l1, l2, lr_scale: output last)."""

    @abc.abstractmethod
    def widths(self, spec) -> tuple[int, ...]:
        """Layer widths that may differ inside a population (padded to the widest)."""

    @abc.abstractmethod
    def group_key(self, spec) -> tuple:
        """Members with equal keys (and training keys) can train as one population."""

    @abc.abstractmethod
    def sizes(self, spec, n_in: int, n_out: int) -> list[int]:
        """Units per layer, input first: what a member costs and how it is described."""

    @abc.abstractmethod
    def n_params(self, spec, n_in: int, n_out: int) -> int:
        """Number of trained numbers of one member."""

    @abc.abstractmethod
    def init(self, spec, n_in: int, n_out: int, seed: int) -> dict[str, torch.Tensor]:
        """One member's parameters, drawn from its own seed (the same alone or in a population)."""

    def given(self, spec, start: dict, n_in: int, n_out: int) -> dict[str, torch.Tensor]:
        """A member's initial parameters given instead of drawn: checked against the shapes it
        would draw, copied (training changes them in place)."""
        shapes = {k: tuple(v.shape) for k, v in self.init(spec, n_in, n_out, 0).items()}
        got = {k: tuple(torch.as_tensor(v).shape) for k, v in start.items()}
        if got != shapes:
            raise ConfigError(f"the given initial parameters {got} don't fit this {self.name}, which has {shapes}.")
        return {k: torch.as_tensor(v, dtype=torch.float32).detach().clone().cpu() for k, v in start.items()}

    @abc.abstractmethod
    def stack(self, members, drawn: list[dict], data) -> tuple[dict, dict]:
        """(parameters [P, ...], extras) of a population from each member's own parameters
        (drawn, or given as ``member.start``)."""

    @abc.abstractmethod
    def unstack(self, params: dict, p: int, spec, data) -> dict[str, torch.Tensor]:
        """Member p's parameters cut back to its own sizes, in the data's input order."""

    @abc.abstractmethod
    def layer(self, spec, name: str) -> int:
        """The weight layer a parameter tensor belongs to (counted as ``n_layers``)."""

    @abc.abstractmethod
    def is_weight(self, name: str) -> bool:
        """Weights decay; biases only with train.decay_biases."""

    @abc.abstractmethod
    def signal(self, spec, hp, params: dict, extras: dict, X: torch.Tensor, y: torch.Tensor):
        """(losses [P], criterion [P], gradients) on a minibatch X [P, B, d] (targets y): the
        criterion includes the penalties; the gradients are the direction the update rule
        descends (a loss's gradient, or an estimate of one)."""

    def sgd_step(self, spec, params, extras, X, y, rates) -> torch.Tensor:
        """A fused plain-SGD update with each member's rate [P]; returns the losses [P]."""
        raise NotImplementedError

    def fuses(self, spec, hp, extras: dict) -> bool:
        """Whether plain SGD of this population is ``sgd_step`` (its criterion then being its
        loss): it has one, and no penalty on the units needs the criterion's own gradient."""
        return self.fused and hp.sparsity == "none"

    @abc.abstractmethod
    def inside(self, spec, hp, params: dict, extras: dict, X: torch.Tensor, y: torch.Tensor,
               gradients: bool = True):
        """(layers, gradients) on a minibatch as ``signal`` computes them: each layer of units
        (``Layer``) and the parameters' gradients (the direction the update descends); without
        ``gradients``, the forward pass alone (no gradient in the layers, None for the
        parameters'). May draw from the extras' generators as ``signal`` does."""

    @abc.abstractmethod
    def predict(self, spec, params: dict, X: torch.Tensor) -> torch.Tensor:
        """One member's (unstacked parameters) outputs [n, k] for inputs X [n, d]."""

    @abc.abstractmethod
    def loss(self, spec, params: dict, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One member's training loss [n] per example (no penalty, no corruption)."""

    @abc.abstractmethod
    def encode(self, spec, params: dict, X: torch.Tensor) -> torch.Tensor:
        """One member's representation [n, H] of inputs X [n, d] (its top hidden layer)."""

    @abc.abstractmethod
    def evaluate(self, spec, params: dict, extras: dict, X: torch.Tensor, y: torch.Tensor):
        """(error [P, N], monitors {name: [P, N]}) per validation example, without a graph: the
        error is what early stopping minimizes, the monitors are recorded beside it (the first
        is the result's ``best_valid_loss``)."""


class OneHiddenLayer(Family):
    """A family of one hidden layer of H units that learns its own inputs (auto-encoders,
    RBMs): ``W0`` [P, H, d], ``b0`` [P, 1, H], ``b1`` [P, 1, d] (the input side's biases), and a
    decoder's own ``W1`` [P, d, H] where it has one. Its spec checks itself against the
    training inputs, labeled or not (``spec.checked(X)``)."""

    supervised = False

    def check(self, spec, splits):
        return spec.checked(splits.inputs())

    def widths(self, spec) -> tuple[int, ...]:
        return (spec.hidden,)

    def is_weight(self, name: str) -> bool:
        return name.startswith("W")

    def encoder_activation(self, spec) -> str:
        """The non-linearity of ``encode``: what a network initialized from it must use."""
        return spec.activation

    def unstack(self, params, p, spec, data) -> dict[str, torch.Tensor]:
        H = spec.hidden
        out = {"W0": params["W0"][p, :H], "b0": params["b0"][p, :, :H], "b1": params["b1"][p]}
        if "W1" in params:
            out["W1"] = params["W1"][p, :, :H]
        return {k: v.detach().cpu().clone() for k, v in out.items()}


def hidden_size(value, what: str) -> int:
    """The size of a family's one hidden layer, given as a number or a list of one number."""
    hidden = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if not isinstance(hidden, numbers.Integral) or isinstance(hidden, bool) or hidden < 1:
        raise ConfigError(f"model.hidden = {value!r}: {what}; give its size, a whole number >= 1.")
    return int(hidden)


def generators(tree) -> list[torch.Generator]:
    """Every random generator in a family's extras."""
    if isinstance(tree, dict):
        return [g for v in tree.values() for g in generators(v)]
    if isinstance(tree, list):
        return [g for v in tree for g in generators(v)]
    return [tree] if isinstance(tree, torch.Generator) else []


@contextlib.contextmanager
def untouched(extras: dict):
    """A copy of the extras to compute with, after which the family's state is as it was: its
    generators set back where they stood and its entries (persistent chains, ...) those of
    before. What diagnostics compute then leaves training exactly as it would have been."""
    drawn = generators(extras)
    states = [g.get_state() for g in drawn]
    try:
        yield _copy(extras)
    finally:
        for g, state in zip(drawn, states):
            g.set_state(state)


def _copy(tree):
    return {k: _copy(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def one(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One member's parameters as a population of one (a leading dimension of 1)."""
    return {k: torch.as_tensor(v).unsqueeze(0) for k, v in params.items()}


FAMILIES: dict[str, Family] = {}


def register(cls: type[Family]) -> type[Family]:
    """Class decorator: the family's one instance, found by name (``[model] family``)."""
    FAMILIES[cls.name] = cls()
    return cls


def family_of(spec) -> Family:
    return FAMILIES[spec.family]
