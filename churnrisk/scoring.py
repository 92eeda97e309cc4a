"""The scoring job: every active account scored, explained and compared with its last run.

:func:`score_accounts` is the pure stage (a data set and a bundle in, one row per
account out, nothing written); :func:`run_scoring` is the job around it (finds the
previous run in the score store, scores, writes the run in one transaction).

Each account gets its churn probability, risk tier, MRR at risk, 12-month revenue and
lifetime CLV, its top drivers among the features customer success can act on (TreeSHAP
contributions of the churn model, worded from the feature registry), its context apart
(size, plan, tenure, segment, renewal timing), its renewal date and days to it and,
against its previous run, the change in probability with the
features that moved it most ("why did this score change"). Everything is computed for
all accounts at once with numpy; the only per-account Python is the building of the
JSON driver items themselves.

Driver items are JSON-safe: plain ``str``, ``int``, ``float``, ``None``; no numpy
scalars and no NaN. Values are rounded for people by the one rounding ``churnrisk
explain`` uses too (:func:`churnrisk.models.explain.round_value`, here also
:func:`json_value`: whole-number features become ints, others keep 4 decimals, 4
significant digits below 1), and their display is exactly those digits
(:func:`churnrisk.models.explain.words`); contributions keep 4 decimals.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnrisk.config import ScoringConfig
from churnrisk.dataset import Dataset, observation_end, quote
from churnrisk.errors import ConfigError, DataError
from churnrisk.features import build_features, get_feature, panel_features
from churnrisk.features.engine import renewal_mrr
from churnrisk.models.bundle import ChurnRiskModels
from churnrisk.models.explain import (
    context_order,
    rank_actionable,
    top_contributions,
    words,
)
from churnrisk.models.explain import round_value as json_value
from churnrisk.scorerow import SCORE_COLUMNS, SCORE_FIELDS, ScoreField, fields_of

if TYPE_CHECKING:
    from churnrisk.store import RunRecord, ScoreStore
    from churnrisk.tracking import ModelVersions

Step = Callable[[str], None]

Scorer = Callable[[date, "PreviousScores | None", Step], pd.DataFrame]
"""Scores the accounts as of a date against the previous run (or none), as
:func:`score_accounts` does: ``scorer(as_of, previous, step)``."""

CONTRIBUTION_DECIMALS = 4
"""Contributions and their changes are reported in log-odds, rounded to this many decimals;
a change that rounds to zero is not reported as a change driver."""


def _quiet(_: str) -> None:
    """Ignore a progress message."""


@dataclass(frozen=True)
class PreviousScores:
    """The previous run's scores, as the scoring job compares with them.

    Attributes
    ----------
    as_of
        The previous run's as-of date; its features are rebuilt point-in-time as of this
        date to explain the change.
    probabilities
        The previous run's churn probabilities, indexed by ``account_id``.
    """

    as_of: date
    probabilities: pd.Series[float]


# ---------------------------------------------------------------------------------------
# JSON-safe values and their display
# ---------------------------------------------------------------------------------------


def _cells(
    panel: pd.DataFrame, names: Sequence[str], rows: np.ndarray, cols: np.ndarray
) -> tuple[list[Any], list[str]]:
    """Return the JSON values and display texts of the cells ``(rows[i], names[cols[i]])``.

    Each feature column is read once; each distinct number is rounded and formatted once.
    """
    values = np.empty(len(rows), dtype=object)
    shown = np.empty(len(rows), dtype=object)
    for j in np.unique(cols).tolist():
        at = np.flatnonzero(cols == j)
        dtype = get_feature(names[j]).dtype
        if dtype == "category":
            labels = panel[names[j]].to_numpy(dtype=object)[rows[at]]
            as_json = [json_value(v, dtype) for v in labels]
            values[at] = as_json
            shown[at] = [words(v) for v in as_json]
            continue
        raw = panel[names[j]].to_numpy(dtype="float64", na_value=np.nan)[rows[at]]
        uniq, inverse = np.unique(raw, return_inverse=True)
        numbers = uniq.tolist()
        rounded = [json_value(v, dtype) for v in numbers]
        values[at] = np.array(rounded, dtype=object)[inverse]
        shown[at] = np.array([words(v) for v in rounded], dtype=object)[inverse]
    return values.tolist(), shown.tolist()


def _object_column(items: Sequence[Any]) -> np.ndarray:
    """Return ``items`` (lists included) as a 1-D object array, one element per item."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _split(items: list[dict[str, Any]], rows: np.ndarray, n: int) -> list[list[dict[str, Any]]]:
    """Cut row-major ``items`` (one per picked cell, row index ``rows``) into ``n`` lists."""
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).tolist()
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


