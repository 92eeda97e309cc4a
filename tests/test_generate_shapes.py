"""World shapes: each its own export and churn mechanism, visible in the data it writes."""

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cli_invoke import invoke

from churnrisk.errors import ConfigError
from churnrisk.generate import SHAPES, GenerateSummary, add_months, generate_world

START = date(2024, 11, 1)
NEW_SHAPES = ["short-history", "small-book", "renewal-pricing", "event-mix", "cancellation-dated"]


def _read(summary: GenerateSummary) -> dict[str, pd.DataFrame]:
    return {p.stem: pq.read_table(p).to_pandas(date_as_object=False) for p in summary.files}


def _bytes(summary: GenerateSummary) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in summary.files}


def _day(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].dt.tz_localize(None)


def _stops(subs: pd.DataFrame, end: date) -> pd.Series:
    """The day each account stopped paying for good (accounts still paying are absent)."""
    last = subs.sort_values("start_date").groupby("account_id").tail(1).set_index("account_id")
    return last.end_date.dropna().loc[lambda s: s < pd.Timestamp(end)]


# (shape, accounts, months) of the worlds the mechanism tests read: small, seconds each
SIZES = {
    "short-history": (600, 12),
    "small-book": (300, 24),
    "renewal-pricing": (1000, 24),
    "event-mix": (400, 18),
    "cancellation-dated": (600, 24),
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    made = {}

    def world(shape: str) -> tuple[GenerateSummary, dict[str, pd.DataFrame]]:
        if shape not in made:
            accounts, months = SIZES[shape]
            folder = tmp_path_factory.mktemp(shape)
            summary = generate_world(
                folder, shape=shape, accounts=accounts, months=months, start=START, seed=1
            )
            made[shape] = (summary, _read(summary))
        return made[shape]

    return world


# --- the shapes and their defaults ------------------------------------------------------


def test_shapes_and_their_default_sizes():
    sizes = {name: (s.accounts, s.months) for name, s in SHAPES.items()}
    assert sizes == {
        "default": (5000, 24),
        "short-history": (2000, 12),
        "small-book": (300, 24),
        "renewal-pricing": (3000, 24),
        "event-mix": (2000, 18),
        "cancellation-dated": (3000, 24),
    }


def test_a_size_not_given_is_the_shapes(tmp_path):
    summary = generate_world(tmp_path, shape="short-history", accounts=20, seed=1)
    assert summary.end == add_months(START, 12)
    assert summary.shape == "short-history"


def test_an_unknown_shape_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"shape must be one of default, short-history, .*'flat'"):
        generate_world(tmp_path, shape="flat")
    assert not list(tmp_path.iterdir())


# the default world's CSV files for (60 accounts, 6 months, seed 3) as written before there
# were shapes (and before the activities table was added beside them): existing tests and
# benchmarks compare against this world
DEFAULT_SHA256 = {
    "accounts.csv": "644497bcce93064889114ae13710ea36d2ea22bbd46984ce03679e64d67d0826",
    "subscriptions.csv": "27518e0816609e60e5535d689da5cb195fed7aafd20d8d75b7b06779d59403a7",
    "events.csv": "01f57424425e97f8ab89765b39b77208ec238f696df4f52d06bb6901b60437e6",
    "tickets.csv": "3a2ed660395d5f3e90e06cab025ab355726f54aae9bf6313c881c3d138a287cf",
    "nps.csv": "24cde5c28a55e3ee809e5ba98de5ca2190601f1fbd4e96682c9b82606f7b283c",
    "orders.csv": "2ad40392faba628c2e8b1988b7d2de46ec5e502fde5d986a0be9b392c9cb4872",
    "costs.csv": "f1571e32ba401fcee82aec832c4da01fb171d6e017bd230edddc2009733829b7",
    # its CS history, drawn after every other table from a stream of its own
    "activities.csv": "c8c2e05ae302f645543d492cdb8143b50bd5cf41d1bac820dbb3122f580eab93",
}


def test_the_default_shape_writes_the_same_bytes_as_before_shapes(tmp_path):
    summary = generate_world(tmp_path, shape="default", accounts=60, months=6, seed=3, fmt="csv")
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in _bytes(summary).items()}
    assert digests == DEFAULT_SHA256


