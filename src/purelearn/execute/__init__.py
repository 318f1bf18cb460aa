"""Where trials run (in-process or a pool of processes) and the driver that runs a study."""

from .objective import ConfigObjective, FunctionObjective, Outcome, apply_params
from .driver import Progress, trial_seed, tune
from .study import Study
from .workers import EXECUTORS, Inline, ProcessPool

__all__ = ["EXECUTORS", "ConfigObjective", "FunctionObjective", "Inline", "Outcome", "ProcessPool", "Progress",
           "Study", "apply_params", "trial_seed", "tune"]
