"""Tests written against the mutants of store/sql.py, store/locks.py and store/urls.py that
survived the existing fast tests (see TESTING.md): every way a store is named, opened, refused,
locked, written and read back, checked against the sqlite3 module and hand-written values."""

import os
import sqlite3
import threading
import time
import zlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from purelearn import forking
from purelearn.errors import ConfigError, StoreError
from purelearn.store import SCHEMA_VERSION, Store, Trial, best_trial, check_study_name
from purelearn.store import locks
from purelearn.store.sql import _key
from purelearn.store.urls import resolve, shown

# --- urls.py --------------------------------------------------------------------------------------


def test_every_form_of_store_name_resolves_to_its_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for memory in (":memory:", "sqlite://"):
        url, path, text = resolve(memory, True)
        assert (url.drivername, url.database, path, text) == ("sqlite", None, None, ":memory:")
    url, path, text = resolve(tmp_path / "a" / "b" / "s.db", True)        # a PathLike; its folders are made
    assert (url.database, path, text) == (str(tmp_path / "a" / "b" / "s.db"), tmp_path / "a" / "b" / "s.db", str(path))
    assert (tmp_path / "a" / "b").is_dir()
    assert resolve(tmp_path / "a" / "b" / "t.db", True)[1].parent.is_dir()   # a folder already there
    assert resolve("sqlite:///rel/s.db", True)[1] == Path("rel/s.db")
    assert resolve("sqlite:///x", True)[1] == Path("x")                       # a one-letter file name
    assert resolve(f"SQLite:///{tmp_path}/b/s.db", True)[1] == tmp_path / "b" / "s.db"   # sqlite:////abs/path
    url, path, text = resolve("postgres://u:s3cret@db.example:5433/studies", True)
    assert (url.drivername, url.host, url.port, url.database, path) == ("postgresql+psycopg2", "db.example", 5433,
                                                                      "studies", None)
    assert "s3cret" not in text and text == "postgresql+psycopg2://u:***@db.example:5433/studies"
    for scheme in ("postgresql", "POSTGRESQL+psycopg2"):
        assert resolve(f"{scheme}://u@h/d", True)[0].drivername == "postgresql+psycopg2"


@pytest.mark.parametrize("target, message", [
    ("", "expected a file path"), ("   ", "expected a file path"), (None, "expected a file path"),
    (3, "expected a file path"), ("a\x00b", "NUL or newline"), ("a\nb", "NUL or newline"),
    ("sqlite:///", "needs a path after"), ("sqlite://rel.db", "needs a path after"),
    ("mysql://u@h/d", "unknown URL scheme 'mysql://'"), ("postgresql://u@h:port/d", "can't read the PostgreSQL URL"),
])
def test_a_store_name_that_cant_be_used_is_refused_by_what_is_wrong(target, message):
    with pytest.raises(StoreError, match=message):
        resolve(target, True)


def test_a_sqlite_path_is_checked_before_anything_is_opened(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        resolve(tmp_path, True)
    (tmp_path / "text.db").write_bytes(b"not a database, just text")
    with pytest.raises(StoreError, match="is not a SQLite database"):
        resolve(tmp_path / "text.db", True)
    (tmp_path / "empty.db").write_bytes(b"")                     # an empty file is a database not yet written
    assert resolve(tmp_path / "empty.db", False)[1] == tmp_path / "empty.db"
    sqlite3.connect(tmp_path / "real.db").execute("CREATE TABLE t (x)").connection.close()
    assert resolve(tmp_path / "real.db", False)[1] == tmp_path / "real.db"
    with pytest.raises(StoreError, match="no study store at"):
        resolve(tmp_path / "missing.db", False)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"'.*file' is a file, not a folder"):
        resolve(tmp_path / "file" / "sub" / "s.db", True)


def test_a_store_as_shown_in_messages_never_holds_its_password():
    assert shown("runs/s.db") == "runs/s.db"
    assert shown(Path("runs/s.db")) == "runs/s.db"
    assert shown("postgresql://u:s3cret@h/d") == "postgresql://u:***@h/d"
    assert shown("postgresql://u:s3cret@h:port/d") == "postgresql://..."        # unreadable: scheme only


