"""Pictures of a trial's layer statistics over training (§4.2, ``train.monitor``): each layer's
histograms of activations and of activation gradients against examples seen, and the update
ratio and linear-probe error of every layer against examples seen."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..train.monitor import EDGES
from .unavailable import Unavailable

QUANTITIES = (("post", "outputs"), ("grad", "gradient w.r.t. pre-activation"))


def histograms_figure(stats):
    """One row per layer of units, one column per quantity: the share of the monitored values
    in each fixed bin (colour) at each snapshot (x)."""
    if stats is None or len(stats) < 2:
        raise Unavailable("the trial was not monitored (set train.monitor, e.g. --monitor 2000, to record them)")
    layers = list(stats.units)
    fig, axes = plt.subplots(len(layers), len(QUANTITIES), figsize=(5.2 * len(QUANTITIES), 2.4 * len(layers)),
                             squeeze=False)
    x = np.asarray(stats.examples, dtype=float)
    for row, name in zip(axes, layers):
        unit = stats.units[name]
        for ax, (key, label) in zip(row, QUANTITIES):
            series = unit.get(key)
            if series is None:
                ax.text(0.5, 0.5, "no gradient (the update is not one)", ha="center", va="center", fontsize=8)
                ax.set_axis_off()
                continue
            counts = np.asarray(series["counts"], dtype=float)
            shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
            ax.imshow(shares.T, aspect="auto", origin="lower", cmap="magma", interpolation="nearest",
                      extent=(x[0], x[-1], 0, shares.shape[1]))
            _bin_ticks(ax, series["edges"])
            ax.set_title(f"{name} ({unit['activation']}): {label}", fontsize=8)
            ax.set_xlabel("examples seen", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def _bin_ticks(ax, edges: str) -> None:
    """Ticks at bin edges: edge j bounds bins j and j + 1, so it lies at height j + 1."""
    bounds = EDGES[edges]
    if edges == "signed_log":
        marks = {j + 1: f"{v:+.0e}" for j, v in enumerate(bounds) if abs(v) in (1e-6, 1e-3, 1.0)}
        marks[len(bounds) // 2 + 0.5] = "0"           # the middle bin, (-1e-8, 1e-8)
    else:
        middle = len(bounds) // 2
        marks = {1: f"{bounds[0]:g}", middle + 1: f"{bounds[middle]:g}", len(bounds): f"{bounds[-1]:g}"}
    ax.set_yticks(list(marks), list(marks.values()))


def trends_figure(stats):
    """The update ratio of each weight tensor (the 1/1000 of §6.2 marked) and each layer's
    linear-probe error, against examples seen."""
    if stats is None or len(stats) < 2:
        raise Unavailable("the trial was not monitored (set train.monitor to record its statistics)")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.4, 3.4))
    x = stats.examples
    for name, t in stats.tensors.items():
        ratios = np.asarray(t["update_ratio"], dtype=float)
        if name.startswith("W") and np.isfinite(ratios).any():
            left.plot(x, ratios, label=name)
    left.axhline(1e-3, color="grey", ls="--", lw=1)
    left.set_yscale("log")
    left.set_title("update / weight (mean absolute values); 1/1000 dashed", fontsize=9)
    probed = False
    for name, u in stats.units.items():
        errors = np.asarray(u.get("probe_error", []), dtype=float)
        ran = np.isfinite(errors)               # the probe runs at fewer snapshots than the rest
        if ran.any():
            right.plot(np.asarray(x)[ran], errors[ran], marker=".", label=name)
            probed = True
    right.set_title("linear-probe error of each layer's representation" if probed else
                    "no linear probe (needs class labels)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("examples seen")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
