"""What a member costs in memory, estimated before anything is allocated, so that populations
are sized to a limit and a member too large for it is named instead of exhausting the machine."""

from __future__ import annotations

import os

import torch

from ..errors import PurelearnError
from ..nn.family import family_of


class MemoryLimitError(PurelearnError):
    """A member or population does not fit the memory it may use, or its allocation failed."""


def member_bytes(n_params: int, batch: int, widths: int, optimizer_copies: int = 2) -> int:
    """Memory of one member in a population, float32: parameters, gradients, optimizer state,
    the best copy, an update's temporaries, and the new copies compaction makes before the old
    ones are freed; plus a minibatch's activations and their gradients. (A fresh process training
    16 members of 784-512-512-10 with momentum grew by 0.75 of 16 estimates:
    ``benchmarks/memory.py`` keeps the estimate an upper bound.)"""
    return 4 * (n_params * (5 + optimizer_copies) + 3 * batch * widths)


def footprint(member, n_in: int, n_out: int) -> int:
    """``member_bytes`` of a member (a model and its ``Training``) on data of that shape."""
    family = family_of(member.model)
    sizes = family.sizes(member.model, n_in, n_out)
    return member_bytes(family.n_params(member.model, n_in, n_out), member.train.batch_size, sum(sizes))


def default_memory_limit(device: str, workers: int = 1) -> int:
    """Half the free memory of the device, shared among the workers."""
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.5)
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 4 << 30
    return int(pages * 0.5 / max(workers, 1))


def describe(member, n_in: int, n_out: int) -> str:
    return "-".join(map(str, family_of(member.model).sizes(member.model, n_in, n_out)))


def check_fits(member, n_in: int, n_out: int, limit: int | None) -> None:
    """Refuse a member that alone needs more than ``limit`` bytes."""
    need = footprint(member, n_in, n_out)
    if limit is not None and need > limit:
        raise MemoryLimitError(f"a {describe(member, n_in, n_out)} network with minibatches of "
                               f"{member.train.batch_size} needs about {_mb(need)} to train (estimated), more than "
                               f"the memory limit of {_mb(limit)}; raise the limit (--memory-limit) or shrink the "
                               "network or its minibatch.")


def allocation_failed(members, n_in: int, n_out: int, error: BaseException) -> MemoryLimitError:
    need = sum(footprint(m, n_in, n_out) for m in members)
    return MemoryLimitError(f"training {len(members)} member(s) like {describe(members[-1], n_in, n_out)} needs "
                            f"about {_mb(need)} (estimated) and allocating it failed ({str(error).splitlines()[0]}); "
                            "lower the memory limit (--memory-limit) or the population, or shrink the network.")


def is_allocation_failure(error: BaseException) -> bool:
    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(error, RuntimeError) and "alloc" in str(error).lower())


def _mb(n: int) -> str:
    return f"{n / 2 ** 20:,.1f} MB"
