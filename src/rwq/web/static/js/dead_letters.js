// Dead letters: filter by queue (a name or glob), tenant and error text; inspect one; requeue
// or delete the chosen ones, requeue every match, or purge a queue's, each after a question.
import { allQueues, api, boot, clear, confirmDialog, el, failed, flash, holds, json, lacks, main, state, whenMs } from "./common.js";

const PAGE = 50;
const params = new URLSearchParams(location.search);
const filters = { queue: params.get("queue") || "", tenant: params.get("tenant") || "", error: params.get("error") || "" };
let offset = Number(params.get("offset") || 0);
let page = { jobs: [], total: 0 };
let table;
let summary;

function query() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  return q;
}

function chosen() {
  return [...table.querySelectorAll("input[data-pick]:checked")].map((box) => page.jobs[Number(box.dataset.pick)]);
}

function inspect(job, row) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("detail")) {
    next.remove();
    return;
  }
  row.after(el("tr", { class: "detail" }, el("td", { colspan: 8 },
    el("h3", {}, "Payload"), json(job.payload),
    job.traceback ? [el("h3", {}, "Traceback"), el("pre", { class: "traceback" }, job.traceback)] : null,
    el("p", {}, el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, "Open the job")))));
}

async function load() {
  const q = query();
  q.set("offset", String(offset));
  q.set("limit", String(PAGE));
  history.replaceState(null, "", `/dead-letters?${query()}`);
  try {
    page = await api(`/api/v1/dead-letters?${q}`);
  } catch (error) {
    page = { jobs: [], total: 0 };
    clear(table.tBodies[0], el("tr", {}, el("td", { colspan: 8, class: "empty lvl-error" }, `Refused: ${error.message}`)));
    summary.textContent = "";
    throw error;
  }
  const rows = page.jobs.map((job, i) => {
    const row = el("tr", { dataset: { id: job.id } },
      el("td", {}, el("input", { type: "checkbox", dataset: { pick: i }, "aria-label": `choose ${job.id}` })),
      el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, job.id)),
      el("td", {}, job.queue),
      el("td", {}, job.tenant || ""),
      el("td", { class: "clip error" }, job.last_error || ""),
      el("td", { class: "num" }, job.attempts),
      el("td", {}, whenMs(job.dead_at)));
    row.append(el("td", {}, el("button", { type: "button", class: "quiet", dataset: { inspect: job.id }, on: { click: () => inspect(job, row) } }, "Inspect")));
    return row;
  });
  clear(table.tBodies[0], rows.length ? rows : el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No dead letters match.")));
  const end = Math.min(offset + page.jobs.length, page.total);
  summary.textContent = page.total ? `${offset + 1}-${end} of ${page.total} dead letters` : "0 dead letters";
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = end >= page.total;
}

async function act(run) {
  try {
    await run();
    await load();
  } catch (error) {
    failed(error);
  }
}

function queuesOf(jobs) {
  return [...new Set(jobs.map((job) => job.queue))].join(", ");
}

async function requeueChosen() {
  const jobs = chosen();
  if (!jobs.length) return flash("choose dead letters first", "warning");
  const n = jobs.length;
  if (!(await confirmDialog(`Requeue ${n} dead letter${n === 1 ? "" : "s"} of ${queuesOf(jobs)}?`, "Requeue"))) return;
  return act(async () => {
    const byQueue = new Map();
    for (const job of jobs) byQueue.set(job.queue, [...(byQueue.get(job.queue) || []), job.id]);
    let requeued = 0;
    for (const [queue, ids] of byQueue) {
      requeued += (await api("/api/v1/dead-letters/requeue", { method: "POST", body: { ids, queue } })).requeued;
    }
    flash(`requeued ${requeued} job${requeued === 1 ? "" : "s"}`);
  });
}

// The filter as typed, applied (and the table reloaded) before an action on every match, so
// the action covers what the boxes say, never a filter typed but not applied.
async function applyTyped() {
  const form = document.getElementById("filters");
  let changed = false;
  for (const name of Object.keys(filters)) {
    const typed = form.elements[name].value.trim();
    if (typed !== filters[name]) changed = true;
    filters[name] = typed;
  }
  if (changed) {
    offset = 0;
    await load();
  }
}

function described() {
  const parts = [filters.queue ? `of ${filters.queue}` : "of every queue"];
  if (filters.tenant) parts.push(`of tenant ${filters.tenant}`);
  if (filters.error) parts.push(`whose error contains "${filters.error}"`);
  return parts.join(", ");
}

