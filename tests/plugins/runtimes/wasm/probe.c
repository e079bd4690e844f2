/* A test plugin that probes its sandbox: WASI access, output, memory, clocks and randomness.
 * Built by tests/plugins/runtimes/test_wasm.py with sdk/c/build.sh. */
#define RWQ_IMPLEMENTATION
#include "rwq.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

RWQ_HOOK(render) {
    rwq_w_array(out);
    rwq_ui_text(out, "probe");
    rwq_w_end_array(out);
}

/* What the sandbox lets the plugin reach: files, directories, environment, arguments,
 * preopened directories, sockets, sleeping. */
RWQ_HOOK(health_check) {
    int nenv = 0;
    for (char **e = environ; e && *e; e++) nenv++;
    __wasi_size_t argc = 99, argv_size = 99;
    __wasi_errno_t args_errno = __wasi_args_sizes_get(&argc, &argv_size);
    __wasi_prestat_t prestat;
    __wasi_fd_t accepted;
    struct timespec nap = {0, 1000000};
    FILE *passwd = fopen("/etc/passwd", "r");
    DIR *root = opendir("/");
    FILE *created = fopen("/tmp/rwq-probe", "w");

    rwq_w_object(out);
    rwq_w_key(out, "status");
    rwq_w_string(out, "ok");
    rwq_w_key(out, "read_file");
    rwq_w_bool(out, passwd != NULL);
    rwq_w_key(out, "list_dir");
    rwq_w_bool(out, root != NULL);
    rwq_w_key(out, "create_file");
    rwq_w_bool(out, created != NULL);
    rwq_w_key(out, "env");
    rwq_w_int(out, nenv);
    rwq_w_key(out, "home");
    rwq_w_bool(out, getenv("HOME") != NULL);
    rwq_w_key(out, "args");
    rwq_w_int(out, args_errno ? -1 : (int64_t)argc);
    rwq_w_key(out, "preopen_3");
    rwq_w_int(out, __wasi_fd_prestat_get(3, &prestat));
    rwq_w_key(out, "sock_accept_3");
    rwq_w_int(out, __wasi_sock_accept(3, 0, &accepted));
    rwq_w_key(out, "sleep");
    rwq_w_int(out, nanosleep(&nap, NULL) == 0 ? 0 : errno);
    rwq_w_end_object(out);
}

/* {"print": n, "line": s}: writes the line n times to stdout, then a line to stderr. */
RWQ_HOOK(on_input) {
    char line[256];
    int64_t n = rwq_json_int(rwq_json_get(arg, "print"), 0);
    rwq_json_string(rwq_json_get(arg, "line"), line, sizeof line);
    for (int64_t i = 0; i < n; i++) puts(line);
    fflush(stdout);
    fputs("done printing\n", stderr);
}

/* Allocates 64 KiB blocks (kept in a list) until malloc fails, then aborts. */
static void **hoard;

RWQ_HOOK(on_timer) {
    for (;;) {
        void **block = malloc(65536);
        if (!block) abort();
        memset(block, 1, 65536);
        *block = hoard;
        hoard = block;
    }
}

/* The WASI clock, WASI randomness and some arithmetic: deterministic mode fixes all three. */
RWQ_HOOK(export_state) {
    struct timespec ts;
    unsigned char bytes[8];
    uint64_t acc = 1;
    clock_gettime(CLOCK_REALTIME, &ts);
    getentropy(bytes, sizeof bytes);
    for (int i = 0; i < 100000; i++) acc = acc * 6364136223846793005ull + 1442695040888963407ull;
    rwq_w_object(out);
    rwq_w_key(out, "clock_s");
    rwq_w_int(out, (int64_t)ts.tv_sec);
    rwq_w_key(out, "clock_ns");
    rwq_w_int(out, (int64_t)ts.tv_nsec);
    rwq_w_key(out, "random");
    rwq_w_array(out);
    for (int i = 0; i < 8; i++) rwq_w_int(out, bytes[i]);
    rwq_w_end_array(out);
    rwq_w_key(out, "acc");
    rwq_w_int(out, (int64_t)(acc >> 12));
    rwq_w_end_object(out);
}

/* Spins forever. */
RWQ_HOOK(on_event) {
    volatile uint64_t n = 0;
    for (;;) n++;
}
