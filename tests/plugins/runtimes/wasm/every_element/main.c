/* every_element: one of each UI element through the C SDK's helpers (a test of rwq.h). */
#define RWQ_IMPLEMENTATION
#include "rwq.h"

#include <math.h>

RWQ_HOOK(render) {
    static const char *const columns[] = {"queue", "jobs"};
    static const double spark[] = {1, 3, 2, 5, 4};
    static const int weights[] = {1, 2};
    rwq_w_array(out);
    rwq_ui_rows_begin(out, 1);
    rwq_ui_text(out, "every element");
    rwq_ui_badge(out, "LIVE", "ok");
    rwq_ui_kv_begin(out);
    rwq_ui_kv_item(out, "state", "running");
    rwq_ui_kv_end(out);
    rwq_ui_table_begin(out, columns, 2);
    rwq_ui_row_begin(out);
    rwq_w_string(out, "emails");
    rwq_w_int(out, 12);
    rwq_ui_row_end(out);
    rwq_ui_table_end(out);
    rwq_ui_gauge(out, "load", 6.8323, 100, 50, 90);
    rwq_ui_gauge(out, "bare", 3, 0, NAN, NAN);
    rwq_ui_progress(out, "done", 30, 120);
    rwq_ui_sparkline(out, "rate", spark, 5, 0, NAN);
    rwq_ui_list_begin(out, "queues", "Queues");
    rwq_ui_list_item(out, "emails");
    rwq_ui_list_item(out, "reports");
    rwq_ui_list_end(out, 1);
    rwq_ui_button(out, "go", "Go", 'g', "primary");
    rwq_ui_button(out, "plain", "Plain", 0, NULL);
    rwq_ui_columns_begin(out, 2);
    rwq_ui_text(out, "left");
    rwq_ui_text(out, "right");
    rwq_ui_columns_end(out, weights, 2);
    rwq_ui_rows_end(out);
    rwq_w_end_array(out);
}
