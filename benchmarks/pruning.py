"""Time to a good model with hopeless trials stopped early (§3.3.1), against Optuna's pruners.

The same random search on each data set (32 trials; learning rate 1e-3-1, 1-2 tanh layers of
16-256 units (mnist5k: 32-512); SGD, batch 32; validation every |valid| examples; patience 5,000
examples; at most 20 epochs (mnist5k: 10)), seven ways, each in a fresh process. Both sides train
the same 32 configurations (purelearn's random draws, given to Optuna with ``enqueue_trial``),
so what differs is the training and the pruning, not the luck of the draw; repeat r draws them
with seed r. Each side draws initial weights its own way: purelearn from its default Glorot
range, the loop as nn.Linear does (U(+-1/sqrt(fan_in)), biases too). ``--loop-init`` gives
purelearn the loop's weight range (``model.init = "fan_in"``, ``model.init_scale = 1/sqrt(3)``;
its biases still start at 0).

1. purelearn ``tune`` (automatic schedule, one process per core) with no pruning, the median
   rule and successive halving;
2. Optuna (RandomSampler) + the hand-written PyTorch loop of ``search_speed.py``, reporting its
   validation error at every validation (step = examples seen), with ``MedianPruner`` and with
   ``SuccessiveHalvingPruner``, n_jobs = 2 (one thread per core, torch on one thread each: the
   faster setting on this machine in ``search_speed.py``);
3. the same Optuna search without pruning;
4. that search again with every trial's initial weights and example order drawn from other seeds
   ("Optuna reseeded"): how often the same loop, trained anew, reaches a target that is the best
   of its own earlier trainings. It is the chance a training no better in distribution has.

The rules get the same settings on both sides: the median's warm-up is one epoch and it needs
5 earlier trials (Optuna: n_startup_trials = 5, n_warmup_steps = one epoch of examples); the
halving's first rung is one epoch, reduction factor 3.

Each side's clock starts with its library imported; purelearn's includes reading the data, opening
its store and forking its workers, Optuna's starts with the data in memory and its study created.

For each: the best validation error reached, the total wall time, the wall time to reach the
best error that Optuna with a pruner reached (the better of its two pruners), the speed-up to it
(per repeat: the time Optuna's faster pruner took to it over this run's; 0 when this run never
reached it), and the time to reach the better error that both sides' pruned searches reached.
Medians over ``--repeats`` runs, a repeat that never reached a target counted as never.

    python benchmarks/pruning.py [digits mnist1d mnist5k] [--repeats 3] [--loop-init]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402
from search_speed import BATCH, PATIENCE, hand_loop  # noqa: E402  (the same hand-written loop, reporting)

CASES = {
    "digits": dict(preprocess=["standardize"], units=(16, 256), epochs=20, valid=0.2, test=0.2),
    "mnist1d": dict(preprocess=["standardize"], units=(16, 256), epochs=20, valid=0.1, test=0.1),
    "mnist5k": dict(preprocess=["scale"], units=(32, 512), epochs=10, valid=0.1, test=0.1),
}
TRIALS, REDUCTION, STARTUP = 32, 3, 5
PRUNED = {"purelearn": ("purelearn median", "purelearn successive-halving"),
          "Optuna": ("Optuna MedianPruner", "Optuna SuccessiveHalvingPruner")}
KINDS = ("purelearn none", *PRUNED["purelearn"], "Optuna none", *PRUNED["Optuna"], "Optuna reseeded")
RESEED = 10**6                                      # trial n of "Optuna reseeded" trains with seed n + RESEED


def config(name: str, loop_init: bool = False):
    from purelearn.config import Config

    case = CASES[name]
    init = {"model.init": "fan_in", "model.init_scale": 3 ** -0.5} if loop_init else {}
    return Config().with_values(init | {
        "data.name": name, "data.preprocess": case["preprocess"], "data.valid": case["valid"],
        "data.test": case["test"], "model.activation": "tanh", "train.max_epochs": case["epochs"],
        "train.patience": PATIENCE, "train.batch_size": BATCH})


def space(name: str) -> dict:
    lo, hi = CASES[name]["units"]
    return {"train.lr": "loguniform(1e-3, 1)", "model.layers": "intuniform(1, 2)",
            "model.units": f"intloguniform({lo}, {hi})"}


def draws(name: str, seed: int) -> list[dict]:
    """The configurations purelearn's random search tries with this seed, in order."""
    from purelearn.search import make_strategy, parse_space

    strategy = make_strategy("random", parse_space(space(name)), seed)
    return [strategy.ask(n) for n in range(TRIALS)]


def ours(name: str, rule: str, seed: int, loop_init: bool) -> dict:
    # imported before the clock, as Optuna is on its side: the clock starts with both libraries
    # loaded (the modules ``tune`` imports on its first call took 0.3-0.4 s of it)
    import purelearn as pl
    import purelearn.execute.driver  # noqa: F401
    import purelearn.execute.workers  # noqa: F401
    import purelearn.store.sql  # noqa: F401
    from purelearn.search.pruning import Pruning

    trace = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        progress = lambda p: p.best is not None and trace.append((time.perf_counter() - start, p.best))  # noqa: E731
        study = pl.tune(config(name, loop_init), space(name), trials=TRIALS, store=Path(tmp) / "s.db", study="s",
                        seed=seed, prune=Pruning(rule, min_trials=STARTUP, reduction=REDUCTION), progress=progress)
        total = time.perf_counter() - start
    return {"total": total, "best": study.best.value, "trace": trace,
            "pruned": sum(t.status == "pruned" for t in study.trials)}


