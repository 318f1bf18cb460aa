"""The diagnosis of a run's curves (§4.1) and the chapter's advice on a config or a study (§3)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import purelearn as pl
from purelearn.cli import main
from purelearn.config import Config, load_config
from purelearn.diagnose import Advice, Diagnosis, advise, diagnose
from purelearn.diagnose import diagnosis as dg
from purelearn.report.html import _page
from purelearn.train import fit

sys.path.insert(0, str(Path(__file__).parent))
import objectives  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits-mlp.toml"
STANDARDIZED = {"data.preprocess": ["standardize"]}
TUNED_LR = {"train.lr": "loguniform(1e-4, 1)"}


def rules(advice) -> list[str]:
    return [a.rule for a in advice]


def config(**values) -> Config:
    """Standardized digits with the given dotted keys (written with __ for the dot)."""
    return Config().with_values(STANDARDIZED | {k.replace("__", "."): v for k, v in values.items()})


# ---- diagnosis on real runs


def _noisy_npz(tmp_path) -> Path:
    """300 examples whose label is x0 > 0, flipped for 30%: a big net learns the flips by heart."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    flip = rng.random(300) < 0.3
    y[flip] = 1 - y[flip]
    np.savez(tmp_path / "noisy.npz", X=X, y=y)
    return tmp_path / "noisy.npz"


def test_a_learning_rate_far_too_small_under_fits():
    c = load_config(DIGITS, ["train.lr=1e-5", "model.hidden=[32]", "train.max_epochs=3"])
    d = diagnose(fit(c.data.splits(), c.member()))
    assert d.verdict == "under-fitting" and d.series == "valid_loss"
    assert d.evidence["train_fell"] < dg.BARELY_FELL and d.evidence["validations"] >= 3
    assert ("§3.1.1" in [s for s, _ in d.remedies]) and any("learning rate" in t for _, t in d.remedies)
    assert "under-fitting" in d.text and "§4.1" in d.text


def test_a_big_net_on_few_noisy_examples_over_fits(tmp_path):
    c = Config().with_values({"data.name": str(_noisy_npz(tmp_path)), "model.hidden": [256],
                              "model.activation": "rectifier", "train.lr": 0.1, "train.max_epochs": 100,
                              "train.patience": 10 ** 7})
    d = diagnose(fit(c.data.splits(), c.member()))
    assert d.verdict == "over-fitting", d.text
    e = d.evidence
    assert e["valid_last"] > e["valid_min"] * (1 + dg.CLEARLY_ROSE)
    assert e["train_last"] < e["train_at_valid_min"] * (1 - dg.KEPT_FALLING)
    sections = [s for s, _ in d.remedies]
    assert "§3.1.1" in sections and "§3.2" in sections
    assert any("early stopping already keeps" in t for _, t in d.remedies)
    assert any("more training data" in t for _, t in d.remedies)


def test_a_good_run_is_fine():
    c = load_config(DIGITS, ["model.hidden=[32]", "train.max_epochs=5"])
    d = diagnose(fit(c.data.splits(), c.member()))
    assert d.verdict == "fine", d.text
    assert d.evidence["train_fell"] > 0.5
    json.loads(json.dumps(d.summary()))                       # plain JSON
    assert d.summary()["verdict"] == "fine"


# ---- diagnosis thresholds, on made-up curves


def curve(train, valid, key="valid_loss", error=None):
    return [{"examples_seen": 100 * (i + 1), "train_loss": t, key: v,
             "valid_error": v if error is None else error[i]} for i, (t, v) in enumerate(zip(train, valid))]


def test_barely_fell_is_under_fitting_on_its_threshold():
    below = diagnose(curve([1.0, 0.95, 0.91], [1.0, 0.97, 0.95]))
    above = diagnose(curve([1.0, 0.9, 0.85], [1.0, 0.95, 0.9]))
    assert below.verdict == "under-fitting" and below.evidence["train_fell"] == pytest.approx(0.09)
    assert above.verdict == "fine" and above.evidence["train_fell"] == pytest.approx(0.15)


