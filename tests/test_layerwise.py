"""Algorithm 1 of §3.3.4 (greedy layer-wise hyper-parameter optimization) as the strategy
``layerwise``: its bookkeeping against a brute-force enumeration, resume, and real stacks."""

import itertools
import json

import numpy as np
import pytest

from purelearn.config import load_config
from purelearn.errors import ConfigError
from purelearn.execute import tune
from purelearn.search import make_strategy, parse_space
from purelearn.search.layerwise import FINETUNE, concrete_space, stage_spaces
from purelearn.store import Store
from purelearn.train import Model
from purelearn.train.stack import Stack

A, B, FT = (0.1, 0.5, 0.9), (1, 2), (0.2, 0.6)
SPACE = {"level.a": "choice(0.1, 0.5, 0.9)", "level2.b": "choice(1, 2)", "ft": "choice(0.2, 0.6)"}
LEVELS, K = 3, 2


def fake_score(settings: dict) -> float:
    """A deterministic score of a configuration that rewards level n's a near 0.3 n, and
    couples the levels, so the K best of one level are not simply the best a of each."""
    s = sum((settings[f"level{n}.a"] - 0.3 * n) ** 2 for n in range(1, 4) if f"level{n}.a" in settings)
    s += 0.05 * settings.get("level2.b", 0) * settings.get("level1.a", 0)
    return s + (settings["ft"] - 0.5) ** 2 if "ft" in settings else s


def objective(params, report):
    return fake_score({k: v for k, v in params.items() if k not in ("level", "parent")})


def brute_force() -> list[list[dict]]:
    """Algorithm 1 as written in the chapter, over every setting of each stage: the sets S
    (each a list of configurations, best first) after each level and after fine-tuning."""
    stages = [[{"level1.a": a} for a in A], [{"level2.a": a, "level2.b": b} for a in A for b in B],
              [{"level3.a": a} for a in A], [{"ft": f} for f in FT]]
    S, history, order = [], [], itertools.count()
    for settings in stages:
        tried = []
        for C in settings:
            for H in (S or [{}]):
                config = {**H, **C}
                tried.append((fake_score(config), next(order), config))
        S = [config for _, _, config in sorted(tried, key=lambda t: t[:2])[:K]]   # ties: the first tried
        history.append(S)
    return history


def _settings(params):
    return {k: v for k, v in params.items() if k not in ("level", "parent")}


def test_the_sets_S_level_by_level_equal_a_brute_force_enumeration():
    study = tune(objective, SPACE, strategy="layerwise", options={"levels": LEVELS, "keep": K, "k": 2}, study="s")
    trials = {t.number: t for t in study.trials}
    assert len(trials) == 3 + K * (6 + 3 + 2)              # every C on every H, each stage
    replay = make_strategy("layerwise", parse_space(SPACE), 0, levels=LEVELS, keep=K, k=2)
    for t in study.trials:
        replay.replay(t.number, t.params, t.value)
    got = [[_settings(trials[n].params) for n in s] for s in replay.history]
    assert got == brute_force()
    best = study.best
    assert best.params["level"] == FINETUNE and _settings(best.params) == brute_force()[-1][0]
    # each trial builds on a member of the previous S, and holds that parent's settings
    for t in study.trials:
        if t.params["parent"] is not None:
            parent = trials[t.params["parent"]]
            assert _settings(parent.params).items() <= _settings(t.params).items()
    statuses = {t.status for t in study.trials if t.params["level"] != FINETUNE}
    assert statuses == {"pretrained"} and all(t.status == "complete" for t in study.trials
                                              if t.params["level"] == FINETUNE)


class Killed(BaseException):
    """Stands for the process being killed: not an error a trial reports."""


@pytest.mark.parametrize("after", [2, 5, 9, 13, 16])
def test_a_run_stopped_mid_level_resumes_to_the_same_sets(tmp_path, after):
    calls = []

    def dying(params, report):
        if len(calls) == after:
            raise Killed
        calls.append(params)
        return objective(params, report)

    store = Store(tmp_path / "s.db")
    options = {"levels": LEVELS, "keep": K, "k": 2}
    with pytest.raises(Killed):
        tune(dying, SPACE, strategy="layerwise", options=options, store=store, study="s")
    calls.append(None)                                    # from now on it doesn't die
    resumed = tune(dying, SPACE, strategy="layerwise", options=options, store=store, study="s")
    whole = tune(objective, SPACE, strategy="layerwise", options=options, study="w")
    assert [(t.params, t.value, t.status) for t in resumed.trials] == \
           [(t.params, t.value, t.status) for t in whole.trials]
    assert len(calls) - 1 == len(whole.trials)            # nothing finished was trained twice


