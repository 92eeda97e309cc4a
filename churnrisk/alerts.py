"""Alerts: after a scoring run, tell people about the accounts that turned.

Which accounts (:func:`select_alerts`): those that *entered* the high tier (their
previous run had them lower, or this is their first run), those whose probability *rose*
by at least ``rise_points`` percentage points since their previous run, and those at
high risk whose renewal falls within ``renewal_days``. One alert per account, with every
reason that applies.

Where they go:

- **Webhooks** (:func:`send_webhooks`): one JSON POST per endpoint and run, signed with
  HMAC-SHA256 over ``"<unix time>.<body>"`` in the header ``X-Churnrisk-Signature:
  t=<unix time>,v1=<hex digest>`` (the scheme Stripe documents for its webhooks: the
  timestamp inside the signed text lets a receiver refuse replays). Each endpoint's
  secret is read from the environment variable its configuration names, never from the
  file, and logs and summaries show an endpoint without its query or credentials.
  Failed attempts (connection errors, 429 and 5xx answers) are retried with
  exponential backoff by urllib3's ``Retry``; every delivery ends in a :class:`Delivery`
  record, and an endpoint that stays down never raises: alerts must not fail the run.
- **E-mail** (:func:`send_digests`): one digest per account owner over SMTP, to the
  address the configuration maps the owner to (an owner that is already an e-mail
  address is used as is), the unowned and unmapped to ``fallback_to``.

The configuration is its own TOML file (:func:`load_alerts_config`), apart from the run
configuration: endpoints and addresses are deployment facts, not model parameters, and
must not land in MLflow's logged parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import smtplib
import time
import tomllib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from churnrisk.config import ScoringConfig
from churnrisk.errors import ConfigError

SIGNATURE_HEADER = "X-Churnrisk-Signature"
DELIVERY_HEADER = "X-Churnrisk-Delivery"
RETRY_STATUSES = (429, 500, 502, 503, 504)

Reason = Literal["entered_high", "rose", "renewal_soon"]


class AlertRules(BaseModel):
    """Which accounts make an alert (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rise_points: float = Field(default=10.0, gt=0, le=100)
    """Percentage points of churn probability gained since the previous run."""
    renewal_days: int = Field(default=30, ge=0, le=730)
    """High-risk accounts renewing within this many days are alerted."""


class Webhook(BaseModel):
    """One endpoint that receives each run's alerts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://\S+$")
    secret_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The environment variable holding the signing secret."""
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0, le=30)
    """urllib3's ``backoff_factor``: waits of ``backoff_s * 2 ** (n - 1)`` after the
    first retry, up to two minutes."""


class Email(BaseModel):
    """The SMTP server and who gets which owner's digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    owners: dict[str, str] = Field(default_factory=dict)
    """Owner name (as the accounts table writes it) to e-mail address."""
    fallback_to: str | None = None
    """Where alerts of unowned or unmapped accounts go; ``None``: nowhere."""
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class AlertsConfig(BaseModel):
    """The alerts file: ``[rules]``, ``[[webhook]]`` tables and an optional ``[email]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: AlertRules = Field(default_factory=AlertRules)
    webhook: list[Webhook] = Field(default_factory=list)
    email: Email | None = None


