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
//   - memory: rwq_alloc places what the host writes (a hook's argument, a host function's
//     result) in an arena of its own pages (see arenaAlloc). A hook reads its argument there,
//     in place; a host function's result is copied into a buffer the GC owns. A hook's result
//     is kept in a global (a GC root) until the next hook begins.
//   - Json: a view of a JSON value in those UTF-8 bytes (checked once, then nothing is parsed
//     until read); get/at/length/str/num/int/bool, never null: a missing member or a wrong
//     kind reads as JSON null. A hook's argument reads as null once the hook returns: keep
//     strings and numbers, or copy() a value.
//   - Writer: a JSON text builder with commas placed for you, and UI element helpers
//     (uiText, uiBadge, uiKv*, uiTable*) like the C SDK's.
//   - host: one function per host function of docs/host-api.md, each taking the JSON text
//     of its argument object and returning the parsed result (`{"error": ...}` on failure,
//     see isError). Only the functions a plugin calls become imports of its module.
//   - rwqAbort: the `abort` AssemblyScript calls on a failed assertion or bounds check;
//     build.sh installs it with `--use abort=rwqAbort`, since the host links no `env.abort`.
//     It writes the message to stderr (the plugin's log) and traps.

// ---- memory and hooks ------------------------------------------------------------------------

// rwq_alloc must answer 0 when memory cannot hold `size` (docs/abi.md): the host then reports
// a memory fault of that argument and the instance stays usable. The GC's allocator (TLSF)
// cannot say that: when its free blocks are too small it grows memory itself and traps if
// memory.grow fails, and the module cannot ask how far memory may grow (max_memory is a store
// limit) without growing it. So the host's bytes go to an arena of pages this SDK grows with
// memory.grow, which returns -1 at the cap: rwq_alloc answers 0 then. TLSF tolerates pages
// grown by hand (it only adds the pages it grows itself). A hook reads its argument in place
// and the whole arena is free again when the hook returns; a host function's result is copied
// out at once. So the arena holds one argument (and one result) at a time and is reused: it
// grows in place while it is the top of memory; when the GC's heap has grown past it, a new
// one (at least twice the size, so what is left behind stays smaller than the arena) takes
// its place.
let arenaStart: usize = 0;
let arenaTop: usize = 0; // the next free byte
let arenaEnd: usize = 0;

/** A block of `size` bytes the host may write; 0 when memory cannot grow to hold it. */
export function arenaAlloc(size: usize): usize {
  const need = (size + 7) & ~7;
  if (size == 0 || need < size) return 0;
  if (arenaEnd - arenaTop < need) {
    // TLSF takes every page there is when it starts (at its first allocation): start it
    // before the first arena page exists.
    if (arenaEnd == 0) heap.free(heap.alloc(1));
    const top = <usize>memory.size() << 16;
    if (arenaEnd != 0 && arenaEnd == top) {
      const pages = <i32>((need - (arenaEnd - arenaTop) + 0xffff) >>> 16);
      if (memory.grow(pages) < 0) return 0;
    } else {
      const pages = <i32>((need + 0xffff) >>> 16);
      const doubled = <i32>((arenaEnd - arenaStart) >>> 15);
      if ((doubled <= pages || memory.grow(doubled) < 0) && memory.grow(pages) < 0) return 0;
      arenaStart = top;
      arenaTop = top;
    }
    arenaEnd = <usize>memory.size() << 16;
  }
  const ptr = arenaTop;
  arenaTop += need;
  return ptr;
}

/** Gives back a block from arenaAlloc: the arena reuses it once the blocks after it are
 * back (and all of it at the end of each hook). */
export function arenaFree(ptr: usize, size: usize): void {
  if (ptr != 0 && ptr + ((size + 7) & ~7) == arenaTop) arenaTop = ptr;
}

let lastResult: ArrayBuffer | null = null;

/** The JSON at (ptr, len) the host wrote into a block from rwq_alloc, copied into a buffer
 * the GC owns (the block given back); (0, 0) is null. */
export function takeJson(ptr: usize, len: usize): Json {
  if (len == 0) return new Json();
  const bytes = new ArrayBuffer(<i32>len);
  memory.copy(changetype<usize>(bytes), ptr, len);
  arenaFree(ptr, len);
  return parseBytes(bytes);
}

