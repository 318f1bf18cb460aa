"""The pure learning algorithm of §3: a network whose hyper-parameters are selected inside
``fit``, as a scikit-learn estimator. Selection reads only a validation part of the examples
``fit`` is given, so any estimate made outside (a test set, ``cross_val_score``) stays unbiased."""

from __future__ import annotations

import hashlib
import io
import math
import numbers
import os
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import ClassifierTags, RegressorTags, check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..config import Config, SearchSpec, read_toml, search_table
from ..data.datasets import cache_dir, from_arrays
from ..data.preprocess import apply_steps, fit_steps
from ..data.splits import Splits, check_folds, split_indices
from ..errors import ConfigError, PurelearnError, unknown
from ..files import write_atomic
from ..nn import family_of

DEFAULT_CONFIG = {"data": {"preprocess": ["standardize"]}}
DEFAULT_SPACE = {"train.lr": "loguniform(1e-3, 1)", "model.units": "intloguniform(16, 256)"}
REFITS = ("best_trial", "retrain")
TASKS = ("classification", "regression")


class HyperLearner(BaseEstimator):
    """A neural network whose hyper-parameters are chosen inside ``fit`` (§3).

    ``fit(X, y)`` holds out ``validation_fraction`` of the examples (per class for a
    classification), searches ``space`` for ``trials`` trials trained as batched populations,
    each early-stopped on that validation part, and refits the best configuration.

    Parameters
    ----------
    config : str, path, dict or purelearn.config.Config, default=None
        The base configuration: a TOML file (its ``[search]`` section gives the defaults of the
        search settings below), the same tables as a dict, or a Config. Its ``[data]`` section
        gives the preprocessing and the validation fraction, its ``search.prune`` how hopeless
        trials stop early (default auto: the median rule from 16 trials on, none with ``cv``);
        the examples are ``fit``'s. None: standardized inputs, the chapter's defaults otherwise.
    space : dict or purelearn.Space, default=None
        The knobs searched, as in ``[search.space]``. None: the config's, else
        ``DEFAULT_SPACE`` (the learning rate and the width).
    strategy : str, default=None
        random, grid, coordinate, multires, tpe or layerwise. None: the config's (random).
    trials : int, default=None
        How many configurations to train. None: the config's (64).
    validation_fraction : float, default=None
        The fraction of ``fit``'s examples held out for early stopping and selection. None: the
        config's ``data.valid`` (0.2).
    cv : int, default=None
        K >= 2: select by K-fold cross-validation instead (a trial's value is the mean of its K
        folds' early-stopped validation errors; the folds of all trials train as shared
        populations). None: the config's ``data.folds`` (0: the validation split).
    refit : {"best_trial", "retrain"}, default="best_trial"
        ``best_trial``: the best trial's own network, early-stopped on the validation part it
        was trained without (with ``cv``: its first fold's). ``retrain``: the best
        configuration trained again on every example, blind, for as many examples as the best
        trial had seen at its best validation point (with ``cv``: where the folds' mean
        validation error was lowest). Measured on digits and mnist5k (benchmarks/committee.py),
        the retrained network's test error was higher and varied more from seed to seed: its
        stopping point is another run's, and nothing checks where it lands.
    store : str, default=None
        Where the study is kept: a SQLite path or a database URL. None: in memory (it travels
        with the estimator when pickled). With a store, fitting the same data with the same
        settings again resumes or extends the study instead of training it anew.
    study : str, default=None
        The study's name prefix (``fit`` by default); its data and settings make the rest.
    population : "auto" or int, default="auto"
        Trials trained together as one batched population ("auto": measured).
    n_jobs : int, default=None
        Worker processes: None is 1, -1 every core.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the search and every trial's initialization and order.
    verbose : int, default=0
        1: a line at the start, at each tenth of the trials and at the end; 2: a line per trial.
    task : {"classification", "regression"}, default="classification"

    Attributes
    ----------
    model_ : purelearn.Model
        The refitted network with its preprocessing; it takes raw inputs.
    best_params_ : dict
        The selected trial's knobs.
    best_valid_error_ : float
        Its validation error: selected on, so an optimistic estimate (see ``purelearn evaluate``).
    refit_examples_ : int or None
        The examples the refit trained for (None with ``refit="best_trial"``).
    study_ : purelearn.Study
        Every trial of the search, their curves and the analyses of §3.4.
    classes_ : ndarray
        The class labels (classification).
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from purelearn import HyperLearner
    >>> X, y = load_iris(return_X_y=True)
    >>> learner = HyperLearner(trials=4, random_state=0).fit(X, y)
    >>> learner.score(X, y) > 0.8
    True
    """

    def __init__(self, config=None, *, space=None, strategy=None, trials=None, validation_fraction=None, cv=None,
                 refit="best_trial", store=None, study=None, population="auto", n_jobs=None, random_state=None,
                 verbose=0, task="classification"):
        self.config = config
        self.space = space
        self.strategy = strategy
        self.trials = trials
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.refit = refit
        self.store = store
        self.study = study
        self.population = population
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.task = task

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        if self.task == "regression":
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            tags.target_tags.multi_output = True
        else:
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_label=False)
        return tags

    # ---- fit --------------------------------------------------------------------------

    def fit(self, X, y):
        """Select the hyper-parameters on a validation part of (X, y), then refit; returns self."""
        from ..execute import tune

        if self.task not in TASKS:
            raise unknown("task", self.task, TASKS)
        if self.refit not in REFITS:
            raise unknown("refit", self.refit, REFITS)
        regression = self.task == "regression"
        self._shown = 0
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32), multi_output=regression,
                             y_numeric=regression, ensure_min_samples=2)
        if not regression:
            check_classification_targets(y)
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes to learn; y has the one class "
                                 f"{self.classes_[0]!r}.")
        self._single_output = y.ndim == 1
        seed = _seed(self.random_state)
        config, spec, space = self._settings()
        valid = config.data.valid if self.validation_fraction is None else self.validation_fraction
        folds = config.data.folds if self.cv is None else self.cv
        data = from_arrays(X, y, "the training data", self.task)
        strategy = self.strategy or spec.strategy
        search = dict(strategy=strategy, seed=seed, expand=spec.expand, options=replace(spec, strategy=strategy).options(),
                      prune=spec.pruning())
        running = dict(trials=self.trials or spec.trials, workers=_workers(self.n_jobs), population=self.population,
                       keep_models=spec.keep_models, memory_limit=spec.memory_limit * 2 ** 20 or None)
        with _arrays(data, self.store) as path:
            config = config.with_values({"data.name": str(path), "data.task": self.task, "data.valid": valid,
                                         "data.test": 0.0, "data.seed": seed, "data.target": "",
                                         "data.labels": "", "data.labeled": 0.0, "data.folds": folds,
                                         "data.fold": 0})
            config = _fitting_batches(config, data)
            # what the study's trials depend on names it: the same fit resumes it, more trials extend it
            name = f"{self.study or 'fit'}-{_digest(path.stem, config, space, search)}"
            held = f"{folds}-fold cross-validation" if folds else f"{valid:.0%} held out for validation"
            self._say(1, f"searching {running['trials']} trials ({strategy}) on {len(X)} examples, {held}")
            study = tune(config, space, store=self.store, study=name, progress=self._progress, **search, **running)
        best = study.best
        if best is None:
            errors = {t.error for t in study.trials if t.error}
            raise PurelearnError(f"no trial of the search finished ({len(study.trials)} failed or diverged"
                                 + (f"; e.g. {sorted(errors)[0]}" if errors else "") + ").")
        self.study_, self.best_params_, self.best_valid_error_ = study, dict(best.params), best.value
        self.model_, self.refit_examples_ = self._refit(study, best, data)
        self._say(1, f"best validation error {best.value:.4f} (trial {best.number}); "
                     + (f"refitted on all {len(X)} examples for {self.refit_examples_} examples seen"
                        if self.refit_examples_ else "kept the best trial's network"))
        return self

    def _settings(self) -> tuple[Config, SearchSpec, object]:
        """The base config, the [search] settings and the space searched."""
        given = DEFAULT_CONFIG if self.config is None else self.config
        if isinstance(given, Config):
            config, spec, knobs = given, SearchSpec(), None
        elif isinstance(given, dict):
            config, spec, knobs = search_table(given, "config")
        elif isinstance(given, (str, os.PathLike)):
            config, spec, knobs = search_table(read_toml(given), str(given))
        else:
            raise ConfigError(f"config = {given!r}: give a TOML file's path, a dict of its tables or a "
                              "purelearn Config.")
        return config, spec, self.space if self.space is not None else knobs or DEFAULT_SPACE

    def _refit(self, study, best, data):
        """(model, examples trained for): the best trial's network, or its configuration
        trained on every example for the examples at which it was best."""
        if self.refit == "best_trial":
            return study.best_model(), None
        from ..train import fit

        config = study.best_config()
        if config.pretrain.levels:
            raise ConfigError("refit = 'retrain' trains one network again; a pre-trained stack is not one: "
                              "use refit = 'best_trial'.")
        examples = examples_at_best(best)
        steps = fit_steps(config.data.preprocess, data.X)
        X = apply_steps(steps, data.X, "train")
        splits = Splits(X, data.y, X, data.y, data.task, data.n_outputs, data.name, steps=steps,
                        classes=data.classes, input_features=data.X.shape[1])
        member = config.member()
        epochs = max(member.train.max_epochs, math.ceil(examples / len(X)) + 1)
        # One validation, at the end: the network kept is the last. The mean training loss of that
        # one interval includes the first updates' spikes, so only a non-finite loss is divergence
        # here (the configuration did not diverge when it was selected).
        member = replace(member, train=replace(member.train, max_examples=examples, valid_every=examples,
                                               max_epochs=epochs, patience=examples, significance=0.0,
                                               divergence=math.inf))
        result = fit(splits, member, device=config.device)
        if result.diverged:
            warnings.warn(f"the refit on every example diverged; {type(self).__name__} keeps the best trial's "
                          "network (trained without the validation part).", RuntimeWarning, stacklevel=3)
            return study.best_model(), None
        return result.model, result.examples_seen

    # ---- predictions ------------------------------------------------------------------

    def _outputs(self, X) -> torch.Tensor:
        """The network's outputs for raw inputs, in float64: a row's result does not depend on
        the rows computed with it."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        model = self.model_
        params = {k: v.double() for k, v in model.params.items()}
        inputs = torch.as_tensor(model.inputs(X), dtype=torch.float64)
        return family_of(model.spec).predict(model.spec, params, inputs)

    def predict(self, X) -> np.ndarray:
        """Class labels or values for raw inputs X [n, features]."""
        z = self._outputs(X)
        if self.task == "classification":
            return self.classes_[z.argmax(-1).numpy()]
        values = z.numpy()
        return values.ravel() if self._single_output else values

    @available_if(lambda self: self.task == "classification")     # a regression has none
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities [n, classes] (the softmax outputs), columns in ``classes_`` order."""
        return torch.softmax(self._outputs(X), -1).numpy()

    def score(self, X, y) -> float:
        """Accuracy (classification) or the coefficient of determination R^2 (regression)."""
        return float(accuracy_score(y, self.predict(X)) if self.task == "classification"
                     else r2_score(y, self.predict(X)))

    def error(self, X, y) -> float:
        """The criterion selection minimized, on (X, y): the misclassification rate, or the
        squared error summed over the outputs (mean over examples)."""
        check_is_fitted(self)
        y = np.asarray(y)
        if self.task == "classification":
            return float((self.predict(X) != y).mean())
        values = self.predict(X).reshape(len(y), -1)
        return float(((values - y.reshape(len(y), -1)) ** 2).sum(1).mean())

    # ---- progress ---------------------------------------------------------------------

    def _say(self, level: int, text: str) -> None:
        if self.verbose >= level:
            print(f"[{type(self).__name__}] {text}", file=sys.stderr, flush=True)

    def _progress(self, p) -> None:
        every = 1 if self.verbose >= 2 else max(p.total // 10, 1)
        shown, self._shown = getattr(self, "_shown", 0), p.done       # one line per finished trial
        if self.verbose and p.done > shown and (p.done % every == 0 or p.done == p.total):
            best = "none yet" if p.best is None else f"{p.best:.4f}"
            self._say(1, f"trial {p.done}/{p.total}: best validation error {best}, {p.seconds:.1f} s")


def _fitting_batches(config: Config, data) -> Config:
    """A minibatch no larger than the training part: on a few dozen examples the default of 32
    would not fit, and a learner given them should still learn."""
    spec = config.data
    if not spec.folds and not 0 < spec.valid < 1:
        raise ConfigError(f"validation_fraction = {spec.valid!r} must be a fraction in (0, 1).")
    check_folds(spec.folds, 0)
    if spec.folds > len(data.y) // 2:
        raise ConfigError(f"cv = {spec.folds}: {len(data.y)} examples make at most {len(data.y) // 2} folds of "
                          "two examples or more.")
    train, _, _ = split_indices(data.y, (spec.valid, 0.0), spec.seed, stratify=data.task == "classification",
                                folds=spec.folds)
    if config.train.batch_size <= len(train):
        return config
    return config.with_values({"train.batch_size": max(len(train), 1)})


def examples_at_best(trial) -> int:
    """The examples a trial had seen at its lowest validation error (the first such point): where
    its value was read, or for a cross-validated trial where the folds' mean was lowest."""
    if not trial.curve:
        raise PurelearnError(f"trial {trial.number} has no learning curve to read its best point from.")
    best = min(trial.curve, key=lambda row: row["valid_error"])
    return int(best["examples_seen"])


def _seed(random_state) -> int:
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state) % 2 ** 31
    return int(check_random_state(random_state).randint(2 ** 31 - 1))


def _workers(n_jobs) -> int:
    """scikit-learn's n_jobs as processes: None 1, -1 every core, -2 all but one."""
    cores = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ConfigError(f"n_jobs = {n_jobs!r}: give a whole number of processes (-1: every core), not 0.")
    return int(n_jobs) if n_jobs > 0 else max(cores + 1 + int(n_jobs), 1)


def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


class _arrays:
    """The examples as a data file the search's workers read: in a temporary folder, removed
    afterwards, for a study kept in memory; in the data cache for a study in a store, which
    resuming it reads again."""

    def __init__(self, data, store):
        self.data, self.store, self.folder = data, store, None

    def __enter__(self) -> Path:
        buf = io.BytesIO()
        np.savez(buf, X=self.data.X, y=self.data.y)
        content = buf.getvalue()
        name = hashlib.sha256(content).hexdigest()[:24] + ".npz"
        if self.store is None:
            self.folder = tempfile.TemporaryDirectory(prefix="purelearn-fit-")
            path = Path(self.folder.name) / name
        else:
            path = cache_dir() / "arrays" / name
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            write_atomic(path, content)
        return path

    def __exit__(self, *exc) -> None:
        if self.folder is not None:
            self.folder.cleanup()
