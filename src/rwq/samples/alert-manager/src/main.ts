// alert-manager: collects the alerts other plugins raise (`alert.raised`, sent with
// send_alert, or a dependant's call_dependency("alert-manager", "raise", ...)), de-duplicates
// them by key, keeps the history in the plugin's storage (so it survives restarts and
// reloads) and shows active and acknowledged alerts: `a` acknowledges the selected one, `c`
// clears the acknowledged ones; an acknowledged alert raised again is active again, unless the
// sender marks it a `repeat` of the same incident going on.
//
// Build: src/rwq/samples/build.sh alert-manager
//   (sdk/assemblyscript/build.sh src/rwq/samples/alert-manager/src src/rwq/samples/alert-manager/main.wasm)
import { hook, log, host, errorCode, parseJson, Json, Kind, Writer } from "~lib/rwq";

const STORE_PREFIX = "alert:";
const MAX_STORED_MESSAGE = 2000; // characters of an alert's message kept (send_alert allows 4000)
const MAX_ITEM = 200; // characters of a list line

// ---- the alerts ------------------------------------------------------------------------------

class Alert {
  seq: i64 = 0;
  from: string = "";
  key: string = ""; // the dedup key ("" when the sender gave none: the title stands for it)
  severity: string = "info";
  title: string = "";
  message: string = "";
  chain: string = ""; // the delegation chain, "a > b", when it came through a dependency call
  count: i64 = 1;
  first: f64 = 0; // epoch ms
  last: f64 = 0;
  acked: bool = false;
  ackedAt: f64 = 0;

  /** Who sent it and its key: the same identity is the same alert. */
  get ident(): string {
    return this.from + "\n" + (this.key.length ? this.key : "title:" + this.title);
  }

  get storeKey(): string {
    return STORE_PREFIX + this.seq.toString().padStart(12, "0");
  }

  toJson(): string {
    const w = new Writer();
    w.object();
    w.key("seq").int(this.seq).key("from").string(this.from).key("key").string(this.key);
    w.key("severity").string(this.severity).key("title").string(this.title);
    w.key("message").string(this.message).key("chain").string(this.chain);
    w.key("count").int(this.count).key("first").number(this.first).key("last").number(this.last);
    w.key("acked").bool(this.acked).key("acked_at").number(this.ackedAt);
    w.endObject();
    return w.toString();
  }

  static fromJson(j: Json): Alert | null {
    const a = new Alert();
    a.seq = j.get("seq").int(-1);
    a.from = j.get("from").str();
    a.title = j.get("title").str();
    if (a.seq < 0 || a.title.length == 0) return null;
    a.key = j.get("key").str();
    a.severity = severityOf(j.get("severity").str());
    a.message = j.get("message").str();
    a.chain = j.get("chain").str();
    a.count = j.get("count").int(1);
    a.first = j.get("first").num();
    a.last = j.get("last").num();
    a.acked = j.get("acked").bool();
    a.ackedAt = j.get("acked_at").num();
    return a;
  }
}

let alerts = new Array<Alert>();
let nextSeq: i64 = 1;
let selectedIdent = "";
let maxHistory: i32 = 200;
let notifyCritical = true;

// What the host refused: shown in the panel, not asked again on every alert.
let storageReadable = true;
let storageWritable = true;
let notifyDenied = false;
let storageError = "";

/** The first n UTF-16 units of s, without splitting a surrogate pair: half of one would not
 * be UTF-8, and the host refuses output that is not. */
function cut(s: string, n: i32): string {
  if (s.length <= n) return s;
  const c = s.charCodeAt(n - 1);
  return s.substring(0, c >= 0xd800 && c < 0xdc00 ? n - 1 : n);
}

function severityOf(s: string): string {
  return s == "critical" || s == "warning" ? s : "info";
}

function severityRank(s: string): i32 {
  return s == "critical" ? 2 : s == "warning" ? 1 : 0;
}

function find(ident: string): Alert | null {
  for (let i = 0; i < alerts.length; i++) {
    if (alerts[i].ident == ident) return alerts[i];
  }
  return null;
}

