/* Metric arithmetic (docs/methods.md#metrics-common-rules) on hand-computed cases; the RISE blur against
 * torchvision (committed goldens, and live when torchvision is installed). */
#include "core/error.h"
#include "metrics/metrics.h"
#include "io/npy.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Sums of a handful of doubles: only the last-bit rounding can differ. */
#define EXACT_TOL 1e-12
/* Blur: our separable double-precision sum vs torch's float32 2-D
 * convolution of values in [0,1]: a few float32 ulps. */
#define BLUR_TOL 1e-6

/* ------------------------------------------------------ pointing games */

TEST(energy_pointing_is_the_in_box_share_of_the_map) {
    const float map[4] = {0.5f, 0.25f, 0.25f, 0.0f};
    const unsigned char mask[4] = {1, 0, 1, 1};
    /* (0.5 + 0.25 + 0) / (0.5 + 0.25 + 0.25 + 0) = 0.75 */
    CHECK_NEAR(at_energy_pointing(map, mask, 4), 0.75, EXACT_TOL);
    const float zero[4] = {0, 0, 0, 0};
    CHECK(at_energy_pointing(zero, mask, 4) == 0.0); /* 0/0 scores 0 */
    const unsigned char none[4] = {0, 0, 0, 0};
    CHECK(at_energy_pointing(map, none, 4) == 0.0);
}

TEST(pointing_hit_counts_exactly_the_tolerance_as_a_hit) {
    enum { W = 32, H = 24 };
    static float map[W * H];
    static unsigned char mask[W * H];
    map[10 * W + 10] = 1.0f;  /* maximum at (x 10, y 10) */
    mask[14 * W + 13] = 1;    /* one box pixel at (13, 14): distance sqrt(9 + 16) = 5 */
    CHECK(at_pointing_hit(map, W, H, mask, 5.0) == 1);
    CHECK(at_pointing_hit(map, W, H, mask, 4.999) == 0);
    CHECK(at_pointing_hit(map, W, H, mask, 0.0) == 0);
    CHECK(at_pointing_hit(map, W, H, mask, 100.0) == 1);
    mask[10 * W + 10] = 1;    /* tolerance 0: the maximum itself inside */
    CHECK(at_pointing_hit(map, W, H, mask, 0.0) == 1);
    memset(mask, 0, sizeof mask);
    CHECK(at_pointing_hit(map, W, H, mask, 1000.0) == 0); /* empty box: miss */
    /* the maximum at a corner, the box at the opposite edge */
    memset(map, 0, sizeof map);
    map[0] = 1.0f;
    mask[0 * W + 15] = 1;     /* distance 15 along the row */
    CHECK(at_pointing_hit(map, W, H, mask, 15.0) == 1);
    CHECK(at_pointing_hit(map, W, H, mask, 14.99) == 0);
}

TEST(pointing_hit_takes_the_first_maximum_in_raster_order) {
    const float map[6] = {0.1f, 0.9f, 0.2f, 0.3f, 0.9f, 0.0f}; /* 3x2, maxima at 1 and 4 */
    unsigned char mask[6] = {0, 0, 0, 0, 1, 0};
    CHECK(at_pointing_hit(map, 3, 2, mask, 0.0) == 0); /* the second maximum does not count */
    mask[1] = 1;
    CHECK(at_pointing_hit(map, 3, 2, mask, 0.0) == 1);
    const float nan_first[3] = {NAN, 0.5f, 0.2f};
    const unsigned char m2[3] = {0, 1, 0};
    CHECK(at_pointing_hit(nan_first, 3, 1, m2, 0.0) == 1); /* NaN never wins */
}

TEST(pointing_tolerance_is_15_px_at_224) {
    CHECK(at_pointing_tolerance(15, 224) == 15.0);
    CHECK(at_pointing_tolerance(15, 448) == 30.0);
    CHECK_NEAR(at_pointing_tolerance(15, 128), 15.0 * 128 / 224, EXACT_TOL); /* 8.5714... */
    CHECK(at_pointing_tolerance(20, 192) == 20.0 * 192 / 224);
}

