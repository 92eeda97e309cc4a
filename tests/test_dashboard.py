"""The dashboard end to end in headless Chromium, over the real app and a real score store.

The app (:func:`churnrisk.api.app.create_app`) runs in uvicorn on a free loopback port in a
background thread, over a SQLite score store holding three hand-made runs of 60 accounts
(plus one account that left before the current run), and a small generated world as the
data source of the metrics, the scorecard, the win-back list and each account's usage.
The tests that write (activities, snoozes) use a second app over a copy of the runs with
a write key, so the shared list stays as the other tests expect. Chromium is Debian's
``/usr/bin/chromium`` driven by Playwright (``make`` installs it); nothing is downloaded.
Screenshots of the list and of an account page at 1366x768, and of every view at 390, 768
and 1280 px wide, are written to ``tests/output/``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from api_fixtures import uvicorn_server

from churnrisk.api.app import create_app
from churnrisk.api.state import LoadedModels
from churnrisk.features import get_feature
from churnrisk.generate import generate_world
from churnrisk.metrics import compute_metrics, last_complete_month
from churnrisk.models.explain import format_value
from churnrisk.settings import Settings
from churnrisk.store import SCORE_COLUMNS, RunRecord, ScoreStore
from churnrisk.validate import load

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).parent / "output"
LAPTOP = {"width": 1366, "height": 768}
TIMEOUT_MS = 10_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed at /usr/bin/chromium: run `make sysdeps` (Debian's"
    " chromium package) to run the browser tests",
)

# --------------------------------------------------------------------------- the runs

N = 60
"""Accounts A001..A060 in the current run (A060 is new in it)."""

GONE = "A061"
"""An account scored in the first two runs only (it churned)."""

TIERS = {"high": 0.25, "medium": 0.10}
AS_OF = (date(2025, 10, 1), date(2025, 11, 1), date(2025, 12, 1))
SCORED_AT = tuple(datetime(d.year, d.month, 2, 6, 0, tzinfo=UTC) for d in AS_OF)
WORDS = ("Northwind", "Bluebird", "Cedar", "Harbor", "Summit", "Lumen")
WORDS += ("Granite", "Maple", "Orbit", "Pioneer", "Quartz", "Willow")
KINDS = ("Analytics", "Logistics", "Health", "Partners", "Systems")
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
PLANS = ("starter", "growth", "enterprise")
OWNERS = ("Ana Silva", "Ben Okafor", "Chloe Martin", "Dev Patel")
RISERS = (
    "dau_mau_30d",
    "days_since_last_event",
    "tickets_30d",
    "nps_last_score",
    "mrr_change_90d",
    "usage_trend_30d",
)
LOWERERS = ("tenure_days", "seats")
WEIGHTS = (0.9, 0.5, 0.2)
CSV_HEADER = [
    "account_id",
    "name",
    "segment",
    "plan",
    "owner",
    "risk_tier",
    "churn_probability",
    "probability_change",
    "mrr",
    "mrr_at_risk",
    "revenue_12m",
    "lifetime_clv",
    "renewal_date",
    "days_to_renewal",
    "renewal_mrr",
    "top_drivers",
    "as_of",
    "updated_at",
    "run_id",
    "churn_version",
]


def account_id(i: int) -> str:
    return f"A{i:03d}"


def probability(i: int, run: int) -> float:
    """Account ``i``'s probability in run 0, 1 or 2.

    A position ``u`` in (0, 1), distinct per account in the current run (97 is prime),
    drifting by up to 0.05 a run, mapped to a skewed probability: 15 high, 10 medium and
    35 low accounts in the current run.
    """
    drift = ((i * 7) % 11 - 5) / 100
    u = min(0.99, max(0.01, ((i * 37) % 97 + 1) / 100 - (2 - run) * drift))
    return round(0.012 + 0.06 * u + 0.85 * u**5, 4)


def mrr(i: int) -> float:
    return 150.0 + ((i * 53) % 41) * 45.0


def tier_of(p: float) -> str:
    return next((name for name, low in TIERS.items() if p >= low), "low")


def feature_value(feature: str, i: int, p: float) -> float | int:
    """A value of ``feature`` that worsens as the probability ``p`` rises."""
    values: dict[str, float | int] = {
        "dau_mau_30d": round(0.45 - 0.4 * p, 2),
        "days_since_last_event": int(60 * p),
        "tickets_30d": int(12 * p),
        "nps_last_score": int(9 - 8 * p),
        "mrr_change_90d": round(-400 * p, 1),
        "usage_trend_30d": round(0.2 - 0.8 * p, 2),
        "tenure_days": 200 + 9 * i,
        "seats": 5 + i % 20,
        "days_to_renewal": days_to_renewal(i) or 0,
    }
    return values[feature]


def display(feature: str, value: float | int) -> str:
    return format_value(value, get_feature(feature).dtype)


def risers(i: int) -> list[str]:
    return [RISERS[(i + k) % len(RISERS)] for k in range(3)]


def days_to_renewal(i: int) -> int | None:
    """Days from the as-of date to account ``i``'s renewal; every sixth has none known."""
    return None if i % 6 == 0 else (i * 13) % 120


def renewal_mrr(i: int) -> float | None:
    """MRR up for renewal: all of it, or a third for every fifth account (a second term)."""
    if days_to_renewal(i) is None:
        return None
    return mrr(i) / 3 if i % 5 == 0 else mrr(i)


def drivers(i: int, p: float) -> list[dict[str, Any]]:
    """Three risers, as the scoring job writes them (context features are never drivers)."""
    return _items(i, p, [(f, round(w * p, 4)) for f, w in zip(risers(i), WEIGHTS, strict=True)])


def context(i: int, p: float) -> list[dict[str, Any]]:
    """Renewal timing (when known), tenure and seats: context, largest push first."""
    items = [("days_to_renewal", 0.4)] if days_to_renewal(i) is not None else []
    return _items(i, p, [*items, ("tenure_days", -0.3), ("seats", -0.1)])


def _items(i: int, p: float, items: list[tuple[str, float]]) -> list[dict[str, Any]]:
    out = []
    for feature, contribution in items:
        value = feature_value(feature, i, p)
        meaning = get_feature(feature).meaning
        direction = "raises" if contribution > 0 else "lowers"
        out.append(
            {
                "feature": feature,
                "meaning": meaning,
                "value": value,
                "display": display(feature, value),
                "contribution": contribution,
                "direction": direction,
                "text": f"{meaning} = {display(feature, value)}, {direction} risk",
            }
        )
    return out


