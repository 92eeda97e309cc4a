"""The fitted churn and CLV models with their metadata, saved without pickle.

A saved bundle is a folder:

``churn.txt``, ``clv.txt``
    The LightGBM boosters in LightGBM's own text format (``churn.txt`` only when the
    chosen churn candidate holds a booster, not for the logistic regression; ``clv.txt``
    only when a revenue model was trained: data too short for the revenue label has none).
``bundle.json``
    Format version, run configuration, feature names, the vocabulary its vocabulary
    features count (:mod:`churnrisk.features.vocabulary`), training window, backtest, and
    each model's metadata (the churn candidate's ``kind``, feature frame with
    categories, calibration map, best iteration or regression coefficients), and the
    training distribution of each numeric feature for drift
    (:class:`~churnrisk.models.drift.Bins`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnrisk.config import RunConfig
from churnrisk.errors import DataError
from churnrisk.features.vocabulary import Vocabulary, vocabulary_features
from churnrisk.models.candidates import (
    CANDIDATE_KINDS,
    Candidate,
    candidate_from_state,
    fit_candidates,
)
from churnrisk.models.churn import split_later
from churnrisk.models.clv import ClvModel, lifetime_clv, survival_revenue
from churnrisk.models.drift import Bins, reference_bins
from churnrisk.models.frame import KEY_COLUMNS
from churnrisk.models.plan import fit_slices

FORMAT_VERSION = 1
PREDICTION_COLUMNS: tuple[str, ...] = (
    "account_id",
    "as_of",
    "churn_probability",
    "revenue_12m",
    "lifetime_clv",
    "mrr",
)


@dataclass
class ChurnRiskModels:
    """The fitted churn and CLV models, their configuration and training window.

    Attributes
    ----------
    churn
        The calibrated churn model: the candidate the backtest chose
        (:mod:`churnrisk.models.candidates`).
    clv
        Revenue model of the next ``revenue_months`` months, or ``None`` when the data
        was too short for its label: ``revenue_12m`` then comes from the survival view
        (:func:`~churnrisk.models.clv.survival_revenue`).
    config
        The resolved run configuration they were trained with.
    feature_names
        Feature columns, in model order.
    trained_as_of
        First and last as-of date of the training rows (calibration included).
    backtest
        The backtest's :meth:`~churnrisk.models.backtest.BacktestResult.to_dict`, if run.
    vocabulary
        The event types and priorities its vocabulary features count; scoring builds
        features with it (``panel_features(models.vocabulary)``). ``None``: none.
    drift
        Each numeric feature's distribution over the churn model's training rows, the
        reference of :func:`~churnrisk.models.drift.feature_drift`; empty for a bundle
        saved before it was kept.
    """

    churn: Candidate
    clv: ClvModel | None
    config: RunConfig
    feature_names: list[str]
    trained_as_of: tuple[date, date]
    backtest: dict[str, Any] | None = None
    vocabulary: Vocabulary | None = None
    drift: dict[str, Bins] = field(default_factory=dict)

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Score a feature panel.

        Returns
        -------
        pandas.DataFrame
            ``account_id``, ``as_of``, ``churn_probability`` (within the label horizon),
            ``revenue_12m``, ``lifetime_clv`` and ``mrr`` as :meth:`value` gives them,
            one row per panel row, in panel order.
        """
        p = self.churn.predict_proba(panel)
        return pd.DataFrame(
            {
                "account_id": panel["account_id"].to_numpy(),
                "as_of": panel["as_of"].to_numpy(),
                "churn_probability": p,
                **self.value(panel, p),
            }
        )

    def value(self, panel: pd.DataFrame, p_churn: np.ndarray) -> dict[str, np.ndarray]:
        """Return the window's revenue, lifetime value and MRR of each panel row.

        One view of survival and MRR: ``revenue_12m`` is the revenue model's prediction
        over the next ``revenue_months`` months, or, without a revenue model, MRR x
        expected months retained (:func:`~churnrisk.models.clv.survival_revenue`);
        ``lifetime_clv`` is :func:`~churnrisk.models.clv.lifetime_clv` of that revenue
        and ``p_churn``, so it is never below the discounted margin of ``revenue_12m``.

        Parameters
        ----------
        panel
            Feature rows (``mrr`` and the revenue model's features).
        p_churn
            The churn model's probability of each row.

        Returns
        -------
        dict of numpy.ndarray
            ``revenue_12m``, ``lifetime_clv`` and ``mrr`` (missing MRR: 0).
        """
        labels = self.config.labels
        mrr = panel["mrr"].astype("float64").fillna(0.0).to_numpy()
        revenue = (
            self.clv.predict(panel)
            if self.clv is not None
            else survival_revenue(
                mrr, p_churn, horizon_days=labels.horizon_days, months=labels.revenue_months
            )
        )
        life = lifetime_clv(
            revenue,
            p_churn,
            horizon_days=labels.horizon_days,
            revenue_months=labels.revenue_months,
            margin=self.config.clv.margin,
            annual_discount_rate=self.config.clv.annual_discount_rate,
        )
        return {"revenue_12m": revenue, "lifetime_clv": life, "mrr": mrr}

    def input_example(self, panel: pd.DataFrame, n: int = 5) -> pd.DataFrame:
        """Return the first ``n`` rows of ``panel`` as the models take them.

        Keys and features only, in model order (labels dropped), for signatures and
        MLflow input examples.
        """
        return panel[[*KEY_COLUMNS, *self.feature_names]].head(n).reset_index(drop=True)

    def save(self, folder: Path) -> Path:
        """Write the bundle to ``folder`` (created if missing); return the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        churn = self.churn.to_state()
        clv = self.clv.to_state() if self.clv is not None else None
        if churn["booster"]:
            (folder / "churn.txt").write_text(churn["booster"], encoding="utf-8")
        else:
            (folder / "churn.txt").unlink(missing_ok=True)
        if clv is not None:
            (folder / "clv.txt").write_text(clv["booster"], encoding="utf-8")
        else:
            (folder / "clv.txt").unlink(missing_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "feature_names": self.feature_names,
            "trained_as_of": [d.isoformat() for d in self.trained_as_of],
            "backtest": self.backtest,
            "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict(),
            "churn": {**churn["meta"], "kind": churn["kind"]},
            "clv": clv["meta"] if clv is not None else None,
            "drift": {name: bins.to_dict() for name, bins in self.drift.items()},
        }
        (folder / "bundle.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path) -> ChurnRiskModels:
        """Read a bundle written by :meth:`save`.

        Raises
        ------
        DataError
            When a file is missing or the format version is unknown.
        """
        try:
            meta = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
            churn_file = folder / "churn.txt"
            churn_txt = churn_file.read_text(encoding="utf-8") if churn_file.exists() else ""
            clv_txt = (
                (folder / "clv.txt").read_text(encoding="utf-8")
                if meta.get("clv") is not None
                else None
            )
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read a model bundle in {folder}: {err}") from err
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{folder}: bundle format {meta.get('format_version')!r} is not"
                f" {FORMAT_VERSION}; retrain with this version of churnrisk"
            )
        first, last = (date.fromisoformat(d) for d in meta["trained_as_of"])
        vocabulary = meta.get("vocabulary")
        vocabulary = None if vocabulary is None else Vocabulary.from_dict(vocabulary)
        vocabulary_features(vocabulary)  # declares them, for explanations
        return cls(
            churn=candidate_from_state(
                {
                    "kind": meta["churn"].get("kind", "lightgbm"),
                    "booster": churn_txt,
                    "meta": meta["churn"],
                }
            ),
            clv=(
                ClvModel.from_state({"booster": clv_txt, "meta": meta["clv"]})
                if clv_txt is not None
                else None
            ),
            config=RunConfig.model_validate(meta["config"]),
            feature_names=list(meta["feature_names"]),
            trained_as_of=(first, last),
            backtest=meta["backtest"],
            vocabulary=vocabulary,
            drift={name: Bins.from_dict(b) for name, b in (meta.get("drift") or {}).items()},
        )


def revenue_dates(panel: pd.DataFrame) -> int:
    """Return how many as-of dates of ``panel`` carry a closed revenue label."""
    return int(panel.loc[panel["revenue_next_12m"].notna(), "as_of"].nunique())


def can_train_clv(panel: pd.DataFrame, config: RunConfig) -> bool:
    """Whether ``panel`` holds enough revenue-labelled as-of dates for a revenue model.

    It needs more than ``config.clv.valid_dates`` of them: the latest stop the booster
    early, the earlier ones train it.
    """
    return revenue_dates(panel) > config.clv.valid_dates


def train_models(
    panel: pd.DataFrame,
    config: RunConfig,
    *,
    backtest: dict[str, Any] | None = None,
    vocabulary: Vocabulary | None = None,
    kind: str | None = None,
) -> ChurnRiskModels:
    """Fit the churn and CLV models on every labelled row of ``panel``.

    The churn model is the candidate ``kind``; default the one the backtest chose
    (``backtest["churn"]["chosen"]``), else LightGBM when it is a candidate, else the
    first of ``config.candidates.kinds``. It trains, stops early and calibrates on slices
    of the label-closed rows cut by :func:`~churnrisk.models.plan.fit_slices` (by time:
    the latest as-of dates held out; or by account); the
    CLV model trains on the revenue-labelled rows except the latest
    ``config.clv.valid_dates``, which stop it early. When the panel is too short for
    that (:func:`can_train_clv`: the revenue label has not closed on enough as-of
    dates), the bundle has no CLV model and its revenue comes from the survival view.
    The same panel and seed give the same models.

    Parameters
    ----------
    panel
        A labelled feature panel.
    config
        The run configuration (its ``seed`` seeds both models).
    backtest
        A backtest result to keep with the models.
    vocabulary
        The vocabulary the panel was built with (default ``panel.attrs["vocabulary"]``,
        where :func:`churnrisk.pipeline.training_panel` leaves it).
    kind
        The churn candidate to fit (see above).

    Raises
    ------
    DataError
        When the panel has too few label-closed as-of dates for the churn model.
    """
    if "churned" not in panel.columns or "revenue_next_12m" not in panel.columns:
        raise DataError("training needs a labelled panel (build_features with labels)")
    closed = panel.loc[panel["churned"].notna()]
    s = fit_slices(closed, config)
    churn = fit_candidates(
        s,
        config=config.churn,
        candidates=config.candidates,
        random_state=config.seed,
        kinds=(_churn_kind(config, backtest, kind),),
    ).popitem()[1]
    revenue = panel.loc[panel["revenue_next_12m"].notna()]
    clv = None
    if can_train_clv(panel, config):
        c_train, c_valid = split_later(revenue, config.clv.valid_dates)
        clv = ClvModel(
            config.clv, random_state=config.seed, offset_months=config.labels.revenue_months
        ).fit(c_train, valid=c_valid)
    used = pd.concat([closed["as_of"], revenue["as_of"]]) if clv is not None else closed["as_of"]
    return ChurnRiskModels(
        churn=churn,
        clv=clv,
        config=config,
        feature_names=list(churn.frame_.feature_names_),
        trained_as_of=(pd.Timestamp(used.min()).date(), pd.Timestamp(used.max()).date()),
        backtest=backtest,
        vocabulary=vocabulary if vocabulary is not None else panel.attrs.get("vocabulary"),
        drift=reference_bins(closed, churn.frame_.feature_names_),
    )


def _churn_kind(config: RunConfig, backtest: dict[str, Any] | None, kind: str | None) -> str:
    if kind is None and backtest is not None:
        kind = backtest.get("churn", {}).get("chosen")
    if kind is None:
        kinds = config.candidates.kinds
        kind = "lightgbm" if "lightgbm" in kinds else kinds[0]
    if kind not in CANDIDATE_KINDS:
        raise DataError(
            f"unknown churn candidate {kind!r}; use one of {', '.join(CANDIDATE_KINDS)}"
        )
    return kind
