"""`purelearn train` and `purelearn check`: one network, trained or checked (§4.1)."""

from __future__ import annotations

import json
import math
import sys

from ..config import load_config
from ..errors import ConfigError
from .lines import Progress, show_rate_search, show_statistics


def add(commands) -> None:
    train = commands.add_parser("train", help="train one network from a TOML config",
                                description="Train one network from a TOML config and report its best "
                                            "validation point.")
    train.add_argument("config", help="TOML file with [data], [model] and [train] sections")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key with a TOML value, e.g. --set model.hidden=[256,256]")
    train.add_argument("--seed", type=int, help="shorthand for --set train.seed=N")
    train.add_argument("--monitor", type=int, metavar="N", help="every N examples, statistics of every layer "
                       "(§4.2: activations, gradients, weights, updates, saturation, linear probes); shorthand "
                       "for --set train.monitor=N, and pretrain.monitor=N for the levels of a stack)")
    train.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    train.add_argument("--find-lr", action="store_true",
                       help="first search the learning rate (§2.1: the largest that does not diverge, by "
                            "factors of 3, halved), print the rates tried, then train with it")
    check = commands.add_parser("check", help="check a config's gradients and that it can overfit (§4.1); "
                                                  "exit 1 when wrong",
                                description="Check the model's training signal against centered finite "
                                            "differences of its criterion, per tensor and layer, and that SGD "
                                            "and L-BFGS fit a small training subset (§4.1).")
    check.add_argument("config", help="TOML file with [data], [model] and [train] sections")
    check.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key with a TOML value")
    check.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    train.set_defaults(run=train_command)
    check.set_defaults(run=check_command)


def train_command(args) -> int:
    from ..diagnose import diagnose
    from ..nn import family_of
    from ..train import check_member, find_learning_rate, fit, resolve_device
    from ..train.memory import default_memory_limit

    overrides = list(args.overrides) + ([f"train.seed={args.seed}"] if args.seed is not None else []) + _monitor(args)
    config = load_config(args.config, overrides)
    if config.pretrain.levels and args.monitor is not None:       # --monitor watches every level too
        config = load_config(args.config, overrides + [f"pretrain.monitor={args.monitor}"])
    splits = config.data.splits()
    if config.pretrain.levels:
        return train_stack_command(args, config, splits)
    member, device = check_member(config.member(), splits), resolve_device(config.device)
    search = None
    if args.find_lr:
        search = find_learning_rate(splits, member, device=device)
        show_rate_search(search, sys.stderr)
        config = config.with_values({"train.lr": search.rate})
        member = check_member(config.member(), splits)
    show = Progress(sys.stderr)
    family = family_of(member.model)
    sizes = "-".join(map(str, family.sizes(member.model, splits.n_features, splits.n_outputs)))
    print(f"training a {sizes} {family.name} on {splits.name}: {len(splits.X_train)} train / "
          f"{len(splits.X_valid)} valid examples", file=sys.stderr)
    result = fit(splits, member, device=device, progress=show, memory_limit=default_memory_limit(device.type))
    show.close()
    summary = result.summary() | {"config": config.to_dict()}
    if result.statistics is not None:
        summary["statistics"] = result.statistics.summary()
    if search is not None:
        summary["lr_search"] = {"rate": search.rate, "largest_stable": search.largest_stable,
                                "runs": [{"rate": r.rate, "start_criterion": _finite(r.start_criterion),
                                          "end_criterion": _finite(r.end_criterion), "diverged": r.diverged}
                                         for r in search.runs]}
    diagnosis = diagnose(result)
    summary["diagnosis"] = diagnosis.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        beside = "loss" if family.supervised else "clean reconstruction"
        print(f"best validation error {result.best_valid_error:.4f} ({beside} {result.best_valid_loss:.4f}) "
              f"after {result.examples_seen_at_best:,} examples; stopped by {result.stopped_because} "
              f"after {result.examples_seen:,} examples in {result.seconds:.1f} s")
        print(diagnosis.text)
        if result.statistics is not None:
            show_statistics(result.statistics)
    return 0


def _monitor(args) -> list[str]:
    return [] if args.monitor is None else [f"train.monitor={args.monitor}"]