def test_training_far_above_the_validation_loss_is_under_fitting():
    far = diagnose(curve([2.0, 1.0, 0.9], [0.5, 0.4, 0.4]))           # 0.9 / 0.4 = 2.25 times
    near = diagnose(curve([2.0, 1.0, 0.7], [0.5, 0.4, 0.4]))          # 1.75 times
    assert far.verdict == "under-fitting" and far.evidence["train_over_valid_min"] == pytest.approx(2.25)
    assert near.verdict == "fine"
    tiny = diagnose(curve([2.0, 1.0, 0.003], [0.5, 0.01, 0.001]))     # 3 times, but 0.002 is nothing
    assert tiny.verdict != "under-fitting"


def test_over_fitting_needs_validation_rising_and_training_falling():
    over = diagnose(curve([1.0, 0.5, 0.3, 0.2], [1.0, 0.6, 0.65, 0.7]))     # valid +17%, train -60%
    assert over.verdict == "over-fitting"
    assert over.evidence["valid_rise"] == pytest.approx(0.1 / 0.6)
    assert over.evidence["examples_at_valid_min"] == 200
    slight = diagnose(curve([1.0, 0.5, 0.3, 0.2], [1.0, 0.6, 0.62, 0.65]))  # +8%
    assert slight.verdict == "fine"
    flat_train = diagnose(curve([1.0, 0.5, 0.48, 0.47], [1.0, 0.6, 0.65, 0.7]))  # train -6% after
    assert flat_train.verdict == "fine" and "not the over-fitting pattern" in flat_train.reason


def test_too_short_missing_or_diverged_curves():
    assert diagnose(curve([1.0, 0.5], [1.0, 0.6])).verdict == "unknown"
    assert diagnose([]).verdict == "unknown"
    rows = [{"examples_seen": i, "valid_error": 0.5, "train_loss": None} for i in range(5)]   # a function's curve
    assert diagnose(rows).verdict == "unknown"
    diverged = diagnose(curve([1.0, 0.8, math.inf], [1.0, 0.9, None]))
    assert diverged.verdict == "under-fitting" and "diverged" in diverged.reason
    assert diverged.summary()["evidence"]["validations"] == 3


def test_the_validation_series_matches_the_training_criterion():
    # a network's NLL against its validation loss, not its error rate
    d = diagnose(curve([1.0, 0.5, 0.3], [1.0, 0.6, 0.5], error=[0.5, 0.2, 0.1]))
    assert d.series == "valid_loss" and d.evidence["valid_error_min"] == 0.1
    ae = diagnose(curve([1.0, 0.5, 0.3], [1.0, 0.6, 0.5], key="valid_reconstruction"))
    assert ae.series == "valid_error"                          # a denoising criterion against its own
    rbm = [r | {"pseudo_likelihood": -3.0} for r in curve([1.0, 0.5, 0.3], [1.0, 0.6, 0.5], key="valid_reconstruction",
                                                            error=[9.0, 8.0, 7.0])]
    assert diagnose(rbm).series == "valid_reconstruction"


