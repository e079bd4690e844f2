// as-json-reader: renders what the SDK's JSON reader read (config, the last events, lookups
// that miss, malformed text), for tests/plugins/test_assemblyscript.py.
import { hook, parseJson, Json, Kind, Writer } from "~lib/rwq";

let config = "";
let events = "";
let kept = new Json(); // a copy of initialize's argument: it reads the same at render
let stale = new Json(); // initialize's argument itself: it reads as null once the hook returned

/** `v` written back through the reader's every accessor. */
function echo(v: Json, out: Writer): void {
  if (v.kind == Kind.OBJECT) {
    out.object();
    const keys = v.keys;
    for (let i = 0; i < keys.length; i++) {
      const member = v.get(keys[i]);
      assert(member.toString() == v.items[i].toString());
      out.key(keys[i]);
      echo(member, out);
    }
    assert(keys.length == v.length);
    out.endObject();
  } else if (v.kind == Kind.ARRAY) {
    out.array();
    for (let i = 0; i < v.length; i++) echo(v.at(i), out);
    out.endArray();
  } else if (v.kind == Kind.STRING) out.string(v.str());
  else if (v.kind == Kind.NUMBER) out.number(v.num());
  else if (v.kind == Kind.NULL) out.null();
  else out.bool(v.bool());
}

function echoed(v: Json): string {
  const out = new Writer();
  echo(v, out);
  return out.toString();
}

export function rwq_initialize(ptr: usize, len: usize): u64 {
  return hook(ptr, len, initialize);
}
function initialize(arg: Json, out: Writer): void {
  kept = arg.copy();
  stale = arg;
  config = echoed(arg);
}

export function rwq_on_event(ptr: usize, len: usize): u64 {
  return hook(ptr, len, onEvent);
}
function onEvent(arg: Json, out: Writer): void {
  events = echoed(arg);
  out.object().key("changed").bool(true).endObject();
}

const MALFORMED = [
  "", " ", "{", "]", '{"a":1,}', "[1,]", "[1 2]", "01", "1.", "-", "1e", "+1", ".5", "tru",
  "nul", '"abc', '"\\x"', '"\\u12G4"', '{"a" 1}', "{1:2}", "{}}", "[]]", "NaN", "'a'",
];
const WELL_FORMED = [" [ ] ", "{}", "0", "-0.5e+3", '"\\u00e9\\ud83d\\ude00"', "true", " null "];

export function rwq_render(ptr: usize, len: usize): u64 {
  return hook(ptr, len, render);
}
function render(size: Json, out: Writer): void {
  let malformed = "";
  for (let i = 0; i < MALFORMED.length; i++) {
    const v = parseJson(MALFORMED[i]);
    malformed += v.isNull() && v.toString() == "null" ? "." : "!";
  }
  const wellFormed = new Array<string>();
  for (let i = 0; i < WELL_FORMED.length; i++) wellFormed.push(echoed(parseJson(WELL_FORMED[i])));
  const misses = [
    kept.get("missing").isNull(), kept.get("label").at(0).isNull(), kept.get("nested").at(0).isNull(),
    kept.get("big").get("x").isNull(), kept.get("clé \"q\"").at(-1).isNull(),
    kept.get("clé \"q\"").at(11).isNull(), kept.get("label").length == 0,
    kept.get("label").num(7) == 7, kept.get("big").str("s") == "s", kept.get("big").int() == 1733556000123,
    stale.isNull(), stale.get("label").isNull(), stale.length == 0, stale.toString() == "null",
  ];
  let missed = "";
  for (let i = 0; i < misses.length; i++) missed += misses[i] ? "." : "!";
  out.array();
  out.uiText(config).uiText(events).uiText(kept.get("label").str());
  out.uiText(malformed).uiText(wellFormed.join(" ")).uiText(missed);
  out.endArray();
}
