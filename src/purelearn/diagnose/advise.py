"""Advice on a config or a study from the chapter's recommendations (§3-§3.4): each rule reads
the config, its search space and, for a study, its trials and test reads, and says what the
chapter would change, citing the section that says so, with the values it judged by.

A config is judged before anything runs (its ``[search]`` section and space too, when it has
them); a study adds what only results show: a best value on an interval's edge, knobs tried at too
few values, an efficiency curve still rising, a test split read more than once.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, load_config, load_search, read_toml
from ..errors import ConfigError
from ..search import parse_space
from ..search.space import Choice, Dimension, Fixed, Space

LR_KNOB = "train.lr"
# §3.1.1 asks for the rate "tuned (up to approximately a factor of 2)", and §3.3.1 calls 3 values
# of a numerical knob insufficient: 4 is the fewest values that can place a best one.
MIN_LR_VALUES = 4
# §3.3.1: "trying only 3 values for a numerical hyper-parameter is insufficient".
FEW_VALUES = 3
# A positive knob searched linearly over more than this factor spends most of its draws in the
# top decade: 0.01 and 0.011 behave alike, 0.001 and 0.002 do not (§3.3.1).
LINEAR_SPAN = 10.0
# The knobs whose effect goes by ratios: rates, decay and penalty coefficients, sizes.
SCALE_KNOB = re.compile(r"(^|\.)(lr|l1|l2|sparsity_coef|contraction|batch_size|units|units_\d+|hidden|"
                        r"init_scale|patience|tau)$")
# §3.1.1: B "is typically chosen between 1 and a few hundreds".
LARGEST_BATCH = 512
# Standardized inputs have a root mean square of 1, inputs in [0, 1] at most 1; four times that is
# no longer the unit scale the chapter's learning rates assume (§3.1.1) ...
FAR_FROM_UNIT = 4.0
# ... nor are inputs that all stay below 1/100 in magnitude.
TINY_INPUTS = 0.01
# Preprocessing steps that bring inputs to unit scale (§3.2).
SCALING_STEPS = ("standardize", "scale", "pca", "uniformize")


@dataclass(frozen=True)
class Advice:
    """One recommendation: the ``rule`` that made it, the chapter's ``section``, what to do
    (``message``) and the values it was judged by (``evidence``)."""

    rule: str
    section: str
    message: str
    evidence: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return f"{self.section} ({self.rule}): {self.message}"

    def summary(self) -> dict:
        return {"rule": self.rule, "section": self.section, "message": self.message, "evidence": self.evidence}


@dataclass
class _Plan:
    """What is judged: the base config (None for a study of a Python function), the search
    space and strategy (None: nothing searched), and the study when there is one."""

    config: Config | None
    space: Space | None = None
    strategy: str = "random"
    options: dict = field(default_factory=dict)
    study: object = None
    _inputs: np.ndarray | None = None

    @property
    def dims(self) -> dict[str, Dimension]:
        return self.space.dims if self.space is not None else {}

    def inputs(self) -> np.ndarray:
        """The training inputs as the config preprocesses them (loaded once)."""
        if self._inputs is None:
            self._inputs = self.config.data.splits().X_train
        return self._inputs


def advise(subject, space=None, *, strategy: str = "random", options: dict | None = None) -> list[Advice]:
    """The chapter's advice on ``subject``: a :class:`~purelearn.config.Config` (with ``space``,
    a Space or a ``[search.space]`` table, searched by ``strategy`` with its ``options``), the path
    of a TOML config (its ``[search]`` section read too), or a :class:`~purelearn.execute.Study`.

    >>> from purelearn.config import Config
    >>> config = Config().with_values({"data.preprocess": ["standardize"]})
    >>> [a.rule for a in advise(config, {"train.lr": "loguniform(1e-4, 1)"})]
    []
    >>> [a.rule for a in advise(config, {"train.lr": "uniform(0.001, 1)"})]
    ['log-scale']
    """
    plan = _plan(subject, space, strategy, options)
    return [a for rule in RULES.values() for a in rule(plan)]


def checked_rules(subject) -> list[str]:
    """The rules that can apply to ``subject``: a config is not judged by the study's rules."""
    return [r for r in RULES if r not in STUDY_RULES or _is_study(subject)]


