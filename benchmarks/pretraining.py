"""Greedy layer-wise pre-training against random initialization with 500 labels (§1.1, the
claim of Erhan et al. 2010: lower test error and lower variance across seeds), Algorithm 1
against random search over the joint space of the same stacks at equal wall time (§3.3.4), and
Algorithm 1 with populations against one trial at a time.

mnist5k, pixels / 255, 4,000 training images of which 500 labeled (50 per class, the other
3,500 used unlabeled by pre-training), 500 validation, 500 test. Networks 784-500-500-500-10,
sigmoid units. Each method is tuned by a random search of ``--trials`` trials (the same count
for every method; a pre-trained trial costs more, it is said beside the figures), the best
configuration (validation error) is trained again with ``--seeds`` seeds, and each seed's model
reads the test split once.

    python benchmarks/pretraining.py [--trials 8] [--seeds 5]
        [--part all|pretraining|layerwise|populations|random-equal-time]

``random-equal-time``: random initialization tuned with 8x the trials (about the pre-trained
methods' search time).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import machine  # noqa: E402

from purelearn.config import load_config, load_search  # noqa: E402
from purelearn.execute import tune  # noqa: E402
from purelearn.search import parse_space  # noqa: E402
from purelearn.search.layerwise import concrete_space  # noqa: E402
from purelearn.train import check_member, fit  # noqa: E402
from purelearn.train.stack import train_stack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FINETUNE_LR = "loguniform(0.03, 1.0)"
METHODS = {
    "SDAE (3 denoising levels)": ("mnist5k-sdae.toml", [], {
        "pretrain.corruption_level": "uniform(0.1, 0.5)", "pretrain.lr": "loguniform(0.02, 0.2)",
        "train.lr": FINETUNE_LR}),
    "DBN (3 RBMs, CD-1)": ("mnist5k-dbn.toml", [], {
        "pretrain.lr": "loguniform(0.01, 0.1)", "train.lr": FINETUNE_LR}),
    "random initialization": ("mnist5k-sdae.toml", ["pretrain.levels=0", "model.hidden=[500,500,500]",
                                                    "model.activation=sigmoid"], {"train.lr": FINETUNE_LR}),
}


def final_errors(config, seeds: int) -> list[float]:
    """The configuration trained with seeds 1..n, each model's test error read once."""
    errors = []
    for seed in range(1, seeds + 1):
        cfg = config.with_values({"train.seed": seed})
        splits = cfg.data.splits()
        if cfg.pretrain.levels:
            model = train_stack(splits, [check_member(m, splits) for m in cfg.levels()], cfg.member()).finetune.model
        else:
            model = fit(splits, cfg.member()).model
        X, y = splits.read_test()
        errors.append(model.error(X, y))
    return errors


def pretraining(trials: int, seeds: int, folder: Path) -> list[dict]:
    rows = []
    for name, (file, overrides, space) in METHODS.items():
        config = load_config(ROOT / "examples" / file, overrides)
        start = time.perf_counter()
        study = tune(config, space, strategy="random", trials=trials, store=str(folder / "p.db"),
                     study=file.removesuffix(".toml") + str(len(overrides)), workers=2)
        searched = time.perf_counter() - start
        start = time.perf_counter()
        errors = final_errors(study.best_config(), seeds)
        rows.append({"method": name, "best_valid": study.best.value, "best_params": study.best.params,
                     "test_mean": statistics.mean(errors), "test_std": statistics.stdev(errors) if seeds > 1 else 0,
                     "test_errors": errors, "search_s": searched, "finals_s": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def best_at(study, seconds: float) -> float | None:
    """The best validation error among the fine-tuned trials finished within ``seconds`` of
    the study's first trial starting."""
    trials = [t for t in study.trials if t.started is not None]
    t0 = min(t.started for t in trials)
    done = [t.value for t in study.finished() if t.ended - t0 <= seconds]
    return min(done) if done else None


def populations(folder: Path) -> tuple[dict, object]:
    """Algorithm 1's wall time, a level's candidates trained as populations against one trial
    at a time (2 workers both ways), and the largest difference of their trials' values."""
    config, spec, table = load_search(ROOT / "examples" / "mnist5k-layerwise.toml")
    out, runs = {}, {}
    for population in ("auto", 1):
        start = time.perf_counter()
        runs[population] = tune(config, table, strategy="layerwise", store=str(folder / f"l{population}.db"),
                                study="lw", workers=2, population=population, options=spec.options())
        out[f"layerwise_population_{population}_s"] = time.perf_counter() - start
        out[f"layerwise_population_{population}_schedule"] = runs[population].schedule
    values = [[t.value for t in runs[p].trials] for p in runs]
    out["layerwise_same_values"] = max(abs(a - b) for a, b in zip(*values))
    print(json.dumps(out), flush=True)
    return out, runs["auto"]


def layerwise(random_trials: int, folder: Path) -> dict:
    config, spec, table = load_search(ROOT / "examples" / "mnist5k-layerwise.toml")
    out, lw = populations(folder)
    spent = out["layerwise_population_auto_s"]
    joint = concrete_space(parse_space(table), config.pretrain.levels)
    start = time.perf_counter()
    rnd = tune(config, joint, strategy="random", trials=random_trials, store=str(folder / "r.db"), study="joint",
               workers=2)
    out["random_s"] = time.perf_counter() - start
    out["random_trials"] = random_trials
    out["layerwise_best_valid"] = lw.best.value
    out["random_best_valid_at_layerwise_time"] = best_at(rnd, spent)
    out["random_best_valid_all"] = rnd.best.value
    out["random_finished_within"] = sum(1 for t in rnd.finished() if t.ended - min(x.started for x in rnd.trials)
                                        <= spent)
    out["layerwise_test"] = lw.evaluate_test()
    out["random_test"] = rnd.evaluate_test()
    print(json.dumps(out), flush=True)
    return out


def main():
    args = sys.argv[1:]
    trials = int(args[args.index("--trials") + 1]) if "--trials" in args else 8
    seeds = int(args[args.index("--seeds") + 1]) if "--seeds" in args else 5
    part = args[args.index("--part") + 1] if "--part" in args else "all"
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        if part in ("all", "pretraining"):
            for r in pretraining(trials, seeds, Path(folder)):
                print(f"{r['method']:<28} valid {r['best_valid']:.4f}  test {r['test_mean']:.4f} ± {r['test_std']:.4f} "
                      f"over {seeds} seeds  (search {r['search_s']:.0f} s, finals {r['finals_s']:.0f} s)")
        if part in ("all", "layerwise"):
            layerwise(12, Path(folder))
        if part == "populations":
            populations(Path(folder))
        if part == "random-equal-time":      # random initialization given the pre-trained ones' time
            name = "random initialization"
            METHODS.update({f"{name}, {trials * 8} trials": METHODS.pop(name)})
            for key in [k for k in METHODS if not k.startswith(name)]:
                METHODS.pop(key)
            for r in pretraining(trials * 8, seeds, Path(folder)):
                print(f"{r['method']:<28} valid {r['best_valid']:.4f}  test {r['test_mean']:.4f} ± "
                      f"{r['test_std']:.4f} over {seeds} seeds  (search {r['search_s']:.0f} s)")


if __name__ == "__main__":
    main()
