// The Enhanced CSP dashboard: plain ES module, no build step. Talks to /api/v1 and /ws.
const API = "/api/v1";
const RANK = { viewer: 0, developer: 1, admin: 2 };
const $ = (sel) => document.querySelector(sel);
const state = { user: null, role: null, ws: null, instance: null, examples: [] };

function tokens() { return JSON.parse(sessionStorage.getItem("csp.tokens") || "null"); }
function setTokens(t) { if (t) sessionStorage.setItem("csp.tokens", JSON.stringify(t)); else sessionStorage.removeItem("csp.tokens"); }
function can(role) { return state.role !== null && RANK[state.role] >= RANK[role]; }

function flash(text, ok = false) {
  const f = $("#flash");
  f.textContent = text || "";
  f.className = ok ? "ok" : "";
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

async function api(path, { method = "GET", body, raw = false, retry = true } = {}) {
  const t = tokens();
  const headers = {};
  if (t) headers.Authorization = `Bearer ${t.access_token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && retry && t && t.refresh_token) {
    const r = await fetch(API + "/auth/refresh", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: t.refresh_token }) });
    if (r.ok) { setTokens(await r.json()); return api(path, { method, body, raw, retry: false }); }
    logout();
  }
  if (raw) return res;
  const doc = await res.json().catch(() => ({}));
  if (!res.ok) { const err = new Error(doc.detail || `${res.status} ${res.statusText}`); err.status = res.status; err.doc = doc; throw err; }
  return doc;
}

// -- login ---------------------------------------------------------------------------

async function login(ev) {
  ev.preventDefault();
  const r = await fetch(API + "/auth/login", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("#login-user").value, password: $("#login-pass").value }) });
  const doc = await r.json();
  if (!r.ok) { flash(doc.detail || "login failed"); return; }
  setTokens(doc);
  flash("");
  enter();
}

function logout() {
  setTokens(null);
  state.user = state.role = null;
  if (state.ws) state.ws.close();
  state.ws = null;
  $("#nav").hidden = true; $("#logout").hidden = true; $("#whoami").textContent = "";
  show("login");
}

async function enter() {
  const t = tokens();
  if (!t) { show("login"); return; }
  state.user = t.username; state.role = t.role;
  $("#whoami").textContent = `${t.username} (${t.role})`;
  $("#nav").hidden = false; $("#logout").hidden = false;
  for (const n of document.querySelectorAll("[data-needs]")) {
    n.textContent = can(n.dataset.needs) ? "" : `read-only: ${n.dataset.needs} role needed`;
  }
  $("#deploy-btn").disabled = !can("developer");
  $("#offer-btn").disabled = !can("developer");
  route();
}

// -- pages ---------------------------------------------------------------------------

function show(name) {
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== `page-${name}`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#${name}`);
}

function route() {
  if (!tokens()) { show("login"); return; }
  const name = (location.hash || "#systems").slice(1);
  const pages = { systems: loadSystems, instances: loadInstances, refusals: loadRefusals, sql: () => {}, audit: loadAudit };
  const page = pages[name] ? name : "systems";
  show(page);
  pages[page]().catch((e) => flash(e.message));
}

async function loadExamples() {
  if (state.examples.length) return;
  state.examples = await api("/examples");
  const sel = $("#deploy-example");
  for (const ex of state.examples) sel.append(el("option", { value: ex.name }, ex.name));
}

async function loadSystems() {
  await loadExamples();
  const doc = await api("/processes?limit=1000");
  const tbody = $("#systems-table tbody");
  tbody.replaceChildren();
  for (const s of doc.items) {
    const badges = el("div");
    for (const a of s.assertions) badges.append(el("span", { class: `badge ${a.status}`, title: a.text }, `${a.status} ${a.text}`));
    const start = el("button", { class: "start-btn", "data-system": s.id, onclick: () => startInstance(s.id) }, "Start instance");
    start.disabled = !can("developer") || s.status !== "deployed";
    const lts = el("button", { class: "lts-btn", "data-system": s.id, onclick: () => showLts(s.id) }, "LTS");
    tbody.append(el("tr", { "data-system": s.id }, el("td", {}, s.id), el("td", {}, `v${s.version}`), el("td", {}, s.status),
      el("td", {}, badges), el("td", {}, s.instances_running), el("td", {}, start, " ", lts)));
  }
}

