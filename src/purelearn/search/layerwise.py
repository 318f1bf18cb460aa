"""Greedy layer-wise hyper-parameter optimization: the chapter's Algorithm 1 (§3.3.4).

The settings of level 1 are tried; the ``keep`` (K) best form the set S. Every candidate
setting C of level L+1 is then tried on top of every member H of S (level L+1 pre-trained on
the code of H's levels, which stay as they are), and S becomes the K best of those. At the end
every fine-tuning setting is tried on each member of the last S. A level is scored by what its
trial reports (a linear probe's validation error, or the level's own criterion); the study's
best is the best fine-tuned trial.

A trial's parameters hold its whole configuration, C with H's settings (``level<N>.KEY`` for
the levels, the fine-tuning's own keys), its ``level`` (1, 2, ..., or "finetune") and the
``parent`` trial whose trained levels it starts from (None at level 1).

The space's knobs are split by name: ``level.KEY`` is a setting of every level (tried at
level N as ``level<N>.KEY``), ``level<N>.KEY`` one of level N only, any other knob a
fine-tuning setting. Each stage's candidates are ``candidates`` draws from its part of the
space, or with ``k`` its grid of k values per numerical knob.

Screening (§3.3.1, after Saxe et al. 2011): with ``screen`` = f, every candidate of a level is
first scored cheaply, its level trained ``screen_epochs`` epochs (0: left at its random
initial weights) and probed, and only the best fraction f of them is then trained in full. A
screening trial's parameters say how it was screened (``screen``: its epochs).
"""

from __future__ import annotations

import math
import re

from ..errors import ConfigError
from .space import Space
from .strategies import STRATEGIES, Strategy, _whole, grid_points

LEVEL, PARENT, SCREEN, FINETUNE = "level", "parent", "screen", "finetune"
PLACE = (LEVEL, PARENT, SCREEN)        # where a trial sits in the search, not what it sets
_SHARED = re.compile(r"^level\.(.+)$")
_OWN = re.compile(r"^level([1-9][0-9]*)\.(.+)$")


def stage_spaces(space: Space, levels: int) -> tuple[list[Space | None], Space | None]:
    """(each level's knobs, level 1 first, and the fine-tuning's knobs); None where a stage has
    none (its one candidate is the config's own settings)."""
    per_level = [{} for _ in range(levels)]
    finetune = {}
    for name, dim in space.dims.items():
        if m := _SHARED.match(name):
            for n in range(levels):
                per_level[n][f"level{n + 1}.{m.group(1)}"] = dim
        elif m := _OWN.match(name):
            n = int(m.group(1))
            if n > levels:
                raise ConfigError(f"knob {name!r} is a setting of level {n}, but the stack has {levels} level(s).")
            per_level[n - 1][name] = dim
        else:
            finetune[name] = dim
    return [Space(d) if d else None for d in per_level], Space(finetune) if finetune else None


def concrete_space(space: Space, levels: int) -> Space:
    """The knobs as the trials set them (``level.KEY`` as ``level<N>.KEY`` for each level)."""
    parts, finetune = stage_spaces(space, levels)
    dims = {}
    for part in [*parts, finetune]:
        dims.update(part.dims if part is not None else {})
    return Space(dims)


