"""The study store on a real PostgreSQL server, started for these tests in a scratch folder."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import purelearn as pl
from purelearn.errors import StoreError
from purelearn.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import objectives  # noqa: E402

BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def _as_postgres(*cmd):
    # The server refuses to run as root: run it as the 'postgres' user when we are root.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + [str(c) for c in cmd], check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def postgres_url():
    if not BINS:
        pytest.skip("no PostgreSQL server binaries (Debian package postgresql) on this machine")
    bin_dir = BINS[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="purelearn-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _as_postgres(bin_dir / "initdb", "-D", folder / "data", "-A", "trust", "-U", "postgres")
    _as_postgres(bin_dir / "pg_ctl", "-D", folder / "data", "-l", folder / "log", "-w", "start",
                 "-o", f"-k {folder} -h 127.0.0.1 -p {port}")
    _as_postgres(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "studies")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/studies"
    _as_postgres(bin_dir / "pg_ctl", "-D", folder / "data", "-m", "fast", "stop")
    shutil.rmtree(folder, ignore_errors=True)


SPACE = pl.Space({"x": pl.Uniform(0, 1), "lr": pl.LogUniform(1e-4, 1)})


def test_a_study_on_postgresql_resumes_and_extends(postgres_url):
    first = pl.tune(objectives.quadratic, SPACE, trials=6, store=postgres_url, study="pg")
    before = {t.number: (t.params, t.value) for t in first.trials}
    more = pl.tune(objectives.quadratic, SPACE, trials=15, store=postgres_url, study="pg")
    assert [t.number for t in more.trials] == list(range(15))
    assert all((t.params, t.value) == before[t.number] for t in more.trials[:6])
    assert all(len(t.curve) == 5 for t in more.trials)
    same = pl.tune(objectives.quadratic, SPACE, trials=15, study="pg")             # in-memory SQLite
    assert [t.params for t in same.trials] == [t.params for t in more.trials]


def test_a_second_writer_on_postgresql_is_refused(postgres_url):
    held = Store(postgres_url)
    with held.lock("busy"):
        code = ("import sys; sys.path.insert(0, %r); import purelearn as pl, objectives\n"
                "pl.tune(objectives.quadratic, pl.Space(x=pl.Uniform(0, 1), lr=pl.LogUniform(1e-4, 1)), "
                "trials=2, store=%r, study='busy')" % (str(Path(__file__).parent), postgres_url))
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and "in use by another purelearn run" in other.stderr
    with pytest.raises(StoreError, match="in use by another purelearn run"):
        with held.lock("busy"), Store(postgres_url).lock("busy"):
            pass
    assert "busy" not in Store(postgres_url).study_names()


def test_the_best_model_lives_in_the_database_and_scores_the_test_split_from_anywhere(postgres_url, tmp_path,
                                                                                       monkeypatch):
    cfg = pl.config.load_config(None, ["model.hidden=[16]", "train.max_epochs=2"])
    first, other = tmp_path / "here", tmp_path / "elsewhere"
    first.mkdir(), other.mkdir()
    monkeypatch.chdir(first)
    study = pl.tune(cfg, {"train.lr": "loguniform(1e-2, 1)"}, trials=3, store=postgres_url, study="model")
    assert list(first.iterdir()) == []                      # nothing written where the command ran
    monkeypatch.chdir(other)
    again = pl.Study(Store(postgres_url, create=False), Store(postgres_url).study("model"))
    assert again.best.number == study.best.number
    X, y = cfg.data.splits().read_test()
    assert again.evaluate_test() == pytest.approx(again.best_model().error(X, y))
    assert list(other.iterdir()) == []
