// Aegis spend dashboard: reads the proxy's admin API and redraws every few seconds.
// Every value from the API goes into the page as text (model names come from clients).
"use strict";

const KEY_ITEM = "aegis-admin-key";
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(1, Number(params.get("refresh")) || 5) * 1000;

let timer = null;
let generation = 0; // bumped on logout and login: a refresh of an older session schedules none

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

function usd(text) {
  // Amounts arrive as exact decimal strings; show cents, or more digits for tiny amounts.
  const value = Number(text);
  if (value === 0) return "$0.00";
  if (Math.abs(value) < 0.01) return "$" + value.toPrecision(3);
  return "$" + value.toFixed(2);
}

async function api(path, options) {
  const key = sessionStorage.getItem(KEY_ITEM);
  const response = await fetch(path, {
    ...(options || {}),
    headers: { Authorization: "Bearer " + key },
    cache: "no-store",
  });
  if (response.status === 401 || response.status === 403) {
    const body = await response.json().catch(() => ({}));
    const message = (body.error && body.error.message) || response.statusText;
    throw Object.assign(new Error(message), { auth: true });
  }
  if (!response.ok) throw new Error(path + " answered " + response.status);
  return response.json();
}

function showLogin(message) {
  sessionStorage.removeItem(KEY_ITEM);
  generation++;
  clearTimeout(timer);
  $("main").hidden = true;
  $("verify").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status").textContent = "not connected";
  $("key").focus();
}

function budgetBar(budget) {
  const limit = Number(budget.limit_usd);
  const spent = Number(budget.spent_usd);
  const reserved = Number(budget.reserved_usd);
  const scale = limit > 0 ? 100 / limit : 0;
  const spentWidth = Math.min(100, spent * scale);
  const reservedWidth = Math.min(100 - spentWidth, reserved * scale);
  const bar = svg("svg", { viewBox: "0 0 100 10", preserveAspectRatio: "none", role: "img" });
  bar.append(svg("rect", { class: "bar-bg", x: 0, y: 0, width: 100, height: 10, rx: 2 }));
  bar.append(svg("rect", { class: "bar-spent", x: 0, y: 0, width: spentWidth, height: 10 }));
  bar.append(svg("rect", {
    class: "bar-reserved", x: spentWidth, y: 0, width: reservedWidth, height: 10,
  }));
  const title = svg("title");
  title.textContent = `${budget.budget}: ${budget.spent_usd} spent, ${budget.reserved_usd} reserved of ${budget.limit_usd}`;
  bar.append(title);
  const pct = limit > 0 ? Math.round((spent + reserved) * 100 / limit) : 0;
  return el("div", { class: "budget", "data-budget": budget.budget },
    el("div", { class: "caption" },
      el("span", {}, `${budget.budget} (${budget.account})${budget.hard_stop ? "" : ", soft"}`),
      el("span", { class: "mono" },
        el("span", { "data-field": "budget-spent" }, budget.spent_usd), " + ",
        el("span", { "data-field": "budget-reserved" }, budget.reserved_usd), " / ",
        el("span", { "data-field": "budget-limit" }, budget.limit_usd), ` (${pct}%)`)),
    bar);
}

function spendChart(timeline) {
  const chart = svg("svg", { class: "chart", viewBox: "0 0 300 90", preserveAspectRatio: "none" });
  chart.append(svg("line", { class: "axis", x1: 0, y1: 89, x2: 300, y2: 89 }));
  if (timeline.length === 0) return chart;
  // One column per minute over the last hour (minutes without spend stay empty).
  const now = Math.floor(Date.now() / 60000);
  const byMinute = new Map(timeline.map((p) => [Math.floor(Date.parse(p.minute) / 60000), Number(p.spend_usd)]));
  const max = Math.max(...byMinute.values());
  const width = 300 / 60;
  for (let i = 0; i < 60; i++) {
    const value = byMinute.get(now - 59 + i) || 0;
    if (!value) continue;
    const height = Math.max(1, (value / max) * 86);
    const col = svg("rect", { class: "col", x: i * width + 0.5, y: 89 - height, width: width - 1, height });
    const title = svg("title");
    title.textContent = `${new Date((now - 59 + i) * 60000).toISOString().slice(11, 16)} UTC: $${value}`;
    col.append(title);
    chart.append(col);
  }
  return chart;
}

