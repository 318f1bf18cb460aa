"""RBMs (§1.1): the free energy, CD-k and the pseudo-likelihood against exact computations by
enumeration, the likelihood rising under CD-1 and persistent CD, and members that train the same
alone or in a population."""

import itertools
import math

import numpy as np
import pytest
import torch

from purelearn import RBM, Member, Training, fit
from purelearn.config import load_config
from purelearn.data import from_arrays, load, prepare
from purelearn.errors import ConfigError
from purelearn.nn import family_of
from purelearn.nn.rbm import cd_gradients, free_energy, pseudo_likelihood
from purelearn.train import check_member


def _params(d, H, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return {"W0": torch.randn(1, H, d, generator=g, dtype=torch.float64) * scale,
            "b0": torch.randn(1, 1, H, generator=g, dtype=torch.float64) * 0.3,
            "b1": torch.randn(1, 1, d, generator=g, dtype=torch.float64) * 0.3}


def _energy(p, v, h, visible):
    W, c, b = p["W0"][0], p["b0"][0, 0], p["b1"][0, 0]
    quadratic = (v - b).pow(2).sum() / 2 if visible == "gaussian" else -(b @ v)
    return quadratic - c @ h - h @ W @ v


@pytest.mark.parametrize("visible", ["binary", "gaussian"])
def test_the_free_energy_sums_the_hidden_units_out_exactly(visible):
    d, H = 5, 4
    p = _params(d, H)
    v = torch.rand(1, 3, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if visible == "binary":
        v = v.round()
    hs = [torch.tensor(h, dtype=torch.float64) for h in itertools.product([0, 1], repeat=H)]
    for i in range(3):
        exact = -torch.logsumexp(torch.stack([-_energy(p, v[0, i], h, visible) for h in hs]), 0)
        assert free_energy(p, v, visible)[0, i].item() == pytest.approx(exact.item(), rel=1e-12)


def test_cd_descends_the_free_energy_difference():
    p = _params(6, 5)
    g = torch.Generator().manual_seed(2)
    v0, vk = torch.rand(1, 7, 6, generator=g, dtype=torch.float64), torch.rand(1, 4, 6, generator=g, dtype=torch.float64)
    mine = cd_gradients(p, v0, vk)
    for t in p.values():
        t.requires_grad_()
    diff = free_energy(p, v0).mean() - free_energy(p, vk).mean()
    grads = torch.autograd.grad(diff, list(p.values()))
    for name, g in zip(p, grads):
        assert torch.allclose(mine[name], g, atol=1e-12), name


def test_the_pseudo_likelihood_is_the_sum_of_exact_conditionals():
    d, H = 5, 3
    p = _params(d, H, seed=4)
    v = torch.tensor([[1, 0, 1, 1, 0]], dtype=torch.float64).unsqueeze(0)
    hs = [torch.tensor(h, dtype=torch.float64) for h in itertools.product([0, 1], repeat=H)]

    def joint(x):                 # unnormalized p(v), by enumerating the hidden units
        return sum(torch.exp(-_energy(p, x, h, "binary")) for h in hs)

    exact = 0.0
    for i in range(d):
        flipped = v[0, 0].clone()
        flipped[i] = 1 - flipped[i]
        exact += math.log(joint(v[0, 0]) / (joint(v[0, 0]) + joint(flipped)))
    estimates = [pseudo_likelihood(p, v, torch.tensor([i])).item() for i in range(d)]
    assert np.mean(estimates) == pytest.approx(exact, rel=1e-10)


def _binary_splits():
    rng = np.random.default_rng(0)
    prototypes = rng.random((3, 10)) < 0.5
    X = np.array([p ^ (rng.random(10) < 0.05) for p in prototypes[rng.integers(0, 3, 600)]], dtype=np.float32)
    return prepare(from_arrays(X, rng.integers(0, 2, 600)), seed=0)


def _log_likelihood(params, X):
    states = torch.tensor(list(itertools.product([0, 1], repeat=10)), dtype=torch.float64).unsqueeze(0)
    p = {k: v.unsqueeze(0).double() for k, v in params.items()}
    log_z = torch.logsumexp(-free_energy(p, states), 1)
    return (-free_energy(p, torch.as_tensor(X, dtype=torch.float64).unsqueeze(0)) - log_z).mean().item()


@pytest.mark.parametrize("persistent", [False, True])
def test_the_exact_log_likelihood_rises_under_cd1_and_persistent_cd(persistent):
    splits = _binary_splits()
    member = check_member(Member(RBM(8, persistent=persistent), Training(lr=0.3, batch_size=10, max_epochs=20, valid_every=1200,
                                                                         patience=10 ** 9)), splits)
    family = family_of(member.model)
    start = family.init(member.model, 10, 2, 0)
    p = splits.X_train.mean(0).clip(1e-3, 1 - 1e-3)
    start["b1"] = torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32).view(1, -1)   # as training starts
    before = _log_likelihood(start, splits.X_valid)
    result = fit(splits, member)
    after = _log_likelihood(result.params, splits.X_valid)
    assert after > before + 1.0, (before, after)


@pytest.mark.parametrize("spec, preprocess", [({}, "scale"), ({"persistent": True}, "scale"), ({"k": 3}, "scale"),
                                            ({"visible": "gaussian"}, "standardize")])
def test_the_fused_sgd_step_descends_the_cd_direction_with_the_same_draws(spec, preprocess):
    import copy

    from purelearn.train import Data

    splits = prepare(load("digits"), preprocess=[preprocess], seed=0)
    # weights large enough that each Gibbs step's p(h|v) differs from the last
    members = [check_member(Member(RBM(h, init_scale=1.0, **spec), Training(lr=0.05, seed=i)), splits)
               for i, h in enumerate((12, 9))]
    family = family_of(members[0].model)
    data = Data(splits, torch.device("cpu"), leave_out=False, unlabeled=True)
    params, extras = family.stack(members, [family.init(m.model, data.n_in, data.n_out, m.train.seed)
                                            for m in members], data)
    fused, own = {k: v.clone() for k, v in params.items()}, copy.deepcopy(extras)   # generators and chains
    X = data.X_train[:20].expand(2, -1, -1).contiguous()
    rates = torch.tensor([0.05, 0.3])
    for _ in range(3):
        losses, _, direction = family.signal(members[0].model, members[0].train, params, extras, X, X)
        for k, g in direction.items():
            params[k] -= rates.view(-1, 1, 1) * g
        assert torch.allclose(family.sgd_step(members[0].model, fused, own, X, X, rates), losses, atol=1e-5)
    for k in params:
        assert torch.allclose(fused[k], params[k], atol=1e-6), k
    assert fused["W0"][1, 9:].abs().max() == 0                   # the padded units stay off
    if spec.get("persistent"):
        assert torch.equal(own["chains"], extras["chains"])


def test_members_train_the_same_alone_and_in_a_population():
    splits = prepare(load("digits"), preprocess=["scale"], seed=0)
    members = [Member(RBM(h, persistent=pcd), Training(lr=lr, momentum=0.5, max_epochs=2, seed=i, valid_every=500))
               for i, (h, pcd, lr) in enumerate([(40, False, 0.1), (48, False, 0.05), (44, False, 0.2),
                                                 (40, True, 0.05), (44, True, 0.1)])]
    together = fit(splits, members)
    for m, r in zip(members, together):
        alone = fit(splits, m)
        for k in alone.params:
            assert torch.allclose(alone.params[k], r.params[k], atol=1e-5), k
        assert [c["pseudo_likelihood"] for c in alone.curve] == pytest.approx(
            [c["pseudo_likelihood"] for c in r.curve], rel=1e-5)


def test_a_diverging_rbm_stops_alone():
    splits = prepare(load("digits"), preprocess=["scale"], seed=0)
    members = [Member(RBM(20), Training(lr=lr, max_epochs=2, seed=i)) for i, lr in enumerate([0.05, 1e5, 0.05])]
    results = fit(splits, members)
    assert [r.stopped_because for r in results] == ["budget", "diverged", "budget"]
    for m, r in zip(members, results):
        if r.stopped_because == "budget":
            assert torch.allclose(fit(splits, m).params["W0"], r.params["W0"], atol=1e-5)


def test_an_rbm_config_and_its_refusals():
    config = load_config(None, ['model.family="rbm"', "model.hidden=20", "model.k=3", "model.persistent=true"])
    assert isinstance(config.model, RBM) and config.model.k == 3
    scaled = prepare(load("digits"), preprocess=["scale"], seed=0)
    standardized = prepare(load("digits"), preprocess=["standardize"], seed=0)
    for spec, splits, message in [(RBM(k=0), scaled, "k Gibbs steps"), (RBM(visible="ternary"), scaled, "binary"),
                                  (RBM(), standardized, "needs inputs in \\[0, 1\\]"),
                                  (RBM(visible="gaussian", criterion="pseudo_likelihood"), standardized,
                                   "binary visible units")]:
        with pytest.raises(ConfigError, match=message):
            check_member(Member(spec, Training()), splits)
    gaussian = fit(standardized, Member(RBM(16, visible="gaussian"), Training(lr=0.01, max_epochs=2)))
    assert gaussian.stopped_because == "budget" and "pseudo_likelihood" not in gaussian.curve[0]
    assert gaussian.curve[-1]["valid_error"] < gaussian.curve[0]["valid_error"]
