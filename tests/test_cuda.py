"""Training on a CUDA device (§5.1): the data stays on the device, populations give what the CPU
gives, and a study batches every trial there. These run only where a CUDA device is present."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import purelearn as pl
from purelearn.config import Config
from purelearn.data import from_arrays, load, prepare
from purelearn.nn import MLP
from purelearn.train import Member, Training, fit
from purelearn.train.fit import populations, width_ratio
from purelearn.train.population import Data, Population

sys.path.insert(0, str(Path(__file__).parent))
from test_replay import members  # noqa: E402

DEVICE = "cuda"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _digits():
    return prepare(load("digits"), preprocess=["standardize"])


def _members():
    return [Member(MLP(hidden=(h,), activation=act), Training(lr=lr, max_epochs=3, seed=s, valid_every=300))
            for s, (h, act, lr) in enumerate([(16, "tanh", 0.05), (40, "tanh", 0.1), (24, "rectifier", 0.05),
                                              (64, "rectifier", 0.02), (32, "sigmoid", 0.5)])]


def test_data_lives_on_the_device():
    d = Data(_digits(), torch.device(DEVICE))
    assert {t.device.type for t in (d.X_train, d.y_train, d.X_valid, d.y_valid)} == {DEVICE}


def test_a_population_on_the_device_learns_what_it_learns_on_the_cpu():
    splits, members = _digits(), _members()
    on_cpu = fit(splits, members, device="cpu")
    on_gpu = fit(splits, members, device=DEVICE)
    for a, b in zip(on_cpu, on_gpu):
        assert [r["examples_seen"] for r in a.curve] == [r["examples_seen"] for r in b.curve]
        for ra, rb in zip(a.curve, b.curve):   # summation orders differ: equal to float32 noise
            assert ra["valid_loss"] == pytest.approx(rb["valid_loss"], rel=1e-3)
        assert abs(a.best_valid_error - b.best_valid_error) <= 2 / len(splits.X_valid)
        assert all(v.device.type == "cpu" for v in b.params.values())        # results come back to the host


def test_on_the_device_a_member_ends_the_same_alone_or_padded_in_a_population():
    splits, members = _digits(), _members()
    assert len(populations(members, 8, width_ratio(DEVICE))) == 3           # one per activation: widths pad
    together = fit(splits, members, device=DEVICE)
    for m, t in zip(members, together):
        alone = fit(splits, m, device=DEVICE)
        assert alone.best_valid_loss == pytest.approx(t.best_valid_loss, rel=1e-4, abs=1e-5)


def test_a_study_on_the_device_batches_every_trial(tmp_path):
    cfg = Config().with_values({"data.name": "digits", "data.preprocess": ["standardize"], "device": DEVICE,
                                "train.max_epochs": 3, "model.activation": "tanh"})
    space = {"train.lr": "loguniform(1e-2, 1)", "model.units": "intloguniform(16, 128)",
             "model.layers": "intuniform(1, 2)"}
    study = pl.tune(cfg, space, trials=40, store=tmp_path / "s.db", study="s")
    assert study.schedule.startswith("GPU: populations of up to 40")
    assert len(study.trials) == 40 and all(t.status in ("complete", "diverged") for t in study.trials)
    assert study.best.value < 0.1 and math.isfinite(study.best.value)
    weights = torch.load(study.store.weights_path(study.record))
    assert all(v.device.type == "cpu" for v in weights.values())


def test_inputs_left_out_of_training_on_the_device(rng):
    """Inputs zero in every training example are left out on the device too (a strided view of
    the first layer's weights there): the same learning as on the CPU."""
    X = rng.normal(size=(600, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 5] > 0).astype(np.int64)
    s = prepare(from_arrays(X, y), test=0.0, preprocess=[])
    s.X_train[:, [1, 4]] = 0
    assert Data(s, torch.device(DEVICE)).n_active == 6
    member = Member(MLP((16,)), Training(lr=0.1, max_epochs=3, seed=3))
    a, b = fit(s, member, device="cpu"), fit(s, member, device=DEVICE)
    assert a.best_valid_loss == pytest.approx(b.best_valid_loss, rel=1e-3)   # float32 summation orders differ
    assert torch.allclose(a.params["W0"], b.params["W0"], atol=1e-4)


def test_on_the_device_replayed_updates_train_as_eager_ones():
    """Plain SGD's updates are captured as CUDA graphs and replayed (train.replay): the same
    training as launching every kernel, through members leaving (graphs captured again), an
    epoch's shorter last minibatch and a diverging member."""
    splits = _digits()
    ms, data = members(splits), Data(splits, torch.device(DEVICE))
    eager = Population(ms, data, replay=False).run()
    pop = Population(ms, data)
    replayed = pop.run()
    assert pop.replay is not None and pop.replay.cuda
    assert pop.replay.captures == len({r.examples_seen for r in replayed}) and pop.replay.replays > 100
    for a, b in zip(eager, replayed):
        assert (a.stopped_because, a.examples_seen) == (b.stopped_because, b.examples_seen)
        for ra, rb in zip(a.curve, b.curve):
            assert ra["valid_loss"] == pytest.approx(rb["valid_loss"], rel=1e-5, abs=1e-6)
        assert all(torch.allclose(a.params[k], b.params[k], atol=1e-5) for k in a.params)


def test_an_update_cuda_cannot_capture_runs_uncaptured():
    """An update that waits for the device (here: reads a value back) can't be captured: it
    warns once and goes on launched, with the same result."""
    from purelearn.train.replay import Replay
    w = torch.zeros(4, device=DEVICE)

    def update(idx):
        w.add_(idx.sum(1).float())
        return (w.sum().cpu(),)            # a copy to the host: not allowed while capturing

    replay, idx = Replay(torch.device(DEVICE)), torch.ones(4, 3, dtype=torch.int64, device=DEVICE)
    replay(update, idx)                      # warm-up, launched
    with pytest.warns(RuntimeWarning, match="could not be captured"):
        replay(update, idx)
    out = replay(update, idx)
    assert replay.off and replay.captures == 0 and out[0].item() == 36.0


@pytest.mark.parametrize("spec", [pl.AutoEncoder(24, corruption="masking", corruption_level=0.3, contraction=0.1),
                                  pl.RBM(24, persistent=True)], ids=["autoencoder", "rbm"])
def test_unsupervised_families_on_the_device_train_alone_as_in_a_population(spec):
    from dataclasses import replace

    splits = prepare(load("digits"), preprocess=["scale"])
    members = [Member(replace(spec, hidden=h), Training(lr=0.05, max_epochs=2, seed=s, valid_every=400))
               for s, h in enumerate([20, 24, 22])]
    together = fit(splits, members, device=DEVICE)
    assert all(math.isfinite(r.best_valid_error) for r in together)
    for m, r in zip(members, together):
        alone = fit(splits, m, device=DEVICE)
        for k in alone.params:
            assert torch.allclose(alone.params[k], r.params[k], atol=1e-4), k
    on_cpu = fit(splits, members[0])           # another device's generators: close, not equal
    assert on_cpu.best_valid_error == pytest.approx(together[0].best_valid_error, rel=0.05)
