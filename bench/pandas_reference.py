"""The benchmark's comparison point: churnrisk's features written as plain pandas.

This is how a data scientist would compute the same panel in a notebook: read every
table of a generated world whole with ``pd.read_parquet``, then loop over the as-of
dates; for each date, filter the frames to the window, ``groupby`` account, and merge
the pieces onto that date's spine. Within a date everything is vectorised; nothing
loops over accounts.

It follows the definitions of ``churnrisk.features`` (the registry's meanings and the
engine's conventions): a window of ``w`` days at as-of ``a`` is ``[a - w days, a)``;
counts over a present table are 0 when nothing falls in the window, ratios, means,
medians and "days since" are NULL when undefined, and every feature of an absent
optional table is NULL. The output equals ``churnrisk.features.build_features`` (same
rows, columns, order and dtypes); ``tests/test_bench_reference.py`` checks it.

Usage: ``build_features_pandas(Path("bench/output/world-4000x24"), as_of_dates)``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.typing import DataFrameGroupBy

from churnrisk.features.registry import FEATURES

TABLES = ("accounts", "subscriptions", "events", "tickets", "nps", "orders")
TIMESTAMPS = {
    "accounts": ["created_at"],
    "events": ["timestamp"],
    "tickets": ["created_at", "resolved_at"],
    "nps": ["responded_at"],
    "orders": ["ordered_at"],
}
DATES = {"subscriptions": ["start_date", "end_date", "term_end"]}
EPS = 1e-6  # MRR moves smaller than this are float noise
DAY = pd.Timedelta(days=1)


def days(n: int) -> pd.Timedelta:
    return pd.Timedelta(days=n)


def read_world(data: Path) -> dict[str, pd.DataFrame]:
    """Read the tables of a world folder; timestamps become naive UTC, dates midnight."""
    frames = {}
    for name in TABLES:
        path = Path(data) / f"{name}.parquet"
        if not path.exists():
            continue  # optional table absent: its features are NULL
        df = pd.read_parquet(path)
        for col in TIMESTAMPS.get(name, []):
            df[col] = pd.to_datetime(df[col], utc=True).dt.tz_convert(None)
        for col in DATES.get(name, []):
            df[col] = pd.to_datetime(df[col])
        frames[name] = df
    return frames


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den as float, NaN where den is 0 or missing."""
    return num.astype(float) / den.astype(float).replace(0.0, np.nan)


