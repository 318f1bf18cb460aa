"""Pruning (§3.3.1): the rules against independent computations, pruned members leaving their
population without changing the others, and pruned trials in studies, strategies and commands."""

import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from purelearn import Member, Training, fit, tune
from purelearn.config import Config
from purelearn.errors import ConfigError
from purelearn.execute.driver import decide_pruning
from purelearn.execute.objective import ConfigObjective
from purelearn.nn import MLP
from purelearn.search import make_strategy, parse_space
from purelearn.search.pruning import Pruner, Pruning, best_by, note_points, points
from purelearn.train.fit import fit_iter


def curve(*pairs):
    return [{"examples_seen": e, "valid_error": v} for e, v in pairs]


def test_best_by_is_the_best_up_to_the_first_validation_at_or_after(rng):
    for _ in range(50):
        seen = np.cumsum(rng.integers(1, 50, 12))
        errors = rng.random(12)
        c = points(curve(*zip(seen.tolist(), errors.tolist())))
        for e in rng.integers(0, seen[-1] + 30, 10):
            after = [i for i, s in enumerate(seen) if s >= e]
            expected = None if not after else min(errors[:after[0] + 1])
            assert best_by(c, int(e)) == expected


def test_the_median_rule_against_a_direct_computation(rng):
    history = [curve(*((100 * k, float(v)) for k, v in enumerate(rng.random(8), 1))) for _ in range(9)]
    history.append(curve((100, 0.5)))                     # stopped early: not among those at 400
    pruner = Pruner(Pruning("median", min_examples=200, min_trials=5), history)
    best = np.array([0.2, 0.45, 0.9])
    verdicts = pruner.judge(400, 300, best, epoch=10 ** 6)
    for j, v in enumerate(best):
        others = [min(row["valid_error"] for row in h if row["examples_seen"] <= 400) for h in history[:9]]
        others += [float(b) for k, b in enumerate(best) if k != j]
        assert (verdicts[j] is not None) == (v > statistics.median(others))
        if verdicts[j]:
            assert "median rule at 400 examples" in verdicts[j] and f"of {len(others)} other trials" in verdicts[j]
    assert pruner.judge(100, 0, best, epoch=10 ** 6) == [None] * 3          # warm-up: min_examples
    assert Pruner(Pruning("median"), history).judge(400, 300, best, epoch=500) == [None] * 3   # one epoch
    few = Pruner(Pruning("median", min_trials=5), history[:2])
    assert few.judge(400, 300, best, epoch=1) == [None] * 3                # 2 + 2 others < 5


