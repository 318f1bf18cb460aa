"""RBMs: purelearn's persistent CD-1 against scikit-learn's BernoulliRBM (which trains by
persistent CD, "stochastic maximum likelihood"), and a population of 16 RBMs against 16
separate fits.

784-500 binary RBM on mnist5k (pixels / 255), B = 20, lr 0.05 (the mean gradient of the
minibatch times the rate, in both), no momentum or decay, 3 epochs of 4,000 examples. The
reconstruction error is computed the same way for both from their parameters: the
cross-entropy of the mean-field reconstruction of the 500 validation digits. Separate fits are
timed on 4 and scaled to 16. Medians of repeats.

    python benchmarks/rbm.py [--repeats 3]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine, median, timed  # noqa: E402

import purelearn as pl  # noqa: E402
from purelearn.nn.rbm import reconstruction_errors  # noqa: E402

H, B, LR, EPOCHS = 500, 20, 0.05, 3


def error(params, Xv) -> float:
    stacked = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32).unsqueeze(0) for k, v in params.items()}
    return float(reconstruction_errors(stacked, torch.as_tensor(Xv).unsqueeze(0), "binary").mean())


def sklearn_fit(X, seed):
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=H, learning_rate=LR, batch_size=B, n_iter=EPOCHS, random_state=seed).fit(X)
    return {"W0": rbm.components_, "b0": rbm.intercept_hidden_[None], "b1": rbm.intercept_visible_[None]}


def members(P):
    return [pl.Member(pl.RBM(H, persistent=True), pl.Training(lr=LR, batch_size=B, max_epochs=EPOCHS,
                                                              patience=10 ** 9, valid_every=4000, seed=s))
            for s in range(P)]


def main():
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 3
    splits = pl.prepare(pl.load("mnist5k"), preprocess=["scale"], valid=0.1, test=0.1)
    X, Xv = splits.X_train, splits.X_valid
    print(f"machine: {machine()}")
    print(f"RBM {X.shape[1]}-{H}, persistent CD-1, B = {B}, lr {LR}, {EPOCHS} epochs of {len(X)} examples")
    ours, theirs, e_ours, e_theirs = [], [], [], []
    for r in range(repeats):
        t, result = timed(lambda: pl.fit(splits, members(1)[0]))
        ours.append(t)
        e_ours.append(error(result.params, Xv))
        t, params = timed(lambda: sklearn_fit(X, r))
        theirs.append(t)
        e_theirs.append(error(params, Xv))
    print("| one RBM | seconds | validation reconstruction error |")
    print("| --- | --- | --- |")
    print(f"| purelearn | {median(ours):.2f} | {median(e_ours):.2f} |")
    print(f"| scikit-learn BernoulliRBM | {median(theirs):.2f} | {median(e_theirs):.2f} |")
    together, ours_apart, sk_apart = [], [], []
    for r in range(repeats):
        together.append(timed(lambda: pl.fit(splits, members(16)))[0])
        ours_apart.append(timed(lambda: [pl.fit(splits, m) for m in members(4)])[0] * 4)
        sk_apart.append(timed(lambda: [sklearn_fit(X, s) for s in range(4)])[0] * 4)
    t = median(together)
    print("\n| 16 RBMs | seconds | population's speed-up |")
    print("| --- | --- | --- |")
    print(f"| one population of 16 | {t:.2f} | 1 |")
    print(f"| 16 separate purelearn fits | {median(ours_apart):.2f} | {median(ours_apart) / t:.2f}x |")
    print(f"| 16 separate BernoulliRBM fits | {median(sk_apart):.2f} | {median(sk_apart) / t:.2f}x |")


if __name__ == "__main__":
    main()
