/*
 * tenant-sla-monitor: per-tenant success rate, p50/p95 run time, throughput and errors over
 * sliding windows (last 1 and 5 minutes, in 10 s buckets), checked against SLA targets from
 * the config; a table sorted worst-first, and an alert (send_alert, one dedup key per tenant
 * and kind) when a tenant breaches, again only once it recovered and breached anew.
 *
 * Time is event time: the clock is the newest `ts` of the events received (job events and
 * the 5 s queue.stats samples), so the windows slide with the queue, not the host, and the
 * same events always give the same panel.
 *
 * Memory is bounded whatever the traffic: at most MAX_TENANTS tenants (an idle one is
 * replaced by a new one; past that, events of new tenants are only counted), each with
 * NBUCKETS buckets of counters and a NBINS-bin run-time histogram.
 *
 * Build: plugins/build.sh tenant-sla-monitor (sdk/c/build.sh plugins/tenant-sla-monitor/src
 * plugins/tenant-sla-monitor/main.wasm).
 */
#define RWQ_IMPLEMENTATION
#include "rwq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENANTS 64
#define MAX_OVERRIDES 64
#define NAME_BYTES 129 /* tenant names: at most 128 bytes, like the job's tenant field */
#define QUEUE_BYTES 129
#define ERROR_BYTES 200
#define BUCKET_MS 10000
#define NBUCKETS 30 /* 5 minutes */
#define BUCKETS_1M 6
#define NBINS 146    /* run-time bins: upper edges 1, 2, ... 10, then ~10% apart, to ~1 h */
#define QUEUE_PREFIX "tenant."
#define REARM_MS 60000 /* a breached kind must stay ok this long before it may alert again */

enum { KIND_SUCCESS, KIND_P95, NKINDS };
static const char *const KIND_NAMES[NKINDS] = {"success_rate", "p95"};

/* Status of a tenant or of one SLA kind, in order of badness. */
enum { ST_NODATA, ST_OK, ST_RISK, ST_BREACH };
static const char *const STATUS_TEXT[] = {"no data", "ok", "at risk", "BREACH"};

typedef struct {
    int64_t k; /* ts / BUCKET_MS of the 10 s this bucket counts; -1 when unused */
    uint32_t ok, failed, dead;
    uint16_t hist[NBINS]; /* runs (completed or failed) by run time; saturates at 65535 */
} bucket;

typedef struct {
    bool used;
    char name[NAME_BYTES];
    char queue[QUEUE_BYTES]; /* the queue its jobs came from (tenant.<name>), for list_dead */
    int64_t first_ms;        /* first event seen */
    int64_t last_ms;         /* newest event seen */
    bucket b[NBUCKETS];
    bool has_stats; /* from queue.stats */
    int64_t pending;
    double oldest_pending_s;
    char last_error[ERROR_BYTES];
    bool breached[NKINDS]; /* an alert was sent and the kind has not recovered since */
    int64_t ok_since[NKINDS]; /* while breached: when the kind was last seen back to ok */
    int alerts_sent;
    bool touched; /* has new runs since the alerts were last checked */
} tenant;

typedef struct {
    double min_success_pct;
    double max_p95_ms;
} targets;

typedef struct {
    char name[NAME_BYTES];
    bool has_success, has_p95;
    targets t;
} override;

typedef struct {
    targets dflt;
    override overrides[MAX_OVERRIDES];
    int noverrides;
    int sla_buckets; /* the window the SLA is judged on: BUCKETS_1M or NBUCKETS */
    int64_t min_samples;
    double at_risk;
    bool alerts;
} settings;

/* What one window of one tenant holds. */
typedef struct {
    uint32_t ok, failed, dead, runs;
    double success_pct; /* of runs; NAN without runs */
    double p50, p95;    /* ms; NAN without runs */
    double per_s;       /* completions per second */
} window;

typedef struct {
    int status;            /* worst of the kinds */
    int kind[NKINDS];      /* per kind */
    double score;          /* how far into its budget the worst kind is (1 = at the target) */
    window w;              /* the SLA window */
} verdict;

static tenant tenants[MAX_TENANTS];
static double edges[NBINS];
static settings cfg;
static int64_t now_ms;
static int64_t events_seen, untracked_events;
static bool alerts_denied, peek_denied;
static int64_t alerts_total;
static int64_t checked_k = -1; /* the bucket the alerts were last checked for every tenant */
static int view_buckets = NBUCKETS; /* the window the table's metrics show ('w' toggles) */
static char selected[NAME_BYTES];   /* the tenant whose details are shown, "" for none */

/* ---- helpers ------------------------------------------------------------------------------ */

/* The length of the longest prefix of s, at most max bytes, that ends on a UTF-8 character
 * boundary: text cut anywhere else is not UTF-8, and the host refuses such output. */
static size_t utf8_len(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n <= max) return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--; /* s[max]: a continuation */
    return max;
}

/* Drops an incomplete character at the end of s (text a copy or snprintf cut at the end of
 * its buffer of `size` bytes). */
static void utf8_clip(char *s, size_t size) {
    size_t n = strnlen(s, size - 1), lead = n;
    while (lead > 0 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80) lead--;
    if (lead == 0) {
        s[n] = 0;
        return;
    }
    unsigned char c = (unsigned char)s[lead - 1];
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    s[n - (lead - 1) < need ? lead - 1 : n] = 0;
}

/* A JSON string decoded into buf (whole UTF-8 characters only); its length, 0 if none. */
static size_t text_of(rwq_json v, char *buf, size_t size) {
    if (!rwq_json_string(v, buf, size)) return 0;
    utf8_clip(buf, size);
    return strlen(buf);
}

static void init_edges(void) {
    double e = 1;
    for (int i = 0; i < NBINS; i++) {
        edges[i] = e;
        double next = floor(e * 1.1 + 0.5);
        e = next < e + 1 ? e + 1 : next;
    }
}

