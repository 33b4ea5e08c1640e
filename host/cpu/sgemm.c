/* Packed, cache-blocked SGEMM (see sgemm.h). Loop nest, after GotoBLAS and
 * BLIS ("Anatomy of High-Performance Matrix Multiplication", Goto & van de
 * Geijn 2008):
 *
 *   for jc over N in steps of nc           B panel kc x nc   -> L2 / L3
 *     for pc over K in steps of kc         (fixed blocks: the summation order)
 *       pack B[pc.., jc..]
 *       for ic over M in steps of MC       A block MC x kc   -> L2
 *         pack A[ic.., pc..]
 *         for jr over nc in steps of NR    B micro-panel kc x NR -> L1
 *           for ir over MC in steps of MR  C micro-tile MR x NR in registers
 *             micro-kernel
 *
 * Block sizes for the target (AMD Zen 3 to 5: 32-48 KiB L1d, 0.5-2 MiB L2
 * per core, two 256-bit (Zen 3) or 512-bit (Zen 5) FMA pipes):
 *   AVX-512, MR x NR = 16 x 16: 16 zmm accumulators, one load of B and 16
 *     FMAs with A broadcast from memory per k (twice the AVX2 kernel's rate
 *     on the project's Zen 5 machine, as onnxruntime's MLAS kernels run);
 *   AVX2, MR x NR = 6 x 16: 12 ymm accumulators + 2 for B + 1 broadcast of A =
 *     15 of the 16 ymm registers; 12 FMAs per 8 loads keeps both FMA pipes busy.
 *   KC = 256: a B micro-panel (KC*NR*4 = 16 KiB) stays in half of L1 while
 *     the A micro-panels stream past it.
 *   MC = 144: an A block (MC*KC*4 = 144 KiB) sits in L2 next to the B panel
 *     being read.
 *   nc: when one A block covers all of M (small M, e.g. the 64-channel VGG
 *     layers) the B panel is used once right after packing, so it is kept
 *     small enough to stay in L2 (NC_L2 * KC * 4 = 256 KiB), and A is packed
 *     once for all column blocks; otherwise the B panel is reused by every A
 *     block and is sized for L3 (NC_L3 * KC * 4 = 4 MiB).
 *   K is cut into equal blocks of at most KC, a function of K alone: that
 *     fixes every element's summation order, so results do not depend on the
 *     thread count or on where a tile falls.
 *
 * Threads (never nested: inside a parallel region everything runs in the
 * calling thread). An estimate of each thread's padded multiply-adds plus
 * packing picks how to split C:
 *   - by columns, when M is small: each thread packs all of A once and takes
 *     NC_L2-column blocks from a dynamic schedule (B is packed per block
 *     anyway), or a static share when blocks would be too few;
 *   - by rows, when M is large and N small: each thread packs B privately
 *     and multiplies its own rows by it. (A B packed once and shared was
 *     slower on the 2-core machine: the second core then reads half of its
 *     panels from the other core's cache, e.g. 0.45 against 0.29 ms for
 *     ResNet-50's 256 -> 64 1x1 conv at 56x56.)
 * No thread waits for another, which keeps a two-core machine busy even when
 * other jobs take time slices from one core. */
#include "cpu/sgemm.h"

#include "cpu/thread_scratch.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && !defined(AT_SGEMM_PORTABLE)
#define AT_SGEMM_AVX2 1
#include <immintrin.h>
#if defined(__AVX512F__)
#define AT_SGEMM_AVX512 1
#endif
#endif

#define MR AT_SGEMM_MR
#define NR AT_SGEMM_NR
#define KC 256
#define MC 144 /* multiple of MR */
#define NC_L2 256
#define NC_L3 4080 /* multiple of NR */

/* Largest A packed whole (floats): 4 MiB, e.g. 144 rows x K = 7000. */
#define A_WHOLE_MAX_FLOATS (1L << 20)

/* Below this many multiply-adds a second thread costs more than it saves. */
#define PARALLEL_MIN_MACS (1L << 20)

static int imin(int a, int b) { return a < b ? a : b; }
static int round_up(int x, int m) { return (x + m - 1) / m * m; }

/* ---- micro-kernels: c[MR][NR] (row stride ldc) = alpha*a*b + beta*c + bias.
 * a: kc x MR packed, b: kc x NR packed. beta == 0 does not read c. bias is
 * MR floats or NULL. Both kernels round each element the same way whatever
 * the tile it falls in. ---- */

#ifdef AT_SGEMM_AVX512
/* 16 x 16: one zmm accumulator per row (16 of the 32 registers), each k one
 * load of B and 16 FMAs with A broadcast from memory; the same FMA chain per
 * element as the AVX2 kernel, so the same bits. `rows` (16 or 8, a constant
 * once inlined) rows are computed, the first `store` of them read and
 * written: tiles of 8 rows or fewer (the 8-channel convs of small nets) take
 * half the FMAs, and no tile with all its columns goes through a copy. */
/* The epilogue of a tile written by the last K block, fused into its stores:
 * the residual (r: at the tile's c, r2: at its c2, or for the paired kernel
 * at its second tile; NULL: none) added, then
 * the ReLU; the arithmetic of add_relu_span, so the bits of finish_block. */
typedef struct {
    const float *r, *r2;
    long ldc; /* of the residual, as C's */
    int relu;
} tile_epilogue;

/* One row of a tile from its accumulator: alpha * acc (+ beta * c) (+ bias),
 * then the epilogue e (NULL: none) with the row's residual r / r2, lanes cols
 * to c and lanes cols2 to c2 (NULL: none). */
static inline __attribute__((always_inline)) void store_row(__m512 acc, float *c, __mmask16 cols, float *c2,
                                                            __mmask16 cols2, float alpha, float beta,
                                                            const float *bias, const tile_epilogue *e,
                                                            const float *r, const float *r2) {
    __m512 v = _mm512_mul_ps(_mm512_set1_ps(alpha), acc);
    if (beta != 0.0f) {
        __m512 old = _mm512_maskz_loadu_ps(cols, c);
        if (c2) old = _mm512_mask_loadu_ps(old, cols2, c2);
        v = _mm512_fmadd_ps(_mm512_set1_ps(beta), old, v);
    }
    if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(*bias));
    if (e) {
        if (r) {
            __m512 res = _mm512_maskz_loadu_ps(cols, r);
            if (c2) res = _mm512_mask_loadu_ps(res, cols2, r2);
            v = _mm512_add_ps(v, res);
        }
        if (e->relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); /* NaN and -0 give the second operand, +0 */
    }
    _mm512_mask_storeu_ps(c, cols, v);
    if (c2) _mm512_mask_storeu_ps(c2, cols2, v);
}

