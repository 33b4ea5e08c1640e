/* Convolution as GEMM without materialising im2col (see conv.h).
 *
 * Forward: y[img][k][pixel] = sum over (c, ky, kx) of w[k][(c,ky,kx)] *
 * x[img][c][iy][ix]: a GEMM with M = K output channels, GEMM-K = C*kh*kw and
 * GEMM-N = N*Ho*Wo (all images of the batch side by side, so that the small
 * late-VGG maps still give both cores full panels). The B operand is never
 * stored: its packer (pack_b_im2col) copies each NR-pixel panel straight from
 * the image, one contiguous row run at a time, with zeros for the padding.
 * The weights are A as they are ([K][C*kh*kw] row-major), the output mapping
 * of at_sgemm_ex places column (img, pixel) at y[img][.][pixel], and the bias
 * is added in the micro-kernel's epilogue.
 *
 * Backward data, stride 1: the transpose of a stride-1 convolution with pad p
 * is the stride-1 convolution of dy with the kernel flipped in space and
 * transposed in channels, pad kh-1-p:
 *   dx[c][iy][ix] = sum over (k, ky, kx) of w[k][c][kh-1-ky][kw-1-kx] *
 *                   dy[k][iy + ky - (kh-1-p)][ix + kx - (kw-1-p)],
 * so it reuses the forward path with an A packer that reads w flipped.
 * Other strides: col = w^T * dy (at_sgemm), then col2im adds each column back
 * into dx, over tiles of pixels so that the col buffer stays bounded. */
#include "cpu/conv.h"

#include "cpu/sgemm.h"

#include <limits.h>
#include <omp.h>
#include <string.h>

#if defined(__AVX2__) && !defined(AT_CONV_PORTABLE)
#define AT_CONV_AVX2 1
#include <immintrin.h>
#endif

#define NR AT_SGEMM_NR
#define MR AT_SGEMM_MR

/* Upper bound on the col buffer of the general backward path (floats). */
#define COL_BUDGET_FLOATS (1L << 22)

static int imin(int a, int b) { return a < b ? a : b; }

/* The image side of a convolution seen as the B operand of a GEMM:
 * B[(c, ky, kx)][(img, oy, ox)] = x[img][c][oy*stride - pad_h + ky][ox*stride - pad_w + kx]
 * (zero outside the image). */
typedef struct {
    const float *x; /* [N][C][H][W] */
    int C, H, W, kh, kw, stride, pad_h, pad_w, Ho, Wo;
} im2col_src;

/* A run of consecutive output pixels of one image row inside a panel:
 * lanes [j0, j0+len) read input row iy0 + ky from column ix0 + kx on. */
typedef struct {
    int j0, len, iy0, ix0;
    long img_off;
} pixel_run;

/* Where row k = (c, ky, kx) of the B operand reads: the offset
 * c*H*W + ky*W + kx from a pixel's top-left input, and ky, kx themselves for
 * the bounds checks. Tabulated once per packing call, for K_ROWS rows at a
 * time, instead of dividing k in the inner loops. */
typedef struct {
    long off;
    int ky, kx;
} k_row;
#define K_ROWS 256

static void k_rows(const im2col_src *s, int k0, int kc, k_row *kt) {
    int khw = s->kh * s->kw;
    int c = k0 / khw, ky = k0 % khw / s->kw, kx = k0 % s->kw;
    for (int k = 0; k < kc; k++) {
        kt[k] = (k_row){(long)c * s->H * s->W + (long)ky * s->W + kx, ky, kx};
        if (++kx == s->kw) {
            kx = 0;
            if (++ky == s->kh) ky = 0, c++;
        }
    }
}

/* Splits panel columns [n, n+cols) into runs of one output row each. */
static int panel_runs(const im2col_src *s, long n, int cols, pixel_run *runs) {
    long HoWo = (long)s->Ho * s->Wo, CHW = (long)s->C * s->H * s->W;
    int nrun = 0;
    for (int j = 0; j < cols;) {
        long img = (n + j) / HoWo;
        int q = (int)((n + j) % HoWo), oy = q / s->Wo, ox = q % s->Wo;
        int len = imin(cols - j, s->Wo - ox);
        runs[nrun++] = (pixel_run){j, len, oy * s->stride - s->pad_h, ox * s->stride - s->pad_w,
                                   img * CHW};
        j += len;
    }
    return nrun;
}

