"""Datasets, splits and preprocessing fitted on the training split only."""

from . import mnist1d as _mnist1d  # noqa: F401  (registers the 'mnist1d' built-in)
from .datasets import BUILTIN, TASKS, Dataset, from_arrays, load, read_idx
from .mnist1d import make_mnist1d
from .preprocess import STEPS, parse_step
from .splits import Splits, prepare, split_indices

__all__ = ["BUILTIN", "TASKS", "Dataset", "Splits", "STEPS", "from_arrays", "load", "make_mnist1d",
           "parse_step", "prepare", "read_idx", "split_indices"]