def change_drivers(i: int, before: float, after: float) -> list[dict[str, Any]]:
    """The risers' changes between two probabilities, largest first; none when unchanged."""
    out = []
    for feature, weight in zip(risers(i), WEIGHTS, strict=True):
        change = round(weight * (after - before), 4)
        if change == 0:
            continue
        old, new = feature_value(feature, i, before), feature_value(feature, i, after)
        meaning = get_feature(feature).meaning
        direction = "raised" if change > 0 else "lowered"
        out.append(
            {
                "feature": feature,
                "meaning": meaning,
                "before": old,
                "after": new,
                "before_display": display(feature, old),
                "after_display": display(feature, new),
                "contribution_change": change,
                "direction": direction,
                "text": f"{meaning}: {display(feature, old)} → {display(feature, new)},"
                f" {direction} risk",
            }
        )
    return sorted(out, key=lambda d: -abs(d["contribution_change"]))


def score_row(
    i: int, run: int, *, p: float | None = None, previous: float | None = None, name: str = ""
) -> dict[str, Any]:
    """Account ``i``'s row in ``run`` (``p``, ``previous``: instead of the formula's)."""
    if p is None:
        p = probability(i, run)
        previous = probability(i, run - 1) if run > 0 and i != N else None
    revenue = 12 * mrr(i) * (1 - p)
    days = days_to_renewal(i)
    return {
        "account_id": account_id(i),
        "name": name or f"{WORDS[i % len(WORDS)]} {KINDS[i % len(KINDS)]}",
        "segment": SEGMENTS[i % 3],
        "plan": PLANS[(i // 3) % 3],
        "owner": OWNERS[i % 4],
        "churn_probability": p,
        "risk_tier": tier_of(p),
        "mrr": mrr(i),
        "mrr_at_risk": mrr(i) * p,
        "revenue_12m": revenue,
        "lifetime_clv": 3 * revenue,
        "previous_probability": previous,
        "probability_change": None if previous is None else round(p - previous, 4),
        "drivers": drivers(i, p),
        "change_drivers": [] if previous is None else change_drivers(i, previous, p),
        "renewal_date": None if days is None else AS_OF[run] + timedelta(days=days),
        "days_to_renewal": None if days is None else float(days),
        "renewal_mrr": renewal_mrr(i),
        "context": context(i, p),
    }


def runs_rows() -> list[list[dict[str, Any]]]:
    """The three runs' rows: A001..A059 and A061 in the first two, A001..A060 in the last."""
    out = []
    for run in range(3):
        rows = [score_row(i, run) for i in range(1, N + (run == 2))]
        if run == 0:
            rows.append(score_row(61, run, p=0.42, name="Juniper Retail"))
        if run == 1:
            rows.append(score_row(61, run, p=0.61, previous=0.42, name="Juniper Retail"))
        out.append(rows)
    return out


def write_runs(store: ScoreStore) -> list[RunRecord]:
    records: list[RunRecord] = []
    for run, rows in enumerate(runs_rows()):
        record = RunRecord(
            run_id=f"run{run}".ljust(32, "0"),
            as_of=AS_OF[run],
            scored_at=SCORED_AT[run],
            churn_version=str(run + 1),
            clv_version="1",
            model_run_id="mlflow-run",
            accounts=len(rows),
            tiers=dict(TIERS),
            low_tier="low",
            previous_run_id=records[-1].run_id if records else None,
            source="hand-made",
        )
        store.write_run(record, pd.DataFrame(rows, columns=SCORE_COLUMNS))
        records.append(record)
    return records


CURRENT = {row["account_id"]: row for row in runs_rows()[2]}


def ranked(rows: list[dict[str, Any]], column: str) -> list[str]:
    """Account ids in the API's order: descending by ``column``, ties by account id."""
    return [r["account_id"] for r in sorted(rows, key=lambda r: (-r[column], r["account_id"]))]


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class Service:
    url: str
    key: str
    metrics: dict[str, Any]
    runs: list[RunRecord]
    world: Path


NO_MODELS = LoadedModels.unavailable("no champion in this test (the dashboard does not need it)")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The real app over the hand-made runs, with a small generated world for the metrics.

    The world's accounts A001..A300 include the runs' A001..A061, and it runs on past the
    runs (20 months from November 2024) so that their windows have closed: the scorecard
    grades them, the win-back list and each account's usage come from it.
    """
    root = tmp_path_factory.mktemp("dashboard")
    world = root / "world"
    generate_world(world, accounts=300, months=20, seed=5)
    ds = load(world).dataset
    metrics = compute_metrics(ds, last_complete_month(ds))
    store = ScoreStore(f"sqlite:///{root / 'scores.db'}")
    store.upgrade()
    records = write_runs(store)
    key, _ = store.create_key("dashboard test", "read")
    app = create_app(Settings(data_dir=root / "data", data=world), store=store, models=NO_MODELS)
    try:
        with uvicorn_server(app, log_level="warning") as url:
            yield Service(url, key, metrics, records, world)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Troubles:
    """What a page reported: uncaught script errors, and Content-Security-Policy violations."""

    errors: list[str]
    violations: list[str]


@pytest.fixture
def troubles() -> Troubles:
    return Troubles([], [])


def on_console(troubles: Troubles, message: Any) -> None:
    # Chromium reports each blocked load or inline block as a console error naming the policy
    if message.type == "error" and "Content Security Policy" in message.text:
        troubles.violations.append(message.text)


@pytest.fixture
def page(browser: Any, troubles: Troubles) -> Iterator[Any]:
    """A fresh laptop-sized page; fails the test on a script error or a CSP violation."""
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda exc: troubles.errors.append(str(exc)))
    page.on("console", lambda message: on_console(troubles, message))
    try:
        yield page
    finally:
        context.close()
    assert troubles.errors == []
    assert troubles.violations == []


def wait_rows(page: Any, ids: list[str]) -> None:
    """Wait until the table shows exactly ``ids``, in order."""
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('[data-testid=at-risk-row]')]"
        ".map(r => r.dataset.accountId)) === JSON.stringify(ids)"
        " && !document.querySelector('#rows.loading')",
        arg=ids,
    )


def no_horizontal_scroll(page: Any) -> bool:
    return page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


def text(page: Any, testid: str) -> str:
    return page.get_by_test_id(testid).inner_text().strip()


def in_days(days: float) -> str:
    """How the dashboard words the days to a renewal."""
    n = round(days)
    return "today" if n == 0 else "in 1 day" if n == 1 else f"in {n:,} days"


def money(value: float) -> str:
    return f"${value:,.0f}"


def pct(p: float) -> str:
    return f"{p * 100:.1f}%"


def book_trend(service: Service) -> list[tuple[date, float]]:
    """``(as_of, MRR at risk)`` of each fixture run, by date: summed from the rows written."""
    rows = runs_rows()
    assert len(rows) == len(service.runs)
    totals = [
        (record.as_of, math.fsum(r["mrr_at_risk"] for r in run_rows))
        for record, run_rows in zip(service.runs, rows, strict=True)
    ]
    return sorted(totals)


def trend_caption(previous: tuple[date, float], last: tuple[date, float]) -> str:
    """The caption's text for a change from ``previous`` to ``last`` (same year)."""
    delta = last[1] - previous[1]
    sign = "+" if delta > 0 else "-"
    since = f"{previous[0]:%b} {previous[0].day}"
    return f"{sign}${abs(delta):,.0f} ({delta / previous[1]:+.1%}) since {since}"


def sign_in(page: Any, service: Service, route: str = "") -> None:
    page.goto(f"{service.url}/#key={service.key}")
    page.wait_for_selector("[data-testid=at-risk-row]")
    if route:
        page.evaluate("route => { location.hash = route; }", route)


# --------------------------------------------------------------------------- tests


def test_list_loads_filters_sorts_and_pages(page: Any, service: Service) -> None:
    rows = list(CURRENT.values())
    by_probability = ranked(rows, "churn_probability")
    sign_in(page, service)

    # the key left the address bar for sessionStorage
    assert "key=" not in page.url
    assert page.url.endswith("/#/")
    assert page.evaluate("sessionStorage.getItem('churnrisk.apiKey')") == service.key

    # headline: the run from /v1/summary, the health metrics from /v1/metrics
    wait_rows(page, by_probability[:50])
    assert text(page, "row-count") == "Showing 50 of 60 accounts"
    assert text(page, "kpi-accounts-value") == "60"
    assert text(page, "kpi-mrr-at-risk-value") == money(sum(r["mrr_at_risk"] for r in rows))
    assert [sum(r["risk_tier"] == t for r in rows) for t in ("high", "medium", "low")] == [
        15,
        10,
        35,
    ]
    assert text(page, "kpi-tier-high") == "15"
    assert text(page, "kpi-tier-medium") == "10"
    assert text(page, "kpi-tier-low") == "35"
    assert text(page, "run-as-of") == "Dec 1, 2025"
    assert text(page, "model-version") == "churn model v3"
    page.get_by_test_id("kpi-nrr-value").wait_for()
    m = service.metrics
    period = datetime.strptime(m["period"], "%Y-%m").strftime("%B %Y")
    assert text(page, "metrics-period").lower() == f"health metrics · {period}".lower()
    assert text(page, "kpi-churn-rate-value") == f"{m['churn_rate']:.1f}%"
    assert text(page, "kpi-nrr-value") == f"{m['nrr']:.1f}%"
    assert text(page, "kpi-grr-value") == f"{m['grr']:.1f}%"
    assert text(page, "kpi-nps-value") == f"{m['nps']:+.0f}"

    # one row, cell by cell
    first = CURRENT[by_probability[0]]
    cells = page.locator("[data-testid=at-risk-row]").first
    assert cells.locator("[data-col=account] a").inner_text() == first["name"]
    assert cells.locator("[data-col=tier]").inner_text() == first["risk_tier"].capitalize()
    assert cells.locator("[data-col=probability]").inner_text() == pct(first["churn_probability"])
    change = first["probability_change"] * 100
    arrow = "▲" if change > 0 else "▼"
    assert cells.locator("[data-col=change]").inner_text() == f"{arrow} {abs(change):.1f} pp"
    assert cells.locator("[data-col=mrr]").inner_text() == money(first["mrr"])
    assert cells.locator("[data-col=mrr_at_risk]").inner_text() == money(first["mrr_at_risk"])
    assert cells.locator("[data-col=clv]").inner_text() == money(first["lifetime_clv"])
    top = first["drivers"][0]
    assert cells.locator("[data-col=driver]").inner_text().split("\n") == [
        top["meaning"],
        f"value {top['display']}",
    ]
    # renewal timing beside the score, as context: the date and the days to it
    renewal = cells.locator("[data-col=renewal]")
    if first["renewal_date"] is None:
        assert renewal.inner_text() == "—"
    else:
        assert renewal.get_attribute("data-value") == first["renewal_date"].isoformat()
        assert renewal.inner_text().split("\n")[0] == in_days(first["days_to_renewal"])

    # load more with the cursor
    page.get_by_test_id("load-more").click()
    wait_rows(page, by_probability)
    assert text(page, "row-count") == "Showing 60 of 60 accounts"
    assert page.get_by_test_id("load-more").is_hidden()
    new = page.locator("[data-account-id=A060] [data-col=change]")
    assert new.inner_text() == "new"  # not scored in the previous run

    # filter by tier: only high rows, the filter kept in the address
    high = [r for r in rows if r["risk_tier"] == "high"]
    page.get_by_test_id("filter-tier-high").click()
    wait_rows(page, ranked(high, "churn_probability"))
    assert set(
        page.eval_on_selector_all("[data-testid=at-risk-row]", "r => r.map(x => x.dataset.tier)")
    ) == {"high"}
    assert page.get_by_test_id("filter-tier-high").get_attribute("aria-pressed") == "true"
    assert text(page, "row-count") == f"Showing {len(high)} of {len(high)} matching accounts"
    assert page.url.endswith("#/?tier=high")

    # sort by MRR at risk (the column header), then by CLV (the selector)
    page.get_by_test_id("sort-mrr_at_risk").click()
    wait_rows(page, ranked(high, "mrr_at_risk"))
    assert page.url.endswith("#/?tier=high&sort=mrr_at_risk")
    page.get_by_test_id("sort-select").select_option("clv")
    wait_rows(page, ranked(high, "lifetime_clv"))

    # a segment and a minimum probability narrow it further
    page.get_by_test_id("filter-segment").select_option("Enterprise")
    page.get_by_test_id("filter-min-probability").fill("50")
    chosen = [r for r in high if r["segment"] == "Enterprise" and r["churn_probability"] >= 0.5]
    wait_rows(page, ranked(chosen, "lifetime_clv"))
    page.get_by_test_id("reset-filters").click()
    wait_rows(page, by_probability[:50])

    page.get_by_test_id("filter-tier-high").click()
    page.get_by_test_id("sort-mrr_at_risk").click()
    wait_rows(page, ranked(high, "mrr_at_risk"))
    assert no_horizontal_scroll(page)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "dashboard-list.png")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert no_horizontal_scroll(page)
    box = page.get_by_test_id("table-box")
    assert box.evaluate("b => b.scrollWidth <= b.clientWidth")


def test_list_shows_the_books_risk_trend(page: Any, service: Service) -> None:
    expected = book_trend(service)
    sign_in(page, service)
    page.locator("[data-testid=trend-card][data-state=ready]").wait_for()
    card = page.get_by_test_id("trend-card")
    assert card.is_visible()
    assert "MRR at risk over time" in card.inner_text()

    # one bar per as-of date, oldest first, each the sum of its run's MRR at risk
    points = page.get_by_test_id("trend-chart").get_by_test_id("trend-point")
    got = points.evaluate_all("ps => ps.map(p => [p.dataset.asOf, Number(p.dataset.mrrAtRisk)])")
    assert [as_of for as_of, _ in got] == [d.isoformat() for d, _ in expected]
    for (_, value), (_, want) in zip(got, expected, strict=True):
        assert value == pytest.approx(want, abs=1e-6)

    # each bar: a tier segment per non-empty tier, riskiest at the bottom; a tooltip
    newest = points.last
    tiers = newest.locator("rect.seg").evaluate_all("rs => rs.map(r => r.dataset.tier)")
    assert tiers == ["high", "medium", "low"]
    title = newest.locator("title").text_content()
    assert title.startswith(f"As of Dec 1, 2025: {money(expected[-1][1])} MRR at risk")
    current = list(CURRENT.values())
    high = [r for r in current if r["risk_tier"] == "high"]
    assert f"High: {len(high)} accounts, {money(sum(r['mrr_at_risk'] for r in high))} at risk" in (
        title
    )

    # the caption: the change between the last two as-of dates, coloured by its direction
    caption = page.get_by_test_id("trend-caption")
    assert caption.inner_text() == trend_caption(expected[-2], expected[-1])
    falling = expected[-1][1] < expected[-2][1]
    tone = "tone-text-down" if falling else "tone-text-up"
    assert tone in caption.get_attribute("class").split()

    # the card sits between the headline and the table, compact, and only on the list
    headline = page.get_by_test_id("headline").bounding_box()
    box = card.bounding_box()
    table_title = page.locator("#list-title").bounding_box()
    assert headline["y"] + headline["height"] <= box["y"]
    assert box["y"] + box["height"] <= table_title["y"]
    assert 140 <= box["height"] <= 200
    page.locator("[data-testid=at-risk-row] [data-col=plan]").first.click()
    page.get_by_test_id("drivers-table").wait_for()
    assert card.is_hidden()
    page.get_by_test_id("back-link").click()
    card.wait_for()
    assert points.count() == len(expected)


def test_trend_card_with_one_point_and_when_the_trend_fails(page: Any, service: Service) -> None:
    def newest_only(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={"points": response.json()["points"][-1:]})

    page.route("**/v1/trend?*", newest_only)
    sign_in(page, service)
    page.locator("[data-testid=trend-card][data-state=ready]").wait_for()
    points = page.get_by_test_id("trend-point")
    assert points.count() == 1
    assert points.first.get_attribute("data-as-of") == "2025-12-01"
    assert text(page, "trend-caption") == "First scoring run; the trend starts here"

    # a failing trend is reported in the banner; the list works without the card
    page.unroute("**/v1/trend?*")
    problem = {"title": "Service Unavailable", "status": 503, "detail": "the store is busy"}
    page.route(
        "**/v1/trend?*",
        lambda route: route.fulfill(
            status=503, content_type="application/problem+json", body=json.dumps(problem)
        ),
    )
    page.reload()
    page.locator("[data-testid=trend-card][data-state=error]").wait_for(state="attached")
    wait_rows(page, ranked(list(CURRENT.values()), "churn_probability")[:50])
    assert page.get_by_test_id("trend-card").is_hidden()
    banner = text(page, "error-banner")
    assert "The risk trend could not be loaded" in banner
    assert "the store is busy" in banner
    assert text(page, "kpi-accounts-value") == "60"


def test_account_page_explains_risk_and_change(page: Any, service: Service) -> None:
    high = [r for r in CURRENT.values() if r["risk_tier"] == "high"]
    order = ranked(high, "mrr_at_risk")
    page.goto(f"{service.url}/#key={service.key}")
    page.get_by_test_id("filter-tier-high").click()
    page.get_by_test_id("sort-mrr_at_risk").click()
    wait_rows(page, order)

    # a row click opens the account
    target = next(
        CURRENT[a]
        for a in order
        if CURRENT[a]["probability_change"] and CURRENT[a]["change_drivers"]
    )
    page.locator(
        f"[data-testid=at-risk-row][data-account-id={target['account_id']}] [data-col=plan]"
    ).click()
    page.get_by_test_id("drivers-table").wait_for()
    assert page.url.endswith(f"#/accounts/{target['account_id']}")
    assert text(page, "account-name") == target["name"]
    assert (
        page.get_by_test_id("account-view").get_by_test_id("tier-badge").first.inner_text()
        == "High"
    )
    assert text(page, "account-probability-value") == pct(target["churn_probability"])
    change = target["probability_change"] * 100
    arrow = "▲" if change > 0 else "▼"
    assert text(page, "account-change") == f"{arrow} {abs(change):.1f} pp"
    assert text(page, "account-mrr-value") == money(target["mrr"])
    assert text(page, "account-mrr-at-risk-value") == money(target["mrr_at_risk"])
    assert text(page, "account-revenue-value") == money(target["revenue_12m"])
    assert text(page, "account-clv-value") == money(target["lifetime_clv"])

    # why at risk: every driver, both directions, in the stored order
    features = page.eval_on_selector_all(
        "[data-testid=driver-row]",
        "rows => rows.map(r => [r.dataset.feature, r.dataset.direction])",
    )
    assert features == [[d["feature"], d["direction"]] for d in target["drivers"]]
    first_driver = page.locator("[data-testid=driver-row]").first.inner_text()
    assert target["drivers"][0]["meaning"] in first_driver
    assert target["drivers"][0]["display"] in first_driver
    # context apart, labelled, in the stored order; the renewal beside the KPIs
    in_context = page.eval_on_selector_all(
        "[data-testid=context-row]", "rows => rows.map(r => r.dataset.feature)"
    )
    assert in_context == [d["feature"] for d in target["context"]]
    assert "Context" in page.get_by_test_id("drivers").inner_text()
    renewal = page.get_by_test_id("account-renewal").inner_text()
    if target["renewal_date"] is None:
        assert "no known term end" in renewal
    else:
        assert f"{in_days(target['days_to_renewal'])} · context, not a driver" in renewal

    # why did it change: from / to and the change drivers with before → after
    summary = text(page, "change-summary")
    assert pct(target["previous_probability"]) in summary
    assert "Nov 1, 2025" in summary
    changes = page.eval_on_selector_all(
        "[data-testid=change-driver-row]", "rows => rows.map(r => r.dataset.feature)"
    )
    assert changes == [d["feature"] for d in target["change_drivers"]]
    top = target["change_drivers"][0]
    assert (
        f"{top['before_display']} → {top['after_display']}"
        in page.locator("[data-testid=change-driver-row]").first.inner_text()
    )

    # the trend: one point a run, the two thresholds dashed
    chart = page.get_by_test_id("risk-chart")
    assert chart.locator("[data-testid=chart-point]").count() == 3
    lines = chart.locator("line.threshold")
    assert [lines.nth(k).get_attribute("data-tier") for k in range(lines.count())] == [
        "high",
        "medium",
    ]
    assert "High ≥ 25%" in chart.inner_html()
    assert no_horizontal_scroll(page)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "dashboard-account.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    assert no_horizontal_scroll(page)

    # back: the same filtered, sorted list
    page.get_by_test_id("back-link").click()
    wait_rows(page, order)
    assert page.url.endswith("#/?tier=high&sort=mrr_at_risk")
    assert page.get_by_test_id("filter-tier-high").get_attribute("aria-pressed") == "true"


def test_account_no_longer_scored_and_first_score(page: Any, service: Service) -> None:
    sign_in(page, service, f"#/accounts/{GONE}")
    page.get_by_test_id("not-current").wait_for()
    assert text(page, "account-name") == "Juniper Retail"
    assert "Nov 1, 2025" in text(page, "not-current")
    assert page.get_by_test_id("risk-chart").locator("[data-testid=chart-point]").count() == 2

    page.evaluate("location.hash = '#/accounts/A060'")
    # a function, not an expression: Playwright polls an expression with eval, which the
    # page's Content-Security-Policy refuses
    page.wait_for_function(
        "name => document.querySelector('[data-testid=account-name]')?.textContent === name",
        arg=CURRENT["A060"]["name"],
    )
    assert text(page, "account-change") == "—"
    assert "first scoring run" in text(page, "change-summary")
    assert page.get_by_test_id("change-drivers").count() == 0
    assert page.get_by_test_id("not-current").count() == 0

    page.evaluate("location.hash = '#/accounts/NOPE'")
    page.get_by_test_id("account-error").wait_for()
    assert "Account not found" in text(page, "account-error")


def test_download_csv(page: Any, service: Service, tmp_path: Path) -> None:
    sign_in(page, service)
    with page.expect_download() as info:
        page.get_by_test_id("download-csv").click()
    download = info.value
    assert download.suggested_filename == "churnrisk-scores-2025-12-01.csv"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    # made for a spreadsheet: a byte-order mark so Excel reads UTF-8 (formulas: test_api)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfaccount_id,")
    table = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert table[0] == CSV_HEADER
    body = [dict(zip(CSV_HEADER, row, strict=True)) for row in table[1:]]
    assert [r["account_id"] for r in body] == sorted(CURRENT)
    run = service.runs[2]
    for got in body:
        want = CURRENT[got["account_id"]]
        assert got["name"] == want["name"]
        assert got["risk_tier"] == want["risk_tier"]
        assert float(got["churn_probability"]) == want["churn_probability"]
        assert float(got["mrr_at_risk"]) == pytest.approx(want["mrr_at_risk"], rel=1e-12)
        risers = [d["text"] for d in want["drivers"] if d["direction"] == "raises"]
        assert got["top_drivers"] == " | ".join(risers)
        assert got["as_of"] == "2025-12-01"
        assert got["run_id"] == run.run_id
        assert got["churn_version"] == "3"
        renewal = want["renewal_date"]
        assert got["renewal_date"] == ("" if renewal is None else renewal.isoformat())
        days = want["days_to_renewal"]
        assert got["days_to_renewal"] == ("" if days is None else f"{days:.0f}")
        up = want["renewal_mrr"]
        if up is None:
            assert got["renewal_mrr"] == ""
        else:
            assert float(got["renewal_mrr"]) == pytest.approx(up, rel=1e-12)
        change = want["probability_change"]
        assert got["probability_change"] == ("" if change is None else str(change))


def test_wrong_key_shows_sign_in_and_the_form_signs_in(page: Any, service: Service) -> None:
    page.goto(f"{service.url}/#key=crk_0123456789abcdef_wrong")
    page.get_by_test_id("signin-form").wait_for()
    assert "key=" not in page.url
    message = text(page, "signin-message")
    assert message.startswith("Your key was not accepted")
    assert page.get_by_test_id("list-view").is_hidden()
    assert page.evaluate("sessionStorage.getItem('churnrisk.apiKey')") is None

    page.get_by_test_id("signin-key").fill(service.key)
    page.get_by_test_id("signin-submit").click()
    wait_rows(page, ranked(list(CURRENT.values()), "churn_probability")[:50])
    assert page.get_by_test_id("signin").is_hidden()

    # signing out forgets the key
    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("signin-form").wait_for()
    assert text(page, "signin-message") == "You are signed out."
    assert page.evaluate("sessionStorage.getItem('churnrisk.apiKey')") is None


def test_empty_store_and_no_metrics_source(page: Any, tmp_path: Path) -> None:
    """Before the first scoring run, and without --data: say so, and what to do."""
    with ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}") as store:
        store.upgrade()
        key, _ = store.create_key("dashboard test", "read")
        app = create_app(Settings(data_dir=tmp_path, data=None), store=store, models=NO_MODELS)
        with uvicorn_server(app, log_level="warning") as url:
            page.goto(f"{url}/#key={key}")
            page.get_by_test_id("list-empty").wait_for()
            page.get_by_test_id("metrics-unavailable").wait_for()
            # no runs: /v1/trend answers no points, and the card stays out of the way
            page.locator("[data-testid=trend-card][data-state=empty]").wait_for(state="attached")
            assert page.get_by_test_id("trend-card").is_hidden()
            assert text(page, "list-empty") == (
                "No scores yet. The accounts have not been scored: run churnrisk score DATA,"
                " then reload this page."
            )
            assert text(page, "metrics-unavailable").endswith(
                "no data source: start the service with `churnrisk serve --data PATH`, or score"
                " a run, whose data source is then used"
            )
            assert text(page, "kpi-accounts-value") == "—"
            assert page.get_by_test_id("filters").is_hidden()
            assert page.get_by_test_id("download-csv").is_hidden()
            assert page.get_by_test_id("error-banner").is_hidden()


