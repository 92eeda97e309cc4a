"""Features from the data's own vocabulary: learned before a date, named safely, exact."""

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from reference import midnight

from churnrisk.dataset import Dataset
from churnrisk.errors import ConfigError
from churnrisk.features import FEATURES, build_features, get_feature
from churnrisk.features.registry import Feature, declare
from churnrisk.features.vocabulary import (
    Vocabulary,
    learn_vocabulary,
    panel_features,
    vocabulary_features,
)

A = date(2025, 3, 1)


def _world(events: list[tuple[str, str | None, int]], tickets: list[tuple[str, str | None, int]]):
    """Accounts a and b paying since 2024; events and tickets as (account, value, days before A)."""
    frames = {
        "accounts": pd.DataFrame(
            {"account_id": ["a", "b"], "created_at": [datetime(2024, 1, 1)] * 2}
        ),
        "subscriptions": pd.DataFrame(
            {
                "account_id": ["a", "b"],
                "start_date": [date(2024, 1, 1)] * 2,
                "end_date": [None, None],
                "mrr": [10.0, 10.0],
            }
        ),
        "events": pd.DataFrame(
            [
                {
                    "account_id": x,
                    "user_id": "u",
                    "timestamp": midnight(A) - timedelta(days=k),
                    "event_type": t,
                }
                for x, t, k in events
            ]
        ),
        "tickets": pd.DataFrame(
            [
                {
                    "ticket_id": f"t{i}",
                    "account_id": x,
                    "created_at": midnight(A) - timedelta(days=k),
                    "priority": p,
                }
                for i, (x, p, k) in enumerate(tickets)
            ]
        ),
    }
    return Dataset.from_frames(frames)


def test_learns_the_most_frequent_values_before_the_date_only():
    events = [("a", "add_contact", 10)] * 3 + [("b", "win_deal", 10)] * 2 + [("a", "rare", 10)]
    events += [("a", "late", 0), ("a", "late", -3), ("a", None, 10), ("a", None, 11)]
    tickets = [("a", "High", 5), ("b", "high", 5), ("a", "low", 5), ("a", "urgent", 0)]
    ds = _world(events, tickets)
    v = learn_vocabulary(ds, before=A, max_terms=2, min_rows=2)
    # "late" is on or after A, "rare" too seldom, NULL types are no type; capped at 2
    assert v == Vocabulary(("add_contact", "win_deal"), ("high",), A)
    assert learn_vocabulary(ds, before=A + timedelta(days=10), min_rows=2).event_types == (
        "add_contact",
        "late",
        "win_deal",
    )
    assert Vocabulary.from_dict(v.to_dict()) == v


def test_vocabulary_features_count_each_value_and_its_trend():
    # a: add_contact 2 in the last 30 days, 1 in the 30 before; win_deal only before
    events = [("a", "add_contact", 1), ("a", "add_contact", 30), ("a", "add_contact", 31)]
    events += [("a", "win_deal", 45), ("a", "win_deal", 61), ("b", "other", 3)]
    tickets = [("a", "High", 90), ("a", "high", 91), ("b", "HIGH", 1)]
    ds = _world(events, tickets)
    v = Vocabulary(("add_contact", "win_deal"), ("high",))
    feats = panel_features(v)
    df = build_features(ds, [A], features=feats).set_index("account_id")
    assert list(df.columns)[-5:] == [
        "type_add_contact_30d",
        "type_add_contact_trend_30d",
        "type_win_deal_30d",
        "type_win_deal_trend_30d",
        "tickets_priority_high_90d",
    ]
    assert df.loc["a", "type_add_contact_30d"] == 2
    assert df.loc["a", "type_add_contact_trend_30d"] == 1.0  # (2 - 1) / 1
    assert df.loc["a", "type_win_deal_30d"] == 0
    assert df.loc["a", "type_win_deal_trend_30d"] == -1.0  # the one at 61 days is out
    assert pd.isna(df.loc["b", "type_add_contact_trend_30d"])
    assert df.loc["b", "type_add_contact_30d"] == 0
    assert df.loc["a", "tickets_priority_high_90d"] == 1  # lower-cased; 91 days is out
    assert df.loc["b", "tickets_priority_high_90d"] == 1
    assert get_feature("type_add_contact_30d").meaning == "add_contact events, last 30 days"
    # the static features are untouched by the vocabulary
    plain = build_features(ds, [A]).set_index("account_id")
    pd.testing.assert_frame_equal(df[plain.columns], plain)


def test_names_are_safe_unique_and_never_static():
    v = Vocabulary(
        ("Add Contact!", "add-contact", "add_contact", "événement", "x" * 80), ("P1 (urgent)",)
    )
    feats = vocabulary_features(v)
    names = [f.name for f in feats]
    assert len(set(names)) == len(names)
    assert all(n.isidentifier() and n.isascii() and len(n) <= 64 for n in names)
    assert not {f.name for f in FEATURES} & set(names)
    assert "type_add_contact_30d" in names
    with pytest.raises(ConfigError, match="collides with a registered one"):
        declare([Feature("events_30d", "usage", 30, "x", "int", "events")])


def test_training_panel_learns_before_its_first_as_of_date(tmp_path):
    from churnrisk.config import RunConfig
    from churnrisk.generate import generate_world
    from churnrisk.pipeline import training_grid, training_panel
    from churnrisk.validate import load

    generate_world(tmp_path, accounts=60, months=8, seed=3)
    ds = load(tmp_path).dataset
    panel = training_panel(ds, RunConfig())
    v = panel.attrs["vocabulary"]
    assert v.learned_before == min(training_grid(ds, RunConfig()).dates)
    assert v.event_types
    assert [c for c in panel.columns if c.startswith("type_")][:1] == [
        f"type_{v.event_types[0]}_30d"
    ]
