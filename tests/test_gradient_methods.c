/* The input-gradient methods beyond their goldens (tests/test_methods.c):
 * batches across images give each image's own map, integrated gradients
 * converge to completeness, the quadrature and noise twins of captum and
 * tools/prng.py, --unit's spec and its identity with a logit, and the CUDA
 * backend against the CPU (the cuda_ twin, emulated in CI). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/backend.h"
#include "methods/explain.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {4, 6, 8, 8, 8, 8, 8, 8}, .hidden = {16, 12},
                                    .n_classes = 8, .in_h = 40, .in_w = 32, .avgpool = 1, .seed = 77};

typedef struct {
    const char *name;
    at_method method;
    int ig_steps, smooth;
    at_baseline baseline;
    const char *unit; /* NULL: the class logit */
} grad_case;

static const grad_case CASES[] = {
    {"input-x-gradient", AT_METHOD_INPUT_X_GRADIENT, 0, 0, AT_BASELINE_BLACK, NULL},
    {"integrated-gradients", AT_METHOD_INTEGRATED_GRADIENTS, 5, 0, AT_BASELINE_BLACK, NULL},
    {"integrated-gradients, unit, zero baseline", AT_METHOD_INTEGRATED_GRADIENTS, 3, 0, AT_BASELINE_ZERO, "features.9,2"},
    {"smoothgrad", AT_METHOD_SMOOTHGRAD, 0, 3, AT_BASELINE_BLACK, NULL},
    {"guided-gradcam", AT_METHOD_GUIDED_GRADCAM, 0, 0, AT_BASELINE_BLACK, NULL},
    {"guided-backprop --smooth 2", AT_METHOD_GUIDED_BACKPROP, 0, 2, AT_BASELINE_BLACK, NULL},
    {"saliency, unit element", AT_METHOD_SALIENCY, 0, 0, AT_BASELINE_BLACK, "features.7,3,2,1"},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

/* n maps of case k on be into maps, results into r (NULL: not wanted). */
static int explain_case(at_backend *be, const grad_case *k, const float *x, int n, const int *classes, float *maps,
                        at_explain_result *r) {
    const at_model *m = be->model;
    at_unit unit;
    at_explain_options o = {.method = k->method, .layer = m->gate_layer[m->n_convs - 1], .classes = classes,
                            .ig_steps = k->ig_steps, .smooth = k->smooth, .baseline = k->baseline};
    if (k->unit) {
        if (at_unit_parse(m, k->unit, &unit)) return AT_ERR;
        o.unit = &unit;
    }
    for (int b = 0; b < n; b++) r[b] = (at_explain_result){.map = maps + (long)m->in_h * m->in_w * b};
    return at_explain(be, &o, x, n, r);
}

/* A backend whose batch holds 3 items: the 3 images' IG nodes and noise
 * samples then straddle batch boundaries. */
static at_backend *small_batch_backend(const at_model *m) {
    for (size_t lim = 1 << 16; lim < (1u << 30); lim += lim / 4) {
        at_backend *be = test_backend_open(m, "cpu", lim);
        if (!be) return NULL;
        if (at_max_batch(be, 1) >= 3) return be;
        at_backend_destroy(be);
    }
    return NULL;
}

TEST(gradient_methods_explain_a_batch_as_each_image_alone) {
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    at_backend *be = small_batch_backend(m);
    REQUIRE(be);
    CHECKF(at_max_batch(be, 1) < 6, "batch %d: the images' items would not straddle batches", at_max_batch(be, 1));
    const int n = 3, classes[3] = {-1, 5, -1};
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 3, in * n, 2, 0), *maps = malloc(sizeof(float) * hw * n), *one = malloc(sizeof(float) * hw);
    at_explain_result r[3], r1;
    for (int k = 0; k < N_CASES; k++) {
        if (explain_case(be, &CASES[k], x, n, classes, maps, r)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", CASES[k].name, at_last_error());
            continue;
        }
        for (int b = 0; b < n; b++) {
            REQUIRE(explain_case(be, &CASES[k], x + in * b, 1, classes + b, one, &r1) == AT_OK);
            char what[160];
            snprintf(what, sizeof what, "%s, image %d in a batch of 3 vs alone", CASES[k].name, b);
            /* the same items in other batch positions: float sums in the same order */
            CHECK_CLOSE(what, maps + hw * b, one, hw, 1e-6, 0);
            CHECKF(r[b].cls == r1.cls && r[b].forwards == r1.forwards && r[b].backwards == r1.backwards &&
                       fabsf(r[b].value - r1.value) <= 1e-6f * (1 + fabsf(r1.value)),
                   "%s: image %d: class %d/%d, %ld/%ld forwards, %ld/%ld backwards, value %g/%g", CASES[k].name, b,
                   r[b].cls, r1.cls, r[b].forwards, r1.forwards, r[b].backwards, r1.backwards, r[b].value, r1.value);
        }
        CHECKF(r[1].cls == 5, "%s: class option 5 gave %d", CASES[k].name, r[1].cls);
    }
    free(x), free(maps), free(one);
    test_backend_close(be, m);
}

