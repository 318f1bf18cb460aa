"""Cost of running and recording a trial, apart from training: purelearn's study driver and
SQLite store against Optuna (in memory and SQLite), with the same no-op objective reporting a
50-point learning curve. Reports milliseconds per trial over the first block and the last block
of one study, to show whether the cost stays flat as the study grows, and the time to reopen
(resume) a finished study of that size.

    python benchmarks/store_overhead.py [--max 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402

import purelearn as pl  # noqa: E402

CURVE = 50
SPACE = pl.Space({"x": pl.Uniform(0, 1), "lr": pl.LogUniform(1e-4, 1)})


def ours_noop(params, report):
    for i in range(CURVE):
        report(i * 100, params["x"])
    return params["x"]


def _blocks(stamps: list[float], block: int) -> tuple[float, float]:
    """ms per trial over the first and the last ``block`` trials, from per-trial end times."""
    first = (stamps[block - 1] - stamps[0]) / (block - 1)
    last = (stamps[-1] - stamps[-block]) / (block - 1)
    return first * 1e3, last * 1e3


def ours(total: int, block: int, folder: Path) -> tuple[float, float, float]:
    """One study of ``total`` trials; then the time to reopen (resume) it."""
    stamps = []
    pl.tune(ours_noop, SPACE, trials=total, store=folder / "ours.db", study="s",
            progress=lambda p: stamps.append(time.perf_counter()))
    t0 = time.perf_counter()
    study = pl.tune(ours_noop, SPACE, trials=total, store=folder / "ours.db", study="s")
    reopen = time.perf_counter() - t0
    t0 = time.perf_counter()
    study.efficiency_curve()
    return (*_blocks(stamps, block), reopen, time.perf_counter() - t0)


def optuna_run(total: int, block: int, storage) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.suggest_float("lr", 1e-4, 1, log=True)
        for i in range(CURVE):
            trial.report(x, i * 100)
        return x

    stamps = []
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=total, callbacks=[lambda s, t: stamps.append(time.perf_counter())])
    return _blocks(stamps, block)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max", type=int, default=10000)
    parser.add_argument("--optuna-sqlite-max", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| system | trials | ms/trial, first 100 | ms/trial, last 100 | reopen the study, s | efficiency curve, s |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (100, 1000, args.max):
            folder = Path(tmp) / f"o{n}"
            folder.mkdir()
            print(f"| purelearn (SQLite) | {n:,} | %.3f | %.3f | %.2f | %.2f |" % ours(n, 100, folder), flush=True)
        for n in (100, 1000, args.max):
            print(f"| Optuna (in memory) | {n:,} | %.3f | %.3f | - | - |" % optuna_run(n, 100, None), flush=True)
        for n in (100, args.optuna_sqlite_max):
            url = f"sqlite:///{tmp}/optuna{n}.db"
            print(f"| Optuna (SQLite) | {n:,} | %.3f | %.3f | - | - |" % optuna_run(n, 100, url), flush=True)


if __name__ == "__main__":
    main()
