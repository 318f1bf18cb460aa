"""Shared helpers for the benchmarks: the machine, the data, and a plain hand-written loop."""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}")


def median(xs):
    return statistics.median(xs)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def hand_written(X, y, Xv, yv, sizes, activation, lr, batch_size, epochs, valid_every, seed):
    """The loop a practitioner writes by hand: nn.Linear layers, torch.optim.SGD, validation
    every ``valid_every`` examples, best state kept."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    seen, best, best_state, next_valid = 0, float("inf"), None, valid_every
    n = len(X)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            if seen >= next_valid:
                next_valid += valid_every
                with torch.no_grad():
                    err = (model(Xv).argmax(1) != yv).float().mean().item()
                if err < best:
                    # keep the best state, as purelearn does (its cost belongs in the comparison)
                    best, best_state = err, {k: v.clone() for k, v in model.state_dict().items()}  # noqa: F841
    return best, seen