async function showLts(system) {
  const res = await api(`/processes/${encodeURIComponent(system)}/lts.svg`, { raw: true });
  if (!res.ok) { flash(`LTS of ${system}: ${res.status}`); return; }
  const url = URL.createObjectURL(await res.blob());
  $("#lts").replaceChildren(el("h3", {}, `LTS of ${system}`), el("img", { src: url, alt: `LTS of ${system}` }));
}

async function deploy(ev) {
  ev.preventDefault();
  const out = $("#deploy-result");
  out.textContent = "verifying…";
  const body = { source: $("#deploy-source").value, process: $("#deploy-process").value.trim(),
    outputs: $("#deploy-outputs").value.split(",").map((s) => s.trim()).filter(Boolean) };
  const name = $("#deploy-name").value.trim();
  if (name) body.name = name;
  try {
    const doc = await api("/processes", { method: "POST", body });
    out.textContent = `deployed ${doc.id} v${doc.version}: ` + doc.assertions.map((a) => `${a.status} ${a.text}`).join("; ");
    flash(`deployed ${doc.id} v${doc.version}`, true);
    await loadSystems();
  } catch (e) {
    out.textContent = `${e.status}: ${e.message}` + (e.doc && e.doc.failed ? "\n" + JSON.stringify(e.doc.failed, null, 2) : "");
    flash(e.message);
  }
}

function pickExample() {
  const ex = state.examples.find((x) => x.name === $("#deploy-example").value);
  if (!ex) return;
  $("#deploy-source").value = ex.source;
  const m = {"buffer/buffer.csp": ["BUFFER", "buffer", "right"], "dining/dining.csp": ["SYSTEM", "dining", "sits, getsup, eats, picks, putsdown"],
    "agents/agents.csp": ["SELLER", "agents", "propose, deliver"]}[ex.name];
  if (m) { $("#deploy-process").value = m[0]; $("#deploy-name").value = m[1]; $("#deploy-outputs").value = m[2]; }
}

async function startInstance(system) {
  try {
    const inst = await api(`/processes/${encodeURIComponent(system)}/start`, { method: "POST", body: {} });
    flash(`started ${inst.id}`, true);
    location.hash = "#instances";
    await loadInstances();
    await openInstance(inst.id);
  } catch (e) { flash(e.message); }
}

async function loadInstances() {
  const doc = await api("/instances?limit=200");
  const tbody = $("#instances-table tbody");
  tbody.replaceChildren();
  for (const i of doc.items) {
    tbody.append(el("tr", { "data-instance": i.id }, el("td", {}, i.id), el("td", {}, `${i.system} v${i.version}`),
      el("td", {}, i.status), el("td", {}, i.seq),
      el("td", {}, el("button", { class: "open-btn", "data-instance": i.id, onclick: () => openInstance(i.id) }, "Open"))));
  }
}

function traceItem(text, cls = "") { return el("li", { class: cls }, text); }

async function openInstance(id) {
  state.instance = id;
  $("#instance-detail").hidden = false;
  $("#detail-id").textContent = id;
  const [inst, tr] = await Promise.all([api(`/instances/${encodeURIComponent(id)}`), api(`/instances/${encodeURIComponent(id)}/trace`)]);
  $("#detail-status").textContent = inst.status;
  showAcceptable(inst.acceptable || []);
  const ol = $("#trace");
  ol.replaceChildren(...tr.events.map((e) => traceItem(e.event)));
  ol.dataset.seq = String(tr.events.length ? tr.events[tr.events.length - 1].seq : 0);
  subscribe(id);
}

function showAcceptable(events) {
  $("#acceptable").replaceChildren("acceptable: ", ...events.slice(0, 20).map((ev) =>
    el("button", { type: "button", class: "accept-btn", onclick: () => { $("#offer-event").value = ev; } }, ev)));
}

