"""Finding the learning rate the chapter's way (§2.1, §3.1.1): start large and divide by 3
until training no longer diverges."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from .fit import fit
from .hyper import Member


def find_learning_rate(splits, member: Member, *, start: float = 1.0, factor: float = 3.0,
                       tries: int = 8, epochs: int = 1, device="cpu"):
    """The largest of start, start/factor, start/factor^2, ... whose short run (``epochs``)
    does not diverge, and the runs behind the choice.

    All candidates train at once as one population, each with the member's other settings, so
    the search costs about one run.
    """
    if not start > 0 or not factor > 1 or tries < 1:
        raise ConfigError(f"find_learning_rate: need start > 0, factor > 1 and tries >= 1 "
                          f"(got {start}, {factor}, {tries}).")
    rates = [start / factor ** k for k in range(tries)]
    short = replace(member.train, max_epochs=epochs, patience=10 ** 12)
    results = fit(splits, [replace(member, train=replace(short, lr=r)) for r in rates], device=device)
    for rate, result in zip(rates, results):
        if not result.diverged:
            return rate, results
    raise ConfigError(f"find_learning_rate: every rate down to {rates[-1]:.3g} diverged; "
                      "lower start or raise tries.")