def test_train_shows_the_diagnosis(capsys):
    args = ["train", str(DIGITS), "--set", "train.max_epochs=3", "--set", "model.hidden=[32]", "--set", "train.lr=1e-5"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("best validation error") and out[1].startswith("Diagnosis (§4.1): under-fitting")
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["diagnosis"]["verdict"] == "under-fitting"
    assert summary["diagnosis"]["evidence"]["train_fell"] < dg.BARELY_FELL


# ---- advice on a config: each rule, triggered and not


def test_learning_rate_not_searched_or_on_too_few_values():
    assert "learning-rate" in rules(advise(config()))                       # nothing searched
    assert "learning-rate" in rules(advise(config(), {"train.lr": "choice(0.01, 0.1, 1.0)"}))
    grid3 = advise(config(), TUNED_LR, strategy="grid", options={"k": 3})
    assert [a.evidence["distinct_values"] for a in grid3 if a.rule == "learning-rate"] == [3]
    assert "learning-rate" not in rules(advise(config(), TUNED_LR))
    assert "learning-rate" not in rules(advise(config(), TUNED_LR, strategy="grid", options={"k": 4}))
    assert advise(config(), TUNED_LR) == []                                  # a clean config: no advice
    assert all(isinstance(a, Advice) for a in grid3)
    assert {a.section for a in grid3 if a.rule == "learning-rate"} == {"§3.1.1"}


def test_a_positive_knob_on_a_linear_scale():
    wide = advise(config(), {"train.lr": "uniform(0.001, 1)", "model.units": "intuniform(16, 512)",
                             "train.l2": "uniform(0, 0.01)"})
    found = {a.evidence["knob"]: a for a in wide if a.rule == "log-scale"}
    assert set(found) == {"train.lr", "model.units", "train.l2"}
    assert found["train.lr"].evidence["ratio"] == pytest.approx(1000) and found["train.lr"].section == "§3.3.1"
    assert "intloguniform(16, 512)" in found["model.units"].message and "can't reach 0" in found["train.l2"].message
    narrow = advise(config(), {"train.lr": "uniform(0.01, 0.05)", "train.momentum": "uniform(0, 0.9)",
                               "model.units": "intloguniform(16, 512)"})
    assert "log-scale" not in rules(narrow)             # a factor of 5; a fraction; already log


def test_batch_size_beyond_a_few_hundred():
    big = advise(config(train__batch_size=1024), TUNED_LR)
    assert rules(big) == ["batch-size"] and big[0].evidence["batch_size"] == 1024 and big[0].section == "§3.1.1"
    assert "batch-size" in rules(advise(config(), TUNED_LR | {"train.batch_size": "choice(32, 1024)"}))
    assert "batch-size" not in rules(advise(config(train__batch_size=256), TUNED_LR | {"train.batch_size": "choice(1, 64)"}))


def test_inputs_far_from_unit_scale(tmp_path):
    raw = advise(Config().with_values({"data.preprocess": []}), TUNED_LR)     # digits: pixels 0..16
    found = [a for a in raw if a.rule == "preprocessing"]
    assert len(found) == 1 and found[0].evidence["rms"] > 4 and found[0].evidence["largest_abs"] == 16
    assert found[0].section == "§3.2"
    assert "preprocessing" not in rules(advise(config(), TUNED_LR))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "unit.npz", X=rng.random((200, 4)), y=np.arange(200) % 2)   # raw, but in [0, 1]
    assert "preprocessing" not in rules(advise(Config().with_values({"data.name": str(tmp_path / "unit.npz")}), TUNED_LR))


def test_sigmoid_in_a_deep_supervised_net_without_pre_training():
    deep = advise(config(model__hidden=[32, 32], model__activation="sigmoid"), TUNED_LR)
    assert rules(deep) == ["sigmoid-depth"] and deep[0].evidence["hidden_layers"] == 2 and deep[0].section == "§3.2"
    searched = TUNED_LR | {"model.layers": "intuniform(1, 3)", "model.activation": 'choice("sigmoid", "tanh")'}
    assert "sigmoid-depth" in rules(advise(config(), searched))
    assert "sigmoid-depth" not in rules(advise(config(model__hidden=[32], model__activation="sigmoid"), TUNED_LR))
    assert "sigmoid-depth" not in rules(advise(config(model__hidden=[32, 32], model__activation="tanh"), TUNED_LR))
    pretrained = config(pretrain__levels=2, pretrain__hidden=32)
    assert pretrained.member().model.activation == "sigmoid" and len(pretrained.member().model.hidden) == 2
    assert "sigmoid-depth" not in rules(advise(pretrained, TUNED_LR))


