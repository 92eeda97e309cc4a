"""The ``event-mix`` world: a CRM whose leaving accounts change what they do, not how much.

A CRM for sales teams, sold per seat on monthly terms (2,000 accounts over 18 months by
default). Its event log has its own vocabulary of 25 event types, and deal events carry
the deal's amount in ``value``.

The mechanism
-------------
**Evaluating a replacement.** Each account's sales success ``s`` is a monthly AR(1)
walk (``s' = 0.85 s + N(0, 0.5)``) that sets the share of closed deals it wins
(``sigmoid(-0.4 + 0.9 s)``) and their size. A team whose pipeline goes badly blames its
tools: each month, on its own day of the month, an account starts evaluating another
CRM with probability ``sigmoid(-3.6 - 0.9 s)``. From then on its sessions change: a
growing share of its events (8 % rising by 0.4 points a day to 35 %) are exit work --
``data_export`` (``value``: records exported), ``user_remove``,
``integration_disconnect``, ``bulk_delete``, ``billing_view`` -- while sessions grow a
little longer, so the account's event *count* holds or rises even as its ordinary work
thins. Each later month it decides with probability 0.5: to leave (three times in four)
or to stay and go back to normal. An account that has decided to leave does not renew at
its next monthly renewal. Outside an evaluation, exit work is 1.5 % of events; 5 % of
the accounts are already evaluating when the export begins.

What each table shows
---------------------
- **events** -- ``login`` opens most sessions; then contacts, deals
  (``deal_create``/``deal_won``/``deal_lost`` with the amount in ``value``), emails,
  calls, meetings, tasks, notes, reports, pipeline views, imports (``value``: records),
  invites and integrations, and the five exit types; ``user_id`` is an e-mail address.
- **tickets** -- ``ticket_id``, ``created_at`` and ``resolved_at`` only; evaluating
  accounts ask more questions (how do I export ...).
- **subscriptions** -- one row per monthly term with ``plan``, ``seats``, ``mrr`` and
  ``term_end``; seats grow a little with success. ``end_date`` only for terms ended
  before the export.
- **accounts** -- ``segment`` (SMB, Commercial, Enterprise), ``industry``, ``region``,
  ``owner``, ``seats``; ids like ``ACCT-00042``. No NPS, orders or costs.

What a model can and cannot see
-------------------------------
Everything is in the events, but only by type: total counts, distinct users and
active days barely move (counts even rise) before an account leaves, so a model that
reads volume is misled. Per-type counts or shares (``data_export`` and the other exit
types, 30 days) and the sum of won deal ``value`` carry the signal; ``event_types_30d``
rises a little as exit types appear. Nothing says why a team started evaluating.
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
    NEVER,
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

SEGMENTS = ("SMB", "Commercial", "Enterprise")
_SEGMENT_P = np.array([0.55, 0.33, 0.12])
PLANS = ("essentials", "professional", "enterprise")
_PLAN_P = np.array([[0.6, 0.35, 0.05], [0.25, 0.55, 0.2], [0.05, 0.4, 0.55]])  # by segment
_PRICE = np.array([25.0, 50.0, 90.0])  # per seat and month
_SEATS_MEDIAN = np.array([4.0, 12.0, 40.0])
_DEAL_SIZE = np.array([3000.0, 15000.0, 60000.0])
INDUSTRIES = ("SaaS", "Insurance", "Real Estate", "Staffing", "Wholesale", "Telecom")
REGIONS = ("NA", "EU", "UK", "ANZ")
_UTC_OFFSET_H = np.array([-6, 1, 0, 10])
OWNERS = ("Chris Novak", "Priya Shah", "Jonas Berg", "Ana Lima", "Sam Okoye", "Lea Moreau")
CORE_TYPES = (
    "login",
    "contact_create",
    "contact_update",
    "deal_create",
    "deal_update",
    "deal_stage_change",
    "deal_won",
    "deal_lost",
    "email_logged",
    "call_logged",
    "meeting_booked",
    "task_create",
    "task_complete",
    "note_add",
    "report_view",
    "dashboard_view",
    "pipeline_view",
    "import_contacts",
    "user_invite",
    "integration_connect",
)
EXIT_TYPES = ("data_export", "user_remove", "integration_disconnect", "bulk_delete", "billing_view")
EVENT_TYPES = CORE_TYPES + EXIT_TYPES
_CORE_W = np.array(
    [0.0, 8, 12, 5, 8, 5, 3, 0, 14, 7, 4, 7, 6, 7, 4, 5, 5, 0.5, 0.5, 0.5], dtype=np.float64
)
_EXIT_W = np.array([35.0, 15, 10, 15, 25])
_WON, _LOST = CORE_TYPES.index("deal_won"), CORE_TYPES.index("deal_lost")
_DEALS = np.isin(np.arange(len(EVENT_TYPES)), [3, _WON, _LOST])
_NAMES = (
    ("Apex", "Bolt", "Crest", "Dune", "Echo", "Flint", "Grove", "Hatch", "Iris", "Jade"),
    ("Sales", "Realty", "Brokers", "Supply", "Talent", "Telco"),
)
_BASE_EXIT = 0.015


def simulate(
    rng: np.random.Generator, cal: Calendar, world: World, lo: int, hi: int, first_ticket: int
) -> dict[str, pa.Table]:
    """Simulate accounts ``lo:hi`` and return their tables."""
    n = hi - lo
    cday = world.created_day[lo:hi]
    csec = world.created_sec[lo:hi]
    a = _attributes(rng, n, cal)
    terms, episodes = _terms(rng, cal, a, cday)
    paying = terms.paying()
    exit_share = _exit_share(cal, n, episodes)
    ev = _events(rng, cal, a, paying, exit_share, csec)
    tk = _tickets(rng, cal, a, paying, exit_share, csec)
    ids = pa.array(world.ids[lo:hi], pa.string())
    u_acc, u_slot = ev["users"]
    users = pa.array(
        [
            f"user{s + 1}@{world.ids[lo + x].lower()}.example"
            for x, s in zip(u_acc, u_slot, strict=True)
        ]
    )
    return {
        "accounts": table(
            "accounts",
            {
                "account_id": ids,
                "created_at": ts_array(cal, csec),
                "name": a["names"],
                "segment": label_array(SEGMENTS, a["seg"]),
                "industry": label_array(INDUSTRIES, a["industry"]),
                "region": label_array(REGIONS, a["region"]),
                "owner": label_array(OWNERS, a["owner"]),
                "seats": pa.array(a["seats"], pa.int64()),
            },
        ),
        "subscriptions": term_table(cal, ids, terms.rows.arrays(), PLANS),
        "events": events_table(cal, ids, users, ev, EVENT_TYPES),
        "tickets": tickets_table(cal, ids, tk, ticket_ids(first_ticket, tk["acc"].size, "CS-", 6)),
    }


def _attributes(rng: np.random.Generator, n: int, cal: Calendar) -> dict[str, Any]:
    seg = rng.choice(3, size=n, p=_SEGMENT_P)
    plan = (rng.random(n)[:, None] > np.cumsum(_PLAN_P, axis=1)[seg][:, :-1]).sum(axis=1)
    seats = np.maximum(1, np.round(_SEATS_MEDIAN[seg] * np.exp(rng.normal(0, 0.5, n))))
    region = rng.choice(4, size=n, p=[0.5, 0.25, 0.15, 0.1])
    steps = rng.normal(0.0, 0.5, size=(n, cal.months + 2))
    success = np.empty_like(steps)
    success[:, 0] = rng.normal(0.0, 1.0, size=n)
    for k in range(1, steps.shape[1]):
        success[:, k] = 0.85 * success[:, k - 1] + steps[:, k]
    return {
        "seg": seg,
        "plan": plan,
        "seats": seats.astype(np.int64),
        "region": region,
        "tz_sec": _UTC_OFFSET_H[region] * 3600,
        "industry": rng.integers(0, len(INDUSTRIES), size=n),
        "owner": rng.integers(0, len(OWNERS), size=n),
        "success": success,
        "rhythm": rng.integers(0, 28, size=n),  # the account's own day of the month
        "activity": np.exp(rng.normal(0.0, 0.4, size=n)),
        "names": company_names(rng, n, _NAMES),
    }


def _terms(
    rng: np.random.Generator, cal: Calendar, a: dict[str, Any], cday: IntArray
) -> tuple[Terms, tuple[IntArray, IntArray, IntArray]]:
    """Monthly terms and the evaluation episodes: (account, first day, last day + 1)."""
    n = cday.size
    ck, anchor = cal.split(cday)
    terms = Terms(cal, anchor)
    seats, plan, one = a["seats"].copy(), a["plan"], np.ones(n, dtype=np.int64)
    since = np.full(n, NEVER, dtype=np.int64)  # evaluating since (NEVER: not evaluating)
    leave_from = np.full(n, NEVER, dtype=np.int64)  # decided to leave on this day
    ep: list[tuple[IntArray, IntArray, IntArray]] = []
    pre = cday < 0  # some accounts were already evaluating when the export begins
    already = pre & (rng.random(n) < 0.05)
    since[already] = -rng.integers(1, 60, size=n)[already]
    terms.begin_running(pre, ck, one, plan, seats, seats * _PRICE[plan])
    for k in range(cal.months + 1):
        kk = np.full(n, k, dtype=np.int64)
        t = np.asarray(cal.month_start(k) + a["rhythm"], dtype=np.int64)
        s = a["success"][:, k]
        live = terms.active & (cday <= t) & (leave_from == NEVER)
        start = live & (since == NEVER) & (rng.random(n) < sigmoid(-3.6 - 0.9 * s))
        decide = live & (since != NEVER) & (since < t) & ~start & (rng.random(n) < 0.5)
        leave = decide & (rng.random(n) < 0.75)
        stay = decide & ~leave
        ep.append((np.flatnonzero(stay), since[stay], t[stay]))
        since = np.where(start, t, np.where(stay, NEVER, since))
        leave_from = np.where(leave, t, leave_from)
        due, r = terms.due(k)
        terms.begin((ck == k) & ~pre, kk, r, one, plan, seats, seats * _PRICE[plan])
        churn = due & (leave_from != NEVER) & (leave_from <= r)
        ep.append((np.flatnonzero(churn), since[churn], r[churn]))
        terms.stop(churn, r)
        since[churn] = NEVER
        renew = due & ~churn
        grow = renew & (rng.random(n) < 0.02 * np.exp(0.3 * s))
        seats = np.where(grow, np.ceil(seats * 1.2), seats).astype(np.int64)
        terms.begin(renew, kk, r, one, plan, seats, seats * _PRICE[plan])
    still = since != NEVER
    ep.append((np.flatnonzero(still), since[still], np.full(int(still.sum()), cal.days)))
    acc, first, last = (np.concatenate([e[i] for e in ep]) for i in range(3))
    return terms, (acc, first, last)


def _exit_share(cal: Calendar, n: int, episodes: tuple[IntArray, IntArray, IntArray]) -> Any:
    """Share of exit work in each account's events on each day."""
    share = np.full((n, cal.days), _BASE_EXIT)
    d = np.arange(cal.days)
    for acc, first, last in zip(*episodes, strict=True):
        span = (d >= first) & (d < last)
        share[acc, span] = np.minimum(0.35, 0.08 + 0.004 * (d[span] - first))
    return share


