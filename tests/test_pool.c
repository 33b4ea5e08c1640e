/* The CPU max-pool's fast paths (VGG's 2x2 / 2, ResNet's padded 3x3 / 2)
 * against the general window loop they stand for: the same maximum and the
 * same argmax (the first maximum in raster order, NaN winning), ties and odd
 * sizes included. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ops.h"
#include "tensor_util.h"
#include "test.h"

/* The general loop of host/cpu/pool.c, written out: k x k windows, stride s,
 * padding p (padded cells never win). */
static void pool_reference(const float *x, int NC, int H, int W, int k, int s, int p, float *y, float *dx,
                           const float *dy) {
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    memset(dx, 0, sizeof(float) * NC * H * W);
    for (int nc = 0; nc < NC; nc++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *xp = x + (long)nc * H * W;
                int arg = -1;
                float best = 0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        const int yy = oy * s - p + i, xx = ox * s - p + j, idx = yy * W + xx;
                        if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
                        if (arg < 0 || xp[idx] > best || isnan(xp[idx])) best = xp[idx], arg = idx;
                    }
                y[(long)nc * OH * OW + oy * OW + ox] = best;
                dx[(long)nc * H * W + arg] += dy[(long)nc * OH * OW + oy * OW + ox];
            }
}

/* The op's k x k / s pad p max-pool, forward and backward, bit for bit the window loop's. */
static void same_as_the_window_loop(const char *what, const float *x, const float *dy, int NC, int H, int W, int k,
                                    int s, int p) {
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    const long n = (long)NC * H * W, no = (long)NC * OH * OW;
    float *y = malloc(sizeof(float) * no), *yr = malloc(sizeof(float) * no);
    float *dx = malloc(sizeof(float) * n), *dxr = malloc(sizeof(float) * n);
    at_maxpool2d_forward(x, 1, NC, H, W, k, s, p, y);
    at_maxpool2d_backward(x, dy, 1, NC, H, W, k, s, p, dx);
    pool_reference(x, NC, H, W, k, s, p, yr, dxr, dy);
    char label[96];
    snprintf(label, sizeof label, "%s forward", what);
    SAME_BITS(label, y, yr, no);
    snprintf(label, sizeof label, "%s backward (the argmax)", what);
    SAME_BITS(label, dx, dxr, n);
    free(y), free(yr), free(dx), free(dxr);
}

TEST(maxpool_2x2_fast_path_matches_the_window_loop_with_ties_and_nans) {
    /* rows of 16 windows and more run eight at a time, the rest one by one */
    const int sizes[][2] = {{8, 6}, {7, 9}, {2, 2}, {5, 4}, {6, 40}, {5, 35}};
    for (int t = 0; t < 6; t++) {
        const int NC = 3, H = sizes[t][0], W = sizes[t][1], OH = H / 2, OW = W / 2;
        const long n = (long)NC * H * W, no = (long)NC * OH * OW;
        float *x = test_random("pool x", t, n, 2, 0), *dy = test_random("pool dy", t, no, 1, 0);
        for (long i = 0; i < n; i++) x[i] = roundf(x[i]); /* many ties among -2..2 */
        x[1] = NAN, x[W + 2] = NAN, x[2 * W + 3] = x[2 * W + 2] = NAN;
        for (long i = 5 * W + 7; i < n; i += 13) x[i] = NAN; /* in every lane position, some windows with two */
        dy[0] = -0.0f;
        same_as_the_window_loop("2x2 pool", x, dy, NC, H, W, 2, 2, 0);
        free(x), free(dy);
    }
}

TEST(maxpool_3x3_stride2_pad1_fast_path_matches_the_window_loop_with_ties_and_nans) {
    /* rows of 33 pixels and more run 16 windows at a time (AVX-512), the rest one by one */
    const int sizes[][2] = {{8, 6}, {7, 9}, {3, 3}, {12, 11}, {1, 4}, {6, 33}, {5, 34}, {7, 67}, {4, 112}};
    for (int t = 0; t < 9; t++) {
        const int NC = 3, H = sizes[t][0], W = sizes[t][1], OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
        const long n = (long)NC * H * W, no = (long)NC * OH * OW;
        float *x = test_random("pool3 x", t, n, 2, 0), *dy = test_random("pool3 dy", t, no, 1, 0);
        for (long i = 0; i < n; i++) x[i] = roundf(x[i]); /* many ties among -2..2 */
        x[1] = NAN;
        if (n > 2 * W + 3) x[W + 2] = NAN, x[2 * W + 3] = x[2 * W + 2] = NAN;
        for (long i = 3 * W + 5; i < n; i += 11) x[i] = NAN; /* in every lane position, some windows with two */
        same_as_the_window_loop("3x3/2/1 pool", x, dy, NC, H, W, 3, 2, 1);
        free(x), free(dy);
    }
}
