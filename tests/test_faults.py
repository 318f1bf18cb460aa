"""A killed driver or worker loses no finished trial and leaves nothing that blocks the next run."""

import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import purelearn as pl
from purelearn.errors import ConfigError, StoreError
from purelearn.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import objectives  # noqa: E402
import processes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPACE = pl.Space(x=pl.Uniform(0, 1))


def _config(tmp_path, trials):
    cfg = tmp_path / "faults.toml"
    cfg.write_text(f'''[data]
name = "digits"
preprocess = ["standardize"]
[model]
hidden = [16]
[train]
max_epochs = 2
[search]
trials = {trials}
workers = 2
population = "2"
[search.space]
"train.lr" = "loguniform(1e-2, 0.5)"
"model.units" = "intuniform(8, 24)"
''')
    return cfg


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _rows(db):
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db) as c:
            return {r[0]: r[1:] for r in c.execute("SELECT number, status, params, value FROM trials")}
    except sqlite3.OperationalError:
        return {}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_driver_killed_at_random_points_resumes_and_leaves_no_process(tmp_path):
    cfg, db = _config(tmp_path, trials=16), tmp_path / "runs" / "faults.db"
    rng = np.random.default_rng(7)
    finished = {}
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
        proc = processes.Command("tune", cfg, cwd=tmp_path)
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(proc.pid)) < 2 and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))            # somewhere in the run: starting, training, recording
        workers = _children(proc.pid)
        proc.send_signal(sig)
        err = proc.communicate(timeout=30)[1]
        assert "Traceback" not in err, err
        gone = time.time() + 3
        while time.time() < gone and any(_alive(w) for w in workers):
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), f"workers outlived a driver stopped by {sig!r}"
        rows = _rows(db)
        # every trial finished before the kill is kept as it was
        assert all(rows[n] == r for n, r in finished.items())
        finished = {n: r for n, r in rows.items() if r[0] in ("complete", "pruned")}  # pruned: by default with 16 trials
    run = processes.run("tune", cfg, cwd=tmp_path)
    assert run.returncode == 0, run.stderr                       # nothing left blocks the resume
    rows = _rows(db)
    assert sorted(rows) == list(range(16)) and all(r[0] in ("complete", "pruned") for r in rows.values())
    assert all(rows[n] == r for n, r in finished.items())
    with sqlite3.connect(db) as c:                               # one row per trial, no duplicate
        assert c.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 16


def test_a_trial_whose_worker_dies_is_re_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKS", str(tmp_path))
    study = pl.tune(objectives.dies_once, SPACE, trials=4, store=tmp_path / "d.db", study="d", workers=2)
    assert [t.status for t in study.trials] == ["complete"] * 4
    assert all(t.value == t.params["x"] for t in study.trials)
    assert len(list(tmp_path.glob("0.*"))) == 4                 # each trial's first worker did die


def test_two_drivers_on_one_fresh_store(tmp_path):
    """Both open the store at once: the schema is made once, the second writer of the study
    is refused with a clear message, and another study runs alongside."""
    db = tmp_path / "fresh.db"
    outcomes = {}

    def run(study, key):
        try:
            outcomes[key] = pl.tune(objectives.slow, SPACE, trials=3, store=db, study=study)
        except StoreError as e:
            outcomes[key] = e

    threads = [threading.Thread(target=run, args=(s, k)) for s, k in (("a", 1), ("a", 2), ("b", 3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [v for k, v in outcomes.items() if k in (1, 2) and isinstance(v, StoreError)]
    assert len(refused) == 1 and "in use by another purelearn run" in str(refused[0])
    assert not isinstance(outcomes[3], Exception) and len(outcomes[3].trials) == 3   # study b ran alongside
    assert sorted(Store(db).study_names()) == ["a", "b"]


@pytest.mark.parametrize("name", ["a/b", "..", "x\x00y", "two\nlines", "n" * 250, "", ".hidden"])
def test_study_names_that_would_break_files_are_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(ConfigError, match="study name"):
        pl.tune(objectives.quadratic, pl.Space(x=pl.Uniform(0, 1), lr=pl.LogUniform(1e-4, 1)), trials=1,
                store=tmp_path / "s.db", study=name)
    assert not (tmp_path / "s.db").exists()


def test_a_symbolic_link_at_the_lock_is_never_followed(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    db = tmp_path / "s.db"
    Store(db)
    os.symlink(target, tmp_path / "s.db.x.lock")
    with pytest.raises(StoreError, match="symbolic link"):
        pl.tune(objectives.quadratic, SPACE, trials=1, store=db, study="x")
    assert target.read_text() == "keep me"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_layerwise_search_killed_mid_level_resumes_to_the_same_sets(tmp_path):
    cfg = tmp_path / "lw.toml"
    cfg.write_text("\n".join([
        '[data]\nname = "digits"\npreprocess = ["scale"]\nlabeled = 300',
        '[pretrain]\nlevels = 2\nhidden = 16\nlr = 0.1\nmax_epochs = 3',
        '[train]\nmax_epochs = 6\nlr = 0.2',
        '[search]\nstrategy = "layerwise"\nkeep = 2\ncandidates = 3\nworkers = 2\npopulation = "2"',
        '[search.space]\n"level.corruption_level" = "uniform(0.0, 0.5)"\n"train.lr" = "loguniform(0.1, 0.5)"']))
    db = tmp_path / "runs" / "lw.db"
    proc = processes.Command("tune", cfg, cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and sum(r[0] == "pretrained" for r in _rows(db).values()) < 4:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)                  # level 2 under way
    proc.communicate(timeout=30)
    killed = _rows(db)
    assert any(r[0] != "pretrained" for r in killed.values()) or len(killed) < 3 + 6 + 6
    run = processes.run("tune", cfg, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    whole = processes.run("tune", cfg, "--study", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    with sqlite3.connect(db) as c:
        ids = dict(c.execute("SELECT name, id FROM studies"))
        rows = {name: c.execute("SELECT number, status, params, value FROM trials WHERE study_id = ? ORDER BY number",
                                (sid,)).fetchall() for name, sid in ids.items()}
    resumed, fresh = rows["lw"], rows["whole"]
    assert [r[:3] for r in resumed] == [r[:3] for r in fresh]             # the same trials, parents and S
    assert np.allclose([r[3] for r in resumed], [r[3] for r in fresh], atol=1e-6)
