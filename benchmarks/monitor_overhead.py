"""The cost of layer statistics (train.monitor, §4.2): training time with and without them.

    python benchmarks/monitor_overhead.py [--repeats 5]

One 784-500-10 MLP on mnist5k (24 epochs, no early stop: about 2 s, long enough for a ratio on a
noisy machine) and a population of 16 MLPs of different widths (8 epochs), each with monitor = 0
(off), 10,000 and 2,000 examples, in turn in one run; medians of the repeats and the ratio to no
monitoring. First, and less exposed to a shared machine's noise: the mean time of one snapshot
of the 784-500-10 net over 20 snapshots N examples apart (the probe runs at those its spacing
picks), against the time training 1,000 examples takes, medians over rounds.

    python benchmarks/monitor_overhead.py [--repeats 5] [--snapshots-only]
"""

import argparse
import statistics
import time
from dataclasses import replace

import torch

from purelearn.config import load_config
from purelearn.train import Data, Population, check_member, fit

BASE = ["data.name=mnist5k", "data.preprocess=['scale']", "model.hidden=[500]", "train.lr=0.05",
        "train.max_epochs=8", "train.patience=100000000"]


def members(population: int, monitor: int, epochs: int = 8):
    c = load_config(None, BASE + [f"train.max_epochs={epochs}"])
    splits = c.data.splits()
    m = check_member(c.member(), splits)
    out = [replace(m, model=replace(m.model, hidden=(64 + 29 * i,)), train=replace(m.train, seed=i, monitor=monitor))
           for i in range(population)]
    return splits, out


def snapshot_ms(every: int, calls: int = 20) -> float:
    """The mean time of a snapshot, ``calls`` snapshots ``every`` examples apart."""
    splits, ms = members(1, every)
    pop = Population([replace(ms[0], model=replace(ms[0].model, hidden=(500,)))], Data(splits, torch.device("cpu")))
    before = pop.monitor.watch()
    pop.monitor.record(0, before)
    start = time.perf_counter()
    for i in range(1, calls + 1):
        pop.monitor.record(i * every, before)
    return (time.perf_counter() - start) / calls * 1000


def snapshots(rounds: int) -> None:
    splits, ms = members(1, 0)
    net = [replace(ms[0], model=replace(ms[0].model, hidden=(500,)))]
    timed = {"train 1,000 examples": [], "snapshot every 10,000": [], "snapshot every 2,000": []}
    for _ in range(rounds):
        start = time.perf_counter()
        fit(splits, net)
        timed["train 1,000 examples"].append((time.perf_counter() - start) * 1000 / (8 * len(splits.X_train)) * 1000)
        timed["snapshot every 10,000"].append(snapshot_ms(10000))
        timed["snapshot every 2,000"].append(snapshot_ms(2000))
    per = statistics.median(timed["train 1,000 examples"])
    for label, t in timed.items():
        m = statistics.median(t)
        print(f"{label}: median {m:6.1f} ms ({m / per:.1f} x 1,000 training examples; "
              f"rounds {', '.join(f'{x:.1f}' for x in t)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--snapshots-only", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    snapshots(args.repeats)
    if args.snapshots_only:
        return
    for population in (1, 16):
        times = {n: [] for n in (0, 10000, 2000)}
        for _ in range(args.repeats):
            for monitor in times:
                splits, ms = members(population, monitor, 24 if population == 1 else 8)
                if population == 1:
                    ms = [replace(ms[0], model=replace(ms[0].model, hidden=(500,)))]
                start = time.perf_counter()
                results = fit(splits, ms)
                times[monitor].append(time.perf_counter() - start)
                if monitor:
                    assert all(len(r.statistics) > 1 for r in results)
        base = statistics.median(times[0])
        for monitor, t in times.items():
            label = "off" if not monitor else f"every {monitor:,}"
            print(f"population {population:>2}, monitor {label:>13}: median {statistics.median(t):6.2f} s "
                  f"(x{statistics.median(t) / base:.2f}; runs {', '.join(f'{x:.2f}' for x in t)})")


if __name__ == "__main__":
    main()
