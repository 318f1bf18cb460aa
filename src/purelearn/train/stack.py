"""Greedy layer-wise pre-training and supervised fine-tuning (§1.1), with a linear probe on
each level's representation (§3.3.4).

Level 1 (an auto-encoder or RBM) trains on the inputs, labeled and unlabeled; level L on the
representation of the levels below it, computed once for the whole level (not per minibatch).
Each level's representation is scored by a logistic regression trained on the labeled training
split and scored on validation: a cheap supervised signal of what the level is worth. The
fine-tuned network is an MLP whose hidden layers start as the levels' encoders, with a new
output layer drawn from its seed, trained on the labeled examples only.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import ConfigError, PurelearnError
from ..nn import family_of
from .fit import check_member, fit
from .hyper import Member
from .model import Model, read_state
from .result import Result

FORMAT = "purelearn.stack/1"
CHUNK = 4096            # examples encoded at a time: the representation of 60,000 inputs fits anyway


class Stack:
    """Trained levels, level 1 first, with the preprocessing their inputs go through: a
    representation of raw inputs (``encode``) and what a deeper level or a fine-tuned network
    starts from. ``levels``: one :class:`Model` per level (level 1's holds the preprocessing and
    takes raw inputs; each one above takes the code of the one below)."""

    def __init__(self, levels: list[Model]):
        self.levels = list(levels)

    def add(self, spec, params: dict, splits) -> "Stack":
        """This stack with one more level on top (``splits``: what the new level trained on)."""
        first = not self.levels
        preprocessing = splits.steps if first else []
        n_inputs = splits.input_features if first else splits.n_features
        return Stack([*self.levels, Model(spec, params, preprocessing, None, n_inputs)])

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(m.spec.hidden for m in self.levels)

    def encode(self, X) -> np.ndarray:
        """The top level's representation [n, H] of raw inputs [n, d]."""
        h = self.levels[0].inputs(X)
        return encode_through(self.levels, h)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "levels": [m.to_bytes() for m in self.levels]}, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the stack") -> "Stack":
        try:
            state = read_state(data, FORMAT)
            return cls([Model.from_bytes(b, f"level {n + 1} of {source}") for n, b in enumerate(state["levels"])])
        except PurelearnError:
            raise
        except Exception as e:  # any unreadable content is the same error to a user
            raise PurelearnError(f"{source} is not a purelearn stack this version reads ({type(e).__name__}: "
                                 f"{str(e)[:200]}).") from None


def load_model(data: bytes, source: str = "the model") -> Model | Stack:
    """A stored model: a network (:class:`Model`) or pre-trained levels (:class:`Stack`)."""
    try:
        read_state(data, FORMAT)
    except Exception:  # not a stack: read as a model, or refused with the reason
        return Model.from_bytes(data, source)
    return Stack.from_bytes(data, source)


def encode_through(levels: list[Model], X: np.ndarray) -> np.ndarray:
    """Preprocessed inputs X through each level's encoder in turn, in chunks."""
    out = []
    for s in range(0, len(X), CHUNK):
        h = torch.as_tensor(X[s:s + CHUNK], dtype=torch.float32)
        for m in levels:
            h = family_of(m.spec).encode(m.spec, m.params, h)
        out.append(h.numpy())
    return np.concatenate(out) if out else np.zeros((0, levels[-1].spec.hidden), np.float32)


def encoded(splits, levels: list[Model]):
    """``splits`` (preprocessed) in the representation of ``levels``: what the next level trains
    on, computed once. The test split is not carried: it is read once, by a finished model."""
    if not levels:
        return splits
    unlabeled = splits.X_unlabeled
    return replace(splits, X_train=encode_through(levels, splits.X_train),
                   X_valid=encode_through(levels, splits.X_valid), _test=None, steps=[], input_features=None,
                   X_unlabeled=None if unlabeled is None else encode_through(levels, unlabeled))


