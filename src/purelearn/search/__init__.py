"""Search spaces and strategies (grid, random, coordinate descent, multi-resolution, TPE, greedy
layer-wise) behind one ask/tell interface, the border rule, and the efficiency curve of random
search."""

from .border import BorderRule, Expansion, border_warnings
from .checks import check_space
from . import layerwise  # noqa: F401  (registers the layerwise strategy)
from .efficiency import best_of_subsets, efficiency_curve, plateau
from .parse import parse_dimension, parse_space
from .space import Choice, Dimension, Fixed, IntLogUniform, IntUniform, LogUniform, Space, Uniform, When
from .strategies import (TPE, CoordinateDescent, GridSearch, MultiResolution, RandomSearch, Strategy,
                         grid_points, make_strategy)

__all__ = ["TPE", "BorderRule", "Choice", "CoordinateDescent", "Dimension", "Expansion", "Fixed",
           "GridSearch", "IntLogUniform", "IntUniform", "LogUniform", "MultiResolution", "RandomSearch", "Space",
           "Strategy", "Uniform", "When", "best_of_subsets", "border_warnings", "check_space", "efficiency_curve",
           "grid_points", "make_strategy", "parse_dimension", "parse_space", "plateau"]
