/* --conv (at_backend_options.conv) reaches the CPU backend: auto runs the
 * Winograd path at FP32 (bit for bit what winograd gives: F(4x4) or F(2x2)
 * per layer by the shape rule), winograd2 / winograd4 force the tile, direct
 * runs the direct conv, the reduced precisions always run direct, the
 * algorithms agree within the bound below, and the CUDA backend refuses
 * every Winograd choice. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

/* Every conv but the first has >= 16 channels in and out: the Winograd path
 * takes them (host/cpu/winograd.h). */
static const at_random_spec SPEC = {.arch = "vgg11", .widths = {16, 24, 32, 32, 40, 40, 48, 48}, .hidden = {16, 12},
                                    .n_classes = 7, .in_h = 37, .in_w = 45, .avgpool = 1, .seed = 5};

typedef struct {
    float *logits, *dx;
} algo_run;

/* A forward and a backward to the input of 3 images. */
static int run_algo(const at_model *m, at_conv_algo conv, at_precision prec, algo_run *r) {
    const int n = 3;
    const long in = (long)m->in_c * m->in_h * m->in_w;
    at_backend_options opt = {.name = "cpu", .conv = conv, .precision = prec};
    at_backend *be = NULL;
    if (at_backend_create(m, &opt, &be)) return test_fail_at(__FILE__, __LINE__, "%s", at_last_error()), 0;
    float *x = test_random("input", 1, in * n, 2, 0), *dl = test_random("dlogits", 1, (long)m->n_classes * n, 1, 0);
    r->logits = malloc(sizeof(float) * m->n_classes * n);
    r->dx = malloc(sizeof(float) * in * n);
    at_forward_args fa = {.n = n, .input = x, .logits = r->logits, .keep_for_backward = 1};
    at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = r->dx};
    int ok = at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK;
    if (!ok) test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
    at_backend_destroy(be);
    free(x), free(dl);
    return ok;
}

static void free_run(algo_run *r) { free(r->logits), free(r->dx); }

/* Largest |a - b| over the largest |b|. */
static double rel_diff(const float *a, const float *b, long n) {
    double d = 0, mag = 0;
    for (long i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i])), mag = fmax(mag, fabs(b[i]));
    return mag > 0 ? d / mag : d;
}

/* Winograd against direct through 8 convs, ReLUs and pools: each conv's
 * rounding differs by ~1e-7 of its scale (tests/test_sgemm.c holds it to the
 * direct conv's own tolerance); 1e-5 of the largest value allows that to
 * compound over the layers, and fails on any wrong tile or transform. */
#define ALGO_REL_BOUND 1e-5

TEST(conv_option_auto_is_winograd_at_fp32_and_direct_differs_slightly) {
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    const long nl = 3L * m->n_classes, nx = 3L * m->in_c * m->in_h * m->in_w;
    algo_run a, w, d;
    if (run_algo(m, AT_CONV_AUTO, AT_PRECISION_FP32, &a) && run_algo(m, AT_CONV_WINOGRAD, AT_PRECISION_FP32, &w) &&
        run_algo(m, AT_CONV_DIRECT, AT_PRECISION_FP32, &d)) {
        SAME_BITS("auto vs winograd logits", a.logits, w.logits, nl);
        SAME_BITS("auto vs winograd input gradient", a.dx, w.dx, nx);
        CHECKF(memcmp(w.dx, d.dx, sizeof(float) * nx) != 0, "direct and winograd gave the same bits: not both ran");
        double el = rel_diff(w.logits, d.logits, nl), ex = rel_diff(w.dx, d.dx, nx);
        CHECKF(el <= ALGO_REL_BOUND && ex <= ALGO_REL_BOUND, "winograd vs direct: logits %.3g, input gradient %.3g",
               el, ex);
        algo_run w2, w4;
        if (run_algo(m, AT_CONV_WINOGRAD2, AT_PRECISION_FP32, &w2) && run_algo(m, AT_CONV_WINOGRAD4, AT_PRECISION_FP32, &w4)) {
            /* the 37x45 and 18x22 convs take F(4x4) by the rule, the rest F(2x2) */
            CHECKF(memcmp(w2.dx, w4.dx, sizeof(float) * nx) != 0 && memcmp(w.dx, w2.dx, sizeof(float) * nx) != 0 &&
                       memcmp(w.dx, w4.dx, sizeof(float) * nx) != 0,
                   "winograd, winograd2 and winograd4 are not three different runs");
            const algo_run *t[2] = {&w2, &w4};
            for (int i = 0; i < 2; i++) {
                double tl = rel_diff(t[i]->logits, d.logits, nl), tx = rel_diff(t[i]->dx, d.dx, nx);
                CHECKF(tl <= ALGO_REL_BOUND && tx <= ALGO_REL_BOUND, "winograd%d vs direct: logits %.3g, input gradient %.3g",
                       2 + 2 * i, tl, tx);
            }
            free_run(&w2), free_run(&w4);
        }
        free_run(&a), free_run(&w), free_run(&d);
    }
    at_model_free(m);
}

TEST(conv_option_reduced_precisions_run_direct) {
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    const long nl = 3L * m->n_classes, nx = 3L * m->in_c * m->in_h * m->in_w;
    algo_run a, d;
    if (run_algo(m, AT_CONV_AUTO, AT_PRECISION_TF32, &a) && run_algo(m, AT_CONV_DIRECT, AT_PRECISION_TF32, &d)) {
        SAME_BITS("tf32 auto vs direct logits", a.logits, d.logits, nl);
        SAME_BITS("tf32 auto vs direct input gradient", a.dx, d.dx, nx);
        free_run(&a), free_run(&d);
    }
    at_backend_options bad = {.name = "cpu", .conv = AT_CONV_WINOGRAD, .precision = AT_PRECISION_FP16};
    at_backend *be = NULL;
    CHECK(at_backend_create(m, &bad, &be) == AT_ERR && strstr(at_last_error(), "conv algorithm") && !be);
    at_model_free(m);
}

TEST(conv_option_winograd_is_refused_by_the_cuda_backend) {
#ifndef ATTRIB_HAVE_CUDA
    SKIP("this build has no CUDA backend: nvcc was not found at build time");
#endif
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    for (at_conv_algo a = AT_CONV_WINOGRAD; a <= AT_CONV_WINOGRAD4; a++) {
        at_backend_options opt = {.name = "cuda", .conv = a};
        at_backend *be = NULL;
        CHECKF(at_backend_create(m, &opt, &be) == AT_ERR && strstr(at_last_error(), "conv algorithm: ") &&
                   strstr(at_last_error(), "CPU path") && !be,
               "%s", at_last_error());
    }
    at_model_free(m);
}
