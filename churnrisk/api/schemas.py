"""Request and response schemas of the service, named by direction.

``...Public`` models are what the service sends, ``...Create`` what it accepts. The
routes serialise their answers with :mod:`orjson` from plain dictionaries built to
these shapes (the answers are cached as bytes), and the tests check every answer
against these models, which forbid extra members, so the documentation and the wire
cannot drift apart. The score row's models (:data:`AccountRiskPublic`,
:data:`AccountDetailPublic`) are generated from the score row's declaration
(:mod:`churnrisk.scorerow`), as the store's table and the export's columns are.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from churnrisk.metrics import PERIOD_PATTERN
from churnrisk.scorerow import Api, ScoreField, api_fields
from churnrisk.store.activities import AUTHOR_CHARS, KINDS, OUTCOMES, TEXT_CHARS

Scope = Literal["read", "write", "admin"]
SortKey = Literal["probability", "mrr_at_risk", "clv", "change", "renewal"]
FeatureValue = float | int | str | bool | None

MAX_TEXT = 200
"""Longest filter value or account id accepted."""

TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
"""Every text the API takes: no control characters. No id, name or filter value holds
them, and some databases cannot even compare them (PostgreSQL refuses NUL)."""

CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
"""A pagination cursor: unpadded URL-safe base64, as ``next_cursor`` gives it."""

KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
"""An API key's id: 16 lowercase hexadecimal digits (``churnrisk apikey list``)."""

PATTERN_MESSAGES = {
    TEXT_PATTERN: "must not contain control characters",
    CURSOR_PATTERN: "is not a cursor: pass `next_cursor` of the previous page",
    KEY_ID_PATTERN: "is not a key id (16 hexadecimal digits, as `GET /v1/keys` lists them)",
    PERIOD_PATTERN: "is not a month (2026-10) or a quarter (2026Q4)",
}
"""What a value that misses each declared pattern is told, for the 400's ``errors``."""

FILTER_RULE = (
    " A value no account of the current run has gives an empty page, with a note saying so."
)

FilterText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=TEXT_PATTERN)]
"""A filter value: what the at-risk list and the metrics match accounts against."""


class AtRiskParams(BaseModel):
    """The query of the at-risk list (one model: faster to validate than nine parameters)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tier: list[FilterText] = Field(
        default_factory=list,
        description="Only these tiers, matched case-insensitively (repeat for several:"
        " `tier=high&tier=medium`); the tiers are the current run's (`tier_names` of"
        " `/v1/summary`)." + FILTER_RULE,
    )
    segment: FilterText | None = Field(default=None, description="Only this segment." + FILTER_RULE)
    plan: FilterText | None = Field(default=None, description="Only this plan." + FILTER_RULE)
    owner: FilterText | None = Field(default=None, description="Only this owner." + FILTER_RULE)
    min_probability: float | None = Field(
        default=None, ge=0, le=1, allow_inf_nan=False, description="Lowest churn probability."
    )
    min_mrr: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="Lowest MRR."
    )
    renewing_within: int | None = Field(
        default=None,
        ge=0,
        le=3650,
        description="Only accounts renewing within this many days (0 <= `days_to_renewal` <= N).",
    )
    sort: SortKey = Field(
        default="probability",
        description="Sort descending by this; ties by account id; `change`: nulls last;"
        " `renewal`: ascending, soonest renewal first, accounts without one last.",
    )
    include_snoozed: bool = Field(
        default=False,
        description="Also list snoozed accounts (an activity's `snooze_until` after today);"
        " by default they are hidden.",
    )
    contact_days: int = Field(
        default=14,
        ge=1,
        le=365,
        description="`needs_contact` flags highest-tier accounts not contacted in this many days.",
    )
    limit: int = Field(default=50, ge=1, le=500, description="Rows per page.")
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page, as it was given, with the same"
        " `sort`. A cursor this API did not make is refused (400); one made before a"
        " newer run landed answers 409.",
    )


class _Public(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriverPublic(_Public):
    """One feature's push on an account's churn score (a TreeSHAP contribution)."""

    feature: str = Field(description="Registered feature name, e.g. `dau_mau_30d`.")
    meaning: str = Field(description="The feature's one-sentence meaning from the registry.")
    value: FeatureValue = Field(description="The account's value of the feature (null: missing).")
    display: str = Field(description="The value formatted for people.")
    contribution: float = Field(description="Contribution to the log-odds of churn.")
    direction: Literal["raises", "lowers"] = Field(description="Whether it raises or lowers risk.")
    text: str = Field(description="A sentence for people.")


class ChangeDriverPublic(_Public):
    """A feature whose change since the previous run moved the account's score most."""

    feature: str
    meaning: str
    before: FeatureValue = Field(description="Value as of the previous run's as-of date.")
    after: FeatureValue = Field(description="Value as of this run's as-of date.")
    before_display: str
    after_display: str
    contribution_change: float = Field(
        description="Change of its log-odds contribution (> 0: it raised risk)."
    )
    direction: Literal["raised", "lowered"]
    text: str


