// promlearn's page: the overview, a series and explore, drawn from the watch's JSON API
// (/api/...). Hand-written, no build step; charts with uPlot. What each chart draws is kept in
// window.promlearn.charts so that the browser test can compare it with /metrics and the CSV.
"use strict";

const state = { info: null, charts: {}, pollTimer: null };
window.promlearn = state;

const main = () => document.getElementById("main");
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
const labelsHtml = (labels) => Object.entries(labels).map(([k, v]) => `<code>${esc(k)}="${esc(v)}"</code>`).join("");
const when = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");

// A range's end: whole seconds (as the CLI's --from/--to take them), 10 s ago, since samples
// of the newest seconds may still be on their way to Prometheus, and a replay repeated later
// (or the CLI's) should see the same data.
const rangeEnd = () => Math.floor((Date.now() - 10000) / 1000) * 1000;

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: `${response.status} ${response.statusText}` }; }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${response.status}`);
  return body;
}

// The series' samples over its detector's window, as a small line.
function sparkline(points) {
  if (!points.length) return "";
  const w = 120, h = 24, vs = points.map((p) => p[1]);
  const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
  const xy = points.map((p, i) => `${(i / Math.max(points.length - 1, 1)) * w},${h - 2 - ((p[1] - lo) / span) * (h - 4)}`);
  return `<svg class="spark" width="${w}" height="${h}"><polyline fill="none" stroke="#3b6fd8" stroke-width="1.3" points="${xy.join(" ")}"/></svg>`;
}

// A chart of value, yhat, the band and the flagged points. `cols` holds arrays t (ms), value,
// yhat, lower, upper, anomalous.
function drawChart(el, key, title, cols) {
  const x = cols.t.map((t) => t / 1000);
  const num = (a) => a.map((v) => (v === null || Number.isNaN(v) ? null : v));
  const flagged = cols.value.map((v, i) => (cols.anomalous[i] ? v : null));
  const data = [x, num(cols.value), num(cols.yhat), num(cols.lower), num(cols.upper), flagged];
  state.charts[key] = { t: cols.t, value: cols.value, yhat: cols.yhat, lower: cols.lower, upper: cols.upper, anomalous: cols.anomalous };
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.chart = key;
  el.appendChild(box);
  const opts = {
    title, width: Math.min(1100, window.innerWidth - 80), height: 260,
    cursor: { drag: { x: true, y: false } },
    series: [
      {},
      { label: "value", stroke: "#1d2330", width: 1.4 },
      { label: "yhat", stroke: "#3b6fd8", dash: [4, 3] },
      { label: "lower", stroke: "#9bb7ee" },
      { label: "upper", stroke: "#9bb7ee" },
      { label: "flagged", stroke: "#c0262d", paths: () => null, points: { show: true, size: 9, fill: "#c0262d" } },
    ],
    bands: [{ series: [4, 3], fill: "rgba(59,111,216,0.12)" }],
  };
  return new uPlot(opts, data, box);
}

// ---- overview ----------------------------------------------------------------------------

async function overview() {
  const params = new URLSearchParams(location.search);
  const query = params.get("query") || "";
  const search = params.get("search") || "";
  const page = Number(params.get("page") || 0);
  let o;
  try {
    o = await api(`/api/overview?query=${encodeURIComponent(query)}&search=${encodeURIComponent(search)}&page=${page}`);
  } catch (e) {
    main().innerHTML = `<div class="error" id="overview-error">${esc(e.message)}</div>`;
    return;
  }
  const go = (q, s, p) => `/ui/?query=${encodeURIComponent(q)}&search=${encodeURIComponent(s)}&page=${p}`;
  const queries = o.queries.map((q) => `<tr class="${q.name === o.query ? "selected" : ""}">
      <td><a href="${go(q.name, "", 0)}">${esc(q.name)}</a></td><td>${esc(q.detector)}</td><td>${q.up ? "up" : "down"}</td>
      <td class="num">${q.series}</td><td class="num">${q.alerts_last_hour}${q.alerts_capped ? "+" : ""}</td>
      <td class="num">${q.alerts_last_day}${q.alerts_capped ? "+" : ""}</td></tr>`).join("");
  const rows = o.rows.map((r) => `<tr data-score="${r.score === null ? "" : r.score}">
      <td class="num">${r.rank}</td>
      <td class="labels"><a href="/ui/series?query=${encodeURIComponent(o.query)}&labels=${encodeURIComponent(JSON.stringify(r.labels))}">${labelsHtml(r.labels) || "{}"}</a></td>
      <td class="num ${r.anomalous ? "anomalous" : ""}">${fmt(r.score)}</td><td>${sparkline(r.spark)}</td></tr>`).join("");
  const pages = Math.max(1, Math.ceil(o.matched / o.per_page));
  main().innerHTML = `
    <h2>Queries</h2>
    <table id="queries"><tr><th>query</th><th>detector</th><th>state</th><th>series</th><th>alerts 1 h</th><th>alerts 1 d</th></tr>${queries}</table>
    <h2>Series of <em>${esc(o.query)}</em>, highest score first</h2>
    <form id="search-form" class="row">
      <label>search by label (name=value, name~part, or a word)<input id="search" name="search" value="${esc(search)}" size="40"></label>
      <button>Search</button>
      <span id="matched">${o.matched} series, page ${o.page + 1} of ${pages}</span>
      ${o.page > 0 ? `<a href="${go(o.query, search, o.page - 1)}">◀ previous</a>` : ""}
      ${o.page + 1 < pages ? `<a id="next-page" href="${go(o.query, search, o.page + 1)}">next ▶</a>` : ""}
    </form>
    <table id="series-rows"><tr><th>#</th><th>labels</th><th>score</th><th>recent samples</th></tr>${rows}</table>`;
  document.getElementById("search-form").onsubmit = (ev) => {
    ev.preventDefault();
    location.href = go(o.query, document.getElementById("search").value, 0);
  };
}

