"""A whole random search, three ways, same space, trials, epoch budget, early stopping and splits:

1. purelearn `tune` with the automatic schedule (batched populations, measured);
2. purelearn `tune` one trial at a time (--population 1), one process per core;
3. Optuna (RandomSampler, in-memory storage) driving a hand-written PyTorch loop with the same
   early stopping, with n_jobs = 1 and n_jobs = 2 (threads; torch limited to 1 thread each when
   2), the faster reported; on a GPU n_jobs = 1 and 4, data and model on the device.

(a) digits, 1-2 hidden layers of 16-256 units, 256 trials; (b) mnist5k, 1-2 hidden layers of
64-1024 units, 64 trials. Wall-clock seconds and best validation error.

    python benchmarks/search_speed.py [a|b] [--device cuda] [--jobs 1,4] [--width-ratios inf,4,2]

``--width-ratios`` adds a row (1.) per ratio: the automatic schedule with populations allowed to
pad their members to that many times the narrowest width (``purelearn.train.fit``'s ratio for
the device, set for the run), to choose the device's ratio from whole searches.
"""

from __future__ import annotations

import argparse
import importlib
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

fit = importlib.import_module("purelearn.train.fit")   # the module (``purelearn.train.fit`` is the function)

CASES = {
    "a": dict(data="digits", preprocess=["standardize"], units=(16, 256), trials=256, epochs=20, valid=0.2, test=0.2),
    "b": dict(data="mnist5k", preprocess=["scale"], units=(64, 1024), trials=64, epochs=4, valid=0.1, test=0.1),
}
PATIENCE, BATCH = 5000, 32


def space(case):
    lo, hi = case["units"]
    return {"train.lr": "loguniform(1e-3, 1)", "model.layers": "intuniform(1, 2)",
            "model.units": f"intloguniform({lo}, {hi})"}


def config(case, device="cpu") -> Config:
    return Config().with_values({"device": device, "data.name": case["data"], "data.preprocess": case["preprocess"],
                                 "data.valid": case["valid"], "data.test": case["test"],
                                 "model.activation": "tanh", "train.max_epochs": case["epochs"],
                                 "train.patience": PATIENCE, "train.batch_size": BATCH})


def ours(case, population, device):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        study = pl.tune(config(case, device), space(case), trials=case["trials"], store=Path(tmp) / "s.db", study="s",
                        population=population)
        return time.perf_counter() - start, study.best.value, study.schedule


def with_ratio(ratio, device, run):
    """``run()`` with populations padding up to ``ratio`` on ``device`` (reaches this process
    and forked workers, which is where a GPU's and a CPU's first workers train)."""
    name = "GPU_WIDTH_RATIO" if device == "cuda" else "WIDTH_RATIO"
    kept = getattr(fit, name)
    setattr(fit, name, ratio)
    try:
        return run()
    finally:
        setattr(fit, name, kept)


def _linear(fan_in: int, fan_out: int, g: torch.Generator) -> torch.nn.Linear:
    """nn.Linear's own initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from the trial's
    generator: with ``torch.manual_seed`` and the global generator, two trials initializing in two
    threads at once draw from each other's stream, and a trial's result depends on timing."""
    layer, bound = torch.nn.Linear(fan_in, fan_out), fan_in ** -0.5
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=g)
        layer.bias.uniform_(-bound, bound, generator=g)
    return layer


