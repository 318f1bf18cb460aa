"""Diagnosis of a learning curve (§4.1, §4.2): is a run's error high because the training
criterion could not be optimized (under-fitting), because the model learned its training set by
heart (over-fitting), or is it fine? "Comparing training error and test error [...] helps to
answer that question. Depending on the answer, of course, the appropriate ways to improve test
error are different" (§4.1); the curves of the average training and validation loss "differentiate
overfitting from poor optimization" (§4.2).

A curve is a run's rows {examples_seen, train_loss, valid_error, valid_loss, ...} (``Result.curve``,
a stored ``Trial.curve``). ``train_loss`` is the mean training criterion over the interval before
each validation, on the training minibatches; it is compared with the validation criterion in
the same units: ``valid_loss`` for a supervised network, the validation criterion ``valid_error``
for a family that learns its own input (the reconstruction for an RBM, whose training loss is its
reconstruction error, when its criterion is the pseudo-likelihood).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

# Fewer validations than this show no trend: the first is a mean over a run that has just
# started, and a rise or a fall needs two more points.
MIN_VALIDATIONS = 3
# The training criterion fell by less than this fraction of its first value: it "barely moved".
# A run whose rate is far too small, or stuck on a plateau, stays within a few percent; a run
# that learns falls by far more than half within a few epochs.
BARELY_FELL = 0.10
# The training criterion ends this many times above the lowest validation criterion: the
# optimizer does not fit data the model already does well on held out (training examples should
# be fitted at least as well as validation ones), e.g. a rate so large the criterion oscillates.
FAR_ABOVE = 2.0
# ...and by more than this fraction of where training started, so two tiny numbers (0.002 and
# 0.001, say) don't count as "far above".
FAR_ABOVE_OF_START = 0.05
# The validation criterion ends this fraction above its minimum: "clearly above", beyond the
# wobble of SGD between two validations on the same validation set.
CLEARLY_ROSE = 0.10
# ...while the training criterion fell at least this fraction below its value at the
# validation minimum: training kept falling while validation rose (§4.1's overfitting regime).
KEPT_FALLING = 0.10

VERDICTS = ("under-fitting", "over-fitting", "fine", "unknown")

UNDER_FITTING_REMEDIES = (
    ("§4.1", "rule out a bug first: `purelearn check` compares the gradients with finite differences and "
             "checks that a small training set can be fitted"),
    ("§3.1.1", "search the learning rate, the knob that matters most (`purelearn train --find-lr`, or "
               "train.lr on a log scale with `purelearn tune`): a criterion that barely falls says the rate "
               "is too small, one that oscillates above the validation loss or diverges says too large"),
    ("§3.1.1", "train longer: raise train.max_epochs (and train.patience) so the number of updates is not "
               "what limits the fit"),
    ("§3.2", "give the network more capacity: more hidden units (model.hidden); it is mostly important "
             "to choose n_h large enough"),
    ("§3.2", "if the inputs are not standardized, standardize them (data.preprocess = [\"standardize\"]): "
             "the usual learning rates assume inputs of unit scale"),
    ("§1.1", "initialize a deep network by greedy layer-wise unsupervised pre-training (a [pretrain] "
             "section): each layer then gets a local training signal, which §6.1 counts among what helps"),
)
OVER_FITTING_REMEDIES = (
    ("§3.1.1", "early stopping already keeps the parameters of the best validation point, not the last: "
               "the error reported is that point's, and a shorter train.patience only saves time"),
    ("§4.1", "collect more training data, the surest remedy for over-fitting"),
    ("§3.2", "regularize more: L1 weight decay (train.l1) or a sparsity penalty on the hidden units "
             "(train.sparsity), their coefficients searched on a log scale; L2 decay plays much the "
             "same role as early stopping"),
    ("§3.2", "reduce the capacity: fewer hidden units or layers (though with early stopping a larger "
             "n_h than optimal rarely hurts much)"),
    ("§1.1", "unsupervised pre-training on the inputs, unlabeled ones included (a [pretrain] section, "
             "data.labeled), regularizes the network it initializes"),
)
STILL_IMPROVING = ("§3.1.1", "the best validation point is the last one: a longer budget (train.max_epochs) "
                             "may lower the error further")


@dataclass
class Diagnosis:
    """What a learning curve says: ``verdict`` (under-fitting, over-fitting, fine or unknown),
    the numbers it was read from (``evidence``), the chapter's ``remedies`` as (section, text),
    and ``series``, the validation quantity the training criterion was compared with."""

    verdict: str
    evidence: dict = field(default_factory=dict)
    remedies: list = field(default_factory=list)
    series: str = ""
    reason: str = ""

    @property
    def text(self) -> str:
        """One paragraph: the verdict, its evidence and the remedies with their sections."""
        head = {"under-fitting": "under-fitting (an optimization difficulty)", "over-fitting": "over-fitting",
                "fine": "fine", "unknown": "not diagnosed"}[self.verdict]
        said = f"Diagnosis (§4.1): {head}: {self.reason}."
        if self.remedies:
            said += " " + " ".join(f"{text[0].upper()}{text[1:]} ({section})." for section, text in self.remedies)
        return said

    def summary(self) -> dict:
        """A JSON-ready dict (non-finite numbers written as null)."""
        return {"verdict": self.verdict, "series": self.series, "reason": self.reason,
                "evidence": {k: _finite(v) for k, v in self.evidence.items()},
                "remedies": [{"section": s, "text": t} for s, t in self.remedies]}

    def to_json(self) -> str:
        return json.dumps(self.summary())


def diagnose(curve) -> Diagnosis:
    """The diagnosis of a learning curve: a list of rows, or anything with a ``curve`` (a
    ``Result``, a stored ``Trial``)."""
    rows = list(getattr(curve, "curve", curve) or [])
    series = _series(rows[0]) if rows else ""
    if len(rows) < MIN_VALIDATIONS:
        return Diagnosis("unknown", {"validations": len(rows)}, series=series,
                         reason=f"{len(rows)} validation(s) are too few to show a trend (at least {MIN_VALIDATIONS})")
    train = [r.get("train_loss") for r in rows]
    if any(t is None for t in train):
        return Diagnosis("unknown", {"validations": len(rows)}, series=series,
                         reason="the curve has no training criterion to compare with the validation one")
    train, valid = [_number(t) for t in train], [_number(r.get(series)) for r in rows]
    if not all(math.isfinite(v) for v in train + valid):
        return Diagnosis("under-fitting", {"validations": len(rows), "examples_seen": rows[-1]["examples_seen"]},
                         [UNDER_FITTING_REMEDIES[1], UNDER_FITTING_REMEDIES[0]], series,
                         "the training or validation criterion became NaN or infinite: the run diverged")
    evidence = _evidence(rows, train, valid)
    return _verdict(evidence, series)


def _number(v) -> float:
    # a stored curve writes a non-finite number as null
    return math.nan if v is None else float(v)


def _series(row: dict) -> str:
    """The validation quantity in the training criterion's units."""
    if "valid_loss" in row:
        return "valid_loss"
    if "pseudo_likelihood" in row and "valid_reconstruction" in row:
        return "valid_reconstruction"
    return "valid_error"


