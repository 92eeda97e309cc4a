"""The ``default`` world: per-seat SaaS whose churn follows a latent account health.

A software company selling per-seat subscriptions (monthly and annual terms) to SMB,
Mid-Market and Enterprise accounts, observed over ``months`` months; it writes all seven
contract tables with every optional column. This is the world the project's tests and
benchmarks were first written against; its bytes for a given seed do not change.

The model
---------
**Latent account health.** Every account carries a health ``h`` (about standard
normal), a monthly random walk that reverts slowly (10 % a month) towards a level set by
its segment, plan and whether it was referred (Enterprise, enterprise plan and referred
accounts sit higher), with Gaussian steps (sd 0.3) and occasional shocks: a sudden drop
(about 4 % of months, e.g. the champion leaves) or lift (about 2 %). Daily health is
the linear interpolation between month starts. Health is never written; every table
below is a noisy view of it:

- **subscriptions** -- churn is decided only at renewal dates, with
  ``logit p = base(billing) - 1.5 h + small-seat bump + new-account bump + noise``
  (monthly contracts renew every month with a low per-renewal risk, annual ones once a
  year with a high one, so an upcoming annual renewal is risky). Because health is a
  walk, the health that decides a renewal is visible in the months before it. Renewals
  of healthy accounts expand (more seats, plan upgrades, switches to annual billing),
  renewals of unhealthy ones contract (fewer seats, downgrades); annual contracts also
  expand mid-term through add-on rows. Churned accounts come back with a small monthly
  probability, higher when healthy (a reactivation), and their health jumps up by 0.6.
- **events** -- each seat slot is a user with its own activity level (heavy-tailed)
  times an account activity level (independent of health: usage *level* is a noisy
  signal, its *trend* a better one). The chance that a user is active on a day scales
  with ``2 * sigmoid(1.1 h)``, the weekday (weekends about 5x quieter, the year-end
  holidays quieter) and the number of seats in force; an active user-day is a session
  of ``1 + Poisson(2.2 exp(0.35 h))`` events in local business hours of the account's
  region. So falling health shows as fewer events, fewer distinct users (DAU/MAU
  decline) and shorter sessions. A little usage trails for ten days after churn.
- **tickets** -- a daily Poisson rate that grows with ``sqrt(seats)`` and
  ``exp(-0.7 h)``; low health also shifts priority towards high/urgent, lowers the
  first-contact resolution share (``P(contacts == 1) = sigmoid(0.9 + 0.9 h)``),
  lengthens resolution and lowers CSAT (1-5, answered for about 55 % of resolved
  tickets). Tickets still open at the period end have no ``resolved_at``.
- **nps** -- roughly quarterly survey waves per account; each user answers a wave with
  probability 0.15. ``score = round(7.8 + 1.6 h + user bias + noise)`` clipped to 0-10,
  with a comment for about a third of answers.
- **orders** -- an onboarding invoice for new Mid-Market and Enterprise accounts, and
  one-off purchases (training, add-on packs, services) at a rate that rises with health.
- **costs** -- per account and month of presence: usage-driven serving cost plus a
  per-seat cost plus the customer-success cost of the segment.

Accounts exist before ``start`` (their running contract term began before it) and new
ones arrive during the period, at a slowly growing rate. ``accounts.plan`` and
``accounts.seats`` are the values at sign-up; the current plan and seats are those of
the subscription rows. Each subscription row is one contract term (monthly: a month;
annual: twelve months) or a mid-term add-on row running from the change date to the
same term end, with ``plan``, ``seats`` and ``mrr`` of the added seats only. Its
``term_end`` is known on the day the row starts; its ``end_date``, the day it stopped,
is written only for rows that stopped before the export was taken (a term still running
at the end has none yet), as a billing export writes it. MRR on a day is the sum over
rows covering it; churn is a term end with no row following.

With the defaults (5,000 accounts, 24 months: about 9-10 million events) monthly logo
churn is about 2.3 %, and on simple 30/90-day window features (usage and its trend,
distinct users, tickets, CSAT, NPS, MRR, days to renewal) trained on earlier monthly
as-of dates and tested on later ones, gradient boosting reaches a ROC-AUC of about 0.82
for churn within 90 days and logistic regression about 0.77-0.79.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from churnrisk.worlds.base import (
    DAY,
    BoolArray,
    Calendar,
    FloatArray,
    IntArray,
    Rows,
    Shape,
    World,
    date_array,
    interval_sum,
    label_array,
    local_times,
    sigmoid,
    table,
    ts_array,
)
from churnrisk.worlds.kit import session_times, term_table

_TAIL_DAYS = 10  # days of trailing usage after churn

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
_SEGMENT_P = np.array([0.6, 0.3, 0.1])
PLANS = ("starter", "growth", "enterprise")
PRICE_PER_SEAT = np.array([12.0, 29.0, 59.0])  # list price per seat per month
_ANNUAL_DISCOUNT = 0.85
_PLAN_P = np.array([[0.6, 0.35, 0.05], [0.2, 0.6, 0.2], [0.0, 0.35, 0.65]])  # by segment
_ANNUAL_P = np.array([0.15, 0.5, 0.85])  # share of annual contracts by segment
_SEATS_MEDIAN = np.array([4.0, 15.0, 50.0])
_SEATS_SIGMA = np.array([0.5, 0.5, 0.6])
_CAC_MEDIAN = np.array([600.0, 4000.0, 20000.0])
_HEALTH_LEVEL = np.array([-0.1, 0.1, 0.3])  # by segment
_PLAN_HEALTH = np.array([-0.1, 0.0, 0.1])
_CS_COST = np.array([5.0, 40.0, 150.0])  # customer-success cost per account-month
INDUSTRIES = (
    "Software",
    "Financial Services",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Education",
    "Media",
    "Logistics",
    "Professional Services",
    "Public Sector",
)
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
_REGION_P = np.array([0.45, 0.35, 0.15, 0.05])
_REGION_UTC_OFFSET_H = np.array([-5, 1, 8, -3])
OWNERS = (  # customer-success managers, by segment
    ("Ava Brooks", "Liam Chen", "Noah Diaz"),
    ("Mia Fischer", "Omar Haddad", "Sofia Rossi"),
    ("Grace Okafor", "Lucas Martin"),
)
EVENT_TYPES = ("login", "report_view", "dashboard_edit", "export", "api_call", "invite_user")
_EVENT_P = np.array([0.0, 0.45, 0.15, 0.1, 0.25, 0.05])  # events after the first of a session
_TIMED_EVENTS = np.array([False, True, True, True, True, False])  # carry a duration value
PRIORITIES = ("low", "normal", "high", "urgent")
_PRIORITY_P = np.array([0.35, 0.45, 0.15, 0.05])
_RESOLVE_HOURS = np.array([30.0, 20.0, 8.0, 3.0])
_NAME_A = ("Blue", "North", "Bright", "Iron", "Silver", "Green", "Swift", "Clear", "Red", "Nova")
_NAME_B = ("Harbor", "Peak", "Field", "Stone", "River", "Bridge", "Forge", "Grid", "Leaf", "Wave")
_NAME_C = ("Labs", "Systems", "Group", "Analytics", "Health", "Logistics", "Partners", "Works")
_COMMENTS = (
    (
        "Too expensive for what we use",
        "Support takes too long to answer",
        "Reports are slow and often wrong",
        "We are evaluating other tools",
        "Missing integrations we need",
    ),
    ("Does the job", "Good overall, a few rough edges", "Onboarding could be easier"),
    (
        "Great product, the team loves it",
        "Dashboards save us hours every week",
        "Support is fast and helpful",
        "The API is excellent",
    ),
)


def simulate(
    rng: np.random.Generator, cal: Calendar, world: World, lo: int, hi: int, first_ticket: int
) -> dict[str, pa.Table]:
    """Simulate accounts ``lo:hi`` and return their rows of every contract table."""
    n = hi - lo
    acc = np.arange(n)
    days = cal.days
    cday = world.created_day[lo:hi]
    csec = world.created_sec[lo:hi]
    ck, anchor = cal.split(cday)
    pre = cday < 0

    # static attributes
    seg = rng.choice(3, size=n, p=_SEGMENT_P)
    plan0 = (rng.random(n)[:, None] > np.cumsum(_PLAN_P, axis=1)[seg][:, :-1]).sum(axis=1)
    annual0 = rng.random(n) < _ANNUAL_P[seg]
    seats0 = np.maximum(
        1,
        np.round(_SEATS_MEDIAN[seg] * np.exp(rng.normal(0.0, _SEATS_SIGMA[seg]))).astype(np.int64),
    )
    region = rng.choice(4, size=n, p=_REGION_P)
    tz_sec = _REGION_UTC_OFFSET_H[region] * 3600
    industry = rng.integers(0, len(INDUSTRIES), size=n)
    owner_pick = rng.integers(0, 6, size=n)
    owner = [
        OWNERS[s][o % len(OWNERS[s])]
        for s, o in zip(seg.tolist(), owner_pick.tolist(), strict=True)
    ]
    referred = world.referred[lo:hi] >= 0
    cac = np.round(
        _CAC_MEDIAN[seg] * np.exp(rng.normal(0.0, 0.4, size=n)) * np.where(referred, 0.5, 1.0), 2
    )
    name_parts = rng.integers(0, 10, size=(n, 3))
    names = [
        f"{_NAME_A[a]} {_NAME_B[b]} {_NAME_C[c % len(_NAME_C)]}" for a, b, c in name_parts.tolist()
    ]
    activity = np.exp(rng.normal(0.0, 0.45, size=n))  # usage level, independent of health
    user_ratio = rng.uniform(0.6, 1.0, size=n)  # share of seats that are real users

    hd = _health(rng, cal, seg, plan0, referred)
    rows, churns = _subscriptions(rng, cal, hd, ck, anchor, pre, seg, plan0, annual0, seats0)

    # day-level state from the rows
    seats_day = interval_sum(n, days, rows["acc"], rows["start"], rows["end"], rows["seats"])
    present = seats_day > 0
    c_acc, c_day = churns
    tail = (
        interval_sum(n, days, c_acc, c_day, c_day + _TAIL_DAYS, np.ones_like(c_acc)) > 0
    ) & ~present
    users_day = np.where(
        present,
        np.ceil(user_ratio[:, None] * seats_day).astype(np.int64),
        np.where(tail, 2, 0),
    )

    observed = np.maximum(csec, 0)  # nothing before creation nor before start
    ev = _events(rng, cal, hd, present, tail, users_day, activity, tz_sec, observed)
    tickets = _tickets(rng, cal, hd, seats_day, present, tz_sec, observed)
    nps = _nps(rng, cal, hd, present, users_day, tz_sec, observed)
    orders = _orders(rng, cal, hd, present, seg, cday, observed, tz_sec)
    costs = _costs(cal, present, seats_day, ev["acc"], ev["month"], seg)

    ids = pa.array(world.ids[lo:hi], pa.string())
    n_users = users_day.max(axis=1)
    u_acc = np.repeat(acc, n_users)
    u_slot = np.arange(u_acc.size) - np.repeat(np.cumsum(n_users) - n_users, n_users)
    user_ids = pa.array(
        [
            f"{world.ids[lo + a]}-U{s + 1:03d}"
            for a, s in zip(u_acc.tolist(), u_slot.tolist(), strict=True)
        ],
        pa.string(),
    )
    user_base = np.cumsum(n_users) - n_users  # first user index of each account
    ref = world.referred[lo:hi]
    all_ids = pa.array(world.ids, pa.string())

    n_tickets = tickets["acc"].size
    width = max(7, len(str(first_ticket + n_tickets - 1)))
    ticket_ids = [f"T{i:0{width}d}" for i in range(first_ticket, first_ticket + n_tickets)]

    return {
        "accounts": table(
            "accounts",
            {
                "account_id": ids,
                "created_at": ts_array(cal, csec),
                "name": pa.array(names, pa.string()),
                "plan": label_array(PLANS, plan0),
                "segment": label_array(SEGMENTS, seg),
                "industry": label_array(INDUSTRIES, industry),
                "region": label_array(REGIONS, region),
                "owner": pa.array(owner, pa.string()),
                "seats": pa.array(seats0, pa.int64()),
                "acquisition_cost": pa.array(cac, pa.float64()),
                "referred_by": all_ids.take(pa.array(np.where(ref >= 0, ref, 0), mask=ref < 0)),
            },
        ),
        "subscriptions": term_table(cal, ids, rows, PLANS),
        "events": table(
            "events",
            {
                "account_id": ids.take(ev["acc"]),
                "user_id": user_ids.take(user_base[ev["acc"]] + ev["slot"]),
                "timestamp": ts_array(cal, ev["ts"]),
                "event_type": label_array(EVENT_TYPES, ev["type"]),
                "value": pa.array(ev["value"], pa.float64(), mask=np.isnan(ev["value"])),
            },
        ),
        "tickets": table(
            "tickets",
            {
                "ticket_id": pa.array(ticket_ids, pa.string()),
                "account_id": ids.take(tickets["acc"]),
                "created_at": ts_array(cal, tickets["created"]),
                "resolved_at": ts_array(cal, tickets["resolved"], mask=tickets["resolved"] < 0),
                "priority": label_array(PRIORITIES, tickets["priority"]),
                "contacts": pa.array(tickets["contacts"], pa.int64()),
                "csat": pa.array(tickets["csat"], pa.int64(), mask=tickets["csat"] < 1),
            },
        ),
        "nps": table(
            "nps",
            {
                "account_id": ids.take(nps["acc"]),
                "responded_at": ts_array(cal, nps["ts"]),
                "score": pa.array(nps["score"], pa.int64()),
                "user_id": user_ids.take(user_base[nps["acc"]] + nps["slot"]),
                "comment": pa.array(nps["comment"], pa.string()),
            },
        ),
        "orders": table(
            "orders",
            {
                "account_id": ids.take(orders["acc"]),
                "ordered_at": ts_array(cal, orders["ts"]),
                "amount": pa.array(orders["amount"], pa.float64()),
            },
        ),
        "costs": table(
            "costs",
            {
                "account_id": ids.take(costs["acc"]),
                "month": date_array(cal, costs["month"]),
                "amount": pa.array(costs["amount"], pa.float64()),
            },
        ),
    }


def _health(
    rng: np.random.Generator, cal: Calendar, seg: IntArray, plan: IntArray, referred: BoolArray
) -> FloatArray:
    """Daily latent health, shape (accounts, days): a mean-reverting walk with shocks."""
    n = seg.size
    level = _HEALTH_LEVEL[seg] + _PLAN_HEALTH[plan] + 0.2 * referred
    steps = cal.months + 2
    h = np.empty((n, steps))
    h[:, 0] = level + 0.2 + rng.normal(0.0, 0.8, size=n)
    for k in range(1, steps):
        u = rng.random(n)
        shock = np.where(
            u < 0.04,
            rng.normal(-1.2, 0.4, size=n),
            np.where(u > 0.98, rng.normal(0.8, 0.3, size=n), 0.0),
        )
        prev = h[:, k - 1]
        h[:, k] = prev + 0.1 * (level - prev) + rng.normal(0.0, 0.3, size=n) + shock
    # interpolate between month starts
    mk = cal.month_index
    m0 = cal.month_start(mk)
    frac = (np.arange(cal.days) - m0) / (cal.month_start(mk + 1) - m0)
    return np.asarray(h[:, mk] * (1.0 - frac) + h[:, mk + 1] * frac)


def _subscriptions(
    rng: np.random.Generator,
    cal: Calendar,
    hd: FloatArray,
    ck: IntArray,
    anchor: IntArray,
    pre: BoolArray,
    seg: IntArray,
    plan0: IntArray,
    annual0: BoolArray,
    seats0: IntArray,
) -> tuple[dict[str, Any], tuple[IntArray, IntArray]]:
    """Contract terms month by month; ``hd`` is updated in place on reactivation."""
    n = ck.size
    acc = np.arange(n)
    days = cal.days
    plan = plan0.copy()
    annual = annual0.copy()
    seats = seats0.copy()
    grown = np.round(seats0 * np.exp(rng.normal(0.1, 0.25, size=n))).astype(np.int64)
    seats[pre] = np.maximum(1, grown[pre])
    never = -(10**6)
    active = np.zeros(n, dtype=bool)
    term_end_k = np.full(n, never, dtype=np.int64)
    term_start = np.zeros(n, dtype=np.int64)
    term_end = np.zeros(n, dtype=np.int64)
    churn_k = np.full(n, never, dtype=np.int64)
    rows = Rows([], [], [], [], [], [])
    churn_acc: list[IntArray] = []
    churn_day: list[IntArray] = []

    def price() -> FloatArray:
        return np.asarray(PRICE_PER_SEAT[plan] * np.where(annual, _ANNUAL_DISCOUNT, 1.0))

    def begin_term(mask: BoolArray, k: IntArray, first: IntArray) -> None:
        """Start a full term at month index ``k`` for ``mask``; ``first`` is its start day."""
        end_k = k + np.where(annual, 12, 1)
        end = cal.renewal(np.where(mask, end_k, 0), anchor)
        rows.add(mask, first, end, plan, seats, seats * price())
        active[mask] = True
        term_end_k[mask] = end_k[mask]
        term_start[mask] = first[mask]
        term_end[mask] = end[mask]

    # accounts existing at start: the term running at start began before it
    k1 = np.where(cal.renewal(0, anchor) >= 0, 0, 1)
    end_k = np.where(annual, ck + 12 * -((ck - k1) // 12), k1)
    start_k = np.where(pre, end_k - np.where(annual, 12, 1), 0)
    begin_term(pre, start_k, cal.renewal(start_k, anchor))

    for k in range(cal.months + 1):
        kk = np.full(n, k, dtype=np.int64)
        r = cal.renewal(k, anchor)
        inside = (r >= 0) & (r < days)
        h = hd[acc, np.clip(r, 0, days - 1)]
        u = rng.random((n, 8))

        new = (ck == k) & ~pre
        begin_term(new, kk, r)

        due = active & (term_end_k == k) & inside & ~new
        logit = (
            np.where(annual, -2.6, -4.8)
            - 1.5 * h
            + 0.6 * (seats <= 3)
            + 0.3 * (seats <= 10)
            + 0.5 * (k - ck < 4)
            + rng.normal(0.0, 0.5, size=n)
        )
        churn = due & (u[:, 0] < sigmoid(logit))
        active[churn] = False
        churn_k[churn] = k
        churn_acc.append(np.flatnonzero(churn))
        churn_day.append(r[churn])

        renew = due & ~churn
        p_up = np.where(annual, 0.25, 0.02) * np.exp(0.6 * h)
        p_down = np.where(annual, 0.15, 0.015) * np.exp(-0.7 * h)
        expand = renew & (u[:, 1] < p_up)
        contract = renew & ~expand & (u[:, 1] < p_up + p_down) & (seats > 1)
        seats = np.where(expand, np.ceil(seats * (1.1 + 0.4 * u[:, 2])).astype(np.int64), seats)
        shrunk = np.floor(seats * (0.6 + 0.3 * u[:, 2])).astype(np.int64)
        seats = np.where(contract, np.maximum(1, shrunk), seats)
        upgrade = renew & (plan < 2) & (u[:, 3] < np.where(annual, 0.08, 0.01) * np.exp(0.4 * h))
        downgrade = (
            renew
            & ~upgrade
            & (plan > 0)
            & (u[:, 3] > 1 - np.where(annual, 0.05, 0.006) * np.exp(-0.6 * h))
        )
        plan = plan + upgrade - downgrade
        annual = annual | (renew & ~annual & (h > 0) & (u[:, 4] < 0.02))
        begin_term(renew, kk, r)

        # mid-term add-on seats on annual contracts: a row to the same term end
        m_lo = max(int(cal.month_start(k)), 0)
        m_hi = min(int(cal.month_start(k + 1)), days)
        first = np.maximum(m_lo, term_start + 1)
        last = np.minimum(m_hi, term_end)
        addon = (
            active & annual & ~renew & ~new & (last > first) & (u[:, 5] < 0.025 * np.exp(0.6 * h))
        )
        add_day = first + np.floor(u[:, 6] * (last - first)).astype(np.int64)
        added = np.ceil(seats * (0.05 + 0.25 * u[:, 7])).astype(np.int64)
        rows.add(addon, add_day, term_end, plan, added, added * price())
        seats = seats + np.where(addon, added, 0)

        # reactivation of accounts that left at least three months ago
        back = (
            ~active
            & (churn_k > never)
            & (k - churn_k >= 3)
            & inside
            & ~new
            & (rng.random(n) < 0.02 * np.exp(0.5 * h))
        )
        if back.any():
            annual = annual & ~back
            seats = np.where(
                back, np.maximum(1, np.round(seats * rng.uniform(0.5, 1.0, size=n))), seats
            )
            seats = seats.astype(np.int64)
            hd += 0.6 * (back[:, None] & (np.arange(days)[None, :] >= r[:, None]))
            begin_term(back, kk, r)
    return rows.arrays(), (np.concatenate(churn_acc), np.concatenate(churn_day))


def _events(
    rng: np.random.Generator,
    cal: Calendar,
    hd: FloatArray,
    present: BoolArray,
    tail: BoolArray,
    users_day: IntArray,
    activity: FloatArray,
    tz_sec: IntArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Product events, generated month by month for every user slot of the batch."""
    n = activity.size
    n_users = users_day.max(axis=1)
    u_acc = np.repeat(np.arange(n), n_users)
    u_slot = np.arange(u_acc.size) - np.repeat(np.cumsum(n_users) - n_users, n_users)
    u_prop = 0.08 * activity[u_acc] * np.exp(rng.normal(-0.3, 0.8, size=u_acc.size))
    u_prop = np.minimum(np.where(u_slot == 0, 2.0 * u_prop, u_prop), 0.9)
    day_factor = np.where(cal.weekday >= 5, 0.2, 1.0) * np.where(cal.holiday, 0.4, 1.0)
    account_day = 2.0 * sigmoid(1.1 * hd) * (present + 0.3 * tail)
    out: dict[str, list[Any]] = {k: [] for k in ("acc", "slot", "ts", "type", "value", "month")}
    for k in range(cal.months + 1):
        d0 = max(int(cal.month_start(k)), 0)
        d1 = min(int(cal.month_start(k + 1)), cal.days)
        if d1 <= d0:
            continue
        p = (
            u_prop[:, None]
            * day_factor[None, d0:d1]
            * account_day[u_acc, d0:d1]
            * (u_slot[:, None] < users_day[u_acc, d0:d1])
        )
        ui, di = np.nonzero(rng.random(p.shape) < p)
        a = u_acc[ui]
        d = di + d0
        per = 1 + rng.poisson(2.2 * np.exp(0.35 * hd[a, d]))
        ts, first = session_times(rng, d, tz_sec[a], per)
        total = ts.size
        ev_acc = np.repeat(a, per)
        etype = rng.choice(len(EVENT_TYPES), size=total, p=_EVENT_P)
        etype[first] = np.where(rng.random(a.size) < 0.85, 0, etype[first])
        value = np.round(np.exp(rng.normal(np.log(40.0), 1.0, size=total)), 1)
        value = np.where(_TIMED_EVENTS[etype], value, np.nan)
        keep = (ts >= csec[ev_acc]) & (ts < cal.days * DAY)
        out["acc"].append(ev_acc[keep])
        out["slot"].append(np.repeat(u_slot[ui], per)[keep])
        out["ts"].append(ts[keep])
        out["type"].append(etype[keep])
        out["value"].append(value[keep])
        out["month"].append(np.full(int(keep.sum()), k, dtype=np.int64))
    res = {k: np.concatenate(v) for k, v in out.items()}
    order = np.lexsort((res["slot"], res["ts"], res["acc"]))
    return {k: v[order] for k, v in res.items()}


