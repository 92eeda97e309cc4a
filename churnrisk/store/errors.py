"""What can go wrong with the score store: the errors and their public reasons."""

from __future__ import annotations

import re
from typing import ClassVar

import sqlalchemy as sa

from churnrisk.errors import ChurnRiskError

UNREACHABLE = "unreachable"
SCHEMA_MISSING = "schema missing: run `churnrisk store upgrade`"
SCHEMA_OLDER = "schema is older than this version: run `churnrisk store upgrade`"
SCHEMA_NEWER = "schema is newer than this version: upgrade churnrisk"
BAD_URL = "the configured store URL cannot be opened: the server log says why"
"""Public reasons (:attr:`StoreError.reason`): they name no URL, user, host, database or path."""


class StoreError(ChurnRiskError, RuntimeError):
    """The score store cannot be used: unreachable, schema missing or old, a failed write.

    The message says everything, the store's URL (password masked) and the database's own
    words: for the CLI and the server log. :attr:`reason` says why in words that name no
    URL, user, host, database or path: what a service may tell anyone.

    Parameters
    ----------
    message
        The whole story.
    reason
        The public reason (default :attr:`default_reason`).
    """

    default_reason: ClassVar[str] = "a request to the database failed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class StoreUnreachableError(StoreError):
    """The database does not answer: connection refused, cut, timed out or not accepted."""

    default_reason = UNREACHABLE


class NoRunError(StoreError, LookupError):
    """The score store holds no scoring run yet."""


class InvalidQueryError(StoreError, ValueError):
    """An at-risk query that cannot be answered (unknown sort, limit below 1)."""


class InvalidCursorError(InvalidQueryError):
    """A pagination cursor that is not one this store issued."""


class StaleCursorError(StoreError):
    """A pagination cursor of a run that is no longer the current run."""


def _reason(err: BaseException) -> str:
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def mask_password(url: str) -> str:
    """Return ``url`` with the password of its ``user:password@`` part shown as ``***``.

    >>> mask_password("postgresql+psycopg://app:s3cret@db:5432/scores")
    'postgresql+psycopg://app:***@db:5432/scores'
    """
    return re.sub(r"(//[^/:@]*:)[^@]*@", r"\1***@", url)


def _unreachable(err: sa.exc.SQLAlchemyError) -> bool:
    """Whether ``err`` is the database not answering rather than a statement failing.

    SQLAlchemy marks a connection that broke under a statement as invalidated, and an
    error raised while connecting carries no statement.
    """
    if isinstance(err, sa.exc.DBAPIError):
        return err.connection_invalidated or err.statement is None
    return isinstance(err, sa.exc.TimeoutError)  # no pooled connection came free in time