def _is_study(subject) -> bool:
    return hasattr(subject, "record") and hasattr(subject, "store")


def _plan(subject, space, strategy, options) -> _Plan:
    if _is_study(subject):
        record = subject.record
        return _Plan(subject.config(), parse_space(record.space), record.strategy,
                     dict(record.settings.get("options") or {}), subject)
    if isinstance(subject, (str, os.PathLike)):
        return _from_file(Path(subject))
    if not isinstance(subject, Config):
        raise ConfigError(f"advise takes a Config, the path of a TOML config or a Study, not {subject!r}.")
    if isinstance(space, dict):
        space = parse_space(space)
    return _Plan(subject, space, strategy, dict(options or {}))


def _from_file(path: Path) -> _Plan:
    table = read_toml(path)
    if "search" not in table:
        return _Plan(load_config(path))
    config, spec, knobs = load_search(path)
    return _Plan(config, parse_space(knobs), spec.strategy, spec.options())


# ---- what a search gives a knob


def _dim_values(dim: Dimension) -> list:
    """The values a knob can take at its extremes: a choice's values, an interval's ends."""
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Choice):
        return list(dim.values)
    return [dim.low, dim.high]


def _distinct(plan: _Plan, dim: Dimension) -> float:
    """How many distinct values the search gives a knob (inf: as many as trials)."""
    if isinstance(dim, Fixed):
        return 1
    if isinstance(dim, Choice):
        return len({repr(v) for v in dim.values})
    possible = dim.high - dim.low + 1 if dim.integer else math.inf
    k = plan.options.get("k")
    if plan.strategy == "grid":
        values = len(dim.grid(k)) if k or (dim.integer and possible <= 100) else possible
        return min(possible, values * plan.options.get("rounds", 1))
    if plan.strategy == "layerwise":
        return min(possible, len(dim.grid(k)) if k else plan.options.get("candidates", math.inf))
    return possible


def _lr_values(plan: _Plan) -> float:
    return _distinct(plan, plan.dims[LR_KNOB]) if LR_KNOB in plan.dims else 1


def _numeric_choice(dim: Dimension) -> bool:
    return isinstance(dim, Choice) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           for v in dim.values)


