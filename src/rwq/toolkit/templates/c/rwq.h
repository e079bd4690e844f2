/*
 * rwq.h: the rwq plugin ABI v1 for C (see docs/abi.md).
 *
 * One header. In exactly one .c file of a plugin, define RWQ_IMPLEMENTATION before including
 * it: that file gets the exports every module needs (rwq_alloc, rwq_free, rwq_abi_version)
 * and the code of the helpers below.
 *
 *     #define RWQ_IMPLEMENTATION
 *     #include "rwq.h"
 *
 *     RWQ_HOOK(render) {                    // exported as rwq_render
 *         rwq_w_array(out);
 *         rwq_ui_text(out, "hello");
 *         rwq_w_end_array(out);
 *     }
 *
 * Build with sdk/c/build.sh PLUGIN_DIR (clang --target=wasm32-wasi -mexec-model=reactor).
 *
 * What is here:
 *   - hooks: RWQ_HOOK(name) defines the export rwq_<name>; the body reads `arg` (a view of the
 *     JSON argument, `null` when there is none) and writes its JSON result to `out` (nothing
 *     written means null). Memory is handled for you: the argument is freed after the hook,
 *     the result is kept until the next hook is called (the host copies it out before).
 *   - reading JSON: rwq_json views into a buffer, no allocation (rwq_json_get, iteration,
 *     numbers, strings with escapes decoded).
 *   - writing JSON: rwq_writer, a growable buffer with commas placed for you.
 *   - host functions: rwq_call(name, &args) calls the host function `name` (one import per
 *     catalog function, declared below; only those a plugin calls become imports). The result
 *     is JSON: the function's result or {"error": {"code", "message", ...}}.
 *   - UI elements: text, badge, kv and table. Their schema is defined in docs/ui-elements.md;
 *     these helpers write {"type": "text", "text": ...}-style objects and follow it.
 */
#ifndef RWQ_H
#define RWQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RWQ_ABI_VERSION 1

/* ---- reading JSON ------------------------------------------------------------------------ */

/* A view of one JSON value inside a buffer (not NUL-terminated); p == NULL means absent. */
typedef struct {
    const char *p;
    uint32_t n;
} rwq_json;

typedef enum {
    RWQ_ABSENT,
    RWQ_NULL,
    RWQ_FALSE,
    RWQ_TRUE,
    RWQ_NUMBER,
    RWQ_STRING,
    RWQ_ARRAY,
    RWQ_OBJECT
} rwq_kind;

/* An iterator over the items of an array or the members of an object. */
typedef struct {
    const char *p;
    const char *end;
} rwq_iter;

rwq_json rwq_json_view(const char *text, uint32_t length);
rwq_kind rwq_json_kind(rwq_json value);
/* The member `key` of an object (keys compared after decoding escapes); absent if none. */
rwq_json rwq_json_get(rwq_json object, const char *key);
/* The item at `index` of an array; absent if none. */
rwq_json rwq_json_at(rwq_json array, uint32_t index);
rwq_iter rwq_json_iter(rwq_json array_or_object);
/* The next item of an array: false at the end. */
bool rwq_json_next(rwq_iter *it, rwq_json *item);
/* The next member of an object: false at the end. */
bool rwq_json_next_member(rwq_iter *it, rwq_json *key, rwq_json *value);
int64_t rwq_json_int(rwq_json value, int64_t fallback);
double rwq_json_number(rwq_json value, double fallback);
bool rwq_json_bool(rwq_json value, bool fallback);
/* A string decoded (escapes to UTF-8) into buf, NUL-terminated and cut to size - 1 bytes;
 * returns the length written, 0 (and an empty buf) if `value` is not a string. */
size_t rwq_json_string(rwq_json value, char *buf, size_t size);
/* Whether `value` is a string equal to `s` once decoded. */
bool rwq_json_equals(rwq_json value, const char *s);

/* ---- writing JSON ------------------------------------------------------------------------ */

#define RWQ_MAX_DEPTH 64

/* A JSON text being written. Zero-initialise it (rwq_writer w = {0};). If an allocation
 * fails, `failed` is set and the rest is ignored. */
typedef struct {
    char *buf;
    uint32_t len;
    uint32_t cap;
    uint32_t depth;
    uint64_t fresh; /* bit d: the container at depth d has no item yet */
    bool after_key;
    bool failed;
} rwq_writer;

