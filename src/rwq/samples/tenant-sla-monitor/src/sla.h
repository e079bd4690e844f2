/* sla.h: what the parts of tenant-sla-monitor share: limits, types, state, functions. */
#ifndef SLA_H
#define SLA_H

#include "rwq.h"

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
#define REALERT_MS 30000 /* while a breach goes on, its alert is sent again this often (the
                          * alert manager counts it and keeps its figures and "last seen" current) */

enum { KIND_SUCCESS, KIND_P95, NKINDS };
extern const char *const KIND_NAMES[NKINDS];

/* Status of a tenant or of one SLA kind, in order of badness. */
enum { ST_NODATA, ST_OK, ST_RISK, ST_BREACH };
extern const char *const STATUS_TEXT[4];

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
    int64_t alerted_at[NKINDS]; /* while breached: when its alert was last sent */
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


/* ---- state (main.c) ---- */
extern tenant tenants[MAX_TENANTS];
extern settings cfg;
extern int64_t now_ms;                  /* the clock: the newest event time seen */
extern int64_t events_seen, untracked_events;
extern bool alerts_denied, peek_denied; /* the host refused: not asked again */
extern int64_t alerts_total;
extern int64_t checked_k;               /* the bucket all tenants' alerts were last checked */
extern int view_buckets;                /* the window the table's metrics show ('w' toggles) */
extern char selected[NAME_BYTES];       /* the tenant whose details are shown, "" for none */

/* ---- text.c ---- */
size_t utf8_len(const char *s, size_t max);
void utf8_clip(char *s, size_t size);
size_t text_of(rwq_json v, char *buf, size_t size);
void w_fixed(rwq_writer *out, double v, int decimals);
void w_member_str(rwq_writer *out, const char *key, const char *value);
void ui_text(rwq_writer *out, const char *text, const char *style);
void fmt_pct(char *buf, size_t size, double v);
void fmt_ms(char *buf, size_t size, double v);
void fmt_clock(char *buf, size_t size, int64_t ms);

/* ---- config.c ---- */
bool parse_settings(rwq_json c, settings *s, char *err, size_t errsize);
const override *find_override(const char *name);
targets targets_of(const tenant *t);
void write_settings(rwq_writer *out);
void write_error(rwq_writer *out, const char *message);

/* ---- window.c ---- */
void init_edges(void);
int bin_of(double ms);
int64_t now_k(void);
bool in_window(const bucket *b, int nb);
window window_of(const tenant *t, int nb);
double bucket_p95(const bucket *b);
verdict judge(const tenant *t);

/* ---- tenants.c ---- */
tenant *tenant_get(const char *name);
void on_job(rwq_json event, rwq_json type, int64_t ts);
void on_queue_stats(rwq_json event);

/* ---- alerts.c ---- */
void check_alerts(void);

#endif
