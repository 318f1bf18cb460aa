"""A corpus of malformed inputs, each through the command line: exit code 2, no traceback, one
message naming what was wrong and what is allowed, and nothing on disk changed or created."""

import re
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from purelearn.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = '[data]\nname = "digits"\n[model]\nhidden = [8]\n[train]\nmax_epochs = 1\n'
SEARCH = TRAIN + '[search]\ntrials = 2\nworkers = 1\n[search.space]\n"train.lr" = "loguniform(1e-2, 1)"\n'


def _npz(**arrays):
    def make(path):
        np.savez(path, **arrays)
    return make


def _idx(dims, payload: bytes, code=0x08):
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


def _sqlite(*statements):
    def make(path):
        with sqlite3.connect(path) as c:
            for s in statements:
                c.execute(s)
        c.close()
    return make


def _purelearn_store(*statements):
    def make(path):
        from purelearn.store import Store
        Store(path).engine.dispose()
        _sqlite(*statements)(path)
    return make


def _study(path):
    """A store holding study 's' of the SEARCH config, run once."""
    cfg = path.parent / "s.toml"
    cfg.write_text(SEARCH)
    assert main(["tune", str(cfg), "--store", str(path), "--study", "s", "--trials", "1"]) == 0


rng = np.random.default_rng(0)
X20 = rng.normal(size=(20, 3))
Y20 = np.arange(20) % 2

