/* The run-time histogram, the sliding windows and the SLA verdict of a tenant. */
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double edges[NBINS]; /* the bins' upper edges, ms (init_edges) */

void init_edges(void) {
    double e = 1;
    for (int i = 0; i < NBINS; i++) {
        edges[i] = e;
        double next = floor(e * 1.1 + 0.5);
        e = next < e + 1 ? e + 1 : next;
    }
}

int bin_of(double ms) {
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


int64_t now_k(void) { return now_ms / BUCKET_MS; }

bool in_window(const bucket *b, int nb) {
    return b->k >= 0 && b->k > now_k() - nb && b->k <= now_k();
}

window window_of(const tenant *t, int nb) {
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

double bucket_p95(const bucket *b) {
    uint32_t hist[NBINS], total = 0;
    for (int j = 0; j < NBINS; j++) total += hist[j] = b->hist[j];
    return quantile(hist, total, 0.95);
}

verdict judge(const tenant *t) {
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
