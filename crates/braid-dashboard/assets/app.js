// braid dashboard: renders snapshots from /api/snapshot and /api/events (server-sent
// events), searches with /api/tasks, shows /api/task/ID, and revokes or retries tasks.
"use strict";

const $ = (id) => document.getElementById(id);
let selected = new URLSearchParams(location.search).get("task");
let lastSnapshot = null;

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
    cell(row, w.hostname);
    cell(row, w.alive ? "online" : "offline", w.alive ? "online" : "offline");
    cell(row, w.active);
    cell(row, w.processed);
    cell(row, (w.loadavg || []).join(" "));
    cell(row, text(w.sw_ident) + " " + text(w.sw_ver));
    body.appendChild(row);
  }
}

function renderTasks(list) {
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
  actions.append(revoke, retry, outcome);
  box.replaceChildren(dl, actions);
}

async function act(id, what) {
  const r = await fetch("/api/task/" + encodeURIComponent(id) + "/" + what, { method: "POST" });
  const body = await r.json();
  $("action-outcome").textContent = body.ok ? body.ok + (body.id ? " as " + body.id : "") : "error: " + body.error;
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