# ---------------------------------------------------------------------------------------
# drivers
# ---------------------------------------------------------------------------------------


def driver_items(
    panel: pd.DataFrame, names: Sequence[str], contributions: np.ndarray, *, top: int
) -> list[list[dict[str, Any]]]:
    """Return each row's top drivers as JSON items: ``top`` risers, then ``top`` lowerers.

    Drivers are ranked among the actionable features only
    (:attr:`~churnrisk.features.Feature.actionable`); context features are never drivers
    (:func:`context_items` reports them).

    Parameters
    ----------
    panel
        The feature panel the contributions were computed on (same row order).
    names
        Feature name of each contribution column.
    contributions
        TreeSHAP contributions in log-odds, shape ``(len(panel), len(names))``, no bias.
    top
        Drivers per direction.

    Returns
    -------
    list of list of dict
        Per row: ``{"feature", "meaning", "value", "display", "contribution",
        "direction", "text"}`` items, the risers largest first, then the lowerers most
        negative first (a feature with a zero contribution is neither).
    """
    ranked = rank_actionable(contributions, list(names))
    picked = top_contributions(ranked, top=top, direction="both")
    return _items(panel, names, contributions, picked)


def context_items(
    panel: pd.DataFrame, names: Sequence[str], contributions: np.ndarray
) -> list[list[dict[str, Any]]]:
    """Return each row's context features as JSON items, apart from its drivers.

    Context is who the account is and where it stands in its contract (size, plan,
    tenure, segment, renewal timing: the features that are not
    :attr:`~churnrisk.features.Feature.actionable`). Items have the shape of
    :func:`driver_items`'s, largest absolute contribution first (ties in feature
    order); a context feature contributing exactly 0 is left out.
    """
    return _items(panel, names, contributions, context_order(contributions, list(names)))


def _items(
    panel: pd.DataFrame, names: Sequence[str], contributions: np.ndarray, picked: np.ndarray
) -> list[list[dict[str, Any]]]:
    """Return the JSON items of the picked cells (column positions, ``-1`` skipped)."""
    rows, slots = np.nonzero(picked >= 0)
    cols = picked[rows, slots]
    values, shown = _cells(panel, names, rows, cols)
    c = contributions[rows, cols]
    rounded = np.round(c, CONTRIBUTION_DECIMALS).tolist()
    raises = (c > 0).tolist()
    meanings = [get_feature(n).meaning for n in names]
    items = [
        {
            "feature": names[j],
            "meaning": meanings[j],
            "value": v,
            "display": d,
            "contribution": r,
            "direction": "raises" if up else "lowers",
            "text": f"{meanings[j]} = {d}, {'raises' if up else 'lowers'} risk",
        }
        for j, v, d, r, up in zip(cols.tolist(), values, shown, rounded, raises, strict=True)
    ]
    return _split(items, rows, len(panel))


