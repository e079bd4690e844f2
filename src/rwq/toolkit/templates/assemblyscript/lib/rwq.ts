// rwq.ts: the rwq plugin ABI v1 for AssemblyScript (see docs/abi.md).
//
// build.sh compiles it as a library (`--lib`): a plugin imports what it uses from "~lib/rwq"
// and exports its hooks, each a one-liner through `hook`:
//
//     import { hook, Json, Writer } from "~lib/rwq";
//
//     export function rwq_render(ptr: usize, len: usize): u64 {
//       return hook(ptr, len, render);
//     }
//     function render(arg: Json, out: Writer): void {
//       out.array();
//       out.uiText("hello");
//       out.endArray();
//     }
//
// The exports every module needs (rwq_abi_version, rwq_alloc, rwq_free) come from
// assembly/exports.ts, which build.sh adds as a second entry file.
//
// What is here:
//   - memory: rwq_alloc hands out unmanaged blocks (heap.alloc) the GC never moves or frees;
//     a hook's argument is decoded (String.UTF8.decodeUnsafe) and freed before the hook runs,
//     and its result is kept in a global (a GC root) until the next hook begins.
//   - Json: a parsed JSON value (parseJson); get/at/length/str/num/int/bool, never null: a
//     missing member or a wrong kind reads as JSON null.
//   - Writer: a JSON text builder with commas placed for you, and UI element helpers
//     (uiText, uiBadge, uiKv*, uiTable*) like the C SDK's.
//   - host: one function per host function of docs/host-api.md, each taking the JSON text
//     of its argument object and returning the parsed result (`{"error": ...}` on failure,
//     see isError). Only the functions a plugin calls become imports of its module.
//   - rwqAbort: the `abort` AssemblyScript calls on a failed assertion or bounds check;
//     build.sh installs it with `--use abort=rwqAbort`, since the host links no `env.abort`.
//     It writes the message to stderr (the plugin's log) and traps.

// ---- memory and hooks ------------------------------------------------------------------------

let lastResult: ArrayBuffer | null = null;

/** The JSON text at (ptr, len) the host wrote into a block from rwq_alloc; frees the block. */
export function takeText(ptr: usize, len: usize): string {
  if (len == 0) return "null";
  const text = String.UTF8.decodeUnsafe(ptr, len);
  heap.free(ptr);
  return text;
}

/** Packs a JSON text as the host expects a result: (ptr << 32) | len of its UTF-8 bytes,
 * kept alive until the next hook call. Empty text is null (0). */
export function packResult(json: string): u64 {
  lastResult = null;
  if (json.length == 0) return 0;
  const bytes = String.UTF8.encode(json);
  lastResult = bytes;
  return ((<u64>changetype<usize>(bytes)) << 32) | <u64>bytes.byteLength;
}

/** Runs one hook: parses its argument, lets `fn` write the result, packs it. */
export function hook(ptr: usize, len: usize, fn: (arg: Json, out: Writer) => void): u64 {
  lastResult = null; // the host has copied the previous result: it is calling again
  const arg = parseJson(takeText(ptr, len));
  const out = new Writer();
  fn(arg, out);
  return packResult(out.toString());
}

// ---- reading JSON ----------------------------------------------------------------------------

export const enum Kind {
  NULL = 0,
  FALSE = 1,
  TRUE = 2,
  NUMBER = 3,
  STRING = 4,
  ARRAY = 5,
  OBJECT = 6,
}

export class Json {
  kind: Kind = Kind.NULL;
  text: string = "";
  number: f64 = 0;
  items: Array<Json> = [];
  keys: Array<string> = [];

  isNull(): bool {
    return this.kind == Kind.NULL;
  }

  /** The member `key` of an object; null when there is none. */
  get(key: string): Json {
    if (this.kind == Kind.OBJECT) {
      for (let i = 0; i < this.keys.length; i++) {
        if (this.keys[i] == key) return this.items[i];
      }
    }
    return new Json();
  }

  /** Item `index` of an array; null when out of range. */
  at(index: i32): Json {
    if (this.kind == Kind.ARRAY && index >= 0 && index < this.items.length) {
      return this.items[index];
    }
    return new Json();
  }

  /** Items of an array or members of an object. */
  get length(): i32 {
    return this.kind == Kind.ARRAY || this.kind == Kind.OBJECT ? this.items.length : 0;
  }

  str(fallback: string = ""): string {
    return this.kind == Kind.STRING ? this.text : fallback;
  }

