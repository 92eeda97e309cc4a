"""Playbooks: which plays match an account, and why, from a TOML file of plain rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnrisk.errors import ConfigError
from churnrisk.playbooks import BookRank, load_playbook, match

BOOK = """
[[play]]
name = "Renewal rescue"
text = "Call the sponsor."
when = { tier = ["high"], renewal_within_days = 60 }

[[play]]
name = "Support"
text = "Review the tickets."
when = { driver_family = ["tickets"] }

[[play]]
name = "Mid-size"
text = "Pool the mid-size accounts."
when = { mrr_min = 500, mrr_max = 2000, segment = ["smb", "mid"] }

[[play]]
name = "Everyone"
text = "Send the newsletter."
"""


def _account(**changes: object) -> dict[str, object]:
    account: dict[str, object] = {
        "risk_tier": "high",
        "mrr": 1200.0,
        "days_to_renewal": 34.0,
        "segment": "mid",
        "drivers": [
            {"feature": "dau_mau_30d", "direction": "raises"},
            {"feature": "tickets_open", "direction": "raises"},
            {"feature": "nps_last_score", "direction": "lowers"},
        ],
    }
    return account | changes


@pytest.fixture
def book(tmp_path: Path):
    path = tmp_path / "plays.toml"
    path.write_text(BOOK, encoding="utf-8")
    return load_playbook(path)


def test_every_matching_play_says_why(book) -> None:
    found = match(book, _account())
    assert [m.name for m in found] == ["Renewal rescue", "Support", "Mid-size", "Everyone"]
    assert found[0].reasons == ["tier is high", "renews in 34 days (within 60)"]
    assert found[1].reasons == ["Support tickets still open (tickets) raises risk"]
    assert found[2].reasons == [
        "MRR 1,200 is at least 500",
        "MRR 1,200 is below 2,000",
        "segment is mid",
    ]
    assert found[3].to_dict() == {
        "name": "Everyone",
        "text": "Send the newsletter.",
        "reasons": ["applies to every account"],
    }


@pytest.mark.parametrize(
    ("changes", "left_out"),
    [
        ({"risk_tier": "medium"}, "Renewal rescue"),
        ({"days_to_renewal": 61.0}, "Renewal rescue"),
        ({"days_to_renewal": None}, "Renewal rescue"),
        ({"days_to_renewal": float("nan")}, "Renewal rescue"),
        # a driver of the family that lowers risk is no reason to act
        ({"drivers": [{"feature": "tickets_open", "direction": "lowers"}]}, "Support"),
        ({"drivers": [{"feature": "no_such_feature", "direction": "raises"}]}, "Support"),
        ({"mrr": 2000.0}, "Mid-size"),
        ({"mrr": 499.0}, "Mid-size"),
        ({"segment": None}, "Mid-size"),
    ],
)
def test_a_play_is_left_out_when_one_condition_fails(book, changes, left_out) -> None:
    names = [m.name for m in match(book, _account(**changes))]
    assert left_out not in names
    assert "Everyone" in names


def test_the_default_playbook_reads_and_matches() -> None:
    book = load_playbook()
    assert len(book.play) == 6
    found = match(book, _account(), rank=BookRank(larger=99, accounts=1000))
    assert [m.name for m in found] == [
        "Renewal rescue",
        "Executive sponsor",
        "Re-onboard the users",
        "Clear the support backlog",
    ]
    assert found[1].reasons == [
        "tier is high",
        "MRR 1,200 is in the top 10% of the book (100th of 1,000)",
    ]
    assert match(book, _account(risk_tier="low")) == []


@pytest.mark.parametrize(
    ("rank", "matches"),
    [
        (BookRank(larger=0, accounts=1), True),  # the only account is the top of its book
        (BookRank(larger=9, accounts=100), True),
        (BookRank(larger=10, accounts=100), False),  # ten larger ones fill the top 10%
        (BookRank(larger=0, accounts=5), True),
        (BookRank(larger=1, accounts=5), False),  # 1 of 5 larger is 20%
        (None, False),  # no rank: a relative band cannot hold
    ],
)
def test_the_relative_mrr_band(rank, matches) -> None:
    book = load_playbook()
    names = [m.name for m in match(book, _account(), rank=rank)]
    assert ("Executive sponsor" in names) is matches


@pytest.mark.parametrize(
    ("ordinal", "larger"),
    [
        ("1st", 0),
        ("2nd", 1),
        ("3rd", 2),
        ("4th", 3),
        ("11th", 10),
        ("12th", 11),
        ("13th", 12),
        ("21st", 20),
        ("22nd", 21),
        ("101st", 100),
        ("111th", 110),
    ],
)
def test_the_rank_reads_as_an_ordinal(ordinal, larger) -> None:
    book = load_playbook()
    found = match(book, _account(), rank=BookRank(larger=larger, accounts=100_000))
    sponsor = next(m for m in found if m.name == "Executive sponsor")
    assert sponsor.reasons[1].endswith(f"({ordinal} of 100,000)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[play]]\nname = 'x'\n", "playbook .*: play.0.text: Field required"),
        ("[[play]]\nname='x'\ntext='y'\nwhen={tier=[]}", "when.tier: List should have at least 1"),
        ("[[play]]\nname='x'\ntext='y'\nwhen={driver_family=['mood']}", "driver_family.0: Input"),
        ("[[play]]\nname='x'\ntext='y'\nwhen={mrr_min=5, mrr_max=5}", "mrr_max must be above"),
        ("[[play]]\nname='x'\ntext='y'\nwhen={colour='red'}", "when.colour: Extra inputs"),
        ("[[play]]\nname='x'\ntext='y'\n[[play]]\nname='x'\ntext='z'", "repeated: x"),
        ("[[play]\n", "is not valid TOML"),
    ],
)
def test_a_bad_playbook_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_playbook(path)
    assert "\n" not in str(caught.value)


def test_a_missing_playbook_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read playbook .*missing\.toml: No such file"):
        load_playbook(tmp_path / "missing.toml")
