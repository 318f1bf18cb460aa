"""Tests written against the mutants of optim/ and train/ that survived the existing tests (see
TESTING.md): each checks one behaviour against an independent computation (a hand formula, a
float64 loop, exact counts)."""

import math

import numpy as np
import pytest
import torch

from purelearn import optim

# --- optim/averaging.py ---------------------------------------------------------------------------


def test_polyak_with_one_start_step_for_every_member():
    """``start`` given as a number: the average is theta_t itself up to step s, then the mean of
    theta_s..theta_t."""
    g = torch.Generator().manual_seed(1)
    params = {"w": torch.randn(2, 3, 4, generator=g, dtype=torch.float64)}
    avg, seen = optim.polyak_init(params), [params["w"].clone()]
    for t in range(1, 7):
        params["w"] -= 0.1 * torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
        optim.polyak_update(avg, params, t, 3)
        seen.append(params["w"].clone())
        if t < 3:
            assert torch.equal(avg["w"], params["w"]), t
        else:
            assert torch.allclose(avg["w"], torch.stack(seen[3:]).mean(0), atol=1e-12), t


# --- optim/base.py --------------------------------------------------------------------------------


def test_select_keeps_what_is_not_a_member_tensor_as_it_is():
    state = ({"w": torch.arange(6.0).view(3, 2), "count": 7, "name": "adam", "none": None},
             [torch.tensor(2.5)])
    kept = optim.select(state, torch.tensor([2, 0]))
    assert kept[0]["w"].tolist() == [[4.0, 5.0], [0.0, 1.0]]
    assert (kept[0]["count"], kept[0]["name"], kept[0]["none"]) == (7, "adam", None)
    assert isinstance(kept[1], list) and kept[1][0].item() == 2.5          # a 0-d tensor: shared


# --- optim/schedules.py ---------------------------------------------------------------------------


def test_adaptive_tau_compares_the_relative_improvement_strictly_with_the_threshold():
    """(last - now) / |last| < threshold starts the decrease; equal does not; threshold 0 never."""
    s = optim.Schedule([0.1] * 5, [math.inf] * 5, [1.0] * 5, [0.01, 0.004, 0.25, 0.0, 0.01])
    assert s.to("cpu") is s
    first, second = [100.0, 100.0, 2.0, 1.0, -2.0], [99.5, 99.5, 1.5, 3.0, -2.01]
    s.end_epoch(40, torch.tensor(first))
    assert torch.isinf(s.tau).all()                                  # no previous epoch: no decision
    s.end_epoch(80, torch.tensor(second))
    # relative improvements 0.005, 0.005, exactly 0.25, -2 (a rise), 0.005 (|last| = 2)
    rel = [(a - b) / abs(a) for a, b in zip(first, second)]
    expected = [80.0 if thr > 0 and r < thr else math.inf
                for r, thr in zip(rel, [0.01, 0.004, 0.25, 0.0, 0.01])]
    assert expected == [80.0, math.inf, math.inf, math.inf, 80.0]
    assert s.tau.tolist() == expected
    assert s.rates(160).tolist() == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.05])


# --- optim/transforms.py --------------------------------------------------------------------------


def test_decay_without_a_minibatch_share_adds_the_whole_penalty_gradient():
    w = torch.tensor([[[0.5, -2.0]], [[1.5, -0.25]]], dtype=torch.float64)
    l2, l1 = torch.tensor([0.1, 0.0]).double().view(2, 1, 1), torch.tensor([0.0, 0.3]).double().view(2, 1, 1)
    rule = optim.add_decay({"W0": l2}, {"W0": l1})
    out = rule.update({"W0": torch.zeros_like(w)}, rule.init({"W0": w}), {"W0": w})["W0"]
    assert out.flatten().tolist() == pytest.approx([0.1, -0.4, 0.3, -0.3])   # 2 l2 w + l1 sign(w)


def test_adagrad_default_epsilon_is_1e_8():
    """Gradients of 1e-7: the default epsilon (1e-8) changes the step by about 10%."""
    g = torch.Generator().manual_seed(2)
    grads = [1e-7 * torch.randn(2, 3, dtype=torch.float64, generator=g) for _ in range(3)]
    rule, w = optim.adagrad(), torch.zeros(2, 3, dtype=torch.float64)
    state, acc, ref = rule.init({"w": w}), torch.zeros_like(w), w.clone()
    for grad in grads:
        acc = acc + grad ** 2
        ref = ref - 0.1 * grad / (acc.sqrt() + 1e-8)
        w -= 0.1 * rule.update({"w": grad.clone()}, state, {"w": w})["w"]
    assert torch.allclose(w, ref, rtol=1e-9, atol=0)


def test_adams_first_step_without_a_step_count_is_bias_corrected_as_step_one():
    """Step 1: m_hat = g and v_hat = g^2, so the update is g / (|g| + eps)."""
    grad = torch.tensor([[[0.3, -2.0, 1e-3]]], dtype=torch.float64)
    rule = optim.adam()
    out = rule.update({"w": grad.clone()}, rule.init({"w": grad}), {"w": grad})["w"]
    assert torch.allclose(out, grad / (grad.abs() + 1e-8), rtol=1e-12, atol=0)



# --- train/early_stopping.py ----------------------------------------------------------------------

from purelearn.train import Patience, significant                               # noqa: E402
from purelearn.train.early_stopping import binomial_tail                        # noqa: E402


def test_a_tie_with_the_best_is_not_a_new_minimum():
    p = Patience([100], [2.0], [False], [0.0])
    ids = np.array([0])
    assert p.observe(ids, 60, np.array([0.5])).tolist() == [True]
    assert p.observe(ids, 80, np.array([0.5])).tolist() == [False]
    assert (p.best.tolist(), p.best_at.tolist(), p.until.tolist()) == ([0.5], [60], [120.0])


