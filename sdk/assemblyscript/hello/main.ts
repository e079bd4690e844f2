// hello: counts the events it receives by type and renders a line of text and a table.
import { hook, log, Json, Writer } from "~lib/rwq";

const MAX_TYPES = 32;

const types = new Array<string>();
const counts = new Array<i64>();
let total: i64 = 0;
let greeting = "hello";

export function rwq_initialize(ptr: usize, len: usize): u64 {
  return hook(ptr, len, initialize);
}
function initialize(config: Json, out: Writer): void {
  // config is the manifest's config merged with the user's
  greeting = config.get("greeting").str(greeting);
  log("info", "hello plugin started");
}

function count(name: string): void {
  let i = types.indexOf(name);
  if (i < 0) {
    if (types.length == MAX_TYPES) name = "(other)";
    i = types.indexOf(name);
    if (i < 0) {
      i = types.length;
      types.push(name);
      counts.push(0);
    }
  }
  counts[i]++;
}

export function rwq_on_event(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onEvent);
}
function onEvent(events: Json, out: Writer): void {
  // events is a batch: [{"id", "type", "ts", "source", "queue", "data"}, ...]
  for (let i = 0; i < events.length; i++) {
    count(events.at(i).get("type").str("(unknown)"));
    total++;
  }
  out.object().key("changed").bool(events.length > 0).endObject();
}

export function rwq_render(ptr: usize, len: usize): u64 {
  return hook(ptr, len, render);
}
function render(size: Json, out: Writer): void {
  const line = `${greeting}: ${total} events of ${types.length} types`;
  out.array();
  out.uiText(line);
  out.uiTableBegin(["type", "count"]);
  for (let i = 0; i < types.length; i++) {
    out.uiRowBegin().string(types[i]).int(counts[i]).uiRowEnd();
  }
  out.uiTableEnd();
  out.endArray();
}

export function rwq_health_check(ptr: usize, len: usize): u64 {
  return hook(ptr, len, healthCheck);
}
function healthCheck(arg: Json, out: Writer): void {
  out.object().key("status").string("ok").key("events").int(total).endObject();
}