  num(fallback: f64 = 0): f64 {
    return this.kind == Kind.NUMBER ? this.number : fallback;
  }

  int(fallback: i64 = 0): i64 {
    return this.kind == Kind.NUMBER && isFinite(this.number) ? <i64>this.number : fallback;
  }

  bool(fallback: bool = false): bool {
    return this.kind == Kind.TRUE ? true : this.kind == Kind.FALSE ? false : fallback;
  }
}

/** Parses JSON text; malformed text reads as null. */
export function parseJson(text: string): Json {
  const p = new Parser(text);
  const value = p.value();
  p.ws();
  return p.ok && p.i == text.length ? value : new Json();
}

class Parser {
  i: i32 = 0;
  ok: bool = true;
  constructor(public s: string) {}

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.i++;
    }
  }

  fail(): Json {
    this.ok = false;
    this.i = this.s.length;
    return new Json();
  }

  word(w: string, kind: Kind): Json {
    if (this.s.substr(this.i, w.length) != w) return this.fail();
    this.i += w.length;
    const v = new Json();
    v.kind = kind;
    return v;
  }

  value(): Json {
    this.ws();
    if (this.i >= this.s.length) return this.fail();
    const c = this.s.charCodeAt(this.i);
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) {
      const v = new Json();
      v.kind = Kind.STRING;
      v.text = this.string();
      return v;
    }
    if (c == 0x74) return this.word("true", Kind.TRUE);
    if (c == 0x66) return this.word("false", Kind.FALSE);
    if (c == 0x6e) return this.word("null", Kind.NULL);
    return this.num();
  }

  num(): Json {
    const start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      // digits, sign, '.', 'e', 'E'
      if (!((c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e || c == 0x65 || c == 0x45)) break;
      this.i++;
    }
    if (this.i == start) return this.fail();
    const v = new Json();
    v.kind = Kind.NUMBER;
    v.number = parseFloat(this.s.substring(start, this.i));
    if (isNaN(v.number)) return this.fail();
    return v;
  }

  hex4(): i32 {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      if (this.i >= this.s.length) return -1;
      const c = this.s.charCodeAt(this.i++);
      v <<= 4;
      if (c >= 0x30 && c <= 0x39) v |= c - 0x30;
      else if (c >= 0x61 && c <= 0x66) v |= c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) v |= c - 0x41 + 10;
      else return -1;
    }
    return v;
  }

  string(): string {
    this.i++; // the opening quote
    const parts = new Array<string>();
    let start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 0x22) {
        parts.push(this.s.substring(start, this.i));
        this.i++;
        return parts.join("");
      }
      if (c != 0x5c) {
        this.i++;
        continue;
      }
      parts.push(this.s.substring(start, this.i));
      this.i++;
      if (this.i >= this.s.length) break;
      const e = this.s.charCodeAt(this.i++);
      if (e == 0x6e) parts.push("\n");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x75) {
        const h = this.hex4();
        if (h < 0) break;
        parts.push(String.fromCharCode(h)); // surrogate pairs arrive as two escapes
      } else parts.push(String.fromCharCode(e)); // \" \\ \/
      start = this.i;
    }
    this.fail();
    return "";
  }

  array(): Json {
    this.i++;
    const v = new Json();
    v.kind = Kind.ARRAY;
    this.ws();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x5d) {
      this.i++;
      return v;
    }
    while (this.ok) {
      v.items.push(this.value());
      this.ws();
      if (this.i >= this.s.length) return this.fail();
      const c = this.s.charCodeAt(this.i++);
      if (c == 0x5d) return v;
      if (c != 0x2c) return this.fail();
    }
    return v;
  }

  object(): Json {
    this.i++;
    const v = new Json();
    v.kind = Kind.OBJECT;
    this.ws();
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == 0x7d) {
      this.i++;
      return v;
    }
    while (this.ok) {
      this.ws();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i) != 0x22) return this.fail();
      v.keys.push(this.string());
      this.ws();
      if (this.i >= this.s.length || this.s.charCodeAt(this.i++) != 0x3a) return this.fail();
      v.items.push(this.value());
      this.ws();
      if (this.i >= this.s.length) return this.fail();
      const c = this.s.charCodeAt(this.i++);
      if (c == 0x7d) return v;
      if (c != 0x2c) return this.fail();
    }
    return v;
  }
}

// ---- writing JSON ----------------------------------------------------------------------------

