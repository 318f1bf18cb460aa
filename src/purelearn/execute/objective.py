"""What a trial computes: a config trained with the population engine, or a user's function."""

from __future__ import annotations

import hashlib
import math
import re
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, PurelearnError
from ..nn.family import family_of

_UNITS_K = re.compile(r"^model\.units_(\d+)$")


@dataclass
class Outcome:
    """A finished trial as a worker hands it back to the driver."""

    status: str                      # complete, failed, diverged, pruned, or interrupted (its worker died)
    value: float | None = None
    curve: list = field(default_factory=list)
    error: str | None = None
    model: bytes | None = None       # the trained model (``train.Model``), kept if it is the best
    statistics: bytes | None = None  # its layers' statistics (``train.monitor``), when monitored


def apply_params(config: Config, params: dict, seed: int) -> Config:
    """The config with a trial's knobs set. Beyond config keys, ``model.layers`` (depth),
    ``model.units`` (width of every layer) and ``model.units_<k>`` (width of layer k, 1-based)
    build ``model.hidden``, so per-layer knobs can follow a sampled depth (§3.4)."""
    from ..search.layerwise import PLACE

    params = {k: v for k, v in params.items() if k not in (*PLACE, PARENT_MODEL)}   # where, not what
    values = {k: v for k, v in params.items() if k not in ("model.layers", "model.units") and not _UNITS_K.match(k)}
    shape = {k: v for k, v in params.items() if k not in values}
    if shape:
        base = list(config.model.hidden) or [100]
        depth = int(shape.get("model.layers", len(base)))
        width = shape.get("model.units")
        hidden = [int(shape.get(f"model.units_{k + 1}", width if width is not None else base[min(k, len(base) - 1)]))
                  for k in range(depth)]
        values["model.hidden"] = hidden
    values.setdefault("train.seed", seed)
    return config.with_values(values)


def _once(cache: dict, key, make):
    """``make()`` once per process per key (a few keys kept): every trial of a study shares it."""
    if key not in cache:
        if len(cache) >= 4:
            cache.clear()
        cache[key] = make()
    return cache[key]


_SPLITS: dict = {}
_DATA: dict = {}