def _events(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    paying: Any,
    exit_share: FloatArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Sessions of each user; their mix, not their number, follows the evaluation."""
    u_acc, u_slot = slots(np.ceil(a["seats"] * 1.5).astype(np.int64))
    in_seat = u_slot < a["seats"][u_acc]
    level = 0.07 * a["activity"][u_acc] * np.exp(rng.normal(-0.2, 0.6, size=u_acc.size))
    factor = day_factor(cal, 0.1, 0.4)
    ui, day = active_days(
        rng,
        cal,
        lambda d0, d1: (level * in_seat)[:, None] * factor[None, d0:d1] * paying[u_acc, d0:d1],
    )
    acc = u_acc[ui]
    x = exit_share[acc, day]
    per = 1 + rng.poisson(3.0 * (1.0 + 0.6 * x))
    ts, first = session_times(rng, day, a["tz_sec"][acc], per)
    ev_acc, ev_x = np.repeat(acc, per), np.repeat(x, per)
    core = rng.choice(len(CORE_TYPES), size=ts.size, p=_CORE_W / _CORE_W.sum())
    s = a["success"][ev_acc, np.repeat(cal.month_index[day], per)]
    core = np.where((core == _WON) & (rng.random(ts.size) > sigmoid(-0.4 + 0.9 * s)), _LOST, core)
    leaving = rng.random(ts.size) < ev_x
    exit_ = len(CORE_TYPES) + rng.choice(len(EXIT_TYPES), size=ts.size, p=_EXIT_W / _EXIT_W.sum())
    etype = np.where(leaving, exit_, core)
    etype[first] = np.where(rng.random(first.size) < 0.85, 0, etype[first])
    value = _values(rng, a, ev_acc, etype, s)
    user = np.repeat(ui, per)
    keep = observed(cal, csec, ev_acc, ts)
    columns = {"acc": ev_acc, "user": user, "ts": ts, "type": etype, "value": value}
    return {**select(keep, (user, ts, ev_acc), **columns), "users": (u_acc, u_slot)}


def _values(
    rng: np.random.Generator, a: dict[str, Any], acc: IntArray, etype: IntArray, s: FloatArray
) -> FloatArray:
    """Deal amounts on deal events, record counts on imports and exports, else empty."""
    size = etype.size
    deal = _DEAL_SIZE[a["seg"][acc]] * np.exp(0.2 * s + rng.normal(0.0, 0.9, size=size))
    records = np.exp(rng.normal(np.log(800.0), 1.0, size=size))
    bulk = np.isin(etype, [CORE_TYPES.index("import_contacts"), EVENT_TYPES.index("data_export")])
    return np.where(_DEALS[etype], np.round(deal, 2), np.where(bulk, np.round(records), np.nan))


def _tickets(
    rng: np.random.Generator,
    cal: Calendar,
    a: dict[str, Any],
    paying: Any,
    exit_share: FloatArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Questions to support; evaluating accounts ask more (about exports, contracts)."""
    rate = 0.003 * np.sqrt(a["seats"])[:, None] * (1.0 + 4.0 * (exit_share - _BASE_EXIT))
    count = rng.poisson(rate * paying)
    ai, di = np.nonzero(count)
    acc, day = np.repeat(ai, count[ai, di]), np.repeat(di, count[ai, di])
    created = day * DAY + local_times(rng, acc.size, 8, 18) - a["tz_sec"][acc]
    hours = 20.0 * np.exp(rng.normal(0.0, 1.0, size=acc.size))
    resolved = created + np.round(hours * 3600).astype(np.int64) + 600
    return select(
        observed(cal, csec, acc, created),
        (acc, created),
        acc=acc,
        created=created,
        resolved=np.where(resolved >= cal.days * DAY, -1, resolved),
    )


SHAPE = Shape(
    name="event-mix",
    summary="CRM, 25 event types; churn in the event mix, not volume",
    accounts=2000,
    months=18,
    simulate=simulate,
    stream=(5,),
    id_prefix="ACCT-",
    id_width=5,
)