def test_patience_grows_only_past_the_relative_improvement_and_never_shrinks():
    """improvement 0.25 from 0.5: the threshold is 0.375 (exact in binary); reaching it exactly
    is a new minimum but not a big enough one to grow patience."""
    p = Patience([100, 100, 100], [2.0, 2.0, 50.0], [False, False, True], [0.25, 0.25, 0.25])
    ids = np.array([0, 1, 2])
    p.observe(ids, 60, np.array([0.5, 0.5, 0.5]))
    assert p.until.tolist() == [120.0, 120.0, 110.0]
    assert p.observe(ids, 90, np.array([0.375, 0.37, 0.37])).tolist() == [True, True, True]
    assert p.until.tolist() == [120.0, 180.0, 140.0]            # 90 * 2, 90 + 50
    # a new minimum whose grown patience is below the current one leaves it
    p.observe(np.array([2]), 91, np.array([0.1]))
    assert p.until.tolist() == [120.0, 180.0, 141.0]
    q = Patience([1000], [2.0], [False], [0.0])
    q.observe(np.array([0]), 10, np.array([0.3]))
    assert q.until.tolist() == [1000.0] and q.best_at.tolist() == [10]


def test_patience_left_counts_down_to_zero_and_is_exhausted_at_the_limit():
    p = Patience([120, 50], [2.0, 2.0], [False, False], [0.0, 0.0])
    ids = np.array([0, 1])
    assert p.left(ids, 100).tolist() == [20.0, 0.0]
    assert p.exhausted(ids, 119).tolist() == [False, True]
    assert p.exhausted(ids, 120).tolist() == [True, True]


def test_a_significance_veto_keeps_the_old_best_and_its_patience():
    p = Patience([100, 100], [2.0, 2.0], [False, False], [0.0, 0.0])
    ids = np.array([0, 1])
    p.observe(ids, 60, np.array([0.5, 0.5]))
    assert p.observe(ids, 80, np.array([0.4, 0.4]), np.array([False, True])).tolist() == [False, True]
    assert (p.best.tolist(), p.best_at.tolist(), p.until.tolist()) == ([0.5, 0.4], [60, 80], [120.0, 160.0])



def test_a_p_value_equal_to_the_level_passes():
    """5 examples fixed and none broken: p = P(X >= 5), X ~ Binomial(5, 1/2) = 1/32, exact in
    binary, and exactly what the tail computes."""
    best, new = torch.zeros(1, 20), torch.zeros(1, 20)
    best[0, :5] = 1
    assert binomial_tail(torch.tensor([5]), torch.tensor([5])).item() == 1 / 32
    assert significant(best, new, np.array([1 / 32])).tolist() == [True]
    assert significant(best, new, np.array([1 / 32 - 1e-9])).tolist() == [False]


def test_a_tail_is_never_above_one():
    """P(X >= 0) = 1 for every n; the sum of the terms in log space rounds above 1 for some n
    (6, 7, 8, ...: by up to 1.5e-13) and below it for others."""
    n = torch.arange(0, 60)
    tails = binomial_tail(torch.zeros_like(n), n)
    assert (tails <= 1).all() and (tails > 1 - 1e-12).all()


# --- train/hyper.py -------------------------------------------------------------------------------

from purelearn import MLP, Member, Training                                     # noqa: E402
from purelearn.errors import ConfigError                                        # noqa: E402

# (setting, values accepted at or next to each edge, values refused just past it)
EDGES = [
    ("lr", [1e-12, 1e12], [0.0, -1e-12, math.inf, math.nan]),
    ("batch_size", [1, 100], [0, 101, True, 2.0]),
    ("tau", [1e-9, math.inf], [0.0, -1.0]),
    ("alpha", [1e-9], [0.0]),
    ("adaptive_tau", [0.0, 0.999], [1.0, -1e-9]),
    ("momentum", [0.0, 0.999], [1.0, -1e-9]),
    ("sparsity_coef", [0.0], [-1e-9]),
    ("sparsity_target", [1e-9, 1 - 1e-9], [0.0, 1.0]),
    ("patience", [1], [0, 1.0, True]),
    ("improvement", [0.0, 0.999], [1.0, -1e-9]),
    ("significance", [0.0, 0.499], [0.5, -1e-9]),
    ("valid_every", [0, 7], [-1, 7.0]),
    ("max_epochs", [1], [0, 1.0]),
    ("divergence", [1.000001], [1.0]),
    ("seed", [0, 12], [-1, 1.0, False]),
]


@pytest.mark.parametrize("name, good, bad", EDGES, ids=[e[0] for e in EDGES])
def test_each_training_setting_is_refused_exactly_past_its_range(name, good, bad):
    for v in good:
        assert getattr(Training(**{name: v}).checked(n_train=100, n_layers=2), name) == v
    for v in bad:
        with pytest.raises(ConfigError, match=f"train.{name} = "):
            Training(**{name: v}).checked(n_train=100, n_layers=2)


def test_patience_increase_must_exceed_1_when_multiplying_and_0_when_adding():
    for mode, good, bad in (("multiply", [1.001, 2.0], [1.0, 0.5]), ("add", [1e-9, 0.5], [0.0, -1.0])):
        for v in good:
            Training(patience_increase=v, patience_mode=mode).checked(100, 2)
        for v in bad:
            with pytest.raises(ConfigError, match="train.patience_increase"):
                Training(patience_increase=v, patience_mode=mode).checked(100, 2)


