// The strangler dashboard: polls /admin/stats and drives the rollout actions.
// The admin token is sent in an Authorization header (kept in sessionStorage, never a cookie).
"use strict";

const POLL_MS = 1000;
const ACTIONS = ["pause", "resume", "approve", "abort"];
const ALLOWED = {
  pending: [], progressing: ["pause", "abort"], waiting_for_approval: ["approve", "pause", "abort"],
  paused: ["resume", "abort"], promoted: [], rolled_back: [],
};

function token() { return sessionStorage.getItem("strangler-admin-token") || ""; }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

function say(text) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = text ? "error" : "";
}

async function call(method, path) {
  const reply = await fetch(path, { method, headers: headers(), cache: "no-store", credentials: "omit" });
  if (reply.status === 401) throw new Error("wrong or missing token");
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error(body.error || method + " " + path + ": HTTP " + reply.status);
  return body;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function num(value, scale, digits) {
  return value === null || value === undefined ? "–" : (value * scale).toFixed(digits);
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
}

function routeRows(routes) {
  const rows = [];
  for (const route of routes) {
    route.backends.forEach((b, i) => {
      const tr = el("tr", undefined, { "data-route": route.name, "data-backend": b.backend });
      tr.append(el("td", i === 0 ? route.name : ""), el("td", i === 0 ? route.match.path : ""));
      tr.append(el("td", b.backend), el("td", b.weight, { class: "num weight" }));
      tr.append(el("td", b.requests, { class: "num requests" }));
      rows.push(tr);
    });
  }
  return rows;
}

function backendRows(backends) {
  return backends.map((b) => {
    const tr = el("tr", undefined, { "data-route": b.route, "data-backend": b.backend });
    tr.append(el("td", b.route), el("td", b.backend));
    tr.append(el("td", b.requests, { class: "num requests" }), el("td", num(b.rps, 1, 1), { class: "num rps" }));
    tr.append(el("td", num(b.error_pct, 1, 2), { class: "num errors" }));
    tr.append(el("td", num(b.p50, 1000, 1), { class: "num p50" }), el("td", num(b.p99, 1000, 1), { class: "num p99" }));
    return tr;
  });
}

function evidenceText(ev) {
  const parts = [];
  for (const [backend, n] of Object.entries(ev.requests || {})) {
    const errors = (ev.errors || {})[backend] || 0;
    const p99 = (ev.p99 || {})[backend];
    parts.push(backend + ": " + n + " req, " + errors + " 5xx, p99 " + num(p99, 1000, 1) + " ms");
  }
  if (ev.compared) parts.push("shadow " + ev.matched + "/" + ev.compared + " matched");
  return parts.join("; ") || "no traffic";
}

function rolloutBox(r) {
  const box = el("div", undefined, { class: "rollout", "data-rollout": r.route });
  box.append(el("h3", r.route + " → " + r.backend));
  const line = el("p");
  line.append("phase ", el("span", r.phase, { class: "phase" }), ", weight ");
  line.append(el("span", r.weight, { class: "weight" }), "%, steps " + r.steps.join(" → "));
  if (r.reason) line.append(" — ", el("span", r.reason, { class: "reason" }));
  box.append(line);
  for (const action of ACTIONS) {
    const button = el("button", action, { type: "button", "data-action": action });
    button.disabled = !(ALLOWED[r.phase] || []).includes(action);
    button.addEventListener("click", () => act(r.route, action));
    box.append(button);
  }
  if (r.history.length) {
    const table = el("table", undefined, { class: "history" });
    table.append(el("tr")); table.rows[0].append(...["Step", "Weight", "Verdict", "Gate", "Evidence", "Reason"].map((h) => el("th", h)));
    for (const v of r.history) {
      const tr = el("tr");
      tr.append(el("td", v.step + 1), el("td", v.weight), el("td", v.outcome, { class: v.outcome }));
      tr.append(el("td", v.gate || ""), el("td", evidenceText(v.evidence)), el("td", v.reason || ""));
      table.append(tr);
    }
    box.append(table);
  }
  return box;
}

function shadowRows(endpoints) {
  return endpoints.map((e) => {
    const tr = el("tr", undefined, { "data-route": e.route, "data-endpoint": e.method + " " + e.endpoint });
    tr.append(el("td", e.route), el("td", e.method + " " + e.endpoint), el("td", e.shadow_backend));
    tr.append(el("td", e.compared, { class: "num compared" }), el("td", num(e.match_pct, 1, 2), { class: "num match" }));
    tr.append(el("td", e.fields.map((f) => f.path + " (" + f.count + ")").join(", "), { class: "fields" }));
    tr.append(el("td", [...new Set(e.fields.flatMap((f) => f.examples))].slice(0, 3).join(", "), { class: "examples" }));
    return tr;
  });
}

function outboxRows(o) {
  const tr = el("tr");
  tr.append(el("td", o.pending, { class: "num pending" }));
  tr.append(el("td", o.oldest_pending_age === null ? "–" : num(o.oldest_pending_age, 1, 1) + " s", { class: "num oldest" }));
  tr.append(el("td", o.published, { class: "num published" }), el("td", o.doubts, { class: "num doubts" }));
  tr.append(el("td", o.blocked, { class: "num blocked" }));
  return [tr];
}

function ago(seconds) {
  return seconds === null || seconds === undefined ? "–" : num(seconds, 1, 1) + " s";
}

// The leading relay from its heartbeat; "stale" once the heartbeat stopped.
function relayRows(o) {
  const r = o.relay;
  if (!r) return [];
  const tr = el("tr", undefined, { "data-holder": r.holder, class: r.stale ? "stale" : "live" });
  tr.append(el("td", r.holder, { class: "holder" }), el("td", r.stale ? "stale" : "leading", { class: "state" }));
  tr.append(el("td", ago(r.heartbeat_age) + " ago", { class: "num heartbeat" }), el("td", ago(r.leading_for), { class: "num leading" }));
  tr.append(el("td", r.published, { class: "num published" }), el("td", num(r.rate, 1, 2), { class: "num rate" }));
  tr.append(el("td", r.last_publish_age === null ? "–" : ago(r.last_publish_age) + " ago", { class: "num last-publish" }));
  const error = r.last_error ? r.last_error + " (" + ago(r.last_error_age) + " ago)" : "";
  tr.append(el("td", error, { class: "last-error" }));
  return [tr];
}

// A panel: hidden table with a note when not configured or unreadable, else its rows.
function panel(id, data, rows, absent, empty) {
  const table = document.getElementById(id);
  const note = document.getElementById(id + "-note");
  const failed = data && data.error;
  const list = data && !failed ? rows(data) : [];
  table.hidden = !list.length;
  note.textContent = !data ? absent : failed ? data.error : list.length ? "" : empty || "Nothing in this window yet.";
  note.hidden = !note.textContent;
  fill(id, list);
}

function render(data) {
  fill("routes", routeRows(data.routes));
  fill("backends", backendRows(data.backends));
  const rollouts = document.getElementById("rollouts");
  if (data.rollouts.length) rollouts.replaceChildren(...data.rollouts.map(rolloutBox));
  panel("shadow", data.shadow, (s) => shadowRows(s.endpoints), "No route shadows traffic.");
  panel("outbox", data.outbox, outboxRows, "No route captures writes.");
  panel("relay", data.outbox, relayRows, "No route captures writes.", "No relay: nothing publishes the outbox.");
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// A failed action's message stays until the next action or token; poll errors come and go.
async function refresh() {
  const box = document.getElementById("message");
  try {
    render(await call("GET", "/admin/stats"));
    if (box.dataset.kind !== "action") say("");
  } catch (err) {
    if (box.dataset.kind !== "action") say(err.message);
  }
}

async function act(route, action) {
  const box = document.getElementById("message");
  try {
    await call("POST", "/admin/rollout/" + encodeURIComponent(route) + "/" + action);
    box.dataset.kind = "";
    say("");
  } catch (err) {
    say(action + " " + route + ": " + err.message);
    box.dataset.kind = "action";
  }
  await refresh();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("strangler-admin-token", document.getElementById("token").value);
  document.getElementById("message").dataset.kind = "";
  refresh();
});

document.getElementById("token").value = token();
refresh();
setInterval(refresh, POLL_MS);
