// The operators' console: tenants, keys, usage, models and workers, all through the admin API
// (`/v1/admin/...`) with the operator's key.
import { $, ApiError, api, clearError, showError, smallButton, wireSignIn } from "/web/api.js";

const state = { tenants: [], editing: null };

// A GET whose failure shows in the section's error line; null then.
async function fetchFor(errorId, path) {
  try {
    const data = await api("GET", path);
    clearError(errorId);
    return data;
  } catch (err) {
    showError(errorId, err);
    return null;
  }
}

function cell(row, content, header = false) {
  const element = document.createElement(header ? "th" : "td");
  if (header) element.scope = "row";
  if (content instanceof Node) element.append(content);
  else element.textContent = content ?? "";
  row.append(element);
  return element;
}

// A table's rows, one per item; `empty` says so in a row of its own when there is none.
function rows(tableId, items, fill, empty = "None") {
  const body = $(tableId).querySelector("tbody");
  if (items.length === 0) {
    const row = document.createElement("tr");
    cell(row, empty).colSpan = $(tableId).querySelectorAll("thead th").length;
    row.className = "empty";
    body.replaceChildren(row);
    return;
  }
  body.replaceChildren(
    ...items.map((item) => {
      const row = document.createElement("tr");
      fill(row, item);
      return row;
    }),
  );
}

function money(amount) {
  return `$${Number(amount || 0).toFixed(2)}`;
}

function day(iso) {
  return iso ? new Date(iso).toISOString().slice(0, 10) : "";
}

// -- signing in -------------------------------------------------------------------------------

// After the key is accepted as an operator's: every section, loaded at once once shown.
async function start() {
  try {
    state.tenants = await api("GET", "/v1/admin/tenants");
  } catch (err) {
    if (err instanceof ApiError && err.code === "FORBIDDEN") {
      throw new ApiError(err.code, "The console needs an operator's key (the admin scope); this key can use the studio.", null, 403);
    }
    throw err;
  }
  showTenants();
  return () => Promise.all([loadUsage(), loadKeys(), loadModels(), loadWorkers()]);
}

// -- tenants ------------------------------------------------------------------------------------

async function loadTenants() {
  state.tenants = (await fetchFor("tenants-error", "/v1/admin/tenants")) ?? state.tenants;
  showTenants();
}

function showTenants() {
  const live = state.tenants.filter((t) => !t.erased_at);
  rows("tenants", live, (row, tenant) => {
    const name = document.createElement("span");
    name.append(tenant.name, document.createElement("br"));
    const id = document.createElement("code");
    id.textContent = tenant.id;
    name.append(id);
    cell(row, name, true);
    cell(row, tenant.allow_models ? tenant.allow_models.join(", ") : "all");
    cell(row, pricesText(tenant.prices) || "the catalog's");
    cell(row, tenant.budgets.length ? tenant.budgets.map((b) => `${b.period}: ${money(b.spent)} ${b.limit ? `of ${money(b.limit)}` : "spent, no limit"}`).join("; ") : "none");
    const limits = tenant.limits || {};
    cell(row, [limits.requests_per_minute != null ? `${limits.requests_per_minute}/min` : null, limits.images_per_day != null ? `${limits.images_per_day} images/day` : null].filter(Boolean).join(", ") || "none");
    cell(row, smallButton("Edit", () => editTenant(tenant), `Edit tenant ${tenant.name}`));
  });
  for (const select of [$("key-tenant"), $("usage-tenant")]) {
    const keep = select.value;
    const first = select.id === "usage-tenant" ? [new Option("All tenants", "")] : [];
    select.replaceChildren(...first, ...live.map((t) => new Option(`${t.name} (${t.id})`, t.id)));
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }
}

// "local/tiny=0.05, pixelgate/shapes=0.02": each model's default price per image.
function pricesText(prices) {
  return Object.entries(prices || {})
    .filter(([, byKey]) => byKey.default !== undefined)
    .map(([model, byKey]) => `${model}=${byKey.default}`)
    .join(", ");
}