/** The JSON text of a string, quoted and escaped. */
export function quote(s: string): string {
  const parts = new Array<string>();
  parts.push('"');
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    parts.push(s.substring(start, i));
    start = i + 1;
    if (c == 0x22) parts.push('\\"');
    else if (c == 0x5c) parts.push("\\\\");
    else if (c == 0x0a) parts.push("\\n");
    else if (c == 0x0d) parts.push("\\r");
    else if (c == 0x09) parts.push("\\t");
    else parts.push("\\u00" + (c < 0x10 ? "0" : "") + c.toString(16));
  }
  parts.push(s.substring(start));
  parts.push('"');
  return parts.join("");
}

export class Writer {
  private parts: Array<string> = [];
  private fresh: Array<bool> = []; // per open container: no item written yet
  private afterKey: bool = false;

  private item(): void {
    if (this.afterKey) {
      this.afterKey = false;
      return;
    }
    const depth = this.fresh.length;
    if (depth == 0) return;
    if (this.fresh[depth - 1]) this.fresh[depth - 1] = false;
    else this.parts.push(",");
  }

  private open(c: string): Writer {
    this.item();
    this.parts.push(c);
    this.fresh.push(true);
    return this;
  }

  private close(c: string): Writer {
    if (this.fresh.length) this.fresh.pop();
    this.parts.push(c);
    return this;
  }

  object(): Writer {
    return this.open("{");
  }
  endObject(): Writer {
    return this.close("}");
  }
  array(): Writer {
    return this.open("[");
  }
  endArray(): Writer {
    return this.close("]");
  }

  key(k: string): Writer {
    this.item();
    this.parts.push(quote(k));
    this.parts.push(":");
    this.afterKey = true;
    return this;
  }

  string(s: string): Writer {
    this.item();
    this.parts.push(quote(s));
    return this;
  }

  int(v: i64): Writer {
    this.item();
    this.parts.push(v.toString());
    return this;
  }

  /** A number; NaN and the infinities (not JSON) are written as null. */
  number(v: f64): Writer {
    if (!isFinite(v)) return this.null();
    if (v == Math.trunc(v) && Math.abs(v) < 9e15) return this.int(<i64>v);
    this.item();
    this.parts.push(v.toString());
    return this;
  }

  bool(v: bool): Writer {
    this.item();
    this.parts.push(v ? "true" : "false");
    return this;
  }

  null(): Writer {
    this.item();
    this.parts.push("null");
    return this;
  }

  /** JSON text written as is (it must be one valid JSON value). */
  raw(json: string): Writer {
    this.item();
    this.parts.push(json);
    return this;
  }

  toString(): string {
    return this.parts.join("");
  }

  // ---- UI elements (docs/ui-elements.md) ----

  private element(type: string): Writer {
    return this.object().key("type").string(type);
  }

  uiText(text: string): Writer {
    return this.element("text").key("text").string(text).endObject();
  }

  /** A badge; level: ok, info, warning, error, critical or muted. */
  uiBadge(text: string, level: string): Writer {
    return this.element("badge").key("text").string(text).key("level").string(level).endObject();
  }

  uiKvBegin(): Writer {
    return this.element("kv").key("items").array();
  }
  uiKvItem(key: string, value: string): Writer {
    return this.array().string(key).string(value).endArray();
  }
  uiKvEnd(): Writer {
    return this.endArray().endObject();
  }

  uiTableBegin(columns: Array<string>): Writer {
    this.element("table").key("columns").array();
    for (let i = 0; i < columns.length; i++) this.string(columns[i]);
    return this.endArray().key("rows").array();
  }
  uiRowBegin(): Writer {
    return this.array();
  }
  uiRowEnd(): Writer {
    return this.endArray();
  }
  uiTableEnd(): Writer {
    return this.endArray().endObject();
  }

  private finite(k: string, v: f64): Writer {
    if (isFinite(v)) this.key(k).number(v);
    return this;
  }

  private label(label: string): Writer {
    if (label.length) this.key("label").string(label);
    return this;
  }

  /** A gauge: value against max (100 when max <= 0); warn/crit thresholds, NaN for none. */
  uiGauge(label: string, value: f64, max: f64 = 0, warn: f64 = NaN, crit: f64 = NaN): Writer {
    this.element("gauge").key("value").number(value);
    if (max > 0) this.finite("max", max);
    return this.finite("warn", warn).finite("crit", crit).label(label).endObject();
  }

  /** A progress bar: value of total done (100 when total <= 0). */
  uiProgress(label: string, value: f64, total: f64 = 0): Writer {
    this.element("progress").key("value").number(value < 0 ? 0 : value);
    if (total > 0) this.finite("total", total);
    return this.label(label).endObject();
  }