async function requeueAll() {
  try {
    await applyTyped();
  } catch (error) {
    return failed(error);
  }
  if (!page.total) return flash("no dead letters match", "warning");
  const what = `every dead letter ${described()}`;
  const now = `${page.total} now; any that die before this runs are requeued too.`;
  if (!(await confirmDialog(`Requeue ${what}?`, "Requeue all", now))) return;
  await act(async () => {
    const body = { all: true, queue: filters.queue || null, tenant: filters.tenant || null, error: filters.error || null };
    const result = await api("/api/v1/dead-letters/requeue", { method: "POST", body });
    flash(`requeued ${result.requeued} job${result.requeued === 1 ? "" : "s"}`);
  });
}

async function deleteChosen() {
  const jobs = chosen();
  if (!jobs.length) return flash("choose dead letters first", "warning");
  if (!(await confirmDialog(`Delete ${jobs.length} dead letter${jobs.length === 1 ? "" : "s"} of ${queuesOf(jobs)} for good?`, "Delete", "This cannot be undone."))) return;
  await act(async () => {
    const byQueue = new Map();
    for (const job of jobs) byQueue.set(job.queue, [...(byQueue.get(job.queue) || []), job.id]);
    let deleted = 0;
    for (const [queue, ids] of byQueue) deleted += (await api("/api/v1/dead-letters/delete", { method: "POST", body: { queue, ids } })).deleted;
    flash(`deleted ${deleted} dead letter${deleted === 1 ? "" : "s"}`);
  });
}

async function purgeQueue() {
  try {
    await applyTyped();
  } catch (error) {
    return failed(error);
  }
  const queue = filters.queue;
  if (!queue || /[*?[]/.test(queue)) return flash("filter on one queue (a name, not a glob) to purge its dead letters", "warning");
  const count = filters.tenant || filters.error ? "" : ` (${page.total} now)`;
  if (!(await confirmDialog(`Delete every dead letter of ${queue}${count} for good?`, "Purge", "The tenant and error filters do not apply: the whole queue's dead letters go. This cannot be undone."))) return;
  await act(async () => {
    const result = await api(`/api/v1/queues/${encodeURIComponent(queue)}/purge`, { method: "POST", body: { target: "dead" } });
    flash(`purged ${result.purged} dead letter${result.purged === 1 ? "" : "s"} of ${queue}`);
  });
}

boot(async () => {
  if (!holds("admin.queue.peek")) {
    clear(main(), el("h1", {}, "Dead letters"), lacks("admin.queue.peek", "dead letters to show"));
    return;
  }
  const scoped = !allQueues();
  if (!filters.queue && scoped) filters.queue = state.session.queues[0]; // its own queues
  const inputs = Object.keys(filters).map((name) => el("label", {}, name === "error" ? "error contains" : name,
    el("input", { type: "search", name, value: filters[name], placeholder: name === "queue" ? "name or glob" : "" })));
  const form = el("form", { id: "filters", class: "filters" }, inputs, el("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const name of Object.keys(filters)) filters[name] = form.elements[name].value.trim();
    offset = 0;
    act(async () => {});
  });
  summary = el("p", { class: "muted", id: "summary" });
  table = el("table", { class: "grid", id: "dead" },
    el("thead", {}, el("tr", {}, el("th", {}, el("input", { type: "checkbox", id: "pick-all", "aria-label": "choose all" })),
      ["id", "queue", "tenant", "error", "attempts", "dead since", ""].map((h) => el("th", {}, h)))),
    el("tbody"));
  table.querySelector("#pick-all").addEventListener("change", (event) => {
    for (const box of table.querySelectorAll("input[data-pick]")) box.checked = event.target.checked;
  });
  const requeues = holds("admin.job.requeue") || holds("admin.queue.requeue");
  const purges = holds("admin.queue.purge");
  const actions = el("div", { class: "actions" },
    requeues ? el("button", { type: "button", id: "requeue-chosen", class: "primary", on: { click: requeueChosen } }, "Requeue chosen") : null,
    holds("admin.queue.requeue") ? el("button", { type: "button", id: "requeue-all", on: { click: requeueAll } }, "Requeue all matching") : null,
    purges ? el("button", { type: "button", id: "delete-chosen", class: "danger", on: { click: deleteChosen } }, "Delete chosen") : null,
    purges ? el("button", { type: "button", id: "purge", class: "danger", on: { click: purgeQueue } }, "Purge the queue's dead letters") : null);
  const pager = el("div", { class: "pager" },
    el("button", { type: "button", id: "prev", on: { click: () => { offset = Math.max(0, offset - PAGE); act(async () => {}); } } }, "Newer"),
    el("button", { type: "button", id: "next", on: { click: () => { offset += PAGE; act(async () => {}); } } }, "Older"));
  const scope = scoped ? el("p", { class: "muted" }, `Your token sees the queues ${state.session.queues.join(", ")}: filter on one of them at a time.`) : null;
  clear(main(), el("h1", {}, "Dead letters"), scope, form, actions, summary, table, pager);
  await load();
});