TEST(pointing_hit_strict_excludes_the_tolerance_itself_as_torchray) {
    enum { W = 32, H = 24 };
    static float map[W * H];
    static unsigned char mask[W * H];
    map[10 * W + 10] = 1.0f;
    mask[14 * W + 13] = 1; /* distance exactly 5 */
    CHECK(at_pointing_hit(map, W, H, mask, 5.0) == 1);
    CHECK(at_pointing_hit_strict(map, W, H, mask, 5.0) == 0); /* TorchRay: (u^2 + v^2) < tol^2 */
    CHECK(at_pointing_hit_strict(map, W, H, mask, 5.001) == 1);
    CHECK(at_pointing_hit_strict(map, W, H, mask, 0.0) == 0);
    mask[10 * W + 10] = 1; /* tolerance 0: the maximum itself inside */
    CHECK(at_pointing_hit_strict(map, W, H, mask, 0.0) == 1);
}

/* ------------------------------------------------- localisation (WSL) */

TEST(largest_region_box_is_the_8_connected_component_above_15_percent) {
    enum { W = 8, H = 6 };
    float map[W * H] = {0};
    /* region A: 3 pixels in a row at y 0, x 0..2 */
    map[0] = 1.0f, map[1] = 0.5f, map[2] = 0.2f;
    /* region B: 4 pixels joined only diagonally, (5,1) (6,2) (7,3) (6,4) */
    map[1 * W + 5] = 0.9f, map[2 * W + 6] = 0.3f, map[3 * W + 7] = 0.16f, map[4 * W + 6] = 0.151f;
    /* exactly 15 % of the maximum is not above it: (4,5) stays out */
    map[5 * W + 5] = 0.15f;
    int box[4];
    CHECK(at_largest_region_box(map, W, H, 0.15, box) == 4);
    const int want_b[4] = {5, 1, 7, 4};
    CHECKF(!memcmp(box, want_b, sizeof box), "box %d %d %d %d", box[0], box[1], box[2], box[3]);
    /* at 25 % region B splits: (5,1),(6,2) is 2 pixels, A keeps 2 (0.2 drops): the first in raster order wins */
    CHECK(at_largest_region_box(map, W, H, 0.25, box) == 2);
    const int want_a[4] = {0, 0, 1, 0};
    CHECK(!memcmp(box, want_a, sizeof box));
    float zero[W * H] = {0};
    CHECK(at_largest_region_box(zero, W, H, 0.15, box) == 0 && box[0] == -1 && box[3] == -1);
}

TEST(box_iou_counts_inclusive_pixels) {
    const int a[4] = {0, 0, 1, 1}, b[4] = {1, 1, 2, 2}, c[4] = {5, 5, 6, 6}, empty[4] = {3, 3, 2, 2};
    CHECK_NEAR(at_box_iou(a, b), 1.0 / 7.0, EXACT_TOL); /* 1 shared of 4 + 4 - 1 */
    CHECK_NEAR(at_box_iou(a, a), 1.0, EXACT_TOL);
    CHECK(at_box_iou(a, c) == 0.0 && at_box_iou(a, empty) == 0.0);
}

TEST(localisation_hit_needs_iou_above_one_half_with_any_box) {
    enum { W = 10, H = 10 };
    float map[W * H] = {0};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) map[y * W + x] = 1.0f; /* the map's box: 0,0..3,3, 16 px */
    const int half[1][4] = {{0, 0, 7, 3}};                  /* 32 px containing it: IoU 16/32 = 0.5 */
    int box[4];
    CHECK(at_localisation_hit(map, W, H, 0.15, half, 1, 0.5, box) == 0); /* 0.5 is not > 0.5 */
    CHECK(box[0] == 0 && box[1] == 0 && box[2] == 3 && box[3] == 3);
    const int two[2][4] = {{6, 6, 9, 9}, {0, 0, 6, 3}}; /* the second: 16/28 = 0.571 */
    CHECK(at_localisation_hit(map, W, H, 0.15, two, 2, 0.5, NULL) == 1);
    CHECK(at_localisation_hit(map, W, H, 0.15, two, 1, 0.5, NULL) == 0);
    float zero[W * H] = {0};
    CHECK(at_localisation_hit(zero, W, H, 0.15, two, 2, 0.5, box) == 0 && box[0] == -1);
}

