/* Direct convolution, output channels across the lanes (see conv_channels.h).
 *
 * A tile: 32 output channels by P <= 14 output pixels, 28 zmm accumulators
 * plus the two weight vectors and one broadcast, 31 of the 32 registers.
 * Each step k loads 2 vectors of weights and broadcasts P inputs for 2P
 * FMAs: 16 loads per 28 FMAs at P = 14. The pixels are P consecutive outputs
 * of one row (the row cut into equal parts of at most 14), or two rows of
 * Wo <= 7 pixels; a stride-1 1x1 conv without padding is one long row per
 * image. Each tile's shape (rows, pixels, stride) is a compile-time
 * constant of one of 42 instances, so every broadcast is a fixed offset.
 *
 * The outputs are transposed in registers (8 pixels by 16 channels at a
 * time) and stored row by row of y with the epilogue: bias, residual,
 * ReLU, the order of the separate passes. */
#include "cpu/conv_channels.h"

#include "cpu/thread_scratch.h"

/* Predictive commoning would carry the inputs one kx step reads for the next
 * through the stack (spilled scalars): the loads are cheaper. */
#pragma GCC optimize("no-predictive-commoning")

#include <omp.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__) && !defined(AT_CONV_PORTABLE)
#define AT_CHANNELS_AVX512 1
#include <immintrin.h>
#endif

#define CO 32          /* output channels per tile */
#define TILE_PIXELS 14 /* at most, per tile */
#define ROW_PAIR_MAX 7 /* rows this short go two to a tile */

/* Below this many multiply-adds a second thread costs more than it saves. */
#define PARALLEL_MIN_MACS (1L << 20)

int at_conv_channels_compiled(void) {
#ifdef AT_CHANNELS_AVX512
    return 1;
#else
    return 0;
#endif
}

/* Strides 1 and 2, and every kernel position of the first output inside
 * the padded input (the tiles read no further). */
static int shape_has_kernel(int H, int W, int kh, int kw, int stride, int pad) {
    return (stride == 1 || stride == 2) && H + 2 * pad >= kh && W + 2 * pad >= kw;
}

int at_conv_channels_rule(int C, int K, int kh, int kw, int stride, int pad, int N, int H, int W) {
    (void)N;
    if (!at_conv_channels_compiled() || !shape_has_kernel(H, W, kh, kw, stride, pad) || K < CO ||
        (long)C * kh * kw < AT_CONV_CHANNELS_MIN_STEPS)
        return 0;
    if (stride == 2)
        return (kh >= 3 && kw >= 3) || (kh == 1 && kw == 1 && (long)C * K <= AT_CONV_CHANNELS_MAX_PROJECTION_WEIGHTS);
    return stride == 1 && kh == 1 && kw == 1 && pad == 0 && C >= AT_CONV_CHANNELS_MIN_POINTWISE_C;
}

static long blocks_of(int K) { return (K + CO - 1) / CO; }

size_t at_conv_channels_weights_floats(int K, int C, int kh, int kw) {
    return (size_t)blocks_of(K) * C * kh * kw * CO;
}

void at_conv_channels_pack_weights(const float *w, int K, int C, int kh, int kw, float *dst) {
    const long steps = (long)C * kh * kw;
    for (long b = 0; b < blocks_of(K); b++)
        for (long k = 0; k < steps; k++)
            for (int j = 0; j < CO; j++) {
                const long o = b * CO + j;
                *dst++ = o < K ? w[o * steps + k] : 0.0f;
            }
}


#ifdef AT_CHANNELS_AVX512
typedef struct {
    const float *x; /* the input, padded when pad > 0 */
    long img, plane, row; /* its strides: image, channel plane, row */
    int C, kh, kw;
    const float *w; /* packed */
    const float *b;
    int K;
    float *y;
    long HoWo, Wo; /* the output's plane and row */
    const float *residual;
    int relu;
    long pf_steps; /* steps of a tile that also prefetch the weights at its pf (2 lines each) */
} job;

