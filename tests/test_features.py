import math
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import (
    World,
    midnight,
    random_world,
    reference_features,
    reference_labels,
    reference_observation_end,
    reference_spine,
)

from churnrisk.config import LabelConfig
from churnrisk.contract import OPTIONAL_TABLES, TABLES
from churnrisk.dataset import Dataset
from churnrisk.errors import ConfigError, UnknownFeatureError
from churnrisk.features import (
    FEATURES,
    as_of_dates,
    build_features,
    build_features_expr,
    feature_names,
    get_feature,
    lookback,
    write_features,
)
from churnrisk.features.registry import FAMILIES, Aggregation, Feature, check_declarations
from churnrisk.features.vocabulary import Vocabulary, panel_features, vocabulary_features

A = date(2025, 3, 1)
AT = midnight(A)
US = timedelta(microseconds=1)
DATES = as_of_dates(date(2024, 2, 1), date(2025, 10, 1))


def _same(engine: Any, ref: Any) -> bool:
    engine = None if pd.isna(engine) else engine
    if engine is None or ref is None:
        return engine is None and ref is None
    if isinstance(ref, str):
        return engine == ref
    return math.isclose(float(engine), float(ref), rel_tol=1e-9, abs_tol=1e-9)


def _small(absent: tuple[str, ...] = (), **tables: list[dict[str, Any]]) -> Dataset:
    """Accounts paying 100/month since 2024-01-01, plus the given rows.

    Every optional table but those in ``absent`` is present (empty unless given), so
    that most tests share one compiled query.
    """
    ids = sorted({r["account_id"] for rows in tables.values() for r in rows} | {"base"})
    frames = {
        "accounts": pd.DataFrame(
            {"account_id": ids, "created_at": [datetime(2024, 1, 1)] * len(ids)}
        ),
        "subscriptions": pd.DataFrame(
            {
                "account_id": ids,
                "start_date": [date(2024, 1, 1)] * len(ids),
                "end_date": [None] * len(ids),
                "mrr": [100.0] * len(ids),
            }
        ),
    }
    for name in OPTIONAL_TABLES:
        if name not in absent:
            frames[name] = pd.DataFrame(columns=list(TABLES[name].required_columns))
    for name, rows in tables.items():
        frames[name] = pd.concat([frames[name], pd.DataFrame(rows)], ignore_index=True)
    return Dataset.from_frames(frames)


def _by_account(df: pd.DataFrame, column: str) -> dict[str, Any]:
    return {a: (None if pd.isna(v) else v) for a, v in zip(df.account_id, df[column], strict=True)}


# -- registry -------------------------------------------------------------------------------


def test_registry_declares_each_feature_once_with_meaning():
    names = feature_names()
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    assert {f.family for f in FEATURES} == set(FAMILIES)
    for f in FEATURES:
        assert f.meaning
        assert f.dtype in {"float", "int", "category"}
        assert f.window_days is None or f.window_days > 0
    assert get_feature("dau_mau_30d").meaning == "DAU/MAU, last 30 days"


def test_get_feature_rejects_unknown_names():
    with pytest.raises(UnknownFeatureError, match="unknown feature 'nope'"):
        get_feature("nope")


def test_as_of_dates():
    assert as_of_dates(date(2025, 1, 15), date(2025, 4, 1)) == [
        date(2025, 2, 1),
        date(2025, 3, 1),
        date(2025, 4, 1),
    ]
    weekly = as_of_dates(date(2025, 1, 1), date(2025, 1, 20), "weekly")
    assert weekly == [date(2025, 1, 6), date(2025, 1, 13), date(2025, 1, 20)]
    with pytest.raises(ConfigError, match="before it starts"):
        as_of_dates(date(2025, 2, 1), date(2025, 1, 1))
    with pytest.raises(ConfigError, match="unknown as-of frequency"):
        as_of_dates(date(2025, 1, 1), date(2025, 2, 1), "daily")  # type: ignore[arg-type]


# -- the engine against the slow reference ------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return random_world(7, n_accounts=24)


