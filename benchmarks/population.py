"""Population throughput: P members trained as one batched population against P separate
hand-written runs, same total examples (every member trains the same number of epochs).

Nets: 64-64-10 on digits and 784-256-256-10 on mnist5k, tanh, SGD, B = 32, validation every
|valid| examples. Separate runs of the large net are timed on up to 16 runs and scaled to P
(each run costs the same). Reports the speed-up ratio, median of repeats.

    python benchmarks/population.py [--keep-freed-memory]

With ``--keep-freed-memory`` the process keeps the memory it frees (as purelearn's workers and
command line do), for both the populations and the separate runs.
"""

from __future__ import annotations

import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import hand_written, machine, median, timed  # noqa: E402

import purelearn as pl  # noqa: E402

CASES = [("64-64-10", "digits", ["standardize"], (64,), 4, 3),
         ("784-256-256-10", "mnist5k", ["scale"], (256, 256), 1, 2)]


def separate(splits, hidden, epochs, runs):
    X, y = torch.as_tensor(splits.X_train), torch.as_tensor(splits.y_train)
    Xv, yv = torch.as_tensor(splits.X_valid), torch.as_tensor(splits.y_valid)
    sizes = [splits.n_features, *hidden, splits.n_outputs]
    for r in range(runs):
        hand_written(X, y, Xv, yv, sizes, torch.nn.Tanh, 0.05, 32, epochs, len(Xv), r)


def main():
    kept = "--keep-freed-memory" in sys.argv[1:]
    if kept:
        from purelearn.execute.workers import keep_freed_memory
        keep_freed_memory()
    print(f"machine: {machine()}" + (", freed memory kept" if kept else ""))
    print("| net | P | population s | separate s | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for name, data, prep, hidden, epochs, repeats in CASES:
        splits = pl.prepare(pl.load(data), preprocess=prep)
        for P in (1, 8, 32, 128):
            members = [pl.Member(pl.MLP(hidden, "tanh"), pl.Training(lr=0.05, max_epochs=epochs, patience=10 ** 9,
                                                                      seed=s)) for s in range(P)]
            measured = P if name == "64-64-10" else min(P, 16)
            ours, theirs = [], []
            for _ in range(repeats):
                ours.append(timed(lambda: pl.fit(splits, members))[0])
                theirs.append(timed(lambda: separate(splits, hidden, epochs, measured))[0] * P / measured)
            o, t = median(ours), median(theirs)
            print(f"| {name} | {P} | {o:.2f} | {t:.2f} | {t / o:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
