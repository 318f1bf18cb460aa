import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from purelearn import MLP, Member, Training, find_learning_rate, fit
from purelearn.data import from_arrays, prepare
from purelearn.errors import ConfigError
from purelearn.nn import example_errors, init_member, predict_scores
from purelearn.train import Patience, significant
from purelearn.train.early_stopping import binomial_tail
from purelearn.train.fit import check_member
from purelearn.train.population import Data, Population


def _mixed_members():
    # widths within 1.3x of each other: one population, the narrower members padded
    cases = [((40,), 0.1, 0.0, 0.0, "sgd"), ((48,), 0.05, 0.5, 1e-2, "sgd"), ((37,), 0.2, 0.9, 0.0, "sgd"),
             ((44,), 0.02, 0.0, 0.0, "sgd")]
    members = [Member(MLP(h), Training(lr=lr, momentum=m, l2=l2, optimizer=o, max_epochs=3 + i, patience=1500,
                                       seed=i, valid_every=500))
               for i, (h, lr, m, l2, o) in enumerate(cases)]
    # one member with short, additive patience: it stops long before the others
    members[1] = replace(members[1], train=replace(members[1].train, patience=600, patience_mode="add",
                                                   patience_increase=100))
    return members


def _assert_same(a, b, atol=1e-5):
    assert a.stopped_because == b.stopped_because and a.examples_seen == b.examples_seen
    assert a.examples_seen_at_best == b.examples_seen_at_best
    assert a.best_valid_error == pytest.approx(b.best_valid_error, abs=atol)
    for k in a.params:
        assert torch.allclose(a.params[k], b.params[k], atol=atol), k
    for ra, rb in zip(a.curve, b.curve):
        assert ra["examples_seen"] == rb["examples_seen"]
        assert ra["valid_loss"] == pytest.approx(rb["valid_loss"], abs=atol)


def test_a_population_trains_each_member_as_if_alone(digits):
    members = _mixed_members()
    together = fit(digits, members)
    for m, r in zip(members, together):
        _assert_same(r, fit(digits, m))
    # members stop on their own: patience ran out for some before the budget
    assert [r.stopped_because for r in together] == ["budget", "patience", "budget", "budget"]
    assert len({r.examples_seen for r in together}) == 4


def test_padded_sigmoid_members_with_a_sparsity_penalty_train_as_if_alone(digits):
    members = [Member(MLP((w,), "sigmoid"), Training(lr=0.3, max_epochs=2, sparsity=kind, sparsity_coef=0.05, seed=i))
               for i, (w, kind) in enumerate([(30, "kl"), (36, "kl"), (33, "squared"), (38, "squared")])]
    from purelearn.train.fit import populations
    assert sorted(map(len, populations(members, 10))) == [2, 2]          # padded within each penalty
    for m, r in zip(members, fit(digits, members)):
        _assert_same(r, fit(digits, m))


def test_a_diverging_member_is_isolated(digits):
    members = _mixed_members()
    wild = replace(members[0], train=replace(members[0].train, lr=500.0, seed=9))
    with_wild = fit(digits, members + [wild])
    assert with_wild[-1].diverged and with_wild[-1].examples_seen < with_wild[0].examples_seen
    for a, b in zip(with_wild, fit(digits, members)):
        _assert_same(a, b, atol=1e-6)


@pytest.mark.parametrize("width, activation, lr, seed, ends, ties", [
    ((256, 256), "tanh", 4.0, 0, "budget", 0), ((38,), "sigmoid", 5000.0, 0, "diverged", 0),
    ((38,), "sigmoid", 5000.0, 1, "diverged", 0), ((38,), "tanh", 1e4, 0, "diverged", 1)])
