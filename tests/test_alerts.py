"""Alerts: which accounts turned, signed webhooks with retries, and e-mail digests.

Delivery is tested for real: a local HTTP receiver that checks the signature the way a
customer's endpoint would, and a local SMTP server (aiosmtpd) started by the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from webhook_receiver import SECRET, free_port, receiver_fixture  # noqa: F401

from churnrisk.alerts import (
    AlertRules,
    Email,
    Webhook,
    load_alerts_config,
    payload,
    recipients,
    select_alerts,
    send_digests,
    send_webhooks,
    shown_url,
    sign,
    verify,
)
from churnrisk.config import ScoringConfig
from churnrisk.errors import ConfigError

ENV = {"HOOK_SECRET": SECRET}
SCORING = ScoringConfig()  # high >= 0.25, medium >= 0.10


def _rows() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame(
        {
            "account_id": ["A", "B", "C", "D", "E", "F"],
            "name": ["Acme", "Beta", None, "Delta", "Echo", "Fox"],
            "owner": ["ana@x.io", "Bo", "Bo", None, "Bo", "Bo"],
            "churn_probability": [0.40, 0.30, 0.18, 0.50, 0.05, 0.26],
            "risk_tier": ["high", "high", "medium", "high", "low", "high"],
            "previous_probability": [0.20, 0.28, 0.05, nan, 0.04, 0.26],
            "mrr": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
            "renewal_date": [None, pd.Timestamp("2026-12-20").date(), None, None, None, None],
            "days_to_renewal": [100.0, 20.0, nan, nan, nan, 45.0],
        }
    )


def test_select_alerts_hand_worked() -> None:
    alerts = select_alerts(_rows(), SCORING, AlertRules(rise_points=10, renewal_days=30))
    got = [(a.account_id, a.reasons) for a in alerts]
    # D: first score, high; A: medium -> high and +20 points; B: already high, renews in
    # 20 days; C: +13 points but medium; E: +1 point; F: high since before, renews in 45
    assert got == [
        ("D", ("entered_high",)),
        ("A", ("entered_high", "rose")),
        ("B", ("renewal_soon",)),
        ("C", ("rose",)),
    ]
    assert alerts[1].text() == "A (Acme): high risk, 40% (was 20%)"
    assert alerts[0].text() == "D (Delta): high risk, 50% (first score)"
    assert alerts[2].text() == "B (Beta): high risk, 30% (was 28%), renews 2026-12-20"
    assert alerts[3].previous_probability == 0.05


def test_the_payload_lists_the_run_and_each_alert() -> None:
    alerts = select_alerts(_rows(), SCORING, AlertRules())
    doc = payload({"run_id": "r1", "as_of": "2026-12-01"}, alerts[:1])
    assert doc == {
        "run": {"run_id": "r1", "as_of": "2026-12-01"},
        "alerts": [
            {
                "account_id": "D",
                "name": "Delta",
                "owner": None,
                "risk_tier": "high",
                "churn_probability": 0.5,
                "previous_probability": None,
                "mrr": 400.0,
                "renewal_date": None,
                "reasons": ["entered_high"],
                "text": "D (Delta): high risk, 50% (first score)",
            }
        ],
    }


def test_signature_known_vector_and_verification() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, timestamp=1_700_000_000)
    # openssl dgst -sha256 -hmac whsec_test over '1700000000.{"a":1}'
    assert header == (
        "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
    )
    assert verify(SECRET, body, header, now=1_700_000_100)
    assert not verify("other", body, header, now=1_700_000_100)
    assert not verify(SECRET, b'{"a":2}', header, now=1_700_000_100)
    assert not verify(SECRET, body, header, now=1_700_000_301)  # a replay, too late
    assert not verify(SECRET, body, "garbage", now=1_700_000_000)


def _hook(url: str, retries: int = 2) -> Webhook:
    return Webhook(url=url, secret_env="HOOK_SECRET", retries=retries, backoff_s=0, timeout_s=5)


def test_a_webhook_is_delivered_signed(receiver) -> None:
    endpoint = receiver([])
    doc = payload({"run_id": "r1"}, select_alerts(_rows(), SCORING, AlertRules()))
    (delivery,) = send_webhooks([_hook(endpoint.url)], doc, environ=ENV)
    assert (delivery.status, delivery.attempts, delivery.detail, delivery.alerts) == (
        "delivered",
        1,
        "HTTP 200",
        4,
    )
    (got,) = endpoint.received
    assert got["signed"]
    assert json.loads(got["body"]) == json.loads(json.dumps(doc))


def test_a_failed_attempt_is_retried_with_the_same_signed_request(receiver) -> None:
    endpoint = receiver([503, 500])
    (delivery,) = send_webhooks([_hook(endpoint.url)], {"alerts": []}, environ=ENV)
    assert (delivery.status, delivery.attempts, delivery.detail) == ("delivered", 3, "HTTP 200")
    assert [r["signed"] for r in endpoint.received] == [True, True, True]
    assert len({r["id"] for r in endpoint.received}) == 1  # one delivery id: idempotent


def test_an_endpoint_that_keeps_failing_is_logged_not_raised(receiver) -> None:
    failing = receiver([500, 500, 500])
    down = f"http://127.0.0.1:{free_port()}/hook"
    good = receiver([])
    hooks = [_hook(failing.url), _hook(down, retries=1), _hook(good.url)]
    out = send_webhooks(hooks, {"alerts": []}, environ=ENV)
    assert [(d.status, d.attempts) for d in out] == [("failed", 3), ("failed", 2), ("delivered", 1)]
    assert out[0].detail == "HTTP 500"
    assert out[1].detail.startswith("ConnectionError")
    assert "\n" not in out[1].detail
    assert len(failing.received) == 3


def test_nothing_unsigned_is_sent(receiver) -> None:
    endpoint = receiver([])
    (delivery,) = send_webhooks([_hook(endpoint.url)], {"alerts": []}, environ={})
    assert (delivery.status, delivery.attempts) == ("failed", 0)
    assert delivery.detail == "secret variable HOOK_SECRET is not set; nothing sent"
    assert endpoint.received == []


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox, port = _Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _email(port: int) -> Email:
    return Email(
        port=port, sender="churnrisk@x.io", owners={"Bo": "bo@x.io"}, fallback_to="cs@x.io"
    )


def test_one_digest_per_owner_over_smtp(smtp) -> None:
    inbox, port = smtp
    alerts = select_alerts(_rows(), SCORING, AlertRules())
    assert {k: [a.account_id for a in v] for k, v in recipients(alerts, _email(port)).items()} == {
        "cs@x.io": ["D"],
        "ana@x.io": ["A"],
        "bo@x.io": ["B", "C"],
    }
    out = send_digests(alerts, _email(port), as_of="2026-12-01")
    assert [(d.target, d.status, d.alerts) for d in out] == [
        ("cs@x.io", "delivered", 1),
        ("ana@x.io", "delivered", 1),
        ("bo@x.io", "delivered", 2),
    ]
    bo = next(m for m in inbox.messages if m.rcpt_tos == ["bo@x.io"])
    message = message_from_bytes(bo.content, policy=policy.default)
    assert message["Subject"] == "churnrisk: 2 accounts need attention (scores as of 2026-12-01)"
    text = message.get_content()
    assert (
        "- B (Beta): high risk, 30% (was 28%), renews 2026-12-20 [renewal soon at high risk]"
        in text
    )
    assert "- C: medium risk, 18% (was 5%) [risk rose]" in text
    assert bo.mail_from == "churnrisk@x.io"


def test_an_smtp_server_that_is_down_fails_each_digest_without_raising() -> None:
    port = free_port()
    out = send_digests(select_alerts(_rows(), SCORING, AlertRules()), _email(port), as_of="x")
    assert [d.status for d in out] == ["failed", "failed", "failed"]
    assert out[0].detail.startswith(f"127.0.0.1:{port}: ConnectionRefusedError")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rules]\nrise_points = 0\n", "rules.rise_points: Input should be greater than 0"),
        ("[[webhook]]\nurl = 'ftp://x'\nsecret_env = 'S'\n", "webhook.0.url: String should match"),
        ("[[webhook]]\nurl = 'https://x'\nsecret = 's'\n", "webhook.0.secret_env: Field required"),
        ("[email]\nsender = 'nobody'\n", "email.sender: String should match"),
        ("[rules\n", "is not valid TOML"),
    ],
)
def test_a_bad_alerts_file_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_alerts_config(path)
    assert "\n" not in str(caught.value)


def test_an_alerts_file_reads(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(
        "[rules]\nrise_points = 5\n[[webhook]]\nurl = 'https://crm.example/hook'\n"
        "secret_env = 'CRM_SECRET'\n[email]\nsender = 'cs@x.io'\nport = 2525\n",
        encoding="utf-8",
    )
    cfg = load_alerts_config(path)
    assert cfg.rules == AlertRules(rise_points=5, renewal_days=30)
    assert [h.url for h in cfg.webhook] == ["https://crm.example/hook"]
    assert cfg.email is not None
    assert (cfg.email.port, cfg.email.sender) == (2525, "cs@x.io")


def test_a_shown_endpoint_keeps_no_token() -> None:
    assert shown_url("https://u:pw@hooks.example.com:8443/in/x?token=s3cret#f") == (
        "https://hooks.example.com:8443/in/x"
    )
    assert shown_url("http://127.0.0.1/hook") == "http://127.0.0.1/hook"


def test_the_delivery_log_never_holds_the_token(receiver) -> None:
    endpoint = receiver([])
    (delivery,) = send_webhooks(
        [_hook(endpoint.url + "?token=s3cret")], {"alerts": []}, environ=ENV
    )
    assert (delivery.status, delivery.target) == ("delivered", endpoint.url)
