"""The training loop over a population of members: early stopping, divergence, learning curves."""

from .early_stopping import Patience, significant
from .fit import check_member, fit, fit_iter, resolve_device
from .hyper import OPTIMIZERS, PATIENCE_MODES, TRAINING_KEYS, Member, Training
from .lr_search import RateRun, RateSearch, find_learning_rate
from .model import Model
from .population import Data, Population
from .result import STOP_REASONS, Result

__all__ = ["Data", "Member", "Model", "OPTIMIZERS", "PATIENCE_MODES", "Patience", "Population", "RateRun",
           "RateSearch", "Result",
           "STOP_REASONS", "TRAINING_KEYS", "Training", "check_member", "find_learning_rate", "fit", "fit_iter",
           "resolve_device", "significant"]