#ifdef AT_CONV_AVX2
#if defined(__AVX512F__)
static int imax(int a, int b) { return a > b ? a : b; } /* the stride-2 packer's bounds */
#endif

/* Kernel widths up to this get their lane masks tabulated per panel. */
#define MAX_KW_MASKS 7

/* Lanes lo <= j < hi of a 16-lane panel row, as two 8-lane masks (none when
 * hi <= lo). */
static inline void lane_masks(int lo, int hi, __m256i *m0, __m256i *m1) {
    const __m256i i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i i1 = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    __m256i l = _mm256_set1_epi32(lo - 1), h = _mm256_set1_epi32(hi);
    *m0 = _mm256_and_si256(_mm256_cmpgt_epi32(i0, l), _mm256_cmpgt_epi32(h, i0));
    *m1 = _mm256_and_si256(_mm256_cmpgt_epi32(i1, l), _mm256_cmpgt_epi32(h, i1));
}

/* Stride 1. How many panels from this one on (at most max) are interior:
 * each one full run of the same output row, every (ky, kx) inside the image.
 * Those are plain copies, done together by pack_interior_panels. */
static int interior_panels(const im2col_src *s, const pixel_run *runs, int nrun, int max) {
    const pixel_run *u = &runs[0];
    if (nrun != 1 || u->len != NR || u->iy0 < 0 || u->iy0 + s->kh > s->H || u->ix0 < 0) return 0;
    int same_row = (s->Wo - (u->ix0 + s->pad_w)) / NR;   /* output columns left in the row */
    int inside = (s->W - (s->kw - 1) - u->ix0) / NR;     /* input columns left for every kx */
    return imin(max, imin(same_row, inside));
}

/* g panels whose row k is the g*NR floats from base + kt[k].off on, row k
 * by row k: one contiguous stretch read in order (the hardware prefetcher
 * follows it) goes to the g panels. */
static void copy_panels(const float *base, int g, const k_row *kt, int kc, float *dst, long panel_floats) {
    for (int k = 0; k < kc; k++) {
        const float *src = base + kt[k].off;
        float *d = dst + (long)k * NR;
        for (int j = 0; j < g; j++, src += NR, d += panel_floats) {
            _mm256_store_ps(d, _mm256_loadu_ps(src));
            _mm256_store_ps(d + 8, _mm256_loadu_ps(src + 8));
        }
    }
}

/* g interior panels (interior_panels): every row k is a stretch of one input row. */
static void pack_interior_panels(const im2col_src *s, const pixel_run *runs, int g, const k_row *kt, int kc,
                                 float *dst, long panel_floats) {
    copy_panels(s->x + runs[0].img_off + (long)runs[0].iy0 * s->W + runs[0].ix0, g, kt, kc, dst, panel_floats);
}

/* A 1x1, stride-1, unpadded conv reads B[c][pixel] = x[img][c][pixel]: the
 * panels that lie inside one image are plain copies of 16 consecutive
 * floats per channel, across output rows. How many from pixel n on (at most
 * max) do. */
#ifndef POINTWISE_GROUP
#define POINTWISE_GROUP 4
#endif
static int pointwise_panels(const im2col_src *s, long n, int max) {
    if (s->kh != 1 || s->kw != 1 || s->stride != 1 || s->pad_h || s->pad_w) return 0;
    long HW = (long)s->H * s->W;
    return imin(imin(max, POINTWISE_GROUP), (int)((HW - n % HW) / NR));
}

/* g such panels, channel by channel: each channel's g*NR floats are one run. */
static void pack_pointwise_panels(const im2col_src *s, long n, int g, const k_row *kt, int kc, float *dst,
                                  long panel_floats) {
    long HW = (long)s->H * s->W;
    copy_panels(s->x + n / HW * s->C * HW + n % HW, g, kt, kc, dst, panel_floats);
}

/* Stride 2, a panel of one full run whose every (ky, kx) stays inside the
 * input row (the stem's 7x7 / 2 over most of the image): per row k, the 32
 * floats from the first lane's input on, their even ones. */
