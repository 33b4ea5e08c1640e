/* Times the 13 convolutions of VGG16 (3x3, stride 1, pad 1) on the CPU
 * backend: forward, and with -b also backward data; -w runs the Winograd
 * path where it applies (host/cpu/winograd.h) and adds its error against the
 * direct conv. Not a test; built by hand:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O3 -march=native -fopenmp -Ihost -o /tmp/bench_conv \
 *       tools/bench_conv.c host/cpu/conv.c host/cpu/winograd.c host/cpu/sgemm.c -lm
 *   OMP_NUM_THREADS=2 /tmp/bench_conv [-n batch] [-s size] [-r reps] [-b] [-w] [-m 2|4]
 *
 * Prints one line per layer, "layer C K H ms GFLOP/s" (best of reps; GFLOP/s
 * counts the direct conv's 2*9*C*K*H*W also for Winograd), then the total.
 * With -w each line ends with the error of the Winograd result against the
 * direct one, max |diff| / max |direct| (forward, and backward with -b),
 * and the tile: -m 2 or -m 4 forces F(2x2) or F(4x4), otherwise the rule's
 * choice (at_winograd_rule) per layer.
 * tools/bench_cpu_conv.py runs it next to PyTorch. */
#include "cpu/conv.h"
#include "cpu/sgemm.h"
#include "cpu/winograd.h"

#include <math.h>

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int vgg16[13][2] = {{3, 64},    {64, 64},   {64, 128},  {128, 128}, {128, 256},
                                 {256, 256}, {256, 256}, {256, 512}, {512, 512}, {512, 512},
                                 {512, 512}, {512, 512}, {512, 512}};
static const int vgg16_pool_after[13] = {0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1};

static float *filled(long n, unsigned seed) {
    float *p = malloc((size_t)n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    for (long i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1 << 24) - 0.5f;
    }
    return p;
}

static double rel_err(const float *a, const float *ref, long n) {
    double d = 0, m = 0;
    for (long i = 0; i < n; i++) {
        if (fabs(a[i] - ref[i]) > d) d = fabs(a[i] - ref[i]);
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    }
    return m > 0 ? d / m : d;
}

/* One conv (forward or backward data) by the chosen path. */
static void conv_run(int wino, int bwd, const float *in, int N, int C, int H, const float *w,
                     const float *u, const float *b, int K, float *out, float *ws) {
    if (!wino && !bwd) at_conv2d_forward(in, N, C, H, H, w, b, K, 3, 3, 1, 1, out, ws);
    else if (!wino) at_conv2d_backward_data(in, N, C, H, H, w, K, 3, 3, 1, 1, out, ws);
    else if (!bwd) at_winograd_conv2d_forward(in, N, C, H, H, wino, u, b, K, 1, out, ws, NULL);
    else at_winograd_conv2d_backward_data(in, N, C, H, H, wino, u, K, 1, out, ws);
}

int main(int argc, char **argv) {
    int N = 1, size = 224, reps = 5, backward = 0, wino = 0, tile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b")) backward = 1;
        else if (!strcmp(argv[i], "-w")) wino = 1;
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) tile = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_conv [-n batch] [-s size] [-r reps] [-b] [-w] [-m 2|4]\n");
            return 2;
        }
    }
    printf("# kernel %s, %d threads, batch %d, %dx%d, best of %d\n", at_sgemm_kernel_name(),
           omp_get_max_threads(), N, size, size, reps);
    printf("# layer C K H fwd_ms fwd_GFLOPs%s%s\n", backward ? " bwd_ms bwd_GFLOPs" : "",
           wino ? (backward ? " fwd_err bwd_err tile" : " fwd_err tile") : "");
    double total_f = 0, total_b = 0, flops_all = 0;
    int H = size;
    for (int l = 0; l < 13; l++) {
        int C = vgg16[l][0], K = vgg16[l][1];
        long nx = (long)N * C * H * H, ny = (long)N * K * H * H;
        float *x = filled(nx, 1u + l), *w = filled((long)K * C * 9, 7u + l), *b = filled(K, 3u);
        float *y = filled(ny, 5u), *dx = backward ? filled(nx, 9u) : NULL;
        /* the tile (0: direct) of the forward and of the backward conv */
        int m = tile ? tile : at_winograd_rule(C, K, H, H), mb = tile ? tile : at_winograd_rule(K, C, H, H);
        int wf = wino && at_winograd_applies(C, K, 3, 3, 1, 1) ? m : 0;
        int wb = wino && at_winograd_applies(C, K, 3, 3, 1, 1) ? mb : 0;
        float *uf = NULL, *ub = NULL;
        size_t nws = at_conv2d_workspace_floats(C, H, H, 3, 3, 1, 1);
        if (wf || wb) {
            size_t nw = at_winograd_workspace_floats(C, K);
            if (nw > nws) nws = nw;
            uf = malloc(at_winograd_weights_floats(K, C, wf) * sizeof *uf);
            ub = malloc(at_winograd_weights_floats(K, C, wb) * sizeof *ub);
            at_winograd_transform_weights(w, K, C, 0, wf, uf);
            at_winograd_transform_weights(w, K, C, 1, wb, ub);
        }
        float *ws = nws ? filled((long)nws, 11u) : NULL;
        double flops = 2.0 * N * K * C * 9.0 * H * H, best_f = 1e30, best_b = 1e30, err_f = 0, err_b = 0;
        conv_run(wf, 0, x, N, C, H, w, uf, b, K, y, ws); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t = omp_get_wtime();
            conv_run(wf, 0, x, N, C, H, w, uf, b, K, y, ws);
            t = omp_get_wtime() - t;
            if (t < best_f) best_f = t;
        }
        if (wf) {
            float *yd = malloc((size_t)ny * sizeof *yd);
            at_conv2d_forward(x, N, C, H, H, w, b, K, 3, 3, 1, 1, yd, ws);
            err_f = rel_err(y, yd, ny);
            free(yd);
        }
        if (backward) {
            conv_run(wb, 1, y, N, C, H, w, ub, NULL, K, dx, ws);
            for (int r = 0; r < reps; r++) {
                double t = omp_get_wtime();
                conv_run(wb, 1, y, N, C, H, w, ub, NULL, K, dx, ws);
                t = omp_get_wtime() - t;
                if (t < best_b) best_b = t;
            }
            if (wb) {
                float *dd = malloc((size_t)nx * sizeof *dd);
                at_conv2d_backward_data(y, N, C, H, H, w, K, 3, 3, 1, 1, dd, ws);
                err_b = rel_err(dx, dd, nx);
                free(dd);
            }
        }
        printf("%2d %3d %3d %3d %8.3f %6.1f", l + 1, C, K, H, best_f * 1e3, flops / best_f / 1e9);
        if (backward) printf(" %8.3f %6.1f", best_b * 1e3, flops / best_b / 1e9);
        if (wino) printf(" %.2e", err_f);
        if (wino && backward) printf(" %.2e", err_b);
        if (wino) printf(" F%d", wf);
        printf("\n");
        total_f += best_f;
        total_b += best_b;
        flops_all += flops;
        free(x), free(w), free(b), free(y), free(dx), free(ws), free(uf), free(ub);
        if (vgg16_pool_after[l]) H /= 2;
    }
    printf("total %8.3f %6.1f", total_f * 1e3, flops_all / total_f / 1e9);
    if (backward) printf(" %8.3f %6.1f", total_b * 1e3, flops_all / total_b / 1e9);
    printf("\n");
    return 0;
}