static int bin_of(double ms) {
    int lo = 0, hi = NBINS - 1; /* the first bin whose upper edge is >= ms */
    if (!(ms > edges[0])) return 0;
    if (ms > edges[NBINS - 1]) return NBINS - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (edges[mid] >= ms) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* The upper edge of the bin holding the q-quantile: at most ~10% above the true value. */
static double quantile(const uint32_t *hist, uint32_t total, double q) {
    if (!total) return NAN;
    uint32_t rank = (uint32_t)ceil(q * total);
    if (rank < 1) rank = 1;
    uint32_t seen = 0;
    for (int i = 0; i < NBINS; i++) {
        seen += hist[i];
        if (seen >= rank) return edges[i];
    }
    return edges[NBINS - 1];
}

static void w_fixed(rwq_writer *out, double v, int decimals) {
    char tmp[48];
    if (!isfinite(v)) {
        rwq_w_null(out);
        return;
    }
    int n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
    rwq_w_json(out, rwq_json_view(tmp, (uint32_t)n));
}

static void w_member_str(rwq_writer *out, const char *key, const char *value) {
    rwq_w_key(out, key);
    rwq_w_string(out, value);
}

static void ui_text(rwq_writer *out, const char *text, const char *style) {
    rwq_w_object(out);
    w_member_str(out, "type", "text");
    w_member_str(out, "text", text);
    if (style) w_member_str(out, "style", style);
    rwq_w_end_object(out);
}

static void fmt_pct(char *buf, size_t size, double v) {
    if (isfinite(v)) snprintf(buf, size, "%.1f%%", v);
    else snprintf(buf, size, "-");
}

static void fmt_ms(char *buf, size_t size, double v) {
    if (isfinite(v)) snprintf(buf, size, "%.0f ms", v);
    else snprintf(buf, size, "-");
}

static void fmt_clock(char *buf, size_t size, int64_t ms) {
    int64_t s = ms / 1000 % 86400;
    snprintf(buf, size, "%02d:%02d:%02d UTC", (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60));
}

/* ---- configuration ------------------------------------------------------------------------ */

static void default_settings(settings *s) {
    memset(s, 0, sizeof *s);
    s->dflt.min_success_pct = 85.0;
    s->dflt.max_p95_ms = 500.0;
    s->sla_buckets = NBUCKETS;
    s->min_samples = 50;
    s->at_risk = 0.8;
    s->alerts = true;
}

/* Reads one target member; false (with `err` set) when present but invalid. */
static bool read_target(rwq_json v, const char *path, const char *key, double *out, bool *has,
                        char *err, size_t errsize) {
    rwq_json m = rwq_json_get(v, key);
    if (rwq_json_kind(m) == RWQ_ABSENT) return true;
    double d = rwq_json_number(m, NAN);
    bool pct = strcmp(key, "min_success_pct") == 0;
    if (!isfinite(d) || (pct ? (d < 0 || d > 100) : d <= 0)) {
        snprintf(err, errsize, "config.%s%s: must be %s", path, key,
                 pct ? "a number from 0 to 100 (percent)" : "a number of milliseconds > 0");
        return false;
    }
    *out = d;
    if (has) *has = true;
    return true;
}

static bool only_keys(rwq_json obj, const char *const *allowed, const char *path, char *err,
                      size_t errsize) {
    rwq_iter it = rwq_json_iter(obj);
    rwq_json k, v;
    while (rwq_json_next_member(&it, &k, &v)) {
        bool ok = false;
        for (int i = 0; allowed[i]; i++) ok = ok || rwq_json_equals(k, allowed[i]);
        if (!ok) {
            char name[80];
            text_of(k, name, sizeof name);
            snprintf(err, errsize, "config.%s%s: unknown setting (one of: %s)", path, name,
                     path[0] ? "min_success_pct, max_p95_ms"
                             : "min_success_pct, max_p95_ms, tenants, sla_window, min_samples, "
                               "at_risk, alerts");
            return false;
        }
    }
    return true;
}

/* Parses the effective config into `s`; false with a message naming the field. */
static bool parse_settings(rwq_json c, settings *s, char *err, size_t errsize) {
    static const char *const top[] = {"min_success_pct", "max_p95_ms", "tenants", "sla_window",
                                      "min_samples", "at_risk", "alerts", NULL};
    static const char *const per_tenant[] = {"min_success_pct", "max_p95_ms", NULL};
    default_settings(s);
    if (rwq_json_kind(c) == RWQ_NULL) return true;
    if (rwq_json_kind(c) != RWQ_OBJECT) {
        snprintf(err, errsize, "config: must be an object");
        return false;
    }
    if (!only_keys(c, top, "", err, errsize)) return false;
    if (!read_target(c, "", "min_success_pct", &s->dflt.min_success_pct, NULL, err, errsize))
        return false;
    if (!read_target(c, "", "max_p95_ms", &s->dflt.max_p95_ms, NULL, err, errsize)) return false;

    rwq_json w = rwq_json_get(c, "sla_window");
    if (rwq_json_kind(w) != RWQ_ABSENT) {
        if (rwq_json_equals(w, "1m")) s->sla_buckets = BUCKETS_1M;
        else if (rwq_json_equals(w, "5m")) s->sla_buckets = NBUCKETS;
        else {
            snprintf(err, errsize, "config.sla_window: must be \"1m\" or \"5m\"");
            return false;
        }
    }
    rwq_json m = rwq_json_get(c, "min_samples");
    if (rwq_json_kind(m) != RWQ_ABSENT) {
        double d = rwq_json_number(m, NAN);
        if (!(d >= 1 && d <= 1000000) || d != floor(d)) {
            snprintf(err, errsize, "config.min_samples: must be an integer from 1 to 1000000");
            return false;
        }
        s->min_samples = (int64_t)d;
    }
    rwq_json r = rwq_json_get(c, "at_risk");
    if (rwq_json_kind(r) != RWQ_ABSENT) {
        double d = rwq_json_number(r, NAN);
        if (!(d > 0 && d <= 1)) {
            snprintf(err, errsize,
                     "config.at_risk: must be a number in (0, 1]: the share of the error or "
                     "latency budget past which a tenant is at risk");
            return false;
        }
        s->at_risk = d;
    }
    rwq_json a = rwq_json_get(c, "alerts");
    if (rwq_json_kind(a) != RWQ_ABSENT) {
        if (rwq_json_kind(a) != RWQ_TRUE && rwq_json_kind(a) != RWQ_FALSE) {
            snprintf(err, errsize, "config.alerts: must be true or false");
            return false;
        }
        s->alerts = rwq_json_bool(a, true);
    }
    rwq_json t = rwq_json_get(c, "tenants");
    rwq_kind tk = rwq_json_kind(t);
    if (tk != RWQ_ABSENT && tk != RWQ_NULL) {
        if (tk != RWQ_OBJECT) {
            snprintf(err, errsize,
                     "config.tenants: must be an object of tenant name to targets, e.g. "
                     "{\"acme\": {\"max_p95_ms\": 200}}");
            return false;
        }
        rwq_iter it = rwq_json_iter(t);
        rwq_json k, v;
        while (rwq_json_next_member(&it, &k, &v)) {
            char name[NAME_BYTES], path[NAME_BYTES + 16];
            if (s->noverrides == MAX_OVERRIDES) {
                snprintf(err, errsize, "config.tenants: at most %d tenants", MAX_OVERRIDES);
                return false;
            }
            size_t n = text_of(k, name, sizeof name);
            if (n == 0 || n >= NAME_BYTES - 1) {
                snprintf(err, errsize, "config.tenants: a tenant name must be 1-127 bytes");
                return false;
            }
            snprintf(path, sizeof path, "tenants.%s.", name);
            if (rwq_json_kind(v) != RWQ_OBJECT) {
                snprintf(err, errsize, "config.tenants.%s: must be an object with "
                         "min_success_pct and/or max_p95_ms", name);
                return false;
            }
            if (!only_keys(v, per_tenant, path, err, errsize)) return false;
            override *o = &s->overrides[s->noverrides++];
            memcpy(o->name, name, sizeof name);
            o->t = s->dflt;
            if (!read_target(v, path, "min_success_pct", &o->t.min_success_pct, &o->has_success,
                             err, errsize) ||
                !read_target(v, path, "max_p95_ms", &o->t.max_p95_ms, &o->has_p95, err, errsize))
                return false;
        }
    }
    /* Overrides name only what they change; the rest follows the defaults. */
    for (int i = 0; i < s->noverrides; i++) {
        override *o = &s->overrides[i];
        if (!o->has_success) o->t.min_success_pct = s->dflt.min_success_pct;
        if (!o->has_p95) o->t.max_p95_ms = s->dflt.max_p95_ms;
    }
    return true;
}

static const override *find_override(const char *name) {
    for (int i = 0; i < cfg.noverrides; i++)
        if (strcmp(cfg.overrides[i].name, name) == 0) return &cfg.overrides[i];
    return NULL;
}

static targets targets_of(const tenant *t) {
    const override *o = find_override(t->name);
    return o ? o->t : cfg.dflt;
}

static void write_settings(rwq_writer *out) {
    rwq_w_object(out);
    rwq_w_key(out, "min_success_pct");
    rwq_w_number(out, cfg.dflt.min_success_pct);
    rwq_w_key(out, "max_p95_ms");
    rwq_w_number(out, cfg.dflt.max_p95_ms);
    rwq_w_key(out, "tenants");
    rwq_w_object(out);
    for (int i = 0; i < cfg.noverrides; i++) {
        const override *o = &cfg.overrides[i];
        rwq_w_key(out, o->name);
        rwq_w_object(out);
        if (o->has_success) {
            rwq_w_key(out, "min_success_pct");
            rwq_w_number(out, o->t.min_success_pct);
        }
        if (o->has_p95) {
            rwq_w_key(out, "max_p95_ms");
            rwq_w_number(out, o->t.max_p95_ms);
        }
        rwq_w_end_object(out);
    }
    rwq_w_end_object(out);
    w_member_str(out, "sla_window", cfg.sla_buckets == BUCKETS_1M ? "1m" : "5m");
    rwq_w_key(out, "min_samples");
    rwq_w_int(out, cfg.min_samples);
    rwq_w_key(out, "at_risk");
    rwq_w_number(out, cfg.at_risk);
    rwq_w_key(out, "alerts");
    rwq_w_bool(out, cfg.alerts);
    rwq_w_end_object(out);
}

static void write_error(rwq_writer *out, const char *message) {
    rwq_w_object(out);
    w_member_str(out, "error", message);
    rwq_w_end_object(out);
}

/* ---- windows ------------------------------------------------------------------------------ */

static int64_t now_k(void) { return now_ms / BUCKET_MS; }

static bool in_window(const bucket *b, int nb) {
    return b->k >= 0 && b->k > now_k() - nb && b->k <= now_k();
}

static window window_of(const tenant *t, int nb) {
    window w = {0};
    static uint32_t hist[NBINS];
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < NBUCKETS; i++) {
        const bucket *b = &t->b[i];
        if (!in_window(b, nb)) continue;
        w.ok += b->ok;
        w.failed += b->failed;
        w.dead += b->dead;
        for (int j = 0; j < NBINS; j++) hist[j] += b->hist[j];
    }
    for (int j = 0; j < NBINS; j++) w.runs += hist[j];
    uint32_t attempts = w.ok + w.failed;
    w.success_pct = attempts ? 100.0 * w.ok / attempts : NAN;
    w.p50 = quantile(hist, w.runs, 0.50);
    w.p95 = quantile(hist, w.runs, 0.95);
    /* per second over the window, or over the time since the tenant was first seen */
    double span = (double)(now_ms - t->first_ms) / 1000.0;
    double window_s = nb * BUCKET_MS / 1000.0;
    if (span > window_s) span = window_s;
    if (span < BUCKET_MS / 1000.0) span = BUCKET_MS / 1000.0;
    w.per_s = w.ok / span;
    return w;
}

