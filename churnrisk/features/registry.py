"""The feature registry: every feature declared once.

Training, scoring, the API, the explanations and ``churnrisk features list`` all read
these declarations; the engine (:mod:`churnrisk.features.engine`) computes exactly these
features, in this order. Every window is half-open and ends just before the as-of date:
a feature with ``window_days = w`` at as-of date ``a`` sees data in ``[a - w days, a)``.

A windowed feature also declares its :class:`Aggregation` (which roll-up of which table
it reads, what it does with it); the engine builds its expression from that declaration
and its ``window_days``, so the window shown is the window computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from churnrisk.errors import ConfigError, UnknownFeatureError

Family = Literal["usage", "engagement", "tickets", "nps", "billing", "account"]
Dtype = Literal["float", "int", "category"]
How = Literal[
    "sum",
    "count",
    "nunique",
    "mean",
    "median",
    "days_since",
    "share",
    "per_day",
    "trend",
    "trend_nunique",
    "change",
    "ratio",
]

FAMILIES: tuple[Family, ...] = ("usage", "engagement", "tickets", "nps", "billing", "account")
"""The feature families, in display order."""


@dataclass(frozen=True)
class Aggregation:
    """How a windowed feature is computed over its window ``[a - w, a)``.

    Attributes
    ----------
    source
        The roll-up it reads (the engine defines each one):

        * ``"events"``: events per (account, UTC day): ``n`` events, ``value`` summed;
          time column ``day``.
        * ``"event_users"``: events per (account, ``user_id``, day).
        * ``"event_types"``: events per (account, ``event_type``, day), typed events
          only: ``n``.
        * ``"tickets"``: tickets on ``created_at`` (``hours`` to resolution;
          ``priority`` lower-cased).
        * ``"tickets_resolved"``: tickets on ``resolved_at``.
        * ``"nps"``: answers on ``responded_at``.
        * ``"subscriptions"``: MRR on a day (rows signed before ``a`` covering it).
        * ``"mrr_moves"``: the days MRR moved (:func:`~churnrisk.features.engine.mrr_moves`).
        * ``"orders"``: orders on ``ordered_at``.
        * ``"features"``: other features of the same row (``how="ratio"`` only).
    how
        ``"sum"`` of ``measure``; ``"count"`` of rows; ``"nunique"`` distinct values of
        ``measure``; ``"mean"``, ``"median"`` of ``measure`` (NULL on no rows);
        ``"days_since"`` whole days from the latest ``measure`` day to ``a``;
        ``"share"`` of the rows that satisfy ``where`` also satisfying predicate
        ``measure``; ``"per_day"`` rows divided by the window length; ``"trend"`` the
        relative change of the sum of ``measure`` (of the row count when ``None``) in
        the last half of the window against the first half; ``"trend_nunique"`` the
        same for distinct values of ``measure``; ``"change"`` ``measure`` on ``a - 1``
        minus on ``a - w - 1``; ``"ratio"`` feature ``of[0]`` over feature ``of[1]``
        (NULL when the divisor is 0 or NULL; the window is that of its inputs).
        Counts and sums are 0 over a present table with nothing in the window.
    measure
        A column of the roll-up (or a named predicate for ``"share"``).
    where
        A predicate the engine names for the source (e.g. ``"resolved"``,
        ``"expansion"``), or ``None``.
    match
        ``(column, value)``: only rows whose ``column`` equals ``value`` (a vocabulary
        feature such as one event type), or ``None``.
    of
        The two features of a ``"ratio"``.
    """

    source: str
    how: How
    measure: str | None = None
    where: str | None = None
    match: tuple[str, str] | None = None
    of: tuple[str, str] | None = None


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
    agg
        How the engine computes it over its window; ``None`` for states and attributes
        (which the engine computes from their own definitions).
    """

    name: str
    family: Family
    window_days: int | None
    meaning: str
    dtype: Dtype
    table: str
    actionable: bool = True
    agg: Aggregation | None = None


CONTEXT: frozenset[str] = frozenset(
    {
        "mrr",
        "tenure_days",
        "plan",
        "seats",
        "days_to_renewal",
        "term_length_days",
        "discount",
        "segment",
        "industry",
        "region",
    }
)
"""Features that describe the account or its contract rather than its behaviour."""


def _f(
    name: str,
    family: Family,
    window: int | None,
    dtype: Dtype,
    table: str,
    meaning: str,
    agg: Aggregation | None = None,
) -> Feature:
    return Feature(
        name, family, window, meaning, dtype, table, actionable=name not in CONTEXT, agg=agg
    )


_A = Aggregation


