"""The leak audit: hand-worked separations, a planted leak stopped, an honest world passed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_invoke import invoke

from churnrisk.config import RunConfig
from churnrisk.dataset import Dataset
from churnrisk.generate import generate_world
from churnrisk.models.audit import FeatureSeparation, LeakError, check_leaks, leak_audit
from churnrisk.pipeline import training_panel
from churnrisk.validate import load


def _panel(**features: list[object]) -> pd.DataFrame:
    """Six rows, churned 0 0 0 1 1 1, plus the given feature columns."""
    n = 6
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "as_of": pd.Timestamp("2026-01-01"),
            "churned": pd.array([0, 0, 0, 1, 1, 1], "Int8"),
            "revenue_next_12m": np.nan,
            **features,
        }
    )


def test_separations_by_hand() -> None:
    panel = _panel(
        # exists only for the churners: its missingness alone separates
        only_churners=[np.nan, np.nan, np.nan, 5.0, 7.0, 1.0],
        # stayers high, churners low: separates in the lowering direction
        falls=[9.0, 8.0, 7.0, 3.0, 2.0, 1.0],
        # pairs: (1 vs 1.5), ... AUC = 6.5 / 9 by hand below
        mixed=[1.0, 2.0, 3.0, 1.5, 2.5, 0.5],
        tier=pd.Categorical(["x", "x", "y", "y", "y", "z"]),
    )
    audit = {s.feature: s for s in leak_audit(panel)}
    assert audit["only_churners"] == FeatureSeparation("only_churners", 1.0, True)
    assert audit["falls"] == FeatureSeparation("falls", 1.0, False)
    # churner scores 1.5, 2.5, 0.5 against stayer scores 1, 2, 3: pairs won by the
    # churner: 1.5 > 1; 2.5 > 1, 2; none for 0.5 -> 3 of 9; best direction 6/9
    assert audit["mixed"].auc == pytest.approx(6 / 9)
    # levels: x -> rate 0, y -> 2/3, z -> 1; churners' rates 2/3, 2/3, 1 against 0, 0, 2/3:
    # pairs won 2 x 2 + 1 x 3 = 7, one tie (2/3 vs 2/3, twice) counts half: 8 of 9
    assert audit["tier"].auc == pytest.approx(8 / 9)
    assert [s.feature for s in leak_audit(panel)][:2] == ["falls", "only_churners"]


def test_check_leaks_stops_and_an_explicit_allow_lets_through() -> None:
    panel = _panel(only_churners=[np.nan, np.nan, np.nan, 5.0, 7.0, 1.0], fine=[1, 2, 3, 2, 3, 1])
    with pytest.raises(LeakError, match=r"only_churners \(ROC-AUC 1.00, by being missing\)"):
        check_leaks(panel)
    audit = check_leaks(panel, allow=["only_churners"])
    assert audit[0].feature == "only_churners"


def test_an_audit_of_one_class_is_empty() -> None:
    panel = _panel(x=[1, 2, 3, 4, 5, 6]).assign(churned=pd.array([0] * 6, "Int8"))
    assert leak_audit(panel) == []


def _cancellation_dated(subs: pd.DataFrame) -> pd.DataFrame:
    """One row per paying spell, as a billing system's subscription objects are.

    Consecutive term rows of an account (each starting where the one before stopped)
    merge into one spell whose ``end_date`` is set only when the spell stopped (the
    customer left); then that date is (wrongly) also given as ``term_end``, the leak a
    cancellation-dated export invites.
    """
    rows = []
    for account, group in subs.sort_values(["account_id", "start_date"]).groupby("account_id"):
        spell: dict[str, object] | None = None
        for r in group.itertuples():
            end = r.end_date if pd.notna(r.end_date) else pd.NaT
            if spell is not None and (
                pd.isna(spell["end_date"]) or r.start_date <= spell["end_date"]
            ):
                spell["end_date"] = (
                    pd.NaT
                    if pd.isna(end) or pd.isna(spell["end_date"])
                    else max(end, spell["end_date"])
                )
                continue
            spell = {
                "account_id": account,
                "start_date": r.start_date,
                "end_date": end,
                "mrr": r.mrr,
            }
            rows.append(spell)
    out = pd.DataFrame(rows)
    return out.assign(term_end=out["end_date"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit_world")
    generate_world(out, accounts=400, months=18, seed=4)
    return out


def test_an_honest_world_passes_and_a_planted_leak_stops(world: Path) -> None:
    ds = load(world).dataset
    panel = training_panel(ds, RunConfig())
    assert leak_audit(panel)[0].auc < 0.9  # no single feature comes close

    # a cancellation-dated export's stop dates taken for term ends known at signing:
    # they exist only for spells that stopped, so "days to renewal" reads the outcome
    frames = {name: ds.frame(name) for name in ("accounts", "events")}
    frames["subscriptions"] = _cancellation_dated(ds.frame("subscriptions"))
    leaky = training_panel(Dataset.from_frames(frames), RunConfig())
    with pytest.raises(
        # the term length reads the same (wrongly given) term_end
        LeakError,
        match=r"^the feature\(s\) days_to_renewal \(ROC-AUC 1\.00\)"
        r"(, term_length_days \(ROC-AUC 0\.9\d\))? alone",
    ):
        check_leaks(leaky)


def test_train_stops_on_a_leak_with_one_line(world: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "leaky"
    src.mkdir()
    ds = load(world).dataset
    for name in ("accounts", "events"):
        ds.frame(name).to_parquet(src / f"{name}.parquet")
    _cancellation_dated(ds.frame("subscriptions")).to_parquet(src / "subscriptions.parquet")
    code = invoke(["backtest", src])
    err = capsys.readouterr().err
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: the feature(s) days_to_renewal (ROC-AUC")
    assert "pass --allow-leak days_to_renewal" in line


def test_the_cancellation_dated_world_has_no_leaking_feature(tmp_path: Path) -> None:
    """Its end_date exists only for spells that stopped and it has no term_end: nothing
    may read the outcome (the issue's telecom table gave one feature ROC-AUC 1.00)."""
    generate_world(tmp_path, shape="cancellation-dated", accounts=800, months=18, seed=2)
    result = load(tmp_path)
    assert any("cancellation-dated export" in w for w in result.report.warnings)
    panel = training_panel(result.dataset, RunConfig())
    audit = check_leaks(panel)
    assert audit[0].auc < 0.9, audit[:3]
    assert panel["days_to_renewal"].isna().all()
