"""The scoring job: hand-worked drivers, tiers and changes; point-in-time change drivers
on a generated world; the run written whole or not at all."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churnrisk.config import ChurnModelConfig, ClvModelConfig, RunConfig, ScoringConfig
from churnrisk.errors import ConfigError, DataError
from churnrisk.scoring import (
    PreviousScores,
    add_changes,
    change_driver_items,
    json_value,
    risk_tiers,
    score_accounts,
    score_panel,
)
from churnrisk.store import SCORE_COLUMNS

# ---------------------------------------------------------------------------------------
# a hand-made linear "bundle": contributions are simple functions of each feature
# ---------------------------------------------------------------------------------------

PLAN_EFFECT = {"basic": 0.1, "pro": -0.1}
BIAS = -2.0


def _contrib(panel: pd.DataFrame) -> pd.DataFrame:
    dau = panel["dau_mau_30d"].to_numpy(dtype="float64")
    plan = panel["plan"].astype(object)
    return pd.DataFrame(
        {
            "dau_mau_30d": np.where(np.isnan(dau), 0.25, -2.0 * (dau - 0.2)),
            "tickets_open": 0.3 * panel["tickets_open"].to_numpy(dtype="float64"),
            "seats": -0.01 * panel["seats"].to_numpy(dtype="float64"),
            "plan": [PLAN_EFFECT.get(v, 0.0) if isinstance(v, str) else 0.0 for v in plan],
            "segment": 0.0,
            "bias": BIAS,
        },
        index=panel.index,
    )


class StubModels:
    """Churn probability looked up by account; contributions from :func:`_contrib`."""

    def __init__(self, probabilities: dict[str, float]) -> None:
        self.probabilities = probabilities
        self.churn = SimpleNamespace(contributions=_contrib)

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        p = np.array([self.probabilities[a] for a in panel["account_id"]])
        mrr = panel["mrr"].to_numpy(dtype="float64")
        return pd.DataFrame(
            {
                "account_id": panel["account_id"].to_numpy(),
                "as_of": panel["as_of"].to_numpy(),
                "churn_probability": p,
                "revenue_12m": mrr * 12,
                "lifetime_clv": mrr * 40,
                "mrr": mrr,
            }
        )


def hand_panel(as_of: str, rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    cols = ["account_id", "dau_mau_30d", "seats", "tickets_open", "plan", "segment", "mrr"]
    frame = pd.DataFrame(rows, columns=cols)
    frame.insert(1, "as_of", pd.Timestamp(as_of))
    frame["account_id"] = frame["account_id"].astype("string")
    for c in ("plan", "segment"):
        frame[c] = frame[c].astype("category")
    for c in ("dau_mau_30d", "seats", "tickets_open", "mrr"):
        frame[c] = frame[c].astype("float64")
    return frame


NOW = hand_panel(
    "2026-10-01",
    [
        ("a1", 0.05, 10, 2, "basic", "smb", 100.0),
        ("a2", 0.5, 3, 0, "pro", "enterprise", 1000.0),
        ("a3", np.nan, 1, 1, None, None, 50.0),
    ],
).assign(days_to_renewal=[45.0, np.nan, 0.0])  # the term of a3 ends on the as-of date
BEFORE = hand_panel(
    "2026-09-01",
    [
        ("a1", 0.25, 10, 0, "basic", "smb", 100.0),
        ("a2", 0.4, 5, 1, "pro", "enterprise", 1000.0),
        ("a4", 0.3, 2, 0, "basic", "smb", 10.0),
    ],
)
MODELS = StubModels({"a1": 0.30, "a2": 0.10, "a3": 0.0999})
SCORING = ScoringConfig(top_drivers=2, change_drivers=3)
ATTRIBUTES = pd.DataFrame(
    {"name": ["Acme", None], "owner": ["kim", "lee"]},
    index=pd.Index(["a1", "a2"], dtype="string", name="account_id"),
)


def assert_plain_json(value: Any) -> None:
    """Only plain Python JSON types, no NaN anywhere."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    else:
        assert value is None or type(value) in (str, int, float, bool), type(value)
        if isinstance(value, float):
            assert math.isfinite(value)
    json.dumps(value, allow_nan=False)


