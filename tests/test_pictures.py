"""The report's pictures of models and knobs (§4.2), each checked against the numbers it draws:
filters against the weights, the Hinton diagram's squares against |w|, the t-SNE map's points
against the classes, reconstructions and Gibbs chains against the family's own computations,
the knobs' importance against the space; and the report of every kind of study."""

import re
import sqlite3

import numpy as np
import pytest
import torch

import purelearn as pl
from purelearn.config import load_config
from purelearn.data.preprocess import apply_steps, fit_steps
from purelearn.execute import Study, tune
from purelearn.nn import family_of
from purelearn.report import write_report
from purelearn.store import Store
from purelearn.report.embedding import class_colours, tsne_figure, tsne_points
from purelearn.report.filters import filters_figure, first_layer
from purelearn.report.generative import gibbs_samples, reconstructions, reconstructions_figure, samples_figure
from purelearn.report.hinton import GAP, hinton_collection, hinton_figure
from purelearn.report.importance import importance_figure, importances
from purelearn.report.pictures import best_model
from purelearn.report.tiles import PAD, image_shape, mosaic, tile
from purelearn.report.unavailable import Unavailable
from purelearn.search.strategies import frozen_trial

SCALED = ["data.preprocess=['scale']", "train.max_epochs=2"]


@pytest.fixture(scope="module")
def mlp_study(tmp_path_factory):
    """Six digits MLPs, two knobs: enough trials for the knobs' importance."""
    cfg = load_config(None, ["model.hidden=[24]", "train.max_epochs=2"])
    return tune(cfg, {"train.lr": "loguniform(0.01, 0.5)", "train.momentum": "uniform(0, 0.9)"}, trials=6,
                store=tmp_path_factory.mktemp("mlp") / "s.db", study="mlp", workers=1)


@pytest.fixture(scope="module")
def dae_study(tmp_path_factory):
    cfg = load_config(None, SCALED + ['model.family="autoencoder"', "model.hidden=20", "model.corruption_level=0.3"])
    return tune(cfg, {"train.lr": "loguniform(0.05, 0.2)"}, trials=2, store=tmp_path_factory.mktemp("dae") / "s.db",
                study="dae", workers=1)


@pytest.fixture(scope="module")
def rbm_study(tmp_path_factory):
    cfg = load_config(None, SCALED + ['model.family="rbm"', "model.hidden=20"])
    return tune(cfg, {"train.lr": "loguniform(0.05, 0.2)"}, trials=2, store=tmp_path_factory.mktemp("rbm") / "s.db",
                study="rbm", workers=1)


def _score(params, report):
    return sum(float(v) for v in params.values() if isinstance(v, (int, float)))


def _function_study(space, trials=8, **kwargs):
    return tune(_score, space, trials=trials, **kwargs)


def _pixels(fig) -> np.ndarray:
    """The one image of a figure's first axes, the background cells NaN."""
    return np.ma.filled(fig.axes[0].images[0].get_array().astype(np.float64), np.nan)


# ---- the data the pictures are drawn on ----------------------------------------------------

def test_raw_splits_are_the_examples_of_the_configs_splits_before_preprocessing(mlp_study):
    number, model, raw = best_model(mlp_study)
    splits = mlp_study.best_config().data.splits()
    assert number == mlp_study.best.number
    np.testing.assert_allclose(model.inputs(raw.X_valid), splits.X_valid, atol=1e-6)
    np.testing.assert_allclose(model.inputs(raw.X_train), splits.X_train, atol=1e-6)
    assert np.array_equal(raw.y_valid, splits.y_valid)


# ---- filters -----------------------------------------------------------------------------

