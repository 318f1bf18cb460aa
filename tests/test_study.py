import json
import os
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

import purelearn as pl
from purelearn.cli import main
from purelearn.errors import ConfigError, StoreError, TestSetError
from purelearn.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import objectives  # noqa: E402
import processes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPACE = pl.Space({"x": pl.Uniform(0, 1), "lr": pl.LogUniform(1e-4, 1)})


def test_tune_a_function_and_extend_the_study(tmp_path):
    db = tmp_path / "s.db"
    first = pl.tune(objectives.quadratic, SPACE, trials=10, store=db, study="q", seed=3)
    before = {t.number: (t.params, t.value, t.curve) for t in first.trials}
    assert len(before) == 10 and all(t.status == "complete" for t in first.trials)
    t0 = first.trials[0]
    assert [r["examples_seen"] for r in t0.curve] == [100, 200, 300, 400, 500]
    assert t0.curve[0]["valid_error"] == pytest.approx((t0.params["x"] - 0.3) ** 2 + 0.1)
    more = pl.tune(objectives.quadratic, SPACE, trials=25, store=db, study="q", seed=3)
    trials = more.trials
    assert [t.number for t in trials] == list(range(25))
    assert all((t.params, t.value, t.curve) == before[t.number] for t in trials[:10])   # nothing changed
    assert len({tuple(t.params.values()) for t in trials}) == 25                      # nothing repeated
    # the same 25 in one go give the same trials: trial i depends only on (seed, i)
    fresh = pl.tune(objectives.quadratic, SPACE, trials=25, seed=3)
    assert [t.params for t in fresh.trials] == [t.params for t in trials]
    assert more.best.value == min(t.value for t in trials)
    assert more.efficiency_curve()[-1]["best_of_first"] == more.best.value


def test_a_study_refuses_another_strategy_or_space(tmp_path):
    db = tmp_path / "s.db"
    pl.tune(objectives.quadratic, SPACE, trials=3, store=db, study="q")
    with pytest.raises(ConfigError, match="strategy 'random'"):
        pl.tune(objectives.quadratic, SPACE, strategy="tpe", trials=3, store=db, study="q")
    with pytest.raises(ConfigError, match="another space"):
        pl.tune(objectives.quadratic, pl.Space(x=pl.Uniform(0, 2)), trials=3, store=db, study="q")


def test_crashing_and_raising_trials_fail_alone_in_a_process_pool(tmp_path):
    space = pl.Space(x=pl.Uniform(0, 1))
    study = pl.tune(objectives.crashy, space, trials=16, store=tmp_path / "c.db", study="c", workers=2)
    by_status = {s: [t for t in study.trials if t.status == s] for s in ("complete", "failed")}
    assert len(study.trials) == 16 and len(by_status["complete"]) + len(by_status["failed"]) == 16
    for t in by_status["failed"]:
        assert t.params["x"] > 0.8 or t.params["x"] < 0.1
        if t.params["x"] > 0.8:     # its worker died, it was re-run, died again: then failed, saying so
            assert "worker process died (killed by SIGKILL), 2 times" in t.error
        else:
            assert "bad luck" in t.error
    assert all(0.1 <= t.params["x"] <= 0.8 for t in by_status["complete"]) and by_status["failed"]
    assert len({t.worker for t in study.trials}) >= 2


