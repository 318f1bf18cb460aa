"""The out-of-sample protocol of §3: selection hidden inside a learner, its generalization
estimated by double cross-validation, final runs over seeds and committees."""

from .learner import HyperLearner, examples_at_best
from .nested import NestedEstimate, OuterFold, double_cross_validation

__all__ = ["HyperLearner", "NestedEstimate", "OuterFold", "double_cross_validation", "examples_at_best"]