// ---- a series ----------------------------------------------------------------------------

async function seriesView() {
  const params = new URLSearchParams(location.search);
  const query = params.get("query"), labels = params.get("labels");
  let s;
  try {
    s = await api(`/api/series?query=${encodeURIComponent(query)}&labels=${encodeURIComponent(labels)}`);
  } catch (e) {
    main().innerHTML = `<div class="error" id="series-error">${esc(e.message)}</div>`;
    return;
  }
  state.series = s;
  const p = s.point;
  const why = s.why
    ? `<span class="anomalous" id="why">alerting: score ${fmt(s.why.score)} at ${when(s.why.t)}, ${s.why.side} the band (value ${fmt(s.why.value)}, band ${fmt(s.why.lower)} … ${fmt(s.why.upper)})</span>`
    : `<span id="why">its newest point is not flagged</span>`;
  const newest = p
    ? `newest judged point (as /metrics shows it) at ${when(p.t)}: value ${fmt(p.value)}, yhat ${fmt(p.yhat)}, band ${fmt(p.lower)} … ${fmt(p.upper)}, score <span class="${p.anomalous ? "anomalous" : ""}">${fmt(p.score)}</span>`
    : "no judged point now";
  main().innerHTML = `
    <h2>${esc(s.query)} <span class="labels">${labelsHtml(s.labels)}</span></h2>
    <div class="card">detector <code>${esc(s.detector)}</code> · ${s.has_model ? "fitted" : "no model yet"} ·
      query's last fit ${s.query_last_fit_unix ? when(s.query_last_fit_unix * 1000) : "none yet"} · this series' next fit ${when(s.next_fit_ms)} ·
      alerts since tracked <span id="anomalies-total">${s.anomalies_total}</span><br>${newest}<br>${why}<br><span id="last-alert"></span></div>
    <div id="live-chart"></div>
    <div class="card row">
      <label>replay a range with the backtest code<select id="replay-range">
        <option value="900000">last 15 minutes</option><option value="3600000" selected>last hour</option>
        <option value="21600000">last 6 hours</option><option value="86400000">last day</option><option value="604800000">last 7 days</option>
      </select></label>
      <button id="replay">Replay</button> <progress id="replay-progress" max="1" value="0"></progress>
      <span id="replay-counts"></span>
    </div>
    <div class="error" id="replay-error"></div>
    <div id="replay-chart"></div>`;
  // The samples the series keeps, with the newest judged point's band and flag at its time.
  const live = { t: [], value: [], yhat: [], lower: [], upper: [], anomalous: [] };
  for (const [t, v] of s.recent) {
    if (p && t >= p.t) break;
    live.t.push(t); live.value.push(v); live.yhat.push(null); live.lower.push(null); live.upper.push(null); live.anomalous.push(false);
  }
  if (p) {
    live.t.push(p.t); live.value.push(p.value); live.yhat.push(p.yhat); live.lower.push(p.lower); live.upper.push(p.upper); live.anomalous.push(p.anomalous);
  }
  drawChart(document.getElementById("live-chart"), "live", "its recent samples and the newest judged point's band (what /metrics shows)", live);
  const replay = async () => {
    const to = rangeEnd(), from = to - Number(document.getElementById("replay-range").value);
    await runJob({ query: s.query, series: s.labels, from_ms: from, to_ms: to }, {
      progress: "replay-progress", error: "replay-error",
      done: async (job) => {
        if (job.id !== state.job) return; // A newer replay was asked for meanwhile.
        const d = job.result.detectors[0];
        document.getElementById("replay-counts").textContent = `${d.points} points, ${d.judged} judged, ${d.flagged} flagged, ${d.alerts} alerts`;
        const el = document.getElementById("replay-chart");
        el.innerHTML = "";
        if (job.result.series.length === 0) return;
        const one = await api(`/api/explore/${job.id}/series/0`);
        const c = one.detectors[0].points;
        drawChart(el, "replay", `replay ${when(job.from_ms)} … ${when(job.to_ms)}: value, yhat, band, flags`, c);
        const i = c.anomalous.lastIndexOf(true);
        document.getElementById("last-alert").textContent = i < 0 ? "no flag in the replayed range"
          : `last flagged in the replay at ${when(c.t[i])}: score ${fmt(c.score[i])}, ${c.value[i] > c.upper[i] ? "above" : "below"} the band`;
        state.replayed = job.id;
      },
    });
  };
  document.getElementById("replay").onclick = replay;
  // The last hour at once; the view is ready before it ends (the live chart is drawn).
  replay();
}