def hand_loop(X, y, Xv, yv, lr, layers, units, epochs, seed, report=None):
    """Plain PyTorch: nn.Linear layers, SGD, validation every |valid| examples, patience rule.
    On a GPU the divergence check waits for the validation's own synchronization (checking
    every step would stall the device queue). ``report(valid_error, examples_seen)`` is called
    at every validation (where a pruner may stop the trial by raising)."""
    on_gpu = X.is_cuda
    g = torch.Generator().manual_seed(seed)
    sizes = [X.shape[1]] + [units] * layers + [int(y.max()) + 1]
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(_linear(a, b, g))
        if i < len(sizes) - 2:
            mods.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*mods).to(X.device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    seen, best, patience, next_valid = 0, math.inf, PATIENCE, len(Xv)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=g).to(X.device)
        for s in range(0, len(X), BATCH):
            idx = order[s:s + BATCH]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            if not on_gpu and not torch.isfinite(loss):
                return best
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            if seen >= next_valid:
                next_valid += len(Xv)
                if on_gpu and not torch.isfinite(loss):
                    return best
                with torch.no_grad():
                    err = (model(Xv).argmax(1) != yv).float().mean().item()
                if report is not None:
                    report(err, seen)
                if err < best:
                    if err < best * 0.995:
                        patience = max(patience, seen * 2)
                    best = err
                if seen >= patience:
                    return best
    return best


def optuna_search(case, n_jobs, device):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = config(case).data.splits()
    X, y, Xv, yv = (torch.as_tensor(a, device=device)
                    for a in (splits.X_train, splits.y_train, splits.X_valid, splits.y_valid))
    lo, hi = case["units"]
    threads = torch.get_num_threads()
    if device == "cpu":
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", metavar="a|b", help="the searches to run (default: both)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--jobs", help="Optuna's n_jobs settings, e.g. 1,4 (default 1,2 on CPU, 1,4 on a GPU)")
    parser.add_argument("--width-ratios", type=lambda s: [float(r) for r in s.split(",")], default=[],
                        help="extra automatic runs, one per width ratio, e.g. inf,4,2")
    args = parser.parse_args()
    device, names = args.device, args.cases or list(CASES)
    if set(names) - set(CASES):
        parser.error(f"unknown search {sorted(set(names) - set(CASES))}; choose from {', '.join(CASES)}")
    jobs = tuple(int(j) for j in args.jobs.split(",")) if args.jobs else (1, 2) if device == "cpu" else (1, 4)
    print(f"machine: {machine()}" + (f", {torch.cuda.get_device_name()}" if device == "cuda" else ""))
    if device == "cuda":     # the context and the matrix library start before any clock does
        (torch.ones(8, 8, device=device) @ torch.ones(8, 8, device=device)).sum().item()
    pl.tune  # noqa: B018  the store's imports load before any clock starts, as Optuna's do
    for name in names:
        case = CASES[name]
        config(case).data.splits()     # parsed once into the dataset cache, outside every clock
        print(f"\n({name}) {case['data']}, {case['trials']} trials, 1-2 layers of {case['units'][0]}-{case['units'][1]} "
              f"units, tanh, at most {case['epochs']} epochs, patience {PATIENCE} examples", flush=True)
        runs = [("purelearn tune, automatic schedule", lambda: ours(case, "auto", device))]
        runs += [(f"Optuna + hand-written loop, n_jobs={n}", lambda n=n: (*optuna_search(case, n, device), ""))
                 for n in jobs]
        runs += [("purelearn tune, one trial at a time", lambda: ours(case, 1, device))]
        runs += [(f"purelearn tune, automatic schedule, width ratio {r}",
                  lambda r=r: with_ratio(r, device, lambda: ours(case, "auto", device)))
                 for r in args.width_ratios]
        rows = []
        for label, run in runs:          # each printed as it ends: a cut-short run keeps what it measured
            t, best, why = run()
            rows.append((label, t, best, why))
            print(f"  {label}: {t:.1f} s, best valid error {best:.4f}" + (f" ({why})" if why else ""), flush=True)
        base = min(t for label, t, _, _ in rows if label.startswith("Optuna"))
        print("| run | seconds | best valid error | speed-up vs Optuna |")
        print("| --- | --- | --- | --- |")
        for label, t, best, _ in rows:
            print(f"| {label} | {t:.1f} | {best:.4f} | {base / t:.1f}x |", flush=True)

if __name__ == "__main__":
    main()