@pytest.mark.parametrize("shape", NEW_SHAPES)
def test_same_seed_same_bytes_other_seed_other_world(tmp_path, shape):
    kw = {"shape": shape, "accounts": 40, "months": 6}
    a = _bytes(generate_world(tmp_path / "a", seed=3, **kw))
    b = _bytes(generate_world(tmp_path / "b", seed=3, **kw))
    c = _bytes(generate_world(tmp_path / "c", seed=4, **kw))
    assert a == b
    assert a["events.parquet"] != c["events.parquet"]
    assert a["subscriptions.parquet"] != c["subscriptions.parquet"]


SUBSCRIPTIONS = ["account_id", "start_date", "end_date", "mrr", "plan", "seats", "term_end"]
EXPORTS = {
    "short-history": {
        "accounts": [
            "account_id", "created_at", "name", "plan", "segment", "region", "owner", "seats",
        ],
        "subscriptions": SUBSCRIPTIONS,
        "events": ["account_id", "user_id", "timestamp", "event_type"],
        "tickets": [
            "ticket_id", "account_id", "created_at", "resolved_at", "priority", "contacts", "csat",
        ],
    },
    "small-book": {
        "accounts": ["account_id", "created_at", "name", "industry", "seats"],
        "subscriptions": ["account_id", "start_date", "end_date", "mrr", "seats", "term_end"],
        "events": ["account_id", "user_id", "timestamp", "event_type"],
        "nps": ["account_id", "responded_at", "score", "user_id"],
    },
    "renewal-pricing": {
        "accounts": [
            "account_id", "created_at", "name", "plan", "segment", "industry", "region", "seats",
            "acquisition_cost",
        ],
        "subscriptions": SUBSCRIPTIONS,
        "events": ["account_id", "user_id", "timestamp", "event_type"],
        "tickets": ["ticket_id", "account_id", "created_at", "resolved_at", "priority", "contacts"],
    },
    "event-mix": {
        "accounts": [
            "account_id", "created_at", "name", "segment", "industry", "region", "owner", "seats",
        ],
        "subscriptions": SUBSCRIPTIONS,
        "events": ["account_id", "user_id", "timestamp", "event_type", "value"],
        "tickets": ["ticket_id", "account_id", "created_at", "resolved_at"],
    },
    "cancellation-dated": {
        "accounts": ["account_id", "created_at", "name", "plan", "region"],
        "subscriptions": ["account_id", "start_date", "end_date", "mrr", "plan"],
        "events": ["account_id", "user_id", "timestamp", "event_type", "value"],
        "orders": ["account_id", "ordered_at", "amount"],
    },
}  # fmt: skip


@pytest.mark.parametrize("shape", NEW_SHAPES)
def test_each_shape_writes_its_own_export(worlds, shape):
    summary, _ = worlds(shape)
    columns = {p.stem: pq.read_schema(p).names for p in summary.files}
    assert columns == EXPORTS[shape]
    assert summary.rows["accounts"] == SIZES[shape][0]


@pytest.mark.parametrize("shape", NEW_SHAPES)
def test_each_shape_passes_validation(worlds, shape, capsys):
    summary, _ = worlds(shape)
    assert invoke(["validate", summary.out]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].endswith(": clean")
    cancellation_note = "set only on the" in captured.out + captured.err
    assert cancellation_note is (shape == "cancellation-dated")


@pytest.mark.parametrize("shape", NEW_SHAPES)
def test_dates_mean_what_the_contract_says(worlds, shape):
    summary, t = worlds(shape)
    subs, end = t["subscriptions"], pd.Timestamp(summary.end)
    ended = subs.end_date.notna()
    assert (subs.start_date < end).all()
    assert (subs.end_date[ended] > subs.start_date[ended]).all()
    assert (subs.end_date[ended] < end).all()  # a stop is written once it has happened
    if "term_end" in subs:  # known at signing: every term has one, stops only at it
        assert (subs.term_end > subs.start_date).all()
        assert (subs.end_date[ended] == subs.term_end[ended]).all()
        assert (subs.term_end[~ended] >= end).all()
    created = _day(t["accounts"], "created_at").set_axis(t["accounts"].account_id)
    for name, column in {"events": "timestamp", "tickets": "created_at", "nps": "responded_at",
                         "orders": "ordered_at"}.items():  # fmt: skip
        if name in t:
            at = _day(t[name], column)
            assert (at.to_numpy() >= created.loc[t[name].account_id].to_numpy()).all(), name
            assert (at < pd.Timestamp(summary.end)).all(), name


