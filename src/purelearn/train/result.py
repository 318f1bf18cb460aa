"""What training a member leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..nn.mlp import predict_scores
from .hyper import Member

STOP_REASONS = ("patience", "budget", "diverged")


@dataclass
class Result:
    """One member's outcome: the best validation point (not the last) and its parameters.

    ``curve`` has one row per validation: examples_seen, train_loss (mean over the interval),
    valid_loss, valid_error, seconds. ``stopped_because`` is 'patience', 'budget' or 'diverged'.
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

    @property
    def diverged(self) -> bool:
        return self.stopped_because == "diverged"

    def scores(self, X) -> torch.Tensor:
        """Output pre-activations of the kept (best) parameters for inputs X [n, d]."""
        return predict_scores(self.params, X, self.member.model.activation)

    def predict(self, X) -> np.ndarray:
        """Class indices (softmax), 0/1 labels (sigmoid) or values (linear)."""
        z = self.scores(X)
        output = self.member.model.output
        if output == "softmax":
            return z.argmax(-1).numpy()
        return (z > 0).float().numpy() if output == "sigmoid" else z.numpy()

    def summary(self) -> dict:
        return {"best_valid_error": self.best_valid_error, "best_valid_loss": self.best_valid_loss,
                "examples_seen_at_best": self.examples_seen_at_best, "examples_seen": self.examples_seen,
                "stopped_because": self.stopped_because, "seconds": round(self.seconds, 3)}