def test_momentum_with_another_optimizer_is_refused_and_zero_momentum_is_not():
    for optimizer in ("adagrad", "adam"):
        Training(optimizer=optimizer, momentum=0.0).checked(100, 2)
        with pytest.raises(ConfigError, match="momentum applies to sgd"):
            Training(optimizer=optimizer, momentum=0.1).checked(100, 2)
    Training(optimizer="sgd", momentum=0.1).checked(100, 2)


def test_unknown_names_of_every_kind_are_refused():
    for name, value in (("optimizer", "sgdd"), ("momentum_form", "nesterof"), ("patience_mode", "mul"),
                        ("sparsity", "l3")):
        with pytest.raises(ConfigError, match=f"unknown value for train.{name} '{value}'"):
            Training(**{name: value}).checked(100, 2)


def test_per_layer_values_are_one_per_weight_layer_decay_may_be_zero_rate_factors_may_not():
    t = Training(l1=0.5, l2=(0.0, 1, 2.5), lr_scale=(1, 0.5, 2)).checked(100, 3)
    assert (t.l1, t.l2, t.lr_scale) == ((0.5, 0.5, 0.5), (0.0, 1.0, 2.5), (1.0, 0.5, 2.0))
    assert all(type(v) is float for v in t.l1 + t.l2 + t.lr_scale)
    assert Training().checked(100, 2).lr_scale == (1.0, 1.0)             # () means 1 for every layer
    assert Training(l2=3).checked(100, 1).l2 == (3.0,)                    # an int is one number
    for kwargs, message in ((dict(l2=(0.1, -1e-9)), r"train.l2 = .*>= 0"), (dict(l1=-1.0), r"train.l1 = .*>= 0"),
                            (dict(lr_scale=(1.0, 0.0)), r"train.lr_scale = .*> 0"),
                            (dict(lr_scale=0.0), r"train.lr_scale = .*> 0"),
                            (dict(l2=(0.1, "x")), r"train.l2 = "),
                            (dict(l1=(0.1,)), "train.l1 has 1 values but the model has 2 weight layers")):
        with pytest.raises(ConfigError, match=message):
            Training(**kwargs).checked(100, 2)


def test_members_differing_in_a_structural_setting_are_never_trained_together():
    from purelearn.train.fit import populations

    base = Member(MLP((8,)), Training())
    structural = dict(batch_size=16, valid_every=64, optimizer="adam", momentum_form="nesterov", polyak=True,
                      sparsity="l1", decay_biases=True)
    for name, value in structural.items():
        other = Member(base.model, Training(**{name: value}))
        assert other.train.group_key() != base.train.group_key(), name
        assert sorted(populations([base, other], 10)) == [[0], [1]], name
    numeric = Member(base.model, Training(lr=0.5, momentum=0.9, l2=0.1, tau=5.0, patience=7, seed=3, max_epochs=2))
    assert numeric.train.group_key() == base.train.group_key()
    assert populations([base, numeric], 10) == [[0, 1]]


# --- train/population.py --------------------------------------------------------------------------

import time                                                                      # noqa: E402

from purelearn import fit                                                        # noqa: E402
from purelearn.data import from_arrays, prepare                                  # noqa: E402
from purelearn.nn import init_member                                             # noqa: E402
from purelearn.train.fit import check_member                                     # noqa: E402
from purelearn.train.population import Data, Population                          # noqa: E402

CPU = torch.device("cpu")