def _shown(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


# ---- the rules


def learning_rate(plan: _Plan) -> list[Advice]:
    """§3.1.1: the initial learning rate "is often the single most important hyper-parameter and
    one should always make sure that it has been tuned"."""
    if plan.config is None:                     # a Python function's knobs are not config keys
        return []
    n = _lr_values(plan)
    if n >= MIN_LR_VALUES:
        return []
    if LR_KNOB not in plan.dims or isinstance(plan.dims[LR_KNOB], Fixed):
        rate = plan.dims[LR_KNOB].value if LR_KNOB in plan.dims else plan.config.train.lr
        said = f"train.lr is fixed at {rate:g}, not searched"
    else:
        said = f"train.lr is searched over only {n:g} distinct value(s) ({plan.dims[LR_KNOB].describe()}, " \
               f"{plan.strategy} search)"
    return [Advice("learning-rate", "§3.1.1",
                   f"{said}: the learning rate is often the single most important hyper-parameter and should "
                   f"be tuned up to about a factor of 2. Search it: `purelearn train --find-lr`, or "
                   f"\"train.lr\" = \"loguniform(1e-4, 1)\" in [search.space] (at least {MIN_LR_VALUES} values "
                   "on a grid).", {"knob": LR_KNOB, "distinct_values": n})]


def border(plan: _Plan) -> list[Advice]:
    """§3.3.1: a best value near the border of the interval suggests better values beyond it
    (the study's own border warnings, ``Study.warnings()``)."""
    if plan.study is None or plan.space is None or plan.study.best is None:
        return []
    warnings, best = plan.study.warnings(), plan.study.best.params
    out = []
    for name, dim in plan.space.numeric().items():
        said = next((w for w in warnings if w.startswith(f"{name}: the best value")), None)
        if said is None or name not in best:
            continue
        side = "low" if " low edge " in said else "high"
        out.append(Advice("border", "§3.3.1", f"{said} The chapter: explore further, beyond that border.",
                          {"knob": name, "best": best[name], "side": side, "low": dim.low, "high": dim.high}))
    return out


def log_scale(plan: _Plan) -> list[Advice]:
    """§3.3.1: positive numerical knobs are better searched uniformly in the log-domain: the
    ratio between values, not their difference, guides their effect."""
    out = []
    for name, dim in plan.dims.items():
        if not dim.numeric or dim.log or not SCALE_KNOB.search(name) or dim.low < 0:
            continue
        ratio = dim.high / dim.low if dim.low > 0 else math.inf
        if ratio <= LINEAR_SPAN:
            continue
        form = "intloguniform" if dim.integer else "loguniform"
        # a log scale can't reach 0: start three decades below the top instead
        low = dim.low if dim.low > 0 else (1 if dim.integer else float(f"{dim.high * 1e-3:.3g}"))
        span = "from 0" if dim.low == 0 else f"over a factor of {ratio:.3g}"
        out.append(Advice("log-scale", "§3.3.1",
                          f"{name} = {dim.describe()} is searched on a linear scale {span}: most draws land in the "
                          f"top decade. Search it uniformly in the log-domain, e.g. \"{name}\" = \"{form}({low:g}, "
                          f"{dim.high:g})\"" + (" (a log scale can't reach 0; compare 0 in a trial of its own)"
                                                if dim.low == 0 else "") + ".",
                          {"knob": name, "low": dim.low, "high": dim.high, "ratio": ratio if math.isfinite(ratio) else None}))
    return out


def batch_size(plan: _Plan) -> list[Advice]:
    """§3.1.1: the minibatch size "is typically chosen between 1 and a few hundreds"."""
    if "train.batch_size" in plan.dims:
        where, values = "searched up to", _dim_values(plan.dims["train.batch_size"])
    elif plan.config is not None:
        where, values = "set to", [plan.config.train.batch_size]
    else:
        return []
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    big = max(numbers, default=0)
    if not 1 <= big <= LARGEST_BATCH:
        return [Advice("batch-size", "§3.1.1",
                       f"train.batch_size is {where} {big:g}: the chapter's range is 1 to a few hundred (B = 32 is a "
                       "good default). A larger B computes faster per example but needs more examples seen to reach "
                       "the same error (fewer updates per epoch); keep it at most a few hundred "
                       f"({LARGEST_BATCH} here).", {"batch_size": big, "largest_advised": LARGEST_BATCH})]
    return []


def preprocessing(plan: _Plan) -> list[Advice]:
    """§3.2 (preprocessing): inputs standardized or mapped to (0, 1), the scale that the
    learning rates of §3.1.1 are typical for."""
    if plan.config is None or "data.preprocess" in plan.dims:
        return []
    steps = [s.split("(")[0].strip() for s in plan.config.data.preprocess]
    if any(s in SCALING_STEPS for s in steps):
        return []
    X = plan.inputs()
    rms = float(np.sqrt(np.mean(np.square(X, dtype=np.float64)))) if X.size else 0.0
    largest = float(np.abs(X).max()) if X.size else 0.0
    if rms <= FAR_FROM_UNIT and largest >= TINY_INPUTS:
        return []
    given = f"data.preprocess = {list(plan.config.data.preprocess)}"
    return [Advice("preprocessing", "§3.2",
                   f"{given} leaves the training inputs of {plan.config.data.name} far from unit scale (root mean "
                   f"square {rms:.3g}, largest |x| {largest:.3g}): standardize them (data.preprocess = "
                   "[\"standardize\"], or \"scale\" to divide by the largest |x|). The typical learning rates, "
                   "below 1 and above 1e-6, are for standardized inputs or inputs in (0, 1) (§3.1.1).",
                   {"preprocess": list(plan.config.data.preprocess), "rms": rms, "largest_abs": largest})]


def _activations(plan: _Plan) -> set[str]:
    from ..nn.activations import ALIASES

    dim = plan.dims.get("model.activation")
    names = _dim_values(dim) if dim is not None else [plan.config.model.activation]
    return {ALIASES.get(n, n) for n in names if isinstance(n, str)}


def _deepest(plan: _Plan) -> int:
    """The most hidden layers the config or its search can give the network."""
    if "model.layers" in plan.dims:
        return int(max(_dim_values(plan.dims["model.layers"])))
    if "model.hidden" in plan.dims:
        return max(1 if isinstance(h, int) else len(h) for h in _dim_values(plan.dims["model.hidden"]))
    hidden = plan.config.model.hidden
    return 1 if isinstance(hidden, int) else len(hidden)


def sigmoid_depth(plan: _Plan) -> list[Advice]:
    """§3.2 (neuron non-linearity): "the sigmoid was shown to yield serious optimization
    difficulties when used as the top hidden layer of a deep supervised network (Glorot and
    Bengio, 2010) without unsupervised pre-training" (also §6.1). The sigmoid output of a binary
    or multi-label task is the chapter's recommended output/loss pair, not this case."""
    if plan.config is None or plan.config.model.family != "mlp" or plan.config.pretrain.levels \
            or "pretrain.levels" in plan.dims:
        return []
    depth = _deepest(plan)
    if "sigmoid" not in _activations(plan) or depth < 2:
        return []
    return [Advice("sigmoid-depth", "§3.2",
                   f"sigmoid hidden units in a supervised network of up to {depth} hidden layers, without "
                   "pre-training (pretrain.levels = 0): a sigmoid top hidden layer of a deep supervised network "
                   "gets stuck on plateaus (Glorot and Bengio, 2010). Use tanh or the rectifier "
                   "(model.activation), or pre-train the layers ([pretrain], §1.1).",
                   {"activation": "sigmoid", "hidden_layers": depth, "pretrain_levels": 0})]


def l2_with_early_stopping(plan: _Plan) -> list[Advice]:
    """§3.2 (weight decay): early stopping and L2 decay play "basically the same role", early
    stopping selecting it much more efficiently, "which suggests dropping L2 regularization
    altogether when early-stopping is used". purelearn always keeps the best validation point,
    so early stopping is always on. L1 "behaves differently" and is not flagged, nor is L2 on
    the output weights alone (the chapter's reason to treat them apart)."""
    if plan.config is None:
        return []
    if "train.l2" in plan.dims:
        values = [v for v in _dim_values(plan.dims["train.l2"]) if isinstance(v, (int, float))]
        if max(values, default=0) <= 0:
            return []
        said = f"train.l2 is searched ({plan.dims['train.l2'].describe()})"
        evidence = {"l2": values}
    else:
        l2 = plan.config.train.l2
        hidden = [l2] if isinstance(l2, (int, float)) else list(l2)[:-1]     # output layer last
        if max(hidden, default=0) <= 0:
            return []
        said = f"train.l2 = {l2!r} decays the hidden weights"
        evidence = {"l2": list(l2) if isinstance(l2, (list, tuple)) else l2}
    patience = plan.config.train.patience
    return [Advice("l2-early-stopping", "§3.2",
                   f"{said} while early stopping keeps the best validation point (train.patience = {patience:,}): "
                   "the two play basically the same role, and early stopping selects the amount much more cheaply, "
                   "which suggests dropping L2 altogether. L1 decay (train.l1) behaves differently (it selects "
                   "features), and L2 on the output weights alone remains a reasonable choice.",
                   evidence | {"patience": patience})]


def test_reread(plan: _Plan) -> list[Advice]:
    """§3: once out-of-sample data has selected anything, it no longer gives an unbiased
    estimate of generalization; the test split is read once."""
    if plan.study is None:
        return []
    reads = plan.study.store.test_evaluations(plan.study.record)
    if len(reads) <= 1:
        return []
    forced = sum(bool(r["forced"]) for r in reads)
    return [Advice("test-reread", "§3",
                   f"the test split of study {plan.study.name!r} was read {len(reads)} times ({forced} forced): after "
                   "the first reading it has informed a decision, and later readings are optimistically biased. "
                   f"Report the first ({reads[0]['value']:.4f}); for another estimate use a test set never seen "
                   "(or double cross-validation on a small set).",
                   {"reads": len(reads), "forced": forced, "values": [r["value"] for r in reads]})]


def efficiency_curve(plan: _Plan) -> list[Advice]:
    """§3.4: the curve of the expected best of N trials tells whether launching more pays."""
    if plan.study is None:
        return []
    p = plan.study.plateau()
    if p["plateau"] is not False:                # True: a plateau; None: no curve (layer-wise)
        return []
    n = len(plan.study.finished())
    return [Advice("efficiency-curve", "§3.4",
                   f"{p['message']} The efficiency curve of random search is still rising: extend the study "
                   f"(`purelearn tune CONFIG --trials {max(2 * n, 4)}` keeps the {n} trials done).",
                   {"finished": n, "gain_from_last_doubling": p["gain_from_last_doubling"]})]


def few_values(plan: _Plan) -> list[Advice]:
    """§3.3.1: "trying only 3 values for a numerical hyper-parameter is insufficient, even if the
    best value found is the middle one". A config is judged by the values its search can give a
    knob (a choice, a grid), a study by the values its finished trials tried. An integer knob
    whose interval holds no more values is not flagged: it can't take more."""
    out = []
    for name, dim in plan.dims.items():
        if not (dim.numeric or _numeric_choice(dim)):
            continue
        if name == LR_KNOB and plan.config is not None and _lr_values(plan) < MIN_LR_VALUES:
            continue                             # the learning-rate rule says it, more strongly
        possible = _distinct(_Plan(None), dim)   # every value the knob has, whatever the search
        if plan.study is not None:
            tried = sorted({t.params[name] for t in plan.study.finished() if name in t.params}, key=float)
            n, how = len(tried), f"tried at only {len(tried)} value(s) ({_shown(tried)})"
        else:
            n = _distinct(plan, dim)
            tried = None
            how = f"can take only {n:g} value(s) ({dim.describe()}, {plan.strategy} search)"
        if not 0 < n <= FEW_VALUES or (n >= possible and not isinstance(dim, Choice)):
            continue
        out.append(Advice("few-values", "§3.3.1",
                          f"{name} {how}: with a noisy relation between a knob and the validation error, 3 values "
                          "are insufficient, even if the best is the middle one. Search it over an interval (random "
                          "search draws a new value every trial) or a grid of more values.",
                          {"knob": name, "values": n} | ({"tried": tried} if tried is not None else {})))
    return out


RULES = {"learning-rate": learning_rate, "border": border, "log-scale": log_scale, "batch-size": batch_size,
         "preprocessing": preprocessing, "sigmoid-depth": sigmoid_depth, "l2-early-stopping": l2_with_early_stopping,
         "test-reread": test_reread, "efficiency-curve": efficiency_curve, "few-values": few_values}
STUDY_RULES = ("border", "test-reread", "efficiency-curve")

__all__ = ["Advice", "RULES", "advise", "checked_rules"]
