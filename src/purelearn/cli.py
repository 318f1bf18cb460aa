"""The purelearn command: train, tune, and look at studies."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time

from . import __version__
from .config import load_config
from .errors import ConfigError, PurelearnError, unknown
from .search.space import format_value


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as Ctrl-C does (running trials marked interrupted)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, _frame):
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purelearn", description="Train neural networks with the practice of "
                                     "Bengio (2012), search their hyper-parameters, and look at the studies.")
    parser.add_argument("--version", action="version", version=f"purelearn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one network from a TOML config",
                                description="Train one network from a TOML config and report its best "
                                            "validation point.")
    train.add_argument("config", help="TOML file with [data], [model] and [train] sections")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key with a TOML value, e.g. --set model.hidden=[256,256]")
    train.add_argument("--seed", type=int, help="shorthand for --set train.seed=N")
    train.add_argument("--monitor", type=int, metavar="N", help="every N examples, statistics of every layer "
                       "(§4.2: activations, gradients, weights, updates, saturation, linear probes); shorthand "
                       "for --set train.monitor=N")
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
    tune = commands.add_parser("tune", help="search hyper-parameters; the study is kept in a store",
                               description="Search the [search.space] of a config; running again extends or "
                                           "resumes the same study.")
    tune.add_argument("config", help="TOML file with [data], [model], [train], [search] and [search.space]")
    tune.add_argument("--trials", type=int, help="total trials wanted (search.trials)")
    tune.add_argument("--workers", type=int, help="worker processes (search.workers; default: one per core)")
    tune.add_argument("--population", help="trials per batched population: auto (measured) or a number; "
                                           "1 trains one trial at a time (search.population)")
    tune.add_argument("--memory-limit", type=int, metavar="MB", help="memory a population may use (search.memory_limit)")
    tune.add_argument("--prune", metavar="RULE", help="stop hopeless trials early (§3.3.1): median, successive-halving "
                      "or none (search.prune; default auto: decided and said)")
    tune.add_argument("--strategy", help="random, grid, coordinate, multires, tpe or layerwise (search.strategy)")
    tune.add_argument("--store", help="SQLite file or database URL (search.store)")
    tune.add_argument("--study", help="study name (search.study; default: the config file's name)")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config or [search] key with a TOML value, e.g. --set search.seed=3")
    tune.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    tune.add_argument("--monitor", type=int, metavar="N", help="every N examples, statistics of every layer of "
                      "every trial, kept in the store for the report (shorthand for --set train.monitor=N)")
    tune.add_argument("--evaluate-test", action="store_true",
                      help="evaluate the selected configuration on the test split, once per study")
    tune.add_argument("--force", action="store_true", help="with --evaluate-test: evaluate again (recorded)")
    evaluate = commands.add_parser("evaluate", help="double cross-validation (§3): the error of the whole learner, "
                                   "its hyper-parameter search included",
                                   description="Estimate the generalization error of the search a config describes: "
                                               "each outer fold's training part is searched (selecting by inner "
                                               "folds or a validation split) and refitted, then scored once on the "
                                               "fold held out. Every example of the data is used (data.test is not).")
    evaluate.add_argument("config", help="TOML file with [data], [model], [train], [search] and [search.space]")
    evaluate.add_argument("--outer", type=int, default=5, help="outer folds (default 5)")
    evaluate.add_argument("--inner", type=int, default=0, help="inner folds that select (default 0: the inner "
                          "validation split data.valid)")
    evaluate.add_argument("--trials", type=int, help="trials per outer fold (search.trials)")
    evaluate.add_argument("--workers", type=int, help="worker processes (search.workers; default: one per core)")
    evaluate.add_argument("--store", help="SQLite file or database URL keeping every fold's study, so that a run "
                          "stopped resumes (default: runs/<config>-evaluate.db)")
    evaluate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config or [search] key with a TOML value")
    evaluate.add_argument("--json", action="store_true", help="print the estimate as one JSON object on stdout")
    finals = commands.add_parser("finals", help="the best configurations of a study with new seeds, and their "
                                 "committees (§3.2)",
                                 description="Train the best few configurations of a study again with several new "
                                             "seeds each (as one batch of populations): their validation errors' "
                                             "mean and standard deviation show whether the best was luck; "
                                             "committees average the members' outputs.")
    finals.add_argument("store", help="the study store (SQLite file or database URL)")
    finals.add_argument("--study", help="study name (needed when the store holds several)")
    finals.add_argument("--top", type=int, default=3, help="how many best configurations (default 3)")
    finals.add_argument("--seeds", type=int, default=10, help="new seeds per configuration (default 10)")
    finals.add_argument("--bagging", action="store_true", help="each member also on its own bootstrap sample")
    finals.add_argument("--evaluate-test", action="store_true", help="score them on the test split too, read once "
                        "per study")
    finals.add_argument("--force", action="store_true", help="with --evaluate-test: read the test split again "
                        "(recorded)")
    finals.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    for name, help_text in (("trials", "table of a study's trials, best first"),
                            ("best", "the best configuration as TOML, ready for `purelearn train`"),
                            ("report", "HTML report with pictures of a study")):
        p = commands.add_parser(name, help=help_text, description=help_text)
        p.add_argument("store", help="the study store (SQLite file or database URL)")
        p.add_argument("--study", help="study name (needed when the store holds several)")
        if name == "trials":
            p.add_argument("--json", action="store_true", help="print a JSON list")
        if name == "report":
            p.add_argument("--out", default="report", help="output folder (default: report/)")
        if name == "best":
            p.add_argument("--out", help="write the TOML to this file (only when it succeeds) instead of stdout")
            p.add_argument("--model", metavar="FILE", help="also save the best trial's trained model (weights, "
                           "architecture, fitted preprocessing, labels) for purelearn.Model.load")
    advise = commands.add_parser("advise", help="the chapter's advice on a config or a study, each with its section",
                                 description="Check a TOML config (its [search] section too) or a study against "
                                             "the chapter's recommendations (§3-§3.4) and say what to change.")
    advise.add_argument("path", help="a TOML config, or a study store (a .db SQLite file or a database URL)")
    advise.add_argument("--study", help="study name (needed when the store holds several)")
    advise.add_argument("--json", action="store_true", help="print the advice as one JSON object on stdout")
    args = parser.parse_args(argv)
    from .execute.workers import keep_freed_memory

    keep_freed_memory()
    handlers = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()          # here, where a reader that has gone away is handled below
        return code
    except PurelearnError as e:
        print(f"purelearn: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"\npurelearn: {'interrupted' if signum == signal.SIGINT else 'stopped by ' + signal.Signals(signum).name}",
              file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # The reader went away (``purelearn trials | head``): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def train_command(args) -> int:
    from .diagnose import diagnose
    from .nn import family_of
    from .train import check_member, find_learning_rate, fit, resolve_device
    from .train.memory import default_memory_limit

    overrides = list(args.overrides) + ([f"train.seed={args.seed}"] if args.seed is not None else []) + _monitor(args)
    config = load_config(args.config, overrides)
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


def show_statistics(stats) -> None:
    """The last snapshot of the layers' statistics as a table, and what in it needs attention."""
    from .diagnose import findings, layer_table

    table = layer_table(stats)

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    print(f"layer statistics after {table['examples_seen']:,} examples (on the first monitored training examples):")
    print(f"  {'units':<15}{'mean':>9}{'std':>9}{'grad std':>10}{'saturated':>10}{'dead':>7}{'probe error':>12}")
    for u in table["units"]:
        print(f"  {u['layer'] + ' (' + u['activation'] + ')':<15}{num(u['mean'], '.3f'):>9}{num(u['std'], '.3f'):>9}"
              f"{num(u['grad_std'], '.1e'):>10}{num(u['saturated'], '.0%'):>10}{num(u['dead'], '.0%'):>7}"
              f"{num(u['probe_error'], '.3f'):>12}")
    print(f"  {'tensor':<15}{'std':>9}{'grad std':>10}{'update/weight':>15}")
    for t in table["tensors"]:
        print(f"  {t['tensor']:<15}{num(t['std'], '.3f'):>9}{num(t['grad_std'], '.1e'):>10}"
              f"{num(t['update_ratio'], '.1e'):>15}")
    for line in findings(stats):
        print(f"  ! {line}")