static inline __attribute__((always_inline)) void kernel_rows(int rows, int store, __mmask16 cols, int kc,
                                                              const float *restrict a, const float *restrict b,
                                                              float *c, float *c2, __mmask16 cols2, long ldc,
                                                              float alpha, float beta, const float *bias,
                                                              const tile_epilogue *e) {
    __m512 acc[MR];
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) acc[r] = _mm512_setzero_ps();
    const long ahead = (long)kc * MR; /* the next row panel, line by line: weights streamed from memory */
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        _mm_prefetch((const char *)(a + ahead), _MM_HINT_T0);
        if (e && e->r && k < rows) /* the next row tile's residual */
            _mm_prefetch((const char *)(e->r + (MR + k) * e->ldc), _MM_HINT_T0);
        __m512 bv = _mm512_load_ps(b);
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), bv, acc[r]);
        a += MR;
        b += NR;
    }
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        if (r >= store) break;
        const float *rr = e && e->r ? e->r + r * e->ldc : NULL, *rr2 = e && e->r2 ? e->r2 + r * e->ldc : NULL;
        store_row(acc[r], c + r * ldc, cols, c2 ? c2 + r * ldc : NULL, cols2, alpha, beta, bias ? bias + r : NULL, e,
                  rr, rr2);
    }
}

/* The first mr rows of a tile whose lanes `cols` go to c and lanes `cols2`
 * to c2 (NULL: none), in place by masked loads and stores: a short tile
 * inside one segment (cols its nr columns), or one whose columns run across
 * a segment boundary (the pixels of two images at 14x14 or 7x7: lanes
 * [0, split) at c, the rest the next segment's first columns, at c2 +
 * lane), where edge_tile would copy the tile twice; the same bits. */
#define AT_SGEMM_SHORT_TILES 1
static void micro_kernel_masked(int mr, int kc, const float *restrict a, const float *restrict b, float *c,
                                __mmask16 cols, float *c2, __mmask16 cols2, long ldc, float alpha, float beta,
                                const float *bias, const tile_epilogue *e) {
    if (mr <= 8) kernel_rows(8, mr, cols, kc, a, b, c, c2, cols2, ldc, alpha, beta, bias, e);
    else kernel_rows(MR, mr, cols, kc, a, b, c, c2, cols2, ldc, alpha, beta, bias, e);
}

static void micro_kernel(int kc, const float *restrict a, const float *restrict b, float *c,
                         long ldc, float alpha, float beta, const float *bias) {
    kernel_rows(MR, MR, 0xffff, kc, a, b, c, NULL, 0, ldc, alpha, beta, bias, NULL);
}

/* micro_kernel with the epilogue e (its r at c) in its stores. */
static void micro_kernel_fused(int kc, const float *restrict a, const float *restrict b, float *c, long ldc,
                               float alpha, float beta, const float *bias, const tile_epilogue *e) {
    kernel_rows(MR, MR, 0xffff, kc, a, b, c, NULL, 0, ldc, alpha, beta, bias, e);
}

/* Two neighbouring column panels (b1 = the next packed panel, c1 its tile)
 * by halves of 8 rows: 16 accumulators fed by 2 loads of B and 8 broadcasts
 * per k, where micro_kernel needs 1 + 16 loads for its 16 FMAs (on Zen 5
 * 97 % of the FMA peak with the operands in L1 against 91 %). Every
 * element gets micro_kernel's FMA chain and epilogue: the same bits. */
#define AT_SGEMM_PAIRED_PANELS 1
static void micro_kernel_pair(int kc, const float *restrict a, const float *restrict b0, const float *restrict b1,
                              float *c0, float *c1, long ldc, float alpha, float beta, const float *bias,
                              const tile_epilogue *e) {
    for (int h = 0; h < MR; h += 8) {
        __m512 acc0[8], acc1[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
        const float *ak = a + h;
#pragma GCC unroll 2
        for (int k = 0; k < kc; k++) {
            if (h == 0) _mm_prefetch((const char *)(ak + (long)kc * MR), _MM_HINT_T0); /* the next row panel */
            if (h == 0 && e && e->r && k < MR) { /* the next row tile's residual */
                _mm_prefetch((const char *)(e->r + (MR + k) * e->ldc), _MM_HINT_T0);
                _mm_prefetch((const char *)(e->r2 + (MR + k) * e->ldc), _MM_HINT_T0);
            }
            const __m512 u = _mm512_load_ps(b0 + (long)k * NR), v = _mm512_load_ps(b1 + (long)k * NR);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                const __m512 ar = _mm512_set1_ps(ak[r]);
                acc0[r] = _mm512_fmadd_ps(ar, u, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(ar, v, acc1[r]);
            }
            ak += MR;
        }
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            const float *br = bias ? bias + h + r : NULL;
            const float *r0 = e && e->r ? e->r + (h + r) * e->ldc : NULL;
            const float *r1 = e && e->r2 ? e->r2 + (h + r) * e->ldc : NULL;
            store_row(acc0[r], c0 + (h + r) * ldc, 0xffff, NULL, 0, alpha, beta, br, e, r0, NULL);
            store_row(acc1[r], c1 + (h + r) * ldc, 0xffff, NULL, 0, alpha, beta, br, e, r1, NULL);
        }
    }
}

/* Tiles of at most NARROW_COLS columns (a map's last pixels: 49 = 3 * 16 + 1
 * at 7x7, 196 = 12 * 16 + 4 at 14x14) the other way round: a zmm holds 16
 * rows of one column, so a k costs nr FMAs per row panel instead of 16, and
 * P <= 4 row panels at once keep P * nr FMA chains in flight. Per element
 * the same chain of FMAs (the product commutes) and the same epilogue as
 * kernel_rows: the same bits. C is reached by gathers and scatters of rows
 * ldc apart. */
#define NARROW_COLS 4
static inline __attribute__((always_inline)) void narrow_panels(int P, int nr, int kc, const float *restrict a,
                                                                long a_stride, const float *restrict b, float *c,
                                                                long ldc, int rows_last, float alpha, float beta,
                                                                const float *bias) {
    __m512 acc[4][NARROW_COLS];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) acc[p][j] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 bj[NARROW_COLS];
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) bj[j] = _mm512_set1_ps(b[(long)k * NR + j]);
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) {
            const __m512 av = _mm512_loadu_ps(a + p * a_stride + (long)k * MR); /* packed A may be unaligned */
#pragma GCC unroll 4
            for (int j = 0; j < nr; j++) acc[p][j] = _mm512_fmadd_ps(av, bj[j], acc[p][j]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)ldc));
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) {
        const __mmask16 rows = p == P - 1 ? (__mmask16)((1u << rows_last) - 1) : (__mmask16)0xffff;
        float *cp = c + (long)p * MR * ldc;
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(rows, bias + p * MR) : _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int j = 0; j < nr; j++) {
            __m512 v = _mm512_mul_ps(va, acc[p][j]);
            if (beta != 0.0f)
                v = _mm512_fmadd_ps(vb, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), rows, idx, cp + j, 4), v);
            if (bias) v = _mm512_add_ps(v, bv);
            _mm512_mask_i32scatter_ps(cp + j, rows, idx, v, 4);
        }
    }
}

#define NARROW_CASE(P)                                                                                           \
    case P:                                                                                                      \
        switch (nr) {                                                                                            \
        case 1: narrow_panels(P, 1, kc, a, a_stride, b, c, ldc, rows_last, alpha, beta, bias); break;             \
        case 2: narrow_panels(P, 2, kc, a, a_stride, b, c, ldc, rows_last, alpha, beta, bias); break;             \
        case 3: narrow_panels(P, 3, kc, a, a_stride, b, c, ldc, rows_last, alpha, beta, bias); break;             \
        default: narrow_panels(P, 4, kc, a, a_stride, b, c, ldc, rows_last, alpha, beta, bias); break;            \
        }                                                                                                        \
        break;

