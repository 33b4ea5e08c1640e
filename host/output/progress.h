/* Progress of a long run on stderr: "label: 123/1000 images (2 failed),
 * 15.3 images/s, ETA 57s". On a terminal one line rewritten with '\r' at most
 * 4 times a second; otherwise (CI logs) a plain line every 10 s or each 10 %
 * of the total, whichever comes first. The rate is a moving average with a
 * 10 s time constant, so the ETA follows a run that speeds up or slows down
 * (first images paying for warm-up, a slower method later). Rate and ETA count
 * only the work this run finished. One thread ticks. */
#ifndef ATTRIB_PROGRESS_H
#define ATTRIB_PROGRESS_H

#include <stdio.h>

typedef struct {
    FILE *out;
    int tty, quiet;
    double (*now)(void); /* seconds, monotonic */
    char label[64];
    long total; /* 0 when unknown */
    long done, failed;
    long skipped;    /* of done: finished by an earlier run (--resume); not in the rate */
    long partial_of; /* images of the batch in flight (0: none reported) */
    double partial;  /* its finished fraction */
    double t_start, t_print, t_sample;
    long n_sample;   /* processed images at t_sample */
    double rate;     /* images/s, moving average; < 0 until known */
    int next_tenth;  /* next 10 % mark that prints a line (not a tty) */
    int last_len;    /* length of the line on screen (tty), to blank its rest */
} at_progress;

/* Reports to stderr (tty or not as isatty says) with the monotonic clock. */
void at_progress_start(at_progress *p, long total, const char *label, int quiet);
/* Same on any stream and clock (tests use a fake clock). */
void at_progress_start_ex(at_progress *p, long total, const char *label, int quiet, FILE *out,
                          int tty, double (*now)(void));
/* done: images finished; failed: images that failed. Both count as processed.
 * A batch's images are ticked together, once the batch is finished, so that
 * the rate is measured over whole batches. */
void at_progress_tick(at_progress *p, long done, long failed);
/* The same, and a line now (a tty still at most 4 a second): one per batch
 * for slow methods. Clears the partial progress. */
void at_progress_batch(at_progress *p, long done, long failed);
/* Images an earlier run finished: counted as processed, left out of the rate
 * and the ETA's speed. */
void at_progress_skip(at_progress *p, long skipped);
/* Progress within a long batch of `of` images: "(batch of 4: 37%)". */
void at_progress_partial(at_progress *p, long of, double fraction);
/* Final line: "label: 1000/1000 images (2 failed) in 1m05s, 15.4 images/s". */
void at_progress_finish(at_progress *p);

#endif
