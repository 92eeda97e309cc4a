"""The standard SaaS health metrics of a period (DESIGN section 6).

Every metric is computed set-based from a validated :class:`~churnrisk.dataset.Dataset`
with Ibis expressions (one aggregate query per family), so the same definitions run on
DuckDB by default and on Spark unchanged; only the final ratios of a handful of scalars
are taken in Python.

Conventions, so every number is checkable:

- A period is the half-open day range ``[p0, p1)``: a calendar month (``2026-10``) or a
  quarter (``2026Q4``).
- A subscription row covers the days ``start_date <= d < end_date`` (``end_date`` null:
  ongoing). An account's MRR on day ``d`` is the sum of ``mrr`` over the rows covering
  ``d``; the account is active on ``d`` when that MRR is > 0.
- The start state is day ``p0 - 1``, the end state is day ``p1 - 1``. A subscription
  starting on ``p0`` is new business of the period; one whose ``end_date`` is ``p1``
  churns in the next period (its last paid day is ``p1 - 1``).
- Timestamps (events, tickets, NPS answers, orders, account creation) are UTC and fall
  in the period when ``p0 00:00 <= t < p1 00:00``; cost rows when ``p0 <= month < p1``.
- The churn grace period of DESIGN section 1 (used for labels) does not apply here: the
  metrics compare two snapshots, as section 6 prescribes.
- Rates are percentages. A metric whose inputs are missing (absent optional table, no
  rows in the period, zero denominator) is ``None`` and ``notes`` says why; it is never
  replaced by 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import ibis

from churnrisk.dataset import Dataset, observation_end
from churnrisk.errors import ConfigError, DataError


class Unit(StrEnum):
    """What a metric's number measures, in the words every surface shows beside it.

    Money is currency-neutral: the contract's amounts (``mrr``, ``amount``,
    ``acquisition_cost``) carry no currency, so the figures are in the data's own.
    """

    ACCOUNTS = "accounts"
    PERCENT = "percent"
    MONEY_PER_MONTH = "money per month"
    MONEY = "money"
    RATIO = "ratio"
    SCORE = "score"
    ORDERS_PER_ACCOUNT = "orders per account"
    DAYS = "days"

    @property
    def decimals(self) -> int:
        """Decimal places a figure in this unit is shown with (a DAU/MAU ratio needs 3)."""
        return {Unit.ACCOUNTS: 0, Unit.RATIO: 3}.get(self, 2)


_U = Unit
METRIC_UNITS: dict[str, Unit] = {
    "customers_start": _U.ACCOUNTS,
    "customers_end": _U.ACCOUNTS,
    "customers_new": _U.ACCOUNTS,
    "customers_reactivated": _U.ACCOUNTS,
    "customers_churned": _U.ACCOUNTS,
    "churn_rate": _U.PERCENT,
    "retention_rate": _U.PERCENT,
    "cohort_retention_rate": _U.PERCENT,
    "mrr_start": _U.MONEY_PER_MONTH,
    "mrr_end": _U.MONEY_PER_MONTH,
    "mrr_new": _U.MONEY_PER_MONTH,
    "mrr_expansion": _U.MONEY_PER_MONTH,
    "mrr_contraction": _U.MONEY_PER_MONTH,
    "mrr_churned": _U.MONEY_PER_MONTH,
    "mrr_reactivation": _U.MONEY_PER_MONTH,
    "nrr": _U.PERCENT,
    "grr": _U.PERCENT,
    "net_mrr_churn_rate": _U.PERCENT,
    "gross_mrr_churn_rate": _U.PERCENT,
    "quick_ratio": _U.RATIO,
    "arpa": _U.MONEY_PER_MONTH,
    "nps": _U.SCORE,
    "promoters_pct": _U.PERCENT,
    "detractors_pct": _U.PERCENT,
    "dau_mau": _U.RATIO,
    "fcr_rate": _U.PERCENT,
    "repeat_customer_rate": _U.PERCENT,
    "purchase_frequency": _U.ORDERS_PER_ACCOUNT,
    "avg_order_value": _U.MONEY,
    "clv": _U.MONEY,
    "ltv_cac": _U.RATIO,
    "customer_retention_cost": _U.MONEY,
    "time_to_first_value_days": _U.DAYS,
    "cs_roi": _U.MONEY,
}
"""Every metric of DESIGN section 6, in the order of its table, with its unit.

