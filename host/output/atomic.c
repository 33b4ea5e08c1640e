/* Atomic writes and interruption (output/atomic.h). */
#include "output/atomic.h"

#include "core/error.h"
#include "io/image.h"
#include "io/npy.h"
#include "output/results.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ======================= in-flight files and signals ======================= */

/* Global because a signal handler can reach nothing else. A slot goes
 * FREE -> FILLING (claimed by CAS, path being copied) -> LIVE; the handler
 * only reads LIVE slots, whose path is complete. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs lock-free atomics");
enum { SLOT_FREE, SLOT_FILLING, SLOT_LIVE };
static struct {
    atomic_int state;
    char path[AT_OUTPUT_PATH_MAX];
} inflight[AT_OUTPUT_MAX_INFLIGHT];
static volatile sig_atomic_t stderr_is_tty;

int at_output_track(const char *tmp_path) {
    size_t n = strlen(tmp_path);
    if (n >= AT_OUTPUT_PATH_MAX) return at_fail(tmp_path, "path too long");
    for (int i = 0; i < AT_OUTPUT_MAX_INFLIGHT; i++) {
        int expect = SLOT_FREE;
        if (atomic_compare_exchange_strong(&inflight[i].state, &expect, SLOT_FILLING)) {
            memcpy(inflight[i].path, tmp_path, n + 1);
            atomic_store(&inflight[i].state, SLOT_LIVE);
            return i;
        }
    }
    return at_fail(tmp_path, "more than %d output files in flight", AT_OUTPUT_MAX_INFLIGHT);
}

void at_output_untrack(int slot) {
    if (slot >= 0 && slot < AT_OUTPUT_MAX_INFLIGHT) atomic_store(&inflight[slot].state, SLOT_FREE);
}

/* Async-signal-safe only: unlink, write, _exit. A file renamed into place but
 * not yet untracked makes unlink fail with ENOENT, which is harmless. */
static void on_fatal_signal(int sig) {
    for (int i = 0; i < AT_OUTPUT_MAX_INFLIGHT; i++)
        if (atomic_load(&inflight[i].state) == SLOT_LIVE) unlink(inflight[i].path);
    static const char m_int[] = "attrib: interrupted (SIGINT): ";
    static const char m_term[] = "attrib: terminated (SIGTERM): ";
    static const char m_tail[] = " results lines of this run kept; --resume continues\n";
    char num[24];
    int k = sizeof num;
    long kept = at_results_appended(); /* a lock-free atomic load: signal-safe */
    do num[--k] = (char)('0' + kept % 10), kept /= 10; while (kept && k > 0);
    ssize_t ignored;
    if (stderr_is_tty) ignored = write(2, "\n", 1); /* end a '\r' progress line */
    if (sig == SIGINT) ignored = write(2, m_int, sizeof m_int - 1);
    else ignored = write(2, m_term, sizeof m_term - 1);
    ignored = write(2, num + k, sizeof num - (size_t)k);
    ignored = write(2, m_tail, sizeof m_tail - 1);
    (void)ignored;
    _exit(128 + sig);
}

int at_output_install_signal_cleanup(void) {
    static const int sigs[2] = {SIGINT, SIGTERM};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) sigaddset(&sa.sa_mask, sigs[i]);
    stderr_is_tty = isatty(2);
    at_results_count_from_now(); /* the run whose lines the message counts starts here */
    for (int i = 0; i < 2; i++) {
        if (sigaction(sigs[i], NULL, &old) != 0)
            return at_fail(NULL, "cannot install signal handlers: %s", strerror(errno));
        if (old.sa_handler == SIG_IGN) continue; /* e.g. nohup: keep ignoring */
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return at_fail(NULL, "cannot install signal handlers: %s", strerror(errno));
    }
    return AT_OK;
}

/* The temporary names below are those npy.c and image.c use; a test pins them
 * (tests/test_output.c, output_tracked_temp_names_match_the_writers). */
/* A slot tracking path's temporary name tmp_fmt (path, pid), or -1. */
static int track_temp(const char *path, const char *tmp_fmt) {
    char tmp[AT_OUTPUT_PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, tmp_fmt, path, (long)getpid()) >= sizeof tmp) {
        at_fail(path, "path too long");
        return -1;
    }
    return at_output_track(tmp);
}

int at_output_write_npy(const char *path, const float *data, int ndim, const int64_t *shape) {
    int slot = track_temp(path, "%s.tmp.%ld");
    if (slot < 0) return AT_ERR;
    int rc = at_npy_write_f32(path, data, ndim, shape);
    at_output_untrack(slot);
    return rc;
}

int at_output_write_png(const char *path, int w, int h, const unsigned char *rgb) {
    int slot = track_temp(path, "%s.tmp%ld");
    if (slot < 0) return AT_ERR;
    int rc = at_image_write_png(path, w, h, rgb);
    at_output_untrack(slot);
    return rc;
}