TEST(class_mean_averages_each_class_first) {
    const double v[5] = {100, 0, 100, NAN, 0};
    const int cls[5] = {0, 0, 1, 1, -1};
    double per[3];
    int k;
    /* class 0: 50, class 1: 100 (NaN skipped), class 2 absent, -1 skipped */
    CHECK_NEAR(at_class_mean(v, cls, 5, 3, per, &k), 75.0, EXACT_TOL);
    CHECK(k == 2 && per[0] == 50.0 && per[1] == 100.0 && isnan(per[2]));
    const double none[1] = {NAN};
    CHECK(isnan(at_class_mean(none, cls, 1, 3, NULL, &k)) && k == 0);
}

TEST(spearman_uses_mean_ranks_for_ties) {
    const float a[4] = {1, 2, 3, 4}, up[4] = {10, 20, 30, 45}, down[4] = {4, 3, 2, 1};
    CHECK_NEAR(at_spearman(a, up, 4), 1.0, EXACT_TOL);
    CHECK_NEAR(at_spearman(a, down, 4), -1.0, EXACT_TOL);
    /* ranks 1, 2.5, 2.5, 4 against 1..4: 4.5 / sqrt(4.5 * 5) (scipy.stats.spearmanr: 0.9486832980505138) */
    const float tied[4] = {1, 2, 2, 3};
    CHECK_NEAR(at_spearman(tied, a, 4), 0.9486832980505138, EXACT_TOL);
    const float flat[4] = {0, 0, 0, 0};
    CHECK(isnan(at_spearman(flat, a, 4)) && isnan(at_spearman(a, a, 1)));
}

TEST(sobel_map_marks_a_vertical_step_and_ignores_flat_images) {
    /* 1 channel, 4x4, columns 0 0 1 1: |Gx| = 4 at columns 1 and 2, 0 at the replicated borders */
    float x[16], map[16];
    for (int i = 0; i < 16; i++) x[i] = (i % 4) >= 2 ? 1.0f : 0.0f;
    at_sobel_map(x, 1, 4, 4, map);
    for (int i = 0; i < 16; i++) CHECKF(map[i] == ((i % 4 == 1 || i % 4 == 2) ? 1.0f : 0.0f), "pixel %d: %g", i, map[i]);
    for (int i = 0; i < 16; i++) x[i] = 0.7f;
    at_sobel_map(x, 1, 4, 4, map);
    for (int i = 0; i < 16; i++) CHECK(map[i] == 0.0f);
}

/* ------------------------------------------------------------- ranking */

TEST(topp_count_rounds_half_up) {
    CHECK(at_topp_count(10, 25.0) == 3);  /* 2.5 -> 3 */
    CHECK(at_topp_count(10, 24.0) == 2);  /* 2.4 -> 2 */
    CHECK(at_topp_count(10, 26.0) == 3);  /* 2.6 -> 3 */
    CHECK(at_topp_count(50176, 50.0) == 25088);
    CHECK(at_topp_count(50176, 15.0) == 7526); /* 7526.4 */
    CHECK(at_topp_count(10, 0.0) == 0);
    CHECK(at_topp_count(10, 100.0) == 10);
    CHECK(at_topp_count(10, 150.0) == 10);
    CHECK(at_topp_count(10, -5.0) == 0);
    CHECK(at_topp_count(10, NAN) == 0);
}

TEST(topp_mask_breaks_ties_by_lower_index) {
    const float map[6] = {0.2f, 0.9f, 0.5f, 0.9f, 0.5f, 0.1f};
    float mask[6];
    /* p = 50: 3 pixels; both 0.9s, then the first 0.5 (index 2, not 4) */
    at_topp_mask(map, 6, 50.0, mask);
    const float want50[6] = {0, 1, 1, 1, 0, 0};
    CHECK(memcmp(mask, want50, sizeof mask) == 0);
    /* p = 20: 1.2 -> 1 pixel: the first 0.9 */
    at_topp_mask(map, 6, 20.0, mask);
    const float want20[6] = {0, 1, 0, 0, 0, 0};
    CHECK(memcmp(mask, want20, sizeof mask) == 0);
    at_topp_mask(map, 6, 100.0, mask);
    for (int i = 0; i < 6; i++) CHECK(mask[i] == 1.0f);
    at_topp_mask(map, 6, 0.0, mask);
    for (int i = 0; i < 6; i++) CHECK(mask[i] == 0.0f);
    const float flat[5] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f};
    float m5[5];
    at_topp_mask(flat, 5, 40.0, m5); /* a flat map keeps the first pixels */
    const float want_flat[5] = {1, 1, 0, 0, 0};
    CHECK(memcmp(m5, want_flat, sizeof m5) == 0);
}

