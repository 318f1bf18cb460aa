"""Preprocessing fitted on the training split only and applied to every split (§3.2).

Each step is written as ``name`` or ``name(argument)`` in a config, e.g. ``"standardize"``,
``"pca(0.95)"`` (keep 95% of the variance) or ``"pca(50)"`` (keep 50 components).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, unknown


@dataclass
class Step:
    """One fitted transformation; ``fit`` sees the training inputs only."""

    name: str
    arg: float | None = None
    state: dict = field(default_factory=dict)

    def fit(self, X: np.ndarray) -> "Step":
        FIT[self.name](self, X)
        return self

    def apply(self, X: np.ndarray, split: str) -> np.ndarray:
        return APPLY[self.name](self, X, split).astype(np.float32)


def _fit_standardize(s, X):
    std = X.std(axis=0)
    s.state = {"mean": X.mean(axis=0), "std": np.where(std > 1e-8, std, 1.0)}


def _fit_scale(s, X):
    top = np.abs(X).max()
    s.state = {"scale": top if top > 0 else 1.0}


def _fit_pca(s, X):
    mean = X.mean(axis=0)
    _, sv, vt = np.linalg.svd(X - mean, full_matrices=False)
    var = sv ** 2
    if s.arg is None or s.arg <= 1:
        fraction = 0.99 if s.arg is None else s.arg
        k = int(np.searchsorted(np.cumsum(var) / var.sum(), fraction - 1e-12) + 1)
    else:
        k = int(s.arg)
    s.state = {"mean": mean, "components": vt[:min(k, len(vt))].T}


def _fit_uniformize(s, X):
    s.state = {"sorted": np.sort(X, axis=0)}


def _fit_nothing(s, X):
    s.state = {}


def _uniformize(s, X, split):
    ref = s.state["sorted"]
    n = len(ref)
    # Empirical CDF of each feature, midpoint of ties, mapped into (0, 1).
    out = np.empty_like(X, dtype=np.float64)
    for j in range(X.shape[1]):
        lo = np.searchsorted(ref[:, j], X[:, j], side="left")
        hi = np.searchsorted(ref[:, j], X[:, j], side="right")
        out[:, j] = (lo + hi) / (2.0 * n)
    return out


def _nonnegative(fn, name):
    def apply(s, X, split):
        if (X < 0).any():
            where = "the inputs hold" if split == "new" else f"the {split} split holds"
            raise DataError(f"preprocess {name!r}: {where} negative values; "
                            f"{name} needs X >= 0.")
        return fn(X)
    return apply


FIT = {"standardize": _fit_standardize, "scale": _fit_scale, "pca": _fit_pca,
       "uniformize": _fit_uniformize, "log1p": _fit_nothing, "sqrt": _fit_nothing}
APPLY = {
    "standardize": lambda s, X, split: (X - s.state["mean"]) / s.state["std"],
    "scale": lambda s, X, split: X / s.state["scale"],
    "pca": lambda s, X, split: (X - s.state["mean"]) @ s.state["components"],
    "uniformize": _uniformize,
    "log1p": _nonnegative(np.log1p, "log1p"),
    "sqrt": _nonnegative(np.sqrt, "sqrt"),
}
STEPS = tuple(FIT)


def parse_step(text: str) -> Step:
    """``"pca(0.95)"`` -> Step('pca', 0.95), with range checks."""
    m = re.fullmatch(r"\s*([a-z0-9_]+)\s*(?:\(\s*([^)]*?)\s*\))?\s*", str(text))
    if not m:
        raise ConfigError(f"data.preprocess: can't read step {text!r}; write e.g. 'standardize' "
                          f"or 'pca(0.95)'. Allowed steps: {', '.join(STEPS)}.")
    name, arg = m.group(1), m.group(2)
    if name not in FIT:
        raise unknown("preprocessing step in data.preprocess", name, STEPS)
    if arg is None or arg == "":
        return Step(name)
    if name != "pca":
        raise ConfigError(f"data.preprocess: step {name!r} takes no argument, got {text!r}.")
    try:
        value = float(arg)
    except ValueError:
        raise ConfigError(f"data.preprocess: pca's argument must be a number, got {arg!r}.") from None
    if value <= 0 or (value > 1 and value != int(value)):
        raise ConfigError(f"data.preprocess: pca({arg}) must keep a variance fraction in (0, 1] "
                          "or a whole number of components >= 1.")
    return Step(name, value)


def fit_steps(specs, X_train: np.ndarray) -> list[Step]:
    """Parse and fit each step in order, each on the training inputs transformed by the ones before."""
    steps, X = [], X_train
    for spec in specs:
        step = parse_step(spec).fit(X)
        X = step.apply(X, "train")
        steps.append(step)
    return steps


def apply_steps(steps: list[Step], X: np.ndarray, split: str) -> np.ndarray:
    for step in steps:
        X = step.apply(X, split)
    return X