// ---- explore -----------------------------------------------------------------------------

// Starts a job and polls it until it ends; `ui` names the progress and error elements.
async function runJob(body, ui) {
  const error = document.getElementById(ui.error);
  error.textContent = "";
  let job;
  try {
    job = await api("/api/explore", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) {
    error.textContent = e.message;
    return;
  }
  state.job = job.id;
  if (ui.started) ui.started(job);
  for (;;) {
    const j = await api(`/api/explore/${job.id}`);
    document.getElementById(ui.progress).value = j.progress;
    if (j.state === "done") { await ui.done(j); return; }
    if (j.state === "failed") { error.textContent = j.result.error; return; }
    if (j.state === "cancelled") { error.textContent = "cancelled"; return; }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function detectorInput(value) {
  return `<div class="row detector"><input class="detector-input" value="${esc(value)}"><button type="button" class="remove">remove</button></div>`;
}

// The explore form's fields, named as the query block's settings (QueryForm on the server).
const FORM_FIELDS = ["name", "expr", "step", "fit_window", "fit_every", "infer_every", "direction",
  "min_deviation_absolute", "min_deviation_relative", "data_range_low", "data_range_high", "extra"];

async function explore() {
  const info = state.info;
  const options = info.queries.map((q, i) => `<option value="${i}">${esc(q.name)}</option>`).join("");
  main().innerHTML = `
    <h2>Explore: try detectors on a query's history before deploying them</h2>
    <form id="explore-form" class="card">
      <div class="row">
        ${info.queries.length ? `<label>start from a query of the file<select id="pick"><option value="">—</option>${options}</select></label>` : ""}
        <label>name<input id="name" value="explore"></label>
        <label>step<input id="step" value="1m" size="6"></label>
        <label>fit_window<input id="fit_window" placeholder="default" size="8"></label>
        <label>fit_every<input id="fit_every" placeholder="default" size="8"></label>
        <label>infer_every<input id="infer_every" placeholder="= step" size="8"></label>
      </div>
      <label>expr (PromQL)<textarea id="expr" rows="2" cols="100"></textarea></label>
      <div id="detectors"><label>detectors (each an inline table, as the file writes it)</label>${detectorInput('{ kind = "knn" }')}</div>
      <button type="button" id="add-detector">add a detector</button>
      <div class="row">
        <label>direction<select id="direction"><option value="">both</option><option value="up">up</option><option value="down">down</option></select></label>
        <label>min_deviation absolute<input id="min_deviation_absolute" placeholder="0" size="8"></label>
        <label>min_deviation relative<input id="min_deviation_relative" placeholder="0" size="6"></label>
        <label>data_range low<input id="data_range_low" placeholder="-inf" size="8"></label>
        <label>data_range high<input id="data_range_high" placeholder="inf" size="8"></label>
      </div>
      <label>more settings of the query block (TOML lines, checked as the file's)<textarea id="extra" rows="2" cols="100"></textarea></label>
      <div class="row">
        <label>range<select id="range">
          <option value="900000">last 15 minutes</option><option value="3600000" selected>last hour</option>
          <option value="21600000">last 6 hours</option><option value="86400000">last day</option><option value="604800000">last 7 days</option>
          <option value="custom">from … to (unix ms)</option></select></label>
        <label>from (unix ms)<input id="from_ms" size="14"></label><label>to (unix ms)<input id="to_ms" size="14"></label>
        <button id="run">Backtest</button><button type="button" id="cancel">Cancel</button>
        <progress id="progress" max="1" value="0"></progress>
      </div>
      <small>At most ${info.limits.running} jobs at once, ${info.limits.detectors} detectors, ${info.limits.steps} steps and ${info.limits.series} series per job, ${info.limits.points} points in all.</small>
    </form>
    <div class="error" id="explore-error"></div>
    <div id="results"></div>`;
  const detectors = document.getElementById("detectors");
  detectors.onclick = (ev) => { if (ev.target.classList.contains("remove")) ev.target.parentElement.remove(); };
  document.getElementById("add-detector").onclick = () => detectors.insertAdjacentHTML("beforeend", detectorInput('{ kind = "zscore" }'));
  const pick = document.getElementById("pick");
  if (pick) pick.onchange = () => {
    const q = info.queries[Number(pick.value)];
    if (!q) return;
    for (const k of FORM_FIELDS) document.getElementById(k).value = q[k] || "";
    detectors.querySelectorAll(".detector").forEach((d) => d.remove());
    detectors.insertAdjacentHTML("beforeend", detectorInput(q.detector));
  };
  document.getElementById("cancel").onclick = () => { if (state.job) fetch(`/api/explore/${state.job}`, { method: "DELETE" }); };
  document.getElementById("explore-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const range = document.getElementById("range").value;
    let from = Number(document.getElementById("from_ms").value), to = Number(document.getElementById("to_ms").value);
    if (range !== "custom") { to = rangeEnd(); from = to - Number(range); }
    const form = {};
    for (const k of FORM_FIELDS) form[k] = document.getElementById(k).value;
    const list = [...document.querySelectorAll(".detector-input")].map((i) => i.value).filter((v) => v.trim());
    const results = document.getElementById("results");
    results.innerHTML = "";
    await runJob({ form, detectors: list, from_ms: from, to_ms: to }, {
      progress: "progress", error: "explore-error",
      done: (job) => showResults(job, results),
    });
  };
}

async function showResults(job, results) {
  const r = job.result;
  const rows = r.detectors.map((d) => `<tr data-query="${esc(d.query)}"><td>${esc(d.query)}</td><td><code>${esc(d.settings)}</code></td>
    <td class="num points">${d.points}</td><td class="num judged">${d.judged}</td><td class="num flagged">${d.flagged}</td>
    <td class="num alerts">${d.alerts}</td><td class="num">${d.fits}</td><td class="num">${fmt(d.wall_s, 2)} s</td></tr>`).join("");
  const options = r.series.map((l, i) => `<option value="${i}">${esc(Object.entries(l).map(([k, v]) => `${k}="${v}"`).join(", ") || "{}")}</option>`).join("");
  results.innerHTML = `
    <table id="counts"><tr><th>query</th><th>detector</th><th>points</th><th>judged</th><th>flagged</th><th>alerts</th><th>fits</th><th>time</th></tr>${rows}</table>
    <div class="row"><label>series (${r.series.length})<select id="series-pick">${options}</select></label>
      <button type="button" id="copy">copy as TOML</button></div>
    <pre id="toml">${esc(job.toml)}</pre>
    <div id="charts"></div>`;
  document.getElementById("copy").onclick = () => {
    const text = job.toml;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    const range = document.createRange();
    range.selectNodeContents(document.getElementById("toml"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  };
  const draw = async (k) => {
    const charts = document.getElementById("charts");
    charts.innerHTML = "";
    if (!r.series.length) return;
    const one = await api(`/api/explore/${job.id}/series/${k}`);
    for (const d of one.detectors) drawChart(charts, `explore:${d.query}`, `${d.query} (${d.detector})`, d.points);
  };
  document.getElementById("series-pick").onchange = (ev) => draw(ev.target.value);
  await draw(0);
  state.done = job.id;
}

// ---- start -------------------------------------------------------------------------------

(async () => {
  try {
    state.info = await api("/api/info");
  } catch (e) {
    main().innerHTML = `<div class="error">${esc(e.message)}</div>`;
    return;
  }
  document.getElementById("endpoint").textContent = `Prometheus: ${state.info.endpoint}`;
  if (state.info.mode !== "watch") document.getElementById("nav-overview").remove();
  const path = location.pathname;
  const view = path.startsWith("/ui/explore") ? "explore" : path.startsWith("/ui/series") ? "series" : "overview";
  const nav = document.getElementById(`nav-${view === "series" ? "overview" : view}`);
  if (nav) nav.classList.add("active");
  if (view === "explore") await explore();
  else if (view === "series") await seriesView();
  else await overview();
  document.body.dataset.ready = view;
})();