Per account, per order and per month are in the unit where the name does not say them:
``arpa`` is MRR per account (money per month); ``clv``, ``customer_retention_cost``
(per account over the period) and ``avg_order_value`` (per order) are money; ``nps``
is a score from -100 to 100; ``dau_mau`` a ratio from 0 to 1.
"""

METRIC_KEYS: tuple[str, ...] = tuple(METRIC_UNITS)
"""The metric keys of DESIGN section 6, in the order of its table."""

PERIOD_PATTERN = r"^([0-9]{4})-(0[1-9]|1[0-2])$|^([0-9]{4})[Qq]([1-4])$"
"""A period as written: a month ``YYYY-MM`` (01-12) or a quarter ``YYYYQn`` (n 1-4)."""

_PERIOD_RE = re.compile(PERIOD_PATTERN)
_DAYS_PER_MONTH = 365.2425 / 12

Notes = dict[str, str]


@dataclass(frozen=True)
class Period:
    """A reporting period, the half-open day range ``[start, end)``.

    Attributes
    ----------
    start
        First day of the period (``p0``).
    end
        First day after the period (``p1``, exclusive).
    label
        How the period is written: ``"2026-10"`` for a month, ``"2026Q4"`` for a quarter.
    """

    start: date
    end: date
    label: str

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ConfigError(
                f"period {self.label!r} is empty: end {self.end} is not after start {self.start}"
            )

    @property
    def days(self) -> int:
        """Number of days in the period."""
        return (self.end - self.start).days

    @property
    def months(self) -> float:
        """Length of the period in months.

        Whole calendar months when both bounds are first days of a month (1 for a month,
        3 for a quarter), otherwise ``days / 30.436875`` (the mean Gregorian month).
        """
        if self.start.day == 1 and self.end.day == 1:
            return float((self.end.year - self.start.year) * 12 + self.end.month - self.start.month)
        return self.days / _DAYS_PER_MONTH


def _month_start(year: int, month: int) -> date:
    """First day of month ``month`` (which may run past 12) of ``year``."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, 1)


def parse_period(text: str) -> Period:
    """Parse a period written as a month (``2026-10``) or a quarter (``2026Q4``).

    Parameters
    ----------
    text
        ``YYYY-MM`` with a two-digit month 01-12, or ``YYYYQn`` / ``YYYYqn`` with n 1-4.
        Surrounding whitespace is ignored.

    Returns
    -------
    Period
        ``[first day, first day after)`` with label ``YYYY-MM`` or ``YYYYQn``.

    Raises
    ------
    ConfigError
        When ``text`` is neither form.

    Examples
    --------
    >>> parse_period("2026q4")
    Period(start=datetime.date(2026, 10, 1), end=datetime.date(2027, 1, 1), label='2026Q4')
    """
    found = _PERIOD_RE.match(text.strip())
    if found is None:
        raise ConfigError(
            f"invalid period {text!r}: write a month as YYYY-MM (2026-10) or a quarter as"
            " YYYYQn (2026Q4)"
        )
    month_year, month, quarter_year, quarter = found.groups()
    if month is not None:
        year, first, months, label = int(month_year), int(month), 1, f"{month_year}-{month}"
    else:
        year, first, months = int(quarter_year), 3 * int(quarter) - 2, 3
        label = f"{quarter_year}Q{quarter}"
    try:
        return Period(_month_start(year, first), _month_start(year, first + months), label)
    except ValueError:  # year 0000, or a period ending after 9999
        raise ConfigError(
            f"period {text!r} is out of range: periods run from 0001-01 to 9999-11 (9999Q3)"
        ) from None


def last_complete_month(ds: Dataset) -> Period:
    """Return the last calendar month that the data covers whole.

    The data covers days up to :func:`~churnrisk.dataset.observation_end` (exclusive):
    the day after the latest date observed in ``events.timestamp``,
    ``subscriptions.start_date``, ``tickets.created_at``, ``nps.responded_at``,
    ``orders.ordered_at`` and ``accounts.created_at``. A month ``[p0, p1)`` is whole when
    ``p1 <= `` that end, so data observed on ``2026-10-31`` (at any time of day) gives
    ``2026-10`` and data observed up to ``2026-10-30`` gives ``2026-09``. The feature
    builder's labels use the same end of observation.

    Parameters
    ----------
    ds
        The validated data set.

    Returns
    -------
    Period
        A one-month period.

    Raises
    ------
    DataError
        When the data set holds no date at all.
    """
    end = observation_end(ds)
    previous = _month_start(end.year, end.month - 1)
    return Period(previous, date(end.year, end.month, 1), f"{previous.year}-{previous.month:02d}")


class PeriodNotCoveredError(DataError):
    """A reporting period the data does not cover, so its figures would not be true."""


def covered_span(ds: Dataset) -> tuple[date, date]:
    """Return the days the data covers, ``[first, end)``, as periods are judged against.

    ``first`` is the earliest subscription start (MRR states come from subscriptions);
    ``end`` is :func:`~churnrisk.dataset.observation_end`, the day after the latest date
    observed anywhere.

    Raises
    ------
    DataError
        When no subscription has a start date or the data holds no date at all.
    """
    subs = ds.table("subscriptions")
    first = ds.backend.execute(subs.aggregate(first=subs.start_date.min()))["first"].iloc[0]
    if first is None or first != first:
        raise DataError(f"{ds.source}: no subscription row, so no period can be measured")
    first = first.date() if hasattr(first, "date") else first
    return first, observation_end(ds)


