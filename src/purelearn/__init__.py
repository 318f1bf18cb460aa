"""purelearn: gradient-based training of deep architectures with the practice of Bengio (2012)."""

from .data import load, prepare
from .errors import ConfigError, DataError, PurelearnError, TestSetError
from .nn import MLP, RBM, AutoEncoder
from .train import Member, Model, Result, Training, find_learning_rate, fit
from .search import Choice, Fixed, IntLogUniform, IntUniform, LogUniform, Space, Uniform, When

__version__ = "0.1.0"
__all__ = ["AutoEncoder", "Choice", "ConfigError", "DataError", "Fixed", "HyperLearner", "IntLogUniform", "IntUniform",
           "LogUniform",
           "MLP", "Member", "RBM", "Model", "PurelearnError", "Result", "Space", "Study", "TestSetError", "Training", "Uniform", "When",
           "find_learning_rate", "fit", "load", "prepare", "tune"]


def __getattr__(name: str):
    # The study driver loads with the store on first use: worker processes never need it.
    if name in ("Study", "tune"):
        from . import execute
        return getattr(execute, name)
    if name == "HyperLearner":     # scikit-learn loads with it, not with every import
        from .evaluate import HyperLearner
        return HyperLearner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
