"""`purelearn evaluate` and `purelearn finals`: the protocol of §3."""

from __future__ import annotations

import json
import sys
import time

from ..errors import ConfigError
from .studies import open_study


def add(commands) -> None:
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
    evaluate.set_defaults(run=evaluate_command)
    finals.set_defaults(run=finals_command)


def evaluate_command(args) -> int:
    from pathlib import Path

    from ..config import read_toml, search_table, with_overrides
    from ..evaluate import HyperLearner, double_cross_validation
    from ..evaluate.nested import check_outer
    from ..store.urls import shown

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
    from ..evaluate import run_finals

    study = open_study(args)
    finals = run_finals(study, top=args.top, seeds=args.seeds, bagging=args.bagging,
                        evaluate_test=args.evaluate_test, force=args.force)
    print(json.dumps(finals.to_dict()) if args.json else "\n".join(finals.lines()))
    return 0
