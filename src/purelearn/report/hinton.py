"""Hinton diagrams (§4.2): a weight matrix as squares, one per weight, of area proportional to
|w|, white for a positive weight and black for a negative one on grey. Unlike a colour scale, the
eye compares areas, so a few large weights stand out among many small ones.

All the squares are one PolyCollection: drawing a 500 x 784 first layer (392,000 squares) as
one collection takes 2-3 seconds, as one patch each it would take minutes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.collections  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GAP = 0.9                      # the largest square's side, in cells: neighbours never touch
CORNERS = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) / 2


def hinton_collection(W: np.ndarray) -> matplotlib.collections.PolyCollection:
    """One square per weight of W [rows, columns], row-major: square (i, j) centred at
    (j, i), of side GAP * sqrt(|w| / max |w|) (so its area is proportional to |w|), white when
    w > 0, black when w < 0."""
    W = np.asarray(W, dtype=np.float64)
    top = np.abs(W).max()
    side = GAP * np.sqrt(np.abs(W) / (top if top > 0 else 1.0)).ravel()
    rows, cols = np.indices(W.shape)
    centres = np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64)
    squares = centres[:, None, :] + side[:, None, None] * CORNERS[None]
    colours = np.where(W.ravel()[:, None] > 0, 1.0, 0.0).repeat(3, 1)
    return matplotlib.collections.PolyCollection(squares, closed=True, facecolors=colours, edgecolors="none",
                                                 linewidths=0, antialiaseds=True)


def hinton_figure(W: np.ndarray, title: str = "", xlabel: str = "input", ylabel: str = "unit"):
    """The Hinton diagram of W [rows, columns] (rows down, as the matrix is written), in a
    figure whose shape follows the matrix's."""
    W = np.asarray(W, dtype=np.float64)
    rows, cols = W.shape
    width = 9.0 if cols > 40 else max(3.0, 0.25 * cols + 1.5)
    height = min(12.0, max(2.0, width * rows / cols + 1.0))
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_facecolor("0.5")
    ax.add_collection(hinton_collection(W), autolim=False)   # the limits are set below
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_aspect("auto" if cols > 40 or rows > 40 else "equal")
    ax.set_xlabel(f"{xlabel} ({cols})")
    ax.set_ylabel(f"{ylabel} ({rows})")
    ax.set_title((title + "\n" if title else "") + f"area ∝ |w| (largest {np.abs(W).max():.3g}); "
                 "white > 0, black < 0", fontsize=8)
    fig.tight_layout()
    return fig