static double bucket_p95(const bucket *b) {
    uint32_t hist[NBINS], total = 0;
    for (int j = 0; j < NBINS; j++) total += hist[j] = b->hist[j];
    return quantile(hist, total, 0.95);
}

static verdict judge(const tenant *t) {
    verdict v;
    targets tg = targets_of(t);
    v.w = window_of(t, cfg.sla_buckets);
    v.score = 0;
    uint32_t attempts = v.w.ok + v.w.failed;
    /* success rate: the error budget is 100 - min_success_pct */
    if ((int64_t)attempts < cfg.min_samples) {
        v.kind[KIND_SUCCESS] = ST_NODATA;
    } else {
        double budget = 100.0 - tg.min_success_pct, used = 100.0 - v.w.success_pct;
        double share = budget > 0 ? used / budget : (used > 0 ? 2.0 : 0.0);
        v.kind[KIND_SUCCESS] = v.w.success_pct < tg.min_success_pct ? ST_BREACH
                               : share >= cfg.at_risk && used > 0 ? ST_RISK
                                                                  : ST_OK;
        if (share > v.score) v.score = share;
    }
    if ((int64_t)v.w.runs < cfg.min_samples) {
        v.kind[KIND_P95] = ST_NODATA;
    } else {
        double share = v.w.p95 / tg.max_p95_ms;
        v.kind[KIND_P95] = v.w.p95 > tg.max_p95_ms ? ST_BREACH
                           : share >= cfg.at_risk  ? ST_RISK
                                                   : ST_OK;
        if (share > v.score) v.score = share;
    }
    v.status = v.kind[0] > v.kind[1] ? v.kind[0] : v.kind[1];
    return v;
}