/* Rows [0, mc) of a narrow tile (nr <= NARROW_COLS columns at c), its row
 * panels packed kc * MR floats apart from a on. */
static void micro_kernel_narrow(int mc, int nr, int kc, const float *a, const float *b, float *c, long ldc, float alpha,
                                float beta, const float *bias) {
    const long a_stride = (long)kc * MR;
    for (int ir = 0; ir < mc; ir += 4 * MR, a += 4 * a_stride, c += 4L * MR * ldc, bias = bias ? bias + 4 * MR : NULL) {
        const int left = mc - ir, P = left >= 4 * MR ? 4 : (left + MR - 1) / MR;
        const int rows_last = left - (P - 1) * MR >= MR ? MR : left - (P - 1) * MR;
        switch (P) {
            NARROW_CASE(1)
            NARROW_CASE(2)
            NARROW_CASE(3)
            NARROW_CASE(4)
        }
    }
}
#undef NARROW_CASE
const char *at_sgemm_kernel_name(void) { return "avx512 16x16"; }
#elif defined(AT_SGEMM_AVX2)
static void micro_kernel(int kc, const float *restrict a, const float *restrict b, float *c,
                         long ldc, float alpha, float beta, const float *bias) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int r = 0; r < MR; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + NR - 1), _MM_HINT_T0);
    }
#define AT_FMA_ROW(r)                                                                          \
    do {                                                                                       \
        __m256 ar = _mm256_broadcast_ss(a + r);                                                \
        c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);                                            \
        c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);                                            \
    } while (0)
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        AT_FMA_ROW(0);
        AT_FMA_ROW(1);
        AT_FMA_ROW(2);
        AT_FMA_ROW(3);
        AT_FMA_ROW(4);
        AT_FMA_ROW(5);
        a += MR;
        b += NR;
    }
#undef AT_FMA_ROW
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define AT_STORE_ROW(r)                                                                        \
    do {                                                                                       \
        float *cr = c + r * ldc;                                                               \
        __m256 v0 = _mm256_mul_ps(va, c##r##0), v1 = _mm256_mul_ps(va, c##r##1);               \
        if (beta != 0.0f) {                                                                    \
            v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), v0);                                 \
            v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), v1);                             \
        }                                                                                      \
        if (bias) {                                                                            \
            __m256 br = _mm256_set1_ps(bias[r]);                                               \
            v0 = _mm256_add_ps(v0, br);                                                        \
            v1 = _mm256_add_ps(v1, br);                                                        \
        }                                                                                      \
        _mm256_storeu_ps(cr, v0);                                                              \
        _mm256_storeu_ps(cr + 8, v1);                                                          \
    } while (0)
    AT_STORE_ROW(0);
    AT_STORE_ROW(1);
    AT_STORE_ROW(2);
    AT_STORE_ROW(3);
    AT_STORE_ROW(4);
    AT_STORE_ROW(5);
#undef AT_STORE_ROW
}
const char *at_sgemm_kernel_name(void) { return "avx2-fma 6x16"; }
#else
static void micro_kernel(int kc, const float *restrict a, const float *restrict b, float *c,
                         long ldc, float alpha, float beta, const float *bias) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        for (int r = 0; r < MR; r++) {
            float ar = a[r];
            for (int j = 0; j < NR; j++) acc[r][j] += ar * b[j];
        }
        a += MR;
        b += NR;
    }
    for (int r = 0; r < MR; r++) {
        float *cr = c + r * ldc;
        for (int j = 0; j < NR; j++) {
            float v = alpha * acc[r][j];
            if (beta != 0.0f) v = beta * cr[j] + v;
            if (bias) v = v + bias[r];
            cr[j] = v;
        }
    }
}
const char *at_sgemm_kernel_name(void) { return "portable 6x16"; }
#endif

/* ---- packing of plain row-major matrices ---- */

#ifdef AT_SGEMM_AVX512
/* dst[k*16 + r] = src[r*ld + k] for a full panel of 16 rows: 8x8 transposes
 * of rows 0-7 and 8-15, 8 k at a time. */
static void pack_a_rows_full(const float *src, long ld, int kc, float *restrict dst) {
    int k = 0;
    for (; k + 8 <= kc; k += 8, dst += 8 * MR)
        for (int h = 0; h < 2; h++) {
            const float *s = src + (long)8 * h * ld + k;
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + i * ld);
            __m256 u0 = _mm256_unpacklo_ps(r[0], r[1]), u1 = _mm256_unpackhi_ps(r[0], r[1]);
            __m256 u2 = _mm256_unpacklo_ps(r[2], r[3]), u3 = _mm256_unpackhi_ps(r[2], r[3]);
            __m256 u4 = _mm256_unpacklo_ps(r[4], r[5]), u5 = _mm256_unpackhi_ps(r[4], r[5]);
            __m256 u6 = _mm256_unpacklo_ps(r[6], r[7]), u7 = _mm256_unpackhi_ps(r[6], r[7]);
            __m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee);
            __m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee);
            __m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee);
            __m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
            float *d = dst + 8 * h;
            _mm256_storeu_ps(d + 0 * MR, _mm256_permute2f128_ps(v0, v4, 0x20));
            _mm256_storeu_ps(d + 1 * MR, _mm256_permute2f128_ps(v1, v5, 0x20));
            _mm256_storeu_ps(d + 2 * MR, _mm256_permute2f128_ps(v2, v6, 0x20));
            _mm256_storeu_ps(d + 3 * MR, _mm256_permute2f128_ps(v3, v7, 0x20));
            _mm256_storeu_ps(d + 4 * MR, _mm256_permute2f128_ps(v0, v4, 0x31));
            _mm256_storeu_ps(d + 5 * MR, _mm256_permute2f128_ps(v1, v5, 0x31));
            _mm256_storeu_ps(d + 6 * MR, _mm256_permute2f128_ps(v2, v6, 0x31));
            _mm256_storeu_ps(d + 7 * MR, _mm256_permute2f128_ps(v3, v7, 0x31));
        }
    for (; k < kc; k++, dst += MR)
        for (int r = 0; r < MR; r++) dst[r] = src[r * ld + k];
}
#else
/* dst[k*MR + r] = src[r*ld + k] for a full panel of MR rows. */
static void pack_a_rows_full(const float *src, long ld, int kc, float *restrict dst) {
    const float *r0 = src, *r1 = src + ld, *r2 = src + 2 * ld, *r3 = src + 3 * ld;
    const float *r4 = src + 4 * ld, *r5 = src + 5 * ld;
    int k = 0;
#ifdef AT_SGEMM_AVX2
    /* 8 k at a time: an 8x8 transpose of rows r0..r5 (two zero rows), then
     * column k (6 valid floats) goes to dst + 6k. The 8-float stores overlap
     * by 2, each fixed by the next; the last one is split so nothing past
     * dst + 48 is written. */
    for (; k + 8 <= kc; k += 8, dst += 8 * MR) {
        __m256 a0 = _mm256_loadu_ps(r0 + k), a1 = _mm256_loadu_ps(r1 + k);
        __m256 a2 = _mm256_loadu_ps(r2 + k), a3 = _mm256_loadu_ps(r3 + k);
        __m256 a4 = _mm256_loadu_ps(r4 + k), a5 = _mm256_loadu_ps(r5 + k);
        __m256 z = _mm256_setzero_ps();
        __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
        __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
        __m256 t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
        __m256 u4 = _mm256_shuffle_ps(t4, z, 0x44), u5 = _mm256_shuffle_ps(t4, z, 0xee);
        __m256 u6 = _mm256_shuffle_ps(t5, z, 0x44), u7 = _mm256_shuffle_ps(t5, z, 0xee);
        /* column k (k < 4) = low half of u_k' with rows 0-3, low half of u_(k'+4) with rows 4-5 */
        __m256 c0 = _mm256_permute2f128_ps(u0, u4, 0x20), c1 = _mm256_permute2f128_ps(u1, u5, 0x20);
        __m256 c2 = _mm256_permute2f128_ps(u2, u6, 0x20), c3 = _mm256_permute2f128_ps(u3, u7, 0x20);
        __m256 c4 = _mm256_permute2f128_ps(u0, u4, 0x31), c5 = _mm256_permute2f128_ps(u1, u5, 0x31);
        __m256 c6 = _mm256_permute2f128_ps(u2, u6, 0x31), c7 = _mm256_permute2f128_ps(u3, u7, 0x31);
        _mm256_storeu_ps(dst + 0 * MR, c0);
        _mm256_storeu_ps(dst + 1 * MR, c1);
        _mm256_storeu_ps(dst + 2 * MR, c2);
        _mm256_storeu_ps(dst + 3 * MR, c3);
        _mm256_storeu_ps(dst + 4 * MR, c4);
        _mm256_storeu_ps(dst + 5 * MR, c5);
        _mm256_storeu_ps(dst + 6 * MR, c6);
        _mm_storeu_ps(dst + 7 * MR, _mm256_castps256_ps128(c7));
        _mm_storel_pi((__m64 *)(dst + 7 * MR + 4), _mm256_extractf128_ps(c7, 1));
    }
#endif
    for (; k < kc; k++, dst += MR) {
        dst[0] = r0[k], dst[1] = r1[k], dst[2] = r2[k];
        dst[3] = r3[k], dst[4] = r4[k], dst[5] = r5[k];
    }
}
#endif

