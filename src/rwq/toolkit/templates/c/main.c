/* {{name}}: completed and failed jobs per queue, the failure rate over time as a sparkline,
 * the queues' depths, the latest failures, and a button that requeues dead letters.
 *
 * Each hook is RWQ_HOOK(name) { ... }: `arg` is its JSON argument (read it with rwq_json_*),
 * `out` the writer of its result. The ABI: docs/abi.md; the SDK: the top of rwq.h. */
#define RWQ_IMPLEMENTATION /* in exactly one .c file */
#include "rwq.h"

#include <stdio.h>
#include <string.h>

#define BUCKET_MS 10000  /* the sparkline's step: failures per attempts over 10 s of event time */
#define BUCKETS 30       /* steps drawn (the latest 5 minutes) */
#define MAX_QUEUES 32    /* past this, queues are counted under "(other)" */
#define MAX_FAILURES 5   /* rows of the latest-failures table */
#define REFRESH_MS 5000  /* how often the queue depths are read again */
#define ERROR_CHARS 120  /* an error message is cut to this many characters */
#define NAME_BYTES 129   /* a queue name is at most 128 bytes */
#define NAMES_SHOWN 3    /* queues named in a line about the requeue; the rest are counted */
#define NOTE_BYTES 640   /* a line about the requeue */

typedef struct {
    char name[NAME_BYTES];
    int64_t completed, failed;
    int64_t pending, dead; /* from get_queue_stats */
    bool counted, has_depth;
} queue_row;

typedef struct {
    char queue[NAME_BYTES];
    char job[64];
    int64_t attempt;
    char error[ERROR_CHARS * 4 + 1];
} failure_row;

static queue_row queues[MAX_QUEUES + 1]; /* the last one is "(other)" */
static int nqueues;
static struct {
    int64_t id, completed, failed;
} buckets[BUCKETS];
static int64_t newest = -1; /* the newest bucket seen */
static failure_row failures[MAX_FAILURES];
static int nfailures;
static char depths_error[64]; /* why the depths could not be read; "" when they were */
static struct {
    const char *level; /* NULL: no line */
    char text[NOTE_BYTES];
} notes[4]; /* what the last requeue did */

static void reset(void) {
    for (int i = 0; i < nqueues; i++) {
        queues[i].completed = queues[i].failed = 0;
        queues[i].counted = false;
    }
    memset(buckets, 0, sizeof buckets);
    for (int i = 0; i < BUCKETS; i++) buckets[i].id = -1;
    newest = -1;
    nfailures = 0;
    memset(notes, 0, sizeof notes);
}

static queue_row *find_queue(const char *name, bool add) {
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].name, name) == 0) return &queues[i];
    if (!add) return NULL;
    if (nqueues == MAX_QUEUES) name = "(other)";
    for (int i = 0; i < nqueues; i++)
        if (strcmp(queues[i].name, name) == 0) return &queues[i];
    queue_row *q = &queues[nqueues++];
    memset(q, 0, sizeof *q);
    snprintf(q->name, sizeof q->name, "%s", name);
    return q;
}

/* Reads the queues' depths; needs admin.stats.read (without it the panel says so). */
static void refresh(void) {
    rwq_writer args = {0};
    rwq_w_object(&args);
    rwq_w_end_object(&args);
    rwq_result r = rwq_call(get_queue_stats, &args);
    rwq_json code = rwq_result_error(r);
    if (rwq_json_kind(code) != RWQ_ABSENT) {
        if (!rwq_json_string(code, depths_error, sizeof depths_error))
            strcpy(depths_error, "error");
    } else {
        depths_error[0] = 0;
        for (int i = 0; i < nqueues; i++) queues[i].has_depth = false;
        rwq_iter it = rwq_json_iter(rwq_json_get(r.value, "queues"));
        rwq_json stats;
        while (rwq_json_next(&it, &stats)) {
            char name[NAME_BYTES];
            if (!rwq_json_string(rwq_json_get(stats, "queue"), name, sizeof name)) continue;
            queue_row *q = find_queue(name, true);
            q->pending = rwq_json_int(rwq_json_get(stats, "pending"), 0);
            q->dead = rwq_json_int(rwq_json_get(stats, "dead"), 0);
            q->has_depth = true;
        }
    }
    rwq_result_free(&r);
}

