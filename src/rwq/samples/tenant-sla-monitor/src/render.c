/* The panel: status badges, the tenant table (worst first), a tenant's details. */
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    bool wide = width >= 80; /* the 9 columns need 80 cells with their gaps */
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
