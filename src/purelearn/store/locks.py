"""Locks that a dead process cannot leave behind: the operating system's ``flock`` on a file
beside the store, released when its holder exits however it exits, and closed in any child
forked while it is held (``purelearn.forking``), so a worker never keeps its driver's lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path

from ..errors import ConfigError, StoreError
from ..forking import close_in_children

_NAME = re.compile(r"\w[\w.+ -]{0,99}")


def check_study_name(name) -> str:
    """A study name also names files beside the store: 1-100 letters, digits, '.', '_', '-', '+'
    or spaces, starting with a letter, digit or '_'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 60 else repr(name[:60]) + "..."
        raise ConfigError(f"study name {shown} can't be used: a study name is 1 to 100 letters, digits, '.', "
                          "'_', '-', '+' or spaces, starting with a letter, digit or '_' (no '/', no '..').")
    return name


def lock_path(store: Path, study: str | None) -> Path:
    """``s.db.lock`` guards the store's creation, ``s.db.<study>.lock`` one study's run."""
    return store.with_name(f"{store.name}.lock" if study is None else f"{store.name}.{study}.lock")


class Busy(Exception):
    """The lock is held by another process (``owner``: its pid, when it wrote one)."""

    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


@contextlib.contextmanager
def held(path: Path, *, wait: bool = False):
    """Hold the lock on ``path`` (created if missing, never through a symbolic link); raise
    :class:`Busy` at once if another process holds it, or with ``wait``, wait for it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; purelearn never writes its lock files through one. "
                             "Remove the link.") from None
        raise StoreError(f"can't create the lock file {path} ({e.strerror}).") from None
    close_in_children(fd)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Busy(os.pread(fd, 32, 0).decode(errors="replace").strip()) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)          # for the message a second run gets
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        close_in_children(fd, close=False)
        os.close(fd)                                         # releases the lock
