"""The report's pictures of a study's models and knobs (§4.2): which pictures the best trial's
model can have, the data they are drawn on, and each one as an embedded PNG under its heading,
or, where it can't be drawn, the sentence that says why."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np

from ..data.splits import labeled_part, split_indices
from ..errors import PurelearnError
from ..nn import family_of
from ..train import Model
from ..train.monitor import MONITORED
from .embedding import tsne_figure
from .filters import filters_figure, first_layer, mixing_steps
from .generative import reconstructions_figure, samples_figure
from .hinton import hinton_figure
from .importance import importance_figure
from .statistics import histograms_figure, trends_figure
from .unavailable import Unavailable

OTHERS = 2                     # kept models after the best whose filters are drawn too
OTHER_UNITS = 50


@dataclass
class Picture:
    """name: the PNG's file name and the image's alt text. draw: makes the figure, or raises
    :class:`Unavailable`."""

    name: str
    heading: str
    caption: str
    draw: Callable


@dataclass
class RawSplits:
    """The inputs of a config's splits as loaded (a model's ``inputs`` preprocesses them):
    ``X_train`` the labeled training inputs, ``X_inputs`` every training input (labeled first,
    then the unlabeled), ``y_valid`` class indices (or targets)."""

    X_train: np.ndarray
    X_inputs: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    classes: tuple | None


def raw_splits(spec) -> RawSplits:
    """The training and validation examples ``spec.splits()`` holds, before preprocessing: the
    same indices (``split_indices`` and ``labeled_part`` with the split's seed). The test split
    is not touched."""
    data = spec.dataset()
    stratify = data.task == "classification"
    train, valid, _ = split_indices(data.y, (spec.valid, spec.test), spec.seed, stratify=stratify,
                                    folds=spec.folds, fold=spec.fold)
    keep = labeled_part(data.y[train], spec.labeled, spec.seed, stratify=stratify)
    X = data.X[train]
    return RawSplits(X[keep], np.concatenate([X[keep], X[~keep]]), data.X[valid], data.y[valid], data.classes)


def best_model(study) -> tuple[int, Model, RawSplits]:
    """(trial number, model, raw splits) of the study's best trial, or Unavailable saying why not."""
    if study.config() is None:
        raise Unavailable("this study searched a Python function: there is no trained network to draw.")
    best = study.best
    if best is None:
        raise Unavailable("no trial has finished yet.")
    try:
        model = study.best_model()
        data = raw_splits(study.best_config().data)
    except PurelearnError as e:
        raise Unavailable(str(e)) from None
    if data.X_valid.shape[1] != model.n_inputs:
        raise Unavailable(f"the best model takes {model.n_inputs} inputs, but its data now has "
                          f"{data.X_valid.shape[1]}; was the data file changed?")
    return best.number, model, data


def other_models(study, best: int) -> list[tuple[int, Model, str]]:
    """Up to OTHERS kept models after the best, as (trial, the model whose first layer is drawn,
    what it is): a stack of pre-trained levels is drawn by its first level."""
    out = []
    for number, kept in study.models().items():
        if number == best or len(out) == OTHERS:
            continue
        if isinstance(kept, Model):
            out.append((number, kept, f"trial {number}"))
        else:
            out.append((number, kept.levels[0], f"trial {number}, its level 1"))
    return out


def model_pictures(number: int, model: Model, data: RawSplits, others=()) -> list[Picture]:
    """The pictures of one trial's model that its family has, in the report's order."""
    family = family_of(model.spec)
    train = data.X_train if family.supervised else data.X_inputs
    mixed = mixing_steps(model)
    basis = (f" The inputs go through {' and '.join(mixed)} before the first layer, which mixes them: each filter "
             f"is drawn as its weight on each {mixed[0]} component (the {mixed[0]} basis), not as an image."
             if mixed else "")
    zeroed = (" Inputs that are zero in every training example are drawn as 0: training leaves them out, so "
              "their weights keep their random initial values." if family.leaves_out_constant_inputs else "")
    pictures = [Picture("filters", f"First-layer filters (trial {number})",
                        "Each unit's input weights as a picture of the input it responds to most; strokes and "
                        "blobs are learned features, salt-and-pepper noise a unit that has not learned." + zeroed
                        + basis, lambda: filters_figure(model, train, title=f"Trial {number}"))]
    for n, other, what in others:
        pictures.append(Picture(f"filters-trial-{n}", f"First-layer filters ({what})",
                                "The same picture for another of the kept models, its first units.",
                                lambda other=other, what=what: filters_figure(other, train, OTHER_UNITS,
                                                                              title=what.capitalize())))
    pictures.append(Picture("hinton", "Hinton diagram of the first layer",
                            "One square per weight (a row per unit, a column per input), its area proportional "
                            "to |w|: a few large weights stand out, and so do inputs no unit uses." + zeroed,
                            lambda: hinton_figure(first_layer(model, train), f"trial {number}, first layer")))
    top = [k for k in model.params if k.startswith("W")]
    if family.supervised and len(top) > 1:
        last = top[-1]
        pictures.append(Picture("hinton-output", "Hinton diagram of the output layer",
                                "The output layer's weights, a row per class and a column per unit of the top "
                                "hidden layer: which units each class relies on.",
                                lambda: hinton_figure(model.params[last].numpy(), f"trial {number}, {last}",
                                                      xlabel="top hidden unit", ylabel="output")))
    pictures.append(Picture("tsne", "t-SNE of the top representation",
                            "Validation examples placed by t-SNE so that examples near each other in the top "
                            "hidden layer stay near each other; well-separated colours are classes a linear "
                            "output can tell apart.",
                            lambda: tsne_figure(model, data.X_valid, data.y_valid, data.classes)))
    if not family.supervised:
        pictures.append(Picture("reconstructions", "Reconstructions",
                                "Validation inputs (as the model sees them, preprocessed) above what the model "
                                "makes of them" + (" and of the same inputs corrupted, what a denoising "
                                                   "auto-encoder learns to undo." if getattr(
                                                       model.spec, "corruption_level", 0) > 0 else "."),
                                lambda: reconstructions_figure(model, data.X_valid)))
    if model.spec.family == "rbm":
        pictures.append(Picture("samples", "Samples (Gibbs chains)",
                                "Chains of block Gibbs sampling started from validation inputs: the longer they "
                                "run, the more they show what the RBM believes inputs look like, not the "
                                "inputs they started from.",
                                lambda: samples_figure(model, data.X_valid)))
    return pictures


def importance_picture(study) -> Picture:
    return Picture("importance", "Hyper-parameter importance",
                   "Each knob's share of the variance of the validation error over the finished trials (fANOVA, "
                   "optuna's evaluator): where further search pays, and which knobs can stay at their defaults. "
                   "An estimate from few points: read it as a ranking.", lambda: importance_figure(study))


def render(picture: Picture, out: Path) -> str:
    """The picture's HTML section: heading, caption and the PNG (written to ``out`` and embedded),
    or the sentence saying why it isn't drawn."""
    e = html.escape
    try:
        fig = picture.draw()
    except Unavailable as why:
        return f"<h3>{e(picture.heading)}</h3><p class=\"unavailable\">Not drawn: {e(str(why))}</p>"
    except Exception as failure:   # one picture that fails must not cost the reader the whole report
        return (f"<h3>{e(picture.heading)}</h3><p class=\"unavailable\">Not drawn: the picture failed "
                f"({e(type(failure).__name__)}: {e(str(failure)[:300])}).</p>")
    path = out / f"{picture.name}.png"
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    b64 = base64.b64encode(path.read_bytes()).decode()
    return (f"<h3>{e(picture.heading)}</h3><p>{e(picture.caption)}</p>"
            f'<img alt="{e(picture.name)}" src="data:image/png;base64,{b64}">')


def pictures_html(study, out: str | Path) -> str:
    """The report's sections of pictures: the knobs' importance, then the best trial's model."""
    out = Path(out)
    parts = ["<h2>Which knobs mattered</h2>", render(importance_picture(study), out)]
    parts += statistics_html(study, out)
    try:
        number, model, data = best_model(study)
    except Unavailable as why:
        parts.append(f"<h2>The best model</h2><p class=\"unavailable\">No pictures of the model: "
                     f"{html.escape(str(why))}</p>")
        return "\n".join(parts)
    parts.append(f"<h2>The best model (trial {number}, {html.escape(model.spec.family)})</h2>"
                 f"<p>{html.escape(describe(model))}</p>")
    others = other_models(study, number)
    parts += [render(p, out) for p in model_pictures(number, model, data, others)]
    return "\n".join(parts)


def statistics_html(study, out: Path) -> list[str]:
    """The best trial's layer statistics over training (§4.2), when it was monitored."""
    best = study.best
    if best is None:
        return []
    stats = study.statistics(best.number)
    parts = [f"<h2>Inside the best trial's layers while it trained (trial {best.number})</h2>"]
    if stats is None:
        return parts + ["<p class=\"unavailable\">Not recorded: the trial was not monitored; set "
                        "<code>train.monitor</code> (examples between snapshots, e.g. <code>tune --monitor "
                        "2000</code>) to keep every layer's statistics with each trial.</p>"]
    return parts + [
        render(Picture("histograms", "Histograms over training",
                       f"Each layer's outputs and the gradient of each example's loss with respect to its "
                       f"pre-activations, on {MONITORED} fixed training examples, at each snapshot (x): the colour "
                       "is the share of values in each bin (a logarithmic scale of either sign, or the range of a "
                       "bounded non-linearity). Outputs piling up at a bound are saturated units; gradients "
                       "shrinking from layer to layer, lower layers that hardly learn.",
                       lambda: histograms_figure(stats)), out),
        render(Picture("trends", "Updates and linear probes over training",
                       "The mean size of each weight tensor's last update relative to the weights' (about 1/1000 "
                       "is healthy, §6.2), and the validation error of a ridge classifier reading each layer "
                       "(how much of the class each representation makes linear).",
                       lambda: trends_figure(stats)), out)]


def describe(model: Model) -> str:
    """The model in one line: its units per layer and its preprocessing."""
    weights = [v for k, v in model.params.items() if k.startswith("W")]
    sizes = family_of(model.spec).sizes(model.spec, int(weights[0].shape[-1]), int(weights[-1].shape[0]))
    steps = ", ".join(s.name for s in model.preprocessing) or "none"
    return f"Units per layer (input first): {'-'.join(map(str, sizes))}; preprocessing: {steps}."
