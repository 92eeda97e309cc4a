"""The fitted churn and CLV models with their metadata, saved without pickle.

A saved bundle is a folder:

``churn.txt``, ``clv.txt``
    The LightGBM boosters in LightGBM's own text format (``churn.txt`` only when the
    chosen churn candidate holds a booster: not for the logistic regression).
``bundle.json``
    Format version, run configuration, feature names, training window, backtest, and
    each model's metadata (the churn candidate's ``kind``, feature frame with
    categories, calibration thresholds or sigmoid coefficients, best iteration or
    regression coefficients).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from churnrisk.config import RunConfig
from churnrisk.errors import DataError
from churnrisk.models.candidates import (
    CANDIDATE_KINDS,
    Candidate,
    candidate_from_state,
    fit_candidates,
)
from churnrisk.models.churn import split_later
from churnrisk.models.clv import ClvModel, lifetime_clv
from churnrisk.models.frame import KEY_COLUMNS
from churnrisk.models.slices import time_slices

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
        12-month revenue model.
    config
        The resolved run configuration they were trained with.
    feature_names
        Feature columns, in model order.
    trained_as_of
        First and last as-of date of the training rows (calibration included).
    backtest
        The backtest's :meth:`~churnrisk.models.backtest.BacktestResult.to_dict`, if run.
    """

    churn: Candidate
    clv: ClvModel
    config: RunConfig
    feature_names: list[str]
    trained_as_of: tuple[date, date]
    backtest: dict[str, Any] | None = None

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        """Score a feature panel.

        Returns
        -------
        pandas.DataFrame
            ``account_id``, ``as_of``, ``churn_probability`` (within the label horizon),
            ``revenue_12m`` (predicted revenue over the next 12 months), ``lifetime_clv``
            (:func:`~churnrisk.models.clv.lifetime_clv` from MRR and the probability) and
            ``mrr``, one row per panel row, in panel order.
        """
        p = self.churn.predict_proba(panel)
        mrr = panel["mrr"].astype("float64").fillna(0.0).to_numpy()
        life = lifetime_clv(
            mrr,
            p,
            horizon_days=self.config.labels.horizon_days,
            margin=self.config.clv.margin,
            annual_discount_rate=self.config.clv.annual_discount_rate,
        )
        return pd.DataFrame(
            {
                "account_id": panel["account_id"].to_numpy(),
                "as_of": panel["as_of"].to_numpy(),
                "churn_probability": p,
                "revenue_12m": self.clv.predict(panel),
                "lifetime_clv": life,
                "mrr": mrr,
            }
        )

    def input_example(self, panel: pd.DataFrame, n: int = 5) -> pd.DataFrame:
        """Return the first ``n`` rows of ``panel`` as the models take them.

        Keys and features only, in model order (labels dropped), for signatures and
        MLflow input examples.
        """
        return panel[[*KEY_COLUMNS, *self.feature_names]].head(n).reset_index(drop=True)

    def save(self, folder: Path) -> Path:
        """Write the bundle to ``folder`` (created if missing); return the folder."""
        folder.mkdir(parents=True, exist_ok=True)
        churn, clv = self.churn.to_state(), self.clv.to_state()
        if churn["booster"]:
            (folder / "churn.txt").write_text(churn["booster"], encoding="utf-8")
        (folder / "clv.txt").write_text(clv["booster"], encoding="utf-8")
        meta = {
            "format_version": FORMAT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "feature_names": self.feature_names,
            "trained_as_of": [d.isoformat() for d in self.trained_as_of],
            "backtest": self.backtest,
            "churn": {**churn["meta"], "kind": churn["kind"]},
            "clv": clv["meta"],
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
            clv_txt = (folder / "clv.txt").read_text(encoding="utf-8")
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read a model bundle in {folder}: {err}") from err
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{folder}: bundle format {meta.get('format_version')!r} is not"
                f" {FORMAT_VERSION}; retrain with this version of churnrisk"
            )
        first, last = (date.fromisoformat(d) for d in meta["trained_as_of"])
        return cls(
            churn=candidate_from_state(
                {
                    "kind": meta["churn"].get("kind", "lightgbm"),
                    "booster": churn_txt,
                    "meta": meta["churn"],
                }
            ),
            clv=ClvModel.from_state({"booster": clv_txt, "meta": meta["clv"]}),
            config=RunConfig.model_validate(meta["config"]),
            feature_names=list(meta["feature_names"]),
            trained_as_of=(first, last),
            backtest=meta["backtest"],
        )


def train_models(
    panel: pd.DataFrame,
    config: RunConfig,
    *,
    backtest: dict[str, Any] | None = None,
    kind: str | None = None,
) -> ChurnRiskModels:
    """Fit the churn and CLV models on every labelled row of ``panel``.

    The churn model is the candidate ``kind``; default the one the backtest chose
    (``backtest["churn"]["chosen"]``), else LightGBM when it is a candidate, else the
    first of ``config.candidates.kinds``. It trains on the label-closed rows except the
    latest ``config.churn.holdout_dates`` as-of dates, which stop it early and calibrate it; the
    CLV model trains on the revenue-labelled rows except the latest
    ``config.clv.valid_dates``, which stop it early. The same panel and seed give the
    same models.

    Parameters
    ----------
    panel
        A labelled feature panel.
    config
        The run configuration (its ``seed`` seeds both models).
    backtest
        A backtest result to keep with the models.
    kind
        The churn candidate to fit (see above).

    Raises
    ------
    DataError
        When the panel has too few labelled as-of dates.
    """
    if "churned" not in panel.columns or "revenue_next_12m" not in panel.columns:
        raise DataError("training needs a labelled panel (build_features with labels)")
    closed = panel.loc[panel["churned"].notna()]
    s = time_slices(closed, config.churn.holdout_dates)
    churn = fit_candidates(
        s,
        config=config.churn,
        candidates=config.candidates,
        random_state=config.seed,
        kinds=(_churn_kind(config, backtest, kind),),
    ).popitem()[1]
    revenue = panel.loc[panel["revenue_next_12m"].notna()]
    c_train, c_valid = split_later(revenue, config.clv.valid_dates)
    clv = ClvModel(
        config.clv, random_state=config.seed, offset_months=config.labels.revenue_months
    ).fit(c_train, valid=c_valid)
    first = min(closed["as_of"].min(), revenue["as_of"].min())
    last = max(closed["as_of"].max(), revenue["as_of"].max())
    return ChurnRiskModels(
        churn=churn,
        clv=clv,
        config=config,
        feature_names=list(churn.frame_.feature_names_),
        trained_as_of=(pd.Timestamp(first).date(), pd.Timestamp(last).date()),
        backtest=backtest,
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
