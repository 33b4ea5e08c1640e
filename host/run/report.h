/* The runs' side of at_run_callbacks (private to host/run). */
#ifndef ATTRIB_RUN_REPORT_H
#define ATTRIB_RUN_REPORT_H

#include "run/run.h"

typedef struct {
    const at_run_callbacks *cb;
    at_run_progress p;
    double t0;
} run_report;

void run_report_start(run_report *r, const at_run_callbacks *cb, long total);
/* AT_RUN_SKIP, AT_RUN_DONE, AT_RUN_BATCH or AT_RUN_FINISH. */
void run_report_event(run_report *r, at_run_event e, long count, long failed);
void run_report_partial(run_report *r, long batch, double fraction);
/* A method's progress callback context for the batch of n images in flight. */
typedef struct {
    run_report *rep;
    int n;
} run_batch;
void run_batch_progress(void *ctx, double fraction); /* run_report_partial of a run_batch */
/* The image the run could not do (at_last_error() the reason). */
void run_report_error(const run_report *r, const char *image);
void run_report_notes(const run_report *r, unsigned notes);
void run_report_message(const run_report *r, at_run_message kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
