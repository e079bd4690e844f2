// Queues: every queue's counts, live, with charts of jobs completed and failed each second.
import { age, api, badge, boot, clear, el, lineChart, live, main, sparkline } from "./common.js";

const HISTORY = 120; // seconds of chart
const history = new Map(); // queue -> {completed: [], failed: [], last: stats}
const totals = { completed: [], failed: [], pending: [] };
let overview;
let table;
let workersLine;
let started = false;

function push(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
}

function row(q, h) {
  const name = el("a", { href: `/queues/${encodeURIComponent(q.queue)}` }, q.queue);
  return el("tr", { dataset: { queue: q.queue } },
    el("td", {}, name, q.paused ? [" ", badge("paused", "warning")] : null),
    el("td", { class: "num" }, q.pending),
    el("td", { class: "num" }, q.processing),
    el("td", { class: "num" }, q.scheduled),
    el("td", { class: "num" }, q.dead > 0 ? el("a", { href: `/dead-letters?queue=${encodeURIComponent(q.queue)}` }, q.dead) : "0"),
    el("td", { class: "num" }, q.throughput_1m),
    el("td", { class: "num" }, q.failed_1m),
    el("td", { class: "num" }, q.oldest_pending_age_s === null ? "–" : age(q.oldest_pending_age_s)),
    el("td", {}, sparkline(h.completed, "fg-green"), sparkline(h.failed, "fg-red")),
    el("td", {}, q.rate_limit ? `${q.rate_limit} (${q.rate_used ?? 0} used)` : "–"));
}

function draw(stats) {
  const rows = stats.queues.map((q) => row(q, history.get(q.queue) || { completed: [], failed: [] }));
  clear(table.tBodies[0], rows.length ? rows : el("tr", {}, el("td", { colspan: 10, class: "empty" }, "No queues yet: enqueue a job (rwq enqueue QUEUE '{}').")));
  clear(overview, lineChart([
    { values: totals.completed, class: "fg-green", label: "completed/s" },
    { values: totals.failed, class: "fg-red", label: "failed/s" },
  ], { label: "jobs completed and failed per second, every queue" }),
  lineChart([{ values: totals.pending, class: "fg-cyan", label: "pending" }], { height: 60, label: "jobs pending, every queue" }));
  workersLine.textContent = `${stats.workers} worker${stats.workers === 1 ? "" : "s"} · ${stats.queues.length} queue${stats.queues.length === 1 ? "" : "s"} · updated ${new Date(stats.taken_at * 1000).toLocaleTimeString()}`;
}

function update(stats) {
  let completed = 0;
  let failed = 0;
  let pending = 0;
  for (const q of stats.queues) {
    let h = history.get(q.queue);
    if (!h) {
      h = { completed: [], failed: [], last: null };
      history.set(q.queue, h);
    }
    if (h.last) {
      const seconds = Math.max(stats.taken_at - h.last.taken_at, 0.001);
      const done = Math.max(0, q.completed_total - h.last.completed_total) / seconds;
      const bad = Math.max(0, q.failed_total - h.last.failed_total) / seconds;
      push(h.completed, Math.round(done));
      push(h.failed, Math.round(bad));
      completed += done;
      failed += bad;
    }
    pending += q.pending;
    h.last = { ...q, taken_at: stats.taken_at };
  }
  if (started) {
    push(totals.completed, Math.round(completed));
    push(totals.failed, Math.round(failed));
  }
  started = true;
  push(totals.pending, pending);
  draw(stats);
}

boot(async () => {
  overview = el("div", { class: "charts", id: "overview" });
  workersLine = el("p", { class: "muted", id: "summary" });
  table = el("table", { id: "queues", class: "grid" },
    el("thead", {}, el("tr", {}, ["queue", "pending", "running", "scheduled", "dead", "done/min", "failed/min", "oldest", "done · failed", "rate limit"].map((h) => el("th", {}, h)))),
    el("tbody"));
  clear(main(), el("h1", {}, "Queues"), workersLine, overview, table);
  const stats = await api("/api/v1/queues");
  // The last minute of each queue from the server, so the charts start full.
  await Promise.all(stats.queues.map(async (q) => {
    try {
      const t = await api(`/api/v1/queues/${encodeURIComponent(q.queue)}/throughput?seconds=60`);
      // The stream's first figures start the rates: a rate over the fraction of a second
      // between this answer and them would be noise.
      history.set(q.queue, { completed: t.completed.slice(), failed: t.failed.slice(), last: null });
    } catch {
      history.set(q.queue, { completed: [], failed: [], last: null });
    }
  }));
  for (let i = 0; i < 60; i++) {
    let c = 0;
    let f = 0;
    for (const h of history.values()) {
      c += h.completed[i] || 0;
      f += h.failed[i] || 0;
    }
    totals.completed.push(c);
    totals.failed.push(f);
  }
  draw(stats);
  live({ stats: update });
});