def probe(splits) -> float | None:
    """The validation error of a linear read-out of ``splits``' inputs (a level's code), trained
    on the labeled training split: a multinomial logistic regression (L-BFGS) for classes, the
    mean squared error of ridge regression for values; None for multi-label targets."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    if splits.task == "classification":
        if len(np.unique(splits.y_train)) < 2:
            return float(np.mean(splits.y_valid != splits.y_train[0]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # a read-out, not a model to publish
            clf = LogisticRegression(max_iter=300).fit(splits.X_train, splits.y_train)
        return float(np.mean(clf.predict(splits.X_valid) != splits.y_valid))
    if splits.task == "regression":
        pred = Ridge().fit(splits.X_train, splits.y_train).predict(splits.X_valid)
        return float(np.mean((pred - splits.y_valid) ** 2))
    return None


@dataclass
class Level:
    """One pre-trained level: its training result (criterion, curve, parameters), the probe's
    validation error on its representation, and the seconds it took (training, encoding, probe)."""

    number: int
    result: Result
    probe_error: float | None
    seconds: float

    def summary(self) -> dict:
        r = self.result
        return {"level": self.number, "family": r.member.model.family, "hidden": r.member.model.hidden,
                "criterion": r.best_valid_error, "probe_error": self.probe_error,
                "examples_seen": r.examples_seen, "examples_seen_at_best": r.examples_seen_at_best,
                "stopped_because": r.stopped_because, "seconds": round(self.seconds, 3)}


def train_level(splits, below: list[Model], member: Member, *, device="cpu", probe_it: bool = True,
                progress=None, inputs=None) -> tuple[Level, Model, object]:
    """Train one level on the representation of ``below`` (``inputs``: that representation,
    if already computed). Returns the level, its model, and the splits in its representation."""
    start = time.perf_counter()
    inputs = inputs if inputs is not None else encoded(splits, below)
    result = fit(inputs, member, device=device, progress=progress)
    model = Stack(below).add(result.member.model, result.params, inputs if below else splits).levels[-1]
    code = encoded(inputs, [model])
    error = probe(code) if probe_it else None
    return Level(len(below) + 1, result, error, time.perf_counter() - start), model, code


def pretrain(splits, levels: list[Member], *, device="cpu", probe_it: bool = True, progress=None,
             announce=None) -> tuple[Stack, list[Level]]:
    """Train ``levels`` greedily, each on the code of the ones below (§1.1). ``announce(text)``
    hears a line as each level starts and ends; ``progress`` is each level's training progress."""
    models, done, inputs = [], [], splits
    for n, member in enumerate(levels, 1):
        if announce:
            announce(_describe(n, len(levels), member, inputs))
        level, model, inputs = train_level(splits, models, member, device=device, probe_it=probe_it,
                                           progress=progress, inputs=inputs)
        models.append(model)
        done.append(level)
        if announce:
            probe_text = "" if level.probe_error is None else f", probe error {level.probe_error:.4f}"
            announce(f"level {n}: validation criterion {level.result.best_valid_error:.4f}{probe_text} "
                     f"after {level.result.examples_seen:,} examples in {level.seconds:.1f} s")
    return Stack(models), done


def _describe(n: int, total: int, member: Member, inputs) -> str:
    unlabeled = 0 if inputs.X_unlabeled is None else len(inputs.X_unlabeled)
    extra = f" ({unlabeled:,} of them unlabeled)" if unlabeled else ""
    return (f"level {n}/{total}: a {inputs.n_features}-{member.model.hidden} {member.model.family} on "
            f"{len(inputs.X_train) + unlabeled:,} inputs{extra}")


def finetuned(stack: Stack, member: Member, splits) -> Member:
    """The network to fine-tune: ``member`` (an MLP whose hidden layers are the levels' codes)
    starting from the levels' encoders, its output layer drawn from its seed."""
    checked = check_member(member, splits)
    spec = checked.model
    if tuple(spec.hidden) != stack.widths:
        raise ConfigError(f"the fine-tuned network's hidden layers {list(spec.hidden)} don't match the "
                          f"pre-trained levels' widths {list(stack.widths)}.")
    start = family_of(spec).init(spec, splits.n_features, splits.n_outputs, checked.train.seed)
    for l, level in enumerate(stack.levels):
        start[f"W{l}"], start[f"b{l}"] = level.params["W0"], level.params["b0"]
    return replace(checked, start=start)


@dataclass
class StackResult:
    """Pre-training then fine-tuning: each level, and the fine-tuned network's result (whose
    ``model`` predicts raw inputs)."""

    levels: list[Level]
    finetune: Result
    stack: Stack

    def summary(self) -> dict:
        return {"levels": [lv.summary() for lv in self.levels], "finetune": self.finetune.summary()}


def train_stack(splits, levels: list[Member], finetune: Member, *, device="cpu", probe_it: bool = True,
                progress=None, announce=None) -> StackResult:
    """Pre-train ``levels`` greedily, then fine-tune ``finetune`` on top of them with the labels."""
    stack, done = pretrain(splits, levels, device=device, probe_it=probe_it, progress=progress, announce=announce)
    member = finetuned(stack, finetune, splits)
    if announce:
        sizes = "-".join(map(str, family_of(member.model).sizes(member.model, splits.n_features, splits.n_outputs)))
        announce(f"fine-tuning the {sizes} network on {len(splits.X_train):,} labeled examples")
    return StackResult(done, fit(splits, member, device=device, progress=progress), stack)