# --- short-history: churn follows bad support -------------------------------------------


class _ByAccount:
    """A table's rows per account, for looking at the days before a date."""

    def __init__(self, frame: pd.DataFrame, column: str):
        self.groups = dict(tuple(frame.assign(_at=_day(frame, column)).groupby("account_id")))
        self.empty = frame.iloc[:0].assign(_at=pd.Series(dtype="datetime64[us]"))

    def before(self, acc: str, day: pd.Timestamp, days: int) -> pd.DataFrame:
        """The account's rows in ``[day - days, day)``."""
        rows = self.groups.get(acc, self.empty)
        return rows.loc[(rows._at >= day - pd.Timedelta(days=days)) & (rows._at < day)]


def _churners_and_stayers(summary, t, lead_days):
    """(account, day) pairs: churners at their stop day, stayers at the export's end."""
    subs, end = t["subscriptions"], pd.Timestamp(summary.end)
    stops = _stops(subs, summary.end)
    created = _day(t["accounts"].set_index("account_id"), "created_at")
    old_enough = lambda a, d: created[a] < d - pd.Timedelta(days=lead_days)  # noqa: E731
    first = pd.Timestamp(summary.start) + pd.Timedelta(days=lead_days)
    churners = [(a, d) for a, d in stops.items() if d >= first and old_enough(a, d)]
    paying = subs.loc[subs.end_date.isna(), "account_id"].unique()
    stayers = [(a, end) for a in paying if old_enough(a, end)]
    return churners, stayers


def test_short_history_churners_had_bad_support_but_used_the_product_as_much(worlds):
    summary, t = worlds("short-history")
    terms = _ByAccount(t["subscriptions"], "start_date")
    tk, ev = _ByAccount(t["tickets"], "created_at"), _ByAccount(t["events"], "timestamp")
    churners, stayers = _churners_and_stayers(summary, t, 120)
    assert len(churners) >= 60

    def profile(acc, day):
        seats = terms.before(acc, day, 10_000).seats.iloc[-1]
        w = tk.before(acc, day, 90)
        bad = ((w.contacts > 1) | (w.csat <= 2) | w.resolved_at.isna()).sum()
        used = len(ev.before(acc, day, 60))
        return bad / np.sqrt(seats), used / seats

    c = np.array([profile(a, d) for a, d in churners]).mean(axis=0)
    s = np.array([profile(a, d) for a, d in stayers]).mean(axis=0)
    assert c[0] > 2 * s[0]  # bounced, badly rated or abandoned tickets per sqrt(seat)
    assert c[1] > 0.85 * s[1]  # events per seat: usage does not give them away
    assert set(t["tickets"].priority) == {"P1", "P2", "P3", "P4"}


def test_short_history_churn_is_a_monthly_term_not_renewed(worlds):
    summary, t = worlds("short-history")
    subs = t["subscriptions"].sort_values(["account_id", "start_date"])
    starts = subs.start_date.dt.date
    ends = subs.term_end.dt.date
    assert all(add_months(s, 1) == e for s, e in zip(starts, ends, strict=True))
    follows = subs.groupby("account_id").start_date.shift(-1)
    chained = follows.notna()
    assert (follows[chained] == subs.term_end[chained]).all()  # no gap, no overlap
    assert len(_stops(subs, summary.end)) == (subs.end_date.notna() & ~chained).sum()


# --- small-book: churn once the champion has left ---------------------------------------

ADMIN = ["workflow_edit", "template_create", "member_invite", "permission_change", "review_request"]


def test_small_book_one_champion_at_a_time_does_the_admin_work(worlds):
    _, t = worlds("small-book")
    adm = t["events"].loc[t["events"].event_type.isin(ADMIN)]
    month = _day(adm, "timestamp").dt.to_period("M")
    admins = adm.groupby([adm.account_id, month]).user_id.nunique()
    assert (admins == 1).mean() > 0.98  # the odd month of a hand-over has two
    others = t["events"].loc[~t["events"].event_type.isin(ADMIN)]
    assert set(others.user_id) - set(adm.user_id)  # most users never do admin work


def test_small_book_churners_had_lost_their_champion(worlds):
    summary, t = worlds("small-book")
    adm = _ByAccount(t["events"].loc[t["events"].event_type.isin(ADMIN)], "timestamp")
    churners, stayers = _churners_and_stayers(summary, t, 120)
    assert len(churners) >= 40

    def orphaned(acc, day):
        return adm.before(acc, day, 30).empty

    share_c = np.mean([orphaned(a, d) for a, d in churners])
    share_s = np.mean([orphaned(a, d) for a, d in stayers])
    assert share_c > 0.35
    assert share_s < 0.12