TEST(deletion_order_is_by_decreasing_value_then_index) {
    const float map[6] = {0.2f, 0.9f, 0.5f, 0.9f, 0.5f, 0.1f};
    int order[6];
    at_deletion_order(map, 6, order);
    const int want[6] = {1, 3, 2, 4, 0, 5};
    CHECK(memcmp(order, want, sizeof order) == 0);
    const float with_nan[4] = {NAN, 0.0f, 1.0f, -INFINITY};
    int o4[4];
    at_deletion_order(with_nan, 4, o4);
    const int want4[4] = {2, 1, 0, 3}; /* NaN ranks with -inf; index 0 before 3 */
    CHECK(memcmp(o4, want4, sizeof o4) == 0);
}

static uint64_t lcg_state = 12345;
/* 31-bit outputs */
static uint32_t lcg(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

static const float *cmp_map;
static int cmp_reference(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (cmp_map[i] != cmp_map[j]) return cmp_map[i] > cmp_map[j] ? -1 : 1;
    return (i > j) - (i < j);
}

TEST(deletion_order_and_topp_agree_with_a_reference_sort_on_tied_maps) {
    enum { N = 10007 };
    static float map[N], mask[N];
    static int order[N], ref[N];
    for (int i = 0; i < N; i++) map[i] = (float)(lcg() % 37) / 36.0f; /* many ties */
    at_deletion_order(map, N, order);
    for (int i = 0; i < N; i++) ref[i] = i;
    cmp_map = map;
    qsort(ref, N, sizeof *ref, cmp_reference);
    CHECK(memcmp(order, ref, sizeof order) == 0);
    const double ps[] = {0.5, 10.0, 33.3, 50.0, 77.7, 99.9};
    for (size_t t = 0; t < sizeof ps / sizeof ps[0]; t++) {
        long k = at_topp_count(N, ps[t]);
        at_topp_mask(map, N, ps[t], mask);
        int bad = 0;
        for (long r = 0; r < N; r++) bad += mask[ref[r]] != (r < k ? 1.0f : 0.0f);
        CHECKF(bad == 0, "p = %g: %d pixels differ from the first %ld in deletion order", ps[t], bad, k);
    }
}

/* ------------------------------------------------------ score changes */

TEST(average_drop_relative_and_absolute) {
    const double y[3] = {0.8, 0.5, 0.2}, o[3] = {0.4, 0.6, 0.1};
    int skipped = -1;
    /* relative: (0.4/0.8 + 0 + 0.1/0.2) / 3 * 100 = 100/3 */
    CHECK_NEAR(at_average_drop(y, o, 3, 1, &skipped), 100.0 / 3.0, EXACT_TOL);
    CHECK(skipped == 0);
    /* absolute (pytorch-grad-cam): (0.4 + 0 + 0.1) / 3 * 100 = 50/3 */
    CHECK_NEAR(at_average_drop(y, o, 3, 0, &skipped), 50.0 / 3.0, EXACT_TOL);
    /* IC: only 0.5 < 0.6 -> 1/3 */
    CHECK_NEAR(at_increase_confidence(y, o, 3), 100.0 / 3.0, EXACT_TOL);
}

TEST(average_drop_skips_and_counts_non_positive_logits) {
    const double y[4] = {2.0, -1.0, 0.0, 4.0}, o[4] = {1.0, -3.0, 5.0, 5.0};
    int skipped = -1;
    /* relative: Y = -1 and 0 skipped; kept (2-1)/2 = 0.5 and 0 -> 100 * 0.5 / 2 = 25 */
    CHECK_NEAR(at_average_drop(y, o, 4, 1, &skipped), 25.0, EXACT_TOL);
    CHECK(skipped == 2);
    /* absolute keeps all: drops 1, 2, 0, 0 -> 100 * 3 / 4 = 75 */
    CHECK_NEAR(at_average_drop(y, o, 4, 0, &skipped), 75.0, EXACT_TOL);
    CHECK(skipped == 0);
    const double yn[2] = {-1.0, 0.0}, on[2] = {0.0, 0.0};
    CHECK(at_average_drop(yn, on, 2, 1, &skipped) == 0.0 && skipped == 2); /* nothing kept */
    CHECK(at_average_drop(y, o, 0, 1, NULL) == 0.0);
    CHECK(at_increase_confidence(y, o, 0) == 0.0);
    /* IC: 2<1 no, -1<-3 no, 0<5 yes, 4<5 yes -> 50 */
    CHECK_NEAR(at_increase_confidence(y, o, 4), 50.0, EXACT_TOL);
}

TEST(auc_of_constants_and_ramps) {
    double v[101];
    for (int i = 0; i <= 100; i++) v[i] = 0.7;
    CHECK_NEAR(at_auc_trapezoid(v, 101), 0.7, EXACT_TOL);
    for (int i = 0; i <= 100; i++) v[i] = i / 100.0;
    CHECK_NEAR(at_auc_trapezoid(v, 101), 0.5, EXACT_TOL);
    for (int i = 0; i <= 100; i++) v[i] = 1.0 - i / 100.0;
    CHECK_NEAR(at_auc_trapezoid(v, 101), 0.5, EXACT_TOL);
    const double tent[3] = {0.0, 1.0, 0.0}; /* two triangles of area 1/4 */
    CHECK_NEAR(at_auc_trapezoid(tent, 3), 0.5, EXACT_TOL);
    const double step[3] = {1.0, 0.0, 0.0}; /* (1 - 0.5) / 2 = 0.25 */
    CHECK_NEAR(at_auc_trapezoid(step, 3), 0.25, EXACT_TOL);
    CHECK(at_auc_trapezoid(tent, 1) == 0.0);
    CHECK(at_auc_trapezoid(v, 1) == 1.0);
    CHECK(at_auc_trapezoid(v, 0) == 0.0);
}

/* ----------------------------------------------------------------- blur */

TEST(blur_of_a_delta_matches_the_hand_computed_kernel) {
    /* k = 3, sigma = 1: kernel (e^-0.5, 1, e^-0.5) / (1 + 2e^-0.5)
     * = (0.274068619, 0.451862762, 0.274068619). A centred delta in 3x3 with
     * reflect padding: corners get (k0 + k2)^2 = 0.300454, edges
     * (k0 + k2) k1 = 0.247685, the centre k1^2 = 0.204180. */
    const float delta[9] = {0, 0, 0, 0, 1, 0, 0, 0, 0};
    float out[9];
    REQUIRE(at_gaussian_blur_chw(delta, 1, 3, 3, 3, 1.0, out) == AT_OK);
    double k1 = 1.0 / (1.0 + 2.0 * exp(-0.5)), k0 = exp(-0.5) * k1;
    CHECK_NEAR(k0, 0.274068619, 1e-9);
    CHECK_NEAR(out[0], 4 * k0 * k0, BLUR_TOL);
    CHECK_NEAR(out[0], 0.300454, 1e-6);
    CHECK_NEAR(out[1], 2 * k0 * k1, BLUR_TOL);
    CHECK_NEAR(out[4], k1 * k1, BLUR_TOL);
    /* a constant image stays constant (the kernel sums to 1) */
    float c[2 * 5 * 4], cb[2 * 5 * 4];
    for (int i = 0; i < 40; i++) c[i] = 0.625f;
    REQUIRE(at_gaussian_blur_chw(c, 2, 5, 4, 11, 5.0, cb) == AT_OK); /* pad 5 > side: folded */
    for (int i = 0; i < 40; i++) CHECK_NEAR(cb[i], 0.625, BLUR_TOL);
    /* in place gives the same result */
    REQUIRE(at_gaussian_blur_chw(delta, 1, 3, 3, 3, 1.0, out) == AT_OK);
    float inplace[9];
    memcpy(inplace, delta, sizeof inplace);
    REQUIRE(at_gaussian_blur_chw(inplace, 1, 3, 3, 3, 1.0, inplace) == AT_OK);
    CHECK(memcmp(inplace, out, sizeof out) == 0);
}

TEST(blur_rejects_bad_kernels) {
    float x[4] = {0}, y[4];
    CHECK(at_gaussian_blur_chw(x, 1, 2, 2, 4, 1.0, y) == AT_ERR);
    CHECK(at_gaussian_blur_chw(x, 1, 2, 2, 0, 1.0, y) == AT_ERR);
    CHECK(at_gaussian_blur_chw(x, 1, 2, 2, 3, 0.0, y) == AT_ERR);
    CHECK(at_gaussian_blur_chw(x, 1, 2, 2, 3, NAN, y) == AT_ERR);
}

static void check_blur_golden(const char *shape, const char *out_name, int k, double sigma) {
    char in_path[256], out_path[256];
    snprintf(in_path, sizeof in_path, "tests/goldens/metrics/blur_in_%s.npy", shape);
    snprintf(out_path, sizeof out_path, "tests/goldens/metrics/%s", out_name);
    float *in = NULL, *ref = NULL;
    int nd_in, nd_ref;
    int64_t s_in[AT_NPY_MAX_DIMS], s_ref[AT_NPY_MAX_DIMS];
    int ok = at_npy_read_f32(test_path(in_path), &in, &nd_in, s_in) == AT_OK &&
             at_npy_read_f32(test_path(out_path), &ref, &nd_ref, s_ref) == AT_OK;
    CHECKF(ok, "%s", at_last_error());
    if (ok && nd_in == 3 && nd_ref == 3) {
        long n = (long)(s_in[0] * s_in[1] * s_in[2]);
        float *got = malloc(sizeof *got * (size_t)n);
        CHECK(at_gaussian_blur_chw(in, (int)s_in[0], (int)s_in[1], (int)s_in[2], k, sigma, got) == AT_OK);
        CHECK_CLOSE(out_name, got, ref, n, BLUR_TOL, 0.0);
        free(got);
    } else {
        CHECKF(0, "%s: not 3-D", shape);
    }
    free(in);
    free(ref);
}

TEST(blur_matches_committed_torchvision_goldens) {
    check_blur_golden("3x13x17", "blur_out_3x13x17_k11_s5.npy", 11, 5.0); /* the RISE setting */
    check_blur_golden("1x7x9", "blur_out_1x7x9_k5_s1p5.npy", 5, 1.5);
    check_blur_golden("2x5x4", "blur_out_2x5x4_k3_s0p8.npy", 3, 0.8);
}

TEST(blur_matches_torchvision_live_when_it_is_installed) {
    char out[4096];
    if (run_cmd("/usr/bin/python3 -c 'import torchvision' 2>&1", out, sizeof out) != 0)
        SKIP("/usr/bin/python3 cannot import torchvision");
    const char *dir = test_tmpdir();
    enum { C = 3, H = 37, W = 29 };
    static float x[C * H * W], got[C * H * W];
    for (int i = 0; i < C * H * W; i++) x[i] = (float)(lcg() >> 7) * 0x1p-24f;
    char in_path[600], out_path[600], cmd[2048];
    snprintf(in_path, sizeof in_path, "%s/in.npy", dir);
    snprintf(out_path, sizeof out_path, "%s/out.npy", dir);
    int64_t shape[3] = {C, H, W};
    REQUIRE(at_npy_write_f32(in_path, x, 3, shape) == AT_OK);
    const struct { int k; double s; } cases[] = {{11, 5.0}, {7, 2.25}, {1, 1.0}};
    enum { NC = sizeof cases / sizeof cases[0] };
    /* one interpreter for all cases: importing torch dominates the time */
    int len = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --live-blur %s %s",
                       test_path("tools/make_metric_goldens.py"), in_path, out_path);
    for (int t = 0; t < NC; t++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %d %.17g", cases[t].k, cases[t].s);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " 2>&1");
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0, "%s", out);
    if (rc != 0) return;
    float *ref = NULL;
    int nd;
    int64_t s[AT_NPY_MAX_DIMS];
    REQUIRE(at_npy_read_f32(out_path, &ref, &nd, s) == AT_OK);
    if (nd == 4 && s[0] == NC && s[1] == C && s[2] == H && s[3] == W) {
        for (int t = 0; t < NC; t++) {
            CHECK(at_gaussian_blur_chw(x, C, H, W, cases[t].k, cases[t].s, got) == AT_OK);
            char what[64];
            snprintf(what, sizeof what, "live blur k=%d sigma=%g", cases[t].k, cases[t].s);
            CHECK_CLOSE(what, got, ref + (size_t)t * C * H * W, (long)C * H * W, BLUR_TOL, 0.0);
        }
    } else {
        CHECKF(0, "live blur output has %d dimensions", nd);
    }
    free(ref);
}

