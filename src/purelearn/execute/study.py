"""A study in its store: its trials, its best trial, the analyses of §3.4 and the test split
read once (§3)."""

from __future__ import annotations

import functools

from ..config import Config, flatten
from ..errors import ConfigError, PurelearnError, TestSetError
from ..search import Expansion, border_warnings, efficiency_curve, plateau
from ..search.parse import parse_space
from ..store import Store, StudyRecord, Trial, best_trial
from ..train import Model
from ..train.stack import load_model
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
        return [t for t in self.trials if t.ranked]

    def searched(self) -> list[Trial]:
        """What the efficiency curve counts: the finished trials and the pruned ones, each
        pruned trial at its best validation error before it stopped (§3.3.1; more training
        could only have lowered it, so the curve errs on the pessimistic side)."""
        return [t for t in self.trials if t.ranked or (t.status == "pruned" and t.value is not None)]

    @property
    def best(self) -> Trial | None:
        """The lowest value, the lowest number among ties (``Trial.rank``, the rule the driver
        keeps the best model by)."""
        return best_trial(self.trials)

    def best_model(self) -> Model:
        """The best trial's trained network with its preprocessing: ``predict`` takes raw inputs."""
        best = self.best
        if best is None:
            raise ConfigError(f"study {self.name!r} has no finished trial yet.")
        saved = self.store.model(self.record, best.number)
        if saved is None:
            held = self.store.best_model(self.record)
            held = "no model" if held is None else f"trial {held[0]}'s model"
            raise PurelearnError(f"study {self.name!r}: the store holds {held}, not that of the best trial "
                                 f"{best.number}; a run of this version saves it (run the study again, "
                                 "with more trials).")
        return Model.from_bytes(saved, f"the model of study {self.name!r}")

    def models(self) -> dict[int, Model]:
        """The trained models the store keeps (of the ``keep_models`` best trials, or in a
        layer-wise search the levels that may still be built on), by trial number, best first."""
        return {n: load_model(data, f"the model of trial {n} of study {self.name!r}")
                for n, data in self.store.models(self.record)}

    def statistics(self, number: int):
        """Trial ``number``'s layers' statistics (``train.monitor.Statistics``), or None when it
        was not monitored (``train.monitor``)."""
        from ..train.monitor import Statistics

        data = self.store.statistics(self.record, number)
        if data is None:
            return None
        try:
            return Statistics.from_bytes(data)
        except Exception as e:  # any unreadable content is the same error to a user
            raise PurelearnError(f"the statistics of trial {number} of study {self.name!r} are not in a form this "
                                 f"version reads ({type(e).__name__}).") from None

    def efficiency_curve(self) -> list[dict]:
        return efficiency_curve([t.value for t in self.searched()])

    def plateau(self) -> dict:
        if self.record.strategy == "layerwise":
            return {"plateau": None, "gain_from_last_doubling": None,
                    "message": "a layer-wise search builds each level on the best below it: its trials are not "
                               "independent draws, so no efficiency curve says whether more would pay."}
        searched = self.searched()
        said = plateau([t.value for t in searched])
        pruned = sum(t.status == "pruned" for t in searched)
        if pruned:
            said["message"] += f" ({pruned} pruned trials counted at their best before they stopped.)"
        return said

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
        """The selected model's error on the test split, read once per study (§3). A second
        evaluation is refused unless ``force``, and a forced one is recorded as such."""
        self.test_unread(force)
        cfg, best, model = self.best_config(), self.best, self.best_model()
        splits = cfg.data.splits()
        if model.n_inputs != splits.input_features:
            raise PurelearnError(f"study {self.name!r}: the best model takes {model.n_inputs} inputs, but its data "
                                 f"{cfg.data.name!r} now has {splits.input_features}; was the data file changed?")
        X, y = splits.read_test()
        value = model.error(X, y)
        self.record_test(best.number, value)
        return value

    def test_unread(self, force: bool = False) -> None:
        """Refuse, unless ``force``, when the study has read its test split before."""
        previous = self.store.test_evaluations(self.record)
        if previous and not force:
            raise TestSetError(f"study {self.name!r} already read its test split (error {previous[0]['value']:.4f}). "
                               "Evaluating again after seeing it biases the estimate; use --force to do it anyway.")

    def record_test(self, number: int, value: float) -> None:
        """Record a reading of the test split (of trial ``number``'s model, or a committee
        chosen from it); a reading after another is marked forced."""
        forced = bool(self.store.test_evaluations(self.record))
        self.store.add_test_evaluation(self.record, number, value, forced=forced)