def renewal_timing(panel: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's renewal date and days to it, from ``days_to_renewal``.

    The renewal date is ``as_of + days_to_renewal`` (the nearest end of a subscription
    term known at the as-of date). A panel without the feature, or a row where it is
    missing (no known term end), gives ``None`` and NaN.

    Returns
    -------
    tuple of numpy.ndarray
        ``renewal_date`` (object: :class:`datetime.date` or ``None``) and
        ``days_to_renewal`` (float64, NaN where missing), one element per row.
    """
    n = len(panel)
    if "days_to_renewal" not in panel.columns:
        return np.full(n, None, dtype=object), np.full(n, np.nan)
    days = panel["days_to_renewal"].to_numpy(dtype="float64", na_value=np.nan)
    known = np.isfinite(days)
    as_of = pd.to_datetime(panel["as_of"]).to_numpy(dtype="datetime64[D]")
    when = as_of + np.where(known, days, 0).astype("timedelta64[D]")
    dates = np.full(n, None, dtype=object)
    dates[known] = [d.item() for d in when[known]]
    return dates, days


def change_driver_items(
    before: pd.DataFrame,
    after: pd.DataFrame,
    names: Sequence[str],
    change: np.ndarray,
    *,
    top: int,
) -> list[list[dict[str, Any]]]:
    """Return each row's features whose contribution changed most, as JSON items.

    Parameters
    ----------
    before, after
        Feature panels of the same accounts in the same order, at the previous and at the
        current as-of date.
    names
        Feature name of each column of ``change``.
    change
        Contribution at ``after`` minus contribution at ``before`` (log-odds, same model),
        shape ``(rows, len(names))``.
    top
        Items per row.

    Returns
    -------
    list of list of dict
        Per row, largest absolute change first (ties in feature order):
        ``{"feature", "meaning", "before", "after", "before_display", "after_display",
        "contribution_change", "direction", "text"}``; ``direction`` is ``"raised"``
        when the change is positive (it raised the risk). Changes that round to zero at
        :data:`CONTRIBUTION_DECIMALS` are left out. A feature can move the score while
        its shown value stays put (trees combine features); its text then reads
        ``"<meaning>: still <value>, raised risk"``.
    """
    if top < 1:
        raise ConfigError(f"top must be >= 1, got {top}")
    rounded_all = np.round(change, CONTRIBUTION_DECIMALS)
    k = min(top, change.shape[1])
    order = np.argsort(-np.abs(change), axis=1, kind="stable")[:, :k]
    keep = np.take_along_axis(rounded_all, order, axis=1) != 0
    rows, slots = np.nonzero(keep)
    cols = order[rows, slots]
    was, was_shown = _cells(before, names, rows, cols)
    now, now_shown = _cells(after, names, rows, cols)
    delta = rounded_all[rows, cols].tolist()
    meanings = [get_feature(n).meaning for n in names]

    def text(meaning: str, a: str, b: str, direction: str) -> str:
        moved = f"{a} → {b}" if a != b else f"still {b}"
        return f"{meaning}: {moved}, {direction} risk"

    items = []
    for j, v0, v1, s0, s1, dc in zip(
        cols.tolist(), was, now, was_shown, now_shown, delta, strict=True
    ):
        direction = "raised" if dc > 0 else "lowered"
        items.append(
            {
                "feature": names[j],
                "meaning": meanings[j],
                "before": v0,
                "after": v1,
                "before_display": s0,
                "after_display": s1,
                "contribution_change": dc,
                "direction": direction,
                "text": text(meanings[j], s0, s1, direction),
            }
        )
    return _split(items, rows, len(after))


# ---------------------------------------------------------------------------------------
# the pure stages
# ---------------------------------------------------------------------------------------


def risk_tiers(probabilities: np.ndarray, config: ScoringConfig) -> np.ndarray:
    """Return the tier of each probability, as :meth:`ScoringConfig.tier_of` gives it."""
    p = np.asarray(probabilities, dtype="float64")
    conditions = [p >= threshold for threshold in config.tiers.values()]
    return np.select(conditions, list(config.tiers), default=config.low_tier).astype(object)


def _text_or_none(values: pd.Series[Any]) -> pd.Series[Any]:
    """Return a column as ``object`` values: ``str``, and ``None`` where missing."""
    raw = values.astype(object).to_numpy()
    missing = pd.isna(raw)
    out = np.array([str(v) for v in raw], dtype=object)
    out[missing] = None
    return pd.Series(out, dtype=object)


def account_attributes(ds: Dataset) -> pd.DataFrame:
    """Return the attribute fields of every account (``name``, ``owner``), by ``account_id``.

    The score fields declared from the accounts table (``source="attribute"`` in
    :mod:`churnrisk.scorerow`); optional contract columns: NULL where the source lacks them.
    """
    cols = ", ".join(quote(c) for c in ("account_id", *fields_of(source="attribute")))
    frame = ds.con.sql(f"SELECT {cols} FROM {quote('accounts')}").df()
    frame["account_id"] = frame["account_id"].astype("string")
    return frame.drop_duplicates("account_id").set_index("account_id")


def score_panel(
    panel: pd.DataFrame,
    models: ChurnRiskModels,
    *,
    config: ScoringConfig,
    attributes: pd.DataFrame | None = None,
    predictions: pd.DataFrame | None = None,
    previous: PreviousScores | None = None,
    previous_panel: pd.DataFrame | None = None,
    renewal: pd.Series[float] | None = None,
    step: Step = _quiet,
) -> pd.DataFrame:
    """Score and explain every row of a one-date feature panel.

    Parameters
    ----------
    panel
        Feature panel of one as-of date (:func:`~churnrisk.features.build_features`),
        one row per account.
    models
        The bundle to score with.
    config
        Tiers and the number of drivers.
    attributes
        ``name`` and ``owner`` by ``account_id`` (:func:`account_attributes`); missing
        accounts or columns give ``None``.
    predictions
        ``models.predict(panel)`` when already computed elsewhere (the Spark job takes
        them from the registered pyfunc models): ``churn_probability``, ``mrr``,
        ``revenue_12m`` and ``lifetime_clv``, one row per panel row in panel order.
    previous, previous_panel
        The previous run and the feature panel as of its date: when given, the changes
        are filled in by :func:`add_changes` (``config.change_drivers`` per account).
    renewal
        The MRR up for renewal by ``account_id``
        (:func:`~churnrisk.features.engine.renewal_mrr`); missing accounts, or no
        ``renewal``, give NaN.
    step
        Called with a short message as each stage starts.

    Returns
    -------
    pandas.DataFrame
        Exactly :data:`churnrisk.store.SCORE_COLUMNS`, one row per panel row in panel
        order: ``segment`` and ``plan`` are the account's values as of the date (the plan
        of its current subscription, else the one of the accounts table);
        ``mrr_at_risk = mrr x churn_probability``; without ``previous``,
        ``previous_probability`` and ``probability_change`` NaN and ``change_drivers``
        empty (see :func:`add_changes`).

    Raises
    ------
    DataError
        When an account appears twice in the panel, or ``predictions`` does not have one
        row per panel row.
    ConfigError
        When ``previous`` is given without ``previous_panel``.
    """
    if previous is not None and previous_panel is None:
        raise ConfigError("explaining the changes needs the previous run's feature panel")
    scores, contrib = _score(
        panel,
        models,
        config=config,
        attributes=attributes,
        predictions=predictions,
        renewal=renewal,
        step=step,
    )
    if previous is None or previous_panel is None:
        return scores
    return add_changes(
        scores,
        models,
        panel=panel,
        previous=previous,
        previous_panel=previous_panel,
        top=config.change_drivers,
        contributions=contrib,
        step=step,
    )


def _score(
    panel: pd.DataFrame,
    models: ChurnRiskModels,
    *,
    config: ScoringConfig,
    attributes: pd.DataFrame | None,
    step: Step,
    predictions: pd.DataFrame | None = None,
    renewal: pd.Series[float] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return :func:`score_panel`'s frame and the churn model's contributions on ``panel``."""
    ids = panel["account_id"].astype("string")
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise DataError(
            f"account {dup!r} appears more than once in the panel; score one as-of date"
        )
    n = len(panel)
    step(f"scoring {n:,} accounts")
    if predictions is None:
        pred = models.predict(panel)
    elif len(predictions) != n:
        raise DataError(f"{len(predictions):,} predictions for a panel of {n:,} rows")
    else:
        pred = predictions
    p = pred["churn_probability"].to_numpy(dtype="float64")
    mrr = pred["mrr"].to_numpy(dtype="float64")
    step("explaining each score (top drivers)")
    contrib = models.churn.contributions(panel)
    names = [c for c in contrib.columns if c != "bias"]
    values = contrib[names].to_numpy(dtype="float64")
    drivers = driver_items(panel, names, values, top=config.top_drivers)

    computed: dict[str, Any] = {
        "risk_tier": risk_tiers(p, config),
        "mrr_at_risk": mrr * p,
        "previous_probability": np.full(n, np.nan),
        "probability_change": np.full(n, np.nan),
        "drivers": _object_column(drivers),
        "change_drivers": _object_column([[] for _ in range(n)]),
        "renewal_date": renewal_timing(panel)[0],
        "renewal_mrr": (
            np.full(n, np.nan)
            if renewal is None
            else renewal.reindex(ids.to_numpy()).to_numpy(dtype="float64", na_value=np.nan)
        ),
        "context": _object_column(context_items(panel, names, values)),
    }
    out = pd.DataFrame(
        {f.name: _field_values(f, panel, ids, pred, attributes, computed) for f in SCORE_FIELDS}
    )
    return out[list(SCORE_COLUMNS)], contrib