/** Active first (worst severity, then newest), then acknowledged (newest first). */
function ordered(): Array<Alert> {
  const list = alerts.slice(0);
  list.sort((a: Alert, b: Alert): i32 => {
    if (a.acked != b.acked) return a.acked ? 1 : -1;
    if (!a.acked) {
      const r = severityRank(b.severity) - severityRank(a.severity);
      if (r != 0) return r;
    }
    if (a.last != b.last) return a.last < b.last ? 1 : -1;
    return a.seq < b.seq ? 1 : a.seq > b.seq ? -1 : 0;
  });
  return list;
}

// ---- storage -----------------------------------------------------------------------------------

function storeArgs(key: string): string {
  return new Writer().object().key("key").string(key).endObject().toString();
}

function save(a: Alert): void {
  if (!storageWritable) return;
  const args = new Writer().object().key("key").string(a.storeKey).key("value").string(a.toJson()).endObject();
  const r = host.storage_set(args.toString());
  const code = errorCode(r);
  if (code == "permission_denied") {
    storageWritable = false;
  } else if (code.length) {
    storageError = "storage_set: " + code;
    log("warning", "alert history not saved: " + r.get("error").get("message").str(code));
  }
}

function forget(a: Alert): void {
  if (storageWritable) host.storage_delete(storeArgs(a.storeKey));
}

/** Reads the history back from storage (at start, and after a hot reload). */
function loadHistory(): void {
  const listed = host.storage_list(
    new Writer().object().key("prefix").string(STORE_PREFIX).key("limit").int(1000).endObject().toString(),
  );
  const code = errorCode(listed);
  if (code.length) {
    if (code == "permission_denied") storageReadable = false;
    else storageError = "storage_list: " + code;
    return;
  }
  const loaded = new Array<Alert>();
  for (let i = 0; i < listed.length; i++) {
    const value = host.storage_get(storeArgs(listed.at(i).str()));
    if (value.kind != Kind.STRING) continue; // not a string: gone since, or an error
    const a = Alert.fromJson(parseJson(value.str()));
    if (a === null) continue;
    loaded.push(a);
    if (a.seq >= nextSeq) nextSeq = a.seq + 1;
  }
  alerts = loaded;
  trim();
}

/** Keeps the history at maxHistory: the oldest acknowledged go first, then the oldest. */
function trim(): void {
  while (alerts.length > maxHistory) {
    let victim = -1;
    for (let pass = 0; pass < 2 && victim < 0; pass++) {
      for (let i = 0; i < alerts.length; i++) {
        const a = alerts[i];
        if (pass == 0 && !a.acked) continue;
        if (victim < 0 || a.last < alerts[victim].last) victim = i;
      }
    }
    forget(alerts[victim]);
    alerts.splice(victim, 1);
  }
}

// ---- raising and acknowledging ---------------------------------------------------------------

function nowMs(): f64 {
  const out = memory.data(8);
  if (clock_time_get(0, 1000, out) != 0) return 0;
  return <f64>(load<u64>(out) / 1000000);
}

@external("wasi_snapshot_preview1", "clock_time_get")
declare function clock_time_get(id: u32, precision: u64, time: usize): u16;

function notify(a: Alert): void {
  if (!notifyCritical || notifyDenied || a.severity != "critical") return;
  const text = "Critical alert from " + a.from + ": " + a.title;
  const r = host.show_notification(
    new Writer().object().key("message").string(cut(text, 500))
      .key("level").string("error").endObject().toString(),
  );
  if (errorCode(r) == "permission_denied") notifyDenied = true; // rate_limited: the next one may pass
}

/** Records one alert: a new one, a repeat (count, last seen, latest text), or an
 * acknowledged one raised again (active again) unless the sender says it is the same incident
 * going on (`repeat`: an acknowledged alert stays acknowledged). */
