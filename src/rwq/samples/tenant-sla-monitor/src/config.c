/* The configuration: SLA targets (default and per tenant), windows, thresholds. */
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
bool parse_settings(rwq_json c, settings *s, char *err, size_t errsize) {
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

const override *find_override(const char *name) {
    for (int i = 0; i < cfg.noverrides; i++)
        if (strcmp(cfg.overrides[i].name, name) == 0) return &cfg.overrides[i];
    return NULL;
}

targets targets_of(const tenant *t) {
    const override *o = find_override(t->name);
    return o ? o->t : cfg.dflt;
}

void write_settings(rwq_writer *out) {
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

void write_error(rwq_writer *out, const char *message) {
    rwq_w_object(out);
    w_member_str(out, "error", message);
    rwq_w_end_object(out);
}
