// {{name}}: completed and failed jobs per queue, the failure rate over time as a sparkline,
// the queues' depths, the latest failures, and a button that requeues dead letters.
//
// Each hook is exported as rwq_<hook> and runs through `hook(ptr, len, fn)`: `fn` gets the
// hook's JSON argument (a Json) and a Writer for its result. The SDK: lib/rwq.ts; the ABI:
// docs/abi.md. Avoid Math.random and Date.now: they import functions the host does not link.
import { hook, host, isError, errorCode, Json, Writer } from "~lib/rwq";

const BUCKET_MS: f64 = 10000; // the sparkline's step: failures per attempts over 10 s of event time
const BUCKETS: i32 = 30; // steps drawn (the latest 5 minutes)
const MAX_QUEUES: i32 = 32; // past this, queues are counted under "(other)"
const MAX_FAILURES: i32 = 5; // rows of the latest-failures table
const REFRESH_MS: i32 = 5000; // how often the queue depths are read again
const ERROR_CHARS: i32 = 120; // an error message is cut to this many characters
const NAMES_SHOWN: i32 = 3; // queues named in a line about the requeue; the rest are counted

class QueueRow {
  completed: i64 = 0;
  failed: i64 = 0;
  pending: i64 = 0; // from get_queue_stats
  dead: i64 = 0;
  counted: bool = false;
  hasDepth: bool = false;
  constructor(public name: string) {}
}

class FailureRow {
  constructor(
    public queue: string,
    public job: string,
    public attempt: i64,
    public error: string,
  ) {}
}

let queues = new Array<QueueRow>();
const bucketIds = new Array<i64>(BUCKETS);
const bucketCompleted = new Array<i64>(BUCKETS);
const bucketFailed = new Array<i64>(BUCKETS);
let newest: i64 = -1; // the newest bucket seen
let failures = new Array<FailureRow>(); // newest first
let depthsError = ""; // why the depths could not be read; "" when they were
let notes = new Array<string>(); // what the last requeue did: level, text, level, text...

function reset(): void {
  for (let i = 0; i < queues.length; i++) {
    queues[i].completed = 0;
    queues[i].failed = 0;
    queues[i].counted = false;
  }
  for (let i = 0; i < BUCKETS; i++) {
    bucketIds[i] = -1;
    bucketCompleted[i] = 0;
    bucketFailed[i] = 0;
  }
  newest = -1;
  failures = new Array<FailureRow>();
  notes = new Array<string>();
}

function findQueue(name: string): QueueRow {
  for (let i = 0; i < queues.length; i++) if (queues[i].name == name) return queues[i];
  if (queues.length == MAX_QUEUES) return findQueue("(other)");
  const row = new QueueRow(name);
  queues.push(row);
  return row;
}

// Reads the queues' depths; needs admin.stats.read (without it the panel says so).
function refresh(): void {
  const stats = host.get_queue_stats("{}");
  if (isError(stats)) {
    depthsError = errorCode(stats);
    if (depthsError.length == 0) depthsError = "error";
    return;
  }
  depthsError = "";
  for (let i = 0; i < queues.length; i++) queues[i].hasDepth = false;
  const list = stats.get("queues");
  for (let i = 0; i < list.length; i++) {
    const q = list.at(i);
    const name = q.get("queue").str();
    if (name.length == 0) continue;
    const row = findQueue(name);
    row.pending = q.get("pending").int();
    row.dead = q.get("dead").int();
    row.hasDepth = true;
  }
}

export function rwq_initialize(ptr: usize, len: usize): u64 {
  return hook(ptr, len, initialize);
}
function initialize(config: Json, out: Writer): void {
  // config is the manifest's config merged with the user's
  reset();
}

export function rwq_activate(ptr: usize, len: usize): u64 {
  return hook(ptr, len, activate);
}
function activate(arg: Json, out: Writer): void {
  refresh();
  host.set_timer(`{"id": "refresh", "interval_ms": ${REFRESH_MS}}`);
}

export function rwq_deactivate(ptr: usize, len: usize): u64 {
  return hook(ptr, len, deactivate);
}
function deactivate(arg: Json, out: Writer): void {
  host.clear_timer(`{"id": "refresh"}`);
}

export function rwq_on_timer(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onTimer);
}
function onTimer(timer: Json, out: Writer): void {
  // timer: {"id": "refresh", "ts": ...}
  const refreshing = timer.get("id").str() == "refresh";
  if (refreshing) refresh();
  out.object().key("changed").bool(refreshing).endObject();
}