function figure(label, value, field) {
  return el("div", { class: "figure" },
    el("div", { class: "value", "data-field": field }, value),
    el("div", { class: "label" }, label));
}

function tenantCard(usage) {
  const since = usage.since_start;
  const denied = since.outcomes.denied || 0;
  const card = el("article", { class: "card tenant", "data-tenant": usage.tenant_id },
    el("h2", {}, usage.tenant_id),
    el("div", { class: "figures" },
      figure("spent since start (USD)", since.spend_usd, "spend"),
      figure("requests", since.requests, "requests"),
      figure("denied", denied, "denied"),
      figure("tokens", (since.tokens.input || 0) + (since.tokens.output || 0), "tokens")));
  card.append(el("h3", {}, "Budgets"));
  if (usage.budgets.length === 0) card.append(el("p", { class: "muted" }, "no window budgets"));
  for (const budget of usage.budgets) card.append(budgetBar(budget));
  if (usage.per_run_limit_usd) card.append(el("p", { class: "muted" }, "per run: " + usage.per_run_limit_usd));
  card.append(el("h3", {}, "Spend per minute, last hour"), spendChart(since.timeline));
  const denials = Object.entries(since.denials);
  if (denials.length) {
    card.append(el("h3", {}, "Denials"),
      el("p", { class: "muted", "data-field": "denials" },
        denials.map(([why, n]) => `${why}: ${n}`).join(", ")));
  }
  card.append(el("h3", {}, "Top models"));
  const rows = since.models.slice(0, 5).map((m) => el("tr", { "data-model": m.model },
    el("td", {}, m.model), el("td", { class: "num" }, m.requests), el("td", { class: "num" }, m.spend_usd)));
  card.append(el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "model"), el("th", { class: "num" }, "requests"),
      el("th", { class: "num" }, "USD"))),
    el("tbody", {}, ...rows)));
  return card;
}

function receiptRow(r) {
  const finished = r.finished_at.replace("T", " ").slice(0, 19);
  return el("tr", { "data-receipt": r.receipt_id },
    el("td", { class: "mono" }, finished),
    el("td", {}, r.tenant_id),
    el("td", {}, r.model || ""),
    el("td", {}, el("span", { class: "badge " + r.status }, r.decision.reason || r.status)),
    el("td", { class: "num mono" }, r.actual_usd),
    el("td", { class: "mono", title: r.receipt_id }, r.receipt_id.slice(-10)),
    el("td", {}, el("span", { class: "badge " + r.verification, "data-field": "verification" }, r.verification)));
}

function showTrail(result) {
  const node = $("trail");
  if (!result) { node.textContent = "not verified yet"; return; }
  if (!result.available) { node.textContent = result.note; return; }
  const s = result.summary;
  const state = result.intact ? "intact" : "tampered";
  node.replaceChildren(
    el("span", { class: "badge " + state, "data-field": "trail-state" }, state),
    ` ${s.receipts} receipts, ${s.checkpoints} checkpoints, total ${usd(s.total_usd)}; checked ${result.ran_at}`,
    ...result.problems.slice(0, 5).map((p) => el("div", { class: "error" }, `${p.where}: ${p.message}`)));
}

