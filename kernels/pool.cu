// Max-pool and adaptive average pool on the GPU (host/cpu/ops.c's twins),
// one thread per output element forward. The backward passes are gathers,
// one thread per input element summing the outputs whose window covers it in
// the CPU's (oy, ox) order: no atomics, deterministic, and bit-identical to
// the CPU even for overlapping windows.
#include <math.h>

#include "ops_cuda.cuh"

#define POOL_THREADS 256

// Raster-order argmax of window (oy, ox) clipped to the map (padded cells
// never win), first maximum on ties, NaN wins as in host/cpu/pool.c
// (v > best || isnan(v)).
__device__ __forceinline__ int window_argmax(const float *xp, int H, int W, int k, int s, int p, int oy, int ox) {
    const int y0 = oy * s - p > 0 ? oy * s - p : 0, x0 = ox * s - p > 0 ? ox * s - p : 0;
    const int y1 = oy * s - p + k < H ? oy * s - p + k : H, x1 = ox * s - p + k < W ? ox * s - p + k : W;
    int arg = y0 * W + x0;
    float best = xp[arg];
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) {
            const int idx = yy * W + xx;
            const float v = xp[idx];
            if (v > best || isnan(v)) best = v, arg = idx;
        }
    return arg;
}

__global__ void maxpool2d_forward_kernel(const float *x, long NC, int H, int W, int k, int s, int p, int OH, int OW,
                                         float *y) {
    const long total = NC * OH * OW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const int ox = (int)(i % OW), oy = (int)(i / OW % OH);
        const long nc = i / ((long)OH * OW);
        const float *xp = x + nc * H * W;
        y[i] = xp[window_argmax(xp, H, W, k, s, p, oy, ox)];
    }
}

__global__ void maxpool2d_backward_kernel(const float *x, const float *dy, long NC, int H, int W, int k, int s, int p,
                                          int OH, int OW, float *dx) {
    const long total = NC * H * W;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const int ix = (int)(i % W), iy = (int)(i / W % H);
        const long nc = i / ((long)H * W);
        const float *xp = x + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        const int self = iy * W + ix;
        // windows oy*s - p <= iy < oy*s - p + k
        const int ry = iy + p - k + 1, rx = ix + p - k + 1;
        int oy0 = ry > 0 ? (ry + s - 1) / s : 0, oy1 = (iy + p) / s;
        int ox0 = rx > 0 ? (rx + s - 1) / s : 0, ox1 = (ix + p) / s;
        if (oy1 > OH - 1) oy1 = OH - 1;
        if (ox1 > OW - 1) ox1 = OW - 1;
        float sum = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++)
                if (window_argmax(xp, H, W, k, s, p, oy, ox) == self) sum += dyp[oy * OW + ox];
        dx[i] = sum;
    }
}

// Padding below half the window (PyTorch's limit) keeps every window on the map.
static int maxpool_shape_ok(int H, int W, int k, int s, int p) {
    if (k < 1 || s < 1 || p < 0 || 2 * p > k || H + 2 * p < k || W + 2 * p < k)
        return at_fail("cuda", "max-pool %dx%d/%d pad %d on a %dx%d map", k, k, s, p, H, W);
    return AT_OK;
}

