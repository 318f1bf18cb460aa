import math

import numpy as np
import pytest
import torch

from purelearn.errors import ConfigError
from purelearn.nn import (ACTIVATIONS, MLP, backprop, example_errors, example_losses, forward, init_bound,
                          init_member, sparsity_penalty, stack_members, unit_masks)
from purelearn.nn.losses import output_delta


def test_glorot_bounds_and_the_sigmoid_factor():
    assert init_bound(100, 50, "tanh") == pytest.approx(math.sqrt(6 / 150))
    assert init_bound(100, 50, "sigmoid") == pytest.approx(4 * math.sqrt(6 / 150))
    assert init_bound(100, 50, "tanh", "fan_in") == pytest.approx(math.sqrt(3 / 100))
    assert init_bound(100, 50, "rectifier", scale=0.5) == pytest.approx(0.5 * math.sqrt(6 / 150))
    for act in ("tanh", "sigmoid"):
        p = init_member(MLP((300,), act).checked("classification"), 500, 10, seed=1)
        r = init_bound(500, 300, act)
        w = p["W0"]
        assert w.abs().max() <= r and w.abs().max() > 0.99 * r      # fills the whole interval
        assert w.var().item() == pytest.approx(r * r / 3, rel=0.02)  # variance of Uniform(-r, r)
        assert torch.all(p["b0"] == 0)
    z = init_member(MLP((8,), zero_output=True).checked("classification"), 4, 3, seed=0)
    assert torch.all(z["W1"] == 0) and torch.any(z["W0"] != 0)