async function refresh() {
  try {
    const tenantFilter = $("receipt-tenant").value;
    const statusFilter = $("receipt-status").value;
    const query = new URLSearchParams({ limit: "25" });
    if (tenantFilter) query.set("tenant", tenantFilter);
    if (statusFilter) query.set("status", statusFilter);
    // The tenants with the most spend first (the admin API pages large tenant lists).
    const [usage, receipts] = await Promise.all([
      api("/admin/usage?limit=50"), api("/admin/receipts?" + query),
    ]);
    $("tenants").replaceChildren(...usage.tenants.map(tenantCard));
    const select = $("receipt-tenant");
    const known = new Set([...select.options].map((o) => o.value));
    for (const t of usage.tenants) {
      if (!known.has(t.tenant_id)) select.append(el("option", { value: t.tenant_id }, t.tenant_id));
    }
    $("receipts").replaceChildren(...receipts.receipts.map(receiptRow));
    $("status").textContent = `${usage.total} tenants, updated ${new Date().toISOString().slice(11, 19)} UTC`;
    $("status").dataset.loaded = "true";
  } catch (error) {
    if (error.auth) showLogin(error.message);
    else $("status").textContent = "refresh failed: " + error.message;
  }
}

// The next refresh is due a period after the last one ended, never while one is in flight:
// on a slow link or a busy proxy, overlapping refreshes would queue up and paint old figures.
async function tick(mine) {
  await refresh();
  if (mine === generation) timer = setTimeout(tick, REFRESH_MS, mine);
}

async function verify() {
  $("trail").textContent = "verifying...";
  try {
    showTrail(await api("/admin/verify", { method: "POST" }));
  } catch (error) {
    if (error.auth) showLogin(error.message);
    else $("trail").textContent = "verification failed: " + error.message;
  }
}

// -- managing tenants and keys (the admin API's write routes) ----------------------------

async function send(path, method, body) {
  const key = sessionStorage.getItem(KEY_ITEM);
  const response = await fetch(path, {
    method,
    headers: { Authorization: "Bearer " + key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    throw Object.assign(new Error((data.error && data.error.message) || "refused"), { auth: true });
  }
  if (!response.ok) {
    const error = data.error || {};
    throw new Error(error.message || path + " answered " + response.status);
  }
  return data;
}

function say(text, isError) {
  const node = $("manage-message");
  node.textContent = text;
  node.className = isError ? "message error" : "message";
}

async function loadManagedTenants(selected) {
  const listing = await api("/admin/tenants?limit=1000");
  const select = $("manage-tenant");
  const current = selected || select.value;
  select.replaceChildren(...listing.tenants.map((t) =>
    el("option", { value: t.tenant_id }, t.tenant_id + (t.read_only ? " (config file)" : ""))));
  if (current && listing.tenants.some((t) => t.tenant_id === current)) select.value = current;
  await showManaged();
}

function dayBudget(policy) {
  const day = (policy.budgets.per_window || []).find((b) => b.window === "day");
  return day ? day.limit_usd : "";
}

function withDayBudget(policy, limitUsd) {
  const windows = (policy.budgets.per_window || []).filter((b) => b.window !== "day");
  if (limitUsd) windows.push({ window: "day", limit_usd: limitUsd });
  return { ...policy, budgets: { ...policy.budgets, per_window: windows } };
}

async function showManaged() {
  const tenantId = $("manage-tenant").value;
  const detail = $("manage-detail");
  if (!tenantId) { detail.replaceChildren(); return; }
  const tenant = await api("/admin/tenants/" + encodeURIComponent(tenantId));
  if (tenant.read_only) {
    detail.replaceChildren(el("p", { class: "muted" },
      `${tenantId} is managed in the config file (${tenant.api_keys} key(s)): change it there.`));
    return;
  }
  const keys = await api("/admin/tenants/" + encodeURIComponent(tenantId) + "/keys");
  const budgetInput = el("input", { id: "edit-day", value: dayBudget(tenant.policy),
    "aria-label": "day budget (USD)", inputmode: "decimal" });
  const budgetForm = el("form", { id: "budget-form", class: "row" },
    el("span", {}, `policy version ${tenant.version}: day budget USD `), budgetInput,
    el("button", { type: "submit" }, "Save budget"));
  budgetForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const policy = withDayBudget(tenant.policy, budgetInput.value.trim());
      const saved = await send("/admin/tenants/" + encodeURIComponent(tenantId), "PUT",
        { policy, version: tenant.version });
      say(`saved: ${tenantId} is at version ${saved.version}`);
    });
  });
  const nameInput = el("input", { id: "key-name", placeholder: "key name", "aria-label": "key name" });
  const keyForm = el("form", { id: "key-form", class: "row" }, nameInput,
    el("button", { type: "submit" }, "Issue key"));
  keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const body = nameInput.value.trim() ? { name: nameInput.value.trim() } : {};
      const made = await send("/admin/tenants/" + encodeURIComponent(tenantId) + "/keys", "POST", body);
      await showManaged();
      // Shown once: it is in this answer only, never stored by the page.
      $("manage-detail").prepend(el("div", { class: "new-key", "data-testid": "new-key" },
        el("strong", {}, "New key, shown once: "), el("code", { "data-field": "new-key" }, made.key)));
      say(`issued ${made.key_id}`);
    }, true);
  });
  const rows = keys.keys.map((k) => {
    const row = el("tr", { "data-key": k.key_id },
      el("td", { class: "mono" }, k.key_id), el("td", {}, k.name || ""),
      el("td", { class: "mono" }, k.prefix + "…"),
      el("td", {}, el("span", { class: "badge " + k.state, "data-field": "key-state" }, k.state)),
      el("td", { class: "mono" }, (k.created_at || "").replace("T", " ")));
    const cell = el("td", {});
    if (k.state === "active" || k.state === "grace") {
      const button = el("button", { type: "button", "data-action": "revoke" }, "Revoke");
      button.addEventListener("click", () => act(async () => {
        await send(`/admin/tenants/${encodeURIComponent(tenantId)}/keys/${k.key_id}/revoke`, "POST");
        say(`revoked ${k.key_id}`);
      }));
      cell.append(button);
    }
    row.append(cell);
    return row;
  });
  detail.replaceChildren(budgetForm, keyForm,
    el("table", { class: "keys" },
      el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "name"), el("th", {}, "prefix"),
        el("th", {}, "state"), el("th", {}, "created"), el("th", {}, ""))),
      el("tbody", { "data-testid": "keys" }, ...rows)));
}

