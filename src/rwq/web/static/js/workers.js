// Workers: every registered worker, refreshed every two seconds.
import { age, api, badge, boot, clear, el, failed, holds, lacks, main } from "./common.js";

let table;
let summary;

async function load() {
  const { workers } = await api("/api/v1/workers");
  const now = Date.now();
  const rows = workers.map((w) => el("tr", { dataset: { worker: w.id } },
    el("td", {}, w.id),
    el("td", {}, `${w.host}:${w.pid}`),
    el("td", {}, w.queues.join(", ")),
    el("td", { class: "num" }, w.concurrency),
    el("td", {}, badge(w.alive ? w.state : "lost", w.alive ? (w.state === "running" ? "ok" : "info") : "error")),
    el("td", {}, w.last_heartbeat ? `${age((now - w.last_heartbeat) / 1000)} ago` : "expired"),
    el("td", { class: "num" }, w.processed),
    el("td", { class: "num" }, w.failed),
    el("td", {}, w.current_jobs.map((id) => el("a", { href: `/jobs/${encodeURIComponent(id)}`, class: "chip" }, id)))));
  clear(table.tBodies[0], rows.length ? rows : el("tr", {}, el("td", { colspan: 9, class: "empty" }, "No workers: start one with rwq worker QUEUE --handler module:function.")));
  const alive = workers.filter((w) => w.alive).length;
  summary.textContent = `${alive} alive, ${workers.length - alive} lost · updated ${new Date().toLocaleTimeString()}`;
}

boot(async () => {
  if (!holds("admin.system.stats")) {
    clear(main(), el("h1", {}, "Workers"), lacks("admin.system.stats", "workers to show"));
    return;
  }
  summary = el("p", { class: "muted", id: "summary" });
  table = el("table", { class: "grid", id: "workers" },
    el("thead", {}, el("tr", {}, ["worker", "host:pid", "queues", "concurrency", "state", "heartbeat", "processed", "failed", "running"].map((h) => el("th", {}, h)))),
    el("tbody"));
  clear(main(), el("h1", {}, "Workers"), summary, table);
  await load();
  setInterval(() => load().catch(failed), 2000);
});
