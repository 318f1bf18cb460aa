"""Running a study: the driver asks the strategy for batches of trials, hands them to workers,
records each result in the store as it arrives, and resumes where a previous run stopped
(§3.3-3.4)."""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass, field, replace

from ..config import Config, flatten
from ..errors import ConfigError, unknown
from ..search import BorderRule, Expansion, Space, check_space, make_strategy
from ..search.layerwise import concrete_space
from ..search.parse import parse_space
from ..search.pruning import Pruning, points
from ..store import Store, StudyRecord, Trial, check_study_name
from ..train import resolve_device
from ..train.memory import default_memory_limit
from ..search.layerwise import PARENT
from .objective import PARENT_MODEL, ConfigObjective, as_objective
from .schedule import Schedule, batch_size, calibrate, choose
from .study import Study
from .workers import EXECUTORS

FINISHED = ("complete", "failed", "diverged", "pretrained", "pruned")
DEATHS = 2               # a trial whose worker died this many times is failed, not re-run again


def trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number) % 2 ** 31


@dataclass
class Progress:
    """What ``tune`` reports after every finished trial."""

    done: int
    failed: int
    running: int
    total: int
    best: float | None
    seconds: float
    events: list = field(default_factory=list)
    pruned: int = 0

    @property
    def eta(self) -> float | None:
        return None if not self.done else self.seconds / self.done * max(self.total - self.done, 0)


def tune(objective, space: Space | dict | None = None, *, strategy: str = "random", trials: int = 64,
         store=None, study: str = "study", workers: int | None = None, population: int | str = "auto",
         memory_limit: int | None = None, executor: str | None = None, seed: int = 0, expand: bool = False,
         options: dict | None = None, progress=None, keep_models: int = 3, prune: str | Pruning = "none") -> Study:
    """Search ``space`` for the best settings of ``objective`` and return the :class:`Study`.

    objective: a :class:`purelearn.config.Config` (each trial trains it with the trial's knobs set)
    or a function ``objective(params, report) -> float`` (lower is better). ``trials`` is the
    total wanted: running again on the same ``store`` and ``study`` extends or resumes it, never
    repeating a finished trial; interrupted trials are re-run.

    A config's trials train as batched populations of up to ``population`` members in each of
    ``workers`` processes; with ``population='auto'`` (and workers None) a short measurement on
    the study's own models picks both (see :mod:`purelearn.execute.schedule`). ``memory_limit``
    (bytes) caps a population's memory. A function objective runs one trial at a time, in
    ``workers`` processes (default 1: in this process). ``executor``: 'inline' or 'process'.
    ``keep_models``: the store keeps the trained models of this many best trials (0: of every
    trial), for ``Study.models()`` and the stacks built on them. The ``layerwise`` strategy
    (Algorithm 1) runs as many trials as its plan makes, whatever ``trials`` says.

    ``prune``: stop hopeless trials early (§3.3.1), a rule name or a
    :class:`purelearn.search.pruning.Pruning`: 'median', 'successive-halving', 'none', or
    'auto' (decided from the study, and said in the first progress event). A pruned trial is
    stored as ``pruned`` with its curve and the rule's reason; it is never re-run, never the
    study's best, and counts in the efficiency curve at its best validation error before it
    stopped (what it reached, an upper bound on what it would have).
    """
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"trials = {trials!r} must be a whole number >= 1.")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers = {workers!r} must be a whole number >= 1.")
    if population != "auto" and (not isinstance(population, int) or population < 1):
        raise ConfigError(f"population = {population!r} must be 'auto' or a whole number >= 1.")
    if not isinstance(keep_models, int) or isinstance(keep_models, bool) or keep_models < 0:
        raise ConfigError(f"keep_models = {keep_models!r} must be a whole number >= 0 (0: every trial's model).")
    if executor is not None and executor not in EXECUTORS:
        raise unknown("executor", executor, EXECUTORS)
    space = parse_space(space) if isinstance(space, dict) and not isinstance(space, Space) else space
    if not isinstance(space, Space):
        raise ConfigError("tune needs a search space: a purelearn.Space or a [search.space] table.")
    check_study_name(study)
    objective = as_objective(objective)
    pruning, said = decide_pruning(prune, objective, strategy, trials)
    options = dict(options or {})
    if strategy == "layerwise":
        plan, trials, keep_models, checked = _layerwise(objective, space, seed, options, expand)
    else:
        plan, checked = make_strategy(strategy, space, seed, **options), space   # validated before the store
    if isinstance(objective, ConfigObjective):
        check_space(checked, objective.config)                       # every choice and end, before the store
    store = store if isinstance(store, Store) else Store(store if store is not None else ":memory:")
    with store.lock(study):
        record = _open_study(store, study, strategy, space, seed, expand, options, objective)
        configured = isinstance(objective, ConfigObjective)
        on_gpu = configured and resolve_device(objective.config.device).type == "cuda"
        if workers is None:     # a process per core, but one process on a GPU or for a function
            workers = (os.cpu_count() or 1) if configured and not on_gpu else 1
        if configured:          # what one population may use: its trials are grouped to fit it
            objective.memory_limit = memory_limit or default_memory_limit(
                resolve_device(objective.config.device).type, workers)
        planner = lambda: _plan(objective, space, seed, trials, workers, population, memory_limit)  # noqa: E731
        timed = configured and not on_gpu and population != 1          # only then does planning take seconds
        if strategy == "layerwise":
            planner, timed = lambda: _stage_plan(plan, workers, population), False  # noqa: E731
        return _Driver(store, record, objective, trials, workers, planner, timed, executor, progress,
                       keep_models, pruning, said).run()


