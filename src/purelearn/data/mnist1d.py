"""A procedurally generated one-dimensional digits task, in the spirit of MNIST-1D.

Each class is a 12-point template (a stroke profile); an example is its template placed at a
random offset in a longer signal, stretched in time, sheared, and covered with smooth and white
noise, then sampled at 40 points. Made from a seed on every call: never downloaded.
"""

from __future__ import annotations

import numpy as np

from .datasets import Dataset, from_arrays, register_builtin

TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],            # 0: a plateau
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],          # 1: a dip then a ramp
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5][::-1],    # 2: its mirror
    [5, 6, 7, 6, 5, 4, 5, 6, 7, 6, 5, 5],                      # 3: two bumps
    [5, 5, 5, 8, 8, 5, 5, 3, 3, 5, 5, 5],                      # 4: up then down
    [5, 5, 3, 3, 5, 5, 8, 8, 5, 5, 5, 5],                      # 5: down then up
    [5, 4, 3, 2, 3, 4, 5, 6, 7, 8, 7, 5],                      # 6: valley then peak
    [5, 8, 7, 6, 5, 4, 3, 2, 3, 4, 5, 5],                      # 7: a falling line
    [5, 7, 5, 3, 5, 7, 5, 3, 5, 7, 5, 5],                      # 8: a fast wave
    [5, 6, 7, 8, 8.5, 8.5, 8, 7, 4, 3, 4, 5],                  # 9: hump and drop
]) - 5.0


def make_mnist1d(n: int = 5000, length: int = 40, seed: int = 0) -> Dataset:
    """``n`` examples of ``length`` samples, classes balanced, fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % 10)
    X = np.stack([_example(TEMPLATES[c], length, rng) for c in y])
    return from_arrays(X.astype(np.float32), y, "mnist1d", "classification")


def _example(template: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    total = int(rng.integers(36, 61))                      # padded signal length
    start = int(rng.integers(0, total - len(template)))
    signal = np.zeros(total)
    signal[start:start + len(template)] = template * rng.uniform(0.8, 1.2)
    stretch = rng.uniform(0.8, 1.2)                        # time scaling around the centre
    t = np.linspace(-1, 1, length)
    positions = (t * stretch + 1) / 2 * (total - 1)
    x = np.interp(positions, np.arange(total), signal)
    x += rng.uniform(-0.75, 0.75) * t                      # shear
    smooth = np.convolve(rng.normal(0, 0.25, length + 8), np.ones(9) / 3, mode="valid")
    return x + smooth + rng.normal(0, 0.25, length)


register_builtin("mnist1d")(make_mnist1d)
