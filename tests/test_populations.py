"""Trials of a study trained as batched populations (the schedule, the grouping, and that a
trial's record doesn't depend on how it was batched)."""

import json
import re
import math
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import purelearn as pl
from purelearn.cli import main
from purelearn.config import load_config
from purelearn.execute.schedule import BATCH_GAIN, MAX_POPULATION, Calibration, batch_size, calibrate, choose
from purelearn.search import parse_space
from purelearn import MLP, Member, Training, fit
from purelearn.train import check_member
from purelearn.train.memory import MemoryLimitError, footprint, member_bytes
from purelearn.train.fit import WIDTH_RATIO, populations, width_ratio

ROOT = Path(__file__).resolve().parents[1]
THREADS = torch.get_num_threads()

SPACE = {"train.lr": "loguniform(1e-2, 3e3)", "model.units": "intloguniform(8, 64)",
         "train.patience": "choice(300, 20000)", "model.activation": 'choice("tanh", "rectifier")'}


def _records(study):
    return {t.number: t for t in study.trials}


def _unstable(trial) -> bool:
    """Far above the stable learning rate (§3.1.1), or the validation loss jumped to more than
    twice its best so far: training is chaotic there."""
    losses = [r["valid_loss"] for r in trial.curve]
    return trial.params["train.lr"] > 10 or any(not math.isfinite(v) or v > 2 * min(losses[:i + 1])
                                                for i, v in enumerate(losses))


def test_batched_trials_are_recorded_as_if_trained_one_per_process(tmp_path):
    cfg = load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=6", "train.valid_every=300",
                                                                "train.patience_mode=add", "train.patience_increase=600"])
    batched = pl.tune(cfg, SPACE, trials=8, store=tmp_path / "a.db", study="s", workers=1, population=8)
    alone = pl.tune(cfg, SPACE, trials=8, store=tmp_path / "b.db", study="s", workers=2, population=1)
    assert "populations of up to 8" in batched.schedule and "one trial at a time" in alone.schedule
    a, b = _records(batched), _records(alone)
    assert len({t.worker for t in a.values()}) == 1 and len({t.worker for t in b.values()}) == 2
    statuses = [t.status for t in a.values()]
    assert "diverged" in statuses and "complete" in statuses                  # the case we want
    ran_out_of_patience = [t for t in a.values() if t.status == "complete" and t.curve[-1]["examples_seen"] < 6 * 1079]
    assert ran_out_of_patience and len(ran_out_of_patience) < 8
    assert sum(not _unstable(t) for t in b.values()) >= 3                # and enough stable ones
    for n in range(8):
        assert a[n].params == b[n].params and a[n].status == b[n].status and a[n].seed == b[n].seed
        assert (a[n].value is None) == (b[n].value is None)
        if _unstable(b[n]):
            # Above the stable learning rate but not (yet) diverging, training is chaotic: the
            # last-bit differences of a padded matrix product grow without bound. Status must agree,
            # values can't.
            continue
        if a[n].value is not None:
            assert a[n].value == pytest.approx(b[n].value, abs=1e-5)
        assert [r["examples_seen"] for r in a[n].curve] == [r["examples_seen"] for r in b[n].curve]
        for ra, rb in zip(a[n].curve, b[n].curve):
            if math.isfinite(ra["valid_loss"]):
                assert ra["valid_loss"] == pytest.approx(rb["valid_loss"], rel=1e-4, abs=1e-5)


def test_the_schedule_follows_the_measurements():
    big = 100 * 2 ** 20
    small_gain = Calibration(alone=1.0, batched=1 / (BATCH_GAIN - 0.1), size=16, member_bytes=2 ** 20)
    s = choose(small_gain, trials=64, cores=2, memory_limit=big)
    assert (s.workers, s.population) == (2, 1) and "one trial at a time" in s.reason
    large_gain = Calibration(alone=1.0, batched=0.1, size=16, member_bytes=2 ** 20)
    s = choose(large_gain, trials=512, cores=2, memory_limit=big)
    assert (s.workers, s.population) == (2, min(MAX_POPULATION, 100, 256)) and "10.0x" in s.reason
    assert choose(large_gain, trials=20, cores=2, memory_limit=big).population == 10      # all trials at once
    assert choose(large_gain, trials=512, cores=2, memory_limit=8 * 2 ** 20).population == 8   # memory caps it
    tight = choose(large_gain, trials=512, cores=2, memory_limit=2 ** 20)
    assert tight.population == 1 and "memory" in tight.reason
    assert choose(large_gain, trials=512, cores=2, memory_limit=big, population=32).population == 32
    assert choose(large_gain, trials=512, cores=2, memory_limit=big, workers=1).workers == 1
    gpu = Calibration(alone=1.0, batched=0.01, size=16, member_bytes=2 ** 20, device="cuda")
    s = choose(gpu, trials=512, cores=16, memory_limit=big)
    assert s.workers == 1 and s.population == 100 and "GPU" in s.reason
    f = choose(None, trials=50, cores=2, memory_limit=big)
    assert f.population == 1 and f.workers == 2 and "function" in f.reason
    assert choose(None, trials=50, cores=2, memory_limit=big, workers=3).workers == 3
    # the same measurements always give the same schedule
    assert choose(large_gain, 512, 2, big) == choose(large_gain, 512, 2, big)
    assert member_bytes(1000, 32, 100) == 4 * (1000 * 7 + 3 * 32 * 100)