def test_a_loss_above_its_limit_diverges_at_two_validations_in_a_row_without_a_new_best(digits, width, activation,
                                                                                        lr, seed, ends, ties):
    """The rule recomputed from the curve: each validation is above the limit (10x the first
    minibatch's loss) or not, and sets a new best validation error or not. The first member is
    above it at its first validation only (it used to stop there) and ends far below; the others
    are above it at every validation and stop at the second in a row without a new best, not at a
    single one (sigmoid seed 1 has one, then a new best, before its two; the last one's fourth
    validation equals its best, which is no new best)."""
    member = check_member(Member(MLP(width, activation), Training(lr=lr, max_epochs=3, seed=seed, valid_every=300)),
                          digits)
    pop = Population([member], Data(digits, torch.device("cpu")))
    result = pop.run()[0]
    limit, best, strikes, expected, tied = 10 * pop.first_loss[0], math.inf, 0, None, 0
    for k, row in enumerate(result.curve):
        strikes = strikes + 1 if row["train_loss"] > limit and not row["valid_error"] < best else 0
        tied += row["valid_error"] == best
        best = min(best, row["valid_error"])
        if strikes == 2:
            expected = k
            break
    assert result.curve[0]["train_loss"] > limit
    assert result.stopped_because == ends
    if ends == "budget":
        assert expected is None
        assert result.best_valid_error < result.curve[0]["valid_error"] / 2
    else:
        assert len(result.curve) == expected + 1 > 3 and tied == ties


def test_same_seed_same_result_bitwise(digits):
    m = Member(MLP((32,)), Training(lr=0.1, momentum=0.5, max_epochs=2, seed=3))
    a, b = fit(digits, m), fit(digits, m)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    # two independent runs: every recorded number but the clock is the same, bit for bit
    untimed = lambda curve: [{k: v for k, v in row.items() if k != "seconds"} for row in curve]
    assert len(a.curve) > 2 and untimed(a.curve) == untimed(b.curve)
    c = fit(digits, replace(m, train=replace(m.train, seed=4)))
    assert not torch.equal(a.params["W0"], c.params["W0"])
    assert [r["valid_loss"] for r in c.curve] != [r["valid_loss"] for r in a.curve]


def _noisy_overfit_data():
    """Few noisy training examples and a large net: validation error falls, then rises."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 30)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    flip = rng.random(600) < 0.3
    y[flip] = 1 - y[flip]
    return prepare(from_arrays(X, y), valid=0.5, test=0.0, seed=0)


def test_early_stopping_keeps_the_best_validation_state_not_the_last():
    s = _noisy_overfit_data()
    r = fit(s, Member(MLP((256,)), Training(lr=0.2, batch_size=10, valid_every=100, patience=20000,
                                            max_epochs=60, improvement=0.0)))
    errors = [row["valid_error"] for row in r.curve]
    assert errors[-1] > min(errors) + 0.02            # the case: validation error rose at the end
    assert r.best_valid_error == min(errors)
    assert r.examples_seen_at_best == r.curve[int(np.argmin(errors))]["examples_seen"]
    # the kept parameters are the best point's: they reproduce its validation error
    z = r.scores(s.X_valid).unsqueeze(0)
    assert example_errors("softmax", z, torch.as_tensor(s.y_valid)).mean().item() == pytest.approx(r.best_valid_error)


def test_patience_rule_multiplicative_and_additive():
    p = Patience([100, 100], [2.0, 50.0], [False, True], [0.1, 0.1])
    ids = np.array([0, 1])
    assert p.observe(ids, 60, np.array([0.5, 0.5])).tolist() == [True, True]
    assert p.until.tolist() == [120, 110]                 # max(100, 60*2) and max(100, 60+50)
    assert p.observe(ids, 80, np.array([0.48, 0.48])).tolist() == [True, True]  # < 10% better: no growth
    assert p.until.tolist() == [120, 110] and p.best_at.tolist() == [80, 80]
    assert p.observe(ids, 100, np.array([0.6, 0.3])).tolist() == [False, True]
    assert p.until.tolist() == [120, 150]
    assert p.exhausted(ids, 120).tolist() == [True, False]


def _discordant(b: int, c: int, n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example 0/1 errors [n] before and after: b examples fixed, c broken, 5 wrong in both."""
    best, new = torch.zeros(n), torch.zeros(n)
    best[:b] = 1                                  # wrong before, right now
    new[b:b + c] = 1                              # right before, wrong now
    best[b + c:b + c + 5] = new[b + c:b + c + 5] = 1
    return best, new


def _exact_tail(b: int, c: int) -> float:
    """P(X >= b), X ~ Binomial(b + c, 1/2), from whole-number counts."""
    return sum(math.comb(b + c, j) for j in range(b, b + c + 1)) / 2 ** (b + c)