def test_small_book_bills_monthly_and_annual_terms(worlds):
    _, t = worlds("small-book")
    subs = t["subscriptions"]
    length = (subs.term_end.dt.year - subs.start_date.dt.year) * 12 + (
        subs.term_end.dt.month - subs.start_date.dt.month
    )
    assert set(length) == {1, 12}
    assert (subs.term_end.dt.day == subs.start_date.dt.day).all()  # anniversaries (days 1-28)


# --- renewal-pricing: churn at renewal, on price ----------------------------------------

LIST = {"basic": 10.0, "pro": 20.0, "business": 35.0}


def _terms(summary, t):
    subs = t["subscriptions"].sort_values(["account_id", "start_date"]).reset_index(drop=True)
    created = _day(t["accounts"].set_index("account_id"), "created_at")
    subs["number"] = subs.groupby("account_id").cumcount()
    subs["annual"] = (subs.term_end - subs.start_date).dt.days > 300
    subs["per_list"] = subs.mrr / subs.seats / subs.plan.map(LIST)  # price over list, +- cents
    subs["new"] = subs.account_id.map(created) >= pd.Timestamp(summary.start)
    subs["renewed"] = subs.groupby("account_id").start_date.shift(-1).notna()
    subs["closed"] = subs.term_end < pd.Timestamp(summary.end)
    return subs


def test_renewal_pricing_prices_change_only_as_documented(worlds):
    summary, t = worlds("renewal-pricing")
    subs = _terms(summary, t)
    monthly = subs.loc[~subs.annual]
    intro = monthly.new & (monthly.number < 3)
    full = monthly.loc[~intro]
    # one list price rise for everyone: two full prices, the higher from one day on
    high = full.per_list.max()
    raised = _near(full.per_list, high)
    assert (raised | _near(full.per_list, 1.0)).all()
    assert 1.095 <= high <= 1.205
    assert full.start_date[raised].min() > full.start_date[~raised].max()
    # an introductory 40 % off the first three monthly terms
    assert (_near(monthly.per_list[intro], 0.6) | _near(monthly.per_list[intro], 0.6 * high)).all()
    # annual billing pays 83 % of the list, less a first-year discount for some
    annual = subs.loc[subs.annual & ~(subs.new & (subs.number == 0))]
    assert (_near(annual.per_list, 0.83) | _near(annual.per_list, 0.83 * high)).all()


def _near(values: pd.Series, target: float) -> pd.Series:
    return (values - target).abs() < 0.002


def test_renewal_pricing_churn_jumps_when_a_discount_expires(worlds):
    summary, t = worlds("renewal-pricing")
    subs = _terms(summary, t)
    closed = subs.loc[subs.closed].assign(churn=lambda f: ~f.renewed)
    monthly = closed.loc[~closed.annual & closed.new]
    by_term = monthly.groupby("number").churn.mean()
    assert by_term[2] > 5 * by_term[[0, 1, 3, 4, 5]].max()  # the third term's end
    annual = closed.loc[closed.annual]
    first_discounted = annual.new & (annual.number == 0) & (annual.per_list < 0.82)
    steady = _near(annual.per_list, 0.83)
    assert first_discounted.sum() >= 20
    assert annual.churn[first_discounted].mean() > 1.4 * annual.churn[steady].mean()
    # annual accounts leave only at a term end, never mid-term
    assert (closed.end_date == closed.term_end).all()


# --- event-mix: what leaving accounts do, not how much ------------------------------------

EXIT = ["data_export", "user_remove", "integration_disconnect", "bulk_delete", "billing_view"]


def test_event_mix_vocabulary_and_values(worlds):
    _, t = worlds("event-mix")
    ev = t["events"]
    assert ev.event_type.nunique() == 25
    valued = set(ev.loc[ev.value.notna(), "event_type"])
    assert valued == {"deal_create", "deal_won", "deal_lost", "import_contacts", "data_export"}
    assert (ev.loc[ev.event_type == "deal_won", "value"].notna()).all()
    assert t["accounts"].account_id.str.fullmatch(r"ACCT-\d{5}").all()
    assert ev.user_id.str.fullmatch(r"user\d+@acct-\d{5}\.example").all()