def check_coverage(period: Period, span: tuple[date, date]) -> str | None:
    """Refuse a period the data does not cover; return a note when it covers it in part.

    A period must end by the end of observation: a day after the data ends is not a
    day without revenue but a day nobody saw, and the end state (the period's last
    day) would count every subscription not yet renewed in the export as churned. A
    period that ends before the first subscription starts has no figure to show. A
    period whose start state (the day before it) precedes the first subscription (the
    company's first month, or an export that begins mid-history) is measured, with a
    note: that start state holds no account, so accounts already paying would count as
    new.

    Parameters
    ----------
    period
        The period ``[p0, p1)``.
    span
        ``[first, end)`` of :func:`covered_span`.

    Returns
    -------
    str or None
        The note of a period that begins before the data, else None.

    Raises
    ------
    PeriodNotCoveredError
        When the period ends after the last day observed, or before the data begins.
    """
    first, end = span
    last = end - timedelta(days=1)
    latest = _month_start(end.year, end.month - 1)
    whole = f"{latest.year}-{latest.month:02d}"
    if period.end > end:
        reason = (
            "starts after the data ends"
            if period.start >= end
            else f"runs to {period.end - timedelta(days=1)}, after the data ends"
        )
        raise PeriodNotCoveredError(
            f"period {period.label} {reason}: the last day observed is {last}, and days"
            f" nobody observed would count as churn; ask for {whole} or an earlier period"
        )
    if period.end <= first:
        raise PeriodNotCoveredError(
            f"period {period.label} ends before the data begins: the first subscription"
            f" starts on {first}; ask for a period from {first:%Y-%m} to {whole}"
        )
    if period.start <= first:
        return (
            f"the data begins on {first}, so the period's start state"
            f" ({period.start - timedelta(days=1)}) holds no account: accounts paying"
            " before the data begins would count as new"
        )
    return None


def period_metrics(
    ds: Dataset, period: str | None = None, *, segment: str | None = None
) -> dict[str, object]:
    """Return the metrics of a period the data covers: what the CLI and the API answer.

    Parameters
    ----------
    ds
        The validated data set.
    period
        A month (``2026-10``) or a quarter (``2026Q4``); None for
        :func:`last_complete_month`.
    segment
        Restrict to the accounts of this segment (see :func:`compute_metrics`).

    Returns
    -------
    dict
        :func:`compute_metrics`'s answer, with ``notes["period"]`` when the data begins
        inside the period (:func:`check_coverage`).

    Raises
    ------
    ConfigError
        When ``period`` is neither a month nor a quarter.
    PeriodNotCoveredError
        When the data does not cover the period.
    """
    span = parse_period(period) if period is not None else last_complete_month(ds)
    note = check_coverage(span, covered_span(ds))
    values = compute_metrics(ds, span, segment=segment)
    if note is not None:
        values["notes"] = {"period": note, **dict(values["notes"])}  # type: ignore[call-overload]
    return values


def compute_metrics(
    ds: Dataset, period: Period, *, segment: str | None = None
) -> dict[str, object]:
    """Compute every standard metric of DESIGN section 6 for one period.

    Parameters
    ----------
    ds
        The validated data set.
    period
        The period ``[p0, p1)``; see :func:`parse_period`.
    segment
        When given, every metric is restricted to the accounts whose
        ``accounts.segment`` equals it. A segment no account has is no error: the
        metrics are those of no account, and ``notes["segment"]`` says so and lists
        the segments there are (filters narrow; they never refuse).

    Returns
    -------
    dict
        ``period`` (the label), ``segment`` (or ``None``), one entry per key of
        :data:`METRIC_KEYS` in that order, ``notes``: a ``dict`` from metric key to a
        one-line reason for every metric that is ``None``, plus remarks on rows left out
        of a metric that has a value (tickets without ``contacts``, accounts without an
        event or an acquisition cost), and under ``"segment"`` a note when no account
        has the segment; and ``units``: every metric key's :class:`Unit` as text
        (:data:`METRIC_UNITS`). Counts are ``int``, every other value ``float``.
    """
    scope = _Scope(ds, period, segment)
    notes: Notes = {}
    unknown = scope.unknown_segment()
    values: dict[str, object] = {}
    moves = _mrr_movements(scope)
    values.update(moves.as_metrics())
    values.update(_customer_rates(moves, notes))
    values.update(_revenue_rates(moves, notes))
    values.update(_nps(scope, notes))
    values.update(_dau_mau(scope, notes))
    values.update(_fcr_rate(scope, notes))
    values.update(_order_metrics(scope, notes))
    values.update(_value_metrics(scope, moves, values, notes))
    values.update(_time_to_first_value(scope, notes))
    mismatch = set(METRIC_KEYS) ^ set(values)
    if mismatch:  # pragma: no cover - a programming error, caught by the tests
        raise RuntimeError(f"metric keys out of sync with METRIC_KEYS: {sorted(mismatch)}")
    result: dict[str, object] = {"period": period.label, "segment": segment}
    result.update({key: values[key] for key in METRIC_KEYS})
    first = {} if unknown is None else {"segment": unknown}
    result["notes"] = first | {key: notes[key] for key in METRIC_KEYS if key in notes}
    result["units"] = {key: str(unit) for key, unit in METRIC_UNITS.items()}
    return result


# --------------------------------------------------------------------------- helpers


#: Money and durations are summed as this exact type, not as doubles. A double sum's
#: last bits depend on the order DuckDB's threads hand rows over (a group-by's output
#: has no order), so the same data could give 1307.1035 one time and
#: 1307.1035000000002 the next. A DECIMAL sum is exact, so a figure is the same on
#: every run. Nine places keep every cent and every microsecond; the range, 10^29, is
#: far above any revenue.
EXACT = "decimal(38, 9)"


