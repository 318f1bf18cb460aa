"""A search space checked against the config it tunes, before any trial runs (§3.3).

A value the config refuses makes every trial that draws it fail; drawing a few random points
would find it only by luck (an interval's ends are never drawn, but grids and coordinate
descent try them). So the values are read from the space's structure instead.
"""

from __future__ import annotations

import math

from ..errors import ConfigError, PurelearnError
from .space import OPS, Choice, Dimension, Fixed, Space, _Numeric

_NONE = object()        # no value of a knob is accepted


def check_space(space: Space, config) -> None:
    """Raise ConfigError if a knob can take a value that ``config`` (a purelearn.config.Config)
    refuses, naming the knob, the value and what the config allows.

    The values checked: every value of a choice, a fixed value, both ends of every interval
    (as a trial gets them: rounded for an integer knob) and, for a real knob, a value inside
    that is not a whole number (a key that wants whole numbers refuses it). Each is set on a
    point where every other knob holds a value the config accepts, and the config's own checks
    judge the trial that point would be (the checks every trial's members pass). A conditional
    knob is checked on a point where its condition holds; one whose condition can't hold is
    never set, so it isn't checked.

    >>> from purelearn.config import Config
    >>> from purelearn.search import parse_space
    >>> check_space(parse_space({"train.lr": "fixed(-1)"}), Config())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    purelearn.errors.ConfigError: knob 'train.lr' = fixed(-1) can take -1 (its fixed value), ... > 0.
    """
    judge = _Judge(config)
    base = _point(space, judge, {}, {})
    problems = []
    for name, dim in space.dims.items():
        enabling = _enabling(space, name, base)
        if enabling is None:
            continue                                   # its condition never holds: never set
        for value, where in _extremes(dim):
            refusal = judge(_point(space, judge, base, {**enabling, name: value}))
            if refusal:
                problems.append(_problem(name, dim, value, where, refusal))
                break                                  # one bad value per knob says enough
    if problems:
        raise ConfigError("\n".join(problems))


class _Judge:
    """The config's verdict on a point: None, or the message of the error it raises."""

    def __init__(self, config):
        self.config, self.seen = config, {}

    def __call__(self, params: dict) -> str | None:
        key = repr(sorted(params.items()))
        if key not in self.seen:
            self.seen[key] = self._judge(params)
        return self.seen[key]

    def _judge(self, params):
        # Imported here: the execute package imports this one.
        from ..execute.objective import _splits, apply_params, first_fold
        from ..train import check_member

        try:
            cfg = apply_params(self.config, params, 0)
            check_member(cfg.member(), first_fold(_splits(cfg)))   # the driver's cache: trials reuse the data
        except PurelearnError as e:
            return str(e)
        return None


def _extremes(dim: Dimension) -> list[tuple[object, str]]:
    """The values of a knob most likely to be refused, each with where it comes from."""
    if isinstance(dim, Fixed):
        return [(dim.value, "its fixed value")]
    if isinstance(dim, Choice):
        return [(v, "one of its choices") for v in dim.values]
    ends = [(dim.from_unit(0.0), "its low end"), (dim.from_unit(1.0), "its high end")]
    return ends if dim.integer else ends + [(_inside(dim), "a value inside the interval")]


def _inside(dim: _Numeric) -> float:
    """A value strictly inside a real interval that is not a whole number (a short one, for the
    message); its middle when no such short value is found."""
    for u in (0.5, 0.49, 0.3, 0.7):
        v = float(f"{dim.from_unit(u):.6g}")
        if dim.low < v < dim.high and not v.is_integer():
            return v
    return dim.from_unit(0.5)


def _candidates(dim: Dimension, near=None) -> list:
    """Values the knob can take: a representative first (an interval's middle on its scale, a
    choice's first value), then its extremes, then values around ``near`` (a condition's value)."""
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Choice):
        return list(dim.values)
    out = [dim.from_unit(0.5)] + [v for v, _ in _extremes(dim)]
    if isinstance(near, (int, float)) and not isinstance(near, bool) and math.isfinite(near):
        around = [near - 1, near, near + 1] if dim.integer else [math.nextafter(near, -math.inf), near,
                                                                  math.nextafter(near, math.inf)]
        out += [v for v in around if dim.low <= v <= dim.high]
    return list(dict.fromkeys(out))


def _point(space: Space, judge: _Judge, base: dict, forced: dict) -> dict:
    """A trial's knobs: ``forced`` values, else the ``base`` point's, else for a knob the base
    lacks the first candidate the config accepts. Conditions apply in order, as they do when a
    trial is drawn. A knob with no accepted candidate is left out (the config's own value
    stands in), so that one bad knob doesn't make every other knob's checks fail with it."""
    point = {}
    for name, dim in space.dims.items():
        if dim.when is not None and not dim.when.holds(point):
            continue
        if name in forced:
            point[name] = forced[name]
        elif name in base:
            point[name] = base[name]
        else:
            value = next((v for v in _candidates(dim) if judge({**point, name: v}) is None), _NONE)
            if value is not _NONE:
                point[name] = value
    return point


def _enabling(space: Space, name: str, base: dict) -> dict | None:
    """Values of earlier knobs under which knob ``name`` exists ({} when it always does or the
    base point already has it); None when no value of theirs makes its condition hold. (A
    condition names a knob listed before it, so this ends.)"""
    when = space.dims[name].when
    if when is None or name in base:
        return {}
    values = _candidates(space.dims[when.knob], when.value)
    if when.knob in base:
        values.insert(0, base[when.knob])          # the base point's value, when it will do
    for v in values:
        if OPS[when.op](v, when.value) and (above := _enabling(space, when.knob, base)) is not None:
            return {**above, when.knob: v}
    return None


def _problem(name: str, dim: Dimension, value, where: str, refusal: str) -> str:
    form = dim.describe() + (f" if {dim.when}" if dim.when else "")
    return f"knob {name!r} = {form} can take {value!r} ({where}), which the config refuses: {refusal}"