# (id, files {name: text | bytes | callable(path)}, argv ({d}: the folder), message regex)
CASES = [
    # ---- training config values ------------------------------------------------------
    *[(f"set-{k}", {"c.toml": TRAIN}, ["train", "{d}/c.toml", "--set", k], m) for k, m in [
        ("data.name=digitz", "Did you mean 'digits'"), ("model.activaton=tanh", "Did you mean 'activation'"),
        ("model.activation=tanhh", "Did you mean 'tanh'"), ("model.output=softmaxx", "Did you mean 'softmax'"),
        ("trian.lr=0.1", "Did you mean 'train'"), ("train.lr=-0.1", r"train.lr = -0.1 is out of range"),
        ("train.lr=0", "train.lr = 0.0 is out of range"), ("train.lr=inf", "train.lr = inf is out of range"),
        ("train.lr=nan", "train.lr = nan is out of range"), ("train.lr=fast", "expected a number"),
        ("train.lr=[0.1]", "expected a number"), ("train.lr=true", "expected a number"),
        ("train.patience=0", "train.patience = 0 is out of range"), ("train.patience=1.5", "expected a whole number"),
        ("train.batch_size=100000", "training-set size"), ("train.batch_size=0", "train.batch_size = 0"),
        ("train.max_epochs=0", "train.max_epochs = 0"), ("train.momentum=1", "train.momentum = 1.0"),
        ("train.momentum=-0.5", "train.momentum = -0.5"), ("train.l2=-1", "train.l2 = -1"),
        ("train.l1=[0.1,0.1,0.1]", "3 values but the model has 2 weight layers"),
        ("train.lr_scale=[1,0]", "train.lr_scale"), ("train.tau=0", "train.tau = 0.0"),
        ("train.alpha=-1", "train.alpha = -1.0"), ("train.improvement=1", "train.improvement = 1.0"),
        ("train.patience_increase=0.5", "patience_increase"), ("train.divergence=1", "train.divergence = 1.0"),
        ("train.significance=0.5", "train.significance = 0.5"), ("train.sparsity=sparse", "train.sparsity"),
        ("train.sparsity_coef=-1", "sparsity_coef"), ("train.sparsity_target=1", "sparsity_target"),
        ("train.optimizer=rmsprop", "Allowed: adagrad, adam, sgd"), ("train.patience_mode=times", "patience_mode"),
        ("train.momentum_form=heavy", "momentum_form"), ("train.seed=-1", "train.seed = -1"),
        ("train.valid_every=-5", "valid_every"), ("model.hidden=[0]", "each layer size must be a whole number >= 1"),
        ("model.hidden=[-5]", "each layer size"), ("model.hidden=[1.5]", "each layer size"),
        ("model.hidden=wide", "expected a number or a list of numbers"), ("model.init=xavier", "model.init"),
        ("model.init_scale=0", "model.init_scale = 0.0 must be > 0"),
        ("model.output=linear", "does not fit a classification task"), ("model.zero_output=1", "expected true or false"),
        ("device=tpu", "unknown device 'tpu'"), ("device=cuda", "no CUDA device is present"),
        ("data.valid=0", "data.valid must be > 0"), ("data.valid=1.5", r"data.valid = 1.5 must be a fraction"),
        ("data.test=-0.1", "data.test = -0.1"), ("data.valid=0.85", "leaves no training examples"),
        ("data.preprocess=['whiten']", "preprocessing step"), ("data.preprocess=['pca(1.5)']", r"variance fraction"),
        ("data.preprocess=['pca(0)']", r"variance fraction"), ("data.preprocess=['pca(x)']", "must be a number"),
        ("data.preprocess=['log1p(3)']", "takes no argument"), ("data.task=clustering", "unknown task"),
        ("data.seed=x", "expected a whole number"), ("data=5", "data is a section"),
        ("train=fast", "train is a section"), ("epochs=3", "unknown top-level key"), ("noequals", "write KEY=VALUE"),
        ("=3", "write KEY=VALUE"), ("model.sparsity=l1", "unknown key in \\[model\\]"),
    ]],
    ("kl-needs-sigmoid", {"c.toml": TRAIN}, ["train", "{d}/c.toml", "--set", "train.sparsity=kl"], "needs activations in"),
    ("sparsity-no-hidden", {"c.toml": TRAIN}, ["train", "{d}/c.toml", "--set", "train.sparsity=l1",
                                               "--set", "model.hidden=[]"], "model.hidden is empty"),
    ("seed-flag", {"c.toml": TRAIN}, ["train", "{d}/c.toml", "--seed", "x"], "invalid int value"),
    # ---- config files ------------------------------------------------------------------
    ("config-missing", {}, ["train", "{d}/none.toml"], "does not exist"),
    ("config-folder", {"folder.toml/x": "x"}, ["train", "{d}/folder.toml"], "is a folder"),
    ("config-broken", {"c.toml": "[train\nlr = "}, ["train", "{d}/c.toml"], "not valid TOML"),
    ("config-not-utf8", {"c.toml": b"[train]\nlr = 0.1 # \xff\xfe\n"}, ["train", "{d}/c.toml"], "not valid TOML|UTF-8"),
    ("config-unknown-section", {"c.toml": "[trainer]\nlr = 1\n"}, ["train", "{d}/c.toml"], "Did you mean 'train'"),
    ("config-bad-type", {"c.toml": "[model]\nhidden = \"big\"\n"}, ["train", "{d}/c.toml"], "model.hidden"),
    # ---- data files --------------------------------------------------------------------
    *[(f"data-{i}", {"c.toml": TRAIN.replace('"digits"', f'"{{d}}/{name}"\ntarget = "label"'), name: content},
       ["train", "{d}/c.toml"], message) for i, (name, content, message) in enumerate([
        ("t.npz", b"PK\x03\x04 truncated", "not a readable .npz"), ("e.npz", b"", "not a readable .npz"),
        ("n.npz", _npz(X=X20), "needs arrays named 'X' and 'y'"),
        ("o.npz", _npz(X=np.array([["a"]] * 20), y=Y20), "X must be numeric"),
        ("nan.npz", _npz(X=np.where(X20 > 1.5, np.nan, X20), y=Y20), "NaN or inf"),
        ("inf.npz", _npz(X=np.where(X20 > 1.5, np.inf, X20), y=Y20), "NaN or inf"),
        ("short.npz", _npz(X=X20, y=Y20[:19]), "X has 20 examples but y has 19"),
        ("zero.npz", _npz(X=np.zeros((20, 0)), y=Y20), "no features"),
        ("one.npz", _npz(X=X20, y=np.zeros(20, int)), "at least 2 classes"),
        ("empty.npz", _npz(X=np.zeros((0, 3)), y=np.zeros(0)), "empty"),
        ("ynan.npz", _npz(X=X20, y=np.where(Y20 > 0, np.nan, 0.0)), "NaN or inf"),
        ("typo.npz", _npz(X=np.repeat(X20, 5, 0), y=np.r_[np.arange(99) % 3, 1.5]), "not whole numbers"),
        ("few.npz", _npz(X=X20[:3], y=np.array([0, 1, 0])), "too few|leaves no|at least"),
        ("y2d.npz", _npz(X=X20, y=np.stack([Y20, Y20, Y20], 1) * 2), "multilabel targets must be 0 or 1|1-D"),
        ("d.csv", b"a,b,label\n1,2,\xff\n", "not UTF-8"), ("h.csv", "a,b,label\n", "header row and at least one"),
        ("r.csv", "a,b,label\n1,2,0\n1,0\n", "line 3 has 2 fields"), ("s.csv", "a,b,label\n1,x,0\n2,3,1\n", "numeric"),
        ("l.csv", "a,b,label\n1,2,0\n3,4,\n5,6,1\n", "line 3 has an empty 'label'"),
        ("z.csv", "", "header row"), ("c.txt", "1,2", "unknown format '.txt'"),
        ("a-images-idx3-ubyte", _idx([60000, 28, 28], b"\0" * 100), "header says shape"),
        ("b-images-idx3-ubyte", _idx([4294967295, 4294967295, 4294967295], b"\0" * 100), "header says shape"),
        ("c-images-idx3-ubyte", b"\x00\x00\x08", "not a readable IDX|truncated"),
        ("d-images-idx3-ubyte", b"\x01\x02\x08\x03" + b"\0" * 20, "bad magic"),
        ("e-images-idx3-ubyte", _idx([2, 2, 2], b"\0" * 8), "no label file"),
        ("f-images-idx3-ubyte.gz", b"not gzip", "not a readable IDX"),
    ])],
    ("data-folder", {"c.toml": TRAIN.replace('"digits"', '"{d}/folder.npz"'), "folder.npz/x": "x"},
     ["train", "{d}/c.toml"], "is a folder"),
    ("csv-no-target", {"c.toml": TRAIN.replace('"digits"', '"{d}/x.csv"'), "x.csv": "a,label\n1,0\n2,1\n"},
     ["train", "{d}/c.toml"], "needs data.target"),
    ("csv-bad-target", {"c.toml": TRAIN.replace('name = "digits"', 'name = "{d}/x.csv"\ntarget = "lable"'),
                        "x.csv": "a,label\n1,0\n2,1\n"}, ["train", "{d}/c.toml"], "Did you mean 'label'"),
    ("data-missing", {"c.toml": TRAIN.replace('"digits"', '"{d}/none.npz"')}, ["train", "{d}/c.toml"], "does not exist"),
    ("log1p-negative", {"c.toml": TRAIN.replace('"digits"', '"{d}/n.npz"\npreprocess = ["log1p"]'),
                        "n.npz": _npz(X=X20 - 5, y=Y20)}, ["train", "{d}/c.toml"], "needs X >= 0"),
    # ---- stores ------------------------------------------------------------------------
    *[(f"store-{i}", {"s.toml": SEARCH, **files}, ["tune", "{d}/s.toml", "--store", store], message)
      for i, (store, files, message) in enumerate([
          ("mysql://u@h/db", {}, "unknown URL scheme 'mysql://'"), ("foo://x", {}, "unknown URL scheme"),
          ("sqlite:///", {}, "needs a path"), ("sqlite://relative.db", {}, "needs a path"),
          ("{d}/file.txt/s.db", {"file.txt": "x"}, "is a file, not a folder"),
          ("{d}/folder", {"folder/x": "x"}, "is a folder"),
          ("{d}/junk.db", {"junk.db": "not a database " * 50}, "not a SQLite database"),
          ("{d}/optuna.db", {"optuna.db": _sqlite("CREATE TABLE studies (study_id INTEGER)",
                                                  "CREATE TABLE trials (trial_id INTEGER)")}, "another program's"),
          ("{d}/new.db", {"new.db": _purelearn_store("UPDATE purelearn_info SET value = '99'")}, "newer purelearn"),
          ("{d}/bad.db", {"bad.db": _purelearn_store("UPDATE purelearn_info SET value = 'x'")}, "damaged"),
          ("{d}/gone.db", {"gone.db": _purelearn_store("DROP TABLE trials")}, "damaged"),
          ("postgresql://u:s3cret@127.0.0.1:1/db", {}, "not a readable study store"),
          ("postgresql://u:s3cret@[bad/db", {}, "not a readable study store"),
          ("   ", {}, "expected a file path"),
      ])],
    *[(f"read-{cmd}-{i}", files, [cmd, store], message) for cmd in ("trials", "best", "report")
      for i, (store, files, message) in enumerate([
          ("{d}/none.db", {}, "no study store at"),
          ("{d}/optuna.db", {"optuna.db": _sqlite("CREATE TABLE studies (study_id INTEGER)")}, "another program's"),
          ("{d}/empty.db", {"empty.db": _purelearn_store()}, "holds 0 studies"),
      ])],
    ("read-unknown-study", {"s.db": _study}, ["trials", "{d}/s.db", "--study", "z"], "unknown study"),
    ("best-out-nowhere", {"s.db": _study}, ["best", "{d}/s.db", "--out", "{d}/no/such/best.toml"], "can't write"),
    # ---- study names -------------------------------------------------------------------
    *[(f"study-{i}", {"s.toml": SEARCH}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--study", name], "study name")
      for i, name in enumerate(["a/b", "..", "x\x00y", "two\nlines", "n" * 250, " ", ".hidden", "../up"])],
    # ---- search settings ---------------------------------------------------------------
    *[(f"search-{k}", {"s.toml": SEARCH}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", *k.split("|")], m)
      for k, m in [
          ("--strategy|gird", "Did you mean 'grid'"), ("--trials|0", "trials = 0"), ("--trials|-3", "trials = -3"),
          ("--workers|-1", "workers = -1"), ("--population|0", "population"), ("--population|many", "population"),
          ("--memory-limit|-5", "memory_limit = -5"), ("--set|search.strategy=grid", "search.k"),
          ("--set|search.startup=-1", "startup = -1"), ("--set|search.speed=1", "unknown key in \\[search\\]"),
          ("--set|search.expand=maybe", "expected true or false"),
      ]],
    *[(f"space-{i}", {"s.toml": SEARCH.split("[search.space]")[0] + "[search.space]\n" + knob},
       ["tune", "{d}/s.toml", "--store", "{d}/s.db"], m) for i, (knob, m) in enumerate([
          ('"train.lrr" = "loguniform(1e-3, 1)"\n', "Did you mean 'lr'"),
          ('"train.lr" = "loguniform(0, 1)"\n', "can't touch 0"),
          ('"train.lr" = "loguniform(1, 0.1)"\n', "inverted"),
          ('"model.units_2" = "intuniform(1, 9) if model.depth >= 2"\n', "doesn't exist"),
          ('"train.lr" = "gaussian(0, 1)"\n', "gaussian"),
          ('"train.lr" = true\n', "train.lr"),
          ('"train.lr" = "uniform(0.1)"\n', "uniform"),
          ('"train.lr" = "fixed(-1)"\n', "train.lr.*-1"),
          ('"model.activation" = \'choice("tanh", "sigmoidd")\'\n', "sigmoidd"),
          ('"train.lr" = "uniform(0.1, inf)"\n', "train.lr"),
          ('"model.layers" = "intuniform(1.5, 3)"\n', "model.layers"),
          ('"train.momentum" = "uniform(0, 1)"\n', "train.momentum.*1"),
          ('"train.batch_size" = "intuniform(16, 100000)"\n', "train.batch_size.*100000"),
          ('"train.sparsity" = \'choice("none", "kl")\'\n', "kl"),
      ])],
    ("options-coordinate-k1", {"s.toml": SEARCH}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--strategy",
                                                   "coordinate", "--set", "search.k=1"], "k"),
    ("options-multires-keep0", {"s.toml": SEARCH}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--strategy",
                                                    "multires", "--set", "search.keep=0"], "keep"),
    ("options-multires-stage0", {"s.toml": SEARCH}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--strategy",
                                                     "multires", "--set", "search.stage_size=0"], "stage_size"),
    ("options-grid-rounds0", {"s.toml": SEARCH}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--strategy", "grid",
                                                  "--set", "search.k=3", "--set", "search.rounds=0"], "rounds"),
    ("space-missing", {"s.toml": TRAIN + "[search]\ntrials = 2\n"}, ["tune", "{d}/s.toml", "--store", "{d}/s.db"],
     "a \\[search.space\\] table is needed"),
    ("space-not-table", {"s.toml": TRAIN + "[search]\nspace = 3\n"}, ["tune", "{d}/s.toml", "--store", "{d}/s.db"],
     "must be a table"),
    ("search-not-table", {"s.toml": "search = 3\n" + TRAIN}, ["tune", "{d}/s.toml", "--store", "{d}/s.db"],
     "must be a table"),
    ("extend-other-config", {"s.db": _study, "s.toml": SEARCH.replace("hidden = [8]", "hidden = [9]")},
     ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--study", "s", "--trials", "2"],
     r"another base configuration \(model.hidden: \[8\] then, \[9\] now\)"),
    ("extend-other-strategy", {"s.db": _study}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--study", "s",
                                                 "--strategy", "tpe"], "strategy 'random', not 'tpe'"),
    ("extend-other-space", {"s.db": _study, "s.toml": SEARCH.replace("1e-2, 1)", "1e-3, 1)")},
     ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--study", "s"], "another space"),
    ("test-twice", {"s.db": _study}, ["tune", "{d}/s.toml", "--store", "{d}/s.db", "--study", "s", "--trials", "1",
                                      "--evaluate-test", "--force"], None),
]


def _write(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{d}", str(folder)))


def _snapshot(folder: Path) -> dict:
    """Every file's content: a SQLite database as its dump and journal mode (its bytes move when
    a reader's close checkpoints the log), SQLite's -wal and -shm files aside."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.endswith(("-wal", "-shm")):
            data = p.read_bytes()
            if data.startswith(b"SQLite format 3\x00"):
                c = sqlite3.connect(p)
                data = (c.execute("PRAGMA journal_mode").fetchone()[0], list(c.iterdump()))
                c.close()
            out[str(p.relative_to(folder))] = data
    return out


def test_the_corpus_is_large():
    assert len(CASES) >= 120 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c[3] is not None], ids=lambda c: c[0])
def test_bad_input_is_named_exits_2_and_changes_nothing(case, tmp_path, capsys, monkeypatch):
    name, files, argv, message = case
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, files)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    try:
        code = main([a.replace("{d}", str(tmp_path)) for a in argv])
    except SystemExit as e:                  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and re.search(r"^(purelearn: error: |usage:)", err, re.M), err
    assert re.search(message, err), err
    assert "s3cret" not in err                               # a password is never echoed
    assert _snapshot(tmp_path) == before                     # nothing written, nothing changed