class RunPublic(_Public):
    """One scoring run: what was scored, when, and with which models."""

    run_id: str
    as_of: date = Field(description="Scores describe the accounts as of this day.")
    scored_at: datetime = Field(description="When the run was written (UTC).")
    churn_version: str = Field(description="Version of the registered `churnrisk-churn` model.")
    clv_version: str = Field(description="Version of the registered `churnrisk-clv` model.")
    model_run_id: str = Field(description="MLflow run that trained the models.")
    accounts: int = Field(description="Accounts scored.")
    tiers: dict[str, float] = Field(
        description="Risk tiers as {name: lowest probability}, riskiest first."
    )
    low_tier: str = Field(description="The tier below every threshold.")
    previous_run_id: str | None = Field(
        description="The run this one's changes are measured against (the newest run of the"
        " latest earlier as-of date), if any."
    )


def _api_type(field: ScoreField) -> Any:
    """Return the Python type of a score field in the API (:data:`churnrisk.scorerow.Kind`)."""
    kinds: dict[str, Any] = {
        "text": str,
        "number": float,
        "whole": int,
        "date": date,
        "drivers": list[DriverPublic],
        "change_drivers": list[ChangeDriverPublic],
    }
    kind = kinds[field.kind]
    return kind | None if field.nullable else kind


def score_fields(answer: Api) -> dict[str, Any]:
    """Return the pydantic fields of the score row that the API answer ``answer`` carries.

    Read from :data:`churnrisk.scorerow.SCORE_FIELDS`: each field's name, its type by
    kind and nullability (required, ``null`` allowed when nullable) and its description.
    """
    return {
        f.name: (_api_type(f), Field(description=f.api_description(answer)))
        for f in api_fields(answer)
    }


AccountRiskPublic = create_model(
    "AccountRiskPublic",
    __base__=_Public,
    __doc__="An account in the at-risk list: its score in the current run.",
    __module__=__name__,
    **score_fields("list"),
)


class AtRiskRowPublic(AccountRiskPublic):  # type: ignore[misc,valid-type]
    """An account in the at-risk list: its score in the current run and its CS contact."""

    last_contact: datetime | None = Field(
        description="When it was last contacted (the latest call, meeting, e-mail or offer"
        " activity); null: never."
    )
    snoozed_until: date | None = Field(
        description="The day its snooze ends, while it is snoozed (null: not snoozed)."
    )
    needs_contact: bool = Field(
        description="In the run's highest tier and not contacted in the last `contact_days` days."
    )


