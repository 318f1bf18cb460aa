"""What a store is given as: a file path (SQLite), ``sqlite:///PATH``, ``:memory:``, or a
PostgreSQL URL. Checked before anything is opened, so a mistake is named, not a driver's error."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa

from ..errors import StoreError

POSTGRES = ("postgresql", "postgres", "postgresql+psycopg2")
SQLITE_HEADER = b"SQLite format 3\x00"
ALLOWED = ("a file path (SQLite)", "sqlite:///PATH", ":memory:", "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")


def resolve(target, create: bool) -> tuple[sa.URL, Path | None, str]:
    """(URL, SQLite path or None, the store as shown in messages: never with its password)."""
    text = os.fspath(target) if isinstance(target, os.PathLike) else target
    if not isinstance(text, str) or not text.strip():
        raise StoreError(f"store = {target!r}: expected {' or '.join(ALLOWED)}.")
    if "\x00" in text or "\n" in text:
        raise StoreError(f"store = {text!r}: a store's name can't hold NUL or newline characters.")
    if text in (":memory:", "sqlite://"):
        return sa.URL.create("sqlite"), None, ":memory:"
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _sqlite(Path(text), create)
    if scheme.lower() == "sqlite":
        if not rest.startswith("/") or not rest[1:]:
            raise StoreError(f"store = {text!r}: a SQLite URL needs a path after 'sqlite:///', e.g. "
                             "sqlite:///runs/study.db (relative) or sqlite:////tmp/study.db (absolute).")
        return _sqlite(Path(rest[1:]), create)
    if scheme.lower() in POSTGRES:
        try:
            url = sa.make_url(f"postgresql+psycopg2://{rest}")
        except (sa.exc.ArgumentError, ValueError) as e:
            raise StoreError(f"store: can't read the PostgreSQL URL ({e}).") from None
        return url, None, url.render_as_string(hide_password=True)
    raise StoreError(f"store: unknown URL scheme {scheme + '://'!r}. Allowed: {', '.join(ALLOWED)}.")


def _sqlite(path: Path, create: bool) -> tuple[sa.URL, Path, str]:
    shown = str(path)
    if path.is_dir():
        raise StoreError(f"store {shown!r} is a folder; give the path of a study file in it, e.g. "
                         f"{str(path / 'study.db')!r}.")
    if path.exists():
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as e:
            raise StoreError(f"store {shown!r} can't be read ({e.strerror}).") from None
        if head and head != SQLITE_HEADER:
            raise StoreError(f"store {shown!r} is not a SQLite database (nor a purelearn study store); "
                             "it was not changed.")
    elif not create:
        raise StoreError(f"no study store at {shown!r}.")
    else:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise StoreError(f"store {shown!r} can't be created: {str(blocker)!r} is a file, not a folder.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store {shown!r}: can't create its folder ({e.strerror}).") from None
    return sa.URL.create("sqlite", database=str(path)), path, shown


def shown(target) -> str:
    """A store as a message may show it: a URL's password hidden."""
    text = os.fspath(target) if isinstance(target, os.PathLike) else str(target)
    if "://" not in text:
        return text
    try:
        return sa.make_url(text).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return text.split("://", 1)[0] + "://..."