def _evidence(rows: list[dict], train: list[float], valid: list[float]) -> dict:
    best = min(range(len(valid)), key=lambda i: (valid[i], i))
    errors = [float(r["valid_error"]) for r in rows if "valid_error" in r]
    e = {"validations": len(rows), "examples_seen": rows[-1]["examples_seen"],
         "train_first": train[0], "train_min": min(train), "train_last": train[-1],
         "train_fell": _fraction(train[0] - min(train), train[0]),
         "valid_first": valid[0], "valid_min": valid[best], "valid_last": valid[-1],
         "examples_at_valid_min": rows[best]["examples_seen"],
         "valid_rise": _fraction(valid[-1] - valid[best], valid[best]),
         "train_at_valid_min": train[best],
         "train_fell_after_valid_min": _fraction(train[best] - train[-1], train[best]),
         "train_over_valid_min": train[-1] / valid[best] if valid[best] > 0 else math.inf,
         "best_is_last": int(best == len(valid) - 1)}
    if errors and len(errors) == len(rows):
        e |= {"valid_error_min": min(errors), "valid_error_last": errors[-1]}
    return e


def _fraction(part: float, whole: float) -> float:
    if whole > 0:
        return part / whole
    return 0.0 if part == 0 else math.copysign(math.inf, part)


def _verdict(e: dict, series: str) -> Diagnosis:
    training = "the training criterion"
    if e["train_fell"] < BARELY_FELL:
        return Diagnosis("under-fitting", e, list(UNDER_FITTING_REMEDIES), series,
                         f"{training} fell by only {e['train_fell']:.1%} of its first value ({e['train_first']:.4g} "
                         f"to at best {e['train_min']:.4g}) over {e['examples_seen']:,} examples (less than "
                         f"{BARELY_FELL:.0%})")
    far = e["train_last"] - e["valid_min"] > FAR_ABOVE_OF_START * e["train_first"]
    if e["train_over_valid_min"] > FAR_ABOVE and far:
        return Diagnosis("under-fitting", e, list(UNDER_FITTING_REMEDIES), series,
                         f"{training} ends at {e['train_last']:.4g}, {e['train_over_valid_min']:.3g} times the lowest "
                         f"{series} {e['valid_min']:.4g} (more than {FAR_ABOVE:g} times): the training examples are "
                         f"fitted worse than held-out ones")
    if e["valid_rise"] > CLEARLY_ROSE and e["train_fell_after_valid_min"] >= KEPT_FALLING:
        return Diagnosis("over-fitting", e, list(OVER_FITTING_REMEDIES), series,
                         f"the {series} reached its minimum {e['valid_min']:.4g} after {e['examples_at_valid_min']:,} "
                         f"examples and ended at {e['valid_last']:.4g}, {e['valid_rise']:.0%} above it (more than "
                         f"{CLEARLY_ROSE:.0%}), while {training} kept falling from {e['train_at_valid_min']:.4g} to "
                         f"{e['train_last']:.4g} ({e['train_fell_after_valid_min']:.0%} lower)")
    if e["best_is_last"]:
        end = "was still falling at the end"
    elif e["valid_rise"] > CLEARLY_ROSE:
        end = (f"ended {e['valid_rise']:.0%} above it, but {training} fell only "
               f"{e['train_fell_after_valid_min']:.0%} meanwhile (not the over-fitting pattern)")
    else:
        end = f"ended {e['valid_rise']:.0%} above it (at most {CLEARLY_ROSE:.0%})"
    reason = (f"{training} fell by {e['train_fell']:.0%} of its first value (to {e['train_min']:.4g}); the {series} "
              f"reached {e['valid_min']:.4g} after {e['examples_at_valid_min']:,} examples and {end}")
    return Diagnosis("fine", e, [STILL_IMPROVING] if e["best_is_last"] else [], series, reason)


def _finite(v):
    return v if not isinstance(v, float) or math.isfinite(v) else None


__all__ = ["Diagnosis", "VERDICTS", "diagnose"]