def test_l2_decay_beside_early_stopping():
    decayed = advise(config(train__l2=1e-3), TUNED_LR)
    assert rules(decayed) == ["l2-early-stopping"] and decayed[0].section == "§3.2"
    assert decayed[0].evidence == {"l2": 1e-3, "patience": 10000}
    assert "l2-early-stopping" in rules(advise(config(), TUNED_LR | {"train.l2": "loguniform(1e-6, 1e-2)"}))
    assert "l2-early-stopping" not in rules(advise(config(train__l1=1e-3), TUNED_LR))             # L1 differs
    assert "l2-early-stopping" not in rules(advise(config(model__hidden=[32], train__l2=[0.0, 1e-3]), TUNED_LR))


def test_numerical_knobs_given_three_values_or_fewer():
    grid = advise(config(), TUNED_LR | {"model.units": "intloguniform(8, 64)", "model.layers": "intuniform(1, 2)"},
                  strategy="grid", options={"k": 5})
    assert "few-values" not in rules(grid)                    # 5 values; layers takes every value it has
    three = advise(config(), TUNED_LR | {"model.units": "intloguniform(8, 64)"}, strategy="grid",
                   options={"k": 3})
    assert [a.evidence for a in three if a.rule == "few-values"] == [{"knob": "model.units", "values": 3}]
    chosen = advise(config(), TUNED_LR | {"model.units": "choice(16, 64, 256)", "model.activation": 'choice("tanh", "rectifier")'})
    assert [a.evidence["knob"] for a in chosen if a.rule == "few-values"] == ["model.units"]
    assert {a.section for a in chosen if a.rule == "few-values"} == {"§3.3.1"}


def test_a_toml_path_reads_its_search_section(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "digits"\npreprocess = ["standardize"]\n[search]\nstrategy = "grid"\nk = 3\n'
                   '[search.space]\n"train.lr" = "loguniform(1e-3, 1)"\n')
    assert rules(advise(cfg)) == ["learning-rate"]
    cfg.write_text(cfg.read_text().replace("k = 3", "k = 6"))
    assert advise(str(cfg)) == []
    with pytest.raises(pl.ConfigError, match="advise takes a Config"):
        advise(42)


# ---- advice on a study


def monotone(params, report):
    return params["x"]


def flat(params, report):
    return 1.0 + 1e-9 * params["x"]


def test_the_best_value_on_the_border_of_its_interval():
    edge = pl.tune(monotone, pl.Space(x=pl.Uniform(0, 1)), trials=32, seed=0)
    found = [a for a in advise(edge) if a.rule == "border"]
    assert len(found) == 1 and found[0].evidence["knob"] == "x" and found[0].evidence["side"] == "low"
    assert found[0].section == "§3.3.1" and found[0].message.startswith(next(iter(edge.warnings())))
    inside = pl.tune(objectives.quadratic, pl.Space({"x": pl.Uniform(0, 1), "lr": pl.LogUniform(1e-4, 1)}),
                     trials=12, seed=0)
    assert "border" not in rules(advise(inside))


def test_the_efficiency_curve_still_rising():
    rising = pl.tune(objectives.quadratic, pl.Space({"x": pl.Uniform(0, 1), "lr": pl.LogUniform(1e-4, 1)}),
                     trials=12, seed=0)
    found = [a for a in advise(rising) if a.rule == "efficiency-curve"]
    assert len(found) == 1 and found[0].section == "§3.4" and found[0].evidence["finished"] == 12
    assert found[0].evidence["gain_from_last_doubling"] > 0 and "--trials 24" in found[0].message
    plateau = pl.tune(flat, pl.Space(x=pl.Uniform(0.2, 0.8)), trials=16, seed=0)
    assert plateau.plateau()["plateau"] is True
    assert "efficiency-curve" not in rules(advise(plateau))


