"""The ``cancellation-dated`` world: a card-billed self-serve tool exported as spells.

A self-serve scheduling and campaigns tool for small businesses, billed monthly by card
at a flat price per plan (3,000 accounts over 24 months by default). Its billing system
exports one subscription row per *paying spell*, not per term: ``start_date``, the plan
and its ``mrr``, and an ``end_date`` written only once the customer has left, as Stripe's
``ended_at`` or a CRM's churn date is. There is no ``term_end`` and no ``seats``.

The mechanism
-------------
Churn happens on any day of the month, by two routes:

- **Lapsed projects (voluntary).** An account uses the tool for projects. A project
  ends with a daily hazard of 0.2 % (about one in sixteen a month) and a new one starts
  with 1 % a day. Between projects its users hardly log in while it keeps paying, and
  each day the owner cancels with probability 0.6 % -- four times that in the three
  days after a card charge reminds them they still pay -- against 0.01 % a day while a
  project runs. Cancelling ends the spell that day.
- **Failed payments (involuntary).** Each account's card expires on a date of its own;
  in the 30 days before, the owner replaces it with a daily probability of 3 % during a
  project (0.5 % otherwise). A monthly charge fails when the card has expired, or by
  chance (1.5 %). A failure opens 14 days of dunning in which the owner updates the card
  with a daily probability of 12 % during a project (2 % otherwise) and the charge is
  retried; a random failure also clears by itself on a retry (days 3 and 7, 30 % each).
  If nothing has cleared it after 14 days, the spell ends that day.

An account that has left may come back while a new project runs (0.2 % a day, from 60
days after it left): a new spell, a new row.

What each table shows
---------------------
- **subscriptions** -- one row per spell: ``start_date``, ``end_date`` only for spells
  that stopped before the export, ``mrr`` (19, 49 or 129) and ``plan``.
- **orders** -- one row per card charge that went through (the monthly invoice, paid
  on the account's billing day or late, after a retry or a new card).
- **events** -- the product (``login``, ``page_publish``, ``booking_received``,
  ``calendar_sync``, ``campaign_send``, ``form_submit``, ``contact_import``) and the
  billing notices the owner acts on: ``payment_failed`` (``value``: the amount due) and
  ``card_updated``; users are few (one to five). A little usage trails for a week after
  a spell ends.
- **accounts** -- ``name``, ``plan`` at sign-up and ``region``; ids like ``cus_000042``.
  No tickets, NPS or costs.

What a model can and cannot see
-------------------------------
It sees usage fall when a project lapses (volume, active days, distinct users), failed
payments and card updates as events, and missing or late invoices in orders. It cannot
see when a card expires, and there is no renewal date: renewal timing is unknowable
here, and ``end_date`` exists only for the rows that stopped, so reading it as a term
end would leak the label perfectly.
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
    date_array,
    interval_sum,
    label_array,
    local_times,
    table,
    ts_array,
)
from churnrisk.worlds.kit import (
    NEVER,
    active_days,
    company_names,
    day_factor,
    events_table,
    observed,
    select,
    session_times,
    slots,
)

PLANS = ("starter", "pro", "team")
_PLAN_P = np.array([0.55, 0.35, 0.1])
_PRICE = np.array([19.0, 49.0, 129.0])
_EXTRA_USERS = np.array([0.3, 1.0, 3.0])
REGIONS = ("US", "Canada", "UK", "Germany", "Australia")
_UTC_OFFSET_H = np.array([-6, -5, 0, 1, 10])
EVENT_TYPES = (
    "login",
    "page_publish",
    "booking_received",
    "calendar_sync",
    "campaign_send",
    "form_submit",
    "contact_import",
    "payment_failed",
    "card_updated",
)
_PRODUCT_P = np.array([0.0, 0.12, 0.35, 0.18, 0.1, 0.2, 0.05])
_FAILED, _UPDATED = EVENT_TYPES.index("payment_failed"), EVENT_TYPES.index("card_updated")
_NAMES = (
    ("Sunny", "Urban", "Little", "Golden", "Happy", "Coastal", "Prairie", "Summit"),
    ("Bakery", "Yoga", "Dental", "Salon", "Tutoring", "Fitness", "Photography", "Plumbing"),
)
_DUNNING_DAYS = 14
_TAIL_DAYS = 7


class _Book:
    """The accounts' billing state, advanced one day at a time."""

    def __init__(self, rng: np.random.Generator, cal: Calendar, plan: IntArray, cday: IntArray):
        n = cday.size
        self.rng, self.cal, self.plan, self.cday = rng, cal, plan, cday
        self.anchor = cal.split(cday)[1]
        self.paying = cday < 0
        self.project = rng.random(n) < 0.75
        lead = np.where(cday < 0, 0, cday)
        self.expiry = lead + rng.integers(30, 4 * 365, size=n)
        self.dunning = np.full(n, NEVER, dtype=np.int64)
        self.random_failure = np.zeros(n, dtype=bool)
        self.spell_start = np.where(cday < 0, cday, NEVER)
        self.left = np.full(n, NEVER, dtype=np.int64)
        self.charged = np.full(n, NEVER, dtype=np.int64)
        self.log: dict[str, list[IntArray]] = {
            k: [] for k in ("spell_acc", "spell_start", "spell_end", "bill_acc", "bill_day")
        }
        self.log.update({"failed_acc": [], "failed_day": [], "card_acc": [], "card_day": []})
        self.project_days = np.zeros((n, cal.days), dtype=bool)

    def step(self, d: int) -> None:
        """Advance every account through day ``d``."""
        rng, n = self.rng, self.cday.size
        u = rng.random((n, 6))
        self.project = np.where(self.project, u[:, 0] > 0.002, u[:, 0] < 0.01)
        self.project_days[:, d] = self.project
        self._join(d, u[:, 1])
        self._renew_cards(d, u[:, 2])
        self._charge(d)
        self._dun(d, u[:, 3])
        self._cancel(d, u[:, 4])

    def _join(self, d: int, u: Any) -> None:
        new = self.cday == d
        back = (
            ~self.paying & (self.left != NEVER) & (d - self.left >= 60) & self.project & (u < 0.002)
        )
        start = new | back
        self.project = self.project | new  # a sign-up comes with a project
        self.paying = self.paying | start
        self.spell_start = np.where(start, d, self.spell_start)
        self.dunning[start] = NEVER
        self.expiry = np.where(back & (self.expiry <= d), d + 365, self.expiry)
        self._pay(start, d)

    def _renew_cards(self, d: int, u: Any) -> None:
        soon = self.paying & (self.expiry - d <= 30) & (self.expiry > d)
        renew = soon & (u < np.where(self.project, 0.03, 0.005))
        self._new_card(renew, d)

    def _new_card(self, mask: BoolArray, d: int) -> None:
        self.expiry = np.where(
            mask, d + self.rng.integers(36 * 30, 60 * 30, mask.size), self.expiry
        )
        self.log["card_acc"].append(np.flatnonzero(mask))
        self.log["card_day"].append(np.full(int(mask.sum()), d, dtype=np.int64))

    def _charge(self, d: int) -> None:
        dom = int(self.cal.day_of_month[d])
        due = self.paying & (self.anchor == dom) & (self.dunning == NEVER) & (self.charged < d)
        chance = self.rng.random(due.size) < 0.015
        fail = due & ((self.expiry <= d) | chance)
        self.random_failure = np.where(fail, chance & (self.expiry > d), self.random_failure)
        self.dunning = np.where(fail, d, self.dunning)
        self.log["failed_acc"].append(np.flatnonzero(fail))
        self.log["failed_day"].append(np.full(int(fail.sum()), d, dtype=np.int64))
        self._pay(due & ~fail, d)

    def _dun(self, d: int, u: Any) -> None:
        open_ = self.paying & (self.dunning != NEVER) & (self.dunning < d)
        fixed = open_ & (u < np.where(self.project, 0.12, 0.02))
        self._new_card(fixed, d)
        age = d - self.dunning
        retry = open_ & ~fixed & self.random_failure & np.isin(age, (3, 7))
        cleared = fixed | (retry & (self.rng.random(u.size) < 0.3))
        self.dunning[cleared] = NEVER
        self._pay(cleared, d)
        lost = open_ & ~cleared & (age >= _DUNNING_DAYS)
        self._end(lost, d)

    def _cancel(self, d: int, u: Any) -> None:
        reminded = (d - self.charged) <= 3
        hazard = np.where(self.project, 0.0001, 0.006 * np.where(reminded, 4.0, 1.0))
        self._end(self.paying & (u < hazard), d)

    def _pay(self, mask: BoolArray, d: int) -> None:
        self.charged = np.where(mask, d, self.charged)
        self.log["bill_acc"].append(np.flatnonzero(mask))
        self.log["bill_day"].append(np.full(int(mask.sum()), d, dtype=np.int64))

    def _end(self, mask: BoolArray, d: int) -> None:
        mask = mask & (self.spell_start < d)  # a spell lasts at least a day
        self.log["spell_acc"].append(np.flatnonzero(mask))
        self.log["spell_start"].append(self.spell_start[mask])
        self.log["spell_end"].append(np.full(int(mask.sum()), d, dtype=np.int64))
        self.paying = self.paying & ~mask
        self.left = np.where(mask, d, self.left)
        self.dunning[mask] = NEVER

    def finish(self) -> dict[str, IntArray]:
        """Close the spells still running at the end (no end date yet); return the logs."""
        running = self.paying
        self.log["spell_acc"].append(np.flatnonzero(running))
        self.log["spell_start"].append(self.spell_start[running])
        self.log["spell_end"].append(np.full(int(running.sum()), NEVER, dtype=np.int64))
        return {k: np.concatenate(v) for k, v in self.log.items()}


