"""Errors of the analytics store, under the project's root error.

`StoreUnavailable` means "try again later" (the server is down, restarting or overloaded): the
sink pauses and retries on it. Every other `StoreError` is a fault an operator must fix (bad DDL,
a migration edited after it was applied, a value the table cannot hold).
"""

from __future__ import annotations

from pipeline.errors import LookthroughError


class StoreError(LookthroughError):
    """The analytics store refused a statement or cannot be used as configured."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; retrying later may succeed."""


class NativeMismatch(StoreError):
    """A table's columns are no longer the types a Native block was made with (it was altered)."""


class MigrationError(StoreError):
    """The migration files or the recorded migrations are inconsistent."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (third-party messages can run to pages)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
