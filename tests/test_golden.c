/* CPU backend vs PyTorch: random-weight VGG and ResNet models rebuilt from the shared
 * PRNG (host/model/random_model.c = tools/prng.py) against goldens written by
 * tools/make_goldens.py (committed in tests/goldens, or ATTRIB_GOLDENS). */
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "golden_util.h"
#include "io/json.h"
#include "model/random_model.h"
#include "test.h"

/* float32 with different summation orders over K ~ 5000-term dot products,
 * 13-19 layers deep: relative errors of a few 1e-5 of the tensor's scale.
 * Tolerances are relative to the reference's largest magnitude. */
#define LOGIT_RTOL 2e-4
#define GRAD_RTOL 1e-3

static float max_abs(const float *x, long n) {
    float m = 0;
    for (long i = 0; i < n; i++)
        if (fabsf(x[i]) > m) m = fabsf(x[i]);
    return m;
}

/* Tolerance relative to the reference's largest magnitude. */
static int compare(const char *dir, const char *file, const char *what, const float *got, long n, double rtol) {
    long rn;
    float *ref = golden_npy(dir, file, &rn);
    if (!ref) return 0;
    double atol = rtol * max_abs(ref, rn);
    free(ref);
    return golden_compare(dir, file, what, got, n, atol, rtol);
}

/* Every sample-th element (the large cases keep a strided sample), in place. */
static long subsample(float *x, long n, int sample) {
    if (sample <= 1) return n;
    long k = 0;
    for (long i = 0; i < n; i += sample) x[k++] = x[i];
    return k;
}

static void run_golden_case(const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", golden_dir(), name);
    at_json *meta = golden_meta(dir);
    if (!meta) return;
    const at_json *cap = at_json_get(meta, "capture"), *full = at_json_get(meta, "full");
    int n = golden_meta_int(meta, "batch", -1), sample = golden_meta_int(meta, "sample", 1);
    const at_json *gin_rtol = at_json_get(meta, "grad_input_rtol");
    int want_full = full && full->boolean;
    at_model *m = golden_model(meta);
    at_backend *be = NULL;
    at_backend_options opt = {.name = "cpu"};
    uint64_t seed = (uint64_t)golden_meta_int(meta, "seed", -1);
    if (!m || at_backend_create(m, &opt, &be)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        at_model_free(m);
        at_json_free(meta);
        return;
    }
    CHECKF(m->n_gates == golden_meta_int(meta, "n_gates", -1), "%s: %d gates, golden %d", name, m->n_gates,
           golden_meta_int(meta, "n_gates", -1));
    long in_n = (long)n * 3 * m->in_h * m->in_w;
    int layer = at_model_find_layer(m, cap->string);
    REQUIRE(layer >= 0);
    long act_n = at_layer_out_size(&m->layers[layer]) * n;
    float *x = malloc(sizeof(float) * in_n), *gates = malloc(sizeof(float) * n * m->n_gates),
          *dl = malloc(sizeof(float) * n * m->n_classes), *logits = malloc(sizeof(float) * n * m->n_classes),
          *act = malloc(sizeof(float) * act_n), *gact = malloc(sizeof(float) * act_n),
          *ggates = malloc(sizeof(float) * n * m->n_gates), *gin = malloc(sizeof(float) * in_n);
    at_prng_fill("input", seed, x, in_n, 2.0f, 0.0f);
    const at_json *gs = at_json_get(meta, "gate_scale");
    at_prng_fill("gates", seed, gates, (long)n * m->n_gates, gs ? (float)gs->number : 1.0f, 1.0f);
    at_prng_fill("dlogits", seed, dl, (long)n * m->n_classes, 1.0f, 0.0f);

    at_forward_args fa = {.n = n, .input = x, .logits = logits, .n_capture = 1, .capture_layer = &layer,
                          .capture_out = &act};
    CHECKF(at_forward(be, &fa) == AT_OK, "%s", at_last_error());
    compare(dir, "logits.npy", "logits", logits, (long)n * m->n_classes, LOGIT_RTOL);
    if (want_full) compare(dir, "act.npy", "captured activation", act, subsample(act, act_n, sample), LOGIT_RTOL);

    at_forward_args ga = fa;
    ga.gates = gates;
    ga.gates_per_item = 1;
    ga.keep_for_backward = 1;
    CHECKF(at_forward(be, &ga) == AT_OK, "%s", at_last_error());
    compare(dir, "gated_logits.npy", "gated logits", logits, (long)n * m->n_classes, LOGIT_RTOL);
    at_backward_args ba = {.dlogits = dl, .grad_layer = want_full ? layer : -1, .grad_layer_out = gact,
                           .grad_gates = ggates, .grad_input = want_full ? gin : NULL};
    CHECKF(at_backward(be, &ba) == AT_OK, "%s", at_last_error());
    /* reduced cases check the last block's gates only (see tools/make_goldens.py) */
    int from = golden_meta_int(meta, "gates_from", -1), per;
    if (from < 0) from = 0;
    per = m->n_gates - from;
    for (int b = 0; b < n; b++) memmove(ggates + (long)b * per, ggates + (long)b * m->n_gates + from, sizeof(float) * per);
    compare(dir, "grad_gates.npy", "gate gradients", ggates, (long)n * per, GRAD_RTOL);
    if (want_full) {
        compare(dir, "grad_input.npy", "input gradients", gin, subsample(gin, in_n, sample),
                gin_rtol ? gin_rtol->number : GRAD_RTOL);
        compare(dir, "grad_act.npy", "activation gradients", gact, subsample(gact, act_n, sample), GRAD_RTOL);
    }
    free(x), free(gates), free(dl), free(logits), free(act), free(gact), free(ggates), free(gin);
    at_backend_destroy(be);
    at_model_free(m);
    at_json_free(meta);
}

TEST(golden_vgg11_tiny_forward_and_gradients_match_pytorch) { run_golden_case("vgg11_tiny"); }
TEST(golden_vgg16_bn_folded_non_square_overlapping_avgpool_matches_pytorch) { run_golden_case("vgg16_bn_small"); }
TEST(golden_vgg13_avgpool_larger_than_map_matches_pytorch) { run_golden_case("vgg13_avg3"); }
TEST(golden_vgg19_matches_pytorch) { run_golden_case("vgg19_small"); }
TEST(golden_vgg16_mini_widths_match_pytorch) { run_golden_case("vgg16_mini_width"); }
TEST(golden_resnet18_tiny_matches_pytorch) { run_golden_case("resnet18_tiny"); }
TEST(golden_resnet50_bottlenecks_reduced_width_match_pytorch) { run_golden_case("resnet50_small"); }
TEST(golden_resnet18_full_224_logits_and_gradients_match_pytorch) {
    if (getenv("ATTRIB_SKIP_LARGE")) SKIP("ATTRIB_SKIP_LARGE is set (full ResNet-18 golden)");
    run_golden_case("resnet18_full");
}
TEST(golden_resnet50_full_224_logits_and_gradients_match_pytorch) {
    if (getenv("ATTRIB_SKIP_LARGE")) SKIP("ATTRIB_SKIP_LARGE is set (full ResNet-50 golden)");
    run_golden_case("resnet50_full");
}
TEST(golden_vgg16_full_224_logits_and_gate_gradients_match_pytorch) {
    if (getenv("ATTRIB_SKIP_LARGE")) SKIP("ATTRIB_SKIP_LARGE is set (full VGG16 golden)");
    run_golden_case("vgg16_full");
}