function count(event: Json, failed: bool): void {
  let name = event.get("queue").str();
  if (name.length == 0) name = "(none)";
  const row = findQueue(name);
  if (failed) row.failed++;
  else row.completed++;
  row.counted = true;

  const bucket = <i64>Math.floor(event.get("ts").num() / BUCKET_MS);
  if (bucket > newest - BUCKETS) {
    const slot = <i32>(bucket % BUCKETS);
    if (bucketIds[slot] != bucket) {
      bucketIds[slot] = bucket;
      bucketCompleted[slot] = 0;
      bucketFailed[slot] = 0;
    }
    if (failed) bucketFailed[slot]++;
    else bucketCompleted[slot]++;
    if (bucket > newest) newest = bucket;
  }
  if (failed) {
    const data = event.get("data");
    let error = data.get("error").str();
    if (error.length > ERROR_CHARS) error = error.substring(0, ERROR_CHARS);
    failures.unshift(new FailureRow(row.name, data.get("job_id").str(), data.get("attempt").int(), error));
    if (failures.length > MAX_FAILURES) failures.pop();
  }
}

export function rwq_on_event(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onEvent);
}
function onEvent(events: Json, out: Writer): void {
  // events is a batch, oldest first: [{"id", "type", "ts", "source", "queue", "data"}, ...]
  let changed = false;
  for (let i = 0; i < events.length; i++) {
    const event = events.at(i);
    const type = event.get("type").str();
    if (type != "job.completed" && type != "job.failed") continue;
    count(event, type == "job.failed");
    changed = true;
  }
  out.object().key("changed").bool(changed).endObject();
}

// One decimal, the same in every language of the toolkit's templates.
function percent(part: i64, whole: i64): string {
  if (whole == 0) return "-";
  const permille = (part * 1000) / whole;
  return `${permille / 10}.${permille % 10}%`;
}

function text(out: Writer, text: string, level: string): void {
  out.object().key("type").string("text").key("text").string(text);
  out.key("level").string(level).endObject();
}

function tableBegin(out: Writer, title: string, columns: Array<string>): void {
  out.object().key("type").string("table").key("title").string(title);
  out.key("columns").array();
  for (let i = 0; i < columns.length; i++) out.string(columns[i]);
  out.endArray().key("rows").array();
}

