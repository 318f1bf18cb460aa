"""Update rules as pairs of functions, combined with ``chain`` (in the manner of optax).

``init(params) -> state`` and ``update(grads, state, params, **ctx) -> grads`` where every tensor
has a leading member dimension P. Updates are written in place into ``grads`` (out-of-place
temporaries make large populations slower than separate models); ``state`` is mutated in place
too. ``ctx`` carries what changes every step: ``step`` (1-based update count) and ``decay_scale``
(B'/T for the weight-decay scaling); the schedule's rates are applied by ``descend``. Every
hyper-parameter that may differ between members is a [P] tensor kept in the state, so dropping
finished members from a population is one ``select`` over the state.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch


class Transform(NamedTuple):
    init: Callable
    update: Callable


def per_member(value, P: int) -> torch.Tensor:
    """A hyper-parameter as a [P, 1, 1] tensor broadcastable against [P, ...] parameters."""
    t = torch.as_tensor(value, dtype=torch.float32)
    return (t.expand(P) if t.dim() == 0 else t).reshape(P, 1, 1).clone()


def chain(*transforms: Transform) -> Transform:
    """Apply transforms in order; the state is the tuple of their states."""
    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params, **ctx):
        for t, s in zip(transforms, state):
            grads = t.update(grads, s, params, **ctx)
        return grads

    return Transform(init, update)


def descend(params: dict[str, torch.Tensor], updates: dict[str, torch.Tensor], lr: torch.Tensor) -> None:
    """theta <- theta - eps_t * update, in place, with the [P] rates ``lr`` of the schedule
    (eq. 1-2). One fused pass per tensor: the rate is not a transform of its own because a
    separate scaling pass costs as much again as the step."""
    neg = (-lr).view(-1, 1, 1)
    with torch.no_grad():
        for name, u in updates.items():
            params[name].addcmul_(u, neg)


def select(tree, keep: torch.Tensor):
    """Keep members ``keep`` (indices) of every tensor in a nested dict/tuple/list state, and of
    every object in it that selects its own members (``tree.select(keep)``)."""
    if isinstance(tree, torch.Tensor):
        return tree.index_select(0, keep) if tree.dim() else tree
    if hasattr(tree, "select"):
        return tree.select(keep)
    if isinstance(tree, dict):
        return {k: select(v, keep) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(select(v, keep) for v in tree)
    return tree