static int strided2_interior(const im2col_src *s, const pixel_run *runs, int nrun) {
    const pixel_run *u = &runs[0];
    return s->stride == 2 && nrun == 1 && u->len == NR && u->ix0 >= 0 && u->ix0 + s->kw - 1 + 2 * NR - 1 < s->W;
}

static void pack_panel_stride2_interior(const im2col_src *s, const pixel_run *u, const k_row *kt, int kc,
                                        float *dst) {
    const float *base = s->x + u->img_off + (long)u->iy0 * s->W + u->ix0;
    for (int k = 0; k < kc; k++, dst += NR) {
        const int iy = u->iy0 + kt[k].ky;
        if (iy < 0 || iy >= s->H) {
            _mm256_store_ps(dst, _mm256_setzero_ps());
            _mm256_store_ps(dst + 8, _mm256_setzero_ps());
            continue;
        }
        const float *src = base + kt[k].off;
        for (int h = 0; h < 2; h++, src += 16) {
            const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
            /* evens of a and b, per 128-bit lane: a0 a2 b0 b2 | a4 a6 b4 b6; then lanes in order */
            const __m256 e = _mm256_shuffle_ps(a, b, 0x88);
            _mm256_store_ps(dst + 8 * h, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xd8)));
        }
    }
}

/* Lanes j0 + t of run u inside the input row for kernel column kx:
 * 0 <= ix0 + t*stride + kx < W. */
static inline void run_lane_masks(const im2col_src *s, const pixel_run *u, int kx, __m256i *m0, __m256i *m1) {
    int ix = u->ix0 + kx, lo = ix >= 0 ? 0 : (-ix + s->stride - 1) / s->stride;
    int hi = ix < s->W ? (s->W - 1 - ix) / s->stride + 1 : 0;
    lane_masks(u->j0 + lo, u->j0 + imin(u->len, hi), m0, m1);
}

/* Any panel, its lanes by runs (the floats pack_panel_lanes places): with
 * stride 1 each run is a contiguous piece of an input row, read as a masked
 * load (lane j reads base + off + j; the pointer may lie outside the row, but
 * only lanes inside it are loaded); other strides come in by masked gathers
 * of the stride-spaced inputs. Masked-off lanes read nothing and give 0. The
 * lanes inside the row for each kx are tabulated per run. */
static inline __attribute__((always_inline)) void pack_runs(const im2col_src *s, const pixel_run *runs, int nrun,
                                                            const k_row *kt, int kc, float *dst, int gather) {
    const int tabulated = s->kw <= MAX_KW_MASKS;
    const float *base[NR];
    __m256i idx[NR][2], mask[NR][MAX_KW_MASKS][2];
    const __m256i i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
    for (int r = 0; r < nrun; r++) {
        const pixel_run *u = &runs[r];
        base[r] = s->x + u->img_off + (long)u->iy0 * s->W + u->ix0 - (gather ? 0 : u->j0);
        if (gather) {
            const __m256i j0 = _mm256_set1_epi32(u->j0), st = _mm256_set1_epi32(s->stride);
            idx[r][0] = _mm256_mullo_epi32(_mm256_sub_epi32(i0, j0), st);
            idx[r][1] = _mm256_mullo_epi32(_mm256_sub_epi32(i1, j0), st);
        }
        for (int kx = 0; tabulated && kx < s->kw; kx++) run_lane_masks(s, u, kx, &mask[r][kx][0], &mask[r][kx][1]);
    }
    for (int k = 0; k < kc; k++, dst += NR) {
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (int r = 0; r < nrun; r++) {
            const pixel_run *u = &runs[r];
            int iy = u->iy0 + kt[k].ky;
            if (iy < 0 || iy >= s->H) continue;
            __m256i m0, m1;
            if (tabulated) {
                m0 = mask[r][kt[k].kx][0];
                m1 = mask[r][kt[k].kx][1];
            } else {
                run_lane_masks(s, u, kt[k].kx, &m0, &m1);
            }
            const float *src = base[r] + kt[k].off;
            if (gather) {
                v0 = _mm256_mask_i32gather_ps(v0, src, idx[r][0], _mm256_castsi256_ps(m0), 4);
                v1 = _mm256_mask_i32gather_ps(v1, src, idx[r][1], _mm256_castsi256_ps(m1), 4);
            } else {
                v0 = _mm256_or_ps(v0, _mm256_maskload_ps(src, m0));
                v1 = _mm256_or_ps(v1, _mm256_maskload_ps(src + 8, m1));
            }
        }
        _mm256_store_ps(dst, v0);
        _mm256_store_ps(dst + 8, v1);
    }
}