/* r[0..7] (16 lanes each) to out[0..15] (8 floats each): out[l][j] = r[j][l]. */
static inline __attribute__((always_inline)) void transpose8x16(const __m512 r[8], __m256 out[16]) {
    __m512 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);     /* r0[0] r1[0] r0[1] r1[1] per 128 bits */
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]); /* r0[2] r1[2] r0[3] r1[3] */
    }
    for (int i = 0; i < 2; i++) { /* u[4i + e]: r[4i..4i+3], element e of each 128 bits */
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int e = 0; e < 4; e++) {
        const __m512 lo = _mm512_shuffle_f32x4(u[e], u[4 + e], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 hi = _mm512_shuffle_f32x4(u[e], u[4 + e], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512 a = _mm512_shuffle_f32x4(lo, lo, _MM_SHUFFLE(3, 1, 2, 0));
        const __m512 b = _mm512_shuffle_f32x4(hi, hi, _MM_SHUFFLE(3, 1, 2, 0));
        out[e] = _mm512_castps512_ps256(a), out[4 + e] = _mm512_extractf32x8_ps(a, 1);
        out[8 + e] = _mm512_castps512_ps256(b), out[12 + e] = _mm512_extractf32x8_ps(b, 1);
    }
}

/* r[0..15] to out[0..15], out[l][p] = r[p][l]: four rounds of 16 shuffles. */
static inline __attribute__((always_inline)) void transpose16x16(const __m512 r[16], __m512 out[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int j = 0; j < 4; j++) { /* u[4j + e], 128-bit lane q: pixels 4j..4j+3 of channel 4q + e */
        u[4 * j + 0] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * j + 1] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * j + 2] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * j + 3] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int e = 0; e < 4; e++) {
        const __m512 v = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88), w = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xdd);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88);
        const __m512 w2 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xdd);
        out[e] = _mm512_shuffle_f32x4(v, v2, 0x88), out[8 + e] = _mm512_shuffle_f32x4(v, v2, 0xdd);
        out[4 + e] = _mm512_shuffle_f32x4(w, w2, 0x88), out[12 + e] = _mm512_shuffle_f32x4(w, w2, 0xdd);
    }
}

/* The bias of output channels c0 .. c0+lanes-1 (0 past K, or without one). */
static inline __m512 half_bias(const job *J, int c0, int lanes) {
    return J->b ? _mm512_maskz_loadu_ps((__mmask16)((1u << lanes) - 1), J->b + c0) : _mm512_setzero_ps();
}

/* All n (9..14) pixels of a one-row tile, the first at y offset pix: one
 * store of n floats per output channel. */
static inline __attribute__((always_inline)) void store_row(const job *J, const __m512 a[2][TILE_PIXELS], int n,
                                                            long pix, int co) {
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    for (int h = 0; h < 2 && co + 16 * h < J->K; h++) {
        const int c0 = co + 16 * h, lanes = J->K - c0 < 16 ? J->K - c0 : 16;
        const __m512 bias = half_bias(J, c0, lanes);
        __m512 r[16], out[16];
#pragma GCC unroll 16
        for (int p = 0; p < 16; p++)
            r[p] = p < n ? _mm512_add_ps(a[h][p < TILE_PIXELS ? p : 0], bias) : _mm512_setzero_ps();
        transpose16x16(r, out);
        for (int l = 0; l < lanes; l++) {
            const long o = (long)(c0 + l) * J->HoWo + pix;
            __m512 v = out[l];
            if (J->residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, J->residual + o));
            if (J->relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); /* NaN and -0 give +0, as the ReLU pass */
            _mm512_mask_storeu_ps(J->y + o, m, v);
        }
    }
}

/* Pixels t0.. t0+n-1 of the tile's sums a (per half h of its 32 output
 * channels; n <= 8), the first at y offset pix, channels from co on. */
static inline __attribute__((always_inline)) void store_group(const job *J, const __m512 a[2][TILE_PIXELS],
                                                              int t0, int n, long pix, int co) {
    const __mmask8 m = (__mmask8)((1u << n) - 1);
    for (int h = 0; h < 2 && co + 16 * h < J->K; h++) {
        const int c0 = co + 16 * h, lanes = J->K - c0 < 16 ? J->K - c0 : 16;
        const __m512 bias = half_bias(J, c0, lanes);
        __m512 r[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) r[j] = j < n ? _mm512_add_ps(a[h][t0 + j], bias) : _mm512_setzero_ps();
        __m256 out[16];
        transpose8x16(r, out);
        for (int l = 0; l < lanes; l++) {
            const long o = (long)(c0 + l) * J->HoWo + pix;
            __m256 v = out[l];
            if (J->residual) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(m, J->residual + o));
            if (J->relu) v = _mm256_max_ps(v, _mm256_setzero_ps()); /* NaN and -0 give +0, as the ReLU pass */
            _mm256_mask_storeu_ps(J->y + o, m, v);
        }
    }
}