function raise(from: string, severity: string, title: string, message: string, key: string, chain: string, ts: f64, repeat: bool = false): Alert {
  const probe = new Alert();
  probe.from = from;
  probe.key = key;
  probe.title = title;
  let a = find(probe.ident);
  let fresh = false;
  if (a === null) {
    a = probe;
    a.seq = nextSeq++;
    a.first = ts;
    a.count = 0;
    alerts.push(a);
    fresh = true;
  }
  const reopened = a.acked && !repeat;
  a.count++;
  a.severity = severityOf(severity);
  a.title = title;
  a.message = cut(message, MAX_STORED_MESSAGE);
  a.chain = chain;
  if (ts > a.last) a.last = ts;
  if (reopened) {
    a.acked = false;
    a.ackedAt = 0;
  }
  save(a);
  if (fresh) trim();
  if (fresh || reopened) notify(a);
  if (selectedIdent.length == 0) selectedIdent = a.ident;
  return a;
}

function acknowledge(a: Alert): bool {
  if (a.acked) return false;
  a.acked = true;
  a.ackedAt = nowMs();
  save(a);
  return true;
}

function clearAcknowledged(): bool {
  const kept = new Array<Alert>();
  let removed = false;
  for (let i = 0; i < alerts.length; i++) {
    if (alerts[i].acked) {
      forget(alerts[i]);
      removed = true;
    } else {
      kept.push(alerts[i]);
    }
  }
  alerts = kept;
  return removed;
}

function selected(list: Array<Alert>): i32 {
  for (let i = 0; i < list.length; i++) {
    if (list[i].ident == selectedIdent) return i;
  }
  return list.length ? 0 : -1;
}

// ---- hooks -----------------------------------------------------------------------------------

function readConfig(config: Json, out: Writer): bool {
  const keys = config.keys;
  for (let i = 0; i < keys.length; i++) {
    if (keys[i] != "max_history" && keys[i] != "notify_critical") {
      out.object().key("error").string("config." + keys[i] + ": unknown setting (one of: max_history, notify_critical)").endObject();
      return false;
    }
  }
  const m = config.get("max_history");
  let history = maxHistory;
  if (!m.isNull()) {
    const n = m.num(-1);
    if (n < 1 || n > 500 || n != Math.floor(n)) {
      out.object().key("error").string("config.max_history: must be an integer from 1 to 500").endObject();
      return false;
    }
    history = <i32>n;
  }
  const nc = config.get("notify_critical");
  if (!nc.isNull() && nc.kind != Kind.FALSE && nc.kind != Kind.TRUE) {
    out.object().key("error").string("config.notify_critical: must be true or false").endObject();
    return false;
  }
  maxHistory = history;
  notifyCritical = nc.bool(notifyCritical);
  return true;
}

export function rwq_initialize(ptr: usize, len: usize): u64 {
  return hook(ptr, len, initialize);
}
function initialize(config: Json, out: Writer): void {
  if (!readConfig(config, out)) return;
  loadHistory();
}

export function rwq_set_config(ptr: usize, len: usize): u64 {
  return hook(ptr, len, setConfig);
}
function setConfig(config: Json, out: Writer): void {
  if (readConfig(config, out)) trim();
}

export function rwq_get_config(ptr: usize, len: usize): u64 {
  return hook(ptr, len, getConfig);
}
function getConfig(arg: Json, out: Writer): void {
  out.object().key("max_history").int(maxHistory).key("notify_critical").bool(notifyCritical).endObject();
}

export function rwq_on_event(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onEvent);
}
function onEvent(events: Json, out: Writer): void {
  let changed = false;
  for (let i = 0; i < events.length; i++) {
    const e = events.at(i);
    if (e.get("type").str() != "alert.raised") continue;
    const d = e.get("data");
    const title = d.get("title").str();
    if (title.length == 0) continue;
    const chain = d.get("chain");
    const hops = new Array<string>();
    for (let j = 0; j < chain.length; j++) hops.push(chain.at(j).str());
    raise(
      d.get("from").str("?"), d.get("severity").str(), title, d.get("message").str(),
      d.get("key").str(), hops.join(" > "), e.get("ts").num(), d.get("repeat").bool(false),
    );
    changed = true;
  }
  out.object().key("changed").bool(changed).endObject();
}

