"""Fit slices: the rows a churn model learns from, stops early on and calibrates on.

A churn model is fitted on three disjoint sets of label-closed panel rows:

``train``
    the rows the booster (or the regression) learns from;
``stop``
    the rows that choose the number of boosting rounds (and any other setting picked by
    looking at held-out rows);
``calibrate``
    the rows that fit the map from raw scores to probabilities.

No row is in two slices, so no calibration is fitted on rows the model learned from and
the rows that chose the number of trees do not fit the calibration map either. Every
slice of a backtest fold comes from rows whose labels had closed before the fold's first
test date; how they are cut from those rows (by time, the later dates held out, or by
account) is the plan's choice (:mod:`churnrisk.models.backtest`), not the model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from churnrisk.errors import DataError

KEY: tuple[str, str] = ("account_id", "as_of")


@dataclass(frozen=True)
class FitSlices:
    """Three disjoint sets of label-closed rows (see the module docstring).

    Attributes
    ----------
    train, stop, calibrate
        Panel rows; no ``(account_id, as_of)`` pair is in two of them.
    how
        ``"time"`` when ``stop`` and ``calibrate`` are later as-of dates than ``train``
        (``stop`` before ``calibrate``); ``"accounts"`` when they are other accounts on
        the same dates.
    """

    train: pd.DataFrame
    stop: pd.DataFrame
    calibrate: pd.DataFrame
    how: Literal["time", "accounts"] = "time"

    def __post_init__(self) -> None:
        for name in ("train", "stop", "calibrate"):
            if len(getattr(self, name)) == 0:
                raise DataError(f"the {name} slice holds no row; every fit slice needs rows")
        keys = [_keys(s) for s in (self.train, self.stop, self.calibrate)]
        shared = len(keys[0] & keys[1]) + len(keys[0] & keys[2]) + len(keys[1] & keys[2])
        if shared:
            raise DataError(
                f"the fit slices share {shared} (account, as-of) rows; train, stop and"
                " calibrate must be disjoint"
            )

    @property
    def rows(self) -> pd.DataFrame:
        """Every row of the three slices (train, stop, calibrate, in that order)."""
        return pd.concat([self.train, self.stop, self.calibrate])


def _keys(rows: pd.DataFrame) -> set[tuple[object, object]]:
    return set(zip(rows["account_id"], rows["as_of"], strict=True))


def time_slices(rows: pd.DataFrame, holdout_dates: int) -> FitSlices:
    """Cut rows by time: the latest ``holdout_dates`` as-of dates are held out.

    The earlier half of the held-out dates stops the boosting, the later half
    calibrates; everything before them trains.

    Raises
    ------
    DataError
        When the rows have ``holdout_dates`` as-of dates or fewer, or fewer than 2 are
        held out.
    """
    if holdout_dates < 2:
        raise DataError(
            f"holding out {holdout_dates} as-of date(s) leaves none to calibrate on;"
            " hold out at least 2 (one to stop early, one to calibrate)"
        )
    dates = np.sort(rows["as_of"].unique())
    if len(dates) <= holdout_dates:
        raise DataError(
            f"need more than {holdout_dates} as-of dates to hold out the last"
            f" {holdout_dates}, the rows have {len(dates)}"
        )
    held = dates[len(dates) - holdout_dates :]
    cut = held[len(held) // 2]
    return FitSlices(
        train=rows.loc[rows["as_of"] < held[0]],
        stop=rows.loc[(rows["as_of"] >= held[0]) & (rows["as_of"] < cut)],
        calibrate=rows.loc[rows["as_of"] >= cut],
        how="time",
    )