def test_event_mix_churners_change_their_mix_while_their_volume_holds(worlds):
    summary, t = worlds("event-mix")
    ev = _ByAccount(t["events"], "timestamp")
    churners, _ = _churners_and_stayers(summary, t, 180)
    assert len(churners) >= 50
    rows = []
    for acc, day in churners:
        late = ev.before(acc, day, 60)
        early = ev.before(acc, day - pd.Timedelta(days=120), 60)
        rows.append((len(early), len(late), early.event_type.isin(EXIT).mean(),
                     late.event_type.isin(EXIT).mean()))  # fmt: skip
    n_early, n_late, exit_early, exit_late = np.nanmean(np.array(rows), axis=0)
    assert n_late >= n_early  # the count does not fall before they leave ...
    assert exit_late > 4 * exit_early  # ... what they do does


# --- cancellation-dated: spells, end_date only once cancelled ----------------------------


def test_cancellation_dated_writes_spells_with_stops_only(worlds):
    _, t = worlds("cancellation-dated")
    subs = t["subscriptions"].sort_values(["account_id", "start_date"])
    assert "term_end" not in subs
    assert "seats" not in subs
    nxt = subs.groupby("account_id").start_date.shift(-1)
    again = nxt.notna()
    # only spells that stopped have an end; a spell without one is the account's last
    assert subs.end_date[again].notna().all()
    assert ((nxt[again] - subs.end_date[again]).dt.days >= 60).all()  # comebacks, not terms
    assert 0.2 < subs.end_date.notna().mean() < 0.8
    mrr = dict(zip(["starter", "pro", "team"], [19.0, 49.0, 129.0], strict=True))
    assert (subs.mrr == subs.plan.map(mrr)).all()


def test_cancellation_dated_churn_falls_on_any_day(worlds):
    _, t = worlds("cancellation-dated")
    subs, ev = t["subscriptions"], t["events"]
    ended = subs.dropna(subset=["end_date"])
    billing_day = ended.account_id.map(t["accounts"].set_index("account_id").created_at.dt.day)
    assert ended.end_date.dt.day.nunique() == 31
    assert (ended.end_date.dt.day == billing_day).mean() < 0.2
    # failed payments that nobody fixed end the spell 14 days later
    failed = ev.loc[ev.event_type == "payment_failed", ["account_id", "timestamp"]]
    failed = failed.assign(day=_day(failed, "timestamp").dt.normalize())
    hit = ended.merge(failed, on="account_id")
    assert ((hit.end_date - hit.day).dt.days == 14).sum() >= 10
    assert (ev.loc[ev.event_type == "payment_failed", "value"] > 0).all()


def test_cancellation_dated_lapsed_accounts_go_quiet_before_they_cancel(worlds):
    summary, t = worlds("cancellation-dated")
    product = t["events"].loc[~t["events"].event_type.isin(["payment_failed", "card_updated"])]
    ev = _ByAccount(product, "timestamp")
    churners, stayers = _churners_and_stayers(summary, t, 60)
    quiet_c = np.mean([ev.before(a, d, 30).empty for a, d in churners])
    quiet_s = np.mean([ev.before(a, d, 30).empty for a, d in stayers])
    assert quiet_c > 4 * quiet_s


# --- the command line -------------------------------------------------------------------


def test_generate_help_lists_every_shape_on_one_line(capsys):
    assert invoke(["generate", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, spec in SHAPES.items():
        (line,) = [x for x in lines if x.split()[:1] == [name]]
        assert f"{spec.accounts:,} x {spec.months}" in line
        assert spec.summary in line


def test_generate_writes_the_shape_asked_for(tmp_path, capsys):
    args = ["generate", "--out", tmp_path, "--shape", "small-book", "--accounts", 30]
    assert invoke([*args, "--months", 3]) == 0
    out = capsys.readouterr().out
    assert out.startswith("generated 30 accounts")
    assert "(small-book world, 2024-11-01 to 2025-02-01, parquet)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "accounts.parquet", "events.parquet", "nps.parquet", "subscriptions.parquet",
    ]  # fmt: skip


def test_generate_refuses_an_unknown_shape_in_one_line(tmp_path, capsys):
    assert invoke(["generate", "--out", tmp_path, "--shape", "flat"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: shape must be one of default, short-history")
    assert "\n" not in err