def test_api_docs_render_offline(page: Any, service: Service, troubles: Troubles) -> None:
    """Swagger UI and ReDoc render the API from assets this service bundles, under its CSP."""
    outside: list[Any] = []  # requests for anything not of this service (blob: URLs are)
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith((service.url, f"blob:{service.url}")) else outside.append(r)
        ),
    )
    response = page.goto(f"{service.url}/docs")
    assert "'sha256-" in response.headers["content-security-policy"]
    page.wait_for_selector(".swagger-ui .info .title")
    assert "churnrisk" in page.locator(".swagger-ui .info .title").inner_text()
    page.get_by_text("/v1/accounts/at-risk", exact=True).click()  # open the operation
    page.get_by_text("Try it out").wait_for()
    assert troubles.violations == []

    page.goto(f"{service.url}/redoc")
    page.get_by_role("heading", name="churnrisk").wait_for()
    page.get_by_role("heading", name="The at-risk list of the current run").wait_for()
    page.get_by_placeholder("Search...").fill("export")  # search runs in a blob: worker
    results = page.locator("[data-role='search:results'] [role=menuitem]")
    results.get_by_text("Export the current scores for a CRM").wait_for()
    # ReDoc's footer logo comes from cdn.redoc.ly: the policy stops it in the browser, and
    # it is the only thing the policy stops
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [(r.url, r.failure) for r in outside] == [(logo, "csp")]
    assert len(troubles.violations) == 1
    assert f"'{logo}'" in troubles.violations.pop()