def simulate(
    rng: np.random.Generator, cal: Calendar, world: World, lo: int, hi: int, first_ticket: int
) -> dict[str, pa.Table]:
    """Simulate accounts ``lo:hi`` and return their tables."""
    n = hi - lo
    cday = world.created_day[lo:hi]
    csec = world.created_sec[lo:hi]
    plan = rng.choice(3, size=n, p=_PLAN_P)
    region = rng.choice(len(REGIONS), size=n, p=[0.5, 0.1, 0.15, 0.1, 0.15])
    tz_sec = _UTC_OFFSET_H[region] * 3600
    names = company_names(rng, n, _NAMES)
    users = 1 + rng.poisson(_EXTRA_USERS[plan])
    book = _Book(rng, cal, plan, cday)
    for d in range(cal.days):
        book.step(d)
    log = book.finish()
    ev = _events(rng, cal, users, book.project_days, log, tz_sec, csec, _PRICE[plan])
    ids = pa.array(world.ids[lo:hi], pa.string())
    u_acc, u_slot = ev["users"]
    user_ids = pa.array(
        [f"{world.ids[lo + x]}_u{s + 1}" for x, s in zip(u_acc, u_slot, strict=True)]
    )
    s_order = np.lexsort((log["spell_start"], log["spell_acc"]))
    s_acc, s_end = log["spell_acc"][s_order], log["spell_end"][s_order]
    return {
        "accounts": table(
            "accounts",
            {
                "account_id": ids,
                "created_at": ts_array(cal, csec),
                "name": names,
                "plan": label_array(PLANS, plan),
                "region": label_array(REGIONS, region),
            },
        ),
        "subscriptions": table(
            "subscriptions",
            {
                "account_id": ids.take(pa.array(s_acc)),
                "start_date": date_array(cal, log["spell_start"][s_order]),
                "end_date": date_array(cal, s_end, unknown=s_end == NEVER),
                "mrr": pa.array(_PRICE[plan[s_acc]], pa.float64()),
                "plan": label_array(PLANS, plan[s_acc]),
            },
        ),
        "events": events_table(cal, ids, user_ids, ev, EVENT_TYPES),
        "orders": _invoices(rng, cal, log, ids, _PRICE[plan], tz_sec, csec),
    }


