"""The champion gate's policy: which backtest metrics a new model must hold, and against what.

Pure functions of flat backtest metrics (no mlflow, no registry): the registry's
:meth:`~churnrisk.tracking.registry.Registry.promote` applies them and moves aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher", "lower"]

METRIC_DIRECTION: dict[str, Direction] = {
    "roc_auc": "higher",
    "pr_auc": "higher",
    "lift_top_decile": "higher",
    "recall_at_k": "higher",
    "precision_at_k": "higher",
    "mrr_recall_at_k": "higher",
    "spearman": "higher",
    "brier": "lower",
    "ece": "lower",
    "mae": "lower",
    "rmse": "lower",
}
"""Whether a larger value of a backtest metric is better, by metric name."""


_EPS = 1e-12  # a value exactly at the tolerance passes despite float rounding


@dataclass(frozen=True)
class GateDecision:
    """What the promotion gate decided and why.

    Attributes
    ----------
    promoted
        Whether the new versions now hold the ``champion`` alias.
    reason
        One line naming the deciding metric and both values, ``"forced"``, ``"the first
        model: no earlier champion to compare with"``, or why the backtests are not
        comparable. It reads after "version N is champion" / "is challenger".
    champion_before
        The churn model version that held ``champion`` before, or ``None``.
    comparable
        ``False`` when the champion's recorded backtest used other data or another
        backtest configuration: no alias moved; re-run the champion's configuration on
        this data (:meth:`Tracker.champion_info`) and pass ``champion_metrics``.
    """

    promoted: bool
    reason: str
    champion_before: str | None
    comparable: bool = True


def _gate_key(name: str) -> str:
    return name if "." in name else f"churn.model.{name}"


def gate_verdict(
    new: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    metrics: Sequence[str],
    tolerance: float,
) -> tuple[bool, str]:
    """Decide whether a new backtest is not worse than the champion's.

    A metric passes when ``new >= champion - tolerance`` if higher is better and
    ``new <= champion + tolerance`` if lower is better (:data:`METRIC_DIRECTION`).

    Parameters
    ----------
    new, champion
        Flat overall backtest metrics of the same backtest (:func:`flatten_metrics`).
    metrics
        Gated metrics: churn model metric names (``"pr_auc"``) or flat keys
        (``"clv.model.mae"``), in the order the reason lists them.
    tolerance
        How far the new model may fall behind on each metric.

    Returns
    -------
    tuple of (bool, str)
        Whether every metric passes, and the reason: the failing comparisons (e.g.
        ``"pr_auc 0.412 < champion 0.430 - 0.005"``) or, when all pass, all of them,
        joined by ``"; "``.
    """
    failures: list[str] = []
    passes: list[str] = []
    for name in metrics:
        key = _gate_key(name)
        new_v, old_v = float(new[key]), float(champion[key])
        if METRIC_DIRECTION.get(key.rsplit(".", 1)[-1], "higher") == "higher":
            ok = new_v >= old_v - tolerance - _EPS
            text = f"{name} {new_v:.3f} {'>=' if ok else '<'} champion {old_v:.3f} - {tolerance:g}"
        else:
            ok = new_v <= old_v + tolerance + _EPS
            text = f"{name} {new_v:.3f} {'<=' if ok else '>'} champion {old_v:.3f} + {tolerance:g}"
        (passes if ok else failures).append(text)
    return (False, "; ".join(failures)) if failures else (True, "; ".join(passes))


def degenerate_reason(backtest: Mapping[str, Any], *, min_distinct: int) -> str | None:
    """Say why a backtested churn model is degenerate, or return ``None``.

    Degenerate: the chosen candidate (``churn.chosen``) gave fewer than ``min_distinct``
    distinct probabilities on the backtest's pooled test rows
    (``churn.candidates.<chosen>.distinct_probabilities``): a one-leaf booster, a
    constant, or a handful of scores that cannot rank accounts. A backtest without that
    record (flat metrics, or one run before candidates existed) is not judged here.
    """
    churn = backtest.get("churn")
    if not isinstance(churn, Mapping) or "chosen" not in churn:
        return None
    chosen = str(churn["chosen"])
    distinct = churn.get("candidates", {}).get(chosen, {}).get("distinct_probabilities")
    if distinct is None or int(distinct) >= min_distinct:
        return None
    return (
        f"degenerate: the {chosen} model gave {int(distinct)} distinct probabilities on the"
        f" backtest's test rows, fewer than gate.min_distinct {min_distinct}; it is never"
        " promoted, not even with --force: give it more accounts or history, or a smaller"
        " churn.min_child_samples"
    )


def behind_baseline(
    new: Mapping[str, float], *, metrics: Sequence[str], tolerance: float
) -> str | None:
    """Say where a model's backtest is behind the logistic baseline's, or return ``None``.

    A gated metric fails when ``churn.model.<m> < churn.baselines.logistic.<m> -
    tolerance``; a metric missing on either side is not compared.
    """
    failures = []
    for name in metrics:
        ours = new.get(f"churn.model.{name}")
        theirs = new.get(f"churn.baselines.logistic.{name}")
        if ours is None or theirs is None:
            continue
        if ours < theirs - tolerance - _EPS:
            failures.append(f"{name} {ours:.3f} < logistic baseline {theirs:.3f} - {tolerance:g}")
    return f"behind the baseline: {'; '.join(failures)}" if failures else None