def covering(subs: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """Subscription rows running on ``day`` (end_date exclusive, missing means ongoing)."""
    ongoing = subs["end_date"].isna() | (subs["end_date"] > day)
    return subs[(subs["start_date"] <= day) & ongoing]


# ---------------------------------------------------------------------------------------
# one as-of date
# ---------------------------------------------------------------------------------------


def spine(t: dict[str, pd.DataFrame], a: pd.Timestamp) -> pd.Index:
    """Accounts created before ``a`` that pay something on the day before ``a``."""
    acc = t["accounts"]
    created = acc.loc[acc["created_at"] < a, "account_id"]
    mrr = covering(t["subscriptions"], a - DAY).groupby("account_id")["mrr"].sum()
    paying = mrr.index[mrr > 0]
    return pd.Index(created[created.isin(paying)], name="account_id")


def slim_events(ev: pd.DataFrame) -> pd.DataFrame:
    """The columns the features need, repeated strings as categories, and the UTC day."""
    return pd.DataFrame(
        {
            "account_id": ev["account_id"].astype("category"),
            "user_id": ev["user_id"].astype("category"),
            "event_type": ev["event_type"].astype("category"),
            "value": ev["value"].astype(float) if "value" in ev else np.nan,
            "day": ev["timestamp"].dt.normalize(),
        }
    )


def event_features(ev: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    last90 = ev[(ev["day"] >= a - days(90)) & (ev["day"] < a)]
    last30 = last90[last90["day"] >= a - days(30)]
    last7 = last30[last30["day"] >= a - days(7)]
    prev30 = last90[(last90["day"] >= a - days(60)) & (last90["day"] < a - days(30))]
    last365 = ev.loc[(ev["day"] >= a - days(365)) & (ev["day"] < a), ["account_id", "day"]]

    def by_account(df: pd.DataFrame) -> DataFrameGroupBy:
        return df.groupby("account_id", observed=True)

    g30 = by_account(last30)
    parts = {
        "events_7d": by_account(last7).size(),
        "events_30d": g30.size(),
        "events_90d": by_account(last90).size(),
        "event_value_30d": g30["value"].sum(),
        "event_value_90d": by_account(last90)["value"].sum(),
        "events_prev": by_account(prev30).size(),
        "event_types_30d": g30["event_type"].nunique(),  # missing types don't count
        "mau_30d": g30["user_id"].nunique(),
        "mau_prev": by_account(prev30)["user_id"].nunique(),
        "active_days_30d": g30["day"].nunique(),
        "user_days": by_account(last30.drop_duplicates(["account_id", "user_id", "day"])).size(),
        "last_day": by_account(last365)["day"].max(),
    }
    # string keys again (aligning categorical indexes of different sizes is fragile)
    return pd.DataFrame({k: v.set_axis(v.index.astype(str)) for k, v in parts.items()})


def finish_events(df: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    """Events features of the spine rows (after the left merge: no row means no usage)."""
    counts = ["events_7d", "events_30d", "events_90d", "events_prev", "event_types_30d"]
    counts += ["event_value_30d", "event_value_90d"]
    counts += ["mau_30d", "mau_prev", "active_days_30d", "user_days"]
    df[counts] = df[counts].fillna(0)
    df["usage_trend_30d"] = ratio(df["events_30d"] - df["events_prev"], df["events_prev"])
    df["days_since_last_event"] = (a - df["last_day"]).dt.days
    df["dau_30d"] = df["user_days"] / 30.0
    df["dau_mau_30d"] = ratio(df["dau_30d"], df["mau_30d"])
    df["mau_change_30d"] = ratio(df["mau_30d"] - df["mau_prev"], df["mau_prev"])
    df["active_users_per_seat"] = ratio(df["mau_30d"], df["seats"])
    return df


def ticket_features(tk: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    known = tk[tk["created_at"] < a].copy()
    known["resolved"] = known["resolved_at"] < a  # NaT compares False: still open
    known["open"] = ~known["resolved"]
    known["urgent_open"] = known["open"] & (known["priority"].str.lower() == "urgent")
    known["in30"] = known["created_at"] >= a - days(30)
    known["in90"] = known["created_at"] >= a - days(90)

    done90 = known[known["in90"] & known["resolved"]].copy()
    micros = (done90["resolved_at"] - done90["created_at"]) // pd.Timedelta(microseconds=1)
    done90["hours"] = micros.astype(float) / 3.6e9
    with_contacts = done90[done90["contacts"].notna()]

    # CSAT is known once the ticket is resolved: windowed on resolved_at
    rated = tk[(tk["resolved_at"] >= a - days(90)) & (tk["resolved_at"] < a)]

    g = known.groupby("account_id")
    first_contact = with_contacts["contacts"] == 1
    out = pd.DataFrame(
        {
            "tickets_open": g["open"].sum(),
            "tickets_30d": g["in30"].sum(),
            "tickets_90d": g["in90"].sum(),
            "median_resolution_hours_90d": done90.groupby("account_id")["hours"].median(),
            "fcr_rate_90d": first_contact.groupby(with_contacts["account_id"]).mean(),
            "low_csat_90d": (rated["csat"] <= 2).groupby(rated["account_id"]).sum(),
            "urgent_open": g["urgent_open"].sum(),
        }
    )
    return out


def nps_features(nps: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    known = nps[nps["responded_at"] < a]
    year = known[known["responded_at"] >= a - days(365)]
    # the latest answer; several at the same instant: the lowest score (cautious)
    latest = known.sort_values(["account_id", "responded_at", "score"]).copy()
    latest["last_ts"] = latest.groupby("account_id")["responded_at"].transform("max")
    latest = latest[latest["responded_at"] == latest["last_ts"]]
    latest = latest.drop_duplicates("account_id").set_index("account_id")
    out = pd.DataFrame(
        {
            "nps_last_score": latest["score"],
            "nps_mean_365d": year.groupby("account_id")["score"].mean(),
            "nps_responses_365d": year.groupby("account_id").size(),
            "days_since_nps": (a - latest["responded_at"].dt.normalize()).dt.days,
        }
    )
    out["nps_detractor"] = (out["nps_last_score"] <= 6).astype(float)
    out.loc[out["nps_last_score"].isna(), "nps_detractor"] = np.nan
    return out


def mrr_moves(subs: pd.DataFrame) -> pd.DataFrame:
    """Every day an account's MRR could move (a start or end date), MRR before and on it.

    Computed once: a move on day d only involves subscription rows started by d, so
    filtering moves by day is point in time.
    """
    bounds = pd.concat(
        [
            subs[["account_id", "start_date"]].rename(columns={"start_date": "day"}),
            subs.loc[subs["end_date"].notna(), ["account_id", "end_date"]].rename(
                columns={"end_date": "day"}
            ),
        ]
    ).drop_duplicates()
    m = bounds.merge(subs, on="account_id")
    ongoing_before = m["end_date"].isna() | (m["end_date"] > m["day"] - DAY)
    ongoing_on = m["end_date"].isna() | (m["end_date"] > m["day"])
    was = (m["start_date"] <= m["day"] - DAY) & ongoing_before
    now = (m["start_date"] <= m["day"]) & ongoing_on
    m["before"] = m["mrr"].where(was, 0.0)
    m["after"] = m["mrr"].where(now, 0.0)
    m["plan_before"] = m["plan"].where(was)
    m["plan_after"] = m["plan"].where(now)
    g = m.groupby(["account_id", "day"])
    out = g[["before", "after"]].sum()
    # the lowest and highest plan name running on each side of the day
    out["lo_before"], out["hi_before"] = g["plan_before"].min(), g["plan_before"].max()
    out["lo_after"], out["hi_after"] = g["plan_after"].min(), g["plan_after"].max()
    return out.reset_index()


def subscription_features(subs: pd.DataFrame, moves: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    known = subs[subs["start_date"] < a]
    now = covering(known, a - DAY)
    quarter_ago = covering(known, a - days(91))
    g = now.groupby("account_id")

    # plan of the biggest running subscription; ties: the first plan name
    planned = now[now["plan"].notna()].sort_values(["account_id", "mrr", "plan"])
    planned = planned.assign(top=planned.groupby("account_id")["mrr"].transform("max"))
    plan = planned[planned["mrr"] == planned["top"]].groupby("account_id")["plan"].first()

    year = moves[(moves["day"] >= a - days(365)) & (moves["day"] < a)]
    expansion = (year["before"] > 0) & (year["after"] > year["before"] + EPS)
    contraction = (year["after"] > 0) & (year["after"] < year["before"] - EPS)
    quarter = year[year["day"] >= a - days(90)]
    q_up = (quarter["before"] > 0) & (quarter["after"] > quarter["before"] + EPS)
    q_down = (quarter["after"] > 0) & (quarter["after"] < quarter["before"] - EPS)
    both = quarter["lo_before"].notna() & quarter["lo_after"].notna()
    moved = (quarter["lo_before"] != quarter["lo_after"]) | (
        quarter["hi_before"] != quarter["hi_after"]
    )
    plan_moves = both & moved
    seats_now = now["seats"].groupby(now["account_id"]).sum(min_count=1)
    seats_then = quarter_ago["seats"].groupby(quarter_ago["account_id"]).sum(min_count=1)
    seats_change = seats_now.sub(seats_then, fill_value=0)  # NaN only when both are
    length = (now["term_end"] - now["start_date"]).dt.days
    return pd.DataFrame(
        {
            "upgrades_90d": q_up.groupby(quarter["account_id"]).sum(),
            "downgrades_90d": q_down.groupby(quarter["account_id"]).sum(),
            "plan_changes_90d": plan_moves.groupby(quarter["account_id"]).sum(),
            "seats_change_90d": seats_change,
            "term_length_days": length.groupby(now["account_id"]).max(),
            "discount": now["discount"].groupby(now["account_id"]).max()
            if "discount" in now
            else np.nan,
            "mrr": g["mrr"].sum(),
            "mrr_91": quarter_ago.groupby("account_id")["mrr"].sum(),
            "sub_seats": g["seats"].sum(min_count=1),
            # the term end known at signing, on or after the as-of date
            "renewal": now["term_end"].where(now["term_end"] >= a).groupby(now["account_id"]).min(),
            "sub_plan": plan,
            "contractions_365d": contraction.groupby(year["account_id"]).sum(),
            "expansions_365d": expansion.groupby(year["account_id"]).sum(),
        }
    )


def orders_features(orders: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    last90 = orders[(orders["ordered_at"] >= a - days(90)) & (orders["ordered_at"] < a)]
    return last90.groupby("account_id")["amount"].sum().rename("orders_amount_90d").to_frame()


def features_at(t: dict[str, pd.DataFrame], moves: pd.DataFrame, a: pd.Timestamp) -> pd.DataFrame:
    """Every feature for the spine accounts at one as-of date."""
    acc = t["accounts"].set_index("account_id")
    df = pd.DataFrame(index=spine(t, a))
    df = df.join(subscription_features(t["subscriptions"], moves, a))
    df = df.join(acc[["created_at", "plan", "seats", "segment", "industry", "region"]])

    df["mrr"] = df["mrr"].fillna(0.0)
    df["mrr_change_90d"] = df["mrr"] - df["mrr_91"].fillna(0.0)
    df["plan"] = df["sub_plan"].fillna(df["plan"])
    df["seats"] = df["sub_seats"].fillna(df["seats"])
    df["days_to_renewal"] = (df["renewal"] - a).dt.days
    for col in ("contractions_365d", "expansions_365d", "upgrades_90d", "downgrades_90d"):
        df[col] = df[col].fillna(0)
    for col in ("plan_changes_90d",):
        df[col] = df[col].fillna(0)
    df["tenure_days"] = (a - df["created_at"].dt.normalize()).dt.days

    if "events" in t:
        df = finish_events(df.join(event_features(t["events"], a)), a)
    if "tickets" in t:
        df = df.join(ticket_features(t["tickets"], a))
        for col in ("tickets_open", "tickets_30d", "tickets_90d", "low_csat_90d", "urgent_open"):
            df[col] = df[col].fillna(0)
    if "nps" in t:
        df = df.join(nps_features(t["nps"], a))
        df["nps_responses_365d"] = df["nps_responses_365d"].fillna(0)
    if "orders" in t:
        df = df.join(orders_features(t["orders"], a))
        df["orders_amount_90d"] = df["orders_amount_90d"].fillna(0.0)

    df = df.reset_index()
    df.insert(1, "as_of", a)
    return df


def build_features_pandas(data: Path, as_of: list[date]) -> pd.DataFrame:
    """Build the feature panel of a world folder with pandas, one as-of date at a time.

    Returns one row per (account, as-of) of the spine, sorted by ``as_of, account_id``:
    ``account_id`` (string), ``as_of`` (datetime64[ns]), then every registered feature in
    registry order (float64, or category for the categorical ones).
    """
    t = read_world(Path(data))
    if "events" in t:
        t["events"] = slim_events(t["events"])
    moves = mrr_moves(t["subscriptions"])
    panel = pd.concat(
        [features_at(t, moves, pd.Timestamp(a)) for a in sorted(set(as_of))], ignore_index=True
    )

    out = panel[["account_id", "as_of"]].copy()
    out["account_id"] = out["account_id"].astype("string")
    out["as_of"] = out["as_of"].astype("datetime64[ns]")
    for f in FEATURES:
        col = panel[f.name] if f.name in panel else pd.Series(np.nan, index=panel.index)
        out[f.name] = col.astype("category") if f.dtype == "category" else col.astype(float)
    return out.sort_values(["as_of", "account_id"], ignore_index=True)
