"""NaN poisoning (§4.1): "careless reuse of the same memory buffers for different uses can lead
to bugs, which can be checked, in the debugging phase, by initializing buffers to the NaN value,
which propagates into downstream computation".

Under :class:`NaNPoisoning` every buffer torch allocates without initializing it (``torch.empty``,
``empty_like``, ``new_empty``, ``empty_strided``, a ``resize_`` that grows) starts filled with NaN,
floating dtypes only, and every operation's floating outputs are looked at: the first operation
whose output holds a NaN is recorded, with the layer it belongs to. A buffer written before it
is read never shows (``torch.empty(n).uniform_()``, a slice copied into before the whole is
used); one read before it is written turns what reads it into NaN.

:func:`check_poisoning` runs a member's computations under the mode, with finite inputs: the
family's drawing and stacking of the parameters, its training ``signal`` on a few minibatches,
its fused ``sgd_step`` where it has one, and its ``evaluate`` on a few validation examples. When a
NaN shows, the same computations run again with fresh buffers at 0: a NaN that shows then too was
computed from finite values (0/0, inf - inf), not read from a fresh buffer.

What it can tell, and what not:

- The operation is the first whose output holds a NaN, named as ATen dispatches it
  (``aten.add``, ``aten.baddbmm``): the one that read the buffer, or, for an operation that only
  writes its first argument (``copy_``, ``index_put_``, ...), the one that copied an unwritten
  buffer somewhere. A tensor returned by the family that holds a NaN no operation produced (a
  gradient allocated and never written) is named by its allocation (``aten.empty_like``).
- The layer is that of a parameter tensor among the operation's inputs (by storage, so views
  of it count, as ``family.layer`` names it), or else of the last operation before it that had
  one; for an operation in a backward pass that is the layer whose backward step ran last, which
  may be the layer above the one whose gradient is being formed.
- The phase is ``backward`` for an operation run by autograd's backward engine. For a
  hand-derived backward pass (the MLP's) it is read from the family's result: ``forward`` when
  the NaN reached the losses it returned, ``backward`` when only the gradients or the update
  hold it. ``evaluate`` is all forward; drawing and stacking the parameters is ``init``.
- Not seen: infinities (a mask of -inf is legitimate, as in counting errors); a NaN read only
  by a comparison, a conversion to an integer, or a ``where`` that does not select it; a buffer
  a compiled kernel allocates inside itself; an operation that writes part of a fresh buffer in
  place and reads the rest (``index_put_`` with ``accumulate``): its NaN shows at the next
  operation that reads the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..errors import DataError
from ..nn import family_of
from ..train import Data, Member, check_member

aten = torch.ops.aten
# What torch.empty, torch.empty_like, Tensor.new_empty, torch.empty_strided, ... dispatch to
ALLOCATIONS = {aten.empty, aten.empty_like, aten.new_empty, aten.empty_strided, aten.new_empty_strided,
               aten.empty_permuted}
# In-place operations that write their first argument without reading it: what is left of a fresh
# buffer there is still unread, so only what they copy in is looked at
WRITE_ONLY = {aten.copy_, aten.fill_, aten.zero_, aten.uniform_, aten.normal_, aten.bernoulli_, aten.random_,
              aten.exponential_, aten.geometric_, aten.cauchy_, aten.log_normal_, aten.index_put_,
              aten._index_put_impl_, aten.index_fill_, aten.masked_fill_, aten.scatter_, aten.index_copy_,
              aten.masked_scatter_, aten.set_, aten.resize_as_}


class Poisoned(NamedTuple):
    """Where a NaN first showed: the ATen operation, the layer (None when no parameter tensor
    had been used yet), and the phase (forward, backward or init)."""

    operation: str
    layer: int | None
    phase: str


@dataclass
class Poisoning:
    family: str
    first: Poisoned | None = None
    computation: str | None = None      # the family's computation it showed in: init, signal, sgd_step, evaluate
    from_poison: bool = True            # False: it shows with fresh buffers at 0 too (computed, not read)
    checked: tuple[str, ...] = ()       # the computations run, with how many times
    skipped: str | None = None          # a computation the family has and the check did not run, or why none

    @property
    def ok(self) -> bool:
        return self.first is None

    @property
    def verdict(self) -> str:
        runs = ", ".join(self.checked)
        if self.ok:
            return f"no NaN ({runs}): no buffer is read before it is written"
        where = f"{self.first.operation} ({self.first.phase}, {_layer(self.first.layer)}) of {self.computation}"
        if self.from_poison:
            return f"a NaN first shows in {where}: a buffer is read before it is written"
        return f"a NaN first shows in {where}, with fresh buffers at 0 too: computed from finite values"

    def summary(self) -> dict:
        first = None if self.first is None else self.first._asdict()
        return {"family": self.family, "ok": self.ok, "first": first, "computation": self.computation,
                "from_poison": self.from_poison, "checked": list(self.checked), "skipped": self.skipped,
                "verdict": self.verdict}


def _layer(layer: int | None) -> str:
    return "before any layer" if layer is None else f"layer {layer}"


class NaNPoisoning(TorchDispatchMode):
    """A debug mode: fresh buffers start as NaN (``fill``), and the first operation whose
    floating output holds a NaN is kept in ``first`` as (operation, layer, in autograd's
    backward). ``owners`` maps the storage of each parameter tensor to its layer (see
    :meth:`watch`); ``fresh`` the storage of each buffer it filled to the allocation."""

    def __init__(self, fill: float = math.nan):
        super().__init__()
        self.fill = fill
        self.owners: dict[int, int] = {}
        self.watched: list[torch.Tensor] = []     # kept alive: a freed storage's address is reused
        self.fresh: dict[int, str] = {}
        self.layer: int | None = None
        self.first: tuple[str, int | None, bool] | None = None

    def watch(self, params: dict[str, torch.Tensor], layer_of) -> None:
        """Attribute operations on these tensors (and their views) to ``layer_of(name)``."""
        self.owners.update({_storage(t): layer_of(name) for name, t in params.items()})
        self.watched.extend(params.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        grown = args[0].numel() if packet is aten.resize_ else None
        out = func(*args, **kwargs)
        if packet in ALLOCATIONS:
            for t in _floating(out):
                t.fill_(self.fill)
                self.fresh[_storage(t)] = str(packet)
            return out
        if grown is not None:
            if args[0].is_floating_point() and args[0].is_contiguous() and args[0].numel() > grown:
                args[0].view(-1)[grown:].fill_(self.fill)
                self.fresh[_storage(args[0])] = str(packet)
            return out
        if func.is_view or torch.Tag.inplace_view in func.tags:      # a view reads nothing
            return out
        layer = self._layer_of((args, kwargs))
        if self.first is None:
            read = (args[1:], kwargs) if packet in WRITE_ONLY else out
            if any(bool(t.isnan().any()) for t in _floating(read)):
                self.first = (str(packet), layer, _in_backward())
        return out

    def _layer_of(self, inputs) -> int | None:
        for t in tree_leaves(inputs):
            if isinstance(t, torch.Tensor) and _storage(t) in self.owners:
                self.layer = self.owners[_storage(t)]
                break
        return self.layer

    def allocation_of(self, t: torch.Tensor) -> str:
        """The allocation whose buffer ``t`` is, for a NaN no operation produced."""
        return self.fresh.get(_storage(t), "a buffer never written")


def _floating(tree):
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _storage(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):       # a tensor without storage owns no layer
        return 0


def _in_backward() -> bool:
    # the id of the graph autograd's engine is running, -1 outside a backward pass
    return torch._C._current_graph_task_id() != -1


def check_poisoning(member: Member, splits, *, family=None, examples: int = 16, steps: int = 3) -> Poisoning:
    """Run ``member``'s computations under :class:`NaNPoisoning`: drawing and stacking its
    parameters, its ``signal`` on ``steps`` minibatches of ``examples`` training examples, its
    fused ``sgd_step`` on the same minibatches where it has one, and ``evaluate`` on ``examples``
    validation examples after each (``family``: the family to check, by default the member's
    own; a test passes a broken copy)."""
    if not (isinstance(examples, int) and examples >= 1 and isinstance(steps, int) and steps >= 1):
        raise ValueError(f"examples = {examples!r}, steps = {steps!r}: the poisoning check runs at least one "
                          "step on at least one example; give whole numbers >= 1.")
    family = family or family_of(member.model)
    member = check_member(member, splits)
    data = Data(splits, torch.device("cpu"), leave_out=family.leaves_out_constant_inputs,
                unlabeled=not family.supervised)
    run = _Run(family, member, data, examples, steps)
    found = run(math.nan)
    skipped = None if family.fused else f"the {family.name} has no fused SGD step"
    out = Poisoning(family.name, checked=run.checked, skipped=skipped)
    if found is None:
        return out
    control = _Run(family, member, data, examples, steps)(0.0)
    return Poisoning(family.name, found[0], found[1], control != found, run.checked, skipped)


class _Run:
    """One pass of the check's computations, with fresh buffers filled with a given value;
    called, it returns (where the first NaN showed, in which computation), or None."""

    def __init__(self, family, member: Member, data: Data, examples: int, steps: int):
        self.family, self.member, self.data = family, member, data
        self.examples, self.steps = examples, steps
        self.checked: tuple[str, ...] = ()

    def __call__(self, fill: float):
        family, spec = self.family, self.member.model
        self.mode = NaNPoisoning(fill)
        layer_of = partial(family.layer, spec)
        with self.mode:
            m, d = self.member, self.data
            drawn = family.init(spec, d.n_in, d.n_out, m.train.seed) if m.start is None \
                else family.given(spec, m.start, d.n_in, d.n_out)
        found = self._returned("init", "init", {}, drawn, layer_of)
        if found:
            return found
        self.mode.watch(drawn, layer_of)
        with self.mode:
            params, extras = family.stack([self.member], [drawn], self.data)
        found = self._returned("init", "init", {}, params, layer_of)
        if found:
            return found
        self.mode.watch(params, layer_of)
        stepped = {k: v.clone() for k, v in params.items()}       # the fused step's own, updated in place
        self.mode.watch(stepped, layer_of)
        for step in range(self.steps):
            found = self._step(step, params, extras, stepped, layer_of)
            if found:
                return found
        return None

    def _step(self, step: int, params, extras, stepped, layer_of):
        family, spec, hp, mode = self.family, self.member.model, self.member.train, self.mode
        X, y = self._minibatch(step)
        with mode:
            losses, criterion, grads = family.signal(spec, hp, params, extras, X, y)
        found = self._returned("signal", None, {"losses": losses, "criterion": criterion}, grads, layer_of)
        if found:
            return found
        if family.fused:
            rates = torch.full((1,), float(hp.lr))
            with mode:
                losses = family.sgd_step(spec, stepped, extras, X, y, rates)
            found = self._returned("sgd_step", None, {"losses": losses}, stepped, layer_of)
            if found:
                return found
        X_valid = _finite(self.data.X_valid[:self.examples], "validation")
        y_valid = self.data.y_valid[:self.examples] if family.supervised else X_valid
        with mode:
            errors, monitors = family.evaluate(spec, params, extras, X_valid, y_valid)
        found = self._returned("evaluate", "forward", {"errors": errors, **monitors}, {}, layer_of)
        self.checked = ("init", *(f"{c} x{step + 1}" for c in ("signal", "sgd_step", "evaluate")
                                  if c != "sgd_step" or family.fused))
        return found

    def _minibatch(self, step: int):
        """The ``step``-th run of ``examples`` training examples (wrapping around), [1, B, d]."""
        d = self.data
        rows = torch.arange(step * self.examples, (step + 1) * self.examples) % d.n_train
        X = _finite(d.X_train[rows], "training").unsqueeze(0)
        return X, (d.y_train[rows].unsqueeze(0) if self.family.supervised else X)

    def _returned(self, computation: str, phase: str | None, outputs: dict, named: dict, layer_of):
        """Where the first NaN showed in ``computation``, or None. A NaN no operation produced
        but found in what it returned is a buffer returned unwritten: a named tensor (a
        parameter, a gradient) is put in its own layer. ``phase`` None: forward when the NaN
        reached the ``outputs`` (the losses), backward when only the rest holds it."""
        mode, nan = self.mode, _holds_nan
        if mode.first is None:
            unwritten = [(mode.allocation_of(t), layer_of(k)) for k, t in named.items() if nan(t)]
            unwritten += [(mode.allocation_of(t), mode.layer) for t in outputs.values() if nan(t)]
            if not unwritten:
                return None
            operation, layer = unwritten[0]
            mode.first = (operation, layer, False)
        operation, layer, in_backward = mode.first
        if phase is None:
            phase = "backward" if in_backward or not any(nan(t) for t in outputs.values()) else "forward"
        if layer is None:               # shown while drawing the parameters: the layer of one it reached
            layer = next((layer_of(k) for k, t in named.items() if nan(t)), None)
        return Poisoned(operation, layer, phase), computation


def _finite(X: torch.Tensor, split: str) -> torch.Tensor:
    if not torch.isfinite(X).all():
        raise DataError(f"the {split} inputs hold NaN or infinite values: the poisoning check needs finite "
                        "inputs, so that a NaN can only come from the computation.")
    return X


def _holds_nan(t) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and bool(t.isnan().any())
