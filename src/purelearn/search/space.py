"""Search spaces of §3.3-3.4: priors over knobs, searched intervals inside hard bounds, and
conditional knobs (a knob exists only when a condition on an earlier knob holds).

A knob's name is the config key it sets (``train.lr``, ``model.units``). Positive numerical knobs
are best searched on a log scale (§3.3.1): ``LogUniform`` and ``IntLogUniform``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
       "!=": operator.ne}


@dataclass(frozen=True)
class When:
    """The condition under which a knob exists, e.g. When("model.layers", ">=", 2)."""

    knob: str
    op: str
    value: object

    def __post_init__(self):
        if self.op not in OPS:
            raise ConfigError(f"condition '{self}': unknown comparison {self.op!r}; allowed: {', '.join(OPS)}.")

    def holds(self, params: dict) -> bool:
        return self.knob in params and OPS[self.op](params[self.knob], self.value)

    def __str__(self):
        return f"{self.knob} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Dimension:
    """Base of all knobs: ``when`` makes it conditional."""

    when: When | None = field(default=None, kw_only=True)
    numeric = False
    log = False


@dataclass(frozen=True)
class _Numeric(Dimension):
    """An interval [low, high] searched inside hard bounds (``hard``), on a linear or log scale."""

    low: float = 0.0
    high: float = 1.0
    hard: tuple = (-math.inf, math.inf)
    numeric = True
    integer = False

    def __post_init__(self):
        name = type(self).__name__
        lo, hi = self.hard
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (self.low, self.high)):
            raise ConfigError(f"{name}({self.low!r}, {self.high!r}): the ends of an interval must be numbers.")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError(f"{name}({self.low}, {self.high}): both ends must be finite numbers (a prior "
                              "can't spread over an unbounded interval); only the hard bounds may be inf.")
        if self.integer and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ConfigError(f"{name}({self.low}, {self.high}): an integer knob's ends must be whole numbers, "
                              f"e.g. {name.lower()}({math.ceil(self.low)}, {math.floor(self.high)}).")
        if not self.low < self.high:
            raise ConfigError(f"{name}({self.low}, {self.high}): the interval is empty or inverted; need low < high.")
        if self.log and self.low <= 0:
            raise ConfigError(f"{name}({self.low}, {self.high}): a log-scale interval must stay above 0 "
                              "(it can't touch 0); use "
                              f"{'IntUniform' if self.integer else 'Uniform'} for knobs that can be 0 or less.")
        if not lo <= self.low < self.high <= hi:
            raise ConfigError(f"{name}({self.low}, {self.high}) leaves its hard bounds [{lo}, {hi}].")

    def _fwd(self, v):
        return math.log(v) if self.log else float(v)

    def _inv(self, u):
        return math.exp(u) if self.log else u

    def to_unit(self, v) -> float:
        a, b = self._fwd(self.low), self._fwd(self.high)
        return (self._fwd(v) - a) / (b - a)

    def from_unit(self, u: float):
        a, b = self._fwd(self.low), self._fwd(self.high)
        v = self._inv(a + u * (b - a))
        if self.integer:
            return int(min(max(round(v), self.low), self.high))
        return float(min(max(v, self.low), self.high))

    def sample(self, rng: np.random.Generator):
        u = rng.random()
        if not self.integer:
            return self.from_unit(u)
        # Each integer gets the prior mass of [v - 1/2, v + 1/2] on the knob's scale.
        a = self._fwd(max(self.low - 0.5, 0.5) if self.log else self.low - 0.5)
        b = self._fwd(self.high + 0.5)
        return int(min(max(round(self._inv(a + u * (b - a))), self.low), self.high))

    def grid(self, k: int) -> list:
        """k values evenly spaced on the knob's scale (log-spaced for log knobs), ends included;
        for an integer knob with k = 0, every integer of the interval."""
        if self.integer and not k:
            if self.high - self.low > 100:
                raise ConfigError(f"{self.describe()}: too many integers for a full grid; give search.k.")
            return list(range(int(self.low), int(self.high) + 1))
        values = [self.from_unit(i / (k - 1)) if k > 1 else self.from_unit(0.5) for i in range(k)]
        if not self.integer:
            values = [float(f"{v:.12g}") for v in values]  # 1e-4, not 1.0000000000000009e-4
        return list(dict.fromkeys(values))

    def near_border(self, v, margin: float = 0.1) -> str | None:
        """'low' or 'high' when v lies in the outer ``margin`` of the interval on its scale."""
        u = self.to_unit(v)
        return "low" if u < margin else "high" if u > 1 - margin else None

    def expanded(self, side: str) -> "_Numeric | None":
        """The interval grown past ``side`` by half its width on its scale, within the hard
        bounds; None when it already touches that hard bound."""
        a, b = self._fwd(self.low), self._fwd(self.high)
        lo, hi = self.hard
        if side == "low":
            new = max(self._inv(a - (b - a) / 2), lo)
            new = math.floor(new) if self.integer else new
            return replace(self, low=new) if new < self.low else None
        new = min(self._inv(b + (b - a) / 2), hi)
        new = math.ceil(new) if self.integer else new
        return replace(self, high=new) if new > self.high else None

    def describe(self) -> str:
        """The knob's TOML form; parsing it gives this knob back exactly (hard bounds included)."""
        hard = f", hard=[{self.hard[0]!r}, {self.hard[1]!r}]" if self.hard != type(self).hard else ""
        return f"{type(self).__name__.lower()}({self.low!r}, {self.high!r}{hard})"


