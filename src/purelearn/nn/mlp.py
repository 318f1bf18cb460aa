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
from typing import ClassVar

import numpy as np
import torch

from ..errors import ConfigError, unknown
from .activations import activation as activation_fn
from .activations import canonical
from .backprop import columns, deltas, gradients, layer_gradients, sgd_step
from .family import Family, Layer, one, register
from .init import SCHEMES, init_bound
from .losses import example_errors, example_losses, output_delta, output_for
from .penalties import sparsity_penalty


@dataclass(frozen=True)
class MLP:
    """Architecture of one member (§3.2).

    hidden: sizes of the hidden layers, e.g. (256, 256); () is a linear/logistic model.
    activation: sigmoid, tanh, rectifier, hard_tanh or softsign.
    output: softmax, sigmoid, linear, or auto (from the task).
    init: 'glorot' (sqrt(6/(fan_in+fan_out))) or 'fan_in' (sqrt(3/fan_in)); x4 for sigmoid.
    init_scale: multiplies the initial range. zero_output: start output weights at 0.
    """

    family: ClassVar[str] = "mlp"

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
    """One member's output pre-activations [n, k] for inputs X [n, d], in the parameters' dtype."""
    stacked = one(params)
    with torch.no_grad():
        return forward(stacked, torch.as_tensor(X, dtype=stacked["W0"].dtype), activation)[0]


