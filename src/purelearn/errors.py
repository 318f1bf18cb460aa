"""Errors a user can cause. Each message says what was wrong and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PurelearnError(ValueError):
    """Base of every error caused by the user's input (config, data, values)."""


class ConfigError(PurelearnError):
    """A configuration key or value is unknown or out of range."""


class DataError(PurelearnError):
    """A dataset is missing, malformed, or holds values that can't be trained on."""


class TestSetError(PurelearnError):
    """The held-out test split was asked for a second time without ``force``."""

    __test__ = False  # not a pytest test class


def closest(name: str, allowed: Iterable[str]) -> str:
    """A 'did you mean' hint for ``name`` among ``allowed`` ('' when nothing is close)."""
    match = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


def unknown(kind: str, name: str, allowed: Iterable[str], error=ConfigError) -> PurelearnError:
    """The error for an unknown name: says the name, the closest valid one and all valid ones."""
    allowed = sorted(allowed)
    return error(f"unknown {kind} {name!r}.{closest(name, allowed)} "
                 f"Allowed: {', '.join(allowed)}.")


class StoreError(PurelearnError):
    """A study store can't be used: locked by another run, written by a newer version, or unreadable."""
