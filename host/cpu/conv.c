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
static int imax(int a, int b) { return a > b ? a : b; }

/* Lanes lo <= j < hi of a 16-lane panel row, as two 8-lane masks. */
static inline void lane_masks(int lo, int hi, __m256i *m0, __m256i *m1) {
    const __m256i i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i i1 = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    __m256i l = _mm256_set1_epi32(lo - 1), h = _mm256_set1_epi32(hi);
    *m0 = _mm256_and_si256(_mm256_cmpgt_epi32(i0, l), _mm256_cmpgt_epi32(h, i0));
    *m1 = _mm256_and_si256(_mm256_cmpgt_epi32(i1, l), _mm256_cmpgt_epi32(h, i1));
}

/* Stride 1: each run is a contiguous piece of an input row. A panel that is
 * one run lying inside the image for every (ky, kx) (most of a large map) is
 * a plain copy of two unaligned vectors per row k; otherwise each run is a
 * masked load (masked-off lanes read nothing and give 0). */
static void pack_panel_stride1(const im2col_src *s, const pixel_run *runs, int nrun,
                               const k_row *kt, int kc, float *dst) {
    if (nrun == 1 && runs[0].len == NR && runs[0].iy0 >= 0 && runs[0].iy0 + s->kh <= s->H &&
        runs[0].ix0 >= 0 && runs[0].ix0 + NR + s->kw - 1 <= s->W) {
        const float *base = s->x + runs[0].img_off + (long)runs[0].iy0 * s->W + runs[0].ix0;
        for (int k = 0; k < kc; k++, dst += NR) {
            const float *src = base + kt[k].off;
            _mm256_store_ps(dst, _mm256_loadu_ps(src));
            _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
        }
        return;
    }
    for (int k = 0; k < kc; k++, dst += NR) {
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (int r = 0; r < nrun; r++) {
            const pixel_run *u = &runs[r];
            int iy = u->iy0 + kt[k].ky;
            if (iy < 0 || iy >= s->H) continue;
            int ix = u->ix0 + kt[k].kx;
            int lo = u->j0 + imax(0, -ix), hi = u->j0 + imin(u->len, s->W - ix);
            if (lo >= hi) continue;
            /* lane j reads src[j]; src may point outside the row, but only
             * the lanes in [lo, hi) are loaded */
            const float *src = s->x + u->img_off + kt[k].off + (long)u->iy0 * s->W + u->ix0 - u->j0;
            if (lo == 0 && hi == NR) {
                v0 = _mm256_loadu_ps(src);
                v1 = _mm256_loadu_ps(src + 8);
            } else {
                __m256i m0, m1;
                lane_masks(lo, hi, &m0, &m1);
                v0 = _mm256_or_ps(v0, _mm256_maskload_ps(src, m0));
                v1 = _mm256_or_ps(v1, _mm256_maskload_ps(src + 8, m1));
            }
        }
        _mm256_store_ps(dst, v0);
        _mm256_store_ps(dst + 8, v1);
    }
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

/* at_pack_fn for the B operand: pixels [first, first+count), rows [k0, k0+kc). */
static void pack_b_im2col(const void *ctx, int first, int count, int k0, int kc, float *dst) {
    const im2col_src *s = ctx;
    k_row kt[K_ROWS];
    pixel_run runs[NR];
    long panel_floats = (long)kc * NR;
    for (int kb = 0; kb < kc; kb += K_ROWS) {
        int kn = imin(K_ROWS, kc - kb);
        k_rows(s, k0 + kb, kn, kt);
        for (int p = 0; p < count; p += NR) {
            int nrun = panel_runs(s, (long)first + p, imin(NR, count - p), runs);
            float *d = dst + p / NR * panel_floats + (long)kb * NR;
#ifdef AT_CONV_AVX2
            if (s->stride == 1) {
                pack_panel_stride1(s, runs, nrun, kt, kn, d);
                continue;
            }
#endif
            pack_panel_lanes(s, runs, nrun, kt, kn, d);
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

/* y (NCHW, channels M) = A * implicit-im2col(src) + bias, for every image. */
static void conv_gemm(const im2col_src *s, int N, int M, const at_gemm_operand *a,
                      const float *bias, float *y) {
    long HoWo = (long)s->Ho * s->Wo;
    at_gemm_operand b = {pack_b_im2col, s};
    at_gemm_output out = {y, HoWo, HoWo, (long)M * HoWo, bias};
    at_sgemm_ex(M, (int)(N * HoWo), s->C * s->kh * s->kw, 1.0f, a, &b, 0.0f, &out);
}

void at_conv2d_forward(const float *x, int N, int C, int H, int W, const float *w, const float *b,
                       int K, int kh, int kw, int stride, int pad, float *y, float *workspace) {
    (void)workspace;
    int Ho = out_size(H, kh, stride, pad), Wo = out_size(W, kw, stride, pad);
    if (N <= 0 || K <= 0 || Ho <= 0 || Wo <= 0) return;
    im2col_src s = {x, C, H, W, kh, kw, stride, pad, pad, Ho, Wo};
    at_matrix_operand wm = {w, (long)C * kh * kw, 0};
    at_gemm_operand a = {at_pack_a_matrix, &wm};
    conv_gemm(&s, N, K, &a, b, y);
}

static int backward_is_forward_conv(int kh, int kw, int stride, int pad) {
    return stride == 1 && pad < kh && pad < kw;
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
    if (backward_is_forward_conv(kh, kw, stride, pad) || Ho <= 0 || Wo <= 0) return 0;
    long ckk = (long)C * kh * kw;
    return (size_t)(ckk * col_tile_pixels(ckk, (long)Ho * Wo));
}

/* dx[c] += the columns [q0, q0+nt) of col (rows (c, ky, kx), row stride nt)
 * scattered back to the input pixels they were read from. Threads own whole
 * channels, and each channel is summed in a fixed order: deterministic. */
static void col2im_add(const float *col, long nt, long q0, int C, int H, int W, int kh, int kw,
                       int stride, int pad, int Wo, float *dx) {
    long work = (long)C * kh * kw * nt;
#pragma omp parallel for schedule(static) if (work > (1L << 16) && !omp_in_parallel())
    for (int c = 0; c < C; c++) {
        float *plane = dx + (long)c * H * W;
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                const float *row = col + (((long)c * kh + ky) * kw + kx) * nt;
                int oy = (int)(q0 / Wo), ox = (int)(q0 % Wo);
                for (long t = 0; t < nt; t++) {
                    int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W) plane[(long)iy * W + ix] += row[t];
                    if (++ox == Wo) ox = 0, oy++;
                }
            }
    }
}

void at_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *w, int K,
                             int kh, int kw, int stride, int pad, float *dx, float *workspace) {
    int Ho = out_size(H, kh, stride, pad), Wo = out_size(W, kw, stride, pad);
    if (N <= 0 || C <= 0) return;
    if (Ho <= 0 || Wo <= 0 || K <= 0) {
        memset(dx, 0, (size_t)N * C * H * W * sizeof *dx);
        return;
    }
    if (backward_is_forward_conv(kh, kw, stride, pad)) {
        im2col_src s = {dy, K, Ho, Wo, kh, kw, 1, kh - 1 - pad, kw - 1 - pad, H, W};
        flipped_weights f = {w, K, C, kh * kw};
        at_gemm_operand a = {pack_a_flipped, &f};
        conv_gemm(&s, N, C, &a, NULL, dx);
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
            col2im_add(workspace, nt, q0, C, H, W, kh, kw, stride, pad, Wo, dx + img * CHW);
        }
    }
}
