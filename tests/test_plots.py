import numpy as np

import purelearn as pl
from purelearn.report.plots import marginals_figure


def _study():
    space = pl.Space({"a": pl.Choice(("tanh", "rectifier")), "x": pl.Uniform(0, 1)})
    return pl.tune(lambda p, report: p["x"] + (p["a"] == "tanh"), space, trials=12, seed=1)


def _choice_points(fig):
    """The (x, y) of the trials on the choice knob's panel (the first scatter; the star is the second)."""
    return np.asarray(fig.axes[0].collections[0].get_offsets())


def test_choice_jitter_differs_between_points_and_is_reproducible():
    study = _study()
    first, again = _choice_points(marginals_figure(study)), _choice_points(marginals_figure(study))
    assert len(first) == 12
    offsets = first[:, 0] - np.round(first[:, 0])             # each point around its choice's index
    assert np.all(np.abs(offsets) <= 0.15) and len(set(offsets.round(12))) == 12
    assert np.array_equal(first, again)