def _exact(column: Any) -> Any:
    """``column`` as :data:`EXACT`, ready for an order-independent ``sum``."""
    return column.cast(EXACT)


def _scalar(expr: Any) -> Any:
    """Execute a scalar Ibis expression and return a plain Python value."""
    return expr.to_pyarrow().as_py()


def _row(expr: Any) -> dict[str, Any]:
    """Execute a one-row Ibis aggregate and return it as a dict of Python values."""
    rows: list[dict[str, Any]] = expr.to_pyarrow().to_pylist()
    return rows[0]


def _ratio(num: float, den: float, key: str, notes: Notes, why: str, scale: float = 1.0) -> Any:
    """Return ``num / den * scale``, or ``None`` with ``why`` noted when ``den`` is 0."""
    if den == 0:
        notes[key] = why
        return None
    return float(num) / float(den) * scale


def _absent(ds: Dataset, table: str, keys: tuple[str, ...], notes: Notes) -> bool:
    """Note ``keys`` as missing when ``table`` is absent; return whether it is."""
    if ds.has(table):
        return False
    for key in keys:
        notes[key] = f"table {table!r} is absent from the source"
    return True


@dataclass(frozen=True)
class _Scope:
    """The data set, period and segment filter one computation works on."""

    ds: Dataset
    period: Period
    segment: str | None

    def unknown_segment(self) -> str | None:
        """Return a note when no account has the segment filtered on, else None.

        A filter narrows, it does not refuse: the figures of a segment without accounts
        are true (zero accounts), so they are answered, with this note naming the
        segments there are, as the at-risk list answers an empty page.
        """
        if self.segment is None:
            return None
        acc = self.ds.table("accounts")
        segments = acc.filter(acc.segment.notnull()).select("segment").distinct()
        known = sorted(segments.to_pyarrow().column("segment").to_pylist())
        if self.segment in known:
            return None
        listed = ", ".join(repr(s) for s in known) if known else "none"
        return f"no account has segment {self.segment!r}; the accounts have: {listed}"

    @property
    def t0(self) -> datetime:
        """``p0`` at 00:00 UTC."""
        return datetime.combine(self.period.start, datetime.min.time())

    @property
    def t1(self) -> datetime:
        """``p1`` at 00:00 UTC."""
        return datetime.combine(self.period.end, datetime.min.time())

    def accounts(self) -> Any:
        """Return the accounts in scope."""
        acc = self.ds.table("accounts")
        return acc if self.segment is None else acc.filter(acc.segment == self.segment)

    def table(self, name: str) -> Any:
        """Contract table ``name`` restricted to the accounts in scope."""
        t = self.ds.table(name)
        if self.segment is None:
            return t
        return t.semi_join(self.accounts().select("account_id"), "account_id")

    def in_period(self, name: str, column: str) -> Any:
        """Rows of ``name`` in scope whose timestamp ``column`` lies in ``[p0, p1)``."""
        t = self.table(name)
        return t.filter((t[column] >= self.t0) & (t[column] < self.t1))


# --------------------------------------------------------------------- MRR movements


@dataclass(frozen=True)
class _Movements:
    """Customer counts and MRR sums of the start-to-end movements of a period."""

    customers_start: int
    customers_end: int
    customers_new: int
    customers_reactivated: int
    customers_churned: int
    mrr_start: float
    mrr_end: float
    mrr_new: float
    mrr_expansion: float
    mrr_contraction: float
    mrr_churned: float
    mrr_reactivation: float
    new_with_cost: int
    new_cost_mean: float | None
    mrr_new_referred: float

    def as_metrics(self) -> dict[str, object]:
        return {
            key: getattr(self, key)
            for key in METRIC_KEYS
            if key.startswith(("customers_", "mrr_")) and key in self.__dataclass_fields__
        }


