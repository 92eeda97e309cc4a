"""The ``small-book`` world: a team workspace that churns once its champion has left.

A documents-and-workflows workspace sold per seat to small and mid-size companies: a
small book (300 accounts by default) over 24 months, half on annual terms, half monthly.

The mechanism
-------------
**The champion.** Every account is bought by one person, its champion: the heaviest
user (active on most weekdays, with long sessions, against a colleague's one day in
fifteen or so), the one who configures workflows, creates templates, invites members
and changes permissions. People change jobs: each month a champion leaves the
customer's company with probability 4 %, any other user with 1.5 %, and a leaver's seat
is taken by a new hire (a new user id) 10 to 60 days later. An account without a
champion is *orphaned*; each month one of its users steps up with probability 20 % and
becomes the new champion. While orphaned, nobody drives adoption and the other users'
activity fades (x 0.93 a month). At each renewal (monthly or annual, on the account's
anniversary day) the account leaves with ``logit p = base + 3.0 [orphaned] + 1.0
[champion changed in the last 60 days] + 0.3 [seats <= 5] + noise (sd 0.4)``, ``base``
-4.9 for a monthly term and -2.8 for an annual one. Accounts that leave do not come back.

What each table shows
---------------------
- **events** -- one row per action (``page_view``, ``doc_edit``, ``comment``, ``share``,
  ``search``; and the champion's ``workflow_edit``, ``template_create``,
  ``member_invite``, ``permission_change``, ``review_request``), with ``user_id`` of the
  form ``u007`` numbered per account; no ``value``. A departed user's id never comes
  back; whoever replaces them has a new one.
- **nps** -- a survey wave per account about every quarter; each user answers with
  probability 0.2 (the champion 0.5); scores are lower while orphaned and highest from
  the champion; ``user_id`` but no comment.
- **subscriptions** -- one row per term with ``seats``, ``mrr`` and ``term_end``, no
  ``plan``; ``end_date`` only for terms ended before the export.
- **accounts** -- ``name``, ``industry`` and ``seats``, nothing else. No tickets, orders
  or costs.

What a model can and cannot see
-------------------------------
No column says who the champion is. A model sees the account's events fall by the
champion's share and the admin event types disappear, while distinct users hardly
change (the seat is refilled) and ordinary turnover makes single departures common;
NPS drops. With 300 accounts, a few dozen churns a year and annual renewals, there is
little to learn from, and the time since the champion left matters more than any
30-day count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from churnrisk.worlds.base import (
    DAY,
    BoolArray,
    Calendar,
    IntArray,
    Shape,
    World,
    interval_sum,
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
)

INDUSTRIES = ("Agency", "Nonprofit", "Legal", "Architecture", "Consulting", "Biotech")
EVENT_TYPES = (
    "page_view",
    "doc_edit",
    "comment",
    "share",
    "search",
    "workflow_edit",
    "template_create",
    "member_invite",
    "permission_change",
    "review_request",
)
_USER_P = np.array([0.42, 0.25, 0.18, 0.09, 0.06, 0.0, 0.0, 0.0, 0.0, 0.0])
_CHAMPION_P = np.array([0.2, 0.2, 0.12, 0.05, 0.03, 0.14, 0.08, 0.06, 0.05, 0.07])
_PRICE = {1: 15.0, 12: 12.5}  # per seat and month, by term length
_NAMES = (
    ("Maple", "Orbit", "Quill", "Harbor", "Juniper", "Lumen", "Sable", "Vista"),
    ("& Partners", "Studio", "Collective", "Associates", "Foundation", "Labs"),
)
_END = 10**7  # a leave day that never comes


def simulate(
    rng: np.random.Generator, cal: Calendar, world: World, lo: int, hi: int, first_ticket: int
) -> dict[str, pa.Table]:
    """Simulate accounts ``lo:hi`` and return their tables."""
    n = hi - lo
    cday = world.created_day[lo:hi]
    csec = world.created_sec[lo:hi]
    seats = np.maximum(3, np.round(12 * np.exp(rng.normal(0.0, 0.6, size=n)))).astype(np.int64)
    annual = rng.random(n) < 0.5
    names = company_names(rng, n, _NAMES)
    industry = rng.integers(0, len(INDUSTRIES), size=n)
    tz_sec = rng.choice(np.array([-5, 0, 1, 10]), size=n) * 3600
    people = _people(rng, cal, seats, cday)
    led = _led(cal, people, n)
    terms = _terms(rng, cal, seats, annual, led, cday)
    paying = terms.paying()
    ev = _events(rng, cal, people, led, paying, tz_sec, csec)
    nps = _nps(rng, cal, people, led, paying, tz_sec, csec)
    ids = pa.array(world.ids[lo:hi], pa.string())
    users = pa.array([f"u{j + 1:03d}" for j in people["number"]], pa.string())
    return {
        "accounts": table(
            "accounts",
            {
                "account_id": ids,
                "created_at": ts_array(cal, csec),
                "name": names,
                "industry": label_array(INDUSTRIES, industry),
                "seats": pa.array(seats, pa.int64()),
            },
        ),
        "subscriptions": term_table(cal, ids, terms.rows.arrays(), None),
        "events": events_table(cal, ids, users, ev, EVENT_TYPES),
        "nps": table(
            "nps",
            {
                "account_id": ids.take(nps["acc"]),
                "responded_at": ts_array(cal, nps["ts"]),
                "score": pa.array(nps["score"], pa.int64()),
                "user_id": users.take(pa.array(nps["user"])),
            },
        ),
    }


def _people(
    rng: np.random.Generator, cal: Calendar, seats: IntArray, cday: IntArray
) -> dict[str, Any]:
    """Who holds each seat when, and who champions each account when.

    Returns per person: ``acc``, ``join`` and ``leave`` days, ``number`` within the
    account, ``champ_from``/``champ_to`` (``NEVER`` when never champion) and an
    activity level.
    """
    n = seats.size
    pos_acc, _ = slots(seats)
    acc, join, leave = list(pos_acc), list(np.maximum(cday, -60)[pos_acc]), [_END] * pos_acc.size
    holder = np.arange(pos_acc.size)
    first_pos = np.cumsum(seats) - seats
    champ = np.where((cday < 0) & (rng.random(n) < 0.1), -1, holder[first_pos])
    since = np.full(n, NEVER, dtype=np.int64)  # champion since (-1: orphaned at start)
    since[champ >= 0] = np.maximum(cday, -60)[champ >= 0]
    champ_from = {int(p): int(since[a]) for a, p in enumerate(champ) if p >= 0}
    champ_to: dict[int, int] = {}
    for k in range(cal.months + 1):
        d0 = max(int(cal.month_start(k)), 0)
        if d0 >= cal.days:
            break
        alive = cday[pos_acc] <= d0
        is_champ = holder == champ[pos_acc]
        go = alive & (rng.random(pos_acc.size) < np.where(is_champ, 0.04, 0.015))
        day = d0 + rng.integers(0, 28, size=pos_acc.size)
        for p in np.flatnonzero(go):
            person, a = int(holder[p]), int(pos_acc[p])
            leave[person] = int(day[p])
            if champ[a] == person:
                champ_to[person] = int(day[p])
                champ[a] = -1
            holder[p] = len(acc)
            acc.append(a)
            join.append(int(day[p] + rng.integers(10, 61)))
            leave.append(_END)
        step_up = (champ < 0) & (cday <= d0) & (rng.random(n) < 0.2)
        for b in np.flatnonzero(step_up):
            heir = int(holder[first_pos[b] + rng.integers(0, seats[b])])
            if join[heir] <= d0:  # a new hire not yet arrived cannot step up
                champ[b], champ_from[heir] = heir, d0 + int(rng.integers(0, 28))
    return _person_arrays(rng, acc, join, leave, champ_from, champ_to)


def _person_arrays(
    rng: np.random.Generator,
    acc: list[Any],
    join: list[Any],
    leave: list[int],
    champ_from: dict[int, int],
    champ_to: dict[int, int],
) -> dict[str, Any]:
    a = np.asarray(acc, dtype=np.int64)
    order = np.lexsort((np.asarray(join), a))  # number people per account by arrival
    number = np.empty(a.size, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, a[order][1:] != a[order][:-1]])
    number[order] = np.arange(a.size) - np.repeat(starts, np.diff(np.r_[starts, a.size]))
    c_from = np.full(a.size, NEVER, dtype=np.int64)
    c_to = np.full(a.size, _END, dtype=np.int64)
    for p, d in champ_from.items():
        c_from[p] = d
    for p, d in champ_to.items():
        c_to[p] = d
    c_to[c_from == NEVER] = NEVER
    return {
        "acc": a,
        "join": np.asarray(join, dtype=np.int64),
        "leave": np.asarray(leave, dtype=np.int64),
        "number": number,
        "champ_from": c_from,
        "champ_to": np.minimum(c_to, np.asarray(leave, dtype=np.int64)),
        "level": np.exp(rng.normal(0.0, 0.6, size=a.size)),
    }


def _led(cal: Calendar, people: dict[str, Any], n: int) -> dict[str, Any]:
    """Per account and day: whether a champion leads it, and days since that changed."""
    has = people["champ_from"] != NEVER
    led = (
        interval_sum(
            n,
            cal.days,
            people["acc"][has],
            people["champ_from"][has],
            people["champ_to"][has],
            np.ones(int(has.sum()), dtype=np.int64),
        )
        > 0
    )
    orphan_days = np.zeros((n, cal.days), dtype=np.int64)
    changed = np.full(n, -_END, dtype=np.int64)
    last_change = np.zeros((n, cal.days), dtype=np.int64)
    for d in range(cal.days):
        prev = orphan_days[:, d - 1] if d else np.zeros(n, dtype=np.int64)
        orphan_days[:, d] = np.where(led[:, d], 0, prev + 1)
        if d:
            changed = np.where(led[:, d] != led[:, d - 1], d, changed)
        last_change[:, d] = d - changed
    return {"led": led, "orphan_days": orphan_days, "since_change": last_change}


def _within(people: dict[str, Any], first: str, last: str, day: Any) -> Any:
    """Whether each person's ``[first, last)`` days hold ``day`` (one row per person)."""
    return (people[first][:, None] <= day) & (day < people[last][:, None])


