// Spice Harvester submission page: submit commands, follow them live over the WebSocket, browse results.
"use strict";

const FINAL = new Set(["COMPLETED", "FAILED"]);
const TOKEN_KEY = "spice.token";
const DB_KEY = "spice.db";

const TEMPLATES = {
  class: [
    {name: "Company", body: {
      id: "Company", label: {en: "Company", ko: "회사"}, description: "An organisation people work for",
      properties: [{name: "name", type: "string", label: "Name", required: true},
                   {name: "founded", type: "date"}, {name: "listed", type: "boolean", default: false}]}},
    {name: "Person (links to Company)", body: {
      id: "Person", label: {en: "Person", ko: "사람"},
      properties: [{name: "name", type: "string", required: true}, {name: "born", type: "date"},
                   {name: "employer", type: "link", target: "Company"}],
      relationships: [{predicate: "worksFor", target: "Company", label: "works for", cardinality: "n:1"}]}},
    {name: "Employee (subclass of Person)", body: {
      id: "Employee", label: "Employee", parent_class: "Person",
      properties: [{name: "salary", type: "decimal", constraints: {min: 0}}, {name: "hired", type: "datetime"}]}},
    {name: "Empty class", body: {id: "", label: "", description: "", properties: [], relationships: []}},
  ],
  instance: [
    {name: "Company instance", classId: "Company", body: {data: {name: "Acme", founded: "1999-04-01", listed: true}}},
    {name: "Person instance", classId: "Person",
     body: {data: {instance_id: "ada", name: "Ada Lovelace", born: "1815-12-10"}, metadata: {source: "page"}}},
    {name: "Empty instance", classId: "", body: {data: {}}},
  ],
};

const $ = (id) => document.getElementById(id);
const state = {token: localStorage.getItem(TOKEN_KEY) || "", commands: new Map()};

function kind() { return $("kind-instance").checked ? "instance" : "class"; }
function db() { return $("db-select").value; }
function enc(value) { return encodeURIComponent(value); }

async function api(method, path, body) {
  const headers = {Accept: "application/json"};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (err) {
    return {status: 0, ok: false, data: {detail: {message: "the server is unreachable: " + err.message}}};
  }
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (resp.status === 401) setTokenState("token rejected — paste a valid one", true);
  return {status: resp.status, ok: resp.ok, data};
}

// ---- validation messages -------------------------------------------------------------------------
function showErrors(boxId, status, data) {
  const box = $(boxId);
  const detail = data && data.detail !== undefined ? data.detail : data;
  let message = "request failed" + (status ? ` (HTTP ${status})` : "");
  const items = [];
  if (typeof detail === "string") message = detail;
  else if (Array.isArray(detail)) detail.forEach((d) => items.push(d));
  else if (detail && typeof detail === "object") {
    if (detail.message) message = detail.message;
    if (Array.isArray(detail.errors)) detail.errors.forEach((e) => items.push(e));
    else for (const [k, v] of Object.entries(detail)) if (k !== "message") items.push({loc: k, msg: JSON.stringify(v)});
  }
  box.querySelector("p").textContent = (status ? `${status}: ` : "") + message;
  const list = box.querySelector("ul");
  list.replaceChildren(...items.map((e) => {
    const li = document.createElement("li");
    if (e && typeof e === "object") {
      if (e.loc) { const code = document.createElement("code"); code.textContent = e.loc; li.append(code, " — "); }
      li.append(e.msg || e.message || JSON.stringify(e));
    } else li.textContent = String(e);
    return li;
  }));
  box.hidden = false;
  if (boxId === "messages") $("editor").setAttribute("aria-invalid", "true");
}

function clearErrors(boxId) {
  $(boxId).hidden = true;
  if (boxId === "messages") $("editor").removeAttribute("aria-invalid");
}

// ---- token ---------------------------------------------------------------------------------------
function tokenUser(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part)).sub || null;
  } catch { return null; }
}

function setTokenState(text, bad) {
  $("token-state").textContent = text;
  $("token-state").className = bad ? "FAILED" : "";
}

