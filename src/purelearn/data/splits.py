"""Train / validation / test splits (§3): selection uses validation, the test split is read once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, TestSetError
from .datasets import Dataset
from .preprocess import apply_steps, fit_steps


@dataclass
class Splits:
    """Preprocessed splits. ``X_train``/``X_valid`` are open; the test split is held apart, as
    loaded (raw inputs, the original labels), and comes only through :meth:`read_test`, once: a
    trained model's ``predict`` applies the fitted preprocessing (``steps``) itself.
    ``classes``: the label of each class index (None: the labels are the indices).
    ``input_features``: the raw inputs' width, before preprocessing. ``X_unlabeled``: training
    inputs whose labels are not used (``data.labeled``): the families that learn their own
    inputs train on them too (:meth:`inputs`), the supervised ones never see them."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    task: str
    n_outputs: int
    name: str
    _test: tuple = field(repr=False, default=None)
    test_reads: int = 0
    steps: list = field(default_factory=list, repr=False)
    classes: tuple | None = None
    input_features: int | None = None
    X_unlabeled: np.ndarray | None = field(default=None, repr=False)

    def inputs(self) -> np.ndarray:
        """Every training input, labeled first, then the unlabeled ones (§1.1's pre-training data)."""
        if self.X_unlabeled is None or not len(self.X_unlabeled):
            return self.X_train
        return np.concatenate([self.X_train, self.X_unlabeled])

    def read_test(self, force: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The test split as loaded (raw inputs, original labels), to be read once, after
        selection is over. A second read is refused unless ``force`` (each read is counted in
        ``test_reads``)."""
        if self._test is None:
            raise TestSetError(f"{self.name}: these splits were made with test=0; there is no test split.")
        if self.test_reads and not force:
            raise TestSetError(f"{self.name}: the test split was already read {self.test_reads} time(s). "
                               "Estimates from a reused test set are biased; pass force=True to read it anyway.")
        self.test_reads += 1
        return self._test

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def preprocess(self, X: np.ndarray) -> np.ndarray:
        """Raw inputs through the steps fitted on the training split."""
        return apply_steps(self.steps, np.asarray(X, dtype=np.float32), "new")


def split_indices(y: np.ndarray, fractions: tuple[float, float], seed: int,
                  stratify: bool, folds: int = 0, fold: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled train/valid/test indices; per class when ``stratify`` so each split keeps the
    class proportions (bundled sets can be sorted by label). With ``folds`` = K > 1 the
    validation part is fold ``fold`` of K cut from what the test split leaves (see
    :func:`fold_of`); the test split is the same as without folds."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    parts = ([], [], [])
    for g in groups:
        g = rng.permutation(g)
        n_valid, n_test = (int(round(f * len(g))) for f in fractions)
        parts[1].append(g[:n_valid])
        parts[2].append(g[n_valid:n_valid + n_test])
        parts[0].append(g[n_valid + n_test:])
    train, valid, test = (rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)
    if folds:
        pool = np.concatenate([train, valid])
        where = fold_of(y[pool], folds, seed, stratify)
        train, valid = pool[where != fold], pool[where == fold]
    return train, valid, test


def fold_of(y: np.ndarray, folds: int, seed: int, stratify: bool) -> np.ndarray:
    """Each example's fold (0..K-1), or -1: K folds of exactly n // K examples each (dealt in
    turn from a class-sorted shuffle when ``stratify``, so each keeps the class proportions),
    so that every fold's training part has the same size; the n mod K examples left over (at
    most K - 1) validate in no fold and train in every one."""
    rng = np.random.default_rng([seed, 2])
    order = rng.permutation(len(y))
    if stratify:
        order = order[np.argsort(y[order], kind="stable")]
    size = len(y) // folds
    where = np.full(len(y), -1, dtype=np.int64)
    dealt = np.arange(len(y))
    where[order] = np.where(dealt < size * folds, dealt % folds, -1)
    return where


def labeled_part(y: np.ndarray, labeled: float, seed: int, stratify: bool) -> np.ndarray:
    """A sorted mask of the training examples whose labels are used: ``labeled`` is a fraction
    in (0, 1) or a count >= 1 (0: all), drawn per class when ``stratify``."""
    n = len(y)
    if labeled == 0:
        return np.ones(n, bool)
    count = int(round(labeled * n)) if labeled < 1 else int(labeled)
    if labeled < 0 or (labeled >= 1 and labeled != int(labeled)) or not 1 <= count <= n:
        raise ConfigError(f"data.labeled = {labeled!r}: give a fraction in (0, 1), or a whole number of labeled "
                          f"training examples from 1 to {n} (0: every training example is labeled).")
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(n)
    if not stratify:
        chosen = order[:count]
    else:   # each class its share of the count, rounded so the shares add up (largest remainders)
        classes, sizes = np.unique(y, return_counts=True)
        quota = count * sizes / n
        shares = np.floor(quota).astype(int)
        shares[np.argsort(shares - quota, kind="stable")[:count - shares.sum()]] += 1
        chosen = np.concatenate([order[y[order] == c][:k] for c, k in zip(classes, shares)])
    mask = np.zeros(n, bool)
    mask[chosen] = True
    return mask


def prepare(data: Dataset, *, valid: float = 0.2, test: float = 0.2, seed: int = 0,
            preprocess=(), labeled: float = 0, folds: int = 0, fold: int = 0) -> Splits:
    """Split ``data`` (stratified for classification, seeded) and fit ``preprocess`` on train
    (every training input, labeled or not). ``labeled``: see :func:`labeled_part`. ``folds`` =
    K >= 2: cross-validation, the validation part is fold ``fold`` (0..K-1) of what the test
    split leaves (``valid`` is then unused; see :func:`fold_of`)."""
    for key, f in (("data.valid", valid), ("data.test", test)):
        if not 0 <= f < 1:
            raise ConfigError(f"{key} = {f} must be a fraction in [0, 1).")
    check_folds(folds, fold)
    if valid <= 0 and not folds:
        raise ConfigError("data.valid must be > 0: hyper-parameters and early stopping are chosen on it.")
    if valid + test >= 1 and not folds:
        raise ConfigError(f"data.valid + data.test = {valid + test} leaves no training examples; keep it below 1.")
    tr, va, te = split_indices(data.y, (valid, test), seed, stratify=data.task == "classification",
                               folds=folds, fold=fold)
    if len(tr) == 0 or len(va) == 0:
        raise DataError(f"{data.name}: {len(data.X)} examples are too few to split into train and valid.")
    steps = fit_steps(preprocess, data.X[tr])
    X = {s: apply_steps(steps, data.X[i], s) for s, i in (("train", tr), ("valid", va))}
    test_part = (data.X[te], data.labels(data.y[te])) if len(te) else None
    keep = labeled_part(data.y[tr], labeled, seed, stratify=data.task == "classification")
    return Splits(X["train"][keep], data.y[tr][keep], X["valid"], data.y[va], data.task, data.n_outputs,
                  data.name, test_part, steps=steps, classes=data.classes, input_features=data.X.shape[1],
                  X_unlabeled=X["train"][~keep] if not keep.all() else None)


def check_folds(folds: int, fold: int) -> None:
    if not isinstance(folds, int) or isinstance(folds, bool) or folds == 1 or folds < 0:
        raise ConfigError(f"data.folds = {folds!r}: give a whole number of cross-validation folds >= 2 "
                          "(0: one validation split of data.valid).")
    if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < max(folds, 1):
        raise ConfigError(f"data.fold = {fold!r}: the fold that validates is a whole number from 0 to "
                          f"{max(folds - 1, 0)} (data.folds = {folds}).")