class Layerwise(Strategy):
    """Algorithm 1 of §3.3.4 (see the module's docstring). ``levels``: the stack's depth;
    ``keep``: K; ``candidates``: settings drawn per stage; ``k``: grid them instead;
    ``screen``, ``screen_epochs``: screening (0: none)."""

    name = "layerwise"

    def __init__(self, space, seed=0, levels=None, keep=3, candidates=4, k=None, screen=0.0, screen_epochs=1):
        super().__init__(space, seed)
        _whole("levels", levels, 1, "a layer-wise search needs the stack's depth (pretrain.levels)")
        _whole("keep", keep, 1, "a layer-wise search keeps the K best configurations of each level")
        _whole("candidates", candidates, 1, "a layer-wise search tries that many settings per level")
        if k is not None:
            _whole("k", k, 2, "a grid of k values per numerical knob")
        if isinstance(screen, bool) or not (isinstance(screen, (int, float)) and 0 <= screen <= 1):
            raise ConfigError(f"search.screen = {screen!r}: give the fraction of screened candidates trained in "
                              "full, in (0, 1] (0: no screening).")
        _whole("screen_epochs", screen_epochs, 0, "a screened level trains that many epochs (0: not at all)")
        self.levels, self.keep, self.candidates, self.k = levels, keep, candidates, k
        self.screen, self.screen_epochs = float(screen), screen_epochs
        self.level_spaces, self.finetune_space = stage_spaces(space, levels)
        self.stage = 1                     # 1..levels, then levels + 1: the fine-tuning
        self.best_set: list[int] = []      # S: the trial numbers of the K best of the last stage
        self.history: list[list[int]] = [] # S after each stage, level 1 first
        self.released: list[int] = []      # trials whose trained models no stage needs any more
        self._lay_out(0)

    @property
    def planned(self) -> int:
        """Trials in all, when every stage keeps K parents."""
        sizes = [len(self.candidate_settings(s)) * (1 if s == 1 else self.keep) for s in range(1, self.levels + 2)]
        return sum(sizes) + (sum(self._chosen(n) for n in sizes[:-1]) if self.screen else 0)

    def _chosen(self, screened: int) -> int:
        """How many of ``screened`` candidates are trained in full."""
        return max(1, math.ceil(self.screen * screened - 1e-9))

    def candidate_settings(self, stage: int) -> list[dict]:
        """The candidate settings C of a stage, the same on top of every H."""
        space = self.finetune_space if stage > self.levels else self.level_spaces[stage - 1]
        if space is None:
            return [{}]
        if self.k is not None:
            return grid_points(space, self.k)
        return [space.sample(self.rng(stage, i)) for i in range(self.candidates)]

    def _lay_out(self, first: int) -> None:
        """Number this stage's trials from ``first``: for C in the settings, for H in S."""
        level = FINETUNE if self.stage > self.levels else self.stage
        parents = [(n, self.results[n][0]) for n in self.best_set] or [(None, {})]
        self.screening = bool(self.screen) and level != FINETUNE
        how = {SCREEN: self.screen_epochs} if self.screening else {}
        self.plan = {}
        for c in self.candidate_settings(self.stage):
            for n, h in parents:
                settings = {k: v for k, v in h.items() if k not in PLACE}
                self.plan[first + len(self.plan)] = {LEVEL: level, PARENT: n, **how, **settings, **c}

    def propose(self, number):
        if self.exhausted:
            return None
        return dict(self.plan[number]) if number in self.plan else None

    def tell(self, number, params, value, pruned=None):
        super().tell(number, params, value, pruned)
        if self.exhausted or not all(n in self.results for n in self.plan):
            return
        # a trial without a value can't be built on
        ranked = sorted((v, n) for n, (_, v) in self.results.items() if n in self.plan and v < float("inf"))
        if self.screening:       # train in full the best screened, in the order they were planned
            chosen = sorted(n for _, n in ranked[:self._chosen(len(self.plan))])
            self.released += list(self.plan)
            first = max(self.plan) + 1
            self.plan = {first + i: {k: v for k, v in self.results[n][0].items() if k != SCREEN}
                         for i, n in enumerate(chosen)}
            self.screening = False
            if not self.plan:
                self.exhausted = True
            return
        # the stage is over: S becomes its K best
        kept = [n for _, n in ranked[:self.keep]]
        self.released += [n for n in self.best_set] + [n for n in self.plan if n not in kept]
        self.best_set = kept
        self.history.append(kept)
        if self.stage > self.levels or not kept:
            self.exhausted = True
            return
        self.stage += 1
        self._lay_out(max(self.plan) + 1)

    def final(self, params: dict) -> bool:
        return params.get(LEVEL) == FINETUNE

    def released_models(self) -> list[int]:
        """The trials whose models may go now (each named once)."""
        out, self.released = self.released, []
        return out


STRATEGIES["layerwise"] = Layerwise
