"""`purelearn tune` and what looks at a study: `trials`, `best`, `report`, `advise`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..errors import ConfigError, unknown
from ..search.space import format_value
from .lines import TuneProgress, first_line, listed
from .training import _monitor


def add_tune(commands) -> None:
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
    tune.set_defaults(run=tune_command)


def add_views(commands) -> None:
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
        p.set_defaults(run={"trials": trials_command, "best": best_command, "report": report_command}[name])
    advise = commands.add_parser("advise", help="the chapter's advice on a config or a study, each with its section",
                                 description="Check a TOML config (its [search] section too) or a study against "
                                             "the chapter's recommendations (§3-§3.4) and say what to change.")
    advise.add_argument("path", help="a TOML config, or a study store (a .db SQLite file or a database URL)")
    advise.add_argument("--study", help="study name (needed when the store holds several)")
    advise.add_argument("--json", action="store_true", help="print the advice as one JSON object on stdout")
    advise.set_defaults(run=advise_command)


def tune_command(args) -> int:
    from pathlib import Path

    from ..config import load_search
    from ..execute import tune
    from ..search import parse_space

    from ..store.urls import shown

    flags = {k: v for k, v in (("trials", args.trials), ("workers", args.workers), ("strategy", args.strategy),
                               ("store", args.store), ("study", args.study), ("population", args.population),
                               ("memory_limit", args.memory_limit), ("prune", args.prune)) if v is not None}
    config, spec, table = load_search(args.config, list(args.overrides) + _monitor(args), flags)
    space = parse_space(table)
    store = spec.store or f"runs/{Path(args.config).stem}.db"
    study_name = spec.study or Path(args.config).stem
    trials = spec.trials
    if spec.strategy == "layerwise":
        from ..search import make_strategy

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
        print(f"failed: trial{'s' if len(numbers) > 1 else ''} {listed(numbers)}: {error}")
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
            out.setdefault(first_line(t.error), []).append(t.number)
    return out


def open_study(args):
    from ..execute import Study
    from ..store import Store

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
    study = open_study(args)
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
             + ([first_line(t.error, 80) if t.error else "-"] if errors else []) for t in rows]
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for r in [header, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def best_command(args) -> int:
    from ..config import to_toml

    study = open_study(args)
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
        from ..files import write_atomic

        try:
            write_atomic(args.out, text.encode())
        except OSError as e:
            raise ConfigError(f"--out {args.out!r}: can't write it ({e.strerror}).") from None
        print(f"best configuration written to {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def report_command(args) -> int:
    from ..report import write_report

    study = open_study(args)
    path = write_report(study, args.out)
    print(f"report written to {path}")
    return 0


def advise_command(args) -> int:
    """The chapter's advice on a config or a study: a paragraph per advice, each with its section."""
    from ..diagnose import advise
    from ..diagnose.advise import checked_rules

    if _names_a_store(args.path):
        subject = open_study(argparse.Namespace(store=args.path, study=args.study))
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

    from ..store.urls import SQLITE_HEADER

    if "://" in path or path == ":memory:" or Path(path).suffix.lower() in (".db", ".sqlite", ".sqlite3"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False
