"""Pictures and the HTML report of a study."""

from .html import write_report
from .plots import FIGURES, curves_figure, efficiency_figure, marginals_figure
from .embedding import tsne_figure
from .filters import filters_figure
from .generative import reconstructions_figure, samples_figure
from .hinton import hinton_figure
from .importance import importance_figure, importances
from .unavailable import Unavailable

__all__ = ["FIGURES", "curves_figure", "efficiency_figure", "marginals_figure", "write_report"]
__all__ += ["Unavailable", "filters_figure", "hinton_figure", "importance_figure", "importances",
            "reconstructions_figure", "samples_figure", "tsne_figure"]