AUTO_PRUNE_TRIALS = 16     # below this, the median of the others is too few trials to trust


def decide_pruning(prune, objective, strategy: str, trials: int) -> tuple[Pruning, str]:
    """The pruning a study runs with, and the line that says which and why. 'auto' prunes by
    the median rule a config's search of at least AUTO_PRUNE_TRIALS trials; a rule asked for
    where it cannot compare trials' curves is refused by name."""
    pruning = prune if isinstance(prune, Pruning) else Pruning(rule=prune)
    why_not = None
    if not isinstance(objective, ConfigObjective):
        if pruning.rule != "auto":
            return pruning, f"pruning: {pruning.describe()}" if pruning.active else ""
        why_not = ("a function objective prunes only when asked: its report() then raises "
                   "purelearn.search.pruning.Pruned")
    elif strategy == "layerwise":
        why_not = "the layer-wise search scores its levels by their probes, not by their learning curves"
    elif objective.config.pretrain.levels:
        why_not = "a pre-trained stack's value is its fine-tuning's, after levels trained without labels"
    elif objective.config.data.folds:
        why_not = "with data.folds a trial's value is the mean of its folds' networks"
    if pruning.rule != "auto":
        if why_not and pruning.active:
            raise ConfigError(f"search.prune = {pruning.rule!r} can't work here: {why_not}. Use prune = 'none'.")
        return pruning, f"pruning: {pruning.describe()}" if pruning.active else ""
    pruning = replace(pruning, rule="none")
    if why_not:
        return pruning, f"pruning: none ({why_not})"
    if trials < AUTO_PRUNE_TRIALS:
        return pruning, (f"pruning: none ({trials} trials: too few for the median of the others to judge by; "
                         "--prune median asks for it)")
    pruning = replace(pruning, rule="median")
    return pruning, f"pruning: {pruning.describe()} (--prune none trains every trial to its own early stopping)"


def _layerwise(objective, space, seed, options: dict, expand: bool):
    """Algorithm 1 in the driver's terms: the stack's depth from the config, the trials its plan
    makes, every model kept while it may be built on (the strategy releases them), and the
    knobs checked as the trials set them. Returns (strategy, trials, keep_models, space to check)."""
    if isinstance(objective, ConfigObjective):
        options.setdefault("levels", objective.config.pretrain.levels)
    if expand:
        raise ConfigError("search.expand widens intervals as results arrive; the layer-wise search tries a "
                          "fixed list of settings per level: set expand = false.")
    plan = make_strategy("layerwise", space, seed, **options)
    return plan, plan.planned, 0, concrete_space(space, plan.levels)


