"""Studies and their trials on disk: SQLite by default, any SQLAlchemy URL (PostgreSQL) when asked.

Only the process running a study writes to it (workers hand results back), and each trial is
written whole in one transaction when it starts and again when it ends, so a killed run leaves
every finished trial intact and its running ones recognisable (status 'running' with no live
owner) to be marked interrupted and re-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ..errors import StoreError

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "failed", "diverged", "interrupted")

meta = sa.MetaData()
info = sa.Table("purelearn_info", meta, sa.Column("key", sa.String(64), primary_key=True),
                sa.Column("value", sa.Text, nullable=False))
studies = sa.Table(
    "studies", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), unique=True, nullable=False),
    sa.Column("strategy", sa.String(50), nullable=False),
    sa.Column("space", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False))
trials = sa.Table(
    "trials", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("curve", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("seed", sa.Integer),
    sa.Column("worker", sa.String(100)),
    sa.Column("started", sa.Float),
    sa.Column("ended", sa.Float),
    sa.UniqueConstraint("study_id", "number"))
tests = sa.Table(
    "test_evaluations", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False),
    sa.Column("trial_number", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("at", sa.Float, nullable=False))


# Statements built once: building them per call costs more than the database work itself.
_DELETE_TRIAL = trials.delete().where((trials.c.study_id == sa.bindparam("sid")) &
                                      (trials.c.number == sa.bindparam("num")))
_INSERT_TRIAL = trials.insert()
_FINISH_TRIAL = trials.update().where((trials.c.study_id == sa.bindparam("sid")) &
                                      (trials.c.number == sa.bindparam("num"))).values(
    status=sa.bindparam("st"), value=sa.bindparam("val"), curve=sa.bindparam("cur"), error=sa.bindparam("err"),
    worker=sa.bindparam("wrk"), started=sa.bindparam("sta"), ended=sa.bindparam("end"))


@dataclass
class Trial:
    """One trial as stored: its parameters, status, validation value and learning curve."""

    number: int
    params: dict
    status: str
    value: float | None = None
    curve: list = field(default_factory=list, repr=False)
    error: str | None = None
    seed: int | None = None
    worker: str | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


@dataclass
class StudyRecord:
    id: int
    name: str
    strategy: str
    space: dict
    settings: dict


def _url(target: str | os.PathLike) -> tuple[str, Path | None]:
    text = str(target)
    if text == ":memory:":
        return "sqlite://", None
    if "://" in text:
        return text, Path(text[len("sqlite:///"):]) if text.startswith("sqlite:///") else None
    return f"sqlite:///{text}", Path(text)


class Store:
    """A study store at a path (SQLite) or SQLAlchemy URL."""

    def __init__(self, target: str | os.PathLike, create: bool = True):
        self.url, self.path = _url(target)
        if self.path is not None:
            if not create and not self.path.exists():
                raise StoreError(f"no study store at {str(self.path)!r}.")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.memory = self.url == "sqlite://"
        # One shared connection keeps an in-memory database alive across transactions.
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.StaticPool) if self.memory \
            else sa.create_engine(self.url)
        if self.url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._check_schema(create)
        except sa.exc.DatabaseError as e:
            raise StoreError(f"{target}: not a readable study store ({e.orig}).") from None

    def _check_schema(self, create: bool) -> None:
        with self.engine.begin() as c:
            found = sa.inspect(c).has_table("purelearn_info")
            if not found:
                if not create:
                    raise StoreError(f"{self.url}: not a purelearn study store.")
                meta.create_all(c)
                c.execute(info.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            version = int(c.execute(sa.select(info.c.value).where(info.c.key == "schema_version")).scalar())
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.url} was written by a newer purelearn (schema {version}; this one reads "
                             f"up to {SCHEMA_VERSION}). Upgrade purelearn to open it; the store was not changed.")

    # ---- exclusive use ----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, study: str):
        """Hold the study store for writing; a second writer gets a clear error at once."""
        if self.memory:
            yield
            return
        if self.path is None:
            with self.engine.connect() as c:
                key = zlib.crc32(f"purelearn:{study}".encode())   # the same in every process
                if not c.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    raise StoreError(f"study {study!r} is being run by another purelearn process.")
                try:
                    yield
                finally:
                    c.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            return
        import fcntl

        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                owner = f.read().strip() or "?"
                raise StoreError(f"{self.path} is in use by another purelearn run (pid {owner}); wait for it "
                                 "to finish or stop it. Nothing was written.") from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ---- studies ----------------------------------------------------------------------

    def study(self, name: str) -> StudyRecord | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(studies).where(studies.c.name == name)).first()
        return None if row is None else StudyRecord(row.id, row.name, row.strategy, json.loads(row.space),
                                                    json.loads(row.settings))

    def study_names(self) -> list[str]:
        with self.engine.connect() as c:
            return [r[0] for r in c.execute(sa.select(studies.c.name).order_by(studies.c.id))]

    def create_study(self, name: str, strategy: str, space: dict, settings: dict) -> StudyRecord:
        with self.engine.begin() as c:
            sid = c.execute(studies.insert().values(name=name, strategy=strategy, space=json.dumps(space),
                                                    settings=json.dumps(settings), created=time.time())
                            ).inserted_primary_key[0]
        return StudyRecord(sid, name, strategy, space, settings)

    def update_study(self, study: StudyRecord) -> None:
        with self.engine.begin() as c:
            c.execute(studies.update().where(studies.c.id == study.id).values(
                space=json.dumps(study.space), settings=json.dumps(study.settings)))

    # ---- trials -----------------------------------------------------------------------

    def trials(self, study: StudyRecord) -> list[Trial]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(trials).where(trials.c.study_id == study.id).order_by(trials.c.number))
            return [Trial(r.number, json.loads(r.params), r.status, r.value, json.loads(r.curve or "[]"), r.error,
                          r.seed, r.worker, r.started, r.ended) for r in rows]

    def start_trial(self, study: StudyRecord, trial: Trial, replace: bool = False) -> None:
        """Record a trial as running (drawn, perhaps still waiting for a worker: the worker and
        start time are written again when it finishes); ``replace`` drops an earlier
        (interrupted) record of it."""
        with self.engine.begin() as c:
            if replace:
                c.execute(_DELETE_TRIAL, {"sid": study.id, "num": trial.number})
            c.execute(_INSERT_TRIAL, {"study_id": study.id, "number": trial.number, "params": json.dumps(trial.params),
                                      "status": "running", "seed": trial.seed, "worker": trial.worker,
                                      "started": trial.started})

    def finish_trial(self, study: StudyRecord, trial: Trial) -> None:
        """Write a trial's outcome whole, in one transaction."""
        with self.engine.begin() as c:
            c.execute(_FINISH_TRIAL, {"sid": study.id, "num": trial.number, "st": trial.status, "val": trial.value,
                                      "cur": json.dumps(trial.curve), "err": trial.error, "wrk": trial.worker,
                                      "sta": trial.started, "end": trial.ended})

    def interrupt_running(self, study: StudyRecord) -> int:
        """Mark trials left 'running' by a run that is gone as interrupted; returns how many."""
        with self.engine.begin() as c:
            return c.execute(trials.update().where((trials.c.study_id == study.id) & (trials.c.status == "running"))
                             .values(status="interrupted", ended=time.time())).rowcount

    # ---- the test split, read once ---------------------------------------------------------

    def test_evaluations(self, study: StudyRecord) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(tests).where(tests.c.study_id == study.id).order_by(tests.c.id))
            return [{"trial": r.trial_number, "value": r.value, "forced": r.forced, "at": r.at} for r in rows]

    def add_test_evaluation(self, study: StudyRecord, trial_number: int, value: float, forced: bool) -> None:
        with self.engine.begin() as c:
            c.execute(tests.insert().values(study_id=study.id, trial_number=trial_number, value=value,
                                            forced=forced, at=time.time()))

    def weights_path(self, study: StudyRecord) -> Path:
        """Where the best trial's parameters are kept: a file beside the database."""
        if self.memory:
            if not hasattr(self, "_scratch"):
                import tempfile
                self._scratch = tempfile.TemporaryDirectory(prefix="purelearn-")
            return Path(self._scratch.name) / f"{study.name}.best.pt"
        if self.path is None:                        # a database server: keep the file under runs/
            folder = Path("runs")
            folder.mkdir(exist_ok=True)
            return folder / f"{self.engine.url.database}.{study.name}.best.pt"
        return self.path.with_name(f"{self.path.name}.{study.name}.best.pt")


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
