"""Writing a file whole or not at all: a reader sees the old content or the new, never a part,
and a symbolic link planted at the temporary name is never followed."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a new temporary file beside it, then rename it over."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)            # renames the file itself, whatever lies at ``path``
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