class AtRiskPagePublic(_Public):
    """One page of the at-risk list of the current run."""

    run: RunPublic
    data: list[AtRiskRowPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")
    total: int = Field(description="Accounts matching the filters, over all pages.")
    notes: list[str] = Field(
        description="On an empty page, each filter value no account of the current run has,"
        " with the values there are (else empty)."
    )


class HistoryPointPublic(_Public):
    """An account's score in one run."""

    run_id: str
    as_of: date
    scored_at: datetime
    churn_probability: float
    risk_tier: str
    mrr: float
    mrr_at_risk: float
    lifetime_clv: float


class _ScoredRunPublic(_Public):
    """The run of an account's latest score, as the account detail gives it."""

    previous_as_of: date | None = Field(
        description="As-of date of the run the change is measured against (the latest"
        " earlier date scored; null: no previous run)."
    )
    as_of: date
    scored_at: datetime
    run_id: str
    churn_version: str
    clv_version: str
    current: bool = Field(
        description="Whether the account is in the current run (false: not scored lately)."
    )
    history: list[HistoryPointPublic] = Field(
        description="Its score at every scored as-of date (the date's newest run), oldest first."
    )


AccountDetailPublic = create_model(
    "AccountDetailPublic",
    __base__=_ScoredRunPublic,
    __doc__="An account's latest score, every driver, the change since last run and its history.",
    __module__=__name__,
    **score_fields("detail"),
)


class TierSummaryPublic(_Public):
    """Accounts and MRR at risk of one tier."""

    tier: str
    accounts: int
    mrr_at_risk: float


class SummaryPublic(_Public):
    """Headline figures of the current run and the values the list can be filtered by."""

    run: RunPublic
    accounts: int
    mrr: float
    mrr_at_risk: float
    tiers: list[TierSummaryPublic]
    tier_names: list[str] = Field(description="Every tier, riskiest first.")
    segments: list[str]
    plans: list[str]
    owners: list[str]
    owner: str | None = Field(
        description="Whose book the figures and tiers count (`owner=`); null: every account."
        " The filter values list the whole run either way."
    )


class TierTotalPublic(_Public):
    """One tier of one run: its accounts, their MRR and MRR at risk."""

    tier: str
    accounts: int
    mrr: float
    mrr_at_risk: float


class TrendPointPublic(_Public):
    """The book at one as-of date, from the newest run of that date."""

    as_of: date
    run_id: str
    scored_at: datetime
    churn_version: str
    accounts: int
    mrr: float
    mrr_at_risk: float = Field(description="Sum over accounts of MRR x churn probability.")
    tiers: list[TierTotalPublic] = Field(description="Every tier of the run, riskiest first.")


class TrendPublic(_Public):
    """The book's risk over time: one point per as-of date, oldest first."""

    points: list[TrendPointPublic]


class ModelPublic(_Public):
    """The champion models, what they were trained on and how they backtested."""

    churn_version: str
    clv_version: str
    run_id: str = Field(description="MLflow run that trained them.")
    trained_as_of: list[date] | None = Field(
        description="First and last as-of date of the training panel."
    )
    fingerprint: str = Field(description="Fingerprint of the training data.")
    metrics: dict[str, float] = Field(
        description="Overall backtest metrics, flat (`churn.model.pr_auc` ...)."
    )
    current_run: RunPublic | None = Field(description="The current scoring run, if any.")
    current_run_uses_champion: bool | None = Field(
        description="Whether the current run was scored with this champion (null: no run)."
    )


class ApiKeyPublic(_Public):
    """An API key as listed: never its secret."""

    key_id: str
    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyListPublic(_Public):
    """Every API key, oldest first."""

    data: list[ApiKeyPublic]


class ApiKeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, pattern=TEXT_PATTERN, description="Who or what uses the key."
    )
    scope: Scope = Field(
        default="read",
        description="`read`; `write` also records CS activities; `admin` also manages keys.",
    )


class ApiKeyCreatedPublic(ApiKeyPublic):
    """A key just created, with its text: shown this once only."""

    key: str = Field(description="Send as `Authorization: Bearer <key>`; it is not stored.")


class ProblemItem(_Public):
    """One bad request parameter."""

    parameter: str
    in_: str = Field(alias="in")
    message: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details), sent as `application/problem+json`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`about:blank` or `urn:churnrisk:problem:<kind>`.")
    title: str
    status: int
    detail: str = Field(description="What was wrong and what to do.")
    instance: str | None = Field(description="The request path.")
    errors: list[ProblemItem] | None = Field(
        default=None, description="Each bad parameter (400 only)."
    )


class HealthPublic(_Public):
    """Liveness."""

    status: Literal["ok"]


class ReadyPublic(_Public):
    """Readiness: the store answers at the current schema and the models are loaded."""

    status: Literal["ready"]
    store: str
    models: str
    metrics: str = Field(
        description="`available`, or `unavailable: <why>`: whether /v1/metrics can answer"
        " (no server path is shown here)."
    )
    current_run: RunPublic | None


