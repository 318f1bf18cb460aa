"""Weight initialization of §3.2."""

from __future__ import annotations

import math

from ..errors import unknown

SCHEMES = ("glorot", "fan_in")


def init_bound(fan_in: int, fan_out: int, activation: str, scheme: str = "glorot",
               scale: float = 1.0) -> float:
    """Half-width r of the Uniform(-r, r) initial weights.

    ``glorot``: r = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010); ``fan_in``:
    r = sqrt(3 / fan_in), i.e. weight variance 1/fan_in (LeCun et al. 1998). Sigmoid units get
    4x that range, since the sigmoid's slope at 0 is 1/4 of tanh's. ``scale`` multiplies r and is
    the one initialization hyper-parameter left.
    """
    if scheme == "glorot":
        r = math.sqrt(6.0 / (fan_in + fan_out))
    elif scheme == "fan_in":
        r = math.sqrt(3.0 / fan_in)
    else:
        raise unknown("initialization (model.init)", scheme, SCHEMES)
    return r * (4.0 if activation == "sigmoid" else 1.0) * scale
