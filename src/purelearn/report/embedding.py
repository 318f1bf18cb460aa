"""A map of the learned representation (§4.2): t-SNE (van der Maaten and Hinton, 2008, as
scikit-learn computes it) of the top hidden layer of validation examples, one colour per class.
Classes that form separate clusters are what a linear output layer can tell apart; a learned
representation should separate them better than the raw inputs do."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .unavailable import Unavailable  # noqa: E402

MAX_EXAMPLES = 1000
PCA_DIMENSIONS = 50            # scikit-learn's advice: reduce wide codes first (faster, less noise)


def tsne_points(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """The 2-D t-SNE embedding [n, 2] of ``codes`` [n, H], seeded (the same map every time)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    codes = np.asarray(codes, dtype=np.float64)
    n = len(codes)
    if n < 5:
        raise Unavailable(f"t-SNE needs at least 5 examples to map, there are {n}.")
    if codes.shape[1] > PCA_DIMENSIONS and n > PCA_DIMENSIONS:
        codes = PCA(n_components=PCA_DIMENSIONS, random_state=seed).fit_transform(codes)
    perplexity = min(30.0, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    return tsne.fit_transform(codes)


def class_colours(k: int) -> list:
    """k distinguishable colours (tab10, tab20, then a hue circle)."""
    if k <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(k)]
    if k <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(k)]
    return [matplotlib.colormaps["hsv"](i / k) for i in range(k)]


def tsne_figure(model, X, y, classes=None, limit: int = MAX_EXAMPLES, seed: int = 0, title: str = ""):
    """The t-SNE map of ``model.encode`` of the first ``limit`` raw inputs X, coloured by their
    class indices y (``classes``: the label of each index), one scatter per class."""
    X, y = np.asarray(X)[:limit], np.asarray(y)[:limit]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise Unavailable("the map is coloured by class, and these targets are not classes (multilabel or "
                          "regression).")
    codes = model.encode(X)
    points = tsne_points(codes, seed)
    found = np.unique(y)
    colours = class_colours(int(found.max()) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for c in found:
        at = y == c
        label = classes[c] if classes is not None else c
        ax.scatter(points[at, 0], points[at, 1], s=8, color=colours[c], label=str(label), alpha=0.8)
    ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1, 0.5), title="class")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title or 't-SNE of the top representation'}: {len(X)} validation examples, "
                 f"codes of {codes.shape[1]} units", fontsize=8)
    fig.tight_layout()
    return fig
