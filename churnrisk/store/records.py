"""The score store's records: a scoring run, an at-risk query and one page of its answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal


@dataclass(frozen=True)
class RunRecord:
    """One scoring run.

    Attributes
    ----------
    run_id
        uuid4 hex.
    as_of
        The day the scores are as of (features use data before it).
    scored_at
        When the run was scored, timezone-aware UTC.
    churn_version, clv_version
        Registered model versions of the churn and CLV models.
    model_run_id
        MLflow run id of the models' training run.
    accounts
        Number of accounts (score rows) in the run.
    tiers
        ``{tier: lowest probability}``, riskiest first; ``low_tier`` is below them all.
    previous_run_id
        The run before this one at write time, or None.
    source
        What was scored (e.g. the data path).
    """

    run_id: str
    as_of: date
    scored_at: datetime
    churn_version: str
    clv_version: str
    model_run_id: str
    accounts: int
    tiers: dict[str, float]
    low_tier: str
    previous_run_id: str | None
    source: str

    @property
    def tier_names(self) -> list[str]:
        """Every tier of the run, riskiest first (``low_tier`` last)."""
        return [*self.tiers, self.low_tier]

    def to_dict(self) -> dict[str, Any]:
        """Return the run as JSON-ready values (ISO 8601 date and timestamp)."""
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "scored_at": self.scored_at.isoformat(),
            "churn_version": self.churn_version,
            "clv_version": self.clv_version,
            "model_run_id": self.model_run_id,
            "accounts": self.accounts,
            "tiers": dict(self.tiers),
            "low_tier": self.low_tier,
            "previous_run_id": self.previous_run_id,
            "source": self.source,
        }


@dataclass(frozen=True)
class AtRiskQuery:
    """A page request of the at-risk list of the current run.

    Attributes
    ----------
    tiers
        Keep accounts in any of these tiers (empty: every tier).
    segment, plan, owner
        Keep accounts with exactly this value.
    min_probability
        Keep accounts with ``churn_probability >= min_probability``.
    min_mrr
        Keep accounts with ``mrr >= min_mrr``.
    renewing_within
        Keep accounts with ``0 <= days_to_renewal <= renewing_within``.
    sort
        Order, descending: ``probability`` (churn probability), ``mrr_at_risk``,
        ``clv`` (lifetime CLV) or ``change`` (probability change, accounts without a
        previous score last); or ascending: ``renewal`` (soonest renewal first, accounts
        without a known renewal last); ties by ``account_id`` ascending.
    limit
        Rows per page (at least 1).
    cursor
        ``next_cursor`` of the previous page, or None for the first page.
    include_snoozed
        Keep snoozed accounts (an activity's ``snooze_until`` after ``today``, see
        :mod:`churnrisk.store.activities`); by default they are left out.
    contact_days
        A row of the highest tier ``needs_contact`` when its last contact is older than
        this many days before ``today`` (or there is none).
    today
        The day snoozes and contact are judged on (``None``: today in UTC).
    """

    tiers: tuple[str, ...] = ()
    segment: str | None = None
    plan: str | None = None
    owner: str | None = None
    min_probability: float | None = None
    min_mrr: float | None = None
    renewing_within: int | None = None
    sort: Literal["probability", "mrr_at_risk", "clv", "change", "renewal"] = "probability"
    limit: int = 50
    cursor: str | None = None
    include_snoozed: bool = False
    contact_days: int = 14
    today: date | None = None


@dataclass(frozen=True)
class AtRiskPage:
    """One page of the at-risk list.

    Attributes
    ----------
    run
        The run the rows come from (the current run).
    rows
        Score rows (every ``scores`` column, drivers decoded to lists), in query order,
        each with ``last_contact`` (aware UTC datetime of the latest contact activity, or
        None), ``snoozed_until`` (date or None) and ``needs_contact`` (bool).
    next_cursor
        Cursor of the next page, or None on the last page.
    total
        Rows matching the filters over all pages.
    """

    run: RunRecord
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _run_record(row: Mapping[Any, Any]) -> RunRecord:
    tiers = {str(k): float(v) for k, v in dict(row["tiers"]).items()}
    return RunRecord(
        run_id=row["run_id"],
        as_of=row["as_of"],
        scored_at=row["scored_at"],
        churn_version=row["churn_version"],
        clv_version=row["clv_version"],
        model_run_id=row["model_run_id"],
        accounts=int(row["accounts"]),
        tiers=dict(sorted(tiers.items(), key=lambda kv: -kv[1])),
        low_tier=row["low_tier"],
        previous_run_id=row["previous_run_id"],
        source=row["source"],
    )
