"""§4.2's layer statistics: what the families show of their layers, the snapshots against a
direct computation, training unchanged by monitoring, and the statistics kept with a trial."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from purelearn.cli import main
from purelearn.config import load_config
from purelearn.diagnose import findings, layer_table
from purelearn.nn import family_of
from purelearn.nn.losses import example_losses
from purelearn.train import Data, check_member, fit
from purelearn.train.monitor import EDGES, MONITORED, Statistics, ridge_probe_error

AE = ["model.family=autoencoder", "model.hidden=12", "model.corruption_level=0.3", "data.preprocess=['scale']"]
RBM = ["model.family=rbm", "model.hidden=12", "model.persistent=true", "data.preprocess=['scale']"]


def _population(overrides, widths=None):
    c = load_config(None, overrides)
    splits = c.data.splits()
    members = [check_member(c.member(), splits)]
    if widths:
        members = [replace(members[0], model=replace(members[0].model, hidden=w),
                           train=replace(members[0].train, seed=i)) for i, w in enumerate(widths)]
    family = family_of(members[0].model)
    data = Data(splits, torch.device("cpu"), leave_out=False, unlabeled=not family.supervised)
    drawn = [family.init(m.model, data.n_in, data.n_out, m.train.seed) for m in members]
    params, extras = family.stack(members, drawn, data)
    return members, family, data, params, extras


@pytest.mark.parametrize("sparsity", ["none", "l1"])
def test_the_mlp_shows_each_layers_per_example_gradient_as_autograd_computes_it(sparsity):
    over = ["model.hidden=[7,5]", "model.activation=tanh", f"train.sparsity={sparsity}", "train.sparsity_coef=0.1"]
    members, family, data, params, extras = _population(over)
    spec, hp = members[0].model, members[0].train
    X, y = data.X_train[:9].unsqueeze(0), data.y_train[:9].unsqueeze(0)
    layers, grads = family.inside(spec, hp, params, extras, X, y)
    assert [l.name for l in layers] == ["hidden 1", "hidden 2", "output"]
    # independently: z of every layer as leaves of a graph, each example's loss differentiated
    z_in = X
    zs = []
    for l in range(3):
        z = torch.baddbmm(params[f"b{l}"], z_in, params[f"W{l}"].transpose(1, 2)).detach().requires_grad_()
        zs.append(z)
        z_in = torch.tanh(z) if l < 2 else None
    h1 = torch.tanh(zs[0])
    out = torch.baddbmm(params["b2"], torch.tanh(torch.baddbmm(params["b1"], h1, params["W1"].transpose(1, 2))),
                        params["W2"].transpose(1, 2))
    assert torch.allclose(out, layers[2].pre, atol=1e-5)
    for l, layer in enumerate(layers):
        assert torch.allclose(layer.pre, zs[l].detach(), atol=1e-5)
    # dL_i/dz_l per example: the loss of the graph starting at z_l
    for l in range(3):
        z = zs[l].detach().requires_grad_()
        h = z
        for k in range(l, 3):
            if k > l:
                h = torch.baddbmm(params[f"b{k}"], h, params[f"W{k}"].transpose(1, 2))
            if k < 2:
                h = torch.tanh(h)
        per_example = example_losses("softmax", h, y).sum()
        if sparsity == "l1" and l < 2:         # the penalty on this layer's (and the next's) outputs, x B
            outs = [torch.tanh(z)] + ([torch.tanh(torch.baddbmm(params["b1"], torch.tanh(z), params["W1"].transpose(1, 2)))]
                                      if l == 0 else [])
            per_example = per_example + 0.1 * sum(o.abs().sum(-1).mean() * 9 for o in outs)
        expected, = torch.autograd.grad(per_example, z)
        assert torch.allclose(layers[l].grad, expected, atol=1e-5), l
    signal = family.signal(spec, hp, params, extras, X, y)[2]
    for k in params:
        assert torch.allclose(grads[k], signal[k], atol=1e-6), k


def test_the_auto_encoder_and_the_rbm_show_their_code_and_reconstruction():
    members, family, data, params, extras = _population(AE)
    spec, hp = members[0].model, members[0].train
    X = data.X_train[:8].unsqueeze(0)
    layers, grads = family.inside(spec, hp, params, extras, X, X, gradients=False)
    assert grads is None and [l.name for l in layers] == ["code", "reconstruction"]
    code = family.encode(spec, family.unstack(params, 0, spec, data), data.X_train[:8])
    assert torch.allclose(layers[0].post[0], code, atol=1e-6)
    assert torch.allclose(layers[1].post[0], family.predict(spec, family.unstack(params, 0, spec, data),
                                                            data.X_train[:8]), atol=1e-6)
    members, family, data, params, extras = _population(RBM)
    layers, direction = family.inside(members[0].model, members[0].train, params, extras, X, X)
    assert layers[0].grad is None and set(direction) == {"W0", "b0", "b1"}
    assert torch.allclose(layers[0].post, torch.sigmoid(X @ params["W0"].transpose(1, 2) + params["b0"]), atol=1e-6)


@pytest.mark.parametrize("overrides", [["model.hidden=[16]", "train.momentum=0.5"], AE, RBM])
def test_monitoring_leaves_training_exactly_as_it_was(overrides):
    c = load_config(None, [*overrides, "train.max_epochs=2"])
    splits = c.data.splits()
    plain = fit(splits, c.member())
    watched = fit(splits, replace(c.member(), train=replace(c.member().train, monitor=300)))
    assert plain.statistics is None and len(watched.statistics) > 3
    assert [r["valid_error"] for r in plain.curve] == [r["valid_error"] for r in watched.curve]
    for k in plain.params:
        assert torch.equal(plain.params[k], watched.params[k])


def test_a_snapshot_equals_a_direct_computation_for_each_member_of_a_padded_population():
    from purelearn.train.fit import populations

    c = load_config(None, ["model.hidden=[9,8]", "model.activation=rectifier", "train.monitor=200",
                           "train.max_epochs=1", "train.lr=0.05", "data.preprocess=['standardize']"])
    splits = c.data.splits()
    base = check_member(c.member(), splits)
    members = [replace(base, model=replace(base.model, hidden=w), train=replace(base.train, seed=s))
               for s, w in ((1, (9, 8)), (2, (7, 7)))]
    assert len(populations(members, 2)) == 1                # one population: member 2 is padded in both layers
    results = fit(splits, members)
    for member, result in zip(members, results):
        stats = result.statistics
        # one snapshot at the start, then one at the step that crosses each multiple of 200
        assert [e // 200 for e in stats.examples] == list(range(len(stats)))
        # the first snapshot is of the initial parameters: recompute it from the member's own draw
        family = family_of(member.model)
        data = Data(splits, torch.device("cpu"))
        own = family.init(member.model, data.n_in, data.n_out, member.train.seed)
        X = torch.as_tensor(splits.X_train[:MONITORED])
        z = X @ own["W0"].T + own["b0"]
        h = torch.relu(z)
        u = stats.units["hidden 1"]
        assert u["pre"]["mean"][0] == pytest.approx(float(z.double().mean()), abs=1e-6)
        assert u["post"]["std"][0] == pytest.approx(float(h.double().std(unbiased=False)), abs=1e-6)
        counts = np.histogram(z.numpy().ravel(), bins=np.concatenate([[-np.inf], EDGES["signed_log"], [np.inf]]))[0]
        assert int(np.sum(u["pre"]["counts"][0])) == z.numel() == MONITORED * member.model.hidden[0]
        assert np.abs(np.asarray(u["pre"]["counts"][0]) - counts).sum() <= 2      # bin-edge ties only
        assert u["dead"][0] == pytest.approx(float((h == 0).all(0).double().mean()))
        z2 = h @ own["W1"].T + own["b1"]
        assert stats.units["hidden 2"]["pre"]["std"][0] == pytest.approx(float(z2.double().std(unbiased=False)),
                                                                         rel=1e-5)
        for name in ("W0", "W1"):                           # W1 is padded in both its dimensions
            W = stats.tensors[name]
            assert W["value"]["mean"][0] == pytest.approx(float(own[name].double().mean()), abs=1e-7)
            assert W["value"]["std"][0] == pytest.approx(float(own[name].double().std(unbiased=False)), rel=1e-5)
            assert int(np.sum(W["value"]["counts"][0])) == own[name].numel()      # padding left out
            assert math.isnan(W["update_ratio"][0]) and all(r > 0 for r in W["update_ratio"][1:])


def test_the_update_ratio_measures_the_step_just_made():
    def first_ratio(lr):
        c = load_config(None, ["model.hidden=[8]", f"train.lr={lr}", "train.monitor=32", "train.max_epochs=1",
                               "train.batch_size=32"])
        stats = fit(c.data.splits(), c.member()).statistics
        assert stats.examples[:2] == [0, 32]
        return stats.tensors["W1"]["update_ratio"][1]
    # the same first minibatch and gradient: twice the rate, twice the step (the weights hardly moved)
    assert first_ratio(0.002) / first_ratio(0.001) == pytest.approx(2, rel=0.01)


def test_the_probe_is_a_ridge_classifier():
    from sklearn.linear_model import RidgeClassifier

    rng = np.random.default_rng(0)
    F = rng.standard_normal((60, 5))
    y = (F[:, 0] + 0.3 * rng.standard_normal(60) > 0).astype(int) + (F[:, 1] > 1)
    Fv, yv = F[40:], y[40:]
    ours = ridge_probe_error(torch.tensor(F[:40])[None], torch.tensor(y[:40]), torch.tensor(Fv)[None],
                             torch.tensor(yv), 3)
    # the same penalty as sklearn's alpha (its intercept is not penalized: on these features it agrees)
    alpha = float((np.c_[F[:40], np.ones(40)] ** 2).mean()) * 1e-3 * 40
    theirs = 1 - RidgeClassifier(alpha=alpha).fit(F[:40], y[:40]).score(Fv, yv)
    assert float(ours[0]) == pytest.approx(theirs, abs=1 / 20)
    good = ridge_probe_error(torch.tensor(F[:40])[None], torch.tensor(y[:40]), torch.tensor(Fv)[None],
                             torch.tensor(yv), 3)
    noise = ridge_probe_error(torch.tensor(rng.standard_normal((40, 5)))[None], torch.tensor(y[:40]),
                              torch.tensor(rng.standard_normal((20, 5)))[None], torch.tensor(yv), 3)
    assert float(good[0]) < float(noise[0])


def test_the_probe_runs_past_each_multiple_of_its_spacing_and_the_table_reads_the_latest(monkeypatch):
    import purelearn.train.monitor as monitor

    def stats(spacing, epochs=6):
        monkeypatch.setattr(monitor, "PROBE_EVERY", spacing)
        c = load_config(None, ["model.hidden=[8]", "train.monitor=300", f"train.max_epochs={epochs}",
                               "data.preprocess=['standardize']"])
        return fit(c.data.splits(), c.member()).statistics

    every, spaced = stats(1), stats(1000)
    assert every.examples == spaced.examples
    ran = [math.isfinite(e) for e in spaced.units["hidden 1"]["probe_error"]]
    # the first snapshot, then the first one past 1,000, 2,000, ...
    assert ran == [i == 0 or e // 1000 > spaced.examples[i - 1] // 1000 for i, e in enumerate(spaced.examples)]
    assert 2 <= sum(ran) < len(ran) and all(math.isfinite(e) for e in every.units["hidden 1"]["probe_error"])
    # a probe depends only on the snapshot it runs at
    for name in [n for n, u in every.units.items() if math.isfinite(u["probe_error"][0])]:
        assert [e for e, r in zip(every.units[name]["probe_error"], ran) if r] == \
            [e for e in spaced.units[name]["probe_error"] if math.isfinite(e)]
    latest = [e for e in spaced.units["hidden 1"]["probe_error"] if math.isfinite(e)][-1]
    assert not ran[-1] and layer_table(spaced)["units"][0]["probe_error"] == latest
    # a budget shorter than two spacings is probed at its start and past each half of it
    short = stats(10 ** 9, epochs=1)
    half = len(load_config(None, ["data.preprocess=['standardize']"]).data.splits().X_train) // 2
    ran = [math.isfinite(e) for e in short.units["hidden 1"]["probe_error"]]
    assert ran == [i == 0 or e // half > short.examples[i - 1] // half for i, e in enumerate(short.examples)]
    assert sum(ran) >= 2


def test_the_statistics_survive_bytes_and_say_what_calls_for_attention():
    c = load_config(None, ["model.hidden=[16,16]", "model.activation=sigmoid", "model.init_scale=30",
                           "train.monitor=400", "train.max_epochs=1", "data.preprocess=[]"])
    stats = fit(c.data.splits(), c.member()).statistics
    again = Statistics.from_bytes(stats.to_bytes())
    assert again.summary() == stats.summary() and again.examples == stats.examples
    summary = stats.summary()
    assert summary["examples_seen"] == stats.examples and set(summary["tensors"]) == set(stats.tensors)
    hidden = summary["units"]["hidden 1"]
    assert hidden["post"]["mean"] == stats.units["hidden 1"]["post"]["mean"] and hidden["activation"] == "sigmoid"
    assert summary["tensors"]["W0"]["update_ratio"][0] is None                 # NaN at the start: null in JSON
    table = layer_table(stats)
    assert [u["layer"] for u in table["units"]] == ["hidden 1", "hidden 2", "output"]
    assert table["units"][0]["saturated"] > 0.5
    said = findings(stats)
    assert any("hidden 1" in f and "saturated" in f for f in said)
    calm = load_config(None, ["model.hidden=[16]", "train.monitor=400", "train.max_epochs=1",
                              "data.preprocess=['standardize']"])
    stats = fit(calm.data.splits(), calm.member()).statistics
    assert not any("saturated" in f for f in findings(stats))
    with pytest.raises(Exception):
        Statistics.from_bytes(b"not statistics")


def test_a_monitored_study_keeps_each_trials_statistics_and_train_prints_them(tmp_path, capsys):
    from purelearn.execute import tune
    from purelearn.search import parse_space

    c = load_config(None, ["model.hidden=[8]", "train.max_epochs=1", "train.monitor=500"])
    study = tune(c, parse_space({"train.lr": "loguniform(0.01, 0.3)"}), trials=3, store=str(tmp_path / "s.db"),
                 study="m", workers=1)
    for t in study.trials:
        stats = study.statistics(t.number)
        assert stats is not None and stats.examples[0] == 0 and "W0" in stats.tensors
    assert main(["train", "examples/digits-mlp.toml", "--monitor", "500", "--set", "train.max_epochs=1"]) == 0
    out = capsys.readouterr().out
    assert "layer statistics after" in out and "hidden 1" in out and "update/weight" in out
    assert main(["train", "examples/digits-mlp.toml", "--monitor", "-3"]) == 2
    assert "train.monitor = -3" in capsys.readouterr().err


def test_the_report_draws_each_layers_histograms_over_training_as_recorded():
    import matplotlib.pyplot as plt

    from purelearn.report.statistics import histograms_figure, trends_figure
    from purelearn.report.unavailable import Unavailable

    c = load_config(None, ["model.hidden=[8]", "train.monitor=300", "train.max_epochs=1",
                           "data.preprocess=['standardize']"])
    stats = fit(c.data.splits(), c.member()).statistics
    fig = histograms_figure(stats)
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 4                              # hidden 1 and output: outputs and gradients
    counts = np.asarray(stats.units["hidden 1"]["post"]["counts"], dtype=float)
    assert np.allclose(images[0], (counts / counts.sum(1, keepdims=True)).T)
    plt.close(fig)
    fig = trends_figure(stats)
    assert [l.get_label() for l in fig.axes[0].lines if not l.get_label().startswith("_")] == ["W0", "W1"]
    probed = [e for e in stats.units["hidden 1"]["probe_error"] if math.isfinite(e)]
    assert len(probed) >= 2 and np.allclose(fig.axes[1].lines[0].get_ydata(), probed)     # the probed points
    plt.close(fig)
    with pytest.raises(Unavailable, match="train.monitor"):
        histograms_figure(None)


def test_values_are_binned_as_bucketize_bins_them_at_and_between_the_edges():
    from purelearn.train.monitor import _bins

    g = torch.Generator().manual_seed(0)
    for edges, bounds in EDGES.items():
        b = torch.tensor(bounds, dtype=torch.float32)
        v = torch.cat([b, -b, b * 1.01, b * 0.99, torch.tensor([0.0, math.inf, -math.inf]),
                       torch.randn(20000, generator=g) * 10 ** torch.empty(20000).uniform_(-10, 3, generator=g)])
        assert torch.equal(_bins(v, edges).long(), torch.bucketize(v, b)), edges
        wide = v.double() * (1 + 1e-12)                                  # float64: searched, its own edges
        assert torch.equal(_bins(wide, edges).long(), torch.bucketize(wide, torch.tensor(bounds))), edges
        assert int(_bins(torch.tensor([math.nan]), edges)) == len(bounds)          # NaN: the last bin
        assert int(_bins(-torch.tensor([math.nan]), edges)) == len(bounds)         # 0/0's NaN is negative
        assert int(_bins(torch.tensor([math.nan], dtype=torch.float64), edges)) == len(bounds)
    assert len(EDGES["signed_log"]) == 42 and EDGES["signed_log"][21] == pytest.approx(1e-8)
    assert EDGES["signed_log"][-1] == pytest.approx(100) and len(EDGES["unit"]) == 41


def test_a_large_tensors_histogram_counts_the_same_sample_of_it_and_its_moments_every_entry():
    from purelearn.train.monitor import BINNED, _series

    g = torch.Generator().manual_seed(0)
    # member 0's mean is 5,000 times its spread: one pass over x and x^2 in float32 would cancel to noise
    v = torch.randn(2, 600, 300, generator=g) * torch.tensor([0.01, 1.0]).view(2, 1, 1) + torch.tensor(
        [50.0, -3.0]).view(2, 1, 1)
    rows = {1: torch.arange(600) < torch.tensor([600, 400]).view(2, 1)}     # member 1: 400 rows
    s = _series(v, rows, "signed_log")
    own = [v[0].double(), v[1, :400].double()]
    assert s["mean"].tolist() == pytest.approx([float(o.mean()) for o in own], rel=1e-6)
    assert s["std"].tolist() == pytest.approx([float(o.std(unbiased=False)) for o in own], rel=1e-5)
    counts = s["counts"].double()
    assert counts[0].sum() == BINNED and BINNED * 0.6 < counts[1].sum() < BINNED * 0.73     # ~2/3 of them own
    full = [torch.bucketize(o.float().reshape(-1), torch.tensor(EDGES["signed_log"], dtype=torch.float32))
            for o in own]
    for c, f in zip(counts, full):
        whole = torch.bincount(f, minlength=len(c)).double()
        assert (c / c.sum() - whole / whole.sum()).abs().sum() < 0.03      # the sample's shape is the whole's
    assert torch.equal(_series(v, rows, "signed_log")["counts"], s["counts"])   # the same entries each time


def test_saturated_and_dead_units_are_counted_over_real_units_only():
    from purelearn.nn.family import Layer
    from purelearn.train.monitor import _dead, _saturated

    post = torch.tensor([[[0.995, 0.5, -0.999, 0.0], [0.2, -0.995, 0.3, 0.0]],
                         [[0.0, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.0]]])           # [P=2, B=2, H=4]
    mask = torch.tensor([[[True, True, True, False]], [[True, True, False, False]]])
    tanh = Layer("h", "tanh", 1, post, post, None)
    assert _saturated(tanh, mask).tolist() == pytest.approx([3 / 6, 1 / 4])
    sig = Layer("h", "sigmoid", 1, post, post.abs(), None)
    assert _saturated(sig, mask).tolist() == pytest.approx([3 / 6, 1.0])      # below 0.01 or above 0.99
    relu = Layer("h", "rectifier", 1, post, post.clamp_min(0), None)
    assert _dead(relu, mask).tolist() == pytest.approx([0.0, 1 / 2])         # unit 0 of member 1: zero on both
    assert math.isnan(_dead(tanh, mask)[0]) and math.isnan(_saturated(relu, mask)[0])
    hard = Layer("h", "hard_tanh", 1, post, post.clamp(-1, 1), None)
    assert _saturated(hard, mask).tolist() == pytest.approx([0.0, 1 / 4])
    soft = Layer("h", "softsign", 1, post, post, None)
    assert _saturated(soft, mask).tolist() == pytest.approx([3 / 6, 1 / 4])


def test_own_entries_sums_and_update_ratio_against_their_definitions():
    from purelearn.train.monitor import _own_entries, _own_sum, _update_ratio

    stacked = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    shapes = [(4, 5), (2, 3), (1, 5)]
    own = {1: torch.arange(4) < torch.tensor([4, 2, 1]).view(-1, 1), 2: torch.arange(5) < torch.tensor([5, 3, 5]).view(-1, 1)}
    expected = torch.zeros(3, 4, 5, dtype=torch.bool)
    for p, (a, b) in enumerate(shapes):
        expected[p, :a, :b] = True
    assert torch.equal(_own_entries(stacked.shape, own, None), expected.reshape(3, -1))
    picked = torch.tensor([0, 7, 13, 19])
    assert torch.equal(_own_entries(stacked.shape, own, picked), expected.reshape(3, -1)[:, picked])
    sums = [float(stacked[p, :a, :b].sum()) for p, (a, b) in enumerate(shapes)]
    assert _own_sum(stacked, own).tolist() == pytest.approx(sums, rel=1e-6)
    assert _own_sum(stacked, {2: own[2]}).tolist() == pytest.approx(
        [float(stacked[p, :, :b].sum()) for p, (_, b) in enumerate(shapes)], rel=1e-6)
    assert _own_sum(stacked, None).tolist() == pytest.approx(stacked.sum((1, 2)).tolist(), rel=1e-6)
    before = torch.tensor([[1.0, -2.0], [0.0, 0.0]])
    after = torch.tensor([[1.5, -2.5], [0.0, 0.0]])
    ratio = _update_ratio(after, before)
    assert ratio[0] == pytest.approx(1.0 / 4.0) and math.isnan(ratio[1])


# telling: draws (n near H) whose error moves with the penalty and with the bias column's scale
@pytest.mark.parametrize("n, H, seed, telling", [(30, 6, 1, False), (8, 20, 1, False), (24, 20, 9, True),
                                                 (20, 24, 1, True)])
def test_the_probe_solves_the_same_ridge_in_either_form(n, H, seed, telling):
    rng = np.random.default_rng(seed)
    F, Fv = rng.standard_normal((n, H)), rng.standard_normal((40, H))
    y, yv = rng.integers(0, 3, n), rng.integers(0, 3, 40)

    def error(scale=1.0, bias=1.0):
        A = np.c_[F, np.full(n, bias)]
        lam = (A ** 2).mean() * 1e-3 * max(n, H + 1) * scale
        beta = np.linalg.solve(A.T @ A + lam * np.eye(H + 1), A.T @ np.eye(3)[y])
        return ((np.c_[Fv, np.full(40, bias)] @ beta).argmax(1) != yv).mean()

    got = ridge_probe_error(torch.tensor(F)[None], torch.tensor(y), torch.tensor(Fv)[None], torch.tensor(yv), 3)
    assert float(got[0]) == pytest.approx(error())
    if telling:
        assert error(scale=max(n, H + 1) ** -2) != error() != error(bias=2.0)
