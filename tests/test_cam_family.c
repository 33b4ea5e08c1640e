/* The CAM family (docs/methods.md#layercam .. #eigencam) beyond the goldens
 * of test_methods.c: Ablation-CAM's partial forwards against the whole
 * network that pytorch-grad-cam runs, batches against single images, and
 * the CUDA backend against the CPU (cuda_* twins, emulated in CI). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "exec/backend.h"
#include "methods/explain.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {4, 6, 8, 8, 8, 8, 8, 8}, .hidden = {16, 12},
                                    .n_classes = 8, .in_h = 32, .in_w = 40, .avgpool = 2, .seed = 11};
/* maps in [0,1] from fp32 passes that differ only in batching or backend
 * (summation order): a few ulps, amplified by min-max of small ranges */
#define MAP_ATOL 2e-5
/* Ablation-CAM weights from the same logits computed two ways: relative to the largest */
#define WEIGHT_RTOL 1e-6

static const at_method FAMILY[] = {AT_METHOD_LAYERCAM, AT_METHOD_XGRADCAM, AT_METHOD_HIRESCAM, AT_METHOD_ABLATIONCAM,
                                   AT_METHOD_EIGENCAM};
#define N_FAMILY ((int)(sizeof FAMILY / sizeof FAMILY[0]))

/* One map per (method, variant) for n images: [n][H][W]; fused LayerCAM included. */
static int family_maps(at_backend *be, at_method method, at_variant v, int fused, const float *x, int n, float *maps) {
    const at_model *m = be->model;
    int layers[3] = {m->gate_layer[m->n_convs - 1], m->gate_layer[m->n_convs - 3], m->gate_layer[m->n_convs - 5]};
    at_explain_options o = {.method = method, .variant = v, .layer = layers[0], .layers = layers,
                            .n_layers = fused ? 3 : 1};
    at_explain_result *r = calloc(n, sizeof *r);
    for (int b = 0; b < n; b++) r[b].map = maps + (long)b * m->in_h * m->in_w;
    int rc = at_explain(be, &o, x, n, r);
    free(r);
    return rc;
}

/* Each ablated pass, a partial forward from the layer, gives the logits of
 * the whole network run from the input with the layer's output replaced (what
 * pytorch-grad-cam computes); and the method's weights are (y - y_k) / y of
 * them. Where a residual branch bypasses the layer (a ResNet BN output before
 * its add) the method runs the whole network itself: its weights still must be. */
static const at_random_spec RESNET = {.arch = "resnet18", .widths = {4, 4, 6, 8, 8}, .n_classes = 5, .in_h = 64,
                                      .in_w = 64, .seed = 3};