class StoreStatusPublic(_Public):
    """The score store as the service sees it."""

    url: str | None = Field(
        description="The store's URL, password masked (null: the URL could not be opened)."
    )
    status: str = Field(description="`ok`, or why it is not usable (the words of `/readyz`).")
    error: str | None = Field(description="The whole error, as the server log has it.")


class ModelsStatusPublic(_Public):
    """The champion models as the service loaded them."""

    tracking_uri: str | None = Field(
        description="The tracking store followed, password masked (null: not followed)."
    )
    status: str = Field(description="`loaded`, or why not (the words of `/readyz`).")
    error: str | None = Field(description="The whole error, as the server log has it.")


class MetricsStatusPublic(_Public):
    """Where `/v1/metrics` reads its data."""

    source: str | None = Field(
        description="The data source: `--data`, else the current run's (null: neither)."
    )
    error: str | None = Field(description="Why its last load failed, with its path.")


class StatusPublic(_Public):
    """The service's parts with the details `/readyz` keeps to itself (admin keys only)."""

    store: StoreStatusPublic
    models: ModelsStatusPublic
    metrics: MetricsStatusPublic


MetricsPublic = dict[str, Any]
"""The metrics document (``churnrisk metrics --format json``)."""


NOTE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""An activity's text: no control characters but line breaks and tabs."""


class ActivityCreate(BaseModel):
    """A CS activity on an account: a touch, its outcome, and an optional snooze."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(
        json_schema_extra={"enum": list(KINDS)},
        description="What was done: " + ", ".join(f"`{k}`" for k in KINDS) + ".",
    )
    text: str = Field(
        default="", max_length=TEXT_CHARS, pattern=NOTE_PATTERN, description="What happened."
    )
    author: str | None = Field(
        default=None,
        min_length=1,
        max_length=AUTHOR_CHARS,
        pattern=TEXT_PATTERN,
        description="Who did it (default: none given).",
    )
    occurred_at: datetime | None = Field(
        default=None, description="When it happened (default: now; no time zone: UTC)."
    )
    outcome: str | None = Field(
        default=None,
        json_schema_extra={"enum": [*OUTCOMES, None]},
        description="What came of it: " + ", ".join(f"`{o}`" for o in OUTCOMES) + ".",
    )
    snooze_until: date | None = Field(
        default=None,
        description="Hide the account from the at-risk list until this day (exclusive); the"
        " latest activity with a snooze decides.",
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        return kind

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, outcome: str | None) -> str | None:
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        return outcome


class ActivityPublic(_Public):
    """A recorded CS activity."""

    activity_id: str
    account_id: str
    occurred_at: datetime
    kind: str
    text: str
    author: str | None
    outcome: str | None
    snooze_until: date | None
    source: Literal["api", "import"] = Field(
        description="`api`: recorded here; `import`: from a CRM's history."
    )
    recorded_at: datetime


class ActivityListPublic(_Public):
    """An account's activities, newest first, with its last contact and snooze."""

    account_id: str
    last_contact: datetime | None = Field(
        description="The latest call, meeting, e-mail or offer (notes and tasks do not count)."
    )
    snoozed_until: date | None = Field(description="Hidden from the list until this day.")
    data: list[ActivityPublic]


class PlayPublic(_Public):
    """A play of the playbook that matches the account, and why."""

    name: str
    text: str
    reasons: list[str] = Field(description="One reason per condition of the play.")


class PlayListPublic(_Public):
    """The plays that match an account's latest score, in playbook order."""

    account_id: str
    data: list[PlayPublic]


class SearchHitPublic(_Public):
    """An account of the current run whose id or name matches the search."""

    account_id: str
    name: str | None
    segment: str | None
    owner: str | None
    risk_tier: str
    churn_probability: float
    mrr: float


class SearchPublic(_Public):
    """The current run's accounts matching a search, riskiest first."""

    q: str
    data: list[SearchHitPublic]


class RenewalTierPublic(_Public):
    """Accounts and MRR up for renewal in one risk tier."""

    tier: str
    accounts: int
    mrr: float = Field(description="MRR up for renewal (sum of `renewal_mrr`).")
    arr: float = Field(description="ARR up for renewal: 12 x `mrr`.")


class RenewalTotalPublic(_Public):
    """Accounts and MRR up for renewal over every tier."""

    accounts: int
    mrr: float
    arr: float


