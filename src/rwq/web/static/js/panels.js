// Plugin panels: each plugin's panel as the server drew it from its UI elements (every string
// escaped there), replaced live as it changes; clicks on its buttons, list items and table
// rows go to the plugin's on_input.
import { api, badge, boot, clear, el, failed, live, main } from "./common.js";

const LEVELS = { active: "ok", error: "error", disabled: "muted", awaiting_approval: "warning" };
const cards = new Map();
let grid;
let empty;

function card(plugin) {
  let c = cards.get(plugin);
  if (c) return c;
  const title = el("h2", { class: "title" });
  const state = el("span", { class: "state" });
  const note = el("p", { class: "note" });
  const body = el("div", { class: "body" });
  const root = el("section", { class: "panel", tabindex: 0, dataset: { plugin } }, el("header", {}, title, state), note, body);
  c = { root, title, state, note, body, seq: -1 };
  cards.set(plugin, c);
  const after = [...cards.keys()].sort().find((name) => name > plugin && cards.get(name).root.isConnected);
  grid.insertBefore(root, after ? cards.get(after).root : null);
  empty.hidden = true;
  return c;
}

function show(panel) {
  const c = card(panel.plugin);
  if (panel.seq <= c.seq && panel.seq !== 0) return; // an older frame than the one shown
  c.seq = panel.seq;
  c.title.textContent = panel.title;
  c.state.replaceChildren(panel.state === "active" ? "" : badge(panel.state.replace("_", " "), LEVELS[panel.state] || "info"));
  c.note.textContent = panel.note;
  c.note.hidden = !panel.note;
  // The server drew it and escaped every plugin string; the CSP forbids any script in it.
  c.body.innerHTML = panel.html ?? "";
  c.root.dataset.seq = String(panel.seq);
}

function gone({ plugin }) {
  const c = cards.get(plugin);
  if (c) c.root.remove();
  cards.delete(plugin);
  empty.hidden = cards.size > 0;
}

// The browser's names of the keys a panel takes, as Textual (and so the plugins) name them.
const KEYS = {
  ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right", Enter: "enter",
  " ": "space", Home: "home", End: "end", Delete: "delete", Backspace: "backspace",
};

async function pressKey(plugin, key) {
  try {
    await api(`/api/v1/plugins/${encodeURIComponent(plugin)}/input`, { method: "POST", body: { kind: "key", key } });
  } catch (error) {
    failed(error);
  }
}

async function send(plugin, target) {
  target.disabled = true;
  try {
    await api(`/api/v1/plugins/${encodeURIComponent(plugin)}/input`, {
      method: "POST",
      body: { kind: target.dataset.kind, id: target.dataset.id, index: Number(target.dataset.index || 0) },
    });
  } catch (error) {
    failed(error);
  } finally {
    target.disabled = false;
  }
}

boot(async () => {
  grid = el("div", { class: "panels", id: "panels" });
  empty = el("p", { class: "muted", id: "no-panels" }, "Waiting for panels…");
  const hint = el("p", { class: "muted", id: "panel-keys" },
    "Click a panel or Tab to it: keys then go to its plugin, and a button's key presses the button. Escape leaves the panel.");
  clear(main(), el("h1", {}, "Panels"), hint, empty, grid);
  grid.addEventListener("click", (event) => {
    const target = event.target.closest("[data-kind]");
    const panel = event.target.closest("[data-plugin]");
    if (target && panel) send(panel.dataset.plugin, target);
  });
  grid.addEventListener("keydown", (event) => {
    const panel = event.target.closest("[data-plugin]");
    if (!panel || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (event.key === "Escape") {
      event.preventDefault();
      document.activeElement.blur(); // the page's keys are the page's again
      return;
    }
    const key = KEYS[event.key] || (event.key.length === 1 && event.key !== "?" ? event.key : null);
    // On a button or list item of the panel, Enter and Space press it (the browser does).
    if (!key || (event.target !== panel && (key === "enter" || key === "space"))) return;
    event.preventDefault();
    const button = [...panel.querySelectorAll("button[data-key]")].find((b) => b.dataset.key === event.key);
    if (button) send(panel.dataset.plugin, button);
    else pressKey(panel.dataset.plugin, key);
  });
  const source = live({
    hello: (hello) => {
      if (!hello.hosted) empty.textContent = "This server hosts no plugins (rwq web --no-plugins).";
      else if (!hello.panels) empty.textContent = "Panels need a token with admin.stats.read on every queue.";
    },
    panel: show,
    "panel-gone": gone,
  });
  try {
    const { panels } = await api("/api/v1/panels");
    for (const panel of panels) show(panel);
  } catch (error) {
    if (error.status !== 403 && error.status !== 503) failed(error);
  }
  return source;
});