// The prices field as the API takes them, the finer prices (by size, quality) of the models
// still named kept as they were; undefined when the field was left as it was.
function pricesFrom(text, before) {
  if (text.trim() === pricesText(before)) return undefined;
  const prices = {};
  for (const pair of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [model, amount] = pair.split("=").map((s) => s.trim());
    if (!model || !amount) throw new ApiError("VALIDATION_ERROR", `Invalid price "${pair}"; write model=amount`, "prices");
    prices[model] = { ...((before || {})[model] || {}), default: amount };
  }
  return Object.keys(prices).length ? prices : null;
}

function editTenant(tenant) {
  state.editing = tenant;
  $("tenant-editing").value = tenant.id;
  $("tenant-id").value = tenant.id;
  $("tenant-id").disabled = true;
  $("tenant-name").value = tenant.name;
  $("tenant-allow").value = (tenant.allow_models || []).join(", ");
  $("tenant-prices").value = pricesText(tenant.prices);
  $("tenant-monthly").value = tenant.budget_monthly ?? "";
  $("tenant-total").value = tenant.budget_total ?? "";
  $("tenant-rpm").value = tenant.limits?.requests_per_minute ?? "";
  $("tenant-images").value = tenant.limits?.images_per_day ?? "";
  $("tenant-form-title").textContent = `Edit ${tenant.name}`;
  $("tenant-save").textContent = "Save tenant";
  $("tenant-cancel").hidden = false;
  $("tenant-name").focus();
}

function resetTenantForm() {
  $("tenant-form").reset();
  state.editing = null;
  $("tenant-editing").value = "";
  $("tenant-id").disabled = false;
  $("tenant-form-title").textContent = "New tenant";
  $("tenant-save").textContent = "Create tenant";
  $("tenant-cancel").hidden = true;
}

function numberOrNull(id) {
  return $(id).value === "" ? null : Number($(id).value);
}

async function saveTenant(event) {
  event.preventDefault();
  clearError("tenant-form-error");
  const editing = $("tenant-editing").value;
  const allow = $("tenant-allow").value.split(",").map((s) => s.trim()).filter(Boolean);
  const rpm = numberOrNull("tenant-rpm");
  const images = numberOrNull("tenant-images");
  let prices;
  try {
    prices = pricesFrom($("tenant-prices").value, editing ? state.editing.prices : null);
  } catch (err) {
    showError("tenant-form-error", err);
    return;
  }
  const amountIn = (id) => ($(id).value === "" ? null : $(id).value);
  const body = {
    name: $("tenant-name").value.trim(),
    allow_models: allow.length ? allow : null,
    budget_monthly: amountIn("tenant-monthly"),
    budget_total: amountIn("tenant-total"),
    limits: rpm === null && images === null ? null : { requests_per_minute: rpm, images_per_day: images },
  };
  if (prices !== undefined) body.prices = prices;
  try {
    if (editing) await api("PATCH", `/v1/admin/tenants/${encodeURIComponent(editing)}`, body);
    else await api("POST", "/v1/admin/tenants", { ...body, ...($("tenant-id").value.trim() ? { id: $("tenant-id").value.trim() } : {}) });
  } catch (err) {
    showError("tenant-form-error", err);
    return;
  }
  resetTenantForm();
  await loadTenants();
}

// -- keys ---------------------------------------------------------------------------------------

async function loadKeys() {
  const keys = await fetchFor("keys-error", "/v1/admin/keys");
  if (keys === null) return;
  rows("keys", keys, (row, key) => {
    cell(row, key.name, true);
    cell(row, key.tenant_id);
    const prefix = document.createElement("code");
    prefix.textContent = `${key.prefix}…`;
    cell(row, prefix);
    cell(row, key.scopes.join(", "));
    cell(row, key.expires_at ? day(key.expires_at) : "never");
    const expired = key.expires_at && new Date(key.expires_at) < new Date();
    cell(row, key.revoked_at ? `revoked ${day(key.revoked_at)}` : expired ? "expired" : "active");
    if (key.revoked_at) {
      cell(row, "");
      return;
    }
    const revoke = smallButton("Revoke", () => revokeKey(key), `Revoke key ${key.name}`);
    revoke.classList.add("danger");
    cell(row, revoke);
  });
}