export function rwq_on_input(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onInput);
}
function onInput(input: Json, out: Writer): void {
  const kind = input.get("kind").str();
  const list = ordered();
  const at = selected(list);
  let action = "";
  if (kind == "key") action = input.get("key").str();
  else if (kind == "button") {
    const id = input.get("id").str();
    action = id == "ack" ? "a" : id == "ack-all" ? "A" : id == "clear" ? "c" : "";
  }
  let changed = false;
  if (kind == "select" && input.get("id").str() == "alerts") {
    const i = <i32>input.get("index").int(-1);
    if (i >= 0 && i < list.length) {
      selectedIdent = list[i].ident;
      changed = true;
    }
  } else if (action == "a") {
    if (at >= 0) changed = acknowledge(list[at]);
  } else if (action == "A") {
    for (let i = 0; i < list.length; i++) changed = acknowledge(list[i]) || changed;
  } else if (action == "c") {
    changed = clearAcknowledged();
  } else if ((action == "down" || action == "j") && at >= 0 && at + 1 < list.length) {
    selectedIdent = list[at + 1].ident;
    changed = true;
  } else if ((action == "up" || action == "k") && at > 0) {
    selectedIdent = list[at - 1].ident;
    changed = true;
  }
  out.object().key("changed").bool(changed).endObject();
}

function clock(ms: f64): string {
  if (ms <= 0) return "-";
  const s = <i64>Math.floor(ms / 1000) % 86400;
  return (s / 3600).toString().padStart(2, "0") + ":" + ((s / 60) % 60).toString().padStart(2, "0") +
    ":" + (s % 60).toString().padStart(2, "0") + " UTC";
}

function tag(severity: string): string {
  return severity == "critical" ? "CRIT" : severity == "warning" ? "WARN" : "INFO";
}

function line(a: Alert): string {
  const text = (a.acked ? "ack  " : "") + tag(a.severity) + " ×" + a.count.toString() + "  " + a.title +
    "  (" + a.from + ", " + clock(a.last) + ")";
  return text.length > MAX_ITEM ? cut(text, MAX_ITEM - 1) + "…" : text;
}

function button(out: Writer, id: string, label: string, key: string, variant: string): void {
  out.object().key("type").string("button").key("id").string(id).key("label").string(label)
    .key("key").string(key).key("variant").string(variant).endObject();
}

function item(out: Writer, key: string, value: string): void {
  out.array().string(key).string(value).endArray();
}

export function rwq_render(ptr: usize, len: usize): u64 {
  return hook(ptr, len, render);
}
function render(size: Json, out: Writer): void {
  const list = ordered();
  const at = selected(list);
  let active = 0, critical = 0, warning = 0, acked = 0;
  for (let i = 0; i < list.length; i++) {
    const a = list[i];
    if (a.acked) acked++;
    else {
      active++;
      if (a.severity == "critical") critical++;
      else if (a.severity == "warning") warning++;
    }
  }
  out.array();
  out.object().key("type").string("rows").key("children").array();

  out.object().key("type").string("columns").key("children").array();
  out.uiBadge(active.toString() + " active", critical ? "critical" : warning ? "warning" : active ? "info" : "ok");
  out.uiBadge(critical.toString() + " critical", critical ? "critical" : "muted");
  out.uiBadge(warning.toString() + " warning", warning ? "warning" : "muted");
  out.uiBadge(acked.toString() + " acknowledged", "muted");
  out.endArray().endObject();

  if (list.length == 0) {
    out.object().key("type").string("text").key("text").string("No alerts.").key("style").string("dim").endObject();
  } else {
    out.object().key("type").string("list").key("id").string("alerts")
      .key("title").string("Alerts (active first)").key("items").array();
    for (let i = 0; i < list.length; i++) out.string(line(list[i]));
    out.endArray().key("selected").int(at).endObject();

    const a = list[at];
    out.object().key("type").string("kv").key("title").string(a.title).key("items").array();
    item(out, "state", a.acked ? "acknowledged at " + clock(a.ackedAt) : "active");
    item(out, "severity", a.severity);
    item(out, "from", a.chain.length ? a.from + " (via " + a.chain + ")" : a.from);
    item(out, "key", a.key.length ? a.key : "(none: the title)");
    item(out, "raised", a.count.toString() + (a.count == 1 ? " time" : " times"));
    item(out, "first seen", clock(a.first));
    item(out, "last seen", clock(a.last));
    out.endArray().endObject();
    if (a.message.length) out.object().key("type").string("text").key("text").string(a.message).endObject();

    out.object().key("type").string("columns").key("children").array();
    button(out, "ack", "Acknowledge", "a", "primary");
    button(out, "ack-all", "Acknowledge all", "A", "default");
    button(out, "clear", "Clear acknowledged", "c", "warning");
    out.endArray().key("gap").int(1).endObject();
  }

  const notes = new Array<string>();
  if (!storageReadable || !storageWritable) notes.push("history not saved (storage not granted)");
  else if (storageError.length) notes.push(storageError);
  if (notifyDenied && notifyCritical) notes.push("notifications not granted");
  notes.push("a: acknowledge · A: all · c: clear acknowledged · ↑↓: select");
  out.object().key("type").string("text").key("text").string(notes.join(" · ")).key("style").string("dim").endObject();

  out.endArray().endObject();
  out.endArray();
}

