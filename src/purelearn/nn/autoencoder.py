"""Auto-encoders (§1.2): one hidden layer that learns to reconstruct its input, trained as a
population; denoising, contractive and sparse variants.

Encoder h = act(W x + b); decoder tied (z = W^T h + c, the default) or untied (z = V h + c);
the reconstruction is sigmoid(z) against inputs in [0, 1] with the cross-entropy, or z with the
squared error. Denoising: the input is corrupted (``masking``: a fraction of its components set
to 0; ``salt_pepper``: a fraction set to 0 or 1, half each; ``gaussian``: noise of standard
deviation ``corruption_level`` added) and the reconstruction of the corrupted input is compared
with the clean one. Contractive: ``contraction`` times the squared Frobenius norm of the
encoder's Jacobian dh/dx, in closed form for an elementwise encoder:
sum_j act'(a_j)^2 sum_i W_ji^2. Sparse: ``train.sparsity`` on the code h.

Parameters: ``W0`` [P, H, d] and ``b0`` [P, 1, H] (encoder), ``b1`` [P, 1, d] (decoder bias),
and untied ``W1`` [P, d, H]. Members may differ in H (padded units are masked to 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, unknown
from .activations import activation as activation_fn
from .activations import canonical
from .family import Layer, Members, OneHiddenLayer, hidden_size, one, register
from .init import SCHEMES, init_bound
from .mlp import stack_members, unit_masks
from .penalties import sparsity_penalty

RECONSTRUCTIONS = ("cross_entropy", "squared")
CORRUPTIONS = ("masking", "salt_pepper", "gaussian")
VALIDATION_SEED = 20120           # one corruption draw of the validation inputs, shared by every member


@dataclass(frozen=True)
class AutoEncoder:
    """One auto-encoder (§1.2).

    hidden: code units (500). activation: the encoder's (sigmoid). tied: decoder W^T (true) or
    its own weights. reconstruction: cross_entropy (inputs in [0, 1]), squared, or auto (the
    cross-entropy when every training input lies in [0, 1]). corruption: masking, salt_pepper
    or gaussian, with corruption_level the fraction corrupted (or the noise's standard
    deviation); 0: a plain auto-encoder. contraction: coefficient of the contractive penalty
    (0: none). init, init_scale: as for the MLP.
    """

    family: ClassVar[str] = "autoencoder"
    hidden: int = 500
    activation: str = "sigmoid"
    tied: bool = True
    reconstruction: str = "auto"
    corruption: str = "masking"
    corruption_level: float = 0.0
    contraction: float = 0.0
    init: str = "glorot"
    init_scale: float = 1.0

    def checked(self, X_train: np.ndarray) -> "AutoEncoder":
        hidden = hidden_size(self.hidden, "an auto-encoder has one code layer")
        if self.init not in SCHEMES:
            raise unknown("initialization (model.init)", self.init, SCHEMES)
        if not self.init_scale > 0:
            raise ConfigError(f"model.init_scale = {self.init_scale} must be > 0.")
        in_unit = bool(((X_train >= 0) & (X_train <= 1)).all())
        reconstruction = ("cross_entropy" if in_unit else "squared") if self.reconstruction == "auto" \
            else self.reconstruction
        if reconstruction not in RECONSTRUCTIONS:
            raise unknown("reconstruction (model.reconstruction)", reconstruction, RECONSTRUCTIONS + ("auto",))
        if reconstruction == "cross_entropy" and not in_unit:
            raise ConfigError("model.reconstruction = 'cross_entropy' needs inputs in [0, 1], and these are not; "
                              "use 'squared', or preprocess the inputs into [0, 1].")
        if self.corruption not in CORRUPTIONS:
            raise unknown("corruption (model.corruption)", self.corruption, CORRUPTIONS)
        level = self.corruption_level
        fraction = self.corruption != "gaussian"
        if not (0 <= level < 1 if fraction else 0 <= level < np.inf):
            raise ConfigError(f"model.corruption_level = {level}: for {self.corruption} it is "
                              + ("the fraction of inputs corrupted, in [0, 1)." if fraction else
                                 "the noise's standard deviation, >= 0."))
        if not self.contraction >= 0:
            raise ConfigError(f"model.contraction = {self.contraction} must be >= 0.")
        return AutoEncoder(int(hidden), canonical(self.activation), bool(self.tied), reconstruction, self.corruption,
                           float(level), float(self.contraction), self.init, float(self.init_scale))


def corrupt(X: torch.Tensor, kind: str, level: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The corrupted inputs [P, B, d] from X [P or 1, B, d], each member's ``level`` [P, 1, 1]
    and the draw ``u`` [P or 1, B, d] (uniform in [0, 1), or standard normal for ``gaussian``)."""
    if kind == "masking":
        return X * (u >= level)
    if kind == "salt_pepper":
        return torch.where(u < level, (u >= level / 2).to(X.dtype), X)
    return X + level * u