async function createKey(event) {
  event.preventDefault();
  clearError("key-form-error");
  const scopes = [...document.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value);
  const body = { tenant_id: $("key-tenant").value, name: $("key-name").value.trim(), scopes };
  if ($("key-expires").value) body.expires_at = `${$("key-expires").value}T23:59:59Z`;
  let created;
  try {
    created = await api("POST", "/v1/admin/keys", body);
  } catch (err) {
    showError("key-form-error", err);
    return;
  }
  $("new-key-value").textContent = created.key;
  $("new-key").hidden = false;
  $("key-name").value = "";
  $("new-key").scrollIntoView({ block: "nearest" });
  await loadKeys();
}

async function revokeKey(key) {
  if (!window.confirm(`Revoke the key "${key.name}"? Requests with it stop working at once.`)) return;
  try {
    await api("POST", `/v1/admin/keys/${encodeURIComponent(key.id)}/revoke`);
  } catch (err) {
    showError("keys-error", err);
    return;
  }
  await loadKeys();
}

// -- usage --------------------------------------------------------------------------------------

let usageAsked = 0;

async function loadUsage() {
  const asked = ++usageAsked; // a slower answer to an earlier choice must not win
  const days = Number($("usage-days").value);
  const params = new URLSearchParams({ days: String(days) });
  if ($("usage-tenant").value) params.set("tenant_id", $("usage-tenant").value);
  const reports = await fetchFor("usage-error", `/v1/admin/usage?${params}`);
  if (reports === null || asked !== usageAsked) return;
  const byModel = {};
  const byDay = {};
  let spent = 0;
  let images = 0;
  for (const report of reports) {
    spent += Number(report.spent);
    images += report.images;
    for (const [table, source] of [[byModel, report.by_model], [byDay, report.by_day]]) {
      for (const [key, bucket] of Object.entries(source)) {
        const sum = (table[key] ||= { spent: 0, images: 0, jobs: 0 });
        sum.spent += Number(bucket.spent);
        sum.images += bucket.images;
        sum.jobs += bucket.jobs;
      }
    }
  }
  $("usage-total").textContent = `${money(spent)} spent, ${images} images in the last ${days} days`;
  const tenantName = (id) => state.tenants.find((t) => t.id === id)?.name || id;
  rows("usage-by-tenant", reports.filter((r) => r.jobs > 0 || Number(r.spent) > 0), (row, report) => {
    cell(row, tenantName(report.tenant_id), true);
    cell(row, money(report.spent));
    cell(row, String(report.images));
    cell(row, String(report.jobs));
  }, "No usage in this period");
  rows("usage-by-model", Object.entries(byModel).sort((a, b) => b[1].spent - a[1].spent || b[1].images - a[1].images), (row, [model, bucket]) => {
    cell(row, model, true);
    cell(row, money(bucket.spent));
    cell(row, String(bucket.images));
    cell(row, String(bucket.jobs));
  }, "No usage in this period");
  const series = lastDays(days).map((date) => ({ date, ...(byDay[date] || { spent: 0, images: 0 }) }));
  // drawn at the width it is shown at, so its labels keep their size on a phone
  const width = Math.max(280, Math.min(640, $("chart-spent").clientWidth || 600));
  $("chart-spent").replaceChildren(barChart(series, "spent", money, "Spend per day", width));
  $("chart-images").replaceChildren(barChart(series, "images", String, "Images per day", width));
}

function lastDays(count) {
  const today = new Date();
  const dates = [];
  for (let back = count - 1; back >= 0; back -= 1) {
    const date = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back));
    dates.push(date.toISOString().slice(0, 10));
  }
  return dates;
}

