/* RISE, occlusion and meaningful perturbation against the PyTorch reference
 * (tools/ref_perturb.py; goldens in tests/goldens/perturb, float64), the RISE
 * generator against its Python twin, given masks, batching across images,
 * progress, and the CUDA backend against the CPU (cuda_perturb_*). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/backend.h"
#include "golden_util.h"
#include "methods/explain.h"
#include "model/random_model.h"
#include "test.h"

/* Maps in [0,1]: float32 forwards against float64, through min-max. RISE and
 * occlusion are sums of scores (~1e-6 relative); meaningful perturbation
 * carries the float32 rounding through its Adam steps (the goldens refuse
 * cases where float32 PyTorch itself moves the map by more than 5e-4). */
#define MAP_ATOL 2e-4
#define MP_MAP_ATOL 1e-3
/* The generator's masks: the same bilinear weights in double, stored as float. */
#define MASK_ATOL 1e-6
/* CUDA against the CPU: FP32 sums in another order (~1e-6 of scale per layer). */
#define BACKEND_ATOL 1e-4

static void options_from_meta(const at_json *meta, at_perturb_options *po) {
    at_perturb_defaults(po);
    po->rise_n = (int)golden_meta_num(meta, "rise_n", po->rise_n);
    po->rise_cells = (int)golden_meta_num(meta, "rise_s", po->rise_cells);
    po->rise_p = (float)golden_meta_num(meta, "rise_p", po->rise_p);
    po->rise_seed = (uint64_t)golden_meta_num(meta, "rise_seed", 0);
    po->occ_window = (int)golden_meta_num(meta, "window", 0);
    po->occ_stride = (int)golden_meta_num(meta, "stride", 0);
    po->occ_baseline = !strcmp(golden_meta_str(meta, "baseline", "mean"), "black") ? AT_OCCLUSION_BLACK
                                                                                 : AT_OCCLUSION_MEAN;
    po->score_logit = !strcmp(golden_meta_str(meta, "score", "prob"), "logit");
    po->mp_iterations = (int)golden_meta_num(meta, "iterations", po->mp_iterations);
    po->mp_lr = (float)golden_meta_num(meta, "lr", po->mp_lr);
    po->mp_l1 = (float)golden_meta_num(meta, "l1", po->mp_l1);
    po->mp_tv = (float)golden_meta_num(meta, "tv", po->mp_tv);
    po->mp_beta = (float)golden_meta_num(meta, "beta", po->mp_beta);
    po->mp_mask = (int)golden_meta_num(meta, "mask", po->mp_mask);
    po->mp_sigma = (float)golden_meta_num(meta, "sigma", 0);
}

static void run_perturb_case(const char *dir, const char *name) {
    golden_case c;
    if (!golden_case_open(dir, name, &c)) return;
    at_model *m = c.m;
    at_perturb_options po;
    options_from_meta(c.meta, &po);
    at_explain_options o = {.perturb = &po};
    int cls = golden_meta_int(c.meta, "class", -1);
    o.classes = &cls;
    long hw = (long)m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * 3 * hw), *map = malloc(sizeof(float) * hw);
    if (at_method_parse(golden_meta_str(c.meta, "method", "?"), &o.method)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        goto out;
    }
    at_prng_fill("input", (uint64_t)golden_meta_int(c.meta, "seed", 0), x, 3 * hw, 2.0f, 0.0f);
    at_explain_result r = {.map = map};
    if (at_explain(c.be, &o, x, 1, &r)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        goto out;
    }
    CHECKF(r.cls == cls && r.predicted == golden_meta_int(c.meta, "predicted", -2), "%s: class %d predicted %d", name,
           r.cls, r.predicted);
    golden_compare(dir, "map.npy", "map", map, hw, o.method == AT_METHOD_MEANINGFUL ? MP_MAP_ATOL : MAP_ATOL, 0);
    if (o.method == AT_METHOD_RISE) {
        CHECKF(r.forwards == po.rise_n + 1, "%s: %ld forwards for N = %d", name, r.forwards, po.rise_n);
        char path[1700];
        snprintf(path, sizeof path, "%s/masks.npy", dir);
        FILE *f = fopen(path, "rb");
        long n = 0;
        float *ref = f ? (fclose(f), golden_npy(dir, "masks.npy", &n)) : NULL;
        if (ref) { /* the cases that keep their first masks */
            float *got = malloc(sizeof(float) * n);
            at_rise_masks(m->in_h, m->in_w, po.rise_cells, po.rise_p, po.rise_seed, 0, (int)(n / hw), got);
            golden_compare(dir, "masks.npy", "generated masks", got, n, MASK_ATOL, 0);
            free(got), free(ref);
        }
    }
