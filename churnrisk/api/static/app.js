/* churnrisk dashboard: the at-risk list and one account's page, for customer-success managers.
 *
 * Plain JavaScript, no build step, nothing fetched from outside this service. Hash routes:
 *   #/                 the at-risk list (filters and sort kept in the query: #/?tier=high&sort=clv)
 *   #/accounts/<id>    one account: its score, drivers, plays, activity log and usage
 *   #/renewals         the renewals of the next days (?days=90&owner=...)
 *   #/scorecard        how right past scores were (?k=...)
 *   #/winback          accounts that churned lately (?days=90)
 * The API key comes from the fragment (#key=...; removed from the address bar at once) or the
 * sign-in form, lives in sessionStorage (this tab only) and is sent as `Authorization: Bearer`.
 * Every text from the API is put in the page with textContent, never as HTML.
 */
"use strict";

(() => {
  const KEY_STORAGE = "churnrisk.apiKey";
  const PAGE_SIZE = 50;
  const LOCALE = "en-US";
  const CURRENCY = document.documentElement.dataset.currency || "USD";
  const SORTS = ["probability", "mrr_at_risk", "clv", "change", "renewal"];
  const CONTACT_DAYS = 14; // a high-risk account not contacted for this many days is flagged
  const ASCENDING = new Set(["renewal"]); // soonest renewal first; the others riskiest first
  const TREND_POINTS = 26; // as-of dates in the book's trend card (half a year of weekly runs)
  const SVG_NS = "http://www.w3.org/2000/svg";

  const state = {
    key: null,
    summary: null, // GET /v1/summary
    metrics: null, // GET /v1/metrics, or {error}
    trend: null, // GET /v1/trend points, oldest first (null: not loaded, or failed)
    trendSeq: 0,
    query: defaultQuery(),
    list: { key: null, rows: [], next: null, total: 0, runId: null, scrollY: 0 },
    listSeq: 0,
    accountSeq: 0,
    listHash: "#/",
    view: null,
    book: null, // GET /v1/summary?owner=: {owner, summary}, the headline of one owner's book
    bookSeq: 0,
    canWrite: null, // false once the service refused a write with this key (403)
  };

  // ------------------------------------------------------------------ formatting

  const fmt = {
    int: new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 }),
    money: new Intl.NumberFormat(LOCALE, {
      style: "currency", currency: CURRENCY, minimumFractionDigits: 0, maximumFractionDigits: 0,
    }),
    moneyDelta: new Intl.NumberFormat(LOCALE, {
      style: "currency", currency: CURRENCY, minimumFractionDigits: 0, maximumFractionDigits: 0, signDisplay: "exceptZero",
    }),
    moneyShort: new Intl.NumberFormat(LOCALE, {
      style: "currency", currency: CURRENCY, notation: "compact", maximumFractionDigits: 1,
    }),
    pct: new Intl.NumberFormat(LOCALE, {
      style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1,
    }),
    pctDelta: new Intl.NumberFormat(LOCALE, {
      style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: "exceptZero",
    }),
    day: new Intl.DateTimeFormat(LOCALE, {
      year: "numeric", month: "short", day: "numeric", timeZone: "UTC",
    }),
    dayShort: new Intl.DateTimeFormat(LOCALE, { month: "short", day: "numeric", timeZone: "UTC" }),
    stamp: new Intl.DateTimeFormat(LOCALE, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23", timeZone: "UTC", timeZoneName: "short",
    }),
    month: new Intl.DateTimeFormat(LOCALE, { year: "numeric", month: "long", timeZone: "UTC" }),
  };

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const money = (v) => (isNum(v) ? fmt.money.format(v) : "—");
  // A calibrated probability is never exactly 0 or 1; "0.0%" would read as "cannot churn".
  const prob = (p) => {
    if (!isNum(p)) return "—";
    if (p > 0 && p < 0.0005) return `<${fmt.pct.format(0.001)}`;
    if (p < 1 && p > 0.9995) return `>${fmt.pct.format(0.999)}`;
    return fmt.pct.format(p);
  };
  const count = (v) => (isNum(v) ? fmt.int.format(v) : "—");
  // A figure of /v1/metrics, shown by the unit the metrics document declares for it.
  const byUnit = {
    percent: (v) => `${v.toFixed(1)}%`,
    score: (v) => `${v > 0 ? "+" : ""}${Math.round(v)}`,
  };
  const metric = (m, key) => {
    const show = byUnit[(m.units || {})[key]] || ((v) => fmt.int.format(v));
    return isNum(m[key]) ? show(m[key]) : "—";
  };

  function parseDay(text) {
    if (!text) return null;
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(text);
    return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3])) : new Date(text);
  }
  const day = (text) => (text ? fmt.day.format(parseDay(text)) : "—");
  const stamp = (text) => (text ? fmt.stamp.format(new Date(text)) : "—");
  const inDays = (n) => (!isNum(n) ? "" : n === 0 ? "today" : n === 1 ? "in 1 day" : `in ${count(n)} days`);

  function periodLabel(label) {
    if (!label) return "";
    let m = /^(\d{4})-(\d{2})$/.exec(label);
    if (m) return fmt.month.format(new Date(Date.UTC(+m[1], +m[2] - 1, 1)));
    m = /^(\d{4})Q([1-4])$/i.exec(label);
    return m ? `Q${m[2]} ${m[1]}` : label;
  }

  /** A probability change (fraction) in percentage points: text, tone and a description. */
  function change(delta) {
    if (!isNum(delta)) return { text: "—", tone: "flat", title: "no previous score to compare" };
    const pp = delta * 100;
    const size = Math.abs(pp).toFixed(1);
    if (size === "0.0") return { text: "0.0 pp", tone: "flat", title: "unchanged since the previous run" };
    return pp > 0
      ? { text: `▲ ${size} pp`, tone: "up", title: `up ${size} percentage points since the previous run` }
      : { text: `▼ ${size} pp`, tone: "down", title: `down ${size} percentage points since the previous run` };
  }

  const capital = (s) => (s ? s.charAt(0).toUpperCase() + s.slice(1) : "");

  // ------------------------------------------------------------------ DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") el.textContent = value;
      else if (name === "style" && typeof value === "object") Object.assign(el.style, value); // CSP-friendly
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "testid") el.setAttribute("data-testid", value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
  }

  const $ = (sel) => document.querySelector(sel);
  const show = (el, visible) => { el.hidden = !visible; };

  // ------------------------------------------------------------------ tiers

  function tierNames() {
    const sm = state.summary;
    if (sm && Array.isArray(sm.tier_names)) return sm.tier_names;
    if (sm && sm.run) return [...Object.keys(sm.run.tiers || {}), sm.run.low_tier];
    return [];
  }

  /** Colour of a tier: the riskiest red, then orange/amber, the low tier green. */
  function tierTone(name) {
    const run = state.summary && state.summary.run;
    const names = tierNames();
    if (run && name === run.low_tier) return "green";
    const risky = names.filter((n) => !run || n !== run.low_tier);
    const i = risky.indexOf(name);
    if (i < 0) return name === "low" ? "green" : "grey";
    const tones = risky.length <= 1 ? ["red"] : risky.length === 2 ? ["red", "amber"]
      : ["red", "orange", "amber", "yellow"];
    return tones[Math.min(i, tones.length - 1)];
  }

  function tierBadge(name, big) {
    return h("span", {
      class: `badge tone-${tierTone(name)}${big ? " badge-big" : ""}`, testid: "tier-badge",
      "data-tier": name, text: capital(name) || "—",
    });
  }

  const lowTier = (name) => Boolean(state.summary && state.summary.run && state.summary.run.low_tier === name);

  /** Thresholds of the current run, riskiest first: [{tier, from}]. */
  function thresholds() {
    const run = state.summary && state.summary.run;
    if (!run || !run.tiers) return [];
    return Object.entries(run.tiers)
      .map(([tier, from]) => ({ tier, from }))
      .sort((a, b) => b.from - a.from);
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, problem, path) {
      const detail = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
      super(detail);
      this.status = status;
      this.problem = problem || {};
      this.path = path;
    }
  }

  async function api(path, { raw = false, method = "GET", body = undefined } = {}) {
    let res;
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      res = await fetch(path, {
        method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, { title: "Service unreachable", detail: `The churnrisk service did not answer (${err.message}). Is it running?` }, path);
    }
    if (!res.ok) {
      let problem = null;
      try { problem = await res.json(); } catch (_) { problem = null; }
      const err = new ApiError(res.status, problem, path);
      if (res.status === 401) {
        const why = problem && problem.detail ? ` (${problem.detail})` : "";
        signOut(`Your key was not accepted${why}. Check it and sign in again.`);
      }
      throw err;
    }
    return raw ? res : res.json();
  }

  /** Show an error in the banner unless it was a 401 (the sign-in form shows that one). */
  function report(err) {
    if (err && err.status === 401) return;
    const problem = (err && err.problem) || {};
    const title = problem.title || "Something went wrong";
    const detail = problem.detail || (err && err.message) || "";
    const banner = $("#banner");
    banner.replaceChildren(
      h("div", { class: "banner-text" }, h("strong", { text: title }), detail && detail !== title ? h("span", { text: ` — ${detail}` }) : null),
      h("button", { type: "button", class: "btn btn-quiet btn-small", onclick: () => show(banner, false), text: "Dismiss" }),
    );
    show(banner, true);
  }

  // ------------------------------------------------------------------ key handling

  function takeKeyFromFragment() {
    const frag = location.hash.replace(/^#/, "");
    const params = new URLSearchParams(frag.startsWith("key=") ? frag : frag.split("?")[1] || "");
    const key = params.get("key");
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key.trim());
    params.delete("key");
    const route = frag.startsWith("/") ? frag.split("?")[0] : "/";
    const rest = params.toString();
    history.replaceState(null, "", `${location.pathname}${location.search}#${route}${rest ? `?${rest}` : ""}`);
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    state.summary = null;
    state.metrics = null;
    state.trend = null;
    state.trendSeq++;
    state.list = { key: null, rows: [], next: null, total: 0, runId: null, scrollY: 0 };
    state.listSeq++;
    state.accountSeq++;
    state.book = null;
    state.bookSeq++;
    state.canWrite = null;
    showSignIn(message);
  }

  function showSignIn(message) {
    for (const id of ["#headline", "#trend-card", "#list-view", "#account-view", "#sign-out", "#banner", "#tabs", "#search", ...EXTRA_VIEWS]) show($(id), false);
    $("[data-testid=run-info]").textContent = "";
    const msg = $("#signin-message");
    msg.textContent = message || "";
    show(msg, Boolean(message));
    show($("#signin"), true);
    state.view = "signin";
    $("#signin-key").value = "";
    $("#signin-key").focus();
  }

  async function signIn(event) {
    event.preventDefault();
    const key = $("#signin-key").value.trim();
    if (!key) {
      const msg = $("#signin-message");
      msg.textContent = "Enter your API key.";
      show(msg, true);
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    await enter();
  }

  // ------------------------------------------------------------------ start and routing

  async function enter() {
    state.key = sessionStorage.getItem(KEY_STORAGE);
    if (!state.key) { showSignIn(); return; }
    show($("#signin"), false);
    show($("#sign-out"), true);
    show($("#tabs"), true);
    show($("#search"), true);
    loadTrend(); // in parallel with the summary; it reports its own errors
    try {
      await loadSummary();
    } catch (err) {
      if (err.status === 401) return;
      if (err.status !== 404) report(err);
    }
    if (!state.key) return;
    loadMetrics();
    route();
  }

  function parseRoute() {
    const frag = location.hash.replace(/^#/, "") || "/";
    const [path, query] = frag.split("?");
    const acct = /^\/accounts\/(.+)$/.exec(path);
    if (acct) {
      let id = acct[1];
      try { id = decodeURIComponent(id); } catch (_) { /* a stray % in a typed address: keep it as is */ }
      return { name: "account", id };
    }
    const params = new URLSearchParams(query || "");
    if (["/renewals", "/scorecard", "/winback"].includes(path)) return { name: path.slice(1), params };
    return { name: "list", params };
  }

  function route() {
    if (!state.key) return;
    const r = parseRoute();
    markTab(r.name);
    if (r.name === "account") showAccount(r.id);
    else if (r.name === "renewals") showRenewals(r.params);
    else if (r.name === "scorecard") showScorecard(r.params);
    else if (r.name === "winback") showWinback(r.params);
    else showList(r.params);
  }

  // ------------------------------------------------------------------ summary and headline

  async function loadSummary() {
    try {
      state.summary = await api("/v1/summary");
    } catch (err) {
      state.summary = null;
      if (err.status === 404) state.noRun = err;
      renderHeadline();
      throw err;
    }
    state.noRun = null;
    renderRunInfo();
    renderHeadline();
    renderFilterOptions();
    renderTrend(); // tier colours come from the summary
  }

  async function loadMetrics() {
    try {
      state.metrics = await api("/v1/metrics");
    } catch (err) {
      state.metrics = { error: err };
    }
    renderHeadline();
  }

  function renderRunInfo() {
    const run = state.summary && state.summary.run;
    const el = $("[data-testid=run-info]");
    el.replaceChildren();
    if (!run) return;
    el.append(
      h("span", {}, "Scores as of ", h("strong", { testid: "run-as-of", text: day(run.as_of) })),
      h("span", { class: "sep", "aria-hidden": "true", text: "·" }),
      h("span", { title: `run ${run.run_id}` }, "scored ", h("span", { text: stamp(run.scored_at) })),
      h("span", { class: "sep", "aria-hidden": "true", text: "·" }),
      h("span", { testid: "model-version", title: `CLV model v${run.clv_version}; MLflow run ${run.model_run_id}` },
        "churn model ", h("strong", { text: `v${run.churn_version}` })),
    );
  }

  function kpi({ label, value, sub, testid, tone, title }) {
    return h("div", { class: "kpi", testid, title },
      h("div", { class: "kpi-label", text: label }),
      h("div", { class: `kpi-value${tone ? ` tone-text-${tone}` : ""}`, testid: testid && `${testid}-value`, text: value }),
      sub ? h("div", { class: "kpi-sub", text: sub }) : null);
  }

  function renderHeadline() {
    const el = $("#headline");
    let sm = state.summary;
    const run = sm && sm.run;
    const groups = [];
    if (sm) {
      const book = state.book && state.book.owner === state.query.owner ? state.book.summary : null;
      sm = book || sm; // "my book": one owner's figures and tiers; the run's otherwise
      const share = isNum(sm.mrr) && sm.mrr > 0 ? `${fmt.pct.format(sm.mrr_at_risk / sm.mrr)} of total MRR` : "";
      const tiers = sm.tiers || [];
      const total = tiers.reduce((a, t) => a + t.accounts, 0) || 1;
      const tierCard = h("div", { class: "kpi kpi-tiers", testid: "kpi-tiers" },
        h("div", { class: "kpi-label", text: "Accounts by risk tier" }),
        h("div", { class: "stack", role: "img", "aria-label": tiers.map((t) => `${t.tier}: ${t.accounts}`).join(", ") },
          tiers.filter((t) => t.accounts > 0).map((t) => h("span", {
            class: `stack-part tone-bg-${tierTone(t.tier)}`, style: { flexGrow: String(t.accounts / total) },
            title: `${capital(t.tier)}: ${count(t.accounts)} accounts, ${money(t.mrr_at_risk)} MRR at risk`,
          }))),
        h("div", { class: "stack-legend" }, tiers.map((t) =>
          h("button", {
            type: "button", class: "legend-item", title: `Show only ${t.tier}-tier accounts`,
            onclick: () => applyQuery({ ...state.query, tiers: [t.tier] }),
          }, h("span", { class: `dot tone-bg-${tierTone(t.tier)}`, "aria-hidden": "true" }),
          `${capital(t.tier)} `, h("strong", { testid: `kpi-tier-${t.tier}`, text: count(t.accounts) }))),
        ));
      groups.push(h("div", { class: "kpi-group" },
        h("div", { class: "kpi-group-title", testid: "headline-title", text: `${sm.owner ? `${sm.owner}'s book` : "Current scoring run"}${run ? ` · as of ${day(run.as_of)}` : ""}` }),
        h("div", { class: "kpi-row" },
          kpi({ label: "Accounts scored", value: count(sm.accounts), testid: "kpi-accounts", sub: "active accounts", title: "Accounts active on the run's as-of date, each given a score" }),
          kpi({
            label: "MRR at risk", value: money(sm.mrr_at_risk), testid: "kpi-mrr-at-risk", sub: share, tone: "red",
            title: `Sum of MRR × churn probability over all scored accounts; total MRR ${money(sm.mrr)}`,
          }),
          tierCard)));
    } else if (state.noRun) {
      groups.push(h("div", { class: "kpi-group" },
        h("div", { class: "kpi-group-title", text: "Scoring run" }),
        h("div", { class: "kpi-row" }, kpi({ label: "Accounts scored", value: "—", testid: "kpi-accounts", sub: "no scoring run yet" }))));
    }
    const m = state.metrics;
    let title = "Health metrics";
    let cards;
    if (!m) {
      cards = ["Churn rate", "NRR", "GRR", "NPS"].map((label) => kpi({ label, value: "…", sub: "loading" }));
    } else if (m.error) {
      const why = m.error.message;  // the service says why, without server paths
      title = "Health metrics · unavailable";
      cards = [h("div", { class: "kpi kpi-wide", testid: "metrics-unavailable" },
        h("div", { class: "kpi-label", text: "Churn rate, NRR, GRR, NPS" }),
        h("div", { class: "kpi-note", text: why }))];
    } else {
      const notes = m.notes || {};
      const card = (label, key, sub, help) => kpi({
        label, value: metric(m, key), sub, testid: `kpi-${key.replace("_", "-")}`, title: notes[key] ? `${help}. ${notes[key]}` : help,
      });
      title = `Health metrics · ${periodLabel(m.period)}${m.segment ? ` · ${m.segment}` : ""}`;
      cards = [
        card("Churn rate", "churn_rate", "of customers", "Customers lost in the period, as a share of the customers at its start"),
        card("NRR", "nrr", "net retention", "Net revenue retention: MRR kept from the customers at the start, with expansion"),
        card("GRR", "grr", "gross retention", "Gross revenue retention: MRR kept from the customers at the start, without expansion"),
        card("NPS", "nps", isNum(m.promoters_pct) ? `${m.promoters_pct.toFixed(0)}% promoters` : "net promoter score",
          isNum(m.promoters_pct) ? `Net promoter score: ${m.promoters_pct.toFixed(0)}% promoters − ${m.detractors_pct.toFixed(0)}% detractors` : "Net promoter score"),
      ];
    }
    groups.push(h("div", { class: "kpi-group" },
      h("div", { class: "kpi-group-title", testid: "metrics-period", text: title }),
      h("div", { class: "kpi-row" }, cards)));
    el.replaceChildren(...groups);
    show(el, state.view === "list");
  }

  // ------------------------------------------------------------------ the book's risk trend (list view)

  async function loadTrend() {
    const seq = ++state.trendSeq;
    try {
      const body = await api(`/v1/trend?limit=${TREND_POINTS}`);
      if (seq !== state.trendSeq) return;
      state.trend = Array.isArray(body.points) ? body.points : [];
    } catch (err) {
      if (seq !== state.trendSeq) return;
      state.trend = null;
      $("#trend-card").dataset.state = "error";
      // the list stands on its own: say what failed, keep the rest of the page working
      if (err.status !== 401) {
        report({ problem: { title: "The risk trend could not be loaded", detail: err.message } });
      }
    }
    renderTrend();
  }

  /** Tier names over all points, riskiest first (the newest point's order leads). */
  function trendTierNames(points) {
    const names = [];
    for (const p of [...points].reverse()) {
      for (const t of p.tiers || []) if (!names.includes(t.tier)) names.push(t.tier);
    }
    return names;
  }

  /** The latest change of the book's MRR at risk against the previous as-of date. */
  function trendChange(points) {
    const last = points[points.length - 1];
    if (points.length < 2) {
      return {
        text: "First scoring run; the trend starts here", tone: "flat",
        title: `${money(last.mrr_at_risk)} MRR at risk as of ${day(last.as_of)}`,
      };
    }
    const prev = points[points.length - 2];
    const delta = last.mrr_at_risk - prev.mrr_at_risk;
    const prevDay = parseDay(prev.as_of);
    const sameYear = prevDay.getUTCFullYear() === parseDay(last.as_of).getUTCFullYear();
    const since = `since ${(sameYear ? fmt.dayShort : fmt.day).format(prevDay)}`;
    const title = `MRR at risk went from ${money(prev.mrr_at_risk)} as of ${day(prev.as_of)} to ${money(last.mrr_at_risk)} as of ${day(last.as_of)}`;
    if (!isNum(delta) || fmt.money.format(Math.abs(delta)) === fmt.money.format(0)) {
      return { text: `No change ${since}`, tone: "flat", title };
    }
    const share = prev.mrr_at_risk > 0 ? ` (${fmt.pctDelta.format(delta / prev.mrr_at_risk)})` : "";
    return { text: `${fmt.moneyDelta.format(delta)}${share} ${since}`, tone: delta > 0 ? "up" : "down", title };
  }

  /** The card between the headline and the at-risk table; hidden with no scoring run. */
  function renderTrend() {
    const card = $("#trend-card");
    const points = state.trend || [];
    if (state.trend) card.dataset.state = points.length ? "ready" : "empty";
    const visible = state.view === "list" && points.length > 0;
    show(card, visible);
    if (!visible) return;
    const names = trendTierNames(points);
    const ch = trendChange(points);
    const plot = h("div", { class: "trend-plot" });
    card.replaceChildren(
      h("div", { class: "trend-side" },
        h("h2", { id: "trend-card-title", text: "MRR at risk over time" }),
        h("p", { class: `trend-caption tone-text-${ch.tone}`, testid: "trend-caption", title: ch.title, text: ch.text }),
        h("p", {
          class: "trend-sub muted",
          text: points.length > 1 ? `${count(points.length)} scoring dates since ${day(points[0].as_of)}` : `as of ${day(points[0].as_of)}`,
        }),
        h("ul", { class: "trend-legend", "aria-label": "Risk tiers" }, names.map((n) =>
          h("li", {}, h("span", { class: `dot tone-bg-${tierTone(n)}`, "aria-hidden": "true" }), capital(n))))),
      plot);
    drawTrendChart(plot, points, names);
  }

  /** A currency axis from 0 with about three round steps. */
  function moneyScale(max) {
    if (!(max > 0)) return { top: 100, step: 50 };
    const raw = max / 3;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((v) => v >= raw - 1e-9);
    return { top: Math.ceil(max / step - 1e-9) * step, step };
  }

  function trendTitle(p) {
    const share = isNum(p.mrr) && p.mrr > 0 ? ` (${prob(p.mrr_at_risk / p.mrr)} of ${money(p.mrr)} MRR)` : "";
    return [
      `As of ${day(p.as_of)}: ${money(p.mrr_at_risk)} MRR at risk${share}, ${count(p.accounts)} accounts`,
      ...(p.tiers || []).map((t) =>
        `${capital(t.tier)}: ${count(t.accounts)} account${t.accounts === 1 ? "" : "s"}, ${money(t.mrr_at_risk)} at risk`),
    ].join("\n");
  }

  /** Stacked bars of MRR at risk per tier, one per as-of date, the riskiest tier at the bottom. */
  function drawTrendChart(box, points, names) {
    const W = Math.max(280, Math.floor(box.clientWidth || 640));
    const H = 132;
    const m = { left: 50, right: 6, top: 18, bottom: 22 };
    const iw = W - m.left - m.right;
    const ih = H - m.top - m.bottom;
    const { top, step } = moneyScale(Math.max(0, ...points.map((p) => p.mrr_at_risk).filter(isNum)));
    const y = (v) => m.top + ih - (v / top) * ih;
    const slot = iw / points.length;
    const bw = Math.max(4, Math.min(48, slot * 0.6));
    const cx = (i) => m.left + slot * (i + 0.5);
    const first = points[0];
    const last = points[points.length - 1];
    const label = points.length > 1
      ? `MRR at risk by risk tier at ${points.length} scoring dates, from ${money(first.mrr_at_risk)} as of ${day(first.as_of)} to ${money(last.mrr_at_risk)} as of ${day(last.as_of)}`
      : `MRR at risk by risk tier: ${money(last.mrr_at_risk)} as of ${day(last.as_of)}`;
    const svg = s("svg", {
      width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "group", "aria-label": label,
      class: "trend trend-book", "data-testid": "trend-chart",
    });

    const grid = s("g", { class: "grid" });
    for (let k = 0; k * step <= top + 1e-9; k++) {
      const v = k * step;
      grid.append(s("line", { x1: m.left, x2: m.left + iw, y1: y(v), y2: y(v) }),
        s("text", { x: m.left - 8, y: y(v), class: "tick tick-y", "text-anchor": "end", "dominant-baseline": "middle" },
          fmt.moneyShort.format(v)));
    }
    svg.append(grid);

    const cols = s("g", { class: "columns" });
    points.forEach((p, i) => {
      const col = s("g", {
        class: "trend-col", role: "img", "data-testid": "trend-point",
        "data-as-of": p.as_of, "data-mrr-at-risk": p.mrr_at_risk,
      }, s("title", {}, trendTitle(p)),
      s("rect", { class: "trend-hit", x: cx(i) - slot / 2, y: m.top, width: slot, height: ih }));
      let acc = 0;
      for (const name of names) {
        const tier = (p.tiers || []).find((t) => t.tier === name);
        const v = tier ? tier.mrr_at_risk : 0;
        if (!isNum(v) || v <= 0) continue;
        col.append(s("rect", {
          class: `seg tone-fill-${tierTone(name)}`, "data-tier": name,
          x: cx(i) - bw / 2, y: y(acc + v), width: bw, height: Math.max(0.5, y(acc) - y(acc + v)),
        }));
        acc += v;
      }
      cols.append(col);
    });
    svg.append(cols, s("line", { x1: m.left, x2: m.left + iw, y1: m.top + ih, y2: m.top + ih, class: "axis" }));

    // a label centred on x, or flush with the edge it would cross (about 6.8 px a character)
    const placed = (x, text) => {
      const half = text.length * 3.4;
      if (x + half > W - 2) return { x: W - 2, "text-anchor": "end" };
      if (x - half < 2) return { x: 2, "text-anchor": "start" };
      return { x, "text-anchor": "middle" };
    };
    if (isNum(last.mrr_at_risk)) {
      const text = fmt.moneyShort.format(last.mrr_at_risk);
      svg.append(s("text", { ...placed(cx(points.length - 1), text), y: y(last.mrr_at_risk) - 5, class: "point-label" }, text));
    }

    const xl = s("g", { class: "x-labels" });
    const xs = points.map((_, i) => cx(i));
    for (const { i, text } of dateLabels(points.map((p) => p.as_of), xs, iw)) {
      xl.append(s("text", { ...placed(xs[i], text), y: m.top + ih + 16, class: "tick" }, text));
    }
    svg.append(xl);
    box.replaceChildren(svg);
  }

  // ------------------------------------------------------------------ the at-risk list

  function defaultQuery() {
    return {
      tiers: [], segment: "", plan: "", owner: "", min_probability: "", min_mrr: "", renewing_within: "",
      include_snoozed: false, sort: "probability",
    };
  }

  const FILTER_KEYS = ["segment", "plan", "owner", "min_probability", "min_mrr", "renewing_within"];

  function queryFromParams(params) {
    const q = defaultQuery();
    q.tiers = params.getAll("tier");
    for (const k of FILTER_KEYS) q[k] = params.get(k) || "";
    q.include_snoozed = params.get("include_snoozed") === "true";
    const sort = params.get("sort");
    if (SORTS.includes(sort)) q.sort = sort;
    return q;
  }

  /** The query as URL parameters: for the hash (with sort) and for the API. */
  function queryParams(q) {
    const p = new URLSearchParams();
    for (const t of q.tiers) p.append("tier", t);
    for (const k of FILTER_KEYS) if (q[k] !== "") p.set(k, q[k]);
    if (q.include_snoozed) p.set("include_snoozed", "true");
    if (q.sort !== "probability") p.set("sort", q.sort);
    return p;
  }

  function renderFilterOptions() {
    const sm = state.summary;
    if (!sm) return;
    const chips = $("#tier-chips");
    const byTier = Object.fromEntries((sm.tiers || []).map((t) => [t.tier, t]));
    chips.replaceChildren(...tierNames().map((name) => h("button", {
      type: "button", class: `chip tone-${tierTone(name)}`, "data-tier": name, "aria-pressed": "false",
      testid: `filter-tier-${name}`,
      onclick: () => {
        const tiers = new Set(state.query.tiers);
        if (tiers.has(name)) tiers.delete(name); else tiers.add(name);
        applyQuery({ ...state.query, tiers: tierNames().filter((t) => tiers.has(t)) });
      },
    }, h("span", { class: "chip-dot", "aria-hidden": "true" }), capital(name),
    byTier[name] ? h("span", { class: "chip-count", text: count(byTier[name].accounts) }) : null)));
    fillSelect($("#f-segment"), sm.segments, "All segments");
    fillSelect($("#f-plan"), sm.plans, "All plans");
    fillSelect($("#f-owner"), sm.owners, "All owners");
    syncFilterInputs();
  }

  function fillSelect(select, values, allLabel) {
    const current = select.value;
    select.replaceChildren(h("option", { value: "", text: allLabel }),
      ...(values || []).map((v) => h("option", { value: v, text: v })));
    select.value = current;
  }

  function syncFilterInputs() {
    const q = state.query;
    for (const chip of document.querySelectorAll("#tier-chips .chip")) {
      chip.setAttribute("aria-pressed", String(q.tiers.includes(chip.dataset.tier)));
    }
    for (const [id, k] of [["#f-segment", "segment"], ["#f-plan", "plan"], ["#f-owner", "owner"]]) {
      const sel = $(id);
      if (q[k] && ![...sel.options].some((o) => o.value === q[k])) sel.append(h("option", { value: q[k], text: q[k] }));
      sel.value = q[k];
    }
    const minP = $("#f-min-probability");
    const pct = q.min_probability === "" ? "" : String(+(Number(q.min_probability) * 100).toFixed(4));
    if (document.activeElement !== minP) minP.value = pct;
    const minM = $("#f-min-mrr");
    if (document.activeElement !== minM) minM.value = q.min_mrr;
    $("#f-sort").value = q.sort;
    const renewing = $("#f-renewing");
    if (q.renewing_within && ![...renewing.options].some((o) => o.value === q.renewing_within)) {
      renewing.append(h("option", { value: q.renewing_within, text: `${q.renewing_within} days` })); // from a shared address
    }
    renewing.value = q.renewing_within;
    $("#f-snoozed").checked = q.include_snoozed;
    for (const th of document.querySelectorAll("th[data-sort]")) {
      if (th.dataset.sort === q.sort) th.setAttribute("aria-sort", ASCENDING.has(q.sort) ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }

  function applyQuery(q) {
    state.query = q;
    const qs = queryParams(q).toString();
    state.listHash = `#/${qs ? `?${qs}` : ""}`;
    if (parseRoute().name !== "list") {
      location.hash = state.listHash;
      return;
    }
    history.replaceState(null, "", `${location.pathname}${location.search}${state.listHash}`);
    markTab("list");
    syncFilterInputs();
    loadBook();
    loadList(false);
  }

  function showList(params) {
    state.view = "list";
    hideExtraViews();
    state.query = queryFromParams(params);
    loadBook();
    const qs = queryParams(state.query).toString();
    state.listHash = `#/${qs ? `?${qs}` : ""}`;
    show($("#account-view"), false);
    show($("#list-view"), true);
    show($("#headline"), true);
    renderTrend();
    document.title = "Accounts at risk · Churn risk";
    syncFilterInputs();
    $("#list-view").classList.toggle("no-run", Boolean(state.noRun));
    if (state.noRun) { renderNoRun(); return; }
    const runId = state.summary && state.summary.run ? state.summary.run.run_id : null;
    if (state.list.key === qs && state.list.runId === runId && state.list.rows.length) {
      renderRows(); // came back from an account: the same list, where we left it
      requestAnimationFrame(() => window.scrollTo(0, state.list.scrollY));
      return;
    }
    loadList(false);
  }

  function renderNoRun() {
    $("#rows").replaceChildren();
    const empty = $("#list-empty");
    empty.replaceChildren(h("strong", { text: "No scores yet." }), " ",
      h("span", { text: "The accounts have not been scored: run " }), h("code", { text: "churnrisk score DATA" }),
      h("span", { text: ", then reload this page." }));
    show(empty, true);
    $("#list-count").textContent = "";
    show($("#load-more"), false);
  }

  async function loadList(append) {
    const q = state.query;
    const params = queryParams(q);
    const key = params.toString();
    params.set("sort", q.sort);
    params.set("contact_days", String(CONTACT_DAYS));
    params.set("limit", String(PAGE_SIZE));
    if (append && state.list.next) params.set("cursor", state.list.next);
    const seq = ++state.listSeq;
    const box = $("[data-testid=table-box]");
    box.setAttribute("aria-busy", "true");
    if (!append) {
      $("#list-count").textContent = "Loading…";
      $("#rows").classList.add("loading");
    }
    const more = $("#load-more");
    more.disabled = true;
    try {
      const page = await api(`/v1/accounts/at-risk?${params}`);
      if (seq !== state.listSeq) return;
      const prev = state.list;
      state.list = {
        key, run: page.run || null, runId: page.run ? page.run.run_id : null, next: page.next_cursor, total: page.total,
        rows: append ? prev.rows.concat(page.data) : page.data, scrollY: append ? prev.scrollY : 0,
      };
      if (page.run && state.summary && state.summary.run && page.run.run_id !== state.summary.run.run_id) {
        loadSummary().catch(report); // a new run landed: refresh the headline and filter values
        loadTrend();
        state.book = null;
        loadBook();
      }
      renderRows();
    } catch (err) {
      if (seq !== state.listSeq) return;
      if (err.status === 409) { // the cursor belongs to an older run: start again on the new one
        report({ problem: { title: "A new scoring run arrived", detail: "The list was reloaded from the top." } });
        loadSummary().catch(() => {});
        loadTrend();
        state.list.next = null;
        loadList(false);
        return;
      }
      if (err.status === 404) {
        state.noRun = err;
        $("#list-view").classList.add("no-run");
        renderNoRun();
        return;
      }
      $("#list-count").textContent = "";
      report(err);
    } finally {
      if (seq === state.listSeq) {
        box.removeAttribute("aria-busy");
        $("#rows").classList.remove("loading");
        more.disabled = false;
      }
    }
  }

  function renderRows() {
    const { rows, total, next } = state.list;
    const body = $("#rows");
    body.replaceChildren(...rows.map(rowElement));
    const filtered = queryParams(state.query).toString().replace(/(^|&)sort=[^&]*/, "") !== "";
    $("#list-count").textContent = rows.length
      ? `Showing ${count(rows.length)} of ${count(total)} ${filtered ? "matching " : ""}account${total === 1 ? "" : "s"}`
      : "";
    const empty = $("#list-empty");
    if (!rows.length) {
      empty.replaceChildren(h("span", { text: "No accounts match these filters. " }),
        h("button", { type: "button", class: "btn btn-quiet btn-small", text: "Clear filters", onclick: resetFilters }));
    }
    show(empty, rows.length === 0);
    const more = $("#load-more");
    more.textContent = next ? `Load ${count(Math.min(PAGE_SIZE, total - rows.length))} more` : "";
    show(more, Boolean(next));
  }

  function accountHref(id) {
    return `#/accounts/${encodeURIComponent(id)}`;
  }

  function rowElement(r) {
    const run = state.list.run;
    const ch = !isNum(r.probability_change) && run && run.previous_run_id
      ? { text: "new", tone: "flat", title: "not scored in the previous run" }
      : change(r.probability_change);
    const top = (r.drivers || [])[0];
    const driverTitle = (r.drivers || []).map((d) => d.text).join("\n");
    return h("tr", {
      testid: "at-risk-row", "data-account-id": r.account_id, "data-tier": r.risk_tier,
      "data-needs-contact": r.needs_contact ? "true" : null, "data-snoozed": r.snoozed_until ? "true" : null,
      class: r.snoozed_until ? "snoozed" : null,
    },
      h("td", { class: "col-account", "data-col": "account" },
        h("a", { href: accountHref(r.account_id), class: "acct-link", text: r.name || r.account_id }),
        h("span", { class: "acct-id", text: r.account_id })),
      h("td", { "data-col": "segment" }, h("span", { text: r.segment || "—" }),
        h("span", { class: "acct-id", "data-col": "plan", text: r.plan ? `${r.plan} plan` : "no plan" })),
      h("td", { class: "col-owner", "data-col": "owner", text: r.owner || "—" }),
      h("td", { "data-col": "tier" }, tierBadge(r.risk_tier)),
      h("td", { class: "num strong", "data-col": "probability", "data-value": r.churn_probability, text: prob(r.churn_probability) }),
      h("td", { class: `num change tone-text-${ch.tone}`, "data-col": "change", title: ch.title, text: ch.text }),
      h("td", { class: "num", "data-col": "mrr", text: money(r.mrr) }),
      h("td", { class: "num", "data-col": "mrr_at_risk", "data-value": r.mrr_at_risk, text: money(r.mrr_at_risk) }),
      h("td", { class: "num", "data-col": "clv", "data-value": r.lifetime_clv, text: money(r.lifetime_clv) }),
      h("td", { class: "col-renewal", "data-col": "renewal", "data-value": r.renewal_date || null, title: "Context, not a driver: the nearest end of a subscription term" },
        r.renewal_date ? h("span", { text: inDays(r.days_to_renewal) }) : h("span", { class: "muted", text: "—" }),
        r.renewal_date ? h("span", { class: "acct-id", text: day(r.renewal_date) }) : null),
      contactCell(r),
      h("td", { class: "col-driver", "data-col": "driver", title: driverTitle || null },
        top ? h("div", { class: "driver-cell" },
          h("span", { class: "driver-meaning", text: top.meaning || top.feature }),
          top.display != null && top.display !== ""
            ? h("span", { class: "driver-value" }, "value ", h("strong", { text: String(top.display) })) : null)
          : h("span", { class: "muted", text: "—" })));
  }

  function resetFilters() {
    applyQuery(defaultQuery());
  }

  function onRowClick(event) {
    if (event.target.closest("a, button")) return;
    const tr = event.target.closest("tr[data-account-id]");
    if (!tr) return;
    if (window.getSelection && String(window.getSelection()).length) return; // selecting text
    openAccount(tr.dataset.accountId);
  }

  function openAccount(id) {
    state.list.scrollY = window.scrollY;
    location.hash = accountHref(id);
  }

  let debounce = null;
  function onFilterInput(event) {
    const el = event.target;
    const q = { ...state.query };
    if (el.id === "f-min-probability") {
      const v = el.value.trim();
      const n = Number(v);
      const ok = v === "" || (Number.isFinite(n) && n >= 0 && n <= 100);
      el.setAttribute("aria-invalid", String(!ok));
      if (!ok) return;
      q.min_probability = v === "" ? "" : String(+(n / 100).toFixed(6));
    } else if (el.id === "f-min-mrr") {
      const v = el.value.trim();
      const n = Number(v);
      const ok = v === "" || (Number.isFinite(n) && n >= 0);
      el.setAttribute("aria-invalid", String(!ok));
      if (!ok) return;
      q.min_mrr = v === "" ? "" : String(n);
    } else {
      return;
    }
    clearTimeout(debounce);
    debounce = setTimeout(() => applyQuery(q), 350);
  }

  function onFilterChange(event) {
    const el = event.target;
    if (el.id === "f-snoozed") { applyQuery({ ...state.query, include_snoozed: el.checked }); return; }
    const k = { "f-segment": "segment", "f-plan": "plan", "f-owner": "owner", "f-sort": "sort", "f-renewing": "renewing_within" }[el.id];
    if (k) applyQuery({ ...state.query, [k]: el.value });
  }

  async function downloadCsv() {
    const btn = $("#download-csv");
    const label = btn.lastChild.textContent;
    btn.disabled = true;
    btn.lastChild.textContent = " Preparing…";
    try {
      const res = await api("/v1/export/scores?format=csv&spreadsheet=true", { raw: true });
      const blob = await res.blob();
      const cd = res.headers.get("Content-Disposition") || "";
      const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
      const run = state.summary && state.summary.run;
      const name = m ? decodeURIComponent(m[1]) : `churnrisk-scores-${run ? run.as_of : "export"}.csv`;
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      report(err);
    } finally {
      btn.disabled = false;
      btn.lastChild.textContent = label;
    }
  }

  // ------------------------------------------------------------------ one account

  async function showAccount(id) {
    state.view = "account";
    hideExtraViews();
    const seq = ++state.accountSeq;
    show($("#list-view"), false);
    show($("#headline"), false);
    show($("#trend-card"), false);
    const view = $("#account-view");
    view.replaceChildren(backLink(), h("p", { class: "muted loading-text", text: "Loading account…" }));
    show(view, true);
    window.scrollTo(0, 0);
    try {
      const acct = await api(`/v1/accounts/${encodeURIComponent(id)}`);
      if (seq !== state.accountSeq || state.view !== "account") return;
      renderAccount(acct);
    } catch (err) {
      if (seq !== state.accountSeq) return;
      if (err.status === 401) return;
      view.replaceChildren(backLink(), h("div", { class: "card empty", testid: "account-error" },
        h("strong", { text: err.status === 404 ? "Account not found. " : "Could not load this account. " }),
        h("span", { text: err.message })));
    }
  }

  function backLink() {
    return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", {
        href: state.listHash, class: "back", testid: "back-link",
        onclick: (e) => {
          if (history.length > 1 && state.cameFromList) { e.preventDefault(); history.back(); }
        },
      }, "← Back to the at-risk list"));
  }

  function renderAccount(a) {
    state.lastAccount = a; // for redrawing the chart on resize
    document.title = `${a.name || a.account_id} · Churn risk`;
    const ch = change(a.probability_change);
    const history_ = a.history || [];
    const facts = [
      a.account_id, a.segment, a.plan ? `${a.plan} plan` : null, a.owner ? `owner ${a.owner}` : null,
    ].filter(Boolean);
    const head = h("div", { class: "acct-head" },
      h("div", { class: "acct-title" },
        h("h1", { testid: "account-name", text: a.name || a.account_id }),
        tierBadge(a.risk_tier, true)),
      h("p", { class: "acct-facts muted", testid: "account-facts", text: facts.join(" · ") }));

    const notCurrent = a.current === false
      ? h("div", { class: "notice", testid: "not-current" },
        h("strong", { text: "Not in the current run. " }),
        `This is the account's last score, as of ${day(a.as_of)}. It was not active on the current run's as-of date (it may have churned).`)
      : null;

    const kpis = h("div", { class: "kpi-row acct-kpis" },
      h("div", { class: "kpi kpi-prob", testid: "account-probability" },
        h("div", { class: "kpi-label", text: "Churn probability" }),
        h("div", { class: "kpi-value" }, h("span", { testid: "account-probability-value", text: prob(a.churn_probability) }),
          h("span", { class: `kpi-change tone-text-${ch.tone}`, title: ch.title, testid: "account-change", text: ch.text })),
        h("div", { class: "kpi-sub", text: isNum(a.previous_probability) ? `was ${prob(a.previous_probability)} in the previous run` : "no previous score" })),
      kpi({ label: "MRR", value: money(a.mrr), testid: "account-mrr", sub: "monthly recurring revenue" }),
      kpi({ label: "MRR at risk", value: money(a.mrr_at_risk), testid: "account-mrr-at-risk", sub: "MRR × churn probability", tone: "red" }),
      kpi({ label: "Revenue, next 12 months", value: money(a.revenue_12m), testid: "account-revenue", sub: "projected" }),
      kpi({ label: "Lifetime CLV", value: money(a.lifetime_clv), testid: "account-clv", sub: "projected customer lifetime value" }),
      kpi({
        label: "Renewal", value: a.renewal_date ? day(a.renewal_date) : "—", testid: "account-renewal",
        sub: a.renewal_date ? `${inDays(a.days_to_renewal)} · context, not a driver` : "no known term end",
        title: "The nearest end of a subscription term known on the as-of date",
      }),
      a.renewal_date ? kpi({
        label: "Up for renewal", value: isNum(a.renewal_mrr) ? money(a.renewal_mrr) : "—", testid: "account-renewal-mrr",
        sub: isNum(a.renewal_mrr) ? `MRR · ${money(12 * a.renewal_mrr)} ARR` : "MRR of the terms ending then",
        title: "MRR of the subscriptions whose term ends on the renewal date (ARR = 12 × MRR)",
      }) : null);

    const drivers = h("section", { class: "card panel", testid: "drivers", "aria-labelledby": "drivers-title" },
      h("h2", { id: "drivers-title", text: lowTier(a.risk_tier) ? "What drives this account's score?" : "Why is this account at risk?" }),
      h("p", { class: "muted panel-intro", text: "What customer success can act on (usage, engagement, tickets, NPS, billing) that moves the score most. Red bars raise the risk, green bars lower it." }),
      driversTable(a.drivers || []),
      h("h3", { class: "context-title", id: "context-title", text: "Context" }),
      h("p", { class: "muted panel-intro", text: "Who the account is and where its contract stands (size, plan, tenure, segment, renewal timing). It moves the score too, but is not something to act on, so it is never ranked among the drivers." }),
      contextTable(a.context || []));

    const changes = h("section", { class: "card panel", testid: "change", "aria-labelledby": "change-title" },
      h("h2", { id: "change-title", text: "Why did the score change?" }),
      changeSummary(a, history_),
      changeTable(a.change_drivers || [], a));

    const trend = h("section", { class: "card panel panel-chart", testid: "trend", "aria-labelledby": "trend-title" },
      h("div", { class: "panel-head" },
        h("h2", { id: "trend-title", text: "Risk trend" }),
        h("p", { class: "muted", text: `Churn probability at each scoring run (${history_.length} run${history_.length === 1 ? "" : "s"}); dashed lines are the tier thresholds.` })),
      h("div", { class: "chart", testid: "risk-chart-box" }));

    const meta = h("p", { class: "run-meta muted", testid: "account-run" },
      `Scored as of ${day(a.as_of)} (${stamp(a.scored_at)}) · churn model v${a.churn_version} · CLV model v${a.clv_version} · run ${a.run_id}`);

    const view = $("#account-view");
    view.replaceChildren(backLink(), h("div", { class: "card acct-card" }, head, notCurrent, kpis),
      h("div", { class: "grid-2" }, drivers, changes),
      h("div", { class: "grid-2" }, playsPanel(), activityPanel()),
      h("div", { class: "grid-2" }, trend, usagePanel()), meta);
    drawChart(view.querySelector(".chart"), history_);
    loadAccountPanels(a, state.accountSeq);
  }

  function barCell(value, maxAbs, tone) {
    const width = maxAbs > 0 ? Math.max(2, (Math.abs(value) / maxAbs) * 50) : 0;
    const side = value > 0 ? "right" : "left";
    return h("td", { class: "bar-cell", title: `contribution ${value > 0 ? "+" : ""}${value.toFixed(3)} (log-odds of churn)` },
      h("div", { class: "bar-track" },
        h("span", { class: "bar-axis" }),
        h("span", { class: `bar bar-${side} tone-bg-${tone}`, style: { width: `${width.toFixed(1)}%` } })));
  }

  function driversTable(drivers) {
    if (!drivers.length) return h("p", { class: "muted", text: "No drivers recorded for this score." });
    const maxAbs = Math.max(...drivers.map((d) => Math.abs(d.contribution || 0)));
    return h("table", { class: "mini-table", testid: "drivers-table" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "Factor" }), h("th", { scope: "col", class: "num", text: "Value" }),
        h("th", { scope: "col", class: "bar-head", text: "Effect on risk" }))),
      h("tbody", {}, drivers.map((d) => {
        const raises = d.direction === "raises";
        return h("tr", { testid: "driver-row", "data-feature": d.feature, "data-direction": d.direction },
          h("td", {}, h("div", { class: "factor", text: d.meaning || d.feature }),
            h("div", { class: `factor-dir tone-text-${raises ? "up" : "down"}`, text: raises ? "▲ raises risk" : "▼ lowers risk" })),
          h("td", { class: "num", text: d.display != null ? String(d.display) : "missing" }),
          barCell(d.contribution || 0, maxAbs, raises ? "red" : "green"));
      })));
  }

  function contextTable(items) {
    if (!items.length) return h("p", { class: "muted", testid: "context-empty", text: "No context recorded for this score." });
    const maxAbs = Math.max(...items.map((d) => Math.abs(d.contribution || 0)));
    return h("table", { class: "mini-table", testid: "context-table", "aria-labelledby": "context-title" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "Context" }), h("th", { scope: "col", class: "num", text: "Value" }),
        h("th", { scope: "col", class: "bar-head", text: "Effect on risk" }))),
      h("tbody", {}, items.map((d) => {
        const raises = d.direction === "raises";
        return h("tr", { testid: "context-row", "data-feature": d.feature, "data-direction": d.direction },
          h("td", {}, h("div", { class: "factor", text: d.meaning || d.feature }),
            h("div", { class: "factor-dir muted", text: raises ? "▲ raises risk" : "▼ lowers risk" })),
          h("td", { class: "num", text: d.display != null ? String(d.display) : "missing" }),
          barCell(d.contribution || 0, maxAbs, "grey"));
      })));
  }

  function changeSummary(a, hist) {
    if (!isNum(a.previous_probability)) {
      return h("p", { class: "change-summary", testid: "change-summary" },
        hist.length >= 2 ? "The previous run did not score this account, so there is nothing to compare yet."
          : "This is the account's first scoring run: there is no earlier score to compare.");
    }
    const ch = change(a.probability_change);
    return h("p", { class: "change-summary", testid: "change-summary" },
      "Churn probability went from ", h("strong", { text: prob(a.previous_probability) }),
      a.previous_as_of ? ` (as of ${day(a.previous_as_of)})` : "",
      " to ", h("strong", { text: prob(a.churn_probability) }), ` (as of ${day(a.as_of)}): `,
      h("strong", { class: `tone-text-${ch.tone}`, text: ch.text }), ".");
  }

  function changeTable(items, a) {
    if (!items.length) {
      return isNum(a.previous_probability)
        ? h("p", { class: "muted", text: "None of the account's data moved its score noticeably." })
        : null;
    }
    const maxAbs = Math.max(...items.map((d) => Math.abs(d.contribution_change || 0)));
    return h("table", { class: "mini-table", testid: "change-drivers" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "What changed" }), h("th", { scope: "col", class: "num", text: "Before → after" }),
        h("th", { scope: "col", class: "bar-head", text: "Effect on risk" }))),
      h("tbody", {}, items.map((d) => {
        const raised = d.direction === "raised";
        return h("tr", { testid: "change-driver-row", "data-feature": d.feature, "data-direction": d.direction },
          h("td", {}, h("div", { class: "factor", text: d.meaning || d.feature }),
            h("div", { class: `factor-dir tone-text-${raised ? "up" : "down"}`, text: raised ? "▲ raised risk" : "▼ lowered risk" })),
          h("td", { class: "num nowrap" }, h("span", { class: "muted", text: String(d.before_display ?? "missing") }),
            " → ", h("strong", { text: String(d.after_display ?? "missing") })),
          barCell(d.contribution_change || 0, maxAbs, raised ? "red" : "green"));
      })));
  }

  // ------------------------------------------------------------------ the risk trend chart

  function niceMax(v) {
    for (const step of [0.05, 0.1, 0.2, 0.25, 0.5, 1]) {
      const top = Math.ceil((v + 1e-9) / step) * step;
      if (top / step <= 6) return { top: Math.min(1, top), step };
    }
    return { top: 1, step: 0.2 };
  }

  /** Which dates of a time axis get a label: about one per 90 px, always the first and the
   * last (none crowding the last), the year on the first label and where it changes.
   * `asOfs` and `xs` run in parallel; returns [{i, text}]. */
  function dateLabels(asOfs, xs, iw) {
    const n = asOfs.length;
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(iw / 90))));
    const out = [];
    let lastYear = null;
    asOfs.forEach((asOf, i) => {
      const isLast = i === n - 1;
      if (i % every !== 0 && !isLast) return;
      if (!isLast && n > 1 && i !== 0 && xs[n - 1] - xs[i] < 70) return;
      const d = parseDay(asOf);
      const year = d.getUTCFullYear();
      out.push({ i, text: year !== lastYear ? fmt.day.format(d) : fmt.dayShort.format(d) });
      lastYear = year;
    });
    return out;
  }

  function drawChart(box, hist) {
    const points = hist.filter((p) => isNum(p.churn_probability) && p.as_of)
      .map((p) => ({ ...p, t: parseDay(p.as_of).getTime() }));
    const W = Math.max(320, Math.floor(box.clientWidth || 720));
    const H = 240;
    const m = { left: 52, right: 112, top: 14, bottom: 34 };
    const iw = W - m.left - m.right;
    const ih = H - m.top - m.bottom;
    const ths = thresholds();
    const maxP = Math.max(0, ...points.map((p) => p.churn_probability), ...ths.map((t) => t.from));
    const { top, step } = niceMax(Math.min(1, maxP * 1.15 + 0.02));
    const y = (p) => m.top + ih - (p / top) * ih;
    const t0 = points.length ? Math.min(...points.map((p) => p.t)) : 0;
    const t1 = points.length ? Math.max(...points.map((p) => p.t)) : 1;
    const pad = Math.min(36, iw * 0.06);
    const x = (t) => (t1 === t0 ? m.left + iw / 2 : m.left + pad + ((t - t0) / (t1 - t0)) * (iw - 2 * pad));

    const last = points[points.length - 1];
    const label = points.length
      ? `Churn probability over ${points.length} scoring run${points.length === 1 ? "" : "s"}, from ${prob(points[0].churn_probability)} as of ${day(points[0].as_of)} to ${prob(last.churn_probability)} as of ${day(last.as_of)}`
      : "No score history";
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "trend", "data-testid": "risk-chart" },
      s("title", {}, label));

    // tier bands and thresholds
    const bands = s("g", { class: "bands" });
    let upper = top;
    for (const th of ths) {
      if (th.from >= top) { upper = Math.min(upper, top); continue; }
      bands.append(s("rect", { x: m.left, y: y(upper), width: iw, height: Math.max(0, y(th.from) - y(upper)), class: `band tone-fill-${tierTone(th.tier)}` }));
      upper = th.from;
    }
    svg.append(bands);

    const grid = s("g", { class: "grid" });
    for (let v = 0; v <= top + 1e-9; v += step) {
      grid.append(s("line", { x1: m.left, x2: m.left + iw, y1: y(v), y2: y(v) }),
        s("text", { x: m.left - 8, y: y(v), class: "tick tick-y", "text-anchor": "end", "dominant-baseline": "middle" }, `${Math.round(v * 100)}%`));
    }
    svg.append(grid);

    const thr = s("g", { class: "thresholds", "data-testid": "chart-thresholds" });
    for (const th of ths) {
      if (th.from > top) continue;
      thr.append(s("line", { x1: m.left, x2: m.left + iw, y1: y(th.from), y2: y(th.from), class: `threshold tone-stroke-${tierTone(th.tier)}`, "data-tier": th.tier }),
        s("text", { x: m.left + iw + 8, y: y(th.from), class: `threshold-label tone-fill-text-${tierTone(th.tier)}`, "dominant-baseline": "middle" },
          `${capital(th.tier)} ≥ ${Math.round(th.from * 1000) / 10}%`));
    }
    svg.append(thr);

    // axes
    svg.append(s("line", { x1: m.left, x2: m.left, y1: m.top, y2: m.top + ih, class: "axis" }),
      s("line", { x1: m.left, x2: m.left + iw, y1: m.top + ih, y2: m.top + ih, class: "axis" }));

    // x labels: at most ~7, always the first and the last
    const xl = s("g", { class: "x-labels" });
    for (const { i, text } of dateLabels(points.map((p) => p.as_of), points.map((p) => x(p.t)), iw)) {
      const px = x(points[i].t);
      xl.append(s("line", { x1: px, x2: px, y1: m.top + ih, y2: m.top + ih + 4, class: "axis" }),
        s("text", { x: px, y: m.top + ih + 18, class: "tick", "text-anchor": "middle" }, text));
    }
    svg.append(xl, s("text", { x: 12, y: m.top + ih / 2, class: "axis-title", transform: `rotate(-90 12 ${m.top + ih / 2})`, "text-anchor": "middle" }, "Churn probability"));

    if (points.length > 1) {
      const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.churn_probability).toFixed(1)}`).join(" ");
      svg.append(s("path", { d, class: "trend-line" }));
    }
    const dots = s("g", { class: "points" });
    for (const p of points) {
      dots.append(s("circle", { cx: x(p.t), cy: y(p.churn_probability), r: p === last ? 5 : 3.5, class: `point tone-fill-${tierTone(p.risk_tier)}`, "data-testid": "chart-point" },
        s("title", {}, `as of ${day(p.as_of)}: ${prob(p.churn_probability)} (${p.risk_tier}), MRR at risk ${money(p.mrr_at_risk)}`)));
    }
    svg.append(dots);
    if (last) {
      const lx = x(last.t);
      const ly = y(last.churn_probability);
      // above the point, or below it when the point sits at the top of the plot
      const ly2 = ly - 10 < m.top + 4 ? ly + 18 : ly - 10;
      svg.append(s("text", { x: lx, y: ly2, class: "point-label", "text-anchor": points.length === 1 ? "middle" : "end" }, prob(last.churn_probability)));
    }
    box.replaceChildren(svg);
    if (!points.length) box.append(h("p", { class: "muted", text: "No score history yet." }));
  }

  let resizeTimer = null;
  function onResize() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      const box = document.querySelector("#account-view .chart");
      if (box && state.view === "account" && state.lastAccount) drawChart(box, state.lastAccount.history || []);
      if (state.view === "list") renderTrend();
      if (state.view === "scorecard" && state.lastScorecard) drawReliability($("#reliability-box"), state.lastScorecard);
    }, 150);
  }

  // ------------------------------------------------------------------ views beside the list

  const EXTRA_VIEWS = ["#renewals-view", "#scorecard-view", "#winback-view"];
  const WINDOWS = [30, 60, 90, 180, 365]; // days the renewal and win-back pickers offer

  function hideExtraViews() {
    for (const id of EXTRA_VIEWS) show($(id), false);
  }

  /** Show one of the views that stand beside the list; hide the list, the account and the headline. */
  function showView(id, title) {
    state.view = id.slice(1).replace("-view", "");
    for (const other of ["#list-view", "#account-view", "#headline", "#trend-card", ...EXTRA_VIEWS]) show($(other), false);
    document.title = `${title} · Churn risk`;
    const view = $(id);
    show(view, true);
    window.scrollTo(0, 0);
    return view;
  }

  function markTab(name) {
    for (const a of document.querySelectorAll("#tabs a")) {
      if (a.dataset.view === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
      if (a.dataset.view === "list") a.href = state.listHash;
      // the renewals of the book the list is filtered to
      if (a.dataset.view === "renewals" && name !== "renewals") a.href = `#/renewals${state.query.owner ? `?${new URLSearchParams({ owner: state.query.owner })}` : ""}`;
    }
  }

  /** One line saying a panel's figures are not available, and why (the service's words). */
  function unavailable(testid, what, err) {
    const why = !isNum(err.status) || [0, 404, 503].includes(err.status) ? err.message : `${err.message} (HTTP ${err.status})`;
    return h("p", { class: "panel-note muted", testid, text: `${what} not available: ${why}` });
  }

  /** A select of day windows, with the current one chosen (added when an address gave another). */
  function windowSelect(id, testid, value, onchange) {
    const n = Number(value);
    const choices = !Number.isInteger(n) || WINDOWS.includes(n) ? WINDOWS : [...WINDOWS, n].sort((a, b) => a - b);
    return h("select", { id, testid, onchange: (e) => onchange(e.target.value) },
      choices.map((d) => h("option", { value: String(d), selected: String(d) === String(value), text: `${d} days` })));
  }

  const todayIso = () => new Date().toISOString().slice(0, 10);
  function addDaysIso(iso, n) {
    const d = parseDay(iso);
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  /** How long ago a contact was: "today", "yesterday", "12 days ago". */
  function ago(text) {
    if (!text) return "";
    const days = Math.floor((Date.now() - new Date(text).getTime()) / 86400000);
    return days <= 0 ? "today" : days === 1 ? "yesterday" : `${count(days)} days ago`;
  }

  /** The at-risk list's last-contact cell: when, a flag when overdue, and a snooze. */
  function contactCell(r) {
    const flag = r.needs_contact
      ? h("span", {
        class: "flag", testid: "needs-contact",
        title: `In the riskiest tier and no call, meeting, e-mail or offer in the last ${CONTACT_DAYS} days`, text: "Reach out",
      })
      : null;
    return h("td", { class: "col-contact", "data-col": "last_contact", "data-value": r.last_contact || null },
      h("span", { class: r.last_contact ? null : "muted", title: r.last_contact ? stamp(r.last_contact) : "No call, meeting, e-mail or offer recorded", text: r.last_contact ? ago(r.last_contact) : "never" }),
      flag,
      r.snoozed_until ? h("span", { class: "acct-id", testid: "snoozed-until", text: `snoozed to ${day(r.snoozed_until)}` }) : null);
  }

  // ------------------------------------------------------------------ my book

  /** The headline of the owner the list is filtered to ("my book"), or the whole run's. */
  async function loadBook() {
    const owner = state.query.owner || "";
    if (!owner) {
      if (state.book) { state.book = null; renderHeadline(); }
      return;
    }
    if (state.book && state.book.owner === owner) return;
    const seq = ++state.bookSeq;
    try {
      const summary = await api(`/v1/summary?${new URLSearchParams({ owner })}`);
      if (seq !== state.bookSeq) return;
      state.book = { owner, summary };
    } catch (err) {
      if (seq !== state.bookSeq) return;
      state.book = null;
      report({ problem: { title: `${owner}'s figures could not be loaded`, detail: err.message } });
    }
    renderHeadline();
  }

  // ------------------------------------------------------------------ search

  function initSearch() {
    const input = $("#search-q");
    const list = $("#search-results");
    let timer = null;
    let seq = 0;
    const close = () => { show(list, false); list.replaceChildren(); };
    const open = (id) => { close(); input.value = ""; input.blur(); location.hash = accountHref(id); };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const q = input.value.trim();
      if (!q) { seq++; close(); return; }
      timer = setTimeout(async () => {
        const mine = ++seq;
        try {
          const found = await api(`/v1/accounts/search?${new URLSearchParams({ q, limit: "8" })}`);
          if (mine !== seq) return;
          list.replaceChildren(...(found.data.length ? found.data.map((hit) => h("li", {},
            h("button", { type: "button", class: "search-hit", testid: "search-hit", "data-account-id": hit.account_id, onclick: () => open(hit.account_id) },
              h("span", { class: "search-name", text: hit.name || hit.account_id }),
              h("span", { class: "acct-id", text: [hit.account_id, hit.owner].filter(Boolean).join(" · ") }),
              tierBadge(hit.risk_tier))))
            : [h("li", { class: "muted search-none", testid: "search-none", text: `No account of the current run matches “${q}”.` })]));
          show(list, true);
        } catch (err) {
          if (mine !== seq) return;
          list.replaceChildren(h("li", { class: "muted search-none", text: err.message }));
          show(list, true);
        }
      }, 200);
    });
    $("#search").addEventListener("submit", (e) => {
      e.preventDefault();
      const first = list.querySelector("[data-account-id]");
      if (first) open(first.dataset.accountId);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { close(); input.value = ""; }
      if (e.key === "ArrowDown") { const first = list.querySelector("button"); if (first) { e.preventDefault(); first.focus(); } }
    });
    list.addEventListener("keydown", (e) => { // arrows move between the hits, Escape goes back to the box
      const hits = [...list.querySelectorAll("button")];
      const i = hits.indexOf(document.activeElement);
      if (e.key === "Escape") { input.focus(); close(); return; }
      if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
      e.preventDefault();
      const next = e.key === "ArrowDown" ? i + 1 : i - 1;
      if (next < 0) input.focus(); else if (hits[next]) hits[next].focus();
    });
    document.addEventListener("click", (e) => { if (!e.target.closest("#search")) close(); });
  }

  // ------------------------------------------------------------------ the account's plays, activities and usage

  const KINDS = [["call", "Call"], ["meeting", "Meeting"], ["email", "E-mail"], ["offer", "Offer"], ["note", "Note"], ["task", "Task"]];
  const OUTCOMES = [["saved", "Saved"], ["lost", "Lost"], ["expanded", "Expanded"], ["no_response", "No response"]];
  const label = (pairs, v) => (pairs.find(([k]) => k === v) || [v, v])[1];
  const AUTHOR_STORAGE = "churnrisk.author"; // who logs activities in this tab, remembered for the next one
  const READ_ONLY = "Your API key can read but not write, so it cannot add to the log or snooze. Ask an administrator for a write key (churnrisk apikey create --scope write) and sign in with it.";

  function playsPanel() {
    return h("section", { class: "card panel", testid: "plays", "aria-labelledby": "plays-title" },
      h("h2", { id: "plays-title", text: "What to do" }),
      h("p", { class: "muted panel-intro", text: "The playbook's plays that match this account's latest score, and why each matched." }),
      h("div", { class: "panel-body", id: "plays-body" }, h("p", { class: "muted", text: "Loading…" })));
  }

  function activityPanel() {
    return h("section", { class: "card panel", testid: "activities", "aria-labelledby": "activities-title" },
      h("h2", { id: "activities-title", text: "Activity log" }),
      h("div", { id: "activity-status", class: "activity-status", testid: "activity-status" }),
      h("div", { id: "activity-form-box" }),
      h("div", { class: "panel-body", id: "activities-body" }, h("p", { class: "muted", text: "Loading…" })));
  }

  function usagePanel() {
    return h("section", { class: "card panel", testid: "usage", "aria-labelledby": "usage-title" },
      h("h2", { id: "usage-title", text: "Usage by month" }),
      h("p", { class: "muted panel-intro", text: "Product events, active users, support tickets and NPS in the months before the score's as-of date." }),
      h("div", { class: "panel-body", id: "usage-body" }, h("p", { class: "muted", text: "Loading…" })));
  }

  function loadAccountPanels(a, seq) {
    const id = encodeURIComponent(a.account_id);
    const live = () => seq === state.accountSeq && state.view === "account";
    const fill = async (sel, path, render, testid, what) => {
      let node;
      try {
        const body = await api(path);
        if (!live()) return;
        node = render(body);
      } catch (err) {
        if (!live() || err.status === 401) return;
        node = unavailable(testid, what, err);
      }
      const box = $(sel);
      if (box) box.replaceChildren(node);
    };
    fill("#plays-body", `/v1/accounts/${id}/plays`, renderPlays, "plays-unavailable", "Plays");
    loadActivities(a, seq);
    fill("#usage-body", `/v1/accounts/${id}/usage?months=12`, renderUsage, "usage-unavailable", "Usage");
  }

  function renderPlays(body) {
    if (!body.data.length) return h("p", { class: "muted", testid: "plays-empty", text: "No play of the playbook matches this account." });
    return h("ol", { class: "plays" }, body.data.map((p) => h("li", { class: "play", testid: "play", "data-name": p.name },
      h("div", { class: "play-name", text: p.name }),
      h("p", { class: "play-text", text: p.text }),
      h("ul", { class: "play-why", "aria-label": "Why it matched" }, p.reasons.map((r) => h("li", { testid: "play-reason", text: r }))))));
  }

  async function loadActivities(a, seq) {
    const live = () => seq === state.accountSeq && state.view === "account";
    let body;
    try {
      body = await api(`/v1/accounts/${encodeURIComponent(a.account_id)}/activities?limit=50`);
    } catch (err) {
      if (!live() || err.status === 401) return;
      $("#activities-body").replaceChildren(unavailable("activities-unavailable", "The activity log is", err));
      return;
    }
    if (!live()) return;
    renderActivityStatus(a, body, seq);
    const formBox = $("#activity-form-box");
    if (!formBox.firstChild) formBox.replaceChildren(state.canWrite === false ? readOnlyNote() : activityForm(a, seq));
    $("#activities-body").replaceChildren(activityLog(body.data));
  }

  function readOnlyNote() {
    return h("p", { class: "notice", testid: "activity-readonly", text: READ_ONLY });
  }

  function renderActivityStatus(a, body, seq) {
    const box = $("#activity-status");
    const last = h("span", { testid: "last-contact" },
      body.last_contact ? `Last contact ${ago(body.last_contact)} (${day(body.last_contact)})` : "No contact recorded yet");
    let snooze;
    if (body.snoozed_until) {
      snooze = h("span", { class: "snooze-state", testid: "snoozed" },
        `Snoozed until ${day(body.snoozed_until)}: hidden from the at-risk list. `,
        state.canWrite === false ? null : h("button", {
          type: "button", class: "btn btn-quiet btn-small", testid: "unsnooze",
          onclick: () => postActivity(a, seq, { kind: "note", text: "Snooze ended", snooze_until: todayIso() }),
          text: "End snooze",
        }));
    } else if (state.canWrite !== false) {
      const date = h("input", {
        type: "date", id: "snooze-date", testid: "snooze-date", min: addDaysIso(todayIso(), 1),
        value: addDaysIso(todayIso(), 14), "aria-label": "Snooze until",
      });
      snooze = h("form", {
        class: "snooze-form", testid: "snooze-form",
        onsubmit: (e) => {
          e.preventDefault();
          if (!date.value) { date.setAttribute("aria-invalid", "true"); return; }
          postActivity(a, seq, { kind: "note", text: `Snoozed until ${day(date.value)}`, snooze_until: date.value });
        },
      }, h("label", { for: "snooze-date", class: "inline-label", text: "Snooze until" }), date,
      h("button", { type: "submit", class: "btn btn-small", testid: "snooze-submit", text: "Snooze" }));
    }
    box.replaceChildren(last, snooze || null);
  }

  function activityForm(a, seq) {
    const field = (id, text, control) => h("div", { class: "field" }, h("label", { for: id, text }), control);
    const form = h("form", { class: "activity-form", testid: "activity-form", novalidate: true },
      h("div", { class: "field-row" },
        field("act-kind", "What", h("select", { id: "act-kind", name: "kind", testid: "activity-kind" },
          KINDS.map(([v, t]) => h("option", { value: v, text: t })))),
        field("act-outcome", "Outcome", h("select", { id: "act-outcome", name: "outcome", testid: "activity-outcome" },
          h("option", { value: "", text: "—" }), OUTCOMES.map(([v, t]) => h("option", { value: v, text: t })))),
        field("act-day", "On", h("input", {
          type: "date", id: "act-day", name: "day", testid: "activity-day", max: todayIso(), value: todayIso(), required: true,
        })),
        field("act-author", "By (optional)", h("input", {
          type: "text", id: "act-author", name: "author", testid: "activity-author", maxlength: "200", autocomplete: "name",
          value: sessionStorage.getItem(AUTHOR_STORAGE) || "", placeholder: "Your name",
        })),
        field("act-snooze", "Snooze until (optional)", h("input", {
          type: "date", id: "act-snooze", name: "snooze_until", testid: "activity-snooze", min: addDaysIso(todayIso(), 1),
        }))),
      field("act-text", "Notes", h("textarea", { id: "act-text", name: "text", rows: "2", maxlength: "4000", testid: "activity-text", placeholder: "What happened, what was agreed" })),
      h("div", { class: "form-foot" },
        h("button", { type: "submit", class: "btn btn-primary btn-small", testid: "activity-submit", text: "Add to log" }),
        h("span", { class: "form-message", role: "status", testid: "activity-message" })));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const v = (name) => form.elements[name].value.trim();
      const body = { kind: v("kind"), text: v("text") };
      if (v("outcome")) body.outcome = v("outcome");
      if (v("author")) { body.author = v("author"); sessionStorage.setItem(AUTHOR_STORAGE, body.author); }
      // an earlier day: noon UTC of it (today: now, the service's default)
      if (v("day") && v("day") !== todayIso()) body.occurred_at = `${v("day")}T12:00:00Z`;
      if (v("snooze_until")) body.snooze_until = v("snooze_until");
      postActivity(a, seq, body, form);
    });
    return form;
  }

  /** Record an activity; on success reload the log, on a read-only key say so instead of the form. */
  async function postActivity(a, seq, body, form) {
    const message = form ? form.querySelector("[data-testid=activity-message]") : null;
    const buttons = [...document.querySelectorAll("#account-view [data-testid=activities] button")];
    for (const b of buttons) b.disabled = true;
    try {
      await api(`/v1/accounts/${encodeURIComponent(a.account_id)}/activities`, { method: "POST", body });
      state.canWrite = true;
      state.list.key = null; // the list's last contacts and snoozes changed: reload it on return
      if (form) {
        for (const name of ["text", "outcome", "snooze_until"]) form.elements[name].value = "";
        form.elements.day.value = todayIso();
        message.textContent = "Added.";
      }
    } catch (err) {
      if (err.status === 401) return;
      if (err.status === 403) {
        state.canWrite = false; // no form, no snooze control: the note says what to do instead
        $("#activity-form-box").replaceChildren(readOnlyNote());
        for (const control of document.querySelectorAll("#activity-status [data-testid=snooze-form], #activity-status [data-testid=unsnooze]")) control.remove();
      } else if (message) {
        message.textContent = `Not saved: ${err.message}`;
        message.classList.add("tone-text-red");
      } else {
        report(err);
      }
    } finally {
      for (const b of buttons) b.disabled = false;
    }
    if (seq === state.accountSeq) await loadActivities(a, seq);
  }

  function activityLog(items) {
    if (!items.length) return h("p", { class: "muted", testid: "activities-empty", text: "Nothing recorded yet." });
    return h("ol", { class: "log", testid: "activity-log" }, items.map((x) => h("li", { class: "log-item", testid: "activity", "data-kind": x.kind },
      h("div", { class: "log-head" },
        h("span", { class: "log-kind", text: label(KINDS, x.kind) }),
        x.outcome ? h("span", { class: `badge tone-${x.outcome === "lost" ? "red" : x.outcome === "no_response" ? "amber" : "green"}`, testid: "activity-outcome-badge", text: label(OUTCOMES, x.outcome) }) : null,
        h("span", { class: "muted log-when", title: stamp(x.occurred_at), text: `${day(x.occurred_at)}${x.author ? ` · ${x.author}` : ""}${x.source === "import" ? " · imported" : ""}` })),
      x.text ? h("p", { class: "log-text", text: x.text }) : null,
      x.snooze_until ? h("div", { class: "muted log-snooze", text: `Snooze until ${day(x.snooze_until)}` }) : null)));
  }

  const USAGE = [
    ["events", "Product events", count],
    ["active_users", "Active users", count],
    ["tickets", "Support tickets", count],
    ["nps", "NPS answer (mean)", (v) => (isNum(v) ? v.toFixed(1) : "—")],
  ];

  function renderUsage(body) {
    const months = body.months || [];
    if (!months.length) return h("p", { class: "muted", testid: "usage-empty", text: "No usage recorded before the as-of date." });
    return h("div", { class: "usage-grid", testid: "usage-charts" }, USAGE.map(([key, title, show_]) => {
      const values = months.map((m) => m[key]);
      const last = [...months].reverse().find((m) => isNum(m[key]));
      return h("figure", { class: "usage-chart", testid: `usage-${key}` },
        h("figcaption", {}, h("span", { text: title }), h("strong", { testid: `usage-${key}-last`, text: last ? show_(last[key]) : "—" })),
        sparkBars(months, values, `${title} by month`));
    }));
  }

  /** Small monthly bars (no axis); a partial month drawn lighter. */
  function sparkBars(months, values, title) {
    const W = 220;
    const H = 52;
    const max = Math.max(0, ...values.filter(isNum));
    const slot = W / months.length;
    const svg = s("svg", { viewBox: `0 0 ${W} ${H + 14}`, class: "spark", role: "img", "aria-label": title, preserveAspectRatio: "none" });
    months.forEach((m, i) => {
      const v = values[i];
      const hgt = isNum(v) && max > 0 ? Math.max(1, (Math.max(0, v) / max) * H) : 0;
      svg.append(s("rect", {
        x: i * slot + slot * 0.15, y: H - hgt, width: slot * 0.7, height: hgt, class: `spark-bar${m.partial ? " partial" : ""}`,
        "data-month": m.month,
      }, s("title", {}, `${periodLabel(m.month)}: ${isNum(v) ? fmt.int.format(v) : "none"}${m.partial ? " (month to date)" : ""}`)));
    });
    const first = months[0];
    const lastM = months[months.length - 1];
    svg.append(s("text", { x: 0, y: H + 12, class: "tick" }, periodLabel(first.month)),
      s("text", { x: W, y: H + 12, class: "tick", "text-anchor": "end" }, periodLabel(lastM.month)));
    return svg;
  }

  // ------------------------------------------------------------------ the renewal view

  async function showRenewals(params) {
    const view = showView("#renewals-view", "Renewals");
    const days = params.get("days") || "90";
    const owner = params.get("owner") || "";
    const tier = params.get("tier") || "";
    const go = (d, o, t = "") => { location.hash = `#/renewals?${new URLSearchParams({ days: d, ...(o ? { owner: o } : {}), ...(t ? { tier: t } : {}) })}`; };
    const ownerSel = h("select", { id: "r-owner", testid: "renewals-owner", onchange: (e) => go(days, e.target.value, tier) },
      h("option", { value: "", text: "All owners" }),
      ((state.summary && state.summary.owners) || []).map((o) => h("option", { value: o, selected: o === owner, text: o })));
    const body = h("div", { class: "view-body" }, h("p", { class: "muted loading-text", text: "Loading renewals…" }));
    view.replaceChildren(
      h("div", { class: "view-head" }, h("h1", { id: "renewals-title", text: "Renewals" }),
        h("p", { class: "muted", text: "Accounts whose subscription term ends soon, soonest first, with the ARR up for renewal by risk tier." })),
      h("div", { class: "filters card" },
        h("div", { class: "filter" }, h("label", { for: "r-days", text: "Next" }), windowSelect("r-days", "renewals-days", days, (d) => go(d, owner, tier))),
        h("div", { class: "filter" }, h("label", { for: "r-owner", text: "Owner" }), ownerSel)),
      body);
    const seq = ++state.accountSeq;
    try {
      const r = await api(`/v1/renewals?${new URLSearchParams({ days, ...(owner ? { owner } : {}) })}`);
      if (seq !== state.accountSeq) return;
      const pick = (t) => go(days, owner, t === tier ? "" : t);
      body.replaceChildren(renewalTiers(r, tier, pick), renewalTable(r, tier));
    } catch (err) {
      if (seq !== state.accountSeq || err.status === 401) return;
      body.replaceChildren(unavailable("renewals-unavailable", "Renewals are", err));
    }
  }

  function renewalTiers(r, tier, pick) {
    return h("div", { class: "kpi-row" },
      h("div", { class: "kpi", testid: "renewals-total" },
        h("div", { class: "kpi-label", text: `Renewing in ${count(r.days)} days` }),
        h("div", { class: "kpi-value", testid: "renewals-total-arr", text: money(r.total.arr) }),
        h("div", { class: "kpi-sub", text: `ARR of ${count(r.total.accounts)} account${r.total.accounts === 1 ? "" : "s"}` })),
      r.tiers.map((t) => h("button", {
        type: "button", class: "kpi kpi-button", testid: "renewal-tier", "data-tier": t.tier, "aria-pressed": String(t.tier === tier),
        title: t.tier === tier ? "Show every tier" : `Show only the ${t.tier}-tier renewals`, onclick: () => pick(t.tier),
      },
        h("div", { class: "kpi-label" }, tierBadge(t.tier)),
        h("div", { class: `kpi-value${tierTone(t.tier) === "red" && t.arr > 0 ? " tone-text-red" : ""}`, testid: `renewal-tier-${t.tier}-arr`, text: money(t.arr) }),
        h("div", { class: "kpi-sub", text: `ARR · ${count(t.accounts)} account${t.accounts === 1 ? "" : "s"}` }))));
  }

  const RENEWAL_PAGE = 50; // rows shown at once; "Show more" adds as many

  function renewalTable(r, tier) {
    const rows = tier ? r.data.filter((row) => row.risk_tier === tier) : r.data;
    if (!rows.length) return h("p", { class: "card empty", testid: "renewals-empty", text: `No ${tier ? `${tier}-tier ` : ""}account renews in the next ${count(r.days)} days.` });
    const body = h("tbody", {});
    const more = h("button", { type: "button", class: "btn", testid: "renewals-more" });
    let shown = 0;
    const grow = () => {
      body.append(...rows.slice(shown, shown + RENEWAL_PAGE).map(renewalRow));
      shown = Math.min(rows.length, shown + RENEWAL_PAGE);
      more.textContent = `Show ${count(Math.min(RENEWAL_PAGE, rows.length - shown))} more of ${count(rows.length)}`;
      show(more, shown < rows.length);
    };
    more.addEventListener("click", grow);
    grow();
    return h("div", { class: "view-body" }, h("div", { class: "table-box card" },
      h("table", { class: "risk-table", testid: "renewals-table" },
        h("thead", {}, h("tr", {}, ["Account", "Renews", "Up for renewal (MRR)", "ARR", "Tier", "Churn prob.", "Owner", "Last contact"].map((t, i) =>
          h("th", { scope: "col", class: [2, 3, 5].includes(i) ? "num" : i === 0 ? "col-account" : null, text: t })))),
        body),
      r.truncated ? h("p", { class: "muted panel-note", text: `The service lists the ${count(r.data.length)} soonest of ${count(r.total.accounts)} renewals; the tier figures count them all.` }) : null),
    h("div", { class: "list-foot" }, more));
  }

  function renewalRow(row) {
    return h("tr", {
      testid: "renewal-row", "data-account-id": row.account_id, "data-tier": row.risk_tier,
      onclick: (e) => { if (!e.target.closest("a")) location.hash = accountHref(row.account_id); },
    },
    h("td", { class: "col-account" }, h("a", { href: accountHref(row.account_id), class: "acct-link", text: row.name || row.account_id }), h("span", { class: "acct-id", text: row.account_id })),
    h("td", { "data-col": "renewal" }, h("span", { text: day(row.renewal_date) }), h("span", { class: "acct-id", text: inDays(row.days_to_renewal) })),
    h("td", { class: "num", "data-col": "renewal_mrr", text: money(row.renewal_mrr) }),
    h("td", { class: "num", "data-col": "arr", text: isNum(row.renewal_mrr) ? money(12 * row.renewal_mrr) : "—" }),
    h("td", {}, tierBadge(row.risk_tier)),
    h("td", { class: "num strong", text: prob(row.churn_probability) }),
    h("td", { class: "col-owner", text: row.owner || "—" }),
    contactCell(row));
  }

  // ------------------------------------------------------------------ the scorecard

  async function showScorecard(params) {
    const view = showView("#scorecard-view", "Scorecard");
    const k = params.get("k");
    const body = h("div", { class: "view-body" }, h("p", { class: "muted loading-text", text: "Grading past runs…" }));
    view.replaceChildren(h("div", { class: "view-head" }, h("h1", { id: "scorecard-title", text: "How right were past scores?" })), body);
    const seq = ++state.accountSeq;
    try {
      const sc = await api(`/v1/scorecard${k ? `?${new URLSearchParams({ k })}` : ""}`);
      if (seq !== state.accountSeq) return;
      state.lastScorecard = sc;
      const sizes = [...new Set([25, 50, 100, 200, sc.k])].sort((a, b) => a - b);
      view.querySelector(".view-head").append(h("div", { class: "head-control" },
        h("label", { for: "sc-k", class: "inline-label", text: "The list is the top " }),
        h("select", { id: "sc-k", testid: "scorecard-k", onchange: (e) => { location.hash = `#/scorecard?k=${e.target.value}`; } },
          sizes.map((n) => h("option", { value: String(n), selected: n === sc.k, text: count(n) })))));
      body.replaceChildren(...scorecardParts(sc));
      drawReliability($("#reliability-box"), sc);
    } catch (err) {
      if (seq !== state.accountSeq || err.status === 401) return;
      body.replaceChildren(unavailable("scorecard-unavailable", "The scorecard is", err));
    }
  }

  function scorecardParts(sc) {
    const warnings = (sc.warnings || []).map((w) => h("p", { class: "notice", testid: "scorecard-warning", text: w }));
    const lead = sc.lead || {};
    const facts = h("p", { class: "muted", testid: "scorecard-facts", text:
      `${count(sc.graded_runs)} graded run${sc.graded_runs === 1 ? "" : "s"}, ${count(sc.open_runs)} still in their window · the list is each run's top ${count(sc.k)}${sc.as_of ? ` · latest run as of ${day(sc.as_of)}` : ""}` });
    const tierMax = Math.max(0, ...sc.tiers.map((t) => t.rate || 0));
    const tiers = h("section", { class: "card panel", testid: "scorecard-tiers" },
      h("h2", { text: "What each tier did" }),
      h("p", { class: "muted panel-intro", text: "Realised churn of the accounts each tier held, over every graded run." }),
      h("table", { class: "mini-table" },
        h("thead", {}, h("tr", {}, h("th", { text: "Tier" }), h("th", { class: "num", text: "Scored" }), h("th", { class: "num", text: "Churned" }), h("th", { class: "num", text: "Rate" }), h("th", { class: "bar-head", text: "" }))),
        h("tbody", {}, sc.tiers.map((t) => h("tr", { testid: "scorecard-tier", "data-tier": t.tier },
          h("td", {}, tierBadge(t.tier)), h("td", { class: "num", text: count(t.accounts) }), h("td", { class: "num", text: count(t.churned) }),
          h("td", { class: "num strong", testid: "scorecard-tier-rate", text: isNum(t.rate) ? fmt.pct.format(t.rate) : "—" }),
          h("td", { class: "bar-cell" }, h("div", { class: "bar-track" }, h("span", {
            class: `bar bar-abs tone-bg-${tierTone(t.tier)}`, style: { width: `${tierMax > 0 && isNum(t.rate) ? ((t.rate / tierMax) * 100).toFixed(1) : 0}%` },
          }))))))));
    const leadCard = h("div", { class: "kpi-row" },
      kpi({ label: "Lead time", value: isNum(lead.median_days) ? `${count(Math.round(lead.median_days))} days` : "—", testid: "scorecard-lead",
        sub: "median, first high-tier run to churn", title: "For each churn, the days from the first run that put the account in the high tier" }),
      kpi({ label: "Churns flagged", value: isNum(lead.churns) ? `${count(lead.flagged)} of ${count(lead.churns)}` : "—", testid: "scorecard-flagged", sub: "in the high tier before they churned" }));
    const reliabilityPanel = h("section", { class: "card panel", testid: "scorecard-reliability" },
      h("h2", { text: "Reliability of past probabilities" }),
      h("p", { class: "muted panel-intro", text: "Each dot is a band of past scores: the probability they gave against how many churned. On the dashed line, the scores meant what they said." }),
      h("div", { id: "reliability-box", class: "chart chart-square" }));
    const runs = h("section", { class: "card panel", testid: "scorecard-runs" },
      h("h2", { text: `The top ${count(sc.k)} of each run` }),
      h("p", { class: "muted panel-intro", text: "Precision: the share of the list that churned. Recall: the share of the churns the list held. MRR caught: the share of the churned MRR the list held." }),
      sc.runs.length ? h("div", { class: "table-box" }, h("table", { class: "mini-table" },
        h("thead", {}, h("tr", {}, ["As of", "Scored", "Churned", "Precision", "Recall", "MRR caught"].map((t, i) => h("th", { class: i ? "num" : null, text: t })))),
        h("tbody", {}, sc.runs.map((r) => h("tr", { testid: "scorecard-run", "data-as-of": r.as_of },
          h("td", { class: "nowrap", text: day(r.as_of) }), h("td", { class: "num", text: count(r.accounts) }), h("td", { class: "num", text: count(r.churned) }),
          h("td", { class: "num", "data-col": "precision", text: pctOrDash(r.precision_at_k) }),
          h("td", { class: "num", "data-col": "recall", text: pctOrDash(r.recall_at_k) }),
          h("td", { class: "num", "data-col": "mrr_caught", text: pctOrDash(r.mrr_caught) }))))))
        : h("p", { class: "muted", testid: "scorecard-no-runs", text: "No run's window has closed yet: nothing to grade." }));
    const drift = h("section", { class: "card panel", testid: "scorecard-drift" },
      h("h2", { text: "Drift since training" }),
      Array.isArray(sc.drift)
        ? h("div", {},
          h("p", { class: "muted panel-intro", text: `Population stability index of each feature between the training window and the latest run; above ${isNum(sc.drift_threshold) ? sc.drift_threshold : "the threshold"} it has drifted.` }),
          h("table", { class: "mini-table" },
            h("thead", {}, h("tr", {}, h("th", { text: "Feature" }), h("th", { class: "num", text: "PSI" }), h("th", { text: "" }))),
            h("tbody", {}, driftRows(sc.drift).slice(0, DRIFT_SHOWN))),
          sc.drift.length > DRIFT_SHOWN ? h("details", { class: "more-rows" },
            h("summary", { text: `The other ${count(sc.drift.length - DRIFT_SHOWN)} features` }),
            h("table", { class: "mini-table" }, h("tbody", {}, driftRows(sc.drift).slice(DRIFT_SHOWN)))) : null)
        : h("p", { class: "muted", testid: "drift-unavailable", text: "No drift figures: there is no champion model whose training window to compare with." }));
    return [facts, ...warnings, h("div", { class: "grid-2" }, h("div", { class: "stack-col" }, tiers, leadCard), reliabilityPanel), runs, drift];
  }

  const DRIFT_SHOWN = 10; // the most drifted features in view; the rest folded away

  /** One row per feature, the most drifted first. */
  function driftRows(drift) {
    return [...drift].sort((a, b) => (b.psi || 0) - (a.psi || 0)).map((d) => h("tr", { testid: "drift-row", "data-feature": d.feature, "data-drifted": String(Boolean(d.drifted)) },
      h("td", { text: d.feature }), h("td", { class: "num", text: isNum(d.psi) ? d.psi.toFixed(3) : "—" }),
      h("td", {}, d.drifted ? h("span", { class: "badge tone-red", text: "drifted" }) : null)));
  }

  const pctOrDash = (v) => (isNum(v) ? fmt.pct.format(v) : "—");

  /** The reliability curve: mean past probability against the churn rate, per band. */
  function drawReliability(box, sc) {
    if (!box) return;
    const pts = (sc.reliability || []).filter((r) => isNum(r.predicted) && isNum(r.observed));
    const W = Math.max(260, Math.min(520, Math.floor(box.clientWidth || 420)));
    const m = { left: 46, right: 14, top: 12, bottom: 38 };
    const side = W - m.left - m.right;
    const H = side + m.top + m.bottom;
    const top = niceMax(Math.max(0.05, ...pts.map((p) => Math.max(p.predicted, p.observed))) * 1.1).top;
    const x = (v) => m.left + (v / top) * side;
    const y = (v) => m.top + side - (v / top) * side;
    const maxRows = Math.max(1, ...pts.map((p) => p.rows || 0));
    const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "trend", role: "img", "data-testid": "reliability-chart",
      "aria-label": `Reliability of past probabilities over ${pts.length} bands` });
    const grid = s("g", { class: "grid" });
    const step = top / 4;
    for (let k = 0; k <= 4; k++) {
      const v = k * step;
      grid.append(s("line", { x1: m.left, x2: m.left + side, y1: y(v), y2: y(v) }),
        s("text", { x: m.left - 6, y: y(v), class: "tick", "text-anchor": "end", "dominant-baseline": "middle" }, `${Math.round(v * 100)}%`),
        s("text", { x: x(v), y: m.top + side + 16, class: "tick", "text-anchor": k === 4 ? "end" : "middle" }, `${Math.round(v * 100)}%`));
    }
    svg.append(grid,
      s("line", { x1: x(0), y1: y(0), x2: x(top), y2: y(top), class: "threshold tone-stroke-grey", "data-testid": "reliability-diagonal" }),
      s("line", { x1: m.left, x2: m.left, y1: m.top, y2: m.top + side, class: "axis" }),
      s("line", { x1: m.left, x2: m.left + side, y1: m.top + side, y2: m.top + side, class: "axis" }),
      s("text", { x: m.left + side / 2, y: H - 4, class: "axis-title", "text-anchor": "middle" }, "Past probability"),
      s("text", { x: 12, y: m.top + side / 2, class: "axis-title", transform: `rotate(-90 12 ${m.top + side / 2})`, "text-anchor": "middle" }, "Churned afterwards"));
    if (pts.length > 1) {
      svg.append(s("path", { class: "trend-line", d: pts.map((p, i) => `${i ? "L" : "M"}${x(p.predicted).toFixed(1)},${y(p.observed).toFixed(1)}`).join(" ") }));
    }
    for (const p of pts) {
      svg.append(s("circle", {
        cx: x(p.predicted), cy: y(p.observed), r: 3 + 4 * Math.sqrt((p.rows || 0) / maxRows), class: "point tone-fill-grey reliability-point",
        "data-testid": "reliability-point", "data-predicted": p.predicted, "data-observed": p.observed,
      }, s("title", {}, `${count(p.rows)} scores between ${prob(p.lower)} and ${prob(p.upper)}: predicted ${prob(p.predicted)}, churned ${fmt.pct.format(p.observed)}`)));
    }
    box.replaceChildren(svg);
    if (!pts.length) box.append(h("p", { class: "muted", text: "No graded score yet." }));
  }

  // ------------------------------------------------------------------ win-back

  async function showWinback(params) {
    const view = showView("#winback-view", "Win-back");
    const days = params.get("days") || "90";
    const body = h("div", { class: "view-body" }, h("p", { class: "muted loading-text", text: "Loading…" }));
    view.replaceChildren(
      h("div", { class: "view-head" }, h("h1", { id: "winback-title", text: "Win-back" }),
        h("p", { class: "muted", text: "Customers whose subscription ended lately, with what they were worth and why they were at risk. “Still using”: they kept using the product after the end." })),
      h("div", { class: "filters card" }, h("div", { class: "filter" }, h("label", { for: "w-days", text: "Churned in the last" }),
        windowSelect("w-days", "winback-days", days, (d) => { location.hash = `#/winback?days=${d}`; }))),
      body);
    const seq = ++state.accountSeq;
    try {
      const w = await api(`/v1/winback?${new URLSearchParams({ days })}`);
      if (seq !== state.accountSeq) return;
      body.replaceChildren(winbackTable(w));
    } catch (err) {
      if (seq !== state.accountSeq || err.status === 401) return;
      body.replaceChildren(unavailable("winback-unavailable", "The win-back list is", err));
    }
  }

  function winbackTable(w) {
    if (!w.data.length) return h("p", { class: "card empty", testid: "winback-empty", text: `No customer churned in the ${count(w.days)} days before ${day(w.as_of)}.` });
    return h("div", { class: "table-box card" },
      h("table", { class: "risk-table", testid: "winback-table" },
        h("thead", {}, h("tr", {}, ["Account", "Churned", "MRR", "Lifetime CLV", "Last score", "Last drivers", "After the end"].map((t, i) =>
          h("th", { scope: "col", class: [2, 3, 4].includes(i) ? "num" : i === 0 ? "col-account" : null, text: t })))),
        h("tbody", {}, w.data.map((r) => h("tr", { testid: "winback-row", "data-account-id": r.account_id, "data-used-after-end": String(Boolean(r.used_after_end)) },
          h("td", { class: "col-account" }, isNum(r.last_probability) // scored once: its page has the history
            ? h("a", { href: accountHref(r.account_id), class: "acct-link", text: r.name || r.account_id })
            : h("span", { class: "acct-link", title: "Never scored", text: r.name || r.account_id }),
          h("span", { class: "acct-id", text: r.account_id })),
          h("td", { class: "nowrap", text: day(r.churn_day) }),
          h("td", { class: "num", text: money(r.mrr) }),
          h("td", { class: "num", text: money(r.lifetime_clv) }),
          h("td", { class: "num", text: prob(r.last_probability) }),
          h("td", { class: "col-driver" }, h("div", { class: "driver-cell" }, (r.last_drivers || []).slice(0, 2).map((d) => h("span", { class: "driver-meaning", title: d, text: d })))),
          h("td", {}, r.used_after_end ? h("span", { class: "badge tone-amber", testid: "still-using", text: "Still using" }) : null))))));
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    $("#signin-form").addEventListener("submit", signIn);
    $("#sign-out").addEventListener("click", () => signOut("You are signed out."));
    $("#filters").addEventListener("submit", (e) => e.preventDefault());
    $("#filters").addEventListener("change", onFilterChange);
    $("#filters").addEventListener("input", onFilterInput);
    $("#reset-filters").addEventListener("click", resetFilters);
    $("#download-csv").addEventListener("click", downloadCsv);
    $("#load-more").addEventListener("click", () => loadList(true));
    $("#rows").addEventListener("click", onRowClick);
    initSearch();
    for (const btn of document.querySelectorAll(".sort-btn")) {
      btn.addEventListener("click", () => applyQuery({ ...state.query, sort: btn.dataset.sort }));
    }
    let lastView = null;
    window.addEventListener("hashchange", () => {
      if (takeKeyFromHashChange()) return;
      state.cameFromList = lastView === "list";
      route();
      lastView = state.view;
    });
    window.addEventListener("resize", onResize);
    takeKeyFromFragment();
    enter().then(() => { lastView = state.view; });
  }

  /** A link with #key=... followed while the page is open: take the key, then start over. */
  function takeKeyFromHashChange() {
    if (!/(^#|[?&])key=/.test(location.hash)) return false;
    takeKeyFromFragment();
    enter();
    return true;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