def load_alerts_config(path: Path) -> AlertsConfig:
    """Read an alerts configuration file.

    Raises
    ------
    ConfigError
        When the file cannot be read, is not TOML, or holds an unknown key or a bad value.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read alerts configuration {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"alerts configuration {path} is not valid TOML: {err}") from err
    try:
        return AlertsConfig.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"alerts configuration {path}: {where}: {first['msg']} (see churnrisk.alerts)"
        ) from err


@dataclass(frozen=True)
class Alert:
    """One account that turned, and why."""

    account_id: str
    name: str | None
    owner: str | None
    risk_tier: str
    churn_probability: float
    previous_probability: float | None
    mrr: float
    renewal_date: str | None
    """ISO date, or ``None`` when unknown."""
    reasons: tuple[Reason, ...]

    def text(self) -> str:
        """Return one line for people, e.g. ``A12 (Acme): 41% (was 22%), renews 2026-12-20``."""
        who = f"{self.account_id} ({self.name})" if self.name else self.account_id
        was = (
            f" (was {self.previous_probability:.0%})"
            if self.previous_probability is not None
            else " (first score)"
        )
        renews = f", renews {self.renewal_date}" if self.renewal_date else ""
        return f"{who}: {self.risk_tier} risk, {self.churn_probability:.0%}{was}{renews}"


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _text(value: Any) -> str | None:
    """Return a text value, ``None`` for a missing one (pandas writes NaN for them)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value) or None


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def select_alerts(rows: pd.DataFrame, scoring: ScoringConfig, rules: AlertRules) -> list[Alert]:
    """Return the alerts of one run, riskiest first.

    Parameters
    ----------
    rows
        The run's score rows: ``account_id``, ``name``, ``owner``, ``churn_probability``,
        ``risk_tier``, ``previous_probability``, ``mrr``, ``renewal_date`` and
        ``days_to_renewal``, as the store keeps them.
    scoring
        The tiers the run used; the previous probability is tiered with them, so
        "entered the high tier" compares like with like.
    rules
        The thresholds.
    """
    high = next(iter(scoring.tiers))
    alerts = []
    for row in rows.to_dict("records"):
        p = float(row["churn_probability"])
        before = _number(row.get("previous_probability"))
        days = _number(row.get("days_to_renewal"))
        is_high = row["risk_tier"] == high
        reasons: list[Reason] = []
        if is_high and (before is None or scoring.tier_of(before) != high):
            reasons.append("entered_high")
        if before is not None and (p - before) * 100 >= rules.rise_points - 1e-9:
            reasons.append("rose")
        if is_high and days is not None and days <= rules.renewal_days:
            reasons.append("renewal_soon")
        if reasons:
            alerts.append(
                Alert(
                    account_id=str(row["account_id"]),
                    name=_text(row.get("name")),
                    owner=_text(row.get("owner")),
                    risk_tier=str(row["risk_tier"]),
                    churn_probability=p,
                    previous_probability=before,
                    mrr=float(row.get("mrr") or 0.0),
                    renewal_date=_iso(row.get("renewal_date")),
                    reasons=tuple(reasons),
                )
            )
    alerts.sort(key=lambda a: (-a.churn_probability, a.account_id))
    return alerts


