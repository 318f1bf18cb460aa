"""The out-of-sample protocol of §3: selection hidden inside a learner, its generalization
estimated by double cross-validation, final runs over seeds and committees."""

from .finals import FinalRun, Finals, final_seeds, run_finals
from .learner import HyperLearner, examples_at_best
from .nested import NestedEstimate, OuterFold, double_cross_validation

__all__ = ["FinalRun", "Finals", "HyperLearner", "final_seeds", "run_finals", "NestedEstimate", "OuterFold", "double_cross_validation", "examples_at_best"]