def _loss_of(params_flat, shapes, X, y, activation, output):
    params, i = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        params[name] = params_flat[i:i + n].view(shape)
        i += n
    return example_losses(output, forward(params, X, activation), y).mean(1).sum()


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "rectifier", "hard_tanh", "softsign"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_model_gradients_match_finite_differences(activation, output):
    g = torch.Generator().manual_seed(0)
    P, B, d, h, k = 2, 5, 4, 3, 3
    shapes = [("W0", (P, h, d)), ("b0", (P, 1, h)), ("W1", (P, k, h)), ("b1", (P, 1, k))]
    flat = torch.randn(sum(int(np.prod(s)) for _, s in shapes), generator=g, dtype=torch.float64)
    X = torch.randn(P, B, d, generator=g, dtype=torch.float64)
    y = (torch.randint(0, k, (B,), generator=g) if output == "softmax"
         else torch.randint(0, 2, (B, k), generator=g).double() if output == "sigmoid"
         else torch.randn(B, k, generator=g, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda f: _loss_of(f, shapes, X, y, activation, output),
                                    (flat.requires_grad_(),), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", ["l1", "student_t", "kl", "squared"])
def test_sparsity_penalties_match_their_formulas_and_finite_differences(kind):
    g = torch.Generator().manual_seed(1)
    h = torch.rand(2, 6, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05
    rho = torch.tensor([0.05, 0.2], dtype=torch.float64)
    hn, r = h.numpy(), rho.numpy()[:, None]
    mean = hn.mean(1)
    expected = {"l1": np.abs(hn).mean(1), "student_t": np.log1p(hn ** 2).mean(1),
                "kl": r * np.log(r / mean) + (1 - r) * np.log((1 - r) / (1 - mean)),
                "squared": (mean - r) ** 2}[kind].sum(-1)
    assert np.allclose(sparsity_penalty(kind, h, rho).numpy(), expected)
    assert torch.autograd.gradcheck(lambda x: sparsity_penalty(kind, x, rho).sum(), (h.requires_grad_(),))


def _padded_population(activation, output, dtype=torch.float64):
    """Three members of different widths (padded and, for the sigmoid, masked), their own
    minibatches, and targets for ``output``."""
    g = torch.Generator().manual_seed(3)
    specs = [MLP(h, activation).checked("classification") for h in [(5, 3), (2, 7), (4, 4)]]
    params = stack_members([init_member(s, 4, 3, seed=i) for i, s in enumerate(specs)])
    params = {k: (v + 0.1 * torch.randn(v.shape, generator=g) * (v != 0)).to(dtype) for k, v in params.items()}
    masks = unit_masks([s.hidden for s in specs])
    masks = [m.to(dtype) for m in masks] if activation == "sigmoid" else None
    X = torch.randn(3, 6, 4, generator=g, dtype=dtype)
    y = (torch.randint(0, 3, (3, 6), generator=g) if output == "softmax"
         else torch.randint(0, 2, (3, 6, 3), generator=g).to(dtype) if output == "sigmoid"
         else torch.randn(3, 6, 3, generator=g, dtype=dtype))
    return params, masks, X, y


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_hand_derived_gradients_match_autograd(activation, output):
    params, masks, X, y = _padded_population(activation, output)
    graph = {k: v.clone().requires_grad_() for k, v in params.items()}
    losses = example_losses(output, forward(graph, X, activation, masks), y)
    expected = torch.autograd.grad(losses.mean(1).sum(), list(graph.values()))

    z, hidden = forward(params, X, activation, masks, keep_hidden=True)
    hand_losses, delta = output_delta(output, z, y)
    assert torch.allclose(hand_losses, losses.detach(), atol=1e-12)
    grads = backprop.gradients(params, X, hidden, delta / X.shape[1], activation)
    assert list(grads) == list(params)
    for (name, got), want in zip(grads.items(), expected):
        assert torch.allclose(got, want, atol=1e-10), name
        if name.startswith("W"):          # padded weights (exactly 0) stay out of training
            assert torch.all(got[params[name] == 0] == 0), name


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_fused_sgd_step_is_a_gradient_step(activation):
    params, masks, X, y = _padded_population(activation, "softmax")
    lr = torch.tensor([0.5, 0.1, 2.0], dtype=torch.float64)
    z, hidden = forward(params, X, activation, masks, keep_hidden=True)
    grads = backprop.gradients(params, X, hidden, output_delta("softmax", z.clone(), y)[1] / 6, activation)
    expected = {k: v - lr.view(-1, 1, 1) * grads[k] for k, v in params.items()}
    delta = output_delta("softmax", z, y)[1] * (lr / -6).view(-1, 1, 1)
    backprop.sgd_step(params, X, hidden, delta, activation)
    for k in params:
        assert torch.allclose(params[k], expected[k], atol=1e-12), k


def test_inputs_left_out_count_as_zeros():
    """Training may leave out inputs that are zero in every example (train.Data): the forward
    pass, the gradients (full-sized, zero for those inputs) and the fused step are unchanged."""
    params, _, X, y = _padded_population("tanh", "softmax")
    X[..., 3] = 0
    narrow = X[..., :3].contiguous()
    z, hidden = forward(params, X, "tanh", keep_hidden=True)
    zn, hidden_n = forward(params, narrow, "tanh", keep_hidden=True)
    assert torch.allclose(z, zn, atol=1e-12)
    delta = output_delta("softmax", z, y)[1] / 6
    full = backprop.gradients(params, X, hidden, delta, "tanh")
    part = backprop.gradients(params, narrow, hidden_n, delta, "tanh")
    for k in params:
        assert part[k].shape == params[k].shape and torch.allclose(part[k], full[k], atol=1e-12), k
    a, b = ({k: v.clone() for k, v in params.items()} for _ in range(2))
    backprop.sgd_step(a, X, hidden, -0.5 * delta, "tanh")
    backprop.sgd_step(b, narrow, hidden_n, -0.5 * delta, "tanh")
    for k in params:
        assert torch.allclose(a[k], b[k], atol=1e-12), k


def test_tanh_through_the_sigmoid_agrees_with_tanh():
    x = torch.linspace(-30, 30, 100_001)
    act = ACTIVATIONS["tanh"]
    assert (act.apply(x) - torch.tanh(x)).abs().max() < 3e-7
    assert (act.apply_(x.clone()) - torch.tanh(x)).abs().max() < 3e-7


def test_padded_members_compute_as_if_alone():
    specs = [MLP((5, 3)).checked("classification"), MLP((2, 7)).checked("classification")]
    members = [init_member(s, 4, 3, seed=i) for i, s in enumerate(specs)]
    stacked, masks = stack_members(members), unit_masks([s.hidden for s in specs])
    X = torch.randn(6, 4)
    together = forward(stacked, X, "tanh", masks)
    for p, m in enumerate(members):
        alone = forward({k: v.unsqueeze(0) for k, v in m.items()}, X, "tanh")[0]
        assert torch.allclose(together[p], alone, atol=1e-6)


def test_errors_per_output():
    z = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])
    assert example_errors("softmax", z, torch.tensor([0, 0])).tolist() == [[0.0, 1.0]]
    assert example_errors("sigmoid", z, torch.tensor([[1.0, 0.0], [0.0, 0.0]])).tolist() == [[0.0, 0.5]]
    assert example_errors("linear", z, torch.zeros(2, 2)).tolist() == [[4.0, 1.0]]


@pytest.mark.parametrize("layout", ["examples outer", "classes outer"])
def test_softmax_errors_are_argmax_errors_with_ties_nans_and_infinities(layout):
    """The misclassification is computed without argmax (not vectorized on CPU): it must agree
    with argmax exactly, the first largest output winning, a NaN counting as the largest."""
    g = torch.Generator().manual_seed(0)
    for trial in range(60):
        z = torch.randint(-2, 3, (3, 40, 5), generator=g).float()        # many ties
        if trial % 3 == 0:
            z[torch.rand(z.shape, generator=g) < 0.1] = float("nan")
        if trial % 4 == 0:
            z[torch.rand(z.shape, generator=g) < 0.3] = -float("inf")
        if trial % 5 == 0:
            z[:, :8] = -float("inf")                                     # every output -inf
        if layout == "classes outer":                                     # as the output layer lays it out
            z = z.transpose(1, 2).contiguous().transpose(1, 2)
        y = torch.randint(0, 5, (40,), generator=g)
        assert torch.equal(example_errors("softmax", z, y), (z.argmax(-1) != y).float()), trial


def test_bad_model_settings_are_refused():
    with pytest.raises(ConfigError, match="Did you mean 'tanh'"):
        MLP(activation="tanhh").checked("classification")
    with pytest.raises(ConfigError, match="model.hidden"):
        MLP(hidden=(10, 0)).checked("classification")
    with pytest.raises(ConfigError, match="does not fit a regression task"):
        MLP(output="softmax").checked("regression")
    assert MLP(activation="relu").checked("classification").activation == "rectifier"


def test_outputs_resolve_from_the_task_and_a_wrong_one_names_the_choices():
    from purelearn.nn.losses import output_for

    assert [output_for("auto", t) for t in ("classification", "multilabel", "regression")] == \
        ["softmax", "sigmoid", "linear"]
    assert output_for("sigmoid", "multilabel") == "sigmoid" and output_for("linear", "regression") == "linear"
    with pytest.raises(ConfigError, match="Allowed: auto, linear, sigmoid, softmax"):
        output_for("tanh", "regression")
    with pytest.raises(ConfigError, match="does not fit"):
        output_for("linear", "classification")


def test_shared_targets_give_the_same_losses_and_deltas_as_each_members_own():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(3, 5, 4, generator=g)
    y = torch.tensor([0, 3, 1, 1, 2])
    shared = output_delta("softmax", z.clone(), y)
    own = output_delta("softmax", z.clone(), y.expand(3, 5).contiguous())
    for a, b in zip(shared, own):
        assert a.shape == b.shape and torch.allclose(a, b)
    # against the softmax written out
    p = torch.softmax(z, -1)
    assert torch.allclose(shared[0], -torch.log(p.gather(-1, y.expand(3, 5).unsqueeze(-1))).squeeze(-1), atol=1e-6)


def test_errors_of_sigmoid_and_linear_outputs_per_example():
    z = torch.tensor([[[0.5, -1.0, 2.0], [-0.1, 0.3, -0.2]]])             # [P=1, B=2, k=3]
    labels = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    assert example_errors("sigmoid", z, labels).tolist() == [[pytest.approx(1 / 3), pytest.approx(1 / 3)]]
    targets = torch.tensor([[0.5, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expect = [[(0.0 + 1.0 + 1.0), (0.01 + 0.09 + 0.04)]]
    assert example_errors("linear", z, targets).tolist() == [[pytest.approx(e) for e in expect[0]]]
    assert example_losses("linear", z, targets).tolist() == [[pytest.approx(e) for e in expect[0]]]


def test_an_mlp_spec_at_its_bounds():
    assert MLP(hidden=(1,)).checked("classification").hidden == (1,)        # one unit is a layer
    for bad in ((0,), (2, 0), (True,), (1.5,)):
        with pytest.raises(ConfigError, match="whole number >= 1"):
            MLP(hidden=bad).checked("classification")
    assert MLP(init_scale=1e-9).checked("regression").init_scale == 1e-9
    with pytest.raises(ConfigError, match="must be > 0"):
        MLP(init_scale=0.0).checked("regression")