// call_dependency("alert-manager", <function>, args) from a plugin that declares it.
export function rwq_on_call(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onCall);
}
function onCall(call: Json, out: Writer): void {
  const fn = call.get("function").str();
  const args = call.get("args");
  if (fn == "raise") {
    const severity = args.get("severity").str();
    const title = args.get("title").str();
    if (severity != "info" && severity != "warning" && severity != "critical") {
      out.object().key("error").string("raise: severity must be info, warning or critical").endObject();
      return;
    }
    if (title.length == 0 || title.length > 200) {
      out.object().key("error").string("raise: title must be 1-200 characters").endObject();
      return;
    }
    const key = args.get("key").str();
    if (key.length > 128) {
      out.object().key("error").string("raise: key must be at most 128 characters").endObject();
      return;
    }
    const caller = call.get("caller").str();
    const a = raise(caller.length ? caller : "(unknown)", severity, title, args.get("message").str(), key, "", nowMs());
    out.object().key("count").int(a.count).key("state").string("active").endObject();
  } else if (fn == "counts") {
    let active = 0, critical = 0;
    for (let i = 0; i < alerts.length; i++) {
      if (alerts[i].acked) continue;
      active++;
      if (alerts[i].severity == "critical") critical++;
    }
    out.object().key("active").int(active).key("critical").int(critical)
      .key("acknowledged").int(alerts.length - active).endObject();
  } else if (fn == "active") {
    const list = ordered();
    out.array();
    for (let i = 0; i < list.length && !list[i].acked; i++) {
      const a = list[i];
      out.object().key("from").string(a.from).key("key").string(a.key).key("severity").string(a.severity)
        .key("title").string(a.title).key("count").int(a.count)
        .key("first_seen").number(a.first).key("last_seen").number(a.last).endObject();
    }
    out.endArray();
  } else {
    out.object().key("error").string("unknown function " + fn + " (one of: raise, active, counts)").endObject();
  }
}

export function rwq_health_check(ptr: usize, len: usize): u64 {
  return hook(ptr, len, healthCheck);
}
function healthCheck(arg: Json, out: Writer): void {
  let active = 0;
  for (let i = 0; i < alerts.length; i++) if (!alerts[i].acked) active++;
  const persisted = storageReadable && storageWritable && storageError.length == 0;
  out.object().key("status").string(persisted ? "ok" : "degraded");
  out.key("active").int(active).key("acknowledged").int(alerts.length - active);
  out.key("persisted").bool(persisted);
  if (!persisted) out.key("reason").string(storageError.length ? storageError : "storage not granted");
  out.endObject();
}

// A hot reload: the old version saved every change, so the new one reads the history again
// (it may have changed since this instance's initialize) and keeps the selection.
export function rwq_export_state(ptr: usize, len: usize): u64 {
  return hook(ptr, len, exportState);
}
function exportState(arg: Json, out: Writer): void {
  out.object().key("selected").string(selectedIdent).endObject();
}

export function rwq_import_state(ptr: usize, len: usize): u64 {
  return hook(ptr, len, importState);
}
function importState(arg: Json, out: Writer): void {
  loadHistory();
  selectedIdent = arg.get("state").get("selected").str(selectedIdent);
}