async function useToken(token) {
  state.token = token.trim();
  if (state.token) localStorage.setItem(TOKEN_KEY, state.token); else localStorage.removeItem(TOKEN_KEY);
  $("token").value = state.token;
  if (!state.token) { setTokenState("no token", true); return; }
  const user = tokenUser(state.token);
  setTokenState(user ? `checking token of ${user}…` : "checking token…");
  if (await loadDatabases()) setTokenState(user ? `signed in as ${user}` : "token accepted");
}

// ---- databases and classes -----------------------------------------------------------------------
async function loadDatabases(select) {
  const {ok, status, data} = await api("GET", "/api/v1/database/list?limit=1000");
  if (!ok) { if (status !== 401) showErrors("db-messages", status, data); return false; }
  clearErrors("db-messages");
  const wanted = select || db() || localStorage.getItem(DB_KEY) || "";
  const names = data.databases || (data.items || []).map((d) => d.name);
  const options = names.map((name) => new Option(name, name));
  if (!options.length) options.push(new Option("(none yet — create one)", ""));
  $("db-select").replaceChildren(...options);
  if (names.includes(wanted)) $("db-select").value = wanted;
  await loadClasses();
  return true;
}

async function loadClasses() {
  const list = $("class-ids");
  if (!db()) { list.replaceChildren(); return; }
  localStorage.setItem(DB_KEY, db());
  const {ok, data} = await api("GET", `/api/v1/ontology/${enc(db())}/classes?limit=1000`);
  const ids = ok ? (data.items || []).map((c) => c.id || c.class_id).filter(Boolean) : [];
  list.replaceChildren(...ids.map((id) => new Option(id, id)));
}

async function createDatabase(event) {
  event.preventDefault();
  const name = $("db-name").value.trim();
  const body = {name, description: $("db-description").value.trim()};
  const {ok, status, data} = await api("POST", "/api/v1/database/create", body);
  if (!ok) { showErrors("db-messages", status, data); return; }
  clearErrors("db-messages");
  track(data, {kind: "database", what: `create database ${name}`, db: name});
  $("db-name").value = "";
}

// ---- editor and templates ------------------------------------------------------------------------
function fillTemplates() {
  const templates = TEMPLATES[kind()];
  $("template").replaceChildren(...templates.map((t, i) => new Option(t.name, String(i))));
  $("instance-class-row").hidden = kind() !== "instance";
  $("editor-hint").textContent = kind() === "class"
    ? 'An ontology class: {"id", "label", "description", "parent_class", "abstract", "properties", "relationships"}.'
    : 'An instance: {"data": {property: value, …}, "metadata": {…}}; data.instance_id is optional.';
  applyTemplate();
}

function applyTemplate() {
  const template = TEMPLATES[kind()][Number($("template").value) || 0];
  $("editor").value = JSON.stringify(template.body, null, 2);
  if (template.classId !== undefined) $("instance-class").value = template.classId;
  clearErrors("messages");
}

function formatEditor() {
  try { $("editor").value = JSON.stringify(JSON.parse($("editor").value), null, 2); clearErrors("messages"); }
  catch (err) { showErrors("messages", 0, {detail: {message: "the editor does not hold valid JSON: " + err.message}}); }
}

async function submit(event) {
  event.preventDefault();
  clearErrors("messages");
  if (!state.token) { showErrors("messages", 0, {detail: {message: "paste a bearer token first"}}); return; }
  if (!db()) { showErrors("messages", 0, {detail: {message: "pick or create a database first"}}); return; }
  let body;
  try { body = JSON.parse($("editor").value); }
  catch (err) {
    showErrors("messages", 0, {detail: {message: "the editor does not hold valid JSON: " + err.message}});
    return;
  }
  const name = db();
  let path, meta;
  if (kind() === "class") {
    path = `/api/v1/ontology/${enc(name)}/async/create`;
    const id = body && typeof body === "object" ? body.id : undefined;
    meta = {kind: "class", what: `create class ${id ?? "?"} in ${name}`, db: name, classId: id};
  } else {
    const classId = $("instance-class").value.trim();
    if (!classId) { showErrors("messages", 0, {detail: {message: "name the instance's class id"}}); return; }
    path = `/api/v1/instances/${enc(name)}/async/${enc(classId)}/create`;
    const instanceId = body && body.data && typeof body.data === "object" ? body.data.instance_id : undefined;
    meta = {kind: "instance", what: `create ${classId} instance in ${name}`, db: name, classId, instanceId};
  }
  $("submit").disabled = true;
  $("submit-state").textContent = "submitting…";
  const {ok, status, data} = await api("POST", path, body);
  $("submit").disabled = false;
  if (!ok) { $("submit-state").textContent = ""; showErrors("messages", status, data); return; }
  $("submit-state").textContent = `accepted: ${data.command_id}`;
  const result = data.result || {};
  if (result.instance_id) meta.instanceId = result.instance_id;
  track(data, meta);
}

