"""The score store: scoring runs, per-account scores and API keys (SQLite or PostgreSQL).

>>> store = ScoreStore("sqlite:///scores.db")  # doctest: +SKIP
>>> store.upgrade()  # doctest: +SKIP
>>> store.at_risk(AtRiskQuery(tiers=("high",), sort="mrr_at_risk"))  # doctest: +SKIP
"""

from churnrisk.store.schema import SCORE_COLUMNS
from churnrisk.store.store import (
    SCOPES,
    ApiKey,
    AtRiskPage,
    AtRiskQuery,
    InvalidCursorError,
    InvalidQueryError,
    NoRunError,
    RunRecord,
    ScoreStore,
    StaleCursorError,
    StoreError,
    StoreUnreachableError,
    hash_key,
    mask_password,
)

__all__ = [
    "SCOPES",
    "SCORE_COLUMNS",
    "ApiKey",
    "AtRiskPage",
    "AtRiskQuery",
    "InvalidCursorError",
    "InvalidQueryError",
    "NoRunError",
    "RunRecord",
    "ScoreStore",
    "StaleCursorError",
    "StoreError",
    "StoreUnreachableError",
    "hash_key",
    "mask_password",
]