static void timer(const char *call) {
    rwq_writer args = {0};
    rwq_w_object(&args);
    rwq_w_key(&args, "id");
    rwq_w_string(&args, "refresh");
    if (strcmp(call, "set") == 0) {
        rwq_w_key(&args, "interval_ms");
        rwq_w_int(&args, REFRESH_MS);
        rwq_w_end_object(&args);
        rwq_result r = rwq_call(set_timer, &args);
        rwq_result_free(&r);
    } else {
        rwq_w_end_object(&args);
        rwq_result r = rwq_call(clear_timer, &args);
        rwq_result_free(&r);
    }
}

RWQ_HOOK(initialize) {
    /* arg is the manifest's config merged with the user's */
    reset();
}

RWQ_HOOK(activate) {
    refresh();
    timer("set");
}

RWQ_HOOK(deactivate) { timer("clear"); }

RWQ_HOOK(on_timer) {
    /* arg: {"id": "refresh", "ts": ...} */
    bool refreshing = rwq_json_equals(rwq_json_get(arg, "id"), "refresh");
    if (refreshing) refresh();
    rwq_w_object(out);
    rwq_w_key(out, "changed");
    rwq_w_bool(out, refreshing);
    rwq_w_end_object(out);
}

/* `text` cut to `chars` characters (UTF-8: continuation bytes are not characters). */
static void cut_chars(char *text, int chars) {
    for (char *p = text; *p; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80 && chars-- == 0) {
            *p = 0;
            return;
        }
    }
}

static void count(rwq_json event, bool failed) {
    char name[NAME_BYTES];
    if (!rwq_json_string(rwq_json_get(event, "queue"), name, sizeof name)) strcpy(name, "(none)");
    queue_row *q = find_queue(name, true);
    if (failed) q->failed++;
    else q->completed++;
    q->counted = true;

    int64_t bucket = (int64_t)(rwq_json_number(rwq_json_get(event, "ts"), 0) / BUCKET_MS);
    if (bucket > newest - BUCKETS) {
        int slot = (int)(bucket % BUCKETS);
        if (buckets[slot].id != bucket) {
            buckets[slot].id = bucket;
            buckets[slot].completed = buckets[slot].failed = 0;
        }
        if (failed) buckets[slot].failed++;
        else buckets[slot].completed++;
        if (bucket > newest) newest = bucket;
    }
    if (failed) { /* newest first */
        memmove(&failures[1], &failures[0], sizeof failures[0] * (MAX_FAILURES - 1));
        if (nfailures < MAX_FAILURES) nfailures++;
        failure_row *f = &failures[0];
        rwq_json data = rwq_json_get(event, "data");
        snprintf(f->queue, sizeof f->queue, "%s", q->name);
        rwq_json_string(rwq_json_get(data, "job_id"), f->job, sizeof f->job);
        f->attempt = rwq_json_int(rwq_json_get(data, "attempt"), 0);
        rwq_json_string(rwq_json_get(data, "error"), f->error, sizeof f->error);
        cut_chars(f->error, ERROR_CHARS);
    }
}

RWQ_HOOK(on_event) {
    /* arg is a batch, oldest first: [{"id", "type", "ts", "source", "queue", "data"}, ...] */
    bool changed = false;
    rwq_iter it = rwq_json_iter(arg);
    rwq_json event;
    while (rwq_json_next(&it, &event)) {
        rwq_json type = rwq_json_get(event, "type");
        bool failed = rwq_json_equals(type, "job.failed");
        if (!failed && !rwq_json_equals(type, "job.completed")) continue;
        count(event, failed);
        changed = true;
    }
    rwq_w_object(out);
    rwq_w_key(out, "changed");
    rwq_w_bool(out, changed);
    rwq_w_end_object(out);
}

/* One decimal, the same in every language of the toolkit's templates. */
static void percent(int64_t part, int64_t whole, char *buf, size_t size) {
    if (whole == 0) {
        snprintf(buf, size, "-");
        return;
    }
    int64_t permille = part * 1000 / whole;
    snprintf(buf, size, "%lld.%lld%%", (long long)(permille / 10), (long long)(permille % 10));
}

