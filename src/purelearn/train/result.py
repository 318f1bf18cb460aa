"""What training a member leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .hyper import Member
from .model import Model

STOP_REASONS = ("patience", "budget", "diverged", "pruned")


@dataclass
class Result:
    """One member's outcome: the best validation point (not the last) and its parameters.

    ``curve`` has one row per validation: examples_seen, train_loss (mean over the interval),
    valid_loss, valid_error, seconds. ``stopped_because`` is 'patience', 'budget', 'diverged' or
    'pruned' (``note`` then says by which rule, §3.3.1).
    """

    member: Member
    best_valid_error: float
    best_valid_loss: float
    examples_seen_at_best: int
    examples_seen: int
    stopped_because: str
    seconds: float
    curve: list[dict] = field(default_factory=list, repr=False)
    params: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    preprocessing: list = field(default_factory=list, repr=False)   # fitted on the training split
    classes: tuple | None = None
    n_inputs: int | None = None
    statistics: object | None = field(default=None, repr=False)   # ``train.monitor.Statistics``, when monitored
    note: str | None = None

    @property
    def diverged(self) -> bool:
        return self.stopped_because == "diverged"

    @property
    def model(self) -> Model:
        """The kept (best) network with its preprocessing and labels, for raw inputs."""
        n_inputs = self.n_inputs if self.n_inputs is not None else self.params["W0"].shape[1]
        return Model(self.member.model, self.params, self.preprocessing, self.classes, n_inputs)

    def scores(self, X) -> torch.Tensor:
        """Output pre-activations of the kept parameters for raw inputs X [n, d]."""
        return self.model.scores(X)

    def predict(self, X) -> np.ndarray:
        """Class labels (softmax), 0/1 labels (sigmoid) or values (linear) for raw inputs X,
        through the preprocessing fitted on the training split."""
        return self.model.predict(X)

    def summary(self) -> dict:
        return {"best_valid_error": self.best_valid_error, "best_valid_loss": self.best_valid_loss,
                "examples_seen_at_best": self.examples_seen_at_best, "examples_seen": self.examples_seen,
                "stopped_because": self.stopped_because, "seconds": round(self.seconds, 3)}