def _regression(n=160, seed=0):
    """Least squares on 3 inputs: 120 training examples, 40 validation ones."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=n)).astype(np.float32)
    s = prepare(from_arrays(X, y, task="regression"), valid=0.25, test=0.0)
    assert len(s.X_train) == 120
    return s


def _linear(s, **train):
    return Member(MLP(()), Training(**train))


def _hand_run(s, B, epochs, lr=0.05, seed=0, rate=None, adaptive=0.0):
    """A linear model trained by minibatch SGD on the mean squared error, in float64: each epoch
    a permutation from the member's own generator, the short last minibatch included. Returns,
    per step: examples seen, the minibatch loss before the step, the weights after it; and the
    tau the adaptive rule set (inf if none)."""
    A = np.hstack([s.X_train, np.ones((len(s.X_train), 1))]).astype(np.float64)
    t = s.y_train.ravel().astype(np.float64)
    p0 = init_member(MLP(()), 3, 1, seed)
    w = np.concatenate([p0["W0"].numpy().ravel(), p0["b0"].numpy().ravel()]).astype(np.float64)
    rng, T = np.random.default_rng([seed, 1]), len(A)
    seen, steps, tau, last = 0, [], math.inf, math.nan
    for _ in range(epochs):
        order, epoch_losses = rng.permutation(T), []
        for start in range(0, T, B):
            idx = order[start:start + B]
            r = A[idx] @ w - t[idx]
            loss = float(np.mean(r ** 2))
            step = len(steps) + 1
            eps = lr * (tau / max(step, tau)) if math.isfinite(tau) else lr
            if rate is not None:
                eps = rate(step)
            w = w - eps * 2 * A[idx].T @ r / len(idx)
            seen += len(idx)
            steps.append((seen, loss, w.copy()))
            epoch_losses.append(loss)
        mean = float(np.mean(epoch_losses))
        if adaptive > 0 and math.isinf(tau) and (last - mean) / abs(last) < adaptive:
            tau = float(len(steps))
        last = mean
    return steps, tau


def _valid_loss(s, w):
    A = np.hstack([s.X_valid, np.ones((len(s.X_valid), 1))]).astype(np.float64)
    return float(np.mean((A @ w - s.y_valid.ravel()) ** 2))


def _as_vector(params):
    return np.concatenate([params["W0"].numpy().ravel(), params["b0"].numpy().ravel()]).astype(np.float64)


@pytest.mark.parametrize("valid_every, rows", [(60, [75, 120, 195, 240]), (70, [75, 145, 220, 240])])
def test_validation_points_and_recorded_losses_match_a_hand_computed_run(valid_every, rows):
    """T = 120, B = 25: minibatches of 25, 25, 25, 25, 20 examples. A validation follows the step
    that crosses each multiple of ``valid_every``; at the end of the budget one more, unless the
    last step had one. train_loss is the mean minibatch loss since the last validation."""
    s = _regression()
    start = time.perf_counter()
    r = fit(s, _linear(s, lr=0.05, batch_size=25, valid_every=valid_every, max_epochs=2))
    wall = time.perf_counter() - start
    steps, _ = _hand_run(s, 25, 2)
    counts = [c for c, _, _ in steps]
    assert counts == [25, 50, 75, 100, 120, 145, 170, 195, 220, 240]
    crossing = sorted({next(c for c in counts if c >= m) for m in range(valid_every, 241, valid_every)} | {240})
    assert crossing == rows
    assert [row["examples_seen"] for row in r.curve] == rows and r.examples_seen == 240
    assert r.stopped_because == "budget"
    first = 0
    for row in r.curve:
        k = counts.index(row["examples_seen"])
        expected = np.mean([loss for _, loss, _ in steps[first:k + 1]])
        assert row["train_loss"] == pytest.approx(expected, rel=1e-5)
        assert row["valid_loss"] == pytest.approx(_valid_loss(s, steps[k][2]), rel=1e-5)
        assert row["valid_error"] == pytest.approx(row["valid_loss"], rel=1e-6)   # linear: squared error
        first = k + 1
    # the kept parameters are the weights after the best validation's step
    k = counts.index(r.examples_seen_at_best)
    assert r.best_valid_error == min(row["valid_error"] for row in r.curve)
    assert np.allclose(_as_vector(r.params), steps[k][2], rtol=1e-5, atol=1e-6)
    # seconds since the start, rounded to 0.1 ms
    seconds = [row["seconds"] for row in r.curve]
    assert seconds == sorted(seconds) and 0 <= seconds[0] and seconds[-1] <= wall + 1e-4
    assert all(x == round(x, 4) for x in seconds) and 0 <= r.seconds <= wall


def test_polyak_with_a_constant_rate_averages_from_the_end_of_the_first_epoch():
    """T = 120, B = 25: an epoch is ceil(120 / 25) = 5 steps, so the kept average is the mean of
    the iterates after steps 5..15."""
    s = _regression()
    r = fit(s, _linear(s, lr=0.05, batch_size=25, polyak=True, max_epochs=3, valid_every=10 ** 9, patience=10 ** 12))
    steps, _ = _hand_run(s, 25, 3)
    assert len(steps) == 15
    mean = np.mean([w for _, _, w in steps[4:]], axis=0)
    assert np.allclose(_as_vector(r.params), mean, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_as_vector(r.params), np.mean([w for _, _, w in steps[3:]], axis=0), rtol=1e-4, atol=1e-5)


def test_adaptive_tau_starts_the_decrease_after_the_first_epoch_that_improves_too_little():
    """The rule compares each epoch's mean minibatch criterion with the previous one's; it is
    set here so that it fires after epoch 4 (step 20): the relative improvements after epochs
    2, 3 and 4 are 0.497, 0.495 and 0.464."""
    s = _regression()
    epochs, threshold = 6, 0.48
    steps, tau = _hand_run(s, 25, epochs, lr=0.03, adaptive=threshold)
    assert tau == 20.0
    r = fit(s, _linear(s, lr=0.03, batch_size=25, adaptive_tau=threshold, max_epochs=epochs,
                       valid_every=10 ** 9, patience=10 ** 12))
    assert np.allclose(_as_vector(r.params), steps[-1][2], rtol=1e-5, atol=1e-6)
    early, _ = _hand_run(s, 25, epochs, lr=0.03, rate=lambda t: 0.03 * min(1.0, 10 / t))
    assert not np.allclose(early[-1][2], steps[-1][2], rtol=1e-4, atol=1e-5)       # fired at step 10 instead


def _hand_adam(s, minibatches, lr, seed=0, b1=0.9, b2=0.999, eps=1e-8):
    A = np.hstack([s.X_train, np.ones((len(s.X_train), 1))]).astype(np.float64)
    t = s.y_train.ravel().astype(np.float64)
    p0 = init_member(MLP(()), 3, 1, seed)
    w = np.concatenate([p0["W0"].numpy().ravel(), p0["b0"].numpy().ravel()]).astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for step, idx in enumerate(minibatches, start=1):
        g = 2 * A[idx].T @ (A[idx] @ w - t[idx]) / len(idx)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps)
    return w


@pytest.mark.parametrize("B", [25, 119])
def test_timing_steps_trains_the_first_epochs_order_and_returns_the_cpu_time(B):
    """time_steps(n): a warm-up step 1 on the first minibatch, then steps 2..n+1 on minibatches
    starting at (t B) mod max(T - B, 1); Adam's bias correction shows each step's number. The
    time returned is the calling thread's CPU time for the n steps."""
    s = _regression()
    T, n = len(s.X_train), 5
    pop = Population([check_member(_linear(s, lr=0.01, batch_size=B, optimizer="adam"), s)], Data(s, CPU))
    before = time.thread_time()
    seconds = pop.time_steps(n)
    assert 0 < seconds <= time.thread_time() - before
    order = np.random.default_rng([0, 1]).permutation(T)
    starts = [0] + [(t * B) % max(T - B, 1) for t in range(n)]
    assert starts == ([0, 0, 25, 50, 75, 5] if B == 25 else [0] * 6)
    expected = _hand_adam(s, [order[a:a + B] for a in starts], 0.01)
    trained = {k: v[0] for k, v in pop.params.items()}
    assert np.allclose(_as_vector(trained), expected, rtol=1e-5, atol=1e-6)


