"""The training hyper-parameters of §3.1.1 and §3.2, with the chapter's defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from ..errors import ConfigError, unknown
from ..nn.mlp import MLP
from ..nn.penalties import SPARSITY_KINDS
from ..optim.transforms import MOMENTUM_FORMS

OPTIMIZERS = ("sgd", "adagrad", "adam")
PATIENCE_MODES = ("multiply", "add")


@dataclass(frozen=True)
class Training:
    """How one member is trained. Lengths are counted in examples seen, not epochs.

    lr: eps0 of eq. (1)-(2) (default 0.01). batch_size: B (32). tau, alpha: eq. (2) schedule
    (tau = inf: constant rate). adaptive_tau: relative epoch-to-epoch improvement of the training
    criterion below which the decrease starts (0: off). optimizer: sgd, adagrad or adam.
    momentum: m in [0, 1) (0: none), in ``momentum_form`` average (the chapter's
    g_bar <- (1-beta) g_bar + beta g with beta = 1 - m), classical or nesterov. polyak: validate
    and keep the running average of the parameters, from step tau (where the rate starts to
    decrease), or after the first epoch with a constant rate. l1, l2: weight decay, one value
    or one per weight layer (output last); decay_biases: penalize biases too. lr_scale: per-layer factors on
    the rate. sparsity (none, l1, student_t, kl, squared), sparsity_coef, sparsity_target (rho):
    penalty on hidden activations. patience: examples to see past the best point before stopping
    (10,000); on a new minimum better by more than ``improvement`` (relative), patience grows to
    examples x patience_increase (``multiply``) or examples + patience_increase (``add``).
    significance: level of McNemar's exact test a new minimum must pass (0: off). valid_every: examples
    between validations (0: the validation-set size, at least B). max_epochs: budget. max_examples:
    a budget in examples seen, met at the first update that reaches it (0: none; a refit trains
    for the examples at which the selected trial was best).
    divergence: a member whose training loss becomes NaN/inf, or exceeds this factor times its
    initial loss at two validations in a row that bring no new best validation error, is stopped
    as diverged (a loss that jumps while the validation error falls usually comes back).
    seed: initialization and example order. monitor: examples between snapshots of every
    layer's statistics (§4.2; 0: none).
    """

    lr: float = 0.01
    batch_size: int = 32
    tau: float = math.inf
    alpha: float = 1.0
    adaptive_tau: float = 0.0
    optimizer: str = "sgd"
    momentum: float = 0.0
    momentum_form: str = "average"
    polyak: bool = False
    l1: float | tuple = 0.0
    l2: float | tuple = 0.0
    decay_biases: bool = False
    lr_scale: tuple = ()
    sparsity: str = "none"
    sparsity_coef: float = 0.0
    sparsity_target: float = 0.05
    patience: int = 10000
    patience_increase: float = 2.0
    patience_mode: str = "multiply"
    improvement: float = 0.005
    significance: float = 0.0
    valid_every: int = 0
    max_epochs: int = 100
    max_examples: int = 0
    divergence: float = 10.0
    seed: int = 0
    monitor: int = 0

    def checked(self, n_train: int, n_layers: int) -> "Training":
        """Validated copy; ``n_layers`` counts weight layers (hidden + output)."""
        for name, allowed in (("optimizer", OPTIMIZERS), ("momentum_form", MOMENTUM_FORMS),
                              ("patience_mode", PATIENCE_MODES), ("sparsity", SPARSITY_KINDS)):
            if getattr(self, name) not in allowed:
                raise unknown(f"value for train.{name}", getattr(self, name), allowed)
        _check(self.lr > 0 and math.isfinite(self.lr), "lr", self.lr, "a finite number > 0")
        _check(_whole(self.batch_size) and 1 <= self.batch_size <= n_train, "batch_size", self.batch_size,
               f"a whole number from 1 to the training-set size ({n_train})")
        _check(self.tau > 0, "tau", self.tau, "> 0 (inf for a constant rate)")
        _check(self.alpha > 0, "alpha", self.alpha, "> 0")
        _check(0 <= self.adaptive_tau < 1, "adaptive_tau", self.adaptive_tau, "in [0, 1)")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _check(self.momentum == 0 or self.optimizer == "sgd", "momentum", self.momentum,
               f"0 with optimizer {self.optimizer!r} (momentum applies to sgd)")
        _check(self.sparsity_coef >= 0, "sparsity_coef", self.sparsity_coef, ">= 0")
        _check(0 < self.sparsity_target < 1, "sparsity_target", self.sparsity_target, "in (0, 1)")
        _check(_whole(self.patience) and self.patience >= 1, "patience", self.patience,
               "a whole number of examples >= 1")
        _check(self.patience_increase > (1 if self.patience_mode == "multiply" else 0),
               "patience_increase", self.patience_increase, "> 1 when multiplying, > 0 when adding")
        _check(0 <= self.improvement < 1, "improvement", self.improvement, "in [0, 1)")
        _check(0 <= self.significance < 0.5, "significance", self.significance, "in [0, 0.5) (0: off)")
        _check(_whole(self.valid_every) and self.valid_every >= 0, "valid_every", self.valid_every,
               "a whole number of examples >= 0 (0: the validation-set size)")
        _check(_whole(self.max_epochs) and self.max_epochs >= 1, "max_epochs", self.max_epochs, "a whole number >= 1")
        _check(_whole(self.max_examples) and self.max_examples >= 0, "max_examples", self.max_examples,
               "a whole number of examples >= 0 (0: no budget but max_epochs)")
        _check(self.divergence > 1, "divergence", self.divergence, "> 1")
        _check(_whole(self.seed) and self.seed >= 0, "seed", self.seed, "a whole number >= 0")
        _check(_whole(self.monitor) and self.monitor >= 0, "monitor", self.monitor,
               "a whole number of examples between snapshots of the layers' statistics (0: none)")
        l1, l2 = (_per_layer(name, getattr(self, name), n_layers, 0.0) for name in ("l1", "l2"))
        empty = isinstance(self.lr_scale, (tuple, list)) and not self.lr_scale     # (): 1 for every layer
        lr_scale = _per_layer("lr_scale", 1.0 if empty else self.lr_scale, n_layers, 0.0, strict=True)
        return replace(self, l1=l1, l2=l2, lr_scale=lr_scale)

    def group_key(self) -> tuple:
        """Members sharing this key can be trained in one population; numbers may differ."""
        return (self.batch_size, self.valid_every, self.optimizer, self.momentum_form, self.polyak,
                self.sparsity, self.decay_biases, self.monitor)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"train.{key} = {value!r} is out of range: it must be {allowed}.")


def _per_layer(key, value, n_layers, low, strict=False) -> tuple[float, ...]:
    values = (value,) * n_layers if isinstance(value, (int, float)) else tuple(value)
    if len(values) != n_layers:
        raise ConfigError(f"train.{key} has {len(values)} values but the model has {n_layers} weight "
                          "layers (hidden layers + output); give one number or one per layer.")
    for v in values:
        _check(isinstance(v, (int, float)) and (v > low if strict else v >= low), key, value,
               f"{'>' if strict else '>='} {low} (one number or one per layer)")
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Member:
    """One configuration to train: a model, how to train it, and its seed (in ``train``).

    start: the member's initial parameters (its family's names and shapes, e.g. a result's
    ``params``, or a pre-trained level's), instead of drawing them from the seed. fold: which
    of the training data's cross-validation folds it trains on and validates with, when its
    population's data holds several (``Data`` of a list of splits). trial: the number of the
    study's trial it trains, if any: how a pruner names its values to other processes."""

    model: MLP = MLP()
    train: Training = Training()
    start: dict | None = field(default=None, compare=False, repr=False)
    fold: int = 0
    trial: int | None = field(default=None, compare=False, repr=False)


TRAINING_KEYS = tuple(f.name for f in fields(Training))
