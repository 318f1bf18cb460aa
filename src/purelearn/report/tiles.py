"""Vectors drawn as pictures (§4.2): an input of d = s * s numbers as an s x s image (784 inputs
as 28 x 28, 64 as 8 x 8), a grid of them as one mosaic; vectors of any other width (mnist1d's
40, a PCA basis) as small line plots, one per cell, all in one collection. One image or one
collection per grid keeps a hundred tiles as quick to draw as one."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.collections  # noqa: E402
import numpy as np  # noqa: E402

PAD = 1                       # background pixels between tiles


def image_shape(d: int) -> tuple[int, int] | None:
    """(s, s) when d = s * s for some s >= 2, else None."""
    s = math.isqrt(d)
    return (s, s) if s >= 2 and s * s == d else None


def mosaic(grid: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Rows of vectors (each row [n, h * w]) as one array of h x w tiles, PAD cells of NaN (drawn
    as the background) between them; a shorter row leaves its last cells NaN."""
    h, w = shape
    columns = max(len(row) for row in grid)
    out = np.full((len(grid) * (h + PAD) - PAD, columns * (w + PAD) - PAD), np.nan)
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            out[r * (h + PAD):r * (h + PAD) + h, c * (w + PAD):c * (w + PAD) + w] = np.reshape(v, shape)
    return out


def tile(image: np.ndarray, shape: tuple[int, int], row: int, column: int) -> np.ndarray:
    """The tile at (row, column) of a :func:`mosaic`, flattened back to a vector."""
    h, w = shape
    return image[row * (h + PAD):row * (h + PAD) + h, column * (w + PAD):column * (w + PAD) + w].ravel()


def draw_images(ax, grid: list[np.ndarray], shape: tuple[int, int], vmin: float, vmax: float):
    """The grid as one grey image on ``ax`` (NaN cells in the figure's background colour)."""
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="#d8dde6")
    image = ax.imshow(mosaic(grid, shape), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_axis_off()
    return image


def draw_lines(ax, grid: list[np.ndarray], vmin: float, vmax: float, colors=None):
    """Each vector of the grid as a line plot in its own cell (cell (r, c) spans x in [c, c + 1],
    y in [-r - 1, -r]; vmin..vmax fills a cell's height), all as one LineCollection; ``colors``:
    one per row of the grid."""
    segments, seg_colors = [], []
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            v = np.asarray(v, float)
            x = c + 0.05 + 0.9 * np.linspace(0, 1, len(v))
            y = -r - 0.95 + 0.9 * (np.clip(v, vmin, vmax) - vmin) / (vmax - vmin)
            segments.append(np.column_stack([x, y]))
            seg_colors.append("k" if colors is None else colors[r])
    lines = matplotlib.collections.LineCollection(segments, colors=seg_colors, linewidths=0.7)
    ax.add_collection(lines)
    ax.set_xlim(0, max(len(row) for row in grid))
    ax.set_ylim(-len(grid), 0)
    ax.set_xticks([])
    ax.set_yticks([])
    return lines



def label_rows(ax, labels: list[str], shape: tuple[int, int] | None) -> None:
    """Each row's label at its left, for a grid drawn by :func:`draw_images` (``shape``) or by
    :func:`draw_lines` (None)."""
    for r, text in enumerate(labels):
        y = r * (shape[0] + PAD) + shape[0] / 2 if shape else -r - 0.5
        x = -PAD if shape else -0.05
        ax.text(x, y, text, ha="right", va="center", fontsize=7, transform=ax.transData, clip_on=False)
