/* Backward passes against central finite differences on a tiny net: the
 * gradients to gates, input and an intermediate layer must be the
 * derivatives of the forward the same backend computes. */
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

/* With the activation pattern fixed the logits are linear in each gate and
 * input, so central differences are exact up to float32 rounding (~1e-7 of
 * the loss / step = ~1e-4 relative at 1e-3). A 1e-2 step already crosses
 * ReLU / max-pool kinks downstream of the first convs (seen: 4 % off). */
#define FD_STEP 1e-3f
#define FD_TOL 2e-3

static double loss_of(at_backend *be, const float *x, const float *gates, const float *dl) {
    const at_model *m = be->model;
    float logits[16];
    at_forward_args fa = {.n = 1, .input = x, .gates = gates, .gates_per_item = 1, .logits = logits};
    if (at_forward(be, &fa)) return NAN;
    double s = 0;
    for (int k = 0; k < m->n_classes; k++) s += (double)dl[k] * logits[k];
    return s;
}

/* The tests' tiny VGG11s: finite differences, a shared gate row, batch sizes. */
#define TINY_VGG11(w0, w, hw, pool, s)                                                                    \
    {.arch = "vgg11", .widths = {w0, w, w, w, w, w, w, w}, .hidden = {8, 8}, .n_classes = 4, .in_h = hw, \
     .in_w = hw, .avgpool = pool, .seed = s}
static const at_random_spec SPEC_FD = TINY_VGG11(3, 4, 32, 2, 99), SPEC_SHARED = TINY_VGG11(3, 4, 32, 1, 3),
                            SPEC_BATCH = TINY_VGG11(8, 8, 64, 2, 11);

/* (loss(v + h) - loss(v - h)) / 2h for one value v of x or the gates. */
static double central_difference(at_backend *be, float *x, float *gates, const float *dl, float *v) {
    const float keep = *v;
    *v = keep + FD_STEP;
    const double up = loss_of(be, x, gates, dl);
    *v = keep - FD_STEP;
    const double down = loss_of(be, x, gates, dl);
    *v = keep;
    return (up - down) / (2 * FD_STEP);
}

TEST(gate_and_input_gradients_match_finite_differences) {
    WITH_CPU_RANDOM(&SPEC_FD, m, be);
    long in_n = 3 * 32 * 32;
    float *x = malloc(sizeof(float) * in_n), *gates = malloc(sizeof(float) * m->n_gates);
    float *gx = malloc(sizeof(float) * in_n), *gg = malloc(sizeof(float) * m->n_gates), dl[4], logits[4];
    at_prng_fill("input", 5, x, in_n, 2.0f, 0.0f);
    at_prng_fill("gates", 5, gates, m->n_gates, 0.5f, 1.0f);
    at_prng_fill("dlogits", 5, dl, 4, 1.0f, 0.0f);
    at_forward_args fa = {.n = 1, .input = x, .gates = gates, .gates_per_item = 1, .logits = logits,
                          .keep_for_backward = 1};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_gates = gg, .grad_input = gx};
    REQUIRE(at_backward(be, &ba) == AT_OK);
    int bad = 0;
    for (int i = 0; i < m->n_gates; i++) {
        double fd = central_difference(be, x, gates, dl, &gates[i]);
        if (fabs(fd - gg[i]) > FD_TOL * (1 + fabs(fd))) {
            if (bad++ < 3) test_fail_at(__FILE__, __LINE__, "gate %d: backward %.6g, finite difference %.6g", i, gg[i], fd);
        }
    }
    for (long i = 0; i < in_n; i += 37) {
        double fd = central_difference(be, x, gates, dl, &x[i]);
        if (fabs(fd - gx[i]) > FD_TOL * (1 + fabs(fd))) {
            if (bad++ < 6) test_fail_at(__FILE__, __LINE__, "input %ld: backward %.6g, finite difference %.6g", i, gx[i], fd);
        }
    }
    free(x), free(gates), free(gx), free(gg);
    test_backend_close(be, m);
}

TEST(gate_gradients_are_per_item_even_with_a_shared_gate_row) {
    WITH_CPU_RANDOM(&SPEC_SHARED, m, be);
    long in_n = 3 * 32 * 32;
    float *x = malloc(sizeof(float) * in_n * 2), *gates = malloc(sizeof(float) * m->n_gates * 2);
    float *g_shared = malloc(sizeof(float) * m->n_gates * 2), *g_rows = malloc(sizeof(float) * m->n_gates * 2);
    float dl[8], logits[8];
    at_prng_fill("input", 8, x, in_n * 2, 2.0f, 0.0f);
    at_prng_fill("gates", 8, gates, m->n_gates, 0.5f, 1.0f);
    memcpy(gates + m->n_gates, gates, sizeof(float) * m->n_gates);
    at_prng_fill("dlogits", 8, dl, 8, 1.0f, 0.0f);
    at_forward_args fa = {.n = 2, .input = x, .gates = gates, .gates_per_item = 0, .logits = logits,
                          .keep_for_backward = 1};
    at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_gates = g_shared};
    REQUIRE(at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
    fa.gates_per_item = 1;
    ba.grad_gates = g_rows;
    REQUIRE(at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
    CHECK(memcmp(g_shared, g_rows, sizeof(float) * m->n_gates * 2) == 0);
    free(x), free(gates), free(g_shared), free(g_rows);
    test_backend_close(be, m);
}

TEST(forward_is_bit_identical_run_to_run_and_across_batch_sizes) {
    WITH_CPU_RANDOM(&SPEC_BATCH, m, be);
    long in_n = 3 * 64 * 64;
    float *x = malloc(sizeof(float) * in_n * 5), a[20], b[20], c[4];
    at_prng_fill("input", 2, x, in_n * 5, 2.0f, 0.0f);
    at_forward_args fa = {.n = 5, .input = x, .logits = a};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    fa.logits = b;
    REQUIRE(at_forward(be, &fa) == AT_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    at_forward_args one = {.n = 1, .input = x + in_n * 3, .logits = c};
    REQUIRE(at_forward(be, &one) == AT_OK);
    CHECK(memcmp(c, a + 12, sizeof c) == 0);
    free(x);
    test_backend_close(be, m);
}
