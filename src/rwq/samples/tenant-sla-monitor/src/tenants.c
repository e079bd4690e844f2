/* Tenants (at most MAX_TENANTS) and the job and queue.stats events that feed them. */
#include "rwq.h"
#include "sla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
tenant *tenant_get(const char *name) {
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

void on_job(rwq_json event, rwq_json type, int64_t ts) {
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

void on_queue_stats(rwq_json event) {
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