/* pack_runs made twice, each without the other's branch in its loops */
static void pack_panel_masked(const im2col_src *s, const pixel_run *runs, int nrun, const k_row *kt, int kc,
                              float *dst) {
    if (s->stride > 1) pack_runs(s, runs, nrun, kt, kc, dst, 1);
    else pack_runs(s, runs, nrun, kt, kc, dst, 0);
}
#endif

/* Any stride, one lane at a time (also the portable build's only path). */
static void pack_panel_lanes(const im2col_src *s, const pixel_run *runs, int nrun,
                             const k_row *kt, int kc, float *dst) {
    long off[NR];
    int iy0[NR], ix0[NR], lanes = 0;
    for (int r = 0; r < nrun; r++)
        for (int t = 0; t < runs[r].len; t++, lanes++) {
            iy0[lanes] = runs[r].iy0;
            ix0[lanes] = runs[r].ix0 + t * s->stride;
            off[lanes] = runs[r].img_off + (long)iy0[lanes] * s->W + ix0[lanes];
        }
    for (int k = 0; k < kc; k++, dst += NR) {
        for (int j = 0; j < NR; j++) {
            float v = 0.0f;
            if (j < lanes) {
                int iy = iy0[j] + kt[k].ky, ix = ix0[j] + kt[k].kx;
                if (iy >= 0 && iy < s->H && ix >= 0 && ix < s->W) v = s->x[off[j] + kt[k].off];
            }
            dst[j] = v;
        }
    }
}

#if defined(AT_CONV_AVX2) && defined(__AVX512F__)
/* Stride 2, any panel, AVX-512: per run of lanes, the 32 floats of the
 * input row from its first lane's input on come in by two masked loads (the
 * mask keeps to the row, so the padding reads as 0) and a two-register
 * permute takes every other one into the run's lanes; the floats the
 * gathers of pack_panel_masked place, at a fraction of their cost. */
#define AT_CONV_STRIDE2_PERMUTE 1
static void pack_panel_stride2(const im2col_src *s, const pixel_run *runs, int nrun, const k_row *kt, int kc,
                               float *dst) {
    const float *base[NR];
    __m512i idx[NR];
    __mmask16 lanes[NR], load_lo[NR][MAX_KW_MASKS], load_hi[NR][MAX_KW_MASKS];
    const int tabulated = s->kw <= MAX_KW_MASKS;
    for (int r = 0; r < nrun; r++) {
        const pixel_run *u = &runs[r];
        base[r] = s->x + u->img_off + (long)u->iy0 * s->W + u->ix0;
        /* lane j of the run reads float 2 (j - j0) of the 32 loaded */
        idx[r] = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                    _mm512_set1_epi32(u->j0)), 1);
        lanes[r] = (__mmask16)(((1u << u->len) - 1) << u->j0);
        for (int kx = 0; tabulated && kx < s->kw; kx++) {
            const int ix = u->ix0 + kx, lo = imax(0, -ix), hi = imin(2 * u->len - 1, s->W - ix);
            const unsigned m = hi > lo ? (unsigned)(((1ull << hi) - 1) & ~((1ull << lo) - 1)) : 0u;
            load_lo[r][kx] = (__mmask16)m, load_hi[r][kx] = (__mmask16)(m >> 16);
        }
    }
    for (int k = 0; k < kc; k++, dst += NR) {
        __m512 v = _mm512_setzero_ps();
        for (int r = 0; r < nrun; r++) {
            const pixel_run *u = &runs[r];
            const int iy = u->iy0 + kt[k].ky;
            if (iy < 0 || iy >= s->H) continue;
            __mmask16 ml, mh;
            if (tabulated) {
                ml = load_lo[r][kt[k].kx], mh = load_hi[r][kt[k].kx];
            } else {
                const int ix = u->ix0 + kt[k].kx, lo = imax(0, -ix), hi = imin(2 * u->len - 1, s->W - ix);
                const unsigned m = hi > lo ? (unsigned)(((1ull << hi) - 1) & ~((1ull << lo) - 1)) : 0u;
                ml = (__mmask16)m, mh = (__mmask16)(m >> 16);
            }
            const float *src = base[r] + kt[k].off;
            const __m512 a = _mm512_maskz_loadu_ps(ml, src), b = _mm512_maskz_loadu_ps(mh, src + 16);
            v = _mm512_mask_mov_ps(v, lanes[r], _mm512_permutex2var_ps(a, idx[r], b));
        }
        _mm512_store_ps(dst, v);
    }
}
#endif

