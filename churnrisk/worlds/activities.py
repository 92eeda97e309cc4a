"""A small CS history for a world: calls, e-mails and meetings by the account owners.

What a CRM export of customer success's touches looks like (the contract's optional
``activities`` table): a few dozen activities on the accounts of the first batch, each
by the account's owner, at a working hour after the account was created and before the
end of the export; some with an outcome; and, on a few accounts that churned, a last
call or e-mail in the weeks before the churn (with no saving outcome: they left).

Drawn from a random stream of its own, after every other table is written, so adding
it changes no other table of a world. The history plants no signal: churn does not
depend on it, it is data for the activity log and a later uplift model.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churnrisk.worlds.base import Calendar, table

ROWS = 36
"""Activities written (fewer when the batch has fewer accounts)."""

BEFORE_CHURN = 6
"""Of those, the last touches before a churn (at most)."""

KINDS = ("call", "email", "meeting")
KIND_WEIGHTS = (0.45, 0.35, 0.20)
OUTCOMES = ("saved", "expanded", "no_response")
TOPICS = ("renewal", "adoption", "onboarding", "pricing", "open tickets", "new seats")


def _churns(subscriptions: pa.Table, end: date) -> dict[str, date]:
    """Return each account whose every subscription row has ended, with its last end."""
    ids = subscriptions["account_id"].to_pylist()
    ends = subscriptions["end_date"].to_pylist()
    last: dict[str, date | None] = {}
    for account, stop in zip(ids, ends, strict=True):
        seen = last.get(account, date.min)
        last[account] = None if stop is None or seen is None else max(seen, stop)
    return {a: d for a, d in last.items() if d is not None and d < end}


def _moment(rng: np.random.Generator, day: date) -> datetime:
    """Return a working-hour moment of ``day``, in UTC."""
    seconds = int(rng.integers(8 * 3600, 18 * 3600))
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(seconds=seconds)


def draw_activities(
    rng: np.random.Generator, cal: Calendar, accounts: pa.Table, subscriptions: pa.Table
) -> pa.Table:
    """Return the ``activities`` table of the accounts in ``accounts`` (see the module).

    Parameters
    ----------
    rng
        The history's own generator.
    cal
        The observed period.
    accounts, subscriptions
        The tables of the accounts the history is about (``owner`` is the author).
    """
    ids = accounts["account_id"].to_pylist()
    owners = (
        accounts["owner"].to_pylist() if "owner" in accounts.column_names else [None] * len(ids)
    )
    created = [
        max(ts.date(), cal.start)
        for ts in pc.cast(accounts["created_at"], pa.timestamp("us", tz="UTC")).to_pylist()
    ]
    owner_of = dict(zip(ids, owners, strict=True))
    since = dict(zip(ids, created, strict=True))
    last_day = cal.end - timedelta(days=1)
    rows: list[tuple[datetime, str, str, str | None, str | None, str]] = []

    churns = _churns(subscriptions, cal.end)
    churned = sorted(a for a, day in churns.items() if day > since[a])
    for i in rng.permutation(len(churned))[:BEFORE_CHURN]:
        account = churned[int(i)]
        day = max(since[account], churns[account] - timedelta(days=int(rng.integers(3, 31))))
        kind = str(rng.choice(("call", "email")))
        outcome = "no_response" if rng.random() < 0.5 else None
        text = f"{kind} about the renewal; the customer is weighing other tools"
        rows.append((_moment(rng, day), account, kind, outcome, owner_of[account], text))

    for _ in range(min(ROWS, len(ids)) - len(rows)):
        account = ids[int(rng.integers(len(ids)))]
        span = (last_day - since[account]).days
        day = since[account] + timedelta(days=int(rng.integers(span + 1)) if span > 0 else 0)
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        outcome = str(rng.choice(OUTCOMES)) if rng.random() < 0.3 else None
        text = f"{kind} on {rng.choice(TOPICS)}"
        rows.append((_moment(rng, day), account, kind, outcome, owner_of[account], text))

    rows.sort(key=lambda r: (r[0], r[1]))
    return table(
        "activities",
        {
            "account_id": pa.array([r[1] for r in rows], pa.string()),
            "occurred_at": pa.array([r[0] for r in rows], pa.timestamp("us", tz="UTC")),
            "kind": pa.array([r[2] for r in rows], pa.string()),
            "outcome": pa.array([r[3] for r in rows], pa.string()),
            "owner": pa.array([r[4] for r in rows], pa.string()),
            "text": pa.array([r[5] for r in rows], pa.string()),
        },
    )