def test_score_panel_by_hand():
    out = score_panel(NOW, MODELS, config=SCORING, attributes=ATTRIBUTES)
    assert list(out.columns) == list(SCORE_COLUMNS)
    assert out["account_id"].tolist() == ["a1", "a2", "a3"]
    assert out["name"].tolist() == ["Acme", None, None]
    assert out["owner"].tolist() == ["kim", "lee", None]
    assert out["segment"].tolist() == ["smb", "enterprise", None]
    assert out["plan"].tolist() == ["basic", "pro", None]
    assert out["churn_probability"].tolist() == [0.30, 0.10, 0.0999]
    # high from 0.25, medium from 0.10 (the threshold itself is in the tier)
    assert out["risk_tier"].tolist() == ["high", "medium", "low"]
    assert out["mrr"].tolist() == [100.0, 1000.0, 50.0]
    assert out["mrr_at_risk"].tolist() == [30.0, 100.0, 50.0 * 0.0999]
    assert out["revenue_12m"].tolist() == [1200.0, 12000.0, 600.0]
    assert out["lifetime_clv"].tolist() == [4000.0, 40000.0, 2000.0]
    assert out["previous_probability"].isna().all()
    assert out["probability_change"].isna().all()
    assert out["change_drivers"].tolist() == [[], [], []]

    a1, a2, a3 = out["drivers"].tolist()
    # drivers are ranked among the actionable features only: seats and plan are context.
    # a1: tickets 0.6 and DAU/MAU 0.3 raise; no actionable feature lowers its risk
    assert a1 == [
        {
            "feature": "tickets_open",
            "meaning": "Support tickets still open",
            "value": 2,
            "display": "2",
            "contribution": 0.6,
            "direction": "raises",
            "text": "Support tickets still open = 2, raises risk",
        },
        {
            "feature": "dau_mau_30d",
            "meaning": "DAU/MAU, last 30 days",
            "value": 0.05,
            "display": "0.05",
            "contribution": 0.3,
            "direction": "raises",
            "text": "DAU/MAU, last 30 days = 0.05, raises risk",
        },
    ]
    # a2: nothing raises; DAU/MAU -0.6 lowers (plan -0.1 and seats -0.03 are context)
    assert [(d["feature"], d["contribution"], d["direction"]) for d in a2] == [
        ("dau_mau_30d", -0.6, "lowers"),
    ]
    # a3: a missing DAU/MAU is None / "missing"
    assert [(d["feature"], d["value"], d["display"]) for d in a3] == [
        ("tickets_open", 1, "1"),
        ("dau_mau_30d", None, "missing"),
    ]
    assert a3[1]["text"] == "DAU/MAU, last 30 days = missing, raises risk"

    # context apart, largest push first (ties in feature order); a zero push is left out
    c1, c2, c3 = out["context"].tolist()
    assert c1 == [
        {
            "feature": "seats",
            "meaning": "Paid seats",
            "value": 10,
            "display": "10",
            "contribution": -0.1,
            "direction": "lowers",
            "text": "Paid seats = 10, lowers risk",
        },
        {
            "feature": "plan",
            "meaning": "Subscription plan",
            "value": "basic",
            "display": "basic",
            "contribution": 0.1,
            "direction": "raises",
            "text": "Subscription plan = basic, raises risk",
        },
    ]
    assert [(d["feature"], d["contribution"]) for d in c2] == [("plan", -0.1), ("seats", -0.03)]
    assert c2[0]["text"] == "Subscription plan = pro, lowers risk"
    assert [(d["feature"], d["contribution"]) for d in c3] == [("seats", -0.01)]
    assert_plain_json(out["context"].tolist())

    # renewal timing: as-of 2026-10-01 plus days_to_renewal; none when it is unknown
    assert out["renewal_date"].tolist() == [date(2026, 11, 15), None, date(2026, 10, 1)]
    assert out["days_to_renewal"].tolist()[::2] == [45.0, 0.0]
    assert math.isnan(out["days_to_renewal"].iloc[1])
    assert_plain_json(out["drivers"].tolist())


