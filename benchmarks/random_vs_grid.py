"""Random search against grid search on digits (§3.4): same 5-knob space, same training budget
per trial. The exact efficiency curves (mean and std of the best of N over all subsets of the
trials run) show how many random trials match the whole grid.

    python benchmarks/random_vs_grid.py            # writes benchmarks/random_vs_grid.png
    python benchmarks/random_vs_grid.py --shifted  # intervals moved off the known defaults
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import purelearn as pl  # noqa: E402
from purelearn.config import load_config  # noqa: E402
from purelearn.search import efficiency_curve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"train.lr": "loguniform(1e-3, 1)", "model.units": "intloguniform(8, 256)",
         "train.l2": "loguniform(1e-5, 1)", "model.init_scale": "loguniform(0.1, 10)",
         "model.activation": 'choice("tanh", "rectifier")'}
# The same space with each interval moved, so that no grid point falls on a known good default
# (the log-centre of [0.1, 10] is init_scale = 1, Glorot's own scale).
SHIFTED = SPACE | {"train.lr": "loguniform(2e-3, 3)", "model.init_scale": "loguniform(0.2, 30)",
                   "train.l2": "loguniform(3e-6, 3)"}


REPS = 5


def main():
    space = SHIFTED if "--shifted" in sys.argv else SPACE
    config = load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=10", "train.patience=3000"])
    print(f"machine: {machine()}")
    grid_size = 3 ** 4 * 2
    curves = {"grid": [], "random": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(REPS):
            for name, options in (("grid", {"k": 3}), ("random", {})):
                start = time.perf_counter()
                study = pl.tune(config, space, strategy=name, trials=grid_size, store=Path(tmp) / "s.db",
                                study=f"{name}{rep}", workers=2, options=options, seed=rep)
                # A diverged trial counts, at the worst error (1.0): it was paid for.
                values = [1.0 if t.value is None else t.value for t in study.trials]
                curves[name].append(efficiency_curve(values))
                print(f"repetition {rep}, {name}: {len(values)} trials ({values.count(1.0)} diverged or failed) "
                      f"in {time.perf_counter() - start:.0f} s, best {min(values):.4f}", flush=True)
    mean = {name: [sum(c[N]["mean_best"] for c in runs) / REPS for N in range(grid_size)]
            for name, runs in curves.items()}
    spread = {name: [sum(c[N]["std_best"] for c in runs) / REPS for N in range(grid_size)]
              for name, runs in curves.items()}
    grid_best = mean["grid"][-1]
    match = next((N + 1 for N, m in enumerate(mean["random"]) if m <= grid_best), None)
    print(f"\nover {REPS} repetitions the whole grid ({grid_size} trials) reaches {grid_best:.4f} on average; "
          f"random search matches that in expectation after {match or 'more than ' + str(grid_size)} trials")
    print("| N | random: mean best (std within a run) | grid, shuffled partial grid: mean best (std) |")
    print("| --- | --- | --- |")
    for N in (1, 2, 4, 8, 16, 32, 64, 128, grid_size):
        print(f"| {N} | {mean['random'][N - 1]:.4f} ({spread['random'][N - 1]:.4f}) | "
              f"{mean['grid'][N - 1]:.4f} ({spread['grid'][N - 1]:.4f}) |")
    fig, ax = plt.subplots(figsize=(6.4, 4))
    n = list(range(1, grid_size + 1))
    for name in curves:
        ax.plot(n, mean[name], label=f"{name} (mean best of N, {REPS} repetitions)")
        ax.fill_between(n, [m - s for m, s in zip(mean[name], spread[name])],
                        [m + s for m, s in zip(mean[name], spread[name])], alpha=0.2)
    ax.axhline(grid_best, color="grey", ls="--", lw=1, label="whole grid")
    ax.set_xscale("log")
    ax.set_xlabel("N trials")
    ax.set_ylabel("validation error (best of N)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(__file__).with_name("random_vs_grid" + ("_shifted" if space is SHIFTED else "") + ".png"),
                dpi=100)


if __name__ == "__main__":
    main()
