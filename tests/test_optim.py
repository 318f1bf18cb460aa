import math

import pytest
import torch

from purelearn import optim
from purelearn.nn import l1_norm, l2_norm


def test_schedule_is_eq_2_with_power_alpha():
    for tau, alpha in ((10.0, 1.0), (10.0, 0.5), (math.inf, 1.0)):
        s = optim.Schedule([0.1, 0.3], [tau, tau], [alpha, alpha], [0.0, 0.0])
        for t in (1, 5, 10, 11, 100, 1000):
            direct = 0.1 * (tau / max(t, tau)) ** alpha if math.isfinite(tau) else 0.1
            assert optim.schedule_rate(0.1, tau, alpha, t) == pytest.approx(direct)
            assert s.rates(t)[0].item() == pytest.approx(direct, rel=1e-6)
            assert s.rates(t)[1].item() == pytest.approx(3 * direct, rel=1e-6)


def test_adaptive_tau_starts_decreasing_when_progress_stalls():
    s = optim.Schedule([0.1, 0.1], [math.inf, math.inf], [1.0, 1.0], [0.01, 0.0])
    for step, loss in ((100, 2.0), (200, 1.0), (300, 0.5)):
        s.end_epoch(step, torch.tensor([loss, loss]))
    assert torch.isinf(s.tau).all()                       # still improving by 50%
    s.end_epoch(400, torch.tensor([0.499, 0.499]))        # 0.2% < 1%: member 0 starts decaying
    assert s.tau.tolist() == [400.0, math.inf]
    assert s.rates(800).tolist() == pytest.approx([0.05, 0.1])


def test_weight_decay_adds_up_to_lambda_omega_over_an_epoch():
    """B/T per minibatch, B'/B on the short last one: an epoch's decay gradients sum to lambda * grad Omega."""
    T, B = 103, 10
    theta = {"W0": torch.randn(3, 4, 5, dtype=torch.float64)}
    l2, l1 = torch.tensor([0.1, 0.0, 1e-3]).view(3, 1, 1), torch.tensor([0.0, 0.2, 0.05]).view(3, 1, 1)
    rule = optim.add_decay({"W0": l2.double()}, {"W0": l1.double()})
    state = rule.init(theta)
    total = torch.zeros_like(theta["W0"])
    for start in range(0, T, B):
        size = min(B, T - start)
        total += rule.update({"W0": torch.zeros_like(theta["W0"])}, state, theta, decay_scale=size / T)["W0"]
    w = theta["W0"].clone().requires_grad_()
    penalty = sum(l2[p].item() * l2_norm(w[p]) + l1[p].item() * l1_norm(w[p]) for p in range(3))
    (expected,) = torch.autograd.grad(penalty, w)
    assert torch.allclose(total, expected, atol=1e-12)


def _run(rule, grads_seq, p0):
    params = {"w": p0.clone()}
    state = rule.init(params)
    for t, g in enumerate(grads_seq, start=1):
        updates = rule.update({"w": g.clone()}, state, params, step=t)
        optim.descend(params, updates, torch.tensor([0.1, 0.1]))
    return params["w"]


def _torch_run(make, grads_seq, p0):
    w = p0.clone().requires_grad_()
    opt = make([w])
    for g in grads_seq:
        w.grad = g.clone()
        opt.step()
    return w.detach()


@pytest.fixture
def grads_seq():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 4, generator=g) for _ in range(6)]


def test_momentum_forms(grads_seq):
    p0 = torch.randn(2, 3, 4)
    m = 0.7
    # the chapter's form: g_bar <- (1 - beta) g_bar + beta g, beta = 1 - m
    beta, g_bar, w = 1 - m, torch.zeros_like(p0), p0.clone()
    for g in grads_seq:
        g_bar = (1 - beta) * g_bar + beta * g
        w = w - 0.1 * g_bar
    rule = optim.chain(optim.momentum(optim.per_member(m, 2), "average"))
    assert torch.allclose(_run(rule, grads_seq, p0), w, atol=1e-6)
    for form, nesterov in (("classical", False), ("nesterov", True)):
        rule = optim.chain(optim.momentum(optim.per_member(m, 2), form))
        ref = _torch_run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=m, nesterov=nesterov), grads_seq, p0)
        assert torch.allclose(_run(rule, grads_seq, p0), ref, atol=1e-6)