int at_maxpool2d_forward_gpu(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y,
                             cudaStream_t stream) {
    if (maxpool_shape_ok(H, W, k, s, p)) return AT_ERR;
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    const long total = (long)N * C * OH * OW;
    maxpool2d_forward_kernel<<<at_grid_1d(total, POOL_THREADS), POOL_THREADS, 0, stream>>>(x, (long)N * C, H, W, k,
                                                                                          s, p, OH, OW, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_maxpool2d_backward_gpu(const float *x, const float *dy, int N, int C, int H, int W, int k, int s, int p,
                              float *dx, cudaStream_t stream) {
    if (maxpool_shape_ok(H, W, k, s, p)) return AT_ERR;
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    const long total = (long)N * C * H * W;
    maxpool2d_backward_kernel<<<at_grid_1d(total, POOL_THREADS), POOL_THREADS, 0, stream>>>(x, dy, (long)N * C, H, W,
                                                                                           k, s, p, OH, OW, dx);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

// PyTorch bins: [floor(i*in/out), ceil((i+1)*in/out)), overlapping when out > in.
__device__ __forceinline__ int bin_start(int i, int in, int out) { return (int)((long)i * in / out); }
__device__ __forceinline__ int bin_end(int i, int in, int out) { return (int)(((long)(i + 1) * in + out - 1) / out); }

__global__ void adaptive_avgpool_forward_kernel(const float *x, long NC, int H, int W, int OH, int OW, float *y) {
    const long total = NC * OH * OW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const int ox = (int)(i % OW), oy = (int)(i / OW % OH);
        const long nc = i / ((long)OH * OW);
        const float *xp = x + nc * H * W;
        const int y0 = bin_start(oy, H, OH), y1 = bin_end(oy, H, OH);
        const int x0 = bin_start(ox, W, OW), x1 = bin_end(ox, W, OW);
        float sum = 0.0f;
        for (int yy = y0; yy < y1; yy++)
            for (int xx = x0; xx < x1; xx++) sum += xp[yy * W + xx];
        y[i] = sum / (float)((y1 - y0) * (x1 - x0));
    }
}

__global__ void adaptive_avgpool_backward_kernel(const float *dy, long NC, int H, int W, int OH, int OW,
                                                 float *dx) {
    const long total = NC * H * W;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const int ix = (int)(i % W), iy = (int)(i / W % H);
        const long nc = i / ((long)H * W);
        const float *dyp = dy + nc * OH * OW;
        float sum = 0.0f;
        for (int oy = 0; oy < OH; oy++) {
            const int y0 = bin_start(oy, H, OH), y1 = bin_end(oy, H, OH);
            if (iy < y0 || iy >= y1) continue;
            for (int ox = 0; ox < OW; ox++) {
                const int x0 = bin_start(ox, W, OW), x1 = bin_end(ox, W, OW);
                if (ix < x0 || ix >= x1) continue;
                sum += dyp[oy * OW + ox] / (float)((y1 - y0) * (x1 - x0));
            }
        }
        dx[i] = sum;
    }
}

int at_adaptive_avgpool_forward_gpu(const float *x, int N, int C, int H, int W, int OH, int OW, float *y,
                                    cudaStream_t stream) {
    if (OH < 1 || OW < 1 || H < 1 || W < 1) return at_fail("cuda", "adaptive avgpool %dx%d -> %dx%d", H, W, OH, OW);
    const long total = (long)N * C * OH * OW;
    adaptive_avgpool_forward_kernel<<<at_grid_1d(total, POOL_THREADS), POOL_THREADS, 0, stream>>>(x, (long)N * C, H,
                                                                                                 W, OH, OW, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_adaptive_avgpool_backward_gpu(const float *dy, int N, int C, int H, int W, int OH, int OW, float *dx,
                                     cudaStream_t stream) {
    if (OH < 1 || OW < 1 || H < 1 || W < 1) return at_fail("cuda", "adaptive avgpool %dx%d -> %dx%d", H, W, OH, OW);
    const long total = (long)N * C * H * W;
    adaptive_avgpool_backward_kernel<<<at_grid_1d(total, POOL_THREADS), POOL_THREADS, 0, stream>>>(dy, (long)N * C, H,
                                                                                                  W, OH, OW, dx);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

// k x k average, zero padding counted (host/cpu/pool.c at_avgpool2d_forward).
__global__ void avgpool2d_forward_kernel(const float *x, long NC, int H, int W, int k, int s, int p, int OH, int OW,
                                         float *y) {
    const long total = NC * OH * OW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const int ox = (int)(i % OW), oy = (int)(i / OW % OH);
        const float *xp = x + i / ((long)OH * OW) * H * W;
        float sum = 0.0f;
        for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++) {
                const int iy = oy * s - p + dy, ix = ox * s - p + dx;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) sum = __fadd_rn(sum, xp[iy * W + ix]);
            }
        y[i] = __fdiv_rn(sum, (float)(k * k));
    }
}

// The gather of the windows covering each input, in the CPU's (oy, ox) order.
__global__ void avgpool2d_backward_kernel(const float *dy, long NC, int H, int W, int k, int s, int p, int OH, int OW,
                                          float *dx) {
    const long total = NC * H * W;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const int ix = (int)(i % W), iy = (int)(i / W % H);
        const float *g = dy + i / ((long)H * W) * OH * OW;
        float sum = 0.0f;
        for (int oy = 0; oy < OH; oy++) {
            const int ky = iy + p - oy * s;
            if (ky < 0 || ky >= k) continue;
            for (int ox = 0; ox < OW; ox++) {
                const int kx = ix + p - ox * s;
                if (kx >= 0 && kx < k) sum = __fadd_rn(sum, __fdiv_rn(g[oy * OW + ox], (float)(k * k)));
            }
        }
        dx[i] = sum;
    }
}

// The output size of a k x k / s pool with padding p, or an error.
static int avgpool_shape(int k, int s, int p, int H, int W, int *OH, int *OW) {
    if (k < 1 || s < 1 || p < 0 || H + 2 * p < k || W + 2 * p < k)
        return at_fail("cuda", "avgpool %dx%d/%d pad %d on a %dx%d map", k, k, s, p, H, W);
    *OH = (H + 2 * p - k) / s + 1, *OW = (W + 2 * p - k) / s + 1;
    return AT_OK;
}

int at_avgpool2d_forward_gpu(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y,
                             cudaStream_t stream) {
    int OH = 0, OW = 0;
    if (avgpool_shape(k, s, p, H, W, &OH, &OW)) return AT_ERR;
    const long total = (long)N * C * OH * OW;
    avgpool2d_forward_kernel<<<at_grid_1d(total, POOL_THREADS), POOL_THREADS, 0, stream>>>(x, (long)N * C, H, W, k, s,
                                                                                          p, OH, OW, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_avgpool2d_backward_gpu(const float *dy, int N, int C, int H, int W, int k, int s, int p, float *dx,
                              cudaStream_t stream) {
    int OH = 0, OW = 0;
    if (avgpool_shape(k, s, p, H, W, &OH, &OW)) return AT_ERR;
    const long total = (long)N * C * H * W;
    avgpool2d_backward_kernel<<<at_grid_1d(total, POOL_THREADS), POOL_THREADS, 0, stream>>>(dy, (long)N * C, H, W, k,
                                                                                           s, p, OH, OW, dx);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}
