// braid dashboard: renders snapshots from /api/snapshot and /api/events (server-sent
// events), searches with /api/tasks, shows /api/task/ID, and revokes or retries tasks.
"use strict";

const $ = (id) => document.getElementById(id);
let selected = new URLSearchParams(location.search).get("task");
let lastSnapshot = null;
// The answer to the last Revoke or Retry click, kept while the detail is redrawn.
let lastOutcome = null;

function text(v) {
  return v === null || v === undefined ? "" : String(v);
}

function time(t) {
  return t ? new Date(t * 1000).toISOString().replace("T", " ").replace("Z", "") : "";
}

function cell(row, value, cls) {
  const td = document.createElement("td");
  td.textContent = text(value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function renderCounts(s) {
  $("count-seen").textContent = s.seen;
  for (const state of ["PENDING", "RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED"]) {
    $("count-" + state).textContent = s.counts[state] || 0;
  }
}

function renderWorkers(s) {
  const body = $("workers");
  body.replaceChildren();
  for (const w of s.workers) {
    const row = document.createElement("tr");
    row.dataset.worker = w.hostname;
    row.dataset.state = w.alive ? "online" : "offline";
    cell(row, w.hostname);
    cell(row, w.alive ? "online" : "offline", w.alive ? "online" : "offline");
    const pool = w.concurrency === null || w.concurrency === undefined ? "" : " / " + w.concurrency;
    cell(row, text(w.active) + pool, "active");
    cell(row, w.processed, "processed");
    cell(row, (w.loadavg || []).map((l) => Number(l).toFixed(2)).join(" "), "load");
    cell(row, text(w.sw_ident) + " " + text(w.sw_ver));
    body.appendChild(row);
  }
}

let shownTasks = null;

function renderTasks(list) {
  // Rows stay as they are while nothing changed, so a click in progress is not lost.
  const key = JSON.stringify(list);
  if (key === shownTasks) return;
  shownTasks = key;
  const body = $("tasks");
  body.replaceChildren();
  for (const t of list) {
    const row = document.createElement("tr");
    row.className = "task";
    row.dataset.task = t.uuid;
    cell(row, t.uuid);
    cell(row, t.name);
    cell(row, t.state, t.state);
    cell(row, t.worker);
    cell(row, t.runtime === null || t.runtime === undefined ? "" : t.runtime.toFixed(4) + " s");
    row.addEventListener("click", () => select(t.uuid));
    body.appendChild(row);
  }
}

function renderChart(s) {
  const c = $("chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const series = s.throughput;
  const max = Math.max(1, ...series.map((p) => p[1] + p[2]));
  const w = c.width / Math.max(1, series.length);
  series.forEach((p, i) => {
    const ok = (p[1] / max) * (c.height - 10);
    const bad = (p[2] / max) * (c.height - 10);
    g.fillStyle = "#2e9d5b";
    g.fillRect(i * w, c.height - ok, w - 1, ok);
    g.fillStyle = "#c23b3b";
    g.fillRect(i * w, c.height - ok - bad, w - 1, bad);
  });
  const last = series.slice(-5);
  const rate = last.reduce((a, p) => a + p[1] + p[2], 0) / Math.max(1, last.length);
  $("rate").textContent = rate.toFixed(1) + " tasks/s (max " + max + "/s in the window)";
}

async function refreshTasks() {
  const search = $("search").value.trim();
  const state = $("state").value;
  if (!search && !state && lastSnapshot) {
    renderTasks(lastSnapshot.tasks);
    return;
  }
  const q = new URLSearchParams({ search, state, limit: "100" });
  const r = await fetch("/api/tasks?" + q);
  if (r.ok) renderTasks(await r.json());
}

function render(s) {
  lastSnapshot = s;
  $("broker").textContent = s.broker;
  renderCounts(s);
  renderWorkers(s);
  renderChart(s);
  refreshTasks();
  if (selected) loadDetail(selected);
}

function field(dl, name, value, pre) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.id = "detail-" + name;
  if (pre) {
    const p = document.createElement("pre");
    p.textContent = text(value);
    dd.appendChild(p);
  } else {
    dd.textContent = text(value);
  }
  dl.appendChild(dt);
  dl.appendChild(dd);
}

async function loadDetail(id) {
  const r = await fetch("/api/task/" + encodeURIComponent(id));
  const box = $("detail");
  if (!r.ok) {
    box.textContent = "No task " + id + " seen (yet).";
    return;
  }
  const t = await r.json();
  const dl = document.createElement("dl");
  field(dl, "uuid", t.uuid);
  field(dl, "name", t.name);
  field(dl, "state", t.state);
  field(dl, "worker", t.worker);
  field(dl, "args", t.args, true);
  field(dl, "kwargs", t.kwargs, true);
  field(dl, "result", t.result, true);
  field(dl, "exception", t.exception, true);
  field(dl, "traceback", t.traceback, true);
  field(dl, "retries", t.retries);
  field(dl, "sent", time(t.sent));
  field(dl, "received", time(t.received));
  field(dl, "started", time(t.started));
  field(dl, "succeeded", time(t.succeeded));
  field(dl, "failed", time(t.failed));
  field(dl, "revoked", time(t.revoked));
  field(dl, "runtime", t.runtime === null ? "" : t.runtime + " s");
  const actions = document.createElement("div");
  const revoke = document.createElement("button");
  revoke.id = "revoke";
  revoke.textContent = "Revoke";
  revoke.onclick = () => act(t.uuid, "revoke?terminate=true");
  const retry = document.createElement("button");
  retry.id = "retry";
  retry.textContent = "Retry";
  retry.onclick = () => act(t.uuid, "retry");
  const outcome = document.createElement("span");
  outcome.id = "action-outcome";
  if (lastOutcome && lastOutcome.task === t.uuid) showOutcome(outcome, lastOutcome);
  actions.append(revoke, retry, outcome);
  box.replaceChildren(dl, actions);
}

// Shows what the server answered, its error message included, next to the buttons.
async function act(id, what) {
  const outcome = $("action-outcome");
  outcome.dataset.outcome = "pending";
  outcome.textContent = "...";
  let body;
  try {
    const r = await fetch("/api/task/" + encodeURIComponent(id) + "/" + what, { method: "POST" });
    const raw = await r.text();
    try {
      body = JSON.parse(raw);
    } catch (_) {
      body = { error: "HTTP " + r.status + ": " + raw };
    }
  } catch (e) {
    body = { error: "the dashboard cannot be reached: " + e };
  }
  lastOutcome = { task: id, body };
  // The detail may have been redrawn meanwhile: write into the span shown now.
  if (selected === id) showOutcome($("action-outcome"), lastOutcome);
}

function showOutcome(span, { body }) {
  if (!span) return;
  span.dataset.outcome = body.ok ? "ok" : "error";
  if (body.id) span.dataset.newTask = body.id;
  span.textContent = body.ok ? body.ok + (body.id ? " as " + body.id : "") : "error: " + body.error;
}

function select(id) {
  selected = id;
  const u = new URL(location);
  u.searchParams.set("task", id);
  history.replaceState(null, "", u);
  loadDetail(id);
}

$("search").addEventListener("input", refreshTasks);
$("state").addEventListener("change", refreshTasks);

fetch("/api/snapshot").then((r) => r.json()).then(render);
const source = new EventSource("/api/events");
source.onmessage = (m) => {
  $("live").dataset.live = "yes";
  $("live").textContent = "live";
  render(JSON.parse(m.data));
};
source.onerror = () => {
  $("live").dataset.live = "no";
  $("live").textContent = "reconnecting";
};