/* ------------------------------------------------------------ bootstrap */

TEST(bootstrap_ci_of_a_constant_is_that_constant) {
    double a[50];
    for (int i = 0; i < 50; i++) a[i] = 0.1;
    double lo, hi;
    REQUIRE(at_bootstrap_ci(a, NULL, 50, 1000, 7, 0.95, &lo, &hi) == AT_OK);
    CHECK(lo == 0.1 && hi == 0.1);
    REQUIRE(at_bootstrap_ci(a, a, 50, 1000, 7, 0.95, &lo, &hi) == AT_OK); /* paired, no difference */
    CHECK(lo == 0.0 && hi == 0.0);
}

TEST(bootstrap_ci_is_deterministic_and_seeded) {
    double a[40], b[40];
    for (int i = 0; i < 40; i++) {
        a[i] = (lcg() % 1000) / 1000.0;
        b[i] = a[i] - 0.05 + (lcg() % 100) / 1000.0; /* a - b in [-0.049, 0.05] */
    }
    double lo1, hi1, lo2, hi2, lo3, hi3;
    REQUIRE(at_bootstrap_ci(a, b, 40, 2000, 42, 0.95, &lo1, &hi1) == AT_OK);
    REQUIRE(at_bootstrap_ci(a, b, 40, 2000, 42, 0.95, &lo2, &hi2) == AT_OK);
    CHECK(lo1 == lo2 && hi1 == hi2);
    REQUIRE(at_bootstrap_ci(a, b, 40, 2000, 43, 0.95, &lo3, &hi3) == AT_OK);
    CHECK(lo3 != lo1 || hi3 != hi1);
    CHECK(lo1 < hi1 && lo1 > -0.05 && hi1 < 0.05);
    /* a wider level gives a wider interval from the same resamples */
    double lo99, hi99;
    REQUIRE(at_bootstrap_ci(a, b, 40, 2000, 42, 0.99, &lo99, &hi99) == AT_OK);
    CHECK(lo99 <= lo1 && hi99 >= hi1);
}

