"""How to spend the machine on a batch of trials: as batched populations, as one trial per
process, or populations in each of several processes — chosen from a short measurement on the
study's own models (§3.4, §5.1).

On two CPU cores, small networks (64-64-10) train many times faster batched than one at a time,
because per-operation overhead dominates; large ones (784-256-256-10) gain little, and two
one-thread processes do as well. The rule below decides from measured times, not from sizes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

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
    if cal.gain < BATCH_GAIN:
        return Schedule(w, 1, f"one trial at a time in each of {w} process(es): batching measured only "
                              f"{cal.gain:.2f}x faster for these models")
    wanted = batch_size(trials, w, "cpu")
    p = min(wanted, fit)
    return Schedule(w, p, f"populations of up to {p} trials in each of {w} process(es): batching measured "
                          f"{cal.gain:.1f}x faster than one trial at a time"
                          + (" (limited by memory)" if p < wanted else ""))


def member_bytes(n_params: int, batch: int, widths: int, optimizer_copies: int = 2) -> int:
    """Memory of one member in a population, float32: parameters, gradients, optimizer state,
    the best copy, an update's temporaries, and the new copies compaction makes before the old
    ones are freed; plus a minibatch's activations and their gradients. (A fresh process training
    16 members of 784-512-512-10 with momentum grew by 0.75 of 16 estimates; a test keeps the
    estimate an upper bound.)"""
    return 4 * (n_params * (5 + optimizer_copies) + 3 * batch * widths)


def batch_size(trials: int, workers: int, device: str) -> int:
    """Trials per batch if batching: a GPU takes them all in one process; on CPU each worker
    gets an equal share, within MAX_POPULATION."""
    if device == "cuda":
        return min(MAX_POPULATION * 2, trials)
    return max(2, min(MAX_POPULATION, math.ceil(trials / workers)))


def calibrate(config, space, seed: int = 0, size: int = 16, steps: int = 3, timed: bool = True) -> Calibration:
    """Time ``steps`` updates of ``size`` members drawn from the space, first each alone, then
    grouped into populations exactly as a batch of that many trials would be (same structure,
    similar widths, padding), with one thread, on the study's data and device. What it measures
    is the gain on a realistic batch: a space of many different shapes makes small populations,
    and large members gain little from batching, which a population of identical copies hides.
    Untimed (``timed=False``: a GPU batches whatever the gain), only the memory is sized."""
    from ..train import Population, check_member, resolve_device
    from ..train.fit import populations, width_ratio
    from .objective import _data, _splits, apply_params, data_key

    draws = [apply_params(config, space.sample(np.random.default_rng([seed, 99, i])), i) for i in range(size)]
    splits = _splits(draws[0])
    members = [check_member(c.member(), splits) for c in draws]
    device = resolve_device(draws[0].device)
    largest = max(members, key=lambda m: sum(m.model.sizes(splits.n_features, splits.n_outputs)))
    sizes = largest.model.sizes(splits.n_features, splits.n_outputs)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    footprint = member_bytes(n_params, largest.train.batch_size, sum(sizes))
    if not timed:
        return Calibration(math.nan, math.nan, size, footprint, device.type)
    data = _data((data_key(draws[0]), draws[0].device), splits)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        each = [Population([m], data).time_steps(steps) for m in members]
        # A population of one is the member alone: its time is already known.
        batched = sum(each[part[0]] if len(part) == 1 else
                      Population([members[i] for i in part], data).time_steps(steps)
                      for part in populations(members, size, width_ratio(device)))
    finally:
        torch.set_num_threads(threads)
    return Calibration(sum(each) / size, batched / size, size, footprint, device.type)


def default_memory_limit(device: str, workers: int) -> int:
    """Half the free memory of the device, shared among the workers."""
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.5)
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 4 << 30
    return int(pages * 0.5 / max(workers, 1))
