"""Auto-encoders (§1.2): the penalties and gradients against independent computations, the
corruptions, and members that train the same alone or in a population."""

import json

import numpy as np
import pytest
import torch

from purelearn import AutoEncoder, Member, Model, Training, fit
from purelearn.config import load_config
from purelearn.data import load, prepare
from purelearn.errors import ConfigError
from purelearn.nn import family_of
from purelearn.nn.autoencoder import corrupt, decode, encode, jacobian_norms, reconstruction_errors
from purelearn.nn.family import Members
from purelearn.train import check_member


@pytest.fixture(scope="module")
def scaled():
    return prepare(load("digits"), preprocess=["scale"], seed=0)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "rectifier", "hard_tanh", "softsign"])
def test_the_contractive_penalty_is_the_squared_frobenius_norm_of_the_encoders_jacobian(activation):
    g = torch.Generator().manual_seed(3)
    P, B, H, d = 2, 3, 5, 7
    W = torch.randn(P, H, d, generator=g, dtype=torch.float64)
    b = torch.randn(P, 1, H, generator=g, dtype=torch.float64) * 0.3
    X = torch.randn(P, B, d, generator=g, dtype=torch.float64)
    h = encode({"W0": W, "b0": b}, X, activation)
    closed = jacobian_norms(h, W, activation)
    for p in range(P):
        for i in range(B):
            J = torch.autograd.functional.jacobian(
                lambda x: encode({"W0": W[p:p + 1], "b0": b[p:p + 1]}, x.view(1, 1, d), activation).view(H), X[p, i])
            assert closed[p, i].item() == pytest.approx(J.pow(2).sum().item(), rel=1e-10)


def _criterion(spec, params, X, coef):
    h = encode(params, X, spec.activation)
    loss = reconstruction_errors(spec.reconstruction, decode(params, h), X).mean(1)
    return loss + coef * jacobian_norms(h, params["W0"], spec.activation).mean(1)