def test_knobs_are_split_into_levels_and_fine_tuning():
    levels, finetune = stage_spaces(parse_space({"level.lr": "loguniform(0.01, 0.1)", "level3.hidden": "choice(5, 6)",
                                                 "train.lr": "loguniform(0.01, 0.1)"}), 3)
    assert [list(s.dims) for s in levels] == [["level1.lr"], ["level2.lr"], ["level3.lr", "level3.hidden"]]
    assert list(finetune.dims) == ["train.lr"]
    with pytest.raises(ConfigError, match="level 4, but the stack has 3"):
        stage_spaces(parse_space({"level4.hidden": "choice(5, 6)"}), 3)


@pytest.mark.parametrize("options, message", [({}, "search.levels = None"), ({"levels": 2, "keep": 0}, "search.keep"),
                                              ({"levels": 2, "candidates": 0}, "search.candidates")])
def test_options_that_cannot_work_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        make_strategy("layerwise", parse_space(SPACE), 0, **options)


STACK = ["data.preprocess=['scale']", "data.labeled=300", "pretrain.levels=2", "pretrain.hidden=16",
         "pretrain.lr=0.1", "pretrain.max_epochs=2", "train.max_epochs=20", "train.lr=0.1"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_layerwise_search_of_real_stacks_keeps_what_it_builds_on_and_ends_with_a_fine_tuned_network(
        tmp_path, workers):
    config = load_config(None, STACK)
    space = {"level.corruption_level": "uniform(0.0, 0.5)", "level2.hidden": "choice(8, 16)",
             "train.lr": "loguniform(0.1, 0.5)"}
    store = Store(tmp_path / "s.db")
    study = tune(config, space, strategy="layerwise", options={"keep": 2, "candidates": 2}, store=store,
                 study="lw", workers=workers)
    trials = {t.number: t for t in study.trials}
    assert len(trials) == 2 + 2 * 2 + 2 * 2 and {t.status for t in trials.values()} == {"pretrained", "complete"}
    for t in trials.values():
        if t.params["level"] != FINETUNE:
            assert 0 < t.value < 0.6                          # a probe's validation error
    # the trials of level 2 trained on their parents' codes: a population per parent
    kept = study.models()
    finals = sorted((t.value, t.number) for t in trials.values() if t.params["level"] == FINETUNE)
    assert sorted(kept) == sorted(n for _, n in finals[:2])   # only the final K: the levels were released
    model = study.best_model()
    assert isinstance(model, Model) and len(model.spec.hidden) == 2
    X, y = config.data.splits().read_test()
    assert model.error(X, y) < 0.35
    best = study.best
    assert best.params["level"] == FINETUNE and best.value == finals[0][0]
    assert model.spec.hidden[1] == best.params["level2.hidden"]


def test_a_level_trial_stores_its_whole_stack_while_it_may_be_built_on(tmp_path):
    config = load_config(None, STACK)
    store = Store(tmp_path / "s.db")
    space = {"level.corruption_level": "uniform(0.0, 0.5)", "train.lr": "loguniform(0.1, 0.5)"}

    class Stop(BaseException):
        pass

    seen = []

    def progress(p):
        seen.append(p.done)
        if p.done == 3:                               # level 1 (2 trials) and one of level 2
            raise Stop

    with pytest.raises(Stop):
        tune(config, space, strategy="layerwise", options={"keep": 1, "candidates": 2}, store=store, study="lw",
             workers=1, progress=progress)
    record = store.study("lw")
    trials = store.trials(record)
    level1 = [t for t in trials if t.params["level"] == 1]
    kept = dict(store.models(record))
    best1 = min(level1, key=lambda t: (t.value, t.number))
    assert best1.number in kept and all(t.number not in kept for t in level1 if t is not best1)
    stacks = {n: Stack.from_bytes(b) for n, b in kept.items()}
    assert stacks[best1.number].widths == (16,)
    assert any(s.widths == (16, 16) for s in stacks.values())
    done = tune(config, space, strategy="layerwise", options={"keep": 1, "candidates": 2}, store=store, study="lw",
                workers=1)
    assert len(done.trials) == 2 + 2 + 2 and done.best.params["level"] == FINETUNE
    assert np.isfinite(done.best.value)


def test_tune_and_report_from_the_command_line(tmp_path, capsys):
    from purelearn.cli import main
    from purelearn.execute import Study
    from purelearn.report.tree import stages

    cfg = tmp_path / "lw.toml"
    cfg.write_text("\n".join([
        '[data]\nname = "digits"\npreprocess = ["scale"]\nlabeled = 300',
        '[pretrain]\nlevels = 2\nhidden = 16\nlr = 0.1\nmax_epochs = 2',
        '[train]\nmax_epochs = 10\nlr = 0.2',
        '[search]\nstrategy = "layerwise"\nkeep = 2\ncandidates = 2\nworkers = 1',
        '[search.space]\n"level.corruption_level" = "uniform(0.0, 0.5)"\n"train.lr" = "loguniform(0.1, 0.5)"']))
    db = tmp_path / "lw.db"
    assert main(["tune", str(cfg), "--store", str(db), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["pretrained"] == 2 + 4 and out["complete"] == 4 and out["best_params"]["level"] == FINETUNE
    assert "Algorithm 1" in captured.err and "8 trials" not in captured.err and "10 trials" in captured.err
    assert main(["report", str(db), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Levels searched" in page and (tmp_path / "r" / "levels-searched.png").stat().st_size > 0
    study = Study(Store(db), Store(db).study("lw"))
    found = stages(study)
    assert [len(s) for s in found] == [2, 4, 4]
    kept = [n["number"] for s in found for n in s if n["kept"]]
    assert len(kept) == 2 + 2 + 2 and all(f"<b>trial {n}:" in page for n in kept)
    # a child shows only the settings its parent didn't have
    assert all(set(n["settings"]) == {"level2.corruption_level"} for n in found[1])
    assert all(set(n["settings"]) == {"train.lr"} for n in found[2])


def screened_score(settings: dict) -> float:
    """A screening score that agrees with the full one only roughly (it ignores level 2's b)."""
    return sum(abs(settings[f"level{n}.a"] - 0.3 * n) for n in range(1, 4) if f"level{n}.a" in settings)


def screened_objective(params, report):
    settings = _settings(params)
    return screened_score(settings) if "screen" in params else fake_score(settings)


def brute_force_screened(fraction: float) -> tuple[list[list[dict]], int]:
    """Algorithm 1 with screening: each level's (C, H) pairs scored by the screening score, the
    best ceil(fraction x pairs) of them (in the order tried) scored in full, S the K best."""
    stages = [[{"level1.a": a} for a in A], [{"level2.a": a, "level2.b": b} for a in A for b in B],
              [{"level3.a": a} for a in A], [{"ft": f} for f in FT]]
    S, history, trials = [], [], 0
    for depth, settings in enumerate(stages):
        pairs = [{**H, **C} for C in settings for H in (S or [{}])]
        trials += len(pairs)
        if depth < 3:
            order = sorted(range(len(pairs)), key=lambda i: (screened_score(pairs[i]), i))
            chosen = sorted(order[:int(np.ceil(fraction * len(pairs)))])
            pairs = [pairs[i] for i in chosen]
            trials += len(pairs)
        ranked = sorted(range(len(pairs)), key=lambda i: (fake_score(pairs[i]), i))
        S = [pairs[i] for i in ranked[:K]]
        history.append(S)
    return history, trials


@pytest.mark.parametrize("fraction", [0.5, 0.34, 1.0])
def test_screening_trains_in_full_only_the_best_screened_fraction(fraction):
    options = {"levels": LEVELS, "keep": K, "k": 2, "screen": fraction, "screen_epochs": 0}
    study = tune(screened_objective, SPACE, strategy="layerwise", options=options, study="s")
    expected, count = brute_force_screened(fraction)
    assert len(study.trials) == count
    replay = make_strategy("layerwise", parse_space(SPACE), 0, **options)
    assert replay.planned == count
    for t in study.trials:
        replay.replay(t.number, t.params, t.value)
    trials = {t.number: t for t in study.trials}
    assert [[_settings(trials[n].params) for n in s] for s in replay.history] == expected
    screened = [t for t in study.trials if "screen" in t.params]
    assert screened and all(t.params["screen"] == 0 and t.status == "pretrained" for t in screened)
    assert all(t.params["level"] != FINETUNE for t in screened)


def test_the_report_correlates_screening_and_full_scores():
    from purelearn.report.tree import screening

    options = {"levels": LEVELS, "keep": K, "k": 2, "screen": 1.0, "screen_epochs": 0}
    study = tune(screened_objective, SPACE, strategy="layerwise", options=options, study="s")
    level1 = screening(study)[0]
    configs = [{"level1.a": a} for a in A]
    assert sorted(level1["pairs"]) == sorted((screened_score(c), fake_score(c)) for c in configs)
    x, y = (np.argsort(np.argsort(v)) for v in zip(*level1["pairs"]))   # ranks (no ties here)
    assert level1["spearman"] == pytest.approx(np.corrcoef(x, y)[0, 1])


@pytest.mark.parametrize("epochs", [0, 1])
def test_screening_real_levels_probes_them_cheaply_then_trains_the_best_half(tmp_path, epochs):
    from purelearn.cli import main

    config = load_config(None, STACK)
    space = {"level.corruption_level": "uniform(0.0, 0.5)", "train.lr": "loguniform(0.1, 0.5)"}
    options = {"keep": 1, "candidates": 4, "screen": 0.5, "screen_epochs": epochs}
    store = Store(tmp_path / "s.db")
    study = tune(config, space, strategy="layerwise", options=options, store=store, study="lw", workers=1)
    screened = [t for t in study.trials if "screen" in t.params]
    assert len(screened) == 4 + 4 and all(0 < t.value < 0.95 for t in screened)
    level1 = [t for t in screened if t.params["level"] == 1]
    best_half = sorted(level1, key=lambda t: (t.value, t.number))[:2]
    full1 = [t for t in study.trials if t.params["level"] == 1 and "screen" not in t.params]
    strip = lambda p: {k: v for k, v in p.items() if k != "screen"}                  # noqa: E731
    assert sorted(map(repr, map(strip, (t.params for t in best_half)))) == sorted(repr(t.params) for t in full1)
    if epochs == 0:
        assert all(t.curve == [] for t in level1)
    else:
        assert all(t.curve[-1]["examples_seen"] == len(config.data.splits().inputs()) for t in level1)
    assert study.best.params["level"] == FINETUNE and study.models().keys() == {study.best.number}
    assert main(["report", str(tmp_path / "s.db"), "--out", str(tmp_path / "r")]) == 0
    assert "Screening" in (tmp_path / "r" / "index.html").read_text()


@pytest.mark.parametrize("options, message", [({"screen": 1.5}, "search.screen = 1.5"),
                                              ({"screen": True}, "search.screen = True"),
                                              ({"screen_epochs": -1}, "search.screen_epochs"),
                                              ({"k": 1}, "search.k")])
def test_screening_and_grid_options_that_cannot_work_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        make_strategy("layerwise", parse_space(SPACE), 0, levels=2, **options)


def test_a_layerwise_search_is_refused_when_it_cannot_run():
    config = load_config(None, STACK)
    with pytest.raises(ConfigError, match="set expand = false"):
        tune(config, {"train.lr": "loguniform(0.1, 0.5)"}, strategy="layerwise", expand=True)
    with pytest.raises(ConfigError, match="search.levels = 0"):
        tune(load_config(None, ["pretrain.levels=0"]), {"train.lr": "loguniform(0.1, 0.5)"}, strategy="layerwise")
    with pytest.raises(ConfigError, match="level2.hidden"):
        tune(config, {"level2.hidden": "choice(0, 4)"}, strategy="layerwise")


def _run(strategy, score, fail=()):
    """Ask and tell a strategy to its end, as a driver does: (number, params) of every trial."""
    asked, number = [], 0
    while not strategy.exhausted:
        params = strategy.ask(number)
        assert params is not None, "nothing is running, so nothing can be waited for"
        asked.append((number, params))
        strategy.tell(number, params, None if number in fail else score(params))
        number += 1
    return asked


def test_the_defaults_and_the_plan_of_a_sampled_search():
    space = parse_space({"level.a": "uniform(0, 1)", "ft": "uniform(0, 1)"})
    s = make_strategy("layerwise", space, 5, levels=2)
    assert (s.keep, s.candidates, s.screen, s.screen_epochs, s.k) == (3, 4, 0.0, 1, None)
    assert s.planned == 4 + 3 * 4 + 3 * 4
    asked = _run(s, lambda p: objective(p, None))
    assert len(asked) == s.planned and s.exhausted and s.ask(len(asked)) is None
    # level 1's candidates are draws of the seed, stage and index alone
    level1 = parse_space({"level1.a": "uniform(0, 1)"})
    assert [p["level1.a"] for _, p in asked[:4]] == [level1.sample(np.random.default_rng([5, 1, i]))["level1.a"]
                                                   for i in range(4)]
    smallest = make_strategy("layerwise", space, 0, levels=1, keep=1, candidates=1)
    assert smallest.planned == 2 and len(_run(smallest, lambda p: objective(p, None))) == 2


def test_a_stage_without_knobs_tries_the_config_once_per_parent():
    s = make_strategy("layerwise", parse_space({"ft": "choice(0.2, 0.6)"}), 0, levels=2, keep=2, k=2)
    asked = _run(s, lambda p: 0.0)
    assert [p["level"] for _, p in asked] == [1, 2, "finetune", "finetune"]
    assert s.planned == 1 + 2 * 1 + 2 * 2 and len(asked) == 4     # fewer than planned: one parent only


def test_released_models_are_those_no_stage_builds_on(tmp_path):
    s = make_strategy("layerwise", parse_space(SPACE), 0, levels=LEVELS, keep=K, k=2)
    for n in range(3):
        s.tell(n, s.ask(n), [0.3, 0.1, 0.2][n])
    assert s.history == [[1, 2]] and s.released_models() == [0] and s.released_models() == []
    for n in range(3, 15):                        # 6 settings of level 2 on each of the 2 kept
        s.tell(n, s.ask(n), float(n))
    assert s.history[-1] == [3, 4] and sorted(s.released_models()) == [1, 2, *range(5, 15)]


def test_failed_trials_are_never_built_on_and_a_level_that_all_failed_ends_the_search():
    s = make_strategy("layerwise", parse_space(SPACE), 0, levels=LEVELS, keep=K, k=2)
    asked = _run(s, lambda p: objective(p, None), fail={0, 1})
    assert s.history[0] == [2] and all(p["parent"] == 2 for _, p in asked[3:9]) and len(asked) == 3 + 6 + 3 * 2 + 2 * 2
    dead = make_strategy("layerwise", parse_space(SPACE), 0, levels=LEVELS, keep=K, k=2)
    assert len(_run(dead, lambda p: 0.0, fail={0, 1, 2})) == 3 and dead.exhausted and dead.history == [[]]
    screened = make_strategy("layerwise", parse_space(SPACE), 0, levels=LEVELS, keep=K, k=2, screen=0.5)
    assert len(_run(screened, lambda p: 0.0, fail={0, 1, 2})) == 3 and screened.exhausted


def test_a_tiny_screening_fraction_still_trains_one_candidate_in_full():
    s = make_strategy("layerwise", parse_space(SPACE), 0, levels=LEVELS, keep=K, k=2, screen=0.01)
    asked = _run(s, lambda p: screened_objective(p, None))
    full = [p for _, p in asked if "screen" not in p and p["level"] == 1]
    assert len(full) == 1 and len(asked) == (3 + 1) + (6 + 1) + (3 + 1) + 2   # one parent at each level


def test_the_knobs_as_the_trials_set_them():
    space = concrete_space(parse_space(SPACE), 3)
    assert list(space.dims) == ["level1.a", "level2.a", "level2.b", "level3.a", "ft"]