@dataclass(frozen=True)
class Uniform(_Numeric):
    """A real knob, uniform on [low, high]."""


@dataclass(frozen=True)
class LogUniform(_Numeric):
    """A positive real knob, uniform in log(value) (learning rates, decay coefficients)."""

    hard: tuple = (0.0, math.inf)
    log = True


@dataclass(frozen=True)
class IntUniform(_Numeric):
    integer = True


@dataclass(frozen=True)
class IntLogUniform(_Numeric):
    """A positive integer knob, uniform in log(value) (numbers of hidden units)."""

    hard: tuple = (1, math.inf)
    log = True
    integer = True


@dataclass(frozen=True)
class Choice(Dimension):
    """One of ``values``, with optional prior ``weights`` (a multinomial prior, §3.4)."""

    values: tuple = ()
    weights: tuple | None = None

    def __post_init__(self):
        if len(self.values) == 0:
            raise ConfigError("choice() needs at least one value.")
        if self.weights is not None and (len(self.weights) != len(self.values) or min(self.weights) < 0
                                         or sum(self.weights) <= 0):
            raise ConfigError(f"choice{tuple(self.values)}: weights must be {len(self.values)} numbers >= 0, "
                              "not all 0.")

    def sample(self, rng: np.random.Generator):
        p = None if self.weights is None else np.asarray(self.weights, float) / sum(self.weights)
        return self.values[int(rng.choice(len(self.values), p=p))]

    def grid(self, k: int) -> list:
        return list(self.values)

    def describe(self) -> str:
        weights = "" if self.weights is None else f", weights={list(self.weights)!r}"
        return "choice(" + ", ".join(repr(v) for v in self.values) + weights + ")"


@dataclass(frozen=True)
class Fixed(Dimension):
    """A knob held at one value."""

    value: object = None

    def sample(self, rng):
        return self.value

    def grid(self, k: int) -> list:
        return [self.value]

    def describe(self) -> str:
        return f"fixed({self.value!r})"


class Space:
    """Named knobs in order; a conditional knob may only refer to a knob before it.

    >>> space = Space({"train.lr": LogUniform(1e-4, 1), "model.layers": IntUniform(1, 3),
    ...                "model.units_2": IntLogUniform(16, 1024, when=When("model.layers", ">=", 2))})
    >>> draws = [space.sample(np.random.default_rng(i)) for i in range(100)]
    >>> all(("model.units_2" in d) == (d["model.layers"] >= 2) for d in draws)
    True
    """

    def __init__(self, dims: dict[str, Dimension] | None = None, **kwargs: Dimension):
        self.dims = dict(dims or {}) | kwargs
        seen = set()
        for name, dim in self.dims.items():
            if not isinstance(dim, Dimension):
                raise ConfigError(f"knob {name!r}: {dim!r} is not a search dimension.")
            if dim.when is not None and dim.when.knob not in seen:
                where = "comes after it" if dim.when.knob in self.dims else "doesn't exist"
                raise ConfigError(f"knob {name!r} has a condition on {dim.when.knob!r}, which {where}; "
                                  "a condition may only name a knob listed before it.")
            seen.add(name)
        if not self.dims:
            raise ConfigError("the search space is empty: give at least one knob.")

    def sample(self, rng: np.random.Generator) -> dict:
        params = {}
        for name, dim in self.dims.items():
            if dim.when is None or dim.when.holds(params):
                params[name] = dim.sample(rng)
        return params

    def numeric(self) -> dict[str, _Numeric]:
        return {n: d for n, d in self.dims.items() if d.numeric}

    def replaced(self, name: str, dim: Dimension) -> "Space":
        return Space({n: (dim if n == name else d) for n, d in self.dims.items()})

    def to_dict(self) -> dict[str, str]:
        return {n: d.describe() + (f" if {d.when}" if d.when else "") for n, d in self.dims.items()}

    def __repr__(self):
        return f"Space({self.to_dict()})"


def format_value(v) -> str:
    """A knob's value as tables and reports show it: floats to 4 significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else str(v)
