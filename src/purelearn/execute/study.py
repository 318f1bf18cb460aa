"""A study in its store: its trials, its best trial, the analyses of §3.4 and the test split
read once (§3)."""

from __future__ import annotations

import functools

import torch

from ..config import Config, flatten
from ..errors import ConfigError, PurelearnError, TestSetError
from ..search import Expansion, border_warnings, efficiency_curve, plateau
from ..search.parse import parse_space
from ..store import Store, StudyRecord, Trial
from .objective import apply_params

class Study:
    """A study in its store: its trials, its best trial and the analyses of §3.4.

    The trials are read once, when first asked for: a Study is a snapshot (``tune`` returns a
    new one after each run)."""

    def __init__(self, store: Store, record: StudyRecord):
        self.store, self.record = store, record
        self.schedule: str | None = None          # how the last run batched its trials

    @property
    def name(self) -> str:
        return self.record.name

    @functools.cached_property
    def trials(self) -> list[Trial]:
        return self.store.trials(self.record)

    def finished(self) -> list[Trial]:
        """Trials with a value, in the order they were numbered."""
        return [t for t in self.trials if t.status in ("complete", "diverged") and t.value is not None]

    @property
    def best(self) -> Trial | None:
        done = self.finished()
        return min(done, key=lambda t: (t.value, t.number)) if done else None

    def efficiency_curve(self) -> list[dict]:
        return efficiency_curve([t.value for t in self.finished()])

    def plateau(self) -> dict:
        return plateau([t.value for t in self.finished()])

    def warnings(self) -> list[str]:
        space = parse_space(self.record.space)
        expansions = [Expansion(**e) for e in self.record.settings.get("expansions", [])]
        return border_warnings(space, [(t.params, t.value) for t in self.finished()], expansions)

    def config(self) -> Config | None:
        data = self.record.settings.get("config")
        return None if data is None else Config().with_values(flatten(data))

    def best_config(self) -> Config:
        best = self.best
        if best is None:
            raise ConfigError(f"study {self.name!r} has no finished trial yet.")
        base = self.config()
        if base is None:
            raise ConfigError(f"study {self.name!r} searched a Python function; it has no config to export.")
        return apply_params(base, best.params, best.seed)

    def evaluate_test(self, force: bool = False) -> float:
        """The selected configuration's error on the test split, read once per study (§3). A
        second evaluation is refused unless ``force``, and a forced one is recorded as such."""
        previous = self.store.test_evaluations(self.record)
        if previous and not force:
            raise TestSetError(f"study {self.name!r} already read its test split (error {previous[0]['value']:.4f}). "
                               "Evaluating again after seeing it biases the estimate; use --force to do it anyway.")
        cfg, best = self.best_config(), self.best
        path = self.store.weights_path(self.record)
        if not path.exists():
            raise PurelearnError(f"the best trial's parameters are missing ({path}); re-run the study.")
        from ..nn import example_errors, predict_scores

        params = torch.load(path, weights_only=True)
        splits = cfg.data.splits()
        model = cfg.model.checked(splits.task)
        sizes = model.sizes(splits.n_features, splits.n_outputs)
        if [tuple(params.get(f"W{l}", torch.empty(0)).shape) for l in range(len(sizes) - 1)] != list(
                zip(sizes[1:], sizes[:-1])):
            raise PurelearnError(f"the best trial's parameters ({path}) don't have the shapes of a "
                                 f"{'-'.join(map(str, sizes))} network with [fan_out, fan_in] weights; "
                                 "they were written by another version of purelearn. Re-run the study.")
        X, y = splits.read_test()
        z = predict_scores(params, X, model.activation).unsqueeze(0)
        ytorch = torch.as_tensor(y) if model.output == "softmax" else torch.as_tensor(y, dtype=torch.float32)
        value = float(example_errors(model.output, z, ytorch).mean())
        self.store.add_test_evaluation(self.record, best.number, value, forced=bool(previous))
        return value