class RenewalsPublic(_Public):
    """The current run's renewals of the next days, with what is up for renewal per tier."""

    as_of: date = Field(description="The current run's as-of date; days count from it.")
    days: int = Field(description="The window: renewals with 0 <= `days_to_renewal` <= days.")
    owner: str | None = Field(description="Whose book (`owner=`); null: every account.")
    tiers: list[RenewalTierPublic] = Field(
        description="Every tier of the run, riskiest first (zeros included)."
    )
    total: RenewalTotalPublic
    data: list[AtRiskRowPublic] = Field(
        description="The renewing accounts, soonest first (ties by id), at most 500."
    )
    truncated: bool = Field(description="Whether more accounts renew than `data` lists.")


# --------------------------------------------------------------------------- review


class TierOutcomePublic(_Public):
    """What became of the accounts one tier held, over every graded run."""

    tier: str
    accounts: int = Field(description="Scored rows in the tier (an account once per run).")
    churned: int
    rate: float | None = Field(description="Realised churn rate (null: an empty tier).")


class RunOutcomePublic(_Public):
    """One graded run: how its top `k` fared."""

    as_of: date
    accounts: int
    churned: int
    precision_at_k: float
    recall_at_k: float | None = Field(description="Null when nobody churned after the run.")
    mrr_caught: float | None = Field(
        description="Share of the churned MRR the top `k` carried (null: no MRR churned)."
    )


class ReliabilityBinPublic(_Public):
    """One bin of the reliability curve of the past probabilities."""

    lower: float
    upper: float
    rows: int
    predicted: float = Field(description="Mean probability of the bin's rows.")
    observed: float = Field(description="Share of the bin's rows that churned.")


class LeadTimePublic(_Public):
    """How early the high tier named the accounts that churned."""

    churns: int
    flagged: int = Field(description="Churns put in the high tier by a run before them.")
    median_days: float | None = Field(description="Median days from that first flag to churn.")


class DriftPublic(_Public):
    """A feature's population stability index between training and the latest run."""

    feature: str
    psi: float
    drifted: bool = Field(description="Whether the PSI is above `drift_threshold`.")


class ScorecardPublic(_Public):
    """How right the kept runs were, and how far the features drifted since training."""

    as_of: date = Field(description="The latest run's as-of date (where drift is measured).")
    k: int = Field(description="Size of the list each run is graded on.")
    graded_runs: int
    open_runs: int = Field(description="Runs whose label window has not closed: not graded.")
    tiers: list[TierOutcomePublic]
    runs: list[RunOutcomePublic]
    reliability: list[ReliabilityBinPublic]
    lead: LeadTimePublic
    drift: list[DriftPublic] | None = Field(
        description="Null without a champion that kept its training distribution."
    )
    drift_threshold: float
    warnings: list[str] = Field(description="One sentence per drifted feature.")


class UsageMonthPublic(_Public):
    """One calendar month of an account's usage."""

    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", description="`YYYY-MM`.")
    events: int
    active_users: int = Field(description="Distinct users behind the month's events.")
    tickets: int = Field(description="Support tickets opened in the month.")
    nps: float | None = Field(description="Mean NPS answer of the month (null: none).")
    partial: bool = Field(description="Month-to-date: cut short by the as-of date.")


class UsagePublic(_Public):
    """An account's usage per calendar month before the current run's as-of date."""

    account_id: str
    as_of: date
    months: list[UsageMonthPublic]


class WinBackRowPublic(_Public):
    """An account that churned lately, with its value and what its last score said."""

    account_id: str
    name: str | None
    segment: str | None
    owner: str | None
    churn_day: date
    days_since_churn: int
    mrr: float = Field(description="The MRR it paid on the day before it churned.")
    events_after_end: int
    active_days_after_end: int
    users_after_end: int
    last_used: date | None
    used_after_end: bool = Field(description="Whether it used the product after its churn.")
    still_using: bool = Field(description="Whether it used the product in the last 14 days.")
    last_probability: float | None = Field(description="Its last score before it churned.")
    lifetime_clv: float | None
    last_drivers: list[str] = Field(description="What raised that last score.")


class WinBackPublic(_Public):
    """The accounts that churned in the `days` before the current run's as-of date."""

    as_of: date
    days: int
    data: list[WinBackRowPublic]
