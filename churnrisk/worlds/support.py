"""The ``short-history`` world: an IT-operations tool whose churn follows bad support.

A monitoring and on-call tool sold per seat on monthly terms to startups, scale-ups and
enterprises, exported after only 12 months (2,000 accounts by default). The company is
older than its export: accounts created before the first day have a term running on it.

The mechanism
-------------
**Frustration with support.** Each account runs into problems at its own rate: a
lognormal "complexity" of its environment (sd 0.7) times ``sqrt(seats)``. Every problem
is a ticket with a priority ``P1``-``P4`` and a response target (4, 24, 72 and 120
hours). How it goes depends on the support team's load that month (one company-wide
factor, lognormal, sd 0.25; some months are understaffed for everyone), on the plan
(``business`` and ``premium`` tickets are handled faster than ``team`` ones), on the
account's complexity (complex set-ups bounce between agents) and on luck. A ticket hurts
when it misses its target, needs more contacts, or is abandoned (about 1 %); its pain,
weighted by priority (2.0, 1.2, 0.7, 0.4), lands on the day the ticket is resolved.
About every three months an outage makes a fifth of the accounts open a ``P1`` on the
same day. Pain accumulates into a frustration ``F`` that fades exponentially (90-day
time constant, started 180 days before the export). At each monthly renewal the account
leaves with ``logit p = -5.5 + 1.0 F + 0.5 [seats <= 3] + noise (sd 0.4)``; otherwise
its seats sometimes grow or shrink a little, whatever its frustration.

What each table shows
---------------------
- **tickets** -- ``priority`` ``P1``-``P4``, ``contacts``, ``resolved_at`` (empty while
  open) and a CSAT answer for about 45 % of resolved tickets,
  ``round(4.5 - 1.3 [missed target] - 0.35 (contacts - 1) + noise)`` clipped to 1-5.
  Everything that drives churn is here, noisily.
- **subscriptions** -- one row per monthly term with ``plan``, ``seats``, ``mrr`` and
  ``term_end``; ``end_date`` only for terms that ended before the export. Churn is a term
  with no successor; there are no reactivations.
- **events** -- on-call work (``login``, ``alert_ack``, ``incident_open``, ``runbook_run``
  ...; no ``value``), active weekends too. Usage is *independent* of frustration: a
  user's activity is their own level times the account's, and stops only with churn.
- **accounts** -- ``plan``, ``segment`` (Startup, Scale-up, Enterprise), ``region``
  (AMER, EMEA, APAC), ``owner``, ``seats``; no industry, acquisition cost or referrals.
  No NPS, orders or costs tables.

What a model can and cannot see
-------------------------------
Ticket counts, resolution times, the first-contact share and low CSAT are all in the
data, so frustration is largely observable; only a window as long as its fading (90
days) sees most of it. It cannot see the response targets (they depend on a priority
vocabulary, ``P1``-``P4``, that is not ``urgent``/``high``), nor tell a month when
support was slow for everyone from an account's own bad luck except by comparing
accounts at the same date. Usage, MRR and renewal timing carry almost no signal, and
twelve months leave few label-closed as-of dates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from churnrisk.worlds.base import (
    DAY,
    Calendar,
    FloatArray,
    IntArray,
    Shape,
    World,
    label_array,
    local_times,
    sigmoid,
    table,
    ts_array,
)
from churnrisk.worlds.kit import (
    Terms,
    active_days,
    company_names,
    day_factor,
    events_table,
    observed,
    select,
    session_times,
    slots,
    term_table,
    ticket_ids,
    tickets_table,
)

SEGMENTS = ("Startup", "Scale-up", "Enterprise")
_SEGMENT_P = np.array([0.5, 0.35, 0.15])
PLANS = ("team", "business", "premium")
_PLAN_P = np.array([[0.7, 0.25, 0.05], [0.35, 0.5, 0.15], [0.05, 0.45, 0.5]])  # by segment
_PRICE = np.array([19.0, 39.0, 69.0])  # per seat and month
_HANDLING = np.array([1.0, 0.8, 0.5])  # resolution time factor by plan
_SEATS_MEDIAN = np.array([4.0, 10.0, 30.0])
REGIONS = ("AMER", "EMEA", "APAC")
_REGION_P = np.array([0.5, 0.35, 0.15])
_UTC_OFFSET_H = np.array([-6, 1, 9])
OWNERS = ("Dana Kim", "Ravi Patel", "Elena Petrova", "Tom Walsh", "Yuki Sato")
EVENT_TYPES = (
    "login",
    "alert_ack",
    "alert_view",
    "incident_open",
    "runbook_run",
    "dashboard_view",
    "query_run",
    "oncall_swap",
)
_EVENT_P = np.array([0.0, 0.25, 0.2, 0.05, 0.08, 0.22, 0.15, 0.05])
PRIORITIES = ("P1", "P2", "P3", "P4")
_PRIORITY_P = np.array([0.05, 0.2, 0.5, 0.25])
_TARGET_H = np.array([4.0, 24.0, 72.0, 120.0])
_BASE_H = np.array([3.0, 14.0, 40.0, 70.0])
_PAIN_WEIGHT = np.array([2.0, 1.2, 0.7, 0.4])
_NAMES = (
    ("Atlas", "Beacon", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Helix"),
    ("Cloud", "Ops", "Data", "Net", "Stack", "Byte"),
    ("Inc", "GmbH", "Ltd", "Co"),
)
_WARMUP = 180  # days of tickets simulated before the export, so frustration is settled
_FADE_DAYS = 90.0


def simulate(
    rng: np.random.Generator, cal: Calendar, world: World, lo: int, hi: int, first_ticket: int
) -> dict[str, pa.Table]:
    """Simulate accounts ``lo:hi`` and return their tables."""
    n = hi - lo
    cday = world.created_day[lo:hi]
    csec = world.created_sec[lo:hi]
    a = _attributes(rng, n)
    load = _support_load(world, cal)
    tk = _tickets(rng, cal, a, load, cday)
    frustration = _frustration(tk, n, cal)
    terms = _terms(rng, cal, a, frustration, cday)
    paying = terms.paying()
    day = tk["created"] // DAY
    keep = (day >= 0) & (tk["created"] < cal.days * DAY)
    keep &= paying[tk["acc"], np.clip(day, 0, cal.days - 1)] & observed(
        cal, csec, tk["acc"], tk["created"]
    )
    tk = {k: v[keep] for k, v in tk.items()}
    ev = _events(rng, cal, a, paying, csec)
    return _tables(cal, world, lo, hi, a, terms, tk, ev, first_ticket)


def _attributes(rng: np.random.Generator, n: int) -> dict[str, Any]:
    seg = rng.choice(3, size=n, p=_SEGMENT_P)
    plan = (rng.random(n)[:, None] > np.cumsum(_PLAN_P, axis=1)[seg][:, :-1]).sum(axis=1)
    seats = np.maximum(1, np.round(_SEATS_MEDIAN[seg] * np.exp(rng.normal(0, 0.5, n))))
    region = rng.choice(3, size=n, p=_REGION_P)
    return {
        "seg": seg,
        "plan": plan,
        "seats": seats.astype(np.int64),
        "region": region,
        "tz_sec": _UTC_OFFSET_H[region] * 3600,
        "owner": rng.integers(0, len(OWNERS), size=n),
        "complexity": np.exp(rng.normal(0.0, 0.7, size=n)),
        "activity": np.exp(rng.normal(0.0, 0.4, size=n)),
        "names": company_names(rng, n, _NAMES),
    }


def _support_load(world: World, cal: Calendar) -> dict[str, Any]:
    """Company-wide: the support team's load per month, and the outage days."""
    company = np.random.default_rng(world.company)
    k0 = int(cal.split(np.array([-_WARMUP]))[0][0])
    load = np.exp(company.normal(0.0, 0.25, size=cal.months + 1 - k0))
    outages = np.sort(company.integers(-_WARMUP, cal.days, size=max(1, cal.months // 3)))
    return {"k0": k0, "load": load, "outages": outages}


def _tickets(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    load: dict[str, Any],
    cday: IntArray,
) -> dict[str, Any]:
    """Every ticket from the warm-up on, as if every account paid throughout."""
    n = cday.size
    days = np.arange(-_WARMUP, cal.days)
    weekday = (days + cal.epoch_day + 3) % 7
    rate = 0.012 * np.sqrt(a["seats"]) * a["complexity"]
    rate_day = rate[:, None] * np.where(weekday >= 5, 0.4, 1.0)[None, :]
    count = rng.poisson(rate_day)
    ai, di = np.nonzero(count)
    rep = count[ai, di]
    acc = np.repeat(ai, rep)
    day = np.repeat(days[di], rep)
    prio = rng.choice(4, size=acc.size, p=_PRIORITY_P)
    hit = rng.random((n, load["outages"].size)) < 0.2
    oa, oi = np.nonzero(hit)
    acc = np.concatenate([acc, oa])
    day = np.concatenate([day, load["outages"][oi]])
    prio = np.concatenate([prio, np.zeros(oa.size, dtype=np.int64)])
    alive = day >= cday[acc]
    acc, day, prio = acc[alive], day[alive], prio[alive]
    return _handle(rng, cal, a, load, acc, day, prio)


def _handle(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    load: dict[str, Any],
    acc: IntArray,
    day: IntArray,
    prio: IntArray,
) -> dict[str, Any]:
    """How each ticket went: contacts, hours to resolve, CSAT and the pain it caused."""
    size = acc.size
    created = day * DAY + local_times(rng, size, 8, 19) - a["tz_sec"][acc]
    busy = load["load"][cal.split(day)[0] - load["k0"]]
    cx = a["complexity"][acc]
    first = rng.random(size) < sigmoid(1.2 - 0.7 * np.log(cx) - 0.8 * (busy - 1.0))
    contacts = np.where(first, 1, 1 + rng.geometric(0.45, size=size)).astype(np.int64)
    hours = (
        _BASE_H[prio]
        * busy
        * _HANDLING[a["plan"][acc]]
        * np.exp(rng.normal(0.0, 0.9, size=size))
        * contacts**0.6
    )
    abandoned = rng.random(size) < 0.01
    resolved = created + np.maximum(600, np.round(hours * 3600)).astype(np.int64)
    missed = (hours > _TARGET_H[prio]) | abandoned
    pain = _PAIN_WEIGHT[prio] * (missed + 0.35 * (contacts - 1) + 1.5 * abandoned)
    felt = np.where(abandoned, created + 14 * DAY, resolved) // DAY + 1
    end = cal.days * DAY
    open_ = abandoned | (resolved >= end)
    score = np.round(4.5 - 1.3 * missed - 0.35 * (contacts - 1) + rng.normal(0, 0.8, size))
    answered = ~open_ & (rng.random(size) < 0.45)
    csat = np.where(answered, np.clip(score, 1, 5), 0).astype(np.int64)
    return select(
        np.ones(size, dtype=bool),
        (acc, created),
        acc=acc,
        created=created,
        resolved=np.where(open_, -1, resolved),
        priority=prio,
        contacts=contacts,
        csat=csat,
        pain=pain,
        felt=felt,
    )


def _frustration(tk: dict[str, Any], n: int, cal: Calendar) -> FloatArray:
    """Frustration per account on each day of the export: fading sum of felt pain."""
    span = _WARMUP + cal.days
    pain = np.zeros((n, span + 1))
    felt = np.clip(tk["felt"] + _WARMUP, 0, span)
    np.add.at(pain, (tk["acc"], felt), tk["pain"])
    fade = np.exp(-1.0 / _FADE_DAYS)
    level = np.zeros((n, span))
    for d in range(1, span):
        level[:, d] = level[:, d - 1] * fade + pain[:, d]
    return level[:, _WARMUP:]


def _terms(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    frustration: FloatArray,
    cday: IntArray,
) -> Terms:
    """Monthly terms; each renewal is where frustration turns into churn."""
    n = cday.size
    ck, anchor = cal.split(cday)
    terms = Terms(cal, anchor)
    seats = a["seats"].copy()
    one = np.ones(n, dtype=np.int64)

    def price() -> FloatArray:
        return np.asarray(seats * _PRICE[a["plan"]], dtype=np.float64)

    terms.begin_running(cday < 0, ck, one, a["plan"], seats, price())
    for k in range(cal.months + 1):
        kk = np.full(n, k, dtype=np.int64)
        due, r = terms.due(k)
        new = (ck == k) & (cday >= 0)
        terms.begin(new, kk, r, one, a["plan"], seats, price())
        f = frustration[np.arange(n), np.clip(r, 0, cal.days - 1)]
        logit = -5.5 + 1.0 * f + 0.5 * (seats <= 3) + rng.normal(0.0, 0.4, size=n)
        churn = due & (rng.random(n) < sigmoid(logit))
        terms.stop(churn, r)
        renew = due & ~churn
        u = rng.random(n)
        grow = renew & (u < 0.03)
        shrink = renew & (u > 0.98) & (seats > 1)
        seats = seats + grow * np.maximum(1, seats // 5) - shrink * np.maximum(1, seats // 6)
        terms.begin(renew, kk, r, one, a["plan"], seats, price())
    return terms


def _events(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    paying: Any,
    csec: IntArray,
) -> dict[str, Any]:
    """On-call work by each account's users while it pays; independent of frustration."""
    users = np.maximum(1, np.ceil(0.8 * a["seats"])).astype(np.int64)
    u_acc, u_slot = slots(users)
    level = 0.1 * a["activity"][u_acc] * np.exp(rng.normal(-0.2, 0.7, size=u_acc.size))
    level = np.minimum(level, 0.8)
    factor = day_factor(cal, 0.35, 0.5)
    ui, day = active_days(
        rng, cal, lambda d0, d1: level[:, None] * factor[None, d0:d1] * paying[u_acc, d0:d1]
    )
    acc = u_acc[ui]
    per = 1 + rng.poisson(2.5, size=ui.size)
    ts, first = session_times(rng, day, a["tz_sec"][acc], per)
    etype = rng.choice(len(EVENT_TYPES), size=ts.size, p=_EVENT_P)
    etype[first] = np.where(rng.random(first.size) < 0.8, 0, etype[first])
    ev_acc, user = np.repeat(acc, per), np.repeat(ui, per)
    keep = observed(cal, csec, ev_acc, ts)
    ev = select(keep, (user, ts, ev_acc), acc=ev_acc, user=user, ts=ts, type=etype)
    return {**ev, "users": (u_acc, u_slot)}


def _tables(
    cal: Calendar,
    world: World,
    lo: int,
    hi: int,
    a: dict[str, Any],
    terms: Terms,
    tk: dict[str, Any],
    ev: dict[str, Any],
    first_ticket: int,
) -> dict[str, pa.Table]:
    ids = pa.array(world.ids[lo:hi], pa.string())
    u_acc, u_slot = ev["users"]
    user_ids = pa.array(
        [f"{world.ids[lo + x]}-U{s + 1:03d}" for x, s in zip(u_acc, u_slot, strict=True)],
        pa.string(),
    )
    return {
        "accounts": table(
            "accounts",
            {
                "account_id": ids,
                "created_at": ts_array(cal, world.created_sec[lo:hi]),
                "name": a["names"],
                "plan": label_array(PLANS, a["plan"]),
                "segment": label_array(SEGMENTS, a["seg"]),
                "region": label_array(REGIONS, a["region"]),
                "owner": label_array(OWNERS, a["owner"]),
                "seats": pa.array(a["seats"], pa.int64()),
            },
        ),
        "subscriptions": term_table(cal, ids, terms.rows.arrays(), PLANS),
        "events": events_table(cal, ids, user_ids, ev, EVENT_TYPES),
        "tickets": tickets_table(
            cal, ids, tk, ticket_ids(first_ticket, tk["acc"].size, "INC-", 6), PRIORITIES
        ),
    }


SHAPE = Shape(
    name="short-history",
    summary="IT-ops tool, monthly terms; churn follows bad support",
    accounts=2000,
    months=12,
    simulate=simulate,
    stream=(2,),
)