def _invoices(
    rng: np.random.Generator,
    cal: Calendar,
    log: dict[str, IntArray],
    ids: pa.Array,
    price: Any,
    tz_sec: IntArray,
    csec: IntArray,
) -> pa.Table:
    """Return the card charges that went through: an order of the plan's price each."""
    acc = log["bill_acc"]
    ts = log["bill_day"] * DAY + local_times(rng, acc.size, 1, 6) - tz_sec[acc]
    ts = np.maximum(ts, csec[acc] + 60)  # the first charge comes with the sign-up
    paid = select(observed(cal, csec, acc, ts), (ts, acc), acc=acc, ts=ts)
    return table(
        "orders",
        {
            "account_id": ids.take(pa.array(paid["acc"])),
            "ordered_at": ts_array(cal, paid["ts"]),
            "amount": pa.array(price[paid["acc"]], pa.float64()),
        },
    )


def _events(
    rng: np.random.Generator,
    cal: Calendar,
    users: IntArray,
    project: BoolArray,
    log: dict[str, IntArray],
    tz_sec: IntArray,
    csec: IntArray,
    price: Any,
) -> dict[str, Any]:
    """Product sessions (busy during projects) and the owner's billing notices."""
    n = users.size
    ended = log["spell_end"] != NEVER
    e_acc, e_day = log["spell_acc"][ended], log["spell_end"][ended]
    spells = interval_sum(
        n,
        cal.days,
        log["spell_acc"],
        log["spell_start"],
        np.where(ended, log["spell_end"], cal.days),
        np.ones_like(log["spell_acc"]),
    )
    tail = interval_sum(n, cal.days, e_acc, e_day, e_day + _TAIL_DAYS, np.ones_like(e_acc))
    present = (spells > 0) + 0.3 * ((tail > 0) & (spells == 0))
    u_acc, u_slot = slots(users)
    level = np.exp(rng.normal(-0.2, 0.6, size=u_acc.size)) * np.where(u_slot == 0, 1.5, 1.0)
    factor = day_factor(cal, 0.5, 0.5)

    def prob(d0: int, d1: int) -> Any:
        busy = np.where(project[u_acc, d0:d1], 0.3, 0.01)
        return np.minimum(0.9, level[:, None] * busy * factor[None, d0:d1] * present[u_acc, d0:d1])

    ui, day = active_days(rng, cal, prob)
    acc = u_acc[ui]
    per = 1 + rng.poisson(2.0, size=ui.size)
    ts, first = session_times(rng, day, tz_sec[acc], per)
    etype = rng.choice(len(_PRODUCT_P), size=ts.size, p=_PRODUCT_P)
    etype[first] = 0
    user = np.repeat(ui, per)
    owner = np.cumsum(users) - users  # the owner is each account's first user
    b_acc = np.concatenate([log["failed_acc"], log["card_acc"]])
    b_day = np.concatenate([log["failed_day"], log["card_day"]])
    b_type = np.r_[
        np.full(log["failed_acc"].size, _FAILED), np.full(log["card_acc"].size, _UPDATED)
    ]
    b_ts = b_day * DAY + local_times(rng, b_acc.size, 7, 21) - tz_sec[b_acc]
    acc = np.concatenate([np.repeat(acc, per), b_acc])
    ts = np.concatenate([ts, b_ts])
    etype = np.concatenate([etype, b_type])
    user = np.concatenate([user, owner[b_acc]])
    value = np.where(etype == _FAILED, price[acc], np.nan)
    keep = observed(cal, csec, acc, ts)
    columns = {"acc": acc, "user": user, "ts": ts, "type": etype, "value": value}
    return {**select(keep, (user, ts, acc), **columns), "users": (u_acc, u_slot)}


SHAPE = Shape(
    name="cancellation-dated",
    summary="paying spells, end_date once cancelled; churn any day",
    accounts=3000,
    months=24,
    simulate=simulate,
    stream=(6,),
    id_prefix="cus_",
    id_width=6,
)