@pytest.fixture(scope="module")
def panel(world: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return build_features(Dataset.from_frames(world), DATES, labels=LabelConfig())


def test_engine_computes_exactly_the_registered_features(panel: pd.DataFrame):
    assert list(panel.columns) == [
        "account_id",
        "as_of",
        *feature_names(),
        "churned",
        "revenue_next_12m",
    ]
    assert panel["as_of"].dtype == "datetime64[ns]"
    assert panel["churned"].dtype == "Int8"
    for f in FEATURES:
        expected = "category" if f.dtype == "category" else "float64"
        assert panel[f.name].dtype == expected, f.name
    keys = list(zip(panel.as_of, panel.account_id, strict=True))
    assert keys == sorted(keys)


def test_engine_equals_reference(world: dict[str, pd.DataFrame], panel: pd.DataFrame):
    w = World.from_frames(world)
    spine = reference_spine(w, DATES)
    assert list(zip(panel.account_id, panel.as_of.dt.date, strict=True)) == spine
    observed_end = reference_observation_end(w)
    assert panel.churned.notna().any()
    assert panel.churned.isna().any()
    mismatches = []
    for row, (account, a) in zip(panel.itertuples(index=False), spine, strict=True):
        ref = reference_features(w, account, a)
        ref |= reference_labels(
            w, account, a, horizon=90, grace=30, revenue_months=12, observed_end=observed_end
        )
        for name, value in ref.items():
            got = getattr(row, name)
            if not _same(got, value):
                mismatches.append((account, a, name, got, value))
    assert mismatches == []


def test_reference_world_exercises_the_features(panel: pd.DataFrame):
    # guards the equality test above against a world too bland to catch anything
    for name in (
        "expansions_365d",
        "contractions_365d",
        "urgent_open",
        "low_csat_90d",
        "upgrades_90d",
        "downgrades_90d",
        "plan_changes_90d",
        "event_value_30d",
    ):
        assert panel[name].max() >= 1, name
    for name in (
        "usage_trend_30d",
        "median_resolution_hours_90d",
        "days_to_renewal",
        "term_length_days",
        "discount",
        "seats_change_90d",
    ):
        assert panel[name].notna().any(), name
        assert panel[name].isna().any(), name
    assert set(panel.churned.dropna()) == {0, 1}


# -- the point-in-time join and its window edges ---------------------------------------------


def test_lookback_window_is_half_open():
    table = ibis.memtable(
        {
            "account_id": ["x"] * 4,
            "ts": [AT - timedelta(days=30), AT - timedelta(days=30) - US, AT - US, AT],
        }
    )
    sp = ibis.memtable(
        {"account_id": ["x", "y"], "as_of": [A, A]},
        schema={"account_id": "string", "as_of": "date"},
    )
    got = lookback(sp, table, "ts", 30).execute()
    assert sorted(got.ts) == [pd.Timestamp(AT - timedelta(days=30)), pd.Timestamp(AT - US)]
    assert set(got.account_id) == {"x"}


def test_event_window_edges():
    events = [
        {"account_id": "at_start", "timestamp": AT - timedelta(days=30)},
        {"account_id": "before_start", "timestamp": AT - timedelta(days=30) - US},
        {"account_id": "last_instant", "timestamp": AT - US},
        {"account_id": "at_as_of", "timestamp": AT},
    ]
    ds = _small(events=[e | {"user_id": "u"} for e in events])
    df = build_features(ds, [A])
    assert _by_account(df, "events_30d") == {
        "at_start": 1,
        "before_start": 0,
        "last_instant": 1,
        "at_as_of": 0,
        "base": 0,
    }
    got = _by_account(df, "days_since_last_event")
    assert got == {
        "at_start": 30,
        "before_start": 31,
        "last_instant": 1,
        "at_as_of": None,
        "base": None,
    }


def test_spine_takes_paying_accounts_created_before_the_as_of_date():
    d = lambda k: A + timedelta(days=k)  # noqa: E731
    frames = {
        "accounts": pd.DataFrame(
            {
                "account_id": [
                    "ends_on_a",
                    "ends_day_before",
                    "starts_on_a",
                    "new_on_a",
                    "new_late",
                ],
                "created_at": [datetime(2024, 1, 1)] * 3 + [AT, AT - US],
            }
        ),
        "subscriptions": pd.DataFrame(
            {
                "account_id": [
                    "ends_on_a",
                    "ends_day_before",
                    "starts_on_a",
                    "new_on_a",
                    "new_late",
                ],
                "start_date": [d(-100), d(-100), A, d(-5), d(-1)],
                "end_date": [A, d(-1), None, None, None],
                "mrr": [10.0, 10.0, 10.0, 10.0, 10.0],
                "term_end": [A, d(-1), None, None, None],
            }
        ),
    }
    df = build_features(Dataset.from_frames(frames), [A])
    assert list(df.account_id) == ["ends_on_a", "new_late"]
    assert list(df.days_to_renewal.fillna(-1)) == [0, -1]


def test_renewal_timing_reads_term_end_never_the_end_date():
    """A cancellation-dated export writes end_date only for rows that stopped.

    Reading it as a renewal date would give "days to renewal" to exactly the accounts
    that are about to leave (a perfect leak): only the term end known at signing counts.
    """
    d = lambda k: A + timedelta(days=k)  # noqa: E731
    frames = {
        "accounts": pd.DataFrame(
            {"account_id": ["leaves", "stays", "renews"], "created_at": [datetime(2024, 1, 1)] * 3}
        ),
        "subscriptions": pd.DataFrame(
            {
                "account_id": ["leaves", "stays", "renews"],
                "start_date": [d(-100)] * 3,
                "end_date": [d(40), None, None],  # the day it stopped, written afterwards
                "mrr": [10.0] * 3,
                "term_end": [None, None, d(20)],  # known at signing
            }
        ),
    }
    df = build_features(Dataset.from_frames(frames), [A]).set_index("account_id")
    assert df.days_to_renewal.isna().to_dict() == {
        "leaves": True,
        "renews": False,
        "stays": True,
    }
    assert df.loc["renews", "days_to_renewal"] == 20


def test_absent_tables_give_null_features():
    row = build_features(_small(absent=OPTIONAL_TABLES), [A]).iloc[0]
    for f in FEATURES:
        if f.table in {"events", "tickets", "nps", "orders"}:
            assert pd.isna(row[f.name]), f.name
        elif f.dtype != "category":
            optional = {
                "seats",
                "days_to_renewal",
                "term_length_days",
                "discount",
                "seats_change_90d",
            }
            assert not pd.isna(row[f.name]) or f.name in optional, f.name
    assert row["mrr"] == 100.0


def test_present_but_quiet_tables_give_zero_counts():
    ds = _small(
        events=[{"account_id": "other", "user_id": "u", "timestamp": AT - timedelta(days=400)}],
        orders=[{"account_id": "other", "ordered_at": AT + timedelta(days=1), "amount": 5.0}],
    )
    row = build_features(ds, [A]).set_index("account_id").loc["base"]
    assert (row.events_30d, row.mau_30d, row.orders_amount_90d) == (0, 0, 0)
    assert pd.isna(row.dau_mau_30d)
    assert pd.isna(row.days_since_last_event)
    assert row.tickets_open == 0
    assert pd.isna(row.median_resolution_hours_90d)


def test_events_as_a_view_over_parquet(tmp_path, world):
    ds_table = Dataset.from_frames(world)
    expected = build_features(ds_table, DATES[-6:])
    ds_view = Dataset.from_frames(world)
    path = tmp_path / "events.parquet"
    ds_view.con.execute(f"COPY events TO '{path}' (FORMAT parquet)")
    ds_view.con.execute("DROP TABLE events")
    ds_view.con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{path}')")
    got = build_features(ds_view, DATES[-6:])
    pd.testing.assert_frame_equal(got, expected)

    out = tmp_path / "panel" / "features.parquet"
    assert write_features(ds_view, DATES[-6:], out) == len(expected)
    written = pd.read_parquet(out)
    assert list(written.columns) == list(expected.columns)
    assert len(written) == len(expected)
    assert written.events_30d.tolist() == expected.events_30d.tolist()


def test_expression_is_ibis_and_matches_the_frame(world):
    ds = Dataset.from_frames(world)
    expr = build_features_expr(ds, DATES[-3:])
    got = ds.backend.execute(expr)
    expected = build_features(ds, DATES[-3:])
    assert len(got) == len(expected)
    assert list(got.columns) == list(expected.columns)
    assert got.mau_30d.tolist() == expected.mau_30d.tolist()


def test_no_as_of_dates_is_an_error(world):
    with pytest.raises(ConfigError, match="no as-of dates"):
        build_features(Dataset.from_frames(world), [])


# -- property: the future never leaks ----------------------------------------------------------

_BASE = random_world(11, n_accounts=12)
_ACCOUNTS = sorted(_BASE["accounts"].account_id)
_PROPERTY_DATES = [date(2024, 9, 1), date(2025, 1, 1), date(2025, 6, 1)]
_BASE_FEATURES: dict[date, pd.DataFrame] = {}


def _base_features(a: date) -> pd.DataFrame:
    if a not in _BASE_FEATURES:
        _BASE_FEATURES[a] = build_features(Dataset.from_frames(_BASE), [a])
    return _BASE_FEATURES[a]


@st.composite
def _future(draw: st.DrawFn) -> tuple[date, dict[str, pd.DataFrame]]:
    a = draw(st.sampled_from(_PROPERTY_DATES))
    at = midnight(a)
    offset = st.integers(0, 400 * 86400 * 10**6).map(lambda us: at + timedelta(microseconds=us))
    day = st.integers(0, 400).map(lambda k: a + timedelta(days=k))
    acc = st.sampled_from([*_ACCOUNTS, "newcomer"])
    frames = {k: v.copy() for k, v in _BASE.items()}

    def add(name: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            frames[name] = pd.concat([frames[name], pd.DataFrame(rows)], ignore_index=True)

    add("accounts", [{"account_id": "newcomer", "created_at": draw(offset), "segment": "x"}])
    add(
        "events",
        draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "account_id": acc,
                        "user_id": st.sampled_from(["u0", "u1", "new"]),
                        "timestamp": offset,
                        "event_type": st.sampled_from(["login", "zzz", None]),
                    }
                ),
                max_size=8,
            )
        ),
    )
    starts = draw(st.lists(st.tuples(acc, day, st.integers(1, 200), st.floats(0, 500)), max_size=4))
    add(
        "subscriptions",
        [
            {"account_id": x, "start_date": s, "end_date": s + timedelta(days=n), "mrr": m}
            for x, s, n, m in starts
        ],
    )
    tickets = draw(st.lists(st.tuples(acc, offset, st.sampled_from(["urgent", "low"])), max_size=4))
    add(
        "tickets",
        [
            {"ticket_id": f"f{i}", "account_id": x, "created_at": t, "priority": p, "csat": 1}
            for i, (x, t, p) in enumerate(tickets)
        ],
    )
    add(
        "nps",
        draw(
            st.lists(
                st.fixed_dictionaries(
                    {"account_id": acc, "responded_at": offset, "score": st.integers(0, 10)}
                ),
                max_size=3,
            )
        ),
    )
    add(
        "orders",
        draw(
            st.lists(
                st.fixed_dictionaries(
                    {"account_id": acc, "ordered_at": offset, "amount": st.floats(0, 1e4)}
                ),
                max_size=3,
            )
        ),
    )
    add("costs", [{"account_id": draw(acc), "month": a, "amount": 1.0}])
    # tickets still open at a may be resolved later, with any outcome
    tk = frames["tickets"].copy()
    late = (tk.created_at < at) & (tk.resolved_at.isna() | (tk.resolved_at >= at))
    if late.any() and draw(st.booleans()):
        tk.loc[late, "resolved_at"] = draw(offset)
        tk.loc[late, "csat"] = draw(st.sampled_from([1, 5]))
        tk.loc[late, "contacts"] = draw(st.sampled_from([1, 3]))
    frames["tickets"] = tk
    return a, frames


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_future())
def test_rows_on_or_after_the_as_of_date_change_no_feature(case):
    a, frames = case
    got = build_features(Dataset.from_frames(frames), [a])
    pd.testing.assert_frame_equal(got, _base_features(a))