# --------------------------------------------------------------------------- the weekly review


@dataclass(frozen=True)
class Desk:
    """A second service over the same runs and world, signed in with a write key."""

    url: str
    key: str


@pytest.fixture(scope="module")
def desk(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """The tests that write (activities, snoozes) write here: the shared list stays as is."""
    root = tmp_path_factory.mktemp("desk")
    store = ScoreStore(f"sqlite:///{root / 'scores.db'}")
    store.upgrade()
    write_runs(store)
    key, _ = store.create_key("dashboard writer", "write")
    settings = Settings(data_dir=root / "data", data=service.world)
    app = create_app(settings, store=store, models=NO_MODELS)
    try:
        with uvicorn_server(app, log_level="warning") as url:
            yield Desk(url, key)
    finally:
        store.close()


def api_json(page: Any, url: str, key: str, path: str) -> Any:
    """What the API answers ``path`` (to check the page shows it, figure by figure)."""
    response = page.request.get(f"{url}{path}", headers={"Authorization": f"Bearer {key}"})
    assert response.ok, response.text()
    return response.json()


def renewing(days: int) -> list[dict[str, Any]]:
    """The current run's rows renewing within ``days``, soonest first, ties by id."""
    rows = [r for r in CURRENT.values() if r["days_to_renewal"] is not None]
    inside = [r for r in rows if 0 <= r["days_to_renewal"] <= days]
    return sorted(inside, key=lambda r: (r["days_to_renewal"], r["account_id"]))


def long_day(d: date) -> str:
    return f"{d:%b} {d.day}, {d.year}"


def ids(page: Any, testid: str, attribute: str = "accountId") -> list[str]:
    return page.eval_on_selector_all(
        f"[data-testid={testid}]", f"rs => rs.map(r => r.dataset.{attribute})"
    )


def test_weekly_review_window_activity_snooze_and_play(page: Any, desk: Desk) -> None:
    """Filter by renewal window, open an account, log a call, snooze it, see it go; its play."""
    window = renewing(30)
    by_risk = ranked(window, "churn_probability")
    soonest = [r["account_id"] for r in window]
    page.goto(f"{desk.url}/#key={desk.key}")
    page.wait_for_selector("[data-testid=at-risk-row]")
    page.get_by_test_id("filter-renewing").select_option("30")
    wait_rows(page, by_risk)
    assert page.url.endswith("#/?renewing_within=30")
    page.get_by_test_id("sort-renewal").click()
    wait_rows(page, soonest)
    assert page.url.endswith("#/?renewing_within=30&sort=renewal")

    # nobody was contacted: every high-tier account is flagged, the others are not
    high = [a for a in soonest if CURRENT[a]["risk_tier"] == "high"]
    assert high
    assert ids(page, "at-risk-row][data-needs-contact") == high
    target = CURRENT[high[0]]
    row = page.locator(f"[data-testid=at-risk-row][data-account-id={target['account_id']}]")
    assert row.locator("[data-col=last_contact]").inner_text().split("\n") == ["never", "Reach out"]

    # the account: the renewal play and why it matched
    row.locator("[data-col=plan]").click()
    page.get_by_test_id("play").first.wait_for()
    assert text(page, "account-name") == target["name"]
    assert text(page, "account-renewal-mrr-value") == money(target["renewal_mrr"])
    rescue = page.locator("[data-testid=play][data-name='Renewal rescue']")
    days = int(target["days_to_renewal"])
    assert rescue.get_by_test_id("play-reason").all_inner_texts() == [
        "tier is high",
        f"renews in {days} days (within 60)",
    ]
    page.get_by_test_id("activities-empty").wait_for()
    assert text(page, "last-contact") == "No contact recorded yet"

    # log a call
    page.get_by_test_id("activity-kind").select_option("call")
    page.get_by_test_id("activity-outcome").select_option("saved")
    page.get_by_test_id("activity-text").fill("Walked the sponsor through the renewal plan")
    page.get_by_test_id("activity-author").fill("Dev Patel")
    page.get_by_test_id("activity-submit").click()
    page.locator("[data-testid=activity][data-kind=call]").wait_for()
    logged = page.get_by_test_id("activity").first.inner_text()
    assert "Walked the sponsor through the renewal plan" in logged
    assert "Saved" in logged
    today = datetime.now(UTC).date()
    assert f"{long_day(today)} · Dev Patel" in logged
    assert text(page, "last-contact").startswith("Last contact today")
    assert text(page, "activity-message") == "Added."

    # snooze it for two weeks (the form's default)
    until = datetime.now(UTC).date() + timedelta(days=14)
    assert page.get_by_test_id("snooze-date").input_value() == until.isoformat()
    page.get_by_test_id("snooze-submit").click()
    page.get_by_test_id("snoozed").wait_for()
    assert text(page, "snoozed").startswith(f"Snoozed until {long_day(until)}")
    assert page.get_by_test_id("activity").count() == 2

    # back on the list it is gone; "show snoozed" brings it back, contacted and marked
    page.get_by_test_id("back-link").click()
    wait_rows(page, [a for a in soonest if a != target["account_id"]])
    page.get_by_test_id("filter-snoozed").check()
    wait_rows(page, soonest)
    assert page.url.endswith("#/?renewing_within=30&include_snoozed=true&sort=renewal")
    assert ids(page, "at-risk-row][data-snoozed") == [target["account_id"]]
    assert ids(page, "at-risk-row][data-needs-contact") == high[1:]
    cell = row.locator("[data-col=last_contact]").inner_text().split("\n")
    assert cell == ["today", f"snoozed to {long_day(until)}"]

    # the snooze ends early: the account is back on the default list
    row.locator("[data-col=plan]").click()
    page.get_by_test_id("unsnooze").click()
    page.get_by_test_id("snooze-form").wait_for()
    page.get_by_test_id("back-link").click()
    page.get_by_test_id("filter-snoozed").uncheck()
    wait_rows(page, soonest)
    assert ids(page, "at-risk-row][data-snoozed") == []


def test_a_read_key_is_told_it_cannot_write(page: Any, service: Service) -> None:
    sign_in(page, service, "#/accounts/A013")
    page.get_by_test_id("activity-form").wait_for()
    page.get_by_test_id("activity-text").fill("A call that will not be saved")
    page.get_by_test_id("activity-submit").click()
    page.get_by_test_id("activity-readonly").wait_for()
    assert text(page, "activity-readonly").startswith(
        "Your API key can read but not write, so it cannot add to the log or snooze."
    )
    assert page.get_by_test_id("activity-form").count() == 0
    assert page.get_by_test_id("snooze-form").count() == 0
    page.get_by_test_id("activities-empty").wait_for()

    # another account says so at once, without a form to fill in vain
    page.evaluate("location.hash = '#/accounts/A014'")
    page.get_by_test_id("activity-readonly").wait_for()
    assert page.get_by_test_id("activity-form").count() == 0


def test_search_opens_an_account_and_my_book_recomputes_the_headline(
    page: Any, service: Service
) -> None:
    sign_in(page, service)
    q = "harbor"
    hits = ranked([r for r in CURRENT.values() if q in r["name"].lower()], "churn_probability")[:8]
    page.get_by_test_id("search-input").fill(q)
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('[data-testid=search-hit]')]"
        ".map(r => r.dataset.accountId)) === JSON.stringify(ids)",
        arg=hits,
    )
    page.locator(f"[data-testid=search-hit][data-account-id={hits[-1]}]").click()
    page.get_by_test_id("drivers-table").wait_for()
    assert text(page, "account-name") == CURRENT[hits[-1]]["name"]
    assert page.get_by_test_id("search-results").is_hidden()
    # the keyboard: down to the first hit, Enter opens it
    page.get_by_test_id("search-input").fill(q)
    page.get_by_test_id("search-hit").first.wait_for()
    page.get_by_test_id("search-input").press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "name => document.querySelector('[data-testid=account-name]')?.textContent === name",
        arg=CURRENT[hits[0]]["name"],
    )
    page.get_by_test_id("search-input").fill("no such account")
    page.get_by_test_id("search-none").wait_for()

    # my book: the owner picker filters the list and recomputes the figures and tiers
    page.get_by_test_id("tab-list").click()
    page.get_by_test_id("filter-owner").select_option("Ana Silva")
    mine = [r for r in CURRENT.values() if r["owner"] == "Ana Silva"]
    wait_rows(page, ranked(mine, "churn_probability"))
    page.wait_for_function(
        "n => document.querySelector('[data-testid=kpi-accounts-value]').textContent === n",
        arg=str(len(mine)),
    )
    assert text(page, "headline-title").lower() == "ana silva's book · as of dec 1, 2025"
    assert text(page, "kpi-mrr-at-risk-value") == money(sum(r["mrr_at_risk"] for r in mine))
    for tier in TIERS.keys() | {"low"}:
        assert text(page, f"kpi-tier-{tier}") == str(sum(r["risk_tier"] == tier for r in mine))
    page.get_by_test_id("reset-filters").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=kpi-accounts-value]').textContent === '60'"
    )


