"""The ``renewal-pricing`` world: monthly and annual billing, churn at renewal on price.

A project-management tool sold per seat on monthly or annual terms (3,000 accounts over
24 months by default); annual terms pay 17 % less than monthly ones.

The mechanism
-------------
**Price shocks at renewal, weighed against use.** The price an account pays changes
only when a term renews, and that is the only moment it can leave (annual accounts
never leave mid-term, so their risk is concentrated at the term end):

- a first-term discount expires: new annual contracts get a sales discount of 10-35 %
  (60 % of them) on their first year, new monthly ones 40 % off their first three
  monthly terms; the renewal after it pays the full price;
- the list price rises once, by 10-20 %, on a month drawn for the whole company in the
  middle third of the history; every term starting on or after it pays the new list;
- utilisation: each account uses a share of the seats it pays for (about 70 %,
  drifting month by month), and an account using few of its seats is readier to leave.

At a renewal with price ratio ``rho`` (new price per seat / current) the account leaves
with ``logit p = base + 4.0 s log(rho) + 3.0 max(0, 0.75 - utilisation) + noise
(sd 0.4)``, ``base`` -4.3 for monthly and -2.3 for annual terms, ``s`` the account's
price sensitivity (SMB 1.3, Mid-Market 0.9, Enterprise 0.5, times a lognormal). An
account that stays after a rise with spare seats often cuts its seats to what it uses
(contraction); one using almost all of them sometimes adds seats; a few monthly
accounts switch to annual billing. Accounts that leave do not come back.

What each table shows
---------------------
- **subscriptions** -- one row per term (a month or a year) with ``plan``, ``seats``,
  ``mrr`` (seats times the price per seat actually paid, discount included) and
  ``term_end``; ``end_date`` only for terms ended before the export. The billing
  interval is the length of the term; a discount shows only as a lower ``mrr`` per seat.
- **tickets** -- ordinary questions at a low rate, plus a billing question after the
  renewal notice (sent 30 days ahead) when the price is about to rise, more often from
  sensitive accounts; ``priority`` low/normal/high and ``contacts``, no CSAT.
- **events** -- project work (``sign_in``, ``task_create``, ``board_view`` ...; no
  ``value``) by the users of the account, as many as its utilisation says.
- **accounts** -- ``plan``, ``segment``, ``industry``, ``region``, sign-up ``seats`` and
  ``acquisition_cost``. No NPS, orders or costs.

What a model can and cannot see
-------------------------------
It sees when each term ends (``term_end``), the MRR and seats, the tenure (a first
renewal is near after one term), distinct users against seats (utilisation), and the
billing tickets. It cannot see the price a renewal will bring: the expiring discount is
visible only as a low MRR per seat for the plan, and the list price rise is announced
nowhere in the data.
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

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
_SEGMENT_P = np.array([0.6, 0.3, 0.1])
PLANS = ("basic", "pro", "business")
_PLAN_P = np.array([[0.55, 0.4, 0.05], [0.2, 0.55, 0.25], [0.05, 0.35, 0.6]])  # by segment
_LIST = np.array([10.0, 20.0, 35.0])  # list price per seat and month, monthly billing
_ANNUAL = 0.83  # annual billing's price factor
_ANNUAL_P = np.array([0.25, 0.55, 0.85])  # share of annual terms by segment
_SEATS_MEDIAN = np.array([5.0, 18.0, 60.0])
_SENSITIVITY = np.array([1.3, 0.9, 0.5])
_CAC = np.array([400.0, 3000.0, 15000.0])
INDUSTRIES = ("Construction", "Marketing", "Software", "Education", "Manufacturing", "Retail")
REGIONS = ("North America", "Europe", "Asia Pacific")
_UTC_OFFSET_H = np.array([-6, 1, 9])
EVENT_TYPES = (
    "sign_in",
    "task_create",
    "task_complete",
    "comment",
    "file_upload",
    "board_view",
    "timeline_view",
    "export_csv",
)
_EVENT_P = np.array([0.0, 0.18, 0.16, 0.2, 0.06, 0.25, 0.12, 0.03])
PRIORITIES = ("low", "normal", "high")
_NAMES = (
    ("Alder", "Brisk", "Copper", "Drift", "Evergreen", "Fathom", "Glen", "Hollow"),
    ("Build", "Works", "Media", "Craft", "Point", "Line"),
)
_PROMO_TERMS = 3  # monthly terms at the introductory price


def simulate(
    rng: np.random.Generator, cal: Calendar, world: World, lo: int, hi: int, first_ticket: int
) -> dict[str, pa.Table]:
    """Simulate accounts ``lo:hi`` and return their tables."""
    n = hi - lo
    cday = world.created_day[lo:hi]
    csec = world.created_sec[lo:hi]
    a = _attributes(rng, n)
    rise = _price_rise(world, cal)
    adoption = _adoption(rng, cal, n)
    terms, notices = _terms(rng, cal, a, rise, adoption, cday)
    paying = terms.paying()
    ev = _events(rng, cal, a, adoption, paying, csec)
    tk = _tickets(rng, cal, a, paying, notices, csec)
    ids = pa.array(world.ids[lo:hi], pa.string())
    u_acc, u_slot = ev["users"]
    users = pa.array([f"{world.ids[lo + x]}:{s + 1}" for x, s in zip(u_acc, u_slot, strict=True)])
    return {
        "accounts": table(
            "accounts",
            {
                "account_id": ids,
                "created_at": ts_array(cal, csec),
                "name": a["names"],
                "plan": label_array(PLANS, a["plan"]),
                "segment": label_array(SEGMENTS, a["seg"]),
                "industry": label_array(INDUSTRIES, a["industry"]),
                "region": label_array(REGIONS, a["region"]),
                "seats": pa.array(a["seats"], pa.int64()),
                "acquisition_cost": pa.array(a["cac"], pa.float64()),
            },
        ),
        "subscriptions": term_table(cal, ids, terms.rows.arrays(), PLANS),
        "events": events_table(cal, ids, users, ev, EVENT_TYPES),
        "tickets": tickets_table(
            cal, ids, tk, ticket_ids(first_ticket, tk["acc"].size, "SR", 6), PRIORITIES
        ),
    }


def _attributes(rng: np.random.Generator, n: int) -> dict[str, Any]:
    seg = rng.choice(3, size=n, p=_SEGMENT_P)
    plan = (rng.random(n)[:, None] > np.cumsum(_PLAN_P, axis=1)[seg][:, :-1]).sum(axis=1)
    seats = np.maximum(1, np.round(_SEATS_MEDIAN[seg] * np.exp(rng.normal(0, 0.5, n))))
    region = rng.choice(3, size=n, p=[0.5, 0.35, 0.15])
    return {
        "seg": seg,
        "plan": plan,
        "seats": seats.astype(np.int64),
        "annual": rng.random(n) < _ANNUAL_P[seg],
        "discount": np.where(rng.random(n) < 0.6, rng.uniform(0.1, 0.35, n), 0.0),
        "sensitivity": _SENSITIVITY[seg] * np.exp(rng.normal(0.0, 0.3, size=n)),
        "industry": rng.integers(0, len(INDUSTRIES), size=n),
        "region": region,
        "tz_sec": _UTC_OFFSET_H[region] * 3600,
        "cac": np.round(_CAC[seg] * np.exp(rng.normal(0.0, 0.4, size=n)), 2),
        "activity": np.exp(rng.normal(0.0, 0.4, size=n)),
        "names": company_names(rng, n, _NAMES),
    }


def _price_rise(world: World, cal: Calendar) -> tuple[int, float]:
    """Company-wide: the first day of the list price rise, and its size."""
    company = np.random.default_rng(world.company)
    k = int(company.integers(cal.months // 3, max(cal.months // 3 + 1, 2 * cal.months // 3)))
    return int(cal.month_start(k)), float(company.uniform(0.10, 0.20))


def _adoption(rng: np.random.Generator, cal: Calendar, n: int) -> FloatArray:
    """Share of paid seats in use, per account and month index (a drifting logit)."""
    steps = rng.normal(0.0, 0.15, size=(n, cal.months + 2))
    steps[:, 0] = rng.normal(0.9, 0.8, size=n)
    return np.asarray(1.0 / (1.0 + np.exp(-np.cumsum(steps, axis=1))))


def _terms(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    rise: tuple[int, float],
    adoption: FloatArray,
    cday: IntArray,
) -> tuple[Terms, dict[str, list[IntArray]]]:
    """Terms and their prices; each renewal weighs the new price against use."""
    n = cday.size
    ck, anchor = cal.split(cday)
    terms = Terms(cal, anchor)
    state = {"seats": a["seats"].copy(), "annual": a["annual"].copy(), "no": np.zeros(n, int)}
    notices: dict[str, list[IntArray]] = {"acc": [], "day": []}
    pre = cday < 0
    state["no"][pre] = _PROMO_TERMS + 1  # older accounts are past any introductory price
    terms.begin_running(
        pre, ck, _length(state), a["plan"], state["seats"], _mrr(a, state, -1, rise)
    )
    for k in range(cal.months + 1):
        kk = np.full(n, k, dtype=np.int64)
        due, r = terms.due(k)
        new = (ck == k) & ~pre
        terms.begin(new, kk, r, _length(state), a["plan"], state["seats"], _mrr(a, state, r, rise))
        old = _per_seat(a, state, terms.start, rise)
        state["no"] = state["no"] + due
        rho = _per_seat(a, state, r, rise) / old
        util = np.minimum(1.0, adoption[:, k] * a["seats"] / state["seats"])
        notice = due & (rho > 1.05) & (rng.random(n) < 0.15 + 0.2 * a["sensitivity"])
        notices["acc"].append(np.flatnonzero(notice))
        notices["day"].append((r - rng.integers(3, 30, size=n))[notice])
        logit = (
            np.where(state["annual"], -2.3, -4.3)
            + 4.0 * a["sensitivity"] * np.log(rho)
            + 3.0 * np.maximum(0.0, 0.75 - util)
            + rng.normal(0.0, 0.4, size=n)
        )
        churn = due & (rng.random(n) < sigmoid(logit))
        terms.stop(churn, r)
        renew = due & ~churn
        _resize(rng, state, renew, rho, util)
        terms.begin(
            renew, kk, r, _length(state), a["plan"], state["seats"], _mrr(a, state, r, rise)
        )
    return terms, notices


def _length(state: dict[str, Any]) -> IntArray:
    return np.where(state["annual"], 12, 1).astype(np.int64)


def _per_seat(a: dict[str, Any], state: dict[str, Any], day: Any, rise: tuple[int, float]) -> Any:
    """Price per seat and month of a term starting on ``day`` (term number ``state['no']``)."""
    listed = _LIST[a["plan"]] * np.where(np.asarray(day) >= rise[0], 1.0 + rise[1], 1.0)
    annual = state["annual"]
    intro = np.where(annual, (state["no"] == 0) * a["discount"], (state["no"] < _PROMO_TERMS) * 0.4)
    return listed * np.where(annual, _ANNUAL, 1.0) * (1.0 - intro)


def _mrr(a: dict[str, Any], state: dict[str, Any], day: Any, rise: tuple[int, float]) -> Any:
    return state["seats"] * _per_seat(a, state, day, rise)


def _resize(
    rng: np.random.Generator,
    state: dict[str, Any],
    renew: BoolArray,
    rho: FloatArray,
    util: FloatArray,
) -> None:
    """Seats and billing interval of the renewing accounts' next term."""
    u = rng.random((renew.size, 3))
    seats = state["seats"]
    cut = renew & (rho > 1.05) & (util < 0.8) & (u[:, 0] < 0.5)
    used = np.maximum(1, np.ceil(util * seats * 1.05)).astype(np.int64)
    grow = renew & (util > 0.9) & (u[:, 1] < 0.15)
    seats = np.where(cut, np.minimum(seats, used), seats)
    state["seats"] = np.where(grow, np.ceil(seats * 1.2), seats).astype(np.int64)
    switch = renew & ~state["annual"] & (u[:, 2] < 0.03)
    state["annual"] = state["annual"] | switch


