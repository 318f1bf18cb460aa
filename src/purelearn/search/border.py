"""The border rule of §3.3.1: a best value on the edge of its interval says the interval was
too narrow. Warn, and with ``expand`` grow the interval past that edge and keep searching."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .space import Space, _Numeric
from .strategies import Strategy


@dataclass(frozen=True)
class Expansion:
    knob: str
    side: str
    old: tuple
    new: tuple
    after_trials: int


def border_warnings(space: Space, finished: list[tuple[dict, float]], expansions=()) -> list[str]:
    """Warnings on a study: best values near an edge of their interval (outer 10% on the knob's
    scale) and numerical knobs tried at 3 values or fewer.

    ``space`` is the study's current space and ``expansions`` its widenings, in order. An edge
    counts where it was searched: a widened interval whose new part no trial has reached yet
    still has its old edge, so the warning stays while the best value sits there."""
    done = [(p, v) for p, v in finished if v is not None and v == v and v != float("inf")]
    if not done:
        return []
    best = min(done, key=lambda t: t[1])[0]
    out = []
    for name, dim in space.numeric().items():
        tried = {p[name] for p, _ in done if name in p}
        if name in best:
            grown = [e for e in expansions if e.knob == name]
            searched = _searched(dim, grown, tried)
            side = searched.near_border(best[name]) or dim.near_border(best[name])
            if side:
                out.append(_edge_warning(name, best[name], side, dim, searched, grown))
        possible = dim.high - dim.low + 1 if dim.integer else math.inf
        if 0 < len(tried) <= 3 and len(tried) < possible:
            out.append(f"{name}: tried at only {len(tried)} value(s); its effect can't be judged from so few.")
    return out


def _searched(dim: _Numeric, grown: list[Expansion], tried: set) -> _Numeric:
    """The part of the interval that was searched: the initial interval, grown only as far as
    trials actually reached into a widening."""
    low, high = grown[0].old if grown else (dim.low, dim.high)
    low, high = min([low, *tried]), max([high, *tried])
    return replace(dim, low=low, high=high)


def _edge_warning(name, value, side, dim, searched, grown) -> str:
    way = "down" if side == "low" else "up"
    edge = searched.low if side == "low" else searched.high
    said = (f"{name}: the best value {value:.4g} lies near the {side} edge of the searched interval "
            f"[{searched.low:g}, {searched.high:g}]")
    if edge == (dim.hard[0] if side == "low" else dim.hard[1]):
        return f"{said}; {edge:g} is its hard bound, so the knob can't go further {way}."
    widened = [e for e in grown if e.side == side]
    if widened and (edge >= widened[-1].old[0] if side == "low" else edge <= widened[-1].old[1]):
        note = (f"; it was widened to [{dim.low:g}, {dim.high:g}], but no trial has gone past {edge:g} "
                "yet: run more trials")
    elif widened:
        note = f" (already widened {len(widened)} time(s))"
    else:
        note = "; widen it or set expand = true"
    return f"{said}, so the optimum may be further {way}{note}."


class BorderRule:
    """Watches a strategy's results and widens intervals whose best value sits on an edge.

    A widening acts on the trials asked after it, so with ``expand`` the strategy is paced: it
    keeps no more trials waiting for results than max(min_trials, results heard)."""

    def __init__(self, strategy: Strategy, expand: bool, min_trials: int = 8):
        self.strategy, self.expand, self.min_trials = strategy, expand, min_trials
        self.expansions: list[Expansion] = []
        if expand:
            strategy.pace = min_trials

    def after_tell(self) -> list[Expansion]:
        s = self.strategy
        n = len(s.results)
        if not self.expand or n < self.min_trials:
            return []
        best = s.best()
        if best is None or best[1] == float("inf"):
            return []
        new = []
        for name, dim in s.space.numeric().items():
            side = dim.near_border(best[0][name]) if name in best[0] else None
            recent = any(e.knob == name and e.side == side and n - e.after_trials < self.min_trials
                         for e in self.expansions)
            if side is None or recent or (grown := dim.expanded(side)) is None:
                continue
            e = Expansion(name, side, (dim.low, dim.high), (grown.low, grown.high), n)
            s.set_space(s.space.replaced(name, grown))
            self.expansions.append(e)
            new.append(e)
        return new
