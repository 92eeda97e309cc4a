"""How right were past scores: each kept run's probabilities against what then happened.

A run scored as of ``a`` claims, per account, a probability of churning in
``[a, a + horizon)``. Once that window (and its grace period) has closed, the run can be
graded with the same label the models learn from (:func:`churnrisk.features.labels.label_table`):
one definition of "churned" for training, backtests and this scorecard. Runs whose
window is still open are counted but not graded.

The figures a CS leader asks of a health score:

- the realised churn rate of each tier (did "high" churn more than "medium"?);
- precision and recall among each run's ``k`` riskiest accounts, and the share of the
  MRR that churned which those ``k`` accounts carried (what a team working the top of the
  list would have caught);
- a reliability curve of the past probabilities (equal-width bins, as the ECE);
- how early the score flagged the accounts that churned: for each churn, the days from
  the first run that put the account in the high tier (among the runs whose window holds
  that churn) to the churn day.

Beside them goes the drift of each feature since training
(:mod:`churnrisk.models.drift`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import ibis
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from churnrisk.config import LabelConfig
from churnrisk.dataset import TableSet
from churnrisk.errors import MetricError
from churnrisk.features.labels import churn_days, label_table
from churnrisk.features.pit import KEY, attach, lookahead
from churnrisk.models.evaluation import mrr_recall_at_k, precision_at_k, recall_at_k, reliability

OUTCOME_COLUMNS: tuple[str, ...] = ("churned", "churn_day")
"""What :func:`outcomes` adds to each scored row."""

RELIABILITY_COLUMNS: tuple[str, ...] = ("lower", "upper", "rows", "predicted", "observed")
"""The columns of :attr:`Scorecard.reliability` (empty while no run is graded)."""


def outcomes(
    ds: TableSet, scores: pd.DataFrame, cfg: LabelConfig, *, observed_end: date | None = None
) -> pd.DataFrame:
    """Return ``scores`` with what happened to each scored account after its run.

    Parameters
    ----------
    ds
        The data set, observed up to (at least) the end of the runs' windows.
    scores
        Past score rows: at least ``account_id`` and ``as_of`` (one row per account and
        run date; other columns are kept).
    cfg
        The label definition (horizon and grace) the models were trained on.
    observed_end
        Exclusive end of observation; default
        :func:`~churnrisk.dataset.observation_end`.

    Returns
    -------
    pandas.DataFrame
        ``scores`` in its order plus ``churned`` (1, 0, or missing while the window is
        open, as :func:`~churnrisk.features.labels.label_table`) and ``churn_day`` (the
        first churn day in ``[as_of, as_of + horizon)``, missing when none).
    """
    missing = [c for c in KEY if c not in scores.columns]
    if missing:
        raise MetricError(f"past scores need the columns {', '.join(KEY)}; missing {missing}")
    if scores.empty:
        return scores.assign(churned=pd.Series(dtype="Int8"), churn_day=pd.Series(dtype=object))
    pairs = scores[list(KEY)].drop_duplicates()
    spine = ibis.memtable(
        {
            "account_id": pairs["account_id"].astype(str).tolist(),
            "as_of": pd.to_datetime(pairs["as_of"]).dt.date.tolist(),
        },
        schema={"account_id": "string", "as_of": "date"},
    )
    churns = lookahead(
        spine,
        churn_days(ds.table("subscriptions"), cfg.grace_days),
        "churn_day",
        cfg.horizon_days,
    )
    first = churns.group_by(list(KEY)).aggregate(churn_day=churns.churn_day.min())
    labels = label_table(ds, spine, cfg, observed_end=observed_end)
    graded = attach(labels.select(*KEY, "churned"), first)
    found = ds.backend.execute(graded)
    found["as_of"] = pd.to_datetime(found["as_of"]).dt.date
    found["churned"] = found["churned"].astype("Int8")
    found["churn_day"] = [
        None if pd.isna(day) else day.date() for day in pd.to_datetime(found["churn_day"])
    ]
    keyed = scores.assign(
        account_id=scores["account_id"].astype(str),
        as_of=pd.to_datetime(scores["as_of"]).dt.date,
    )
    return keyed.merge(found, on=list(KEY), how="left", validate="many_to_one")


@dataclass(frozen=True)
class TierOutcome:
    """What became of the accounts one tier held, over every graded run."""

    tier: str
    accounts: int
    """Scored rows in the tier (an account counts once per run)."""
    churned: int
    rate: float | None
    """``churned / accounts``; ``None`` for an empty tier."""


@dataclass(frozen=True)
class RunOutcome:
    """One graded run: how its top ``k`` fared."""

    as_of: date
    accounts: int
    churned: int
    precision_at_k: float
    recall_at_k: float | None
    """``None`` when nobody churned after the run."""
    mrr_caught: float | None
    """Share of the churned MRR the top ``k`` carried; ``None`` when no MRR churned."""


@dataclass(frozen=True)
class LeadTime:
    """How early the high tier named the accounts that churned."""

    churns: int
    """Distinct (account, churn day) pairs inside some graded run's window."""
    flagged: int
    """Those put in the high tier by at least one run before the churn."""
    median_days: float | None
    """Median days from the first such run to the churn day; ``None`` if none flagged."""


