// What every page of rwq's web UI shares: the session, API calls with the CSRF token, the
// live stream, building elements (text always through textContent, shown as rwq.printable
// shows it), charts and dialogs.
import { printable } from "./printable.js";

export { printable };

export const state = { csrf: null, session: null };

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// A call of the API; JSON in and out. A 401 sends the browser to the login page.
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && !location.pathname.startsWith("/login")) {
      toLogin();
    }
    throw new ApiFailure(response.status, error.code || "http", error.message || response.statusText);
  }
  return data;
}

export function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

// el("td", { class: "num", dataset: { id: "x" } }, "text", child): children are strings
// (always text, never markup) or nodes.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(printable(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function main() {
  return document.getElementById("main");
}

let flashTimer = null;
export function flash(message, level = "ok") {
  const box = document.getElementById("flash");
  box.textContent = printable(message);
  box.className = `flash lvl-${level}`;
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => (box.hidden = true), level === "error" ? 12000 : 5000);
}

export function failed(error) {
  flash(error instanceof ApiFailure ? `${error.message} (${error.status} ${error.code})` : String(error), "error");
}

// A modal question; resolves true when confirmed.
export function confirmDialog(question, confirmLabel = "Confirm", detail = "", cancelLabel = "Cancel") {
  return new Promise((resolve) => {
    const dialog = el("dialog", { class: "confirm" },
      el("p", { class: "question" }, question),
      detail ? el("p", { class: "detail" }, detail) : null);
    const cancel = el("button", { type: "button", class: "quiet", dataset: { action: "cancel" } }, cancelLabel);
    const ok = el("button", { type: "button", class: "danger", dataset: { action: "confirm" } }, confirmLabel);
    dialog.append(el("div", { class: "actions" }, cancel, ok));
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    cancel.addEventListener("click", () => done(false));
    ok.addEventListener("click", () => done(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// -- formatting ------------------------------------------------------------------------------

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toLocaleString(undefined, { timeZoneName: "short" });
}

// A job's times are Unix milliseconds.
export function whenMs(ms) {
  return ms === null || ms === undefined ? "" : when(ms / 1000);
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, seconds);
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d`;
}

export function badge(text, level) {
  return el("span", { class: `el-badge lvl-${level}` }, text);
}

export function json(value) {
  return el("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// -- charts ----------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

// A line chart of one or more series ({values, class, label}) sharing a scale from 0, with
// its scale and latest values as text beside it (SVG text would stretch with the chart).
export function lineChart(series, { width = 600, height = 120, label = "", points = 120 } = {}) {
  const longest = Math.max(2, points, ...series.map((s) => s.values.length));
  const high = Math.max(1, ...series.flatMap((s) => s.values));
  const chart = svg("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": label,
  });
  for (const fraction of [0.5, 1]) {
    const y = height - fraction * height;
    chart.append(svg("line", { class: "grid", x1: 0, x2: width, y1: y, y2: y }));
  }
  for (const s of series) {
    const step = width / (longest - 1);
    const offset = longest - s.values.length;
    const points = s.values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(height - (v / high) * height).toFixed(1)}`);
    chart.append(svg("polyline", { class: `series ${s.class}`, points: points.join(" ") }));
  }
  const legend = el("div", { class: "legend" }, el("span", { class: "muted" }, `last ${longest} s · max ${Math.round(high)}`),
    series.map((s) => el("span", { class: s.class }, `${s.label} ${s.values.length ? s.values[s.values.length - 1] : 0}`)));
  return el("figure", { class: "chart" }, chart, legend);
}

export function sparkline(values, cls = "fg-cyan", { width = 120, height = 24 } = {}) {
  const high = Math.max(1, ...values);
  const step = width / Math.max(values.length - 1, 1);
  const chart = svg("svg", { class: `spark ${cls}`, viewBox: `0 -1 ${width} ${height + 2}`, preserveAspectRatio: "none", role: "img", "aria-label": `last ${values[values.length - 1] ?? 0}` });
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - (v / high) * height).toFixed(1)}`);
  chart.append(svg("polyline", { points: points.join(" ") }));
  return chart;
}

// -- the live stream -------------------------------------------------------------------------

// Follow /api/v1/stream: handlers by event name get the parsed data.
export function live(handlers) {
  const indicator = document.getElementById("live");
  indicator.hidden = false;
  indicator.textContent = "connecting";
  const source = new EventSource("/api/v1/stream");
  source.addEventListener("open", () => {
    indicator.textContent = "live";
    indicator.className = "live on";
  });
  source.addEventListener("error", () => {
    indicator.textContent = "reconnecting";
    indicator.className = "live off";
  });
  source.addEventListener("bye", (event) => {
    source.close();
    indicator.textContent = "offline";
    indicator.className = "live off";
    flash(`${JSON.parse(event.data).reason}: log in again`, "error");
    setTimeout(toLogin, 3000);
  });
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  window.addEventListener("pagehide", () => source.close());
  return source;
}

// -- start -----------------------------------------------------------------------------------

// The pages a token can use at all (the others leave the navigation bar).
const NAV_NEEDS = {
  queues: () => holds("admin.stats.read"),
  "dead-letters": () => holds("admin.queue.peek"),
  workers: () => holds("admin.system.stats"),
  plugins: () => holds("system.config.read"),
  panels: () => holds("admin.stats.read") && allQueues(),
  audit: () => holds("system.config.read"),
};

// What a page says where it would show what the token may not see.
export function lacks(permission, what) {
  return el("p", { class: "muted lacks" }, `Your token lacks ${permission}: no ${what}.`);
}

export function holds(permission) {
  return Boolean(state.session && state.session.permissions.includes(permission));
}

export function allQueues() {
  return Boolean(state.session && state.session.queues.includes("*"));
}

// Check the session (to the login page without one), mark the page's tab, then run `start`.
export async function boot(start) {
  const page = document.body.dataset.page;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (location.pathname === `/${link.dataset.nav}` || location.pathname.startsWith(`/${link.dataset.nav}/`)) link.classList.add("current");
  }
  try {
    state.session = await api("/api/v1/session");
  } catch (error) {
    if (!(error instanceof ApiFailure && error.status === 401)) failed(error);
    return;
  }
  state.csrf = state.session.csrf_token;
  for (const link of document.querySelectorAll("[data-nav]")) {
    const needs = NAV_NEEDS[link.dataset.nav];
    if (needs && !needs()) link.hidden = true;
  }
  document.getElementById("who").textContent = `token ${state.session.token}`;
  const logout = document.getElementById("logout");
  logout.hidden = false;
  logout.addEventListener("click", async () => {
    try {
      await api("/api/v1/session", { method: "DELETE" });
    } finally {
      location.assign("/login");
    }
  });
  document.body.dataset.ready = "false";
  try {
    await start();
  } catch (error) {
    failed(error);
  }
  document.body.dataset.ready = "true";
  document.body.dataset.page = page;
}