/* The cost each method reports per map (docs/methods.md). */
TEST(gradient_methods_count_their_forwards_and_backwards) {
    WITH_CPU_RANDOM(&SPEC, m, be);
    const long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = test_random("input", 4, in, 2, 0), *map = malloc(sizeof(float) * m->in_h * m->in_w);
    at_explain_result r;
    const long want[N_CASES][2] = {{1, 1}, {5 + 2, 5}, {3 + 2, 3}, {1 + 3, 3}, {1, 2}, {1 + 2, 2}, {1, 1}};
    for (int k = 0; k < N_CASES; k++) {
        REQUIRE(explain_case(be, &CASES[k], x, 1, NULL, map, &r) == AT_OK);
        CHECKF(r.forwards == want[k][0] && r.backwards == want[k][1], "%s: %ld forwards, %ld backwards; want %ld, %ld",
               CASES[k].name, r.forwards, r.backwards, want[k][0], want[k][1]);
    }
    free(x), free(map);
    test_backend_close(be, m);
}

/* Completeness (Sundararajan et al.): sum of the attribution -> f(x) - f(x')
 * as the rule refines; 50 Gauss-Legendre nodes are far from it on a ReLU net
 * (docs/methods.md#integrated-gradients), 400 midpoints close. */
TEST(integrated_gradients_converge_to_completeness) {
    WITH_CPU_RANDOM(&SPEC, m, be);
    const long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = test_random("input", 5, in, 2, 0), *map = malloc(sizeof(float) * m->in_h * m->in_w);
    at_explain_result r = {.map = map};
    at_explain_options o = {.method = AT_METHOD_INTEGRATED_GRADIENTS, .ig_steps = 400, .ig_rule = AT_IG_RIEMANN_MIDDLE};
    REQUIRE(at_explain(be, &o, x, 1, &r) == AT_OK);
    const double delta = r.value - r.baseline_value, gap = fabs(r.attribution_sum - delta);
    CHECKF(fabs(delta) > 0.05 && gap < 0.02 * fabs(delta), "sum %g vs f(x) - f(x') %g", r.attribution_sum, delta);
    free(x), free(map);
    test_backend_close(be, m);
}

/* Against closed forms: 3-node Gauss-Legendre on [0,1] is 1/2 -+ sqrt(15)/10
 * with weights 5/18, 8/18; the Riemann rules as captum builds them. */