# -- the registry drives the engine ------------------------------------------------------------

WINDOWED = [f for f in FEATURES if f.agg is not None]


def _boundary_world(features: list[Feature]) -> Dataset:
    """One account per (feature, side): a single row on day ``A - w`` ("in") or ``A - w - 1``.

    Every account pays 100 a month on 5 seats since 2023; "none" has nothing else. The
    row lives in the feature's table; for a subscription feature it is a row of 50 that
    starts that day (or, for contractions, one running since 2023 that stops that day).
    """
    ids = ["none"]
    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in ("events", "tickets", "nps", "orders")}
    subs = []
    for f in features:
        assert f.agg is not None
        assert f.window_days is not None
        for side, day in (
            ("in", A - timedelta(f.window_days)),
            ("out", A - timedelta(f.window_days + 1)),
        ):
            acc, at = f"{f.name}:{side}", midnight(day)
            ids.append(acc)
            if f.table == "events":
                rows["events"].append(
                    {
                        "account_id": acc,
                        "user_id": "u",
                        "timestamp": at,
                        "event_type": "login",
                        "value": 2.0,
                    }
                )
            elif f.table == "tickets":
                rows["tickets"].append(
                    {
                        "ticket_id": acc,
                        "account_id": acc,
                        "created_at": at,
                        "resolved_at": at + timedelta(hours=1),
                        "priority": "high",
                        "contacts": 1,
                        "csat": 1,
                    }
                )
            elif f.table == "nps":
                rows["nps"].append({"account_id": acc, "responded_at": at, "score": 3})
            elif f.table == "orders":
                rows["orders"].append({"account_id": acc, "ordered_at": at, "amount": 7.0})
            else:
                assert f.table == "subscriptions", f.name
                stops = f.agg.where == "contraction"
                subs.append(
                    {
                        "account_id": acc,
                        "start_date": date(2023, 1, 1) if stops else day,
                        "end_date": day if stops else None,
                        "mrr": 50.0,
                        "seats": 1,
                        "plan": "pro",
                    }
                )
    frames = {
        "accounts": pd.DataFrame(
            {"account_id": ids, "created_at": [datetime(2023, 1, 1)] * len(ids)}
        ),
        "subscriptions": pd.DataFrame(
            [
                {
                    "account_id": a,
                    "start_date": date(2023, 1, 1),
                    "end_date": None,
                    "mrr": 100.0,
                    "seats": 5,
                    "plan": "basic",
                }
                for a in ids
            ]
            + subs
        ),
    }
    for name, r in rows.items():
        frames[name] = pd.DataFrame(r, columns=None if r else list(TABLES[name].required_columns))
    return Dataset.from_frames(frames)


