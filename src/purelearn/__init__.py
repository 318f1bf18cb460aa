"""purelearn: gradient-based training of deep architectures with the practice of Bengio (2012)."""

from .data import load, prepare
from .errors import ConfigError, DataError, PurelearnError, TestSetError
from .nn import MLP
from .train import Member, Result, Training, find_learning_rate, fit

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "MLP", "Member", "PurelearnError", "Result", "TestSetError",
           "Training", "find_learning_rate", "fit", "load", "prepare"]