def _terms(
    rng: np.random.Generator,
    cal: Calendar,
    seats: IntArray,
    annual: BoolArray,
    led: dict[str, Any],
    cday: IntArray,
) -> Terms:
    """Monthly or annual terms; a renewal without a champion is where accounts leave."""
    n = seats.size
    ck, anchor = cal.split(cday)
    terms = Terms(cal, anchor)
    length = np.where(annual, 12, 1).astype(np.int64)
    mrr = np.asarray(seats * np.where(annual, _PRICE[12], _PRICE[1]), dtype=np.float64)
    zero = np.zeros(n, dtype=np.int64)
    terms.begin_running(cday < 0, ck, length, zero, seats, mrr)
    for k in range(cal.months + 1):
        kk = np.full(n, k, dtype=np.int64)
        due, r = terms.due(k)
        terms.begin((ck == k) & (cday >= 0), kk, r, length, zero, seats, mrr)
        day = np.clip(r, 0, cal.days - 1)
        orphaned = ~led["led"][np.arange(n), day]
        recent = led["since_change"][np.arange(n), day] < 60
        logit = (
            np.where(annual, -2.8, -4.9)
            + 3.0 * orphaned
            + 1.0 * recent
            + 0.3 * (seats <= 5)
            + rng.normal(0.0, 0.4, size=n)
        )
        churn = due & (rng.random(n) < sigmoid(logit))
        terms.stop(churn, r)
        terms.begin(due & ~churn, kk, r, length, zero, seats, mrr)
    return terms


