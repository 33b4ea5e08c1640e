/* Reduced precisions on the CPU: TF32 / FP16 operand rounding (what tensor
 * cores see), the emulating CPU backend, per-call precision, and Score-CDRP's
 * CIC pass at a lower precision than its optimisation. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "cpu/conv.h"
#include "cpu/ops.h"
#include "core/error.h"
#include "methods/cdrp.h"
#include "model/model.h"
#include "preprocess/pipeline.h"
#include "model/random_model.h"
#include "test.h"

static float bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

TEST(tf32_rounding_is_to_nearest_with_ties_away_from_zero) {
    /* the TF32 ulp at 1 is 2^-10 */
    float x[] = {1.0f + 0x1p-11f, 1.0f + 0x1p-12f, -(1.0f + 0x1p-11f), 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-10f,
                 FLT_MAX, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p-120f, 0x1p-140f};
    float want[] = {1.0f + 0x1p-10f, 1.0f, -(1.0f + 0x1p-10f), 1.0f + 0x1p-9f, 1.0f + 0x1p-10f,
                    INFINITY, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p-120f, 0.0f};
    /* (2^-140 is subnormal: its one bit lies below TF32's ten) */
    int n = sizeof x / sizeof x[0];
    at_round_tf32(x, n);
    for (int i = 0; i < n; i++) CHECKF(!memcmp(&x[i], &want[i], 4), "[%d] %a, want %a", i, x[i], want[i]);
    float nan = bits(0x7fc00001u);
    at_round_tf32(&nan, 1);
    CHECK(isnan(nan));
}

TEST(fp16_rounding_is_to_nearest_even_in_binary16_range) {
    /* the FP16 ulp at 1 is 2^-10; the smallest subnormal 2^-24 */
    float x[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65519.0f, 65520.0f, -70000.0f,
                 0x1p-25f, 3 * 0x1p-25f, 0x1p-24f + 0x1p-30f, 1e-10f};
    float want[] = {1.0f, 1.0f + 0x1p-9f, 65504.0f, 65504.0f, INFINITY, -INFINITY,
                    0.0f, 0x1p-23f, 0x1p-24f, 0.0f};
    int n = sizeof x / sizeof x[0];
    at_round_fp16(x, n);
    for (int i = 0; i < n; i++) CHECKF(!memcmp(&x[i], &want[i], 4), "[%d] %a, want %a", i, x[i], want[i]);
}

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {8, 12, 16, 16, 24, 24, 24, 24},
                                    .hidden = {32, 16}, .n_classes = 10, .in_h = 32, .in_w = 32,
                                    .avgpool = 2, .seed = 21};

static int open_be(const at_model *m, at_precision p, at_backend **be) {
    at_backend_options o = {.name = "cpu", .precision = p};
    return at_backend_create(m, &o, be);
}

/* Squared error over squared reference. */
static double nmse(const float *a, const float *ref, long n) {
    double se = 0, sr = 0;
    for (long i = 0; i < n; i++) se += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]), sr += (double)ref[i] * ref[i];
    return se / (sr > 0 ? sr : 1);
}

static double max_rel(const float *a, const float *ref, long n) {
    double scale = 0, d = 0;
    for (long i = 0; i < n; i++) {
        scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
        d = fabs((double)a[i] - ref[i]) > d ? fabs((double)a[i] - ref[i]) : d;
    }
    return d / (scale > 0 ? scale : 1);
}

/* The first conv's output under TF32 is exactly the FP32 conv of the rounded
 * input and weights: the emulation's definition, checked where it is visible. */
TEST(cpu_tf32_first_conv_is_the_fp32_conv_of_rounded_operands) {
    at_model *m = NULL;
    at_backend *be = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    REQUIRE(open_be(m, AT_PRECISION_TF32, &be) == AT_OK);
    const at_layer *l = &m->layers[0];
    int n = 2;
    long in = (long)m->in_c * m->in_h * m->in_w, out = at_layer_out_size(l) * n;
    long wn = (long)l->out_c * l->in_c * l->kernel * l->kernel;
    float *x = malloc(sizeof(float) * in * n), *xr = malloc(sizeof(float) * in * n), *w = malloc(sizeof(float) * wn);
    float *got = malloc(sizeof(float) * out), *want = malloc(sizeof(float) * out);
    REQUIRE(x && xr && w && got && want);
    at_prng_fill("input", 1, x, in * n, 2.0f, 0.0f);
    memcpy(xr, x, sizeof(float) * in * n);
    memcpy(w, l->weight, sizeof(float) * wn);
    at_round_tf32(xr, in * n);
    at_round_tf32(w, wn);
    int cap_layer = 0;
    float *caps[1] = {got};
    at_forward_args fa = {.n = n, .input = x, .n_capture = 1, .capture_layer = &cap_layer, .capture_out = caps};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    at_conv2d_forward(xr, n, l->in_c, l->in_h, l->in_w, w, l->bias, l->out_c, l->kernel, l->kernel, l->stride,
                      l->pad, want, NULL);
    CHECK(!memcmp(got, want, sizeof(float) * out));
    float x0 = x[0];
    CHECK(!memcmp(&x0, &x[0], 4)); /* the caller's input is not rounded */
    free(x), free(xr), free(w), free(got), free(want);
    at_backend_destroy(be);
    at_model_free(m);
}