def data_key(config: Config) -> str:
    """What identifies a config's data: its spec, and for files their size and modification
    time, so a file edited on disk is read again."""
    files = [Path(p) for p in (config.data.name, config.data.labels) if p and Path(p).is_file()]
    return repr(config.data) + "".join(f"|{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def _splits(config: Config):
    """The splits of a data spec; with cross-validation (``data.folds``) the list of its folds'."""
    if not config.data.folds:
        return _once(_SPLITS, data_key(config), config.data.splits)
    spec = config.data
    return _once(_SPLITS, data_key(config), lambda: [replace(spec, fold=k).splits() for k in range(spec.folds)])


def first_fold(splits):
    """The splits themselves, or a cross-validation's first fold (what checks a member)."""
    return splits[0] if isinstance(splits, list) else splits


def _data(key: tuple, splits):
    """The splits on the training device for a (data spec, device, inputs left out, unlabeled
    inputs too) key (§5.1)."""
    from ..train import resolve_device
    from ..train.population import Data

    return _once(_DATA, key, lambda: Data(splits, resolve_device(key[1]), key[2], key[3]))


def _outcome(result) -> Outcome:
    value = result.best_valid_error if math.isfinite(result.best_valid_error) else None
    status = "diverged" if result.diverged else "pruned" if result.stopped_because == "pruned" else "complete"
    return Outcome(status, value, result.curve, error=result.note, model=result.model.to_bytes(),
                   statistics=_statistics(result))


def _statistics(result) -> bytes | None:
    return None if result is None or result.statistics is None else result.statistics.to_bytes()


PARENT_MODEL = "parent model"   # in a job's parameters: the trained levels its trial builds on (never stored)


@dataclass
class _Job:
    """A job as the objective trains it. member: what trains (None: refused, see error);
    splits: what it trains on (a level: the code of the levels below); key: jobs with equal
    keys train on the same data and may share a population; below: a level's trained levels
    under it; stack: the config of a trial that pre-trains and fine-tunes a whole stack;
    level: a level of a layer-wise search (its outcome holds its stack, scored by its probe);
    screen: the epochs a screened level trains (0: none, its initial weights are probed)."""

    member: object = None
    splits: object = None
    key: tuple | None = None
    error: str | None = None
    below: tuple = ()
    stack: Config | None = None
    level: bool = False
    screen: int | None = None


def _job(config: Config, params: dict, seed: int, number: int) -> _Job:
    """What one trial trains, checked; a refused one carries its error."""
    from ..search.layerwise import FINETUNE, LEVEL, SCREEN
    from ..train import check_member
    from ..train.fit import inputs_of
    from ..train.stack import Stack, encoded, finetuned

    level, parent = params.get(LEVEL), params.get(PARENT_MODEL)
    try:
        cfg = apply_params(config, params, seed)
        splits = _splits(cfg)
        if isinstance(splits, list):
            _check_folds(cfg, level)
            member = check_member(cfg.member(), splits[0])
            return _Job(member, splits, (data_key(cfg), cfg.device, *inputs_of([member])))
        if level is None and cfg.pretrain.levels:          # the whole stack in one trial
            for m in cfg.levels():
                check_member(m, splits)
            return _Job(check_member(cfg.member(), splits), splits, (f"stack {number}", cfg.device), stack=cfg)
        if level is None:
            member = check_member(cfg.member(), splits)
            return _Job(member, splits, (data_key(cfg), cfg.device, *inputs_of([member])))
        below = Stack.from_bytes(parent, "the parent trial's levels").levels if parent is not None else []
        if level == FINETUNE:
            member = finetuned(Stack(below), cfg.member(), splits)
            return _Job(member, splits, (data_key(cfg), cfg.device, *inputs_of([member])))
        digest = hashlib.sha1(parent).hexdigest() if parent is not None else None
        code = _once(_SPLITS, (data_key(cfg), digest), lambda: encoded(splits, below))
        member = check_member(cfg.levels()[level - 1], code)
        screen = params.get(SCREEN)
        if screen:
            member = replace(member, train=replace(member.train, max_epochs=screen))
        key = (f"{data_key(cfg)}|{digest}" + ("|untrained" if screen == 0 else ""), cfg.device, *inputs_of([member]))
        return _Job(member, code, key, below=tuple(below), level=True, screen=screen)
    except PurelearnError as e:
        return _Job(error=f"{type(e).__name__}: {e}")


def _check_folds(cfg: Config, level) -> None:
    if level is not None or cfg.pretrain.levels:
        raise ConfigError(f"data.folds = {cfg.data.folds}: cross-validation trains one network per fold; a "
                          "pre-trained stack or a layer-wise search selects on one validation split (data.folds = 0).")
    if cfg.train.monitor:
        raise ConfigError("train.monitor watches one network's layers: with data.folds there is one per fold; "
                          "monitor a single split (data.folds = 0), e.g. the selected configuration's `train`.")


def _cross_validated(results: list) -> Outcome:
    """A trial of K folds: its value is the mean of the folds' best validation errors, its curve
    the folds' mean over the validations every fold reached (``folds``: K), its model fold 0's."""
    if any(r.diverged for r in results) or not all(math.isfinite(r.best_valid_error) for r in results):
        status, value = "diverged", None
    else:
        status, value = "complete", sum(r.best_valid_error for r in results) / len(results)
    curves = [r.curve for r in results]
    curve = [{k: _across(k, [row[k] for row in rows]) for k in rows[0]} | {"folds": len(rows)} for rows in zip(*curves)]
    return Outcome(status, value, curve, model=results[0].model.to_bytes())


def _across(key: str, values: list):
    """One curve entry of K folds validated at the same point: the examples seen (the same in
    every fold), the longest time, the mean of the rest."""
    if key == "examples_seen":
        return values[0]
    return max(values) if key == "seconds" else sum(values) / len(values)


@dataclass
class ConfigObjective:
    """Train the config with a trial's knobs applied; the value is the best validation error.

    A batch of trials trains as populations: trials that share data, structure and similar
    widths are members of one population (the driver sizes the batches), within
    ``memory_limit`` bytes each; a trial too large for it fails, saying so. A level of a
    layer-wise search trains on the code of its parent's levels (computed once per parent),
    with the other candidates on the same parent; its value is its probe's validation error
    (or its own criterion with ``pretrain.probe = false``)."""

    config: Config
    memory_limit: int | None = None

    def prepare(self) -> None:
        """Load the study's data before the first batch arrives (a worker does this while the
        driver measures the schedule). A failure waits for the batch, whose trials report it."""
        try:
            _splits(self.config)
        except PurelearnError:
            pass

    def _jobs(self, jobs) -> list[_Job]:
        return [_job(self.config, params, seed, number) for number, params, seed in jobs]

    def groups(self, jobs, size: int) -> list[list[int]]:
        """Indices of the jobs [(number, params, seed)] that train together as one population
        (at most ``size``), the most expensive group first: handed out in that order, the groups
        that finish last are small ones, and no worker idles long at the end. A job whose
        settings are refused is a group of its own (it fails alone, at once)."""
        from ..train.fit import populations, resolve_device, width_ratio
        from ..train.memory import footprint

        costs, by_data = [], {}
        for i, job in enumerate(self._jobs(jobs)):
            if job.error:
                costs.append(([i], 0.0))
                continue
            folds = job.splits if isinstance(job.splits, list) else [job.splits]
            splits, member = folds[0], job.member
            shape = (splits.n_features, splits.n_outputs)
            cost = (family_of(member.model).n_params(member.model, *shape) * member.train.max_epochs
                    * len(splits.X_train) * len(folds))
            by_data.setdefault(job.key, []).append((i, member, cost, shape))
        for (_, device, *_), group in by_data.items():
            shape = group[0][3]
            for part in populations([m for _, m, _, _ in group], size, width_ratio(resolve_device(device)),
                                    self.memory_limit, lambda m: footprint(m, *shape)):
                costs.append(([group[j][0] for j in part], sum(group[j][2] for j in part)))
        return [idx for idx, _ in sorted(costs, key=lambda g: -g[1])]

    def run_batch(self, jobs, pruning=None):
        """Yield (number, Outcome) for jobs [(number, params, seed)], each as soon as its trial
        stops; a trial whose settings are refused fails alone, at once. ``pruning``: (a
        ``search.pruning.Pruning``, the curves of the study's finished trials), to stop hopeless
        trials against those and the batch's own (§3.3.1)."""
        from ..search.pruning import Pruner

        pruner = Pruner(*pruning) if pruning is not None and pruning[0].active else None
        groups: dict[tuple, list] = {}
        for (number, _, _), job in zip(jobs, self._jobs(jobs)):
            if job.error:
                yield number, Outcome("failed", error=job.error)
                continue
            groups.setdefault(job.key, []).append((number, job))
        for group in groups.values():
            done = set()
            try:
                for j, outcome in self._train(group, pruner):
                    done.add(j)
                    yield group[j][0], outcome
            except Exception as e:  # the population broke: its unfinished trials fail, the study goes on
                for j, (number, _) in enumerate(group):
                    if j not in done:
                        yield number, Outcome("failed", error=f"{type(e).__name__}: {e}")

    def _train(self, group, pruner=None):
        """(index in group, Outcome) as each trial of one data key stops."""
        from ..train import fit_iter
        from ..train.stack import train_stack

        first = group[0][1]
        if first.stack is not None:
            cfg = first.stack
            result = train_stack(first.splits, cfg.levels(), cfg.member(), device=cfg.device,
                                 probe_it=cfg.pretrain.probe)
            yield 0, _outcome(result.finetune)
        elif first.level:
            yield from self._levels(group)
        elif isinstance(first.splits, list):
            yield from self._folds(group)
        else:
            members = [replace(job.member, trial=number) for number, job in group]   # named to other workers
            for j, result in fit_iter(first.splits, members,
                                      data=_data(first.key, first.splits), memory_limit=self.memory_limit,
                                      pruner=pruner):
                yield j, _outcome(result)

    def _folds(self, group):
        """Trials of a cross-validation: a member per trial and fold, every fold's members in
        shared populations; a trial is handed back when its last fold stops."""
        from ..train import fit_iter

        first = group[0][1]
        K = len(first.splits)
        members = [replace(job.member, fold=k) for _, job in group for k in range(K)]
        results: dict[int, dict] = {}
        for i, result in fit_iter(first.splits, members, data=_data(first.key, first.splits),
                                  memory_limit=self.memory_limit):
            trial = results.setdefault(i // K, {})
            trial[i % K] = result
            if len(trial) == K:
                yield i // K, _cross_validated([trial[k] for k in range(K)])

    def _levels(self, group):
        """The candidates of one level on one parent's code, trained as one population (or,
        screened with 0 epochs, left at their initial weights), each scored by its probe (or
        its own criterion with ``pretrain.probe = false``) and handed back with its stack."""
        from ..train import fit_iter
        from ..train.stack import Stack, encoded, probe

        first = group[0][1]
        if first.screen == 0:
            family = family_of(first.member.model)
            shape = (first.splits.n_features, first.splits.n_outputs)
            results = ((j, None, family.init(job.member.model, *shape, job.member.train.seed))
                       for j, (_, job) in enumerate(group))
        else:
            results = ((j, r, r.params) for j, r in fit_iter(first.splits, [job.member for _, job in group],
                                                               data=_data(first.key, first.splits),
                                                               memory_limit=self.memory_limit))
        for j, result, params in results:
            job = group[j][1]
            stack = Stack(list(job.below)).add(job.member.model, params, job.splits)
            probed = self.config.pretrain.probe or job.screen is not None
            score = probe(encoded(job.splits, stack.levels[-1:])) if probed else result.best_valid_error
            value = score if score is not None and math.isfinite(score) else None
            diverged = result is not None and result.diverged
            yield j, Outcome("diverged" if diverged else "complete", value, [] if result is None else result.curve,
                             model=stack.to_bytes(), statistics=_statistics(result))


@dataclass
class FunctionObjective:
    """A user's ``objective(params, report) -> float``; ``report(examples_seen, valid_error,
    train_loss=None)`` records the learning curve (and, when the study prunes, may stop the
    trial by raising ``Pruned``)."""

    fn: object

    def prepare(self) -> None:
        pass

    def groups(self, jobs, size: int) -> list[list[int]]:
        """A function's trials don't batch: each is a group of its own."""
        return [[i] for i in range(len(jobs))]

    def __call__(self, params: dict, seed: int, pruner=None, number: int | None = None) -> Outcome:
        """One trial. With a ``pruner``, each ``report`` is judged against the study's other
        trials at the same examples seen (the warm-up by default: the first report) and raises
        ``search.pruning.Pruned`` when the rule stops the trial."""
        from ..search.pruning import Pruned, points

        curve = []

        def report(examples_seen, valid_error, train_loss=None):
            curve.append({"examples_seen": int(examples_seen), "valid_error": float(valid_error),
                          "train_loss": None if train_loss is None else float(train_loss)})
            if pruner is not None:
                seen, best = points(curve)
                previous = int(seen[-2]) if len(seen) > 1 else 0
                verdict, = pruner.judge(int(seen[-1]), previous, best[-1:], epoch=int(seen[0]), who=[number])
                if verdict is not None:
                    raise Pruned(verdict)

        try:
            value = float(self.fn(params, report))
        except Pruned as e:
            best = float(points(curve)[1][-1]) if curve else math.inf
            return Outcome("pruned", best if math.isfinite(best) else None, curve, str(e))
        if math.isnan(value):
            return Outcome("failed", None, curve, "the objective returned NaN")
        return Outcome("complete", value if math.isfinite(value) else None, curve)

    def run_batch(self, jobs, pruning=None):
        from ..search.pruning import Pruner

        pruner = Pruner(*pruning) if pruning is not None and pruning[0].active else None
        for number, params, seed in jobs:      # one per batch: the driver's curves are the history
            yield number, run_trial(self, params, seed, pruner, number)


def run_trial(objective, params: dict, seed: int, pruner=None, number: int | None = None) -> Outcome:
    """Run one trial, turning any exception into a failed outcome with its message."""
    start = time.perf_counter()
    try:
        return objective(params, seed, pruner, number)
    except PurelearnError as e:
        return Outcome("failed", error=f"{type(e).__name__}: {e}")
    except Exception as e:  # a trial's crash must not end the study (footnote 27)
        tb = traceback.format_exc(limit=-3)
        return Outcome("failed", error=f"{type(e).__name__}: {e} after {time.perf_counter() - start:.1f} s\n{tb}")


def as_objective(objective):
    if isinstance(objective, Config):
        return ConfigObjective(objective)
    if isinstance(objective, (ConfigObjective, FunctionObjective)):
        return objective
    if callable(objective):
        return FunctionObjective(objective)
    raise ConfigError(f"objective must be a Config or a function objective(params, report), got {objective!r}.")