def test_add_changes_by_hand():
    scores = score_panel(NOW, MODELS, config=SCORING, attributes=ATTRIBUTES)
    previous = PreviousScores(
        as_of=date(2026, 9, 1),
        probabilities=pd.Series({"a1": 0.20, "a2": 0.15, "a4": 0.5}),
    )
    out = add_changes(scores, MODELS, panel=NOW, previous=previous, previous_panel=BEFORE, top=3)
    assert list(out.columns) == list(SCORE_COLUMNS)
    assert out["previous_probability"].tolist()[:2] == [0.20, 0.15]
    assert np.isnan(out["previous_probability"].iloc[2])  # a3 is new
    assert out["probability_change"].tolist()[:2] == pytest.approx([0.10, -0.05])
    assert np.isnan(out["probability_change"].iloc[2])
    a1, a2, a3 = out["change_drivers"].tolist()
    # a1: tickets 0 -> 2 (+0.6), DAU/MAU 0.25 -> 0.05 (+0.4); seats and plan did not move
    assert a1 == [
        {
            "feature": "tickets_open",
            "meaning": "Support tickets still open",
            "before": 0,
            "after": 2,
            "before_display": "0",
            "after_display": "2",
            "contribution_change": 0.6,
            "direction": "raised",
            "text": "Support tickets still open: 0 → 2, raised risk",
        },
        {
            "feature": "dau_mau_30d",
            "meaning": "DAU/MAU, last 30 days",
            "before": 0.25,
            "after": 0.05,
            "before_display": "0.25",
            "after_display": "0.05",
            "contribution_change": 0.4,
            "direction": "raised",
            "text": "DAU/MAU, last 30 days: 0.25 → 0.05, raised risk",
        },
    ]
    # a2: tickets 1 -> 0 (-0.3), DAU/MAU 0.4 -> 0.5 (-0.2), seats 5 -> 3 (+0.02)
    assert [(d["feature"], d["contribution_change"], d["direction"]) for d in a2] == [
        ("tickets_open", -0.3, "lowered"),
        ("dau_mau_30d", -0.2, "lowered"),
        ("seats", 0.02, "raised"),
    ]
    assert a2[2]["text"] == "Paid seats: 5 → 3, raised risk"
    assert a3 == []
    assert_plain_json(out["change_drivers"].tolist())
    # the input frame is left as it was
    assert scores["previous_probability"].isna().all()


def test_add_changes_needs_the_account_on_the_previous_panel_for_drivers():
    scores = score_panel(NOW, MODELS, config=SCORING)
    previous = PreviousScores(date(2026, 9, 1), pd.Series({"a1": 0.2, "a3": 0.05}))
    out = add_changes(scores, MODELS, panel=NOW, previous=previous, previous_panel=BEFORE, top=1)
    # a3 was scored before but is not on the rebuilt panel: change, no drivers
    assert out["probability_change"].iloc[2] == pytest.approx(0.0499)
    assert out["change_drivers"].tolist()[2] == []
    assert [d["feature"] for d in out["change_drivers"].iloc[0]] == ["tickets_open"]
    assert out["name"].tolist() == [None, None, None]  # no attributes given


def test_add_changes_refuses_a_previous_run_with_an_account_twice():
    scores = score_panel(NOW, MODELS, config=SCORING)
    twice = pd.Series([0.1, 0.2], index=["a1", "a1"])
    with pytest.raises(DataError, match="holds account 'a1' twice"):
        add_changes(
            scores,
            MODELS,
            panel=NOW,
            previous=PreviousScores(date(2026, 9, 1), twice),
            previous_panel=BEFORE,
            top=3,
        )


def test_score_panel_refuses_an_account_twice():
    panel = pd.concat([NOW, NOW.head(1)], ignore_index=True)
    with pytest.raises(DataError, match="account 'a1' appears more than once"):
        score_panel(panel, MODELS, config=SCORING)


