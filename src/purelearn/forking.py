"""Open files that a forked child must not keep.

A forked child shares its parent's open files. A lock held through one stays held while any
process keeps it open, and a pipe's reader sees its end only when every copy of the writing
end is closed: a worker forked while the driver holds its study's lock, or other workers' pipe
ends, would keep the study locked and its siblings waiting after the driver died. Every file
registered here is closed in each child as soon as it is forked."""

from __future__ import annotations

import contextlib
import os

_CLOSE_IN_CHILD: set[int] = set()


def _close_inherited() -> None:
    for fd in _CLOSE_IN_CHILD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _CLOSE_IN_CHILD.clear()


os.register_at_fork(after_in_child=_close_inherited)


def close_in_children(fd: int, close: bool = True) -> None:
    """Have children forked from now on close ``fd`` (or, ``close=False``, no longer)."""
    (_CLOSE_IN_CHILD.add if close else _CLOSE_IN_CHILD.discard)(fd)