def test_store_schema_and_lock(tmp_path):
    db = tmp_path / "s.db"
    store = Store(db)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE purelearn_info SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer purelearn"):
        Store(db)
    other = tmp_path / "o.db"
    held = Store(other)
    with held.lock("x"):
        with pytest.raises(StoreError, match="in use by another purelearn run"):
            pl.tune(objectives.quadratic, SPACE, trials=2, store=other, study="x")
    assert Store(other).study_names() == []            # nothing was written
    (tmp_path / "junk.db").write_text("not a database at all, just text " * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(tmp_path / "junk.db")
    del store


def _config(tmp_path, trials=12, extra=""):
    cfg = tmp_path / "digits-search.toml"
    cfg.write_text((ROOT / "examples" / "digits-random.toml").read_text()
                   .replace("max_epochs = 30", "max_epochs = 3").replace("trials = 32", f"trials = {trials}")
                   .replace("workers = 0 ", "workers = 1 ") + extra)
    return cfg


def _rows(db):
    """Trials as stored (read with the sqlite3 module, independently of purelearn); {} before
    the store has its tables."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db) as c:
            return {r[0]: r[1:] for r in c.execute("SELECT number, status, params, value, curve FROM trials")}
    except sqlite3.OperationalError:
        return {}


def test_kill_9_mid_population_loses_nothing(tmp_path):
    """The 14 trials train as populations (the first ones alone, while the schedule is measured);
    members stop at different times (their sizes and rates differ), each recorded as it stops.
    A kill keeps those and re-runs the rest, including trials still waiting for a worker."""
    cfg = _config(tmp_path, trials=14, extra='"train.max_epochs" = "intuniform(1, 40)"\n')
    db = tmp_path / "runs" / "digits-search.db"
    proc = processes.Command("tune", cfg, "--population", "14", cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:
        if sum(r[0] == "complete" for r in _rows(db).values()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(db)
    complete = {n: r for n, r in before.items() if r[0] == "complete"}
    assert 4 <= len(complete) < 14 and any(r[0] == "running" for r in before.values())
    run = processes.run("tune", cfg, "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    after = _rows(db)
    assert sorted(after) == list(range(14)) and all(r[0] == "complete" for r in after.values())
    assert all(after[n] == r for n, r in complete.items())                 # finished trials unchanged
    rerun = [n for n, r in before.items() if r[0] == "running"]
    assert all(after[n][1] == before[n][1] for n in rerun)                # re-run with the same params
    assert json.loads(run.stdout)["trials"] == 14


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_marks_running_trials_interrupted(tmp_path, workers):
    cfg = _config(tmp_path, trials=200, extra='"train.max_epochs" = "intuniform(1, 40)"\n')
    db = tmp_path / "runs" / "digits-search.db"
    proc = processes.Command("tune", cfg, "--workers", workers, cwd=tmp_path)
    deadline = time.time() + 120
    # Interrupt while trials train (between two trials nothing is running to be marked).
    while time.time() < deadline and not ((s := [r[0] for r in _rows(db).values()]).count("complete") >= 2
                                          and "running" in s):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    statuses = [r[0] for r in _rows(db).values()]
    assert "running" not in statuses and statuses.count("complete") >= 2 and "interrupted" in statuses


def _main(capsys, *args):
    """The command line, in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_study_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, trials=8)
    code, out, err = _main(capsys, "tune", str(cfg), "--json", "--evaluate-test")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["trials"] == 8 and summary["complete"] == 8 and summary["best_value"] < 0.3
    assert 0 <= summary["test_error"] < 0.3 and summary["test_evaluations"] == 1
    assert set(summary["best_params"]) >= {"train.lr", "model.units"}
    assert "trials 8/8 done" in err
    assert summary["schedule"] and f"schedule: {summary['schedule']}" in err   # said in one line

    code, _, err = _main(capsys, "tune", str(cfg), "--evaluate-test")
    assert code == 2 and "already read its test split" in err
    code, out, _ = _main(capsys, "tune", str(cfg), "--json", "--evaluate-test", "--force")
    assert json.loads(out)["test_evaluations"] == 2

    db = tmp_path / "runs" / "digits-search.db"
    rows = json.loads(_main(capsys, "trials", str(db), "--json")[1])
    assert len(rows) == 8 and [r["value"] for r in rows] == sorted(r["value"] for r in rows)
    code, _, err = _main(capsys, "best", str(db), "--out", str(tmp_path / "best.toml"), "--model", str(tmp_path / "m.pt"))
    assert code == 0, err
    code, out, err = _main(capsys, "train", str(tmp_path / "best.toml"), "--json")
    assert code == 0, err
    assert json.loads(out)["best_valid_error"] == pytest.approx(summary["best_value"], abs=1e-6)
    model = pl.Model.load(tmp_path / "m.pt")                      # the saved model scores the test split as tune did
    X, y = pl.config.load_config(tmp_path / "best.toml").data.splits().read_test()
    assert model.error(X, y) == pytest.approx(summary["test_error"])
    code, _, err = _main(capsys, "report", str(db), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    page = (tmp_path / "rep" / "index.html").read_text()
    for picture in ("efficiency", "marginals", "curves"):
        assert f'alt="{picture}" src="data:image/png;base64,' in page
        assert (tmp_path / "rep" / f"{picture}.png").stat().st_size > 5000


def test_failed_trials_show_their_error_and_a_pipe_closed_early_ends_quietly(tmp_path, capsys, monkeypatch):
    # Each knob's values are valid alone; only together (kl sparsity on tanh units) do they fail.
    cfg = _config(tmp_path, trials=8, extra='"train.sparsity" = \'choice("none", "kl", weights=[1, 3])\'\n')
    cfg.write_text(cfg.read_text().replace('choice("tanh", "rectifier")', 'choice("sigmoid", "tanh")'))
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, "tune", str(cfg))
    assert code == 0, err
    assert re.search(r"failed: trials? [\d, ]+: ConfigError: train.sparsity = 'kl' needs activations", out)
    db = tmp_path / "runs" / "digits-search.db"
    table = _main(capsys, "trials", str(db))[1]
    assert "error" in table.splitlines()[0] and "train.sparsity = 'kl' needs activations" in table
    # The reader is gone before the first line is written: the command ends quietly.
    read, write = os.pipe()
    os.close(read)
    head = processes.Command("trials", db, stdout=write)
    os.close(write)
    assert head.wait() == 0 and head.stderr == ""