// A bar per day, drawn here (no chart library): the tallest bar fills the height; each bar
// carries its day and value as a tooltip, and the chart as a whole says its total and peak.
const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function barChart(series, field, format, title, width) {
  const height = 160;
  const left = 56;
  const bottom = 22;
  const peak = Math.max(0, ...series.map((point) => point[field]));
  const total = series.reduce((sum, point) => sum + point[field], 0);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bar-chart" });
  const label = svg("title", {});
  label.textContent = `${title}: ${format(total)} in all, at most ${format(peak)} a day`;
  chart.append(label);
  const plotHeight = height - bottom - 8;
  for (const fraction of [0, 0.5, 1]) {
    const y = 8 + plotHeight * (1 - fraction);
    chart.append(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "grid-line" }));
    const tick = svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "tick" });
    tick.textContent = format(peak * fraction);
    chart.append(tick);
  }
  const slot = (width - left) / series.length;
  series.forEach((point, index) => {
    const barHeight = peak > 0 ? (point[field] / peak) * plotHeight : 0;
    const bar = svg("rect", {
      x: left + index * slot + slot * 0.15,
      y: 8 + plotHeight - barHeight,
      width: Math.max(1, slot * 0.7),
      height: barHeight,
      class: "bar",
      "data-date": point.date,
      "data-value": point[field],
    });
    const tip = svg("title", {});
    tip.textContent = `${point.date}: ${format(point[field])}`;
    bar.append(tip);
    chart.append(bar);
  });
  for (const index of [0, series.length - 1]) {
    const text = svg("text", { x: left + index * slot + slot / 2, y: height - 6, "text-anchor": index ? "end" : "start", class: "tick" });
    text.textContent = series[index].date.slice(5);
    chart.append(text);
  }
  return chart;
}

// -- models and workers -------------------------------------------------------------------------

async function loadModels() {
  const models = await fetchFor("models-error", "/v1/models");
  if (models === null) return;
  rows("models", models, (row, model) => {
    cell(row, model.id, true);
    cell(row, model.provider);
    cell(row, model.capabilities.join(", "));
    const availability = document.createElement("span");
    availability.className = model.available ? "ok" : "bad";
    availability.textContent = model.available ? "yes" : `no: ${model.unavailable_reason || "unavailable"}`;
    cell(row, availability);
  });
}

async function loadWorkers() {
  const workers = await fetchFor("workers-error", "/v1/admin/workers");
  if (workers === null) return;
  $("workers-none").hidden = workers.length > 0;
  rows("workers", workers, (row, worker) => {
    cell(row, worker.id, true);
    cell(row, `${worker.hostname} (pid ${worker.pid})`);
    cell(row, worker.models.join(", "));
    cell(row, worker.running.length ? worker.running.join(", ") : "idle");
    cell(row, new Date(worker.last_seen_at).toLocaleTimeString());
  });
}

// -- wiring ---------------------------------------------------------------------------------------

function wire() {
  // a table wider than a phone scrolls in its box, which the keyboard must reach to scroll it
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    const table = wrap.querySelector("table");
    wrap.tabIndex = 0;
    wrap.setAttribute("role", "region");
    wrap.setAttribute("aria-label", table.caption ? table.caption.textContent : wrap.closest("section").querySelector("h2").textContent);
  }
  $("usage-tenant").addEventListener("change", loadUsage);
  $("usage-days").addEventListener("change", loadUsage);
  $("tenant-form").addEventListener("submit", saveTenant);
  $("tenant-cancel").addEventListener("click", resetTenantForm);
  $("key-form").addEventListener("submit", createKey);
  $("copy-key").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("new-key-value").textContent);
      $("copy-key").textContent = "Copied";
    } catch {
      window.getSelection().selectAllChildren($("new-key-value"));
    }
  });
  wireSignIn(start, "console");
}

wire();