void at_pack_a_matrix(const void *ctx, int first, int count, int k0, int kc, float *dst) {
    const at_matrix_operand *m = ctx;
    for (int p = 0; p < count; p += MR, dst += (long)kc * MR) {
        int rows = imin(MR, count - p);
        if (!m->trans && rows == MR) { /* op(A)[i][k] = A[i*ld + k]: MR rows interleaved */
            const float *s0 = m->p + (long)(first + p) * m->ld + k0;
            pack_a_rows_full(s0, m->ld, kc, dst);
        } else if (!m->trans) {
            const float *src[MR];
            for (int r = 0; r < MR; r++)
                src[r] = m->p + (long)(first + p + (r < rows ? r : 0)) * m->ld + k0;
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++) dst[k * MR + r] = r < rows ? src[r][k] : 0.0f;
        } else { /* op(A)[i][k] = A[k*ld + i]: MR contiguous floats per k */
            const float *src = m->p + (long)k0 * m->ld + first + p;
            for (int k = 0; k < kc; k++, src += m->ld)
                for (int r = 0; r < MR; r++) dst[k * MR + r] = r < rows ? src[r] : 0.0f;
        }
    }
}

void at_pack_b_matrix(const void *ctx, int first, int count, int k0, int kc, float *dst) {
    const at_matrix_operand *m = ctx;
    for (int p = 0; p < count; p += NR, dst += (long)kc * NR) {
        int cols = imin(NR, count - p);
        if (!m->trans) { /* op(B)[k][j] = B[k*ld + j]: NR contiguous floats per k */
            const float *src = m->p + (long)k0 * m->ld + first + p;
            if (cols == NR) {
                for (int k = 0; k < kc; k++, src += m->ld) memcpy(dst + k * NR, src, NR * sizeof *src);
            } else {
                for (int k = 0; k < kc; k++, src += m->ld)
                    for (int j = 0; j < NR; j++) dst[k * NR + j] = j < cols ? src[j] : 0.0f;
            }
        } else { /* op(B)[k][j] = B[j*ld + k]: column j of the panel is a row of B */
            for (int j = 0; j < NR; j++) {
                if (j < cols) {
                    const float *src = m->p + (long)(first + p + j) * m->ld + k0;
                    for (int k = 0; k < kc; k++) dst[k * NR + j] = src[k];
                } else {
                    for (int k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
                }
            }
        }
    }
}

/* ---- driver ---- */

typedef struct {
    int M, N, K, kcb; /* kcb: the K block size, a function of K alone */
    float alpha, beta;
    const at_gemm_operand *a, *b;
    const at_gemm_output *c;
} gemm_job;

/* Address of C(i, n). */
static float *c_at(const at_gemm_output *c, int i, int n) {
    return c->C + (n / c->seg) * c->seg_stride + i * c->ldc + (n % c->seg);
}

static inline __attribute__((always_inline)) void add_relu_span(float *y, const float *r, long n, int relu) {
    long j = 0;
#ifdef AT_SGEMM_AVX512
    const __m512 zero = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        __m512 v = _mm512_loadu_ps(y + j);
        if (r) v = _mm512_add_ps(v, _mm512_loadu_ps(r + j));
        if (relu) v = _mm512_max_ps(v, zero); /* NaN and -0 give the second operand, +0 */
        _mm512_storeu_ps(y + j, v);
    }
#endif
    for (; j < n; j++) {
        float v = y[j];
        if (r) v = v + r[j];
        if (relu) v = v > 0 ? v : 0.0f;
        y[j] = v;
    }
}

/* The residual add and ReLU of rows [i0, i0+mc) and columns [n0, n0+nc)
 * of C, once their sums are complete. */
static void finish_block(const at_gemm_output *c, int i0, int mc, int n0, int nc) {
    if (!c->residual && !c->relu) return;
    for (int n = n0; n < n0 + nc;) {
        const long q = n % c->seg, run = imin((int)(c->seg - q), n0 + nc - n);
        const long off = (n / c->seg) * c->seg_stride + q;
        for (int i = i0; i < i0 + mc; i++)
            add_relu_span(c->C + off + i * c->ldc, c->residual ? c->residual + off + i * c->ldc : NULL, run,
                          c->relu);
        n += (int)run;
    }
}

/* An edge tile at (i, n) of C: mr <= MR valid rows, nr <= NR valid columns,
 * or columns that cross a segment boundary. It goes through a local tile so
 * that the kernel, and with it every element's rounding, stays the same. */
static void edge_tile(const gemm_job *J, int kc, const float *pa, const float *pb, int i, int n,
                      int mr, int nr, float beta, const float *bias) {
    const at_gemm_output *c = J->c;
    float t[MR * NR] __attribute__((aligned(64)));
    float tb[MR];
    memset(t, 0, sizeof t);
    if (bias) {
        for (int r = 0; r < MR; r++) tb[r] = r < mr ? bias[i + r] : 0.0f;
    }
    if (beta != 0.0f)
        for (int j = 0; j < nr; j++) {
            float *col = c_at(c, i, n + j);
            for (int r = 0; r < mr; r++) t[r * NR + j] = col[r * c->ldc];
        }
    micro_kernel(kc, pa, pb, t, NR, J->alpha, beta, bias ? tb : NULL);
    for (int j = 0; j < nr; j++) {
        float *col = c_at(c, i, n + j);
        for (int r = 0; r < mr; r++) col[r * c->ldc] = t[r * NR + j];
    }
}

