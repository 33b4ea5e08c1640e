/* L-CAM (docs/methods.md#l-cam): the shipped modules against PyTorch's
 * output of the same module on the committed samples (tests/goldens/lcam,
 * tools/make_lcam_goldens.py), on the CPU and the CUDA backend (emulated in
 * CI); the executor's extra conv against a direct sum on both backends;
 * modules that do not fit their model refused in one line; the soft masking
 * of AD/IC (--zero-lowest) on constructed maps. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "exec/backend.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "methods/explain.h"
#include "methods/lcam.h"
#include "metrics/metrics.h"
#include "metrics/scoring.h"
#include "model/random_model.h"
#include "preprocess/pipeline.h"
#include "tensor_util.h"
#include "test.h"

/* Pre-sigmoid scores: fp32 forwards in another summation order (Winograd on
 * the CPU, GEMM tiles on CUDA) than PyTorch's, relative to the largest score
 * (measured: 7.2e-7 VGG16-mini and 4.8e-7 ResNet18-mini on the CPU, 3.3e-7 on CUDA) */
#define SCORE_RTOL 4e-6
/* Final maps: min-max of an 8x8 / 6x6 map, upsampled (measured: at most 6.6e-7) */
#define MAP_ATOL 1e-5

/* The shipped model stem's module on its golden's first n images. */
static void lcam_matches_pytorch(const char *stem, const char *backend, int n) {
    const char *skip = test_backend_unusable(backend);
    if (skip) SKIP(skip);
    char dir[1024], model_rel[256];
    snprintf(dir, sizeof dir, "%s/lcam/%s", golden_dir(), stem);
    snprintf(model_rel, sizeof model_rel, "weights/%s.safetensors", stem);
    at_json *meta = golden_meta(dir);
    REQUIRE(meta);
    at_model *m = NULL;
    at_backend *be = NULL;
    at_lcam *lc = NULL;
    float *x = NULL, *acts = NULL, *scores = NULL, *maps = NULL, *ref = NULL;
    at_explain_result *r = NULL;
    if (at_model_load(test_path(model_rel), &m)) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        goto done;
    }
    if (strcmp(golden_meta_str(meta, "model_sha256", ""), m->sha256)) {
        test_fail_at(__FILE__, __LINE__, "%s changed since tests/goldens/lcam/%s was made: retrain its module "
                     "(tools/train_lcam.py) and run tools/make_lcam_goldens.py", model_rel, stem);
        goto done;
    }
    char mod[1100];
    at_lcam_default_path(m, mod, sizeof mod);
    if (at_lcam_load(m, mod, &lc) || !(be = test_backend_open(m, backend, 0))) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        goto done;
    }
    CHECK(lc->layer == at_model_find_layer(m, golden_meta_str(meta, "layer", ""))); /* "layer4" is layer4.1's output */
    const at_json *images = at_json_get(meta, "images"), *pred = at_json_get(meta, "predicted");
    REQUIRE(images && pred && (int)images->n >= n);
    const at_layer *L = &m->layers[lc->layer];
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w, lhw = (long)L->out_h * L->out_w;
    const long nc = m->n_classes;
    x = malloc(sizeof(float) * in * n), acts = malloc(sizeof(float) * n * L->out_c * lhw);
    scores = malloc(sizeof(float) * n * nc * lhw), maps = malloc(sizeof(float) * n * hw);
    r = calloc(n, sizeof *r);
    REQUIRE(x && acts && scores && maps && r);
    for (int i = 0; i < n; i++)
        if (at_load_input(m, test_path(images->items[i].string), x + in * i, NULL)) {
            test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
            goto done;
        }
    /* the module's scores of every class: the forward's capture through the extra conv */
    at_forward_args fa = {.n = n, .input = x, .n_capture = 1, .capture_layer = &lc->layer, .capture_out = &acts,
                          .end_layer = lc->layer + 1};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    REQUIRE(at_extra_conv(be, lc->weight, lc->bias, (int)nc, L->out_c, 1, 0, acts, n, L->out_h, L->out_w, scores) ==
            AT_OK);
    long nref;
    ref = golden_npy(dir, "scores.npy", &nref);
    REQUIRE(ref && nref >= n * nc * lhw);
    char what[160];
    snprintf(what, sizeof what, "%s L-CAM scores (%s)", stem, backend);
    test_close_nmse(what, scores, ref, n * nc * lhw, SCORE_RTOL, 1e-10, __FILE__, __LINE__);
    /* the maps from at_explain */
    at_explain_options o = {.method = AT_METHOD_LCAM, .layer = -1, .lcam = lc};
    for (int i = 0; i < n; i++) r[i].map = maps + hw * i;
    REQUIRE(at_explain(be, &o, x, n, r) == AT_OK);
    for (int i = 0; i < n; i++) {
        CHECKF(r[i].cls == (int)pred->items[i].number, "%s image %d: class %d, PyTorch predicts %d", stem, i, r[i].cls,
               (int)pred->items[i].number);
        CHECK(r[i].forwards == 1 && r[i].backwards == 0 && !r[i].flat_map);
    }
    const int n_maps = golden_meta_int(meta, "n_maps", 0) < n ? golden_meta_int(meta, "n_maps", 0) : n;
    snprintf(what, sizeof what, "%s L-CAM maps (%s)", stem, backend);
    CHECK(n_maps > 0);
    golden_compare(dir, "maps.npy", what, maps, hw * n_maps, MAP_ATOL, 0);
