"""Which knobs matter (§3.3, §4.2): the share of the validation error's variance over a study's
trials that each hyper-parameter explains, by functional ANOVA on a random forest fitted to the
trials (fANOVA, Hutter et al. 2014, as optuna computes it). It says where the next search should
spend its trials, and which knobs can be left at their defaults; it is an estimate from few
points, so read it as a ranking, not as exact shares."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..search import parse_space  # noqa: E402
from ..search.strategies import frozen_trial  # noqa: E402
from .unavailable import Unavailable  # noqa: E402

MIN_TRIALS = 5


def importances(study, seed: int = 0) -> dict[str, float]:
    """Each knob searched in every finished trial of ``study`` and its share of the variance
    (summing to 1), most important first."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    if study.record.strategy == "layerwise":
        raise Unavailable("a layer-wise search sets each level's knobs on its own level's trials, built on the "
                          "best below: its trials are not draws over one space, so no knob's share of the "
                          "variance can be told from them.")
    space = parse_space(study.record.space)
    done = [t for t in study.finished() if math.isfinite(t.value)]
    if len(done) < MIN_TRIALS:
        raise Unavailable(f"{len(done)} finished trial(s) are too few to tell which knob matters "
                          f"(at least {MIN_TRIALS}).")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record = optuna.create_study()
    record.add_trials([frozen_trial(space, t.params, t.value) for t in done])
    knobs = searched_in_all(record.trials)
    if len(knobs) < 2:
        which = f"only {knobs[0]!r} was" if knobs else "no knob was"
        raise Unavailable(f"{which} searched in every finished trial: there is nothing to rank it against.")
    if len({t.value for t in done}) < 2:
        raise Unavailable(f"every one of the {len(done)} finished trials scored {done[0].value:.4g}: "
                          "no knob explains a variance that is not there.")
    found = get_param_importances(record, evaluator=FanovaImportanceEvaluator(seed=seed), params=knobs)
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def searched_in_all(trials) -> list[str]:
    """The knobs with a distribution of more than one value in every trial (a conditional knob
    that only some trials have is left out: fANOVA needs every knob in every point)."""
    common = set.intersection(*(set(t.distributions) for t in trials))
    return [k for k in trials[0].distributions if k in common and not trials[0].distributions[k].single()]


def importance_figure(study, seed: int = 0, found: dict | None = None):
    """A horizontal bar per knob, its share of the variance, the largest on top (``found``: the
    :func:`importances` already computed)."""
    found = importances(study, seed) if found is None else found
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.4 * len(found)))
    names = list(found)[::-1]
    ax.barh(names, [found[k] for k in names], color="tab:blue")
    for y, k in enumerate(names):
        ax.text(found[k], y, f" {found[k]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1 * max(found.values()))
    ax.set_xlabel("share of the validation error's variance (fANOVA)")
    n = sum(math.isfinite(t.value) for t in study.finished())
    rest = [k for k in parse_space(study.record.space).dims if k not in found]
    ax.set_title(f"Hyper-parameter importance over {n} finished trials" + (
        f"\nnot ranked (not searched in every trial, or fixed): {', '.join(rest)}" if rest else ""), fontsize=9)
    fig.tight_layout()
    return fig