/* at_pack_fn for the B operand: pixels [first, first+count), rows [k0, k0+kc). */
static void pack_b_im2col(const void *ctx, int first, int count, int k0, int kc, float *dst) {
    const im2col_src *s = ctx;
    k_row kt[K_ROWS];
    pixel_run runs[NR];
    long panel_floats = (long)kc * NR;
    for (int kb = 0; kb < kc; kb += K_ROWS) {
        int kn = imin(K_ROWS, kc - kb);
        k_rows(s, k0 + kb, kn, kt);
        for (int p = 0; p < count;) {
            float *d = dst + p / NR * panel_floats + (long)kb * NR;
#ifdef AT_CONV_AVX2
            int pw = pointwise_panels(s, (long)first + p, (count - p) / NR);
            if (pw > 0) {
                pack_pointwise_panels(s, (long)first + p, pw, kt, kn, d, panel_floats);
                p += pw * NR;
                continue;
            }
#endif
            int nrun = panel_runs(s, (long)first + p, imin(NR, count - p), runs);
#ifdef AT_CONV_AVX2
            if (s->stride == 1) {
                int g = interior_panels(s, runs, nrun, (count - p) / NR);
                if (g > 0) {
                    pack_interior_panels(s, runs, g, kt, kn, d, panel_floats);
                    p += g * NR;
                } else {
                    pack_panel_masked(s, runs, nrun, kt, kn, d);
                    p += NR;
                }
                continue;
            }
            if (strided2_interior(s, runs, nrun)) pack_panel_stride2_interior(s, &runs[0], kt, kn, d);
#ifdef AT_CONV_STRIDE2_PERMUTE
            else if (s->stride == 2) pack_panel_stride2(s, runs, nrun, kt, kn, d);
#endif
            else pack_panel_masked(s, runs, nrun, kt, kn, d);
            p += NR;
            continue;
#endif
            pack_panel_lanes(s, runs, nrun, kt, kn, d);
            p += NR;
        }
    }
}

/* The weights of the backward stride-1 path as the A operand:
 * A[c][(k, ky, kx)] = w[k][c][kh-1-ky][kw-1-kx]. */
typedef struct {
    const float *w; /* [K][C][kh][kw] */
    int K, C, khw;
} flipped_weights;

static void pack_a_flipped(const void *ctx, int first, int count, int k0, int kc, float *dst) {
    const flipped_weights *f = ctx;
    for (int p = 0; p < count; p += MR, dst += (long)kc * MR) {
        int rows = imin(MR, count - p);
        int k = k0 / f->khw, r = k0 % f->khw;
        for (int t = 0; t < kc; t++) {
            /* flipping both ky and kx reverses the kh*kw positions */
            const float *src = f->w + ((long)k * f->C + first + p) * f->khw + (f->khw - 1 - r);
            for (int i = 0; i < MR; i++) dst[t * MR + i] = i < rows ? src[(long)i * f->khw] : 0.0f;
            if (++r == f->khw) r = 0, k++;
        }
    }
}