def _enumerated_tail(b: int, c: int) -> float:
    """The same, by enumerating every way the b + c discordant examples could have fallen."""
    n = b + c
    return sum(bin(w).count("1") >= b for w in range(2 ** n)) / 2 ** n


MCNEMAR = [(3, 0), (6, 0), (5, 0), (4, 1), (7, 2), (9, 3), (2, 8), (1, 1), (10, 4), (0, 3)]


def test_significance_is_mcnemars_exact_test():
    for b, c in MCNEMAR:
        assert _exact_tail(b, c) == pytest.approx(_enumerated_tail(b, c), rel=1e-12)
    pairs = [_discordant(b, c) for b, c in MCNEMAR]
    best, new = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    tails = binomial_tail(torch.tensor([b for b, _ in MCNEMAR]), torch.tensor([b + c for b, c in MCNEMAR]))
    assert tails.tolist() == pytest.approx([_exact_tail(b, c) for b, c in MCNEMAR], rel=1e-10)
    for level in (0.01, 0.05, 0.2):
        expected = [_exact_tail(b, c) <= level for b, c in MCNEMAR]
        assert significant(best, new, np.full(len(MCNEMAR), level)).tolist() == expected, level
    # 3 fewer errors and none new: p = 1/8, refused at 5% (a z-test accepts it); 6 and none: 1/64
    assert _exact_tail(3, 0) == 0.125 and _exact_tail(6, 0) == 1 / 64
    assert significant(best[:2], new[:2], np.array([0.05, 0.05])).tolist() == [False, True]
    # one level per member
    assert significant(best[:2], new[:2], np.array([0.2, 0.01])).tolist() == [True, False]


def test_significance_far_in_the_tail_and_its_edge_cases():
    # large counts: the exact tail is far below what a float sum of probabilities could hold
    b, c = 900, 100
    exact = _exact_tail(b, c)
    assert exact < 1e-150
    assert binomial_tail(torch.tensor([b]), torch.tensor([b + c])).item() == pytest.approx(exact, rel=1e-9)
    assert binomial_tail(torch.tensor([480]), torch.tensor([1000])).item() == pytest.approx(_exact_tail(480, 520),
                                                                                           rel=1e-9)
    same = torch.zeros(2, 50)
    same[:, :7] = 1
    assert significant(same, same.clone(), np.array([0.4, 0.4])).tolist() == [False, False]   # no discordant one
    first = torch.full((1, 50), float("inf"))
    assert significant(first, same[:1], np.array([0.01])).tolist() == [True]             # no finite best yet
    # errors that are not 0/1 (fractions of wrong labels): the sign of each change counts
    before = torch.tensor([[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.25]])
    after = torch.tensor([[0.0, 0.25, 0.0, 0.25, 0.0, 0.25, 0.0, 0.25]])
    assert significant(before, after, np.array([0.016])).tolist() == [True]      # 6 better, none worse: 1/64
    assert significant(before, after, np.array([0.015])).tolist() == [False]


def test_significance_changes_which_minimum_is_kept(digits):
    """With the test on, a later and lower validation minimum is refused when its gain over the
    kept point is not significant: the kept point is then an earlier one."""
    base = Member(MLP((32,)), Training(lr=0.1, max_epochs=6, valid_every=300))
    plain = fit(digits, base)
    strict = fit(digits, replace(base, train=replace(base.train, significance=0.05)))
    # the option changes only which point is kept, not how training goes
    assert [r["valid_error"] for r in strict.curve] == [r["valid_error"] for r in plain.curve]
    assert strict.examples_seen_at_best < plain.examples_seen_at_best
    assert strict.best_valid_error > plain.best_valid_error
    # Recomputed from the kept parameters: plain's minimum came after strict's kept point, so
    # it was compared with it, and McNemar's test (computed here from counts) refuses it.
    def errors(r):
        z = predict_scores(r.params, digits.X_valid, r.member.model.activation).unsqueeze(0)
        return example_errors("softmax", z, torch.as_tensor(digits.y_valid))[0]
    kept, later = errors(strict), errors(plain)
    assert kept.mean().item() == pytest.approx(strict.best_valid_error)
    b, c = int(((kept == 1) & (later == 0)).sum()), int(((kept == 0) & (later == 1)).sum())
    assert b > c and _exact_tail(b, c) > 0.05