def test_study_evaluates_the_test_split_once(tmp_path):
    cfg = pl.config.load_config(ROOT / "examples" / "digits-mlp.toml", ["train.max_epochs=2"])
    study = pl.tune(cfg, {"train.lr": "loguniform(1e-2, 1)"}, trials=3, store=tmp_path / "t.db", study="t")
    value = study.evaluate_test()
    with pytest.raises(TestSetError, match="already read"):
        study.evaluate_test()
    assert study.evaluate_test(force=True) == value
    assert [e["forced"] for e in study.store.test_evaluations(study.record)] == [False, True]
    assert len(study.store.test_evaluations(study.record)) == 2


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "gird"], "Did you mean 'grid'"),
    (["--set", "search.strategy=grid"], "search.k"),
    (["--trials", "0"], "trials = 0"),
])
def test_bad_search_input_exits_2_and_writes_nothing(tmp_path, extra, message, capsys):
    cfg = _config(tmp_path)
    assert main(["tune", str(cfg), "--store", str(tmp_path / "x.db"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists()


def test_bad_knobs_in_a_config_exit_2(tmp_path, capsys):
    for space, message in (('"train.lrr" = "loguniform(1e-3, 1)"', "Did you mean 'lr'"),
                           ('"train.lr" = "loguniform(0, 1)"', "can't touch 0"),
                           ('"train.lr" = "loguniform(1, 0.1)"', "inverted"),
                           ('"model.units_2" = "intuniform(1, 9) if model.depth >= 2"', "doesn't exist")):
        cfg = tmp_path / "bad.toml"
        cfg.write_text(f'[data]\nname = "digits"\n[search]\ntrials = 2\nstore = "{tmp_path / "b.db"}"\n'
                       f"[search.space]\n{space}\n")
        assert main(["tune", str(cfg)]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "b.db").exists() or Store(tmp_path / "b.db").study_names() == []