/* ---- tenants ------------------------------------------------------------------------------ */

static bool tenant_idle(const tenant *t) {
    for (int i = 0; i < NBUCKETS; i++)
        if (in_window(&t->b[i], NBUCKETS)) return false;
    return !t->breached[0] && !t->breached[1];
}

static void tenant_reset(tenant *t, const char *name) {
    memset(t, 0, sizeof *t);
    t->used = true;
    snprintf(t->name, sizeof t->name, "%s", name);
    for (int i = 0; i < NBUCKETS; i++) t->b[i].k = -1;
    t->first_ms = now_ms;
}

/* The tenant named `name`, added if new; NULL when all slots hold active tenants. */
static tenant *tenant_get(const char *name) {
    tenant *free_slot = NULL, *idle = NULL;
    for (int i = 0; i < MAX_TENANTS; i++) {
        tenant *t = &tenants[i];
        if (!t->used) {
            if (!free_slot) free_slot = t;
        } else if (strcmp(t->name, name) == 0) {
            return t;
        } else if (!idle && tenant_idle(t) && !find_override(t->name)) {
            idle = t;
        }
    }
    tenant *t = free_slot ? free_slot : idle;
    if (!t) return NULL;
    if (selected[0] && t->used && strcmp(selected, t->name) == 0) selected[0] = 0;
    tenant_reset(t, name);
    return t;
}

/* The tenant of a job event: data.tenant, else the queue's name after "tenant.". */
static bool tenant_name(rwq_json event, char *name, char *queue) {
    text_of(rwq_json_get(event, "queue"), queue, QUEUE_BYTES);
    if (text_of(rwq_json_get(rwq_json_get(event, "data"), "tenant"), name, NAME_BYTES))
        return true;
    size_t plen = strlen(QUEUE_PREFIX);
    if (strncmp(queue, QUEUE_PREFIX, plen) == 0 && queue[plen]) {
        snprintf(name, NAME_BYTES, "%s", queue + plen);
        return true;
    }
    return false;
}

static bucket *bucket_at(tenant *t, int64_t ts) {
    int64_t k = ts / BUCKET_MS;
    if (k <= now_k() - NBUCKETS || k < 0) return NULL; /* older than the 5 min window */
    bucket *b = &t->b[k % NBUCKETS];
    if (b->k == k) return b;
    if (b->k > k) return NULL;
    memset(b, 0, sizeof *b);
    b->k = k;
    return b;
}

static void add_run(bucket *b, double ms) {
    if (!isfinite(ms) || ms < 0) return;
    uint16_t *h = &b->hist[bin_of(ms)];
    if (*h < UINT16_MAX) (*h)++;
}

static void on_job(rwq_json event, rwq_json type, int64_t ts) {
    char name[NAME_BYTES], queue[QUEUE_BYTES];
    if (ts / BUCKET_MS <= now_k() - NBUCKETS) return; /* older than the 5 min window */
    if (!tenant_name(event, name, queue)) return;
    tenant *t = tenant_get(name);
    if (!t) {
        untracked_events++;
        return;
    }
    if (queue[0]) memcpy(t->queue, queue, sizeof queue);
    bucket *b = bucket_at(t, ts);
    if (!b) return; /* older than the window */
    if (ts > t->last_ms) t->last_ms = ts;
    if (ts < t->first_ms) t->first_ms = ts;
    t->touched = true;
    rwq_json data = rwq_json_get(event, "data");
    double ms = rwq_json_number(rwq_json_get(data, "duration_ms"), NAN);
    if (rwq_json_equals(type, "job.completed")) {
        b->ok++;
        add_run(b, ms);
    } else if (rwq_json_equals(type, "job.failed")) {
        b->failed++;
        add_run(b, ms);
        text_of(rwq_json_get(data, "error"), t->last_error, sizeof t->last_error);
    } else { /* job.dead_lettered */
        b->dead++;
        char error[ERROR_BYTES];
        if (text_of(rwq_json_get(data, "error"), error, sizeof error))
            memcpy(t->last_error, error, sizeof error);
    }
}

