/* The run API (host/run/) on a tiny model, without the CLI: what its
 * callbacks see, resume and refusal of results already there, a failed
 * image counted and the run going on, and eval over the run's folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attrib.h"
#include "model_fixture.h"
#include "test.h"

typedef struct {
    int starts, finishes, done, skipped, failed, errors, partials, partial_backwards;
    long total, last_done;
    double fraction;
    char error[512];
} seen;

static void on_progress(void *ctx, const at_run_progress *p) {
    seen *s = ctx;
    if (p->event == AT_RUN_START) s->starts++, s->total = p->total;
    if (p->event == AT_RUN_FINISH) s->finishes++;
    if (p->event == AT_RUN_DONE || p->event == AT_RUN_BATCH) s->done += (int)p->count, s->failed += (int)p->failed;
    if (p->event == AT_RUN_SKIP) s->skipped += (int)p->count;
    if (p->event == AT_RUN_PARTIAL) {
        s->partials++;
        if (p->fraction < s->fraction || p->fraction > 1) s->partial_backwards++;
        s->fraction = p->fraction;
    }
    if (p->event == AT_RUN_BATCH) s->fraction = 0; /* the next batch starts from 0 */
    s->last_done = p->done + p->failures;
}

static void on_error(void *ctx, const char *image) {
    seen *s = ctx;
    s->errors++;
    snprintf(s->error, sizeof s->error, "%s", at_last_error());
}

TEST(run_api_explains_resumes_refuses_and_eval_scores_the_folder) {
    const char *dir = test_tmpdir();
    char img[3][600], outd[600];
    at_model *m = fixture_tiny_model();
    REQUIRE(m);
    at_backend *be;
    at_backend_options bo = {.name = "cpu"};
    REQUIRE(at_backend_create(m, &bo, &be) == AT_OK);
    unsigned char rgb[32 * 32 * 3];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < (int)sizeof rgb; i++) rgb[i] = (unsigned char)(i * (29 + 7 * k) + (i >> 6));
        snprintf(img[k], sizeof img[k], "%s/scene%d.png", dir, k);
        REQUIRE(at_image_write_png(img[k], 32, 32, rgb) == AT_OK);
    }
    snprintf(img[2], sizeof img[2], "%s/missing.png", dir);
    snprintf(outd, sizeof outd, "%s/out", dir);
    const char *images[3] = {img[0], img[1], img[0]}; /* a repeated path is explained once */

    at_explain_run_options o;
    at_explain_run_defaults(&o);
    o.ex.method = AT_METHOD_GRADCAM;
    o.out_dir = outd;
    o.no_overlay = 1;
    seen s = {0};
    at_run_callbacks cb = {.progress = on_progress, .error = on_error, .ctx = &s};
    at_explain_summary sum;
    CHECKF(at_explain_run(be, &o, images, 3, &cb, &sum) == AT_OK, "%s", at_last_error());
    CHECK(sum.images == 2 && sum.repeated == 1 && sum.done == 2 && sum.failed == 0 && !strcmp(sum.name, "gradcam"));
    CHECK(s.starts == 1 && s.finishes == 1 && s.total == 2 && s.done == 2 && s.last_done == 2 && !s.errors);
    char path[1300];
    snprintf(path, sizeof path, "%s/scene1.gradcam.npy", outd);
    CHECK(access(path, R_OK) == 0);

    /* again: refused before any work, naming the file; then resumed */
    memset(&s, 0, sizeof s);
    CHECK(at_explain_run(be, &o, images, 2, &cb, &sum) == AT_ERR && sum.existing == 2 && sum.bad_option);
    CHECKF(strstr(at_last_error(), "results.jsonl") && strstr(at_last_error(), "2 of these 2"), "%s", at_last_error());
    CHECK(s.starts == 0);
    const char *more[3] = {img[0], img[2], img[1]};
    o.existing = AT_EXISTING_SKIP;
    CHECKF(at_explain_run(be, &o, more, 3, &cb, &sum) == AT_OK, "%s", at_last_error());
    CHECK(sum.skipped == 2 && sum.failed == 1 && sum.done == 0 && !sum.stopped);
    CHECK(s.skipped == 2 && s.failed == 1 && s.errors == 1 && strstr(s.error, "missing.png"));

    /* an option the model cannot take: the error names the layer */
    at_explain_run_options bad = o;
    bad.layer = "features.99";
    CHECK(at_explain_run(be, &bad, images, 1, &cb, &sum) == AT_ERR && sum.bad_option);
    CHECKF(!strncmp(at_last_error(), "layer", 5), "%s", at_last_error());

    /* eval over the folder: one row, both images */
    at_eval_options eo;
    at_eval_defaults(&eo);
    eo.metric = AT_EVAL_AD_IC;
    eo.maps = outd;
    at_eval_summary es;
    memset(&s, 0, sizeof s);
    CHECKF(at_eval_run(be, &eo, &cb, &es) == AT_OK, "%s", at_last_error());
    CHECK(es.n_rows == 1 && es.rows[0].images == 2 && es.n_terms == 2 && !strcmp(es.term_names[0], "AD"));
    CHECK(es.rows[0].stats[0].count == 2 && es.rows[0].stats[0].lo <= es.rows[0].stats[0].mean);
    CHECK(s.done == 2 && s.starts == 1 && s.finishes == 1);
    at_eval_summary_free(&es);
    CHECK(at_eval_run(be, &eo, &cb, &es) == AT_ERR && es.existing == 2);
    at_eval_summary_free(&es);

    /* MPRT over the folder: its progress, model by model, then the images; resumed, all skipped */
    at_eval_options mo = eo;
    mo.metric = AT_EVAL_MPRT;
    at_mprt_summary ms;
    memset(&s, 0, sizeof s);
    CHECKF(at_mprt_run(m, &bo, &mo, &cb, &ms) == AT_OK, "%s", at_last_error());
    CHECK(ms.n_rows == 1 && ms.rows[0].images == 2);
    CHECK(s.starts == 1 && s.finishes == 1 && s.total == 2 && s.done == 2 && s.last_done == 2);
    CHECKF(s.partials >= 2 && !s.partial_backwards, "%d partial events, %d going backwards", s.partials,
           s.partial_backwards);
    at_mprt_summary_free(&ms);
    memset(&s, 0, sizeof s);
    mo.existing = AT_EXISTING_SKIP;
    CHECKF(at_mprt_run(m, &bo, &mo, &cb, &ms) == AT_OK, "%s", at_last_error());
    CHECK(s.starts == 1 && s.skipped == 2 && s.done == 0 && s.partials == 0 && s.finishes == 1);
    at_mprt_summary_free(&ms);

    at_backend_destroy(be);
    at_model_free(m);
}
