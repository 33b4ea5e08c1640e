/* Max-pool and adaptive average pool (the CPU references of kernels/pool.cu).
 * Backward passes route to the raster-order first maximum (NaN wins), as
 * the GPU does, so both agree bit for bit. */
#include <math.h>
#include <string.h>

#include "cpu/ops.h"

void at_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, float *y) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float best = xp[(oy * s) * W + ox * s];
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        float v = xp[(oy * s + dy) * W + ox * s + dx];
                        if (v > best || isnan(v)) best = v;
                    }
                yp[oy * OW + ox] = best;
            }
    }
}

void at_maxpool2d_backward(const float *x, const float *dy, int N, int C, int H, int W, int k,
                           int s, float *dx) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        float *dxp = dx + nc * H * W;
        memset(dxp, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int arg = (oy * s) * W + ox * s;
                float best = xp[arg];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int idx = (oy * s + ky) * W + ox * s + kx;
                        if (xp[idx] > best || isnan(xp[idx])) best = xp[idx], arg = idx;
                    }
                dxp[arg] += dyp[oy * OW + ox];
            }
    }
}

static inline int bin_start(int i, int in, int out) { return (int)((long)i * in / out); }
static inline int bin_end(int i, int in, int out) { return (int)(((long)(i + 1) * in + out - 1) / out); }

void at_adaptive_avgpool_forward(const float *x, int N, int C, int H, int W, int OH, int OW,
                                 float *y) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = bin_start(oy, H, OH), y1 = bin_end(oy, H, OH);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = bin_start(ox, W, OW), x1 = bin_end(ox, W, OW);
                float sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) sum += xp[yy * W + xx];
                yp[oy * OW + ox] = sum / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void at_adaptive_avgpool_backward(const float *dy, int N, int C, int H, int W, int OH, int OW,
                                  float *dx) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *dyp = dy + nc * OH * OW;
        float *dxp = dx + nc * H * W;
        memset(dxp, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++) {
            int y0 = bin_start(oy, H, OH), y1 = bin_end(oy, H, OH);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = bin_start(ox, W, OW), x1 = bin_end(ox, W, OW);
                float g = dyp[oy * OW + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) dxp[yy * W + xx] += g;
            }
        }
    }
}
