"""The random-search efficiency curve of §3.4, computed exactly.

For n finished trials with values v_(1) <= ... <= v_(n), the minimum of a subset of size N drawn
uniformly among all C(n, N) subsets is v_(i) with probability C(n - i, N - 1) / C(n, N) (the
subset holds v_(i) and N - 1 of the n - i larger ones). That gives the mean and standard
deviation of the best of N trials without sampling subsets.
"""

from __future__ import annotations

import math

import numpy as np


def best_of_subsets(values, N: int) -> tuple[float, float]:
    """Mean and standard deviation of min(subset) over all subsets of size N."""
    return _best_of_sorted(np.sort(np.asarray(values, dtype=np.float64)), N)


def _best_of_sorted(v: np.ndarray, N: int) -> tuple[float, float]:
    n = len(v)
    if not 1 <= N <= n:
        raise ValueError(f"subset size {N} must lie in [1, {n}]")
    # p_1 = N / n, and p_{i+1} / p_i = (n - i - N + 1) / (n - i): one vectorized pass, no
    # binomials (v_(i) can be the minimum only for i <= n - N + 1).
    i = np.arange(1, n - N + 1)
    logp = np.log(N / n) + np.concatenate([[0.0], np.cumsum(np.log((n - i - N + 1) / (n - i)))])
    p = np.exp(logp)
    p /= p.sum()                                  # exact up to rounding; renormalize the float sum
    head = v[:len(p)]
    mean = float(p @ head)
    var = float(p @ (head - mean) ** 2)
    return mean, math.sqrt(max(var, 0.0))


def efficiency_curve(values) -> list[dict]:
    """Rows for N = 1..n: the best of the first N trials (in the order run) and the mean and
    standard deviation of the best over all subsets of size N."""
    values = [float(v) for v in values]
    running = np.minimum.accumulate(values) if values else []
    ordered = np.sort(values)
    rows = []
    for N in range(1, len(values) + 1):
        mean, std = _best_of_sorted(ordered, N)
        rows.append({"n": N, "best_of_first": float(running[N - 1]), "mean_best": mean, "std_best": std})
    return rows


def plateau(values, tolerance: float = 0.01) -> dict:
    """Is launching more trials worth it? Compare the expected best of n trials with the
    expected best of n/2: if the last doubling improved it by less than ``tolerance``
    (relative), the curve has reached its plateau and another doubling is unlikely to pay."""
    n = len(values)
    if n < 4:
        return {"plateau": False, "gain_from_last_doubling": None,
                "message": f"only {n} finished trial(s): too few to judge; launch more."}
    half, full = best_of_subsets(values, n // 2)[0], best_of_subsets(values, n)[0]
    gain = half - full
    rel = gain / max(abs(half), 1e-12)
    flat = rel < tolerance
    msg = (f"doubling from {n // 2} to {n} trials improved the expected best by {rel:.1%} "
           + ("(< {:.0%}): a plateau; more trials are unlikely to help much.".format(tolerance) if flat
              else "- launching more trials is still worth it."))
    return {"plateau": flat, "gain_from_last_doubling": gain, "message": msg}