# --- locks.py -------------------------------------------------------------------------------------


def test_study_names_are_1_to_100_safe_characters():
    for good in ("a", "_", "9", "run 1.2+x-y_z", "a" * 100):
        assert check_study_name(good) == good
    for bad in ("", " a", ".a", "-a", "a/b", "..", "a" * 101, None, 3, "a\n"):
        with pytest.raises(ConfigError, match="study name"):
            check_study_name(bad)
    with pytest.raises(ConfigError) as long:
        check_study_name("x" * 61 + "/")
    assert repr("x" * 60) + "..." in str(long.value)
    with pytest.raises(ConfigError) as edge:
        check_study_name("x" * 60 + "/")                          # 61 characters: cut to 60
    assert repr("x" * 60) + "..." in str(edge.value)
    with pytest.raises(ConfigError) as short:
        check_study_name("x" * 59 + "/")
    assert repr("x" * 59 + "/") in str(short.value) and "..." not in str(short.value).split("can't")[0]


def test_lock_files_lie_beside_the_store():
    assert locks.lock_path(Path("/d/s.db"), None) == Path("/d/s.db.lock")
    assert locks.lock_path(Path("/d/s.db"), "run 1") == Path("/d/s.db.run 1.lock")


def test_a_held_lock_refuses_a_second_holder_names_its_pid_and_is_closed_in_children(tmp_path):
    path = tmp_path / "s.lock"
    umask = os.umask(0o022)
    try:
        with locks.held(path):
            assert path.stat().st_mode & 0o777 == 0o644                # rw-r--r--
    finally:
        os.umask(umask)
    path.unlink()
    with locks.held(path):
        assert path.read_text() == str(os.getpid())
        assert len(forking._CLOSE_IN_CHILD) >= 1
        registered = set(forking._CLOSE_IN_CHILD)
        with pytest.raises(locks.Busy) as busy:
            with locks.held(path):
                pass
        assert busy.value.owner == str(os.getpid())
    assert path.read_text() == ""                                 # emptied on release
    assert not registered & forking._CLOSE_IN_CHILD               # no longer closed in children
    with locks.held(path):                                        # free again
        pass


def test_waiting_for_a_lock_waits_until_its_holder_lets_go(tmp_path):
    path, released = tmp_path / "s.lock", []
    entered = threading.Event()

    def holder():
        with locks.held(path):
            entered.set()
            time.sleep(0.2)
            released.append(time.monotonic())

    t = threading.Thread(target=holder)
    t.start()
    entered.wait()
    with locks.held(path, wait=True):
        got = time.monotonic()
    t.join()
    assert got >= released[0]


def test_a_lock_file_that_is_a_symbolic_link_or_cant_be_made_is_refused(tmp_path):
    (tmp_path / "target").write_text("")
    (tmp_path / "link.lock").symlink_to(tmp_path / "target")
    with pytest.raises(StoreError, match="is a symbolic link"):
        with locks.held(tmp_path / "link.lock"):
            pass
    with pytest.raises(StoreError, match="can't create the lock file"):
        with locks.held(tmp_path / "no" / "such" / "folder.lock"):
            pass


# --- sql.py ---------------------------------------------------------------------------------------


def _tables(db):
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_store_file_has_every_table_the_schema_version_and_a_write_ahead_log(tmp_path):
    db = tmp_path / "s.db"
    store = Store(db)
    assert _tables(db) == {"purelearn_info", "studies", "trials", "test_evaluations", "models", "statistics"}
    assert SCHEMA_VERSION == 4
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT key, value FROM purelearn_info").fetchall() == [("schema_version", "4")]
        assert c.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with store.engine.connect() as c:                              # every connection: these settings
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 1          # NORMAL
    assert str(store) == str(db) and not store.memory
    Store(db, create=False)                                        # opens again as it is
    assert Store(":memory:").memory and str(Store(":memory:")) == ":memory:"