def _tickets(
    rng: np.random.Generator,
    cal: Calendar,
    hd: FloatArray,
    seats_day: IntArray,
    present: BoolArray,
    tz_sec: IntArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Support tickets; unhealthy accounts file more, more urgent and harder ones."""
    rate = 0.012 * np.sqrt(seats_day) * np.exp(-0.7 * hd) * present
    rate = rate * np.where(cal.weekday >= 5, 0.3, 1.0)[None, :]
    count = rng.poisson(rate)
    ai, di = np.nonzero(count)
    rep = count[ai, di]
    a = np.repeat(ai, rep)
    d = np.repeat(di, rep)
    h = hd[a, d]
    created = d * DAY + local_times(rng, a.size, 8, 18) - tz_sec[a]
    tilt = _PRIORITY_P[None, :] * np.exp(np.outer(-h, [0.0, 0.0, 0.5, 0.8]))
    cum = np.cumsum(tilt / tilt.sum(axis=1, keepdims=True), axis=1)
    priority = (rng.random(a.size)[:, None] > cum[:, :-1]).sum(axis=1)
    first_contact = rng.random(a.size) < sigmoid(0.9 + 0.9 * h)
    contacts = np.where(first_contact, 1, 1 + rng.geometric(0.5, size=a.size))
    hours = (
        _RESOLVE_HOURS[priority]
        * np.exp(rng.normal(0.0, 1.0, size=a.size) - 0.2 * h)
        * contacts**0.7
    )
    resolved = created + np.maximum(60, np.round(hours * 3600)).astype(np.int64)
    end = cal.days * DAY
    open_ = (resolved >= end) | (rng.random(a.size) < 0.01)
    resolved = np.where(open_, -1, resolved)
    score = np.round(
        4.4 + 0.7 * h - 0.35 * (contacts - 1) - 0.3 * (priority == 3) + rng.normal(0, 0.9, a.size)
    )
    csat = np.where(~open_ & (rng.random(a.size) < 0.55), np.clip(score, 1, 5), 0).astype(np.int64)
    keep = (created >= csec[a]) & (created < end)
    order = np.lexsort((a[keep], created[keep]))
    return {
        "acc": a[keep][order],
        "created": created[keep][order],
        "resolved": resolved[keep][order],
        "priority": priority[keep][order],
        "contacts": contacts[keep][order].astype(np.int64),
        "csat": csat[keep][order],
    }


def _nps(
    rng: np.random.Generator,
    cal: Calendar,
    hd: FloatArray,
    present: BoolArray,
    users_day: IntArray,
    tz_sec: IntArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Quarterly NPS waves per account; some users answer each wave."""
    n = hd.shape[0]
    n_users = users_day.max(axis=1)
    u_acc = np.repeat(np.arange(n), n_users)
    u_slot = np.arange(u_acc.size) - np.repeat(np.cumsum(n_users) - n_users, n_users)
    bias = rng.normal(0.0, 1.0, size=u_acc.size)
    offset = np.asarray(rng.integers(20, 111, size=n), dtype=np.int64)
    waves = offset[:, None] + 91 * np.arange(cal.days // 91 + 1)[None, :]
    wave = waves[u_acc]  # (users, waves)
    ok = wave < cal.days
    wd = np.minimum(wave, cal.days - 1)
    ok &= present[u_acc[:, None], wd] & (u_slot[:, None] < users_day[u_acc[:, None], wd])
    ok &= rng.random(wave.shape) < 0.15
    ui, wi = np.nonzero(ok)
    a = u_acc[ui]
    day = wave[ui, wi] + rng.integers(0, 14, size=ui.size)
    h = hd[a, np.minimum(day, cal.days - 1)]
    score = np.clip(np.round(7.8 + 1.6 * h + bias[ui] + rng.normal(0.0, 1.3, size=ui.size)), 0, 10)
    score = score.astype(np.int64)
    ts = day * DAY + local_times(rng, ui.size, 9, 20) - tz_sec[a]
    band = np.where(score <= 6, 0, np.where(score <= 8, 1, 2))
    pick = rng.integers(0, 5, size=ui.size)
    says = rng.random(ui.size) < 0.33
    comment = [
        _COMMENTS[b][p % len(_COMMENTS[b])] if s else None
        for b, p, s in zip(band.tolist(), pick.tolist(), says.tolist(), strict=True)
    ]
    keep = (ts >= csec[a]) & (ts < cal.days * DAY)
    order = np.lexsort((u_slot[ui][keep], ts[keep], a[keep]))
    idx = np.flatnonzero(keep)[order]
    return {
        "acc": a[idx],
        "slot": u_slot[ui][idx],
        "ts": ts[idx],
        "score": score[idx],
        "comment": [comment[i] for i in idx.tolist()],
    }


def _orders(
    rng: np.random.Generator,
    cal: Calendar,
    hd: FloatArray,
    present: BoolArray,
    seg: IntArray,
    cday: IntArray,
    csec: IntArray,
    tz_sec: IntArray,
) -> dict[str, Any]:
    """Onboarding invoices and one-off purchases (training, add-on packs, services)."""
    rate = np.array([0.0015, 0.004, 0.01])[seg][:, None] * np.exp(0.3 * hd) * present
    rate = rate * np.where(cal.weekday >= 5, 0.1, 1.0)[None, :]
    count = rng.poisson(rate)
    ai, di = np.nonzero(count)
    rep = count[ai, di]
    a = np.repeat(ai, rep)
    kind = rng.choice(3, size=a.size, p=[0.4, 0.4, 0.2])
    amount = np.array([800.0, 300.0, 3000.0])[kind] * np.exp(rng.normal(0.0, 0.5, size=a.size))
    ts = np.repeat(di, rep) * DAY + local_times(rng, a.size, 9, 17) - tz_sec[a]
    onboard = np.flatnonzero((cday >= 0) & (seg >= 1))
    o_amount = np.array([0.0, 2000.0, 10000.0])[seg[onboard]] * np.exp(
        rng.normal(0.0, 0.3, size=onboard.size)
    )
    o_ts = csec[onboard] + rng.integers(3600, 5 * DAY, size=onboard.size)
    a = np.concatenate([a, onboard])
    ts = np.concatenate([ts, o_ts])
    amount = np.round(np.concatenate([amount, o_amount]), 2)
    keep = (ts >= csec[a]) & (ts < cal.days * DAY)
    order = np.lexsort((ts[keep], a[keep]))
    return {"acc": a[keep][order], "ts": ts[keep][order], "amount": amount[keep][order]}


def _costs(
    cal: Calendar,
    present: BoolArray,
    seats_day: IntArray,
    ev_acc: IntArray,
    ev_month: IntArray,
    seg: IntArray,
) -> dict[str, Any]:
    """Monthly cost to serve: usage, seats and customer success, for months of presence."""
    n = present.shape[0]
    ks = np.arange(cal.months + 1)
    first = np.maximum(cal.month_start(ks), 0)
    inside = first < cal.days
    ks, first = ks[inside], first[inside]
    length = (cal.month_start(ks + 1) - cal.month_start(ks)).astype(np.float64)
    present_days = np.add.reduceat(present.astype(np.int64), first, axis=1)
    seat_days = np.add.reduceat(seats_day, first, axis=1)
    events = np.bincount(ev_acc * ks.size + ev_month, minlength=n * ks.size).reshape(n, ks.size)
    amount = 0.0004 * events + (0.9 * seat_days + _CS_COST[seg][:, None] * present_days) / length
    ai, mi = np.nonzero(present_days > 0)
    return {"acc": ai, "month": cal.month_start(ks[mi]), "amount": np.round(amount[ai, mi], 2)}


SHAPE = Shape(
    name="default",
    summary="per-seat SaaS; renewal churn follows a latent health",
    accounts=5000,
    months=24,
    simulate=simulate,
    activities=True,
)
