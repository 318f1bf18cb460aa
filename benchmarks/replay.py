"""Updates of search (b)'s populations (mnist5k, 64 members drawn from 1-2 hidden layers of
64-1024 units, as many in each layer), in milliseconds:

1. replayed from a captured CUDA graph against launched kernel by kernel, for the populations
   the device forms (on a GPU one per depth, padded to the widest). On a CPU replaying only
   calls the same update again (no gain is expected there).
2. one update of every member, replayed, with members grouped into populations by width ratio
   (widest / narrowest): fewer populations pad more, more populations launch more.

Medians of 3 runs of 200 updates each, alternating.

    python benchmarks/replay.py [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine, median  # noqa: E402

import purelearn as pl  # noqa: E402
from purelearn.train.fit import check_member, populations, width_ratio  # noqa: E402
from purelearn.train.population import Data, Population  # noqa: E402


def members(splits, n=64, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hidden = (int(np.exp(rng.uniform(np.log(64), np.log(1025)))),) * int(rng.integers(1, 3))
        train = pl.Training(lr=float(np.exp(rng.uniform(np.log(1e-3), 0))), patience=10 ** 9, seed=i)
        out.append(check_member(pl.Member(pl.MLP(hidden, "tanh"), train), splits))
    return out


def per_update(group, data, replay, repeats=3, steps=200):
    return median([Population(group, data, replay=replay).time_steps(steps) / steps * 1e3 for _ in range(repeats)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    device = torch.device(parser.parse_args().device)
    splits = pl.prepare(pl.load("mnist5k"), preprocess=["scale"], valid=0.1, test=0.1)
    data, ms = Data(splits, device), members(splits)
    print(f"machine: {machine()}" + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""))
    print("| population | members | launched ms/update | replayed ms/update | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for part in populations(ms, len(ms), width_ratio(device)):
        group = [ms[i] for i in part]
        widest = "-".join(str(max(m.model.hidden[l] for m in group)) for l in range(len(group[0].model.hidden)))
        launched, replayed = per_update(group, data, False), per_update(group, data, True)
        print(f"| 784-{widest}-10 | {len(group)} | {launched:.3f} | {replayed:.3f} | {launched / replayed:.2f}x |",
              flush=True)
    print("\n| width ratio | populations | ms per update of every member |\n| --- | --- | --- |")
    for ratio in (math.inf, 4.0, 2.0, 1.3):
        parts = populations(ms, len(ms), ratio)
        total = sum(per_update([ms[i] for i in part], data, True) for part in parts)
        print(f"| {ratio:g} | {len(parts)} | {total:.3f} |", flush=True)

if __name__ == "__main__":
    main()