def test_populations_group_by_structure_and_similar_width():
    def m(hidden, act="tanh", lr=0.1):
        return pl.Member(pl.MLP(hidden, act), pl.Training(lr=lr))
    members = [m((16,)), m((20,)), m((64,)), m((17,), "rectifier"), m((16, 16)), m((18, 16)), m((19,)),
               m((80,)), m((70,))]
    groups = populations(members, size=2)
    assert sorted(map(sorted, groups)) == sorted(map(sorted, [[0, 6], [1], [2, 8], [7], [3], [4, 5]]))
    for g in populations(members, size=100):
        widths = [members[i].model.hidden for i in g]
        assert len({len(w) for w in widths}) == 1
        assert all(max(col) <= WIDTH_RATIO * min(col) for col in zip(*widths))
    # On a GPU padding is (nearly) free: one population per structure, up to the size.
    assert width_ratio("cpu") == WIDTH_RATIO and width_ratio("cuda") == math.inf
    assert sorted(map(sorted, populations(members, 100, width_ratio("cuda")))) == [[0, 1, 2, 6, 7, 8], [3], [4, 5]]


def test_the_memory_limit_reaches_the_schedule(tmp_path, capsys):
    cfg = tmp_path / "m.toml"
    cfg.write_text((ROOT / "examples" / "digits-random.toml").read_text().replace("max_epochs = 30", "max_epochs = 1"))
    assert main(["tune", str(cfg), "--trials", "2", "--workers", "1", "--memory-limit", "4", "--population", "8",
                 "--json", "--store", str(tmp_path / "m.db")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"] == 2 and re.search(r"limited by memory to [1-7]$", summary["schedule"])


def test_populations_keep_to_the_memory_limit_and_a_member_too_large_is_named(tmp_path, capsys, digits):
    cfg = load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=1"])
    one = footprint(check_member(Member(MLP((64,)), Training()), digits), 64, 10)
    objective = pl.execute.ConfigObjective(cfg, memory_limit=3 * one)
    jobs = [(i, {"model.units": 64}, i) for i in range(8)] + [(8, {"model.units": 4000}, 8)]
    parts = objective.groups(jobs, 100)
    assert sorted(len(p) for p in parts) == [1, 2, 3, 3] and [8] in parts      # 3 fit; the big one alone
    outcomes = dict(objective.run_batch([jobs[8]]))
    assert outcomes[8].status == "failed" and "needs about" in outcomes[8].error and "memory limit" in outcomes[8].error
    with pytest.raises(MemoryLimitError, match=r"64-64-10 network with minibatches of 32 needs about [\d.]+ MB"):
        fit(digits, Member(MLP((64,)), Training()), memory_limit=one - 1)
    # from the command line: the failed trial says why, in the summary
    study = tmp_path / "big.toml"
    study.write_text((ROOT / "examples" / "digits-random.toml").read_text().replace("max_epochs = 30", "max_epochs = 1")
                     .replace('"intloguniform(16, 256)"', '"intloguniform(4000, 5000)"'))
    assert main(["tune", str(study), "--trials", "2", "--workers", "1", "--memory-limit", "2",
                 "--store", str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert "0 complete, 2 failed" in out and "failed: trial 0: MemoryLimitError: a 64-" in out


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked only on Linux")
def test_workers_are_forked_only_where_it_is_safe():
    from purelearn.execute.workers import SPAWN, _fast_start
    assert _fast_start(1).get_start_method() == "fork"
    assert _fast_start(2) is SPAWN                     # compute threads the child wouldn't have
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert _fast_start(1) is SPAWN                 # another thread might hold a lock at the fork
    finally:
        stop.set()
        other.join()


def test_drawn_trials_are_handed_out_as_populations_most_expensive_first():
    cfg = load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=2"])
    objective = pl.execute.ConfigObjective(cfg)
    jobs = [(0, {"model.units": 16}, 0), (1, {"model.units": 200}, 1), (2, {"train.lr": -1.0}, 2),
            (3, {"model.units": 17}, 3), (4, {"model.units": 16, "train.max_epochs": 100}, 4),
            (5, {"model.units": 180}, 5)]
    # Cost is weights x epochs: 4 trains 50x longer than 0 and 3, its population goes first; 1 and
    # 5 (within 1.3x in width) are about 12x each; a refused job is a group of its own, last.
    assert objective.groups(jobs, size=8) == [[0, 4, 3], [5, 1], [2]]
    assert objective.groups(jobs, size=1) == [[4], [1], [5], [3], [0], [2]]


def test_the_schedule_at_its_bounds():
    big, mib = 100 * 2 ** 20, 2 ** 20
    at_gain = Calibration(alone=BATCH_GAIN, batched=1.0, size=16, member_bytes=mib)
    assert choose(at_gain, trials=64, cores=2, memory_limit=big).population == 32        # exactly the gain: batch
    assert BATCH_GAIN == 1.25 and choose(Calibration(1.5, 1.0, 16, mib), 64, 2, big).population == 32
    assert choose(Calibration(1.2, 1.0, 16, mib), 64, 2, big).population == 1
    # no two drawn trials could share a population: whatever the gain, one at a time
    apart = choose(Calibration(10.0, 1.0, 16, mib, shared=0), 64, 2, big)
    assert apart.population == 1 and "could share a population" in apart.reason
    # the memory limit holds exactly two members: they batch; less than one member: one at a time
    two = choose(Calibration(10.0, 1.0, 16, mib), 64, 2, 2 * mib)
    assert two.population == 2 and "(limited by memory)" in two.reason
    assert choose(Calibration(10.0, 1.0, 16, 4 * mib), 64, 2, mib).population == 1
    assert "limited" not in choose(Calibration(10.0, 1.0, 16, mib), 64, 2, 32 * mib).reason   # exactly fits
    assert choose(Calibration(10.0, 1.0, 16, mib), 64, cores=2, memory_limit=big, workers=3).workers == 3
    asked = choose(Calibration(10.0, 1.0, 16, mib), 64, 2, 8 * mib, population=8)
    assert asked.population == 8 and "limited" not in asked.reason
    assert choose(Calibration(1.0, 0.01, 16, mib, device="cuda"), 10 ** 4, 16, 10 ** 4 * mib).population == 256
    assert batch_size(2, 2, "cpu") == 2 and batch_size(10 ** 4, 1, "cpu") == MAX_POPULATION == 128


def test_the_calibration_times_the_populations_a_batch_would_form(digits):
    cfg = load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=1"])
    near = parse_space({"train.lr": "loguniform(1e-2, 1e-1)", "model.units": "intuniform(30, 32)"})
    cal = calibrate(cfg, near, size=8, steps=20)
    assert cal.size == 8 and cal.shared == 8 and cal.device == "cpu"
    # seconds per member-update, both ways: their ratio is a speed-up (about 5 here), not off
    # by the members' count squared (64); the bounds leave room for a busy machine
    assert 0.2 < cal.gain < 100 and cal.batched > 0
    drawn = _drawn(cfg, near, 8)
    assert cal.member_bytes == max(footprint(m, digits.n_features, digits.n_outputs) for m in drawn)
    # widths too far apart to pad together: some members are timed alone
    apart = parse_space({"model.units": "intloguniform(8, 4096)", "train.lr": "loguniform(1e-2, 1e-1)"})
    spread = calibrate(cfg, apart, size=8, steps=1)
    assert spread.shared == sum(len(p) for p in populations(_drawn(cfg, apart, 8), 8) if len(p) > 1)
    assert 0 < spread.shared < 8
    # untimed, or every member beyond the limit: only the memory is sized
    untimed = calibrate(cfg, near, size=4, timed=False)
    assert math.isnan(untimed.gain) and untimed.member_bytes == cal.member_bytes
    refused = calibrate(cfg, near, size=4, memory_limit=1)
    assert math.isnan(refused.gain) and refused.member_bytes == cal.member_bytes
    assert torch.get_num_threads() == THREADS                    # restored after the timing
    # a member exactly at the limit is timed
    same = parse_space({"train.lr": "loguniform(1e-2, 1e-1)"})
    exact = calibrate(cfg, same, size=2, steps=1, memory_limit=calibrate(cfg, same, size=2, timed=False).member_bytes)
    assert not math.isnan(exact.gain)


def _drawn(cfg, space, size):
    """The members ``calibrate`` draws from the space (the same seeds)."""
    from purelearn.execute.objective import apply_params

    return [check_member(apply_params(cfg, space.sample(np.random.default_rng([0, 99, i])), i).member(),
                         cfg.data.splits()) for i in range(size)]
