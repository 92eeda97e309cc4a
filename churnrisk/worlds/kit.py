"""Building blocks the shapes beyond the default share: terms, people, sessions, ids.

Accounts are numbered ``0..n-1`` within a batch; days and seconds count from the first
observed day, as in :mod:`churnrisk.worlds.base`.
"""

from __future__ import annotations

from collections.abc import Callable
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
    date_array,
    interval_sum,
    label_array,
    table,
    ts_array,
)

NEVER = -(10**6)
"""A month index or day that never comes."""


class Terms:
    """Subscription terms whose end is known at signing: one row per term.

    A term of ``length`` months starts on an account's anniversary day (``anchor``, 1-28)
    of month index ``k`` and ends on that day ``length`` months later; its ``term_end``
    is that end, written the day it starts. A term that is not renewed is a churn on its
    end day.
    """

    def __init__(self, cal: Calendar, anchor: IntArray) -> None:
        n = anchor.size
        self.cal = cal
        self.anchor = anchor
        self.active = np.zeros(n, dtype=bool)
        self.end_k = np.full(n, NEVER, dtype=np.int64)
        self.start = np.zeros(n, dtype=np.int64)
        self.end = np.zeros(n, dtype=np.int64)
        self.length = np.ones(n, dtype=np.int64)
        self.rows = Rows([], [], [], [], [], [])
        self._stop_acc: list[IntArray] = []
        self._stop_day: list[IntArray] = []

    def begin(
        self,
        mask: BoolArray,
        k: IntArray,
        first: IntArray,
        length: IntArray,
        plan: IntArray,
        seats: IntArray,
        mrr: FloatArray,
    ) -> None:
        """Start a term for ``mask`` at month index ``k`` from day ``first`` (arrays by account)."""
        end_k = k + length
        end = self.cal.renewal(np.where(mask, end_k, 0), self.anchor)
        self.rows.add(mask, first, end, plan, seats, mrr)
        self.active[mask] = True
        self.end_k[mask] = end_k[mask]
        self.start[mask] = first[mask]
        self.end[mask] = end[mask]
        self.length[mask] = length[mask]

    def begin_running(
        self,
        pre: BoolArray,
        ck: IntArray,
        length: IntArray,
        plan: IntArray,
        seats: IntArray,
        mrr: FloatArray,
    ) -> None:
        """Start, for accounts created before the first day, the term running on it."""
        k1 = np.where(self.cal.renewal(0, self.anchor) >= 0, 0, 1)
        end_k = ck + length * -((ck - k1) // length)
        start_k = end_k - length
        self.begin(pre, start_k, self.cal.renewal(start_k, self.anchor), length, plan, seats, mrr)

    def due(self, k: int) -> tuple[BoolArray, IntArray]:
        """Accounts whose term ends on their anniversary in month ``k``, and that day."""
        r = self.cal.renewal(k, self.anchor)
        inside = (r >= 0) & (r < self.cal.days)
        return self.active & (self.end_k == k) & inside, r

    def stop(self, mask: BoolArray, day: IntArray) -> None:
        """End the accounts of ``mask`` on ``day``: their term is not renewed."""
        self.active[mask] = False
        self._stop_acc.append(np.flatnonzero(mask))
        self._stop_day.append(day[mask])

    def churns(self) -> tuple[IntArray, IntArray]:
        """Accounts and days of every churn so far."""
        if not self._stop_acc:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(self._stop_acc), np.concatenate(self._stop_day)

    def paying(self) -> BoolArray:
        """Whether each account has a row covering each observed day, shape (n, days)."""
        rows = self.rows.arrays()
        ones = np.ones_like(rows["acc"])
        n, days = self.anchor.size, self.cal.days
        return interval_sum(n, days, rows["acc"], rows["start"], rows["end"], ones) > 0


def slots(counts: IntArray) -> tuple[IntArray, IntArray]:
    """Account and slot number (from 0) of every user, ``counts`` users per account."""
    u_acc = np.repeat(np.arange(counts.size), counts)
    u_slot = np.arange(u_acc.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return u_acc, u_slot


def day_factor(cal: Calendar, weekend: float, holiday: float) -> FloatArray:
    """Activity multiplier per day: ``weekend`` on Saturdays and Sundays, ``holiday`` too."""
    return np.where(cal.weekday >= 5, weekend, 1.0) * np.where(cal.holiday, holiday, 1.0)


def active_days(
    rng: np.random.Generator, cal: Calendar, prob: Callable[[int, int], FloatArray]
) -> tuple[IntArray, IntArray]:
    """Return (user, day) of every active user-day, drawn month by month.

    ``prob(d0, d1)`` is the chance each user is active on each day of ``[d0, d1)``,
    shape (users, d1 - d0); months keep the matrix small.
    """
    users, days = [], []
    for k in range(cal.months + 1):
        d0 = max(int(cal.month_start(k)), 0)
        d1 = min(int(cal.month_start(k + 1)), cal.days)
        if d1 <= d0:
            continue
        p = prob(d0, d1)
        ui, di = np.nonzero(rng.random(p.shape) < p)
        users.append(ui)
        days.append(di + d0)
    return np.concatenate(users), np.concatenate(days)


def session_times(
    rng: np.random.Generator, day: IntArray, tz_sec: IntArray, per: IntArray
) -> tuple[IntArray, IntArray]:
    """Return the times of the events of sessions, and each session's first event.

    One session per element of ``day`` (with the account's offset from UTC in
    ``tz_sec``), ``per`` events each: it starts in local business hours (a morning or an
    afternoon peak) and its events follow each other a few minutes apart.
    """
    total = int(per.sum())
    first = np.cumsum(per) - per
    gaps = np.cumsum(rng.exponential(150.0, size=total))
    offset = gaps - np.repeat(gaps[first], per)
    morning = rng.random(day.size) < 0.5
    local = np.where(
        morning,
        rng.normal(10.5 * 3600, 1.5 * 3600, day.size),
        rng.normal(14.5 * 3600, 2 * 3600, day.size),
    )
    start = day * DAY + np.clip(local, 6 * 3600, 22 * 3600) - tz_sec
    return (np.repeat(start, per) + offset).astype(np.int64), first


def observed(cal: Calendar, created_sec: IntArray, acc: IntArray, sec: IntArray) -> BoolArray:
    """Whether times ``sec`` of accounts ``acc`` fall after creation and inside the period."""
    return (sec >= np.maximum(created_sec, 0)[acc]) & (sec < cal.days * DAY)


def ticket_ids(first: int, count: int, prefix: str = "T", width: int = 7) -> pa.Array:
    """Ticket ids ``first .. first + count - 1``, zero-padded to at least ``width`` digits."""
    digits = max(width, len(str(first + count - 1)))
    return pa.array([f"{prefix}{i:0{digits}d}" for i in range(first, first + count)], pa.string())


def company_names(rng: np.random.Generator, n: int, words: tuple[tuple[str, ...], ...]) -> pa.Array:
    """Company names made of one word from each list of ``words``."""
    picks = [rng.integers(0, len(w), size=n) for w in words]
    return pa.array(
        [
            " ".join(w[i] for w, i in zip(words, row, strict=True))
            for row in zip(*picks, strict=True)
        ],
        pa.string(),
    )


def select(mask: BoolArray, keys: tuple[Any, ...], **columns: Any) -> dict[str, Any]:
    """Return ``columns`` restricted to ``mask`` and sorted by ``keys``.

    The last key sorts first, as :func:`numpy.lexsort` reads them.
    """
    order = np.lexsort(tuple(np.asarray(k)[mask] for k in keys))
    return {name: np.asarray(v)[mask][order] for name, v in columns.items()}


def term_table(
    cal: Calendar, ids: pa.Array, rows: dict[str, Any], plans: tuple[str, ...] | None
) -> pa.Table:
    """Return the subscriptions of :class:`Terms` rows: one per term, ``term_end`` on each.

    A row's stop is known once it has happened: a term still running when the export is
    taken has no ``end_date`` yet, only its ``term_end``. ``plans`` names the plans
    (``None``: the export has no plan column).
    """
    columns = {
        "account_id": ids.take(pa.array(rows["acc"])),
        "start_date": date_array(cal, rows["start"]),
        "end_date": date_array(cal, rows["end"], unknown=rows["end"] >= cal.days),
        "mrr": pa.array(rows["mrr"], pa.float64()),
        "seats": pa.array(rows["seats"], pa.int64()),
        "term_end": date_array(cal, rows["end"]),
    }
    if plans is not None:
        columns["plan"] = label_array(plans, rows["plan"])
    return table("subscriptions", columns)


def events_table(
    cal: Calendar, ids: pa.Array, users: pa.Array, ev: dict[str, Any], types: tuple[str, ...]
) -> pa.Table:
    """Return the events table of ``acc``, ``user``, ``ts``, ``type`` and maybe ``value``.

    ``user`` indexes ``users``; a NaN ``value`` is written empty, and an export without
    values has no ``value`` column.
    """
    columns = {
        "account_id": ids.take(pa.array(ev["acc"])),
        "user_id": users.take(pa.array(ev["user"])),
        "timestamp": ts_array(cal, ev["ts"]),
        "event_type": label_array(types, ev["type"]),
    }
    if "value" in ev:
        columns["value"] = pa.array(ev["value"], pa.float64(), mask=np.isnan(ev["value"]))
    return table("events", columns)


def tickets_table(
    cal: Calendar,
    ids: pa.Array,
    tk: dict[str, Any],
    ticket_id: pa.Array,
    priorities: tuple[str, ...] | None = None,
) -> pa.Table:
    """Return the tickets table of ``acc``, ``created`` and ``resolved`` (-1: open).

    ``priority`` (an index into ``priorities``), ``contacts`` and ``csat`` (0: not
    answered) are written where the export has them.
    """
    columns = {
        "ticket_id": ticket_id,
        "account_id": ids.take(pa.array(tk["acc"])),
        "created_at": ts_array(cal, tk["created"]),
        "resolved_at": ts_array(cal, tk["resolved"], mask=tk["resolved"] < 0),
    }
    if priorities is not None:
        columns["priority"] = label_array(priorities, tk["priority"])
    if "contacts" in tk:
        columns["contacts"] = pa.array(tk["contacts"], pa.int64())
    if "csat" in tk:
        columns["csat"] = pa.array(tk["csat"], pa.int64(), mask=tk["csat"] < 1)
    return table("tickets", columns)
