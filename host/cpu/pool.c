/* Max-pool and adaptive average pool (the CPU references of kernels/pool.cu).
 * Backward passes route to the raster-order first maximum (NaN wins), as
 * the GPU does, so both agree bit for bit. */
#include <math.h>
#include <string.h>

#include "cpu/ops.h"

/* The window of output (oy, ox) clipped to the map: padded cells never win. */
static inline int window_argmax(const float *xp, int H, int W, int k, int s, int p, int oy, int ox) {
    const int y0 = oy * s - p > 0 ? oy * s - p : 0, x0 = ox * s - p > 0 ? ox * s - p : 0;
    const int y1 = oy * s - p + k < H ? oy * s - p + k : H, x1 = ox * s - p + k < W ? ox * s - p + k : W;
    int arg = y0 * W + x0;
    float best = xp[arg];
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) {
            const int idx = yy * W + xx;
            if (xp[idx] > best || isnan(xp[idx])) best = xp[idx], arg = idx;
        }
    return arg;
}

void at_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y) {
    int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) yp[oy * OW + ox] = xp[window_argmax(xp, H, W, k, s, p, oy, ox)];
    }
}

void at_maxpool2d_backward(const float *x, const float *dy, int N, int C, int H, int W, int k,
                           int s, int p, float *dx) {
    int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        float *dxp = dx + nc * H * W;
        memset(dxp, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) dxp[window_argmax(xp, H, W, k, s, p, oy, ox)] += dyp[oy * OW + ox];
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

/* k x k average with stride s and zero padding p, the padding counted in the
 * divisor (PyTorch AvgPool2d's count_include_pad=True). */
void at_avgpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y) {
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float sum = 0.0f;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        const int iy = oy * s - p + dy, ix = ox * s - p + dx;
                        if (iy >= 0 && iy < H && ix >= 0 && ix < W) sum += xp[iy * W + ix];
                    }
                y[(nc * OH + oy) * OW + ox] = sum / (float)(k * k);
            }
    }
}

/* The gather of the windows covering each input, in (oy, ox) order. */
void at_avgpool2d_backward(const float *dy, int N, int C, int H, int W, int k, int s, int p, float *dx) {
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *g = dy + nc * OH * OW;
        for (int iy = 0; iy < H; iy++)
            for (int ix = 0; ix < W; ix++) {
                float sum = 0.0f;
                for (int oy = 0; oy < OH; oy++) {
                    const int ky = iy + p - oy * s;
                    if (ky < 0 || ky >= k) continue;
                    for (int ox = 0; ox < OW; ox++) {
                        const int kx = ix + p - ox * s;
                        if (kx >= 0 && kx < k) sum += g[oy * OW + ox] / (float)(k * k);
                    }
                }
                dx[(nc * H + iy) * W + ix] = sum;
            }
    }
}
