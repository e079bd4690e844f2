// The plugin manager: every plugin's state and permissions, enable, disable, reload, revoke
// grants; and the approvals waiting for a decision (approve or deny, all or some).
import { api, badge, boot, clear, confirmDialog, el, failed, flash, holds, lacks, live, main } from "./common.js";

const STATE_LEVELS = { active: "ok", ready: "ok", loading: "info", awaiting_approval: "warning", error: "error", disabled: "muted", unloaded: "muted" };
let list;
let approvals;
let loading = null;

function perms(names, level) {
  return names.map((p) => el("span", { class: `chip lvl-${level}` }, p));
}

async function act(name, action, question = "", confirmLabel = "Confirm") {
  if (question && !(await confirmDialog(question, confirmLabel))) return;
  try {
    const result = await api(`/api/v1/plugins/${encodeURIComponent(name)}/${action}`, { method: "POST", body: action.startsWith("grants") ? {} : undefined });
    const done = { enable: "enabled", disable: "disabled", "grants/revoke": "grants revoked; Reload it to be asked for them again" }[action] || action;
    const state = result.state ? result.state.replace("_", " ") : "";
    flash(result.message || `${name}: ${done}${state && state !== done ? ` (${state})` : ""}`);
  } catch (error) {
    failed(error);
  }
  await load();
}

async function decide(approval, decision, form) {
  const picked = [...form.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
  if (!picked.length) return flash("choose at least one permission", "warning");
  if (decision === "approve" && picked.some((p) => p.startsWith("admin.queue.") || p.startsWith("system."))
    && !(await confirmDialog(`Grant ${approval.plugin} ${picked.join(", ")}?`, "Approve", "These let the plugin change queues or rwq itself."))) return;
  try {
    const result = await api(`/api/v1/approvals/${encodeURIComponent(approval.plugin)}/${decision}`, { method: "POST", body: { permissions: picked } });
    flash(`${approval.plugin}: ${decision === "approve" ? "approved" : "denied"} ${picked.join(", ")} (${result.state})`);
  } catch (error) {
    failed(error);
  }
  await load();
}

function approvalCard(approval) {
  const form = el("form", { class: "approval", dataset: { plugin: approval.plugin } },
    el("h3", {}, `${approval.plugin} ${approval.version}`, approval.update ? [" ", badge("update", "info")] : null),
    el("p", {}, "asks for:"),
    approval.pending.map((p) => el("label", { class: "perm" }, el("input", { type: "checkbox", value: p, checked: true }), ` ${p}`)),
    approval.granted.length ? el("p", { class: "muted" }, "already granted: ", approval.granted.join(", ")) : null,
    holds("system.plugins.manage") ? el("div", { class: "actions" },
      el("button", { type: "button", class: "primary", dataset: { decide: "approve" } }, "Approve chosen"),
      el("button", { type: "button", class: "danger", dataset: { decide: "deny" } }, "Deny chosen")) : null);
  for (const button of form.querySelectorAll("[data-decide]")) button.addEventListener("click", () => decide(approval, button.dataset.decide, form));
  return form;
}

async function load() {
  if (loading) return loading;
  loading = (async () => {
    const [{ plugins }, pending] = await Promise.all([api("/api/v1/plugins"), api("/api/v1/approvals")]);
    const rows = plugins.map((p) => el("tr", { dataset: { plugin: p.name } },
      el("td", {}, p.name),
      el("td", {}, p.version),
      el("td", {}, p.runtime),
      el("td", {}, badge(p.state.replace("_", " "), STATE_LEVELS[p.state] || "info")),
      el("td", { class: "clip" }, p.reason),
      el("td", {}, perms(p.permissions.granted, "ok"), perms(p.permissions.pending, "warning"), perms(p.permissions.denied, "error")),
      !holds("system.plugins.manage") ? el("td") : el("td", { class: "actions" },
        p.state === "disabled" || p.state === "error" || p.state === "unloaded"
          ? el("button", { type: "button", dataset: { action: "enable" }, on: { click: () => act(p.name, "enable") } }, "Enable")
          : el("button", { type: "button", dataset: { action: "disable" }, on: { click: () => act(p.name, "disable", `Disable ${p.name}? Its panel and alerts stop until it is enabled.`, "Disable") } }, "Disable"),
        el("button", { type: "button", dataset: { action: "reload" }, on: { click: () => act(p.name, "reload") } }, "Reload"),
        p.permissions.granted.length
          ? el("button", { type: "button", class: "danger", dataset: { action: "revoke" }, on: { click: () => act(p.name, "grants/revoke", `Revoke every permission of ${p.name}?`, "Revoke") } }, "Revoke grants")
          : null)));
    clear(list.tBodies[0], rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No plugins: install one with rwq plugin install.")));
    clear(approvals, pending.approvals.length ? pending.approvals.map(approvalCard) : el("p", { class: "muted" }, "Nothing waits for a decision."));
  })();
  try {
    await loading;
  } finally {
    loading = null;
  }
}

boot(async () => {
  if (!holds("system.config.read")) {
    clear(main(), el("h1", {}, "Plugins"), lacks("system.config.read", "plugins to show"));
    return;
  }
  list = el("table", { class: "grid", id: "plugins" },
    el("thead", {}, el("tr", {}, ["plugin", "version", "runtime", "state", "why", "permissions", "actions"].map((h) => el("th", {}, h)))),
    el("tbody"));
  approvals = el("div", { id: "approvals" });
  clear(main(), el("h1", {}, "Plugins"), list, el("h2", {}, "Approvals"), approvals);
  await load();
  live({ plugins: () => load().catch(failed) });
});
