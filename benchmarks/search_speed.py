"""A whole random search, three ways, same space, trials, epoch budget, early stopping and splits:

1. purelearn `tune` with the automatic schedule (batched populations, measured);
2. purelearn `tune` one trial at a time (--population 1), one process per core;
3. Optuna (RandomSampler, in-memory storage) driving a hand-written PyTorch loop with the same
   early stopping, with n_jobs = 1 and n_jobs = 2 (threads; torch limited to 1 thread each when
   2), the faster reported.

(a) digits, 1-2 hidden layers of 16-256 units, 256 trials; (b) mnist5k, 1-2 hidden layers of
64-1024 units, 64 trials. Wall-clock seconds and best validation error.

    python benchmarks/search_speed.py [a|b]
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import purelearn as pl  # noqa: E402
from purelearn.config import Config  # noqa: E402

CASES = {
    "a": dict(data="digits", preprocess=["standardize"], units=(16, 256), trials=256, epochs=20, valid=0.2, test=0.2),
    "b": dict(data="mnist5k", preprocess=["scale"], units=(64, 1024), trials=64, epochs=4, valid=0.1, test=0.1),
}
PATIENCE, BATCH = 5000, 32


def space(case):
    lo, hi = case["units"]
    return {"train.lr": "loguniform(1e-3, 1)", "model.layers": "intuniform(1, 2)",
            "model.units": f"intloguniform({lo}, {hi})"}


def config(case) -> Config:
    return Config().with_values({"data.name": case["data"], "data.preprocess": case["preprocess"],
                                 "data.valid": case["valid"], "data.test": case["test"],
                                 "model.activation": "tanh", "train.max_epochs": case["epochs"],
                                 "train.patience": PATIENCE, "train.batch_size": BATCH})


def ours(case, population):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        study = pl.tune(config(case), space(case), trials=case["trials"], store=Path(tmp) / "s.db", study="s",
                        population=population)
        return time.perf_counter() - start, study.best.value, study.schedule


def hand_loop(X, y, Xv, yv, lr, layers, units, epochs, seed):
    """Plain PyTorch: nn.Linear layers, SGD, validation every |valid| examples, patience rule."""
    torch.manual_seed(seed)
    sizes = [X.shape[1]] + [units] * layers + [int(y.max()) + 1]
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            mods.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*mods)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    seen, best, patience, next_valid = 0, math.inf, PATIENCE, len(Xv)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=g)
        for s in range(0, len(X), BATCH):
            idx = order[s:s + BATCH]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            if not torch.isfinite(loss):
                return best
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            if seen >= next_valid:
                next_valid += len(Xv)
                with torch.no_grad():
                    err = (model(Xv).argmax(1) != yv).float().mean().item()
                if err < best:
                    if err < best * 0.995:
                        patience = max(patience, seen * 2)
                    best = err
                if seen >= patience:
                    return best
    return best


def optuna_search(case, n_jobs):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = config(case).data.splits()
    X, y = torch.as_tensor(splits.X_train), torch.as_tensor(splits.y_train)
    Xv, yv = torch.as_tensor(splits.X_valid), torch.as_tensor(splits.y_valid)
    lo, hi = case["units"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if n_jobs > 1 else threads)

    def objective(trial):
        return hand_loop(X, y, Xv, yv, trial.suggest_float("lr", 1e-3, 1, log=True),
                         trial.suggest_int("layers", 1, 2), trial.suggest_int("units", lo, hi, log=True),
                         case["epochs"], trial.number)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    study.optimize(objective, n_trials=case["trials"], n_jobs=n_jobs)
    torch.set_num_threads(threads)
    return time.perf_counter() - start, study.best_value


def main():
    names = sys.argv[1:] or list(CASES)
    print(f"machine: {machine()}")
    for name in names:
        case = CASES[name]
        print(f"\n({name}) {case['data']}, {case['trials']} trials, 1-2 layers of {case['units'][0]}-{case['units'][1]} "
              f"units, tanh, at most {case['epochs']} epochs, patience {PATIENCE} examples", flush=True)
        print("| run | seconds | best valid error | speed-up vs Optuna |")
        print("| --- | --- | --- | --- |")
        rows = []
        for jobs in (1, 2):
            t, best = optuna_search(case, jobs)
            rows.append((f"Optuna + hand-written loop, n_jobs={jobs}", t, best, ""))
        base = min(r[1] for r in rows)
        t, best, why = ours(case, "auto")
        rows.append(("purelearn tune, automatic schedule", t, best, why))
        t, best, why = ours(case, 1)
        rows.append(("purelearn tune, one trial at a time", t, best, why))
        for label, t, best, _ in rows:
            print(f"| {label} | {t:.1f} | {best:.4f} | {base / t:.1f}x |", flush=True)
        print("schedules: " + "; ".join(r[3] for r in rows if r[3]))


if __name__ == "__main__":
    main()
