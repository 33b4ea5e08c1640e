/* Progress reporting (see progress.h). */
#include "output/progress.h"
#include "core/clock.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_PERIOD_S 0.25 /* at most ~4 redraws per second */
#define LOG_PERIOD_S 10.0 /* not a tty: a line every 10 s ... */
#define LOG_TENTHS 10     /* ... or each 10 % */
#define SAMPLE_S 0.5      /* rate samples at least this far apart */
#define RATE_TAU_S 10.0   /* moving-average time constant */

void at_progress_start_ex(at_progress *p, long total, const char *label, int quiet, FILE *out,
                          int tty, double (*now)(void)) {
    memset(p, 0, sizeof *p);
    p->out = out, p->tty = tty, p->quiet = quiet, p->now = now;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "progress");
    p->total = total > 0 ? total : 0;
    p->t_start = p->t_print = p->t_sample = now();
    p->rate = -1;
    p->next_tenth = 1;
}

void at_progress_start(at_progress *p, long total, const char *label, int quiet) {
    at_progress_start_ex(p, total, label, quiet, stderr, isatty(fileno(stderr)),
                         at_now_s);
}

static int fmt_duration(char *b, size_t cap, double s) {
    long t = (long)(s + 0.5);
    if (t < 60) return snprintf(b, cap, "%lds", t);
    if (t < 3600) return snprintf(b, cap, "%ldm%02lds", t / 60, t % 60);
    return snprintf(b, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
}

/* "label: 123/1000 images (2 failed)" */
static int fmt_count(const at_progress *p, char *b, size_t cap) {
    long n = p->done + p->failed;
    int k = p->total ? snprintf(b, cap, "%s: %ld/%ld images", p->label, n, p->total)
                     : snprintf(b, cap, "%s: %ld images", p->label, n);
    if (p->failed && k >= 0 && (size_t)k < cap)
        k += snprintf(b + k, cap - (size_t)k, " (%ld failed)", p->failed);
    return k;
}

static void emit(at_progress *p, const char *line, int len, int final) {
    if (p->tty) {
        int pad = p->last_len > len ? p->last_len - len : 0; /* blank the old line's tail */
        fprintf(p->out, "\r%s%*s%s", line, pad, "", final ? "\n" : "");
        p->last_len = final ? 0 : len;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
}

static void update_rate(at_progress *p, double t) {
    long n = p->done + p->failed - p->skipped; /* finished work only, not --resume's skips */
    double dt = t - p->t_sample;
    if (dt < SAMPLE_S) return;
    double inst = (double)(n - p->n_sample) / dt;
    /* Exponential moving average in time: weights old samples by exp(-age/tau). */
    p->rate = p->rate < 0 ? inst : p->rate + (1 - exp(-dt / RATE_TAU_S)) * (inst - p->rate);
    p->t_sample = t, p->n_sample = n;
}

/* Slow runs (CDRP on CPU) read better as seconds per image. */
static int fmt_rate(char *b, size_t cap, double rate) {
    if (rate > 0 && rate < 1) return snprintf(b, cap, ", %.1f s/image", 1.0 / rate);
    return snprintf(b, cap, ", %.1f images/s", rate);
}

/* force: a line now (a finished batch); work: done/failed is finished work,
 * a rate sample (not --resume's skips, not partial progress) */
static void tick(at_progress *p, long done, long failed, int force, int work) {
    p->done += done, p->failed += failed;
    if (p->quiet) return;
    double t = p->now();
    if (work) update_rate(p, t);
    long n = p->done + p->failed;
    int due;
    if (force && (!p->tty || t - p->t_print >= TTY_PERIOD_S)) {
        due = 1;
    } else if (p->tty) {
        due = t - p->t_print >= TTY_PERIOD_S;
    } else if (!done && !failed) { /* partial progress: by time only */
        due = t - p->t_print >= LOG_PERIOD_S;
    } else {
        int tenth = p->total ? (int)((double)n * LOG_TENTHS / (double)p->total) : 0;
        due = t - p->t_print >= LOG_PERIOD_S || (tenth >= p->next_tenth && tenth < LOG_TENTHS);
        if (due && p->total) p->next_tenth = tenth + 1;
    }
    if (due && force && !p->tty && p->total) {
        int tenth = (int)((double)n * LOG_TENTHS / (double)p->total);
        if (tenth >= p->next_tenth) p->next_tenth = tenth + 1;
    }
    if (!due) return;
    char b[256], eta[32];
    int k = fmt_count(p, b, sizeof b);
    if (p->partial_of > 0 && k >= 0 && (size_t)k < sizeof b)
        k += snprintf(b + k, sizeof b - (size_t)k, " (batch of %ld: %.0f%%)", p->partial_of, 100 * p->partial);
    if (p->rate >= 0 && k >= 0 && (size_t)k < sizeof b) {
        k += fmt_rate(b + k, sizeof b - (size_t)k, p->rate);
        if (p->total && p->rate > 0 && n < p->total && (size_t)k < sizeof b) {
            /* the finished share of the batch in flight counts as done */
            double left = (double)(p->total - n) - p->partial * (double)p->partial_of;
            fmt_duration(eta, sizeof eta, (left > 0 ? left : 0) / p->rate);
            k += snprintf(b + k, sizeof b - (size_t)k, ", ETA %s", eta);
        }
    }
    p->t_print = t;
    emit(p, b, k < (int)sizeof b ? k : (int)sizeof b - 1, 0);
}

void at_progress_tick(at_progress *p, long done, long failed) { tick(p, done, failed, 0, 1); }

void at_progress_batch(at_progress *p, long done, long failed) {
    p->partial = 0, p->partial_of = 0;
    tick(p, done, failed, 1, 1);
}

void at_progress_skip(at_progress *p, long skipped) {
    p->skipped += skipped; /* in done, out of the rate's count */
    tick(p, skipped, 0, 0, 0);
}

void at_progress_partial(at_progress *p, long of, double fraction) {
    p->partial_of = of, p->partial = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    tick(p, 0, 0, 0, 0);
}

void at_progress_finish(at_progress *p) {
    if (p->quiet) return;
    double el = p->now() - p->t_start;
    char b[256], dur[32];
    int k = fmt_count(p, b, sizeof b);
    fmt_duration(dur, sizeof dur, el);
    if (k >= 0 && (size_t)k < sizeof b)
        k += snprintf(b + k, sizeof b - (size_t)k, " in %s", dur);
    long worked = p->done + p->failed - p->skipped;
    if (p->skipped && k >= 0 && (size_t)k < sizeof b)
        k += snprintf(b + k, sizeof b - (size_t)k, " (%ld done before)", p->skipped);
    if (el > 0 && worked > 0 && k >= 0 && (size_t)k < sizeof b)
        k += fmt_rate(b + k, sizeof b - (size_t)k, (double)worked / el);
    emit(p, b, k < (int)sizeof b ? k : (int)sizeof b - 1, 1);
}