def _check_boundaries(features: list[Feature]) -> None:
    df = build_features(_boundary_world(features), [A], features=features).set_index("account_id")
    for f in features:
        if f.agg is None:
            continue
        none, inside, outside = (
            df.loc[a, f.name] for a in ("none", f"{f.name}:in", f"{f.name}:out")
        )
        assert not _same(inside, none if not pd.isna(none) else None), (
            f.name,
            f.window_days,
            inside,
        )
        assert _same(outside, None if pd.isna(none) else none), (
            f.name,
            f.window_days,
            outside,
            none,
        )


def test_every_windowed_feature_sees_exactly_its_declared_window():
    # a row on day a - w counts, a row on day a - w - 1 does not, for w as declared
    assert len(WINDOWED) >= 20
    _check_boundaries(WINDOWED)


def test_a_feature_declared_with_another_window_computes_that_window():
    # every window moved by 8 days (trends stay even, ratios keep their inputs' window)
    moved = [replace(f, window_days=(f.window_days or 0) + 8) for f in WINDOWED]
    _check_boundaries(moved)
    one = replace(get_feature("events_30d"), name="events_45d", window_days=45)
    d = lambda k: midnight(A - timedelta(days=k))  # noqa: E731
    ds = _small(
        events=[{"account_id": "x", "user_id": "u", "timestamp": d(k)} for k in (1, 45, 46)]
    )
    got = build_features(ds, [A], features=[get_feature("events_30d"), one]).set_index("account_id")
    assert list(got.columns) == ["as_of", "events_30d", "events_45d"]
    assert (got.loc["x", "events_30d"], got.loc["x", "events_45d"]) == (1, 2)