static void on_queue_stats(rwq_json event) {
    char queue[QUEUE_BYTES];
    size_t plen = strlen(QUEUE_PREFIX);
    text_of(rwq_json_get(event, "queue"), queue, sizeof queue);
    if (strncmp(queue, QUEUE_PREFIX, plen) != 0 || !queue[plen]) return; /* not a tenant's */
    tenant *t = tenant_get(queue + plen);
    if (!t) return;
    rwq_json data = rwq_json_get(event, "data");
    memcpy(t->queue, queue, sizeof queue);
    t->has_stats = true;
    t->pending = rwq_json_int(rwq_json_get(data, "pending"), 0);
    t->oldest_pending_s = rwq_json_number(rwq_json_get(data, "oldest_pending_age_s"), NAN);
}

/* ---- alerts ------------------------------------------------------------------------------- */

static bool valid_queue(const char *q) {
    size_t n = strlen(q);
    if (n == 0 || n > 128) return false;
    for (size_t i = 0; i < n; i++) {
        char c = q[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != ':' && c != '-'))) return false;
    }
    return true;
}

/* "; 12 dead letters, latest: <error>" from list_dead, when admin.queue.peek is granted. */
static void dead_letters(const tenant *t, char *buf, size_t size) {
    buf[0] = 0;
    if (peek_denied || !valid_queue(t->queue)) return;
    rwq_writer args = {0};
    rwq_w_object(&args);
    w_member_str(&args, "queue", t->queue);
    w_member_str(&args, "tenant", t->name);
    rwq_w_key(&args, "limit");
    rwq_w_int(&args, 1);
    rwq_w_end_object(&args);
    rwq_result r = rwq_call(list_dead, &args);
    rwq_json code = rwq_result_error(r);
    if (rwq_json_kind(code) != RWQ_ABSENT) {
        peek_denied = rwq_json_equals(code, "permission_denied");
    } else {
        int64_t total = rwq_json_int(rwq_json_get(r.value, "total"), 0);
        char error[ERROR_BYTES] = "";
        rwq_json job = rwq_json_at(rwq_json_get(r.value, "jobs"), 0);
        text_of(rwq_json_get(job, "last_error"), error, sizeof error);
        if (error[0])
            snprintf(buf, size, "\n%lld dead letters in %s; the newest: %s", (long long)total,
                     t->queue, error);
        else
            snprintf(buf, size, "\n%lld dead letters in %s", (long long)total, t->queue);
    }
    rwq_result_free(&r);
}

/* Sends the breach alert of one kind; false when it should be tried again later. */
static bool send_breach(tenant *t, int kind, const verdict *v) {
    targets tg = targets_of(t);
    const char *window = cfg.sla_buckets == BUCKETS_1M ? "1m" : "5m";
    char title[200], key[128], message[1200], actual[32], target[32], extra[400];
    int name_len = (int)utf8_len(t->name, 100); /* the key is at most 128 characters */
    if (kind == KIND_SUCCESS) {
        fmt_pct(actual, sizeof actual, v->w.success_pct);
        fmt_pct(target, sizeof target, tg.min_success_pct);
        snprintf(title, sizeof title, "SLA breach: %.*s success rate %s < %s", name_len,
                 t->name, actual, target);
    } else {
        fmt_ms(actual, sizeof actual, v->w.p95);
        fmt_ms(target, sizeof target, tg.max_p95_ms);
        snprintf(title, sizeof title, "SLA breach: %.*s p95 %s > %s", name_len, t->name, actual,
                 target);
    }
    snprintf(key, sizeof key, "sla:%.*s:%s", name_len, t->name, KIND_NAMES[kind]);
    char p50[32], p95[32], pct[32];
    fmt_ms(p50, sizeof p50, v->w.p50);
    fmt_ms(p95, sizeof p95, v->w.p95);
    fmt_pct(pct, sizeof pct, v->w.success_pct);
    dead_letters(t, extra, sizeof extra);
    snprintf(message, sizeof message,
             "Tenant %s over the last %s: %u runs, %u failed (success %s), %u dead-lettered; "
             "p50 %s, p95 %s; %.1f jobs/s. Targets: success >= %.1f%%, p95 <= %.0f ms.%s%s%s",
             t->name, window, v->w.ok + v->w.failed, v->w.failed, pct, v->w.dead, p50, p95,
             v->w.per_s, tg.min_success_pct, tg.max_p95_ms, extra,
             t->last_error[0] ? "\nLast error: " : "", t->last_error);
    utf8_clip(title, sizeof title);
    utf8_clip(message, sizeof message);
    rwq_writer args = {0};
    rwq_w_object(&args);
    w_member_str(&args, "severity", "critical");
    w_member_str(&args, "title", title);
    w_member_str(&args, "message", message);
    w_member_str(&args, "key", key);
    rwq_w_end_object(&args);
    rwq_result r = rwq_call(send_alert, &args);
    rwq_json code = rwq_result_error(r);
    bool sent = rwq_json_kind(code) == RWQ_ABSENT;
    if (!sent && rwq_json_equals(code, "permission_denied")) {
        alerts_denied = true; /* shown in the panel; not retried on every batch */
        rwq_log("warning", "admin.alerts.send is not granted: SLA breaches are not alerted");
    } else if (!sent && !rwq_json_equals(code, "rate_limited")) {
        char line[400], why[300];
        text_of(rwq_json_get(rwq_json_get(r.value, "error"), "message"), why, sizeof why);
        snprintf(line, sizeof line, "send_alert failed (%.*s): %s", (int)code.n, code.p, why);
        utf8_clip(line, sizeof line);
        rwq_log("error", line);
    }
    rwq_result_free(&r);
    if (sent) {
        t->alerts_sent++;
        alerts_total++;
    }
    return sent || alerts_denied;
}