done:
    free(x), free(acts), free(scores), free(maps), free(ref), free(r);
    at_lcam_free(lc);
    test_backend_close(be, m);
    at_json_free(meta);
}

TEST(lcam_vgg16_mini_matches_pytorch_on_the_samples) { lcam_matches_pytorch("vgg16_mini", "cpu", 32); }
TEST(cuda_lcam_vgg16_mini_matches_pytorch_on_the_samples) { lcam_matches_pytorch("vgg16_mini", "cuda", 2); }
TEST(lcam_resnet18_mini_matches_pytorch_on_the_samples) { lcam_matches_pytorch("resnet18_mini", "cpu", 32); }
TEST(cuda_lcam_resnet18_mini_matches_pytorch_on_the_samples) { lcam_matches_pytorch("resnet18_mini", "cuda", 2); }

/* ---- the executor's extra conv, and L-CAM on a random net, both backends ---- */

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {4, 6, 8, 8, 8, 8, 8, 8}, .hidden = {16, 12},
                                    .n_classes = 8, .in_h = 32, .in_w = 40, .avgpool = 2, .seed = 11};

static void extra_conv_is_a_direct_sum(const char *backend) {
    const char *skip = test_backend_unusable(backend);
    if (skip) SKIP(skip);
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    at_backend *be = test_backend_open(m, backend, 0);
    REQUIRE(be);
    /* 1x1 (L-CAM's head) and a padded 3x3 on odd shapes, twice each: the second call reuses the prepared one */
    static const int shapes[][6] = {{10, 7, 1, 0, 5, 3}, {3, 5, 3, 1, 4, 6}, {1, 33, 1, 0, 1, 2}};
    for (int s = 0; s < 3; s++) {
        const int K = shapes[s][0], C = shapes[s][1], k = shapes[s][2], pad = shapes[s][3], H = shapes[s][4],
                  W = shapes[s][5], n = 3, Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
        float *w = test_random("w", 5 + s, (long)K * C * k * k, 1, 0), *b = test_random("b", 6 + s, K, 1, 0);
        float *x = test_random("x", 7 + s, (long)n * C * H * W, 2, 0);
        float *y = malloc(sizeof(float) * n * K * Ho * Wo), *ref = malloc(sizeof(float) * n * K * Ho * Wo);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < K; o++)
                for (int u = 0; u < Ho; u++)
                    for (int v = 0; v < Wo; v++) {
                        double acc = b[o];
                        for (int c = 0; c < C; c++)
                            for (int p = 0; p < k; p++)
                                for (int q = 0; q < k; q++) {
                                    const int yy = u + p - pad, xx = v + q - pad;
                                    if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                                        acc += (double)w[((o * C + c) * k + p) * k + q] * x[((i * C + c) * H + yy) * W + xx];
                                }
                        ref[((i * K + o) * Ho + u) * Wo + v] = (float)acc;
                    }
        for (int rep = 0; rep < 2; rep++) {
            REQUIRE(at_extra_conv(be, w, b, K, C, k, pad, x, n, H, W, y) == AT_OK);
            CHECK_CLOSE("extra conv", y, ref, (long)n * K * Ho * Wo, 1e-5, 1e-5);
        }
        free(w), free(b), free(x), free(y), free(ref);
    }
    float one = 1, z[4] = {0};
    CHECK(at_extra_conv(be, &one, &one, 1, 1, 3, 0, z, 1, 2, 2, z) == AT_ERR && strstr(at_last_error(), "conv"));
    test_backend_close(be, m);
}
TEST(lcam_extra_conv_is_a_direct_sum) { extra_conv_is_a_direct_sum("cpu"); }
TEST(cuda_lcam_extra_conv_is_a_direct_sum) { extra_conv_is_a_direct_sum("cuda"); }

