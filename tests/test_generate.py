import re
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnrisk.contract import TABLES, Kind
from churnrisk.errors import ConfigError
from churnrisk.generate import GenerateSummary, add_months, generate_world

START = date(2024, 11, 1)


def _read(summary: GenerateSummary) -> dict[str, pd.DataFrame]:
    return {p.stem: pq.read_table(p).to_pandas(date_as_object=False) for p in summary.files}


def _bytes(summary: GenerateSummary) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in summary.files}


@pytest.fixture(scope="module")
def mid(tmp_path_factory):
    """A mid-size world: 300 accounts over 12 months."""
    summary = generate_world(
        tmp_path_factory.mktemp("mid"), accounts=300, months=12, start=START, seed=7
    )
    return summary, _read(summary)


def _mrr_on(subs: pd.DataFrame, day: date) -> pd.Series:
    """MRR per account on ``day`` (0 for accounts without a covering row)."""
    d = pd.Timestamp(day)
    cover = subs[(subs.start_date <= d) & (subs.end_date.isna() | (subs.end_date > d))]
    return cover.groupby("account_id").mrr.sum()


# --- arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accounts": 0}, "accounts must be a whole number >= 1"),
        ({"months": 0}, "months must be a whole number >= 1"),
        ({"fmt": "xlsx"}, "fmt must be 'csv' or 'parquet'"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_world(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_summary_and_progress(tmp_path):
    calls = []
    summary = generate_world(tmp_path, accounts=520, months=1, seed=1, progress=calls.append)
    assert calls == [500, 20]
    assert summary.start == START
    assert summary.end == date(2024, 12, 1)
    assert summary.out == tmp_path
    assert [p.name for p in summary.files] == [f"{t}.parquet" for t in TABLES]
    for path in summary.files:
        assert pq.read_metadata(path).num_rows == summary.rows[path.stem]
    assert summary.rows["accounts"] == 520


def test_add_months_clips_to_month_end():
    assert add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert add_months(date(2024, 11, 15), 14) == date(2026, 1, 15)


# --- determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path, fmt):
    kw = {"accounts": 60, "months": 6, "fmt": fmt}
    a = _bytes(generate_world(tmp_path / "a", seed=3, **kw))
    b = _bytes(generate_world(tmp_path / "b", seed=3, **kw))
    c = _bytes(generate_world(tmp_path / "c", seed=4, **kw))
    assert a == b
    assert a["events." + fmt] != c["events." + fmt]
    assert a["subscriptions." + fmt] != c["subscriptions." + fmt]


def test_output_does_not_depend_on_local_time_zone(tmp_path, monkeypatch):
    kw = {"accounts": 30, "months": 3, "seed": 5, "fmt": "csv"}
    utc = _bytes(generate_world(tmp_path / "utc", **kw))
    monkeypatch.setenv("TZ", "Pacific/Auckland")
    time.tzset()
    try:
        other = _bytes(generate_world(tmp_path / "nz", **kw))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert utc == other


# --- contract ------------------------------------------------------------------------


def test_tables_have_contract_columns_and_types(mid):
    summary, _ = mid
    expected_type = {
        Kind.STRING: pa.string(),
        Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        Kind.DATE: pa.date32(),
        Kind.INTEGER: pa.int64(),
        Kind.FLOAT: pa.float64(),
    }
    # the default world shows its discounts only as a lower MRR: no discount column
    not_written = {("subscriptions", "discount")}
    for name, spec in TABLES.items():
        schema = pq.read_schema(summary.out / f"{name}.parquet")
        columns = [c for c in spec.columns if (name, c.name) not in not_written]
        assert schema.names == [c.name for c in columns]
        for col in columns:
            assert schema.field(col.name).type == expected_type[col.kind], (name, col.name)
        assert summary.rows[name] > 0, name


def test_contract_rules_hold(mid):
    _, t = mid
    acc, subs, ev, tk, nps = (
        t[k] for k in ("accounts", "subscriptions", "events", "tickets", "nps")
    )
    known = set(acc.account_id)
    assert acc.account_id.is_unique
    assert tk.ticket_id.is_unique
    for name, frame in t.items():
        if name != "accounts":
            assert set(frame.account_id) <= known, name
        for col in TABLES[name].columns:
            if not col.nullable:
                assert frame[col.name].notna().all(), (name, col.name)
    assert (subs.mrr >= 0).all()
    assert (subs.term_end > subs.start_date).all()
    ended = subs.end_date.notna()
    assert (subs.end_date[ended] == subs.term_end[ended]).all()
    assert nps.score.between(0, 10).all()
    assert (tk.contacts >= 1).all()
    assert tk.csat.dropna().between(1, 5).all()
    resolved = tk.dropna(subset=["resolved_at"])
    assert (resolved.resolved_at > resolved.created_at).all()
    assert tk.resolved_at.isna().any()  # some still open at the end
    assert tk.loc[tk.resolved_at.isna(), "csat"].isna().all()
    assert (t["orders"].amount >= 0).all()
    assert (t["costs"].amount >= 0).all()
    assert (t["costs"].month.dt.day == 1).all()
    assert set(ev.event_type) >= {"login", "report_view", "api_call"}


def test_ids_and_referrals(mid):
    _, t = mid
    acc = t["accounts"]
    assert acc.account_id.str.fullmatch(r"A\d{3}").all()
    assert acc.account_id.tolist() == sorted(acc.account_id)
    assert acc.created_at.is_monotonic_increasing
    ev = t["events"]
    assert (ev.user_id.str.split("-U").str[0] == ev.account_id).all()
    assert ev.user_id.str.fullmatch(r"A\d{3}-U\d{3,}").all()
    assert t["tickets"].ticket_id.str.fullmatch(r"T\d{7}").all()
    ref = acc.dropna(subset=["referred_by"])
    assert 0.03 < len(ref) / len(acc) < 0.2
    created = acc.set_index("account_id").created_at
    assert (created.loc[ref.referred_by].to_numpy() <= ref.created_at.to_numpy()).all()


def test_subscriptions_are_point_in_time(mid):
    summary, t = mid
    subs, acc = t["subscriptions"], t["accounts"]
    end = pd.Timestamp(summary.end)
    assert (subs.start_date < end).all()
    # terms signed before the end may run past it: their stop is not known yet
    running = subs.term_end >= end
    assert running.any()
    assert subs.end_date[running].isna().all()
    assert (subs.end_date[~running] == subs.term_end[~running]).all()
    # accounts created before start have a term running at start
    start = pd.Timestamp(summary.start)
    old = set(acc.account_id[acc.created_at < pd.Timestamp(summary.start, tz="UTC")])
    assert old
    assert old <= set(_mrr_on(subs, summary.start).index)
    assert (subs.start_date < start).any()
    first = subs.groupby("account_id").start_date.min()
    created_day = acc.set_index("account_id").created_at.dt.tz_localize(None).dt.normalize()
    assert (first >= created_day.loc[first.index]).all()


def test_events_respect_lifecycle_and_weekly_rhythm(mid):
    summary, t = mid
    ev = t["events"].merge(t["accounts"][["account_id", "created_at"]], on="account_id")
    assert (ev.timestamp >= ev.created_at).all()
    start, end = (pd.Timestamp(d, tz="UTC") for d in (summary.start, summary.end))
    for name, col in [("events", "timestamp"), ("tickets", "created_at"), ("nps", "responded_at")]:
        assert t[name][col].between(start, end, inclusive="left").all(), name
    per_day = ev.groupby(ev.timestamp.dt.normalize()).size()
    weekend = per_day.index.dayofweek >= 5
    assert per_day[~weekend].mean() > 2.5 * per_day[weekend].mean()


def test_csv_holds_the_same_world_with_iso_utc_text(tmp_path):
    kw = {"accounts": 40, "months": 4, "seed": 2}
    pq_sum = generate_world(tmp_path / "p", fmt="parquet", **kw)
    csv_sum = generate_world(tmp_path / "c", fmt="csv", **kw)
    assert csv_sum.rows == pq_sum.rows
    assert [p.name for p in csv_sum.files] == [f"{t}.csv" for t in TABLES]
    tk = pd.read_csv(tmp_path / "c" / "tickets.csv", dtype=str, keep_default_na=False)
    assert tk.created_at.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    subs = pd.read_csv(tmp_path / "c" / "subscriptions.csv", dtype=str)
    assert subs.start_date.str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    expected = pq.read_table(tmp_path / "p" / "tickets.parquet").to_pandas()
    parsed = pd.to_datetime(tk.created_at, utc=True)
    assert (parsed.to_numpy() == expected.created_at.to_numpy()).all()
    acc = pd.read_csv(tmp_path / "c" / "accounts.csv")
    assert acc.referred_by.isna().any()  # empty, not a placeholder


def test_start_mid_month(tmp_path):
    summary = generate_world(tmp_path, accounts=80, months=2, start=date(2025, 1, 31), seed=9)
    assert summary.end == date(2025, 3, 31)
    t = _read(summary)
    subs = t["subscriptions"]
    assert (subs.start_date < pd.Timestamp(summary.end)).all()
    assert (subs.term_end > subs.start_date).all()
    ev = t["events"]
    assert ev.timestamp.min() >= pd.Timestamp(summary.start, tz="UTC")
    assert ev.timestamp.max() < pd.Timestamp(summary.end, tz="UTC")


# --- the world's behaviour -------------------------------------------------------------


def test_mrr_movements_all_occur(mid):
    summary, t = mid
    subs = t["subscriptions"]
    days = pd.date_range(summary.start, summary.end, freq="7D", inclusive="left")
    mrr = pd.DataFrame({d: _mrr_on(subs, d.date()) for d in days}).fillna(0.0)
    prev, cur = mrr.iloc[:, :-1].to_numpy(), mrr.iloc[:, 1:].to_numpy()
    paid_before = np.maximum.accumulate(mrr.to_numpy() > 0, axis=1)[:, :-1]
    assert ((prev > 0) & (cur > prev + 0.01)).any(), "expansion"
    assert ((cur > 0) & (cur < prev - 0.01)).any(), "contraction"
    assert ((prev > 0) & (cur == 0)).any(), "churn"
    assert ((prev == 0) & (cur > 0) & paid_before).any(), "reactivation"
    # annual contracts mix with monthly ones
    length = (subs.term_end - subs.start_date).dt.days
    assert (length.between(28, 31)).any()
    assert (length.between(365, 366)).any()


def test_monthly_logo_churn_is_realistic(mid):
    summary, t = mid
    subs = t["subscriptions"]
    rates = []
    for k in range(1, 12):
        p0 = add_months(summary.start, k)
        before = _mrr_on(subs, p0 - timedelta(days=1))
        after = _mrr_on(subs, add_months(p0, 1) - timedelta(days=1))
        rates.append(len(set(before.index) - set(after.index)) / len(before))
    assert 0.005 < float(np.mean(rates)) < 0.05


def test_churners_use_the_product_less_before_they_leave(mid):
    summary, t = mid
    subs, ev = t["subscriptions"], t["events"]
    rows = []
    for k in range(3, 9):
        as_of = add_months(summary.start, k)
        now = _mrr_on(subs, as_of - timedelta(days=1))
        later = _mrr_on(subs, as_of + timedelta(days=120))
        lo = pd.Timestamp(as_of - timedelta(days=60), tz="UTC")
        hi = pd.Timestamp(as_of, tz="UTC")
        used = ev[(ev.timestamp >= lo) & (ev.timestamp < hi)].groupby("account_id").size()
        seats = (
            subs[
                (subs.start_date <= pd.Timestamp(as_of))
                & (subs.end_date.isna() | (subs.end_date > pd.Timestamp(as_of)))
            ]
            .groupby("account_id")
            .seats.sum()
        )
        for a in now.index:
            rows.append(
                {
                    "churned": a not in later.index,
                    "per_seat": used.get(a, 0) / max(seats.get(a, 1), 1),
                }
            )
    df = pd.DataFrame(rows)
    means = df.groupby("churned").per_seat.mean()
    assert df.churned.sum() >= 20
    assert means[True] < 0.6 * means[False]


def test_health_reaches_tickets_and_nps(mid):
    summary, t = mid
    subs = t["subscriptions"]
    last = subs.groupby("account_id").term_end.max()
    churned = set(last[last < pd.Timestamp(summary.end)].index)
    nps = t["nps"]
    by = nps.groupby(nps.account_id.isin(churned)).score.mean()
    assert by[True] < by[False] - 0.5
    tk = t["tickets"]
    fcr = tk.groupby(tk.account_id.isin(churned)).contacts.apply(lambda c: (c == 1).mean())
    assert fcr[True] < fcr[False]


def test_account_attributes(mid):
    _, t = mid
    acc = t["accounts"]
    assert set(acc.segment) == {"SMB", "Mid-Market", "Enterprise"}
    assert set(acc.plan) <= {"starter", "growth", "enterprise"}
    assert (acc.seats >= 1).all()
    assert (acc.acquisition_cost > 0).all()
    assert acc.owner.nunique() >= 5
    assert re.fullmatch(r"\w+ \w+ \w+", acc.name.iloc[0])
