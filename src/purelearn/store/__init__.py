"""Studies and trials on disk (SQLite by default; PostgreSQL through a SQLAlchemy URL)."""

from .sql import SCHEMA_VERSION, STATUSES, Store, StudyRecord, Trial

__all__ = ["SCHEMA_VERSION", "STATUSES", "Store", "StudyRecord", "Trial"]
