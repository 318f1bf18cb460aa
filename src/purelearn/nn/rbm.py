"""Restricted Boltzmann machines (§1.1, §3.2), trained by contrastive divergence as a population.

Energy E(v, h) = -b.v - c.h - h.W v for binary visible units (for Gaussian ones of unit variance,
||v - b||^2 / 2 - c.h - h.W v); binary hidden units. The free energy sums the hidden units out:
F(v) = -b.v - sum_j softplus(c_j + W_j v) (Gaussian: ||v - b||^2 / 2 - sum_j softplus(...)).
CD-k: a Gibbs chain of k steps from the data (or, persistent, from where each member's chains
stopped at its last update) gives v_k, and the update descends F(v_0) - F(v_k), averaged over
the examples: dW = -(p(h|v_0) v_0^T - p(h|v_k) v_k^T) / B, and likewise for the biases. That is
not the gradient of any loss the training loop knows; the family hands it over as the direction
to descend, so momentum, decay and the schedule apply to it as to any gradient.

Parameters: ``W0`` [P, H, d], ``b0`` [P, 1, H] (hidden biases c), ``b1`` [P, 1, d] (visible
biases b). Initial weights N(0, 0.01^2), hidden biases 0, visible biases log(p / (1 - p)) of
the training means (§3.2). Members may differ in H (padded units are masked to 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, unknown
from .family import Layer, Members, OneHiddenLayer, hidden_size, one, register
from .mlp import stack_members, unit_masks

VISIBLE = ("binary", "gaussian")
CRITERIA = ("reconstruction", "pseudo_likelihood")
VALIDATION_SEED = 20121           # the bits flipped for the pseudo-likelihood, the same for every member


@dataclass(frozen=True)
class RBM:
    """One RBM (§1.1).

    hidden: hidden units (500). visible: binary (inputs in [0, 1], read as probabilities) or
    gaussian (unit variance: standardize the inputs). k: Gibbs steps of CD-k (1). persistent:
    persistent CD, each member's chains kept from one update to the next. criterion: what early
    stopping minimizes on the validation split, the reconstruction error (the default) or minus
    the pseudo-likelihood (binary units). init_scale: the initial weights' standard deviation.
    """

    family: ClassVar[str] = "rbm"
    hidden: int = 500
    visible: str = "binary"
    k: int = 1
    persistent: bool = False
    criterion: str = "reconstruction"
    init_scale: float = 0.01

    def checked(self, X_train: np.ndarray) -> "RBM":
        hidden = hidden_size(self.hidden, "an RBM has one hidden layer")
        if self.visible not in VISIBLE:
            raise unknown("visible units (model.visible)", self.visible, VISIBLE)
        if self.visible == "binary" and not bool(((X_train >= 0) & (X_train <= 1)).all()):
            raise ConfigError("model.visible = 'binary' needs inputs in [0, 1]; preprocess them into [0, 1] "
                              "(scale) or use visible = 'gaussian' on standardized inputs.")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ConfigError(f"model.k = {self.k!r}: CD-k runs k Gibbs steps, a whole number >= 1.")
        if self.criterion not in CRITERIA:
            raise unknown("validation criterion (model.criterion)", self.criterion, CRITERIA)
        if self.criterion == "pseudo_likelihood" and self.visible != "binary":
            raise ConfigError("model.criterion = 'pseudo_likelihood' is computed for binary visible units; use "
                              "'reconstruction' with Gaussian ones.")
        if not self.init_scale > 0:
            raise ConfigError(f"model.init_scale = {self.init_scale} must be > 0.")
        return RBM(int(hidden), self.visible, self.k, bool(self.persistent), self.criterion, float(self.init_scale))


def free_energy(params: dict, v: torch.Tensor, visible: str = "binary") -> torch.Tensor:
    """F(v) per example [P, B] for visible vectors v [P, B, d]."""
    a = torch.baddbmm(params["b0"], v, params["W0"].transpose(1, 2))
    hidden = F.softplus(a).sum(-1)
    if visible == "gaussian":
        return (v - params["b1"]).pow(2).sum(-1) / 2 - hidden
    return -(v * params["b1"]).sum(-1) - hidden


def hidden_probabilities(params, v, mask=None) -> torch.Tensor:
    p = torch.sigmoid(torch.baddbmm(params["b0"], v, params["W0"].transpose(1, 2)))
    return p if mask is None else p * mask


def visible_means(params, h, visible: str) -> torch.Tensor:
    """E[v | h]: sigmoid(W^T h + b), or W^T h + b for Gaussian units."""
    z = torch.baddbmm(params["b1"], h, params["W0"])
    return torch.sigmoid(z) if visible == "binary" else z


def _draw(generators, shape, device, normal=False, widths=None) -> torch.Tensor:
    """One draw per member from its own generator; with ``widths``, of each member's own width
    (padded with 1: no padded unit turns on), so the stream is the same alone or padded."""
    fill = torch.randn if normal else torch.rand
    if widths is None:
        return torch.stack([fill(*shape, generator=g, device=device) for g in generators])
    return torch.stack([F.pad(torch.rand(shape[0], w, generator=g, device=device), (0, shape[1] - w), value=1.0)
                        for g, w in zip(generators, widths)])


def gibbs_chain(params, v: torch.Tensor, k: int, visible: str, generators, mask=None, widths=None,
                first=None) -> torch.Tensor:
    """v_k after k steps h ~ p(h|v), v ~ p(v|h) from v [P, B, d], each member's draws from its
    own generator (``widths``: each member's hidden units, when padded; ``first``: p(h|v) of
    the starting v, when already known)."""
    for step in range(k):
        ph = first if step == 0 and first is not None else hidden_probabilities(params, v, mask)
        h = (_draw(generators, ph.shape[1:], v.device, widths=widths) < ph).to(v.dtype)
        mean = visible_means(params, h, visible)
        noise = _draw(generators, mean.shape[1:], v.device, normal=visible == "gaussian")
        v = mean + noise if visible == "gaussian" else (noise < mean).to(v.dtype)
    return v


def cd_gradients(params, v0, vk, mask=None) -> dict[str, torch.Tensor]:
    """The direction CD descends: the gradient of mean F(v_0) - mean F(v_k) (either visible
    kind), written out. The batches of v0 and vk may differ in size (persistent chains)."""
    p0, pk = hidden_probabilities(params, v0, mask), hidden_probabilities(params, vk, mask)
    n0, nk = v0.shape[1], vk.shape[1]
    # one [P, H, d] result written once: a population's weights outgrow the cache, so every
    # extra pass over them costs what the product does
    W = torch.baddbmm(torch.bmm(pk.transpose(1, 2), vk), p0.transpose(1, 2), v0, beta=1 / nk, alpha=-1 / n0)
    c = pk.mean(1, keepdim=True) - p0.mean(1, keepdim=True)
    b = vk.mean(1, keepdim=True) - v0.mean(1, keepdim=True)
    return {"W0": W, "b0": c, "b1": b}


def reconstruction_errors(params, v, visible: str, mask=None, ph=None) -> torch.Tensor:
    """Per example [P, B]: v through p(h|v) (``ph``, when already known) and back, mean field;
    the cross-entropy against v (binary) or the squared error (Gaussian)."""
    ph = hidden_probabilities(params, v, mask) if ph is None else ph
    z = torch.baddbmm(params["b1"], ph, params["W0"])
    v = v.expand_as(z)
    if visible == "binary":
        return F.binary_cross_entropy_with_logits(z, v, reduction="none").sum(-1)
    return (z - v).pow(2).sum(-1)


def pseudo_likelihood(params, v: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """log PL per example [P, B], estimated from one bit per example (``bits`` [B]): d times
    log sigmoid(F(v with bit i flipped) - F(v)), for binary v [P or 1, B, d] (rounded to 0/1)."""
    v = v.round().expand(params["W0"].shape[0], *v.shape[1:])
    flipped = v.clone()
    rows = torch.arange(v.shape[1], device=v.device)
    flipped[:, rows, bits] = 1 - flipped[:, rows, bits]
    return v.shape[-1] * F.logsigmoid(free_energy(params, flipped) - free_energy(params, v))


@register
class RBMFamily(OneHiddenLayer):
    """RBMs trained by CD-k or persistent CD on their own input (plain SGD: ``sgd_step``)."""

    name = "rbm"
    spec = RBM
    fused = True
    gradient_of_criterion = False      # CD-k estimates the likelihood's gradient

    def n_layers(self, spec) -> int:
        return 1

    def group_key(self, spec) -> tuple:
        return (spec.visible, spec.k, spec.persistent, spec.criterion)

    def sizes(self, spec, n_in, n_out) -> list[int]:
        return [n_in, spec.hidden]

    def n_params(self, spec, n_in, n_out) -> int:
        return n_in * spec.hidden + spec.hidden + n_in

    def init(self, spec, n_in, n_out, seed) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        return {"W0": torch.randn(spec.hidden, n_in, generator=g) * spec.init_scale,
                "b0": torch.zeros(1, spec.hidden), "b1": torch.zeros(1, n_in)}

    def stack(self, members, drawn, data):
        dev = data.device
        spec = members[0].model
        if spec.visible == "binary":          # log(p / (1 - p)) of each input's training mean (§3.2)
            for m, d in zip(members, drawn):
                if m.start is None:           # given parameters keep their own
                    p = data.training_inputs(m.fold).double().mean(0).clamp(1e-3, 1 - 1e-3)
                    d["b1"] = (p / (1 - p)).log().float().cpu().view(1, -1)
        masks = unit_masks([(m.model.hidden,) for m in members])
        extras = {"mask": None if masks is None else masks[0].to(dev),
                  "gibbs": Members(torch.Generator(dev).manual_seed(int(m.train.seed) * 7919 + 3) for m in members),
                  "widths": None if masks is None else Members(m.model.hidden for m in members),
                  "chains": None}             # persistent CD: each member's chains, [P, B, d]
        return stack_members(drawn, dev), extras

    def layer(self, spec, name: str) -> int:
        return 0

    def signal(self, spec, hp, params, extras, X, y):
        mask, gens = extras["mask"], extras["gibbs"]
        start = X
        if spec.persistent:
            start = X if extras["chains"] is None else extras["chains"]
        vk = gibbs_chain(params, start, spec.k, spec.visible, gens, mask, extras["widths"])
        if spec.persistent:
            extras["chains"] = vk
        losses = reconstruction_errors(params, X, spec.visible, mask).mean(1)
        return losses, losses, cd_gradients(params, X, vk, mask)

    def sgd_step(self, spec, params, extras, X, y, rates):
        """One CD-k update by plain SGD, written in place: p(h|v_0) computed once for the
        chain's start, the reconstruction error and the update, and each weight matrix moved by
        its two rank-B products (where ``signal`` writes the direction out, then descends).
        The draws are those ``signal`` makes. Returns the reconstruction errors [P]."""
        mask, gens = extras["mask"], extras["gibbs"]
        p0 = hidden_probabilities(params, X, mask)
        chains = extras["chains"] if spec.persistent else None
        start, first = (X, p0) if chains is None else (chains, None)
        vk = gibbs_chain(params, start, spec.k, spec.visible, gens, mask, extras["widths"], first=first)
        if spec.persistent:
            extras["chains"] = vk
        losses = reconstruction_errors(params, X, spec.visible, mask, ph=p0).mean(1)
        pk = hidden_probabilities(params, vk, mask)
        r = rates.view(-1, 1, 1)
        n0, nk = X.shape[1], vk.shape[1]
        params["b0"].add_((p0.mean(1, keepdim=True) - pk.mean(1, keepdim=True)).mul_(r))
        params["b1"].add_((X.mean(1, keepdim=True) - vk.mean(1, keepdim=True)).mul_(r))
        W = params["W0"]
        W.baddbmm_((p0 * (r / n0)).transpose(1, 2), X)
        W.baddbmm_((pk * (-r / nk)).transpose(1, 2), vk)
        return losses

    def inside(self, spec, hp, params, extras, X, y, gradients=True):
        """The hidden units' probabilities given the minibatch and the visible means given
        those; no per-unit gradient (CD-k's direction is not one), the CD direction itself."""
        direction = self.signal(spec, hp, params, extras, X, y)[2] if gradients else None
        with torch.no_grad():
            a = torch.baddbmm(params["b0"], X, params["W0"].transpose(1, 2))
            p = a.sigmoid() if extras["mask"] is None else a.sigmoid() * extras["mask"]
            z = torch.baddbmm(params["b1"], p, params["W0"])
        visible = z.sigmoid() if spec.visible == "binary" else z
        return [Layer("hidden", "sigmoid", 1, a, p, None),
                Layer("visible", "sigmoid" if spec.visible == "binary" else "linear", 0, z, visible, None,
                      represents=False)], direction

    def predict(self, spec, params, X):
        """The mean-field reconstruction E[v | p(h|x)]."""
        stacked = one(params)
        x = torch.as_tensor(X, dtype=torch.float32).unsqueeze(0)
        return visible_means(stacked, hidden_probabilities(stacked, x), spec.visible)[0]

    def loss(self, spec, params, X, y):
        return reconstruction_errors(one(params), torch.as_tensor(X, dtype=torch.float32).unsqueeze(0), spec.visible)[0]

    def encoder_activation(self, spec) -> str:
        return "sigmoid"                       # P(h = 1 | v)

    def encode(self, spec, params, X):
        return hidden_probabilities(one(params), torch.as_tensor(X, dtype=torch.float32).unsqueeze(0))[0]

    def evaluate(self, spec, params, extras, X, y):
        """The reconstruction error per validation example and, for binary units, the
        pseudo-likelihood (its negative is the error when it is the criterion)."""
        g = torch.Generator(X.device).manual_seed(VALIDATION_SEED)
        bits = torch.randint(X.shape[1], (len(X),), generator=g, device=X.device)
        P = params["W0"].shape[0]
        chunk = max(1, (1 << 24) // (P * max(X.shape[1], spec.hidden)))
        rec, pl = [], []
        with torch.no_grad():
            for s in range(0, len(X), chunk):
                x = X[s:s + chunk].unsqueeze(0)
                rec.append(reconstruction_errors(params, x.expand(P, *x.shape[1:]), spec.visible, extras["mask"]))
                if spec.visible == "binary":
                    pl.append(pseudo_likelihood(params, x, bits[s:s + chunk]))
        monitors = {"valid_reconstruction": torch.cat(rec, 1)}
        if pl:
            monitors["pseudo_likelihood"] = torch.cat(pl, 1)
        error = -monitors["pseudo_likelihood"] if spec.criterion == "pseudo_likelihood" else monitors[
            "valid_reconstruction"]
        return error, monitors
