/* hello: counts the events it receives by type and renders a line of text and a table. */
#define RWQ_IMPLEMENTATION
#include "rwq.h"

#include <stdio.h>
#include <string.h>

#define MAX_TYPES 32

static struct {
    char type[64];
    int64_t count;
} counts[MAX_TYPES];
static int ntypes;
static int64_t total;
static char greeting[64] = "hello";

RWQ_HOOK(initialize) {
    /* arg is the manifest's config merged with the user's */
    char g[64];
    if (rwq_json_string(rwq_json_get(arg, "greeting"), g, sizeof g)) memcpy(greeting, g, sizeof g);
    rwq_log("info", "hello plugin started");
}

static void count(rwq_json type) {
    char name[64];
    if (!rwq_json_string(type, name, sizeof name)) strcpy(name, "(unknown)");
    for (int i = 0; i < ntypes; i++) {
        if (strcmp(counts[i].type, name) == 0) {
            counts[i].count++;
            return;
        }
    }
    if (ntypes == MAX_TYPES) strcpy(name, "(other)");
    int i = ntypes < MAX_TYPES ? ntypes++ : MAX_TYPES - 1;
    memcpy(counts[i].type, name, sizeof name);
    counts[i].count++;
}

RWQ_HOOK(on_event) {
    /* arg is a batch: [{"id", "type", "ts", "source", "queue", "data"}, ...] */
    rwq_iter it = rwq_json_iter(arg);
    rwq_json event;
    while (rwq_json_next(&it, &event)) {
        count(rwq_json_get(event, "type"));
        total++;
    }
    rwq_w_object(out);
    rwq_w_key(out, "changed");
    rwq_w_bool(out, true);
    rwq_w_end_object(out);
}

RWQ_HOOK(render) {
    static const char *const columns[] = {"type", "count"};
    char line[128];
    snprintf(line, sizeof line, "%s: %lld events of %d types", greeting, (long long)total,
             ntypes);
    rwq_w_array(out);
    rwq_ui_text(out, line);
    rwq_ui_table_begin(out, columns, 2);
    for (int i = 0; i < ntypes; i++) {
        rwq_ui_row_begin(out);
        rwq_w_string(out, counts[i].type);
        rwq_w_int(out, counts[i].count);
        rwq_ui_row_end(out);
    }
    rwq_ui_table_end(out);
    rwq_w_end_array(out);
}

RWQ_HOOK(health_check) {
    rwq_w_object(out);
    rwq_w_key(out, "status");
    rwq_w_string(out, "ok");
    rwq_w_key(out, "events");
    rwq_w_int(out, total);
    rwq_w_end_object(out);
}