# (column, type, NOT NULL, primary key) of each table, as schema version 2 writes them
SCHEMA = {
    "purelearn_info": [("key", "VARCHAR(64)", 1, 1), ("value", "TEXT", 1, 0)],
    "studies": [("id", "INTEGER", 1, 1), ("name", "VARCHAR(200)", 1, 0), ("strategy", "VARCHAR(50)", 1, 0),
                ("space", "TEXT", 1, 0), ("settings", "TEXT", 1, 0), ("created", "FLOAT", 1, 0)],
    "trials": [("id", "INTEGER", 1, 1), ("study_id", "INTEGER", 1, 0), ("number", "INTEGER", 1, 0),
               ("params", "TEXT", 1, 0), ("status", "VARCHAR(20)", 1, 0), ("value", "FLOAT", 0, 0),
               ("curve", "TEXT", 0, 0), ("error", "TEXT", 0, 0), ("seed", "INTEGER", 0, 0),
               ("worker", "VARCHAR(100)", 0, 0), ("started", "FLOAT", 0, 0), ("ended", "FLOAT", 0, 0)],
    "test_evaluations": [("id", "INTEGER", 1, 1), ("study_id", "INTEGER", 1, 0), ("trial_number", "INTEGER", 1, 0),
                         ("value", "FLOAT", 1, 0), ("forced", "BOOLEAN", 1, 0), ("at", "FLOAT", 1, 0)],
    "models": [("study_id", "INTEGER", 1, 1), ("trial_number", "INTEGER", 1, 2), ("data", "BLOB", 1, 0)],
}


def test_the_tables_on_disk_are_those_of_this_schema_version(tmp_path):
    """Other versions of purelearn (and other programs) read these files: the columns, their
    types, what may be NULL, the keys and the unique names are part of the format."""
    db = tmp_path / "s.db"
    Store(db).engine.dispose()
    with sqlite3.connect(db) as c:
        for table, columns in SCHEMA.items():
            assert [(r[1], r[2], r[3], r[5]) for r in c.execute(f"PRAGMA table_info({table})")] == columns, table
        for table in ("trials", "test_evaluations", "models"):
            assert [(r[2], r[3], r[4]) for r in c.execute(f"PRAGMA foreign_key_list({table})")] == [
                ("studies", "study_id", "id")]
    store = Store(db)
    store.create_study("s", "random", {}, {})
    with pytest.raises(sa.exc.IntegrityError):
        store.create_study("s", "tpe", {}, {})                     # one study per name


def test_a_damaged_sqlite_file_is_refused_with_the_drivers_reason(tmp_path):
    (tmp_path / "bad.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    with pytest.raises(StoreError, match=r"bad.db: not a readable study store \(file is not a database\)\.$"):
        Store(tmp_path / "bad.db")


def test_opening_read_only_changes_nothing_and_a_missing_store_is_named(tmp_path):
    with pytest.raises(StoreError, match="no study store at"):
        Store(tmp_path / "none.db", create=False)
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match="not a purelearn study store"):
        Store(tmp_path / "empty.db", create=False)
    assert _tables(tmp_path / "empty.db") == set()


def _store_with(tmp_path, name, *statements):
    db = tmp_path / name
    Store(db).engine.dispose()
    with sqlite3.connect(db) as c:
        for s in statements:
            c.execute(s)
    return db


