// The Watchgate console: polls the JSON API and renders it. Whatever a server or a client said
// is set as text (textContent), never as markup; actions carry the page's CSRF token.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const STATE_EVERY = 2000;
const AUDIT_EVERY = 5000;
const reasons = new Map(); // what a person typed as a denial's reason, kept across redraws

function token() {
  return sessionStorage.getItem("watchgate-token") || "";
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch("/console/api/" + path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    document.getElementById("token-form").hidden = false;
    throw new Error("the listener wants a token");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function act(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body || {}),
  });
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(parent, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = label.toLowerCase();
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await onClick();
      setStatus("done: " + label.toLowerCase());
    } catch (error) {
      setStatus(error.message);
    }
    refresh();
  });
  parent.appendChild(b);
  return b;
}

// Redraw a table; a row whose key was there before is kept (its text updated, its buttons and
// what was typed in it left alone), so nothing is replaced under a person's pointer.
function fill(tableId, rows, render, keyOf) {
  const body = document.querySelector("#" + tableId + " tbody");
  const before = new Map();
  for (const tr of body.children) if (tr.dataset.key) before.set(tr.dataset.key, tr);
  const after = [];
  for (const item of rows) {
    const tr = document.createElement("tr");
    render(tr, item);
    const key = keyOf ? String(keyOf(item)) : "";
    tr.dataset.key = key;
    const kept = key ? before.get(key) : undefined;
    if (kept && kept.children.length === tr.children.length) {
      Array.from(tr.children).forEach((td, i) => {
        if (td.classList.contains("actions")) return;
        kept.children[i].textContent = td.textContent;
        kept.children[i].className = td.className;
      });
      after.push(kept);
    } else {
      after.push(tr);
    }
  }
  body.replaceChildren(...after);
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function seconds(value) {
  return value === null || value === undefined ? "" : Math.round(value) + " s";
}

function renderState(state) {
  fill("servers", state.servers, (tr, s) => {
    tr.dataset.server = s.name;
    cell(tr, s.name);
    cell(tr, s.state, "state-" + s.state);
    cell(tr, s.transport + (s.also_speaks.length ? "+" + s.also_speaks.join("+") : ""));
    cell(tr, s.pid !== null ? s.pid : s.host);
    cell(tr, s.restarts);
    cell(tr, s.in_flight);
    cell(tr, s.sandbox);
    cell(tr, s.last_error);
    const actions = cell(tr, "", "actions");
    for (const verb of ["Restart", "Stop", "Start"]) {
      button(actions, verb, () => act("servers/" + encodeURIComponent(s.name) + "/" + verb.toLowerCase()));
    }
  }, (s) => s.name);
  document.getElementById("no-approvals").hidden = state.approvals.length > 0;
  fill("approvals", state.approvals, (tr, a) => {
    tr.dataset.approval = a.id;
    tr.dataset.tool = a.tool; // an attribute value: text, never markup
    cell(tr, a.id);
    cell(tr, seconds(a.age));
    cell(tr, a.server);
    cell(tr, a.tool);
    cell(tr, a.client);
    cell(tr, a.principal);
    cell(tr, JSON.stringify(a.arguments), "args");
    cell(tr, seconds(a.expires_in));
    const decide = cell(tr, "", "actions");
    const reason = document.createElement("input");
    reason.placeholder = "reason (deny)";
    reason.value = reasons.get(a.id) || "";
    reason.addEventListener("input", () => reasons.set(a.id, reason.value));
    button(decide, "Approve", () => act("approvals/" + encodeURIComponent(a.id) + "/approve"));
    button(decide, "Deny", () => act("approvals/" + encodeURIComponent(a.id) + "/deny", { reason: reason.value }));
    decide.appendChild(reason);
  }, (a) => a.id);
  fill("clients", state.clients, (tr, c) => {
    cell(tr, c.id);
    cell(tr, c.name + (c.version ? " " + c.version : ""));
    cell(tr, c.principal);
    cell(tr, c.profile);
    cell(tr, c.peer !== null ? c.peer : c.pid);
    cell(tr, c.in_flight);
  }, (c) => c.id);
  renderRates(state.rates);
  const audit = state.audit;
  setStatus(audit ? (audit.healthy ? "audit log ok" : "audit log failing: " + audit.last_error) : "no audit log");
}

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

// One chart a server and tool: calls a minute (bars) and mean latency (line), the last hour.
function chart(series) {
  const width = 360, height = 90, step = width / series.points.length;
  const most = Math.max(1, ...series.points.map((p) => p.calls));
  const slowest = Math.max(1, ...series.points.map((p) => p.mean_ms));
  const figure = svg("svg", { width, height: height + 4, viewBox: `0 0 ${width} ${height + 4}`, class: "chart" });
  series.points.forEach((p, i) => {
    const h = (p.calls / most) * height;
    const bar = svg("rect", { x: i * step, y: height - h, width: Math.max(1, step - 1), height: h,
      class: p.errors ? "bar errors" : "bar" });
    const title = svg("title", {});
    title.textContent = `${60 - i} min ago: ${p.calls} calls, ${p.errors} errors, ${p.mean_ms} ms mean, ${p.max_ms} ms max`;
    bar.appendChild(title);
    figure.appendChild(bar);
  });
  const line = series.points.map((p, i) => `${(i + 0.5) * step},${height - (p.mean_ms / slowest) * height}`);
  figure.appendChild(svg("polyline", { points: line.join(" "), class: "latency" }));
  return figure;
}

function renderRates(rates) {
  document.getElementById("no-rates").hidden = rates.length > 0;
  const box = document.getElementById("rates");
  box.replaceChildren();
  for (const series of rates) {
    const figure = document.createElement("figure");
    figure.dataset.series = series.server + "/" + series.tool;
    const calls = series.points.reduce((sum, p) => sum + p.calls, 0);
    const caption = document.createElement("figcaption");
    caption.textContent = `${series.server} · ${series.tool}: ${calls} calls`;
    figure.appendChild(caption);
    figure.appendChild(chart(series));
    box.appendChild(figure);
  }
}

function auditQuery() {
  const form = document.getElementById("audit-filters");
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
  return query.toString();
}

async function refreshAudit() {
  try {
    const result = await api("audit?" + auditQuery());
    fill("audit-records", result.records.slice().reverse(), (tr, r) => {
      cell(tr, r.time);
      cell(tr, r.event);
      cell(tr, r.decision);
      cell(tr, r.server);
      cell(tr, r.public_name || r.tool || r.method);
      cell(tr, r.principal || r.client);
      cell(tr, r.reason);
    });
    const verify = document.getElementById("verify");
    verify.textContent = result.verify ? result.verify.summary : "no audit log";
    verify.className = result.verify && !result.verify.ok ? "broken" : "ok";
  } catch (error) {
    setStatus(error.message);
  }
}

async function refresh() {
  try {
    renderState(await api("state"));
  } catch (error) {
    setStatus(error.message);
  }
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("watchgate-token", document.getElementById("token").value);
  document.getElementById("token-form").hidden = true;
  refresh();
  refreshAudit();
});
document.getElementById("audit-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  refreshAudit();
});
refresh();
refreshAudit();
setInterval(refresh, STATE_EVERY);
setInterval(refreshAudit, AUDIT_EVERY);
