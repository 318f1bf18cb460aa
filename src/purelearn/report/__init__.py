"""Pictures and the HTML report of a study."""

from .html import write_report
from .plots import FIGURES, curves_figure, efficiency_figure, marginals_figure

__all__ = ["FIGURES", "curves_figure", "efficiency_figure", "marginals_figure", "write_report"]