static void text(rwq_writer *out, const char *text, const char *level) {
    rwq_w_object(out);
    rwq_w_key(out, "type");
    rwq_w_string(out, "text");
    rwq_w_key(out, "text");
    rwq_w_string(out, text);
    rwq_w_key(out, "level");
    rwq_w_string(out, level);
    rwq_w_end_object(out);
}

static void table_begin(rwq_writer *out, const char *title, const char *const *columns, int n) {
    rwq_w_object(out);
    rwq_w_key(out, "type");
    rwq_w_string(out, "table");
    rwq_w_key(out, "title");
    rwq_w_string(out, title);
    rwq_w_key(out, "columns");
    rwq_w_array(out);
    for (int i = 0; i < n; i++) rwq_w_string(out, columns[i]);
    rwq_w_end_array(out);
    rwq_w_key(out, "rows");
    rwq_w_array(out);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const queue_row *)a)->name, ((const queue_row *)b)->name);
}

RWQ_HOOK(render) {
    /* arg: {"width", "height", "focused"}: the panel body's size in cells */
    static const char *const queue_columns[] = {"queue", "completed", "failed",
                                                "fail %", "pending", "dead"};
    static const char *const failure_columns[] = {"queue", "job", "try", "error"};
    char line[160], pct[16];
    int64_t completed = 0, failed = 0;
    int shown = 0;
    qsort(queues, (size_t)nqueues, sizeof queues[0], by_name);
    for (int i = 0; i < nqueues; i++) {
        completed += queues[i].completed;
        failed += queues[i].failed;
        shown += queues[i].counted || queues[i].has_depth;
    }
    double rates[BUCKETS];
    for (int k = 0; k < BUCKETS; k++) {
        int64_t b = newest - BUCKETS + 1 + k;
        int slot = (int)(((b % BUCKETS) + BUCKETS) % BUCKETS);
        int64_t done = 0, bad = 0;
        if (buckets[slot].id == b) {
            done = buckets[slot].completed;
            bad = buckets[slot].failed;
        }
        rates[k] = done + bad ? bad * 100.0 / (double)(done + bad) : 0.0;
    }

    rwq_w_array(out);
    percent(failed, completed + failed, pct, sizeof pct);
    snprintf(line, sizeof line, "%d queues, %lld completed, %lld failed (%s)", shown,
             (long long)completed, (long long)failed, pct);
    rwq_ui_text(out, line);
    rwq_ui_sparkline(out, "failure %", rates, BUCKETS, 0, 100);

    table_begin(out, "Queues", queue_columns, 6);
    for (int i = 0; i < nqueues; i++) {
        queue_row *q = &queues[i];
        if (!q->counted && !q->has_depth) continue;
        rwq_ui_row_begin(out);
        rwq_w_string(out, q->name);
        rwq_w_int(out, q->completed);
        rwq_w_int(out, q->failed);
        percent(q->failed, q->completed + q->failed, pct, sizeof pct);
        rwq_w_string(out, pct);
        if (q->has_depth) {
            rwq_w_int(out, q->pending);
            rwq_w_int(out, q->dead);
        } else {
            rwq_w_string(out, "-");
            rwq_w_string(out, "-");
        }
        rwq_ui_row_end(out);
    }
    rwq_ui_table_end(out);

    if (nfailures) {
        table_begin(out, "Latest failures", failure_columns, 4);
        for (int i = 0; i < nfailures; i++) {
            rwq_ui_row_begin(out);
            rwq_w_string(out, failures[i].queue);
            rwq_w_string(out, failures[i].job);
            rwq_w_int(out, failures[i].attempt);
            rwq_w_string(out, failures[i].error);
            rwq_ui_row_end(out);
        }
        rwq_ui_table_end(out);
    } else {
        text(out, "no failures yet", "ok");
    }
    if (depths_error[0]) {
        snprintf(line, sizeof line, "pending and dead need admin.stats.read (%s)", depths_error);
        text(out, line, "muted");
    }
    rwq_ui_button(out, "reset", "Reset", 'r', NULL);
    rwq_ui_button(out, "requeue", "Requeue dead letters", 'd', NULL);
    for (int i = 0; i < 4 && notes[i].level; i++) text(out, notes[i].text, notes[i].level);
    rwq_w_end_array(out);
}