def _field_values(
    field: ScoreField,
    panel: pd.DataFrame,
    ids: pd.Series[Any],
    predictions: pd.DataFrame,
    attributes: pd.DataFrame | None,
    computed: dict[str, Any],
) -> Any:
    """Return one score field's values for every panel row, from where it is declared.

    Texts are ``str`` or ``None``; numbers float64 with NaN where missing; a feature or
    an attribute the inputs lack is missing for every row.
    """
    n = len(panel)
    if field.source == "key":
        return ids.to_numpy(dtype=object)
    if field.source == "computed":
        if field.name not in computed:
            raise ConfigError(
                f"score field {field.name!r} is declared computed, but the scoring job"
                " computes no such value: compute it in churnrisk.scoring._score or declare"
                " it from a feature, a prediction or an attribute"
            )
        return computed[field.name]
    if field.source == "prediction":
        return predictions[field.name].to_numpy(dtype="float64")
    if field.source == "attribute":
        if attributes is None or field.name not in attributes.columns:
            column = None
        else:
            column = attributes[field.name].reindex(ids.to_numpy())
    else:
        column = panel.get(field.feature_column)
    if field.kind == "text":
        if column is None:
            return pd.Series(np.full(n, None, dtype=object), dtype=object)
        return _text_or_none(column)
    if field.kind in ("number", "whole"):
        if column is None:
            return np.full(n, np.nan)
        return pd.to_numeric(column).to_numpy(dtype="float64", na_value=np.nan)
    raise ConfigError(
        f"score field {field.name!r} of kind {field.kind!r} cannot come from a {field.source}:"
        " only texts and numbers do; declare it computed and compute it in the scoring job"
    )


