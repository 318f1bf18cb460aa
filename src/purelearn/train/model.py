"""A trained network ready for raw inputs: its architecture, its parameters, the preprocessing
fitted on its training split (§3.2) and its class labels travel together, so predictions on
data as loaded are right, in this process or from a file in another."""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..data.preprocess import Step, apply_steps
from ..errors import DataError, PurelearnError
from ..nn import FAMILIES, MLP, example_errors, family_of

FORMAT = "purelearn.model/1"


@dataclass
class Model:
    """spec: the checked architecture (of any family). params: an MLP's ``W{l}`` [fan_out, fan_in]
    and ``b{l}`` [1, fan_out] (each family names its own). preprocessing: the fitted steps,
    applied in order to raw inputs. classes: the label of each output class (None: class k is
    label k). n_inputs: the raw inputs' width."""

    spec: object
    params: dict
    preprocessing: list
    classes: tuple | None
    n_inputs: int

    def inputs(self, X) -> np.ndarray:
        """Raw inputs [n, n_inputs] through the fitted preprocessing."""
        X = np.asarray(X.numpy() if isinstance(X, torch.Tensor) else X)
        if X.ndim == 1 and X.size == self.n_inputs:
            X = X[None]
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise DataError(f"the model takes raw inputs of {self.n_inputs} features as [examples, features], "
                            f"got shape {X.shape}.")
        if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X).all():
            raise DataError("the inputs must be finite numbers (no NaN or inf).")
        return apply_steps(self.preprocessing, X.astype(np.float32), "new")

    def scores(self, X) -> torch.Tensor:
        """The family's outputs [n, k] for raw inputs X [n, d]: an MLP's output pre-activations,
        an auto-encoder's reconstruction (of the preprocessed inputs)."""
        return family_of(self.spec).predict(self.spec, self.params, self.inputs(X))

    def encode(self, X) -> np.ndarray:
        """The representation [n, H] of raw inputs: the top hidden layer, an auto-encoder's code."""
        return family_of(self.spec).encode(self.spec, self.params, self.inputs(X)).numpy()

    def predict(self, X) -> np.ndarray:
        """Class labels (softmax), 0/1 labels (sigmoid) or values (linear) for raw inputs; an
        auto-encoder's reconstruction."""
        z = self.scores(X)
        if not isinstance(self.spec, MLP):
            return z.numpy()
        if self.spec.output == "softmax":
            codes = z.argmax(-1).numpy()
            return codes if self.classes is None else np.asarray(self.classes)[codes]
        return (z > 0).float().numpy() if self.spec.output == "sigmoid" else z.numpy()

    def error(self, X, y=None) -> float:
        """The mean validation criterion on raw inputs X and targets y as loaded (labels for
        classification: a label the model never saw counts as an error); for a family that learns
        its own input, the mean reconstruction error of X (clean, y unused)."""
        family = family_of(self.spec)
        if not family.supervised:
            x = torch.as_tensor(self.inputs(X))
            with torch.no_grad():
                return float(family.loss(self.spec, self.params, x, None).mean())
        z = self.scores(X).unsqueeze(0)
        if self.spec.output != "softmax":
            return float(example_errors(self.spec.output, z, torch.as_tensor(np.asarray(y, np.float32))).mean())
        return float((self.predict(X) != np.asarray(y)).mean())

    # ---- a file of its own ---------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as bytes ``torch.load(..., weights_only=True)`` reads (tensors and plain values)."""
        state = {"format": FORMAT, "spec": {"family": self.spec.family, **_plain(asdict(self.spec))},
                 "params": self.params,
                 "n_inputs": self.n_inputs, "classes": None if self.classes is None else list(self.classes),
                 "preprocessing": [{"name": s.name, "arg": s.arg,
                                    "state": {k: torch.as_tensor(np.asarray(v)) for k, v in s.state.items()}}
                                   for s in self.preprocessing]}
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the model") -> "Model":
        try:
            state = read_state(data, FORMAT)
            spec = dict(state["spec"])
            kind = FAMILIES[spec.pop("family", "mlp")].spec
            if isinstance(spec.get("hidden"), list):
                spec["hidden"] = tuple(spec["hidden"])
            steps = [Step(s["name"], s["arg"], {k: v.numpy() for k, v in s["state"].items()})
                     for s in state["preprocessing"]]
            classes = state["classes"]
            return cls(kind(**spec), state["params"], steps,
                       None if classes is None else tuple(classes), int(state["n_inputs"]))
        except Exception as e:  # any unreadable content is the same error to a user
            raise PurelearnError(f"{source} is not a purelearn model this version reads ({type(e).__name__}: "
                                 f"{str(e)[:200]}).") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` whole or not at all (never through a symbolic link)."""
        from ..files import write_atomic

        write_atomic(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Model":
        try:
            data = open(path, "rb").read()
        except OSError as e:
            raise PurelearnError(f"can't read the model file {str(path)!r} ({e.strerror}).") from None
        return cls.from_bytes(data, f"{str(path)!r}")


def read_state(data: bytes, format: str) -> dict:
    """The tensors and plain values of bytes written as ``format``; nothing else is read (no
    code in a file runs). A ValueError (or torch's) for anything else."""
    state = torch.load(io.BytesIO(data), weights_only=True)
    if not isinstance(state, dict) or state.get("format") != format:
        raise ValueError(f"format {state.get('format') if isinstance(state, dict) else None!r}")
    return state


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
