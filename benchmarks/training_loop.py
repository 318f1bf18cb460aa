"""Training-loop overhead: purelearn (P = 1) against a minimal hand-written PyTorch loop.

Same 784-500-10 tanh net, mnist5k, plain SGD, validation every |valid| examples (purelearn's
default), same number of epochs. Reports examples per second and their ratio (goal >= 0.95),
median of alternating repeats.
"""

from __future__ import annotations

import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import hand_written, machine, median, timed  # noqa: E402

import purelearn as pl  # noqa: E402

EPOCHS, REPEATS = 2, 9


def main():
    splits = pl.prepare(pl.load("mnist5k"), preprocess=["scale"], valid=0.1, test=0.1)
    X, y = torch.as_tensor(splits.X_train), torch.as_tensor(splits.y_train)
    Xv, yv = torch.as_tensor(splits.X_valid), torch.as_tensor(splits.y_valid)
    print(f"machine: {machine()}")
    print("| batch | purelearn ex/s | hand-written ex/s | ratio |")
    print("| --- | --- | --- | --- |")
    for B in (32, 128):
        ours, theirs = [], []
        member = pl.Member(pl.MLP((500,), "tanh"), pl.Training(lr=0.05, batch_size=B, max_epochs=EPOCHS,
                                                                patience=10 ** 9))
        for r in range(REPEATS):
            t, res = timed(lambda: pl.fit(splits, member))
            ours.append(res.examples_seen / t)
            t, (_, seen) = timed(lambda: hand_written(X, y, Xv, yv, [784, 500, 10], torch.nn.Tanh, 0.05, B,
                                                      EPOCHS, len(Xv), r))
            theirs.append(seen / t)
        print(f"| {B} | {median(ours):,.0f} | {median(theirs):,.0f} | {median(ours) / median(theirs):.2f} |")


if __name__ == "__main__":
    main()