def add_changes(
    scores: pd.DataFrame,
    models: ChurnRiskModels,
    *,
    panel: pd.DataFrame,
    previous: PreviousScores,
    previous_panel: pd.DataFrame,
    top: int,
    contributions: pd.DataFrame | None = None,
    step: Step = _quiet,
) -> pd.DataFrame:
    """Return ``scores`` with the change since the previous run filled in.

    ``previous_probability`` is the previous run's probability (NaN for an account not
    in it) and ``probability_change`` the current minus the previous one. For accounts
    in the previous run and on ``previous_panel``, ``change_drivers`` lists the ``top``
    features whose contribution to the churn log-odds changed most between the two
    panels, both scored with the current model. By TreeSHAP's additivity the changes of
    all features sum to the change in the model's raw log-odds, so the list explains
    the change coming from the account's data; a change of model between the two runs
    shows in the runs' versions, not here.

    Parameters
    ----------
    scores
        :func:`score_panel` output.
    models
        The bundle that scored ``scores``.
    panel
        The feature panel ``scores`` was computed from.
    previous
        The previous run's as-of date and probabilities.
    previous_panel
        The feature panel as of ``previous.as_of``, rebuilt point-in-time.
    top
        Change drivers per account.
    contributions
        ``models.churn.contributions(panel)`` when already computed (row order of
        ``panel``).
    step
        Called with a short message as the stage starts.

    Raises
    ------
    DataError
        When the previous probabilities name an account twice, or ``scores`` holds an
        account that ``panel`` does not.
    """
    probs = previous.probabilities
    if probs.index.has_duplicates:
        dup = probs.index[probs.index.duplicated()][0]
        raise DataError(f"the previous run holds account {dup!r} twice; it cannot be compared")
    step(f"explaining the changes since the previous run (as of {previous.as_of})")
    ids = pd.Index(scores["account_id"].astype("string"))
    before_p = probs.astype("float64").reindex(ids).to_numpy()
    out = scores.copy()
    out["previous_probability"] = before_p
    out["probability_change"] = out["churn_probability"].to_numpy(dtype="float64") - before_p

    panel_ids = pd.Index(panel["account_id"].astype("string"))
    prev_ids = pd.Index(previous_panel["account_id"].astype("string"))
    in_both = np.flatnonzero(~np.isnan(before_p) & (prev_ids.get_indexer(ids) >= 0))
    if len(in_both) == 0:  # LightGBM cannot predict zero rows
        return out
    now_rows = panel_ids.get_indexer(ids[in_both])
    if (now_rows < 0).any():
        missing = ids[in_both][now_rows < 0][0]
        raise DataError(f"account {missing!r} is scored but not on the panel it was scored from")
    was_rows = prev_ids.get_indexer(ids[in_both])
    after = panel.iloc[now_rows]
    before = previous_panel.iloc[was_rows]
    if contributions is None:
        c_after = models.churn.contributions(after)
    else:
        c_after = contributions.iloc[now_rows]
    c_before = models.churn.contributions(before)
    names = [c for c in c_after.columns if c != "bias"]
    change = c_after[names].to_numpy(dtype="float64") - c_before[names].to_numpy(dtype="float64")
    items = change_driver_items(before, after, names, change, top=top)
    column: list[list[dict[str, Any]]] = [[] for _ in range(len(out))]
    for row, found in zip(in_both.tolist(), items, strict=True):
        column[row] = found
    out["change_drivers"] = _object_column(column)
    return out