def _mrr_movements(scope: _Scope) -> _Movements:
    """Classify every account's MRR change from the start state to the end state.

    With ``m0`` an account's MRR on day ``p0 - 1`` and ``m1`` its MRR on day ``p1 - 1``
    (sum of ``mrr`` of its subscription rows with ``start_date <= d < end_date``):

    - customers_start ``S`` = #accounts with ``m0 > 0``; customers_end ``E`` = #``m1 > 0``.
    - mrr_start = Σ m0; mrr_end = Σ m1.
    - **new**: ``m0 = 0 < m1`` and no day before ``p0`` with MRR > 0;
      customers_new = # of them, mrr_new = Σ m1.
    - **reactivation**: ``m0 = 0 < m1`` and some day before ``p0`` with MRR > 0;
      customers_reactivated, mrr_reactivation = Σ m1.
    - **expansion**: ``0 < m0 < m1``; mrr_expansion = Σ (m1 - m0).
    - **contraction**: ``0 < m1 < m0``; mrr_contraction = Σ (m0 - m1) (positive).
    - **churned**: ``m0 > 0 = m1``; customers_churned, mrr_churned = Σ m0 (positive).

    Hence ``mrr_start + mrr_new + mrr_expansion + mrr_reactivation - mrr_contraction -
    mrr_churned = mrr_end``. The same query also returns, for the value metrics, the mean
    ``acquisition_cost`` of the new accounts and the end MRR of new accounts with
    ``referred_by`` set.

    Worked example (October 2026, start day 30 Sep, end day 31 Oct; the test's
    ``_october`` data set): a 100 → 100; b 50 → 80 (expansion 30); c 200 → 150
    (contraction 50); d 40 → 0 (``end_date`` 31 Oct, last paid day 30 Oct: churned 40);
    e 60 → 60 (``end_date`` 1 Nov churns in November); f 0 → 30 (starts 1 Oct, new);
    g paid Jan-May, 0 → 25 (reactivation); h 0 → 45 (new, referred); i paid 5-20 Oct
    only, 0 → 0 (no movement). S = 5, E = 7, new 2, reactivated 1, churned 1;
    mrr_start 450, mrr_end 490, new 75, expansion 30, reactivation 25, contraction 50,
    churned 40: 450 + 75 + 30 + 25 - 50 - 40 = 490.
    """
    p0 = scope.period.start
    start_day = p0 - timedelta(days=1)
    end_day = scope.period.end - timedelta(days=1)
    subs = scope.table("subscriptions")

    def covers(day: date) -> Any:
        return (subs.start_date <= day) & (subs.end_date.isnull() | (subs.end_date > day))

    per_account = subs.group_by("account_id").aggregate(
        m0=ibis.ifelse(covers(start_day), _exact(subs.mrr), 0).sum(),
        m1=ibis.ifelse(covers(end_day), _exact(subs.mrr), 0).sum(),
        # a row with mrr > 0 covering some day before p0
        paid_before=(
            (subs.mrr > 0)
            & (subs.start_date < p0)
            & (subs.end_date.isnull() | (subs.end_date > subs.start_date))
        ).any(),
    )
    acc = scope.ds.table("accounts").select("account_id", "acquisition_cost", "referred_by")
    t = per_account.left_join(acc, "account_id")
    m0, m1 = t.m0, t.m1
    gained = (m0 == 0) & (m1 > 0)
    is_new = gained & ~t.paid_before
    is_react = gained & t.paid_before
    is_exp = (m0 > 0) & (m1 > m0)
    is_contr = (m1 > 0) & (m1 < m0)
    is_churn = (m0 > 0) & (m1 == 0)
    referred = t.referred_by.notnull() & (t.referred_by != "")
    row = _row(
        t.aggregate(
            customers_start=t.count(where=m0 > 0),
            customers_end=t.count(where=m1 > 0),
            customers_new=t.count(where=is_new),
            customers_reactivated=t.count(where=is_react),
            customers_churned=t.count(where=is_churn),
            mrr_start=m0.sum(),
            mrr_end=m1.sum(),
            mrr_new=m1.sum(where=is_new),
            mrr_expansion=(m1 - m0).sum(where=is_exp),
            mrr_contraction=(m0 - m1).sum(where=is_contr),
            mrr_churned=m0.sum(where=is_churn),
            mrr_reactivation=m1.sum(where=is_react),
            new_with_cost=t.acquisition_cost.count(where=is_new),
            new_cost_sum=_exact(t.acquisition_cost).sum(where=is_new),
            mrr_new_referred=m1.sum(where=is_new & referred),
        )
    )

    def count(key: str) -> int:
        return int(row[key] or 0)

    def total(key: str) -> float:
        return float(row[key] or 0.0)

    with_cost = count("new_with_cost")
    return _Movements(
        customers_start=count("customers_start"),
        customers_end=count("customers_end"),
        customers_new=count("customers_new"),
        customers_reactivated=count("customers_reactivated"),
        customers_churned=count("customers_churned"),
        mrr_start=total("mrr_start"),
        mrr_end=total("mrr_end"),
        mrr_new=total("mrr_new"),
        mrr_expansion=total("mrr_expansion"),
        mrr_contraction=total("mrr_contraction"),
        mrr_churned=total("mrr_churned"),
        mrr_reactivation=total("mrr_reactivation"),
        new_with_cost=with_cost,
        new_cost_mean=float(row["new_cost_sum"]) / with_cost if with_cost else None,
        mrr_new_referred=total("mrr_new_referred"),
    )


def _customer_rates(mv: _Movements, notes: Notes) -> dict[str, object]:
    """Compute the customer churn and retention rates of the period, in percent.

    - churn_rate = customers_churned / S * 100
    - retention_rate = (E - N) / S * 100, N = customers_new + customers_reactivated
      (the seeds' customer retention rate)
    - cohort_retention_rate = (S - customers_churned) / S * 100

    Under the snapshot conventions ``E = S - churned + N``, so retention_rate and
    cohort_retention_rate coincide; both are kept because DESIGN names both.
    ``None`` when S = 0.

    Worked example (``_october``): S = 5, E = 7, N = 2 + 1, churned 1: churn_rate 20.0,
    retention_rate (7 - 3) / 5 * 100 = 80.0, cohort_retention_rate 4 / 5 * 100 = 80.0.
    """
    s = mv.customers_start
    why = "no active account at the start of the period (customers_start = 0)"
    n = mv.customers_new + mv.customers_reactivated
    return {
        "churn_rate": _ratio(mv.customers_churned, s, "churn_rate", notes, why, 100.0),
        "retention_rate": _ratio(mv.customers_end - n, s, "retention_rate", notes, why, 100.0),
        "cohort_retention_rate": _ratio(
            s - mv.customers_churned, s, "cohort_retention_rate", notes, why, 100.0
        ),
    }