def test_decay_is_scaled_by_minibatch_over_training_size():
    """Zero inputs and targets leave only the L2 term: over one epoch of SGD the weights shrink by
    prod(1 - 2 lr lambda B_i / T), the short last batch included."""
    n_total, B, lr, lam = 130, 16, 0.1, 0.5
    data = from_arrays(np.zeros((n_total, 3), np.float32), np.zeros((n_total, 2), np.float32), task="regression")
    s = prepare(data, valid=0.2, test=0.0)
    T = len(s.X_train)
    assert T % B
    r = fit(s, Member(MLP(()), Training(lr=lr, batch_size=B, l2=lam, max_epochs=1, valid_every=T)))
    w0 = fit(s, Member(MLP(()), Training(lr=lr, batch_size=B, l2=0.0, max_epochs=1, valid_every=T))).params["W0"]
    shrink = np.prod([1 - 2 * lr * lam * min(B, T - i) / T for i in range(0, T, B)])
    assert torch.allclose(r.params["W0"], w0 * shrink, atol=1e-6)


def _zero_data(n_total=130, n_in=3, n_out=2):
    data = from_arrays(np.zeros((n_total, n_in), np.float32), np.zeros((n_total, n_out), np.float32), task="regression")
    return prepare(data, valid=0.2, test=0.0)


def test_per_layer_decay_and_rates_map_to_their_layers_output_last():
    """Zero inputs and targets give zero gradients, so over one epoch of SGD each weight layer l
    only decays, by prod(1 - 2 lr s_l lambda_l B_i / T) with its own lambda_l and rate factor
    s_l; the values are listed input layer first, output last. Reversed, every layer fails."""
    s = _zero_data()
    T, B, lr = len(s.X_train), 16, 0.1
    model = MLP((4, 3))
    l2, scale = (0.1, 0.0, 0.5), (1.0, 0.5, 0.25)
    r = fit(s, Member(model, Training(lr=lr, batch_size=B, l2=l2, lr_scale=scale, max_epochs=1, valid_every=T)))
    w0 = init_member(r.member.model, 3, 2, seed=0)
    for l in range(3):
        shrink = np.prod([1 - 2 * lr * scale[l] * l2[l] * min(B, T - i) / T for i in range(0, T, B)])
        assert torch.allclose(r.params[f"W{l}"], w0[f"W{l}"] * float(shrink), atol=1e-6), l
    assert torch.equal(r.params["W1"], w0["W1"])                  # lambda = 0 on the middle layer
    # L1: w moves toward 0 by lr * s_l * lambda_l per epoch (sum of B_i / T = 1), output layer only
    l1 = (0.0, 0.0, 0.04)
    r = fit(s, Member(model, Training(lr=lr, batch_size=B, l1=l1, lr_scale=scale, max_epochs=1, valid_every=T)))
    step = lr * scale[2] * l1[2]
    assert torch.equal(r.params["W0"], w0["W0"]) and torch.equal(r.params["W1"], w0["W1"])
    assert (w0["W2"].abs() > 2 * step).all()                      # no weight crosses 0 on the way
    assert torch.allclose(r.params["W2"], w0["W2"] - step * w0["W2"].sign(), atol=1e-6)


def test_polyak_validates_the_averaged_parameters(digits):
    m = Member(MLP((32,)), Training(lr=0.1, max_epochs=2, polyak=True, seed=1))
    r = fit(digits, m)
    plain = fit(digits, replace(m, train=replace(m.train, polyak=False)))
    assert r.best_valid_error != plain.best_valid_error or not torch.equal(r.params["W0"], plain.params["W0"])
    z = predict_scores(r.params, digits.X_valid, "tanh").unsqueeze(0)   # X_valid is already preprocessed
    assert example_errors("softmax", z, torch.as_tensor(digits.y_valid)).mean().item() == pytest.approx(r.best_valid_error)


def _least_squares(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * rng.normal(size=n)).astype(np.float32)
    return prepare(from_arrays(X, y, task="regression"), valid=0.25, test=0.0)


