/* Max-pool and adaptive average pool (the CPU references of kernels/pool.cu).
 * Backward passes route to the raster-order first maximum (NaN wins), as
 * the GPU does, so both agree bit for bit. */
#include <math.h>
#include <string.h>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "cpu/ops.h"

/* The window's first maximum in raster order, NaN winning as in the loops below. */
static inline float pick(float best, float v) { return v > best || v != v ? v : best; }

/* VGG's 2x2 / 2 pool, unrolled: the same choices as the general loop, in a
 * form the compiler vectorises across the row (a third of a gradient pass
 * on small nets went to the general loop). */
static void maxpool2x2_forward(const float *x, long NC, int H, int W, float *y) {
    const int OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static) if (NC * H * W > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < NC; nc++)
        for (int oy = 0; oy < OH; oy++) {
            const float *r0 = x + nc * H * W + (2 * oy) * W, *r1 = r0 + W;
            float *yp = y + nc * OH * OW + oy * OW;
            for (int ox = 0; ox < OW; ox++)
                yp[ox] = pick(pick(pick(r0[2 * ox], r0[2 * ox + 1]), r1[2 * ox]), r1[2 * ox + 1]);
        }
}

#ifdef __AVX2__
/* Eight windows of the 2x2 backward at once: the row pair's 16 columns split
 * into even and odd ones (in the lane order a0 a2 b0 b2 | a4 a6 b4 b6 of the
 * shuffle, which dy is permuted to match), the scalar loop's choices as
 * masks, and the results interleaved back by unpacking. */
static inline __m256 winner(__m256 best, __m256 v, __m256 *won) {
    *won = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_ps(best, v, *won);
}

static int maxpool2x2_backward_8(const float *r0, const float *r1, const float *d, int OW, float *o0, float *o1) {
    int ox = 0;
    for (; ox + 8 <= OW; ox += 8) {
        const __m256 p0 = _mm256_loadu_ps(r0 + 2 * ox), p1 = _mm256_loadu_ps(r0 + 2 * ox + 8);
        const __m256 q0 = _mm256_loadu_ps(r1 + 2 * ox), q1 = _mm256_loadu_ps(r1 + 2 * ox + 8);
        const __m256 a = _mm256_shuffle_ps(p0, p1, 0x88), b = _mm256_shuffle_ps(p0, p1, 0xdd);
        const __m256 c = _mm256_shuffle_ps(q0, q1, 0x88), e = _mm256_shuffle_ps(q0, q1, 0xdd);
        const __m256 g = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(d + ox)), 0xd8));
        __m256 w1, w2, w3;
        winner(winner(winner(a, b, &w1), c, &w2), e, &w3);
        const __m256 s3 = w3, s2 = _mm256_andnot_ps(w3, w2), later = _mm256_or_ps(w3, w2);
        const __m256 s1 = _mm256_andnot_ps(later, w1), s0 = _mm256_andnot_ps(_mm256_or_ps(later, w1), g);
        /* + 0: the general loop adds dy to a zeroed dx, which turns -0 into +0 */
        const __m256 z = _mm256_setzero_ps();
        const __m256 even0 = _mm256_add_ps(s0, z), odd0 = _mm256_add_ps(_mm256_and_ps(s1, g), z);
        const __m256 even1 = _mm256_add_ps(_mm256_and_ps(s2, g), z), odd1 = _mm256_add_ps(_mm256_and_ps(s3, g), z);
        _mm256_storeu_ps(o0 + 2 * ox, _mm256_unpacklo_ps(even0, odd0));
        _mm256_storeu_ps(o0 + 2 * ox + 8, _mm256_unpackhi_ps(even0, odd0));
        _mm256_storeu_ps(o1 + 2 * ox, _mm256_unpacklo_ps(even1, odd1));
        _mm256_storeu_ps(o1 + 2 * ox + 8, _mm256_unpackhi_ps(even1, odd1));
    }
    return ox;
}
#endif