def _revenue_rates(mv: _Movements, notes: Notes) -> dict[str, object]:
    """Revenue retention, quick ratio and ARPA of the period.

    - nrr = (mrr_start + expansion - contraction - churned) / mrr_start * 100
    - grr = (mrr_start - contraction - churned) / mrr_start * 100
    - net_mrr_churn_rate = 100 - nrr; gross_mrr_churn_rate = 100 - grr
    - quick_ratio = (new + expansion + reactivation) / (contraction + churned)
    - arpa = mrr_end / E (average MRR per active account at the end)

    Each is ``None`` when its denominator is 0 (no MRR at the start, no lost MRR, no
    active account at the end).

    Worked example (``_october``): nrr = (450 + 30 - 50 - 40) / 450 * 100 = 86.67;
    grr = 360 / 450 * 100 = 80.0; net_mrr_churn_rate 13.33; gross_mrr_churn_rate 20.0;
    quick_ratio = (75 + 30 + 25) / (50 + 40) = 1.444; arpa = 490 / 7 = 70.0.
    """
    lost = mv.mrr_contraction + mv.mrr_churned
    no_start = "no MRR at the start of the period (mrr_start = 0)"
    nrr = _ratio(mv.mrr_start + mv.mrr_expansion - lost, mv.mrr_start, "nrr", notes, no_start, 100)
    grr = _ratio(mv.mrr_start - lost, mv.mrr_start, "grr", notes, no_start, 100.0)
    if nrr is None:
        notes["net_mrr_churn_rate"] = no_start
    if grr is None:
        notes["gross_mrr_churn_rate"] = no_start
    return {
        "nrr": nrr,
        "grr": grr,
        "net_mrr_churn_rate": None if nrr is None else 100.0 - nrr,
        "gross_mrr_churn_rate": None if grr is None else 100.0 - grr,
        "quick_ratio": _ratio(
            mv.mrr_new + mv.mrr_expansion + mv.mrr_reactivation,
            lost,
            "quick_ratio",
            notes,
            "no MRR lost in the period (contraction + churned = 0)",
        ),
        "arpa": _ratio(
            mv.mrr_end,
            mv.customers_end,
            "arpa",
            notes,
            "no active account at the end of the period (customers_end = 0)",
        ),
    }


# ------------------------------------------------------------------ other families


def _nps(scope: _Scope, notes: Notes) -> dict[str, object]:
    """Net promoter score over the NPS answers given in the period.

    - promoters_pct = #answers scoring 9-10 / #answers * 100
    - detractors_pct = #answers scoring 0-6 / #answers * 100
    - nps = promoters_pct - detractors_pct (-100 … 100)

    Every answer counts (an account answering twice counts twice). ``None`` when the
    ``nps`` table is absent or has no answer in the period.

    Worked example (``_october``): answers in October 10, 9, 9, 7, 3 (one at
    30 Sep 23:59:59 and one at 1 Nov 00:00 fall outside): promoters 3 / 5 = 60.0,
    detractors 1 / 5 = 20.0, nps 40.0.
    """
    keys = ("nps", "promoters_pct", "detractors_pct")
    if _absent(scope.ds, "nps", keys, notes):
        return dict.fromkeys(keys)
    t = scope.in_period("nps", "responded_at")
    row = _row(
        t.aggregate(
            n=t.count(),
            promoters=t.count(where=t.score >= 9),
            detractors=t.count(where=t.score <= 6),
        )
    )
    if row["n"] == 0:
        for key in keys:
            notes[key] = "no NPS answer in the period"
        return dict.fromkeys(keys)
    promoters = row["promoters"] / row["n"] * 100.0
    detractors = row["detractors"] / row["n"] * 100.0
    return {
        "nps": promoters - detractors,
        "promoters_pct": promoters,
        "detractors_pct": detractors,
    }


def _dau_mau(scope: _Scope, notes: Notes) -> dict[str, object]:
    """Stickiness: mean daily active users over the period's active users (0-1).

    A user is the pair ``(account_id, user_id)``; a user is active on a UTC day when it
    has an event that day.

    dau_mau = (Σ over all days d of the period of #users active on d) / #days
    / #users active in the period

    Every calendar day of the period counts, including days without events. The
    numerator sum is the number of distinct (user, day) pairs, so one grouping pass
    suffices. ``None`` when ``events`` is absent or has no event in the period.

    Worked example (``_october``, 31 days): users (a,u1) on 1 and 2 Oct, (a,u2) on 2 Oct,
    (b,u1) on 31 Oct 23:59:59, (f,u1) on 3 Oct; 5 user-days, 4 users:
    dau_mau = 5 / 31 / 4 = 0.04032.
    """
    if _absent(scope.ds, "events", ("dau_mau",), notes):
        return {"dau_mau": None}
    ev = scope.in_period("events", "timestamp")
    user_days = ev.select("account_id", "user_id", day=ev.timestamp.date()).distinct()
    per_user = user_days.group_by(["account_id", "user_id"]).aggregate(days=user_days.count())
    row = _row(per_user.aggregate(user_days=per_user.days.sum(), users=per_user.count()))
    if not row["users"]:
        notes["dau_mau"] = "no event in the period"
        return {"dau_mau": None}
    return {"dau_mau": row["user_days"] / scope.period.days / row["users"]}