def payload(run: Mapping[str, Any], alerts: Sequence[Alert]) -> dict[str, Any]:
    """Return the JSON document a webhook receives: the run and its alerts."""
    return {
        "run": dict(run),
        "alerts": [asdict(a) | {"reasons": list(a.reasons), "text": a.text()} for a in alerts],
    }


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """Return the signature header value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``.

    What a receiver does with the header (the tests' receiver does exactly this).
    """
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class Delivery:
    """What became of one webhook POST or one e-mail."""

    channel: Literal["webhook", "email"]
    target: str
    status: Literal["delivered", "failed"]
    attempts: int
    detail: str
    """The HTTP status, the SMTP answer, or the error in one line."""
    alerts: int
    at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _session(hook: Webhook) -> requests.Session:
    retry = Retry(
        total=hook.retries,
        connect=hook.retries,
        read=hook.retries,
        status=hook.retries,
        backoff_factor=hook.backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"POST"}),
        raise_on_status=False,
        respect_retry_after_header=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def shown_url(url: str) -> str:
    """Return ``url`` without its credentials and query: what logs and summaries may show.

    Endpoints often carry a token in the query (``?token=...``) or in ``user:pass@``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def send_webhooks(
    hooks: Iterable[Webhook],
    document: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Delivery]:
    """POST ``document`` to every endpoint; return one :class:`Delivery` each, never raise.

    A 2xx answer is delivered; anything else, after the retries, is failed, as is an
    endpoint whose secret variable is unset (nothing unsigned is sent).
    """
    env = os.environ if environ is None else environ
    body = json.dumps(document, separators=(",", ":"), default=str).encode()
    count = len(document.get("alerts", ()))
    out = []
    for hook in hooks:
        target = shown_url(hook.url)
        secret = env.get(hook.secret_env)
        if not secret:
            detail = f"secret variable {hook.secret_env} is not set; nothing sent"
            out.append(Delivery("webhook", target, "failed", 0, detail, count, _now()))
            continue
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, timestamp=int(time.time())),
            DELIVERY_HEADER: uuid.uuid4().hex,
        }
        with _session(hook) as session:
            try:
                answer = session.post(hook.url, data=body, headers=headers, timeout=hook.timeout_s)
            except requests.RequestException as err:
                attempts = hook.retries + 1
                query = urlsplit(hook.url).query
                detail = _first_line(err).replace(f"?{query}", "") if query else _first_line(err)
                out.append(Delivery("webhook", target, "failed", attempts, detail, count, _now()))
                continue
        history = getattr(getattr(answer.raw, "retries", None), "history", ()) or ()
        ok = 200 <= answer.status_code < 300
        out.append(
            Delivery(
                "webhook",
                target,
                "delivered" if ok else "failed",
                len(history) + 1,
                f"HTTP {answer.status_code}",
                count,
                _now(),
            )
        )
    return out


def recipients(alerts: Iterable[Alert], email: Email) -> dict[str, list[Alert]]:
    """Group alerts by the address that gets them (see :class:`Email`), in alert order."""
    out: dict[str, list[Alert]] = {}
    for alert in alerts:
        owner = alert.owner or ""
        address = email.owners.get(owner) or (owner if "@" in owner else email.fallback_to)
        if address:
            out.setdefault(address, []).append(alert)
    return out


_REASON_TEXT: dict[str, str] = {
    "entered_high": "entered the high tier",
    "rose": "risk rose",
    "renewal_soon": "renewal soon at high risk",
}


def digest(address: str, alerts: Sequence[Alert], email: Email, *, as_of: str) -> EmailMessage:
    """Return the digest e-mail of one recipient's alerts."""
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = address
    count = f"{len(alerts)} account{'s' if len(alerts) != 1 else ''}"
    message["Subject"] = f"churnrisk: {count} need attention (scores as of {as_of})"
    lines = [f"Scores as of {as_of}: {count} turned.", ""]
    for alert in alerts:
        why = ", ".join(_REASON_TEXT[r] for r in alert.reasons)
        lines.append(f"- {alert.text()} [{why}]")
    message.set_content("\n".join(lines) + "\n")
    return message


def send_digests(
    alerts: Sequence[Alert],
    email: Email,
    *,
    as_of: str,
    environ: Mapping[str, str] | None = None,
) -> list[Delivery]:
    """Send one digest per recipient over SMTP; return one :class:`Delivery` each, never raise."""
    env = os.environ if environ is None else environ
    groups = recipients(alerts, email)
    if not groups:
        return []
    try:
        with smtplib.SMTP(email.host, email.port, timeout=email.timeout_s) as smtp:
            if email.starttls:
                smtp.starttls()
            if email.username_env and email.password_env:
                smtp.login(env.get(email.username_env, ""), env.get(email.password_env, ""))
            out = []
            for address, mine in groups.items():
                try:
                    refused = smtp.send_message(digest(address, mine, email, as_of=as_of))
                except smtplib.SMTPException as err:
                    out.append(
                        Delivery("email", address, "failed", 1, _first_line(err), len(mine), _now())
                    )
                    continue
                status: Literal["delivered", "failed"] = "failed" if refused else "delivered"
                detail = "refused" if refused else "accepted"
                out.append(Delivery("email", address, status, 1, detail, len(mine), _now()))
            return out
    except (OSError, smtplib.SMTPException) as err:
        where = f"{email.host}:{email.port}"
        return [
            Delivery(
                "email", address, "failed", 1, f"{where}: {_first_line(err)}", len(mine), _now()
            )
            for address, mine in groups.items()
        ]