TEST(cpu_emulated_precisions_stay_within_their_rounding_of_fp32) {
    at_model *m = NULL;
    at_backend *f32 = NULL, *t32 = NULL, *f16 = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    REQUIRE(open_be(m, AT_PRECISION_FP32, &f32) == AT_OK && open_be(m, AT_PRECISION_TF32, &t32) == AT_OK &&
            open_be(m, AT_PRECISION_FP16, &f16) == AT_OK);
    CHECK(t32->precision == AT_PRECISION_TF32 && f16->precision == AT_PRECISION_FP16);
    int n = 4, K = m->n_classes, G = m->n_gates;
    long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * in * n), *gates = malloc(sizeof(float) * G * n);
    float *dl = malloc(sizeof(float) * K * n), *lg[3], *gg[3];
    REQUIRE(x && gates && dl);
    at_prng_fill("input", 2, x, in * n, 2.0f, 0.0f);
    at_prng_fill("gates", 3, gates, (long)G * n, 1.0f, 0.5f);
    at_prng_fill("dlogits", 4, dl, (long)K * n, 1.0f, -0.5f);
    at_backend *bes[3] = {f32, t32, f16};
    for (int p = 0; p < 3; p++) {
        lg[p] = malloc(sizeof(float) * K * n), gg[p] = malloc(sizeof(float) * G * n);
        REQUIRE(lg[p] && gg[p]);
        at_forward_args fa = {.n = n, .input = x, .gates = gates, .gates_per_item = 1, .logits = lg[p],
                              .keep_for_backward = 1};
        at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_gates = gg[p]};
        REQUIRE(at_forward(bes[p], &fa) == AT_OK && at_backward(bes[p], &ba) == AT_OK);
    }
    for (int p = 1; p < 3; p++) {
        /* gradients of this random net jump where a ReLU or max-pool choice
         * flips: in plain FP32, scaling the input by 1 +- 5e-4 already moves
         * them by an NMSE of 1e-4; TF32/FP16 rounding (2^-11) by 2e-3 */
        double dlog = max_rel(lg[p], lg[0], (long)K * n), dg = nmse(gg[p], gg[0], (long)G * n);
        CHECKF(dlog > 0 && dlog < 1e-2, "%s logits: max rel diff %.3g", at_precision_name(p), dlog);
        CHECKF(dg > 0 && dg < 1e-2, "%s gate gradients: nmse %.3g", at_precision_name(p), dg);
        printf("    %s vs fp32: logits max rel %.2g, gate gradients nmse %.2g\n", at_precision_name(p), dlog, dg);
    }
    for (int p = 0; p < 3; p++) free(lg[p]), free(gg[p]);
    free(x), free(gates), free(dl);
    at_backend_destroy(f32), at_backend_destroy(t32), at_backend_destroy(f16);
    at_model_free(m);
}

TEST(per_call_precision_equals_a_backend_of_that_precision_and_does_not_stick) {
    at_model *m = NULL;
    at_backend *f32 = NULL, *t32 = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    REQUIRE(open_be(m, AT_PRECISION_FP32, &f32) == AT_OK && open_be(m, AT_PRECISION_TF32, &t32) == AT_OK);
    int n = 3, K = m->n_classes;
    long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * in * n), a[64], b[64], c[64], d[64];
    REQUIRE(x && K * n <= 64);
    at_prng_fill("input", 5, x, in * n, 2.0f, 0.0f);
    const at_precision tf32 = AT_PRECISION_TF32, bad = (at_precision)7;
    at_forward_args fa = {.n = n, .input = x, .logits = a};
    REQUIRE(at_forward(f32, &fa) == AT_OK);
    fa.logits = b, fa.precision = &tf32;
    REQUIRE(at_forward(f32, &fa) == AT_OK);
    fa.logits = c, fa.precision = NULL;
    REQUIRE(at_forward(t32, &fa) == AT_OK);
    fa.logits = d;
    REQUIRE(at_forward(f32, &fa) == AT_OK);
    CHECK(!memcmp(b, c, sizeof(float) * K * n));
    CHECK(!memcmp(a, d, sizeof(float) * K * n));
    CHECK(memcmp(a, b, sizeof(float) * K * n) != 0);
    fa.precision = &bad;
    CHECK(at_forward(f32, &fa) == AT_ERR && strstr(at_last_error(), "unknown precision 7"));
    free(x);
    at_backend_destroy(f32), at_backend_destroy(t32);
    at_model_free(m);
}