/* A module in memory for the random net's last conv ReLU. */
static at_lcam *random_module(const at_model *m) {
    at_lcam *l = calloc(1, sizeof *l);
    l->layer = m->cam_layer;
    l->K = m->layers[l->layer].out_c, l->n_classes = m->n_classes;
    l->weight = test_random("lcam w", 21, (long)l->K * l->n_classes, 0.5f, 0);
    l->bias = test_random("lcam b", 22, l->n_classes, 0.5f, 0);
    snprintf(l->layer_name, sizeof l->layer_name, "%s", m->layers[l->layer].name);
    snprintf(l->model_sha256, sizeof l->model_sha256, "%s", m->sha256);
    snprintf(l->path, sizeof l->path, "random");
    return l;
}

/* The map is min-max(Up(min-max(c))) of the class's score map c = W A + b,
 * computed here from the captured layer; batches of 3 give the single maps. */
TEST(lcam_map_is_the_classes_score_map_normalised_and_upsampled) {
    WITH_CPU_RANDOM(&SPEC, m, be);
    at_lcam *lc = random_module(m);
    const at_layer *L = &m->layers[lc->layer];
    const int n = 3, K = L->out_c;
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w, lhw = (long)L->out_h * L->out_w;
    float *x = test_random("input", 13, in * n, 2, 0), *maps = malloc(sizeof(float) * hw * n);
    float *one = malloc(sizeof(float) * hw), *acts = malloc(sizeof(float) * K * lhw), *cam = malloc(sizeof(float) * lhw);
    float *ref = malloc(sizeof(float) * hw);
    int classes[3] = {-1, 5, -1};
    at_explain_result r[3] = {{.map = maps}, {.map = maps + hw}, {.map = maps + 2 * hw}};
    at_explain_options o = {.method = AT_METHOD_LCAM, .layer = -1, .lcam = lc, .classes = classes};
    REQUIRE(at_explain(be, &o, x, n, r) == AT_OK);
    CHECK(r[1].cls == 5 && r[0].cls == r[0].predicted);
    for (int b = 0; b < n; b++) {
        at_forward_args fa = {.n = 1, .input = x + in * b, .n_capture = 1, .capture_layer = &lc->layer,
                              .capture_out = &acts, .end_layer = lc->layer + 1};
        REQUIRE(at_forward(be, &fa) == AT_OK);
        for (long i = 0; i < lhw; i++) {
            double s = lc->bias[r[b].cls];
            for (int k = 0; k < K; k++) s += (double)lc->weight[r[b].cls * K + k] * acts[k * lhw + i];
            cam[i] = (float)s;
        }
        float lo = cam[0], hi = cam[0];
        for (long i = 0; i < lhw; i++) lo = cam[i] < lo ? cam[i] : lo, hi = cam[i] > hi ? cam[i] : hi;
        for (long i = 0; i < lhw; i++) cam[i] = (cam[i] - lo) / (hi - lo);
        at_explain_result rr = {.map = ref};
        at_finish_map(m, cam, L->out_h, L->out_w, &rr);
        CHECK_CLOSE("lcam map vs its definition", maps + hw * b, ref, hw, 2e-6, 0);
        int c1 = classes[b];
        at_explain_result single = {.map = one};
        at_explain_options o1 = o;
        o1.classes = &c1;
        REQUIRE(at_explain(be, &o1, x + in * b, 1, &single) == AT_OK);
        SAME_BITS("lcam batch of 3 vs single image", maps + hw * b, one, hw);
    }
    at_explain_options none = {.method = AT_METHOD_LCAM, .layer = -1};
    CHECK(at_explain(be, &none, x, 1, r) == AT_ERR && strstr(at_last_error(), "module"));
    free(x), free(maps), free(one), free(acts), free(cam), free(ref);
    at_lcam_free(lc);
    test_backend_close(be, m);
}

