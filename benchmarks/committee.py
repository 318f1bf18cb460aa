"""The end of a search (§3.2) and the refit of a HyperLearner, on digits and mnist5k.

1. Finals and committees: a random search of ``examples/<data>-random.toml`` (32 trials), then
   its 3 best configurations x 10 new seeds (``evaluate.run_finals``), with and without bagging:
   the searched value of the best trial beside its mean over new seeds, the best single member,
   each configuration's committee and the committee of all 30, on the validation split, and once
   on the test split (a fresh in-memory study per variant, so each reads its test split once).
2. Refit: ``HyperLearner(refit="retrain")`` (the best configuration trained on train + validation
   for the examples at which it was best) against ``refit="best_trial"`` (the best trial's own
   network), the same search, on the data's training + validation examples; the test error of
   each, over ``--seeds`` random states.

    python benchmarks/committee.py [digits|mnist5k ...] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402

import numpy as np  # noqa: E402

from purelearn import HyperLearner, tune  # noqa: E402
from purelearn.config import load_search, read_toml  # noqa: E402
from purelearn.data.splits import split_indices  # noqa: E402
from purelearn.evaluate import run_finals  # noqa: E402
from purelearn.search import parse_space  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRIALS, TOP, SEEDS = 32, 3, 10


def finals(name: str) -> None:
    path = EXAMPLES / f"{name}-random.toml"
    config, spec, space = load_search(path)
    for bagging in (False, True):
        start = time.perf_counter()
        study = tune(config, parse_space(space), trials=TRIALS, seed=0, expand=spec.expand)
        searched = time.perf_counter() - start
        start = time.perf_counter()
        result = run_finals(study, top=TOP, seeds=SEEDS, bagging=bagging, evaluate_test=True)
        print(f"{name}: search {searched:.0f} s, finals{' (bagging)' if bagging else ''} "
              f"{time.perf_counter() - start:.0f} s")
        print("\n".join("  " + line for line in result.lines()))
        best = result.runs[0]
        print(f"  best trial: searched {best.searched:.4f}, new seeds {best.mean_std[0]:.4f} +- {best.mean_std[1]:.4f}; "
              f"valid: single mean {best.mean_std[0]:.4f} -> its committee {best.committee_valid:.4f} -> all "
              f"{result.committee_valid:.4f}; test: single mean {statistics.fmean(best.test):.4f} -> its committee "
              f"{best.committee_test:.4f} -> all {result.committee_test:.4f}", flush=True)


def refit(name: str, seeds: int) -> None:
    path = EXAMPLES / f"{name}-random.toml"
    config, _, _ = load_search(path)
    data = config.data.dataset()
    stratify = data.task == "classification"
    train, valid, test = split_indices(data.y, (config.data.valid, config.data.test), config.data.seed, stratify)
    seen = np.concatenate([train, valid])
    table = read_toml(path)
    table["search"] = {**table["search"], "trials": 16}
    errors = {"retrain": [], "best_trial": []}
    for seed in range(seeds):
        for way in errors:
            learner = HyperLearner(table, refit=way, random_state=seed, n_jobs=-1).fit(data.X[seen], data.y[seen])
            errors[way].append(learner.error(data.X[test], data.y[test]))
        print(f"{name} seed {seed}: test error retrain {errors['retrain'][-1]:.4f}, best_trial "
              f"{errors['best_trial'][-1]:.4f}", flush=True)
    for way, e in errors.items():
        print(f"  {name} refit={way}: test error {statistics.fmean(e):.4f} +- {statistics.stdev(e):.4f} "
              f"over {seeds} seeds")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="*", default=["digits", "mnist5k"])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    for name in args.data:
        finals(name)
        refit(name, args.seeds)


if __name__ == "__main__":
    main()