/* The lines a tile will store (R rows of Q pixels from y offset pix,
 * channels from co on), fetched for writing while its sums run, so that the
 * stores wait for none (ResNet-50 at batch 1: 18.92 -> 18.71 ms). */
static inline __attribute__((always_inline)) void prefetch_outputs(const job *J, const int R, const int Q, long pix,
                                                                   int co) {
    const int last = co + CO < J->K ? co + CO : J->K;
    for (int r = 0; r < R; r++)
        for (int c = co; c < last; c++) {
            const float *p = J->y + (long)c * J->HoWo + pix + (long)r * J->Wo;
            __builtin_prefetch(p, 1, 3);
            __builtin_prefetch(p + Q - 1, 1, 3);
        }
}

/* One tile: R rows (1 or 2) of Q pixels, stride S; x0 its first input, w
 * its channel block's weights, y offset pix of its first pixel, channels
 * from co on. Pixel t of the tile: t = q in row 0, t = ROW_PAIR_MAX + q in
 * row 1. */
static inline __attribute__((always_inline)) void tile(const int R, const int Q, const int S, const job *J,
                                                       const float *x0, const float *w, const float *pf, long pix,
                                                       int co) {
    __m512 a[2][TILE_PIXELS];
#pragma GCC unroll 14
    for (int t = 0; t < TILE_PIXELS; t++) a[0][t] = a[1][t] = _mm512_setzero_ps();
    prefetch_outputs(J, R, Q, pix, co);
    const float *x1 = x0 + S * J->row;
    long pf_left = pf ? J->pf_steps : 0;
    for (int c = 0; c < J->C; c++, x0 += J->plane, x1 += J->plane) {
        const float *r0 = x0, *r1 = x1;
        for (int ky = 0; ky < J->kh; ky++, r0 += J->row, r1 += J->row)
            for (int kx = 0; kx < J->kw; kx++, w += CO) {
                const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
                if (pf_left > 0) { /* the next block's weights, from memory into L2 while these run */
                    _mm_prefetch((const char *)pf, _MM_HINT_T1);
                    _mm_prefetch((const char *)(pf + 16), _MM_HINT_T1);
                    pf += CO, pf_left--;
                }
#pragma GCC unroll 14
                for (int q = 0; q < Q; q++) {
                    const __m512 v = _mm512_set1_ps(r0[kx + q * S]);
                    a[0][q] = _mm512_fmadd_ps(w0, v, a[0][q]);
                    a[1][q] = _mm512_fmadd_ps(w1, v, a[1][q]);
                }
                if (R == 2) {
#pragma GCC unroll 7
                    for (int q = 0; q < Q; q++) {
                        const __m512 v = _mm512_set1_ps(r1[kx + q * S]);
                        a[0][ROW_PAIR_MAX + q] = _mm512_fmadd_ps(w0, v, a[0][ROW_PAIR_MAX + q]);
                        a[1][ROW_PAIR_MAX + q] = _mm512_fmadd_ps(w1, v, a[1][ROW_PAIR_MAX + q]);
                    }
                }
            }
    }
    if (R == 2) {
        store_group(J, a, 0, Q, pix, co);
        store_group(J, a, ROW_PAIR_MAX, Q, pix + J->Wo, co);
    } else {
        if (Q > 8) store_row(J, a, Q, pix, co);
        else store_group(J, a, 0, Q, pix, co);
    }
}

typedef void (*tile_fn)(const job *, const float *, const float *, const float *, long, int);

#define TILE_FN(R, Q, S)                                                                          \
    static void tile_##R##_##Q##_##S(const job *J, const float *x0, const float *w, const float *pf, long pix, \
                                     int co) {                                                            \
        tile(R, Q, S, J, x0, w, pf, pix, co);                                                             \
    }
#define TILE_FNS_7(R, S)                                                                 \
    TILE_FN(R, 1, S) TILE_FN(R, 2, S) TILE_FN(R, 3, S) TILE_FN(R, 4, S) TILE_FN(R, 5, S) \
    TILE_FN(R, 6, S) TILE_FN(R, 7, S)
#define TILE_FNS_14(S)                                                                                    \
    TILE_FNS_7(1, S) TILE_FN(1, 8, S) TILE_FN(1, 9, S) TILE_FN(1, 10, S) TILE_FN(1, 11, S) TILE_FN(1, 12, S) \
    TILE_FN(1, 13, S) TILE_FN(1, 14, S)