def test_filter_tiles_are_each_units_weights_scaled_with_left_out_inputs_zero(mlp_study):
    _, model, raw = best_model(mlp_study)
    W = model.params["W0"].numpy().astype(np.float64)          # [24 units, 64 inputs]
    dead = ~(model.inputs(raw.X_train) != 0).any(0)
    assert dead.any() and np.abs(W[:, dead]).min() > 0       # digits' blank pixels: random weights left over
    image = _pixels(filters_figure(model, raw.X_train))
    assert image.shape == (3 * (8 + PAD) - PAD, 10 * (8 + PAD) - PAD)   # 24 units: 3 rows of 10 tiles
    for unit in range(24):
        expected = np.where(dead, 0.0, W[unit]) / np.abs(W[unit][~dead]).max()
        np.testing.assert_allclose(tile(image, (8, 8), unit // 10, unit % 10), expected, atol=1e-6)
    assert np.isnan(tile(image, (8, 8), 2, 4)).all()          # no 25th unit: background
    assert np.abs(first_layer(model, raw.X_train)[:, ~dead] - W[:, ~dead]).max() == 0


def test_an_auto_encoders_filters_keep_every_input_it_trained_on(dae_study):
    _, model, raw = best_model(dae_study)
    assert not family_of(model.spec).leaves_out_constant_inputs
    assert np.array_equal(first_layer(model, raw.X_inputs), model.params["W0"].numpy())


def _model(n_inputs, preprocess=(), hidden=7, seed=0):
    """An MLP with drawn weights and fitted preprocessing, as training would leave it."""
    X = np.random.default_rng(seed).normal(size=(50, n_inputs)).astype(np.float32)
    steps = fit_steps(preprocess, X)
    spec = pl.MLP(hidden=(hidden,))
    width = apply_steps(steps, X, "train").shape[1]
    return pl.Model(spec, family_of(spec).init(spec, width, 3, seed), steps, None, n_inputs), X


@pytest.mark.parametrize("n_inputs, preprocess", [(40, ()), (64, ("pca(5)",))])
def test_filters_of_inputs_that_are_no_square_image_are_line_plots_of_the_weights(n_inputs, preprocess):
    model, X = _model(n_inputs, preprocess)
    fig = filters_figure(model, X)
    lines = fig.axes[0].collections[0]
    assert not fig.axes[0].images and len(lines.get_segments()) == 7
    W = model.params["W0"].numpy()
    for unit, segment in enumerate(lines.get_segments()):            # cell (0, unit): y = -0.95 + 0.9 u
        drawn = (segment[:, 1] + 0.95) / 0.9 * 2 - 1
        np.testing.assert_allclose(drawn, W[unit] / np.abs(W[unit]).max(), atol=1e-6)
    assert ("pca basis" in fig.axes[0].get_title()) == bool(preprocess)


def test_image_shape_and_mosaic():
    assert image_shape(784) == (28, 28) and image_shape(64) == (8, 8) and image_shape(40) is None
    v = np.arange(12.0).reshape(3, 4)
    m = mosaic([v[:2], v[2:]], (2, 2))
    assert m.shape == (2 * 2 + PAD, 2 * 2 + PAD) and np.array_equal(tile(m, (2, 2), 1, 0), v[2])
    assert np.isnan(tile(m, (2, 2), 1, 1)).all()


# ---- Hinton diagram ------------------------------------------------------------------------

def test_the_hinton_diagram_has_one_square_per_weight_of_area_proportional_to_its_size():
    W = np.random.default_rng(1).normal(size=(5, 7))
    W[2, 3] = 0.0
    squares = hinton_collection(W)
    paths = squares.get_paths()
    assert len(paths) == W.size
    corners = np.array([p.vertices[:4] for p in paths])
    x, y = corners[..., 0], corners[..., 1]
    areas = 0.5 * np.abs((x * np.roll(y, -1, 1) - np.roll(x, -1, 1) * y).sum(1))   # the shoelace formula
    np.testing.assert_allclose(areas, GAP ** 2 * np.abs(W).ravel() / np.abs(W).max(), atol=1e-12)
    centres = corners.mean(1)
    rows, cols = np.indices(W.shape)
    np.testing.assert_allclose(centres, np.column_stack([cols.ravel(), rows.ravel()]), atol=1e-12)
    colours = squares.get_facecolor()[:, :3]
    assert np.array_equal(colours[W.ravel() > 0], np.ones(((W > 0).sum(), 3)))
    assert np.array_equal(colours[W.ravel() < 0], np.zeros(((W < 0).sum(), 3)))
    fig = hinton_figure(W)
    assert fig.axes[0].collections[0].get_paths()[0].vertices.shape[0] >= 4 and fig.axes[0].get_ylim()[0] > 0


# ---- t-SNE -----------------------------------------------------------------------------------

def test_tsne_map_draws_every_example_once_in_its_classs_colour(mlp_study):
    _, model, raw = best_model(mlp_study)
    fig = tsne_figure(model, raw.X_valid, raw.y_valid, limit=200)
    y = raw.y_valid[:200]
    groups = fig.axes[0].collections
    assert len(groups) == len(np.unique(y)) == 10
    assert sum(len(g.get_offsets()) for g in groups) == 200
    colours = class_colours(10)
    for c, g in enumerate(groups):
        assert len(g.get_offsets()) == (y == c).sum()
        np.testing.assert_allclose(g.get_facecolor()[0][:3], colours[c][:3])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [str(c) for c in range(10)]
    points = tsne_points(model.encode(raw.X_valid[:200]))                       # seeded: the same map again
    for c, g in enumerate(groups):
        np.testing.assert_allclose(g.get_offsets(), points[y == c], rtol=1e-5)


def test_tsne_refuses_targets_that_are_not_classes(mlp_study):
    _, model, raw = best_model(mlp_study)
    with pytest.raises(Unavailable, match="not classes"):
        tsne_figure(model, raw.X_valid, raw.y_valid.astype(np.float32))


# ---- reconstructions and samples -------------------------------------------------------------

def test_a_denoising_auto_encoders_rows_are_its_inputs_their_corruption_and_reconstructions(dae_study):
    _, model, raw = best_model(dae_study)
    X = raw.X_valid[:10]
    rows = reconstructions(model, X)
    assert list(rows) == ["input", "masking 0.3", "reconstructed", "clean reconstructed"]
    x, masked = model.inputs(X), rows["masking 0.3"]
    assert np.all((masked == x) | (masked == 0))                                # masking: kept or set to 0
    assert 0.2 < ((masked == 0) & (x != 0)).sum() / (x != 0).sum() < 0.4
    np.testing.assert_allclose(rows["clean reconstructed"], model.scores(X).numpy(), atol=1e-6)
    np.testing.assert_allclose(rows["reconstructed"], family_of(model.spec).predict(
        model.spec, model.params, torch.as_tensor(masked)).numpy(), atol=1e-6)
    image = _pixels(reconstructions_figure(model, X))
    for r, row in enumerate(rows.values()):
        np.testing.assert_allclose(tile(image, (8, 8), r, 3), row[3], atol=1e-6)


def test_an_rbms_gibbs_chains_start_at_the_inputs_and_are_seeded(rbm_study):
    _, model, raw = best_model(rbm_study)
    X = raw.X_valid[:10]
    chains = gibbs_samples(model, X)
    assert list(chains) == [0, 1, 10, 100, 300]
    np.testing.assert_allclose(chains[0], model.inputs(X))
    assert all(0 <= v.min() and v.max() <= 1 for v in chains.values())
    again, other = gibbs_samples(model, X), gibbs_samples(model, X, seed=1)
    assert all(np.array_equal(chains[t], again[t]) for t in chains)
    assert not np.array_equal(chains[300], other[300])
    assert len(samples_figure(model, X).axes[0].images) == 1
    rows = reconstructions(model, X)
    assert list(rows) == ["input", "reconstructed"]
    np.testing.assert_allclose(rows["reconstructed"], model.scores(X).numpy(), atol=1e-6)


def test_a_network_of_targets_has_no_reconstruction_and_only_an_rbm_samples(mlp_study, dae_study):
    _, mlp, raw = best_model(mlp_study)
    with pytest.raises(Unavailable, match="learns targets"):
        reconstructions(mlp, raw.X_valid[:3])
    _, dae, raw = best_model(dae_study)
    with pytest.raises(Unavailable, match="an RBM does"):
        gibbs_samples(dae, raw.X_valid[:3])


# ---- the knobs' importance -------------------------------------------------------------------

def test_importance_ranks_the_spaces_knobs_and_sums_to_one(mlp_study):
    found = importances(mlp_study)
    assert set(found) == {"train.lr", "train.momentum"}
    assert sum(found.values()) == pytest.approx(1) and min(found.values()) >= 0
    assert list(found.values()) == sorted(found.values(), reverse=True)
    bars = importance_figure(mlp_study, found=found).axes[0]
    assert [t.get_text() for t in bars.get_yticklabels()] == list(found)[::-1]
    assert [p.get_width() for p in bars.patches] == list(found.values())[::-1]


def test_importance_leaves_out_a_conditional_knob_and_refuses_too_little():
    space = pl.Space({"x": pl.Uniform(0, 1), "layers": pl.IntUniform(1, 2), "c": pl.Choice(("a", "b")),
                      "u2": pl.Uniform(0, 1, when=pl.When("layers", ">=", 2))})
    conditional = _function_study(space, trials=12)
    assert set(importances(conditional)) == {"x", "layers", "c"}
    assert importance_figure(conditional).axes[0].get_title().endswith("not ranked (not searched in every trial, "
                                                                       "or fixed): u2")
    with pytest.raises(Unavailable, match="too few"):
        importances(_function_study(space, trials=4))
    with pytest.raises(Unavailable, match="only 'x'"):
        importances(_function_study(pl.Space({"x": pl.Uniform(0, 1), "f": pl.Fixed(2)})))
    grid = _function_study(pl.Space({"x": pl.Uniform(0, 1), "y": pl.Uniform(0, 1)}), strategy="grid",
                           options={"k": 3}, trials=9)
    assert set(importances(grid)) == {"x", "y"}


# ---- the report --------------------------------------------------------------------------------

def _sections(page):
    return re.findall(r"<h3>([^<]*)</h3>", page)


def _failed(page):
    return re.findall(r"the picture failed[^<]*", page)


def test_the_report_of_an_mlp_study_has_every_picture(mlp_study, tmp_path):
    page = write_report(mlp_study, tmp_path).read_text()
    best = mlp_study.best.number
    assert _sections(page)[:2] == ["Hyper-parameter importance", f"First-layer filters (trial {best})"]
    assert {"Hinton diagram of the first layer", "Hinton diagram of the output layer",
            "t-SNE of the top representation"} <= set(_sections(page))
    assert sum("First-layer filters" in s for s in _sections(page)) == 3                  # the best and 2 more kept
    for name in ("importance", "filters", "hinton", "hinton-output", "tsne"):
        assert f'alt="{name}" src="data:image/png;base64,' in page and (tmp_path / f"{name}.png").stat().st_size > 3000
    assert "Not drawn" not in page and page.index("Which knobs mattered") < page.index("Best trials")


@pytest.mark.parametrize("study, pictures", [("dae_study", {"reconstructions"}), ("rbm_study", {"reconstructions",
                                                                                                "samples"})])
def test_the_report_of_a_model_of_its_inputs_shows_what_it_makes_of_them(study, pictures, request, tmp_path):
    page = write_report(request.getfixturevalue(study), tmp_path).read_text()
    assert not _failed(page)
    for name in pictures | {"filters", "hinton", "tsne"}:
        assert f'alt="{name}" src="data:image/png;base64,' in page
    assert ('alt="samples"' in page) == ("samples" in pictures) and 'alt="hinton-output"' not in page
    assert "Not drawn: 2 finished trial(s) are too few" in page


def test_the_report_says_why_a_model_is_not_drawn(mlp_study, tmp_path):
    page = write_report(_function_study(pl.Space({"x": pl.Uniform(0, 1)}), trials=6), tmp_path).read_text()
    assert "No pictures of the model: this study searched a Python function" in page
    assert "only 'x' was searched" in page.replace("&#x27;", "'") and 'alt="filters"' not in page
    copy = tmp_path / "copy.db"
    with sqlite3.connect(mlp_study.store.path) as source, sqlite3.connect(copy) as c:
        source.backup(c)                                     # the study's own store stays whole
        c.execute("DELETE FROM models")
    store = Store(copy)
    missing = Study(store, store.study("mlp"))
    page = write_report(missing, tmp_path / "missing").read_text()
    assert "No pictures of the model:" in page and "not that of the best trial" in page
    assert 'alt="importance"' in page and not _failed(page)


def test_the_report_of_a_layerwise_search_says_why_it_ranks_no_knob(tmp_path):
    study = tune(_score, {"level.a": "choice(0.1, 0.5)", "ft": "choice(0.2, 0.6)"}, strategy="layerwise",
                 options={"levels": 2, "keep": 1, "k": 2}, study="s")
    page = write_report(study, tmp_path).read_text()
    assert "Levels searched" in page and "layer-wise search sets each level" in page and not _failed(page)


def test_a_finished_trial_becomes_the_optuna_trial_tpe_and_the_importance_read():
    space = pl.Space({"lr": pl.LogUniform(1e-3, 1), "n": pl.IntUniform(1, 4), "a": pl.Choice(("tanh", "relu")),
                      "f": pl.Fixed(3)})
    trial = frozen_trial(space, {"lr": 0.1, "n": 2, "a": "relu", "f": 3, "gone": 1}, 0.25)
    assert trial.params == {"lr": 0.1, "n": 2, "a": 1} and trial.value == 0.25
    assert trial.distributions["lr"].log and trial.distributions["n"].high == 4
    assert trial.distributions["a"].choices == (0, 1)
    outside = frozen_trial(space, {"lr": 5.0, "n": 2}, 0.5)                  # beyond the interval: left out
    assert set(outside.params) == {"n"}
    tpe = pl.search.make_strategy("tpe", space, seed=0, startup=2)
    for n in range(3):                                                        # a resumed study's trials
        tpe.replay(n, {"lr": 10.0 ** -n, "n": n + 1, "a": "tanh", "f": 3}, float(n))
    assert len(tpe.study.trials) == 3 and tpe.study.best_trial.params["lr"] == 1.0
    assert set(tpe.ask(3)) == {"lr", "n", "a", "f"}
