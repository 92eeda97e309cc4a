"""The score store: scoring runs, per-account scores and API keys (SQLite or PostgreSQL).

>>> store = ScoreStore("sqlite:///scores.db")  # doctest: +SKIP
>>> store.upgrade()  # doctest: +SKIP
>>> store.at_risk(AtRiskQuery(tiers=("high",), sort="mrr_at_risk"))  # doctest: +SKIP

Its rooms: :mod:`~churnrisk.store.database` (engine, tuning, schema revision),
:mod:`~churnrisk.store.runs` (writing runs), :mod:`~churnrisk.store.reads` and
:mod:`~churnrisk.store.queries` (reads and the API's read models),
:mod:`~churnrisk.store.keys` (API keys), :mod:`~churnrisk.store.records` and
:mod:`~churnrisk.store.errors` (what they exchange), composed by
:class:`~churnrisk.store.store.ScoreStore`.
"""

from churnrisk.store.database import Database
from churnrisk.store.errors import (
    InvalidCursorError,
    InvalidQueryError,
    NoRunError,
    StaleCursorError,
    StoreError,
    StoreUnreachableError,
    mask_password,
)
from churnrisk.store.keys import SCOPES, ApiKey, KeyStore, hash_key
from churnrisk.store.reads import ScoreReader
from churnrisk.store.records import AtRiskPage, AtRiskQuery, RunRecord
from churnrisk.store.runs import RunWriter
from churnrisk.store.schema import SCORE_COLUMNS
from churnrisk.store.store import ScoreStore

__all__ = [
    "SCOPES",
    "SCORE_COLUMNS",
    "ApiKey",
    "AtRiskPage",
    "AtRiskQuery",
    "Database",
    "InvalidCursorError",
    "InvalidQueryError",
    "KeyStore",
    "NoRunError",
    "RunRecord",
    "RunWriter",
    "ScoreReader",
    "ScoreStore",
    "StaleCursorError",
    "StoreError",
    "StoreUnreachableError",
    "hash_key",
    "mask_password",
]
