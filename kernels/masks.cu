// Masked network inputs built on the device (host/cpu/backend_cpu.c
// make_input): each item's low-resolution mask is min-max normalised before
// or after a bilinear upsampling to the input size (docs/methods.md#score-cam, #conventions-where-papers-and-peers-disagree) and
// multiplied into its input row, in the normalised or the [0,1] space.
//
// Two launches: a block per item finds the mask's min and max (of the raw
// mask, or of the upsampled map recomputed on the fly), then one thread per
// (item, pixel) upsamples and writes every colour channel, or (mask_only)
// just the final mask for the first conv to apply as it loads its input. min / max are
// exact, so the result does not depend on the reduction order; NaNs are
// ignored as in host/methods/maps.c. The arithmetic uses the _rn intrinsics so that
// nvcc cannot contract it into FMAs: the CPU (ISO C, no contraction) rounds
// every product and sum, and with the same roundings the masked inputs are
// bit-identical to the CPU's.
#include <math.h>

#include "ops_cuda.cuh"

#define MASK_THREADS 256

// PyTorch area_pixel_compute_source_index, as host/methods/maps.c source_index.
__device__ __forceinline__ void source_index(int out_size, int in_size, int align_corners, int i, int *i0, int *i1,
                                             float *lambda) {
    float src;
    if (align_corners) {
        const float scale = out_size > 1 ? (float)(in_size - 1) / (float)(out_size - 1) : 0.f;
        src = __fmul_rn(scale, (float)i);
    } else {
        const float scale = (float)in_size / (float)out_size;
        src = __fsub_rn(__fmul_rn(scale, __fadd_rn((float)i, 0.5f)), 0.5f);
        if (src < 0) src = 0;
    }
    int lo = (int)src;
    if (lo > in_size - 1) lo = in_size - 1;
    *i0 = lo;
    *i1 = lo < in_size - 1 ? lo + 1 : lo;
    *lambda = __fsub_rn(src, (float)lo);
}

// s(v) = (v - lo) / (hi - lo), 0 when the mask is flat (host/methods/maps.c at_minmax_normalize).
__device__ __forceinline__ float minmax_apply(float v, float lo, float hi) {
    if (!(hi > lo)) return 0.0f;
    return __fdiv_rn(__fsub_rn(v, lo), __fsub_rn(hi, lo));
}

// Mask value at input pixel (y, x) of one item: source samples normalised
// first when norm_src (MINMAX_BEFORE), then bilinear (host/methods/maps.c
// at_upsample_bilinear, identity when the sizes match).
__device__ float mask_at(const float *m, int mh, int mw, int H, int W, int ac, int y, int x, int norm_src, float lo,
                         float hi) {
    if (mh == H && mw == W) {
        const float v = m[(long)y * mw + x];
        return norm_src ? minmax_apply(v, lo, hi) : v;
    }
    int y0, y1, x0, x1;
    float ly, lx;
    source_index(H, mh, ac, y, &y0, &y1, &ly);
    source_index(W, mw, ac, x, &x0, &x1, &lx);
    float v00 = m[y0 * mw + x0], v01 = m[y0 * mw + x1], v10 = m[y1 * mw + x0], v11 = m[y1 * mw + x1];
    if (norm_src) {
        v00 = minmax_apply(v00, lo, hi), v01 = minmax_apply(v01, lo, hi);
        v10 = minmax_apply(v10, lo, hi), v11 = minmax_apply(v11, lo, hi);
    }
    const float top = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, lx), v00), __fmul_rn(lx, v01));
    const float bot = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, lx), v10), __fmul_rn(lx, v11));
    return __fadd_rn(__fmul_rn(__fsub_rn(1.0f, ly), top), __fmul_rn(ly, bot));
}

// One block per item: lohi[b] = {min, max} of the raw mask (upsampled = 0)
// or of the upsampled map (upsampled = 1), NaNs ignored.
__global__ void __launch_bounds__(MASK_THREADS)
    mask_minmax_kernel(const float *masks, int mh, int mw, int H, int W, int ac, int upsampled, float *lohi) {
    const int b = blockIdx.x;
    const float *m = masks + (long)b * mh * mw;
    const long count = upsampled ? (long)H * W : (long)mh * mw;
    float lo = INFINITY, hi = -INFINITY;
    for (long i = threadIdx.x; i < count; i += MASK_THREADS) {
        const float v = upsampled ? mask_at(m, mh, mw, H, W, ac, (int)(i / W), (int)(i % W), 0, 0.f, 0.f) : m[i];
        lo = fminf(lo, v); // fminf / fmaxf return the other operand for a NaN
        hi = fmaxf(hi, v);
    }
    for (int off = 16; off > 0; off /= 2) {
        lo = fminf(lo, __shfl_down_sync(0xffffffffu, lo, off));
        hi = fmaxf(hi, __shfl_down_sync(0xffffffffu, hi, off));
    }
    __shared__ float s_lo[MASK_THREADS / 32], s_hi[MASK_THREADS / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) s_lo[warp] = lo, s_hi[warp] = hi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < MASK_THREADS / 32; w++) lo = fminf(lo, s_lo[w]), hi = fmaxf(hi, s_hi[w]);
        lohi[2 * b] = lo;
        lohi[2 * b + 1] = hi;
    }
}

