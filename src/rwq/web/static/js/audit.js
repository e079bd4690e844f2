// The audit log, newest first: what was done and decided (actions, grants, denials,
// refusals); the allowed checks of every call and read too when asked.
import { api, badge, boot, clear, el, holds, lacks, main, when } from "./common.js";

const filters = { actor: "", kind: "", denied_only: false, routine: false };
const SHOWN = 200;
let table;

async function load() {
  const q = new URLSearchParams({ limit: String(SHOWN), routine: String(filters.routine) });
  if (filters.actor) q.set("actor", filters.actor);
  if (filters.kind) q.set("kind", filters.kind);
  if (filters.denied_only) q.set("denied_only", "true");
  const { records } = await api(`/api/v1/audit?${q}`);
  const rows = records.slice(-SHOWN).reverse().map((r) => el("tr", {},
    el("td", {}, when(r.time)), el("td", {}, r.plugin), el("td", {}, r.kind), el("td", { class: "clip" }, r.operation),
    el("td", {}, r.resource), el("td", {}, badge(r.allowed ? "allowed" : "denied", r.allowed ? "ok" : "error")), el("td", { class: "clip" }, r.reason)));
  clear(table.tBodies[0], rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No records match.")));
}

boot(async () => {
  if (!holds("system.config.read")) {
    clear(main(), el("h1", {}, "Audit log"), lacks("system.config.read", "audit log to show"));
    return;
  }
  const form = el("form", { class: "filters", id: "filters" },
    el("label", {}, "who", el("input", { type: "search", name: "actor", placeholder: "plugin or token:NAME" })),
    el("label", {}, "kind", el("select", { name: "kind" }, ["", "action", "check", "grant", "revoke", "deny", "forget", "policy", "dropped"].map((k) => el("option", { value: k }, k || "any")))),
    el("label", {}, el("input", { type: "checkbox", name: "denied_only" }), " denied only"),
    el("label", {}, el("input", { type: "checkbox", name: "routine" }), " allowed checks too"),
    el("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    filters.actor = form.elements.actor.value.trim();
    filters.kind = form.elements.kind.value;
    filters.denied_only = form.elements.denied_only.checked;
    filters.routine = form.elements.routine.checked;
    load();
  });
  table = el("table", { class: "grid", id: "audit" },
    el("thead", {}, el("tr", {}, ["time", "who", "kind", "operation", "resource", "decision", "reason"].map((h) => el("th", {}, h)))),
    el("tbody"));
  clear(main(), el("h1", {}, "Audit log"),
    el("p", { class: "muted" }, "The latest 200 records, newest first: what tokens did (actions), grants, revocations, denials and every refused check. The allowed checks of each plugin call and page read are hidden unless asked for."),
    form, table);
  await load();
});
