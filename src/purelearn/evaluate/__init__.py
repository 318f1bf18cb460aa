"""The out-of-sample protocol of §3: selection hidden inside a learner, its generalization
estimated by double cross-validation, final runs over seeds and committees."""

from .learner import HyperLearner, examples_at_best

__all__ = ["HyperLearner", "examples_at_best"]