def _monitor(args) -> list[str]:
    return [] if args.monitor is None else [f"train.monitor={args.monitor}"]


def train_stack_command(args, config, splits) -> int:
    """Pre-train the levels, then fine-tune: a line as each level starts and ends (§1.1), and
    the diagnosis of the fine-tuning's curves (§4.1)."""
    from .diagnose import diagnose
    from .train import check_member, resolve_device
    from .train.stack import train_stack

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
        print(json.dumps(summary))
        return 0
    for level in result.levels:
        probe = "" if level.probe_error is None else f", probe error {level.probe_error:.4f}"
        print(f"level {level.number}: {level.result.member.model.family} of {level.result.member.model.hidden} "
              f"units, validation criterion {level.result.best_valid_error:.4f}{probe} ({level.seconds:.1f} s)")
    r = result.finetune
    print(f"fine-tuned: best validation error {r.best_valid_error:.4f} (loss {r.best_valid_loss:.4f}) after "
          f"{r.examples_seen_at_best:,} examples; stopped by {r.stopped_because} after {r.examples_seen:,} "
          f"examples in {r.seconds:.1f} s")
    print(diagnosis.text)
    return 0


def check_command(args) -> int:
    """§4.1: the gradient check of the config's model (the fine-tuned network of a stack),
    controlled overfitting and NaN poisoning; exit 1 when a gradient is wrong, a small set can't
    be fitted, or a buffer is read before it is written."""
    from .diagnose import check_gradients, check_overfitting, check_poisoning

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