def score_accounts(
    ds: Dataset,
    models: ChurnRiskModels,
    *,
    as_of: date,
    config: ScoringConfig,
    previous: PreviousScores | None = None,
    step: Step = _quiet,
) -> pd.DataFrame:
    """Score every account active on the day before ``as_of``, with drivers and changes.

    Parameters
    ----------
    ds
        The validated data set.
    models
        The bundle to score with (the champion).
    as_of
        The as-of date: features see data strictly before it.
    config
        Tiers and driver counts.
    previous
        The previous run to compare with; its as-of date's features are rebuilt
        point-in-time from ``ds`` (data before that date only).
    step
        Called with a short message as each stage starts.

    Returns
    -------
    pandas.DataFrame
        Exactly :data:`churnrisk.store.SCORE_COLUMNS`, one row per active account,
        ordered by ``account_id`` (see :func:`score_panel` and :func:`add_changes`).

    Raises
    ------
    ConfigError
        When no account is active on the day before ``as_of``.
    """
    dates = sorted({as_of} if previous is None else {as_of, previous.as_of})
    also = f" and {previous.as_of} (the previous run)" if len(dates) > 1 and previous else ""
    step(f"building features as of {as_of}{also}")
    # one query for both dates: each row still sees only the data before its own date
    both = build_features(ds, dates, features=panel_features(models.vocabulary))
    panel = _on(both, as_of)
    if panel.empty:
        raise ConfigError(
            f"{ds.source}: no account is active on {as_of - timedelta(days=1)}, the day"
            f" before the as-of date {as_of}; pick an as-of date inside the data"
        )
    return score_panel(
        panel,
        models,
        config=config,
        attributes=account_attributes(ds),
        previous=previous,
        previous_panel=None if previous is None else _on(both, previous.as_of),
        renewal=renewal_mrr(ds, as_of),
        step=step,
    )