def test_renewal_view_lists_the_next_days_and_arr_by_tier(page: Any, service: Service) -> None:
    sign_in(page, service, "#/renewals")
    window = renewing(90)
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('[data-testid=renewal-row]')]"
        ".map(r => r.dataset.accountId)) === JSON.stringify(ids)",
        arg=[r["account_id"] for r in window],
    )
    assert page.get_by_test_id("tab-renewals").get_attribute("aria-current") == "page"
    assert ids(page, "renewal-tier", "tier") == ["high", "medium", "low"]
    for tier in ("high", "medium", "low"):
        arr = 12 * sum(r["renewal_mrr"] for r in window if r["risk_tier"] == tier)
        assert text(page, f"renewal-tier-{tier}-arr") == money(arr)
    assert text(page, "renewals-total-arr") == money(12 * sum(r["renewal_mrr"] for r in window))
    first = page.get_by_test_id("renewal-row").first
    assert first.locator("[data-col=renewal_mrr]").inner_text() == money(window[0]["renewal_mrr"])
    assert first.locator("[data-col=arr]").inner_text() == money(12 * window[0]["renewal_mrr"])

    # a tier card shows only that tier's renewals; a second click shows them all again
    high = page.locator("[data-testid=renewal-tier][data-tier=high]")
    high.click()
    page.wait_for_function(
        "ids => JSON.stringify([...document.querySelectorAll('[data-testid=renewal-row]')]"
        ".map(r => r.dataset.accountId)) === JSON.stringify(ids)",
        arg=[r["account_id"] for r in window if r["risk_tier"] == "high"],
    )
    assert page.url.endswith("#/renewals?days=90&tier=high")
    assert high.get_attribute("aria-pressed") == "true"
    page.locator("[data-testid=renewal-tier][data-tier=high]").click()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=renewal-row]').length === n", arg=len(window)
    )
    page.get_by_test_id("renewals-days").select_option("30")
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=renewal-row]').length === n",
        arg=len(renewing(30)),
    )
    assert page.url.endswith("#/renewals?days=30")
    first.click()
    page.get_by_test_id("drivers-table").wait_for()
    assert text(page, "account-name") == renewing(30)[0]["name"]