def asha(arrivals, start, r):
    """Asynchronous successive halving, one arrival (values at every rung) at a time: whether
    each goes past every rung it reaches."""
    rungs, out = {}, []
    for values in arrivals:
        alive = True
        for k, v in enumerate(values):
            rungs.setdefault(k, []).append(v)
            competing = sorted(rungs[k])
            if v > competing[max(len(competing) // r - 1, 0)]:
                alive = False
                break
        out.append(alive)
    return out


def test_successive_halving_is_asynchronous_successive_halving(rng):
    start, r = 100, 3
    for _ in range(20):
        trials = [np.minimum.accumulate(rng.random(4)) for _ in range(10)]
        pruner, outcome = Pruner(Pruning("successive-halving", min_examples=start, reduction=r)), []
        for values in trials:
            at = [start * r ** k for k in range(4)]
            c, alive, previous = [], True, 0
            for k, e in enumerate(at):
                c.append((e, float(values[k])))
                if pruner.judge(e, previous, np.array([values[k]]), epoch=1)[0] is not None:
                    alive = False
                    break
                previous = e
            outcome.append(alive)
            pruner.add(curve(*c))
        expected = asha([v.tolist() for v in trials], start, r)
        assert outcome == expected


def test_halving_judges_every_rung_a_sparse_validation_crossed():
    history = [curve((100, 0.1), (300, 0.1), (900, 0.1)), curve((100, 0.2), (300, 0.05), (900, 0.05))]
    pruner = Pruner(Pruning("successive-halving", min_examples=100, reduction=2), history)
    # first validation at 1,000 examples: rungs 100, 200, 400 and 800 crossed at once
    verdict, = pruner.judge(1000, 0, np.array([0.15]), epoch=1)
    assert "rung of 100 examples" in verdict                 # 0.15 is not the best of 3 at 100
    kept, = pruner.judge(1000, 0, np.array([0.01]), epoch=1)
    assert kept is None


@pytest.mark.parametrize("bad, says", [({"rule": "hyperband"}, "auto, median, none, successive-halving"),
                                       ({"rule": "median", "reduction": 1}, "prune_reduction"),
                                       ({"rule": "median", "min_trials": 0}, "prune_min_trials")])
def test_bad_pruning_settings_are_named(bad, says):
    with pytest.raises(ConfigError, match=says):
        Pruning(**bad)


def test_the_settings_defaults_and_what_they_say():
    assert Pruning() == Pruning("none", 0, 5, 3) and Pruning("median", min_trials=1).min_trials == 1
    assert [Pruning(r).active for r in ("none", "auto", "median", "successive-halving")] == [False, False, True, True]
    assert "median of at least 5 others" in Pruning("median").describe() and "one epoch" in Pruning("median").describe()
    assert "1/3" in Pruning("successive-halving").describe()
    assert "8,000 examples x 3^k" in Pruning("successive-halving", min_examples=8000).describe()
    assert Pruning("none").describe().startswith("none")
    with pytest.raises(AttributeError):
        Pruning().rule = "median"                        # frozen: settings travel to workers unchanged


def test_the_median_rule_at_its_bounds():
    history = [curve((200, v)) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    rule = Pruning("median", min_examples=200, min_trials=5)
    # at exactly the warm-up, with exactly min_trials others: judged; a tie with the median goes on
    assert Pruner(rule, history).judge(200, 0, np.array([0.31]), epoch=1)[0] is not None
    assert Pruner(rule, history).judge(200, 0, np.array([0.3]), epoch=1) == [None]
    assert Pruner(rule, history[:4]).judge(200, 0, np.array([0.9]), epoch=1) == [None]
    # a rule of none stops nobody, whatever the curves
    longer = [curve((200, v), (600, v)) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    assert Pruner(Pruning("none", min_examples=200), longer).judge(600, 200, np.array([0.9]), epoch=1) == [None]


def test_halving_judges_a_rung_once():
    rule = Pruning("successive-halving", min_examples=100, reduction=3)
    pruner = Pruner(rule)
    assert pruner.judge(100, 0, np.array([0.15]), epoch=1) == [None]        # alone at rung 100
    pruner.add(curve((100, 0.1), (300, 0.1)))
    pruner.add(curve((100, 0.12), (300, 0.12)))
    # the next validations cross no new rung: rung 100 is not judged again with the newcomers
    assert pruner.judge(200, 100, np.array([0.15]), epoch=1) == [None]
    assert pruner.judge(300, 200, np.array([0.15]), epoch=1)[0] is not None      # rung 300
    passed = Pruner(rule, [curve((300, 0.5)), curve((300, 0.6))])
    assert passed.judge(500, 300, np.array([0.9]), epoch=1) == [None]        # rung 300 was at 300
    lower = Pruner(rule, [curve((300, 0.5))])
    lower.add(curve((100, 0.01)))                                            # stopped before rung 300
    assert lower.judge(300, 200, np.array([0.4]), epoch=1) == [None]


def members(n, hopeless=()):
    """MLPs of one structure; those in ``hopeless`` learn at a rate too small to get anywhere."""
    return [Member(MLP(hidden=(16,)), Training(lr=1e-5 if i in hopeless else 0.1, max_epochs=3, seed=i,
                                               valid_every=300)) for i in range(n)]


def test_pruned_members_leave_and_the_others_train_as_alone(digits):
    group = members(6, hopeless={1, 4})
    pruner = Pruner(Pruning("median", min_examples=600, min_trials=3))
    results = dict(fit_iter(digits, group, pruner=pruner))
    alone = fit(digits, group)
    for i in (1, 4):
        assert results[i].stopped_because == "pruned" and "median rule at 608 examples" in results[i].note
    survivors = [i for i, r in results.items() if r.stopped_because != "pruned"]
    assert survivors
    for i, r in results.items():
        if r.stopped_because == "pruned":      # stopped at a validation, kept its best so far
            assert r.curve[-1]["examples_seen"] == r.examples_seen < alone[i].examples_seen
            assert r.best_valid_error == min(row["valid_error"] for row in r.curve)
            assert r.best_valid_error > min(results[j].curve[len(r.curve) - 1]["valid_error"] for j in survivors)
        else:                                  # the others as alone: compaction changed nothing
            same = lambda c: [(row["examples_seen"], round(row["valid_error"], 6)) for row in c]  # noqa: E731
            assert same(r.curve) == same(alone[i].curve) and r.note is None
            assert r.best_valid_error == pytest.approx(alone[i].best_valid_error, abs=1e-6)
            assert r.examples_seen == alone[i].examples_seen and r.stopped_because == alone[i].stopped_because
    assert len(pruner.history) == 6                             # each finished member's curve joined


def test_a_later_population_is_judged_against_the_earlier_ones(digits):
    # Two widths too far apart to pad train as two populations, one after the other: the
    # hopeless member of the second is pruned against the first's curves, its peers too few.
    group = [replace(m, model=MLP(hidden=(32,))) if i >= 4 else m for i, m in enumerate(members(6, hopeless={5}))]
    pruner = Pruner(Pruning("median", min_examples=600, min_trials=4))
    results = dict(fit_iter(digits, group, pruner=pruner))
    assert [results[i].stopped_because for i in range(4)] != ["pruned"] * 4
    assert results[5].stopped_because == "pruned" and results[4].stopped_because != "pruned"


SPACE = {"train.lr": "loguniform(1e-5, 0.5)"}


def small(**values):
    return Config().with_values({"data.name": "digits", "data.preprocess": ["standardize"], "model.hidden": [16],
                                 "train.max_epochs": 4, "train.valid_every": 300, **values})


@pytest.mark.parametrize("rule", ["median", "successive-halving"])
def test_a_study_prunes_records_and_never_reruns_pruned_trials(tmp_path, rule):
    store = str(tmp_path / "s.db")
    prune = Pruning(rule, min_examples=600, min_trials=3, reduction=2)
    study = tune(small(), SPACE, trials=12, store=store, workers=1, population=6, prune=prune)
    pruned = [t for t in study.trials if t.status == "pruned"]
    assert pruned and study.best.status == "complete"
    for t in pruned:
        assert t.value == min(row["valid_error"] for row in t.curve) and "pruned by" in t.error
        assert t.value >= study.best.value
    assert len(study.searched()) == 12 and len(study.efficiency_curve()) == 12
    assert "pruned trials counted" in study.plateau()["message"]
    again = tune(small(), SPACE, trials=12, store=store, workers=1, population=6, prune=prune)
    assert [(t.number, t.status, t.value) for t in again.trials] == [(t.number, t.status, t.value) for t in study.trials]
    more = tune(small(), SPACE, trials=14, store=store, workers=1, population=6, prune=prune)
    assert [t.number for t in more.trials] == list(range(14))
    assert all(more.trials[t.number].status == "pruned" for t in pruned)


def test_pruning_is_the_same_in_a_worker_process():
    prune = Pruning("median", min_examples=600, min_trials=3)
    run = lambda workers, executor: [(t.status, round(t.value, 6)) for t in tune(  # noqa: E731
        small(), SPACE, trials=8, workers=workers, population=8, prune=prune, executor=executor).trials]
    inline = run(1, "inline")
    assert run(1, "process") == inline and "pruned" in {s for s, _ in inline}
    # two workers: while the schedule is measured each trains one trial alone, so which trials
    # share a population (and so their peers) depends on timing; pruning still works there
    pooled = run(2, "process")
    best = min(v for s, v in pooled if s == "complete")
    assert "pruned" in {s for s, _ in pooled} and all(v >= best for s, v in pooled if s == "pruned")


def test_tpe_is_told_pruned_trials_as_pruned(tmp_path):
    prune = Pruning("median", min_examples=600, min_trials=3)
    store = str(tmp_path / "t.db")
    study = tune(small(), SPACE, strategy="tpe", trials=10, store=store, workers=1, population=5, prune=prune,
                 options={"startup": 4})
    pruned = {t.number: t for t in study.trials if t.status == "pruned"}
    assert pruned
    strategy = make_strategy("tpe", parse_space(SPACE), 0, startup=4)
    for t in study.trials:                                   # as a resume replays them
        strategy.replay(t.number, t.params, t.value, points(t.curve) if t.status == "pruned" else None)
    told = strategy.study.get_trials(deepcopy=False)
    states = [ft.state.name for ft in told]
    assert states.count("PRUNED") == len(pruned)
    for ft in told:
        if ft.state.name == "PRUNED":
            assert ft.value is None and max(ft.intermediate_values) > 0
    # and in a running search, through ask and tell
    live = make_strategy("tpe", parse_space(SPACE), 0, startup=4)
    params = live.ask(0)
    live.tell(0, params, 0.4, (np.array([300, 600]), np.array([0.5, 0.4])))
    ft = live.study.get_trials(deepcopy=False)[0]
    assert ft.state.name == "PRUNED" and ft.intermediate_values == {300: 0.5, 600: 0.4}


@pytest.mark.parametrize("model", [
    {"model.family": "autoencoder", "model.hidden": 12, "model.corruption": "masking", "model.corruption_level": 0.25},
    {"model.family": "rbm", "model.hidden": 12}], ids=["autoencoder", "rbm"])
def test_every_family_prunes(model):
    config = small(**{"data.preprocess": ["scale"], "train.max_epochs": 3}).with_values(model)
    prune = Pruning("median", min_examples=600, min_trials=3)
    study = tune(config, SPACE, trials=8, workers=1, population=8, prune=prune)
    assert any(t.status == "pruned" for t in study.trials) and study.best.status == "complete"


def test_auto_decides_and_says():
    objective = ConfigObjective(small())
    p, said = decide_pruning("auto", objective, "random", 32)
    assert p.rule == "median" and "median rule" in said
    assert decide_pruning("auto", objective, "random", 16)[0].rule == "median"
    p, said = decide_pruning("auto", objective, "random", 15)
    assert p.rule == "none" and "15 trials" in said
    p, said = decide_pruning("successive-halving", objective, "random", 4)     # asked: as asked, and said
    assert p.rule == "successive-halving" and said.startswith("pruning: successive halving")
    assert decide_pruning("none", objective, "random", 64) == (Pruning("none"), "")
    p, said = decide_pruning("auto", ConfigObjective(small(**{"data.folds": 3})), "random", 64)
    assert p.rule == "none" and "data.folds" in said
    events = []
    tune(small(), SPACE, trials=2, workers=1, population=2, prune="auto", progress=events.append)
    assert any("pruning: none (2 trials" in e for p in events for e in p.events)


@pytest.mark.parametrize("where, says", [({"data.folds": 3}, "data.folds"),
                                         ({"pretrain.levels": 1}, "pre-trained stack")])
def test_a_rule_that_cannot_compare_is_refused(where, says):
    config = Config().with_values({"data.name": "digits", **where})
    with pytest.raises(ConfigError, match=says):
        tune(config, SPACE, trials=2, workers=1, prune="median")


def test_the_command_prunes_and_names_a_bad_rule(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "digits"\npreprocess = ["standardize"]\n[model]\nhidden = [16]\n'
                   '[train]\nmax_epochs = 4\nvalid_every = 300\n[search]\ntrials = 8\nworkers = 1\n'
                   'population = "8"\nprune_min_examples = 600\nprune_min_trials = 3\n'
                   '[search.space]\n"train.lr" = "loguniform(1e-5, 0.5)"\n')
    run = lambda *a: subprocess.run([sys.executable, "-m", "purelearn.cli", "tune", str(cfg),  # noqa: E731
                                     "--store", str(tmp_path / "s.db"), *a], capture_output=True, text=True)
    done = run("--prune", "median", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["pruned"] > 0 and summary["complete"] + summary["pruned"] == 8
    assert "pruning: the median rule" in done.stderr
    bad = run("--prune", "sometimes")
    assert bad.returncode == 2 and "sometimes" in bad.stderr and "median, none, successive-halving" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_hyper_learner_prunes_as_its_config_says(digits):
    from purelearn import HyperLearner

    tables = {"data": {"preprocess": ["standardize"]}, "model": {"hidden": [16]},
              "train": {"max_epochs": 4, "valid_every": 300},
              "search": {"prune": "median", "prune_min_examples": 600, "prune_min_trials": 3}}
    X, y = digits.X_train, digits.y_train
    learner = HyperLearner(tables, space=SPACE, trials=8, population=8, random_state=0).fit(X, y)
    assert any(t.status == "pruned" for t in learner.study_.trials) and learner.study_.best.status == "complete"
    tables["search"]["prune"] = "none"
    plain = HyperLearner(tables, space=SPACE, trials=8, population=8, random_state=0).fit(X, y)
    assert all(t.status == "complete" for t in plain.study_.trials)
    assert plain.study_.name != learner.study_.name


@pytest.mark.parametrize("strategy, options", [("grid", {"k": 8}), ("coordinate", {}),
                                               ("multires", {"stage_size": 4, "keep": 2})])
def test_every_strategy_searches_on_with_pruned_trials(strategy, options):
    prune = Pruning("median", min_examples=600, min_trials=3)
    study = tune(small(), SPACE, strategy=strategy, trials=8, workers=1, population=4, prune=prune,
                 options=options)
    assert len(study.trials) == 8 and {t.status for t in study.trials} <= {"complete", "pruned"}
    assert any(t.status == "pruned" for t in study.trials) and study.best.status == "complete"


def test_later_batches_are_judged_against_the_drivers_finished_trials():
    # populations of 2 handed out one after another: a trial pruned "of N other trials" with
    # N > 1 was compared with trials of earlier batches, sent by the driver
    prune = Pruning("median", min_examples=600, min_trials=3)
    study = tune(small(), SPACE, trials=10, workers=1, population=2, prune=prune)
    others = [int(t.error.split(" of ")[1].split()[0]) for t in study.trials if t.status == "pruned"]
    assert others and max(others) > 1


def test_the_driver_tells_its_strategy_which_trials_were_pruned(monkeypatch, tmp_path):
    from purelearn.search.strategies import TPE

    heard, tell = {}, TPE.tell

    def spy(self, number, params, value, pruned=None):
        heard[number] = pruned
        return tell(self, number, params, value, pruned)

    monkeypatch.setattr(TPE, "tell", spy)
    prune = Pruning("median", min_examples=600, min_trials=3)
    store = str(tmp_path / "t.db")
    study = tune(small(), SPACE, strategy="tpe", trials=8, store=store, workers=1, population=4, prune=prune)
    for runs in range(2):                          # as run, then as replayed on a resume
        assert sorted(heard) == list(range(8))
        for t in study.trials:
            if t.status == "pruned":
                np.testing.assert_array_equal(heard[t.number][0], points(t.curve)[0])
                np.testing.assert_array_equal(heard[t.number][1], points(t.curve)[1])
            else:
                assert heard[t.number] is None
        heard.clear()
        tune(small(), SPACE, strategy="tpe", trials=8, store=store, workers=1, population=4, prune=prune)


def hopeless_above_half(params, report):
    """A learning curve that levels off at x: trials with a large x are hopeless from the start."""
    for k in range(1, 11):
        report(100 * k, params["x"] + 1 / k)
    return params["x"] + 0.1


def test_a_function_objective_is_pruned_through_its_report():
    study = tune(hopeless_above_half, {"x": "uniform(0, 1)"}, trials=24, prune=Pruning("median", min_trials=3))
    pruned = [t for t in study.trials if t.status == "pruned"]
    assert pruned and study.best.status == "complete"
    for t in pruned:
        assert len(t.curve) < 10 and t.value == pytest.approx(t.params["x"] + 1 / len(t.curve))
        assert "median rule" in t.error
    assert min(t.params["x"] for t in pruned) > study.best.params["x"]
    # auto never prunes a function (it may not report), and says why
    events = []
    plain = tune(hopeless_above_half, {"x": "uniform(0, 1)"}, trials=24, prune="auto", progress=events.append)
    assert all(t.status == "complete" for t in plain.trials)
    assert any("prunes only when asked" in e for p in events for e in p.events)


def test_the_median_rule_compares_with_the_trials_that_got_there_and_stopped_peers_stand_in_for_them():
    stopped = curve((100, 0.9), (200, 0.8))
    finished = [curve((100, 0.2), (200, 0.2), (300, 0.2)), curve((100, 0.3), (200, 0.3), (300, 0.3))]
    rule = Pruning("median", min_examples=100, min_trials=2)
    # a finished trial that stopped at 200 (pruned or not) did not reach 300: median of 0.2, 0.3
    pruner = Pruner(rule, finished + [stopped])
    assert pruner.judge(300, 200, np.array([0.28]), epoch=1)[0] is not None
    # at 200 it got there: median of 0.2, 0.3, 0.8
    assert pruner.judge(200, 100, np.array([0.28]), epoch=1) == [None]
    # two finished trials got to 300, as many as the rule needs: a peer stopped by the rule
    # does not count there, the bar stays their median 0.25
    assert pruner.judge(300, 200, np.array([0.28]), epoch=1, stopped=[0.8])[0] is not None
    # needing three, the stopped peer stands in for the third at its best: median 0.3
    thin = Pruner(replace(rule, min_trials=3), finished + [stopped])
    assert thin.judge(300, 200, np.array([0.28]), epoch=1, stopped=[0.8]) == [None]
    assert "median of 3 other trials" in thin.judge(300, 200, np.array([0.31]), epoch=1, stopped=[0.8])[0]
    assert thin.judge(300, 200, np.array([0.31]), epoch=1) == [None]                        # two others < 3
    assert Pruner(rule, finished[:1]).judge(300, 200, np.array([0.9]), epoch=1, stopped=[0.8])[0] is not None
    assert Pruner(rule, finished[:1]).judge(300, 200, np.array([0.9]), epoch=1) == [None]    # one other < 2


def test_survivors_are_not_halved_again_at_every_validation(digits):
    healthy = [Member(MLP(hidden=(16,)), Training(lr=lr, max_epochs=3, seed=i, valid_every=300))
               for i, lr in enumerate(np.geomspace(0.03, 0.3, 16))]
    results = dict(fit_iter(digits, healthy, pruner=Pruner(Pruning("median", min_examples=600, min_trials=5))))
    when = sorted(r.examples_seen for r in results.values() if r.stopped_because == "pruned")
    assert 0 < len(when) <= 10                    # judged against the pruned too, not against each other
    assert when.count(when[0]) >= len(when) // 2   # most at the first judgement


def test_a_member_whose_budget_ends_at_a_validation_is_not_pruned(digits):
    n = len(digits.X_train)
    B = next(b for b in range(16, 129) if n % b == 0)        # the epoch's last minibatch is a full one
    group = [Member(MLP(hidden=(16,)), Training(lr=1e-5 if i == 5 else 0.1, max_epochs=2, seed=i, valid_every=n,
                                               batch_size=B)) for i in range(6)]
    # validations at the end of each epoch: the last is where every budget ends
    results = dict(fit_iter(digits, group, pruner=Pruner(Pruning("median", min_examples=2 * n, min_trials=3))))
    assert [results[i].stopped_because for i in range(6)] == ["budget"] * 6


def test_a_pruned_trial_is_never_a_strategys_best():
    strategy = make_strategy("random", parse_space(SPACE), 0)
    for n, (value, pruned) in enumerate([(0.3, None), (0.1, (np.array([300]), np.array([0.1]))), (0.2, None)]):
        strategy.tell(n, strategy.ask(n), value, pruned)
    assert strategy.best()[1] == 0.2 and strategy.best(range(3))[1] == 0.2


def test_a_member_whose_examples_budget_ends_at_a_validation_is_not_pruned(digits):
    group = [Member(MLP(hidden=(16,)), Training(lr=0.1, max_epochs=2, seed=i, valid_every=320)) for i in range(5)]
    group.append(Member(MLP(hidden=(16,)), Training(lr=1e-5, max_examples=640, seed=5, valid_every=320)))
    results = dict(fit_iter(digits, group, pruner=Pruner(Pruning("median", min_examples=640, min_trials=3))))
    assert results[5].stopped_because == "budget" and results[5].examples_seen == 640


def test_a_worker_hears_of_trials_finished_elsewhere_while_its_batch_trains():
    import os
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    import objectives

    from purelearn.execute.workers import ProcessPool

    pool = ProcessPool(objectives.HearsNews(wanted=3), workers=1)
    try:
        finished = points(curve((100, 0.5), (200, 0.4)))
        pool.submit([(7, {}, 0)], (Pruning("median"), [finished]))
        pool.tell(7, finished)              # its own trial: the worker adds that one itself
        pool.tell(3, points(curve((100, 0.3))))
        pool.tell(4, points(curve((100, 0.2))))
        (number, outcome), = pool.wait()
        assert number == 7 and outcome.value == 3.0       # the one sent with the batch, and 3 and 4
        assert pool.free == 1
        pool.tell(5, finished)                            # no batch runs now: nothing is sent
        pool.slots[0][1].send(("curve", 1, finished))     # late news of the first batch: not heard,
        pool.submit([(8, {}, 0)], (Pruning("median"), [finished] * 3))
        pool.slots[0][1].send(("curve", 1, finished))     # neither between batches nor during one
        pool.tell(9, finished)
        (number, outcome), = pool.wait()
        assert number == 8 and outcome.value == 4.0
    finally:
        pool.close()


def test_trials_training_elsewhere_count_at_the_points_they_reached():
    finished = [points(curve((100, 0.2), (200, 0.2), (300, 0.2)))]
    running = {5: ([100, 200], [0.6, 0.5]), 6: ([100], [0.1])}
    halving = Pruning("successive-halving", min_examples=200, reduction=2)
    # at the rung of 200: 0.2 finished, 0.5 still training elsewhere; 6 did not get there
    assert Pruner(halving, finished, running).judge(200, 100, np.array([0.4]), epoch=1)[0] is not None
    assert "of 3 trials" in Pruner(halving, finished, running).judge(200, 100, np.array([0.4]), epoch=1)[0]
    assert Pruner(halving, finished).judge(200, 100, np.array([0.4]), epoch=1)[0] is not None
    assert Pruner(halving, [], running).judge(200, 100, np.array([0.4]), epoch=1) == [None]     # 0.4 < 0.5
    assert Pruner(halving, [], running).judge(200, 100, np.array([0.55]), epoch=1)[0] is not None
    # the median: 0.6 and 0.1 at 100 elsewhere, with two others wanted
    median = Pruning("median", min_examples=100, min_trials=2)
    assert Pruner(median, [], running).judge(100, 0, np.array([0.4]), epoch=1)[0] is not None      # > 0.35
    assert Pruner(median, [], running).judge(100, 0, np.array([0.3]), epoch=1) == [None]
    # at 200 only 5 got there; 6 stands in at its best so far (it can only fall by 200), as a
    # stopped peer does, while fewer finished trials than the rule needs got there
    assert "of 2 other" in Pruner(median, [], running).judge(200, 100, np.array([0.9]), epoch=1)[0]   # > 0.3
    assert Pruner(median, [], running).judge(200, 100, np.array([0.25]), epoch=1) == [None]
    assert "of 3 other" in Pruner(median, [], running).judge(200, 100, np.array([0.6]), epoch=1, stopped=[0.7])[0]
    assert Pruner(median, [], {5: running[5]}).judge(200, 100, np.array([0.9]), epoch=1) == [None]    # one other
    # two finished trials got there: they, and the trials elsewhere that got there, set the bar
    assert Pruner(median, finished * 2, running).judge(200, 100, np.array([0.3]), epoch=1, stopped=[0.7])[0] is not None
    two = finished + [points(curve((100, 0.4), (200, 0.4)))]
    assert Pruner(median, two, {6: ([100], [0.9])}).judge(200, 100, np.array([0.35]), epoch=1)[0] is not None


def test_what_a_pruner_hears_a_finished_curve_supersedes_the_values_so_far():
    news = [[("points", 100, [(3, 0.5), (4, 0.7)])], [("points", 200, [(3, 0.4)])],
            [("curve", 3, points(curve((100, 0.5), (200, 0.4), (300, 0.35))))], []]
    shared = []
    pruner = Pruner(Pruning("successive-halving", min_examples=100), news=lambda: news.pop(0),
                    share=lambda examples, values: shared.append((examples, values)))
    pruner.judge(100, 0, np.array([0.6, 0.8]), epoch=1, who=[7, None])
    assert pruner.running == {3: ([100], [0.5]), 4: ([100], [0.7])} and pruner.history == []
    assert shared == [(100, [(7, 0.6)])]              # a member without a trial number is not shared
    pruner.judge(200, 100, np.array([0.6]), epoch=1)
    assert pruner.running[3] == ([100, 200], [0.5, 0.4]) and len(shared) == 1    # no numbers: nothing shared
    pruner.judge(300, 200, np.array([0.6]), epoch=1)
    assert 3 not in pruner.running and len(pruner.history) == 1 and pruner._others(200) == ([0.4], [])
    # a trial heard of again from fewer examples was started again: its curve starts over
    running = {4: ([100, 200], [0.7, 0.6])}
    note_points(running, 100, [(4, 0.9), (5, 0.3)])
    note_points(running, 200, [(5, 0.2)])
    assert running == {4: ([100], [0.9]), 5: ([100, 200], [0.3, 0.2])}
    note_points(running, 100, [(4, 0.8)])                 # again from its first validation
    assert running[4] == ([100], [0.8])


def test_workers_hear_of_each_others_trials_while_they_train():
    import os

    sys.path.insert(0, os.path.dirname(__file__))
    import objectives

    from purelearn.execute.workers import ProcessPool

    pool = ProcessPool(objectives.SharesValues(wanted=1), workers=2)
    try:
        pool.submit([(3, {}, 0)], (Pruning("median"), []))
        pool.submit([(4, {}, 0)], (Pruning("median"), []))
        heard = dict(pool.wait() + pool.wait())
        assert heard[3].value == pytest.approx(0.4) and heard[4].value == pytest.approx(0.3)   # each the other's
        assert pool.running == {}                   # both finished: their curves are the driver's now
        # a batch handed out while another trains hears what that one reached so far
        pool.submit([(5, {}, 0)], (Pruning("median"), []))
        deadline = time.monotonic() + 20
        busy = next(i for i, job in pool.jobs.items() if job is not None)
        while not pool.running and time.monotonic() < deadline:
            pool._collect(busy)
            time.sleep(0.01)
        assert pool.running == {5: ([100], [0.5])}
        pool.submit([(6, {}, 0)], (Pruning("median"), []))
        heard = dict(pool.wait() + pool.wait())
        assert heard[6].value == pytest.approx(0.5) and heard[5].value == pytest.approx(0.6)
    finally:
        pool.close()


def test_two_trials_training_together_are_compared_before_either_finishes():
    import os

    sys.path.insert(0, os.path.dirname(__file__))
    import objectives

    halving = Pruning("successive-halving", min_examples=100, reduction=2)
    study = tune(objectives.reports_late_if_hopeless, {"x": "choice(0.1, 0.9)"}, strategy="grid", trials=2,
                 workers=2, prune=halving)
    late = next(t for t in study.trials if t.params["x"] == 0.9)
    assert late.status == "pruned" and len(late.curve) == 1 and "of 2 trials" in late.error
    assert next(t for t in study.trials if t.params["x"] == 0.1).status == "complete"


def test_a_config_trial_shares_each_validation_under_its_trial_number():
    shared = []
    pruning = (Pruning("successive-halving", min_examples=600), [], {}, lambda: [],
               lambda examples, values: shared.append((examples, values)))
    jobs = [(7, {"train.lr": 0.1}, 0), (9, {"train.lr": 0.02}, 1)]
    outcomes = dict(ConfigObjective(small()).run_batch(jobs, pruning))
    for number, outcome in outcomes.items():
        seen, best = points(outcome.curve)
        heard = [(e, v) for e, values in shared for n, v in values if n == number]
        expected = [(int(e), pytest.approx(float(b))) for e, b in zip(seen, best)]
        # all but a last validation at the end of its budget, where its whole curve follows
        assert heard == expected[:len(heard)] and len(heard) >= max(len(expected) - 1, 2)
    assert outcomes[9].status == "pruned" and len(outcomes[7].curve) > 3
