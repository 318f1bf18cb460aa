"""The border rule of §3.3.1: a best value on the edge of its interval says the interval was
too narrow. Warn, and with ``expand`` grow the interval past that edge and keep searching."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .space import Space
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
    scale) and numerical knobs tried at 3 values or fewer."""
    done = [(p, v) for p, v in finished if v is not None and v == v and v != float("inf")]
    if not done:
        return []
    best = min(done, key=lambda t: t[1])[0]
    out = []
    for name, dim in space.numeric().items():
        if name in best and (side := dim.near_border(best[name])):
            way = "down" if side == "low" else "up"
            grown = [e for e in expansions if e.knob == name and e.side == side]
            note = f" (already widened {len(grown)} time(s))" if grown else "; widen it or set expand = true"
            out.append(f"{name}: the best value {best[name]:.4g} lies near the {side} edge of the searched "
                       f"interval [{dim.low:g}, {dim.high:g}], so the optimum may be further {way}{note}.")
        tried = {p[name] for p, _ in done if name in p}
        possible = dim.high - dim.low + 1 if dim.integer else math.inf
        if 0 < len(tried) <= 3 and len(tried) < possible:
            out.append(f"{name}: tried at only {len(tried)} value(s); its effect can't be judged from so few.")
    return out


class BorderRule:
    """Watches a strategy's results and widens intervals whose best value sits on an edge."""

    def __init__(self, strategy: Strategy, expand: bool, min_trials: int = 8):
        self.strategy, self.expand, self.min_trials = strategy, expand, min_trials
        self.expansions: list[Expansion] = []

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