def train_stack_command(args, config, splits) -> int:
    """Pre-train the levels, then fine-tune: a line as each level starts and ends (§1.1), and
    the diagnosis of the fine-tuning's curves (§4.1)."""
    from ..diagnose import diagnose
    from ..train import check_member, resolve_device
    from ..train.stack import train_stack

    if args.find_lr:
        raise ConfigError("--find-lr searches one network's rate; with pre-training set each level's lr "
                          "(pretrain.lr, level<N>.lr) and the fine-tuning's train.lr, or search them with tune.")
    levels = [check_member(m, splits) for m in config.levels()]     # every level refused before any trains
    device = resolve_device(config.device)
    show = Progress(sys.stderr)
    result = train_stack(splits, levels, config.member(), device=device, probe_it=config.pretrain.probe,
                         progress=show, announce=show.note)
    show.close()
    diagnosis = diagnose(result.finetune)
    summary = result.summary() | {"config": config.to_dict(), "diagnosis": diagnosis.summary()}
    if args.json:
        trained = [lv.result for lv in result.levels] + [result.finetune]
        for part, r in zip([*summary["levels"], summary["finetune"]], trained):
            if r.statistics is not None:
                part["statistics"] = r.statistics.summary()
        print(json.dumps(summary))
        return 0
    for level in result.levels:
        probe = "" if level.probe_error is None else f", probe error {level.probe_error:.4f}"
        print(f"level {level.number}: {level.result.member.model.family} of {level.result.member.model.hidden} "
              f"units, validation criterion {level.result.best_valid_error:.4f}{probe} ({level.seconds:.1f} s)")
        if level.result.statistics is not None:
            show_statistics(level.result.statistics)
    r = result.finetune
    print(f"fine-tuned: best validation error {r.best_valid_error:.4f} (loss {r.best_valid_loss:.4f}) after "
          f"{r.examples_seen_at_best:,} examples; stopped by {r.stopped_because} after {r.examples_seen:,} "
          f"examples in {r.seconds:.1f} s")
    print(diagnosis.text)
    if r.statistics is not None:
        show_statistics(r.statistics)
    return 0


def check_command(args) -> int:
    """§4.1: the gradient check of the config's model (the fine-tuned network of a stack),
    controlled overfitting and NaN poisoning; exit 1 when a gradient is wrong, a small set can't
    be fitted, or a buffer is read before it is written."""
    from ..diagnose import check_gradients, check_overfitting, check_poisoning

    config = load_config(args.config, args.overrides)
    splits = config.data.splits()
    gradients = check_gradients(config.member(), splits)
    overfit = check_overfitting(config.member(), splits)
    poisoning = check_poisoning(config.member(), splits)
    ok = gradients.ok and overfit.ok and poisoning.ok
    if args.json:
        print(json.dumps({"ok": ok, "gradients": gradients.summary(), "overfitting": overfit.summary(),
                          "poisoning": poisoning.summary()}))
        return 0 if ok else 1
    if gradients.skipped:
        print(f"gradients: not checked, {gradients.skipped}")
    for t in gradients.tensors + gradients.activations:
        print(f"{t.name if t in gradients.tensors else 'dL/dz ' + t.name:>16}  layer {t.layer}  "
              f"relative error {t.error:.2e}  ({t.probed})  "
              f"{'ok' if t.ok else 'WRONG'}")
    if not gradients.skipped:
        print("gradients: right" if gradients.ok else
              f"gradients: wrong in layer(s) {', '.join(map(str, gradients.wrong_layers))}")
    errors = "" if overfit.skipped else f" (training error: SGD {overfit.sgd_error:.3f}, L-BFGS {overfit.lbfgs_error:.3f})"
    print(f"overfitting a small set: {overfit.verdict}{errors}")
    print(f"NaN poisoning: {poisoning.verdict}" + (f" ({poisoning.skipped})" if poisoning.skipped else ""))
    return 0 if ok else 1


def _finite(v: float) -> float | None:
    # JSON has no NaN or infinity: a diverged run's criterion is written as null
    return v if math.isfinite(v) else None
