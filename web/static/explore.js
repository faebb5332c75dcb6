// The object explorer: the class tree, a class's instances (through the search API), an object's
// properties, provenance and history with the difference between two versions. Public API only, with
// the user's own token (shared with the submission page through localStorage). No build step.
"use strict";

const TOKEN_KEY = "spice.token";
const PAGE = 20;
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const state = {token: localStorage.getItem(TOKEN_KEY) || "", db: "", classes: new Map(), cls: "", offset: 0,
               sort: "", q: "", object: null, history: []};

async function api(path) {
  const headers = {Accept: "application/json"};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch(path, {headers});
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    const message = data && data.detail && data.detail.message ? data.detail.message : `HTTP ${resp.status}`;
    showMessage(`${resp.status}: ${message}`);
  }
  return {status: resp.status, ok: resp.ok, data};
}

function showMessage(text) {
  const box = $("messages");
  box.hidden = !text;
  box.querySelector("p").textContent = text || "";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => { if (v !== undefined && v !== null) node.setAttribute(k, v); });
  children.forEach((c) => node.append(c));
  return node;
}

function text(value) {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

// ---- token and databases ---------------------------------------------------------------------------
async function useToken(token) {
  state.token = token.trim();
  localStorage.setItem(TOKEN_KEY, state.token);
  const resp = await api("/api/v1/database/list?limit=1000");
  $("token-state").textContent = resp.ok ? "signed in" : "token rejected";
  const select = $("db-select");
  select.replaceChildren(el("option", {value: ""}, resp.ok ? "(pick one)" : "(sign in first)"));
  (resp.ok ? resp.data.databases : []).forEach((name) => select.append(el("option", {value: name}, name)));
  document.body.dataset.databases = resp.ok ? String(resp.data.databases.length) : "0";
}

// ---- the class tree ----------------------------------------------------------------------------------
function properties(classId) {
  // The class's own properties and relationships after its ancestors' (inheritance), by name.
  const chain = [];
  for (let c = state.classes.get(classId); c && !chain.includes(c); c = state.classes.get(c.parent_class)) chain.unshift(c);
  const found = new Map();
  chain.forEach((c) => {
    (c.properties || []).forEach((p) => found.set(p.name, {name: p.name, type: p.type, target: p.target}));
    (c.relationships || []).forEach((r) => found.set(r.predicate, {name: r.predicate, type: "link", target: r.target}));
  });
  return [...found.values()];
}

function subclasses(classId) {
  const out = [classId];
  for (let i = 0; i < out.length; i += 1) {
    state.classes.forEach((c) => { if (c.parent_class === out[i] && !out.includes(c.class_id)) out.push(c.class_id); });
  }
  return out;
}

async function loadClasses() {
  state.db = $("db-select").value;
  $("table-section").hidden = true;
  $("object-section").hidden = true;
  const tree = $("class-tree");
  if (!state.db) { tree.replaceChildren(); return; }
  const resp = await api(`/api/v1/ontology/${enc(state.db)}/classes?limit=1000`);
  state.classes = new Map((resp.ok ? resp.data.items : []).map((c) => [c.class_id, c]));
  const branch = (parent) => {
    const ids = [...state.classes.values()].filter((c) => (c.parent_class || null) === parent
      || (parent === null && c.parent_class && !state.classes.has(c.parent_class))).map((c) => c.class_id).sort();
    if (!ids.length) return null;
    const list = el("ul", {role: parent === null ? undefined : "group"});
    ids.forEach((id) => {
      const c = state.classes.get(id);
      const button = el("button", {type: "button", class: "link" + (c.abstract ? " abstract" : ""), "data-class": id},
                        id + (c.abstract ? " (abstract)" : ""));
      button.addEventListener("click", () => openClass(id));
      const item = el("li", {role: "treeitem"}, button);
      const children = branch(id);
      if (children) item.append(children);
      list.append(item);
    });
    return list;
  };
  tree.replaceChildren(branch(null) || el("p", {class: "hint"}, "No classes yet."));
  document.body.dataset.classes = String(state.classes.size);
}

// ---- a class's instances -------------------------------------------------------------------------------
async function openClass(classId) {
  state.cls = classId;
  state.offset = 0;
  state.sort = "";
  state.q = $("filter").value = "";
  document.querySelectorAll("#class-tree button").forEach((b) => b.setAttribute("aria-current", String(b.dataset.class === classId)));
  await loadInstances();
}

async function loadInstances() {
  const section = $("table-section");
  section.hidden = false;
  section.dataset.loaded = "false";
  $("table-heading").textContent = `Instances of ${state.cls}`;
  const params = new URLSearchParams({class_id: state.cls, limit: String(PAGE), offset: String(state.offset)});
  if (state.q) params.set("q", state.q);
  if (state.sort) params.set("sort", state.sort);
  const resp = await api(`/api/v1/search/${enc(state.db)}?${params}`);
  const items = resp.ok ? resp.data.items : [];
  const columns = ["instance_id", ...properties(state.cls).map((p) => p.name), "version", "updated_by"];
  const head = el("tr");
  columns.forEach((name) => {
    const sortable = name !== "instance_id";
    const mark = state.sort === name ? " ▲" : state.sort === "-" + name ? " ▼" : "";
    const button = el("button", {type: "button", "data-sort": name, disabled: sortable ? undefined : "disabled"}, name + mark);
    button.addEventListener("click", () => {
      state.sort = state.sort === name ? "-" + name : name;
      state.offset = 0;
      loadInstances();
    });
    head.append(el("th", {}, button));
  });
  $("instances").tHead.replaceChildren(head);
  const body = $("instances").tBodies[0];
  body.replaceChildren();
  items.forEach((item) => {
    const row = el("tr", {"data-id": item.instance_id});
    columns.forEach((name) => row.append(el("td", {}, text(item[name] !== undefined ? item[name] : (item.data || {})[name]))));
    row.addEventListener("click", () => openObject(item.class_id || state.cls, item.instance_id));
    body.append(row);
  });
  const total = resp.ok ? resp.data.total : 0;
  $("table-total").textContent = `${total} found` + (total > PAGE ? `, ${state.offset + 1}–${state.offset + items.length}` : "");
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + PAGE >= total;
  section.dataset.rows = String(items.length);
  section.dataset.total = String(total);
  section.dataset.loaded = "true";
}

// ---- one object: properties (links followed), provenance, history and a version difference ---------------
async function openObject(classId, instanceId) {
  // A link names its target class; the instance may be of a subclass of it.
  for (const cls of subclasses(classId)) {
    const base = `/api/v1/instances/${enc(state.db)}/${enc(cls)}/${enc(instanceId)}`;
    const resp = await fetch(base, {headers: {Authorization: "Bearer " + state.token}});
    if (resp.status === 404) continue;
    showMessage("");
    await showObject(cls, instanceId, base, await resp.json());
    return;
  }
  showMessage(`404: no instance ${instanceId} of ${classId} or its subclasses`);
}

function linkButtons(target, value) {
  const ids = Array.isArray(value) ? value : [value];
  const cell = el("td");
  ids.forEach((id) => {
    const button = el("button", {type: "button", class: "link", "data-link": id}, String(id));
    button.addEventListener("click", () => openObject(target, id));
    cell.append(button, " ");
  });
  return cell;
}

async function showObject(classId, instanceId, base, doc) {
  const section = $("object-section");
  section.hidden = false;
  section.dataset.loaded = "false";
  state.object = {classId, instanceId};
  $("object-heading").textContent = `${classId} ${instanceId}`;
  const body = $("object-props").tBodies[0];
  body.replaceChildren();
  properties(classId).forEach((p) => {
    const value = (doc.data || {})[p.name];
    if (value === undefined) return;
    body.append(el("tr", {"data-property": p.name}, el("th", {}, p.name),
      p.type === "link" && p.target ? linkButtons(p.target, value) : el("td", {}, text(value))));
  });
  const [history, provenance] = await Promise.all([api(`${base}/history?limit=1000`), api(`${base}/provenance`)]);
  const prov = provenance.ok ? provenance.data : {};
  $("provenance").textContent = provenance.ok
    ? `created by ${prov.created_by} at ${prov.created_at} (command ${prov.created_by_command}); version ${prov.version}, `
      + `last changed by ${prov.updated_by} at ${prov.updated_at} (command ${prov.source_command_id}); archived at ${prov.archive_uri}`
    : "";
  state.history = history.ok ? history.data.items : [];
  $("timeline").replaceChildren(...state.history.map((h) => el("li", {"data-version": h.version},
    el("strong", {}, `v${h.version} ${h.event_type}`), ` by ${h.actor} at ${h.timestamp}`,
    el("span", {class: "what"}, `command ${h.command_id} · event ${h.event_id}`))));
  for (const id of ["diff-from", "diff-to"]) {
    $(id).replaceChildren(...state.history.map((h) => el("option", {value: h.version}, `v${h.version}`)));
  }
  if (state.history.length) {
    $("diff-from").value = String(state.history[Math.max(0, state.history.length - 2)].version);
    $("diff-to").value = String(state.history[state.history.length - 1].version);
  }
  $("diff").tBodies[0].replaceChildren();
  section.dataset.loaded = "true";
}

function showDifference() {
  const at = (v) => state.history.find((h) => String(h.version) === String(v));
  const before = ((at($("diff-from").value) || {}).state || {}).data || {};
  const after = ((at($("diff-to").value) || {}).state || {}).data || {};
  const rows = [];
  new Set([...Object.keys(before), ...Object.keys(after)]).forEach((name) => {
    const a = text(before[name]);
    const b = text(after[name]);
    if (a === b) return;
    const kind = !(name in before) ? "added" : !(name in after) ? "removed" : "changed";
    rows.push(el("tr", {class: kind, "data-property": name}, el("td", {}, name), el("td", {}, a), el("td", {}, b)));
  });
  $("diff").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {colspan: 3}, "no difference"))]));
  $("diff").dataset.rows = String(rows.length);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("token-form").addEventListener("submit", (e) => { e.preventDefault(); useToken($("token").value); });
  $("db-select").addEventListener("change", loadClasses);
  $("filter-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.q = $("filter").value.trim();
    state.offset = 0;
    loadInstances();
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadInstances(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; loadInstances(); });
  $("diff-show").addEventListener("click", showDifference);
  if (state.token) await useToken(state.token);
  document.body.dataset.ready = "true";
});
