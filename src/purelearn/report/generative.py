"""What a model of its own inputs learned (§4.2): an auto-encoder's or an RBM's reconstructions
of validation inputs (a denoising auto-encoder's also of the same inputs corrupted, what it was
trained to undo), and the samples an RBM generates by Gibbs sampling (§1.1) from validation
inputs. Blurry reconstructions, or chains that all drift to one blob, show a model that has not
yet captured the inputs' structure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..nn import family_of  # noqa: E402
from ..nn.autoencoder import corrupt  # noqa: E402
from ..nn.family import one  # noqa: E402
from ..nn.rbm import gibbs_chain, hidden_probabilities, visible_means  # noqa: E402
from .tiles import draw_images, draw_lines, image_shape, label_rows  # noqa: E402
from .unavailable import Unavailable  # noqa: E402

EXAMPLES = 10
CHECKPOINTS = (0, 1, 10, 100, 300)        # Gibbs steps at which the chains are shown


def reconstructions(model, X, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows to draw, by label, for raw inputs X: the inputs as the model sees them
    (preprocessed); with corruption, the same corrupted (one seeded draw) and the reconstruction
    of that; the reconstruction of the clean inputs."""
    family, spec = family_of(model.spec), model.spec
    if family.supervised:
        raise Unavailable(f"a {family.name} learns targets, not its inputs: it has no reconstruction.")
    x = torch.as_tensor(model.inputs(X))
    rows = {"input": x.numpy()}
    level = getattr(spec, "corruption_level", 0.0)
    if level > 0:
        g = torch.Generator().manual_seed(seed)
        u = (torch.randn if spec.corruption == "gaussian" else torch.rand)(*x.shape, generator=g)
        noisy = corrupt(x, spec.corruption, torch.tensor(level), u)
        rows[f"{spec.corruption} {level:.2g}"] = noisy.numpy()
        rows["reconstructed"] = family.predict(spec, model.params, noisy).numpy()
    rows["clean reconstructed" if level > 0 else "reconstructed"] = family.predict(spec, model.params, x).numpy()
    return rows


def gibbs_samples(model, X, checkpoints=CHECKPOINTS, seed: int = 0) -> dict[int, np.ndarray]:
    """An RBM's chains started from raw inputs X (preprocessed), one seeded generator: at step 0
    the inputs, at step t > 0 E[v | h] for h drawn from p(h | v_t), the mean the next visible
    draw is made from (clearer than the binary draw itself)."""
    spec = model.spec
    if spec.family != "rbm":
        raise Unavailable(f"a {spec.family} defines no distribution to sample from; an RBM does.")
    params = one(model.params)
    g = [torch.Generator().manual_seed(seed)]
    v = torch.as_tensor(model.inputs(X)).unsqueeze(0)
    out, step = {}, 0
    with torch.no_grad():
        for t in sorted(checkpoints):
            if t > step:
                v, step = gibbs_chain(params, v, t - step, spec.visible, g), t
            if t == 0:
                out[t] = v[0].numpy()
                continue
            ph = hidden_probabilities(params, v)
            h = (torch.rand(ph.shape[1:], generator=g[0]) < ph).to(v.dtype)
            out[t] = visible_means(params, h, spec.visible)[0].numpy()
    return out


def display_range(x: np.ndarray) -> tuple[float, float]:
    """0..1 for inputs in [0, 1] (pixels as probabilities), else their 1st..99th percentiles."""
    if x.min() >= 0 and x.max() <= 1:
        return 0.0, 1.0
    lo, hi = np.percentile(x, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def rows_figure(rows: dict[str, np.ndarray], title: str):
    """Labelled rows of vectors: images when their width is a perfect square, else line plots."""
    grid = list(rows.values())
    vmin, vmax = display_range(grid[0])
    shape = image_shape(grid[0].shape[1])
    columns = max(len(row) for row in grid)
    fig, ax = plt.subplots(figsize=(7.2, 0.6 + 6.0 * len(grid) / columns))
    if shape:
        draw_images(ax, grid, shape, vmin, vmax)
    else:
        draw_lines(ax, grid, vmin, vmax)
    label_rows(ax, list(rows), shape)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def reconstructions_figure(model, X, n: int = EXAMPLES, seed: int = 0):
    """The first ``n`` raw inputs X above their reconstructions."""
    return rows_figure(reconstructions(model, np.asarray(X)[:n], seed),
                       f"{model.spec.family}: validation inputs and their reconstructions")


def samples_figure(model, X, n: int = EXAMPLES, checkpoints=CHECKPOINTS, seed: int = 0):
    """Gibbs chains of an RBM from the first ``n`` raw inputs X, a row per checkpoint."""
    samples = gibbs_samples(model, np.asarray(X)[:n], checkpoints, seed)
    rows = {("start" if t == 0 else f"step {t}"): v for t, v in samples.items()}
    return rows_figure(rows, f"RBM: {n} Gibbs chains from validation inputs; a row after t steps "
                             "shows E[v | h], h drawn from p(h | v_t)")