static void ablation_equals_the_whole_network(const char *backend, const at_random_spec *spec, const char *layer,
                                              at_variant variant) {
    const char *skip;
    if ((skip = test_backend_unusable(backend))) SKIP(skip);
    at_model *m = NULL;
    at_backend *be = NULL;
    at_backend_options bo = {.name = backend};
    if (at_random_model(spec, &m) || at_backend_create(m, &bo, &be)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", backend, at_last_error());
        at_model_free(m);
        return;
    }
    const int L = layer ? at_model_find_layer(m, layer) : m->gate_layer[m->n_convs - 2], K = m->n_classes;
    REQUIRE(L >= 0);
    const at_layer *l = &m->layers[L];
    const int C = l->out_c;
    const long hw = (long)l->out_h * l->out_w, size = (long)C * hw, in = (long)m->in_c * m->in_h * m->in_w;
    float *x = test_random("input", 5, in, 2, 0), *a = malloc(sizeof(float) * size), *y = malloc(sizeof(float) * K);
    float *ablated = malloc(sizeof(float) * size * C), *part = malloc(sizeof(float) * K * C);
    float *whole = malloc(sizeof(float) * K * C), *w = malloc(sizeof(float) * C);
    float *map = malloc(sizeof(float) * m->in_h * m->in_w);
    int *rows = calloc(C, sizeof(int));
    at_forward_args fa = {.n = 1, .input = x, .logits = y, .n_capture = 1, .capture_layer = &L, .capture_out = &a};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    float lo = a[0];
    for (long i = 1; i < size; i++) lo = a[i] < lo ? a[i] : lo;
    const float value = variant == AT_VARIANT_PGC && lo != 0 ? lo - 1e7f : 0.0f; /* docs/methods.md#ablation-cam */
    for (int k = 0; k < C; k++) {
        memcpy(ablated + k * size, a, sizeof(float) * size);
        for (long i = 0; i < hw; i++) ablated[k * size + k * hw + i] = value;
    }
    at_forward_args wa = {.n = C, .input = x, .input_index = rows, .logits = whole, .patch_mode = AT_PATCH_REPLACE,
                          .patch_layer = L, .patch = ablated};
    REQUIRE(at_forward(be, &wa) == AT_OK);
    if (!layer) { /* a chain: the pass can start at the layer */
        at_forward_args pa = {.n = C, .start_output = ablated, .start_layer = L, .logits = part};
        REQUIRE(at_forward(be, &pa) == AT_OK);
        SAME_BITS("ablated logits: partial forward vs the whole network", part, whole, (long)K * C);
    }
    at_explain_options o = {.method = AT_METHOD_ABLATIONCAM, .variant = variant, .layer = L};
    at_explain_result r = {.map = map, .weights = w};
    REQUIRE(at_explain(be, &o, x, 1, &r) == AT_OK);
    float ref[64], scale = 0;
    for (int k = 0; k < C; k++) {
        ref[k] = (y[r.cls] - whole[(long)k * K + r.cls]) / y[r.cls];
        scale = fabsf(ref[k]) > scale ? fabsf(ref[k]) : scale;
    }
    CHECK(scale > 0);
    CHECK_CLOSE("Ablation-CAM weights vs the whole network's", w, ref, C, WEIGHT_RTOL * scale, 0);
    free(x), free(a), free(y), free(ablated), free(part), free(whole), free(w), free(map), free(rows);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(cam_ablation_partial_forwards_equal_the_whole_network) {
    ablation_equals_the_whole_network("cpu", &SPEC, NULL, AT_VARIANT_AUTHORS);
}
TEST(cuda_cam_ablation_partial_forwards_equal_the_whole_network) {
    ablation_equals_the_whole_network("cuda", &SPEC, NULL, AT_VARIANT_AUTHORS);
}
TEST(cam_ablation_of_a_bypassed_resnet_layer_runs_the_whole_network) {
    ablation_equals_the_whole_network("cpu", &RESNET, "layer4.1.bn2", AT_VARIANT_AUTHORS);
    ablation_equals_the_whole_network("cpu", &RESNET, "layer4.1.bn2", AT_VARIANT_PGC);
}
TEST(cuda_cam_ablation_of_a_bypassed_resnet_layer_runs_the_whole_network) {
    ablation_equals_the_whole_network("cuda", &RESNET, "layer4.1.bn2", AT_VARIANT_PGC);
}

/* Three images in one call give the maps of three calls of one image. */
TEST(cam_family_batches_give_the_single_image_maps) {
    at_model *m = NULL;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, "cpu", &m, &skip);
    if (!be) return;
    const int n = 3;
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 9, in * n, 2, 0), *batched = malloc(sizeof(float) * hw * n);
    float *single = malloc(sizeof(float) * hw * n);
    for (int i = 0; i <= N_FAMILY; i++) {
        const at_method meth = i < N_FAMILY ? FAMILY[i] : AT_METHOD_LAYERCAM;
        const int fused = i == N_FAMILY;
        REQUIRE(family_maps(be, meth, AT_VARIANT_AUTHORS, fused, x, n, batched) == AT_OK);
        for (int b = 0; b < n; b++)
            REQUIRE(family_maps(be, meth, AT_VARIANT_AUTHORS, fused, x + in * b, 1, single + hw * b) == AT_OK);
        char what[64];
        snprintf(what, sizeof what, "%s%s batched vs single", at_method_name(meth), fused ? " (fused)" : "");
        CHECK_CLOSE(what, batched, single, hw * n, MAP_ATOL, 0);
    }
    free(x), free(batched), free(single);
    at_backend_destroy(be);
    at_model_free(m);
}

