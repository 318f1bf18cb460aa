"""Objectives that worker processes can import by name (spawned workers unpickle by module)."""

import math
import os
import signal


def quadratic(params, report):
    for i in range(5):
        report(100 * (i + 1), (params["x"] - 0.3) ** 2 + 0.1 / (i + 1))
    return (params["x"] - 0.3) ** 2 + (math.log10(params["lr"]) + 2) ** 2


def crashy(params, report):
    """Kills its own process for x > 0.8, raises for x < 0.1: both must fail only that trial."""
    if params["x"] > 0.8:
        os.kill(os.getpid(), signal.SIGKILL)
    if params["x"] < 0.1:
        raise RuntimeError("bad luck")
    return params["x"]