def show_rate_search(search, stream) -> None:
    """The learning-rate search's path: each rate with its training criterion at the start and
    after the short run, and the rate chosen."""
    print(f"learning-rate search (§2.1): the training criterion before and after a short run, "
          f"{'up' if search.direction == 'up' else 'down'} by factors of 3", file=stream)
    print(f"{'lr':>10}  {'start':>10}  {'end':>10}", file=stream)
    for r in search.runs:
        print(f"{r.rate:>10.4g}  {r.start_criterion:>10.4f}  {r.end_criterion:>10.4f}  "
              f"{'diverged' if r.diverged else 'stable'}", file=stream)
    print(f"largest stable lr {search.largest_stable:.4g}; training with lr = {search.rate:.4g} "
          f"({search.largest_stable / search.rate:.3g}x below it)", file=stream)


class StatusLine:
    """A live status line: rewritten in place on a terminal, otherwise a line at most every
    ``every`` seconds (unless ``force``), so logs stay short."""

    def __init__(self, stream, every: float = 5.0):
        self.stream, self.every, self.last, self.tty = stream, every, 0.0, stream.isatty()

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if self.tty or force or now - self.last >= self.every:
            self.last = now
            return True
        return False

    def show(self, line: str, notes=()) -> None:
        for note in notes:                       # lines that stay, above the status line
            self.note(note)
        self.stream.write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """A line that stays (over the status line, on a terminal)."""
        self.stream.write(("\r\x1b[K" if self.tty else "") + f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


class Progress(StatusLine):
    """Training: examples seen, training loss, best validation error, patience left."""

    def __call__(self, event: dict) -> None:
        if not self.due():
            return
        best = event["best_valid_error"]
        line = (f"examples {event['examples_seen']:>9,}  train loss {event['train_loss'].min():.4f}  "
                f"best valid error {best.min():.4f}  patience left {int(event['patience_left'].max()):,}  "
                f"{event['seconds']:.1f} s")
        if event["members"] > 1:
            line += f"  ({event['alive']}/{event['members']} training)"
        self.show(line)


def tune_command(args) -> int:
    from pathlib import Path

    from .config import load_search
    from .execute import tune
    from .search import parse_space

    from .store.urls import shown

    flags = {k: v for k, v in (("trials", args.trials), ("workers", args.workers), ("strategy", args.strategy),
                               ("store", args.store), ("study", args.study), ("population", args.population),
                               ("memory_limit", args.memory_limit), ("prune", args.prune)) if v is not None}
    config, spec, table = load_search(args.config, list(args.overrides) + _monitor(args), flags)
    space = parse_space(table)
    store = spec.store or f"runs/{Path(args.config).stem}.db"
    study_name = spec.study or Path(args.config).stem
    trials = spec.trials
    if spec.strategy == "layerwise":
        from .search import make_strategy

        plan = make_strategy("layerwise", space, spec.seed, levels=config.pretrain.levels, **spec.options())
        trials = plan.planned
        print(f"Algorithm 1 (§3.3.4): {plan.levels} level(s), the {plan.keep} best kept at each, every level's "
              "candidates tried on each of them, then the fine-tuning's", file=sys.stderr)
    print(f"study {study_name!r} in {shown(store)}: {spec.strategy} search of {len(space.dims)} knobs, "
          f"{trials} trials", file=sys.stderr)
    start = time.perf_counter()
    show = TuneProgress(sys.stderr)
    study = tune(config, space, strategy=spec.strategy, trials=spec.trials, store=store, study=study_name,
                 workers=spec.workers or None, population=spec.population_size(),
                 memory_limit=spec.memory_limit * 2 ** 20 or None, seed=spec.seed, expand=spec.expand,
                 options=spec.options(), progress=show, keep_models=spec.keep_models, prune=spec.pruning())
    show.close()
    summary = study_summary(study) | {"store": shown(store), "seconds": round(time.perf_counter() - start, 3),
                                      "schedule": getattr(study, "schedule", None)}
    if args.evaluate_test:
        summary["test_error"] = study.evaluate_test(force=args.force)
        summary["test_evaluations"] = len(study.store.test_evaluations(study.record))
    if args.json:
        print(json.dumps(summary))
        return 0
    best = study.best
    levels = f"{summary['pretrained']} levels pre-trained, " if summary["pretrained"] else ""
    pruned = f", {summary['pruned']} pruned" if summary["pruned"] else ""
    print(f"{levels}{summary['complete']} complete{pruned}, {summary['failed']} failed, {summary['diverged']} "
          f"diverged in {summary['seconds']:.1f} s")
    if best is not None:
        print(f"best validation error {best.value:.4f} (trial {best.number}): "
              + ", ".join(f"{k}={format_value(v)}" for k, v in best.params.items()))
    for error, numbers in summary["errors"].items():
        print(f"failed: trial{'s' if len(numbers) > 1 else ''} {_numbers(numbers)}: {error}")
    for w in summary["warnings"]:
        print(f"warning: {w}")
    print(summary["plateau"]["message"])
    if "test_error" in summary:
        print(f"test error of the selected configuration: {summary['test_error']:.4f}")
    return 0


def study_summary(study) -> dict:
    trials = study.trials
    best = study.best
    count = {s: sum(t.status == s for t in trials)
             for s in ("complete", "failed", "diverged", "interrupted", "pretrained", "pruned")}
    return {"study": study.name, "trials": len(trials), **count,
            "best_value": None if best is None else best.value,
            "best_trial": None if best is None else best.number,
            "best_params": None if best is None else best.params,
            "warnings": study.warnings(), "plateau": study.plateau(), "errors": _errors(trials)}


def _errors(trials) -> dict[str, list[int]]:
    """The failed trials by error (first line): what went wrong, said once for all it hit."""
    out: dict[str, list[int]] = {}
    for t in trials:
        if t.status == "failed":
            out.setdefault(_first_line(t.error), []).append(t.number)
    return out


def _first_line(error: str | None, width: int | None = None) -> str:
    line = (error or "no message").strip().splitlines()[0] if (error or "").strip() else "no message"
    return line if width is None or len(line) <= width else line[:width - 3] + "..."


def _numbers(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:8])) + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")