@dataclass(frozen=True)
class Scorecard:
    """The grades of the past runs (see the module docstring)."""

    k: int
    graded_runs: int
    open_runs: int
    """Runs whose window has not closed yet: counted, not graded."""
    tiers: list[TierOutcome]
    runs: list[RunOutcome]
    reliability: pd.DataFrame
    """:func:`churnrisk.models.evaluation.reliability` of every graded row (no rows while
    no run is graded)."""
    lead: LeadTime

    def to_dict(self) -> dict[str, Any]:
        """Return the scorecard as JSON values (dates as ISO text)."""
        return {
            "k": self.k,
            "graded_runs": self.graded_runs,
            "open_runs": self.open_runs,
            "tiers": [asdict(t) for t in self.tiers],
            "runs": [asdict(r) | {"as_of": r.as_of.isoformat()} for r in self.runs],
            "reliability": self.reliability.to_dict("records"),
            "lead": asdict(self.lead),
        }

    def figure(self) -> Figure:
        """Return the reliability curve beside the realised churn rate of each tier."""
        fig = Figure(figsize=(10.0, 4.0), layout="constrained")
        FigureCanvasAgg(fig)
        left, right = fig.subplots(1, 2)
        left.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
        curve = self.reliability
        left.plot(curve["predicted"], curve["observed"], marker="o", label="past scores")
        left.set(xlabel="predicted probability", ylabel="churned afterwards")
        left.set_title(f"Reliability ({self.graded_runs} graded runs)")
        left.legend(loc="upper left")
        shown = [t for t in self.tiers if t.rate is not None]
        right.bar([t.tier for t in shown], [t.rate for t in shown], color="tab:red")
        for i, t in enumerate(shown):
            right.annotate(f"{t.churned}/{t.accounts}", (i, t.rate), ha="center", va="bottom")
        right.set(ylabel="realised churn rate")
        right.set_title("What each tier did")
        return fig