@pytest.mark.parametrize("tau, burn_in", [(math.inf, 1), (4.0, 4), (4.6, 4)])
def test_polyak_averages_the_iterates_from_the_burn_in_on(tau, burn_in):
    """Full-batch steps (one per epoch), validated only at the end: the kept parameters are the
    mean of theta_s..theta_T, s = tau where the rate starts decreasing, one epoch when it is
    constant. The iterates come from separate runs of t = 1..T steps without averaging."""
    s = _least_squares()
    T = 8
    def member(epochs, polyak):
        return Member(MLP(()), Training(lr=0.05, batch_size=len(s.X_train), tau=tau, max_epochs=epochs,
                                        polyak=polyak, valid_every=10 ** 9, patience=10 ** 12))
    averaged = fit(s, member(T, True))
    initial = init_member(averaged.member.model, s.n_features, s.n_outputs, seed=0)
    iterates = [initial] + [fit(s, member(t, False)).params for t in range(1, T + 1)]
    def mean(first):
        return {k: torch.stack([p[k] for p in iterates[first:]]).mean(0) for k in initial}
    expected = mean(burn_in)
    for k in expected:
        assert torch.allclose(averaged.params[k], expected[k], atol=1e-6), k
    for other in {0, 1, burn_in + 1} - {burn_in}:               # 0: from the random initial weights
        assert not torch.allclose(averaged.params["W0"], mean(other)["W0"], atol=1e-4), other


def test_polyak_members_with_their_own_burn_in_train_together_as_alone():
    s = _least_squares()
    members = [Member(MLP(()), Training(lr=0.05, batch_size=len(s.X_train), tau=tau, max_epochs=epochs, polyak=True,
                                        valid_every=10 ** 9, patience=10 ** 12, seed=i))
               for i, (tau, epochs) in enumerate([(2.0, 3), (math.inf, 8), (5.0, 4), (3.0, 8)])]
    for together, m in zip(fit(s, members), members):       # members leave the population one by one
        alone = fit(s, m)
        assert all(torch.allclose(together.params[k], alone.params[k], atol=1e-6) for k in alone.params)


REFERENCE_SPARSITY = {"l1": lambda h, rho: h.abs().mean(0), "student_t": lambda h, rho: torch.log1p(h ** 2).mean(0),
                      "kl": lambda h, rho: (lambda m: rho * torch.log(rho / m) + (1 - rho) * torch.log((1 - rho) / (1 - m)))(
                          h.mean(0).clamp(1e-6, 1 - 1e-6))}