TEST(bootstrap_ci_brackets_the_mean_of_0_to_99) {
    /* mean 49.5, sd 28.87, standard error 2.89: the 95 % interval is about
     * 49.5 +- 5.7 */
    double a[100];
    for (int i = 0; i < 100; i++) a[i] = i;
    double lo, hi;
    REQUIRE(at_bootstrap_ci(a, NULL, 100, 4000, 1, 0.95, &lo, &hi) == AT_OK);
    CHECKF(lo > 42.5 && lo < 45.5 && hi > 53.5 && hi < 56.5, "CI [%g, %g]", lo, hi);
}

TEST(bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time) {
    /* 200 samples of 60 uniform [0,1) values: a 95 % percentile interval
     * should cover 0.5 in roughly 190 of them; binomial sd is about 3. */
    enum { TRIALS = 200, N = 60 };
    double a[N];
    int covered = 0;
    for (int t = 0; t < TRIALS; t++) {
        for (int i = 0; i < N; i++) a[i] = (lcg() >> 7) * 0x1p-24;
        double lo, hi;
        REQUIRE(at_bootstrap_ci(a, NULL, N, 400, (uint64_t)t, 0.95, &lo, &hi) == AT_OK);
        covered += lo <= 0.5 && 0.5 <= hi;
    }
    CHECKF(covered >= 176 && covered <= 199, "covered %d of %d", covered, TRIALS);
}

TEST(bootstrap_ci_rejects_bad_arguments) {
    double a[2] = {1, 2}, lo, hi;
    CHECK(at_bootstrap_ci(a, NULL, 0, 100, 1, 0.95, &lo, &hi) == AT_ERR);
    CHECK(at_bootstrap_ci(a, NULL, 2, 0, 1, 0.95, &lo, &hi) == AT_ERR);
    CHECK(at_bootstrap_ci(a, NULL, 2, 100, 1, 1.0, &lo, &hi) == AT_ERR);
    CHECK(at_bootstrap_ci(a, NULL, 2, 100, 1, 0.0, &lo, &hi) == AT_ERR);
}