def grade(
    scored: pd.DataFrame,
    *,
    k: int,
    high_tier: str | Mapping[date, str],
    tiers: Sequence[str],
) -> Scorecard:
    """Grade past runs from their rows and :func:`outcomes`.

    Parameters
    ----------
    scored
        :func:`outcomes` of the past score rows, with ``probability``, ``tier`` and
        ``mrr`` (the MRR scored at the run).
    k
        How many of each run's riskiest accounts make "the list".
    high_tier
        The tier whose first appearance starts the lead time: one name for every run, or
        each run's own by its as-of date (runs scored with other tiers keep theirs).
    tiers
        The tiers, highest first (the order of the tier table). A tier some run used that
        is not listed follows them, riskiest (by its rows' mean probability) first, so no
        graded row drops out of the table when the tiers were renamed.
    """
    if k < 1:
        raise MetricError(f"the list size k must be >= 1, got {k}")
    need = ("as_of", "account_id", "probability", "tier", "mrr", *OUTCOME_COLUMNS)
    missing = [c for c in need if c not in scored.columns]
    if missing:
        raise MetricError(f"grading needs the columns {', '.join(missing)}")
    closed = scored[scored["churned"].notna()]
    run_days = set(scored["as_of"])
    graded_days = sorted(set(closed["as_of"]))
    y_all = closed["churned"].astype(int)
    others = closed[~closed["tier"].isin(list(tiers))]
    extra = others.groupby("tier")["probability"].mean().sort_values(ascending=False, kind="stable")
    tier_rows = []
    for tier in [*tiers, *extra.index]:
        inside = y_all[closed["tier"] == tier]
        count = len(inside)
        tier_rows.append(
            TierOutcome(tier, count, int(inside.sum()), float(inside.mean()) if count else None)
        )
    runs = []
    for day in graded_days:
        run = closed[closed["as_of"] == day]
        y, p = run["churned"].astype(int).to_numpy(), run["probability"].to_numpy(float)
        mrr = run["mrr"].fillna(0.0).to_numpy(float)
        lost = y.sum() > 0 and float((mrr * y).sum()) > 0
        runs.append(
            RunOutcome(
                as_of=day,
                accounts=len(run),
                churned=int(y.sum()),
                precision_at_k=precision_at_k(y, p, k=k),
                recall_at_k=recall_at_k(y, p, k=k) if y.sum() else None,
                mrr_caught=mrr_recall_at_k(y, p, mrr, k=k) if lost else None,
            )
        )
    curve = (
        reliability(y_all.to_numpy(), closed["probability"].to_numpy(float))
        if len(closed)
        else pd.DataFrame({c: pd.Series(dtype=float) for c in RELIABILITY_COLUMNS})
    )
    return Scorecard(
        k=k,
        graded_runs=len(graded_days),
        open_runs=len(run_days) - len(graded_days),
        tiers=tier_rows,
        runs=runs,
        reliability=curve,
        lead=lead_time(scored, high_tier=high_tier),
    )


def lead_time(scored: pd.DataFrame, *, high_tier: str | Mapping[date, str]) -> LeadTime:
    """Days from the first high-tier run to each churn it preceded.

    A churn is an (account, churn day) pair that some graded run's window holds. The
    warning it had starts at the earliest run that put the account in ``high_tier`` on or
    after the account's previous churn (a returning customer's old flags do not count)
    and before the churn day; runs whose window ends before the churn count too, since a
    CS team acts on a flag as soon as it is raised.
    """
    churned = scored[scored["churned"] == 1]
    churns = churned[["account_id", "churn_day"]].drop_duplicates()
    churns = churns.sort_values(["account_id", "churn_day"], kind="stable")
    if churns.empty:
        return LeadTime(0, 0, None)
    if isinstance(high_tier, str):
        high = scored[scored["tier"] == high_tier]
    else:
        riskiest = scored["as_of"].map(dict(high_tier))
        high = scored[scored["tier"] == riskiest]
    flags = high.groupby("account_id")["as_of"].agg(sorted)
    days = []
    previous: dict[str, date] = {}
    for account, churn in churns.itertuples(index=False):
        since = previous.get(account, date.min)
        previous[account] = churn
        raised = [day for day in flags.get(account, []) if since <= day < churn]
        if raised:
            days.append((churn - raised[0]).days)
    return LeadTime(
        churns=len(churns),
        flagged=len(days),
        median_days=float(np.median(days)) if days else None,
    )
