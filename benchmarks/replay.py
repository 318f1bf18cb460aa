"""An update replayed from a captured CUDA graph against the same update launched kernel by
kernel: milliseconds per update of the populations search (b) trains on a GPU (mnist5k, 64
members drawn from 1-2 hidden layers of 64-1024 units, one population per depth, padded to the
widest). Median of 3 runs of 200 updates each, alternating. On a CPU replaying only calls the
same update again (no gain is expected there).

    python benchmarks/replay.py [--device cuda]
"""

from __future__ import annotations

import argparse
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
        hidden = tuple(int(np.exp(rng.uniform(np.log(64), np.log(1025)))) for _ in range(rng.integers(1, 3)))
        train = pl.Training(lr=float(np.exp(rng.uniform(np.log(1e-3), 0))), patience=10 ** 9, seed=i)
        out.append(check_member(pl.Member(pl.MLP(hidden, "tanh"), train), splits))
    return out


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
        times = {False: [], True: []}
        for _ in range(3):
            for replay in (False, True):
                times[replay].append(Population(group, data, replay=replay).time_steps(200) / 200 * 1e3)
        launched, replayed = median(times[False]), median(times[True])
        print(f"| 784-{widest}-10 | {len(group)} | {launched:.3f} | {replayed:.3f} | {launched / replayed:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