static void maxpool2x2_backward(const float *x, const float *dy, long NC, int H, int W, float *dx) {
    const int OH = H / 2, OW = W / 2;
#pragma omp parallel for schedule(static) if (NC * H * W > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < NC; nc++) {
        float *dxp = dx + nc * H * W;
        if (H != 2 * OH || W != 2 * OW) memset(dxp, 0, sizeof(float) * H * W); /* an odd row or column gets none */
        for (int oy = 0; oy < OH; oy++) {
            const float *r0 = x + nc * H * W + (2 * oy) * W, *r1 = r0 + W;
            const float *d = dy + nc * OH * OW + oy * OW;
            float *o0 = dxp + (2 * oy) * W, *o1 = o0 + W;
            int ox = 0;
#ifdef __AVX2__
            ox = maxpool2x2_backward_8(r0, r1, d, OW, o0, o1);
#endif
            for (; ox < OW; ox++) {
                const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], e = r1[2 * ox + 1];
                /* the argmax as the general loop finds it: the last element that replaced the best */
                const int r1 = b > a || b != b;
                const float m1 = r1 ? b : a;
                const int r2 = c > m1 || c != c;
                const float m2 = r2 ? c : m1;
                const int r3 = e > m2 || e != e;
                const int w = r3 ? 3 : r2 ? 2 : r1 ? 1 : 0;
                const float g = d[ox] + 0.0f; /* as the general loop's 0 + dy: -0 becomes +0 */
                o0[2 * ox] = w == 0 ? g : 0.0f;
                o0[2 * ox + 1] = w == 1 ? g : 0.0f;
                o1[2 * ox] = w == 2 ? g : 0.0f;
                o1[2 * ox + 1] = w == 3 ? g : 0.0f;
            }
        }
    }
}

/* ResNet's 3x3 / 2 pool with padding 1, forward: each input row folded over
 * its column windows, then the (up to) three rows folded. That is the raster
 * order's fold regrouped: the first maximum in row-major order is the first
 * row's to hold the maximum, at that row's first maximum; the last NaN in
 * raster order is the last NaN-holding row's last NaN. Both passes
 * vectorise. */
#ifdef __AVX512F__
/* The first n of 16 lanes (none for n <= 0). */
static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* pick() on 16 lanes: v where v > best or v is NaN. */
static inline __m512 pick16(__m512 best, __m512 v) {
    const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(take, best, v);
}
#endif

static void hfold_3s2(const float *r, int W, int OW, float *h) {
    h[0] = W > 1 ? pick(r[0], r[1]) : r[0];
    int ox = 1;
#ifdef __AVX512F__
    /* 16 windows at a time from r[2 ox - 1 .. 2 ox + 31], the last ones masked (no branch on the data: a
     * scalar tail's compares mispredict on real activations): a = r[2 ox - 1], b = r[2 ox], c = r[2 ox + 1] */
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (const int full = W / 2; ox < full; ox += 16) { /* windows whose three columns are inside the row */
        const int n = full - ox < 16 ? full - ox : 16, nl = 2 * n + 1; /* floats read from q: q[0 .. 2n] */
        const float *q = r + 2 * ox - 1;
        const __m512 l0 = _mm512_maskz_loadu_ps(lanes(nl), q), l1 = _mm512_maskz_loadu_ps(lanes(nl - 16), q + 16);
        const __m512 m0 = _mm512_maskz_loadu_ps(lanes(nl - 1), q + 1),
                     m1 = _mm512_maskz_loadu_ps(lanes(nl - 17), q + 17);
        const __m512 a = _mm512_permutex2var_ps(l0, even, l1), b = _mm512_permutex2var_ps(m0, even, m1),
                     c = _mm512_permutex2var_ps(m0, odd, m1);
        _mm512_mask_storeu_ps(h + ox, lanes(n), pick16(pick16(a, b), c));
    }
    if (ox > W / 2) ox = W / 2; /* the loop ran past the last full window */
#endif
    for (; 2 * ox + 1 < W; ox++) {
        const float a = r[2 * ox - 1], b = r[2 * ox], c = r[2 * ox + 1];
        const float m = b > a || b != b ? b : a;
        h[ox] = c > m || c != c ? c : m;
    }
    for (; ox < OW; ox++) h[ox] = pick(r[2 * ox - 1], r[2 * ox]); /* 2*ox == W - 1: the last column */
}