def _fcr_rate(scope: _Scope, notes: Notes) -> dict[str, object]:
    """First-contact resolution rate of the tickets created in the period, in percent.

    fcr_rate = #tickets created in the period with contacts == 1
    / #tickets created in the period with a contacts value * 100

    Tickets whose ``contacts`` is null (unknown) are left out of both numerator and
    denominator: counting them as unresolved would bias the rate down, counting them as
    resolved would bias it up. How many were left out is stated in ``notes``. ``None``
    when ``tickets`` is absent or no ticket of the period has a ``contacts`` value.

    Worked example (``_october``): October tickets with contacts 1, 3, 1, 2 and one with
    no value (left out; tickets on 30 Sep and 1 Nov fall outside): 2 / 4 * 100 = 50.0.
    """
    if _absent(scope.ds, "tickets", ("fcr_rate",), notes):
        return {"fcr_rate": None}
    t = scope.in_period("tickets", "created_at")
    row = _row(
        t.aggregate(
            n=t.count(),
            known=t.contacts.count(),
            first=t.count(where=t.contacts == 1),
        )
    )
    unknown = row["n"] - row["known"]
    if row["n"] == 0:
        notes["fcr_rate"] = "no ticket created in the period"
        return {"fcr_rate": None}
    if unknown:
        notes["fcr_rate"] = (
            f"{unknown} of {row['n']} tickets created in the period had no contacts value"
            " and were left out of both counts"
        )
    if row["known"] == 0:
        return {"fcr_rate": None}
    return {"fcr_rate": row["first"] / row["known"] * 100.0}


def _order_metrics(scope: _Scope, notes: Notes) -> dict[str, object]:
    """One-off purchase metrics over the orders placed in the period.

    - repeat_customer_rate = #accounts with ≥ 2 orders / #accounts with ≥ 1 order * 100
    - purchase_frequency = #orders / #accounts that ordered
    - avg_order_value = Σ amount / #orders

    ``None`` when ``orders`` is absent or has no order in the period.

    Worked example (``_october``): a orders 100 and 50, b 30, c 10, 10 and 20, e 60
    (orders on 30 Sep and 1 Nov fall outside): 7 orders by 4 accounts, 2 of them
    repeat: repeat_customer_rate 50.0, purchase_frequency 1.75, avg_order_value
    280 / 7 = 40.0.
    """
    keys = ("repeat_customer_rate", "purchase_frequency", "avg_order_value")
    if _absent(scope.ds, "orders", keys, notes):
        return dict.fromkeys(keys)
    t = scope.in_period("orders", "ordered_at")
    per_account = t.group_by("account_id").aggregate(n=t.count(), amount=_exact(t.amount).sum())
    row = _row(
        per_account.aggregate(
            accounts=per_account.count(),
            repeat=per_account.count(where=per_account.n >= 2),
            orders=per_account.n.sum(),
            revenue=per_account.amount.sum(),
        )
    )
    if not row["accounts"]:
        for key in keys:
            notes[key] = "no order in the period"
        return dict.fromkeys(keys)
    return {
        "repeat_customer_rate": row["repeat"] / row["accounts"] * 100.0,
        "purchase_frequency": row["orders"] / row["accounts"],
        "avg_order_value": float(row["revenue"]) / row["orders"],
    }


def _monthly_churn(churn_rate: float, months: float) -> float:
    """Monthly churn fraction equivalent to ``churn_rate`` (percent) over ``months``.

    Compounded: ``c_m = 1 - (1 - c)^(1 / months)`` with ``c = churn_rate / 100``, the
    constant monthly churn that leaves the same survivors after ``months`` months. For a
    quarter with c = 87.5 %: 1 - 0.125^(1/3) = 0.5.
    """
    c = churn_rate / 100.0
    if months == 1.0:
        return c
    return 1.0 - math.pow(1.0 - c, 1.0 / months)


