"""A population's update replayed from a captured graph (``train.replay``). On a CPU, replaying
calls the same update on the same buffers, so these tests check here what a GPU's replay relies
on: the update reads its minibatch from a fixed buffer, its losses come back in tensors the next
replay overwrites, the graph is captured again whenever members leave, and training is unchanged
by it, bit for bit. tests/test_cuda.py checks the captured graphs themselves."""

from dataclasses import replace

import pytest
import torch

from purelearn.nn import MLP
from purelearn.train import Member, Training
from purelearn.train.fit import check_member
from purelearn.train.population import Data, Population


def members(splits, activation="sigmoid"):
    """Plain-SGD members of different widths (padded, so masked for the sigmoid), rates and
    patience: they stop at different points, one diverges, one runs out of budget."""
    cases = [(30, 0.3, 3000, 4), (36, 0.5, 1500, 4), (33, 0.1, 600, 4), (38, 5000.0, 3000, 4), (34, 0.2, 3000, 2)]
    return [check_member(Member(MLP((w,), activation), Training(lr=lr, patience=patience, patience_mode="add",
                                                                 patience_increase=100, max_epochs=epochs,
                                                                 seed=i, valid_every=300)), splits)
            for i, (w, lr, patience, epochs) in enumerate(cases)]


def same_training(a, b):
    assert (a.stopped_because, a.examples_seen, a.best_valid_error) == (b.stopped_because, b.examples_seen,
                                                                        b.best_valid_error)
    assert [dict(r, seconds=0) for r in a.curve] == [dict(r, seconds=0) for r in b.curve]
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


def test_replayed_updates_train_exactly_as_eager_ones(digits):
    ms, data = members(digits), Data(digits, torch.device("cpu"))
    assert data.n_train % ms[0].train.batch_size        # an epoch ends on a shorter minibatch, run eagerly
    eager = Population(ms, data, replay=False).run()
    pop = Population(ms, data, replay=True)
    replayed = pop.run()
    for a, b in zip(eager, replayed):
        same_training(a, b)
    stops = sorted({r.examples_seen for r in replayed})
    assert [r.stopped_because for r in replayed] == ["budget", "patience", "patience", "diverged", "budget"]
    # one capture for the whole population, then one after each time members left it
    assert pop.replay.captures == len(stops)
    assert pop.replay.replays > 0.8 * stops[-1] / ms[0].train.batch_size


def test_members_leaving_make_the_replay_capture_again(digits):
    """A graph holds the addresses of the tensors it updates; compaction replaces them."""
    pop = Population(members(digits), Data(digits, torch.device("cpu")), replay=True)
    seen = 0
    for _ in pop.iterate():
        if len(pop.alive):
            assert pop.replay.idx is None and not pop.replay.warm      # forgotten: warm up, then capture
        assert pop.replay.captures > seen or not len(pop.alive)
        seen = pop.replay.captures


def test_an_epochs_shorter_last_minibatch_is_never_captured(digits):
    """A member leaves two updates before an epoch ends: the next update warms up, and the
    epoch's shorter last one must not be the one captured, or every full minibatch after it
    would run launched."""
    B = 32
    steps = digits.X_train.shape[0] // B                     # full minibatches per epoch, then a short one
    ms = members(digits, "tanh")[:3]
    ms = [replace(m, train=replace(m.train, valid_every=(steps - 1) * B, max_epochs=3, patience=10 ** 6, lr=0.1,
                                   max_examples=0 if i else (steps - 1) * B)) for i, m in enumerate(ms)]
    pop = Population(ms, Data(digits, torch.device("cpu")), replay=True)
    results = pop.run()
    assert [(r.stopped_because, r.examples_seen) for r in results] == [("budget", (steps - 1) * B),
                                                                       ("budget", 3 * digits.X_train.shape[0]),
                                                                       ("budget", 3 * digits.X_train.shape[0])]
    assert pop.replay.captures == 2
    # every full minibatch is replayed (the captured ones too) but the two warm-ups
    assert pop.replay.replays == 3 * steps - 2


@pytest.mark.parametrize("change", [{"momentum": 0.5}, {"polyak": True}, {"sparsity": "l1", "sparsity_coef": 0.1}])
def test_updates_that_are_not_plain_sgd_are_not_replayed(digits, change):
    ms = [replace(m, train=replace(m.train, **change)) for m in members(digits)[:2]]
    assert Population(ms, Data(digits, torch.device("cpu")), replay=True).replay is None


def test_a_decreasing_rate_runs_eagerly_until_the_rates_are_constant(digits):
    """Eq. (2)'s rate changes every step once t > tau: a replayed update would keep its first."""
    ms = [replace(m, train=replace(m.train, tau=200.0)) for m in members(digits, "tanh")[:3]]
    data = Data(digits, torch.device("cpu"))
    pop = Population(ms, data, replay=True)
    for a, b in zip(Population(ms, data, replay=False).run(), pop.run()):
        same_training(a, b)
    assert pop.replay.replays == 0


def test_a_step_that_draws_or_keeps_chains_is_not_replayed(digits):
    # a CUDA graph would replay the noise and the persistent chains as they were at its capture
    from purelearn.data import load, prepare
    from purelearn.nn import RBM, AutoEncoder

    scaled = prepare(load("digits"), preprocess=["scale"], seed=0)
    for spec in (AutoEncoder(8, corruption_level=0.3), RBM(8, persistent=True)):
        member = check_member(Member(spec, Training(lr=0.05)), scaled)
        pop = Population([member], Data(scaled, torch.device("cpu"), leave_out=False, unlabeled=True), replay=True)
        assert pop.plain_sgd and pop.replay is None
    assert Population(members(digits)[:1], Data(digits, torch.device("cpu")), replay=True).replay is not None
