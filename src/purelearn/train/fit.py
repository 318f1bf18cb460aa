"""``fit``: train members on split data, grouped into as few populations as their structures allow."""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from dataclasses import replace

import torch

from ..errors import ConfigError
from ..nn.family import family_of
from .hyper import Member
from .memory import allocation_failed, check_fits, footprint, is_allocation_failure
from .population import Data, Population
from .result import Result

DEVICES = ("cpu", "cuda", "auto")


@functools.cache
def _cuda_present() -> bool:
    # Asked once per process: the driver's query costs tens of milliseconds on some machines.
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device) -> torch.device:
    """'cpu', 'cuda' (refused when absent) or 'auto' (cuda when present)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if _cuda_present() else "cpu")
    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}. Allowed: {', '.join(DEVICES)}.")
    if str(device).startswith("cuda") and not _cuda_present():
        raise ConfigError(f"device {device!r} was asked for but no CUDA device is present; use 'cpu' or 'auto'.")
    return torch.device(device)


def check_member(member: Member, splits) -> Member:
    """Validate a member against the data it will train on."""
    family = family_of(member.model)
    model = family.check(member.model, splits)
    n_train = len(splits.X_train if family.supervised else splits.inputs())
    train = member.train.checked(n_train, family.n_layers(model))
    if train.sparsity == "kl" and model.activation != "sigmoid":
        raise ConfigError("train.sparsity = 'kl' needs activations in (0, 1): set model.activation = 'sigmoid' "
                          "or pick another penalty (l1, student_t, squared).")
    if train.sparsity != "none" and not family.widths(model):
        raise ConfigError("train.sparsity penalizes hidden units, but model.hidden is empty.")
    if train.significance and not (family.supervised and splits.task == "classification"):
        raise ConfigError(f"train.significance = {train.significance}: the test of a new minimum compares "
                          "misclassified examples, so it needs a classifier; set it to 0.")
    return replace(member, model=model, train=train)


def structure(member: Member) -> tuple:
    family = family_of(member.model)
    return (family.name, *family.group_key(member.model), *member.train.group_key())


def inputs_of(members: list[Member]) -> tuple[bool, bool]:
    """How these members see the training inputs, as ``Data`` takes it: whether they may train
    without the inputs zero in every training example, and whether they learn their own inputs
    (and so train on the unlabeled ones too)."""
    families = [family_of(m.model) for m in members]
    return all(f.leaves_out_constant_inputs for f in families), not any(f.supervised for f in families)


def fit(splits, members: Member | list[Member], *, device="cpu", progress=None,
        max_population: int | None = None, memory_limit: int | None = None) -> Result | list[Result]:
    """Train each member on ``splits`` and return its :class:`Result` (a list for a list).

    Members of the same structure (depth, activation, output, batch size, update rule) and
    similar widths train together as one population of at most ``max_population`` members;
    every numeric hyper-parameter may differ. A member ends the same whether trained alone or
    with others. ``memory_limit`` (bytes): what one population may use (``train.memory``
    estimates it); a member that alone needs more is refused by name.

    >>> from purelearn.data import load, prepare
    >>> from purelearn.nn import MLP
    >>> from purelearn.train import Training
    >>> splits = prepare(load("digits"), preprocess=["standardize"])
    >>> r = fit(splits, Member(MLP(hidden=(32,)), Training(lr=0.1, max_epochs=2)))
    >>> r.best_valid_error < 0.2
    True
    """
    single = isinstance(members, Member)
    members = [members] if single else list(members)
    results = dict(fit_iter(splits, members, device=device, progress=progress, max_population=max_population,
                            memory_limit=memory_limit))
    ordered = [results[i] for i in range(len(members))]
    return ordered[0] if single else ordered


def fit_iter(splits, members: list[Member], *, device="cpu", progress=None, max_population: int | None = None,
             data: Data | None = None, memory_limit: int | None = None, pruner=None):
    """Like :func:`fit`, but yields (index, Result) as each member stops. ``data``: the splits
    already on the device, for a caller that trains many batches on the same splits.
    ``splits`` may be the list of a cross-validation's folds (``data.folds``): each member
    trains on its own (``Member.fold``), and members of every fold share populations.
    ``pruner`` (``search.pruning.Pruner``): stops hopeless members; each finished member's curve
    joins what the next are compared with."""
    folds = list(splits) if isinstance(splits, (list, tuple)) else [splits]
    for m in members:
        if not 0 <= m.fold < len(folds):
            raise ValueError(f"a member trains on fold {m.fold}, but the data has {len(folds)}")
    checked = [check_member(m, folds[m.fold]) for m in members]
    shape = (folds[0].n_features, folds[0].n_outputs)
    for m in checked:
        check_fits(m, *shape, memory_limit)
    data = data or Data(folds if len(folds) > 1 else folds[0], resolve_device(device), *inputs_of(checked))
    cost = None if memory_limit is None else (lambda m: footprint(m, *shape))
    for part in populations(checked, max_population or len(checked), width_ratio(data.device), memory_limit, cost):
        group = [checked[i] for i in part]
        try:
            for j, result in Population(group, data, pruner=pruner).iterate(progress):
                if pruner is not None:
                    pruner.add(result.curve)
                own = folds[group[j].fold]
                result.preprocessing, result.classes, result.n_inputs = own.steps, own.classes, own.input_features
                yield part[j], result
        except Exception as e:
            if is_allocation_failure(e):
                raise allocation_failed(group, *shape, e) from None
            raise


WIDTH_RATIO = 1.3        # widest / narrowest layer within one population on CPU: padding costs at most this
GPU_WIDTH_RATIO = math.inf


def width_ratio(device: str | torch.device) -> float:
    """How much wider than its narrowest member a population may pad. A CPU's time grows with
    every padded multiply; a GPU's step time is set by kernel launches until it saturates, so
    there one population per structure beats several narrower ones (memory still splits them).
    ``benchmarks/replay.py`` measures the trade on a device."""
    return GPU_WIDTH_RATIO if torch.device(device).type == "cuda" else WIDTH_RATIO


def populations(members: list[Member], size: int, ratio: float = WIDTH_RATIO, memory_limit: int | None = None,
                cost=None) -> list[list[int]]:
    """Indices of members that train together: the same structure, widths within ``ratio`` of
    each other in every layer (narrower members are padded to the widest), at most ``size``,
    and with ``memory_limit``, at most that many bytes (each member counted at the ``cost`` of
    the widest so far, whose size the padding gives it)."""
    groups = defaultdict(list)
    for i, m in enumerate(members):
        groups[structure(m)].append(i)
    out = []
    for idx in groups.values():
        family = family_of(members[idx[0]].model)
        widths = {i: family.widths(members[i].model) for i in idx}
        idx = sorted(idx, key=widths.get)
        part = [idx[0]]
        for i in idx[1:]:
            narrowest = widths[part[0]]
            fits = memory_limit is None or (len(part) + 1) * max(map(cost, (members[j] for j in [*part, i]))) \
                <= memory_limit
            if len(part) < size and fits and all(w <= ratio * n for w, n in zip(widths[i], narrowest)):
                part.append(i)
            else:
                out.append(part)
                part = [i]
        out.append(part)
    return out