def _classes(n=400, seed=0):
    """Two noisy classes on 5 inputs: 240 training examples, 160 validation ones."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + 0.8 * rng.normal(size=n) > 0).astype(np.int64)
    return prepare(from_arrays(X, y), valid=0.4, test=0.0)


def test_padded_sigmoid_members_train_as_if_alone_after_one_of_them_leaves():
    """Padded sigmoid units are masked (their output 1/2 would otherwise train the weights out
    of them); the mask must stay on after the population is compacted."""
    s = _classes()
    members = [Member(MLP((10,), "sigmoid"), Training(lr=0.3, batch_size=16, max_epochs=3, seed=0)),
               Member(MLP((12,), "sigmoid"), Training(lr=0.3, batch_size=16, max_epochs=1, seed=1))]
    together = fit(s, members)
    assert [r.examples_seen for r in together] == [720, 240]          # the padded member stays
    for m, r in zip(members, together):
        alone = fit(s, m)
        assert all(torch.allclose(r.params[k], alone.params[k], atol=1e-6) for k in alone.params)


def test_a_member_without_the_significance_test_keeps_its_minima_beside_one_with_it():
    s = _classes()
    train = dict(lr=0.1, batch_size=16, max_epochs=4, valid_every=80)
    base, strict = Member(MLP((8,)), Training(**train)), Member(MLP((8,)), Training(**train, significance=0.05, seed=1))
    together = fit(s, [base, strict])
    alone = fit(s, base)
    errors = [row["valid_error"] for row in alone.curve]
    assert alone.examples_seen_at_best > alone.curve[0]["examples_seen"]    # the case: a later minimum
    assert alone.best_valid_error == min(errors) < errors[0]
    assert together[0].examples_seen_at_best == alone.examples_seen_at_best
    assert together[0].best_valid_error == alone.best_valid_error


def test_updates_are_replayed_by_default_only_on_a_cuda_device(digits):
    member = check_member(Member(MLP((8,)), Training(max_epochs=1)), digits)
    data = Data(digits, CPU)
    assert Population([member], data).replay is None
    assert Population([member], data, replay=True).replay is not None


def test_inputs_zero_in_at_least_a_tenth_of_the_columns_are_left_out():
    rng = np.random.default_rng(0)
    for n_in, dead, left_out in ((10, 1, True), (30, 3, True), (100, 9, False)):
        X = rng.normal(size=(200, n_in)).astype(np.float32)
        s = prepare(from_arrays(X, (X[:, 0] > 0).astype(np.int64)), test=0.0)
        s.X_train[:, :dead] = 0
        d = Data(s, CPU)
        assert (d.columns is not None) == left_out, (n_in, dead)
        assert d.n_active == (n_in - dead if left_out else n_in)


def test_the_training_defaults_are_the_documented_ones():
    """What a member trains with when nothing is set (lr, batch size and patience as the
    docstring gives them)."""
    expected = dict(lr=0.01, batch_size=32, tau=math.inf, alpha=1.0, adaptive_tau=0.0, optimizer="sgd", momentum=0.0,
                    momentum_form="average", polyak=False, l1=0.0, l2=0.0, decay_biases=False, lr_scale=(),
                    sparsity="none", sparsity_coef=0.0, sparsity_target=0.05, patience=10000, patience_increase=2.0,
                    patience_mode="multiply", improvement=0.005, significance=0.0, valid_every=0, max_epochs=100, max_examples=0,
                    divergence=10.0, seed=0, monitor=0)
    from dataclasses import asdict
    assert asdict(Training()) == expected


def test_members_are_frozen_values():
    from dataclasses import FrozenInstanceError
    m = Member(MLP((8,)), Training(lr=0.1))
    with pytest.raises(FrozenInstanceError):
        m.train = Training()
    assert m == Member(MLP((8,)), Training(lr=0.1)) and len({m, Member(MLP((8,)), Training(lr=0.1))}) == 1


# --- train/fit.py ---------------------------------------------------------------------------------

import importlib                                                                 # noqa: E402

fit_module = importlib.import_module("purelearn.train.fit")      # the module, not the function
from purelearn.train.fit import populations, resolve_device                       # noqa: E402
from purelearn.train.memory import footprint                                     # noqa: E402


def test_devices_resolve_by_name_and_auto_picks_cuda_only_when_present(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_device(cpu) is cpu and resolve_device("cpu") == cpu
    for bad in ("tpu", "gpu", "cpu:0"):
        with pytest.raises(ConfigError, match=f"unknown device '{bad}'"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fit_module._cuda_present.cache_clear()
    try:
        assert resolve_device("auto") == cpu
        with pytest.raises(ConfigError, match="no CUDA device is present"):
            resolve_device("cuda:1")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        fit_module._cuda_present.cache_clear()
        assert resolve_device("auto") == torch.device("cuda")
        assert resolve_device("cuda:1") == torch.device("cuda:1") and resolve_device("cuda") == torch.device("cuda")
    finally:
        monkeypatch.undo()
        fit_module._cuda_present.cache_clear()


def test_on_a_cpu_widths_up_to_1_3_times_the_narrowest_are_padded_into_one_population():
    def m(width):
        return Member(MLP((width,)), Training())
    assert populations([m(10), m(13)], 10) == [[0, 1]]                  # 13 = 1.3 x 10: together
    assert populations([m(14), m(10)], 10) == [[1], [0]]
    assert populations([m(20), m(10), m(13), m(26)], 10) == [[1, 2], [0, 3]]


def test_a_memory_limit_splits_the_members_into_populations_that_fit():
    s = _classes()
    members = [check_member(Member(MLP((8,)), Training(max_epochs=1, seed=i)), s) for i in range(5)]
    one = footprint(members[0], 5, 2)
    sizes = []
    results = fit(s, members, memory_limit=2 * one, progress=lambda p: sizes.append(p["members"]))
    assert len(results) == 5 and max(sizes) == 2 and sizes.count(1) >= 1
    assert sorted(populations(members, 10, memory_limit=2 * one, cost=lambda m: one)) == [[0, 1], [2, 3], [4]]


# --- train/lr_search.py ---------------------------------------------------------------------------

from dataclasses import FrozenInstanceError, replace                             # noqa: E402

from purelearn import find_learning_rate                                         # noqa: E402

lr_search = importlib.import_module("purelearn.train.lr_search")


def _full_batch(s):
    """Full-batch gradient descent on least squares diverges exactly above 2 / lambda_max."""
    A = np.hstack([s.X_train, np.ones((len(s.X_train), 1))]).astype(np.float64)
    limit = 2 / np.linalg.eigvalsh(2 * A.T @ A / len(A)).max()
    return limit, _linear(s, batch_size=len(s.X_train))


def test_a_stable_start_whose_next_rate_diverges_ends_the_search_at_once_going_up():
    s = _regression()
    limit, member = _full_batch(s)
    found = find_learning_rate(s, member, start=limit / 3 ** 0.5, epochs=40, tries=3, rounds=1)
    assert [round(math.log(r.rate / limit, 3), 6) for r in found.runs] == [-0.5, 0.5]
    assert [r.diverged for r in found.runs] == [False, True] and found.direction == "up"
    assert found.largest_stable == pytest.approx(limit / 3 ** 0.5, rel=1e-9)
    with pytest.raises(FrozenInstanceError):
        found.runs[0].rate = 1.0


def test_a_rate_that_leaves_the_criterion_where_it_started_has_diverged(monkeypatch):
    """At 1e-30 the float32 weights do not move: the criterion ends exactly where it started,
    which is not below it; every rate down from there does the same, and the search gives up
    after its 3 default rounds of 5 one-epoch runs (exponents -2..2, -3..-7, -8..-12)."""
    s = _regression()
    sizes, epochs_seen = [], []

    def counted(splits, members, **kw):
        sizes.append(len(members))
        results = fit(splits, members, **kw)
        epochs_seen.extend(r.examples_seen / len(splits.X_train) for r in results)
        return results

    monkeypatch.setattr(lr_search, "fit", counted)
    with pytest.raises(ConfigError, match=r"every rate down to 1e-42 made the training criterion rise \(3 rounds\)"):
        find_learning_rate(s, _linear(s, batch_size=40), start=1e-30, factor=10.0)
    assert sizes == [5, 5, 5] and set(epochs_seen) == {1.0}


def test_a_search_up_that_finds_no_diverging_rate_names_the_last_rate_tried(monkeypatch):
    s = _regression()
    """2 rounds of 2 rates: exponents -1, 0, then 1, 2, all stable; the last rate is 1e-6 x 10^2."""
    with pytest.raises(ConfigError, match=r"no rate up to 0.0001 made the training criterion rise \(2 rounds\)"):
        find_learning_rate(s, _linear(s, batch_size=40), start=1e-6, factor=10.0, tries=2, rounds=2)


def test_the_search_settings_are_checked_at_their_edges():
    s = _regression()
    member = _linear(s, batch_size=40)
    for kwargs in (dict(start=0.0), dict(start=-1.0), dict(factor=1.0), dict(margin=0.999), dict(tries=0),
                   dict(rounds=0), dict(epochs=0)):
        with pytest.raises(ConfigError, match="find_learning_rate: need start > 0"):
            find_learning_rate(s, member, **kwargs)
    limit, member = _full_batch(s)
    found = find_learning_rate(s, member, start=limit / 3 ** 0.5, margin=1.0, tries=1, rounds=2, epochs=40)
    assert [r.diverged for r in found.runs] == [False, True]
    assert found.rate == found.largest_stable == pytest.approx(limit / 3 ** 0.5, rel=1e-9)
    found = find_learning_rate(s, member, start=limit / 1.5 ** 0.5, factor=1.5, tries=2, epochs=40)   # any factor > 1
    assert [r.diverged for r in found.runs] == [False, True]
    assert found.largest_stable == pytest.approx(limit / 1.5 ** 0.5, rel=1e-9)


def test_each_short_run_is_validated_once_at_its_end():
    """T = 120 and B = 7: the last minibatch of an epoch holds 1 example, so a validation point
    one example short of the end would be a step of its own."""
    s = _regression()
    found = find_learning_rate(s, _linear(s, batch_size=7), start=0.01, epochs=2, tries=3)
    for run in found.runs:
        assert [row["examples_seen"] for row in run.result.curve] == [240]


# --- train/memory.py ------------------------------------------------------------------------------

from purelearn.train import memory                                               # noqa: E402


def test_a_members_footprint_counts_its_weights_biases_and_activations():
    m = Member(MLP((4, 3)), Training(batch_size=32))
    # 5 -> 4 -> 3 -> 2: 5*4 + 4 + 4*3 + 3 + 3*2 + 2 = 47 parameters, 14 units
    assert memory.footprint(m, 5, 2) == 4 * (47 * 7 + 3 * 32 * 14)
    assert memory.describe(m, 5, 2) == "5-4-3-2"


def test_a_member_is_refused_only_above_the_limit():
    m = Member(MLP((4,)), Training(batch_size=8))
    need = memory.footprint(m, 3, 2)
    memory.check_fits(m, 3, 2, need)
    memory.check_fits(m, 3, 2, None)
    with pytest.raises(memory.MemoryLimitError, match=r"a 3-4-2 network with minibatches of 8 needs about 0.0 MB"):
        memory.check_fits(m, 3, 2, need - 1)


def test_the_default_limit_is_half_the_free_memory_shared_among_the_workers(monkeypatch):
    values = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(memory.os, "sysconf", lambda name: values[name])
    assert memory.default_memory_limit("cpu") == 2_048_000
    assert memory.default_memory_limit("cpu", workers=4) == 512_000
    assert memory.default_memory_limit("cpu", workers=0) == 2_048_000

    def unknown(name):
        raise ValueError(name)

    monkeypatch.setattr(memory.os, "sysconf", unknown)
    assert memory.default_memory_limit("cpu", 2) == (4 << 30) // 4          # 4 GiB assumed
    monkeypatch.setattr(memory.torch.cuda, "mem_get_info", lambda: (8_000_000_000, 16_000_000_000))
    assert memory.default_memory_limit("cuda", workers=3) == 4_000_000_000   # one GPU: not shared


def test_allocation_failures_are_recognised_and_named():
    assert memory.is_allocation_failure(MemoryError())
    assert memory.is_allocation_failure(torch.OutOfMemoryError("CUDA out of memory"))
    assert memory.is_allocation_failure(RuntimeError("DefaultCPUAllocator: can't Allocate memory"))
    assert not memory.is_allocation_failure(RuntimeError("shape mismatch"))
    assert not memory.is_allocation_failure(ValueError("alloc"))
    members = [Member(MLP((4,)), Training(batch_size=8)), Member(MLP((6,)), Training(batch_size=8))]
    error = memory.allocation_failed(members, 3, 2, RuntimeError("can't allocate\nmore detail"))
    assert isinstance(error, memory.MemoryLimitError)
    total = memory.footprint(members[0], 3, 2) + memory.footprint(members[1], 3, 2)
    assert str(error).startswith(f"training 2 member(s) like 3-6-2 needs about {total / 2 ** 20:,.1f} MB")
    assert "(can't allocate)" in str(error) and "more detail" not in str(error)


# --- train/model.py and train/result.py -----------------------------------------------------------

import builtins                                                                  # noqa: E402
import io                                                                        # noqa: E402

from purelearn import Model                                                      # noqa: E402
from purelearn.errors import DataError, PurelearnError                          # noqa: E402
from purelearn.train.result import Result                                       # noqa: E402


def _hand_model(output, classes=None):
    """No hidden layer: z = x0 - x1 (+ 0.5 for the second output of a linear model)."""
    k = 2 if output == "linear" else (2 if output == "softmax" else 1)
    W = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])[:k] if output == "softmax" else torch.tensor([[1.0, -1.0]] * k)
    b = torch.tensor([[0.0, 0.5]])[:, :k] if output == "linear" else torch.zeros(1, k)
    return Model(MLP((), output=output), {"W0": W, "b0": b}, [], classes, 2)


X4 = np.array([[2.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])                  # x0 - x1 = 2, 1, 0, -1


def test_a_sigmoid_models_labels_are_its_positive_outputs_and_a_linear_ones_its_values():
    assert _hand_model("sigmoid").predict(X4).ravel().tolist() == [1.0, 1.0, 0.0, 0.0]       # z = 0: label 0
    assert _hand_model("linear").predict(X4).tolist() == [[2.0, 2.5], [1.0, 1.5], [0.0, 0.5], [-1.0, -0.5]]
    assert _hand_model("softmax", classes=("a", "b")).predict(X4).tolist() == ["a", "a", "a", "b"]   # a tie: first


def test_a_models_error_on_raw_data_is_its_criterion_by_hand():
    y = np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z = np.array([[2.0, 2.5], [1.0, 1.5], [0.0, 0.5], [-1.0, -0.5]])
    assert _hand_model("linear").error(X4, y) == pytest.approx(np.mean(((z - y) ** 2).sum(1)))
    labels = np.array([[1.0], [0.0], [0.0], [0.0]])                                 # the second is wrong
    assert _hand_model("sigmoid").error(X4, labels) == pytest.approx(0.25)
    assert _hand_model("softmax").error(X4, np.array([0, 1, 0, 1])) == pytest.approx(0.25)


def test_a_model_takes_one_example_as_a_row_and_refuses_other_shapes_and_non_numbers():
    m = _hand_model("linear")
    assert m.predict(np.array([2.0, 0.0])).tolist() == [[2.0, 2.5]]                  # one example, 1-D
    assert m.predict(np.array([[2.0, 0.0]])).tolist() == [[2.0, 2.5]]                # the same as a row
    assert m.predict(torch.tensor([[1.0, 0.0]])).tolist() == [[1.0, 1.5]]
    for bad in (np.array([1.0, 2.0, 3.0]), np.zeros((2, 3)), np.zeros((1, 1, 2)), np.zeros(4)):
        with pytest.raises(DataError, match="raw inputs of 2 features"):
            m.predict(bad)
    for bad in (np.array([[1.0, np.nan]]), np.array([[np.inf, 0.0]]), np.array([["a", "b"]])):
        with pytest.raises(DataError, match="finite numbers"):
            m.predict(bad)


def test_a_model_file_is_read_only_as_tensors_and_plain_values():
    """A file whose unpickling would run code is refused before anything in it runs."""
    class Runs:
        def __reduce__(self):
            return exec, ("import builtins; builtins._ran_from_a_model_file = True",)

    buf = io.BytesIO()
    torch.save({"format": "purelearn.model/1", "spec": Runs()}, buf)
    try:
        with pytest.raises(PurelearnError, match="not a purelearn model this version reads"):
            Model.from_bytes(buf.getvalue())
        assert not hasattr(builtins, "_ran_from_a_model_file")
    finally:
        if hasattr(builtins, "_ran_from_a_model_file"):
            del builtins._ran_from_a_model_file
    for state, shown in (({"format": "other/9"}, "format 'other/9'"), ([1, 2], "format None")):
        buf = io.BytesIO()
        torch.save(state, buf)
        with pytest.raises(PurelearnError, match=rf"the model is not a purelearn model .*\(ValueError: {shown}\)"):
            Model.from_bytes(buf.getvalue())
    m = _hand_model("linear")
    again = Model.from_bytes(m.to_bytes())
    assert again.predict(X4).tolist() == m.predict(X4).tolist() and again.n_inputs == 2


def test_a_results_summary_flags_and_model_come_from_its_fields():
    params = {"W0": torch.tensor([[1.0, -1.0, 0.0]]), "b0": torch.zeros(1, 1)}
    r = Result(Member(MLP((), output="linear"), Training()), 0.25, 0.5, 100, 300, "diverged", 1.23456,
               [{"examples_seen": 100}], params)
    assert r.diverged and not replace(r, stopped_because="budget").diverged
    assert not replace(r, stopped_because="patience").diverged
    assert r.summary() == {"best_valid_error": 0.25, "best_valid_loss": 0.5, "examples_seen_at_best": 100,
                           "examples_seen": 300, "stopped_because": "diverged", "seconds": 1.235}
    assert r.model.n_inputs == 3                              # without n_inputs: W0's input width
    assert replace(r, n_inputs=5).model.n_inputs == 5
    assert r.predict(np.array([[2.0, 1.0, 7.0]])).tolist() == [[1.0]]
    shown = repr(r)                                           # the big fields stay out of it
    assert "examples_seen_at_best=100" in shown
    assert "curve" not in shown and "params" not in shown and "preprocessing" not in shown


# --- train/replay.py (its CPU path) ---------------------------------------------------------------

from purelearn.train.replay import Replay                                       # noqa: E402


def test_a_replay_warms_up_captures_replays_and_runs_other_shapes_as_they_come():
    calls = []

    def update(idx):
        calls.append(idx.shape)
        return (idx.sum(1, keepdim=True).float(),)

    r = Replay(CPU)
    first, second = torch.tensor([[1, 2]]), torch.tensor([[3, 4]])
    assert r(update, first)[0].tolist() == [[3.0]] and (r.captures, r.replays) == (0, 0)   # warm-up: eager
    out = r(update, second)
    assert out[0].tolist() == [[7.0]] and (r.captures, r.replays) == (1, 1)
    again = r(update, torch.tensor([[5, 6]]))
    assert again[0] is out[0] and again[0].tolist() == [[11.0]] and (r.captures, r.replays) == (1, 2)
    other = r(update, torch.tensor([[1, 1, 1]]))                    # another shape: eager, graph kept
    assert other[0].tolist() == [[3.0]] and other[0] is not out[0] and (r.captures, r.replays) == (1, 2)
    assert r(update, first)[0].tolist() == [[3.0]] and r.replays == 3
    r.forget()
    assert r(update, first)[0].tolist() == [[3.0]] and (r.captures, r.replays) == (1, 3)    # warm again
    assert len(calls) == 6                                          # on a CPU each replay runs it once


def test_the_rate_search_takes_its_smallest_allowed_settings():
    from purelearn.data import load

    splits = prepare(load("digits"), preprocess=["standardize"], seed=0)
    member = Member(MLP((8,)), Training(batch_size=64))
    # one try, one round, no margin are allowed: the search runs, and with one round it can't
    # find the boundary (not refused for its arguments)
    with pytest.raises(ConfigError, match="no rate up to|every rate down to"):
        find_learning_rate(splits, member, margin=1, tries=1, rounds=1)


# ---- train/population.py, on the code after the model-family seam ----------------------------

from purelearn.data import load as load_dataset                                 # noqa: E402


def test_data_holds_only_the_labeled_training_inputs_unless_asked():
    splits = prepare(load_dataset("digits"), preprocess=["standardize"], seed=0, labeled=100)
    assert len(Data(splits, torch.device("cpu")).X_train) == 100
    assert len(Data(splits, torch.device("cpu"), unlabeled=True).X_train) == len(splits.inputs())


def test_a_population_runs_to_the_results_of_its_members_in_order(digits):
    members = [check_member(Member(MLP(hidden=(8,)), Training(lr=lr, max_epochs=1, seed=3)), digits)
               for lr in (0.3, 0.01)]
    results = Population(members, Data(digits, torch.device("cpu"))).run()
    assert [r.member.train.lr for r in results] == [0.3, 0.01]


def test_validation_comes_each_time_a_multiple_of_valid_every_is_crossed(digits):
    r = fit(digits, Member(MLP(hidden=(8,)), Training(lr=0.1, max_epochs=2, valid_every=500, batch_size=32)))
    n = len(digits.X_train)
    seen = [row["examples_seen"] for row in r.curve]
    ends = [k * n + min(s + 32, n) for k in range(2) for s in range(0, n, 32)]      # after each minibatch
    crossed = [e for prev, e in zip([0, *ends], ends) if e // 500 > prev // 500]
    assert seen == crossed + ([2 * n] if crossed[-1] != 2 * n else [])             # and where the budget ends