@pytest.mark.parametrize("tied, reconstruction", [(True, "cross_entropy"), (False, "squared")])
def test_the_contractive_criterions_gradient_matches_finite_differences(tied, reconstruction):
    spec = AutoEncoder(hidden=4, tied=tied, reconstruction=reconstruction, contraction=0.3)
    params = {k: v.unsqueeze(0).double() for k, v in family_of(spec).init(spec, 6, 6, seed=1).items()}
    params["b0"] += 0.1
    X = torch.rand(1, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for v in params.values():
        v.requires_grad_()
    grads = torch.autograd.grad(_criterion(spec, params, X, 0.3).sum(), list(params.values()))
    eps = 1e-6
    for (name, v), grad in zip(params.items(), grads):
        with torch.no_grad():
            for idx in np.ndindex(*v.shape):
                old = v[idx].item()
                v[idx] = old + eps
                up = _criterion(spec, params, X, 0.3).item()
                v[idx] = old - eps
                down = _criterion(spec, params, X, 0.3).item()
                v[idx] = old
                assert grad[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8), (name, idx)


@pytest.mark.parametrize("spec", [
    dict(corruption="masking", corruption_level=0.3), dict(activation="tanh", corruption="salt_pepper",
                                                           corruption_level=0.2),
    dict(tied=False, corruption="gaussian", corruption_level=0.2, reconstruction="squared"),
    dict(activation="rectifier", tied=False), dict(contraction=0.1, corruption_level=0.2)])
def test_the_fused_sgd_step_is_autograds_gradient_descended(scaled, spec):
    from purelearn.nn.family import untouched
    from purelearn.train import Data

    members = [check_member(Member(AutoEncoder(h, **spec), Training(lr=0.05, seed=i)), scaled)
               for i, h in enumerate((12, 9))]                       # the second padded, its units masked
    family, hp = family_of(members[0].model), members[0].train
    data = Data(scaled, torch.device("cpu"), leave_out=False, unlabeled=True)
    params, extras = family.stack(members, [family.init(m.model, data.n_in, data.n_out, m.train.seed)
                                            for m in members], data)
    fused = {k: v.clone() for k, v in params.items()}
    X = data.X_train[:20].expand(2, -1, -1).contiguous()
    rates = torch.tensor([0.05, 0.3])
    for _ in range(3):
        with untouched(extras) as same:              # the same corruption draws for both
            losses, criterion, grads = family.signal(members[0].model, hp, params, same, X, X)
        for k, g in grads.items():
            params[k] -= rates.view(-1, 1, 1) * g
        assert torch.allclose(family.sgd_step(members[0].model, fused, extras, X, X, rates), losses, atol=1e-6)
    for k in params:
        assert torch.allclose(fused[k], params[k], atol=1e-6), k
    assert fused["W0"][1, 9:].abs().max() == 0 and fused["b0"][1, :, 9:].abs().max() == 0   # padding stays 0
    # the contractive penalty's gradient is autograd's: training takes the signal, and its criterion
    assert family.fuses(members[0].model, hp, extras) == ("contraction" not in spec)


def test_corruptions_do_what_they_say():
    X = torch.full((1, 1000, 50), 0.5)
    level = torch.tensor([0.0, 0.3]).view(2, 1, 1)
    u = torch.rand(2, 1000, 50, generator=torch.Generator().manual_seed(0))
    masked = corrupt(X, "masking", level, u)
    assert torch.equal(masked[0], X[0]) and (masked[1] == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert set(masked[1].unique().tolist()) == {0.0, 0.5}
    salted = corrupt(X, "salt_pepper", level, u)[1]
    assert (salted == 0).float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert (salted == 1).float().mean().item() == pytest.approx(0.15, abs=0.01)
    n = torch.randn(2, 1000, 50, generator=torch.Generator().manual_seed(0))
    noisy = corrupt(X, "gaussian", level, n)
    assert (noisy[1] - 0.5).std().item() == pytest.approx(0.3, rel=0.02) and torch.equal(noisy[0], X[0])


def test_members_train_the_same_alone_and_in_a_population(scaled):
    cases = [(40, "masking", 0.25, 0.0, 0.1), (48, "masking", 0.0, 0.2, 0.05), (44, "masking", 0.5, 0.0, 0.2)]
    members = [Member(AutoEncoder(h, corruption=c, corruption_level=lvl, contraction=k),
                      Training(lr=lr, max_epochs=2 + i, seed=i, valid_every=300))
               for i, (h, c, lvl, k, lr) in enumerate(cases)]
    together = fit(scaled, members)
    for m, r in zip(members, together):
        alone = fit(scaled, m)
        assert alone.examples_seen == r.examples_seen
        for key in ("valid_error", "valid_reconstruction", "train_loss"):
            assert [c[key] for c in alone.curve] == pytest.approx([c[key] for c in r.curve], rel=1e-5), key
        for k in alone.params:
            assert alone.params[k].shape == r.params[k].shape
            assert torch.allclose(alone.params[k], r.params[k], atol=1e-5), k
    assert [len(r.curve) for r in together] == [8, 11, 15]     # each stopped at its own budget


def test_a_denoising_auto_encoder_learns_and_its_model_reconstructs_raw_inputs(scaled):
    m = Member(AutoEncoder(32, corruption="salt_pepper", corruption_level=0.2), Training(lr=0.1, max_epochs=6))
    r = fit(scaled, m)
    curve = [c["valid_error"] for c in r.curve]
    assert curve[-1] < 0.8 * curve[0]
    # the denoising error is measured on corrupted inputs: above the clean reconstruction error
    assert all(c["valid_error"] > c["valid_reconstruction"] for c in r.curve)
    X, _ = scaled.read_test()
    model = Model.from_bytes(r.model.to_bytes())
    assert model.encode(X).shape == (len(X), 32) and model.predict(X).shape == X.shape
    # the model's error is the clean reconstruction error, recomputed here by hand
    x = torch.as_tensor(scaled.preprocess(X), dtype=torch.float32)
    h = torch.sigmoid(x @ r.params["W0"].T + r.params["b0"])
    z = h @ r.params["W0"] + r.params["b1"]
    by_hand = torch.nn.functional.binary_cross_entropy_with_logits(z, x, reduction="none").sum(1).mean()
    assert model.error(X) == pytest.approx(by_hand.item(), rel=1e-5)


def test_each_members_corruption_comes_from_its_own_generator(scaled):
    # the same seed: the same draws, whatever the member beside it
    spec = AutoEncoder(8, corruption="masking", corruption_level=0.3)
    a = [Member(spec, Training(seed=5, max_epochs=1)), Member(spec, Training(seed=9, max_epochs=1))]
    b = [Member(spec, Training(seed=5, max_epochs=1)), Member(spec, Training(seed=2, max_epochs=1))]
    ra, rb = fit(scaled, a), fit(scaled, b)
    assert torch.equal(ra[0].params["W0"], rb[0].params["W0"])
    assert not torch.equal(ra[0].params["W0"], ra[1].params["W0"])
    extras = family_of(spec).stack(a, [family_of(spec).init(spec, 64, 64, 5)] * 2,
                                   type("D", (), {"device": torch.device("cpu")})())[1]
    assert isinstance(extras["noise"], Members) and len(extras["noise"].select(torch.tensor([1]))) == 1


def test_an_auto_encoder_config_names_its_family_and_refuses_other_keys(scaled):
    config = load_config(None, ['model.family="autoencoder"', "model.hidden=20", "model.corruption_level=0.3"])
    assert isinstance(config.model, AutoEncoder) and config.to_dict()["model"]["family"] == "autoencoder"
    assert load_config(None).to_dict()["model"].get("family") is None          # an MLP reads as before
    with pytest.raises(ConfigError, match=r"\[model\] of the autoencoder family 'output'.*corruption_level"):
        load_config(None, ['model.family="autoencoder"', 'model.output="softmax"'])
    with pytest.raises(ConfigError, match="model family.*'rbn'.*autoencoder, mlp"):
        load_config(None, ['model.family="rbn"'])
    bad = [(AutoEncoder(corruption_level=1.0), "fraction of inputs corrupted"),
           (AutoEncoder(corruption="blur"), "corruption.*masking"),
           (AutoEncoder(hidden=(3, 4)), "one code layer"), (AutoEncoder(contraction=-1), "contraction")]
    for spec, message in bad:
        with pytest.raises(ConfigError, match=message):
            check_member(Member(spec, Training()), scaled)
    standardized = prepare(load("digits"), preprocess=["standardize"], seed=0)
    assert check_member(Member(AutoEncoder(), Training()), standardized).model.reconstruction == "squared"
    with pytest.raises(ConfigError, match="needs inputs in \\[0, 1\\]"):
        check_member(Member(AutoEncoder(reconstruction="cross_entropy"), Training()), standardized)
    with pytest.raises(ConfigError, match="needs a classifier"):
        check_member(Member(AutoEncoder(), Training(significance=0.05)), scaled)


def test_the_command_line_trains_and_tunes_auto_encoders(tmp_path, capsys, monkeypatch):
    from purelearn.cli import main

    monkeypatch.chdir(tmp_path)
    cfg, search = tmp_path / "dae.toml", tmp_path / "dae-search.toml"
    cfg.write_text('[data]\nname = "digits"\npreprocess = ["scale"]\n[model]\nfamily = "autoencoder"\nhidden = 24\n'
                   'corruption_level = 0.2\n[train]\nlr = 0.1\nmax_epochs = 2\n')
    search.write_text(cfg.read_text() + '[search]\ntrials = 4\npopulation = "4"\nworkers = 1\n[search.space]\n'
                      '"model.corruption_level" = "uniform(0, 0.5)"\n"model.hidden" = "intuniform(20, 24)"\n')
    assert main(["train", str(cfg), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "64-24-64 autoencoder" in err and json.loads(out)["config"]["model"]["family"] == "autoencoder"
    assert main(["tune", str(search), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"] == 4 and summary["complete"] == 4
    assert main(["best", str(tmp_path / "runs" / "dae-search.db"), "--model", str(tmp_path / "best.pt")]) == 0
    model = Model.load(tmp_path / "best.pt")
    assert isinstance(model.spec, AutoEncoder) and 20 <= model.spec.hidden <= 24


def test_a_member_can_start_from_given_parameters(scaled):
    first = fit(scaled, Member(AutoEncoder(16), Training(lr=0.1, max_epochs=1, seed=3)))
    again = Member(AutoEncoder(16), Training(lr=0.1, max_epochs=1, seed=3), start=first.params)
    continued = fit(scaled, again)
    # it starts where the first run's best state was: its first validation is better than the first run's
    assert continued.curve[0]["valid_error"] < first.curve[0]["valid_error"]
    assert torch.equal(first.params["W0"], fit(scaled, Member(AutoEncoder(16), Training(lr=0.1, max_epochs=1,
                                                                                         seed=3))).params["W0"])
    zero = Member(AutoEncoder(16), Training(lr=1e-30, max_epochs=1, seed=3),
                  start={k: torch.zeros_like(v) for k, v in first.params.items()})
    assert fit(scaled, zero).params["W0"].abs().max().item() < 1e-20        # the given start, not a draw
    with pytest.raises(ConfigError, match="don't fit this autoencoder"):
        fit(scaled, Member(AutoEncoder(17), Training(max_epochs=1), start=first.params))


def test_the_encoders_jacobian_shrinks_as_the_contraction_grows(scaled):
    members = [Member(AutoEncoder(24, contraction=c), Training(lr=0.1, max_epochs=3, seed=0)) for c in (0.0, 0.3, 3.0)]
    norms = []
    for r in fit(scaled, members):
        p = {k: v.unsqueeze(0) for k, v in r.params.items()}
        h = encode(p, torch.as_tensor(scaled.X_valid).unsqueeze(0), "sigmoid")
        norms.append(jacobian_norms(h, p["W0"], "sigmoid").mean().item())
    assert norms[0] > 1.5 * norms[1] > 1.5 * 1.5 * norms[2], norms