/* Where the panel at column n of C is written in place: the whole panel
 * (full) or its nr columns (inside one segment), else NULL. */
static float *panel_c(const at_gemm_output *c, int n, int nr, int full) {
    long q = n % c->seg;
    if (full ? nr == NR && q + NR <= c->seg : q + nr <= c->seg) return c->C + (n / c->seg) * c->seg_stride + q;
    return NULL;
}

#ifdef AT_SGEMM_SHORT_TILES
/* The epilogue of the tile of C at t (t2: its lanes in the next segment, or
 * NULL; for the paired kernel, its second tile). */
static tile_epilogue tile_epi(const at_gemm_output *c, const float *t, const float *t2) {
    const tile_epilogue e = {c->residual ? c->residual + (t - c->C) : NULL,
                             c->residual && t2 ? c->residual + (t2 - c->C) : NULL, c->ldc, c->relu};
    return e;
}
#endif

/* Row blocks [ir0, mc) of the panel at jr; with last, the epilogue too
 * (fused into the stores of tiles written in place, after the others). */
static void panel_rows(const gemm_job *J, int kc, const float *pa, const float *pb, int i0, int mc, int n0, int nc,
                       int jr, int ir0, float beta, const float *bias, int last) {
    const at_gemm_output *c = J->c;
    const float *b = pb + (long)jr * kc;
    int n = n0 + jr, nr = imin(NR, nc - jr);
    /* panels inside one segment are written in place (short ones masked, with AVX-512) */
    float *cn = panel_c(c, n, nr, 1);
#ifdef AT_SGEMM_SHORT_TILES
    float *cs = panel_c(c, n, nr, 0), *cs2 = NULL;
    __mmask16 cols = (__mmask16)((1u << nr) - 1), cols2 = 0;
    /* gathers index rows by int32 */
    if (ir0 == 0 && cs && nr <= NARROW_COLS && c->ldc * (MR - 1) <= INT32_MAX) {
        micro_kernel_narrow(mc, nr, kc, pa, b, cs + i0 * c->ldc, c->ldc, J->alpha, beta, bias ? bias + i0 : NULL);
        if (last) finish_block(c, i0, mc, n, nr);
        return;
    }
    /* across one segment boundary: the second part, at least as long as the segment's rest, starts the next */
    const long q = n % c->seg;
    const int split = (int)(c->seg - q);
    if (!cs && split < nr && nr - split <= c->seg) {
        cs = c->C + (n / c->seg) * c->seg_stride + q, cs2 = c->C + (n / c->seg + 1) * c->seg_stride - split;
        cols2 = cols & (__mmask16) ~((1u << split) - 1), cols = (__mmask16)((1u << split) - 1);
    }
#endif
    for (int ir = ir0; ir < mc; ir += MR) {
        int i = i0 + ir, mr = imin(MR, mc - ir);
#ifdef AT_SGEMM_SHORT_TILES
        if (cn && mr == MR) {
            float *t = cn + i * c->ldc;
            const tile_epilogue e = tile_epi(c, t, NULL);
            micro_kernel_fused(kc, pa + (long)ir * kc, b, t, c->ldc, J->alpha, beta, bias ? bias + i : NULL,
                               last ? &e : NULL);
        } else if (cs) {
            float *t = cs + i * c->ldc, *t2 = cs2 ? cs2 + i * c->ldc : NULL;
            const tile_epilogue e = tile_epi(c, t, t2);
            micro_kernel_masked(mr, kc, pa + (long)ir * kc, b, t, cols, t2, cols2, c->ldc, J->alpha, beta,
                                bias ? bias + i : NULL, last ? &e : NULL);
        } else {
            edge_tile(J, kc, pa + (long)ir * kc, b, i, n, mr, nr, beta, bias);
            if (last) finish_block(c, i, mr, n, nr);
        }
#else
        if (cn && mr == MR)
            micro_kernel(kc, pa + (long)ir * kc, b, cn + i * c->ldc, c->ldc, J->alpha, beta, bias ? bias + i : NULL);
        else
            edge_tile(J, kc, pa + (long)ir * kc, b, i, n, mr, nr, beta, bias);
        if (last) finish_block(c, i, mr, n, nr);
#endif
    }
}

/* C[i0 .. i0+mc) x [n0 .. n0+nc) from a packed A block and B panel; with
 * last (the last K block), then the epilogue. */
static void macro_kernel(const gemm_job *J, int kc, const float *pa, const float *pb, int i0,
                         int mc, int n0, int nc, float beta, const float *bias, int last) {
    const at_gemm_output *c = J->c;
    last = last && (c->residual || c->relu);
    for (int jr = 0; jr < nc; jr += NR) {
#ifdef AT_SGEMM_PAIRED_PANELS
        float *c0 = jr + 2 * NR <= nc ? panel_c(c, n0 + jr, NR, 1) : NULL;
        float *c1 = c0 ? panel_c(c, n0 + jr + NR, NR, 1) : NULL;
        if (c1) { /* two whole panels in place: their full row blocks in pairs */
            const int full = mc / MR * MR;
            const float *b0 = pb + (long)jr * kc;
            for (int ir = 0; ir < full; ir += MR) {
                const int i = i0 + ir;
                float *t0 = c0 + i * c->ldc, *t1 = c1 + i * c->ldc;
                const tile_epilogue e = tile_epi(c, t0, t1);
                micro_kernel_pair(kc, pa + (long)ir * kc, b0, b0 + (long)NR * kc, t0, t1, c->ldc, J->alpha, beta,
                                  bias ? bias + i : NULL, last ? &e : NULL);
            }
            if (full < mc) {
                panel_rows(J, kc, pa, pb, i0, mc, n0, nc, jr, full, beta, bias, last);
                panel_rows(J, kc, pa, pb, i0, mc, n0, nc, jr + NR, full, beta, bias, last);
            }
            jr += NR;
            continue;
        }
#endif
        panel_rows(J, kc, pa, pb, i0, mc, n0, nc, jr, 0, beta, bias, last);
    }
}

/* Buffer `which` (0: A blocks, 1: B panels) of the calling thread, at least
 * `floats` long and 64-byte aligned; NULL when memory is short. */
static float *thread_buffer(int which, size_t floats) {
    return at_thread_scratch(which ? AT_SCRATCH_GEMM_B : AT_SCRATCH_GEMM_A, floats);
}

/* Rows [ic, ic+mc) of A for the K block at pc (kc long), packed: a pointer
 * into A's packed whole form (at_sgemm_pack_a), or packed now into buf.
 * ic is a multiple of MR. */