out:
    free(x), free(map);
    golden_case_close(&c);
}

TEST(perturb_methods_match_the_pytorch_reference_on_every_golden_case) {
    golden_each_case("perturb", run_perturb_case, 10);
}

static at_model *tiny_model(int h, int w) {
    at_random_spec spec = {.arch = "vgg11", .widths = {4, 6, 8, 8, 8, 8, 8, 8}, .hidden = {16, 12}, .n_classes = 8,
                           .in_h = h, .in_w = w, .avgpool = 1, .seed = 7};
    at_model *m = NULL;
    return at_random_model(&spec, &m) ? NULL : m;
}

/* Two images explained in one call equal each explained alone: every image
 * keeps its own masks' scores (RISE, occlusion) or mask and Adam state. */
static void batch_equals_single(at_method method) {
    at_model *m = tiny_model(32, 32);
    at_backend *be = NULL;
    at_backend_options bo = {.name = "cpu"};
    REQUIRE(m && !at_backend_create(m, &bo, &be));
    at_perturb_options po;
    at_perturb_defaults(&po);
    po.rise_n = 40, po.mp_iterations = 6, po.occ_window = 8, po.occ_stride = 6;
    at_explain_options o = {.method = method, .perturb = &po};
    long hw = 32 * 32;
    float x[2 * 3 * 32 * 32], both[2 * 32 * 32], one[32 * 32];
    at_prng_fill("batch-input", 3, x, 2 * 3 * hw, 2.0f, 0.0f);
    at_explain_result r[2] = {{.map = both}, {.map = both + hw}};
    REQUIRE(!at_explain(be, &o, x, 2, r));
    for (int b = 0; b < 2; b++) {
        at_explain_result s = {.map = one};
        REQUIRE(!at_explain(be, &o, x + 3 * hw * b, 1, &s));
        double worst = 0;
        for (long i = 0; i < hw; i++) worst = fmax(worst, fabs(one[i] - both[b * hw + i]));
        CHECKF(worst <= 1e-6 && s.cls == r[b].cls && s.forwards == r[b].forwards,
               "%s image %d: batched differs from alone by %g", at_method_name(method), b, worst);
    }
    at_backend_destroy(be);
    at_model_free(m);
}

TEST(perturb_rise_batched_images_equal_each_alone) { batch_equals_single(AT_METHOD_RISE); }
TEST(perturb_occlusion_batched_images_equal_each_alone) { batch_equals_single(AT_METHOD_OCCLUSION); }
TEST(perturb_meaningful_batched_images_equal_each_alone) { batch_equals_single(AT_METHOD_MEANINGFUL); }

typedef struct {
    int calls;
    double last;
    int backwards; /* a fraction went down */
} progress_log;

static void log_progress(void *ctx, double f) {
    progress_log *p = ctx;
    if (f < p->last) p->backwards = 1;
    p->last = f, p->calls++;
}

TEST(perturb_rise_given_masks_equal_the_generated_ones_and_report_progress) {
    at_model *m = tiny_model(48, 40);
    at_backend *be = NULL;
    at_backend_options bo = {.name = "cpu"};
    REQUIRE(m && !at_backend_create(m, &bo, &be));
    long hw = 48 * 40;
    at_perturb_options po;
    at_perturb_defaults(&po);
    po.rise_n = 300, po.rise_cells = 5, po.rise_p = 0.4f, po.rise_seed = 11;
    progress_log log = {0};
    po.on_progress = log_progress, po.progress_ctx = &log;
    float *masks = malloc(sizeof(float) * po.rise_n * hw), x[3 * 48 * 40], a[48 * 40], b[48 * 40];
    at_rise_masks(48, 40, po.rise_cells, po.rise_p, po.rise_seed, 0, po.rise_n, masks);
    at_prng_fill("rise-input", 1, x, 3 * hw, 2.0f, 0.0f);
    at_explain_options o = {.method = AT_METHOD_RISE, .perturb = &po};
    at_explain_result ra = {.map = a}, rb = {.map = b};
    REQUIRE(!at_explain(be, &o, x, 1, &ra));
    CHECKF(log.calls >= 2 && fabs(log.last - 1.0) < 1e-12 && !log.backwards, "progress: %d calls, last %g",
           log.calls, log.last);
    po.rise_masks = masks;
    REQUIRE(!at_explain(be, &o, x, 1, &rb));
    CHECK(!memcmp(a, b, sizeof a));
    /* each mask depends on its index only: masks 100.. generated from 100 are the same */
    float *tail = malloc(sizeof(float) * 10 * hw);
    at_rise_masks(48, 40, po.rise_cells, po.rise_p, po.rise_seed, 100, 10, tail);
    CHECK(!memcmp(tail, masks + 100 * hw, sizeof(float) * 10 * hw));
    /* the share of ones is p, and the masks are smooth but not constant */
    double mean = 0;
    for (long i = 0; i < po.rise_n * hw; i++) mean += masks[i];
    mean /= po.rise_n * hw;
    CHECKF(fabs(mean - po.rise_p) < 0.03, "mean mask %g for p %g", mean, po.rise_p);
    free(masks), free(tail);
    at_backend_destroy(be);
    at_model_free(m);
}

