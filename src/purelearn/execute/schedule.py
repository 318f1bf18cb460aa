"""How to spend the machine on a batch of trials: as batched populations, as one trial per
process, or populations in each of several processes — chosen from a short measurement on the
study's own models (§3.4, §5.1).

On two CPU cores, small networks (64-64-10) train many times faster batched than one at a time,
because per-operation overhead dominates; large ones (784-256-256-10) gain little, and two
one-thread processes do as well. The rule below decides from measured times, not from sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import PurelearnError
from ..train.memory import footprint

BATCH_GAIN = 1.25        # below this speed-up per process, batching isn't worth it
MAX_POPULATION = 128     # beyond this the gain has flattened in every measurement here


@dataclass(frozen=True)
class Calibration:
    """Measured seconds per member-update: members trained alone, and the same ``size`` members
    trained as the populations a batch would form, both with one thread (NaN where untimed);
    ``member_bytes``: memory one member needs in a population."""

    alone: float
    batched: float
    size: int
    member_bytes: int
    device: str = "cpu"
    shared: int = -1          # timed members that shared a population with another (-1: untimed)

    @property
    def gain(self) -> float:
        return self.alone / self.batched


@dataclass(frozen=True)
class Schedule:
    workers: int
    population: int
    reason: str


def choose(cal: Calibration | None, trials: int, cores: int, memory_limit: int, workers: int | None = None,
           population: int | None = None) -> Schedule:
    """The schedule for ``trials`` trials from a calibration (None for objectives that can't
    batch). ``workers``/``population`` given by the user are kept; the rest is decided."""
    fit = max(1, memory_limit // max(cal.member_bytes, 1)) if cal else 1
    if cal is None:
        w = workers or cores
        return Schedule(w, 1, f"one trial at a time in each of {w} process(es): the objective is a function")
    if cal.device == "cuda":
        p = min(population or batch_size(trials, 1, "cuda"), fit)
        measured = "" if math.isnan(cal.gain) else f" (batching measured {cal.gain:.1f}x faster than one at a time)"
        return Schedule(workers or 1, p, f"GPU: populations of up to {p} trials in one process, data on the device"
                                         + measured)
    w = workers or cores
    if population is not None:
        p = min(population, fit)
        return Schedule(w, p, f"populations of up to {p} trials (as asked) in each of {w} process(es)"
                              + (f", limited by memory to {p}" if p < population else ""))
    if fit == 1:
        return Schedule(w, 1, f"one trial at a time in each of {w} process(es): one member is all the memory "
                              f"limit holds (batching measured {cal.gain:.2f}x faster)")
    if cal.shared == 0:
        return Schedule(w, 1, f"one trial at a time in each of {w} process(es): no two of {cal.size} trials drawn "
                              "from the space could share a population (their depth, activation, update rule or "
                              "widths differ too much), so batching could not gain")
    if cal.gain < BATCH_GAIN:
        return Schedule(w, 1, f"one trial at a time in each of {w} process(es): batching measured a "
                              f"speed-up of {cal.gain:.2f}x for these models, below the {BATCH_GAIN}x it must reach")
    wanted = batch_size(trials, w, "cpu")
    p = min(wanted, fit)
    return Schedule(w, p, f"populations of up to {p} trials in each of {w} process(es): batching measured "
                          f"{cal.gain:.1f}x faster than one trial at a time"
                          + (" (limited by memory)" if p < wanted else ""))


def batch_size(trials: int, workers: int, device: str) -> int:
    """Trials per batch if batching: a GPU takes them all in one process; on CPU each worker
    gets an equal share, within MAX_POPULATION."""
    if device == "cuda":
        return min(MAX_POPULATION * 2, trials)
    return max(2, min(MAX_POPULATION, math.ceil(trials / workers)))


def calibrate(config, space, seed: int = 0, size: int = 16, steps: int = 3, timed: bool = True,
              memory_limit: int | None = None) -> Calibration:
    """Time ``steps`` updates of ``size`` members drawn from the space, first each alone, then
    grouped into populations exactly as a batch of that many trials would be (same structure,
    similar widths, padding), with one thread, on the study's data and device. What it measures
    is the gain on a realistic batch: a space of many different shapes makes small populations,
    and large members gain little from batching, which a population of identical copies hides.
    Untimed (``timed=False``: a GPU batches whatever the gain), only the memory is sized. The
    measurement keeps to ``memory_limit`` as training does: members too large for it are not
    timed, and the timed populations are split to fit it."""
    from ..train import Population, check_member, resolve_device
    from ..train.fit import inputs_of, populations, width_ratio
    from .objective import _data, _splits, apply_params, data_key, first_fold

    draws = [apply_params(config, space.sample(np.random.default_rng([seed, 99, i])), i) for i in range(size)]
    folds = _splits(draws[0])
    splits = first_fold(folds)
    members = []
    for c in draws:
        try:
            members.append(check_member(c.member(), splits))
        except PurelearnError:        # that trial will fail alone, saying why; the others are measured
            pass
    device = resolve_device(draws[0].device)
    shape = (splits.n_features, splits.n_outputs)
    largest = max((footprint(m, *shape) for m in members), default=1)
    limit = math.inf if memory_limit is None else memory_limit
    members = [m for m in members if footprint(m, *shape) <= limit]
    if not timed or not members:
        return Calibration(math.nan, math.nan, size, largest, device.type)
    data = _data((data_key(draws[0]), draws[0].device, *inputs_of(members)), folds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        each = [Population([m], data).time_steps(steps) for m in members]
        # A population of one is the member alone: its time is already known.
        parts = populations(members, size, width_ratio(device), memory_limit, lambda m: footprint(m, *shape))
        batched = sum(each[part[0]] if len(part) == 1 else
                      Population([members[i] for i in part], data).time_steps(steps) for part in parts)
    finally:
        torch.set_num_threads(threads)
    n = len(members)
    shared = sum(len(p) for p in parts if len(p) > 1)
    return Calibration(sum(each) / n, batched / n, size, largest, device.type, shared)
