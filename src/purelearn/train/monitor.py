"""Statistics of every layer while a population trains (§4.2), kept per member.

Every ``train.monitor`` examples (and once before the first update) the loop asks ``Monitor``
for a snapshot. On a fixed batch of the first MONITORED training examples, the same at every
snapshot so that snapshots compare, the family's ``inside`` gives each layer's pre-activations,
outputs and per-example gradients, and the parameters' gradients. Each of those, and each
parameter tensor, gets a mean, a standard deviation and a histogram over fixed bins, computed
for the whole population at once (padded units and weights left out). Beside them: the average
size of the last update relative to the average size of the weights (§6.2: about 1/1000 is
healthy), the fraction of saturated units (sigmoid, tanh, ...) or of dead rectifiers (zero on
every monitored example), and the error of a linear probe of each representation (a ridge
classifier fitted on PROBED training examples, scored on validation ones; §4.2's
"discriminative ability" of each layer).

The probe costs about three snapshots: its forward passes over 1,536 examples cost about what
training 750 examples does (a step being a forward and a backward pass). So it runs at the first
snapshot and then at the first snapshot past each multiple of PROBE_EVERY examples (half the
training budget when that is shorter: a short run is probed at its start and past each half of
it), which keeps its share of a long run near 3%; the snapshots in between record NaN for it.

What is computed here leaves the members' generators and persistent chains as they were
(``nn.family.untouched``): a member trains the same with and without monitoring.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
import torch

from ..nn.family import untouched
from .model import read_state

MONITORED = 128          # training examples the statistics are computed on
PROBED = (1024, 512)     # training examples a linear probe is fitted on, validation examples it is scored on
PROBE_EVERY = 25_000     # examples between probes (about 30 x what one costs in training examples)
BINNED = 1 << 16         # entries of a tensor a histogram counts, at most (a fixed sample of larger ones)
FORMAT = "purelearn.statistics/1"
_MAGNITUDES = 10.0 ** np.arange(-8, 2.01, 0.5)
# Fixed bins, so that histograms of one quantity line up over time: outputs bounded by their
# non-linearity on a linear scale, everything else (pre-activations, gradients, weights) on a
# signed logarithmic one, from 1e-8 to 100 in half decades (the outermost bins are open).
EDGES = {"signed_log": np.concatenate([-_MAGNITUDES[::-1], _MAGNITUDES]),
         "unit": np.linspace(-1, 1, 41), "probability": np.linspace(0, 1, 41)}
BOUNDED = {"tanh": "unit", "hard_tanh": "unit", "softsign": "unit", "sigmoid": "probability",
           "softmax": "probability"}
# An output this close to a bound has a slope near zero: the unit hardly learns (Glorot and Bengio, 2010)
SATURATED = {"sigmoid": lambda h: (h < 0.01) | (h > 0.99), "tanh": lambda h: h.abs() > 0.99,
             "hard_tanh": lambda h: h.abs() >= 1, "softsign": lambda h: h.abs() > 0.9}
PROBE_RIDGE = 1e-3       # the probe's penalty, relative to the features' mean squared value


class Statistics:
    """One member's snapshots: ``examples`` seen at each; ``units[name]`` per layer of units
    (its activation, and series ``pre``, ``post``, ``grad``, plus ``saturated``, ``dead``,
    ``probe_error`` per snapshot, NaN where they don't apply or no probe ran); ``tensors[name]``
    per parameter tensor (its layer, series ``value`` and ``grad``, and ``update_ratio``). A
    series is a dict of ``mean`` [S], ``std`` [S], ``counts`` [S, bins] (of every entry, or of
    the same BINNED entries at every snapshot in a larger tensor) and the name of its ``edges``."""

    def __init__(self):
        self.examples: list[int] = []
        self.units: dict[str, dict] = {}
        self.tensors: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self.examples)

    def summary(self) -> dict:
        """Means, standard deviations and the scalar statistics per snapshot (no histograms)."""
        def plain(entry):
            return {k: ({"mean": _floats(v["mean"]), "std": _floats(v["std"])} if isinstance(v, dict)
                        else _floats(v) if isinstance(v, list) else v) for k, v in entry.items()}
        return {"examples_seen": list(self.examples), "units": {n: plain(u) for n, u in self.units.items()},
                "tensors": {n: plain(t) for n, t in self.tensors.items()}}

    def to_bytes(self) -> bytes:
        def packed(entry):
            return {k: ({"mean": torch.tensor(v["mean"], dtype=torch.float64),
                         "std": torch.tensor(v["std"], dtype=torch.float64),
                         "counts": torch.tensor(np.array(v["counts"]), dtype=torch.int32), "edges": v["edges"]}
                        if isinstance(v, dict) else torch.tensor(v, dtype=torch.float64) if isinstance(v, list) else v)
                    for k, v in entry.items()}
        state = {"format": FORMAT, "examples": list(self.examples),
                 "units": {n: packed(u) for n, u in self.units.items()},
                 "tensors": {n: packed(t) for n, t in self.tensors.items()}}
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Statistics":
        state = read_state(data, FORMAT)

        def unpacked(entry):
            return {k: ({"mean": v["mean"].tolist(), "std": v["std"].tolist(), "counts": list(v["counts"].numpy()),
                         "edges": v["edges"]} if isinstance(v, dict)
                        else v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in entry.items()}
        out = cls()
        out.examples = list(state["examples"])
        out.units = {n: unpacked(u) for n, u in state["units"].items()}
        out.tensors = {n: unpacked(t) for n, t in state["tensors"].items()}
        return out


def _floats(values) -> list:
    return [None if not math.isfinite(v) else float(v) for v in values]


class Monitor:
    """The snapshots of a population's members (``Population`` calls ``due``, ``watch`` and
    ``record``); ``statistics[i]`` is member i's."""

    def __init__(self, population):
        self.population = pop = population
        d, family = pop.data, pop.family
        self.every = pop.hp.monitor
        n = min(MONITORED, d.n_train)
        self.X = d.X_train[:n].unsqueeze(0)
        self.y = self.X if not family.supervised else d.y_train[:n].unsqueeze(0)
        # a probe needs class labels (the labeled training examples come first)
        self.probed = d.y_train.dtype == torch.int64 and len(d.y_train) > 0 and len(d.y_valid) > 0
        if self.probed:
            fit, scored = min(PROBED[0], len(d.y_train)), min(PROBED[1], len(d.y_valid))
            self.probe_sets = [(d.X_train[:fit].unsqueeze(0), d.y_train[:fit]),
                               (d.X_valid[:scored].unsqueeze(0), d.y_valid[:scored])]
            self.k = int(max(d.y_train.max(), d.y_valid.max())) + 1
        budget = max(m.train.max_examples or m.train.max_epochs * d.n_train for m in pop.members)
        self.probe_every, self.probed_at = max(1, min(PROBE_EVERY, budget // 2)), None
        # each member's own shape of every layer's units [B, H] and parameter tensor (a prefix of the stacked one's)
        self.shapes = [{**{layer: (n, size) for layer, size in enumerate(family.sizes(m.model, d.n_in, d.n_out))},
                        **{k: tuple(v.shape) for k, v in family.init(m.model, d.n_in, d.n_out, 0).items()}}
                       for m in pop.members]
        self.owned = {}                      # (tensor, stacked shape, alive members): which entries are theirs
        self.statistics = [Statistics() for _ in pop.members]

    def due(self, examples: int, seen: int) -> bool:
        """Whether the step that brings ``examples`` up by ``seen`` ends on a snapshot."""
        return (examples + seen) // self.every > examples // self.every

    def watch(self) -> dict[str, torch.Tensor]:
        """The parameters before a step (the update is measured against them)."""
        return {k: v.clone() for k, v in self.population.params.items()}

    def record(self, examples: int, before: dict | None = None) -> None:
        """A snapshot of every alive member after ``examples`` examples."""
        pop = self.population
        params = pop.params
        with untouched(pop.live["extras"]) as extras:
            X, y = self.X.expand(len(pop.alive), *self.X.shape[1:]), self.y
            layers, grads = pop.family.inside(pop.model, pop.hp, params, extras, X, y.expand(len(pop.alive), *y.shape[1:]))
            probes = self._probe_errors(extras) if self._probe_due(examples) else {}
        P = len(pop.alive)
        rows = {i: {"units": {}, "tensors": {}} for i in pop.alive}
        for layer in layers:
            own = self._own(layer.size, layer.pre)
            units = None if own is None else own[2].unsqueeze(1)            # [P, 1, H]
            entry = {"pre": _series(layer.pre, own, "signed_log"),
                     "post": _series(layer.post, own, BOUNDED.get(layer.activation, "signed_log")),
                     "grad": None if layer.grad is None else _series(layer.grad, own, "signed_log"),
                     "saturated": _saturated(layer, units), "dead": _dead(layer, units),
                     "probe_error": probes.get(layer.name, torch.full((P,), math.nan))}
            entry = _host(entry)
            for j, i in enumerate(pop.alive):
                rows[i]["units"][layer.name] = (layer.activation, {k: _row(v, j) for k, v in entry.items()})
        for name, value in params.items():
            own = self._own(name, value)
            entry = {"value": _series(value, own, "signed_log"), "grad": _series(grads[name], own, "signed_log"),
                     "update_ratio": torch.full((P,), math.nan) if before is None else _update_ratio(
                         value, before[name])}
            entry = _host(entry)
            layer = pop.family.layer(pop.model, name)
            for j, i in enumerate(pop.alive):
                rows[i]["tensors"][name] = (layer, {k: _row(v, j) for k, v in entry.items()})
        for i, row in rows.items():
            _append(self.statistics[i], examples, row)

    def _own(self, name, stacked: torch.Tensor) -> dict[int, torch.Tensor] | None:
        """For each dimension of ``stacked`` [P, ...] (a layer's units or parameter tensor
        ``name``) in which an alive member is padded, which of its indices are each member's
        own [P, n]; None where no member is padded (masking would cost a third of the work)."""
        alive = tuple(self.population.alive)
        key = (name, tuple(stacked.shape), alive)
        if key not in self.owned:
            own = [self.shapes[i][name] for i in alive]
            self.owned[key] = {d: torch.arange(n, device=stacked.device) < torch.as_tensor(
                [o[d - 1] for o in own], device=stacked.device).view(-1, 1)
                for d, n in enumerate(stacked.shape[1:], 1) if any(o[d - 1] < n for o in own)} or None
        return self.owned[key]

    def _probe_due(self, examples: int) -> bool:
        if not self.probed or (self.probed_at is not None
                               and examples // self.probe_every == self.probed_at // self.probe_every):
            return False
        self.probed_at = examples
        return True

    def _probe_errors(self, extras) -> dict[str, torch.Tensor]:
        """Each representation's linear-probe error [P] (forward passes only)."""
        pop = self.population
        P = len(pop.alive)
        codes = []
        for X, _ in self.probe_sets:
            X = X.expand(P, *X.shape[1:])
            layers = pop.family.inside(pop.model, pop.hp, pop.params, extras, X, X, gradients=False)[0]
            codes.append({layer.name: layer.post for layer in layers if layer.represents})
        (fit, scored), ((_, labels), (_, truth)) = codes, self.probe_sets
        return {name: ridge_probe_error(fit[name], labels, scored[name], truth, self.k) for name in fit}


def ridge_probe_error(F: torch.Tensor, labels: torch.Tensor, F_valid: torch.Tensor, y_valid: torch.Tensor,
                      k: int) -> torch.Tensor:
    """Per member [P]: the validation error of a ridge classifier (least squares onto one-hot
    targets, with a bias) fitted on features F [P, n, H], solved in whichever of the n x n or
    H x H forms is smaller."""
    # the products in the features' precision, the solve (where conditioning matters) in float64,
    # by Cholesky: the penalty makes the system positive definite
    F, F_valid = _with_bias(F.float()), _with_bias(F_valid.float())
    Y = torch.nn.functional.one_hot(labels, k).to(F.dtype).expand(F.shape[0], -1, -1)
    n, H = F.shape[1:]
    gram = F.transpose(1, 2) @ F if H <= n else F @ F.transpose(1, 2)
    # the penalty relative to the features' mean square: the Gram matrix's trace over n H
    scale = gram.diagonal(dim1=1, dim2=2).sum(1, dtype=torch.float64) / (n * H)
    A = gram.double()
    A.diagonal(dim1=1, dim2=2).add_((scale.clamp_min(1e-12) * PROBE_RIDGE * max(n, H)).view(-1, 1))
    L = torch.linalg.cholesky(A)
    if H <= n:
        beta = torch.cholesky_solve((F.transpose(1, 2) @ Y).double(), L).to(F.dtype)
    else:
        beta = F.transpose(1, 2) @ torch.cholesky_solve(Y.double(), L).to(F.dtype)
    wrong = (F_valid @ beta).argmax(-1) != y_valid.view(1, -1)
    return wrong.double().mean(1).float()


def _with_bias(F: torch.Tensor) -> torch.Tensor:
    return torch.cat([F, torch.ones(*F.shape[:2], 1, dtype=F.dtype, device=F.device)], -1)


def _series(values: torch.Tensor, own: dict[int, torch.Tensor] | None, edges: str) -> dict:
    """Mean, standard deviation and histogram per member [P] of ``values`` [P, ...] over each
    member's own entries (``own``: for each dimension members are padded in, which of its
    indices [P, n] are theirs; padding holds finite values), all members at once. The moments
    are of every own entry, in two passes in the values' precision (the deviations from the
    mean cancel nothing; sums cast to float64 took 20x longer over a population's rows); the
    histogram counts at most BINNED of the entries, the same ones at every snapshot."""
    P = values.shape[0]
    v = values.detach()
    count = torch.full((P,), float(math.prod(n for d, n in enumerate(v.shape[1:], 1) if d not in (own or {}))),
                       dtype=v.dtype, device=v.device)
    for indices in (own or {}).values():
        count = count * indices.sum(1)
    count = count.clamp_min(1)
    mean = _own_sum(v, own) / count
    var = _own_sum((v - mean.view(-1, *[1] * (v.dim() - 1))).pow_(2), own) / count
    flat, entries = v.reshape(P, -1), None
    if flat.shape[1] > BINNED:
        entries = _binned(flat.shape[1], v.device)
        flat = flat.index_select(1, entries)
    bins = len(EDGES[edges]) + 1
    index = _bins(flat, edges, finite=bool(torch.isfinite(var).all()))
    if P > 1:
        index.add_(torch.arange(P, dtype=torch.int32, device=v.device).view(-1, 1) * bins)
    if own:
        index = torch.where(_own_entries(v.shape, own, entries), index, P * bins)   # past the last member: dropped
    counts = torch.bincount(index.reshape(-1), minlength=P * bins + 1)[:P * bins].view(P, bins)
    return {"mean": mean, "std": var.sqrt(), "counts": counts, "edges": edges}


def _own_sum(x: torch.Tensor, own: dict[int, torch.Tensor] | None) -> torch.Tensor:
    """Per member, the sum of x [P, ...] over its own entries: the dimensions nobody is padded
    in summed first, then each padded one contracted with its own indices, a vector-matrix
    product each (streaming; masking every entry took 4-5x longer)."""
    P = x.shape[0]
    own = own or {}
    free = [d for d in range(1, x.dim()) if d not in own]
    if free:
        x = x.sum(free, keepdim=True)
    for d in sorted(own):                   # the dimensions before d are of size 1 by now
        x = torch.bmm(own[d].to(x.dtype).unsqueeze(1), x.reshape(P, own[d].shape[1], -1))
    return x.reshape(P)


def _own_entries(shape: torch.Size, own: dict[int, torch.Tensor], entries: torch.Tensor | None) -> torch.Tensor:
    """Which of the flattened ``entries`` (all when None) of a [P, ...] tensor are each
    member's own [P, entries]."""
    flat = torch.arange(math.prod(shape[1:]), device=next(iter(own.values())).device) if entries is None else entries
    mask = None
    for d, indices in own.items():
        stride = math.prod(shape[d + 1:])
        mine = indices[:, torch.div(flat, stride, rounding_mode="floor") % shape[d]]
        mask = mine if mask is None else mask & mine
    return mask


@functools.cache
def _binned(n: int, device: torch.device) -> torch.Tensor:
    """The BINNED entries of n that a histogram counts: drawn once, in their order."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(n))[:BINNED].sort().values.to(device)


def _bins(v: torch.Tensor, edges: str, finite: bool = False) -> torch.Tensor:
    """Each value's bin among ``EDGES[edges]`` (bin i: edge i-1 < v <= edge i, as bucketize
    counts; NaN in the last), exactly, in a few integer passes: a float32's bits, read as an
    integer with the negative ones' magnitude bits flipped, sort as the values do, so their top
    16 bits name a bucket of values holding at most one edge, and a table gives the edges below
    each bucket and the one inside it (``torch.bucketize``'s binary search takes twice as long).
    Other precisions are searched. ``finite``: the caller knows that every value is finite."""
    if v.dtype != torch.float32:
        index = torch.bucketize(v, torch.as_tensor(EDGES[edges], dtype=v.dtype, device=v.device))
        return index.masked_fill_(v.isnan(), len(EDGES[edges])).int()
    if not finite and not torch.isfinite(v.sum()):   # a NaN (or an infinity) among them: NaN as +inf
        v = v.nan_to_num(nan=math.inf, posinf=math.inf, neginf=-math.inf)
    key = _sortable(v.contiguous().view(torch.int32))
    below, inside = _bucket_table(edges, v.device)
    bucket = (key >> 16).add_(1 << 15).view(-1)
    index = below.index_select(0, bucket).view_as(key)
    return index.add_(key > inside.index_select(0, bucket).view_as(key))


def _sortable(bits: torch.Tensor) -> torch.Tensor:
    """float32 bit patterns as int32 keys in the order of the values (-0.0 just below 0.0)."""
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


@functools.cache
def _bucket_table(edges: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per bucket of keys (their top 16 bits): how many edges lie below it, and the key of the
    edge inside it (the largest key where none is)."""
    keys = _sortable(torch.as_tensor(EDGES[edges], dtype=torch.float32).view(torch.int32)).numpy()
    lows = (np.arange(-(1 << 15), 1 << 15, dtype=np.int64) << 16)
    below = np.searchsorted(keys, lows, side="left").astype(np.int32)
    inside = np.full(1 << 16, np.iinfo(np.int32).max, dtype=np.int32)
    buckets = (keys >> 16) + (1 << 15)
    assert len(set(buckets.tolist())) == len(keys), "two edges share a bucket"
    inside[buckets] = keys
    return torch.as_tensor(below, device=device), torch.as_tensor(inside, device=device)


def _saturated(layer, mask) -> torch.Tensor:
    P = layer.post.shape[0]
    test = SATURATED.get(layer.activation)
    if test is None:
        return torch.full((P,), math.nan)
    if mask is None:
        return test(layer.post).sum((1, 2)).double() / layer.post[0].numel()
    m = mask.expand_as(layer.post)
    return (test(layer.post) & m).sum((1, 2)).double() / m.sum((1, 2)).clamp_min(1)


def _dead(layer, mask) -> torch.Tensor:
    """The fraction of a rectifier layer's units that are zero on every monitored example."""
    P = layer.post.shape[0]
    if layer.activation != "rectifier":
        return torch.full((P,), math.nan)
    silent = (layer.post == 0).all(1)                       # [P, H]
    if mask is None:
        return silent.sum(1).double() / silent.shape[1]
    m = mask[:, 0]
    return (silent & m).sum(1).double() / m.sum(1).clamp_min(1)


def _update_ratio(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """mean |update| / mean |weight| per member (padding is zero in both: it adds nothing)."""
    P = after.shape[0]
    step = (after - before).reshape(P, -1).abs_().sum(1)
    size = after.reshape(P, -1).abs().sum(1)
    return torch.where(size > 0, step / size.clamp_min(torch.finfo(size.dtype).tiny), math.nan)


def _host(entry: dict) -> dict:
    """A computed entry's tensors brought to the host at once (one transfer, not one per member)."""
    def moved(v):
        if isinstance(v, dict):
            return {k: x if isinstance(x, str) else x.cpu().numpy() for k, x in v.items()}
        return None if v is None else v.cpu().numpy()
    return {k: moved(v) for k, v in entry.items()}


def _row(value, j: int):
    """Member at alive position j's part of a computed statistic."""
    if isinstance(value, dict):
        return {"mean": float(value["mean"][j]), "std": float(value["std"][j]), "counts": value["counts"][j],
                "edges": value["edges"]}
    return None if value is None else float(value[j])


def _append(stats: Statistics, examples: int, row: dict) -> None:
    stats.examples.append(int(examples))
    for kind, entries in (("units", row["units"]), ("tensors", row["tensors"])):
        table = getattr(stats, kind)
        for name, (label, values) in entries.items():
            entry = table.setdefault(name, {"activation" if kind == "units" else "layer": label})
            for key, v in values.items():
                if v is None:
                    continue
                if isinstance(v, dict):
                    series = entry.setdefault(key, {"mean": [], "std": [], "counts": [], "edges": v["edges"]})
                    for part in ("mean", "std", "counts"):
                        series[part].append(v[part])
                else:
                    entry.setdefault(key, []).append(v)