/* The question the CIC precision option answers, on the trained model: a
 * TF32 CIC pass moves the scores by rounding noise, not by ranking. */
TEST(cic_scores_at_tf32_stay_close_to_fp32_on_the_shipped_model) {
    at_model *m = NULL;
    at_backend *be = NULL;
    REQUIRE(at_model_load(test_path("weights/vgg16_mini.safetensors"), &m) == AT_OK);
    REQUIRE(open_be(m, AT_PRECISION_FP32, &be) == AT_OK);
    long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * in), *a32 = malloc(sizeof(float) * m->n_gates),
          *a16 = malloc(sizeof(float) * m->n_gates);
    REQUIRE(x && a32 && a16);
    REQUIRE(at_load_input(m, test_path("weights/samples/images/fmscene_test_00000003.png"), x, NULL) == AT_OK);
    int cls = 3;
    const at_precision tf32 = AT_PRECISION_TF32;
    REQUIRE(at_cic_scores(be, x, 1, &cls, NULL, a32, NULL) == AT_OK);
    REQUIRE(at_cic_scores(be, x, 1, &cls, &tf32, a16, NULL) == AT_OK);
    double worst = 0;
    int differ = 0;
    for (int i = 0; i < m->n_gates; i++) {
        double d = fabs((double)a16[i] - a32[i]);
        worst = d > worst ? d : worst;
        differ += d > 0;
    }
    CHECKF(differ > 0 && worst < 5e-3, "%d scores differ, worst by %.3g", differ, worst);
    free(x), free(a32), free(a16);
    at_backend_destroy(be);
    at_model_free(m);
}

/* Reduced precisions round the operands a conv or FC loads, never the stored
 * activations (PyTorch's semantics, and the GPU's): the gate gradient of an
 * ungated pass, sum over the map of dy * relu(z), must use the FP32 relu(z)
 * even where that ReLU's output feeds a conv. Its reference here: the
 * gradient at the ReLU times the FP32 activation captured in the same pass. */
TEST(cpu_tf32_keeps_fp32_activations_for_backward) {
    at_model *m = NULL;
    at_backend *be = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    REQUIRE(open_be(m, AT_PRECISION_TF32, &be) == AT_OK);
    int relu = -1; /* the first gated ReLU whose output feeds a conv */
    for (int c = 0; c < m->n_convs && relu < 0; c++)
        if (m->gate_layer[c] + 1 < m->n_layers && m->layers[m->gate_layer[c] + 1].kind == AT_L_CONV) relu = m->gate_layer[c];
    REQUIRE(relu >= 0);
    const int n = 2;
    const at_layer *l = &m->layers[relu];
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)l->out_h * l->out_w, sz = at_layer_out_size(l) * n;
    float *x = malloc(sizeof(float) * in * n), *act = malloc(sizeof(float) * sz), *dy = malloc(sizeof(float) * sz);
    float *dl = malloc(sizeof(float) * m->n_classes * n), *dg = malloc(sizeof(float) * m->n_gates * n);
    REQUIRE(x && act && dy && dl && dg);
    at_prng_fill("input", 3, x, in * n, 2.0f, 0.0f);
    at_prng_fill("dlogits", 3, dl, (long)m->n_classes * n, 1.0f, 0.0f);
    float *caps[1] = {act};
    at_forward_args fa = {.n = n, .input = x, .n_capture = 1, .capture_layer = &relu, .capture_out = caps,
                          .keep_for_backward = 1};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    at_backward_args ba = {.dlogits = dl, .grad_layer = relu, .grad_layer_out = dy, .grad_gates = dg};
    REQUIRE(at_backward(be, &ba) == AT_OK);
    long rounded = 0, positive = 0;
    for (long i = 0; i < sz; i++) {
        float r = act[i];
        at_round_tf32(&r, 1);
        rounded += r != act[i];
        positive += act[i] > 0;
    }
    CHECKF(rounded > positive / 2, "only %ld of %ld positive activations change under TF32 rounding: the test cannot tell",
           rounded, positive);
    for (int b = 0; b < n; b++)
        for (int c = 0; c < l->out_c; c++) {
            double want = 0;
            for (long p = 0; p < hw; p++) want += (double)dy[(b * l->out_c + c) * hw + p] * act[(b * l->out_c + c) * hw + p];
            const float got = dg[(long)b * m->n_gates + l->gate_offset + c];
            CHECKF(fabs(got - want) <= 1e-6 * fabs(want) + 1e-30, "item %d channel %d: gate gradient %.9g, FP32 activations give %.9g",
                   b, c, got, want);
        }
    free(x), free(act), free(dy), free(dl), free(dg);
    at_backend_destroy(be);
    at_model_free(m);
}