/* Every method and variant of the family, two images, CUDA against the CPU. */
TEST(cuda_cam_family_maps_match_the_cpu) {
    at_model *m = NULL, *m2 = NULL;
    const char *skip;
    at_backend *gpu = test_random_backend(&SPEC, "cuda", &m, &skip);
    if (skip) SKIP(skip);
    if (!gpu) return;
    at_backend *cpu = test_random_backend(&SPEC, "cpu", &m2, &skip);
    REQUIRE(cpu);
    const int n = 2;
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 13, in * n, 2, 0), *a = malloc(sizeof(float) * hw * n), *b = malloc(sizeof(float) * hw * n);
    for (int i = 0; i <= N_FAMILY; i++)
        for (int v = AT_VARIANT_AUTHORS; v <= AT_VARIANT_TORCHCAM; v++) {
            const at_method meth = i < N_FAMILY ? FAMILY[i] : AT_METHOD_LAYERCAM;
            if (!at_method_has_variant(meth, (at_variant)v)) continue;
            REQUIRE(family_maps(gpu, meth, (at_variant)v, i == N_FAMILY, x, n, a) == AT_OK);
            REQUIRE(family_maps(cpu, meth, (at_variant)v, i == N_FAMILY, x, n, b) == AT_OK);
            char what[80];
            snprintf(what, sizeof what, "%s.%s%s cuda vs cpu", at_method_name(meth), at_variant_name((at_variant)v),
                     i == N_FAMILY ? " (fused)" : "");
            CHECK_CLOSE(what, a, b, hw * n, MAP_ATOL, 0);
        }
    free(x), free(a), free(b);
    at_backend_destroy(gpu), at_backend_destroy(cpu);
    at_model_free(m), at_model_free(m2);
}

/* The CLI: every method of the family from explain, LayerCAM's fused
 * layers named in the files and lines, eval on the maps, bad usage refused. */
#include "io/image.h"
#include "model_fixture.h"

static char out[16384];

TEST(cam_family_runs_from_explain_and_eval) {
    const char *dir = test_tmpdir();
    char model[600], img[2][600], cmd[8192], path[1400];
    snprintf(model, sizeof model, "%s/tiny.safetensors", dir);
    at_model *m = fixture_tiny_model();
    REQUIRE(m && fixture_write_model(m, model, NULL) == AT_OK);
    at_model_free(m);
    unsigned char rgb[32 * 32 * 3];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < (int)sizeof rgb; i++) rgb[i] = (unsigned char)(i * (41 + 2 * k) + (i >> 5) * k);
        snprintf(img[k], sizeof img[k], "%s/img%d.png", dir, k);
        REQUIRE(at_image_write_png(img[k], 32, 32, rgb) == AT_OK);
    }
    static const char *const runs[] = {"layercam --layer 5,7", "layercam --variant pgc --layer 3,5,7", "xgradcam",
                                       "xgradcam --variant torchcam", "hirescam", "ablation-cam",
                                       "ablation-cam --variant pgc", "eigencam", "eigencam --variant pgc"};
    for (int i = 0; i < (int)(sizeof runs / sizeof runs[0]); i++) {
        snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --out %s/out --method %s %s %s",
                 test_root(), model, dir, runs[i], img[0], img[1]);
        CHECKF(run_cmd(cmd, out, sizeof out) == 0, "explain --method %s: %s", runs[i], out);
    }
    snprintf(path, sizeof path, "%s/out/img1.layercam.features.14+features.19.npy", dir);
    CHECKF(access(path, F_OK) == 0, "%s missing", path);
    snprintf(path, sizeof path, "%s/out/img0.eigencam.pgc.npy", dir);
    CHECKF(access(path, F_OK) == 0, "%s missing", path);
    snprintf(path, sizeof path, "%s/out/results.jsonl", dir);
    size_t n_bytes;
    unsigned char *lines = test_read_bytes(path, &n_bytes), *z = lines ? realloc(lines, n_bytes + 1) : NULL;
    if (z) z[n_bytes] = 0; /* a string for strstr */
    lines = z ? z : lines;
    CHECK(z && strstr((char *)lines, "\"layer\":\"features.9+features.14+features.19\"") &&
          strstr((char *)lines, "\"method\":\"ablation-cam.pgc\""));
    free(lines);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s/out --metric ad-ic", test_root(),
             model, dir);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "ablation-cam.pgc") && strstr(out, "eigencam"),
           "eval: %s", out);
    static const char *const bad[] = {"gradcam --layer 5,7", "hirescam --variant torchcam", "eigencam --variant torchcam"};
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --out %s/bad --method %s %s",
                 test_root(), model, dir, bad[i], img[0]);
        CHECKF(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "attrib: --"), "explain --method %s: %s", bad[i], out);
    }
}