TILE_FNS_14(1)
TILE_FNS_14(2)
TILE_FNS_7(2, 1)
TILE_FNS_7(2, 2)

#define ROW7(R, S) tile_##R##_1_##S, tile_##R##_2_##S, tile_##R##_3_##S, tile_##R##_4_##S, tile_##R##_5_##S, \
                   tile_##R##_6_##S, tile_##R##_7_##S
#define ROW14(S) ROW7(1, S), tile_1_8_##S, tile_1_9_##S, tile_1_10_##S, tile_1_11_##S, tile_1_12_##S, \
                 tile_1_13_##S, tile_1_14_##S
/* [stride - 1][rows - 1][pixels per row - 1] */
static const tile_fn tiles[2][2][TILE_PIXELS] = {{{ROW14(1)}, {ROW7(2, 1)}}, {{ROW14(2)}, {ROW7(2, 2)}}};

/* The tiles of one image: `pairs` (rows of <= ROW_PAIR_MAX pixels two to a
 * tile, Ho/2 rounded up of them) or Ho rows of `parts` tiles each. */
typedef struct {
    int pairs, parts, Ho, Wo, stride;
    long per_image;
} tiling;

static tiling tiling_of(int Ho, int Wo, int stride) {
    tiling t = {Wo <= ROW_PAIR_MAX, (Wo + TILE_PIXELS - 1) / TILE_PIXELS, Ho, Wo, stride, 0};
    t.per_image = t.pairs ? (Ho + 1) / 2 : (long)Ho * t.parts;
    return t;
}

/* Tile i of image img for channel block cb. xi holds the image's padded
 * rows from pr0 on (J->plane, J->row its strides); pf: weights to prefetch
 * meanwhile (pf_steps steps' worth), or NULL. */
static void run_tile(const job *J, const tiling *T, const float *xi, int pr0, long img, long cb, long i,
                     const float *pf, long pf_steps) {
    const int S = T->stride;
    const float *w = J->w + cb * CO * ((long)J->C * J->kh * J->kw);
    const long yoff = img * J->K * J->HoWo;
    job Ji = *J;
    Ji.y = J->y + yoff;
    Ji.residual = J->residual ? J->residual + yoff : NULL;
    Ji.pf_steps = pf_steps;
    if (T->pairs) {
        const int oy = (int)(2 * i), R = oy + 1 < T->Ho ? 2 : 1;
        tiles[S - 1][R - 1][T->Wo - 1](&Ji, xi + (long)(oy * S - pr0) * J->row, w, pf, (long)oy * T->Wo,
                                       (int)(cb * CO));
        return;
    }
    const int oy = (int)(i / T->parts), part = (int)(i % T->parts);
    const int q0 = (int)((long)part * T->Wo / T->parts), q1 = (int)((long)(part + 1) * T->Wo / T->parts);
    tiles[S - 1][0][q1 - q0 - 1](&Ji, xi + (long)(oy * S - pr0) * J->row + (long)q0 * S, w, pf,
                                 (long)oy * T->Wo + q0, (int)(cb * CO));
}

/* Output rows of tiles [i0, i1): first and last. */
static void tile_rows(const tiling *T, long i0, long i1, int *oy0, int *oy1) {
    if (T->pairs) {
        *oy0 = (int)(2 * i0), *oy1 = (int)(2 * i1 - 1) < T->Ho - 1 ? (int)(2 * i1 - 1) : T->Ho - 1;
    } else {
        *oy0 = (int)(i0 / T->parts), *oy1 = (int)((i1 - 1) / T->parts);
    }
}

/* Rows [pr0, pr1) of image img's padded planes, every channel, to dst
 * (plane stride (pr1 - pr0) * Wp): zeros outside the image. */
static void pad_rows(const float *x, int C, int H, int W, int pad, int pr0, int pr1, float *dst) {
    const int Wp = W + 2 * pad;
    for (int c = 0; c < C; c++)
        for (int pr = pr0; pr < pr1; pr++, dst += Wp) {
            const int iy = pr - pad;
            if (iy < 0 || iy >= H) {
                memset(dst, 0, sizeof *dst * Wp);
                continue;
            }
            memset(dst, 0, sizeof *dst * pad);
            memcpy(dst + pad, x + ((long)c * H + iy) * W, sizeof *dst * W);
            memset(dst + pad + W, 0, sizeof *dst * pad);
        }
}