def theirs(name: str, pruner: str, seed: int) -> dict:
    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = config(name).data.splits()
    X, y, Xv, yv = (torch.as_tensor(a) for a in (splits.X_train, splits.y_train, splits.X_valid, splits.y_valid))
    epoch = len(X)
    pruners = {"none": optuna.pruners.NopPruner(), "reseeded": optuna.pruners.NopPruner(),
               "MedianPruner": optuna.pruners.MedianPruner(n_startup_trials=STARTUP, n_warmup_steps=epoch),
               "SuccessiveHalvingPruner": optuna.pruners.SuccessiveHalvingPruner(min_resource=epoch,
                                                                                 reduction_factor=REDUCTION)}
    lo, hi = CASES[name]["units"]
    offset = RESEED if pruner == "reseeded" else 0
    torch.set_num_threads(1)

    def objective(trial):
        def report(error, seen):
            trial.report(error, seen)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return hand_loop(X, y, Xv, yv, trial.suggest_float("lr", 1e-3, 1, log=True),
                         trial.suggest_int("layers", 1, 2), trial.suggest_int("units", lo, hi, log=True),
                         CASES[name]["epochs"], trial.number + offset, report)

    trace = []
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), pruner=pruners[pruner])
    for params in draws(name, seed):
        study.enqueue_trial({"lr": params["train.lr"], "layers": params["model.layers"],
                             "units": params["model.units"]})
    start = time.perf_counter()

    def heard(study, trial):
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            trace.append((time.perf_counter() - start, study.best_value))

    study.optimize(objective, n_trials=TRIALS, n_jobs=2, callbacks=[heard])
    return {"total": time.perf_counter() - start, "best": study.best_value, "trace": trace,
            "pruned": sum(t.state.name == "PRUNED" for t in study.trials)}


def one(kind: str, name: str, seed: int, loop_init: bool) -> dict:
    side, rule = kind.split(" ", 1)
    return ours(name, rule, seed, loop_init) if side == "purelearn" else theirs(name, rule, seed)


def reached(trace, target: float) -> float | None:
    """The first time the best so far was at or below ``target``."""
    return next((t for t, best in trace if best <= target + 1e-12), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="*", default=list(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-init", action="store_true", help="purelearn draws from the loop's weight range")
    parser.add_argument("--one", nargs=3, metavar=("KIND", "DATA", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, name, seed = args.one
        print(json.dumps(one(kind, name, int(seed), args.loop_init)))
        return
    print(f"machine: {machine()}")
    for name in args.data:
        config(name).data.splits()                 # into the dataset cache, outside every clock
        case = CASES[name]
        print(f"\n{name}: {TRIALS} random trials, 1-2 tanh layers of {case['units'][0]}-{case['units'][1]} units, "
              f"at most {case['epochs']} epochs, {args.repeats} repeats, "
              "purelearn's initial range: " + ("the loop's" if args.loop_init else "Glorot"), flush=True)
        runs = {k: [] for k in KINDS}
        for r in range(args.repeats):
            for kind in KINDS:                      # in turn, so drift hits every kind alike
                command = [sys.executable, __file__, "--one", kind, name, str(r)] + ["--loop-init"] * args.loop_init
                out = subprocess.run(command, capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(f"{kind} on {name} failed:\n{out.stderr}")
                runs[kind].append(json.loads(out.stdout.splitlines()[-1]))
                last = runs[kind][-1]
                print(f"  repeat {r + 1}, {kind}: {last['total']:.1f} s, best {last['best']:.4f}, "
                      f"{last['pruned']} pruned", flush=True)
        _table(runs)


def _table(runs: dict) -> None:
    # The target, per repeat: the better best of Optuna's two pruned searches. It is Optuna's own
    # best: the luckiest of its trainings, so a side whose training of that configuration ends a
    # validation example higher never reaches it; "both": the better error that both sides'
    # pruned searches reached. A repeat that never reaches a target counts as never (so a median
    # is "never" when half the repeats did not reach it), not as a missing value.
    repeats = len(runs[KINDS[0]])

    def best(r, side):
        return min(runs[k][r]["best"] for k in PRUNED[side])

    def times(kind, targets):
        return [_never(reached(runs[kind][r]["trace"], targets[r])) for r in range(repeats)]

    targets = [best(r, "Optuna") for r in range(repeats)]
    both = [max(best(r, "Optuna"), best(r, "purelearn")) for r in range(repeats)]
    theirs = [min(pair) for pair in zip(*(times(k, targets) for k in PRUNED["Optuna"]))]
    print("| run | best valid error (median) | total s (median) | s to reach Optuna-pruned's best (median) "
          "| reached | speed-up to it (median) | s to the best both reached (median) | pruned |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in KINDS:
        to_target, to_both = times(kind, targets), times(kind, both)
        speedup = statistics.median(t / o for t, o in zip(theirs, to_target))
        print(f"| {kind} | {statistics.median(x['best'] for x in runs[kind]):.4f} | "
              f"{statistics.median(x['total'] for x in runs[kind]):.1f} | {_shown(statistics.median(to_target))} | "
              f"{sum(t < math.inf for t in to_target)}/{repeats} | {speedup:.2f}x | "
              f"{_shown(statistics.median(to_both))} ({sum(t < math.inf for t in to_both)}/{repeats}) | "
              f"{statistics.median(x['pruned'] for x in runs[kind]):.0f} |", flush=True)
    print("runs: " + json.dumps({k: [{key: x[key] for key in ("total", "best", "pruned")}
                                     | {"to_target": reached(x["trace"], targets[r]), "to_both": reached(x["trace"], both[r])}
                                     for r, x in enumerate(v)] for k, v in runs.items()}), flush=True)


def _never(t: float | None) -> float:
    return math.inf if t is None else t


def _shown(t: float) -> str:
    return "never" if t == math.inf else f"{t:.1f}"

if __name__ == "__main__":
    main()
