"""First-layer filters (§4.2): each hidden unit's input weights drawn as a picture of the input
it responds to most, one tile per unit. Gabor-like strokes show features learned; tiles of noise
show units that never learned (a dead unit, too small a learning rate, too few updates)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..nn import family_of  # noqa: E402
from .tiles import draw_images, draw_lines, image_shape  # noqa: E402

# Preprocessing that maps each input to itself: a weight still belongs to one pixel. Any other
# step (PCA) mixes the inputs, and a filter's numbers are coordinates in a new basis.
ELEMENTWISE = ("standardize", "scale", "uniformize", "log1p", "sqrt")
MAX_UNITS = 100
COLUMNS = 10


def first_layer(model, X_train) -> np.ndarray:
    """The first layer's weights [H, d] (float64), one row per unit, ``X_train`` the raw training
    inputs. For a family that trains without the inputs that are zero in every training example
    (the MLP, ``train.population.Data``), those inputs' weights are put back as 0: they kept
    their random initial values and never touch a training example, so they draw only noise."""
    W = torch.as_tensor(model.params["W0"]).double().numpy().copy()
    if family_of(model.spec).leaves_out_constant_inputs:
        W[:, ~(model.inputs(X_train) != 0).any(0)] = 0.0
    return W


def symmetric(W: np.ndarray) -> np.ndarray:
    """Each row divided by its largest |w|, into [-1, 1] with 0 at the middle grey (a row of zeros
    stays zeros)."""
    top = np.abs(W).max(axis=1, keepdims=True)
    return W / np.where(top > 0, top, 1.0)


def mixing_steps(model) -> list[str]:
    """The model's preprocessing steps that mix inputs (not elementwise), e.g. ['pca']."""
    return [s.name for s in model.preprocessing if s.name not in ELEMENTWISE]


def filters_figure(model, X_train, units: int = MAX_UNITS, title: str = ""):
    """The first ``units`` units' filters, COLUMNS per row: grey images when the input width is a
    perfect square and the preprocessing elementwise, else line plots (the filter against the
    input index, or the PCA component)."""
    W = first_layer(model, X_train)
    shown = symmetric(W[:units])
    grid = [shown[i:i + COLUMNS] for i in range(0, len(shown), COLUMNS)]
    mixed = mixing_steps(model)
    shape = None if mixed else image_shape(W.shape[1])
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 6.0 * len(grid) / COLUMNS * (1 if shape else 0.6)))
    if shape:
        draw_images(ax, grid, shape, -1.0, 1.0)
        how = "white > 0 > black"
    else:
        draw_lines(ax, grid, -1.0, 1.0)
        how = f"its weight on each {'+'.join(mixed)} component" if mixed else "its weight on each input"
    ax.set_title(f"{title or 'First-layer filters'}: {len(shown)} of {len(W)} units, each scaled to its largest "
                 f"|w| ({how})" + (f"\nin the {'+'.join(mixed)} basis, not pixels" if mixed else ""), fontsize=8)
    fig.tight_layout()
    return fig