/* Sends an alert for each kind that went into breach. A breached kind is re-armed once it
 * has been ok (not merely at risk) for REARM_MS, so a tenant hovering at its target does not
 * alert on every crossing. */
static void check_alerts(void) {
    /* A tenant's verdict changes with its new runs, or as the windows slide: every tenant
     * once per 10 s bucket, else only those with new runs (most batches hold a few events). */
    bool all = now_k() != checked_k;
    checked_k = now_k();
    for (int i = 0; i < MAX_TENANTS; i++) {
        tenant *t = &tenants[i];
        if (!t->used || !(all || t->touched)) continue;
        t->touched = false;
        verdict v = judge(t);
        for (int kind = 0; kind < NKINDS; kind++) {
            int st = v.kind[kind];
            if (st == ST_BREACH && !t->breached[kind]) {
                if (!cfg.alerts || alerts_denied) t->breached[kind] = true;
                else t->breached[kind] = send_breach(t, kind, &v);
                t->ok_since[kind] = 0;
            } else if (t->breached[kind] && st == ST_OK) {
                if (!t->ok_since[kind]) t->ok_since[kind] = now_ms;
                if (now_ms - t->ok_since[kind] >= REARM_MS) {
                    char line[200];
                    snprintf(line, sizeof line, "%.*s recovered: %s within its SLA",
                             (int)utf8_len(t->name, 100), t->name, KIND_NAMES[kind]);
                    rwq_log("info", line);
                    t->breached[kind] = false;
                    t->ok_since[kind] = 0;
                }
            } else if (st != ST_OK) {
                t->ok_since[kind] = 0;
            }
        }
    }
}

/* ---- hooks -------------------------------------------------------------------------------- */

RWQ_HOOK(initialize) {
    char err[300];
    init_edges();
    for (int i = 0; i < MAX_TENANTS; i++) tenants[i].used = false;
    if (!parse_settings(arg, &cfg, err, sizeof err)) write_error(out, err);
}

RWQ_HOOK(set_config) {
    char err[300];
    settings s;
    if (!parse_settings(arg, &s, err, sizeof err)) {
        write_error(out, err);
        return;
    }
    cfg = s;
}

RWQ_HOOK(get_config) { write_settings(out); }

RWQ_HOOK(on_event) {
    rwq_iter it = rwq_json_iter(arg);
    rwq_json event;
    /* the clock first: a batch's events are judged against its newest time */
    while (rwq_json_next(&it, &event)) {
        int64_t ts = (int64_t)rwq_json_number(rwq_json_get(event, "ts"), 0);
        if (ts > now_ms) now_ms = ts;
    }
    it = rwq_json_iter(arg);
    while (rwq_json_next(&it, &event)) {
        rwq_json type = rwq_json_get(event, "type");
        int64_t ts = (int64_t)rwq_json_number(rwq_json_get(event, "ts"), (double)now_ms);
        events_seen++;
        if (rwq_json_equals(type, "job.completed") || rwq_json_equals(type, "job.failed") ||
            rwq_json_equals(type, "job.dead_lettered"))
            on_job(event, type, ts);
        else if (rwq_json_equals(type, "queue.stats"))
            on_queue_stats(event);
    }
    check_alerts();
    rwq_w_object(out);
    rwq_w_key(out, "changed");
    rwq_w_bool(out, true);
    rwq_w_end_object(out);
}

RWQ_HOOK(on_input) {
    rwq_json kind = rwq_json_get(arg, "kind");
    bool changed = false;
    if (rwq_json_equals(kind, "key")) {
        rwq_json key = rwq_json_get(arg, "key");
        if (rwq_json_equals(key, "w")) {
            view_buckets = view_buckets == NBUCKETS ? BUCKETS_1M : NBUCKETS;
            changed = true;
        } else if (rwq_json_equals(key, "x") && selected[0]) {
            selected[0] = 0;
            changed = true;
        }
    } else if (rwq_json_equals(kind, "select") &&
               rwq_json_equals(rwq_json_get(arg, "id"), "tenants")) {
        char name[NAME_BYTES];
        text_of(rwq_json_get(arg, "value"), name, sizeof name);
        /* selecting the shown tenant again closes its details */
        if (strcmp(name, selected) == 0) selected[0] = 0;
        else memcpy(selected, name, sizeof name);
        changed = true;
    }
    rwq_w_object(out);
    rwq_w_key(out, "changed");
    rwq_w_bool(out, changed);
    rwq_w_end_object(out);
}

typedef struct {
    tenant *t;
    verdict v;
} row;

static int row_order(const void *a, const void *b) {
    const row *x = a, *y = b;
    if (x->v.status != y->v.status) return y->v.status - x->v.status;
    if (x->v.score != y->v.score) return y->v.score > x->v.score ? 1 : -1;
    return strcmp(x->t->name, y->t->name);
}