static const float *a_panels(const gemm_job *J, int ic, int mc, int pc, int kc, float *buf) {
    if (J->a->packed) {
        long rows = round_up(J->a->packed_rows > 0 ? J->a->packed_rows : J->M, MR);
        return J->a->packed + rows * pc + (long)(J->a->packed_first + ic) * kc;
    }
    J->a->pack(J->a->ctx, ic, mc, pc, kc, buf);
    return buf;
}

/* Packs rows [m0, m1) of A for every K block into ba, block after block
 * (the block at pc starts at round_up(m1 - m0, MR) * pc); nothing to do
 * when A comes packed. */
static void pack_a_whole(const gemm_job *J, int m0, int m1, float *ba) {
    long a_rows = round_up(m1 - m0, MR);
    for (int pc = 0; pc < J->K && !J->a->packed; pc += J->kcb)
        J->a->pack(J->a->ctx, m0, m1 - m0, pc, imin(J->kcb, J->K - pc), ba + a_rows * pc);
}

/* C[m0, m1) x [jc, jc+nc) with A already packed whole by pack_a_whole;
 * bb holds nc*kcb floats. */
static void columns_packed_a(const gemm_job *J, int m0, int m1, int jc, int nc, const float *ba,
                             float *bb) {
    long a_rows = round_up(m1 - m0, MR);
    for (int pc = 0; pc < J->K; pc += J->kcb) {
        int kc = imin(J->kcb, J->K - pc);
        J->b->pack(J->b->ctx, jc, nc, pc, kc, bb);
        const float *pa = J->a->packed ? a_panels(J, m0, m1 - m0, pc, kc, NULL) : ba + a_rows * pc;
        macro_kernel(J, kc, pa, bb, m0, m1 - m0, jc, nc, pc == 0 ? J->beta : 1.0f,
                     pc == 0 ? J->c->row_bias : NULL, pc + kc >= J->K);
    }
}

/* C[m0, m1) x [n0, n1), repacking A per block: mcb/ncb are the block sizes,
 * ba holds mcb*kcb floats and bb ncb*kcb. */
static void gemm_blocks(const gemm_job *J, int m0, int m1, int n0, int n1, int mcb, int ncb,
                        float *ba, float *bb) {
    for (int jc = n0; jc < n1; jc += ncb) {
        int nc = imin(ncb, n1 - jc);
        for (int pc = 0; pc < J->K; pc += J->kcb) {
            int kc = imin(J->kcb, J->K - pc);
            J->b->pack(J->b->ctx, jc, nc, pc, kc, bb);
            for (int ic = m0; ic < m1; ic += mcb) {
                int mc = imin(mcb, m1 - ic);
                const float *pa = a_panels(J, ic, mc, pc, kc, ba);
                macro_kernel(J, kc, pa, bb, ic, mc, jc, nc, pc == 0 ? J->beta : 1.0f,
                             pc == 0 ? J->c->row_bias : NULL, pc + kc >= J->K);
            }
        }
    }
}

/* Whether rows [m0, m1) are few enough to pack A once, whole. */
static int a_fits_whole(const gemm_job *J, int m0, int m1) {
    return m1 - m0 <= MC && (long)round_up(m1 - m0, MR) * J->K <= A_WHOLE_MAX_FLOATS;
}

/* The calling thread computes C[m0, m1) x [n0, n1) alone. Without memory
 * for the packing buffers it still does, one micro-panel at a time from the
 * stack (slow, same result). */
static void gemm_range(const gemm_job *J, int m0, int m1, int n0, int n1) {
    int whole = a_fits_whole(J, m0, m1);
    int ncb = m1 - m0 <= MC ? NC_L2 : NC_L3;
    float *ba = thread_buffer(0, J->a->packed ? 1 : whole ? (size_t)round_up(m1 - m0, MR) * J->K : (size_t)MC * J->kcb);
    float *bb = ba ? thread_buffer(1, (size_t)ncb * J->kcb) : NULL;
    if (!ba || !bb) {
        float sa[KC * MR] __attribute__((aligned(64)));
        float sb[KC * NR] __attribute__((aligned(64)));
        gemm_blocks(J, m0, m1, n0, n1, MR, NR, sa, sb);
    } else if (whole) {
        pack_a_whole(J, m0, m1, ba);
        for (int jc = n0; jc < n1; jc += ncb) columns_packed_a(J, m0, m1, jc, imin(ncb, n1 - jc), ba, bb);
    } else {
        gemm_blocks(J, m0, m1, n0, n1, MC, ncb, ba, bb);
    }
}

/* Few rows, many columns (the early VGG layers): every thread packs all of A
 * once, then the threads take NC_L2-column blocks from a dynamic schedule
 * (no cost: B is packed per block anyway), which also keeps both busy when
 * one of them is slowed by other work on the machine. Called inside the
 * parallel region. */
static void columns_dynamic(const gemm_job *J) {
    int blocks = (J->N + NC_L2 - 1) / NC_L2;
    float *ba = thread_buffer(0, J->a->packed ? 1 : (size_t)round_up(J->M, MR) * J->K);
    float *bb = ba ? thread_buffer(1, (size_t)NC_L2 * J->kcb) : NULL;
    if (ba && bb) pack_a_whole(J, 0, J->M, ba);
#pragma omp for schedule(dynamic, 1) nowait
    for (int blk = 0; blk < blocks; blk++) {
        int jc = blk * NC_L2, nc = imin(NC_L2, J->N - jc);
        if (ba && bb) {
            columns_packed_a(J, 0, J->M, jc, nc, ba, bb);
        } else {
            float sa[KC * MR] __attribute__((aligned(64)));
            float sb[KC * NR] __attribute__((aligned(64)));
            gemm_blocks(J, 0, J->M, jc, jc + nc, MR, NR, sa, sb);
        }
    }
}

/* Estimated cost of the slowest thread, in multiply-adds: the padded
 * multiply-adds plus every packed float weighted by what packing one costs
 * relative to a multiply-add (about half a cycle, against 16 multiply-adds
 * per cycle at full rate). Threads never share packed data, so a split
 * duplicates the packing of the operand it does not split: sharing a packed
 * B between the cores (measured) costs more in cross-core reads than the
 * packing it saves. */
#define PACK_COST_MACS 8.0
static double cost_split_columns(int M, int N, int K, int T) {
    int panels = (N + NR - 1) / NR, per = (panels + T - 1) / T;
    double n = (double)per * NR, m = round_up(M, MR);
    double a_packs = M <= MC ? 1 : (n + NC_L3 - 1) / NC_L3;
    return m * n * K + PACK_COST_MACS * ((double)M * K * a_packs + (double)K * n);
}
static double cost_split_rows(int M, int N, int K, int T) {
    int panels = (M + MR - 1) / MR, per = (panels + T - 1) / T;
    double m = (double)per * MR, n = round_up(N, NR);
    double a_packs = m <= MC ? 1 : (N + NC_L3 - 1) / NC_L3;
    return m * n * K + PACK_COST_MACS * (m * K * a_packs + (double)K * N);
}

/* C = beta*C + bias when there is nothing to multiply (K == 0 or alpha == 0). */
static void scale_only(const gemm_job *J) {
    for (int i = 0; i < J->M; i++)
        for (int n = 0; n < J->N; n++) {
            float *p = c_at(J->c, i, n);
            float v = J->beta == 0.0f ? 0.0f : J->beta * *p;
            *p = J->c->row_bias ? v + J->c->row_bias[i] : v;
        }
    finish_block(J->c, 0, J->M, 0, J->N);
}

