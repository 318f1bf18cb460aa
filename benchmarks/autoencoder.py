"""Denoising auto-encoders as a population against P separate hand-written runs (§1.2).

784-500 tied sigmoid DAE on mnist5k (pixels / 255), masking noise, cross-entropy, SGD, B = 20,
one epoch (4,000 examples) each, validation (the denoising error of the 500 validation digits)
every 4,000 examples. Members differ in corruption level (0.1-0.5) and rate (0.01-0.1). The
hand-written loop is what a practitioner writes: nn.Parameter tensors, autograd,
torch.optim.SGD, one run after another. Separate runs are timed on up to 8 runs and scaled to P.
Reports examples per second (all members together) and the ratio, medians of repeats.

    python benchmarks/autoencoder.py [--repeats 3]
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine, median, timed  # noqa: E402

import purelearn as pl  # noqa: E402

H, B, EPOCHS = 500, 20, 1


def levels(P):
    return [0.1 + 0.4 * i / max(P - 1, 1) for i in range(P)], [0.01 * 10 ** (i / max(P - 1, 1)) for i in range(P)]


def hand_written(X, Xv, level, lr, seed):
    """One tied DAE trained by hand."""
    g = torch.Generator().manual_seed(seed)
    d = X.shape[1]
    r = 4 * (6 / (d + H)) ** 0.5
    W = torch.nn.Parameter(torch.empty(H, d).uniform_(-r, r, generator=g))
    b, c = torch.nn.Parameter(torch.zeros(H)), torch.nn.Parameter(torch.zeros(d))
    opt = torch.optim.SGD([W, b, c], lr=lr)
    best = float("inf")
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), generator=g)
        for s in range(0, len(X), B):
            x = X[order[s:s + B]]
            noisy = x * (torch.rand(x.shape, generator=g) >= level)
            z = torch.sigmoid(noisy @ W.T + b) @ W + c
            loss = F.binary_cross_entropy_with_logits(z, x, reduction="none").sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            noisy = Xv * (torch.rand(Xv.shape, generator=g) >= level)
            z = torch.sigmoid(noisy @ W.T + b) @ W + c
            best = min(best, F.binary_cross_entropy_with_logits(z, Xv, reduction="none").sum(1).mean().item())
    return best


def main():
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 3
    splits = pl.prepare(pl.load("mnist5k"), preprocess=["scale"], valid=0.1, test=0.1)
    X, Xv = torch.as_tensor(splits.X_train), torch.as_tensor(splits.X_valid)
    n = len(X)
    print(f"machine: {machine()}")
    print(f"DAE {X.shape[1]}-{H} masking, B = {B}, {EPOCHS} epoch of {n} examples per member")
    print("| P | population s | examples/s | separate s | examples/s | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for P in (1, 8, 32):
        lv, lr = levels(P)
        members = [pl.Member(pl.AutoEncoder(H, corruption="masking", corruption_level=lv[i]),
                             pl.Training(lr=lr[i], batch_size=B, max_epochs=EPOCHS, patience=10 ** 9,
                                         valid_every=n, seed=i)) for i in range(P)]
        measured = min(P, 8)
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(timed(lambda: pl.fit(splits, members))[0])
            theirs.append(timed(lambda: [hand_written(X, Xv, lv[i], lr[i], i) for i in range(measured)])[0]
                          * P / measured)
        o, t = median(ours), median(theirs)
        print(f"| {P} | {o:.2f} | {P * n * EPOCHS / o:,.0f} | {t:.2f} | {P * n * EPOCHS / t:,.0f} | {t / o:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