// ---- commands, live status -----------------------------------------------------------------------
function track(accepted, meta) {
  const cmd = {id: accepted.command_id, ...meta, status: null, trail: [], progress: 0, error: null};
  state.commands.set(cmd.id, cmd);
  cmd.row = buildRow(cmd);
  $("history-rows").prepend(cmd.row);
  $("history").hidden = false;
  $("history-empty").hidden = true;
  update(cmd, {status: accepted.status || "PENDING", progress: 0});
  watch(cmd);
}

function button(label, view, cmd) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "link";
  b.textContent = label;
  b.dataset.view = view;
  b.setAttribute("aria-label", `${label} of ${cmd.what}`);
  b.addEventListener("click", () => show(cmd, view));
  return b;
}

function buildRow(cmd) {
  const tr = document.createElement("tr");
  tr.id = "cmd-" + cmd.id;
  tr.dataset.commandId = cmd.id;
  const what = document.createElement("td");
  const label = document.createElement("span");
  label.className = "what";
  label.textContent = cmd.what;
  const code = document.createElement("code");
  code.textContent = cmd.id;
  what.append(label, code);
  const status = document.createElement("td");
  status.className = "status";
  status.innerHTML = '<span class="status-text"></span><span class="trail"></span><span class="error-text"></span>';
  const progress = document.createElement("td");
  progress.className = "progress";
  const views = document.createElement("td");
  views.className = "views";
  views.append(button("status", "status", cmd));
  const objectViews = cmd.kind === "database" ? [["object", "object"]]
    : [["object", "object"], ["history", "history"], ["provenance", "provenance"]];
  for (const [text, view] of objectViews) {
    const b = button(text, view, cmd);
    b.disabled = true;
    b.classList.add("needs-result");
    views.append(" ", b);
  }
  tr.append(what, status, progress, views);
  return tr;
}

function update(cmd, data) {
  const status = data.status;
  if (!status || FINAL.has(cmd.status)) return;  // a final state is the last word
  if (cmd.trail[cmd.trail.length - 1] !== status) cmd.trail.push(status);
  cmd.status = status;
  if (typeof data.progress === "number") cmd.progress = data.progress;
  if (status === "FAILED" && data.message && !cmd.error) cmd.error = data.message;
  render(cmd);
  if (FINAL.has(status)) finished(cmd);
}

function render(cmd) {
  const row = cmd.row;
  row.dataset.status = cmd.status;
  const cell = row.querySelector(".status");
  cell.className = "status " + cmd.status;
  cell.querySelector(".status-text").textContent = cmd.status;
  cell.querySelector(".trail").textContent = cmd.trail.join(" → ");
  cell.querySelector(".error-text").textContent = cmd.error || "";
  row.querySelector(".progress").textContent = `${cmd.progress}%`;
  for (const b of row.querySelectorAll(".needs-result")) b.disabled = cmd.status !== "COMPLETED";
}

function watch(cmd) {
  const url = new URL("/ws/commands/" + enc(cmd.id), location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("token", state.token);
  const ws = new WebSocket(url);
  cmd.ws = ws;
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "command_update" && message.command_id === cmd.id) update(cmd, message.data);
    else if (message.type === "error") { cmd.error = message.message; render(cmd); }
  };
  ws.onclose = () => {
    cmd.ws = null;
    if (!FINAL.has(cmd.status)) setTimeout(() => poll(cmd), 1000);  // live push lost: fall back to polling
  };
}