static int out_size(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

/* y (NCHW, channels M) = A * implicit-im2col(src) + bias, for every image;
 * the GEMM's N runs over all N*Ho*Wo pixels (in groups of images when that
 * count would not fit an int). */
static void conv_gemm(const im2col_src *src, int N, int M, const at_gemm_operand *a,
                      const float *bias, float *y, const at_conv_epilogue *e) {
    long HoWo = (long)src->Ho * src->Wo;
    long group = INT_MAX / HoWo, CHW = (long)src->C * src->H * src->W;
    for (long img = 0; img < N; img += group) {
        long n = N - img < group ? N - img : group;
        im2col_src s = *src;
        s.x = src->x + img * CHW;
        at_gemm_operand b = {pack_b_im2col, &s, NULL, 0, 0};
        at_gemm_output out = {y + img * M * HoWo, HoWo, HoWo, (long)M * HoWo, bias,
                              e && e->residual ? e->residual + img * M * HoWo : NULL, e ? e->relu : 0};
        at_sgemm_ex(M, (int)(n * HoWo), s.C * s.kh * s.kw, 1.0f, a, &b, 0.0f, &out);
    }
}

void at_conv2d_forward_packed(const float *x, int N, int C, int H, int W, const float *w, const float *packed,
                              const float *b, int K, int kh, int kw, int stride, int pad, float *y,
                              const at_conv_epilogue *e) {
    int Ho = out_size(H, kh, stride, pad), Wo = out_size(W, kw, stride, pad);
    if (N <= 0 || K <= 0 || Ho <= 0 || Wo <= 0) return;
    im2col_src s = {x, C, H, W, kh, kw, stride, pad, pad, Ho, Wo};
    at_matrix_operand wm = {w, (long)C * kh * kw, 0};
    at_gemm_operand a = {at_pack_a_matrix, &wm, packed, 0, 0};
    conv_gemm(&s, N, K, &a, b, y, e);
}

void at_conv2d_forward(const float *x, int N, int C, int H, int W, const float *w, const float *b,
                       int K, int kh, int kw, int stride, int pad, float *y, float *workspace) {
    (void)workspace;
    at_conv2d_forward_packed(x, N, C, H, W, w, NULL, b, K, kh, kw, stride, pad, y, NULL);
}

/* The backward pass runs as a forward convolution (no workspace) for stride
 * 1 and pad < kernel, unless the input has so few channels that the GEMM
 * would have almost no rows (C = 3 for an image: each packed float of dy
 * would serve 3 multiply-adds); then w^T * dy with col2im reuses each float
 * of dy C*kh*kw times instead. From 4 channels the 8-row tiles keep the
 * forward form ahead (VGG16-mini's 8 -> 8 conv at 128x128, 16 images:
 * 2.0-2.2 ms against 4.6 by col2im; 3 <- 64 at 224: col2im 0.8 ms against 3.8). */
#define ADJOINT_MIN_CHANNELS 4
static int backward_is_forward_conv(int C, int kh, int kw, int stride, int pad) {
    return stride == 1 && pad < kh && pad < kw && C >= ADJOINT_MIN_CHANNELS;
}

/* Pixels per tile of the general backward path. */
static long col_tile_pixels(long ckk, long HoWo) {
    long t = COL_BUDGET_FLOATS / ckk;
    if (t >= HoWo) return HoWo;
    if (t >= NR) t -= t % NR;
    return t > 0 ? t : 1;
}

size_t at_conv2d_workspace_floats(int C, int H, int W, int kh, int kw, int stride, int pad) {
    int Ho = out_size(H, kh, stride, pad), Wo = out_size(W, kw, stride, pad);
    if (backward_is_forward_conv(C, kh, kw, stride, pad) || Ho <= 0 || Wo <= 0) return 0;
    long ckk = (long)C * kh * kw;
    return (size_t)(ckk * col_tile_pixels(ckk, (long)Ho * Wo));
}

/* dx += the output pixels [q0, q0+nt) of col (rows (c, ky, kx), row stride
 * nt) sent back to the input pixels they were read from. Written as a
 * gather: a thread owns whole rows (c, iy) of dx, and each element adds its
 * terms in the fixed order (tile, ky, kx), so the result is deterministic
 * whatever the number of threads. */
static void col2im_add(const float *col, long nt, long q0, int C, int H, int W, int kh, int kw,
                       int stride, int pad, int Ho, int Wo, float *dx) {
    long work = (long)C * kh * kw * nt;
#pragma omp parallel for schedule(static) if (work > (1L << 16) && !omp_in_parallel())
    for (long row = 0; row < (long)C * H; row++) {
        int c = (int)(row / H), iy = (int)(row % H);
        float *drow = dx + row * W;
        for (int ky = 0; ky < kh; ky++) {
            int num = iy + pad - ky; /* = oy * stride */
            if (num < 0 || num % stride) continue;
            int oy = num / stride;
            if (oy >= Ho) continue;
            /* output columns of this row inside the tile */
            long first = (long)oy * Wo;
            int ox0 = (int)(q0 > first ? q0 - first : 0);
            int ox1 = (int)(q0 + nt < first + Wo ? q0 + nt - first : Wo);
            if (ox0 >= ox1) continue;
            for (int kx = 0; kx < kw; kx++) {
                /* col element of output column ox: crow[ox - ox0] */
                const float *crow = col + (((long)c * kh + ky) * kw + kx) * nt + (first + ox0 - q0);
                if (stride == 1) { /* ix = ox - pad + kx: a contiguous run */
                    int lo = ox0 > pad - kx ? ox0 : pad - kx;
                    int hi = ox1 < W + pad - kx ? ox1 : W + pad - kx;
                    for (int ox = lo; ox < hi; ox++) drow[ox - pad + kx] += crow[ox - ox0];
                } else {
                    for (int ox = ox0; ox < ox1; ox++) {
                        int ix = ox * stride - pad + kx;
                        if (ix >= 0 && ix < W) drow[ix] += crow[ox - ox0];
                    }
                }
            }
        }
    }
}

size_t at_conv2d_packed_weights_floats(int K, int C, int kh, int kw, int stride, int pad, int backward) {
    if (!backward) return at_sgemm_packed_a_floats(K, C * kh * kw);
    return backward_is_forward_conv(C, kh, kw, stride, pad) ? at_sgemm_packed_a_floats(C, K * kh * kw) : 0;
}

void at_conv2d_pack_weights(const float *w, int K, int C, int kh, int kw, int backward, float *dst) {
    if (!backward) {
        at_sgemm_pack_a(K, C * kh * kw, w, C * kh * kw, dst);
        return;
    }
    flipped_weights f = {w, K, C, kh * kw};
    at_sgemm_pack_a_with(C, K * kh * kw, pack_a_flipped, &f, dst);
}

void at_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *w, int K,
                             int kh, int kw, int stride, int pad, float *dx, float *workspace) {
    at_conv2d_backward_data_packed(dy, N, C, H, W, w, NULL, K, kh, kw, stride, pad, dx, workspace);
}

