"""The feature registry: every feature declared once.

Training, scoring, the API, the explanations and ``churnrisk features list`` all read
these declarations; the engine (:mod:`churnrisk.features.engine`) computes exactly these
features, in this order. Every window is half-open and ends just before the as-of date:
a feature with ``window_days = w`` at as-of date ``a`` sees data in ``[a - w days, a)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from churnrisk.errors import UnknownFeatureError

Family = Literal["usage", "engagement", "tickets", "nps", "billing", "account"]
Dtype = Literal["float", "int", "category"]

FAMILIES: tuple[Family, ...] = ("usage", "engagement", "tickets", "nps", "billing", "account")
"""The feature families, in display order."""


@dataclass(frozen=True)
class Feature:
    """One declared feature.

    Attributes
    ----------
    name
        Column name in the feature frame.
    family
        The group it belongs to (usage, engagement, tickets, nps, billing, account).
    window_days
        Length of its look-back window ``[as_of - window_days, as_of)`` in days, or
        ``None`` when it is a state on the day before the as-of date, an open-ended
        look-back, or a static attribute.
    meaning
        One sentence that explanations and listings show, e.g. "DAU/MAU, last 30 days".
    dtype
        ``"float"``, ``"int"`` (whole numbers; held as float64 so that NULL is NaN) or
        ``"category"``.
    table
        The contract table it needs: when that optional table is absent from the data
        set, the feature is NULL (never 0).
    actionable
        Whether customer success can act on what it measures (usage, engagement,
        tickets, NPS, billing changes), as opposed to context: who the account is and
        where it stands in its contract (size, plan, tenure, segment, renewal timing).
        Drivers of a score are ranked among the actionable features apart from context.
    """

    name: str
    family: Family
    window_days: int | None
    meaning: str
    dtype: Dtype
    table: str
    actionable: bool = True


CONTEXT: frozenset[str] = frozenset(
    {
        "mrr",
        "tenure_days",
        "plan",
        "seats",
        "days_to_renewal",
        "segment",
        "industry",
        "region",
    }
)
"""Features that describe the account or its contract rather than its behaviour."""


def _f(
    name: str, family: Family, window: int | None, dtype: Dtype, table: str, meaning: str
) -> Feature:
    return Feature(name, family, window, meaning, dtype, table, actionable=name not in CONTEXT)


FEATURES: tuple[Feature, ...] = (
    # usage ------------------------------------------------------------------------------
    _f("events_7d", "usage", 7, "int", "events", "Product events, last 7 days"),
    _f("events_30d", "usage", 30, "int", "events", "Product events, last 30 days"),
    _f("events_90d", "usage", 90, "int", "events", "Product events, last 90 days"),
    _f(
        "usage_trend_30d",
        "usage",
        60,
        "float",
        "events",
        "Relative change in events, last 30 days vs the 30 days before",
    ),
    _f(
        "days_since_last_event",
        "usage",
        365,
        "int",
        "events",
        "Days since the last product event (within the last 365 days)",
    ),
    _f("event_types_30d", "usage", 30, "int", "events", "Distinct event types, last 30 days"),
    # engagement ---------------------------------------------------------------------------
    _f("dau_30d", "engagement", 30, "float", "events", "Mean daily active users, last 30 days"),
    _f("mau_30d", "engagement", 30, "int", "events", "Distinct active users, last 30 days"),
    _f("dau_mau_30d", "engagement", 30, "float", "events", "DAU/MAU, last 30 days"),
    _f(
        "active_users_per_seat",
        "engagement",
        30,
        "float",
        "events",
        "Active users in the last 30 days per paid seat",
    ),
    _f("active_days_30d", "engagement", 30, "int", "events", "Days with any usage, last 30 days"),
    _f(
        "mau_change_30d",
        "engagement",
        60,
        "float",
        "events",
        "Relative change in active users, last 30 days vs the 30 days before",
    ),
    # tickets ------------------------------------------------------------------------------
    _f("tickets_open", "tickets", None, "int", "tickets", "Support tickets still open"),
    _f("tickets_30d", "tickets", 30, "int", "tickets", "Support tickets opened, last 30 days"),
    _f("tickets_90d", "tickets", 90, "int", "tickets", "Support tickets opened, last 90 days"),
    _f(
        "median_resolution_hours_90d",
        "tickets",
        90,
        "float",
        "tickets",
        "Median hours to resolve tickets opened in the last 90 days",
    ),
    _f(
        "fcr_rate_90d",
        "tickets",
        90,
        "float",
        "tickets",
        "Share of resolved tickets solved at first contact, last 90 days",
    ),
    _f(
        "low_csat_90d",
        "tickets",
        90,
        "int",
        "tickets",
        "Tickets rated 1-2 for satisfaction, resolved in the last 90 days",
    ),
    _f("urgent_open", "tickets", None, "int", "tickets", "Urgent support tickets still open"),
    # nps ----------------------------------------------------------------------------------
    _f("nps_last_score", "nps", None, "int", "nps", "Latest NPS score (0-10)"),
    _f("nps_mean_365d", "nps", 365, "float", "nps", "Mean NPS score, last 365 days"),
    _f("nps_detractor", "nps", None, "int", "nps", "Latest NPS answer is a detractor (0-6)"),
    _f("days_since_nps", "nps", None, "int", "nps", "Days since the latest NPS answer"),
    _f("nps_responses_365d", "nps", 365, "int", "nps", "NPS answers, last 365 days"),
    # billing ------------------------------------------------------------------------------
    _f("mrr", "billing", None, "float", "subscriptions", "Monthly recurring revenue"),
    _f(
        "mrr_change_90d",
        "billing",
        90,
        "float",
        "subscriptions",
        "Change in monthly recurring revenue over the last 90 days",
    ),
    _f("tenure_days", "billing", None, "int", "accounts", "Days since the account was created"),
    _f("plan", "billing", None, "category", "subscriptions", "Subscription plan"),
    _f("seats", "billing", None, "int", "subscriptions", "Paid seats"),
    _f(
        "contractions_365d",
        "billing",
        365,
        "int",
        "subscriptions",
        "MRR contractions (decreases that stay above zero), last 365 days",
    ),
    _f(
        "expansions_365d",
        "billing",
        365,
        "int",
        "subscriptions",
        "MRR expansions (increases from a paying state), last 365 days",
    ),
    _f(
        "days_to_renewal",
        "billing",
        None,
        "int",
        "subscriptions",
        "Days until the nearest subscription term ends (term_end)",
    ),
    _f("orders_amount_90d", "billing", 90, "float", "orders", "One-off order amount, last 90 days"),
    # account ------------------------------------------------------------------------------
    _f("segment", "account", None, "category", "accounts", "Customer segment"),
    _f("industry", "account", None, "category", "accounts", "Industry"),
    _f("region", "account", None, "category", "accounts", "Region"),
)

_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}


def feature_names() -> list[str]:
    """Return the registered feature names in registry (and output column) order."""
    return [f.name for f in FEATURES]


def get_feature(name: str) -> Feature:
    """Return the declaration of feature ``name``.

    Raises
    ------
    UnknownFeatureError
        When no feature of that name is registered.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownFeatureError(
            f"unknown feature {name!r}; `churnrisk features list` shows the registered ones"
        ) from None