void rwq_w_object(rwq_writer *w);
void rwq_w_end_object(rwq_writer *w);
void rwq_w_array(rwq_writer *w);
void rwq_w_end_array(rwq_writer *w);
void rwq_w_key(rwq_writer *w, const char *key);
void rwq_w_string(rwq_writer *w, const char *s);
void rwq_w_string_n(rwq_writer *w, const char *s, size_t n);
void rwq_w_int(rwq_writer *w, int64_t v);
void rwq_w_number(rwq_writer *w, double v); /* NaN and infinities are written as null */
void rwq_w_bool(rwq_writer *w, bool v);
void rwq_w_null(rwq_writer *w);
void rwq_w_json(rwq_writer *w, rwq_json value); /* a value copied as it is */
void rwq_w_free(rwq_writer *w);

/* ---- hooks ------------------------------------------------------------------------------- */

typedef void (*rwq_hook_fn)(rwq_json arg, rwq_writer *out);
uint64_t rwq__hook(rwq_hook_fn fn, char *arg, uint32_t length);

/* Defines hook `name` (initialize, on_event, render, ...), exported as rwq_<name>. */
#define RWQ_HOOK(name)                                                                       \
    static void rwq_hook_##name(rwq_json arg, rwq_writer *out);                             \
    __attribute__((export_name("rwq_" #name))) uint64_t rwq_export_##name(char *arg,        \
                                                                          uint32_t length) { \
        return rwq__hook(rwq_hook_##name, arg, length);                                     \
    }                                                                                        \
    static void rwq_hook_##name(rwq_json arg, rwq_writer *out)

/* ---- host functions ---------------------------------------------------------------------- */

/* One import per host function of docs/host-api.md: (ptr, len) of the JSON arguments in,
 * (ptr << 32 | len) of the JSON result out (0 = null), in a buffer the plugin then owns. */
#define RWQ__IMPORT(name)                                                                    \
    __attribute__((import_module("rwq"), import_name(#name))) uint64_t rwq_import_##name(    \
        const char *args, uint32_t length)

RWQ__IMPORT(subscribe);
RWQ__IMPORT(unsubscribe);
RWQ__IMPORT(enqueue_job);
RWQ__IMPORT(peek_job);
RWQ__IMPORT(list_dead);
RWQ__IMPORT(requeue_job);
RWQ__IMPORT(requeue_jobs);
RWQ__IMPORT(purge_queue);
RWQ__IMPORT(delete_dead);
RWQ__IMPORT(pause_queue);
RWQ__IMPORT(resume_queue);
RWQ__IMPORT(get_queue_stats);
RWQ__IMPORT(get_system_stats);
RWQ__IMPORT(log);
RWQ__IMPORT(show_notification);
RWQ__IMPORT(set_timer);
RWQ__IMPORT(clear_timer);
RWQ__IMPORT(storage_get);
RWQ__IMPORT(storage_set);
RWQ__IMPORT(storage_delete);
RWQ__IMPORT(storage_list);
RWQ__IMPORT(storage_usage);
RWQ__IMPORT(emit);
RWQ__IMPORT(send_alert);
RWQ__IMPORT(call_dependency);

/* A host function's result: `value` views it (`null` for a null result); free `buf` with
 * rwq_result_free. */
typedef struct {
    char *buf;
    rwq_json value;
} rwq_result;

rwq_result rwq__result(uint64_t packed, rwq_writer *args);

/* Calls host function `name` with the JSON object written to `args` (a rwq_writer *, or
 * NULL for no arguments) and frees `args`. */
#define rwq_call(name, args)                                                                 \
    rwq__result(rwq_import_##name((args) ? (args)->buf : (const char *)0,                    \
                                  (args) ? (args)->len : 0),                                 \
                (args))

void rwq_result_free(rwq_result *r);
/* The `code` of an error result ("permission_denied", ...); absent when the call succeeded. */
rwq_json rwq_result_error(rwq_result r);
/* log({"level", "message"}); level is "debug", "info", "warning" or "error". */
void rwq_log(const char *level, const char *message);

/* ---- UI elements ------------------------------------------------------------------------- */

/* {"type": "text", "text": text} */
void rwq_ui_text(rwq_writer *w, const char *text);
/* {"type": "badge", "text": text, "level": level}; level: ok, info, warning, error, critical
 * or muted */
void rwq_ui_badge(rwq_writer *w, const char *text, const char *level);
/* {"type": "kv", "items": [[key, value], ...]}: begin, items, end */
void rwq_ui_kv_begin(rwq_writer *w);
void rwq_ui_kv_item(rwq_writer *w, const char *key, const char *value);
void rwq_ui_kv_end(rwq_writer *w);
/* {"type": "table", "columns": [...], "rows": [[cell, ...], ...]}: begin, then per row
 * rwq_ui_row_begin, cells (rwq_w_string, rwq_w_int, ...), rwq_ui_row_end; then end */
void rwq_ui_table_begin(rwq_writer *w, const char *const *columns, size_t ncolumns);
void rwq_ui_row_begin(rwq_writer *w);
void rwq_ui_row_end(rwq_writer *w);
void rwq_ui_table_end(rwq_writer *w);
/* gauge: value against max (100 when max <= 0); warn/crit thresholds, NAN for none */
void rwq_ui_gauge(rwq_writer *w, const char *label, double value, double max, double warn,
                  double crit);
/* progress: value of total done (100 when total <= 0) */
void rwq_ui_progress(rwq_writer *w, const char *label, double value, double total);
/* sparkline: n values, oldest first; min/max NAN to scale to the values */
void rwq_ui_sparkline(rwq_writer *w, const char *label, const double *values, size_t n,
                      double min, double max);
/* list: rwq_ui_list_begin, rwq_ui_list_item for each, rwq_ui_list_end (selected < 0: none) */
void rwq_ui_list_begin(rwq_writer *w, const char *id, const char *title);
void rwq_ui_list_item(rwq_writer *w, const char *item);
void rwq_ui_list_end(rwq_writer *w, int selected);
/* button: key 0 for none; variant NULL for "default" */
void rwq_ui_button(rwq_writer *w, const char *id, const char *label, char key,
                   const char *variant);
/* rows / columns: begin, the children (any rwq_ui_* calls), end. weights: one per child,
 * or NULL for equal columns */
void rwq_ui_rows_begin(rwq_writer *w, int gap);
void rwq_ui_rows_end(rwq_writer *w);
void rwq_ui_columns_begin(rwq_writer *w, int gap);
void rwq_ui_columns_end(rwq_writer *w, const int *weights, size_t nweights);

#ifdef __cplusplus
}
#endif

/* ========================================================================================= */
#ifdef RWQ_IMPLEMENTATION

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- exports every module needs ---- */

__attribute__((export_name("rwq_alloc"))) void *rwq_alloc(uint32_t size) {
    return malloc(size ? size : 1);
}

__attribute__((export_name("rwq_free"))) void rwq_free(void *ptr, uint32_t size) {
    (void)size;
    free(ptr);
}

__attribute__((export_name("rwq_abi_version"))) int32_t rwq_abi_version(void) {
    return RWQ_ABI_VERSION;
}

/* ---- reading ---- */

static const char *rwq__ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The end of the value starting at p, or NULL if it runs past e. */
static const char *rwq__skip(const char *p, const char *e) {
    if (p >= e) return NULL;
    if (*p == '"') {
        for (p++; p < e; p++) {
            if (*p == '\\') p++;
            else if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < e; p++) {
            if (*p == '"') {
                const char *q = rwq__skip(p, e);
                if (!q) return NULL;
                p = q - 1;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ':' && *p != ' ' &&
           *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    return p;
}

rwq_json rwq_json_view(const char *text, uint32_t length) {
    rwq_json v = {0, 0};
    const char *e = text + length;
    const char *p = rwq__ws(text, e);
    const char *q = rwq__skip(p, e);
    if (q) {
        v.p = p;
        v.n = (uint32_t)(q - p);
    }
    return v;
}

rwq_kind rwq_json_kind(rwq_json v) {
    if (!v.p || !v.n) return RWQ_ABSENT;
    switch (v.p[0]) {
    case 'n': return RWQ_NULL;
    case 'f': return RWQ_FALSE;
    case 't': return RWQ_TRUE;
    case '"': return RWQ_STRING;
    case '[': return RWQ_ARRAY;
    case '{': return RWQ_OBJECT;
    default: return RWQ_NUMBER;
    }
}

rwq_iter rwq_json_iter(rwq_json v) {
    rwq_iter it = {0, 0};
    if (v.p && v.n >= 2 && (v.p[0] == '[' || v.p[0] == '{')) {
        it.p = v.p + 1;
        it.end = v.p + v.n - 1;
    }
    return it;
}

static bool rwq__next_value(rwq_iter *it, rwq_json *item) {
    const char *p = rwq__ws(it->p, it->end);
    const char *q = p ? rwq__skip(p, it->end) : NULL;
    if (!q) {
        it->p = it->end;
        return false;
    }
    item->p = p;
    item->n = (uint32_t)(q - p);
    it->p = q;
    return true;
}

bool rwq_json_next(rwq_iter *it, rwq_json *item) {
    const char *p = rwq__ws(it->p, it->end);
    if (p && p < it->end && *p == ',') p++;
    it->p = p;
    return rwq__next_value(it, item);
}

bool rwq_json_next_member(rwq_iter *it, rwq_json *key, rwq_json *value) {
    if (!rwq_json_next(it, key)) return false;
    const char *p = rwq__ws(it->p, it->end);
    if (p >= it->end || *p != ':') {
        it->p = it->end;
        return false;
    }
    it->p = p + 1;
    return rwq__next_value(it, value);
}

rwq_json rwq_json_at(rwq_json array, uint32_t index) {
    rwq_iter it = rwq_json_iter(array);
    rwq_json item = {0, 0};
    if (rwq_json_kind(array) != RWQ_ARRAY) return item;
    while (rwq_json_next(&it, &item))
        if (index-- == 0) return item;
    return (rwq_json){0, 0};
}

rwq_json rwq_json_get(rwq_json object, const char *key) {
    rwq_iter it = rwq_json_iter(object);
    rwq_json k, v;
    if (rwq_json_kind(object) != RWQ_OBJECT) return (rwq_json){0, 0};
    while (rwq_json_next_member(&it, &k, &v))
        if (rwq_json_equals(k, key)) return v;
    return (rwq_json){0, 0};
}

static int rwq__hex(const char *p, const char *e) {
    int v = 0;
    if (e - p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

/* Decodes one character of a string body at *pp into out (1-4 UTF-8 bytes); returns how
 * many, 0 at the end or on a malformed escape. */
static int rwq__char(const char **pp, const char *e, char out[4]) {
    const char *p = *pp;
    if (p >= e) return 0;
    if (*p != '\\') {
        out[0] = *p;
        *pp = p + 1;
        return 1;
    }
    if (++p >= e) return 0;
    char c = *p++;
    uint32_t cp;
    switch (c) {
    case 'n': cp = '\n'; break;
    case 't': cp = '\t'; break;
    case 'r': cp = '\r'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'u': {
        int h = rwq__hex(p, e);
        if (h < 0) return 0;
        p += 4;
        cp = (uint32_t)h;
        if (cp >= 0xD800 && cp < 0xDC00 && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            int lo = rwq__hex(p + 2, e);
            if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
                p += 6;
            }
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate */
        break;
    }
    default: cp = (unsigned char)c; /* \" \\ \/ */
    }
    *pp = p;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t rwq_json_string(rwq_json v, char *buf, size_t size) {
    size_t n = 0;
    if (size == 0) return 0;
    buf[0] = 0;
    if (rwq_json_kind(v) != RWQ_STRING || v.n < 2) return 0;
    const char *p = v.p + 1, *e = v.p + v.n - 1;
    char c[4];
    int k;
    while ((k = rwq__char(&p, e, c)) > 0) {
        if (n + (size_t)k > size - 1) break;
        memcpy(buf + n, c, (size_t)k);
        n += (size_t)k;
    }
    buf[n] = 0;
    return n;
}

bool rwq_json_equals(rwq_json v, const char *s) {
    if (rwq_json_kind(v) != RWQ_STRING || v.n < 2) return false;
    const char *p = v.p + 1, *e = v.p + v.n - 1;
    size_t len = strlen(s), n = 0;
    char c[4];
    int k;
    while ((k = rwq__char(&p, e, c)) > 0) {
        if (n + (size_t)k > len || memcmp(s + n, c, (size_t)k) != 0) return false;
        n += (size_t)k;
    }
    return p == e && n == len;
}

double rwq_json_number(rwq_json v, double fallback) {
    char tmp[64];
    if (rwq_json_kind(v) != RWQ_NUMBER || v.n >= sizeof tmp) return fallback;
    memcpy(tmp, v.p, v.n);
    tmp[v.n] = 0;
    char *end;
    double d = strtod(tmp, &end);
    return end == tmp + v.n ? d : fallback;
}

int64_t rwq_json_int(rwq_json v, int64_t fallback) {
    if (rwq_json_kind(v) != RWQ_NUMBER) return fallback;
    const char *p = v.p, *e = v.p + v.n;
    bool negative = p < e && *p == '-';
    if (negative) p++;
    if (p >= e) return fallback;
    uint64_t n = 0;
    for (; p < e && *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10) return fallback;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (p < e) { /* a fraction or an exponent */
        double d = rwq_json_number(v, (double)fallback);
        return d >= -9.2e18 && d <= 9.2e18 ? (int64_t)d : fallback;
    }
    if (n > (uint64_t)INT64_MAX + negative) return fallback;
    return negative ? (int64_t)(0 - n) : (int64_t)n;
}

bool rwq_json_bool(rwq_json v, bool fallback) {
    rwq_kind k = rwq_json_kind(v);
    return k == RWQ_TRUE ? true : k == RWQ_FALSE ? false : fallback;
}

/* ---- writing ---- */

static void rwq__put(rwq_writer *w, const char *s, size_t n) {
    if (w->failed) return;
    if ((uint64_t)w->len + n > w->cap) {
        uint64_t cap = w->cap ? w->cap : 256;
        while (cap < (uint64_t)w->len + n) cap *= 2;
        char *buf = cap <= UINT32_MAX ? (char *)realloc(w->buf, (size_t)cap) : NULL;
        if (!buf) {
            w->failed = true;
            return;
        }
        w->buf = buf;
        w->cap = (uint32_t)cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += (uint32_t)n;
}

/* Before a value or a key: the comma, unless it is the first of its container. */
static void rwq__item(rwq_writer *w) {
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth == 0) return;
    uint64_t bit = 1ull << (w->depth % RWQ_MAX_DEPTH);
    if (w->fresh & bit) w->fresh &= ~bit;
    else rwq__put(w, ",", 1);
}

static void rwq__open(rwq_writer *w, char c) {
    rwq__item(w);
    rwq__put(w, &c, 1);
    w->depth++;
    w->fresh |= 1ull << (w->depth % RWQ_MAX_DEPTH);
}

static void rwq__close(rwq_writer *w, char c) {
    if (w->depth) w->depth--;
    rwq__put(w, &c, 1);
}

void rwq_w_object(rwq_writer *w) { rwq__open(w, '{'); }
void rwq_w_end_object(rwq_writer *w) { rwq__close(w, '}'); }
void rwq_w_array(rwq_writer *w) { rwq__open(w, '['); }
void rwq_w_end_array(rwq_writer *w) { rwq__close(w, ']'); }

static void rwq__quoted(rwq_writer *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    rwq__put(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        rwq__put(w, s + start, i - start);
        start = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': rwq__put(w, "\\\"", 2); break;
        case '\\': rwq__put(w, "\\\\", 2); break;
        case '\n': rwq__put(w, "\\n", 2); break;
        case '\r': rwq__put(w, "\\r", 2); break;
        case '\t': rwq__put(w, "\\t", 2); break;
        default: rwq__put(w, esc, 6);
        }
    }
    rwq__put(w, s + start, n - start);
    rwq__put(w, "\"", 1);
}

void rwq_w_key(rwq_writer *w, const char *key) {
    rwq__item(w);
    rwq__quoted(w, key, strlen(key));
    rwq__put(w, ":", 1);
    w->after_key = true;
}

void rwq_w_string_n(rwq_writer *w, const char *s, size_t n) {
    rwq__item(w);
    rwq__quoted(w, s, n);
}

void rwq_w_string(rwq_writer *w, const char *s) { rwq_w_string_n(w, s, s ? strlen(s) : 0); }

void rwq_w_int(rwq_writer *w, int64_t v) {
    char tmp[24];
    int i = sizeof tmp;
    uint64_t n = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    if (v < 0) tmp[--i] = '-';
    rwq__item(w);
    rwq__put(w, tmp + i, sizeof tmp - (size_t)i);
}

void rwq_w_number(rwq_writer *w, double v) {
    if (!isfinite(v)) {
        rwq_w_null(w);
    } else if (v == (double)(int64_t)v && v > -9e15 && v < 9e15) {
        rwq_w_int(w, (int64_t)v);
    } else {
        char tmp[32];
        int n = snprintf(tmp, sizeof tmp, "%.17g", v);
        rwq__item(w);
        rwq__put(w, tmp, (size_t)n);
    }
}

void rwq_w_bool(rwq_writer *w, bool v) {
    rwq__item(w);
    rwq__put(w, v ? "true" : "false", v ? 4 : 5);
}

void rwq_w_null(rwq_writer *w) {
    rwq__item(w);
    rwq__put(w, "null", 4);
}

void rwq_w_json(rwq_writer *w, rwq_json v) {
    if (!v.p) {
        rwq_w_null(w);
        return;
    }
    rwq__item(w);
    rwq__put(w, v.p, v.n);
}

void rwq_w_free(rwq_writer *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* ---- hooks ---- */

static char *rwq__last_result;

uint64_t rwq__hook(rwq_hook_fn fn, char *arg, uint32_t length) {
    /* The previous result has been copied out by the host: the host is calling again. */
    free(rwq__last_result);
    rwq__last_result = NULL;
    rwq_json a = length ? rwq_json_view(arg, length) : (rwq_json){"null", 4};
    rwq_writer out = {0};
    fn(a, &out);
    free(arg);
    if (out.failed) __builtin_trap(); /* out of memory: the host reports a memory fault */
    if (out.len == 0) return 0;
    rwq__last_result = out.buf;
    return ((uint64_t)(uintptr_t)out.buf << 32) | out.len;
}

/* ---- host functions ---- */

rwq_result rwq__result(uint64_t packed, rwq_writer *args) {
    rwq_result r = {0, {"null", 4}};
    if (args) rwq_w_free(args);
    if (packed) {
        r.buf = (char *)(uintptr_t)(packed >> 32);
        r.value = rwq_json_view(r.buf, (uint32_t)packed);
    }
    return r;
}

void rwq_result_free(rwq_result *r) {
    free(r->buf);
    r->buf = NULL;
    r->value = (rwq_json){"null", 4};
}

rwq_json rwq_result_error(rwq_result r) {
    return rwq_json_get(rwq_json_get(r.value, "error"), "code");
}

void rwq_log(const char *level, const char *message) {
    rwq_writer w = {0};
    rwq_w_object(&w);
    rwq_w_key(&w, "level");
    rwq_w_string(&w, level);
    rwq_w_key(&w, "message");
    rwq_w_string(&w, message);
    rwq_w_end_object(&w);
    rwq_result r = rwq_call(log, &w);
    rwq_result_free(&r);
}

/* ---- UI elements ---- */

static void rwq__element(rwq_writer *w, const char *type) {
    rwq_w_object(w);
    rwq_w_key(w, "type");
    rwq_w_string(w, type);
}

void rwq_ui_text(rwq_writer *w, const char *text) {
    rwq__element(w, "text");
    rwq_w_key(w, "text");
    rwq_w_string(w, text);
    rwq_w_end_object(w);
}

void rwq_ui_badge(rwq_writer *w, const char *text, const char *level) {
    rwq__element(w, "badge");
    rwq_w_key(w, "text");
    rwq_w_string(w, text);
    rwq_w_key(w, "level");
    rwq_w_string(w, level);
    rwq_w_end_object(w);
}

void rwq_ui_kv_begin(rwq_writer *w) {
    rwq__element(w, "kv");
    rwq_w_key(w, "items");
    rwq_w_array(w);
}

void rwq_ui_kv_item(rwq_writer *w, const char *key, const char *value) {
    rwq_w_array(w);
    rwq_w_string(w, key);
    rwq_w_string(w, value);
    rwq_w_end_array(w);
}

void rwq_ui_kv_end(rwq_writer *w) {
    rwq_w_end_array(w);
    rwq_w_end_object(w);
}

void rwq_ui_table_begin(rwq_writer *w, const char *const *columns, size_t ncolumns) {
    rwq__element(w, "table");
    rwq_w_key(w, "columns");
    rwq_w_array(w);
    for (size_t i = 0; i < ncolumns; i++) rwq_w_string(w, columns[i]);
    rwq_w_end_array(w);
    rwq_w_key(w, "rows");
    rwq_w_array(w);
}

void rwq_ui_row_begin(rwq_writer *w) { rwq_w_array(w); }
void rwq_ui_row_end(rwq_writer *w) { rwq_w_end_array(w); }

void rwq_ui_table_end(rwq_writer *w) {
    rwq_w_end_array(w);
    rwq_w_end_object(w);
}

static void rwq__label(rwq_writer *w, const char *label) {
    if (label && *label) {
        rwq_w_key(w, "label");
        rwq_w_string(w, label);
    }
}

static void rwq__finite(rwq_writer *w, const char *key, double v) {
    if (__builtin_isfinite(v)) {
        rwq_w_key(w, key);
        rwq_w_number(w, v);
    }
}

void rwq_ui_gauge(rwq_writer *w, const char *label, double value, double max, double warn,
                  double crit) {
    rwq__element(w, "gauge");
    rwq_w_key(w, "value");
    rwq_w_number(w, value);
    if (max > 0) rwq__finite(w, "max", max);
    rwq__finite(w, "warn", warn);
    rwq__finite(w, "crit", crit);
    rwq__label(w, label);
    rwq_w_end_object(w);
}

void rwq_ui_progress(rwq_writer *w, const char *label, double value, double total) {
    rwq__element(w, "progress");
    rwq_w_key(w, "value");
    rwq_w_number(w, value < 0 ? 0 : value);
    if (total > 0) rwq__finite(w, "total", total);
    rwq__label(w, label);
    rwq_w_end_object(w);
}

void rwq_ui_sparkline(rwq_writer *w, const char *label, const double *values, size_t n,
                      double min, double max) {
    rwq__element(w, "sparkline");
    rwq_w_key(w, "values");
    rwq_w_array(w);
    for (size_t i = 0; i < n; i++) rwq_w_number(w, values[i]);
    rwq_w_end_array(w);
    rwq__finite(w, "min", min);
    rwq__finite(w, "max", max);
    rwq__label(w, label);
    rwq_w_end_object(w);
}

void rwq_ui_list_begin(rwq_writer *w, const char *id, const char *title) {
    rwq__element(w, "list");
    rwq_w_key(w, "id");
    rwq_w_string(w, id);
    if (title && *title) {
        rwq_w_key(w, "title");
        rwq_w_string(w, title);
    }
    rwq_w_key(w, "items");
    rwq_w_array(w);
}

void rwq_ui_list_item(rwq_writer *w, const char *item) { rwq_w_string(w, item); }

void rwq_ui_list_end(rwq_writer *w, int selected) {
    rwq_w_end_array(w);
    if (selected >= 0) {
        rwq_w_key(w, "selected");
        rwq_w_int(w, selected);
    }
    rwq_w_end_object(w);
}

void rwq_ui_button(rwq_writer *w, const char *id, const char *label, char key,
                   const char *variant) {
    rwq__element(w, "button");
    rwq_w_key(w, "id");
    rwq_w_string(w, id);
    rwq_w_key(w, "label");
    rwq_w_string(w, label);
    if (key > ' ' && key < 127) {
        rwq_w_key(w, "key");
        rwq_w_string_n(w, &key, 1);
    }
    if (variant && *variant) {
        rwq_w_key(w, "variant");
        rwq_w_string(w, variant);
    }
    rwq_w_end_object(w);
}

static void rwq__container_begin(rwq_writer *w, const char *type, int gap) {
    rwq__element(w, type);
    if (gap > 0) {
        rwq_w_key(w, "gap");
        rwq_w_int(w, gap);
    }
    rwq_w_key(w, "children");
    rwq_w_array(w);
}

void rwq_ui_rows_begin(rwq_writer *w, int gap) { rwq__container_begin(w, "rows", gap); }

void rwq_ui_rows_end(rwq_writer *w) {
    rwq_w_end_array(w);
    rwq_w_end_object(w);
}

void rwq_ui_columns_begin(rwq_writer *w, int gap) { rwq__container_begin(w, "columns", gap); }

void rwq_ui_columns_end(rwq_writer *w, const int *weights, size_t nweights) {
    rwq_w_end_array(w);
    if (weights && nweights) {
        rwq_w_key(w, "widths");
        rwq_w_array(w);
        for (size_t i = 0; i < nweights; i++) rwq_w_int(w, weights[i]);
        rwq_w_end_array(w);
    }
    rwq_w_end_object(w);
}

#endif /* RWQ_IMPLEMENTATION */
#endif /* RWQ_H */