def test_stores_that_are_not_purelearns_or_are_damaged_or_newer_are_refused_unchanged(tmp_path):
    other = tmp_path / "optuna.db"
    with sqlite3.connect(other) as c:
        for t in ("trials", "studies", "alembic_version"):
            c.execute(f"CREATE TABLE {t} (x)")
    with pytest.raises(StoreError, match=r"another program's database \(it holds the tables alembic_version, "
                                         r"studies, trials\)"):
        Store(other)
    assert _tables(other) == {"trials", "studies", "alembic_version"}
    cases = [("UPDATE purelearn_info SET value = 'x'", "damaged"), ("UPDATE purelearn_info SET value = '0'", "damaged"),
             ("DELETE FROM purelearn_info", "damaged"), ("DROP TABLE trials", "damaged"),
             ("DROP TABLE test_evaluations", "damaged"),
             (f"UPDATE purelearn_info SET value = '{SCHEMA_VERSION + 1}'", "written by a newer purelearn")]
    for i, (statement, message) in enumerate(cases):
        db = _store_with(tmp_path, f"{i}.db", statement)
        before = _tables(db)
        for create in (True, False):
            with pytest.raises(StoreError, match=message):
                Store(db, create=create)
        assert _tables(db) == before
    # exactly the current schema opens
    Store(_store_with(tmp_path, "same.db", f"UPDATE purelearn_info SET value = '{SCHEMA_VERSION}'"))