/** The JSON text at (ptr, len) the host wrote into a block from rwq_alloc; gives the block back. */
export function takeText(ptr: usize, len: usize): string {
  if (len == 0) return "null";
  const text = String.UTF8.decodeUnsafe(ptr, len);
  arenaFree(ptr, len);
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

/** Runs one hook: lets `fn` read its argument, in place in the arena (no copy), and write the
 * result; then gives the argument's block back and packs the result. The argument's views
 * read as null once the hook returns: keep what you need (str(), num(), or copy()). */
export function hook(ptr: usize, len: usize, fn: (arg: Json, out: Writer) => void): u64 {
  lastResult = null; // the host has copied the previous result: it is calling again
  let arg = new Json();
  let text: Text | null = null;
  if (len != 0) {
    text = new Text(ptr, null);
    arg = parseText(text, <i32>len);
  }
  const out = new Writer();
  fn(arg, out);
  if (text !== null) text.base = 0;
  arenaTop = arenaStart; // nothing is left in the arena now (not even a block a trap left)
  return packResult(out.toString());
}

// ---- reading JSON ----------------------------------------------------------------------------
//
// A Json is a view (bytes, start, end) of one value in the UTF-8 text it came from: parseJson
// checks the whole text once, without allocating, and from then on a value is read where it
// lies: get(key) scans the object's members, an array's item offsets are noted on the first
// at() or length, a string is decoded when str() reads it. A hook's argument is read in the
// arena, so its views read as null once the hook returns (copy() makes a value that lasts);
// parseJson's text and host functions' results are buffers the GC keeps while a view lives.

export const enum Kind {
  NULL = 0,
  FALSE = 1,
  TRUE = 2,
  NUMBER = 3,
  STRING = 4,
  ARRAY = 5,
  OBJECT = 6,
}

const MAX_DEPTH = 512; // deeper text reads as null (the check recurses)

// @ts-ignore: decorator
@inline function byteAt(base: usize, p: i32): u32 {
  return <u32>load<u8>(base + <usize>p);
}

function skipSpace(base: usize, p: i32, end: i32): i32 {
  while (p < end) {
    const c = byteAt(base, p);
    if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
    p++;
  }
  return p;
}

function isDigit(c: u32): bool {
  return c - 0x30 < 10;
}

function isHex(c: u32): bool {
  return c - 0x30 < 10 || (c | 0x20) - 0x61 < 6;
}

/** The end of the string at p (its opening quote), or -1 when it is malformed. */
function checkString(base: usize, p: i32, end: i32): i32 {
  p++;
  while (p < end) {
    const c = byteAt(base, p++);
    if (c == 0x22) return p;
    if (c != 0x5c) continue;
    if (p >= end) return -1;
    const e = byteAt(base, p++);
    if (e == 0x75) {
      if (p + 4 > end) return -1;
      for (let k = 0; k < 4; k++) if (!isHex(byteAt(base, p++))) return -1;
    } else if (e != 0x22 && e != 0x5c && e != 0x2f && e != 0x62 && e != 0x66 && e != 0x6e && e != 0x72 && e != 0x74) {
      return -1;
    }
  }
  return -1;
}

function checkDigits(base: usize, p: i32, end: i32): i32 {
  if (p >= end || !isDigit(byteAt(base, p))) return -1;
  while (p < end && isDigit(byteAt(base, p))) p++;
  return p;
}

/** The end of the number at p, or -1: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
function checkNumber(base: usize, p: i32, end: i32): i32 {
  if (p < end && byteAt(base, p) == 0x2d) p++;
  if (p < end && byteAt(base, p) == 0x30) p++;
  else p = checkDigits(base, p, end);
  if (p < 0) return -1;
  if (p < end && byteAt(base, p) == 0x2e) p = checkDigits(base, p + 1, end);
  if (p < 0) return -1;
  if (p < end && (byteAt(base, p) | 0x20) == 0x65) {
    p++;
    if (p < end && (byteAt(base, p) == 0x2b || byteAt(base, p) == 0x2d)) p++;
    p = checkDigits(base, p, end);
  }
  return p;
}

function checkWord(base: usize, p: i32, end: i32, word: string): i32 {
  if (p + word.length > end) return -1;
  for (let k = 0; k < word.length; k++) {
    if (byteAt(base, p + k) != <u32>word.charCodeAt(k)) return -1;
  }
  return p + word.length;
}

/** The end of the value at p, or -1 when the text there is not one JSON value. */
function checkValue(base: usize, p: i32, end: i32, depth: i32): i32 {
  if (p >= end) return -1;
  const c = byteAt(base, p);
  if (c == 0x22) return checkString(base, p, end);
  if (c == 0x74) return checkWord(base, p, end, "true");
  if (c == 0x66) return checkWord(base, p, end, "false");
  if (c == 0x6e) return checkWord(base, p, end, "null");
  if (c != 0x7b && c != 0x5b) return checkNumber(base, p, end);
  if (depth >= MAX_DEPTH) return -1;
  const object = c == 0x7b;
  const close: u32 = object ? 0x7d : 0x5d;
  p = skipSpace(base, p + 1, end);
  if (p < end && byteAt(base, p) == close) return p + 1;
  while (true) {
    if (object) {
      if (p >= end || byteAt(base, p) != 0x22) return -1;
      p = checkString(base, p, end);
      if (p < 0) return -1;
      p = skipSpace(base, p, end);
      if (p >= end || byteAt(base, p) != 0x3a) return -1;
      p = skipSpace(base, p + 1, end);
    }
    p = checkValue(base, p, end, depth + 1);
    if (p < 0) return -1;
    p = skipSpace(base, p, end);
    if (p >= end) return -1;
    const d = byteAt(base, p);
    if (d == close) return p + 1;
    if (d != 0x2c) return -1;
    p = skipSpace(base, p + 1, end);
  }
}

// The skips below walk text checkValue has accepted.

function skipString(base: usize, p: i32): i32 {
  p++;
  while (true) {
    const c = byteAt(base, p++);
    if (c == 0x22) return p;
    if (c == 0x5c) p++;
  }
}

/** The end of the (checked) value at p, inside a container ending before `end`. */
function skipValue(base: usize, p: i32, end: i32): i32 {
  const c = byteAt(base, p);
  if (c == 0x22) return skipString(base, p);
  if (c != 0x7b && c != 0x5b) {
    while (p < end) {
      const d = byteAt(base, p);
      if (d == 0x2c || d == 0x5d || d == 0x7d || d == 0x20 || d == 0x0a || d == 0x0d || d == 0x09) break;
      p++;
    }
    return p;
  }
  let depth = 0;
  while (true) {
    const d = byteAt(base, p);
    if (d == 0x22) {
      p = skipString(base, p);
      continue;
    }
    p++;
    if (d == 0x7b || d == 0x5b) depth++;
    else if ((d == 0x7d || d == 0x5d) && --depth == 0) return p;
  }
}

/** The string whose (checked) text is [start, end), quotes included. */
function decodeString(base: usize, start: i32, end: i32): string {
  let p = start + 1;
  const last = end - 1;
  let run = p;
  while (p < last && byteAt(base, p) != 0x5c) p++;
  if (p == last) return String.UTF8.decodeUnsafe(base + <usize>run, <usize>(last - run));
  const parts = new Array<string>();
  while (p < last) {
    const c = byteAt(base, p);
    if (c != 0x5c) {
      p++;
      continue;
    }
    if (p > run) parts.push(String.UTF8.decodeUnsafe(base + <usize>run, <usize>(p - run)));
    const e = byteAt(base, p + 1);
    p += 2;
    if (e == 0x6e) parts.push("\n");
    else if (e == 0x74) parts.push("\t");
    else if (e == 0x72) parts.push("\r");
    else if (e == 0x62) parts.push("\b");
    else if (e == 0x66) parts.push("\f");
    else if (e == 0x75) {
      let h = 0;
      for (let k = 0; k < 4; k++) {
        const d = byteAt(base, p++);
        h = (h << 4) | (d <= 0x39 ? d - 0x30 : (d | 0x20) - 0x61 + 10);
      }
      parts.push(String.fromCharCode(h)); // surrogate pairs arrive as two escapes
    } else parts.push(String.fromCharCode(e)); // \" \\ \/
    run = p;
  }
  if (last > run) parts.push(String.UTF8.decodeUnsafe(base + <usize>run, <usize>(last - run)));
  return parts.join("");
}

/** Whether the (checked) string text [start, end) reads as `key`, without decoding it when
 * it is plain ASCII. */
function keyIs(base: usize, start: i32, end: i32, key: string): bool {
  const last = end - 1;
  let j = 0;
  for (let p = start + 1; p < last; p++) {
    const c = byteAt(base, p);
    if (c == 0x5c || c >= 0x80) return decodeString(base, start, end) == key;
    if (j >= key.length || <u32>key.charCodeAt(j) != c) return false;
    j++;
  }
  return j == key.length;
}

/** The UTF-8 text views read: a buffer the GC owns (`owner`), or a hook's argument read in
 * place in the arena, until the hook returns (then `base` is 0 and its views read as null). */
class Text {
  constructor(public base: usize, public owner: ArrayBuffer | null) {}
}

/** A container's offsets, noted on first use: an array's [start, end] per item or an
 * object's [keyStart, keyEnd, start, end] per member; its keys and items once asked for. */
class Index {
  offsets: Array<i32> = [];
  keys: Array<string> | null = null;
  items: Array<Json> | null = null;
}

export class Json {
  private kindAt: Kind = Kind.NULL;
  private source: Text | null = null;
  private start: i32 = 0;
  private end: i32 = 0;
  private found: Index | null = null;

  /** The value whose checked text is [start, end) of `source`. */
  static view(source: Text, start: i32, end: i32): Json {
    const v = new Json();
    v.source = source;
    v.start = start;
    v.end = end;
    const c = byteAt(source.base, start);
    v.kindAt = c == 0x7b ? Kind.OBJECT : c == 0x5b ? Kind.ARRAY : c == 0x22 ? Kind.STRING
      : c == 0x74 ? Kind.TRUE : c == 0x66 ? Kind.FALSE : c == 0x6e ? Kind.NULL : Kind.NUMBER;
    return v;
  }

  /** Where the text is; 0 for null or a view of a hook's argument after the hook. */
  private get base(): usize {
    const source = this.source;
    return source === null ? 0 : source.base;
  }

  get kind(): Kind {
    return this.base ? this.kindAt : Kind.NULL;
  }

  private child(start: i32, end: i32): Json {
    return Json.view(changetype<Text>(this.source), start, end);
  }

  private index(): Index {
    const known = this.found;
    if (known !== null) return known;
    const found = new Index();
    const o = found.offsets;
    const base = this.base;
    const object = this.kindAt == Kind.OBJECT;
    let p = skipSpace(base, this.start + 1, this.end);
    if (byteAt(base, p) != (object ? 0x7d : 0x5d)) {
      while (true) {
        if (object) {
          o.push(p);
          p = skipString(base, p);
          o.push(p);
          p = skipSpace(base, skipSpace(base, p, this.end) + 1, this.end); // past the colon
        }
        o.push(p);
        p = skipValue(base, p, this.end);
        o.push(p);
        p = skipSpace(base, p, this.end);
        if (byteAt(base, p) != 0x2c) break;
        p = skipSpace(base, p + 1, this.end);
      }
    }
    this.found = found;
    return found;
  }

  isNull(): bool {
    return this.kind == Kind.NULL;
  }

  /** The member `key` of an object; null when there is none. */
  get(key: string): Json {
    if (this.kind != Kind.OBJECT) return new Json();
    const base = this.base;
    const known = this.found;
    if (known !== null) {
      const o = known.offsets;
      for (let i = 0; i < o.length; i += 4) {
        if (keyIs(base, o[i], o[i + 1], key)) return this.child(o[i + 2], o[i + 3]);
      }
      return new Json();
    }
    let p = skipSpace(base, this.start + 1, this.end);
    if (byteAt(base, p) == 0x7d) return new Json();
    while (true) {
      const keyStart = p;
      p = skipString(base, p);
      const keyEnd = p;
      p = skipSpace(base, skipSpace(base, p, this.end) + 1, this.end);
      const valueStart = p;
      p = skipValue(base, p, this.end);
      if (keyIs(base, keyStart, keyEnd, key)) return this.child(valueStart, p);
      p = skipSpace(base, p, this.end);
      if (byteAt(base, p) != 0x2c) return new Json();
      p = skipSpace(base, p + 1, this.end);
    }
  }

  /** Item `index` of an array; null when out of range. */
  at(index: i32): Json {
    if (this.kind != Kind.ARRAY || index < 0) return new Json();
    const o = this.index().offsets;
    if (index >= o.length >> 1) return new Json();
    return this.child(o[index << 1], o[(index << 1) + 1]);
  }

  /** Items of an array or members of an object. */
  get length(): i32 {
    const kind = this.kind;
    if (kind == Kind.ARRAY) return this.index().offsets.length >> 1;
    if (kind == Kind.OBJECT) return this.index().offsets.length >> 2;
    return 0;
  }

  /** An object's keys, in order (empty for any other kind). */
  get keys(): Array<string> {
    if (this.kind != Kind.OBJECT) return [];
    const found = this.index();
    let list = found.keys;
    if (list === null) {
      list = new Array<string>();
      const o = found.offsets;
      for (let i = 0; i < o.length; i += 4) list.push(decodeString(this.base, o[i], o[i + 1]));
      found.keys = list;
    }
    return list;
  }

  /** An array's items or an object's member values, in order (empty for any other kind). */
  get items(): Array<Json> {
    const kind = this.kind;
    if (kind != Kind.ARRAY && kind != Kind.OBJECT) return [];
    const found = this.index();
    let list = found.items;
    if (list === null) {
      list = new Array<Json>();
      const o = found.offsets;
      const step = kind == Kind.OBJECT ? 4 : 2;
      for (let i = step - 2; i < o.length; i += step) list.push(this.child(o[i], o[i + 1]));
      found.items = list;
    }
    return list;
  }

  /** The JSON text of this value as it came ("null" for null). */
  toString(): string {
    const base = this.base;
    if (!base) return "null";
    return String.UTF8.decodeUnsafe(base + <usize>this.start, <usize>(this.end - this.start));
  }

  /** This value in a buffer of its own: it reads the same after its hook returns. */
  copy(): Json {
    const base = this.base;
    if (!base) return new Json();
    const n = this.end - this.start;
    const bytes = new ArrayBuffer(n);
    memory.copy(changetype<usize>(bytes), base + <usize>this.start, <usize>n);
    return Json.view(new Text(changetype<usize>(bytes), bytes), 0, n);
  }

  /** A string's text ("" for any other kind). */
  get text(): string {
    return this.str();
  }

  /** A number's value (0 for any other kind). */
  get number(): f64 {
    return this.num();
  }

  str(fallback: string = ""): string {
    return this.kind == Kind.STRING ? decodeString(this.base, this.start, this.end) : fallback;
  }

  num(fallback: f64 = 0): f64 {
    if (this.kind != Kind.NUMBER) return fallback;
    return parseFloat(String.UTF8.decodeUnsafe(this.base + <usize>this.start, <usize>(this.end - this.start)));
  }

  int(fallback: i64 = 0): i64 {
    const n = this.num(NaN);
    return isFinite(n) ? <i64>n : fallback;
  }

  bool(fallback: bool = false): bool {
    const kind = this.kind;
    return kind == Kind.TRUE ? true : kind == Kind.FALSE ? false : fallback;
  }
}

/** The JSON text of `source` ([0, n)), checked once; malformed text reads as null. */
function parseText(source: Text, n: i32): Json {
  const base = source.base;
  const start = skipSpace(base, 0, n);
  const end = checkValue(base, start, n, 0);
  if (end < 0 || skipSpace(base, end, n) != n) return new Json();
  return Json.view(source, start, end);
}

/** The JSON text in `bytes` (UTF-8); malformed text reads as null. */
export function parseBytes(bytes: ArrayBuffer): Json {
  return parseText(new Text(changetype<usize>(bytes), bytes), bytes.byteLength);
}

/** Parses JSON text; malformed text reads as null. */
export function parseJson(text: string): Json {
  return parseBytes(String.UTF8.encode(text));
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

/** The host function's packed result, read (its block given back); 0 is null. */
function result(packed: u64): Json {
  return takeJson(<usize>(packed >>> 32), <usize>(packed & 0xffffffff));
}

// The argument's UTF-8 bytes live in `a` (a local: reachable) for the whole call, and the
// host's rwq_alloc calls place the result in the arena, which never runs the GC.
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
