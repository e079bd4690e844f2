// One queue: its counts and chart (live), pause or resume, purge, and a look at its jobs.
import { age, api, badge, boot, clear, confirmDialog, el, failed, flash, holds, lacks, lineChart, live, main, whenMs } from "./common.js";

const queue = decodeURIComponent(location.pathname.split("/")[2] || "");
const STATES = ["pending", "scheduled", "processing", "dead", "completed"];
const completed = [];
const failedSeries = [];
let last = null;
let facts;
let chart;
let jobs;
let pause;
let peekState = new URLSearchParams(location.search).get("state") || "pending";

function push(list, value) {
  list.push(value);
  if (list.length > 120) list.shift();
}

function show(q) {
  clear(facts, el("dl", { class: "facts" },
    ...[["pending", q.pending], ["running", q.processing], ["scheduled", q.scheduled], ["dead", q.dead],
      ["completed (all time)", q.completed_total], ["failed (all time)", q.failed_total],
      ["retried", q.retried_total], ["enqueued", q.enqueued_total], ["done in the last minute", q.throughput_1m],
      ["failed in the last minute", q.failed_1m], ["oldest pending", q.oldest_pending_age_s === null ? "–" : age(q.oldest_pending_age_s)],
      ["rate limit", q.rate_limit ? `${q.rate_limit} (${q.rate_limit_source})` : "none"]]
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])));
  pause.textContent = q.paused ? "Resume" : "Pause";
  pause.dataset.paused = q.paused ? "true" : "false";
  document.getElementById("state").replaceChildren(q.paused ? badge("paused", "warning") : badge("running", "ok"));
  clear(chart, lineChart([
    { values: completed, class: "fg-green", label: "completed/s" },
    { values: failedSeries, class: "fg-red", label: "failed/s" },
  ], { label: `jobs of ${queue} per second` }));
}

function onStats(stats) {
  const q = stats.queues.find((x) => x.queue === queue);
  if (!q) return;
  if (last) {
    const seconds = Math.max(stats.taken_at - last.taken_at, 0.001);
    push(completed, Math.round(Math.max(0, q.completed_total - last.completed_total) / seconds));
    push(failedSeries, Math.round(Math.max(0, q.failed_total - last.failed_total) / seconds));
  }
  last = { ...q, taken_at: stats.taken_at };
  show(q);
}

async function peek() {
  for (const tab of document.querySelectorAll("[data-state]")) tab.classList.toggle("current", tab.dataset.state === peekState);
  try {
    const list = await api(`/api/v1/queues/${encodeURIComponent(queue)}/jobs?state=${peekState}&limit=50`);
    const rows = list.jobs.map((j) => el("tr", {},
      el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(j.id)}` }, j.id)),
      el("td", { class: "num" }, j.priority),
      el("td", {}, j.tenant || ""),
      el("td", { class: "num" }, j.attempts),
      el("td", {}, whenMs(j.enqueued_at)),
      el("td", { class: "clip" }, j.last_error || JSON.stringify(j.payload))));
    clear(jobs.tBodies[0], rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "empty" }, `No ${peekState} jobs.`)));
  } catch (error) {
    failed(error);
  }
}

async function purge(target) {
  if (!(await confirmDialog(`Delete every ${target} job of ${queue} for good?`, `Purge ${target}`, "Running jobs are never touched. This cannot be undone."))) return;
  try {
    const result = await api(`/api/v1/queues/${encodeURIComponent(queue)}/purge`, { method: "POST", body: { target } });
    flash(`purged ${result.purged} ${target} job${result.purged === 1 ? "" : "s"} of ${queue}`);
    await peek();
  } catch (error) {
    failed(error);
  }
}

boot(async () => {
  facts = el("div", { id: "facts" });
  chart = el("div", { class: "charts" });
  pause = el("button", { type: "button", id: "pause" }, "Pause");
  pause.addEventListener("click", async () => {
    const action = pause.dataset.paused === "true" ? "resume" : "pause";
    try {
      await api(`/api/v1/queues/${encodeURIComponent(queue)}/${action}`, { method: "POST" });
      flash(`${queue} ${action === "pause" ? "paused" : "resumed"}`);
      show(await api(`/api/v1/queues/${encodeURIComponent(queue)}`));
    } catch (error) {
      failed(error);
    }
  });
  pause.hidden = !holds("admin.queue.pause");
  const purges = !holds("admin.queue.purge") ? [] : ["pending", "scheduled", "dead", "completed"].map((target) =>
    el("button", { type: "button", class: "danger", dataset: { purge: target }, on: { click: () => purge(target) } }, `Purge ${target}`));
  const tabs = el("div", { class: "tabs" }, STATES.map((s) => el("button", { type: "button", class: "tab", dataset: { state: s }, on: { click: () => { peekState = s; peek(); } } }, s)));
  jobs = el("table", { class: "grid", id: "jobs" },
    el("thead", {}, el("tr", {}, ["id", "priority", "tenant", "attempts", "enqueued", "error or payload"].map((h) => el("th", {}, h)))),
    el("tbody"));
  const peeking = holds("admin.queue.peek");
  clear(main(), el("h1", {}, "Queue ", el("span", { class: "name" }, queue), " ", el("span", { id: "state" })),
    el("div", { class: "actions" }, pause, ...purges), facts, chart, el("h2", {}, "Jobs"),
    peeking ? [tabs, jobs] : lacks("admin.queue.peek", "look at jobs"));
  const q = await api(`/api/v1/queues/${encodeURIComponent(queue)}`);
  try { // the last minute from the server, so the chart starts full
    const t = await api(`/api/v1/queues/${encodeURIComponent(queue)}/throughput?seconds=60`);
    completed.push(...t.completed);
    failedSeries.push(...t.failed);
  } catch {
    // a chart from now on
  }
  show(q); // the stream's first figures start the rates
  if (peeking) await peek();
  live({ stats: onStats });
});