def _version(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT value FROM purelearn_info WHERE key = 'schema_version'").fetchone()[0]


def test_a_schema_1_store_is_upgraded_when_written_and_left_as_it_is_when_read(tmp_path):
    old = ("DROP TABLE models", "UPDATE purelearn_info SET value = '1'")
    db = _store_with(tmp_path, "read.db", *old,
                     "INSERT INTO studies (name, strategy, space, settings, created) VALUES ('r', 'random', '{}', '{}', 0)")
    reader = Store(db, create=False)
    assert reader.best_model(reader.study("r")) is None
    assert "models" not in _tables(db) and _version(db) == "1"
    written = _store_with(tmp_path, "write.db", *old)
    store = Store(written)
    assert "models" in _tables(written) and _version(written) == str(SCHEMA_VERSION)
    study = store.create_study("s", "random", {}, {})
    store.start_trial(study, Trial(0, {}, "running"))
    store.finish_trial(study, Trial(0, {}, "complete", 0.5), b"m")
    assert Store(written, create=False).best_model(study) == (0, b"m")


def test_a_schema_3_store_gains_the_statistics_table_when_written_and_keeps_its_trials(tmp_path):
    old = ("DROP TABLE statistics", "UPDATE purelearn_info SET value = '3'")
    db = _store_with(tmp_path, "s3.db", *old)
    reader = Store(db, create=False)
    assert "statistics" not in _tables(db) and _version(db) == "3"
    store = Store(db)
    assert "statistics" in _tables(db) and _version(db) == "4"
    study = store.create_study("s", "random", {}, {})
    store.start_trial(study, Trial(0, {}, "running"))
    store.finish_trial(study, Trial(0, {}, "complete", 0.5), b"m", stats=b"numbers")
    store.start_trial(study, Trial(1, {}, "running"))
    store.finish_trial(study, Trial(1, {}, "complete", 0.7))
    assert store.statistics(study, 0) == b"numbers" and store.statistics(study, 1) is None
    assert reader.statistics(study, 0) == b"numbers"
    store.start_trial(study, Trial(0, {}, "running"), replace=True)         # written again: replaced
    store.finish_trial(study, Trial(0, {}, "complete", 0.5), stats=b"again")
    assert store.statistics(study, 0) == b"again"


def test_studies_are_created_read_updated_and_listed_in_creation_order():
    store = Store(":memory:")
    assert store.study("a") is None and store.study_names() == []
    b = store.create_study("b", "random", {"x": "uniform(0, 1)"}, {"seed": 3})
    a = store.create_study("a", "tpe", {}, {})
    assert store.study_names() == ["b", "a"]
    read = store.study("b")
    assert (read.id, read.name, read.strategy, read.space, read.settings) == (b.id, "b", "random",
                                                                              {"x": "uniform(0, 1)"}, {"seed": 3})
    b.space, b.settings = {"x": "uniform(0, 2)"}, {"seed": 4}
    store.update_study(b)
    assert (store.study("b").space, store.study("b").settings) == ({"x": "uniform(0, 2)"}, {"seed": 4})
    assert store.study("a").space == {} and a.id != b.id
    with pytest.raises(ConfigError, match="study name"):
        store.create_study("../x", "random", {}, {})


def test_trials_are_written_whole_read_back_in_number_order_and_kept_per_study():
    store = Store(":memory:")
    s, other = store.create_study("s", "random", {}, {}), store.create_study("o", "random", {}, {})
    for n in (2, 0, 1):
        store.start_trial(s, Trial(n, {"x": n / 10}, "running", seed=10 + n, worker="w", started=100.0 + n))
    store.start_trial(other, Trial(0, {"x": 9}, "running"))
    running = store.trials(s)
    assert [(t.number, t.params, t.status, t.seed, t.worker, t.started, t.value, t.curve, t.ended)
            for t in running] == [(n, {"x": n / 10}, "running", 10 + n, "w", 100.0 + n, None, [], None) for n in range(3)]
    done = Trial(1, {"x": 0.1}, "complete", 0.25, [{"examples_seen": 5}], None, 11, "w2", 101.5, 104.0)
    store.finish_trial(s, done)
    failed = Trial(2, {"x": 0.2}, "failed", None, [], "boom", 12, "w3", 102.0, 103.0)
    store.finish_trial(s, failed)
    got = {t.number: t for t in store.trials(s)}
    assert got[1] == done and got[2] == failed and got[0].status == "running"
    assert got[1].seconds == 2.5 and got[0].seconds is None
    assert [t.params for t in store.trials(other)] == [{"x": 9}]
    # a re-run replaces the interrupted record, in the same transaction
    assert store.interrupt_running(s) == 1 and store.interrupt_running(s) == 0
    assert store.trials(s)[0].status == "interrupted" and store.trials(s)[0].ended is not None
    assert store.trials(other)[0].status == "running"
    store.start_trial(s, Trial(0, {"x": 0.0}, "running", seed=99), replace=True)
    assert [(t.number, t.status, t.seed) for t in store.trials(s)] == [(0, "running", 99), (1, "complete", 11),
                                                                      (2, "failed", 12)]
    assert [(t.number, t.params) for t in store.trials(other)] == [(0, {"x": 9})]   # the other study's trial 0 stays
    with pytest.raises(sa.exc.IntegrityError):
        store.start_trial(s, Trial(0, {"x": 0.0}, "running"))      # without replace: refused


def test_the_store_keeps_the_models_of_the_k_best_trials_per_study():
    store = Store(":memory:")
    s, other = store.create_study("s", "random", {}, {}), store.create_study("o", "random", {}, {})
    assert store.best_model(s) is None and store.models(s) == []
    for n in range(4):
        store.start_trial(s, Trial(n, {}, "running"))
    store.start_trial(other, Trial(0, {}, "running"))
    store.finish_trial(s, Trial(0, {}, "complete", 0.5), b"model 0", keep=2)
    store.finish_trial(other, Trial(0, {}, "complete", 0.1), b"other", keep=2)
    store.finish_trial(s, Trial(1, {}, "complete", 0.7), b"model 1", keep=2)
    assert store.models(s) == [(0, b"model 0"), (1, b"model 1")] and store.best_model(other) == (0, b"other")
    store.finish_trial(s, Trial(2, {}, "complete", 0.2), b"model 2", keep=2)       # trial 1 drops out
    assert store.models(s) == [(2, b"model 2"), (0, b"model 0")] and store.best_model(other) == (0, b"other")
    store.finish_trial(s, Trial(3, {}, "complete", 0.5), b"model 3", keep=2)       # ties 0, later: not kept
    assert store.models(s) == [(2, b"model 2"), (0, b"model 0")]
    store.finish_trial(s, Trial(1, {}, "complete", 0.7))                           # no model: nothing changes
    assert store.best_model(s) == (2, b"model 2")
    store.finish_trial(s, Trial(3, {}, "complete", 0.5), b"model 3", keep=0)       # 0: every model stays
    assert [n for n, _ in store.models(s)] == [2, 0, 3]


def test_test_evaluations_are_kept_in_order_per_study():
    store = Store(":memory:")
    s, other = store.create_study("s", "random", {}, {}), store.create_study("o", "random", {}, {})
    before = time.time()
    store.add_test_evaluation(s, 3, 0.25, False)
    store.add_test_evaluation(other, 0, 0.5, False)
    store.add_test_evaluation(s, 4, 0.125, True)
    rows = store.test_evaluations(s)
    assert [(r["trial"], r["value"], r["forced"]) for r in rows] == [(3, 0.25, False), (4, 0.125, True)]
    assert all(before <= r["at"] <= time.time() for r in rows)
    assert [r["trial"] for r in store.test_evaluations(other)] == [0]


def test_the_best_trial_is_the_lowest_ranked_value_then_the_lowest_number():
    trials = [Trial(0, {}, "complete", 0.3), Trial(1, {}, "failed", 0.0), Trial(2, {}, "running", 0.0),
              Trial(3, {}, "interrupted", 0.0), Trial(4, {}, "complete", None), Trial(5, {}, "diverged", 0.2),
              Trial(6, {}, "complete", 0.2)]
    assert [t.ranked for t in trials] == [True, False, False, False, False, True, True]
    assert best_trial(trials).number == 5
    assert best_trial(trials[::-1]).number == 5                   # order of the list does not matter
    assert best_trial(trials[:5]).number == 0
    assert best_trial(trials[1:5]) is None and best_trial([]) is None
    assert trials[6].rank == (0.2, 6)
    shown = repr(Trial(7, {"x": 1}, "complete", 0.5, [{"examples_seen": 123456}]))
    assert "number=7" in shown and "123456" not in shown and "curve" not in shown      # a curve is long


def test_one_study_is_held_by_one_writer_and_another_study_beside_it_is_free(tmp_path):
    store = Store(tmp_path / "s.db")
    with store.lock("a"):
        with pytest.raises(StoreError, match=rf"study 'a' in {tmp_path / 's.db'} is in use by another purelearn "
                                             rf"run \(pid {os.getpid()}\)"):
            with Store(tmp_path / "s.db").lock("a"):
                pass
        with Store(tmp_path / "s.db").lock("b"):
            pass
        assert (tmp_path / "s.db.a.lock").exists()
    with store.lock("a"):
        pass
    memory = Store(":memory:")
    with memory.lock("a"), memory.lock("a"):                       # nothing to share: no lock
        pass
    with pytest.raises(ConfigError, match="study name"):
        with store.lock("../a"):
            pass
    assert "(pid" not in str(store._busy("a", "")) and "(pid 12)" in str(store._busy("a", "12"))


def test_a_store_a_second_run_opens_while_the_first_creates_it_is_created_once(tmp_path):
    """The creation lock is held while the tables are made: a run that finds it held waits."""
    db = tmp_path / "s.db"
    opened = []
    with locks.held(locks.lock_path(db, None)):
        t = threading.Thread(target=lambda: opened.append(Store(db)))
        t.start()
        time.sleep(0.3)
        assert not opened and _tables(db) == set()                 # waiting for the lock
    t.join()
    assert opened and _tables(db) == {"purelearn_info", "studies", "trials", "test_evaluations", "models",
                                      "statistics"}


def test_opening_an_existing_store_never_waits_for_a_run_creating_one(tmp_path):
    db = tmp_path / "s.db"
    Store(db).engine.dispose()
    opened = []
    with locks.held(locks.lock_path(db, None)):
        t = threading.Thread(target=lambda: opened.append(Store(db)), daemon=True)
        t.start()
        t.join(timeout=5)
        assert opened                                              # it did not wait for the lock
    t.join()


def test_an_unusable_database_url_is_named(tmp_path):
    with pytest.raises(StoreError, match="database driver is not installed|not a readable study store"):
        Store("postgresql://u:s3cret@127.0.0.1:1/db")
    assert _key("s") == zlib.crc32(b"purelearn:s") and _key("s") != _key("t")