def test_scorecard_win_back_and_usage_show_what_the_api_says(page: Any, service: Service) -> None:
    sign_in(page, service, "#/scorecard")
    sc = api_json(page, service.url, service.key, "/v1/scorecard")
    page.get_by_test_id("reliability-chart").wait_for()
    # the world runs on past the runs' windows: all three are graded
    assert (sc["graded_runs"], sc["open_runs"]) == (3, 0)
    assert ids(page, "scorecard-tier", "tier") == [t["tier"] for t in sc["tiers"]]
    rates = page.get_by_test_id("scorecard-tier-rate").all_inner_texts()
    assert rates == [pct(t["rate"]) for t in sc["tiers"]]
    assert ids(page, "scorecard-run", "asOf") == [r["as_of"] for r in sc["runs"]]
    precision = page.locator("[data-testid=scorecard-run] [data-col=precision]").all_inner_texts()
    assert precision == [pct(r["precision_at_k"]) for r in sc["runs"]]
    points = page.eval_on_selector_all(
        "[data-testid=reliability-point]",
        "ps => ps.map(p => [Number(p.dataset.predicted), Number(p.dataset.observed)])",
    )
    assert points == [[b["predicted"], b["observed"]] for b in sc["reliability"]]
    lead = sc["lead"]
    assert text(page, "scorecard-lead-value") == f"{round(lead['median_days'])} days"
    assert text(page, "scorecard-flagged-value") == f"{lead['flagged']} of {lead['churns']}"
    assert sc["drift"] is None  # no champion in this test
    page.get_by_test_id("drift-unavailable").wait_for()
    assert page.get_by_test_id("scorecard-warning").count() == len(sc["warnings"])

    # another list size: the runs' precision is recomputed for the top 25
    page.get_by_test_id("scorecard-k").select_option("25")
    top25 = api_json(page, service.url, service.key, "/v1/scorecard?k=25")
    page.wait_for_function(
        "() => location.hash === '#/scorecard?k=25'"
        " && document.querySelector('[data-testid=scorecard-run] [data-col=precision]')"
    )
    precision = page.locator("[data-testid=scorecard-run] [data-col=precision]").all_inner_texts()
    assert precision == [pct(r["precision_at_k"]) for r in top25["runs"]]

    # win-back: the API's accounts, those still using the product marked
    page.get_by_test_id("tab-winback").click()
    back = api_json(page, service.url, service.key, "/v1/winback?days=90")["data"]
    assert back
    page.get_by_test_id("winback-row").first.wait_for()
    assert ids(page, "winback-row") == [r["account_id"] for r in back]
    using = [r["account_id"] for r in back if r["used_after_end"]]
    assert ids(page, "winback-row][data-used-after-end=true") == using

    # an account's monthly usage beside its risk trend
    page.evaluate("location.hash = '#/accounts/A005'")
    page.get_by_test_id("usage-charts").wait_for()
    usage = api_json(page, service.url, service.key, "/v1/accounts/A005/usage?months=12")
    months = usage["months"]
    bars = page.get_by_test_id("usage-events").locator("rect.spark-bar")
    assert bars.evaluate_all("bs => bs.map(b => b.dataset.month)") == [m["month"] for m in months]
    assert text(page, "usage-events-last") == f"{months[-1]['events']:,}"
    assert text(page, "usage-active_users-last") == f"{months[-1]['active_users']:,}"