/* How the threads share the work:
 *   by channel blocks: runs of (image, block, tile), each thread reading a
 *     block's weights once (they stay in L2 over its tiles) and the whole
 *     input, zero-padded into a copy of the thread's own when that copy is
 *     small (own_padded_copy), else into one copy for all threads;
 *   by pixels, when all the weights fit in L2 next to the input (the stem,
 *     ResNet's 128-channel 3x3 / 2): runs of (image, tile), every block per
 *     band of tiles, each thread padding the input rows of its own bands
 *     (a band of at most BAND_FLOATS) into its own scratch (cpu/
 *     thread_scratch.h): no thread reads what another wrote. With no memory
 *     for it a thread uses its slice of the workspace instead. */
#define PIXEL_SPLIT_MAX_WEIGHT_FLOATS (160L * 1024)
#define BAND_FLOATS (64L * 1024)

static int split_by_pixels(int K, int C, int kh, int kw) {
    return (long)at_conv_channels_weights_floats(K, C, kh, kw) <= PIXEL_SPLIT_MAX_WEIGHT_FLOATS;
}

/* Output rows per band, and the padded rows a band holds at most. */
static int band_rows(int C, int W, int kh, int stride, int pad) {
    const long per_row = (long)C * (W + 2 * pad) * stride;
    const long rows = (BAND_FLOATS - (long)C * (W + 2 * pad) * kh) / per_row;
    return rows > 2 ? (int)rows : 2;
}
static long band_floats(int C, int H, int W, int kh, int stride, int pad) {
    const long pr = (long)(band_rows(C, W, kh, stride, pad) - 1) * stride + kh, Hp = H + 2 * pad;
    return (long)C * (pr < Hp ? pr : Hp) * (W + 2 * pad);
}

/* The block split with padding: each thread pads the whole input into its
 * own scratch when that copy is small (ResNet-50's 3x3 / 2 convs of layer3
 * and layer4 at batch 1, 0.9 and 0.5 MB), instead of one copy written half
 * by each core and read whole by both (batch 1: 18.48 -> 18.41 ms and 18.58
 * -> 18.36, interleaved medians). */
#define OWN_COPY_MAX_FLOATS (512L * 1024)
static int own_padded_copy(int N, int C, int H, int W, int pad) {
    return (long)N * C * (H + 2 * pad) * (W + 2 * pad) <= OWN_COPY_MAX_FLOATS;
}

static int threads_for(double macs) {
    return omp_in_parallel() || macs < PARALLEL_MIN_MACS ? 1 : omp_get_max_threads();
}

static void by_blocks(const job *J, const tiling *T, long N, long cbs) {
    const long units = N * cbs * T->per_image;
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long u0 = units * t / nt, u1 = units * (t + 1) / nt, steps = (long)J->C * J->kh * J->kw;
    for (long u = u0; u < u1; u++) {
        const long img = u / (cbs * T->per_image), r = u % (cbs * T->per_image), cb = r / T->per_image;
        const long i = r % T->per_image;
        /* the next block's weights to L2, a slice per tile of this one (the
         * thread's first tile: the slices of the tiles before it too) */
        const long n = T->per_image, s0 = u == u0 ? 0 : i * steps / n, s1 = (i + 1) * steps / n;
        const float *pf = u + n < u1 ? J->w + ((cb + 1) % cbs * steps + s0) * CO : NULL;
        run_tile(J, T, J->x + img * J->img, 0, img, cb, i, pf, s1 - s0);
    }
}

static void by_pixels(const job *J, const tiling *T, long N, long cbs, const float *x, int H, int W, int pad,
                      float *band) {
    const long units = N * T->per_image;
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const long u1 = units * (t + 1) / nt;
    const int rows = band_rows(J->C, W, J->kh, T->stride, pad);
    job Jb = *J;
    for (long u = units * t / nt; u < u1;) {
        const long img = u / T->per_image, i0 = u % T->per_image;
        long i1 = T->per_image - i0 < u1 - u ? T->per_image : i0 + (u1 - u);
        /* a band: at most `rows` output rows (rows >= 2) from i0's on */
        const long band_end = T->pairs ? i0 + rows / 2 : (i0 / T->parts + rows) * T->parts;
        if (pad > 0 && i1 > band_end) i1 = band_end;
        const float *xi = J->x + img * J->img;
        int pr0 = 0;
        if (pad > 0) {
            int oy0, oy1;
            tile_rows(T, i0, i1, &oy0, &oy1);
            pr0 = oy0 * T->stride;
            const int pr1 = oy1 * T->stride + J->kh;
            pad_rows(x + img * J->C * (long)H * W, J->C, H, W, pad, pr0, pr1, band);
            Jb.plane = (long)(pr1 - pr0) * J->row;
            xi = band;
        }
        for (long cb = 0; cb < cbs; cb++)
            for (long i = i0; i < i1; i++) run_tile(&Jb, T, xi, pr0, img, cb, i, NULL, 0);
        u += i1 - i0;
    }
}
#endif

