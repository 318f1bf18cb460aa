"""Studies and trials on disk (SQLite by default; PostgreSQL through its URL)."""

from .locks import check_study_name
from .sql import SCHEMA_VERSION, STATUSES, Store, StudyRecord, Trial, best_trial

__all__ = ["SCHEMA_VERSION", "STATUSES", "Store", "StudyRecord", "Trial", "best_trial", "check_study_name"]