def _reference_run(splits, member, epochs):
    """An independent trainer for one member, in float64 with torch.autograd and torch.optim:
    the member's own initialization and example order, the penalties added to the minibatch
    criterion (decay scaled by B'/T), the rate of eq. (2) set before every step (tau from the
    adaptive rule at the end of an epoch), per-layer rates as parameter groups. Returns the
    last parameters and the tau reached."""
    t, model = member.train, member.model
    params = {k: v.double().requires_grad_() for k, v in
              init_member(model, splits.n_features, splits.n_outputs, t.seed).items()}
    n_layers = len(params) // 2
    groups = [{"params": [params[f"W{l}"], params[f"b{l}"]], "scale": t.lr_scale[l]} for l in range(n_layers)]
    if t.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=t.lr, eps=1e-8)
    elif t.optimizer == "adagrad":
        opt = torch.optim.Adagrad(groups, lr=t.lr, eps=1e-8)
    elif t.momentum and t.momentum_form == "average":
        opt = None                                        # the chapter's g_bar, written out below
        g_bar = {k: torch.zeros_like(p) for k, p in params.items()}
    else:
        opt = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=t.momentum_form == "nesterov")
    X, y = torch.as_tensor(splits.X_train, dtype=torch.float64), torch.as_tensor(splits.y_train)
    T, act = len(X), {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[model.activation]
    order_rng, tau, previous, step = np.random.default_rng([t.seed, 1]), t.tau, math.nan, 0
    for _ in range(epochs):
        order, total, count = order_rng.permutation(T), 0.0, 0
        for s in range(0, T, t.batch_size):
            step += 1
            idx = torch.as_tensor(order[s:s + t.batch_size])
            h, hidden = X[idx], []
            for l in range(n_layers):
                z = h @ params[f"W{l}"].T + params[f"b{l}"]
                h = act(z) if l < n_layers - 1 else z
                hidden.append(h)
            criterion = torch.nn.functional.cross_entropy(z, y[idx])
            if t.sparsity != "none":
                criterion = criterion + t.sparsity_coef * sum(
                    REFERENCE_SPARSITY[t.sparsity](h, t.sparsity_target).sum() for h in hidden[:-1])
            total, count = total + criterion.item(), count + 1
            share = len(idx) / T
            decay = sum(share * (t.l2[l] * (p ** 2).sum() + t.l1[l] * p.abs().sum())
                        for name, p in params.items() for l in [int(name[1:])]
                        if name.startswith("W") or t.decay_biases)
            grads = torch.autograd.grad(criterion + decay, list(params.values()))
            rate = t.lr * (tau / max(step, tau)) ** t.alpha if math.isfinite(tau) else t.lr
            with torch.no_grad():
                if opt is None:
                    for (name, p), g in zip(params.items(), grads):
                        g_bar[name] = t.momentum * g_bar[name] + (1 - t.momentum) * g
                        p -= rate * t.lr_scale[int(name[1:])] * g_bar[name]
                else:
                    for p, g in zip(params.values(), grads):
                        p.grad = g
                    for group in opt.param_groups:
                        group["lr"] = rate * group["scale"]
                    opt.step()
        criterion = total / count                         # the epoch's mean minibatch criterion
        if t.adaptive_tau > 0 and math.isinf(tau) and (previous - criterion) / abs(previous) < t.adaptive_tau:
            tau = float(step)
        previous = criterion
    return {k: p.detach() for k, p in params.items()}, tau


RULES = [dict(optimizer="adam", lr=1e-3), dict(optimizer="adagrad", lr=0.05),
         dict(momentum=0.9, momentum_form="nesterov"), dict(momentum=0.5, momentum_form="classical"),
         dict(momentum=0.5), dict(tau=40.0, alpha=0.5), dict(adaptive_tau=0.5),
         dict(l1=1e-3, decay_biases=True), dict(l2=(1e-2, 1e-3)), dict(lr_scale=(0.5, 1.0)),
         dict(sparsity="student_t", sparsity_coef=0.01), dict(sparsity="l1", sparsity_coef=0.01),
         dict(model=MLP((32,), "sigmoid"), lr=0.2, sparsity="kl", sparsity_coef=0.1)]


def test_every_rule_and_penalty_matches_an_independent_trainer(digits):
    """Each update rule, schedule and penalty of the engine, trained 3 epochs (102 steps) and
    validated only at the end, ends where a float64 trainer written with torch.optim and
    autograd ends."""
    epochs = 3
    def member(v):
        v = dict(v)
        model = v.pop("model", MLP((32,)))
        return Member(model, Training(**dict(dict(lr=0.05, max_epochs=epochs, valid_every=10 ** 9), **v)))
    threads = torch.get_num_threads()
    # Hundreds of tiny operations: on a shared machine a second thread mostly waits for the first.
    torch.set_num_threads(1)
    try:
        results = fit(digits, [member(v) for v in RULES])
        references = [_reference_run(digits, r.member, epochs) for r in results]
    finally:
        torch.set_num_threads(threads)
    for v, r, (expected, tau) in zip(RULES, results, references):
        if "adaptive_tau" in v:
            assert tau == 68                              # the decrease started after 2 epochs of 34 steps
        for k in expected:
            assert torch.allclose(r.params[k].double(), expected[k], atol=2e-5, rtol=0), (v, k)


def _stability_problem():
    """Full-batch gradient descent on least squares diverges exactly above 2 / lambda_max."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32) * np.array([3, 1, 1, 0.5, 0.2], np.float32)
    y = (X @ rng.normal(size=5) + 0.1 * rng.normal(size=200)).astype(np.float32)
    s = prepare(from_arrays(X, y, task="regression"), valid=0.25, test=0.0)
    A = np.hstack([s.X_train, np.ones((len(s.X_train), 1))]).astype(np.float64)
    limit = 2 / np.linalg.eigvalsh(2 * A.T @ A / len(A)).max()
    return s, A, limit, Member(MLP(()), Training(batch_size=len(s.X_train)))


def _rates(found, limit):
    return [round(math.log(r.rate / limit, 3), 6) for r in found.runs]


def test_find_learning_rate_searches_down_from_a_diverging_start():
    s, _, limit, member = _stability_problem()
    found = find_learning_rate(s, member, start=limit * 3 ** 2.5, epochs=40, tries=7)   # rates limit * 3^(k + 1/2)
    assert found.direction == "down"
    assert _rates(found, limit) == [2.5, 1.5, 0.5, -0.5]
    assert [r.diverged for r in found.runs] == [True, True, True, False]
    assert found.largest_stable == pytest.approx(limit / 3 ** 0.5, rel=1e-9)
    assert found.rate == pytest.approx(limit / 3 ** 0.5 / 2, rel=1e-9)          # the chapter's factor 2
    rate, runs = find_learning_rate(s, member, start=limit * 3 ** 2.5, epochs=40, tries=7, margin=3.0)
    assert rate == pytest.approx(limit / 3 ** 1.5, rel=1e-9) and len(runs) == 4


def test_find_learning_rate_searches_up_from_a_stable_start():
    s, _, limit, member = _stability_problem()
    found = find_learning_rate(s, member, start=limit / 3 ** 2.5, epochs=40, tries=7)
    assert found.direction == "up"
    assert _rates(found, limit) == [-2.5, -1.5, -0.5, 0.5]         # up to the first that diverges
    assert [r.diverged for r in found.runs] == [False, False, False, True]
    assert found.largest_stable == pytest.approx(limit / 3 ** 0.5, rel=1e-9)
    assert found.rate == pytest.approx(limit / 3 ** 0.5 / 2, rel=1e-9)
    # the criteria: every run starts from the same initial parameters; stable ones end lower
    assert len({r.start_criterion for r in found.runs}) == 1
    assert all(r.end_criterion < r.start_criterion for r in found.runs[:3])


def test_a_rate_whose_criterion_rises_less_than_tenfold_has_diverged():
    """Just above the limit the loss grows slowly: after 4 steps it is above its start but
    within the engine's 10x divergence rule. The search counts it as diverged, from criteria
    that match a hand computation of the 4 steps."""
    s, A, limit, member = _stability_problem()
    found = find_learning_rate(s, member, start=limit * 1.1, epochs=4, tries=3)
    first = found.runs[0]
    assert first.result.stopped_because == "budget"                 # the engine did not stop it
    p0 = init_member(first.result.member.model, 5, 1, seed=0)
    w = np.concatenate([p0["W0"].numpy().ravel(), p0["b0"].numpy().ravel()]).astype(np.float64)
    t = s.y_train.ravel().astype(np.float64)
    loss = lambda w: np.mean((A @ w - t) ** 2)
    start = loss(w)
    for _ in range(4):
        w = w - first.rate * 2 * A.T @ (A @ w - t) / len(A)
    assert first.start_criterion == pytest.approx(start, rel=1e-5)
    assert first.end_criterion == pytest.approx(loss(w), rel=1e-4)
    assert start < first.end_criterion < 10 * start and first.diverged
    assert [r.diverged for r in found.runs] == [True, False] and found.largest_stable == pytest.approx(limit * 1.1 / 3)


def test_find_learning_rate_trains_its_candidates_as_populations(monkeypatch):
    import purelearn.train.lr_search as lr_search
    s, _, limit, member = _stability_problem()
    sizes = []
    def counted(splits, members, **kw):
        sizes.append(len(members))
        return fit(splits, members, **kw)
    monkeypatch.setattr(lr_search, "fit", counted)
    found = find_learning_rate(s, member, start=limit * 3 ** 6.5, epochs=40, tries=5)
    assert sizes == [5, 5]                 # 3^(6.5 +- 2), then 3^4.5 .. 3^0.5: two populations
    assert _rates(found, limit) == [6.5, 5.5, 4.5, 3.5, 2.5, 1.5, 0.5, -0.5]
    with pytest.raises(ConfigError, match="every rate down to"):
        find_learning_rate(s, member, start=limit * 3 ** 6.5, epochs=40, tries=3, rounds=2)
    with pytest.raises(ConfigError, match="no rate up to"):
        find_learning_rate(s, member, start=limit / 3 ** 6.5, epochs=40, tries=3, rounds=1)
    with pytest.raises(ConfigError, match="factor > 1"):
        find_learning_rate(s, member, factor=1.0)
    with pytest.raises(ConfigError, match="train.lr"):                # the member is checked first
        find_learning_rate(s, replace(member, train=replace(member.train, lr=-1.0)))


def test_bad_training_settings_are_refused(digits):
    cases = [(dict(lr=-0.1), "train.lr"), (dict(patience=0), "train.patience"),
             (dict(batch_size=5000), "training-set size"), (dict(optimizer="sgdd"), "Did you mean 'sgd'"),
             (dict(momentum=1.0), "train.momentum"), (dict(l2=(0.1, 0.2, 0.3)), "3 values"),
             (dict(optimizer="adam", momentum=0.5), "momentum applies to sgd")]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            fit(digits, Member(MLP((8,)), Training(**kwargs)))
    with pytest.raises(ConfigError, match="sigmoid"):
        fit(digits, Member(MLP((8,)), Training(sparsity="kl")))
    with pytest.raises(ConfigError, match="no CUDA device|unknown device"):
        fit(digits, Member(), device="cuda" if not torch.cuda.is_available() else "tpu")


def test_regression_and_multilabel_outputs_learn(rng):
    X = rng.normal(size=(800, 6)).astype(np.float32)
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 3] ** 2], 1).astype(np.float32)
    s = prepare(from_arrays(X, Y, task="regression"), test=0.0)
    r = fit(s, Member(MLP((64,)), Training(lr=0.02, max_epochs=80)))
    baseline = ((s.y_valid - s.y_train.mean(0)) ** 2).sum(1).mean()      # predicting the mean
    assert r.best_valid_error < 0.2 * baseline
    assert np.allclose(((r.predict(s.X_valid) - s.y_valid) ** 2).sum(1).mean(), r.best_valid_error, rtol=1e-4)

    labels = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] * X[:, 4] > 0], 1).astype(np.float32)
    m = prepare(from_arrays(X, labels), test=0.0)
    assert m.task == "multilabel"
    r = fit(m, Member(MLP((64,)), Training(lr=0.1, max_epochs=40)))
    assert r.member.model.output == "sigmoid" and r.best_valid_error < 0.15
    assert (r.predict(m.X_valid) != m.y_valid).mean() == pytest.approx(r.best_valid_error, abs=1e-6)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_inputs_zero_in_every_training_example_are_left_out_of_training(rng, digits, momentum):
    """Their weights get no gradient, so they keep their initial values; validation still sees
    them (a validation example may light them), with the right weights."""
    from purelearn.nn.mlp import init_member, predict_scores
    from purelearn.train.population import Data

    X = rng.normal(size=(600, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 5] > 0).astype(np.int64)
    s = prepare(from_arrays(X, y), test=0.0, preprocess=[])
    s.X_train[:, [1, 4]] = 0                     # dead in training, alive in validation
    d = Data(s, torch.device("cpu"))
    assert d.columns.tolist() == [0, 2, 3, 5, 1, 4] and d.n_active == 4
    assert d.X_train.shape[1] == 4 and d.X_valid.shape[1] == 6
    assert Data(digits, torch.device("cpu")).columns is None      # 4 of 64: too few to pay
    member = Member(MLP((8,)), Training(lr=0.1, max_epochs=3, momentum=momentum, seed=7))
    r = fit(s, member)
    W0 = init_member(r.member.model, 6, 2, seed=7)["W0"]
    assert torch.equal(r.params["W0"][:, [1, 4]], W0[:, [1, 4]])
    assert not torch.allclose(r.params["W0"][:, [0, 5]], W0[:, [0, 5]])
    # The recorded validation loss was computed on the reordered inputs; the returned weights on
    # the data's own order must give the same.
    z = predict_scores(r.params, torch.as_tensor(s.X_valid), "tanh")
    loss = torch.nn.functional.cross_entropy(z, torch.as_tensor(s.y_valid)).item()
    assert loss == pytest.approx(r.best_valid_loss, rel=1e-5)
