/* Alerts: send_alert on a breach of a tenant and kind, repeated while the breach goes on. */
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Sends the breach alert of one kind (a `repeat` of one going on); false when it should be
 * tried again later. */
static bool send_breach(tenant *t, int kind, const verdict *v, bool repeat) {
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
    rwq_w_key(&args, "repeat");
    rwq_w_bool(&args, repeat);
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

/* Sends an alert for each kind that went into breach, and again every REALERT_MS while the
 * breach goes on (same key: the alert manager counts it and keeps it current). A breached
 * kind is re-armed once it has been ok (not merely at risk) for REARM_MS, so a tenant
 * hovering at its target does not raise a new alert on every crossing. */
void check_alerts(void) {
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
                else t->breached[kind] = send_breach(t, kind, &v, false);
                t->ok_since[kind] = 0;
                t->alerted_at[kind] = now_ms;
            } else if (st == ST_BREACH && cfg.alerts && !alerts_denied &&
                       now_ms - t->alerted_at[kind] >= REALERT_MS) {
                /* still in breach: the same alert (same key) again, with today's figures */
                if (send_breach(t, kind, &v, true)) t->alerted_at[kind] = now_ms;
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
