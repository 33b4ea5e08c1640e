#include "run/report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"

static void send(run_report *r) {
    r->p.elapsed_s = at_now_s() - r->t0;
    if (r->cb && r->cb->progress) r->cb->progress(r->cb->ctx, &r->p);
}

void run_report_start(run_report *r, const at_run_callbacks *cb, long total) {
    memset(r, 0, sizeof *r);
    r->cb = cb;
    r->t0 = at_now_s();
    r->p.event = AT_RUN_START;
    r->p.total = total;
    send(r);
}

void run_report_event(run_report *r, at_run_event e, long count, long failed) {
    r->p.event = e;
    r->p.count = count, r->p.failed = failed;
    r->p.done += count;
    r->p.failures += failed;
    if (e == AT_RUN_SKIP) r->p.skipped += count;
    send(r);
}

void run_report_partial(run_report *r, long batch, double fraction) {
    r->p.event = AT_RUN_PARTIAL;
    r->p.count = r->p.failed = 0;
    r->p.batch = batch, r->p.fraction = fraction;
    send(r);
}

void run_batch_progress(void *ctx, double fraction) {
    const run_batch *b = ctx;
    run_report_partial(b->rep, b->n, fraction);
}

void run_report_error(const run_report *r, const char *image) {
    if (r->cb && r->cb->error) r->cb->error(r->cb->ctx, image);
}

void run_report_notes(const run_report *r, unsigned notes) {
    if (notes && r->cb && r->cb->image_notes) r->cb->image_notes(r->cb->ctx, notes);
}

void run_report_message(const run_report *r, at_run_message kind, const char *fmt, ...) {
    if (!r->cb || !r->cb->message) return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->cb->message(r->cb->ctx, kind, text);
}