def test_adagrad_and_adam_match_torch(grads_seq):
    p0 = torch.randn(2, 3, 4)
    ours = _run(optim.chain(optim.adagrad(1e-10)), grads_seq, p0)
    assert torch.allclose(ours, _torch_run(lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-10), grads_seq, p0),
                          atol=1e-6)
    ours = _run(optim.chain(optim.adam()), grads_seq, p0)
    assert torch.allclose(ours, _torch_run(lambda ps: torch.optim.Adam(ps, lr=0.1), grads_seq, p0), atol=1e-6)


def test_layer_scale_and_per_member_rates(grads_seq):
    p0 = torch.zeros(2, 3, 4)
    rule = optim.chain(optim.scale_by_layer({"w": optim.per_member([1.0, 0.5], 2)}))
    params = {"w": p0.clone()}
    state = rule.init(params)
    optim.descend(params, rule.update({"w": grads_seq[0].clone()}, state, params), torch.tensor([0.1, 0.2]))
    assert torch.allclose(params["w"][0], -0.1 * grads_seq[0][0])
    assert torch.allclose(params["w"][1], -0.1 * grads_seq[0][1])


def test_polyak_average_is_the_mean_of_the_iterates(grads_seq):
    params = {"w": torch.randn(2, 3, 4)}
    avg, seen = optim.polyak_init(params), [params["w"].clone()]
    for t, g in enumerate(grads_seq, start=1):
        params["w"] -= 0.1 * g
        optim.polyak_update(avg, params, t)
        seen.append(params["w"].clone())
    assert torch.allclose(avg["w"], torch.stack(seen).mean(0), atol=1e-6)


def test_polyak_average_starts_after_the_burn_in(grads_seq):
    """Each member's average is its current parameters until its burn-in step s, then the mean
    of theta_s..theta_t; s = 0 averages from the initial parameters."""
    P = 3
    params = {"w": torch.randn(P, 3, 4)}
    start = torch.tensor([0.0, 2.0, 5.0]).view(P, 1, 1)
    avg, seen = optim.polyak_init(params), [params["w"].clone()]
    for t, g in enumerate(grads_seq[:4], start=1):
        params["w"] -= 0.1 * g[:1].expand(P, 3, 4)
        optim.polyak_update(avg, params, t, start)
        seen.append(params["w"].clone())
    assert torch.equal(avg["w"][2], seen[4][2])                 # burn-in not over: the parameters themselves
    for t, g in enumerate(grads_seq[4:], start=5):
        params["w"] -= 0.1 * g[:1].expand(P, 3, 4)
        optim.polyak_update(avg, params, t, start)
        seen.append(params["w"].clone())
    iterates = torch.stack(seen)                                 # theta_0..theta_6
    for p, s in enumerate((0, 2, 5)):
        assert torch.allclose(avg["w"][p], iterates[s:, p].mean(0), atol=1e-6), s
    assert not torch.allclose(avg["w"][1], iterates[:, 1].mean(0), atol=1e-3)
    assert not torch.allclose(avg["w"][2], iterates[1:, 2].mean(0), atol=1e-3)


def test_polyak_burn_in_ends_where_the_rate_starts_decreasing():
    tau = torch.tensor([math.inf, 7.0, 7.6, 0.5])
    assert optim.polyak_start(tau, steps_per_epoch=34).flatten().tolist() == [34.0, 7.0, 7.0, 1.0]
    assert optim.polyak_start(tau, 34).shape == (4, 1, 1)


def test_select_keeps_members_of_every_state_tensor(grads_seq):
    rule = optim.chain(optim.momentum(optim.per_member([0.1, 0.9], 2)), optim.adagrad())
    state = rule.init({"w": torch.ones(2, 3, 4)})
    kept = optim.select(state, torch.tensor([1]))
    assert kept[0]["m"].flatten().tolist() == [pytest.approx(0.9)] and kept[1]["w"].shape == (1, 3, 4)