TEST(cuda_lcam_maps_match_the_cpu) {
    const char *skip = test_backend_unusable("cuda");
    if (skip) SKIP(skip);
    at_model *m = NULL;
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK);
    at_backend *gpu = test_backend_open(m, "cuda", 0), *cpu = test_backend_open(m, "cpu", 0);
    REQUIRE(gpu && cpu);
    at_lcam *lc = random_module(m);
    const int n = 2;
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 13, in * n, 2, 0), *a = malloc(sizeof(float) * hw * n), *b = malloc(sizeof(float) * hw * n);
    at_explain_result ra[2] = {{.map = a}, {.map = a + hw}}, rb[2] = {{.map = b}, {.map = b + hw}};
    at_explain_options o = {.method = AT_METHOD_LCAM, .layer = -1, .lcam = lc};
    REQUIRE(at_explain(gpu, &o, x, n, ra) == AT_OK && at_explain(cpu, &o, x, n, rb) == AT_OK);
    CHECK(ra[0].cls == rb[0].cls && ra[1].cls == rb[1].cls);
    CHECK_CLOSE("lcam cuda vs cpu", a, b, hw * n, 2e-5, 0);
    free(x), free(a), free(b);
    at_lcam_free(lc);
    at_backend_destroy(gpu), at_backend_destroy(cpu);
    at_model_free(m);
}

/* ---- modules that do not fit ---- */

static int write_module(const char *path, const char *sha, const char *layer, int nc, int K) {
    float *w = calloc((size_t)nc * K, sizeof(float)), *b = calloc(nc, sizeof(float));
    const char *names[2] = {"weight", "bias"};
    const float *data[2] = {w, b};
    int64_t sw[4] = {nc, K, 1, 1}, sb[1] = {nc};
    const int64_t *shapes[2] = {sw, sb};
    int ndims[2] = {4, 1};
    const char *keys[3] = {"model_sha256", "layer", "model"}, *vals[3] = {sha, layer, "other.safetensors"};
    int rc = at_st_write_f32(path, 2, names, data, ndims, shapes, sha ? 3 : 0, keys, vals);
    free(w), free(b);
    return rc;
}

TEST(lcam_modules_that_do_not_fit_the_model_are_refused_in_one_line) {
    at_model *m = NULL;
    REQUIRE(at_model_load(test_path("weights/vgg16_mini.safetensors"), &m) == AT_OK);
    const char *dir = test_tmpdir();
    char path[1200];
    at_lcam *lc = NULL;
    snprintf(path, sizeof path, "%s/other.lcam.safetensors", dir);
    REQUIRE(write_module(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "features.29", 10,
                         64) == AT_OK);
    CHECK(at_lcam_load(m, path, &lc) == AT_ERR && !lc);
    CHECKF(strstr(at_last_error(), path) && strstr(at_last_error(), "other.safetensors") &&
           strstr(at_last_error(), "weights/vgg16_mini.safetensors") && !strchr(at_last_error(), '\n'),
           "message: %s", at_last_error());
    REQUIRE(write_module(path, m->sha256, "features.29", 10, 32) == AT_OK); /* channels */
    CHECK(at_lcam_load(m, path, &lc) == AT_ERR && strstr(at_last_error(), "weight [10][64][1][1]"));
    REQUIRE(write_module(path, m->sha256, "classifier.0", 10, 256) == AT_OK); /* no spatial map */
    CHECK(at_lcam_load(m, path, &lc) == AT_ERR && strstr(at_last_error(), "1x1"));
    REQUIRE(write_module(path, m->sha256, "features.99", 10, 64) == AT_OK);
    CHECK(at_lcam_load(m, path, &lc) == AT_ERR && strstr(at_last_error(), "features.99"));
    REQUIRE(write_module(path, NULL, NULL, 10, 64) == AT_OK); /* no metadata */
    CHECK(at_lcam_load(m, path, &lc) == AT_ERR && strstr(at_last_error(), "not an L-CAM module"));
    REQUIRE(write_module(path, m->sha256, "features.29", 10, 64) == AT_OK);
    REQUIRE(at_lcam_load(m, path, &lc) == AT_OK && lc->layer == m->cam_layer && lc->K == 64);
    at_lcam_free(lc);
    at_model_free(m);
}