def _stage_plan(strategy, workers: int, population) -> Schedule:
    """A layer-wise search's batches: the candidates of a level on one parent train on its code,
    as populations of at most ``population`` (or with "auto", split so that level 1's, on the
    one parent there is, keep every worker busy)."""
    candidates = max(len(strategy.candidate_settings(s)) for s in range(1, strategy.levels + 2))
    size = population if population != "auto" else -(-candidates // workers)
    return Schedule(workers, size, f"the candidates of a level on the same parent train as populations of up to "
                                   f"{size} in each of {workers} process(es)")


def _plan(objective, space, seed, trials, workers, population, memory_limit) -> Schedule:
    """Decide how many trials train together as one population (one line says why)."""
    if not isinstance(objective, ConfigObjective):
        return choose(None, trials, workers, 0, workers)
    if population == 1:
        return Schedule(workers, 1, f"one trial at a time in each of {workers} process(es), as asked")
    device = resolve_device(objective.config.device).type
    # A GPU batches every trial whatever the gain: only the memory needs sizing there.
    cal = calibrate(objective.config, space, seed, size=batch_size(trials, workers, device), timed=device != "cuda",
                    memory_limit=objective.memory_limit)
    return choose(cal, trials, workers, objective.memory_limit, workers, None if population == "auto" else population)


def _open_study(store, name, strategy, space, seed, expand, options, objective) -> StudyRecord:
    record = store.study(name)
    if record is None:
        settings = {"seed": seed, "expand": expand, "options": options or {}, "initial_space": space.to_dict(),
                    "expansions": []}
        if isinstance(objective, ConfigObjective):
            settings["config"] = objective.config.to_dict()
        return store.create_study(name, strategy, space.to_dict(), settings)
    if record.strategy != strategy:
        raise ConfigError(f"study {name!r} in this store was run with strategy {record.strategy!r}, not "
                          f"{strategy!r}; use another study name (--study) or the same strategy.")
    if record.settings.get("initial_space") != space.to_dict():
        raise ConfigError(f"study {name!r} in this store searched another space; use another study name "
                          "(--study) to search this one.")
    stored = _current(record.settings.get("config"))
    config = objective.config.to_dict() if isinstance(objective, ConfigObjective) else None
    if stored != config:
        raise ConfigError(f"study {name!r} in this store was run with another base configuration ("
                          f"{_difference(stored, config)}); a study's trials must be comparable: use another "
                          "study name (--study), or the same configuration.")
    return record


def _current(stored: dict | None) -> dict | None:
    """A stored base configuration as this version writes it: a key added since then has its
    default, which is what the study's trials trained with."""
    if stored is None:
        return None
    try:
        return Config().with_values(flatten(stored)).to_dict()
    except ConfigError:
        return stored                  # a key since removed: the comparison names it


def _difference(stored: dict | None, new: dict | None) -> str:
    """'train.lr: 0.1 then, 0.05 now; ...' for the keys that differ."""
    if stored is None or new is None:
        return "a Python function then, a config now" if stored is None else "a config then, a Python function now"
    old, now = flatten(stored), flatten(new)
    keys = [k for k in dict.fromkeys([*old, *now]) if old.get(k) != now.get(k)]
    return "; ".join(f"{k}: {old.get(k)!r} then, {now.get(k)!r} now" for k in keys[:5]) + (
        f"; and {len(keys) - 5} more" if len(keys) > 5 else "")


class _Driver:
    def __init__(self, store, record, objective, trials, workers, planner, timed, executor, progress, keep_models,
                 pruning: Pruning, said: str):
        self.store, self.record, self.objective, self.keep = store, record, objective, keep_models
        self.pruning, self.said = pruning, said
        self.history: list = []         # finished trials' curves: what pruning compares running trials with
        self.total, self.progress = trials, progress
        settings = record.settings
        self.seed = settings["seed"]
        self.strategy = make_strategy(record.strategy, parse_space(settings["initial_space"]), self.seed,
                                      **settings.get("options", {}))
        self.border = BorderRule(self.strategy, settings.get("expand", False))
        self.workers, self.planner, self.timed, self.executor_kind = workers, planner, timed, executor
        self.start = time.perf_counter()

    def _replay(self, stored: list[Trial]) -> list[Trial]:
        """Rebuild the strategy from the finished trials; returns the trials to re-run.

        The widenings are restored as recorded, each after as many results as it came after:
        results arrive out of order, so the border rule replayed in trial-number order could
        widen other intervals, at other times, than the run did."""
        recorded = [Expansion(**e) for e in self.record.settings.get("expansions", [])]
        rerun, heard = [], 0
        for t in stored:
            if t.status in FINISHED:
                self.strategy.replay(t.number, t.params, t.value if t.status != "failed" else None, self._heard(t))
                heard += 1
                while recorded and recorded[0].after_trials <= heard:
                    self._widen(recorded.pop(0))
            else:
                rerun.append(t)
        for e in recorded:
            self._widen(e)
        return rerun

    def _heard(self, trial: Trial):
        """Keep a finished trial's curve for pruning; returns its points if it was pruned."""
        curve = points(trial.curve) if trial.curve and trial.status in ("complete", "diverged", "pruned") else None
        if curve is not None:
            self.history.append(curve)
        return curve if trial.status == "pruned" else None

    def _widen(self, e: Expansion) -> None:
        dim = self.strategy.space.dims[e.knob]
        self.strategy.set_space(self.strategy.space.replaced(e.knob, replace(dim, low=e.new[0], high=e.new[1])))
        self.border.expansions.append(e)

    def run(self) -> Study:
        self.store.interrupt_running(self.record)
        stored = self.store.trials(self.record)
        self.queue = queue = self._replay(stored)
        self.next_number = max((t.number for t in stored), default=-1) + 1
        self.counts = {s: sum(t.status == s for t in stored) for s in FINISHED}
        self.ranks = sorted(t.rank for t in stored if t.ranked)      # of every ranked trial, best first
        self.deaths: dict[int, int] = {}          # trial number -> deaths of its worker in this run
        self.parents: dict[int, bytes | None] = {}  # trained models that trials build on, by trial number
        self.store.drop_models(self.record, self.strategy.released_models())   # as the replay decided
        if sum(self.counts.values()) >= self.total and not queue:
            return Study(self.store, self.record)
        kind = self.executor_kind or ("process" if self.workers > 1 else "inline")
        self.pool = pool = EXECUTORS[kind](self.objective, *([self.workers] if kind == "process" else []))
        running: dict[int, Trial] = {}
        self.pending: list[list[Trial]] = []       # populations drawn and recorded, not yet handed out
        # A schedule that is measured (seconds, on large models) is measured in a thread while
        # each worker trains one trial at a time, so no core waits for it.
        measuring = None
        if self.timed:
            self.plan = Schedule(self.workers, 1, "one trial per worker while the schedule is measured")
            measuring = _Measurement(self.planner)
        else:
            self.plan = self.planner()
        lines = [self.said, "" if self.timed else f"schedule: {self.plan.reason}"]
        self._report(0, [line for line in lines if line])
        self.record.settings["prune"] = self.pruning.__dict__ | {"said": self.said}
        self.store.update_study(self.record)
        try:
            while True:
                if measuring is not None and measuring.done():
                    self.plan, measuring = measuring.result(), None
                    self._report(len(running), [f"schedule: {self.plan.reason}"])
                self._fill(pool, queue, running)
                if not running:
                    break
                for number, outcome in pool.wait():
                    self._record(running.pop(number), outcome, len(running))
        except BaseException:
            pool.terminate()
            self.store.interrupt_running(self.record)
            if measuring is not None:    # a thread still in torch when the interpreter exits aborts it
                measuring.wait()
            raise
        pool.close()
        if measuring is not None:            # a study shorter than its measurement
            self.plan = measuring.result()
        self.store.update_study(self.record)
        study = Study(self.store, self.record)
        study.schedule = self.plan.reason
        return study

    def _fill(self, pool, queue: list[Trial], running: dict[int, Trial]) -> None:
        """Hand a population to every free worker while trials remain."""
        while pool.free:
            if not self.pending:
                self.pending = self._draw(queue, pool.free)
                if not self.pending:
                    return
            group = self.pending.pop(0)
            pruning = (self.pruning, list(self.history)) if self.pruning.active else None
            worker = pool.submit([self._job(t) for t in group], pruning)
            for t in group:
                t.worker, t.started = worker, time.time()
                running[t.number] = t

    def _draw(self, queue: list[Trial], free: int) -> list[list[Trial]]:
        """The next trials as the populations they train in, most expensive first: one trial
        for each free worker, or with batching a batch for every worker, grouped. They are
        recorded as running at once, so an interrupted run re-runs those still waiting."""
        p = self.plan.population
        trials = self._next_trials(queue, free if p == 1 else p * self.workers)
        for t, rerun in trials:
            self.store.start_trial(self.record, t, replace=rerun)
        # A trial whose worker died trains alone: if it is the one that kills (memory), the
        # others of its population are not failed with it.
        alone = [[t] for t, _ in trials if p == 1 or t.number in self.deaths]
        trials = [t for t, _ in trials if p > 1 and t.number not in self.deaths]
        parts = self.objective.groups([self._job(t) for t in trials], p) if trials else []
        return [[trials[i] for i in part] for part in parts] + alone

    def _job(self, trial: Trial) -> tuple[int, dict, int]:
        """What a worker gets: (number, params, seed), with a config's trial that builds on a
        parent trial (a layer-wise search) given the parent's trained model too, since a worker
        never reads the store."""
        parent = trial.params.get(PARENT)
        if parent is None or not isinstance(self.objective, ConfigObjective):
            return trial.number, trial.params, trial.seed
        if parent not in self.parents:
            if len(self.parents) >= 8:
                self.parents.clear()
            self.parents[parent] = self.store.model(self.record, parent)
        if self.parents[parent] is None:
            raise ConfigError(f"study {self.record.name!r}: trial {trial.number} builds on trial {parent}, whose "
                              "trained levels the store no longer holds; start the study again under another name.")
        return trial.number, {**trial.params, PARENT_MODEL: self.parents[parent]}, trial.seed

    def _next_trials(self, queue: list[Trial], n: int) -> list[tuple[Trial, bool]]:
        """Up to n (trial, is a re-run): interrupted trials first, then new ones from the
        strategy."""
        batch = []
        while len(batch) < n:
            if queue:
                old = queue.pop(0)
                batch.append((Trial(old.number, old.params, "running", seed=old.seed, started=time.time()), True))
                continue
            if self.next_number >= self.total or self.strategy.exhausted:
                break
            params = self.strategy.ask(self.next_number)
            if params is None:
                break
            batch.append((Trial(self.next_number, params, "running", seed=trial_seed(self.seed, self.next_number),
                                started=time.time()), False))
            self.next_number += 1
        return batch

    def _record(self, trial: Trial, outcome, running: int) -> None:
        if outcome.status == "interrupted":
            outcome = self._died(trial, outcome)
            if outcome is None:
                self._report(running, [])
                return
        trial.status, trial.value, trial.curve = outcome.status, outcome.value, outcome.curve
        trial.error, trial.ended = outcome.error, time.time()
        if trial.status in ("complete", "diverged") and not self.strategy.final(trial.params):
            if trial.status == "diverged":
                trial.error = "diverged: scored at its best point before"
            trial.status = "pretrained"        # a level to build on, not a candidate for the best
        kept = trial.status == "pretrained"
        if trial.ranked:
            bisect.insort(self.ranks, trial.rank)
            kept = not self.keep or self.ranks.index(trial.rank) < self.keep   # among the K best: its model stays
        self.store.finish_trial(self.record, trial, outcome.model if kept else None, keep=self.keep,
                                stats=outcome.statistics)
        self.counts[trial.status] = self.counts.get(trial.status, 0) + 1
        known = len(self.history)
        self.strategy.tell(trial.number, trial.params, trial.value if trial.status != "failed" else None,
                           self._heard(trial))
        if len(self.history) > known and self.pruning.active:
            self.pool.tell(trial.number, self.history[-1])
        self.store.drop_models(self.record, self.strategy.released_models())
        events = []
        for e in self.border.after_tell():
            self.record.settings["expansions"].append(e.__dict__)
            self.record.space = self.strategy.space.to_dict()
            self.store.update_study(self.record)
            events.append(f"{e.knob}: best value near the {e.side} edge; interval widened from "
                          f"[{e.old[0]:g}, {e.old[1]:g}] to [{e.new[0]:g}, {e.new[1]:g}]")
        self._report(running, events)

    def _died(self, trial: Trial, outcome):
        """A trial whose worker process died is not a bad configuration: it is recorded as
        interrupted and re-run, unless its worker died DEATHS times; then the failed outcome."""
        deaths = self.deaths[trial.number] = self.deaths.get(trial.number, 0) + 1
        if deaths >= DEATHS:
            return replace(outcome, status="failed", error=f"{outcome.error}, {deaths} times: the trial is not "
                           "re-run again (it may need more memory than the machine has; lower its size or "
                           "the population, or set --memory-limit)")
        trial.status, trial.value, trial.ended = "interrupted", None, time.time()
        trial.error = f"{outcome.error}; re-run"
        self.store.finish_trial(self.record, trial)
        self.queue.append(trial)
        return None

    def _report(self, running: int, events: list[str]) -> None:
        if self.progress is not None:
            done = sum(self.counts.values())
            self.progress(Progress(done, self.counts.get("failed", 0), running, self.total,
                                   self.ranks[0][0] if self.ranks else None,
                                   time.perf_counter() - self.start, events, self.counts.get("pruned", 0)))


class _Measurement:
    """``fn()`` run in a thread, so the workers train while the schedule is measured."""

    def __init__(self, fn):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self._value = fn()
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()

    def result(self):
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value