def test_a_panel_whose_endpoint_fails_is_one_line(page: Any, service: Service) -> None:
    def fail(status: int, detail: str) -> Any:
        body = json.dumps({"title": "Unavailable", "status": status, "detail": detail})
        return lambda route: route.fulfill(
            status=status, content_type="application/problem+json", body=body
        )

    page.route("**/v1/scorecard*", fail(503, "no data source: start the service with --data"))
    page.route("**/v1/accounts/*/usage*", fail(404, "no usage for this account"))
    page.route("**/v1/accounts/*/plays", fail(503, "the playbook could not be read"))
    sign_in(page, service, "#/scorecard")
    page.get_by_test_id("scorecard-unavailable").wait_for()
    assert text(page, "scorecard-unavailable") == (
        "The scorecard is not available: no data source: start the service with --data"
    )
    page.evaluate("location.hash = '#/accounts/A005'")
    page.get_by_test_id("usage-unavailable").wait_for()
    assert text(page, "usage-unavailable") == "Usage not available: no usage for this account"
    page.get_by_test_id("plays-unavailable").wait_for()
    # the rest of the page works
    page.get_by_test_id("activities-empty").wait_for()
    assert page.get_by_test_id("risk-chart").locator("[data-testid=chart-point]").count() == 3
    assert page.get_by_test_id("error-banner").is_hidden()