/* ---- L-CAM's soft masking for AD/IC ---- */

TEST(lcam_zero_lowest_zeroes_the_lowest_pixels_and_keeps_the_others_weights) {
    const float map[10] = {0.3f, 0.9f, 0.1f, 0.5f, 0.0f, 1.0f, 0.7f, 0.2f, 0.6f, 0.4f};
    float mask[10];
    REQUIRE(at_zero_lowest_mask(map, 10, 50, mask) == AT_OK); /* 0.0..0.4 go */
    const float half[10] = {0, 0.9f, 0, 0.5f, 0, 1.0f, 0.7f, 0, 0.6f, 0};
    SAME_BITS("zero-lowest 50", mask, half, 10);
    REQUIRE(at_zero_lowest_mask(map, 10, 85, mask) == AT_OK); /* round(8.5) = 9 go: 1.0 stays */
    const float most[10] = {0, 0, 0, 0, 0, 1.0f, 0, 0, 0, 0};
    SAME_BITS("zero-lowest 85", mask, most, 10);
    REQUIRE(at_zero_lowest_mask(map, 10, 0, mask) == AT_OK);
    SAME_BITS("zero-lowest 0", mask, map, 10);
    REQUIRE(at_zero_lowest_mask(map, 10, 100, mask) == AT_OK);
    for (int i = 0; i < 10; i++) CHECK(mask[i] == 0);
    REQUIRE(at_zero_lowest_mask(map, 10, 70, mask) == AT_OK); /* 7 go */
    const float seventy[10] = {0, 0.9f, 0, 0, 0, 1.0f, 0.7f, 0, 0, 0};
    SAME_BITS("zero-lowest 70", mask, seventy, 10);
    /* ties: the later pixel ranks lower and goes first */
    const float flat[4] = {0.5f, 0.5f, 0.5f, 0.5f}, tie[4] = {0.5f, 0.5f, 0, 0};
    REQUIRE(at_zero_lowest_mask(flat, 4, 50, mask) == AT_OK);
    SAME_BITS("zero-lowest ties", mask, tie, 4);
    const double bad[] = {-1, 100.5, NAN};
    for (int i = 0; i < 3; i++)
        CHECKF(at_zero_lowest_mask(map, 10, bad[i], mask) == AT_ERR && strstr(at_last_error(), "zero-lowest") &&
                   strstr(at_last_error(), "[0, 100]"),
               "q %g: %s", bad[i], at_last_error());
}