/* K blocks of (nearly) equal size <= KC, multiples of 4: fewer passes over C
 * than a short last block would cost, and fixed for a given K. */
static int k_block(int K) {
    int nkb = (K + KC - 1) / KC, kcb = round_up((K + nkb - 1) / nkb, 4);
    return kcb > KC ? KC : kcb;
}

void at_sgemm_ex(int M, int N, int K, float alpha, const at_gemm_operand *a,
                 const at_gemm_operand *b, float beta, const at_gemm_output *c) {
    if (M <= 0 || N <= 0) return;
    gemm_job J = {M, N, K, 0, alpha, beta, a, b, c};
    if (K <= 0 || alpha == 0.0f) {
        scale_only(&J);
        return;
    }
    J.kcb = k_block(K);

    int T = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)M * N * K < PARALLEL_MIN_MACS) T = 1;
    if (T > 1 && (N + NR - 1) / NR < T && (M + MR - 1) / MR < T) T = 1;
    if (T == 1) {
        gemm_range(&J, 0, M, 0, N);
        return;
    }
    int by_rows = cost_split_rows(M, N, K, T) < cost_split_columns(M, N, K, T);
    if (!by_rows && a_fits_whole(&J, 0, M) && N >= 2 * T * NC_L2) {
#pragma omp parallel num_threads(T)
        columns_dynamic(&J);
        return;
    }
#pragma omp parallel num_threads(T)
    {
        /* static split on MR / NR boundaries; every thread packs privately */
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (by_rows) {
            int panels = (M + MR - 1) / MR;
            int m0 = (int)((long)panels * t / nt) * MR, m1 = imin(M, (int)((long)panels * (t + 1) / nt) * MR);
            if (m1 > m0) gemm_range(&J, m0, m1, 0, N);
        } else {
            int panels = (N + NR - 1) / NR;
            int n0 = (int)((long)panels * t / nt) * NR, n1 = imin(N, (int)((long)panels * (t + 1) / nt) * NR);
            if (n1 > n0) gemm_range(&J, 0, M, n0, n1);
        }
    }
}

#ifdef AT_SGEMM_AVX2
/* Up to this many rows of A times B^T run as matrix-vector products
 * (fully connected layers at small batches): B is read once, in its own
 * row-major order, instead of being packed whole for a GEMM whose rows
 * would fill 1 to 8 of the micro-kernel's 6. */
#define FEW_ROWS 8

/* C[M][N] = alpha * A[M][K] * B[N][K]^T + beta * C for M <= FEW_ROWS, with
 * the micro-kernel's arithmetic: per K block (the same blocks), a chain of
 * FMAs from zero in k order, then alpha * acc, then beta_blk * c + that by an
 * FMA; so the bits are those at_sgemm_ex computes. 8 columns of C at a time,
 * 8 of B's rows transposed in registers per 8 k. */
#define FRBT_PF 8 /* lines ahead: 8 and 16 measured alike, 4 slower (fc at batch 1, cold weights) */
static void few_rows_bt(int M, int N, int K, int kcb, float alpha, const float *A, int lda, const float *B, int ldb,
                        float beta, float *C, int ldc) {
    int nblk = (N + 7) / 8;
    long work = (long)M * N * K;
#pragma omp parallel for schedule(dynamic, 8) if (work >= PARALLEL_MIN_MACS && !omp_in_parallel())
    for (int jb = 0; jb < nblk; jb++) {
        int j0 = jb * 8, nj = imin(8, N - j0);
        const float *rows[8];
        for (int l = 0; l < 8; l++) rows[l] = B + (long)(j0 + (l < nj ? l : 0)) * ldb;
        for (int pc = 0; pc < K; pc += kcb) {
            int kc = imin(kcb, K - pc);
            __m256 acc[FEW_ROWS];
            for (int i = 0; i < M; i++) acc[i] = _mm256_setzero_ps();
            int k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 r[8];
                for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(rows[l] + pc + k);
                if (!(k & 15)) /* eight streams from memory: each row's line FRBT_PF lines ahead */
                    for (int l = 0; l < 8; l++)
                        _mm_prefetch((const char *)(rows[l] + pc + k + 16 * FRBT_PF), _MM_HINT_T0);
                /* 8x8 transpose: t[q] lane l = B[j0 + l][pc + k + q] */
                __m256 u0 = _mm256_unpacklo_ps(r[0], r[1]), u1 = _mm256_unpackhi_ps(r[0], r[1]);
                __m256 u2 = _mm256_unpacklo_ps(r[2], r[3]), u3 = _mm256_unpackhi_ps(r[2], r[3]);
                __m256 u4 = _mm256_unpacklo_ps(r[4], r[5]), u5 = _mm256_unpackhi_ps(r[4], r[5]);
                __m256 u6 = _mm256_unpacklo_ps(r[6], r[7]), u7 = _mm256_unpackhi_ps(r[6], r[7]);
                __m256 v0 = _mm256_shuffle_ps(u0, u2, 0x44), v1 = _mm256_shuffle_ps(u0, u2, 0xee);
                __m256 v2 = _mm256_shuffle_ps(u1, u3, 0x44), v3 = _mm256_shuffle_ps(u1, u3, 0xee);
                __m256 v4 = _mm256_shuffle_ps(u4, u6, 0x44), v5 = _mm256_shuffle_ps(u4, u6, 0xee);
                __m256 v6 = _mm256_shuffle_ps(u5, u7, 0x44), v7 = _mm256_shuffle_ps(u5, u7, 0xee);
                __m256 t[8] = {_mm256_permute2f128_ps(v0, v4, 0x20), _mm256_permute2f128_ps(v1, v5, 0x20),
                               _mm256_permute2f128_ps(v2, v6, 0x20), _mm256_permute2f128_ps(v3, v7, 0x20),
                               _mm256_permute2f128_ps(v0, v4, 0x31), _mm256_permute2f128_ps(v1, v5, 0x31),
                               _mm256_permute2f128_ps(v2, v6, 0x31), _mm256_permute2f128_ps(v3, v7, 0x31)};
                for (int i = 0; i < M; i++) {
                    const float *a = A + (long)i * lda + pc + k;
                    for (int q = 0; q < 8; q++) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + q), t[q], acc[i]);
                }
            }
            for (; k < kc; k++) {
                __m256 t = _mm256_setr_ps(rows[0][pc + k], rows[1][pc + k], rows[2][pc + k], rows[3][pc + k],
                                          rows[4][pc + k], rows[5][pc + k], rows[6][pc + k], rows[7][pc + k]);
                for (int i = 0; i < M; i++)
                    acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(A + (long)i * lda + pc + k), t, acc[i]);
            }
            const float bb = pc == 0 ? beta : 1.0f;
            for (int i = 0; i < M; i++) {
                float out[8], *c = C + (long)i * ldc + j0;
                __m256 v = _mm256_mul_ps(_mm256_set1_ps(alpha), acc[i]);
                _mm256_storeu_ps(out, v);
                if (bb != 0.0f) {
                    float old[8] = {0};
                    for (int l = 0; l < nj; l++) old[l] = c[l];
                    _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_set1_ps(bb), _mm256_loadu_ps(old), v));
                }
                for (int l = 0; l < nj; l++) c[l] = out[l];
            }
        }
    }
}