export function rwq_render(ptr: usize, len: usize): u64 {
  return hook(ptr, len, render);
}
function render(size: Json, out: Writer): void {
  // size: {"width", "height", "focused"}: the panel body's size in cells
  queues.sort((a: QueueRow, b: QueueRow): i32 => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let completed: i64 = 0;
  let failed: i64 = 0;
  let shown = 0;
  for (let i = 0; i < queues.length; i++) {
    completed += queues[i].completed;
    failed += queues[i].failed;
    if (queues[i].counted || queues[i].hasDepth) shown++;
  }
  const rates = new Array<f64>();
  for (let k = 0; k < BUCKETS; k++) {
    const b = newest - BUCKETS + 1 + k;
    const slot = <i32>(((b % BUCKETS) + BUCKETS) % BUCKETS);
    let done: i64 = 0;
    let bad: i64 = 0;
    if (bucketIds[slot] == b) {
      done = bucketCompleted[slot];
      bad = bucketFailed[slot];
    }
    rates.push(done + bad ? (<f64>bad * 100.0) / <f64>(done + bad) : 0.0);
  }

  out.array();
  out.uiText(`${shown} queues, ${completed} completed, ${failed} failed (${percent(failed, completed + failed)})`);
  out.uiSparkline("failure %", rates, 0, 100);

  tableBegin(out, "Queues", ["queue", "completed", "failed", "fail %", "pending", "dead"]);
  for (let i = 0; i < queues.length; i++) {
    const q = queues[i];
    if (!q.counted && !q.hasDepth) continue;
    out.uiRowBegin().string(q.name).int(q.completed).int(q.failed);
    out.string(percent(q.failed, q.completed + q.failed));
    if (q.hasDepth) out.int(q.pending).int(q.dead);
    else out.string("-").string("-");
    out.uiRowEnd();
  }
  out.uiTableEnd();

  if (failures.length) {
    tableBegin(out, "Latest failures", ["queue", "job", "try", "error"]);
    for (let i = 0; i < failures.length; i++) {
      const f = failures[i];
      out.uiRowBegin().string(f.queue).string(f.job).int(f.attempt).string(f.error).uiRowEnd();
    }
    out.uiTableEnd();
  } else {
    text(out, "no failures yet", "ok");
  }
  if (depthsError.length) {
    text(out, `pending and dead need admin.stats.read (${depthsError})`, "muted");
  }
  out.uiButton("reset", "Reset", "r");
  out.uiButton("requeue", "Requeue dead letters", "d");
  for (let i = 0; i + 1 < notes.length; i += 2) text(out, notes[i + 1], notes[i]);
  out.endArray();
}

// "a, b, c and 2 more"
function named(names: Array<string>): string {
  if (names.length <= NAMES_SHOWN) return names.join(", ");
  return `${names.slice(0, NAMES_SHOWN).join(", ")} and ${names.length - NAMES_SHOWN} more`;
}

// Moves every queue's dead letters back to pending with requeue_jobs. It needs
// admin.queue.requeue on that queue: manifest.yaml asks for it only once you uncomment it, so
// until then (and on queues outside its scope) the call is refused with permission_denied,
// and the panel says what to ask for.
function requeue(): void {
  refresh();
  queues.sort((a: QueueRow, b: QueueRow): i32 => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let requeued: i64 = 0;
  const done = new Array<string>();
  const denied = new Array<string>();
  let failed = "";
  for (let i = 0; i < queues.length && failed.length == 0; i++) {
    const q = queues[i];
    if (!q.hasDepth || q.dead == 0) continue;
    const args = new Writer().object().key("queue").string(q.name).key("all").bool(true);
    const result = host.requeue_jobs(args.endObject().toString());
    if (!isError(result)) {
      requeued += result.get("requeued").int();
      done.push(q.name);
    } else if (errorCode(result) == "permission_denied") {
      denied.push(q.name);
    } else {
      failed = `requeue on ${q.name} failed: ${errorCode(result)}`;
    }
  }
  notes = new Array<string>();
  if (done.length) {
    notes.push("ok");
    notes.push(`requeued ${requeued} dead letter${requeued == 1 ? "" : "s"} from ${named(done)}`);
  }
  if (failed.length) {
    notes.push("error");
    notes.push(failed);
  }
  if (denied.length) {
    notes.push("warning");
    notes.push(`denied on ${named(denied)}: ask for admin.queue.requeue in manifest.yaml`);
  }
  if (notes.length == 0) {
    notes.push("muted");
    notes.push("no dead letters to requeue");
  }
  refresh();
}

export function rwq_on_input(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onInput);
}
function onInput(event: Json, out: Writer): void {
  // {"kind": "button", "id": "reset"} when Reset is pressed (or its key, r);
  // "id": "requeue" for Requeue dead letters (d)
  const button = event.get("kind").str() == "button";
  const id = event.get("id").str();
  let changed = true;
  if (button && id == "reset") reset();
  else if (button && id == "requeue") requeue();
  else changed = false;
  out.object().key("changed").bool(changed).endObject();
}

// Handed to the next version on a hot reload (its import_state): the counts, the sparkline's
// steps and the latest failures, as the Starlark and C templates hand them over.
export function rwq_export_state(ptr: usize, len: usize): u64 {
  return hook(ptr, len, exportState);
}
function exportState(arg: Json, out: Writer): void {
  out.object().key("queues").object(); // {"queue": [completed, failed]}
  for (let i = 0; i < queues.length; i++) {
    const q = queues[i];
    if (q.counted) out.key(q.name).array().int(q.completed).int(q.failed).endArray();
  }
  out.endObject().key("buckets").array(); // [[step, completed, failed]]
  for (let i = 0; i < BUCKETS; i++) {
    if (bucketIds[i] < 0 || bucketIds[i] <= newest - BUCKETS) continue;
    out.array().int(bucketIds[i]).int(bucketCompleted[i]).int(bucketFailed[i]).endArray();
  }
  out.endArray().key("newest").int(newest);
  out.key("failures").array(); // [[queue, job, attempt, error]], newest first
  for (let i = 0; i < failures.length; i++) {
    const f = failures[i];
    out.array().string(f.queue).string(f.job).int(f.attempt).string(f.error).endArray();
  }
  out.endArray().endObject();
}

export function rwq_import_state(ptr: usize, len: usize): u64 {
  return hook(ptr, len, importState);
}
function importState(arg: Json, out: Writer): void {
  // arg: {"from_version": "0.1.0", "state": what the running version's export_state returned}
  const saved = arg.get("state");
  const counts = saved.get("queues");
  for (let i = 0; i < counts.length; i++) {
    const row = findQueue(counts.keys[i]);
    const pair = counts.items[i];
    row.completed = pair.at(0).int();
    row.failed = pair.at(1).int();
    row.counted = true;
  }
  newest = saved.get("newest").int(-1);
  const steps = saved.get("buckets");
  for (let i = 0; i < steps.length; i++) {
    const id = steps.at(i).at(0).int(-1);
    if (id < 0 || id <= newest - BUCKETS || id > newest) continue;
    const slot = <i32>(id % BUCKETS);
    bucketIds[slot] = id;
    bucketCompleted[slot] = steps.at(i).at(1).int();
    bucketFailed[slot] = steps.at(i).at(2).int();
  }
  failures = new Array<FailureRow>();
  const rows = saved.get("failures");
  for (let i = 0; i < rows.length && i < MAX_FAILURES; i++) {
    const f = rows.at(i);
    failures.push(new FailureRow(f.at(0).str(), f.at(1).str(), f.at(2).int(), f.at(3).str()));
  }
}

export function rwq_health_check(ptr: usize, len: usize): u64 {
  return hook(ptr, len, healthCheck);
}
function healthCheck(arg: Json, out: Writer): void {
  out.object().key("status").string("ok").key("queues").int(queues.length).endObject();
}