TEST(integrated_gradients_nodes_follow_captums_rules) {
    double a[64], w[64];
    REQUIRE(at_ig_nodes(AT_IG_GAUSS_LEGENDRE, 3, a, w) == AT_OK);
    const double d = sqrt(15.0) / 10;
    CHECKF(fabs(a[0] - (0.5 - d)) < 1e-15 && fabs(a[1] - 0.5) < 1e-15 && fabs(a[2] - (0.5 + d)) < 1e-15, "%.17g %.17g %.17g",
           a[0], a[1], a[2]);
    CHECKF(fabs(w[0] - 5.0 / 18) < 1e-15 && fabs(w[1] - 8.0 / 18) < 1e-15 && fabs(w[2] - 5.0 / 18) < 1e-15,
           "%.17g %.17g %.17g", w[0], w[1], w[2]);
    REQUIRE(at_ig_nodes(AT_IG_GAUSS_LEGENDRE, 50, a, w) == AT_OK);
    double s = 0;
    for (int i = 0; i < 50; i++) {
        s += w[i];
        CHECKF(a[i] > 0 && a[i] < 1 && (i == 0 || a[i] > a[i - 1]), "node %d: %g", i, a[i]);
    }
    CHECKF(fabs(s - 1) < 1e-13, "50 weights sum to %.17g", s);
    REQUIRE(at_ig_nodes(AT_IG_RIEMANN_TRAPEZOID, 5, a, w) == AT_OK);
    CHECK(a[0] == 0 && a[2] == 0.5 && a[4] == 1 && w[0] == 0.1 && w[1] == 0.2 && w[4] == 0.1);
    REQUIRE(at_ig_nodes(AT_IG_RIEMANN_LEFT, 4, a, w) == AT_OK);
    CHECK(a[0] == 0 && a[3] == 0.75 && w[3] == 0.25);
    REQUIRE(at_ig_nodes(AT_IG_RIEMANN_RIGHT, 4, a, w) == AT_OK);
    CHECK(a[0] == 0.25 && a[3] == 1);
    REQUIRE(at_ig_nodes(AT_IG_RIEMANN_MIDDLE, 4, a, w) == AT_OK);
    CHECK(a[0] == 0.125 && a[3] == 0.875);
    CHECK(at_ig_nodes(AT_IG_RIEMANN_LEFT, 1, a, w) == AT_ERR && strstr(at_last_error(), "integration steps"));
    at_ig_rule rule;
    CHECK(at_ig_rule_parse("riemann_trapezoid", &rule) == AT_OK && rule == AT_IG_RIEMANN_TRAPEZOID);
    CHECK(at_ig_rule_parse("gausslegendre", &rule) == AT_OK && rule == AT_IG_GAUSS_LEGENDRE);
    CHECK(at_ig_rule_parse("simpson", &rule) == AT_ERR && strstr(at_last_error(), "integration rule"));
}

/* SmoothGrad's noise: standard normal, and deviate k the same wherever a
 * draw starts (tools/prng.py normal is the twin; the goldens compare them). */
TEST(smoothgrad_noise_is_one_seekable_standard_normal_stream) {
    const long n = 200000;
    float *z = malloc(sizeof(float) * n), *tail = malloc(sizeof(float) * 1000);
    at_prng_normal("smoothgrad", 0, 0, z, n);
    double s = 0, s2 = 0, s4 = 0;
    for (long i = 0; i < n; i++) s += z[i], s2 += (double)z[i] * z[i], s4 += (double)z[i] * z[i] * z[i] * z[i];
    const double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n / (var * var);
    /* 200000 deviates: the mean's sd is 0.0022, the variance's 0.0032, the kurtosis' ~0.011 */
    CHECKF(fabs(mean) < 0.01 && fabs(var - 1) < 0.015 && fabs(kurt - 3) < 0.06, "mean %g var %g kurtosis %g", mean, var,
           kurt);
    at_prng_normal("smoothgrad", 0, 123456, tail, 1000);
    SAME_BITS("deviates 123456.. drawn from there", tail, z + 123456, 1000);
    at_prng_normal("smoothgrad", 1, 123456, tail, 1000);
    CHECK(memcmp(tail, z + 123456, sizeof(float) * 1000) != 0);
    free(z), free(tail);
}

TEST(unit_specs_are_parsed_and_bad_ones_named) {
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    at_unit u;
    const int l7 = at_model_find_layer(m, "features.7");
    REQUIRE(at_unit_parse(m, "features.7,3,2,1", &u) == AT_OK);
    CHECK(u.layer == l7 && u.channel == 3 && u.x == 2 && u.y == 1);
    REQUIRE(at_unit_parse(m, "2,5", &u) == AT_OK); /* a conv ordinal: its ReLU's output */
    CHECK(u.layer == m->gate_layer[2] && u.channel == 5 && u.x == -1 && u.y == -1);
    char buf[64];
    at_unit_format(m, &u, buf, sizeof buf);
    CHECKF(!strcmp(buf, "features.7,5"), "%s", buf);
    REQUIRE(at_unit_parse(m, "classifier.3,11", &u) == AT_OK);
    const char *bad[] = {"features.7", "features.7,3,2", "features.7,x", "features.99,0", "features.7,8",
                         "features.7,0,8,0", "features.7,0,0,-1", "classifier.3,12", ""};
    for (int i = 0; i < 9; i++) {
        at_clear_error();
        CHECKF(at_unit_parse(m, bad[i], &u) == AT_ERR && !strncmp(at_last_error(), "unit: ", 6), "'%s': %s", bad[i],
               at_last_error());
    }
    at_model_free(m);
}