/* Appends `text` to note `i`, cut at its end. */
static void add(int i, const char *text) {
    size_t used = strlen(notes[i].text);
    snprintf(notes[i].text + used, NOTE_BYTES - used, "%s", text);
}

/* Note `i`: `prefix`, then names[0..n) as "a, b, c and 2 more", then `suffix`. */
static void note(int i, const char *level, const char *prefix, char names[][NAME_BYTES], int n,
                 const char *suffix) {
    char more[32];
    notes[i].level = level;
    notes[i].text[0] = 0;
    add(i, prefix);
    for (int k = 0; k < n && k < NAMES_SHOWN; k++) {
        if (k) add(i, ", ");
        add(i, names[k]);
    }
    if (n > NAMES_SHOWN) {
        snprintf(more, sizeof more, " and %d more", n - NAMES_SHOWN);
        add(i, more);
    }
    add(i, suffix);
}

/* Moves every queue's dead letters back to pending with requeue_jobs. It needs
 * admin.queue.requeue on that queue: manifest.yaml asks for it only once you uncomment it, so
 * until then (and on queues outside its scope) the call is refused with permission_denied,
 * and the panel says what to ask for. */
static void requeue(void) {
    static char done[MAX_QUEUES + 1][NAME_BYTES], denied[MAX_QUEUES + 1][NAME_BYTES];
    int ndone = 0, ndenied = 0, n = 0;
    int64_t requeued = 0;
    char failed[NOTE_BYTES] = "";
    refresh();
    qsort(queues, (size_t)nqueues, sizeof queues[0], by_name);
    for (int i = 0; i < nqueues && !failed[0]; i++) {
        queue_row *q = &queues[i];
        if (!q->has_depth || q->dead == 0) continue;
        rwq_writer args = {0};
        rwq_w_object(&args);
        rwq_w_key(&args, "queue");
        rwq_w_string(&args, q->name);
        rwq_w_key(&args, "all");
        rwq_w_bool(&args, true);
        rwq_w_end_object(&args);
        rwq_result r = rwq_call(requeue_jobs, &args);
        rwq_json code = rwq_result_error(r);
        if (rwq_json_kind(code) == RWQ_ABSENT) {
            requeued += rwq_json_int(rwq_json_get(r.value, "requeued"), 0);
            strcpy(done[ndone++], q->name);
        } else if (rwq_json_equals(code, "permission_denied")) {
            strcpy(denied[ndenied++], q->name);
        } else {
            char why[64] = "error";
            rwq_json_string(code, why, sizeof why);
            snprintf(failed, sizeof failed, "requeue on %s failed: %s", q->name, why);
        }
        rwq_result_free(&r);
    }
    memset(notes, 0, sizeof notes);
    if (ndone) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "requeued %lld dead letter%s from ", (long long)requeued,
                 requeued == 1 ? "" : "s");
        note(n++, "ok", prefix, done, ndone, "");
    }
    if (failed[0]) note(n++, "error", failed, NULL, 0, "");
    if (ndenied)
        note(n++, "warning", "denied on ", denied, ndenied,
             ": ask for admin.queue.requeue in manifest.yaml");
    if (n == 0) note(n++, "muted", "no dead letters to requeue", NULL, 0, "");
    refresh();
}

RWQ_HOOK(on_input) {
    /* {"kind": "button", "id": "reset"} when Reset is pressed (or its key, r);
     * "id": "requeue" for Requeue dead letters (d) */
    bool button = rwq_json_equals(rwq_json_get(arg, "kind"), "button");
    rwq_json id = rwq_json_get(arg, "id");
    bool changed = true;
    if (button && rwq_json_equals(id, "reset")) reset();
    else if (button && rwq_json_equals(id, "requeue")) requeue();
    else changed = false;
    rwq_w_object(out);
    rwq_w_key(out, "changed");
    rwq_w_bool(out, changed);
    rwq_w_end_object(out);
}