def test_declarations_that_disagree_are_refused():
    dau, mau = get_feature("dau_30d"), get_feature("mau_30d")
    ratio = get_feature("dau_mau_30d")
    with pytest.raises(ConfigError, match="inputs are windowed"):
        check_declarations([dau, replace(mau, window_days=60), ratio])
    with pytest.raises(ConfigError, match="declares no measure"):
        check_declarations([replace(get_feature("events_30d"), agg=Aggregation("events", "sum"))])
    nunique = Aggregation("tickets", "nunique", "priority")
    with pytest.raises(ConfigError, match="cannot be counted over 'tickets'"):
        build_features(_small(), [A], features=[replace(get_feature("tickets_30d"), agg=nunique)])
    with pytest.raises(ConfigError, match="odd window"):
        check_declarations([replace(get_feature("usage_trend_30d"), window_days=61)])


def test_vocabulary_features_see_exactly_their_declared_window():
    # the fixture rows are "login" events and "high" tickets
    _check_boundaries(list(vocabulary_features(Vocabulary(("login",), ("high",)))))


_VOCAB = panel_features(Vocabulary(("login", "zzz", "report"), ("urgent", "low")))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_future())
def test_rows_on_or_after_the_as_of_date_change_no_vocabulary_feature(case):
    a, frames = case
    got = build_features(Dataset.from_frames(frames), [a], features=_VOCAB)
    base = build_features(Dataset.from_frames(_BASE), [a], features=_VOCAB)
    pd.testing.assert_frame_equal(got, base)


