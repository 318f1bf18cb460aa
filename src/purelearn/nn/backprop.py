"""The MLP's backward pass derived by hand (§2.2's chain rule, written out for this one family).

For an MLP the gradient is a short recursion: with delta_L the gradient of the loss with respect
to the output pre-activations (rows are examples), delta_{l-1} = (delta_l W_l) * act'(z_{l-1}),
and dW_l = delta_l^T h_{l-1}, db_l = sum of delta_l over the minibatch. Written out, it needs no
recorded graph and lets plain SGD add delta^T h straight into W (one fused matrix product per
layer, no gradient tensors); the tests check it against autograd.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .activations import activation as activation_fn


def columns(W: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """W's columns for input h: all of them, or the first ones when h is narrower (training
    inputs without the inputs that are zero in every training example, see train.Data)."""
    return W if h.shape[-1] == W.shape[-1] else W[..., :h.shape[-1]]


def deltas(params: dict[str, torch.Tensor], X: torch.Tensor, hidden: list[torch.Tensor], delta: torch.Tensor,
           activation: str) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield (l, input of layer l, delta_l) from the top layer down, for a population: X
    [P, B, d], hidden activations [P, B, H_l], delta [P, B, k] (any scaling carries through,
    the recursion being linear). delta_{l-1} is computed from W_l before yielding, so the caller
    may update W_l in place as soon as it gets layer l. Padded units need no mask here: their
    weights are zero, and a masked sigmoid unit (h = 0) has slope h (1 - h) = 0."""
    backward = activation_fn(activation).backward
    for l in range(len(hidden), -1, -1):
        below = torch.bmm(delta, params[f"W{l}"]) if l else None
        yield l, (hidden[l - 1] if l else X), delta
        if l:
            delta = backward(below, hidden[l - 1])


def gradients(params: dict[str, torch.Tensor], X: torch.Tensor, hidden: list[torch.Tensor], delta: torch.Tensor,
              activation: str) -> dict[str, torch.Tensor]:
    """Every parameter's gradient, named as in ``params``, for the output gradient ``delta``."""
    grads = {}
    for l, h, d in deltas(params, X, hidden, delta, activation):
        grads[f"W{l}"], grads[f"b{l}"] = layer_gradients(params[f"W{l}"], h, d)
    return {name: grads[name] for name in params}


def layer_gradients(W: torch.Tensor, h: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of layer l's weights and biases from its input h and its delta d."""
    g = torch.bmm(d.transpose(1, 2), h)
    width = W.shape[-1]                       # inputs left out of X have a zero gradient
    return (g if g.shape[-1] == width else torch.nn.functional.pad(g, (0, width - g.shape[-1])),
            d.sum(1, keepdim=True))


def sgd_step(params: dict[str, torch.Tensor], X: torch.Tensor, hidden: list[torch.Tensor], delta: torch.Tensor,
             activation: str) -> None:
    """Plain SGD fused into the backward pass: W_l += delta_l^T h_{l-1}, in place, for ``delta``
    already scaled by minus each member's rate."""
    for l, h, d in deltas(params, X, hidden, delta, activation):
        columns(params[f"W{l}"], h).baddbmm_(d.transpose(1, 2), h)   # inputs left out of X: no change
        params[f"b{l}"].add_(d.sum(1, keepdim=True))
