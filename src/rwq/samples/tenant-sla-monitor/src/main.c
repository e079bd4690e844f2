/*
 * tenant-sla-monitor: per-tenant success rate, p50/p95 run time, throughput and errors over
 * sliding windows (last 1 and 5 minutes, in 10 s buckets), checked against SLA targets from
 * the config; a table sorted worst-first, and an alert (send_alert, one dedup key per tenant
 * and kind) when a tenant breaches, sent again every 30 s while the breach goes on.
 *
 * Time is event time: the clock is the newest `ts` of the events received (job events and
 * the 5 s queue.stats samples), so the windows slide with the queue, not the host, and the
 * same events always give the same panel.
 *
 * Memory is bounded whatever the traffic: at most MAX_TENANTS tenants (an idle one is
 * replaced by a new one; past that, events of new tenants are only counted), each with
 * NBUCKETS buckets of counters and a NBINS-bin run-time histogram.
 *
 * The parts: sla.h (limits, types, the shared state), config.c, window.c (histogram, windows,
 * verdicts), tenants.c (the events in), alerts.c, render.c and text.c; this file holds the
 * state and the hooks.
 *
 * Build: src/rwq/samples/build.sh tenant-sla-monitor (sdk/c/build.sh src/rwq/samples/tenant-sla-monitor/src
 * src/rwq/samples/tenant-sla-monitor/main.wasm).
 */
#define RWQ_IMPLEMENTATION
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const KIND_NAMES[NKINDS] = {"success_rate", "p95"};
const char *const STATUS_TEXT[4] = {"no data", "ok", "at risk", "BREACH"};

tenant tenants[MAX_TENANTS];
settings cfg;
int64_t now_ms;
int64_t events_seen, untracked_events;
bool alerts_denied, peek_denied;
int64_t alerts_total;
int64_t checked_k = -1;
int view_buckets = NBUCKETS;
char selected[NAME_BYTES];

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
                if (rwq_json_equals(kind, KIND_NAMES[j])) {
                    t->breached[j] = true;
                    t->alerted_at[j] = now_ms; /* repeated 30 s after the hand-over */
                }
    }
}