struct mask_kernel_args {
    const float *rows;
    const int *input_index;
    const float *masks; // NULL: gather copy
    const float *lohi;
    int mh, mw, ac, norm, space, n, C, H, W, mask_only;
    float ms[AT_GPU_MAX_IN_C];
    float *out;
};

__global__ void make_inputs_kernel(const mask_kernel_args a) {
    const long HW = (long)a.H * a.W, total = (long)a.n * HW;
    const long CHW = a.C * HW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const long b = i / HW, pix = i - b * HW;
        const long row = a.input_index ? a.input_index[b] : b;
        const float *src = a.rows + row * CHW + pix;
        float *dst = a.out + b * CHW + pix;
        if (!a.masks) {
            for (int c = 0; c < a.C; c++) dst[c * HW] = src[c * HW];
            continue;
        }
        const float lo = a.norm != AT_MASK_RAW ? a.lohi[2 * b] : 0.f;
        const float hi = a.norm != AT_MASK_RAW ? a.lohi[2 * b + 1] : 0.f;
        float u = mask_at(a.masks + b * a.mh * a.mw, a.mh, a.mw, a.H, a.W, a.ac, (int)(pix / a.W), (int)(pix % a.W),
                          a.norm == AT_MASK_MINMAX_BEFORE, lo, hi);
        if (a.norm == AT_MASK_MINMAX_AFTER) u = minmax_apply(u, lo, hi);
        if (a.mask_only) {
            a.out[i] = u;
            continue;
        }
        for (int c = 0; c < a.C; c++) {
            const float s = src[c * HW];
            // unit space: ((x*std + mean) * m - mean) / std = x*m + (mean/std)*(m-1)
            dst[c * HW] = a.space == AT_MASK_UNIT ? __fadd_rn(__fmul_rn(s, u), __fmul_rn(a.ms[c], __fsub_rn(u, 1.0f)))
                                                  : __fmul_rn(s, u);
        }
    }
}

int at_make_inputs_gpu(const at_mask_inputs *a, cudaStream_t stream) {
    if (a->n < 1 || a->C < 1 || a->C > AT_GPU_MAX_IN_C)
        return at_fail("cuda", "masked inputs: %d items of %d channels (at most %d)", a->n, a->C, AT_GPU_MAX_IN_C);
    if (a->masks && (a->mh < 1 || a->mw < 1 || a->mh > a->H || a->mw > a->W))
        return at_fail("cuda", "mask %dx%d must be between 1x1 and the input size %dx%d", a->mh, a->mw, a->H, a->W);
    if (a->masks && a->norm != AT_MASK_RAW) {
        if (!a->lohi) return at_fail("cuda", "masked inputs: no min-max scratch");
        mask_minmax_kernel<<<a->n, MASK_THREADS, 0, stream>>>(a->masks, a->mh, a->mw, a->H, a->W, a->align_corners,
                                                              a->norm == AT_MASK_MINMAX_AFTER, a->lohi);
        CUDA_LAUNCH_CHECK(stream);
    }
    mask_kernel_args k;
    k.rows = a->rows;
    k.input_index = a->input_index;
    k.masks = a->masks;
    k.lohi = a->lohi;
    k.mh = a->mh, k.mw = a->mw, k.ac = a->align_corners, k.norm = a->norm, k.space = a->space;
    k.n = a->n, k.C = a->C, k.H = a->H, k.W = a->W;
    k.mask_only = a->mask_only && a->masks;
    for (int c = 0; c < AT_GPU_MAX_IN_C; c++) k.ms[c] = a->mean_over_std[c];
    k.out = a->out;
    const long total = (long)a->n * a->H * a->W;
    make_inputs_kernel<<<at_grid_1d(total, MASK_THREADS), MASK_THREADS, 0, stream>>>(k);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}