static void render_details(rwq_writer *out, const tenant *t, const verdict *v) {
    targets tg = targets_of(t);
    window w1 = window_of(t, BUCKETS_1M), w5 = window_of(t, NBUCKETS);
    char buf[64], a[32], b[32], title[NAME_BYTES + 16];
    snprintf(title, sizeof title, "%s: %s", t->name, STATUS_TEXT[v->status]);
    rwq_w_object(out);
    w_member_str(out, "type", "kv");
    w_member_str(out, "title", title);
    rwq_w_key(out, "items");
    rwq_w_array(out);
#define ITEM(k, v)                                                                              \
    do {                                                                                        \
        rwq_w_array(out);                                                                       \
        rwq_w_string(out, k);                                                                   \
        rwq_w_string(out, v);                                                                   \
        rwq_w_end_array(out);                                                                   \
    } while (0)
    fmt_pct(a, sizeof a, tg.min_success_pct);
    fmt_ms(b, sizeof b, tg.max_p95_ms);
    snprintf(buf, sizeof buf, "success >= %s, p95 <= %s%s", a, b,
             find_override(t->name) ? " (override)" : "");
    ITEM("targets", buf);
    const window *ws[2] = {&w1, &w5};
    const char *names[2] = {"last 1m", "last 5m"};
    for (int i = 0; i < 2; i++) {
        char pct[32], p50[32], p95[32];
        fmt_pct(pct, sizeof pct, ws[i]->success_pct);
        fmt_ms(p50, sizeof p50, ws[i]->p50);
        fmt_ms(p95, sizeof p95, ws[i]->p95);
        snprintf(buf, sizeof buf, "%s ok, p50 %s, p95 %s, %.1f/s", pct, p50, p95, ws[i]->per_s);
        ITEM(names[i], buf);
    }
    snprintf(buf, sizeof buf, "%u failed, %u dead-lettered (5m)", w5.failed, w5.dead);
    ITEM("errors", buf);
    if (t->has_stats) {
        if (isfinite(t->oldest_pending_s))
            snprintf(buf, sizeof buf, "%lld pending, oldest %.0f s", (long long)t->pending,
                     t->oldest_pending_s);
        else snprintf(buf, sizeof buf, "%lld pending", (long long)t->pending);
        ITEM("backlog", buf);
    }
    if (t->last_error[0]) ITEM("last error", t->last_error);
    snprintf(buf, sizeof buf, "%d sent%s", t->alerts_sent,
             t->breached[0] || t->breached[1] ? "; re-armed once it recovers" : "");
    ITEM("alerts", buf);
#undef ITEM
    rwq_w_end_array(out);
    rwq_w_end_object(out);

    /* p95 per 10 s over the 5 minutes, oldest first (empty buckets as 0) */
    rwq_w_object(out);
    w_member_str(out, "type", "sparkline");
    w_member_str(out, "label", "p95 ms / 10 s");
    rwq_w_key(out, "values");
    rwq_w_array(out);
    for (int64_t k = now_k() - NBUCKETS + 1; k <= now_k(); k++) {
        const bucket *bk = k >= 0 ? &t->b[k % NBUCKETS] : NULL;
        double p = bk && bk->k == k ? bucket_p95(bk) : NAN;
        rwq_w_number(out, isfinite(p) ? p : 0);
    }
    rwq_w_end_array(out);
    rwq_w_end_object(out);
}

RWQ_HOOK(render) {
    static row rows[MAX_TENANTS];
    int width = (int)rwq_json_int(rwq_json_get(arg, "width"), 80);
    bool wide = width >= 72;
    int n = 0, counts[4] = {0};
    for (int i = 0; i < MAX_TENANTS; i++) {
        if (!tenants[i].used) continue;
        rows[n].t = &tenants[i];
        rows[n].v = judge(&tenants[i]);
        counts[rows[n].v.status]++;
        n++;
    }
    qsort(rows, (size_t)n, sizeof rows[0], row_order);

    char text[256], clock[32];
    const char *view = view_buckets == BUCKETS_1M ? "1m" : "5m";
    const char *sla = cfg.sla_buckets == BUCKETS_1M ? "1m" : "5m";
    rwq_w_array(out);
    rwq_w_object(out);
    w_member_str(out, "type", "rows");
    rwq_w_key(out, "children");
    rwq_w_array(out);

    /* header: status counts and the targets */
    rwq_w_object(out);
    w_member_str(out, "type", "columns");
    rwq_w_key(out, "children");
    rwq_w_array(out);
    snprintf(text, sizeof text, "%d breach", counts[ST_BREACH]);
    rwq_ui_badge(out, text, counts[ST_BREACH] ? "error" : "muted");
    snprintf(text, sizeof text, "%d at risk", counts[ST_RISK]);
    rwq_ui_badge(out, text, counts[ST_RISK] ? "warning" : "muted");
    snprintf(text, sizeof text, "%d ok", counts[ST_OK]);
    rwq_ui_badge(out, text, counts[ST_OK] ? "ok" : "muted");
    snprintf(text, sizeof text, "SLA over %s: success >= %.1f%%, p95 <= %.0f ms", sla,
             cfg.dflt.min_success_pct, cfg.dflt.max_p95_ms);
    ui_text(out, text, "dim");
    rwq_w_end_array(out);
    rwq_w_key(out, "widths");
    rwq_w_array(out);
    rwq_w_int(out, 1);
    rwq_w_int(out, 1);
    rwq_w_int(out, 1);
    rwq_w_int(out, 4);
    rwq_w_end_array(out);
    rwq_w_end_object(out);

    if (n == 0) {
        ui_text(out, "No tenant traffic yet: waiting for job events on tenant.* queues.", "dim");
    } else {
        static const char *const wide_cols[] = {"tenant", "status", "success", "p50 ms",
                                                "p95 ms", "jobs/s", "failed", "dead", "pending"};
        static const char *const narrow_cols[] = {"tenant", "status", "success", "p95 ms",
                                                  "jobs/s"};
        char title[64];
        snprintf(title, sizeof title, "Tenants, last %s (worst first)", view);
        rwq_w_object(out);
        w_member_str(out, "type", "table");
        w_member_str(out, "id", "tenants");
        w_member_str(out, "title", title);
        rwq_w_key(out, "columns");
        rwq_w_array(out);
        int ncols = wide ? 9 : 5;
        for (int i = 0; i < ncols; i++) rwq_w_string(out, wide ? wide_cols[i] : narrow_cols[i]);
        rwq_w_end_array(out);
        rwq_w_key(out, "rows");
        rwq_w_array(out);
        for (int i = 0; i < n; i++) {
            const tenant *t = rows[i].t;
            window w = view_buckets == cfg.sla_buckets ? rows[i].v.w : window_of(t, view_buckets);
            char pct[32];
            fmt_pct(pct, sizeof pct, w.success_pct);
            rwq_w_array(out);
            rwq_w_string(out, t->name);
            rwq_w_string(out, STATUS_TEXT[rows[i].v.status]);
            rwq_w_string(out, pct);
            if (wide) w_fixed(out, w.p50, 0);
            w_fixed(out, w.p95, 0);
            w_fixed(out, w.per_s, 1);
            if (wide) {
                rwq_w_int(out, w.failed);
                rwq_w_int(out, w.dead);
                if (t->has_stats) rwq_w_int(out, t->pending);
                else rwq_w_null(out);
            }
            rwq_w_end_array(out);
        }
        rwq_w_end_array(out);
        rwq_w_key(out, "row_styles");
        rwq_w_array(out);
        for (int i = 0; i < n; i++) {
            switch (rows[i].v.status) {
            case ST_BREACH: rwq_w_string(out, "bold red"); break;
            case ST_RISK: rwq_w_string(out, "yellow"); break;
            case ST_NODATA: rwq_w_string(out, "dim"); break;
            default: rwq_w_null(out);
            }
        }
        rwq_w_end_array(out);
        rwq_w_end_object(out);
    }

    for (int i = 0; i < n && selected[0]; i++)
        if (strcmp(rows[i].t->name, selected) == 0) render_details(out, rows[i].t, &rows[i].v);

    /* footer: the clock, what is off, the keys */
    fmt_clock(clock, sizeof clock, now_ms);
    snprintf(text, sizeof text, "as of %s · %lld alerts sent%s%s · w: 1m/5m · Enter: details",
             now_ms ? clock : "-", (long long)alerts_total,
             alerts_denied ? " · alerts NOT permitted (admin.alerts.send)"
             : !cfg.alerts ? " · alerts off"
                           : "",
             untracked_events ? " · tenant cap reached" : "");
    ui_text(out, text, "dim");

    rwq_w_end_array(out);
    rwq_w_end_object(out);
    rwq_w_end_array(out);
}