size_t at_conv_channels_workspace_floats(int N, int C, int H, int W, int K, int kh, int kw, int stride, int pad) {
#ifdef AT_CHANNELS_AVX512
    if (pad <= 0) return 0;
    if (!split_by_pixels(K, C, kh, kw)) /* one padded copy, or the fallback slices of one per thread */
        return (size_t)(own_padded_copy(N, C, H, W, pad) ? omp_get_max_threads() : 1) * N * C * (H + 2 * pad) *
               (W + 2 * pad);
    return (size_t)omp_get_max_threads() * band_floats(C, H, W, kh, stride, pad); /* the fallback slices */
#else
    (void)N, (void)C, (void)H, (void)W, (void)K, (void)kh, (void)kw, (void)stride, (void)pad;
    return 0;
#endif
}

int at_conv_channels_forward(const float *x, int N, int C, int H, int W, const float *packed, const float *b,
                             int K, int kh, int kw, int stride, int pad, float *y, float *workspace,
                             const at_conv_epilogue *e) {
#ifdef AT_CHANNELS_AVX512
    if (!shape_has_kernel(H, W, kh, kw, stride, pad)) return -1;
    const int Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    if (N <= 0 || K <= 0) return 0;
    const int Hp = H + 2 * pad, Wp = W + 2 * pad, pixels = split_by_pixels(K, C, kh, kw);
    /* tiles read a whole padded copy (the block split), else x itself or the
     * per-thread bands (by_pixels sets their plane) */
    const int padded = pad > 0 && !pixels;
    const long plane = padded ? (long)Hp * Wp : (long)H * W;
    job J = {padded ? workspace : x, C * plane, plane, pad > 0 ? Wp : W, C, kh, kw, packed, b, K, y, (long)Ho * Wo,
             Wo, e ? e->residual : NULL, e ? e->relu : 0, 0};
    tiling T = tiling_of(Ho, Wo, stride);
    if (kh == 1 && kw == 1 && stride == 1 && pad == 0) T = tiling_of(1, Ho * Wo, 1); /* one row per image */
    const long cbs = blocks_of(K);
    const int threads = threads_for((double)N * K * Ho * Wo * C * kh * kw);
    const long band = pixels && pad > 0 ? band_floats(C, H, W, kh, stride, pad) : 0;
    const long copy = (long)N * C * Hp * Wp;
    const int own_copy = own_padded_copy(N, C, H, W, pad);
#pragma omp parallel num_threads(threads)
    {
        if (pixels) {
            float *own = band ? at_thread_scratch(AT_SCRATCH_CONV_BANDS, (size_t)band) : NULL;
            by_pixels(&J, &T, N, cbs, x, H, W, pad, own ? own : workspace + band * omp_get_thread_num());
        } else {
            /* xp[img][c] = x[img][c] inside a border of pad zeros: a copy of
             * the thread's own when small, else one for all threads */
            job Jt = J;
            if (padded && own_copy) {
                float *own = at_thread_scratch(AT_SCRATCH_CONV_BANDS, (size_t)copy);
                Jt.x = own ? own : workspace + copy * omp_get_thread_num();
                pad_rows(x, N * C, H, W, pad, 0, Hp, (float *)Jt.x); /* planes one after another */
            } else if (padded) {
#pragma omp for schedule(static)
                for (long p = 0; p < (long)N * C; p++)
                    pad_rows(x + p * H * W, 1, H, W, pad, 0, Hp, workspace + p * Hp * Wp);
            }
            by_blocks(&Jt, &T, N, cbs);
        }
    }
    return 0;
#else
    (void)x, (void)N, (void)C, (void)H, (void)W, (void)packed, (void)b, (void)K, (void)kh, (void)kw;
    (void)stride, (void)pad, (void)y, (void)workspace, (void)e;
    return -1;
#endif
}