def _events(
    rng: np.random.Generator,
    cal: Calendar,
    people: dict[str, Any],
    led: dict[str, Any],
    paying: BoolArray,
    tz_sec: IntArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Each person's sessions while the account pays; the champion's are many and admin."""
    acc, level = people["acc"], people["level"]
    factor = day_factor(cal, 0.1, 0.3)
    fade = 0.93 ** (led["orphan_days"] / 30.0)

    def prob(d0: int, d1: int) -> Any:
        d = np.arange(d0, d1)[None, :]
        here = _within(people, "join", "leave", d)
        champ = _within(people, "champ_from", "champ_to", d)
        p = np.where(champ, 0.4, 0.06 * np.minimum(level, 3.0)[:, None] * fade[acc, d0:d1])
        return np.asarray(p * here * factor[None, d0:d1] * paying[acc, d0:d1])

    person, day = active_days(rng, cal, prob)
    a = acc[person]
    champ = (people["champ_from"][person] <= day) & (day < people["champ_to"][person])
    per = 1 + rng.poisson(np.where(champ, 3.0, 1.5))
    ts, _ = session_times(rng, day, tz_sec[a], per)
    by_champ = np.repeat(champ, per)
    etype = np.where(
        by_champ,
        rng.choice(len(EVENT_TYPES), size=ts.size, p=_CHAMPION_P),
        rng.choice(len(EVENT_TYPES), size=ts.size, p=_USER_P),
    )
    ev_acc, ev_person = np.repeat(a, per), np.repeat(person, per)
    keep = observed(cal, csec, ev_acc, ts)
    return select(keep, (ev_person, ts, ev_acc), acc=ev_acc, user=ev_person, ts=ts, type=etype)


def _nps(
    rng: np.random.Generator,
    cal: Calendar,
    people: dict[str, Any],
    led: dict[str, Any],
    paying: BoolArray,
    tz_sec: IntArray,
    csec: IntArray,
) -> dict[str, Any]:
    """Quarterly waves; champions answer more often and score higher, orphans lower."""
    n = tz_sec.size
    offset = rng.integers(15, 100, size=n)
    waves = offset[:, None] + 91 * np.arange(cal.days // 91 + 1)[None, :]
    pw = waves[people["acc"]]  # (people, waves)
    day = np.minimum(pw + rng.integers(0, 10, size=pw.shape), cal.days - 1)
    a = people["acc"][:, None]
    here = _within(people, "join", "leave", day)
    champ = _within(people, "champ_from", "champ_to", day)
    ok = (pw < cal.days) & here & paying[a, day]
    ok &= rng.random(pw.shape) < np.where(champ, 0.5, 0.2)
    pi, wi = np.nonzero(ok)
    d = day[pi, wi]
    acc = people["acc"][pi]
    bias = rng.normal(0.0, 1.0, size=people["acc"].size)[pi]
    orphaned = ~led["led"][acc, d]
    score = 8.2 + 1.0 * champ[pi, wi] - 2.2 * orphaned + bias + rng.normal(0, 1.2, pi.size)
    ts = d * DAY + local_times(rng, pi.size, 9, 20) - tz_sec[acc]
    score = np.clip(np.round(score), 0, 10).astype(np.int64)
    keep = observed(cal, csec, acc, ts)
    return select(keep, (pi, ts, acc), acc=acc, user=pi, ts=ts, score=score)


SHAPE = Shape(
    name="small-book",
    summary="team workspace; churn once its champion user has left",
    accounts=300,
    months=24,
    simulate=simulate,
    stream=(3,),
)