def test_renewal_mrr_is_the_mrr_of_the_rows_ending_on_the_renewal_date():
    """``renewal_mrr``: the rows known at ``a``, covering ``a - 1``, whose term ends on the
    nearest term end (``days_to_renewal``); a row signed on or after ``a`` does not count."""
    from churnrisk.features.engine import renewal_mrr

    d = lambda k: A + timedelta(days=k)  # noqa: E731
    ids = ["two_rows", "two_rows", "two_rows", "late_row", "late_row", "no_term", "ended"]
    frames = {
        "accounts": pd.DataFrame(
            {
                "account_id": ["two_rows", "late_row", "no_term", "ended"],
                "created_at": [datetime(2024, 1, 1)] * 4,
            }
        ),
        "subscriptions": pd.DataFrame(
            {
                "account_id": ids,
                # two_rows: 100 + 40 end on d(30), 25 ends later (d(60)): 140 renews.
                # late_row: 50 ends on d(10); a seat add-on signed on the as-of date itself
                # (and one after it) would also end on d(10): not known at a, not counted.
                # no_term: no term end known: null. ended: stopped the day before a, its
                # term end lies after a: not covering a - 1, so no renewal.
                "start_date": [d(-200), d(-20), d(-90), d(-100), A, d(-300), d(-400)],
                "end_date": [None, None, None, None, None, None, d(-1)],
                "mrr": [100.0, 40.0, 25.0, 50.0, 30.0, 70.0, 90.0],
                "term_end": [d(30), d(30), d(60), d(10), d(10), None, d(5)],
            }
        ),
    }
    frames["subscriptions"] = pd.concat(
        [
            frames["subscriptions"],
            pd.DataFrame(
                {
                    "account_id": ["late_row"],
                    "start_date": [d(3)],
                    "end_date": [None],
                    "mrr": [999.0],
                    "term_end": [d(10)],
                }
            ),
        ],
        ignore_index=True,
    )
    ds = Dataset.from_frames(frames)
    got = renewal_mrr(ds, A)
    assert got.dropna().to_dict() == {"two_rows": 140.0, "late_row": 50.0}
    assert pd.isna(got["no_term"])
    assert "ended" not in got.index  # off the spine: no MRR on a - 1
    panel = build_features(ds, [A]).set_index("account_id")
    assert panel["days_to_renewal"].dropna().to_dict() == {"two_rows": 30.0, "late_row": 10.0}
    # a day later the add-on signed on A is known: it ends on the same day, so it counts
    later = renewal_mrr(ds, d(1))
    assert later["late_row"] == 80.0