def _events(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    adoption: FloatArray,
    paying: BoolArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Work by the users in seat: as many as the month's adoption says."""
    u_acc, u_slot = slots(a["seats"] + a["seats"] // 2 + 1)
    level = 0.05 * a["activity"][u_acc] * np.exp(rng.normal(-0.2, 0.6, size=u_acc.size))
    factor = day_factor(cal, 0.1, 0.4)
    month = np.clip(cal.month_index, 0, adoption.shape[1] - 1)

    def prob(d0: int, d1: int) -> Any:
        users = np.ceil(adoption[u_acc][:, month[d0:d1]] * a["seats"][u_acc, None])
        in_seat = u_slot[:, None] < users
        return level[:, None] * factor[None, d0:d1] * in_seat * paying[u_acc, d0:d1]

    ui, day = active_days(rng, cal, prob)
    acc = u_acc[ui]
    per = 1 + rng.poisson(2.0, size=ui.size)
    ts, first = session_times(rng, day, a["tz_sec"][acc], per)
    etype = rng.choice(len(EVENT_TYPES), size=ts.size, p=_EVENT_P)
    etype[first] = 0
    ev_acc, user = np.repeat(acc, per), np.repeat(ui, per)
    keep = observed(cal, csec, ev_acc, ts)
    ev = select(keep, (user, ts, ev_acc), acc=ev_acc, user=user, ts=ts, type=etype)
    return {**ev, "users": (u_acc, u_slot)}


def _tickets(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    paying: BoolArray,
    notices: dict[str, list[IntArray]],
    csec: IntArray,
) -> dict[str, Any]:
    """Ordinary questions while paying, and billing questions after a price notice."""
    count = rng.poisson(0.004 * np.sqrt(a["seats"])[:, None] * paying)
    ai, di = np.nonzero(count)
    acc = np.concatenate([np.repeat(ai, count[ai, di]), np.concatenate(notices["acc"])])
    day = np.concatenate([np.repeat(di, count[ai, di]), np.concatenate(notices["day"])])
    billing = np.arange(acc.size) >= count.sum()
    prio = np.where(billing, 1, rng.choice(3, size=acc.size, p=[0.4, 0.45, 0.15]))
    created = day * DAY + local_times(rng, acc.size, 8, 18) - a["tz_sec"][acc]
    contacts = np.where(rng.random(acc.size) < 0.6, 1, 1 + rng.geometric(0.5, size=acc.size))
    hours = np.array([30.0, 16.0, 6.0])[prio] * np.exp(rng.normal(0.0, 0.8, size=acc.size))
    resolved = created + np.maximum(600, np.round(hours * 3600 * contacts**0.5)).astype(np.int64)
    return select(
        observed(cal, csec, acc, created),
        (acc, created),
        acc=acc,
        created=created,
        resolved=np.where(resolved >= cal.days * DAY, -1, resolved),
        priority=prio,
        contacts=contacts.astype(np.int64),
    )


SHAPE = Shape(
    name="renewal-pricing",
    summary="monthly/annual billing; renewal churn on price rises",
    accounts=3000,
    months=24,
    simulate=simulate,
    stream=(4,),
)