def jacobian_norms(h: torch.Tensor, W: torch.Tensor, activation: str) -> torch.Tensor:
    """||dh/dx||_F^2 per example, [P, B], for h = act(W x + b) [P, B, H] and W [P, H, d]:
    sum_j act'(a_j)^2 sum_i W_ji^2 (the slope written from h, as the backward passes are)."""
    slope = activation_fn(activation).backward(torch.ones_like(h), h)
    return torch.bmm(slope.pow(2), W.pow(2).sum(-1, keepdim=True)).squeeze(-1)


def encode(params: dict, X: torch.Tensor, activation: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The code h [P, B, H] of inputs X [P, B, d] (or [B, d], shared by the members)."""
    h = activation_fn(activation).apply(code_input(params, X))
    return h if mask is None else h * mask


def code_input(params: dict, X: torch.Tensor) -> torch.Tensor:
    """The code's pre-activations a = W x + b [P, B, H]."""
    W, b = params["W0"], params["b0"]
    if X.dim() == 2:
        X = X.expand(W.shape[0], *X.shape)
    # a^T = W x^T: W's gradient then comes out in W's own layout, as the decoder's does, and
    # autograd's sum of the two is not a strided add (it took half of a 784-500 step)
    return torch.baddbmm(b.transpose(1, 2), W, X.transpose(1, 2)).transpose(1, 2)


def decode(params: dict, h: torch.Tensor) -> torch.Tensor:
    """The decoder's pre-activations z [P, B, d]."""
    if "W1" in params:
        return torch.baddbmm(params["b1"], h, params["W1"].transpose(1, 2))
    return torch.baddbmm(params["b1"], h, params["W0"])


def reconstruction_errors(kind: str, z: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Per example [P, B]: the cross-entropy of sigmoid(z) against X, or the squared error."""
    X = X.expand_as(z)
    if kind == "cross_entropy":
        return F.binary_cross_entropy_with_logits(z, X, reduction="none").sum(-1)
    return (z - X).pow(2).sum(-1)


@register
class AutoEncoderFamily(OneHiddenLayer):
    """Auto-encoders trained on their own input: plain SGD with the backward pass written out
    (``sgd_step``), other rules and the penalties through autograd."""

    name = "autoencoder"
    spec = AutoEncoder
    fused = True
    def n_layers(self, spec) -> int:
        return 1 if spec.tied else 2

    def group_key(self, spec) -> tuple:
        return (spec.activation, spec.tied, spec.reconstruction, spec.corruption)

    def sizes(self, spec, n_in, n_out) -> list[int]:
        return [n_in, spec.hidden, n_in]

    def n_params(self, spec, n_in, n_out) -> int:
        return n_in * spec.hidden * (1 if spec.tied else 2) + spec.hidden + n_in

    def init(self, spec, n_in, n_out, seed) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        r = init_bound(n_in, spec.hidden, spec.activation, spec.init, spec.init_scale)
        params = {"W0": torch.empty(spec.hidden, n_in).uniform_(-r, r, generator=g),
                  "b0": torch.zeros(1, spec.hidden), "b1": torch.zeros(1, n_in)}
        if not spec.tied:
            r = init_bound(spec.hidden, n_in, spec.activation, spec.init, spec.init_scale)
            params["W1"] = torch.empty(n_in, spec.hidden).uniform_(-r, r, generator=g)
        return params

    def stack(self, members, drawn, data):
        dev = data.device
        masks = unit_masks([(m.model.hidden,) for m in members])

        def column(values):
            return torch.tensor([float(v) for v in values], device=dev)

        # whether any member corrupts its input or contracts, known here once: asking the [P]
        # tensors every step would wait for a GPU every step
        extras = {"corrupts": any(m.model.corruption_level > 0 for m in members),
                  "contracts": any(m.model.contraction > 0 for m in members),
                  "mask": None if masks is None else masks[0].to(dev),
                  "corruption_level": column(m.model.corruption_level for m in members).view(-1, 1, 1),
                  "contraction": column(m.model.contraction for m in members),
                  "sparsity_coef": column(m.train.sparsity_coef for m in members),
                  "sparsity_target": column(m.train.sparsity_target for m in members),
                  # each member's corruption from its own generator: the same alone or in any population
                  "noise": Members(torch.Generator(dev).manual_seed(int(m.train.seed) * 7919 + 2) for m in members)}
        return stack_members(drawn, dev), extras

    def layer(self, spec, name: str) -> int:
        # tied: one weight layer; untied: the encoder's (W0, b0) and the decoder's (W1, b1)
        return 0 if spec.tied else int(name[1:])

    def _draw(self, spec, extras, shape, device) -> torch.Tensor:
        fill = torch.randn if spec.corruption == "gaussian" else torch.rand
        return torch.stack([fill(*shape, generator=g, device=device) for g in extras["noise"]])

    def signal(self, spec, hp, params, extras, X, y):
        losses, criterion, grads, _ = self._through(spec, hp, params, extras, X, kept=False)
        return losses, criterion, grads

    def fuses(self, spec, hp, extras) -> bool:
        return super().fuses(spec, hp, extras) and not extras["contracts"]

    def sgd_step(self, spec, params, extras, X, y, rates):
        """One plain SGD update, the backward pass written out: each weight matrix takes its
        rank-B updates in place (decoder, then encoder), where autograd writes out each
        gradient, sums the tied one's two and then descends (1.4x slower for one 784-500 code, 2x in
        a population of 32: benchmarks/RESULTS.md).
        With a contractive penalty, its gradient goes through autograd. Returns the losses [P]."""
        if extras["contracts"]:
            losses, _, grads, _ = self._through(spec, None, params, extras, X, kept=False)
            for name, g in grads.items():
                params[name].addcmul_(g, rates.view(-1, 1, 1), value=-1)
            return losses
        W, b, c, mask = params["W0"], params["b0"], params["b1"], extras["mask"]
        noisy = X
        if extras["corrupts"]:
            noisy = corrupt(X, spec.corruption, extras["corruption_level"], self._draw(spec, extras, X.shape[1:],
                                                                                       X.device))
        act = activation_fn(spec.activation)
        h = act.apply_(torch.baddbmm(b, noisy, W.transpose(1, 2)))           # [P, B, H]
        code = h if mask is None else h * mask
        decoder = params.get("W1")
        z = torch.baddbmm(c, code, W if decoder is None else decoder.transpose(1, 2))   # [P, B, d]
        if spec.reconstruction == "cross_entropy":
            losses = F.binary_cross_entropy_with_logits(z, X, reduction="none").sum(-1).mean(1)
            delta = z.sigmoid_().sub_(X)
        else:
            losses = (z - X).pow_(2).sum(-1).mean(1)
            delta = z.sub_(X).mul_(2)
        delta.mul_((rates / -X.shape[1]).view(-1, 1, 1))                  # the rate and the mean over B
        back = torch.bmm(delta, W.transpose(1, 2) if decoder is None else decoder)   # d(code), before W moves
        if mask is not None:
            back.mul_(mask)
        back = act.backward(back, h)                                         # d(a)
        c.add_(delta.sum(1, keepdim=True))
        b.add_(back.sum(1, keepdim=True))
        if decoder is None:
            W.baddbmm_(code.transpose(1, 2), delta)
        else:
            decoder.baddbmm_(delta.transpose(1, 2), code)
        W.baddbmm_(back.transpose(1, 2), noisy)
        return losses

    def inside(self, spec, hp, params, extras, X, y, gradients=True):
        if gradients:
            _, _, grads, (a, h, z, per_example) = self._through(spec, hp, params, extras, X, kept=True)
        else:
            with torch.no_grad():               # the clean input's code and reconstruction
                a = code_input(params, X)
                h = activation_fn(spec.activation).apply(a)
                h = h if extras["mask"] is None else h * extras["mask"]
                z, grads, per_example = decode(params, h), None, [None, None]
        out = z.sigmoid() if spec.reconstruction == "cross_entropy" else z
        return [Layer("code", spec.activation, 1, a, h, per_example[0], bias="b0"),
                Layer("reconstruction", "sigmoid" if spec.reconstruction == "cross_entropy" else "linear", 2,
                      z, out, per_example[1], represents=False, bias="b1")], grads

    def _through(self, spec, hp, params, extras, X, kept: bool):
        """The criterion on a minibatch (of the input corrupted) and its gradients through
        autograd; ``kept``: also the code's and the reconstruction's pre-activations, outputs
        and per-example gradients."""
        level = extras["corruption_level"]
        noisy = X
        if extras["corrupts"]:
            noisy = corrupt(X, spec.corruption, level, self._draw(spec, extras, X.shape[1:], X.device))
        tensors = list(params.values())
        for v in tensors:
            v.requires_grad_()
        try:
            a = code_input(params, noisy)
            h = activation_fn(spec.activation).apply(a)
            h = h if extras["mask"] is None else h * extras["mask"]
            z = decode(params, h)
            losses = reconstruction_errors(spec.reconstruction, z, X).mean(1)
            criterion = losses
            if extras["contracts"]:
                criterion = criterion + extras["contraction"] * jacobian_norms(h, params["W0"], spec.activation).mean(1)
            if hp is not None and hp.sparsity != "none":       # None: plain SGD's step, no penalty on h
                criterion = criterion + extras["sparsity_coef"] * sparsity_penalty(
                    hp.sparsity, h, extras["sparsity_target"], extras["mask"])
            grads = torch.autograd.grad(criterion.sum(), tensors + ([a, z] if kept else []))
        finally:
            for v in tensors:
                v.requires_grad_(False)
        views = None
        if kept:
            B = X.shape[1]
            views = (a.detach(), h.detach(), z.detach(), [g * B for g in grads[len(tensors):]])
        return losses.detach(), criterion.detach(), dict(zip(params, grads[:len(tensors)])), views

    def predict(self, spec, params, X):
        """The reconstruction of X (sigmoid(z) with the cross-entropy, z with the squared error)."""
        stacked = one(params)
        with torch.no_grad():
            z = decode(stacked, encode(stacked, torch.as_tensor(X, dtype=torch.float32), spec.activation))[0]
        return z.sigmoid() if spec.reconstruction == "cross_entropy" else z

    def loss(self, spec, params, X, y):
        stacked = one(params)
        x = torch.as_tensor(X, dtype=torch.float32).unsqueeze(0)
        with torch.no_grad():
            z = decode(stacked, encode(stacked, x, spec.activation))
        return reconstruction_errors(spec.reconstruction, z, x)[0]

    def encode(self, spec, params, X):
        with torch.no_grad():
            return encode(one(params), torch.as_tensor(X, dtype=torch.float32), spec.activation)[0]

    def evaluate(self, spec, params, extras, X, y):
        """The denoising error (one fixed corruption draw, shared by every member) and the clean
        reconstruction error, per validation example, in chunks to bound memory."""
        P = params["W0"].shape[0]
        level = extras["corruption_level"]
        g = torch.Generator(X.device).manual_seed(VALIDATION_SEED)
        fill = torch.randn if spec.corruption == "gaussian" else torch.rand
        u = fill(*X.shape, generator=g, device=X.device)
        chunk = max(1, (1 << 24) // (P * max(X.shape[1], spec.hidden)))
        noisy, clean = [], []
        with torch.no_grad():
            for s in range(0, len(X), chunk):
                x = X[s:s + chunk].unsqueeze(0)
                z = decode(params, encode(params, x.expand(P, *x.shape[1:]), spec.activation, extras["mask"]))
                clean.append(reconstruction_errors(spec.reconstruction, z, x))
                if not extras["corrupts"]:
                    noisy.append(clean[-1])
                    continue
                x_noisy = corrupt(x, spec.corruption, level, u[s:s + chunk].unsqueeze(0))
                z = decode(params, encode(params, x_noisy, spec.activation, extras["mask"]))
                noisy.append(reconstruction_errors(spec.reconstruction, z, x))
        return torch.cat(noisy, 1), {"valid_reconstruction": torch.cat(clean, 1)}
