"""Alerts after a scoring run, and a sample to check the endpoints (:mod:`churnrisk.alerts`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from churnrisk.alerts import (
    Alert,
    AlertsConfig,
    Delivery,
    load_alerts_config,
    payload,
    select_alerts,
    send_digests,
    send_webhooks,
)
from churnrisk.config import ScoringConfig
from churnrisk.errors import ConfigError
from churnrisk.jobs.stores import open_store
from churnrisk.settings import Settings

if TYPE_CHECKING:
    from churnrisk.store import RunRecord, ScoreStore

ALERT_COLUMNS: tuple[str, ...] = (
    "account_id",
    "name",
    "owner",
    "churn_probability",
    "risk_tier",
    "previous_probability",
    "mrr",
    "renewal_date",
    "days_to_renewal",
)
"""The score columns :func:`churnrisk.alerts.select_alerts` reads."""


@dataclass(frozen=True)
class AlertsSent:
    """What one run's alerts did: how many accounts, and each delivery."""

    alerts: int
    deliveries: tuple[Delivery, ...]

    def summary(self) -> str:
        """Return one line: the alerts and what became of each delivery."""
        if not self.deliveries:
            return f"alerts: {self.alerts} account(s); no endpoint or recipient configured"
        parts = [
            f"{d.channel} {d.target} {d.status}"
            + (f" ({d.detail})" if d.status == "failed" else "")
            for d in self.deliveries
        ]
        return f"alerts: {self.alerts} account(s); " + "; ".join(parts)


def alerts_config(settings: Settings) -> AlertsConfig | None:
    """Return the alerts configuration of ``settings``, or ``None`` when none is set.

    Raises
    ------
    ConfigError
        When the file is set but unreadable or invalid (before any run starts).
    """
    return None if settings.alerts is None else load_alerts_config(settings.alerts)


def deliver(
    alerts: list[Alert],
    run: Mapping[str, object],
    config: AlertsConfig,
    *,
    environ: Mapping[str, str] | None = None,
) -> tuple[Delivery, ...]:
    """Send ``alerts`` to every webhook and, by e-mail, to their owners; never raise."""
    sent = send_webhooks(config.webhook, payload(run, alerts), environ=environ)
    if config.email is not None and alerts:
        sent += send_digests(alerts, config.email, as_of=str(run.get("as_of")), environ=environ)
    return tuple(sent)


def run_alerts(
    store: ScoreStore,
    record: RunRecord,
    scoring: ScoringConfig,
    config: AlertsConfig,
    *,
    environ: Mapping[str, str] | None = None,
) -> AlertsSent:
    """Select a run's alerts, deliver them and log each delivery in the store.

    Webhooks are called even when no account turned (the receiver learns the run
    happened); digests only go out with alerts in them.
    """
    rows = store.run_scores(record.run_id, columns=ALERT_COLUMNS)
    alerts = select_alerts(rows, scoring, config.rules)
    run = {
        "run_id": record.run_id,
        "as_of": record.as_of.isoformat(),
        "scored_at": record.scored_at.isoformat(),
        "accounts": record.accounts,
    }
    deliveries = deliver(alerts, run, config, environ=environ)
    store.deliveries.record(record.run_id, [asdict(d) for d in deliveries])
    return AlertsSent(len(alerts), deliveries)


def sample_alert() -> Alert:
    """Return the made-up alert ``churnrisk alerts test`` sends."""
    return Alert(
        account_id="SAMPLE-1",
        name="Sample account (a test of the alert endpoints)",
        owner=None,
        risk_tier="high",
        churn_probability=0.42,
        previous_probability=0.18,
        mrr=1000.0,
        renewal_date=None,
        reasons=("entered_high", "rose"),
    )


def send_sample(settings: Settings, *, environ: Mapping[str, str] | None = None) -> AlertsSent:
    """Send :func:`sample_alert` to every endpoint and recipient of ``settings``; log it.

    Raises
    ------
    ConfigError
        When ``settings`` names no alerts file, or the file is invalid.
    """
    config = alerts_config(settings)
    if config is None:
        raise ConfigError(
            "no alerts file configured: set CHURNRISK_ALERTS to a TOML file of webhooks and"
            " e-mail (see churnrisk.alerts)"
        )
    alert = sample_alert()
    run = {"run_id": None, "as_of": datetime.now(UTC).date().isoformat(), "test": True}
    email = config.email
    if email is not None and email.fallback_to is None and not email.owners:
        email = None
    sent = send_webhooks(config.webhook, payload(run, [alert]), environ=environ)
    if email is not None:
        to = email.fallback_to or next(iter(email.owners.values()))
        test_copy = email.model_copy(update={"owners": {}, "fallback_to": to})
        sent += send_digests([alert], test_copy, as_of=str(run["as_of"]), environ=environ)
    with open_store(settings) as store:
        store.deliveries.record(None, [asdict(d) for d in sent])
    return AlertsSent(1, tuple(sent))