def test_change_driver_text_when_the_value_did_not_move():
    # an interaction can move a feature's contribution while its value stays put
    before = hand_panel("2026-09-01", [("a1", 0.1, 4, 0, "pro", "smb", 10.0)])
    after = hand_panel("2026-10-01", [("a1", 0.1, 4, 0, "pro", "smb", 10.0)])
    names = ["seats", "dau_mau_30d", "plan"]
    change = np.array([[0.00004, -0.25, 0.0]])
    (items,) = change_driver_items(before, after, names, change, top=3)
    # 0.00004 rounds to 0.0000: not reported; 0.0 is not a change
    assert [i["text"] for i in items] == ["DAU/MAU, last 30 days: still 0.1, lowered risk"]
    with pytest.raises(ConfigError, match="top must be >= 1"):
        change_driver_items(before, after, names, change, top=0)


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        (12.0, "int", 12),
        (np.float64(3.0), "int", 3),
        (0.081234, "float", 0.08123),
        (0.000123456, "float", 0.0001235),
        (12487.354321, "float", 12487.3543),
        (-0.5, "float", -0.5),
        (0.0, "float", 0.0),
        (float("nan"), "float", None),
        (float("inf"), "float", None),
        (None, "int", None),
        (pd.NA, "float", None),
        ("pro", "category", "pro"),
        (float("nan"), "category", None),
    ],
)
def test_json_value_rounds_for_people(value, dtype, expected):
    got = json_value(value, dtype)
    assert got == expected
    assert type(got) is type(expected)


def test_risk_tiers_match_tier_of():
    config = ScoringConfig(tiers={"medium": 0.1, "high": 0.25, "critical": 0.6}, low_tier="ok")
    grid = np.array([0.0, 0.0999, 0.1, 0.2499, 0.25, 0.5999, 0.6, 1.0])
    assert risk_tiers(grid, config).tolist() == [config.tier_of(p) for p in grid]
    assert risk_tiers(grid, config).tolist() == [
        "ok",
        "ok",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]


# ---------------------------------------------------------------------------------------
# a generated world and a small trained bundle
# ---------------------------------------------------------------------------------------