def _on(panel: pd.DataFrame, day: date) -> pd.DataFrame:
    """Return the rows of ``panel`` as of ``day``, with a fresh index."""
    return panel.loc[panel["as_of"] == pd.Timestamp(day)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------


def run_scoring(
    ds: Dataset,
    models: ChurnRiskModels,
    store: ScoreStore,
    *,
    as_of: date | None,
    config: ScoringConfig,
    versions: ModelVersions,
    source: str,
    step: Step = _quiet,
    scorer: Scorer | None = None,
) -> RunRecord:
    """Score a data set and write the run to the score store in one transaction.

    1. The as-of date defaults to the end of observation
       (:func:`~churnrisk.dataset.observation_end`, the day after the latest data).
    2. The previous run is the newest run of the latest as-of date before ``as_of``
       (:meth:`ScoreStore.previous_run`); its probabilities are read back to compute
       the changes. A run of the same date is never the previous run: scoring a date
       again (a retry, a nightly run with no new data) replaces that date's scores and
       keeps the change since the date before.
    3. :func:`score_accounts`, then :meth:`ScoreStore.write_run`: the run row and every
       score row are written whole or not at all, so a failure leaves the previous run
       current.

    Parameters
    ----------
    ds
        The validated data set.
    models
        The champion bundle.
    store
        The score store (schema upgraded).
    as_of
        The as-of date, or ``None`` for the end of observation.
    config
        Tiers and driver counts.
    versions
        The bundle's registered versions and MLflow run.
    source
        What was scored (the data path), kept with the run.
    step
        Called with a short message as each stage starts.
    scorer
        What scores the accounts (default :func:`score_accounts` on ``ds`` with
        ``models``); the Spark engine passes its own
        (:func:`churnrisk.scoring_spark.spark_scorer`), which returns the same rows.

    Returns
    -------
    RunRecord
        The run as written.

    Raises
    ------
    ConfigError
        When ``as_of`` lies after the end of observation, or no account is active on the
        day before it.
    """
    from churnrisk.store import RunRecord

    end = observation_end(ds)
    day = as_of or end
    if day > end:
        raise ConfigError(
            f"--as-of {day} is after the end of the data ({ds.source} is observed until"
            f" {end - timedelta(days=1)}): features would read the unobserved days as"
            f" inactivity; score as of {end} or earlier"
        )
    now = datetime.now(UTC)
    before = store.previous_run(day)
    previous = None
    if before is not None:
        step(f"reading the previous run {before.run_id} (as of {before.as_of})")
        prev = store.run_scores(before.run_id, columns=["account_id", "churn_probability"])
        probabilities = pd.Series(
            prev["churn_probability"].to_numpy(dtype="float64"),
            index=pd.Index(prev["account_id"].astype("string")),
        )
        previous = PreviousScores(as_of=before.as_of, probabilities=probabilities)
    if scorer is None:
        scores = score_accounts(ds, models, as_of=day, config=config, previous=previous, step=step)
    else:
        scores = scorer(day, previous, step)
    run = RunRecord(
        run_id=uuid.uuid4().hex,
        as_of=day,
        scored_at=now,
        churn_version=versions.churn,
        clv_version=versions.clv,
        model_run_id=versions.run_id,
        accounts=len(scores),
        tiers=dict(config.tiers),
        low_tier=config.low_tier,
        previous_run_id=before.run_id if before is not None else None,
        source=source,
    )
    step(f"writing {len(scores):,} scores to the score store")
    store.write_run(run, scores)
    return run