def _value_metrics(
    scope: _Scope, mv: _Movements, values: dict[str, object], notes: Notes
) -> dict[str, object]:
    """Compute customer value and the cost of keeping customers.

    - clv = arpa / c_m, with c_m the monthly churn fraction: ``churn_rate / 100`` for a
      month; for a longer period the compounded monthly equivalent
      ``1 - (1 - churn_rate / 100)^(1 / months)`` (a quarter: months = 3). ``1 / c_m``
      is the expected lifespan in months. ``None`` when arpa or churn_rate is ``None``
      or no account churned (unbounded lifespan).
    - ltv_cac = clv / mean ``acquisition_cost`` of the period's new accounts (those
      counted in customers_new; accounts without a cost are left out of the mean and
      counted in ``notes``). ``None`` when clv is ``None``, no new account has a cost,
      or the mean cost is 0.
    - customer_retention_cost = Σ costs.amount with ``p0 <= month < p1`` / S.
    - cs_roi = (mrr_start - contraction - churned) + expansion + Σ end MRR of new
      accounts with ``referred_by`` set - Σ costs in the period.

    The cost metrics are ``None`` when ``costs`` is absent or has no row in the period
    (an unreported cost is not a zero cost).

    Worked example (``_october``): clv = 70 / 0.20 = 350.0; new accounts f (cost 300)
    and h (500): ltv_cac = 350 / 400 = 0.875; costs 20 + 30 + 50 = 100 in October:
    customer_retention_cost = 100 / 5 = 20.0; cs_roi = (450 - 50 - 40) + 30 + 45 (h,
    referred) - 100 = 335.0. Quarter 2026Q4 of ``_quarter``: churn 87.5 %, c_m = 0.5,
    arpa 75: clv 150.0.
    """
    out: dict[str, object] = {}
    arpa, churn_rate = values["arpa"], values["churn_rate"]
    clv: float | None = None
    if not isinstance(arpa, float) or not isinstance(churn_rate, float):
        notes["clv"] = "arpa or churn_rate is undefined for the period"
    elif churn_rate == 0.0:
        notes["clv"] = "no account churned in the period, so the expected lifespan is unbounded"
    else:
        clv = arpa / _monthly_churn(churn_rate, scope.period.months)
    out["clv"] = clv

    ltv_cac: float | None = None
    missing_cost = mv.customers_new - mv.new_with_cost
    if mv.customers_new == 0:
        notes["ltv_cac"] = "no new account in the period, so no acquisition cost"
    elif mv.new_with_cost == 0:
        notes["ltv_cac"] = "no new account of the period has an acquisition_cost"
    else:
        if missing_cost:
            notes["ltv_cac"] = (
                f"{missing_cost} of {mv.customers_new} new accounts had no acquisition_cost"
                " and were left out of the mean"
            )
        if clv is None:
            notes["ltv_cac"] = "clv is undefined for the period"
        elif not mv.new_cost_mean:
            notes["ltv_cac"] = "the mean acquisition_cost of the new accounts is 0"
        else:
            ltv_cac = clv / mv.new_cost_mean
    out["ltv_cac"] = ltv_cac

    cost_keys = ("customer_retention_cost", "cs_roi")
    if _absent(scope.ds, "costs", cost_keys, notes):
        out.update(dict.fromkeys(cost_keys))
        return out
    costs = scope.table("costs")
    costs = costs.filter((costs.month >= scope.period.start) & (costs.month < scope.period.end))
    row = _row(costs.aggregate(n=costs.count(), amount=_exact(costs.amount).sum()))
    if row["n"] == 0:
        for key in cost_keys:
            notes[key] = "no costs row with month in the period"
        out.update(dict.fromkeys(cost_keys))
        return out
    spent = float(row["amount"])
    out["customer_retention_cost"] = _ratio(
        spent,
        mv.customers_start,
        "customer_retention_cost",
        notes,
        "no active account at the start of the period (customers_start = 0)",
    )
    retained = mv.mrr_start - mv.mrr_contraction - mv.mrr_churned
    out["cs_roi"] = retained + mv.mrr_expansion + mv.mrr_new_referred - spent
    return out


def _time_to_first_value(scope: _Scope, notes: Notes) -> dict[str, object]:
    """Mean time from account creation to its first product event, in days.

    time_to_first_value_days = mean over accounts with ``p0 <= created_at < p1`` that
    have an event of (first event timestamp, over all time - created_at) in fractional
    days. Accounts created in the period without any event are left out and counted in
    ``notes``. An event before ``created_at`` gives a negative value and is kept (it
    shows a data problem rather than hiding it). ``None`` when ``events`` is absent, no
    account was created in the period, or none of them has an event.

    Worked example (``_october``): f created 1 Oct 00:00, first event 3 Oct 12:00
    (2.5 days); i created 2 Oct 00:00, first event 1 Nov 00:00 (30 days); h has no
    event (left out): (2.5 + 30) / 2 = 16.25.
    """
    key = "time_to_first_value_days"
    if _absent(scope.ds, "events", (key,), notes):
        return {key: None}
    acc = scope.accounts()
    created = acc.filter((acc.created_at >= scope.t0) & (acc.created_at < scope.t1)).select(
        "account_id", "created_at"
    )
    ev = scope.ds.table("events").semi_join(created, "account_id")
    first = ev.group_by("account_id").aggregate(first_event=ev.timestamp.min())
    t = created.left_join(first, "account_id")
    seconds = _exact(t.first_event.epoch_seconds()) - _exact(t.created_at.epoch_seconds())
    row = _row(t.aggregate(n=t.count(), with_event=t.first_event.count(), seconds=seconds.sum()))
    if row["n"] == 0:
        notes[key] = "no account created in the period"
        return {key: None}
    without = row["n"] - row["with_event"]
    if without:
        notes[key] = (
            f"{without} of {row['n']} accounts created in the period had no event and were left out"
        )
    if row["with_event"] == 0:
        return {key: None}
    return {key: float(row["seconds"]) / row["with_event"] / 86400.0}