function subscribe(id) {
  if (state.ws) state.ws.close();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws?token=${encodeURIComponent(tokens().access_token)}`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ action: "subscribe", channels: ["events", "refusals"], instance: id }));
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data);
    if (!f.stream || state.instance !== id) return;
    const ol = $("#trace");
    if (f.stream === "events") {
      if (f.record.seq <= Number(ol.dataset.seq || 0)) return;
      ol.dataset.seq = String(f.record.seq);
      ol.append(traceItem(f.record.event));
    } else if (f.stream === "refusals") {
      ol.append(traceItem(`refused ${f.record.event}: ${f.record.reason}`, "refused"));
    }
  };
  ws.onclose = (e) => { if (e.code === 4008) flash("live trace dropped: too slow (reopen the instance)"); };
}

async function offer(ev) {
  ev.preventDefault();
  const id = state.instance;
  try {
    const r = await api(`/instances/${encodeURIComponent(id)}/offer`, { method: "POST", body: { event: $("#offer-event").value.trim() } });
    $("#offer-result").textContent = r.accepted ? `accepted ${r.event.event} (seq ${r.event.seq})`
      : `refused ${r.refusal.event}: ${r.refusal.reason}: ${r.refusal.message}`;
    const inst = await api(`/instances/${encodeURIComponent(id)}`);
    $("#detail-status").textContent = inst.status;
    showAcceptable(inst.acceptable || []);
  } catch (e) { $("#offer-result").textContent = `${e.status}: ${e.message}`; flash(e.message); }
}

async function loadRefusals() {
  const [refs, dlq] = await Promise.all([api("/refusals?limit=200"), api("/dead-letters?limit=200")]);
  $("#refusals-table tbody").replaceChildren(...refs.reverse().map((r) =>
    el("tr", {}, el("td", {}, r.instance_id), el("td", {}, r.event), el("td", {}, r.reason), el("td", {}, r.message))));
  $("#dlq-table tbody").replaceChildren(...dlq.reverse().map((d) =>
    el("tr", {}, el("td", {}, d.dlq_topic), el("td", {}, d.processor || ""), el("td", {}, d.error || d.reason || ""))));
}

// -- SQL -----------------------------------------------------------------------------

async function runSql(ev) {
  if (ev) ev.preventDefault();
  try {
    const doc = await api("/sql", { method: "POST", body: { sql: $("#sql-text").value } });
    $("#sql-table thead").replaceChildren(el("tr", {}, ...doc.columns.map((c) => el("th", {}, c))));
    $("#sql-table tbody").replaceChildren(...doc.rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {}, v)))));
    chart(doc);
    flash(`${doc.rows_returned} rows`, true);
  } catch (e) { flash(e.message); $("#sql-chart").replaceChildren(); }
}

function chart(doc) {
  // a bar chart of the last numeric column against the first column
  const box = $("#sql-chart");
  box.replaceChildren();
  const num = doc.columns.map((_, i) => doc.rows.length > 0 && doc.rows.every((r) => typeof r[i] === "number"));
  const y = num.lastIndexOf(true);
  if (y < 0 || doc.rows.length === 0) return;
  const w = 720, h = 220, pad = 30, n = doc.rows.length;
  const max = Math.max(...doc.rows.map((r) => r[y]), 1e-9);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("id", "chart-svg");
  const bw = (w - 2 * pad) / n;
  doc.rows.forEach((r, i) => {
    const bh = (h - 2 * pad) * (r[y] / max);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", pad + i * bw + 1); rect.setAttribute("y", h - pad - bh);
    rect.setAttribute("width", Math.max(1, bw - 2)); rect.setAttribute("height", bh); rect.setAttribute("fill", "#2b6cb0");
    const t = document.createElementNS(ns, "title"); t.textContent = `${r[0]}: ${r[y]}`; rect.append(t);
    svg.append(rect);
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", pad); label.setAttribute("y", pad - 10); label.textContent = `${doc.columns[y]} (max ${max})`;
  svg.append(label);
  box.append(svg);
}

// -- audit ---------------------------------------------------------------------------

async function loadAudit() {
  try { $("#audit-status").textContent = JSON.stringify(await api("/audit/status"), null, 2); }
  catch (e) { $("#audit-status").textContent = `${e.status}: ${e.message}`; }
}

async function verifyAudit() {
  $("#audit-result").textContent = "verifying…";
  try { $("#audit-result").textContent = JSON.stringify(await api("/audit/verify"), null, 2); }
  catch (e) { $("#audit-result").textContent = `${e.status}: ${e.message}`; }
}

// -- wiring --------------------------------------------------------------------------

$("#login-form").addEventListener("submit", login);
$("#logout").addEventListener("click", logout);
$("#deploy-form").addEventListener("submit", deploy);
$("#deploy-example").addEventListener("change", pickExample);
$("#offer-form").addEventListener("submit", offer);
$("#sql-form").addEventListener("submit", runSql);
$("#audit-verify").addEventListener("click", verifyAudit);
for (const b of document.querySelectorAll("#sql-presets button")) {
  b.addEventListener("click", () => { $("#sql-text").value = b.dataset.sql; runSql(); });
}
window.addEventListener("hashchange", route);
enter();