RWQ_HOOK(health_check) {
    int n = 0, breaching = 0;
    for (int i = 0; i < MAX_TENANTS; i++) {
        if (!tenants[i].used) continue;
        n++;
        breaching += judge(&tenants[i]).status == ST_BREACH;
    }
    rwq_w_object(out);
    w_member_str(out, "status", alerts_denied || untracked_events ? "degraded" : "ok");
    rwq_w_key(out, "tenants");
    rwq_w_int(out, n);
    rwq_w_key(out, "breaching");
    rwq_w_int(out, breaching);
    rwq_w_key(out, "events");
    rwq_w_int(out, events_seen);
    rwq_w_key(out, "untracked_events");
    rwq_w_int(out, untracked_events);
    rwq_w_key(out, "alerts_sent");
    rwq_w_int(out, alerts_total);
    if (alerts_denied) w_member_str(out, "reason", "admin.alerts.send is not granted");
    else if (untracked_events) w_member_str(out, "reason", "more than 64 active tenants");
    rwq_w_end_object(out);
}

/* A new version takes over which alerts were sent (so a reload does not alert again), the
 * view and the clock; the windows refill from new events. */
RWQ_HOOK(export_state) {
    rwq_w_object(out);
    rwq_w_key(out, "now_ms");
    rwq_w_int(out, now_ms);
    w_member_str(out, "view", view_buckets == BUCKETS_1M ? "1m" : "5m");
    rwq_w_key(out, "alerts_sent");
    rwq_w_int(out, alerts_total);
    rwq_w_key(out, "breached");
    rwq_w_object(out);
    for (int i = 0; i < MAX_TENANTS; i++) {
        const tenant *t = &tenants[i];
        if (!t->used || !(t->breached[0] || t->breached[1])) continue;
        rwq_w_key(out, t->name);
        rwq_w_array(out);
        for (int kind = 0; kind < NKINDS; kind++)
            if (t->breached[kind]) rwq_w_string(out, KIND_NAMES[kind]);
        rwq_w_end_array(out);
    }
    rwq_w_end_object(out);
    rwq_w_end_object(out);
}

RWQ_HOOK(import_state) {
    rwq_json state = rwq_json_get(arg, "state");
    int64_t ts = rwq_json_int(rwq_json_get(state, "now_ms"), 0);
    if (ts > now_ms) now_ms = ts;
    if (rwq_json_equals(rwq_json_get(state, "view"), "1m")) view_buckets = BUCKETS_1M;
    alerts_total = rwq_json_int(rwq_json_get(state, "alerts_sent"), 0);
    rwq_iter it = rwq_json_iter(rwq_json_get(state, "breached"));
    rwq_json k, v;
    while (rwq_json_next_member(&it, &k, &v)) {
        char name[NAME_BYTES];
        if (!text_of(k, name, sizeof name)) continue;
        tenant *t = tenant_get(name);
        if (!t) continue;
        rwq_iter kinds = rwq_json_iter(v);
        rwq_json kind;
        while (rwq_json_next(&kinds, &kind))
            for (int j = 0; j < NKINDS; j++)
                if (rwq_json_equals(kind, KIND_NAMES[j])) t->breached[j] = true;
    }
}