  /** A sparkline of values, oldest first; min/max NaN to scale to the values. */
  uiSparkline(label: string, values: Array<f64>, min: f64 = NaN, max: f64 = NaN): Writer {
    this.element("sparkline").key("values").array();
    for (let i = 0; i < values.length; i++) this.number(values[i]);
    return this.endArray().finite("min", min).finite("max", max).label(label).endObject();
  }

  /** A list whose items are chosen with `select` events; selected < 0: none marked. */
  uiList(id: string, items: Array<string>, selected: i32 = -1, title: string = ""): Writer {
    this.element("list").key("id").string(id);
    if (title.length) this.key("title").string(title);
    this.key("items").array();
    for (let i = 0; i < items.length; i++) this.string(items[i]);
    this.endArray();
    if (selected >= 0) this.key("selected").int(selected);
    return this.endObject();
  }

  /** A button; key: one printable character ("" for none); variant: default, primary,
   * warning or error ("" for default). */
  uiButton(id: string, label: string, key: string = "", variant: string = ""): Writer {
    this.element("button").key("id").string(id).key("label").string(label);
    if (key.length) this.key("key").string(key);
    if (variant.length) this.key("variant").string(variant);
    return this.endObject();
  }

  /** Rows: uiRowsBegin, the children (any ui* calls), uiRowsEnd. */
  uiRowsBegin(gap: i32 = 0): Writer {
    this.element("rows");
    if (gap > 0) this.key("gap").int(gap);
    return this.key("children").array();
  }
  uiRowsEnd(): Writer {
    return this.endArray().endObject();
  }

  /** Columns: uiColumnsBegin, the children, uiColumnsEnd with one weight per child (or
   * none for equal widths). */
  uiColumnsBegin(gap: i32 = 0): Writer {
    this.element("columns");
    if (gap > 0) this.key("gap").int(gap);
    return this.key("children").array();
  }
  uiColumnsEnd(weights: Array<i32> = []): Writer {
    this.endArray();
    if (weights.length) {
      this.key("widths").array();
      for (let i = 0; i < weights.length; i++) this.int(weights[i]);
      this.endArray();
    }
    return this.endObject();
  }
}

/** Whether a host function's result is `{"error": ...}`. */
export function isError(result: Json): bool {
  return !result.get("error").isNull();
}

/** The error code of a host function's result, "" when it succeeded. */
export function errorCode(result: Json): string {
  return result.get("error").get("code").str();
}

// ---- host functions (docs/host-api.md) ------------------------------------------------------

@external("rwq", "subscribe") declare function _subscribe(ptr: usize, len: usize): u64;
@external("rwq", "unsubscribe") declare function _unsubscribe(ptr: usize, len: usize): u64;
@external("rwq", "enqueue_job") declare function _enqueue_job(ptr: usize, len: usize): u64;
@external("rwq", "peek_job") declare function _peek_job(ptr: usize, len: usize): u64;
@external("rwq", "list_dead") declare function _list_dead(ptr: usize, len: usize): u64;
@external("rwq", "requeue_job") declare function _requeue_job(ptr: usize, len: usize): u64;
@external("rwq", "requeue_jobs") declare function _requeue_jobs(ptr: usize, len: usize): u64;
@external("rwq", "purge_queue") declare function _purge_queue(ptr: usize, len: usize): u64;
@external("rwq", "delete_dead") declare function _delete_dead(ptr: usize, len: usize): u64;
@external("rwq", "pause_queue") declare function _pause_queue(ptr: usize, len: usize): u64;
@external("rwq", "resume_queue") declare function _resume_queue(ptr: usize, len: usize): u64;
@external("rwq", "get_queue_stats") declare function _get_queue_stats(ptr: usize, len: usize): u64;
@external("rwq", "get_system_stats") declare function _get_system_stats(ptr: usize, len: usize): u64;
@external("rwq", "log") declare function _log(ptr: usize, len: usize): u64;
@external("rwq", "show_notification") declare function _show_notification(ptr: usize, len: usize): u64;
@external("rwq", "set_timer") declare function _set_timer(ptr: usize, len: usize): u64;
@external("rwq", "clear_timer") declare function _clear_timer(ptr: usize, len: usize): u64;
@external("rwq", "storage_get") declare function _storage_get(ptr: usize, len: usize): u64;
@external("rwq", "storage_set") declare function _storage_set(ptr: usize, len: usize): u64;
@external("rwq", "storage_delete") declare function _storage_delete(ptr: usize, len: usize): u64;
@external("rwq", "storage_list") declare function _storage_list(ptr: usize, len: usize): u64;
@external("rwq", "storage_usage") declare function _storage_usage(ptr: usize, len: usize): u64;
@external("rwq", "emit") declare function _emit(ptr: usize, len: usize): u64;
@external("rwq", "send_alert") declare function _send_alert(ptr: usize, len: usize): u64;
@external("rwq", "call_dependency") declare function _call_dependency(ptr: usize, len: usize): u64;

