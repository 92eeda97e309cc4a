"""The model registry: the registered models, their versions and the aliases the gate moves.

:meth:`Registry.promote` moves the ``champion`` alias of both registered models to the
new versions only when the new backtest is not worse than the champion's on the same
backtest (same data fingerprint and backtest configuration) within the gate's
tolerance (:mod:`churnrisk.tracking.gate`); otherwise the new versions get
``challenger``. Aliases only, never the deprecated stages. Every call goes through the
backend's client: nothing here touches mlflow's process-wide state.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from churnrisk.config import GateConfig
from churnrisk.errors import ConfigError
from churnrisk.tracking.backend import TrackingBackend
from churnrisk.tracking.gate import (
    GateDecision,
    _gate_key,
    behind_baseline,
    degenerate_reason,
    gate_verdict,
)
from churnrisk.tracking.records import (
    TAG_BACKTEST,
    TAG_FINGERPRINT,
    TAG_GATE,
    _differences,
    flatten_metrics,
)

CHURN_MODEL = "churnrisk-churn"
"""Registered model of the churn classifier (its pyfunc returns churn probabilities)."""

CLV_MODEL = "churnrisk-clv"
"""Registered model of the CLV regressor (its pyfunc returns the CLV frame)."""

CHAMPION = "champion"
CHALLENGER = "challenger"

PYFUNC_OUTPUTS: dict[str, tuple[str, ...]] = {
    "churn": ("account_id", "as_of", "churn_probability"),
    "clv": ("account_id", "as_of", "revenue_12m", "lifetime_clv", "mrr"),
}
"""Columns each pyfunc model returns, keyed ``(account_id, as_of)``."""

_REGISTERED = {"churn": CHURN_MODEL, "clv": CLV_MODEL}
_DESCRIPTIONS = {
    CHURN_MODEL: "churnrisk calibrated churn probability within the label horizon,"
    " keyed (account_id, as_of)",
    CLV_MODEL: "churnrisk 12-month revenue and lifetime CLV, keyed (account_id, as_of)",
}


@dataclass(frozen=True)
class ModelVersions:
    """The registered versions of one trained bundle and the run that logged them."""

    churn: str
    clv: str
    run_id: str


@dataclass(frozen=True)
class ChampionInfo:
    """The current champion and what its run recorded.

    Attributes
    ----------
    versions
        Its churn and CLV versions and the run that logged them.
    config
        Its resolved run configuration (``RunConfig.model_validate(info.config)``).
    fingerprint
        Fingerprint of the data it was trained and backtested on.
    backtest_key
        The label and backtest settings of its backtest (:func:`backtest_key`).
    metrics
        Its overall backtest metrics, flat (``churn.model.pr_auc``); empty when it was
        trained without a backtest.
    trained_as_of
        First and last as-of dates of its training panel.
    """

    versions: ModelVersions
    config: dict[str, Any]
    fingerprint: str
    backtest_key: str
    metrics: dict[str, float] = field(default_factory=dict)
    trained_as_of: tuple[date, date] | None = None


class Registry:
    """The ``churnrisk-churn`` and ``churnrisk-clv`` registered models of one store.

    Parameters
    ----------
    backend
        The tracking store (its registry is the same store).
    """

    def __init__(self, backend: TrackingBackend) -> None:
        self._backend = backend

    def register(self, registered: str, info: Any, run_id: str, tags: dict[str, str]) -> str:
        """Create a version of ``registered`` (and the model itself on first use)."""
        from mlflow.exceptions import MlflowException

        client = self._backend.client
        try:
            client.get_registered_model(registered)
        except MlflowException:
            client.create_registered_model(registered, description=_DESCRIPTIONS[registered])
        version = client.create_model_version(
            registered, source=info.model_uri, run_id=run_id, tags=tags, model_id=info.model_id
        )
        return str(version.version)

    def alias_version(self, registered: str, alias: str) -> str | None:
        """Return the version of ``registered`` holding ``alias``, or ``None``."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self._backend.client.get_model_version_by_alias(registered, alias).version)
        except MlflowException:
            return None

    def champion_versions(self) -> tuple[str, str] | None:
        """Return the ``(churn, clv)`` versions holding the ``champion`` alias, cheaply.

        Two registry lookups and nothing else, so a service can poll it. ``None`` when
        no version holds the alias; ``clv`` is ``""`` when only the churn model has it.
        """
        with self._backend.quiet():
            churn = self.alias_version(CHURN_MODEL, CHAMPION)
            if churn is None:
                return None
            return churn, self.alias_version(CLV_MODEL, CHAMPION) or ""

    def champion_info(self) -> ChampionInfo | None:
        """Return the champion's versions, resolved configuration, fingerprint and metrics.

        Returns
        -------
        ChampionInfo or None
            ``None`` when no version holds the ``champion`` alias.
        """
        with self._backend.quiet():
            churn = self.alias_version(CHURN_MODEL, CHAMPION)
            if churn is None:
                return None
            clv = self.alias_version(CLV_MODEL, CHAMPION)
            client = self._backend.client
            run_id = str(client.get_model_version(CHURN_MODEL, churn).run_id)
            run = client.get_run(run_id)
            config = self._load_dict(run_id, "config.json")
        data = run.data
        first, last = data.params.get("data.first_as_of"), data.params.get("data.last_as_of")
        return ChampionInfo(
            versions=ModelVersions(churn=churn, clv=clv or "", run_id=run_id),
            config=config,
            fingerprint=data.tags.get(TAG_FINGERPRINT, ""),
            backtest_key=data.tags.get(TAG_BACKTEST, ""),
            metrics={k: float(v) for k, v in data.metrics.items() if not k.startswith("folds.")},
            trained_as_of=(
                (date.fromisoformat(first), date.fromisoformat(last)) if first and last else None
            ),
        )

    def _load_dict(self, run_id: str, name: str) -> dict[str, Any]:
        import mlflow

        with tempfile.TemporaryDirectory(prefix="churnrisk-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=name, dst_path=tmp, tracking_uri=self._backend.uri
            )
            loaded: dict[str, Any] = json.loads(Path(local).read_text(encoding="utf-8"))
        return loaded

    def promote(
        self,
        new: ModelVersions,
        new_metrics: Mapping[str, Any],
        *,
        gate: GateConfig,
        force: bool = False,
        champion_metrics: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        """Give the new versions ``champion`` if they are not worse, else ``challenger``.

        In order: a degenerate model (:func:`degenerate_reason`) is never promoted, not
        even forced: a constant score ranks nobody, so no one should act on it. Then
        ``force`` promotes. Then a model behind the logistic baseline on a gated metric
        (:func:`behind_baseline`) is not promoted (the logistic candidate is the
        baseline itself, so it never is). Then each gated metric
        (``gate.metric``, then ROC-AUC) of the churn model is compared with the
        champion's: the new model passes when ``new >= champion - tolerance`` for a higher-is-better
        metric (``new <= champion + tolerance`` for a lower-is-better one, see
        :data:`METRIC_DIRECTION`).

        Parameters
        ----------
        new
            The versions :meth:`Tracker.log_training` returned.
        new_metrics
            The new model's backtest (``BacktestResult.to_dict()`` or flat metrics).
        gate
            Gated metric and tolerance.
        force
            Promote whatever the metrics say (reason ``"forced"``), unless the model is
            degenerate.
        champion_metrics
            The champion's backtest on the same data and backtest settings as the new
            one, when the caller re-ran it (see ``comparable`` in :class:`GateDecision`).
            Default: the champion's recorded metrics, used only when its recorded
            fingerprint and backtest settings match the new run's.

        Returns
        -------
        GateDecision
            Promoted or not, why, and the champion version before.

        Raises
        ------
        ConfigError
            When the new metrics lack a gated metric.
        """
        names = list(dict.fromkeys((gate.metric, "roc_auc")))
        new_flat = flatten_metrics(new_metrics)
        info = self.champion_info()
        before = info.versions.churn if info is not None else None
        degenerate = degenerate_reason(new_metrics, min_distinct=gate.min_distinct)
        if degenerate is not None:
            return self._decide(new, False, degenerate, before)
        if force:
            return self._decide(new, True, "forced", before)
        behind = behind_baseline(new_flat, metrics=names, tolerance=gate.tolerance)
        if behind is not None:
            return self._decide(new, False, behind, before)
        if info is None:
            return self._decide(
                new, True, "the first model: no earlier champion to compare with", before
            )
        missing = [k for k in map(_gate_key, names) if k not in new_flat]
        if missing:
            raise ConfigError(
                f"the new backtest has no {', '.join(missing)}; the gate needs it (was the"
                " backtest run on enough data?)"
            )
        if champion_metrics is not None:
            champ_flat = flatten_metrics(champion_metrics)
        else:
            why = self._not_comparable(new, info)
            if why is not None:
                reason = (
                    f"not comparable: {why}; re-run the champion's configuration on this"
                    " data and pass its metrics"
                )
                return GateDecision(False, reason, before, comparable=False)
            champ_flat = info.metrics
        lacking = [k for k in map(_gate_key, names) if k not in champ_flat]
        if lacking:
            reason = f"not comparable: the champion's backtest has no {', '.join(lacking)}"
            return GateDecision(False, reason, before, comparable=False)
        ok, reason = gate_verdict(new_flat, champ_flat, metrics=names, tolerance=gate.tolerance)
        return self._decide(new, ok, reason, before)

    def _not_comparable(self, new: ModelVersions, info: ChampionInfo) -> str | None:
        with self._backend.quiet():
            tags = self._backend.client.get_run(new.run_id).data.tags
        new_fp, new_key = tags.get(TAG_FINGERPRINT, ""), tags.get(TAG_BACKTEST, "")
        if new_fp != info.fingerprint:
            return (
                f"the champion (version {info.versions.churn}) was backtested on other data"
                f" (fingerprint {info.fingerprint[:12]}, this run {new_fp[:12]})"
            )
        if new_key != info.backtest_key:
            return (
                f"the champion (version {info.versions.churn}) was backtested with other"
                f" settings ({_differences(info.backtest_key, new_key)})"
            )
        if not info.metrics:
            return f"the champion (version {info.versions.churn}) has no recorded backtest"
        return None

    def _decide(
        self, new: ModelVersions, promoted: bool, reason: str, before: str | None
    ) -> GateDecision:
        with self._backend.quiet():
            client = self._backend.client
            for kind, registered in _REGISTERED.items():
                version = getattr(new, kind)
                if not version:
                    # no model of this kind was trained: the alias the new versions take
                    # must not pair them with an older run's model of this kind
                    alias = CHAMPION if promoted else CHALLENGER
                    if self.alias_version(registered, alias) is not None:
                        client.delete_registered_model_alias(registered, alias)
                    continue
                if promoted:
                    client.set_registered_model_alias(registered, CHAMPION, version)
                    if self.alias_version(registered, CHALLENGER) == version:
                        client.delete_registered_model_alias(registered, CHALLENGER)
                else:
                    client.set_registered_model_alias(registered, CHALLENGER, version)
                client.set_model_version_tag(registered, version, TAG_GATE, reason)
        return GateDecision(promoted, reason, before)

    def model_info(self) -> dict[str, Any]:
        """Return what the service reports about the champion.

        Returns
        -------
        dict
            ``{"churn_version", "clv_version", "run_id", "trained_as_of": [first, last],
            "fingerprint", "metrics": {flat overall backtest metrics}}``.

        Raises
        ------
        ConfigError
            When no version holds the ``champion`` alias yet.
        """
        info = self.champion_info()
        if info is None:
            raise ConfigError(
                f"no champion model in {self._backend.uri}: run `churnrisk train DATA` first"
            )
        return {
            "churn_version": info.versions.churn,
            "clv_version": info.versions.clv,
            "run_id": info.versions.run_id,
            "trained_as_of": (
                [d.isoformat() for d in info.trained_as_of] if info.trained_as_of else None
            ),
            "fingerprint": info.fingerprint,
            "metrics": dict(sorted(info.metrics.items())),
        }