async function act(work, keepDetail) {
  try {
    await work();
    if (!keepDetail) await showManaged();
  } catch (error) {
    if (error.auth) showLogin(error.message);
    else say(error.message, true);
  }
}

async function start() {
  $("login").hidden = true;
  $("main").hidden = false;
  $("verify").hidden = false;
  $("forget").hidden = false;
  await refresh();
  if (sessionStorage.getItem(KEY_ITEM)) {
    await act(() => loadManagedTenants(), true);
    await verify();
    clearTimeout(timer);
    timer = setTimeout(tick, REFRESH_MS, ++generation);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_ITEM, $("key").value.trim());
    $("key").value = "";
    start();
  });
  $("forget").addEventListener("click", () => showLogin(""));
  $("verify").addEventListener("click", verify);
  $("receipt-tenant").addEventListener("change", refresh);
  $("receipt-status").addEventListener("change", refresh);
  $("manage-tenant").addEventListener("change", () => act(showManaged, true));
  $("tenant-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act(async () => {
      const tenantId = $("new-tenant").value.trim();
      const policy = {};
      const day = $("new-tenant-day").value.trim();
      if (day) policy.budgets = { per_window: [{ window: "day", limit_usd: day }] };
      const models = $("new-tenant-models").value.split(",").map((m) => m.trim()).filter(Boolean);
      if (models.length) policy.model = { allow_models: models };
      await send("/admin/tenants", "POST", { tenant_id: tenantId, policy });
      $("new-tenant").value = "";
      await loadManagedTenants(tenantId);
      say(`created ${tenantId}`);
    }, true);
  });
  if (sessionStorage.getItem(KEY_ITEM)) start();
  else showLogin("");
});