/* Handed to the next version on a hot reload (its import_state): the counts, the sparkline's
 * steps and the latest failures, as the Starlark and AssemblyScript templates hand them over. */
RWQ_HOOK(export_state) {
    rwq_w_object(out);
    rwq_w_key(out, "queues"); /* {"queue": [completed, failed]} */
    rwq_w_object(out);
    for (int i = 0; i < nqueues; i++) {
        if (!queues[i].counted) continue;
        rwq_w_key(out, queues[i].name);
        rwq_w_array(out);
        rwq_w_int(out, queues[i].completed);
        rwq_w_int(out, queues[i].failed);
        rwq_w_end_array(out);
    }
    rwq_w_end_object(out);
    rwq_w_key(out, "buckets"); /* [[step, completed, failed]] */
    rwq_w_array(out);
    for (int i = 0; i < BUCKETS; i++) {
        if (buckets[i].id < 0 || buckets[i].id <= newest - BUCKETS) continue;
        rwq_w_array(out);
        rwq_w_int(out, buckets[i].id);
        rwq_w_int(out, buckets[i].completed);
        rwq_w_int(out, buckets[i].failed);
        rwq_w_end_array(out);
    }
    rwq_w_end_array(out);
    rwq_w_key(out, "newest");
    rwq_w_int(out, newest);
    rwq_w_key(out, "failures"); /* [[queue, job, attempt, error]], newest first */
    rwq_w_array(out);
    for (int i = 0; i < nfailures; i++) {
        rwq_w_array(out);
        rwq_w_string(out, failures[i].queue);
        rwq_w_string(out, failures[i].job);
        rwq_w_int(out, failures[i].attempt);
        rwq_w_string(out, failures[i].error);
        rwq_w_end_array(out);
    }
    rwq_w_end_array(out);
    rwq_w_end_object(out);
}

/* arg: {"from_version": "0.1.0", "state": what the running version's export_state returned} */
RWQ_HOOK(import_state) {
    rwq_json saved = rwq_json_get(arg, "state");
    rwq_iter it = rwq_json_iter(rwq_json_get(saved, "queues"));
    rwq_json key, counts;
    while (rwq_json_next_member(&it, &key, &counts)) {
        char name[NAME_BYTES];
        if (!rwq_json_string(key, name, sizeof name)) continue;
        queue_row *q = find_queue(name, true);
        q->completed = rwq_json_int(rwq_json_at(counts, 0), 0);
        q->failed = rwq_json_int(rwq_json_at(counts, 1), 0);
        q->counted = true;
    }
    newest = rwq_json_int(rwq_json_get(saved, "newest"), -1);
    it = rwq_json_iter(rwq_json_get(saved, "buckets"));
    rwq_json step;
    while (rwq_json_next(&it, &step)) {
        int64_t id = rwq_json_int(rwq_json_at(step, 0), -1);
        if (id < 0 || id <= newest - BUCKETS || id > newest) continue;
        int slot = (int)(id % BUCKETS);
        buckets[slot].id = id;
        buckets[slot].completed = rwq_json_int(rwq_json_at(step, 1), 0);
        buckets[slot].failed = rwq_json_int(rwq_json_at(step, 2), 0);
    }
    nfailures = 0;
    it = rwq_json_iter(rwq_json_get(saved, "failures"));
    rwq_json row;
    while (nfailures < MAX_FAILURES && rwq_json_next(&it, &row)) {
        failure_row *f = &failures[nfailures++];
        memset(f, 0, sizeof *f);
        rwq_json_string(rwq_json_at(row, 0), f->queue, sizeof f->queue);
        rwq_json_string(rwq_json_at(row, 1), f->job, sizeof f->job);
        f->attempt = rwq_json_int(rwq_json_at(row, 2), 0);
        rwq_json_string(rwq_json_at(row, 3), f->error, sizeof f->error);
        cut_chars(f->error, ERROR_CHARS);
    }
}

RWQ_HOOK(health_check) {
    rwq_w_object(out);
    rwq_w_key(out, "status");
    rwq_w_string(out, "ok");
    rwq_w_key(out, "queues");
    rwq_w_int(out, nqueues);
    rwq_w_end_object(out);
}