@register
class MLPFamily(Family):
    """The MLP trained on targets, with its hand-derived backward pass (``nn.backprop``) and
    plain SGD fused into it; autograd only for a sparsity penalty on the hidden units."""

    name = "mlp"
    spec = MLP
    fused = True
    replayable = True
    leaves_out_constant_inputs = True

    def check(self, spec: MLP, splits) -> MLP:
        return spec.checked(splits.task)

    def n_layers(self, spec: MLP) -> int:
        return len(spec.hidden) + 1

    def widths(self, spec: MLP) -> tuple[int, ...]:
        return spec.hidden

    def group_key(self, spec: MLP) -> tuple:
        return (len(spec.hidden), spec.activation, spec.output)

    def sizes(self, spec: MLP, n_in: int, n_out: int) -> list[int]:
        return spec.sizes(n_in, n_out)

    def n_params(self, spec: MLP, n_in: int, n_out: int) -> int:
        sizes = spec.sizes(n_in, n_out)
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))

    def init(self, spec: MLP, n_in: int, n_out: int, seed: int) -> dict[str, torch.Tensor]:
        return init_member(spec, n_in, n_out, seed)

    def stack(self, members, drawn, data):
        for p in drawn:                   # before padding: fewer columns to move
            p["W0"] = data.reorder(p["W0"])
        dev = data.device
        masks = unit_masks([m.model.hidden for m in members])
        extras = {"masks": None if masks is None else [m.to(dev) for m in masks],
                  "sparsity_coef": torch.tensor([float(m.train.sparsity_coef) for m in members], device=dev),
                  "sparsity_target": torch.tensor([float(m.train.sparsity_target) for m in members], device=dev)}
        return stack_members(drawn, dev), extras

    def unstack(self, params, p, spec, data):
        best = {k: v[p].unsqueeze(0).cpu() for k, v in params.items()}
        best["W0"] = data.reorder(best["W0"], back=True)
        return member_params(best, 0, spec, data.n_in, data.n_out)

    def layer(self, spec, name: str) -> int:
        return int(name[1:])

    def is_weight(self, name: str) -> bool:
        return name.startswith("W")

    @staticmethod
    def _forward_masks(spec, extras):
        # A padded unit has zero weights in and out, so it outputs act(0) and learns nothing as
        # long as act(0) = 0; only the sigmoid (act(0) = 1/2) needs its output masked.
        return extras["masks"] if spec.activation == "sigmoid" else None

    def signal(self, spec, hp, params, extras, X, y):
        if hp.sparsity != "none":
            return self._graph_gradients(spec, hp, params, extras, X, y)
        z, hidden = forward(params, X, spec.activation, self._forward_masks(spec, extras), keep_hidden=True)
        losses, delta = output_delta(spec.output, z, y)
        losses = losses.mean(1)
        return losses, losses, gradients(params, X, hidden, delta.div_(X.shape[1]), spec.activation)

    def sgd_step(self, spec, params, extras, X, y, rates):
        """One plain SGD update, fused into the backward pass; returns the minibatch losses [P]."""
        z, hidden = forward(params, X, spec.activation, self._forward_masks(spec, extras), keep_hidden=True)
        losses, delta = output_delta(spec.output, z, y)
        sgd_step(params, X, hidden, delta.mul_((rates / -X.shape[1]).view(-1, 1, 1)), spec.activation)
        return losses.mean(1)

    def _graph_gradients(self, spec, hp, params, extras, X, y):
        """Gradients through autograd, for criteria with a sparsity penalty on the hidden units."""
        tensors = list(params.values())
        for v in tensors:
            v.requires_grad_()
        try:
            z, hidden = forward(params, X, spec.activation, self._forward_masks(spec, extras), keep_hidden=True)
            losses = example_losses(spec.output, z, y).mean(1)
            masks = extras["masks"] or [None] * len(hidden)
            penalty = sum(sparsity_penalty(hp.sparsity, h, extras["sparsity_target"], m)
                          for h, m in zip(hidden, masks))
            criterion = losses + extras["sparsity_coef"] * penalty
            grads = torch.autograd.grad(criterion.sum(), tensors)
        finally:                          # the updates that follow are in place, outside any graph
            for v in tensors:
                v.requires_grad_(False)
        return losses.detach(), criterion.detach(), dict(zip(params, grads))

    def inside(self, spec, hp, params, extras, X, y, gradients=True):
        """Every layer's pre-activations, outputs and deltas (the hand-derived backward pass,
        as ``signal`` computes it; through autograd with a sparsity penalty, as there too)."""
        if hp.sparsity != "none" and gradients:
            return self._graph_inside(spec, hp, params, extras, X, y)
        with torch.no_grad():
            pre, hidden = self._kept_forward(spec, params, extras, X)
            if not gradients:
                return self._layers(spec, pre, hidden, {}), None
            _, delta = output_delta(spec.output, pre[-1].clone(), y)
            grads, per_example = {}, {}
            for l, h, d in deltas(params, X, hidden, delta, spec.activation):
                per_example[l] = d
                grads[f"W{l}"], grads[f"b{l}"] = (g / X.shape[1] for g in layer_gradients(params[f"W{l}"], h, d))
        return self._layers(spec, pre, hidden, per_example), {k: grads[k] for k in params}

    def _graph_inside(self, spec, hp, params, extras, X, y):
        tensors = list(params.values())
        for v in tensors:
            v.requires_grad_()
        try:
            pre, hidden = self._kept_forward(spec, params, extras, X)
            losses = example_losses(spec.output, pre[-1], y).mean(1)
            masks = extras["masks"] or [None] * len(hidden)
            criterion = losses + extras["sparsity_coef"] * sum(
                sparsity_penalty(hp.sparsity, h, extras["sparsity_target"], m) for h, m in zip(hidden, masks))
            found = torch.autograd.grad(criterion.sum(), tensors + pre)
        finally:
            for v in tensors:
                v.requires_grad_(False)
        B = X.shape[1]
        per_example = {l: g * B for l, g in enumerate(found[len(tensors):])}
        return (self._layers(spec, [z.detach() for z in pre], [h.detach() for h in hidden], per_example),
                dict(zip(params, found[:len(tensors)])))

    def _kept_forward(self, spec, params, extras, X):
        """Every layer's pre-activations and every hidden layer's outputs, out of place."""
        act, masks = activation_fn(spec.activation), self._forward_masks(spec, extras)
        pre, hidden, h = [], [], X
        for l in range(len(params) // 2):
            pre.append(torch.baddbmm(params[f"b{l}"], h, columns(params[f"W{l}"], h).transpose(1, 2)))
            if l < len(spec.hidden):
                h = act.apply(pre[-1]) if masks is None else act.apply(pre[-1]) * masks[l]
                hidden.append(h)
        return pre, hidden

    @staticmethod
    def _layers(spec, pre, hidden, per_example) -> list[Layer]:
        z = pre[-1]
        out = z.softmax(-1) if spec.output == "softmax" else z.sigmoid() if spec.output == "sigmoid" else z
        names = [f"hidden {l + 1}" for l in range(len(hidden))] + ["output"]
        return [Layer(names[l], spec.activation if l < len(hidden) else spec.output, l + 1, pre[l],
                      hidden[l] if l < len(hidden) else out, per_example.get(l), represents=l < len(hidden),
                      bias=f"b{l}")
                for l in range(len(pre))]

    def predict(self, spec, params, X):
        """Output pre-activations."""
        return predict_scores(params, X, spec.activation)

    def loss(self, spec, params, X, y):
        return example_losses(spec.output, self.predict(spec, params, X).unsqueeze(0), y)[0]

    def encode(self, spec, params, X):
        stacked = one(params)
        top = {k: v for k, v in stacked.items() if int(k[1:]) < len(spec.hidden)}
        if not top:
            return torch.as_tensor(X, dtype=torch.float32)
        with torch.no_grad():       # the last hidden layer, computed as an output layer then activated
            z = forward(top, torch.as_tensor(X, dtype=torch.float32), spec.activation)[0]
        return activation_fn(spec.activation).apply(z)

    def evaluate(self, spec, params, extras, X, y):
        """Per-example error and loss, [P, N], in chunks to bound memory."""
        width = max(v.shape[-1] for k, v in params.items() if k.startswith("b"))
        chunk = max(1, (1 << 24) // (next(iter(params.values())).shape[0] * width))
        masks = self._forward_masks(spec, extras)
        losses, errors = [], []
        with torch.no_grad():
            for s in range(0, len(X), chunk):
                z = forward(params, X[s:s + chunk], spec.activation, masks)
                losses.append(example_losses(spec.output, z, y[s:s + chunk]))
                errors.append(example_errors(spec.output, z, y[s:s + chunk]))
        return torch.cat(errors, 1), {"valid_loss": torch.cat(losses, 1)}
