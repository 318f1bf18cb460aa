"""The multi-layer perceptron, with parameters stacked over a population of members.

A population's parameters are a dict of tensors with a leading member dimension: ``W{l}``
[P, fan_out, fan_in] (the chapter's W x, and torch.nn.Linear's layout) and ``b{l}``
[P, 1, fan_out]; the forward pass is batched matrix products. The [fan_out, fan_in] layout
matters for speed: with a narrow output layer (10 classes) the products run 2-3x faster on CPU
than with [fan_in, fan_out] (benchmarks/RESULTS.md).
Members may differ in layer widths: each layer is padded to the widest member and the extra
units are masked to zero, so they neither compute nor learn (their weights start and stay 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, unknown
from .activations import activation as activation_fn
from .activations import canonical
from .init import SCHEMES, init_bound
from .losses import output_for


@dataclass(frozen=True)
class MLP:
    """Architecture of one member (§3.2).

    hidden: sizes of the hidden layers, e.g. (256, 256); () is a linear/logistic model.
    activation: sigmoid, tanh, rectifier, hard_tanh or softsign.
    output: softmax, sigmoid, linear, or auto (from the task).
    init: 'glorot' (sqrt(6/(fan_in+fan_out))) or 'fan_in' (sqrt(3/fan_in)); x4 for sigmoid.
    init_scale: multiplies the initial range. zero_output: start output weights at 0.
    """

    hidden: tuple[int, ...] = (100,)
    activation: str = "tanh"
    output: str = "auto"
    init: str = "glorot"
    init_scale: float = 1.0
    zero_output: bool = False

    def checked(self, task: str) -> "MLP":
        """Validated copy with names made canonical and the output resolved for ``task``."""
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if any(not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 1 for h in hidden):
            raise ConfigError(f"model.hidden = {list(hidden)}: each layer size must be a whole number >= 1.")
        if self.init not in SCHEMES:
            raise unknown("initialization (model.init)", self.init, SCHEMES)
        if not self.init_scale > 0:
            raise ConfigError(f"model.init_scale = {self.init_scale} must be > 0.")
        return MLP(tuple(int(h) for h in hidden), canonical(self.activation),
                   output_for(self.output, task), self.init, float(self.init_scale), bool(self.zero_output))

    def sizes(self, n_in: int, n_out: int) -> list[int]:
        return [n_in, *self.hidden, n_out]


def init_member(spec: MLP, n_in: int, n_out: int, seed: int) -> dict[str, torch.Tensor]:
    """One member's parameters (unstacked), drawn from its own seeded generator so a member
    gets the same start alone or in any population. Biases start at 0."""
    g = torch.Generator().manual_seed(int(seed))
    sizes = spec.sizes(n_in, n_out)
    params = {}
    for l, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        r = init_bound(fi, fo, spec.activation, spec.init, spec.init_scale)
        w = torch.empty(fo, fi).uniform_(-r, r, generator=g)   # in its stored layout, in one pass
        if spec.zero_output and l == len(sizes) - 2:
            w.zero_()
        params[f"W{l}"] = w
        params[f"b{l}"] = torch.zeros(1, fo)
    return params


def stack_members(members: list[dict[str, torch.Tensor]], device=None) -> dict[str, torch.Tensor]:
    """Stack per-member parameters, zero-padding each to the widest member, on ``device`` (the
    members' own by default): padding there moves only the members' own weights to it."""
    out = {}
    for name in members[0]:
        shape = [max(m[name].shape[d] for m in members) for d in range(members[0][name].dim())]
        t = torch.zeros(len(members), *shape, device=device)
        for p, m in enumerate(members):
            t[(p, *[slice(0, s) for s in m[name].shape])] = m[name]
        out[name] = t
    return out


def unit_masks(hidden_per_member: list[tuple[int, ...]]) -> list[torch.Tensor] | None:
    """Masks [P, 1, H_l] of real units per hidden layer, or None when all widths agree."""
    if len(set(hidden_per_member)) == 1:
        return None
    widths = np.array(hidden_per_member)
    return [torch.from_numpy(np.arange(widths[:, l].max())[None, :] < widths[:, l:l + 1]).float()
            .unsqueeze(1) for l in range(widths.shape[1])]


def forward(params: dict[str, torch.Tensor], X: torch.Tensor, activation: str,
            masks: list[torch.Tensor] | None = None, keep_hidden: bool = False):
    """Output pre-activations [P, B, k] for inputs X: [P, B, d] (one minibatch per member) or
    [B, d] (shared by all members). With ``keep_hidden`` also returns the hidden activations.
    Without a graph to record, activations are computed in place (no extra tensor per layer)."""
    act = activation_fn(activation)
    n_layers = len(params) // 2
    in_place = not (torch.is_grad_enabled() and params["W0"].requires_grad)
    h, hidden = X, []
    for l in range(n_layers):
        W, b = columns(params[f"W{l}"], h), params[f"b{l}"]
        if h.dim() == 2:
            z = _shared_input(h, W, b)
        elif l == n_layers - 1:
            z = _output_layer(h, W, b)
        else:
            z = torch.baddbmm(b, h, W.transpose(1, 2))
        if l == n_layers - 1:
            return (z, hidden) if keep_hidden else z
        h = act.apply_(z) if in_place else act.apply(z)
        if masks is not None:
            h = h.mul_(masks[l]) if in_place else h * masks[l]
        if keep_hidden:
            hidden.append(h)


def columns(W: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """W's columns for input h: all of them, or the first ones when h is narrower (training
    inputs without the inputs that are zero in every training example, see train.Data)."""
    return W if h.shape[-1] == W.shape[-1] else W[..., :h.shape[-1]]


def _output_layer(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The output layer's pre-activations [P, B, k], laid out in memory as [P, k, B]: with few
    outputs, W h^T runs 2.3x faster on CPU than h W^T (64 hidden units, 10 classes, P = 128),
    and the losses and errors reduce over the classes fastest in that layout (``nn.losses``)."""
    return torch.baddbmm(b.transpose(1, 2), W, h.transpose(1, 2)).transpose(1, 2)


def _shared_input(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """X [N, d] through every member's W [P, h, d]: one matrix product with the members side by
    side ([N, d] x [d, P*h]), which beats P separate ones, bias included."""
    P, h, d = W.shape
    z = torch.addmm(b.reshape(1, P * h), X, W.reshape(P * h, d).t())
    return z.view(-1, P, h).transpose(0, 1)


def member_params(params: dict[str, torch.Tensor], p: int, spec: MLP, n_in: int,
                  n_out: int) -> dict[str, torch.Tensor]:
    """Member p's parameters cut back from the padded stack to its own sizes."""
    sizes = spec.sizes(n_in, n_out)
    out = {}
    for l, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"W{l}"] = params[f"W{l}"][p, :fo, :fi].detach().clone()
        out[f"b{l}"] = params[f"b{l}"][p, :, :fo].detach().clone()
    return out


def predict_scores(params: dict[str, torch.Tensor], X, activation: str) -> torch.Tensor:
    """One member's output pre-activations [n, k] for inputs X [n, d]."""
    stacked = {k: v.unsqueeze(0) for k, v in params.items()}
    with torch.no_grad():
        return forward(stacked, torch.as_tensor(X, dtype=torch.float32), activation)[0]