/** The host function's packed result, parsed (its block freed); 0 is null. */
function result(packed: u64): Json {
  if (packed == 0) return new Json();
  return parseJson(takeText(<usize>(packed >>> 32), <usize>(packed & 0xffffffff)));
}

// The argument's UTF-8 bytes live in `args` (a local: reachable) for the whole call, and the
// host's rwq_alloc calls allocate unmanaged blocks, which never run the GC.
export namespace host {
  export function subscribe(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_subscribe(changetype<usize>(a), a.byteLength));
  }
  export function unsubscribe(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_unsubscribe(changetype<usize>(a), a.byteLength));
  }
  export function enqueue_job(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_enqueue_job(changetype<usize>(a), a.byteLength));
  }
  export function peek_job(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_peek_job(changetype<usize>(a), a.byteLength));
  }
  export function list_dead(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_list_dead(changetype<usize>(a), a.byteLength));
  }
  export function requeue_job(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_requeue_job(changetype<usize>(a), a.byteLength));
  }
  export function requeue_jobs(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_requeue_jobs(changetype<usize>(a), a.byteLength));
  }
  export function purge_queue(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_purge_queue(changetype<usize>(a), a.byteLength));
  }
  export function delete_dead(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_delete_dead(changetype<usize>(a), a.byteLength));
  }
  export function pause_queue(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_pause_queue(changetype<usize>(a), a.byteLength));
  }
  export function resume_queue(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_resume_queue(changetype<usize>(a), a.byteLength));
  }
  export function get_queue_stats(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_get_queue_stats(changetype<usize>(a), a.byteLength));
  }
  export function get_system_stats(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_get_system_stats(changetype<usize>(a), a.byteLength));
  }
  export function log(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_log(changetype<usize>(a), a.byteLength));
  }
  export function show_notification(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_show_notification(changetype<usize>(a), a.byteLength));
  }
  export function set_timer(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_set_timer(changetype<usize>(a), a.byteLength));
  }
  export function clear_timer(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_clear_timer(changetype<usize>(a), a.byteLength));
  }
  export function storage_get(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_storage_get(changetype<usize>(a), a.byteLength));
  }
  export function storage_set(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_storage_set(changetype<usize>(a), a.byteLength));
  }
  export function storage_delete(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_storage_delete(changetype<usize>(a), a.byteLength));
  }
  export function storage_list(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_storage_list(changetype<usize>(a), a.byteLength));
  }
  export function storage_usage(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_storage_usage(changetype<usize>(a), a.byteLength));
  }
  export function emit(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_emit(changetype<usize>(a), a.byteLength));
  }
  export function send_alert(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_send_alert(changetype<usize>(a), a.byteLength));
  }
  export function call_dependency(json: string): Json {
    const a = String.UTF8.encode(json);
    return result(_call_dependency(changetype<usize>(a), a.byteLength));
  }
}

/** rwq.log with a level ("debug", "info", "warning", "error") and a message. */
export function log(level: string, message: string): void {
  host.log(new Writer().object().key("level").string(level).key("message").string(message).endObject().toString());
}

// ---- abort -----------------------------------------------------------------------------------

@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: u32, written: usize): u16;

/** AssemblyScript's abort (a failed assertion, an index out of range, out of memory): the
 * message goes to stderr, which the host logs, then a trap ends the call. */
let aborting = false;

export function rwqAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (aborting) unreachable(); // out of memory while reporting: just trap
  aborting = true;
  const text =
    "abort: " + (message !== null ? message : "") + " at " + (fileName !== null ? fileName : "?") +
    ":" + line.toString() + ":" + column.toString() + "\n";
  const bytes = String.UTF8.encode(text);
  const iov = memory.data(16);
  store<u32>(iov, changetype<usize>(bytes));
  store<u32>(iov, <u32>bytes.byteLength, 4);
  fd_write(2, iov, 1, iov + 8);
  unreachable();
}