class TuneProgress(StatusLine):
    """Tuning: trials done / failed / running, best so far and time left, after every trial."""

    def __call__(self, p) -> None:
        if not self.due(force=bool(p.events) or p.done == p.total):
            return
        best = "-" if p.best is None else f"{p.best:.4f}"
        eta = "" if p.eta is None else f"  about {p.eta:.0f} s left"
        pruned = f"{p.pruned} pruned, " if p.pruned else ""
        self.show(f"trials {p.done}/{p.total} done ({pruned}{p.failed} failed, {p.running} running)  "
                  f"best {best}  {p.seconds:.0f} s{eta}", p.events)


def _open_study(args):
    from .execute import Study
    from .store import Store

    store = Store(args.store, create=False)
    names = store.study_names()
    if args.study is None:
        if len(names) != 1:
            raise ConfigError(f"{store} holds {len(names)} studies ({', '.join(names) or 'none'}); "
                              "name one with --study.")
        name = names[0]
    elif args.study not in names:
        raise unknown(f"study in {store}", args.study, names)
    else:
        name = args.study
    return Study(store, store.study(name))


def trials_command(args) -> int:
    study = _open_study(args)
    rows = sorted(study.trials, key=lambda t: (t.value is None, t.value if t.value is not None else 0, t.number))
    if args.json:
        print(json.dumps([{"number": t.number, "status": t.status, "value": t.value, "params": t.params,
                           "seconds": t.seconds, "error": t.error, "seed": t.seed} for t in rows]))
        return 0
    knobs = list(dict.fromkeys(k for t in rows for k in t.params))
    errors = any(t.error for t in rows)
    header = ["trial", "status", "valid err", "seconds", *knobs] + (["error or reason"] if errors else [])
    table = [[str(t.number), t.status, "-" if t.value is None else f"{t.value:.4f}",
              "-" if t.seconds is None else f"{t.seconds:.1f}", *(format_value(t.params[k]) if k in t.params else "-"
                                                                for k in knobs)]
             + ([_first_line(t.error, 80) if t.error else "-"] if errors else []) for t in rows]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for r in [header, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def best_command(args) -> int:
    from .config import to_toml

    study = _open_study(args)
    best = study.best
    text = to_toml(study.best_config())          # first: an error leaves nothing half-written
    text = f"# best of study {study.name!r}: validation error {best.value:.4f} (trial {best.number})\n" + text
    if args.model:
        model = study.best_model()
        try:
            model.save(args.model)
        except OSError as e:
            raise ConfigError(f"--model {args.model!r}: can't write it ({e.strerror}).") from None
        print(f"model of trial {best.number} written to {args.model}", file=sys.stderr)
    if args.out:
        from .files import write_atomic

        try:
            write_atomic(args.out, text.encode())
        except OSError as e:
            raise ConfigError(f"--out {args.out!r}: can't write it ({e.strerror}).") from None
        print(f"best configuration written to {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def report_command(args) -> int:
    from .report import write_report

    study = _open_study(args)
    path = write_report(study, args.out)
    print(f"report written to {path}")
    return 0


def advise_command(args) -> int:
    """The chapter's advice on a config or a study: a paragraph per advice, each with its section."""
    from .diagnose import advise
    from .diagnose.advise import checked_rules

    if _names_a_store(args.path):
        subject = _open_study(argparse.Namespace(store=args.path, study=args.study))
        kind = f"study {subject.name!r}"
    else:
        if not os.path.exists(args.path):
            raise ConfigError(f"advise: {args.path!r} does not exist; give a TOML config (.toml) or a study store "
                              "(a .db SQLite file or a database URL).")
        if args.study is not None:
            raise ConfigError(f"--study {args.study!r} names a study in a store, but {args.path!r} is a config; "
                              "give the store's path instead, or leave --study out.")
        subject, kind = args.path, "config"
    advice, checked = advise(subject), checked_rules(subject)
    if args.json:
        print(json.dumps({"subject": kind, "checked": checked, "advice": [a.summary() for a in advice]}))
        return 0
    if advice:
        print("\n\n".join(a.text for a in advice))
    else:
        print(f"no advice: the {kind} passes every check that applies to it ({', '.join(checked)}).")
    return 0


def _names_a_store(path: str) -> bool:
    """A database URL, or a file named or written as a SQLite database (not a TOML config)."""
    from pathlib import Path

    from .store.urls import SQLITE_HEADER

    if "://" in path or path == ":memory:" or Path(path).suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def evaluate_command(args) -> int:
    from pathlib import Path

    from .config import read_toml, search_table, with_overrides
    from .evaluate import HyperLearner, double_cross_validation
    from .evaluate.nested import check_outer
    from .store.urls import shown

    flags = {k: v for k, v in (("trials", args.trials), ("workers", args.workers)) if v is not None}
    table = with_overrides(read_toml(args.config), args.overrides)
    config, spec, _ = search_table(table, args.config, (), flags)
    data = config.data.dataset()
    check_outer(args.outer, len(data.X))
    if data.task not in ("classification", "regression"):
        raise ConfigError(f"evaluate estimates a classification's or a regression's error; {data.name} is {data.task}.")
    store = args.store or f"runs/{Path(args.config).stem}-evaluate.db"
    Path(store).parent.mkdir(parents=True, exist_ok=True) if "://" not in store and store != ":memory:" else None
    learner = HyperLearner(table, trials=spec.trials, cv=args.inner, store=store, study=Path(args.config).stem,
                           population=spec.population_size(), n_jobs=spec.workers or -1, random_state=spec.seed,
                           task=data.task)
    print(f"double cross-validation of {data.name} ({len(data.X)} examples) in {shown(store)}: {args.outer} outer "
          f"folds, {spec.trials} {spec.strategy} trials each", file=sys.stderr)
    start = time.perf_counter()

    def progress(fold):
        print(f"outer fold {fold.fold + 1}/{args.outer}: inner {fold.inner:.4f}, outer {fold.outer:.4f} "
              f"({fold.seconds:.1f} s)", file=sys.stderr)

    estimate = double_cross_validation(learner, data.X, data.y, outer=args.outer, seed=spec.seed, progress=progress)
    if args.json:
        print(json.dumps(estimate.to_dict() | {"seconds": round(time.perf_counter() - start, 3)}))
        return 0
    print("\n".join(estimate.lines()))
    return 0


def finals_command(args) -> int:
    from .evaluate import run_finals

    study = _open_study(args)
    finals = run_finals(study, top=args.top, seeds=args.seeds, bagging=args.bagging,
                        evaluate_test=args.evaluate_test, force=args.force)
    print(json.dumps(finals.to_dict()) if args.json else "\n".join(finals.lines()))
    return 0


COMMANDS = {"train": train_command, "evaluate": evaluate_command, "finals": finals_command, "check": check_command, "tune": tune_command, "trials": trials_command, "best": best_command,
            "report": report_command, "advise": advise_command}

if __name__ == "__main__":
    sys.exit(main())