CONFIG = RunConfig(
    churn=ChurnModelConfig(n_estimators=150, early_stopping_rounds=20),
    clv=ClvModelConfig(n_estimators=150, early_stopping_rounds=20),
    seed=7,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 600-account, 18-month world, its data set and a bundle trained on it."""
    from churnrisk.generate import generate_world
    from churnrisk.models import train_models
    from churnrisk.pipeline import training_panel
    from churnrisk.validate import load

    out = tmp_path_factory.mktemp("scoring_world")
    generate_world(out, accounts=600, months=18, seed=3)
    ds = load(out).dataset
    models = train_models(training_panel(ds, CONFIG), CONFIG)
    return SimpleNamespace(path=out, ds=ds, models=models)


def test_score_accounts_matches_the_bundle_and_explain(world):
    from churnrisk.dataset import observation_end
    from churnrisk.features import build_features, panel_features
    from churnrisk.models import drivers

    day = observation_end(world.ds)
    steps: list[str] = []
    out = score_accounts(
        world.ds, world.models, as_of=day, config=CONFIG.scoring, step=steps.append
    )
    assert steps == [
        f"building features as of {day}",
        f"scoring {len(out):,} accounts",
        "explaining each score (top drivers)",
    ]
    panel = build_features(world.ds, [day], features=panel_features(world.models.vocabulary))
    assert list(out.columns) == list(SCORE_COLUMNS)
    assert out["account_id"].tolist() == panel["account_id"].tolist()
    pred = world.models.predict(panel)
    np.testing.assert_array_equal(out["churn_probability"], pred["churn_probability"])
    np.testing.assert_array_equal(out["lifetime_clv"], pred["lifetime_clv"])
    np.testing.assert_array_equal(out["revenue_12m"], pred["revenue_12m"])
    np.testing.assert_array_equal(out["mrr_at_risk"], pred["mrr"] * pred["churn_probability"])
    assert out["risk_tier"].tolist() == [CONFIG.scoring.tier_of(p) for p in out.churn_probability]
    assert set(out["risk_tier"]) == {"high", "medium", "low"}
    # the same drivers, in the same order and words, as churnrisk.models.drivers
    expected = drivers(world.models.churn, panel, top=3, direction="both")
    for got, want in zip(out["drivers"], expected, strict=True):
        assert [d["feature"] for d in got] == [d.feature for d in want]
        assert [d["text"] for d in got] == [d.text for d in want]
        assert [d["contribution"] for d in got] == [round(d.contribution, 4) for d in want]
    accounts = world.ds.frame("accounts").set_index("account_id")
    assert out["owner"].tolist() == accounts.loc[out["account_id"], "owner"].tolist()
    assert out["segment"].tolist() == panel["segment"].astype(str).tolist()
    assert_plain_json(out["drivers"].tolist())


def _truncated(ds, day: date):
    """The data set as it was known on ``day``: every fact dated before it, nothing else."""
    from churnrisk.dataset import Dataset

    cut = pd.Timestamp(day)
    frames = {}
    for name, column in (
        ("accounts", "created_at"),
        ("subscriptions", "start_date"),
        ("events", "timestamp"),
        ("tickets", "created_at"),
        ("nps", "responded_at"),
        ("orders", "ordered_at"),
    ):
        if not ds.has(name):
            continue
        frame = ds.frame(name)
        frame = frame.loc[pd.to_datetime(frame[column]) < cut].copy()
        if name == "tickets":  # a resolution on or after the day is not known yet
            late = pd.to_datetime(frame["resolved_at"]) >= cut
            frame.loc[late, ["resolved_at", "contacts", "csat"]] = None
        frames[name] = frame
    return Dataset.from_frames(frames)


def test_change_drivers_are_point_in_time_and_add_up(world):
    from churnrisk.dataset import observation_end
    from churnrisk.features import build_features, panel_features

    # two monthly runs, a month apart, well inside the data
    now = (observation_end(world.ds) - timedelta(days=40)).replace(day=1)
    then = (now - timedelta(days=1)).replace(day=1)
    first = score_accounts(world.ds, world.models, as_of=then, config=CONFIG.scoring)
    previous = PreviousScores(
        then, pd.Series(first["churn_probability"].to_numpy(), index=first["account_id"])
    )
    config = ScoringConfig(change_drivers=5)
    steps: list[str] = []
    out = score_accounts(
        world.ds, world.models, as_of=now, config=config, previous=previous, step=steps.append
    )
    assert steps == [
        f"building features as of {now} and {then} (the previous run)",
        f"scoring {len(out):,} accounts",
        "explaining each score (top drivers)",
        f"explaining the changes since the previous run (as of {then})",
    ]
    assert_plain_json(out["change_drivers"].tolist())

    # the features as of each date, built independently; the earlier ones from the data
    # as known on that date only (nothing dated on or after it exists there)
    feats = panel_features(world.models.vocabulary)
    after = build_features(world.ds, [now], features=feats).set_index("account_id")
    before = build_features(_truncated(world.ds, then), [then], features=feats)
    before = before.set_index("account_id")
    pd.testing.assert_frame_equal(
        before,
        build_features(world.ds, [then], features=feats).set_index("account_id"),
        check_categorical=False,
    )
    both = out.loc[out["previous_probability"].notna(), "account_id"].tolist()
    assert set(both) == set(after.index) & set(before.index)
    assert len(both) > 400
    new = out.loc[out["previous_probability"].isna()]
    assert (new["change_drivers"].map(len) == 0).all()
    assert new["probability_change"].isna().all()

    b, a = before.loc[both].reset_index(), after.loc[both].reset_index()
    c_after = world.models.churn.contributions(a).drop(columns="bias")
    c_before = world.models.churn.contributions(b).drop(columns="bias")
    delta = c_after.to_numpy() - c_before.to_numpy()
    # TreeSHAP is additive: every feature's change sums to the change in raw log-odds
    raw = world.models.churn.predict_raw(a) - world.models.churn.predict_raw(b)
    np.testing.assert_allclose(delta.sum(axis=1), raw, atol=1e-9)
    # the calibration map is monotone: the probability moves the way the log-odds did
    change = out.set_index("account_id").loc[both, "probability_change"].to_numpy()
    assert (change[raw > 1e-9] >= 0).all()
    assert (change[raw < -1e-9] <= 0).all()

    names = list(c_after.columns)
    from churnrisk.features import get_feature

    reported = 0
    by_account = out.set_index("account_id")["change_drivers"]
    for i, account in enumerate(both):
        items = by_account[account]
        order = np.argsort(-np.abs(delta[i]), kind="stable")
        kept = [names[j] for j in order[:5] if round(delta[i, j], 4) != 0]
        assert [d["feature"] for d in items] == kept
        for d in items:
            j = names.index(d["feature"])
            dtype = get_feature(d["feature"]).dtype
            assert d["contribution_change"] == round(delta[i, j], 4)
            assert d["direction"] == ("raised" if delta[i, j] > 0 else "lowered")
            assert d["before"] == json_value(before.loc[account, d["feature"]], dtype)
            assert d["after"] == json_value(after.loc[account, d["feature"]], dtype)
            reported += 1
    assert reported > 1000


def test_score_accounts_before_any_account_is_active(world):
    with pytest.raises(ConfigError, match="no account is active on 2000-12-31"):
        score_accounts(world.ds, world.models, as_of=date(2001, 1, 1), config=CONFIG.scoring)


# ---------------------------------------------------------------------------------------
# the job: runs in the score store
# ---------------------------------------------------------------------------------------

VERSIONS = SimpleNamespace(churn="4", clv="2", run_id="mlflow-run")


@pytest.fixture
def store(tmp_path):
    from churnrisk.store import ScoreStore

    s = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    s.upgrade()
    yield s
    s.close()


def test_run_scoring_keeps_runs_and_compares_with_the_previous_one(world, store):
    from churnrisk.dataset import observation_end
    from churnrisk.scoring import run_scoring

    end = observation_end(world.ds)
    then = (end - timedelta(days=1)).replace(day=1)
    kwargs = {"config": CONFIG.scoring, "versions": VERSIONS, "source": str(world.path)}
    first = run_scoring(world.ds, world.models, store, as_of=then, **kwargs)
    assert first.previous_run_id is None
    assert (first.as_of, first.churn_version, first.clv_version) == (then, "4", "2")
    assert first.model_run_id == "mlflow-run"
    assert first.tiers == {"high": 0.25, "medium": 0.1}
    assert first.low_tier == "low"
    assert first.source == str(world.path)
    assert len(first.run_id) == 32
    assert first.scored_at.tzinfo is not None

    steps: list[str] = []
    second = run_scoring(world.ds, world.models, store, as_of=None, step=steps.append, **kwargs)
    assert second.as_of == end
    assert second.previous_run_id == first.run_id
    assert steps[0] == f"reading the previous run {first.run_id} (as of {then})"
    assert steps[-1] == f"writing {second.accounts:,} scores to the score store"
    assert store.current_run() == second

    was = store.run_scores(first.run_id).set_index("account_id")
    now = store.run_scores(second.run_id).set_index("account_id")
    assert len(now) == second.accounts
    assert len(was) == first.accounts
    common = now.index.intersection(was.index)
    assert len(common) > 400
    np.testing.assert_array_equal(
        now.loc[common, "previous_probability"], was.loc[common, "churn_probability"]
    )
    np.testing.assert_allclose(
        now.loc[common, "probability_change"],
        now.loc[common, "churn_probability"] - was.loc[common, "churn_probability"],
    )
    fresh = now.index.difference(was.index)
    assert now.loc[fresh, "previous_probability"].isna().all()
    assert (now.loc[common, "change_drivers"].map(len) > 0).mean() > 0.9
    assert (was["change_drivers"].map(len) == 0).all()
    # drivers come back from the store exactly as written
    direct = score_accounts(world.ds, world.models, as_of=then, config=CONFIG.scoring)
    assert was["drivers"].tolist() == direct["drivers"].tolist()

    # the same date scored again (a retry, a nightly run with no new data) compares
    # with the date before, not with its own first run: the changes are kept
    again = run_scoring(world.ds, world.models, store, as_of=None, **kwargs)
    assert again.previous_run_id == first.run_id
    assert store.current_run() == again
    rescored = store.run_scores(again.run_id).set_index("account_id")
    pd.testing.assert_frame_equal(rescored, now)
    assert store.trend()[-1]["run"] == again

    # a backfill of an older date is kept but does not become current
    older = (then - timedelta(days=1)).replace(day=1)
    backfill = run_scoring(world.ds, world.models, store, as_of=older, **kwargs)
    assert backfill.previous_run_id is None
    assert store.current_run() == again
    assert [r.run_id for r in store.runs()] == [
        again.run_id,
        second.run_id,
        first.run_id,
        backfill.run_id,
    ]


def test_run_scoring_refuses_a_date_after_the_data(world, store):
    from churnrisk.dataset import observation_end
    from churnrisk.scoring import run_scoring

    end = observation_end(world.ds)
    with pytest.raises(ConfigError, match=f"after the end of the data.*score as of {end}"):
        run_scoring(
            world.ds,
            world.models,
            store,
            as_of=end + timedelta(days=1),
            config=CONFIG.scoring,
            versions=VERSIONS,
            source="w",
        )
    assert store.runs() == []


def test_a_write_that_fails_midway_leaves_the_previous_run_current(world, tmp_path, monkeypatch):
    import sqlalchemy as sa

    import churnrisk.store.store as store_module
    from churnrisk.dataset import observation_end
    from churnrisk.scoring import run_scoring
    from churnrisk.store import ScoreStore, StoreError

    class FailingStore(ScoreStore):
        """Writes two batches of score rows, then the database goes away."""

        batches = 0

        def _insert_scores(self, conn, rows):
            FailingStore.batches += 1
            if FailingStore.batches == 3:
                raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
            super()._insert_scores(conn, rows)

    url = f"sqlite:///{tmp_path / 'scores.db'}"
    good = ScoreStore(url)
    good.upgrade()
    end = observation_end(world.ds)
    kwargs = {"config": CONFIG.scoring, "versions": VERSIONS, "source": "w"}
    first = run_scoring(world.ds, world.models, good, as_of=end - timedelta(days=31), **kwargs)

    monkeypatch.setattr(store_module, "WRITE_BATCH", 100)
    failing = FailingStore(url)
    with pytest.raises(StoreError, match=r"nothing was written.*disk I/O error"):
        run_scoring(world.ds, world.models, failing, as_of=end, **kwargs)
    assert FailingStore.batches == 3  # two batches of 100 rows went in before the failure
    assert good.current_run() == first
    assert good.runs() == [first]
    with good.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM scores")).scalar_one()
    assert rows == first.accounts
    failing.close()
    good.close()


def test_rescoring_the_same_date_changes_nothing(world):
    from churnrisk.dataset import observation_end

    day = observation_end(world.ds)
    first = score_accounts(world.ds, world.models, as_of=day, config=CONFIG.scoring)
    previous = PreviousScores(
        day, pd.Series(first["churn_probability"].to_numpy(), index=first["account_id"])
    )
    steps: list[str] = []
    again = score_accounts(
        world.ds,
        world.models,
        as_of=day,
        config=CONFIG.scoring,
        previous=previous,
        step=steps.append,
    )
    assert steps[0] == f"building features as of {day}"
    assert (again["probability_change"] == 0).all()
    assert (again["change_drivers"].map(len) == 0).all()
    changed = ["previous_probability", "probability_change"]
    pd.testing.assert_frame_equal(again.drop(columns=changed), first.drop(columns=changed))


def test_a_previous_run_without_a_common_account_explains_nothing(world):
    from churnrisk.dataset import observation_end

    day = observation_end(world.ds)
    previous = PreviousScores(day - timedelta(days=30), pd.Series({"nobody": 0.5}))
    out = score_accounts(
        world.ds, world.models, as_of=day, config=CONFIG.scoring, previous=previous
    )
    assert out["previous_probability"].isna().all()
    assert (out["change_drivers"].map(len) == 0).all()


def test_add_changes_refuses_scores_not_from_the_panel():
    scores = score_panel(NOW, MODELS, config=SCORING)
    previous = PreviousScores(date(2026, 9, 1), pd.Series({"a1": 0.2, "a2": 0.1}))
    with pytest.raises(DataError, match="account 'a2' is scored but not on the panel"):
        add_changes(
            scores, MODELS, panel=NOW.head(1), previous=previous, previous_panel=BEFORE, top=3
        )