TEST(perturb_bad_settings_are_one_line_errors) {
    at_model *m = tiny_model(32, 32);
    at_perturb_options po;
    at_perturb_defaults(&po);
    CHECK(!at_perturb_check(m, &po));
    po.rise_p = 0;
    CHECK(at_perturb_check(m, &po) && strstr(at_last_error(), "RISE p"));
    at_perturb_defaults(&po);
    po.rise_cells = 40;
    CHECK(at_perturb_check(m, &po) && strstr(at_last_error(), "RISE cells"));
    at_perturb_defaults(&po);
    po.mp_mask = 33;
    CHECK(at_perturb_check(m, &po) && strstr(at_last_error(), "MP mask"));
    at_model_free(m);
}

/* Occlusion's windows: captum's count, the last ones cut at the border, and
 * the 224 defaults scaled to the input. */
TEST(perturb_occlusion_geometry_follows_captum) {
    at_model *m = tiny_model(32, 32);
    at_perturb_options po;
    at_perturb_defaults(&po);
    int win, st, ny, nx;
    at_occlusion_geometry(m, &po, &win, &st, &ny, &nx);
    CHECKF(win == 2 && st == 1 && ny == 31 && nx == 31, "32px: window %d stride %d, %dx%d", win, st, ny, nx);
    po.occ_window = 7, po.occ_stride = 6;
    at_occlusion_geometry(m, &po, &win, &st, &ny, &nx);
    CHECKF(ny == 6 && nx == 6, "7/6 on 32: %dx%d windows", ny, nx); /* starts 0..30, the last cut to 30..31 */
    at_model_free(m);
}

/* The same explanations on the CUDA backend (emulated in CI) as on the CPU. */
static void cuda_matches_cpu(at_method method) {
    char why[320];
    if (!at_cuda_available(why, sizeof why)) SKIP(why);
    at_model *m = tiny_model(32, 32);
    at_backend *cpu = NULL, *gpu = NULL;
    at_backend_options bc = {.name = "cpu"}, bg = {.name = "cuda"};
    REQUIRE(m && !at_backend_create(m, &bc, &cpu) && !at_backend_create(m, &bg, &gpu));
    at_perturb_options po;
    at_perturb_defaults(&po);
    po.rise_n = 12, po.rise_cells = 4, po.mp_iterations = 3, po.occ_window = 10, po.occ_stride = 8;
    po.occ_baseline = AT_OCCLUSION_BLACK;
    at_explain_options o = {.method = method, .perturb = &po};
    long hw = 32 * 32;
    float x[2 * 3 * 32 * 32], a[2 * 32 * 32], b[2 * 32 * 32];
    at_prng_fill("cuda-input", 5, x, 2 * 3 * hw, 2.0f, 0.0f);
    at_explain_result ra[2] = {{.map = a}, {.map = a + hw}}, rb[2] = {{.map = b}, {.map = b + hw}};
    REQUIRE(!at_explain(cpu, &o, x, 2, ra));
    if (at_explain(gpu, &o, x, 2, rb)) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
    } else {
        double worst = 0;
        for (long i = 0; i < 2 * hw; i++) worst = fmax(worst, fabs(a[i] - b[i]));
        CHECKF(worst <= BACKEND_ATOL && ra[0].cls == rb[0].cls && ra[1].cls == rb[1].cls,
               "%s: CUDA differs from the CPU by %g", at_method_name(method), worst);
    }
    at_backend_destroy(gpu);
    at_backend_destroy(cpu);
    at_model_free(m);
}

TEST(cuda_perturb_rise_matches_cpu) { cuda_matches_cpu(AT_METHOD_RISE); }
TEST(cuda_perturb_occlusion_matches_cpu) { cuda_matches_cpu(AT_METHOD_OCCLUSION); }
TEST(cuda_perturb_meaningful_matches_cpu) { cuda_matches_cpu(AT_METHOD_MEANINGFUL); }