void at_conv2d_backward_data_packed(const float *dy, int N, int C, int H, int W, const float *w,
                                    const float *packed, int K, int kh, int kw, int stride, int pad, float *dx,
                                    float *workspace) {
    int Ho = out_size(H, kh, stride, pad), Wo = out_size(W, kw, stride, pad);
    if (N <= 0 || C <= 0) return;
    if (Ho <= 0 || Wo <= 0 || K <= 0) {
        memset(dx, 0, (size_t)N * C * H * W * sizeof *dx);
        return;
    }
    if (backward_is_forward_conv(C, kh, kw, stride, pad)) {
        im2col_src s = {dy, K, Ho, Wo, kh, kw, 1, kh - 1 - pad, kw - 1 - pad, H, W};
        flipped_weights f = {w, K, C, kh * kw};
        at_gemm_operand a = {pack_a_flipped, &f, packed, 0, 0};
        conv_gemm(&s, N, C, &a, NULL, dx, NULL);
        return;
    }
    long ckk = (long)C * kh * kw, HoWo = (long)Ho * Wo, CHW = (long)C * H * W;
    long tile = col_tile_pixels(ckk, HoWo);
    memset(dx, 0, (size_t)N * CHW * sizeof *dx);
    for (int img = 0; img < N; img++) {
        const float *dyi = dy + (long)img * K * HoWo;
        for (long q0 = 0; q0 < HoWo; q0 += tile) {
            long nt = HoWo - q0 < tile ? HoWo - q0 : tile;
            /* col[(c,ky,kx)][t] = sum_k w[k][(c,ky,kx)] * dy[k][q0 + t] */
            at_sgemm(1, 0, (int)ckk, (int)nt, K, 1.0f, w, (int)ckk, dyi + q0, (int)HoWo, 0.0f,
                     workspace, (int)nt);
            col2im_add(workspace, nt, q0, C, H, W, kh, kw, stride, pad, Ho, Wo, dx + img * CHW);
        }
    }
}
