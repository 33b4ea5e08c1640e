/* Runs over many images (explain, eval, mprt): what they report while they
 * work. A run prints nothing; the caller sees its progress, the images it
 * could not do and its notices through these callbacks (any may be NULL). */
#ifndef ATTRIB_RUN_H
#define ATTRIB_RUN_H

typedef enum {
    AT_RUN_START,   /* total is known; nothing done yet */
    AT_RUN_SKIP,    /* count images finished by an earlier run (resume): not in the rate */
    AT_RUN_DONE,    /* count images finished, failed of them failed (a batch, ticked together) */
    AT_RUN_BATCH,   /* the same for a slow batch: worth a progress line of its own */
    AT_RUN_PARTIAL, /* the batch of `batch` images in flight is `fraction` done */
    AT_RUN_FINISH,  /* the run is over */
} at_run_event;

typedef struct {
    at_run_event event;
    long count, failed;  /* this event's images: finished, failed */
    long batch;          /* AT_RUN_PARTIAL */
    double fraction;     /* AT_RUN_PARTIAL */
    long total;          /* the run's images */
    long done, failures, skipped; /* so far: finished (skipped among them), failed */
    double elapsed_s;    /* since AT_RUN_START (rate: (done - skipped + failures) / elapsed_s) */
} at_run_progress;

typedef enum {
    AT_RUN_WARNING, /* about the results (a box covering the image) */
    AT_RUN_NOTICE,  /* about the run (lines merged, paths repeated): a quiet caller drops it */
} at_run_message;

typedef struct {
    void (*progress)(void *ctx, const at_run_progress *p);
    /* An image the run could not do; at_last_error() says why. The run
     * goes on unless it stops there (the summary's `stopped`). */
    void (*error)(void *ctx, const char *image);
    /* An image's decoding notes (AT_IMAGE_NOTE_* bits, io/image.h). */
    void (*image_notes)(void *ctx, unsigned notes);
    void (*message)(void *ctx, at_run_message kind, const char *text);
    void *ctx;
} at_run_callbacks;

/* What to do with results the output already holds for this run's keys. */
typedef enum {
    AT_EXISTING_STOP,    /* fail before any work, naming the file and the count */
    AT_EXISTING_SKIP,    /* resume: keep them, do the rest */
    AT_EXISTING_REPLACE, /* do them again and replace their lines */
} at_run_existing;

#endif