/* AD/IC with q = 0 is the mult mode's; with q = 100 the black image's. */
TEST(lcam_zero_lowest_ad_ic_terms_at_the_ends_are_mult_and_black) {
    WITH_CPU_RANDOM(&SPEC, m, be);
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = test_random("input", 13, in, 2, 0), *map = test_random("map", 14, hw, 0.5f, 0.5f);
    float *zero = calloc(hw, sizeof(float));
    at_scorer sc = {.be = be};
    const double qs[3] = {0, 100, 50};
    double t[6], mult[2], black[2];
    at_drop_options soft = {.zero_lowest = qs, .n_zero_lowest = 3}, plain = {0};
    REQUIRE(at_drop_terms(&sc, x, map, &soft, 3, t) == AT_OK);
    REQUIRE(at_drop_terms(&sc, x, map, &plain, 3, mult) == AT_OK);
    REQUIRE(at_drop_terms(&sc, x, zero, &plain, 3, black) == AT_OK);
    CHECK(t[0] == mult[0] && t[1] == mult[1] && t[2] == black[0] && t[3] == black[1]);
    CHECK(t[4] >= 0 && t[4] <= 100 && (t[5] == 0 || t[5] == 100));
    const double badq[1] = {101};
    at_drop_options bad = {.zero_lowest = badq, .n_zero_lowest = 1};
    CHECK(at_drop_terms(&sc, x, map, &bad, 3, t) == AT_ERR && strstr(at_last_error(), "zero-lowest"));
    const double p50[1] = {50};
    at_drop_options both = {.zero_lowest = qs, .n_zero_lowest = 1, .props = p50, .n_props = 1};
    CHECK(at_drop_terms(&sc, x, map, &both, 3, t) == AT_ERR);
    free(x), free(map), free(zero);
    test_backend_close(be, m);
}

/* ---- the CLI ---- */

static char out[16384];

static int one_line(const char *s) { return strchr(s, '\n') && strchr(s, '\n') == s + strlen(s) - 1; }

TEST(lcam_runs_from_explain_and_eval_and_refuses_bad_usage) {
    const char *dir = test_tmpdir();
    char cmd[4096];
    const char *img = test_path("weights/samples/images/fmscene_test_00000000.png");
    char img2[1024];
    snprintf(img2, sizeof img2, "%s", test_path("weights/samples/images/fmscene_test_00000001.png"));
    snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --out %s/out --method lcam %s %s",
             test_root(), test_path("weights/vgg16_mini.safetensors"), dir, img, img2);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0, "explain --method lcam: %s", out);
    char path[1400];
    snprintf(path, sizeof path, "%s/out/results.jsonl", dir);
    size_t nb;
    unsigned char *lines = test_read_bytes(path, &nb), *z = lines ? realloc(lines, nb + 1) : NULL;
    if (z) z[nb] = 0;
    CHECK(z && strstr((char *)z, "\"method\":\"lcam\"") && strstr((char *)z, "\"layer\":\"features.29\"") &&
          strstr((char *)z, "\"forwards\":1,") && strstr((char *)z, "vgg16_mini.lcam.safetensors"));
    free(z ? z : lines);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s/out --metric ad-ic "
             "--zero-lowest 0,50,70,85", test_root(), test_path("weights/vgg16_mini.safetensors"), dir);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "AD@zero85") && strstr(out, "IC@zero0"), "eval: %s", out);
    static const char *const bad_eval[] = {"--zero-lowest 120", "--zero-lowest -5", "--zero-lowest 50 --mask-mode top-p",
                                           "--zero-lowest x"};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s/out --metric ad-ic %s",
                 test_root(), test_path("weights/vgg16_mini.safetensors"), dir, bad_eval[i]);
        CHECKF(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "attrib: --zero-lowest") && one_line(out),
               "eval %s: %s", bad_eval[i], out);
    }
    /* another model's module: one line naming both files, nothing written */
    snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --out %s/other --method lcam "
             "--lcam %s %s", test_root(), test_path("weights/resnet18_mini.safetensors"), dir,
             test_path("weights/vgg16_mini.lcam.safetensors"), img);
    CHECKF(run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "vgg16_mini.lcam.safetensors") &&
           strstr(out, "resnet18_mini.safetensors") && one_line(out),
           "explain --lcam of another model: %s", out);
    snprintf(path, sizeof path, "%s/other/results.jsonl", dir);
    CHECK(access(path, F_OK) != 0);
    static const char *const bad[] = {"lcam --layer 3", "gradcam --lcam x.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --out %s/bad --method %s %s",
                 test_root(), test_path("weights/vgg16_mini.safetensors"), dir, bad[i], img);
        CHECKF(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "attrib: --"), "explain --method %s: %s", bad[i], out);
    }
}