# --------------------------------------------------------------------------- phone width

NARROW = (
    {"width": 390, "height": 844},
    {"width": 768, "height": 1024},
    {"width": 1280, "height": 800},
)
"""A phone (the issue's 390 px), a tablet, and the narrower laptop."""

LAYOUT_PROBLEMS = (Path(__file__).parent / "layout_problems.js").read_text(encoding="utf-8")
"""A function of no argument: what sticks out or is cut at the page's width, by kind."""

NO_PROBLEMS = {"page": [], "cards": [], "values": [], "cut": [], "wrapped": [], "separators": []}


@pytest.mark.parametrize("viewport", NARROW, ids=lambda v: f"{v['width']}px")
def test_narrow_screens_fit_and_read_whole(
    page: Any, service: Service, viewport: dict[str, int]
) -> None:
    """On a phone nothing spills out of its card or the page, and every label reads whole."""

    def bigger(**fields: float) -> Any:
        def handle(route: Any) -> None:
            response = route.fetch()
            route.fulfill(response=response, json={**response.json(), **fields})

        return handle

    # figures as long as real books give them: the demo's NRR, a 7-digit MRR at risk
    page.route("**/v1/metrics", bigger(nrr=100.07))
    page.route("**/v1/summary", bigger(mrr_at_risk=1_234_567.0, mrr=12_345_670.0))
    width = viewport["width"]
    page.set_viewport_size(viewport)
    sign_in(page, service)
    page.locator("[data-testid=trend-card][data-state=ready]").wait_for()
    page.get_by_test_id("kpi-nrr-value").wait_for()
    assert text(page, "kpi-nrr-value") == "100.1%"
    assert text(page, "kpi-mrr-at-risk-value") == "$1,234,567"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / f"dashboard-list-{width}.png", full_page=True)
    assert page.evaluate(LAYOUT_PROBLEMS) == NO_PROBLEMS

    # below a laptop's width the table scrolls in its own box; the account column stays
    box = page.get_by_test_id("table-box")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth") is (width < 1280)
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
    edges = box.evaluate(
        "b => { const c = b.querySelector('[data-col=account]').getBoundingClientRect();"
        " const o = b.getBoundingClientRect(); return [c.left - o.left, o.right - c.right]; }"
    )
    assert min(edges) >= 0, edges

    page.locator("[data-testid=at-risk-row] [data-col=account] a").first.click()
    page.get_by_test_id("drivers-table").wait_for()
    page.screenshot(path=OUTPUT / f"dashboard-account-{width}.png", full_page=True)
    assert page.evaluate(LAYOUT_PROBLEMS) == NO_PROBLEMS

    # the account's plays, log and usage, then the views beside the list
    page.get_by_test_id("usage-charts").wait_for()
    page.get_by_test_id("activity-form").wait_for()
    assert page.evaluate(LAYOUT_PROBLEMS) == NO_PROBLEMS
    for view, ready in (
        ("renewals", "renewal-row"),
        ("scorecard", "reliability-chart"),
        ("winback", "winback-row"),
    ):
        page.get_by_test_id(f"tab-{view}").click()
        page.get_by_test_id(ready).first.wait_for()
        page.screenshot(path=OUTPUT / f"dashboard-{view}-{width}.png", full_page=True)
        assert page.evaluate(LAYOUT_PROBLEMS) == NO_PROBLEMS, view