FEATURES: tuple[Feature, ...] = (
    # usage ------------------------------------------------------------------------------
    _f(
        "events_7d",
        "usage",
        7,
        "int",
        "events",
        "Product events, last 7 days",
        agg=_A("events", "sum", "n"),
    ),
    _f(
        "events_30d",
        "usage",
        30,
        "int",
        "events",
        "Product events, last 30 days",
        agg=_A("events", "sum", "n"),
    ),
    _f(
        "events_90d",
        "usage",
        90,
        "int",
        "events",
        "Product events, last 90 days",
        agg=_A("events", "sum", "n"),
    ),
    _f(
        "usage_trend_30d",
        "usage",
        60,
        "float",
        "events",
        "Relative change in events, last 30 days vs the 30 days before",
        agg=_A("events", "trend", "n"),
    ),
    _f(
        "days_since_last_event",
        "usage",
        365,
        "int",
        "events",
        "Days since the last product event (within the last 365 days)",
        agg=_A("events", "days_since", "day"),
    ),
    _f(
        "event_types_30d",
        "usage",
        30,
        "int",
        "events",
        "Distinct event types, last 30 days",
        agg=_A("event_types", "nunique", "event_type"),
    ),
    _f(
        "event_value_30d",
        "usage",
        30,
        "float",
        "events",
        "Sum of event values (the events' value column), last 30 days",
        agg=_A("events", "sum", "value"),
    ),
    _f(
        "event_value_90d",
        "usage",
        90,
        "float",
        "events",
        "Sum of event values (the events' value column), last 90 days",
        agg=_A("events", "sum", "value"),
    ),
    # engagement ---------------------------------------------------------------------------
    _f(
        "dau_30d",
        "engagement",
        30,
        "float",
        "events",
        "Mean daily active users, last 30 days",
        agg=_A("event_users", "per_day"),
    ),
    _f(
        "mau_30d",
        "engagement",
        30,
        "int",
        "events",
        "Distinct active users, last 30 days",
        agg=_A("event_users", "nunique", "user_id"),
    ),
    _f(
        "dau_mau_30d",
        "engagement",
        30,
        "float",
        "events",
        "DAU/MAU, last 30 days",
        agg=_A("features", "ratio", of=("dau_30d", "mau_30d")),
    ),
    _f(
        "active_users_per_seat",
        "engagement",
        30,
        "float",
        "events",
        "Active users in the last 30 days per paid seat",
        agg=_A("features", "ratio", of=("mau_30d", "seats")),
    ),
    _f(
        "active_days_30d",
        "engagement",
        30,
        "int",
        "events",
        "Days with any usage, last 30 days",
        agg=_A("events", "count"),
    ),
    _f(
        "mau_change_30d",
        "engagement",
        60,
        "float",
        "events",
        "Relative change in active users, last 30 days vs the 30 days before",
        agg=_A("event_users", "trend_nunique", "user_id"),
    ),
    # tickets ------------------------------------------------------------------------------
    _f("tickets_open", "tickets", None, "int", "tickets", "Support tickets still open"),
    _f(
        "tickets_30d",
        "tickets",
        30,
        "int",
        "tickets",
        "Support tickets opened, last 30 days",
        agg=_A("tickets", "count"),
    ),
    _f(
        "tickets_90d",
        "tickets",
        90,
        "int",
        "tickets",
        "Support tickets opened, last 90 days",
        agg=_A("tickets", "count"),
    ),
    _f(
        "median_resolution_hours_90d",
        "tickets",
        90,
        "float",
        "tickets",
        "Median hours to resolve tickets opened in the last 90 days",
        agg=_A("tickets", "median", "hours", where="resolved"),
    ),
    _f(
        "fcr_rate_90d",
        "tickets",
        90,
        "float",
        "tickets",
        "Share of resolved tickets solved at first contact, last 90 days",
        agg=_A("tickets", "share", "first_contact", where="resolved_with_contacts"),
    ),
    _f(
        "low_csat_90d",
        "tickets",
        90,
        "int",
        "tickets",
        "Tickets rated 1-2 for satisfaction, resolved in the last 90 days",
        agg=_A("tickets_resolved", "count", where="low_csat"),
    ),
    _f("urgent_open", "tickets", None, "int", "tickets", "Urgent support tickets still open"),
    # nps ----------------------------------------------------------------------------------
    _f("nps_last_score", "nps", None, "int", "nps", "Latest NPS score (0-10)"),
    _f(
        "nps_mean_365d",
        "nps",
        365,
        "float",
        "nps",
        "Mean NPS score, last 365 days",
        agg=_A("nps", "mean", "score"),
    ),
    _f("nps_detractor", "nps", None, "int", "nps", "Latest NPS answer is a detractor (0-6)"),
    _f("days_since_nps", "nps", None, "int", "nps", "Days since the latest NPS answer"),
    _f(
        "nps_responses_365d",
        "nps",
        365,
        "int",
        "nps",
        "NPS answers, last 365 days",
        agg=_A("nps", "count"),
    ),
    # billing ------------------------------------------------------------------------------
    _f("mrr", "billing", None, "float", "subscriptions", "Monthly recurring revenue"),
    _f(
        "mrr_change_90d",
        "billing",
        90,
        "float",
        "subscriptions",
        "Change in monthly recurring revenue over the last 90 days",
        agg=_A("subscriptions", "change", "mrr"),
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
        agg=_A("mrr_moves", "count", where="contraction"),
    ),
    _f(
        "expansions_365d",
        "billing",
        365,
        "int",
        "subscriptions",
        "MRR expansions (increases from a paying state), last 365 days",
        agg=_A("mrr_moves", "count", where="expansion"),
    ),
    _f(
        "days_to_renewal",
        "billing",
        None,
        "int",
        "subscriptions",
        "Days until the nearest subscription term ends (term_end)",
    ),
    _f(
        "term_length_days",
        "billing",
        None,
        "int",
        "subscriptions",
        "Length in days of the current subscription term (term_end - start_date, the longest"
        " among running rows; empty without term_end)",
    ),
    _f(
        "discount",
        "billing",
        None,
        "float",
        "subscriptions",
        "Discount off the list price (0-1), the largest among running rows",
    ),
    _f(
        "seats_change_90d",
        "billing",
        90,
        "int",
        "subscriptions",
        "Change in paid seats over the last 90 days",
        agg=_A("subscriptions", "change", "seats"),
    ),
    _f(
        "upgrades_90d",
        "billing",
        90,
        "int",
        "subscriptions",
        "MRR expansions (upgrades, added seats or add-ons), last 90 days",
        agg=_A("mrr_moves", "count", where="expansion"),
    ),
    _f(
        "downgrades_90d",
        "billing",
        90,
        "int",
        "subscriptions",
        "MRR contractions (downgrades that keep paying), last 90 days",
        agg=_A("mrr_moves", "count", where="contraction"),
    ),
    _f(
        "plan_changes_90d",
        "billing",
        90,
        "int",
        "subscriptions",
        "Days in the last 90 on which the running plans changed",
        agg=_A("mrr_moves", "count", where="plan_change"),
    ),
    _f(
        "orders_amount_90d",
        "billing",
        90,
        "float",
        "orders",
        "One-off order amount, last 90 days",
        agg=_A("orders", "sum", "amount"),
    ),
    # account ------------------------------------------------------------------------------
    _f("segment", "account", None, "category", "accounts", "Customer segment"),
    _f("industry", "account", None, "category", "accounts", "Industry"),
    _f("region", "account", None, "category", "accounts", "Region"),
)