static void maxpool3x3s2p1_forward(const float *x, long NC, int H, int W, float *y) {
    const int OH = (H - 1) / 2 + 1, OW = (W - 1) / 2 + 1;
#pragma omp parallel if (NC * H * W > AT_PARALLEL_MIN_FLOATS)
    {
        float h[3 * OW]; /* W <= 8192: at most 48 KiB of a thread's stack */
#pragma omp for schedule(static)
        for (long nc = 0; nc < NC; nc++)
            for (int oy = 0; oy < OH; oy++) {
                const int y0 = oy ? 2 * oy - 1 : 0, y1 = 2 * oy + 1 < H ? 2 * oy + 1 : H - 1;
                float *yp = y + nc * OH * OW + (long)oy * OW;
                /* three output rows ahead, the input rows (from L3 or memory: the stem's output is larger than
                 * L2), and two ahead, the output row for writing: ResNet-50 at batch 1, 18.46 -> 18.30 ms */
                const float *ahead = x + nc * H * W + (long)(2 * oy + 5) * W;
                for (int j = 0; j < 3 * W; j += 16) __builtin_prefetch(ahead + j, 0, 3);
                for (int j = 0; j < OW; j += 16) __builtin_prefetch(yp + 2 * OW + j, 1, 3);
                for (int yy = y0; yy <= y1; yy++) hfold_3s2(x + nc * H * W + (long)yy * W, W, OW, h + (yy - y0) * OW);
                const float *h0 = h, *h1 = y1 > y0 ? h + OW : NULL, *h2 = y1 - y0 == 2 ? h + 2 * OW : NULL;
                int ox = 0;
#ifdef __AVX512F__
                for (; ox < OW; ox += 16) {
                    const __mmask16 k = lanes(OW - ox);
                    __m512 m = _mm512_maskz_loadu_ps(k, h0 + ox);
                    if (h1) m = pick16(m, _mm512_maskz_loadu_ps(k, h1 + ox));
                    if (h2) m = pick16(m, _mm512_maskz_loadu_ps(k, h2 + ox));
                    _mm512_mask_storeu_ps(yp + ox, k, m);
                }
#endif
                for (; ox < OW; ox++) {
                    float m = h0[ox];
                    if (h1) m = pick(m, h1[ox]);
                    if (h2) m = pick(m, h2[ox]);
                    yp[ox] = m;
                }
            }
    }
}

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

/* The argmax of the 3x3 window whose top-left cell is xp[0] (rows W apart),
 * folded in raster order as window_argmax does. */
static inline int argmax3x3(const float *xp, int W) {
    int arg = 0;
    float best = xp[0];
#pragma GCC unroll 3
    for (int i = 0; i < 3; i++)
#pragma GCC unroll 3
        for (int j = 0; j < 3; j++) {
            const float v = xp[i * W + j];
            const int take = v > best || v != v;
            best = take ? v : best;
            arg = take ? i * W + j : arg;
        }
    return arg;
}

/* ResNet's 3x3 / 2 pool with padding 1: whole windows unrolled, the border
 * outputs (windows over the padding) by the general loop. */
static inline int window_argmax_3x3s2p1(const float *xp, int H, int W, int oy, int ox) {
    const int y = 2 * oy - 1, x = 2 * ox - 1;
    if (y >= 0 && x >= 0 && y + 3 <= H && x + 3 <= W) return y * W + x + argmax3x3(xp + y * W + x, W);
    return window_argmax(xp, H, W, 3, 2, 1, oy, ox);
}

void at_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y) {
    int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    if (k == 2 && s == 2 && p == 0) {
        maxpool2x2_forward(x, (long)N * C, H, W, y);
        return;
    }
    if (k == 3 && s == 2 && p == 1) {
        maxpool3x3s2p1_forward(x, (long)N * C, H, W, y);
        return;
    }
#pragma omp parallel for schedule(static) if ((long)N * C * H * W > AT_PARALLEL_MIN_FLOATS)
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
    if (k == 2 && s == 2 && p == 0) {
        maxpool2x2_backward(x, dy, (long)N * C, H, W, dx);
        return;
    }
    const int r3 = k == 3 && s == 2 && p == 1;
#pragma omp parallel for schedule(static) if ((long)N * C * H * W > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        float *dxp = dx + nc * H * W;
        memset(dxp, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                dxp[r3 ? window_argmax_3x3s2p1(xp, H, W, oy, ox) : window_argmax(xp, H, W, k, s, p, oy, ox)] +=
                    dyp[oy * OW + ox];
    }
}

static inline int bin_start(int i, int in, int out) { return (int)((long)i * in / out); }
static inline int bin_end(int i, int in, int out) { return (int)(((long)(i + 1) * in + out - 1) / out); }

void at_adaptive_avgpool_forward(const float *x, int N, int C, int H, int W, int OH, int OW,
                                 float *y) {
#pragma omp parallel for schedule(static) if ((long)N * C * H * W > AT_PARALLEL_MIN_FLOATS)
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
#pragma omp parallel for schedule(static) if ((long)N * C * H * W > AT_PARALLEL_MIN_FLOATS)
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
#pragma omp parallel for schedule(static) if ((long)N * C * H * W > AT_PARALLEL_MIN_FLOATS)
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
#pragma omp parallel for schedule(static) if ((long)N * C * H * W > AT_PARALLEL_MIN_FLOATS)
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
