"""Where trials run (in-process or a pool of processes) and the driver that runs a study.

The driver and the study need the store (SQLAlchemy); they load on first use, so a worker
process, which needs only the objective, starts without them.
"""

from .objective import ConfigObjective, FunctionObjective, Outcome, apply_params
from .workers import EXECUTORS, Inline, ProcessPool

_LAZY = {"Progress": "driver", "trial_seed": "driver", "tune": "driver", "Study": "study"}

__all__ = ["EXECUTORS", "ConfigObjective", "FunctionObjective", "Inline", "Outcome", "ProcessPool", "Progress",
           "Study", "apply_params", "trial_seed", "tune"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