/* A unit at the logits is the class: the same map, bit for bit; and methods
 * that explain a class refuse a unit. */
TEST(unit_at_the_logit_layer_is_the_class_logit) {
    WITH_CPU_RANDOM(&SPEC, m, be);
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 6, in, 2, 0), *a = malloc(sizeof(float) * hw), *b = malloc(sizeof(float) * hw);
    const int cls = 4;
    at_unit u;
    REQUIRE(at_unit_parse(m, "classifier.6,4", &u) == AT_OK);
    at_explain_options by_class = {.method = AT_METHOD_INPUT_X_GRADIENT, .classes = &cls};
    at_explain_options by_unit = {.method = AT_METHOD_INPUT_X_GRADIENT, .unit = &u};
    at_explain_result ra = {.map = a}, rb = {.map = b};
    REQUIRE(at_explain(be, &by_class, x, 1, &ra) == AT_OK && at_explain(be, &by_unit, x, 1, &rb) == AT_OK);
    SAME_BITS("input x gradient of unit classifier.6,4 vs class 4", b, a, hw);
    CHECK(rb.value == ra.logit);
    at_explain_options gc = {.method = AT_METHOD_GRADCAM, .layer = m->gate_layer[m->n_convs - 1], .unit = &u};
    CHECK(at_explain(be, &gc, x, 1, &ra) == AT_ERR && strstr(at_last_error(), "unit"));
    at_explain_options sm = {.method = AT_METHOD_SCORECAM, .layer = m->gate_layer[m->n_convs - 1], .smooth = 2};
    CHECK(at_explain(be, &sm, x, 1, &ra) == AT_ERR && strstr(at_last_error(), "noise samples"));
    free(x), free(a), free(b);
    test_backend_close(be, m);
}

/* Every case on CUDA against the CPU (written once against the executor:
 * only the backend differs). */
TEST(cuda_gradient_methods_match_the_cpu) {
    const char *skip = test_backend_unusable("cuda");
    if (skip) SKIP(skip);
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    at_backend *cpu = test_backend_open(m, "cpu", 0), *gpu = test_backend_open(m, "cuda", 0);
    REQUIRE(cpu && gpu);
    const int n = 2;
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 8, in * n, 2, 0), *mc = malloc(sizeof(float) * hw * n), *mg = malloc(sizeof(float) * hw * n);
    at_explain_result rc[2], rg[2];
    for (int k = 0; k < N_CASES; k++) {
        REQUIRE(explain_case(cpu, &CASES[k], x, n, NULL, mc, rc) == AT_OK);
        if (explain_case(gpu, &CASES[k], x, n, NULL, mg, rg)) {
            test_fail_at(__FILE__, __LINE__, "%s on cuda: %s", CASES[k].name, at_last_error());
            continue;
        }
        /* FP32 sums in other orders through 12 layers: ~1e-6 of the map's range
         * (the CPU's Winograd convs included, docs/bench.md) */
        CHECK_CLOSE(CASES[k].name, mg, mc, hw * n, 1e-4, 0);
        for (int b = 0; b < n; b++)
            CHECKF(rg[b].cls == rc[b].cls && fabsf(rg[b].value - rc[b].value) <= 1e-4f * (1 + fabsf(rc[b].value)) &&
                       fabs(rg[b].attribution_sum - rc[b].attribution_sum) <= 1e-4 * (1 + fabs(rc[b].attribution_sum)),
                   "%s image %d: class %d/%d value %g/%g sum %g/%g", CASES[k].name, b, rg[b].cls, rc[b].cls, rg[b].value,
                   rc[b].value, rg[b].attribution_sum, rc[b].attribution_sum);
    }
    free(x), free(mc), free(mg);
    at_backend_destroy(cpu), at_backend_destroy(gpu);
    at_model_free(m);
}