def test_a_knob_that_finished_trials_tried_at_three_values():
    space = pl.Space({"x": pl.Uniform(0, 1), "lr": pl.LogUniform(1e-4, 1)})
    few = pl.tune(objectives.quadratic, space, trials=3, seed=0)
    found = {a.evidence["knob"]: a for a in advise(few) if a.rule == "few-values"}
    assert set(found) == {"x", "lr"} and found["x"].evidence["values"] == 3 and len(found["x"].evidence["tried"]) == 3
    assert "few-values" not in rules(advise(pl.tune(objectives.quadratic, space, trials=8, seed=0)))


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory):
    """A study of a config: 4 short trials on digits, in a store file."""
    db = tmp_path_factory.mktemp("advise") / "digits.db"
    cfg = load_config(DIGITS, ["train.max_epochs=2", "model.hidden=[16]", "train.l2=1e-3"])
    return pl.tune(cfg, {"train.lr": "loguniform(1e-2, 1)", "model.units": "intloguniform(8, 64)"}, trials=4,
                   store=db, study="digits", workers=1, population=4), db


def test_a_test_split_read_more_than_once(digits_study):
    study, _ = digits_study
    study.evaluate_test()
    once = advise(study)
    assert "test-reread" not in rules(once)
    assert "l2-early-stopping" in rules(once)                 # the study's config is judged too
    study.evaluate_test(force=True)
    found = [a for a in advise(study) if a.rule == "test-reread"]
    assert len(found) == 1 and found[0].section == "§3" and found[0].evidence["reads"] == 2
    assert found[0].evidence["forced"] == 1


def test_the_report_diagnoses_the_best_trial(digits_study):
    study, _ = digits_study
    page = _page(study, {})
    verdict = diagnose(study.best.curve).verdict
    assert "<h2>Diagnosis of the best trial</h2>" in page
    assert f"Trial {study.best.number}: <b>{verdict}</b>" in page and "train_fell" in page


# ---- the command


def test_advise_a_config_on_the_command_line(tmp_path, capsys):
    cfg = tmp_path / "raw.toml"
    cfg.write_text('[data]\nname = "digits"\n[model]\nhidden = [32, 32]\nactivation = "sigmoid"\n')
    assert main(["advise", str(cfg)]) == 0
    out = capsys.readouterr().out
    paragraphs = out.strip().split("\n\n")
    assert [p.split(" ", 1)[0] for p in paragraphs] == ["§3.1.1", "§3.2", "§3.2"]
    assert "(preprocessing)" in paragraphs[1] and "(sigmoid-depth)" in paragraphs[2]
    assert main(["advise", str(cfg), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [a["rule"] for a in summary["advice"]] == ["learning-rate", "preprocessing", "sigmoid-depth"]
    clean = tmp_path / "clean.toml"
    clean.write_text('[data]\nname = "digits"\npreprocess = ["standardize"]\n[search]\n[search.space]\n'
                     '"train.lr" = "loguniform(1e-4, 1)"\n')
    assert main(["advise", str(clean)]) == 0
    assert capsys.readouterr().out.startswith("no advice: the config passes every check")


def test_advise_a_store_on_the_command_line(digits_study, capsys):
    _, db = digits_study
    assert main(["advise", str(db)]) == 0
    out = capsys.readouterr().out
    assert "§3.2 (l2-early-stopping)" in out and "§3.4 (efficiency-curve)" in out
    assert main(["advise", f"sqlite:///{db}", "--study", "digits", "--json"]) == 0
    assert "efficiency-curve" in [a["rule"] for a in json.loads(capsys.readouterr().out)["advice"]]
    assert main(["advise", str(db), "--study", "nope"]) == 2
    assert "unknown study" in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [("missing.db", "no study store at"),
                                           ("missing.toml", "does not exist"), ("missing", "does not exist")])
def test_advise_a_missing_path_exits_2_and_creates_nothing(tmp_path, capsys, name, message):
    assert main(["advise", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("purelearn: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_study_on_a_config_is_refused(capsys):
    assert main(["advise", str(DIGITS), "--study", "x"]) == 2
    assert "--study 'x' names a study in a store" in capsys.readouterr().err


def test_a_diagnosis_is_a_dataclass_with_text_and_summary():
    d = Diagnosis("fine", {"validations": 3})
    assert d.summary() == {"verdict": "fine", "series": "", "reason": "", "evidence": {"validations": 3}, "remedies": []}
    assert d.text.startswith("Diagnosis (§4.1): fine")
