// One job by id: every field, its payload, error, traceback and result; a queued or running
// one can be cancelled, a dead one requeued or deleted.
import { api, badge, boot, clear, confirmDialog, el, failed, flash, holds, json, main, whenMs } from "./common.js";

const id = decodeURIComponent(location.pathname.split("/")[2] || "");
const LEVELS = { completed: "ok", dead: "error", processing: "info", pending: "info", scheduled: "muted", cancelled: "muted" };

async function show() {
  const job = await api(`/api/v1/jobs/${encodeURIComponent(id)}`);
  const facts = [["queue", el("a", { href: `/queues/${encodeURIComponent(job.queue)}` }, job.queue)],
    ["state", badge(job.state, LEVELS[job.state] || "info")], ["priority", job.priority], ["tenant", job.tenant || ""],
    ["attempts", `${job.attempts} of ${job.max_retries + 1}`], ["created", whenMs(job.created_at)], ["enqueued", whenMs(job.enqueued_at)],
    ["started", whenMs(job.started_at)], ["finished", whenMs(job.finished_at)], ["dead since", whenMs(job.dead_at)],
    ["run at", whenMs(job.run_at)], ["worker", job.worker || ""], ["duration", job.duration_ms === null ? "" : `${job.duration_ms.toFixed(1)} ms`],
    ["timeout", job.timeout === null ? "" : `${job.timeout}s`], ["unique key", job.unique_key || ""], ["trace id", job.trace_id || ""],
    ["progress", job.progress === null ? "" : `${Math.round(job.progress * 100)}% ${job.progress_message || ""}`]];
  const actions = [];
  if (job.state === "dead" && (holds("admin.job.requeue") || holds("admin.queue.requeue"))) {
    actions.push(el("button", { type: "button", id: "requeue", class: "primary", on: { click: () => requeue(job) } }, "Requeue"));
  }
  if (["pending", "scheduled", "processing"].includes(job.state) && holds("admin.queue.purge")) {
    actions.push(el("button", { type: "button", id: "cancel", class: "danger", on: { click: () => cancel(job) } }, "Cancel job"));
  }
  if (job.state === "dead" && holds("admin.queue.purge")) {
    actions.push(el("button", { type: "button", id: "delete", class: "danger", on: { click: () => remove(job) } }, "Delete"));
  }
  const shown = facts.filter(([, v]) => v !== "" && v !== null && v !== undefined);
  clear(main(), el("h1", {}, "Job ", el("span", { class: "name" }, job.id)), el("div", { class: "actions" }, actions),
    el("dl", { class: "facts" }, shown.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v instanceof Node ? v : String(v))])),
    el("h2", {}, "Payload"), json(job.payload),
    job.last_error ? [el("h2", {}, job.state === "dead" ? "Error" : "Last error"), el("pre", { class: "error" }, job.last_error)] : null,
    job.traceback ? [el("h2", {}, "Traceback"), el("pre", { class: "traceback" }, job.traceback)] : null,
    job.state === "completed" ? [el("h2", {}, "Result"), job.result_error ? el("p", { class: "lvl-warning" }, job.result_error) : json(job.result)] : null,
    job.labels ? [el("h2", {}, "Labels"), json(job.labels)] : null);
}

async function requeue(job) {
  try {
    const result = await api("/api/v1/dead-letters/requeue", { method: "POST", body: { ids: [job.id], queue: job.queue } });
    flash(`requeued ${result.requeued} job`);
    await show();
  } catch (error) {
    failed(error);
  }
}

async function cancel(job) {
  const running = job.state === "processing" ? " Its worker stops its handler." : "";
  if (!(await confirmDialog(`Cancel ${job.state} job ${job.id} of ${job.queue}?`, "Cancel job", `It is removed and never runs again.${running}`, "Keep it"))) return;
  try {
    const result = await api(`/api/v1/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
    flash(`cancelled ${result.job_id} (was ${result.was})`);
    await show();
  } catch (error) {
    failed(error);
  }
}

async function remove(job) {
  if (!(await confirmDialog(`Delete dead job ${job.id} for good?`, "Delete", "This cannot be undone."))) return;
  try {
    await api("/api/v1/dead-letters/delete", { method: "POST", body: { queue: job.queue, ids: [job.id] } });
    flash(`deleted ${job.id}`);
    location.assign(`/dead-letters?queue=${encodeURIComponent(job.queue)}`);
  } catch (error) {
    failed(error);
  }
}

boot(show);
