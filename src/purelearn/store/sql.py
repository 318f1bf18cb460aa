"""Studies and their trials on disk: SQLite by default, PostgreSQL when given its URL.

Only the process running a study writes to it (workers hand results back), and each trial is
written whole in one transaction when it starts and again when it ends, together with the
study's best model when it is the new best, so a killed run leaves every finished trial intact,
the model beside the trial it belongs to, and its running trials recognisable (status 'running'
with no live owner) to be marked interrupted and re-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..errors import StoreError
from ..forking import close_in_children
from . import locks
from .locks import check_study_name
from .urls import resolve

SCHEMA_VERSION = 4       # 2: the best model kept in the database; 3: the models of the K best trials;
                         # 4: the statistics of monitored trials
# pretrained: a level of a layer-wise search, trained and scored, not itself a candidate for best
STATUSES = ("running", "complete", "failed", "diverged", "interrupted", "pretrained", "pruned")
RANKED = ("complete", "diverged")     # the statuses whose value takes part in selection

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
models = sa.Table(
    "models", meta,
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False))
statistics = sa.Table(
    "statistics", meta,
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False))
TABLES = {t.name for t in meta.sorted_tables}
LATER_TABLES = {"models", "statistics"}     # absent from a store of an older schema until it is upgraded


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

    @property
    def ranked(self) -> bool:
        return self.status in RANKED and self.value is not None

    @property
    def rank(self) -> tuple[float, int]:
        """The one rule that decides the best trial, everywhere: the lowest value, and among
        tied values (common: a validation error moves in steps of 1/|valid|) the lowest number."""
        return (self.value, self.number)


def _rank_value(value: float | None) -> float:
    return float("inf") if value is None else value


def best_trial(candidates) -> Trial | None:
    ranked = [t for t in candidates if t.ranked]
    return min(ranked, key=lambda t: t.rank) if ranked else None


@dataclass
class StudyRecord:
    id: int
    name: str
    strategy: str
    space: dict
    settings: dict


class Store:
    """A study store at a path (SQLite) or a database URL.

    ``create=False`` opens an existing store to read it and changes nothing in it. A file that
    another program wrote (an Optuna database, say) is refused, never modified."""

    def __init__(self, target: str | os.PathLike, create: bool = True):
        self.url, self.path, self.shown = resolve(target, create)
        self.memory = self.url.drivername == "sqlite" and self.path is None
        self.engine = _engine(self.url, self.shown, self.memory)
        if self.url.drivername == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._open(create)
        except sa.exc.DBAPIError as e:
            raise StoreError(f"{self.shown}: not a readable study store ({_reason(e)}).") from None

    def __str__(self) -> str:
        return self.shown

    def __reduce__(self):
        """Pickled, a store in memory travels whole (its SQLite image); any other is opened again
        where it is unpickled, by its path or URL."""
        if self.memory:
            return _from_image, (self.engine.raw_connection().driver_connection.serialize(),)
        target = str(self.path) if self.path is not None else self.url.render_as_string(hide_password=False)
        return Store, (target, False)

    def _schema(self) -> tuple[set[str], str | None]:
        """The tables found and the schema version recorded (None where there is none)."""
        with self.engine.connect() as c:
            found = set(sa.inspect(c).get_table_names())
            if "purelearn_info" not in found:
                return found, None
            return found, c.execute(sa.select(info.c.value).where(info.c.key == "schema_version")).scalar()

    def _open(self, create: bool) -> None:
        found, raw = self._schema()
        if not found and create:
            with self._creating():               # unless a run beside this one just created it
                found, raw = self._schema()
                if not found:
                    self._create()
                    found, raw = self._schema()
        if "purelearn_info" not in found:
            if found:
                raise StoreError(f"{self.shown} is another program's database (it holds the tables "
                                 f"{', '.join(sorted(found)[:6])}), not a purelearn study store; it was not "
                                 "changed. Give purelearn a store of its own.")
            raise StoreError(f"{self.shown}: not a purelearn study store.")
        try:
            version = int(raw)
        except (TypeError, ValueError):
            version = None
        if version is None or version < 1 or not TABLES - LATER_TABLES <= found:
            raise StoreError(f"{self.shown}: a damaged purelearn store (schema version {raw!r}, tables "
                             f"{', '.join(sorted(found))}); it was not changed.")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.shown} was written by a newer purelearn (schema {version}; this one reads "
                             f"up to {SCHEMA_VERSION}). Upgrade purelearn to open it; the store was not changed.")
        if version < SCHEMA_VERSION and create:
            with self._creating(), self.engine.begin() as c:
                if version == 2:                 # one model per study: its key becomes (study, trial)
                    c.execute(sa.text("ALTER TABLE models RENAME TO models_schema_2"))
                meta.create_all(c)               # schema 1 lacked the models table, 3 the statistics
                if version == 2:
                    c.execute(sa.text("INSERT INTO models (study_id, trial_number, data) "
                                      "SELECT study_id, trial_number, data FROM models_schema_2"))
                    c.execute(sa.text("DROP TABLE models_schema_2"))
                c.execute(info.update().where(info.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    @contextlib.contextmanager
    def _creating(self):
        """Two runs opening one fresh store must not both create its tables: creation is
        serialized (a lock file beside SQLite, an advisory lock in PostgreSQL)."""
        if self.memory:
            yield
        elif self.path is not None:
            with locks.held(locks.lock_path(self.path, None), wait=True):
                yield
        else:
            with self.engine.connect() as c:
                c.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _key("schema")})
                c.commit()
                try:
                    yield
                finally:
                    c.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _key("schema")})
                    c.commit()

    def _create(self) -> None:
        """The tables and the schema version in one transaction: a run opening the store at the
        same moment sees all of it or nothing (SQLite's driver would commit each table alone)."""
        if self.path is None:
            with self.engine.begin() as c:
                meta.create_all(c)
                c.execute(info.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            return
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.isolation_level = None          # transactions as written below
            cursor = raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            for table in meta.sorted_tables:
                cursor.execute(str(sa.schema.CreateTable(table).compile(self.engine)))
            cursor.execute("INSERT INTO purelearn_info (key, value) VALUES ('schema_version', ?)",
                           (str(SCHEMA_VERSION),))
            cursor.execute("COMMIT")
            # Set once, in the file: a reader must not switch the journal of a store it only reads.
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            raw.driver_connection.isolation_level = ""
            raw.close()

    # ---- exclusive use ----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, study: str):
        """Hold one study of the store for writing; a second writer of the same study gets a
        clear error at once, another study of the same store runs alongside. The lock is the
        operating system's (or the database server's): a run that dies, however it dies, leaves
        nothing that blocks the next."""
        check_study_name(study)
        if self.memory:
            yield
            return
        if self.path is not None:
            try:
                with locks.held(locks.lock_path(self.path, study)):
                    yield
            except locks.Busy as e:
                raise self._busy(study, e.owner) from None
            return
        with self.engine.connect() as c:
            if not c.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(study)}).scalar():
                raise self._busy(study, "")
            c.commit()                       # the lock is the session's: no transaction left open
            fd = c.connection.dbapi_connection.fileno()
            close_in_children(fd)       # a forked worker must not keep the server's lock alive
            try:
                yield
            finally:
                close_in_children(fd, close=False)
                c.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _key(study)})
                c.commit()

    def _busy(self, study: str, owner: str) -> StoreError:
        pid = f" (pid {owner})" if owner.isdigit() else ""
        return StoreError(f"study {study!r} in {self.shown} is in use by another purelearn run{pid}; wait for "
                          "it to finish or stop it. Nothing was written.")

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
        check_study_name(name)
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

    def finish_trial(self, study: StudyRecord, trial: Trial, model: bytes | None = None, keep: int = 1,
                     stats: bytes | None = None) -> None:
        """Write a trial's outcome whole, in one transaction, with its layers' statistics and its
        trained ``model`` if given; then only the models of the ``keep`` best trials
        (``Trial.rank``) stay (0: every model). The trial and the models kept change together or
        not at all."""
        with self.engine.begin() as c:
            c.execute(_FINISH_TRIAL, {"sid": study.id, "num": trial.number, "st": trial.status, "val": trial.value,
                                      "cur": json.dumps(trial.curve), "err": trial.error, "wrk": trial.worker,
                                      "sta": trial.started, "end": trial.ended})
            if stats is not None:
                c.execute(statistics.delete().where((statistics.c.study_id == study.id)
                                                    & (statistics.c.trial_number == trial.number)))
                c.execute(statistics.insert().values(study_id=study.id, trial_number=trial.number, data=stats))
            if model is None:
                return
            c.execute(models.delete().where((models.c.study_id == study.id) & (models.c.trial_number == trial.number)))
            c.execute(models.insert().values(study_id=study.id, trial_number=trial.number, data=model))
            if keep:
                ranked = sorted(c.execute(sa.select(trials.c.value, trials.c.number).join(
                    models, (models.c.study_id == trials.c.study_id) & (models.c.trial_number == trials.c.number))
                    .where(trials.c.study_id == study.id)), key=lambda r: (_rank_value(r.value), r.number))
                dropped = [r.number for r in ranked[keep:]]
                if dropped:
                    c.execute(models.delete().where((models.c.study_id == study.id)
                                                    & models.c.trial_number.in_(dropped)))

    def models(self, study: StudyRecord) -> list[tuple[int, bytes]]:
        """(trial number, model bytes) of the trials whose models the store keeps, best first."""
        with self.engine.connect() as c:
            if not sa.inspect(c).has_table("models"):        # a store of schema 1, opened read-only
                return []
            rows = c.execute(sa.select(models.c.trial_number, models.c.data, trials.c.value).join(
                trials, (models.c.study_id == trials.c.study_id) & (models.c.trial_number == trials.c.number))
                .where(models.c.study_id == study.id)).all()
        rows.sort(key=lambda r: (_rank_value(r.value), r.trial_number))
        return [(r.trial_number, bytes(r.data)) for r in rows]

    def model(self, study: StudyRecord, number: int) -> bytes | None:
        """The trained model of trial ``number``, if the store keeps it."""
        with self.engine.connect() as c:
            if not sa.inspect(c).has_table("models"):
                return None
            row = c.execute(sa.select(models.c.data).where((models.c.study_id == study.id)
                                                           & (models.c.trial_number == number))).first()
        return None if row is None else bytes(row.data)

    def statistics(self, study: StudyRecord, number: int) -> bytes | None:
        """The layers' statistics of trial ``number``, if it was monitored."""
        with self.engine.connect() as c:
            if not sa.inspect(c).has_table("statistics"):     # an older store, opened read-only
                return None
            row = c.execute(sa.select(statistics.c.data).where((statistics.c.study_id == study.id)
                                                               & (statistics.c.trial_number == number))).first()
        return None if row is None else bytes(row.data)

    def drop_models(self, study: StudyRecord, numbers: list[int]) -> None:
        """Forget the trained models of these trials (their records stay)."""
        if numbers:
            with self.engine.begin() as c:
                c.execute(models.delete().where((models.c.study_id == study.id)
                                                & models.c.trial_number.in_(list(numbers))))

    def best_model(self, study: StudyRecord) -> tuple[int, bytes] | None:
        """(trial number, model bytes) of the best trial whose model the store keeps."""
        kept = self.models(study)
        return kept[0] if kept else None

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


def _from_image(image: bytes) -> Store:
    """A store in memory holding a pickled one's content."""
    store = Store(":memory:")
    store.engine.raw_connection().driver_connection.deserialize(image)
    return store


def _engine(url: sa.URL, shown: str, memory: bool) -> sa.Engine:
    try:
        if memory:
            return sa.create_engine(url, poolclass=sa.pool.StaticPool)
        return sa.create_engine(url)
    except (sa.exc.NoSuchModuleError, ModuleNotFoundError, ImportError) as e:
        raise StoreError(f"{shown}: its database driver is not installed ({e}). purelearn speaks to SQLite "
                         "(built in) and PostgreSQL (pip install 'purelearn[postgres]').") from None
    except sa.exc.ArgumentError as e:
        raise StoreError(f"{shown}: not a database URL purelearn can use ({e}).") from None


def _key(name: str) -> int:
    return zlib.crc32(f"purelearn:{name}".encode())          # the same in every process


def _reason(error: sa.exc.DBAPIError) -> str:
    return str(error.orig).splitlines()[0] if error.orig is not None else type(error).__name__


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
