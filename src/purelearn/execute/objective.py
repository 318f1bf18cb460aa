"""What a trial computes: a config trained with the population engine, or a user's function."""

from __future__ import annotations

import math
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, PurelearnError
from ..nn.family import family_of

_UNITS_K = re.compile(r"^model\.units_(\d+)$")


@dataclass
class Outcome:
    """A finished trial as a worker hands it back to the driver."""

    status: str                      # complete, failed, diverged, or interrupted (its worker died)
    value: float | None = None
    curve: list = field(default_factory=list)
    error: str | None = None
    model: bytes | None = None       # the trained model (``train.Model``), kept if it is the best


def apply_params(config: Config, params: dict, seed: int) -> Config:
    """The config with a trial's knobs set. Beyond config keys, ``model.layers`` (depth),
    ``model.units`` (width of every layer) and ``model.units_<k>`` (width of layer k, 1-based)
    build ``model.hidden``, so per-layer knobs can follow a sampled depth (§3.4)."""
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
    """The splits of a data spec."""
    return _once(_SPLITS, data_key(config), config.data.splits)


def _data(key: tuple, splits):
    """The splits on the training device for a (data spec, device, inputs left out, unlabeled
    inputs too) key (§5.1)."""
    from ..train import resolve_device
    from ..train.population import Data

    return _once(_DATA, key, lambda: Data(splits, resolve_device(key[1]), key[2], key[3]))


def _outcome(result) -> Outcome:
    value = result.best_valid_error if math.isfinite(result.best_valid_error) else None
    return Outcome("diverged" if result.diverged else "complete", value, result.curve, model=result.model.to_bytes())


@dataclass
class ConfigObjective:
    """Train the config with a trial's knobs applied; the value is the best validation error.

    A batch of trials trains as populations: trials that share data, structure and similar
    widths are members of one population (the driver sizes the batches), within
    ``memory_limit`` bytes each; a trial too large for it fails, saying so."""

    config: Config
    memory_limit: int | None = None

    def prepare(self) -> None:
        """Load the study's data before the first batch arrives (a worker does this while the
        driver measures the schedule). A failure waits for the batch, whose trials report it."""
        try:
            _splits(self.config)
        except PurelearnError:
            pass

    def _members(self, jobs):
        """(index, member, splits, data key, error) for each job [(number, params, seed)]: the
        error message, with the rest None, where the job's settings are refused."""
        from ..train import check_member
        from ..train.fit import learns_inputs, leaves_out_inputs

        for i, (number, params, seed) in enumerate(jobs):
            try:
                cfg = apply_params(self.config, params, seed)
                splits = _splits(cfg)
                member = check_member(cfg.member(), splits)
                yield i, member, splits, (data_key(cfg), cfg.device, leaves_out_inputs([member]),
                                          learns_inputs([member])), None
            except PurelearnError as e:
                yield i, None, None, None, f"{type(e).__name__}: {e}"

    def groups(self, jobs, size: int) -> list[list[int]]:
        """Indices of the jobs [(number, params, seed)] that train together as one population
        (at most ``size``), the most expensive group first: handed out in that order, the groups
        that finish last are small ones, and no worker idles long at the end. A job whose
        settings are refused is a group of its own (it fails alone, at once)."""
        from ..train.fit import populations, resolve_device, width_ratio
        from ..train.memory import footprint

        costs, by_data = [], {}
        for i, member, splits, key, error in self._members(jobs):
            if error:
                costs.append(([i], 0.0))
                continue
            shape = (splits.n_features, splits.n_outputs)
            cost = family_of(member.model).n_params(member.model, *shape) * member.train.max_epochs * len(splits.X_train)
            by_data.setdefault(key, []).append((i, member, cost, (splits.n_features, splits.n_outputs)))
        for (_, device, *_), group in by_data.items():
            shape = group[0][3]
            for part in populations([m for _, m, _, _ in group], size, width_ratio(resolve_device(device)),
                                    self.memory_limit, lambda m: footprint(m, *shape)):
                costs.append(([group[j][0] for j in part], sum(group[j][2] for j in part)))
        return [idx for idx, _ in sorted(costs, key=lambda g: -g[1])]

    def run_batch(self, jobs):
        """Yield (number, Outcome) for jobs [(number, params, seed)], each as soon as its trial
        stops; a trial whose settings are refused fails alone, at once."""
        from ..train import fit_iter

        groups: dict[tuple, list] = {}
        for i, member, splits, key, error in self._members(jobs):
            if error:
                yield jobs[i][0], Outcome("failed", error=error)
                continue
            groups.setdefault(key, []).append((jobs[i][0], member, splits))
        for key, group in groups.items():
            done = set()
            try:
                for j, result in fit_iter(group[0][2], [m for _, m, _ in group], data=_data(key, group[0][2]),
                                          memory_limit=self.memory_limit):
                    done.add(j)
                    yield group[j][0], _outcome(result)
            except Exception as e:  # the population broke: its unfinished trials fail, the study goes on
                for j, (number, _, _) in enumerate(group):
                    if j not in done:
                        yield number, Outcome("failed", error=f"{type(e).__name__}: {e}")


@dataclass
class FunctionObjective:
    """A user's ``objective(params, report) -> float``; ``report(examples_seen, valid_error,
    train_loss=None)`` records the learning curve."""

    fn: object

    def prepare(self) -> None:
        pass

    def groups(self, jobs, size: int) -> list[list[int]]:
        """A function's trials don't batch: each is a group of its own."""
        return [[i] for i in range(len(jobs))]

    def __call__(self, params: dict, seed: int) -> Outcome:
        curve = []

        def report(examples_seen, valid_error, train_loss=None):
            curve.append({"examples_seen": int(examples_seen), "valid_error": float(valid_error),
                          "train_loss": None if train_loss is None else float(train_loss)})

        value = float(self.fn(params, report))
        if math.isnan(value):
            return Outcome("failed", None, curve, "the objective returned NaN")
        return Outcome("complete", value if math.isfinite(value) else None, curve)

    def run_batch(self, jobs):
        for number, params, seed in jobs:
            yield number, run_trial(self, params, seed)


def run_trial(objective, params: dict, seed: int) -> Outcome:
    """Run one trial, turning any exception into a failed outcome with its message."""
    start = time.perf_counter()
    try:
        return objective(params, seed)
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