async function poll(cmd) {
  if (FINAL.has(cmd.status)) return;
  const {ok, data} = await api("GET", `/api/v1/commands/${enc(cmd.id)}`);
  if (ok) update(cmd, {status: data.status, progress: data.result && data.result.progress});
  if (!FINAL.has(cmd.status)) setTimeout(() => poll(cmd), 1500);
}

async function finished(cmd) {
  if (cmd.ws) cmd.ws.close();
  // The full record: every step (also those before the subscription), the result or the error.
  const {ok, data} = await api("GET", `/api/v1/commands/${enc(cmd.id)}`);
  if (ok && data.result) {
    const steps = (data.result.history || []).map((h) => h.status).filter((s, i, all) => s !== all[i - 1]);
    if (steps.length >= cmd.trail.length && steps[steps.length - 1] === cmd.status) cmd.trail = steps;
    const error = data.result.error;
    if (error) cmd.error = [error.code, error.message].filter(Boolean).join(": ");
    const result = data.result.result || {};
    if (cmd.kind === "instance") cmd.instanceId = result.instance_id || cmd.instanceId || data.result.aggregate_id;
    render(cmd);
  }
  if (cmd.status === "COMPLETED" && cmd.kind === "database") await loadDatabases(cmd.db);
  else if (cmd.status === "COMPLETED" && cmd.kind === "class" && cmd.db === db()) await loadClasses();
}

// ---- object panel --------------------------------------------------------------------------------
const PROVENANCE_FIELDS = ["class_id", "id", "version", "source_command_id", "event_id", "created_by", "created_at",
                           "updated_by", "updated_at"];

function objectPath(cmd) {
  if (cmd.kind === "database") return `/api/v1/database/${enc(cmd.db)}`;
  if (cmd.kind === "class") return `/api/v1/ontology/${enc(cmd.db)}/classes/${enc(cmd.classId)}`;
  return `/api/v1/instances/${enc(cmd.db)}/${enc(cmd.classId)}/${enc(cmd.instanceId)}`;
}

async function show(cmd, view) {
  let path;
  let pick = null;
  if (view === "status") path = `/api/v1/commands/${enc(cmd.id)}`;
  else if (view === "object") path = objectPath(cmd);
  else if (view === "history") path = objectPath(cmd) + "/history";
  else if (cmd.kind === "instance") path = objectPath(cmd) + "/provenance";
  else { path = objectPath(cmd); pick = PROVENANCE_FIELDS; }  // a class carries its provenance fields
  $("panel").hidden = false;
  $("panel-title").textContent = `${view[0].toUpperCase()}${view.slice(1)} — ${cmd.what}`;
  $("panel-url").textContent = path;
  $("panel-state").textContent = "loading…";
  const {status, data} = await api("GET", path);
  let shown = data;
  if (pick && data && typeof data === "object" && status === 200) {
    shown = Object.fromEntries(pick.filter((k) => k in data).map((k) => [k, data[k]]));
  }
  $("panel-state").textContent = `HTTP ${status}`;
  $("panel-body").textContent = JSON.stringify(shown, null, 2);
  $("panel").dataset.view = view;
  $("panel").dataset.httpStatus = String(status);
}

// ---- wiring --------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (e) => { e.preventDefault(); useToken($("token").value); });
  $("token-forget").addEventListener("click", () => useToken(""));
  $("db-refresh").addEventListener("click", () => loadDatabases());
  $("db-select").addEventListener("change", loadClasses);
  $("db-form").addEventListener("submit", createDatabase);
  $("kind-class").addEventListener("change", fillTemplates);
  $("kind-instance").addEventListener("change", fillTemplates);
  $("template-apply").addEventListener("click", applyTemplate);
  $("format").addEventListener("click", formatEditor);
  $("write-form").addEventListener("submit", submit);
  fillTemplates();
  if (state.token) useToken(state.token);
  document.body.dataset.ready = "true";
});
