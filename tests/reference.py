"""A slow, obviously correct reference for every registered feature and both labels.

Plain loops over rows, dicts and datetime arithmetic, written from the definitions
(the registry's meanings and the engine's docstrings), never from the engine's code. The
tests compare the engine with it on small random worlds. Also holds the seeded random
world generator those tests use.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

HOUR = timedelta(hours=1)
MRR_EPSILON = 1e-6


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


def _py(v: Any) -> Any:
    """Pandas scalars to plain Python (None for missing)."""
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime().replace(tzinfo=None)
    return v


def _rows(frames: dict[str, pd.DataFrame], name: str) -> list[dict[str, Any]]:
    if name not in frames:
        return []
    return [{k: _py(v) for k, v in r.items()} for r in frames[name].to_dict("records")]


def _as_date(v: Any) -> date | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return pd.Timestamp(v).date()


def _as_dt(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v
    return pd.Timestamp(v).to_pydatetime()


@dataclass
class World:
    """Plain-Python copies of the tables."""

    accounts: list[dict[str, Any]]
    subs: list[dict[str, Any]]
    events: list[dict[str, Any]]
    tickets: list[dict[str, Any]]
    nps: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    present: set[str]

    @classmethod
    def from_frames(cls, frames: dict[str, pd.DataFrame]) -> World:
        acc = _rows(frames, "accounts")
        for r in acc:
            r["created_at"] = _as_dt(r["created_at"])
        subs = _rows(frames, "subscriptions")
        for r in subs:
            r["start_date"] = _as_date(r["start_date"])
            r["end_date"] = _as_date(r.get("end_date"))
            r["term_end"] = _as_date(r.get("term_end"))
        ev = _rows(frames, "events")
        for r in ev:
            r["timestamp"] = _as_dt(r["timestamp"])
        tk = _rows(frames, "tickets")
        for r in tk:
            r["created_at"] = _as_dt(r["created_at"])
            r["resolved_at"] = _as_dt(r.get("resolved_at"))
        nps = _rows(frames, "nps")
        for r in nps:
            r["responded_at"] = _as_dt(r["responded_at"])
        orders = _rows(frames, "orders")
        for r in orders:
            r["ordered_at"] = _as_dt(r["ordered_at"])
        return cls(acc, subs, ev, tk, nps, orders, set(frames))


def mrr_on(subs: list[dict[str, Any]], account: str, day: date, known_before: date | None) -> float:
    """MRR of ``account`` on ``day``: rows covering it (start <= day < end)."""
    total = 0.0
    for r in subs:
        if r["account_id"] != account:
            continue
        if known_before is not None and not r["start_date"] < known_before:
            continue
        if r["start_date"] <= day and (r["end_date"] is None or day < r["end_date"]):
            total += r["mrr"]
    return total


def _covering(rows: list[dict[str, Any]], day: date) -> list[dict[str, Any]]:
    return [
        r for r in rows if r["start_date"] <= day and (r["end_date"] is None or day < r["end_date"])
    ]


def _plans_on(known: list[dict[str, Any]], day: date) -> list[str]:
    """Plan names of the rows covering ``day`` (rows without a plan left out)."""
    return [r["plan"] for r in _covering(known, day) if r.get("plan") is not None]


def _seats_on(known: list[dict[str, Any]], day: date) -> int | None:
    """Seats summed over the rows covering ``day``; None when none has a seat count."""
    seats = [r["seats"] for r in _covering(known, day) if r.get("seats") is not None]
    return sum(seats) if seats else None


def reference_spine(w: World, as_of: list[date]) -> list[tuple[str, date]]:
    out = []
    for a in sorted(set(as_of)):
        for acc in w.accounts:
            if (
                acc["created_at"] < midnight(a)
                and mrr_on(w.subs, acc["account_id"], a - timedelta(days=1), a) > 0
            ):
                out.append((acc["account_id"], a))
    return sorted(out, key=lambda k: (k[1], k[0]))


def _in(ts: datetime, lo: datetime, hi: datetime) -> bool:
    return lo <= ts < hi


def _ratio(num: float, den: float | None) -> float | None:
    if den is None or den == 0:
        return None
    return num / den


def reference_features(w: World, account: str, a: date) -> dict[str, Any]:
    """Every registered feature of ``account`` at as-of date ``a``."""
    at = midnight(a)

    def ago(days: int) -> datetime:
        return at - timedelta(days=days)

    out: dict[str, Any] = {}
    acc = next(r for r in w.accounts if r["account_id"] == account)

    # billing first (seats feeds engagement)
    known = [r for r in w.subs if r["account_id"] == account and r["start_date"] < a]
    yday = a - timedelta(days=1)
    covering = [
        r
        for r in known
        if r["start_date"] <= yday and (r["end_date"] is None or yday < r["end_date"])
    ]
    mrr = mrr_on(known, account, yday, a)
    out["mrr"] = mrr
    out["mrr_change_90d"] = mrr - mrr_on(known, account, a - timedelta(days=91), a)
    out["tenure_days"] = (a - acc["created_at"].date()).days
    planned = [r for r in covering if r.get("plan") is not None]
    if planned:
        top = max(r["mrr"] for r in planned)
        out["plan"] = min(r["plan"] for r in planned if r["mrr"] == top)
    else:
        out["plan"] = acc.get("plan")
    seat_values = [r["seats"] for r in covering if r.get("seats") is not None]
    out["seats"] = sum(seat_values) if seat_values else acc.get("seats")
    exp = con = 0
    for k in range(365, 0, -1):
        d = a - timedelta(days=k)
        before = mrr_on(known, account, d - timedelta(days=1), a)
        after = mrr_on(known, account, d, a)
        if before > 0 and after > before + MRR_EPSILON:
            exp += 1
        if after > 0 and after < before - MRR_EPSILON:
            con += 1
    out["contractions_365d"] = con
    out["expansions_365d"] = exp
    up = down = plan_moves = 0
    for k in range(90, 0, -1):
        d = a - timedelta(days=k)
        before = mrr_on(known, account, d - timedelta(days=1), a)
        after = mrr_on(known, account, d, a)
        up += before > 0 and after > before + MRR_EPSILON
        down += after > 0 and after < before - MRR_EPSILON
        plans_before = _plans_on(known, d - timedelta(days=1))
        plans_after = _plans_on(known, d)
        if (
            plans_before
            and plans_after
            and (min(plans_before) != min(plans_after) or max(plans_before) != max(plans_after))
        ):
            plan_moves += 1
    out["upgrades_90d"] = up
    out["downgrades_90d"] = down
    out["plan_changes_90d"] = plan_moves
    seats_now = _seats_on(known, yday)
    seats_then = _seats_on(known, a - timedelta(days=91))
    out["seats_change_90d"] = (
        None if seats_now is None and seats_then is None else (seats_now or 0) - (seats_then or 0)
    )
    lengths = [(r["term_end"] - r["start_date"]).days for r in covering if r["term_end"]]
    out["term_length_days"] = max(lengths) if lengths else None
    discounts = [r["discount"] for r in covering if r.get("discount") is not None]
    out["discount"] = max(discounts) if discounts else None
    # the renewal date known at signing (term_end), never the end_date a row stopped on
    ends = [r["term_end"] for r in covering if r["term_end"] is not None and r["term_end"] >= a]
    out["days_to_renewal"] = (min(ends) - a).days if ends else None
    if "orders" in w.present:
        out["orders_amount_90d"] = sum(
            o["amount"]
            for o in w.orders
            if o["account_id"] == account and _in(o["ordered_at"], ago(90), at)
        )
    else:
        out["orders_amount_90d"] = None

    # usage and engagement
    names_ev = [
        "events_7d", "events_30d", "events_90d", "usage_trend_30d", "days_since_last_event",
        "event_types_30d", "event_value_30d", "event_value_90d", "dau_30d", "mau_30d",
        "dau_mau_30d", "active_users_per_seat", "active_days_30d", "mau_change_30d",
    ]  # fmt: skip
    if "events" in w.present:
        ev = [e for e in w.events if e["account_id"] == account]

        def within(days: int) -> list[dict[str, Any]]:
            return [e for e in ev if _in(e["timestamp"], ago(days), at)]

        e30 = within(30)
        prev = [e for e in ev if _in(e["timestamp"], ago(60), ago(30))]
        out["events_7d"] = len(within(7))
        out["events_30d"] = len(e30)
        out["events_90d"] = len(within(90))
        for days in (30, 90):
            values = [e["value"] for e in within(days) if e.get("value") is not None]
            out[f"event_value_{days}d"] = sum(values)
        out["usage_trend_30d"] = _ratio(len(e30) - len(prev), len(prev))
        last_year = within(365)
        out["days_since_last_event"] = (
            (a - max(e["timestamp"] for e in last_year).date()).days if last_year else None
        )
        out["event_types_30d"] = len({e["event_type"] for e in e30 if e["event_type"] is not None})
        pairs = {(e["user_id"], e["timestamp"].date()) for e in e30}
        dau = len(pairs) / 30
        mau = len({e["user_id"] for e in e30})
        mau_prev = len({e["user_id"] for e in prev})
        out["dau_30d"] = dau
        out["mau_30d"] = mau
        out["dau_mau_30d"] = _ratio(dau, mau)
        out["active_users_per_seat"] = _ratio(mau, out["seats"])
        out["active_days_30d"] = len({e["timestamp"].date() for e in e30})
        out["mau_change_30d"] = _ratio(mau - mau_prev, mau_prev)
    else:
        out.update(dict.fromkeys(names_ev))

    # tickets
    names_tk = [
        "tickets_open", "tickets_30d", "tickets_90d", "median_resolution_hours_90d",
        "fcr_rate_90d", "low_csat_90d", "urgent_open",
    ]  # fmt: skip
    if "tickets" in w.present:
        tk = [t for t in w.tickets if t["account_id"] == account]
        known_tk = [t for t in tk if t["created_at"] < at]

        def resolved(t: dict[str, Any]) -> bool:
            return t["resolved_at"] is not None and t["resolved_at"] < at

        open_tk = [t for t in known_tk if not resolved(t)]
        t90 = [t for t in known_tk if t["created_at"] >= ago(90)]
        hours = [(t["resolved_at"] - t["created_at"]) / HOUR for t in t90 if resolved(t)]
        fcr = [t for t in t90 if resolved(t) and t.get("contacts") is not None]
        out["tickets_open"] = len(open_tk)
        out["tickets_30d"] = len([t for t in known_tk if t["created_at"] >= ago(30)])
        out["tickets_90d"] = len(t90)
        out["median_resolution_hours_90d"] = statistics.median(hours) if hours else None
        out["fcr_rate_90d"] = sum(1 for t in fcr if t["contacts"] == 1) / len(fcr) if fcr else None
        out["low_csat_90d"] = sum(
            1
            for t in tk
            if t["resolved_at"] is not None
            and _in(t["resolved_at"], ago(90), at)
            and t.get("csat") is not None
            and t["csat"] <= 2
        )
        out["urgent_open"] = sum(
            1 for t in open_tk if (t.get("priority") or "").lower() == "urgent"
        )
    else:
        out.update(dict.fromkeys(names_tk))

    # nps
    names_nps = [
        "nps_last_score", "nps_mean_365d", "nps_detractor", "days_since_nps", "nps_responses_365d"
    ]  # fmt: skip
    if "nps" in w.present:
        answers = [r for r in w.nps if r["account_id"] == account and r["responded_at"] < at]
        year = [r for r in answers if r["responded_at"] >= ago(365)]
        if answers:
            last_ts = max(r["responded_at"] for r in answers)
            last = min(r["score"] for r in answers if r["responded_at"] == last_ts)
            out["nps_last_score"] = last
            out["nps_detractor"] = 1 if last <= 6 else 0
            out["days_since_nps"] = (a - last_ts.date()).days
        else:
            out["nps_last_score"] = out["nps_detractor"] = out["days_since_nps"] = None
        out["nps_mean_365d"] = statistics.fmean(r["score"] for r in year) if year else None
        out["nps_responses_365d"] = len(year)
    else:
        out.update(dict.fromkeys(names_nps))

    for col in ("segment", "industry", "region"):
        out[col] = acc.get(col)
    return out


def reference_observation_end(w: World) -> date:
    days: list[date] = []
    days += [e["timestamp"].date() for e in w.events]
    days += [r["start_date"] for r in w.subs]
    days += [t["created_at"].date() for t in w.tickets]
    days += [r["responded_at"].date() for r in w.nps]
    days += [o["ordered_at"].date() for o in w.orders]
    days += [r["created_at"].date() for r in w.accounts]
    return max(days) + timedelta(days=1)


def reference_labels(
    w: World,
    account: str,
    a: date,
    *,
    horizon: int,
    grace: int,
    revenue_months: int,
    observed_end: date,
) -> dict[str, Any]:
    """``churned`` and ``revenue_next_12m`` by walking the days one by one."""

    def mrr(d: date) -> float:
        return mrr_on(w.subs, account, d, None)

    churned: int | None
    if a + timedelta(days=horizon + grace) <= observed_end:
        churned = 0
        for k in range(horizon):
            c = a + timedelta(days=k)
            if mrr(c - timedelta(days=1)) > 0 and all(
                mrr(c + timedelta(days=g)) == 0 for g in range(max(grace, 1))
            ):
                churned = 1
                break
    else:
        churned = None

    r_days = revenue_months * 365 // 12
    w_end = a + timedelta(days=r_days)
    revenue: float | None
    if w_end <= observed_end:
        revenue = 0.0
        for r in w.subs:
            if r["account_id"] != account:
                continue
            first = max(r["start_date"], a)
            last = w_end if r["end_date"] is None else min(r["end_date"], w_end)
            days = max((last - first).days, 0)
            revenue += r["mrr"] * days * 12.0 / 365.0
        lo, hi = midnight(a), midnight(w_end)
        revenue += sum(
            o["amount"]
            for o in w.orders
            if o["account_id"] == account and lo <= o["ordered_at"] < hi
        )
    else:
        revenue = None
    return {"churned": churned, "revenue_next_12m": revenue}


# ---------------------------------------------------------------------------------------
# a seeded random world
# ---------------------------------------------------------------------------------------

WORLD_START = date(2024, 1, 1)
WORLD_DAYS = 640


def _moment(rng: random.Random, lo: date, span_days: int) -> datetime:
    """A random instant; a third of them exactly at midnight, to hit window edges."""
    day = midnight(lo) + timedelta(days=rng.randrange(max(span_days, 1)))
    if rng.random() < 0.33:
        return day
    if rng.random() < 0.1:
        return day - timedelta(microseconds=1)
    return day + timedelta(seconds=rng.randrange(86400), microseconds=rng.randrange(1000) * 1000)


def random_world(seed: int, n_accounts: int = 20) -> dict[str, pd.DataFrame]:
    """Accounts with terms, expansions, contractions, churn, reactivation, add-ons."""
    rng = random.Random(seed)
    accounts, subs, events, tickets, nps, orders, costs = [], [], [], [], [], [], []
    plans = ["basic", "pro", "enterprise", None]
    for i in range(n_accounts):
        aid = f"acc{i:02d}"
        created = _moment(rng, WORLD_START, 300)
        accounts.append(
            {
                "account_id": aid,
                "created_at": created,
                "plan": rng.choice(plans),
                "segment": rng.choice(["smb", "mid", "ent", None]),
                "industry": rng.choice(["retail", "tech", None]),
                "region": rng.choice(["eu", "us", "apac"]),
                "seats": rng.choice([None, 0, 5, 12]),
            }
        )
        start = created.date() + timedelta(days=rng.choice([0, 0, 1, 10]))
        mrr = rng.choice([50.0, 99.5, 200.0, 0.1 + 0.2])
        while start < WORLD_START + timedelta(days=WORLD_DAYS):
            length = rng.choice([30, 45, 90, 120, 200])
            end: date | None = start + timedelta(days=length)
            last = rng.random() < 0.12
            if last:
                end = None if rng.random() < 0.5 else end
            subs.append(
                {
                    "account_id": aid,
                    "start_date": start,
                    "end_date": end,
                    "mrr": mrr,
                    "plan": rng.choice(plans),
                    "seats": rng.choice([None, 3, 10]),
                    "discount": rng.choice([None, None, 0.0, 0.1, 0.25]),
                    # the term end known at signing: mostly the length signed for, at
                    # times missing, or running on after the row stopped
                    "term_end": rng.choice(
                        [start + timedelta(days=length)] * 3
                        + [None, start + timedelta(days=length + 30)]
                    ),
                }
            )
            if rng.random() < 0.15:  # an add-on, sometimes free
                off = rng.randrange(length)
                subs.append(
                    {
                        "account_id": aid,
                        "start_date": start + timedelta(days=off),
                        "end_date": start + timedelta(days=off + rng.choice([10, 29, 30, 31, 60])),
                        "mrr": rng.choice([0.0, 25.0, mrr]),
                        "plan": rng.choice(plans),
                        "seats": rng.choice([None, 2]),
                    }
                )
            if end is None or last:
                break
            gap = rng.choice([0, 0, 0, 0, 1, 15, 29, 30, 31, 75])
            start = end + timedelta(days=gap)
            mrr = rng.choice([mrr, mrr, mrr * 1.5, mrr * 0.5, mrr + 1e-9])
        for _ in range(rng.randrange(0, 40)):
            events.append(
                {
                    "account_id": aid,
                    "user_id": f"u{rng.randrange(4)}",
                    "timestamp": _moment(rng, WORLD_START, WORLD_DAYS),
                    "event_type": rng.choice(["login", "report", "export", None]),
                    "value": rng.random(),
                }
            )
        for k in range(rng.randrange(0, 6)):
            t_created = _moment(rng, WORLD_START, WORLD_DAYS)
            resolved = (
                None
                if rng.random() < 0.25
                else t_created + timedelta(minutes=rng.randrange(1, 60 * 24 * 40))
            )
            tickets.append(
                {
                    "ticket_id": f"{aid}-t{k}",
                    "account_id": aid,
                    "created_at": t_created,
                    "resolved_at": resolved,
                    "priority": rng.choice(["low", "normal", "urgent", "Urgent", None]),
                    "contacts": rng.choice([None, 1, 1, 2, 4]),
                    "csat": None if resolved is None else rng.choice([None, 1, 2, 3, 5]),
                }
            )
        for _ in range(rng.randrange(0, 5)):
            at = _moment(rng, WORLD_START, WORLD_DAYS)
            nps.append({"account_id": aid, "responded_at": at, "score": rng.randrange(11)})
            if rng.random() < 0.2:  # two answers at the same instant
                nps.append({"account_id": aid, "responded_at": at, "score": rng.randrange(11)})
        for _ in range(rng.randrange(0, 4)):
            orders.append(
                {
                    "account_id": aid,
                    "ordered_at": _moment(rng, WORLD_START, WORLD_DAYS),
                    "amount": float(rng.randrange(0, 500)),
                }
            )
        for m in range(rng.randrange(0, 3)):
            costs.append({"account_id": aid, "month": date(2024, 1 + m, 1), "amount": 10.0})
    return {
        "costs": pd.DataFrame(costs, columns=["account_id", "month", "amount"]),
        "accounts": pd.DataFrame(accounts),
        "subscriptions": pd.DataFrame(subs),
        "events": pd.DataFrame(events),
        "tickets": pd.DataFrame(tickets),
        "nps": pd.DataFrame(nps),
        "orders": pd.DataFrame(orders),
    }
