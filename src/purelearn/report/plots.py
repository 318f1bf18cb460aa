"""The pictures of a study (§3.4, §4.2): efficiency curve, marginals, learning curves."""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..search import parse_space  # noqa: E402


def efficiency_figure(study):
    """Best of the first N trials, and mean +- std of the best over all subsets of size N."""
    rows = study.efficiency_curve()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    if rows:
        n = np.array([r["n"] for r in rows])
        mean = np.array([r["mean_best"] for r in rows])
        std = np.array([r["std_best"] for r in rows])
        ax.fill_between(n, mean - std, mean + std, alpha=0.25, label="mean ± std of best over subsets of size N")
        ax.plot(n, mean, lw=2)
        ax.step(n, [r["best_of_first"] for r in rows], where="post", color="k", lw=1, label="best of the first N")
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("N (trials)")
    ax.set_ylabel("validation error")
    ax.set_title("Efficiency curve\n" + textwrap.fill(study.plateau()["message"], 95), fontsize=8)
    fig.tight_layout()
    return fig


def marginals_figure(study):
    """Validation error against each knob, the searched interval's edges drawn, border
    warnings marked in red."""
    space = parse_space(study.record.space)
    initial = parse_space(study.record.settings.get("initial_space", study.record.space))
    done = study.finished()
    knobs = list(space.dims)
    cols = min(3, len(knobs))
    rows = math.ceil(len(knobs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    best = study.best
    warned = {w.split(":", 1)[0] for w in study.warnings() if "edge" in w}
    # One generator for the whole figure: a fresh one per point would give every point the same
    # offset; a fixed seed draws the same picture of the same study every time.
    jitter = np.random.default_rng(0)
    for ax, name in zip(axes.flat, knobs):
        dim = space.dims[name]
        pts = [(t.params[name], t.value) for t in done if name in t.params]
        if dim.numeric:
            if pts:
                ax.scatter(*zip(*pts), s=14, alpha=0.7)
            for edge in (initial.dims[name].low, initial.dims[name].high):
                ax.axvline(edge, color="grey", ls="--", lw=1)
            if (dim.low, dim.high) != (initial.dims[name].low, initial.dims[name].high):
                for edge in (dim.low, dim.high):
                    ax.axvline(edge, color="tab:orange", ls=":", lw=1)
            if dim.log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            labels = [str(v) for v in getattr(dim, "values", [getattr(dim, "value", None)])]
            xs = [labels.index(str(v)) + jitter.uniform(-0.15, 0.15) for v, _ in pts]
            ax.scatter(xs, [v for _, v in pts], s=14, alpha=0.7)
            ax.set_xticks(range(len(labels)), labels)
        if best is not None and name in best.params:
            x = best.params[name]
            x = [str(v) for v in getattr(dim, "values", [x])].index(str(x)) if not dim.numeric else x
            ax.scatter([x], [best.value], s=60, marker="*", color="red" if name in warned else "k", zorder=3)
        ax.set_title(name + ("  (best on the border)" if name in warned else ""), fontsize=9,
                     color="red" if name in warned else "black")
        ax.set_ylabel("validation error")
    for ax in list(axes.flat)[len(knobs):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def curves_figure(study, top: int = 5):
    """Validation error against examples seen for the best trials."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for t in sorted(study.finished(), key=lambda t: t.value)[:top]:
        pts = [(r["examples_seen"], r["valid_error"]) for r in t.curve if r.get("valid_error") is not None]
        if pts:
            ax.plot(*zip(*pts), label=f"trial {t.number} ({t.value:.4f})")
    ax.set_xlabel("examples seen")
    ax.set_ylabel("validation error")
    ax.set_title(f"Learning curves of the {top} best trials", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


FIGURES = {"efficiency": efficiency_figure, "marginals": marginals_figure, "curves": curves_figure}