_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
_DECLARED: dict[str, Feature] = {}
"""Features declared at run time from a data set's vocabulary (:func:`declare`)."""


def declare(features: tuple[Feature, ...] | list[Feature]) -> None:
    """Make run-time declarations (vocabulary features) known to :func:`get_feature`.

    :mod:`churnrisk.features.vocabulary` declares the features of a vocabulary when it
    builds them, so that explanations and listings word them like registered ones. A
    name is declared once: the same name always means the same declaration, since
    vocabulary names are derived from the values they count.

    Raises
    ------
    ConfigError
        When a name is a registered feature's, or was declared with another meaning.
    """
    for f in features:
        if f.name in _BY_NAME:
            raise ConfigError(f"vocabulary feature {f.name!r} collides with a registered one")
        known = _DECLARED.setdefault(f.name, f)
        if known != f:
            raise ConfigError(f"feature {f.name!r} is declared twice with different meanings")


def feature_names() -> list[str]:
    """Return the registered feature names in registry (and output column) order."""
    return [f.name for f in FEATURES]


def get_feature(name: str) -> Feature:
    """Return the declaration of feature ``name`` (registered, or declared by a vocabulary).

    Raises
    ------
    UnknownFeatureError
        When no feature of that name is registered.
    """
    try:
        return _BY_NAME[name] if name in _BY_NAME else _DECLARED[name]
    except KeyError:
        raise UnknownFeatureError(
            f"unknown feature {name!r}; `churnrisk features list` shows the registered ones"
        ) from None


def check_declarations(features: tuple[Feature, ...] | list[Feature]) -> None:
    """Check that every windowed declaration is complete and consistent.

    A feature with an aggregation has a window (even, for a trend, which compares its
    two halves); a ratio has the window of the inputs it divides, and they exist.

    Raises
    ------
    ConfigError
        Naming the first declaration that is not.
    """
    by_name = {f.name: f for f in features}
    for f in features:
        a = f.agg
        if a is None:
            continue
        if f.window_days is None or f.window_days <= 0:
            raise ConfigError(f"feature {f.name!r} declares an aggregation but no window")
        needs = ("sum", "mean", "median", "days_since", "nunique", "share", "trend_nunique")
        if a.measure is None and a.how in (*needs, "change"):
            raise ConfigError(f"feature {f.name!r} ({a.how}) declares no measure")
        if a.how in ("trend", "trend_nunique") and f.window_days % 2:
            raise ConfigError(f"feature {f.name!r} is a trend over an odd window")
        if a.how == "ratio":
            inputs = [by_name.get(n) for n in a.of or ()]
            if len(inputs) != 2 or any(i is None for i in inputs):
                raise ConfigError(f"ratio feature {f.name!r} needs two declared inputs")
            windows = {i.window_days for i in inputs if i is not None and i.window_days}
            if windows != {f.window_days}:
                raise ConfigError(
                    f"ratio feature {f.name!r} declares {f.window_days} days but its inputs"
                    f" are windowed {sorted(windows)}"
                )


check_declarations(FEATURES)