/* C[M][N] = alpha * A[M][K] * B[K][N] + beta * C for M <= FEW_ROWS (the data
 * gradient of a fully connected layer at small batches): B's rows streamed
 * once, in their own order, into accumulators in the cache, instead of
 * packing all of B for a GEMM whose row panels would be mostly padding. Per
 * K block (the same blocks) a chain of FMAs from zero in k order, then
 * alpha * acc, then beta_blk * c + that by an FMA: the bits at_sgemm_ex
 * computes. Threads take column groups (few_rows_b). */
#define FEW_ROWS_B_COLS 512 /* per group when the accumulators come from the stack */
/* The row of B this many ahead is prefetched line by line while a row
 * streams: the hardware prefetchers would start anew at every row. */
#define FRB_PF 2
/* Columns [j0, j0+nj) of C, accumulated in accs (M rows of round_up(nj, 8)). */
static void few_rows_b_cols(int M, int K, int kcb, float alpha, const float *A, int lda, const float *B, int ldb,
                            float beta, float *C, int ldc, int j0, int nj, float *accs) {
    const int stride = round_up(nj, 8), full = nj / 8 * 8;
    float *acc[FEW_ROWS];
    for (int i = 0; i < M; i++) acc[i] = accs + (long)i * stride;
    __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(nj - full), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int pc = 0; pc < K; pc += kcb) {
        int kc = imin(kcb, K - pc);
        const float bb = pc == 0 ? beta : 1.0f;
        for (int i = 0; i < M; i++) memset(acc[i], 0, sizeof(float) * stride);
        for (int k = 0; k < kc; k++) {
            const float *br = B + (long)(pc + k) * ldb + j0;
#ifdef AT_SGEMM_AVX512
            const int pf = pc + k + FRB_PF < K;
            const float *ahead = pf ? B + (long)(pc + k + FRB_PF) * ldb + j0 : br;
#endif
            for (int i = 0; i < M; i++) {
                const __m256 a = _mm256_broadcast_ss(A + (long)i * lda + pc + k);
                float *ar = acc[i];
                int j = 0;
#ifdef AT_SGEMM_AVX512
                const __m512 a16 = _mm512_set1_ps(A[(long)i * lda + pc + k]);
                for (; j + 16 <= full; j += 16) {
                    if (pf && i == 0) _mm_prefetch((const char *)(ahead + j), _MM_HINT_T0);
                    _mm512_storeu_ps(ar + j, _mm512_fmadd_ps(a16, _mm512_loadu_ps(br + j), _mm512_loadu_ps(ar + j)));
                }
#endif
                for (; j < full; j += 8)
                    _mm256_store_ps(ar + j, _mm256_fmadd_ps(a, _mm256_loadu_ps(br + j), _mm256_load_ps(ar + j)));
                if (j < nj)
                    _mm256_store_ps(ar + j, _mm256_fmadd_ps(a, _mm256_maskload_ps(br + j, tail), _mm256_load_ps(ar + j)));
            }
        }
        for (int i = 0; i < M; i++) {
            float *c = C + (long)i * ldc + j0;
            for (int j = 0; j < nj; j += 8) {
                __m256i m = j < full ? _mm256_set1_epi32(-1) : tail;
                __m256 v = _mm256_mul_ps(_mm256_set1_ps(alpha), _mm256_load_ps(acc[i] + j));
                if (bb != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(bb), _mm256_maskload_ps(c + j, m), v);
                _mm256_maskstore_ps(c + j, m, v);
            }
        }
    }
}

/* Accumulator floats per thread: half of the L2 of the project's machine. */
#define FEW_ROWS_B_L2_FLOATS (1 << 17)
static void few_rows_b(int M, int N, int K, int kcb, float alpha, const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc) {
    /* One column group per thread where M rows of its accumulators fit in
     * L2: each k reads one long run of a row of B (VGG16's fc6 data gradient
     * at batch 1: 12544 columns, 50 KiB, streamed at 40 GB/s where groups of
     * 512 columns, runs of 2 KiB that the prefetchers started anew at every
     * row, reached 25). Without memory for them, groups of 512 columns from
     * the stack. Each element's sum is the same either way. */
    const long work = (long)M * N * K;
    const int T = work >= PARALLEL_MIN_MACS && !omp_in_parallel() ? omp_get_max_threads() : 1;
    const int widest = FEW_ROWS_B_L2_FLOATS / M;
    int ngrp = (N + widest - 1) / widest;
    ngrp = (ngrp + T - 1) / T * T;
    const int width = round_up((N + ngrp - 1) / ngrp, 8);
    ngrp = (N + width - 1) / width;
#pragma omp parallel for schedule(dynamic, 1) if (T > 1)
    for (int g = 0; g < ngrp; g++) {
        const int j0 = g * width, nj = imin(width, N - j0);
        float *accs = thread_buffer(0, (size_t)M * round_up(nj, 8));
        if (accs) {
            few_rows_b_cols(M, K, kcb, alpha, A, lda, B, ldb, beta, C, ldc, j0, nj, accs);
            continue;
        }
        float stack[FEW_ROWS * FEW_ROWS_B_COLS] __attribute__((aligned(64)));
        for (int j = j0; j < j0 + nj; j += FEW_ROWS_B_COLS)
            few_rows_b_cols(M, K, kcb, alpha, A, lda, B, ldb, beta, C, ldc, j, imin(FEW_ROWS_B_COLS, j0 + nj - j), stack);
    }
}
#endif

size_t at_sgemm_packed_a_floats(int M, int K) { return (size_t)round_up(M, MR) * (K > 0 ? K : 0); }

void at_sgemm_pack_a_with(int M, int K, at_pack_fn pack, const void *ctx, float *dst) {
    if (M <= 0 || K <= 0) return;
    int kcb = k_block(K);
    for (int pc = 0; pc < K; pc += kcb) pack(ctx, 0, M, pc, imin(kcb, K - pc), dst + (long)round_up(M, MR) * pc);
}

void at_sgemm_pack_a(int M, int K, const float *A, int lda, float *dst) {
    at_matrix_operand m = {A, lda, 0};
    at_sgemm_pack_a_with(M, K, at_pack_a_matrix, &m, dst);
}

void at_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef AT_SGEMM_AVX2
    if (!trans_a && trans_b && M > 0 && M <= FEW_ROWS && N > 0 && K > 0 && alpha != 0.0f) {
        few_rows_bt(M, N, K, k_block(K), alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (!trans_a && !trans_b && M > 0 && M <= FEW_ROWS && N > 0 && K > 0 && alpha != 0.0f) {
        few_rows_b(M, N, K, k_block(K), alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    at_matrix_operand ma = {A, lda, trans_a}, mb = {B, ldb, trans_b};
    at_gemm_operand a = {at_pack_a_matrix, &ma, NULL, 0, 0}, b = {at_pack_b_matrix, &mb, NULL, 0, 0};
    at_gemm_output c = {C, ldc, N > 0 ? N : 1, 0, NULL, NULL, 0};
    at_sgemm_ex(M, N, K, alpha, &a, &b, beta, &c);
}
