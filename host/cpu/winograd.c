/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (see winograd.h), per chunk of
 * output tiles, with m = 2 or 4 and an a x a input tile, a = m + 2:
 *
 *   V[e][c][t] = (B^T d B)[e]   the a x a input tile t of channel c
 *   M[e] = U[e] V[e]            a*a GEMMs, K x C times C x T (host/cpu/sgemm.h)
 *   y tile t of channel k = A^T M[.][k][t] A + b[k]   (m x m)
 *
 * A chunk's V and M (16*T*(C+K) floats) stay in one thread's share of the
 * caches between the three steps, so the transformed tiles never make a trip
 * through memory for the whole layer. Chunks are independent: threads take
 * whole chunks when there are enough of them, otherwise the chunks run one
 * after the other with the GEMMs threaded inside. Either way each output is
 * the same arithmetic (the SGEMM's sums do not depend on N or on threads). */
#include "cpu/winograd.h"

#include "cpu/thread_scratch.h"

#include "cpu/sgemm.h"

#include <omp.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && !defined(AT_CONV_PORTABLE)
#define AT_WINO_AVX2 1
#include <immintrin.h>
#endif

/* Floats of V and M per chunk: 8 MiB, two threads' chunks inside the 32 MiB
 * L3 of the project's machine, and T = 128 tiles at C = K = 512, so that
 * repacking U[e] per GEMM stays small next to its work (VGG16's convs at
 * batch 1: 6 % faster than 4 MiB chunks, 16 MiB no better). */
#ifndef CHUNK_FLOATS
#define CHUNK_FLOATS (1L << 21)
#endif
#define MAX_CHUNK_TILES 1024

/* Floats between two of the 16 planes of V or M beyond their size: with
 * C*T a power of two (T = 512 at C = 64) the 16 streams a transform writes
 * would all map to the same cache sets; 64 floats apart they spread over
 * 16 sets (measured: VGG16's second layer at batch 8 4x faster). */
#define PLANE_PAD 64

static long lmin(long a, long b) { return a < b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

int at_winograd_applies(int C, int K, int kh, int kw, int stride, int pad) {
    return kh == 3 && kw == 3 && stride == 1 && pad >= 0 && pad <= 2 && C >= 16 && K >= 16;
}

int at_winograd_rule(int C, int K, int Ho, int Wo) {
    if (Ho >= AT_WINO4_MIN_SIDE && Wo >= AT_WINO4_MIN_SIDE) return 4;
    return Ho >= AT_WINO4_SMALL_SIDE && Wo >= AT_WINO4_SMALL_SIDE && (long)C * K <= AT_WINO4_SMALL_MAX_CK ? 4 : 2;
}

/* Points per tile side: a = m + 2 (4 for F(2x2), 6 for F(4x4)). */
static int tile_points(int m) { return m + 2; }

/* Floats of one point's kernel matrix, packed for the SGEMM (rows: the
 * conv's outputs). */
static size_t point_floats(int rows, int cols) { return at_sgemm_packed_a_floats(rows, cols); }

size_t at_winograd_weights_floats(int K, int C, int m) {
    size_t f = point_floats(K, C), b = point_floats(C, K);
    return (size_t)tile_points(m) * tile_points(m) * (f > b ? f : b);
}

/* G g G^T with G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]; g[3][3] at stride gs
 * between rows and gx between columns (the flipped kernel reads backwards). */
static void transform_kernel(const float *g, long gs, long gx, float u[16]) {
    float t[4][3];
    for (int j = 0; j < 3; j++) {
        float g0 = g[j * gx], g1 = g[gs + j * gx], g2 = g[2 * gs + j * gx];
        t[0][j] = g0;
        t[1][j] = 0.5f * (g0 + g1 + g2);
        t[2][j] = 0.5f * (g0 - g1 + g2);
        t[3][j] = g2;
    }
    for (int i = 0; i < 4; i++) {
        u[i * 4 + 0] = t[i][0];
        u[i * 4 + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[i * 4 + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[i * 4 + 3] = t[i][2];
    }
}

/* F(4x4, 3x3) with the interpolation points 0, 1, -1, 2, -1/2, inf rather
 * than Lavin & Gray's 0, +-1, +-2, inf: about 2.5x smaller worst error for
 * the same work in the GEMMs (Barabasz et al., "Error analysis and
 * improving the accuracy of Winograd convolution for deep neural
 * networks", 2020; measured here in float32: 3.0e-6 against 8.2e-6 of the
 * largest output, 128 channels). Rows scaled by powers of two (exact):
 *   G   = [1 0 0; 1/6 1/6 1/6; 1/6 -1/6 1/6; 1/30 1/15 2/15; 16/15 -8/15 4/15; 0 0 1]
 *   B^T = [1 3/2 -2 -3/2 1 0; 0 2 5 1 -2 0; 0 2 1 -5 2 0; 0 -1 -2 1 2 0;
 *          0 -2 1 2 -1 0; 0 1 3/2 -2 -3/2 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -1/2 0; 0 1 1 4 1/4 0; 0 1 -1 8 -1/8 1]
 * G g G^T is computed in double and rounded once (G's sixths and fifteenths
 * are not exact in float). */
static const double G4[6][3] = {{1, 0, 0},
                                {1.0 / 6, 1.0 / 6, 1.0 / 6},
                                {1.0 / 6, -1.0 / 6, 1.0 / 6},
                                {1.0 / 30, 1.0 / 15, 2.0 / 15},
                                {16.0 / 15, -8.0 / 15, 4.0 / 15},
                                {0, 0, 1}};

/* TILE4_LANES kernels side by side (lane l: the kernel at g[l], taps at
 * strides gs, gx), so that the compiler vectorises across them; u[e][l]. */
#define TILE4_LANES 16
static void transform_kernels4(const float *const *g, int n, long gs, long gx, float u[36][TILE4_LANES]) {
    double d[3][3][TILE4_LANES], t[6][3][TILE4_LANES];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int l = 0; l < TILE4_LANES; l++) d[a][b][l] = l < n ? g[l][a * gs + b * gx] : 0.0;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
            for (int l = 0; l < TILE4_LANES; l++)
                t[i][j][l] = G4[i][0] * d[0][j][l] + G4[i][1] * d[1][j][l] + G4[i][2] * d[2][j][l];
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 6; k++)
            for (int l = 0; l < TILE4_LANES; l++)
                u[i * 6 + k][l] = (float)(t[i][0][l] * G4[k][0] + t[i][1][l] * G4[k][1] + t[i][2][l] * G4[k][2]);
}

int at_winograd_transform_weights(const float *w, int K, int C, int backward, int m, float *u) {
    /* rows of U[e]: output channels of the conv it computes */
    int rows = backward ? C : K, cols = backward ? K : C, E = tile_points(m) * tile_points(m);
    long plane = (long)rows * cols;
    float *t = malloc(sizeof(float) * E * plane);
    if (!t) return -1;
    /* backward: w[q][r][2-ky][2-kx]: start at the last tap, step back */
    long gs = backward ? -3 : 3, gx = backward ? -1 : 1;
    if (m == 4) {
        long blocks = (plane + TILE4_LANES - 1) / TILE4_LANES;
#pragma omp parallel for schedule(static) if (plane > 4096 && !omp_in_parallel())
        for (long bk = 0; bk < blocks; bk++) {
            long rc0 = bk * TILE4_LANES;
            int n = (int)lmin(TILE4_LANES, plane - rc0);
            const float *g[TILE4_LANES];
            float v[36][TILE4_LANES];
            for (int l = 0; l < n; l++) {
                long r = (rc0 + l) / cols, q = (rc0 + l) % cols;
                g[l] = backward ? w + (q * C + r) * 9 + 8 : w + (r * C + q) * 9;
            }
            transform_kernels4(g, n, gs, gx, v);
            for (int e = 0; e < E; e++) memcpy(t + e * plane + rc0, v[e], sizeof(float) * n);
        }
    } else {
#pragma omp parallel for schedule(static) if (plane > 4096 && !omp_in_parallel())
        for (long rc = 0; rc < plane; rc++) {
            long r = rc / cols, q = rc % cols;
            float v[16];
            transform_kernel(backward ? w + (q * C + r) * 9 + 8 : w + (r * C + q) * 9, gs, gx, v);
            for (int e = 0; e < E; e++) t[e * plane + rc] = v[e];
        }
    }
    /* packed once here, not by every GEMM of every chunk */
    size_t pf = point_floats(rows, cols);
#pragma omp parallel for schedule(static) if (plane > 4096 && !omp_in_parallel())
    for (int e = 0; e < E; e++) at_sgemm_pack_a(rows, cols, t + e * plane, cols, u + e * pf);
    free(t);
    return 0;
}

/* Tiles of the GEMMs' N per chunk, for these channel counts and tile. */
static long chunk_tiles(int C, int K, int m) {
    long t = CHUNK_FLOATS / ((long)tile_points(m) * tile_points(m) * (C + K));
    t -= t % AT_SGEMM_NR;
    if (t < AT_SGEMM_NR) t = AT_SGEMM_NR;
    return lmin(t, MAX_CHUNK_TILES);
}

/* Floats of one thread's chunk buffers: V and M, planes padded apart, and
 * F(4x4)'s rows of 8-tile groups. */
static long chunk_floats(int C, int K, int m) {
    long E = (long)tile_points(m) * tile_points(m), T = chunk_tiles(C, K, m);
    return E * ((T + 8) * (C + K) + 2 * PLANE_PAD);
}

size_t at_winograd_workspace_floats(int C, int K) {
    long f2 = chunk_floats(C, K, 2), f4 = chunk_floats(C, K, 4);
    return (size_t)omp_get_max_threads() * (f2 > f4 ? f2 : f4);
}

typedef struct {
    const float *x; /* [N][C][H][W] */
    int C, H, W, K, pad, Ho, Wo, th, tw, m;
    const float *u, *b;
    float *y;
    const float *residual; /* added to y, then relu (at_conv_epilogue) */
    int relu;
} wino_conv;

/* The epilogue applied to an output v before it is stored at y, as
 * the SGEMM's epilogue computes it: applied in registers, since reading back what
 * the (masked) stores just wrote stalls on store forwarding. */
static inline float finish_one(const wino_conv *s, const float *y, float v) {
    if (s->residual) v = v + s->residual[y - s->y];
    return s->relu ? (v > 0 ? v : 0.0f) : v;
}
/* finish_one where epi (a constant once inlined), else v. */
static inline float finish_if(int epi, const wino_conv *s, const float *y, float v) {
    return epi ? finish_one(s, y, v) : v;
}
#ifdef AT_WINO_AVX2
/* The same on 4 or 8 lanes, lanes outside mask (or all, full) left out of the residual. */
static inline __m128 finish4(const wino_conv *s, const float *y, __m128 v, int full, __m128i mask) {
    if (s->residual) {
        const float *r = s->residual + (y - s->y);
        v = _mm_add_ps(v, full ? _mm_loadu_ps(r) : _mm_maskload_ps(r, mask));
    }
    return s->relu ? _mm_max_ps(v, _mm_setzero_ps()) : v; /* NaN and -0 give the second operand, +0 */
}
static inline __m256 finish8(const wino_conv *s, const float *y, __m256 v) {
    if (s->residual) v = _mm256_add_ps(v, _mm256_loadu_ps(s->residual + (y - s->y)));
    return s->relu ? _mm256_max_ps(v, _mm256_setzero_ps()) : v;
}
#endif

#ifdef AT_WINO_AVX2
/* 8 tiles side by side, all inside the image: lane l of d[r][k] is input
 * column ix0 + 2l + k of row r, split into even and odd columns from two
 * pairs of loads. The same adds in the same order as the scalar path, so
 * both give the same bits. */
static inline __m256 evens(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xd8));
}
static inline __m256 odds(__m256 a, __m256 b) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xdd)), 0xd8));
}

static void input_transform8(const wino_conv *s, const float *xi, int iy0, int ix0, float *V, long plane, int T,
                             int c0, int c1) {
    long HW = (long)s->H * s->W;
    for (int c = c0; c < c1; c++) {
        const float *p = xi + c * HW + (long)iy0 * s->W + ix0;
        __m256 d[4][4];
        for (int r = 0; r < 4; r++, p += s->W) {
            __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
            __m256 a2 = _mm256_loadu_ps(p + 2), b2 = _mm256_loadu_ps(p + 10);
            d[r][0] = evens(a, b), d[r][1] = odds(a, b), d[r][2] = evens(a2, b2), d[r][3] = odds(a2, b2);
        }
        __m256 m[4][4];
        for (int k = 0; k < 4; k++) {
            m[0][k] = _mm256_sub_ps(d[0][k], d[2][k]);
            m[1][k] = _mm256_add_ps(d[1][k], d[2][k]);
            m[2][k] = _mm256_sub_ps(d[2][k], d[1][k]);
            m[3][k] = _mm256_sub_ps(d[1][k], d[3][k]);
        }
        float *v = V + (long)c * T;
        for (int r = 0; r < 4; r++) {
            _mm256_storeu_ps(v + (r * 4 + 0) * plane, _mm256_sub_ps(m[r][0], m[r][2]));
            _mm256_storeu_ps(v + (r * 4 + 1) * plane, _mm256_add_ps(m[r][1], m[r][2]));
            _mm256_storeu_ps(v + (r * 4 + 2) * plane, _mm256_sub_ps(m[r][2], m[r][1]));
            _mm256_storeu_ps(v + (r * 4 + 3) * plane, _mm256_sub_ps(m[r][1], m[r][3]));
        }
    }
}
#endif

/* V[e][c][j] for tiles t0 + j, j < T (chunk row stride ld = T), channels
 * c0 <= c < c1. */
static void input_transform(const wino_conv *s, long t0, int T, int c0, int c1, float *V) {
    long HW = (long)s->H * s->W, per_img = (long)s->th * s->tw, plane = (long)s->C * T + PLANE_PAD;
    for (int j = 0; j < T; j++) {
        long t = t0 + j, img = t / per_img;
        int q = (int)(t % per_img), iy0 = q / s->tw * 2 - s->pad, ix0 = q % s->tw * 2 - s->pad;
        int inside = iy0 >= 0 && ix0 >= 0 && iy0 + 4 <= s->H && ix0 + 4 <= s->W;
        const float *xi = s->x + img * s->C * HW;
#ifdef AT_WINO_AVX2
        /* 8 tiles of this tile row, every one inside */
        if (inside && j + 8 <= T && q % s->tw + 8 <= s->tw && ix0 + 18 <= s->W) {
            input_transform8(s, xi, iy0, ix0, V + j, plane, T, c0, c1);
            j += 7;
            continue;
        }
#endif
        for (int c = c0; c < c1; c++) {
            const float *xc = xi + c * HW;
            float d[4][4];
            if (inside) {
                const float *p = xc + (long)iy0 * s->W + ix0;
                for (int r = 0; r < 4; r++)
                    for (int k = 0; k < 4; k++) d[r][k] = p[(long)r * s->W + k];
            } else {
                for (int r = 0; r < 4; r++)
                    for (int k = 0; k < 4; k++) {
                        int iy = iy0 + r, ix = ix0 + k;
                        d[r][k] = iy >= 0 && iy < s->H && ix >= 0 && ix < s->W ? xc[(long)iy * s->W + ix] : 0.0f;
                    }
            }
            /* B^T d, then (.) B; B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
            float m[4][4];
            for (int k = 0; k < 4; k++) {
                m[0][k] = d[0][k] - d[2][k];
                m[1][k] = d[1][k] + d[2][k];
                m[2][k] = d[2][k] - d[1][k];
                m[3][k] = d[1][k] - d[3][k];
            }
            float *v = V + (long)c * T + j;
            for (int r = 0; r < 4; r++) {
                v[(r * 4 + 0) * plane] = m[r][0] - m[r][2];
                v[(r * 4 + 1) * plane] = m[r][1] + m[r][2];
                v[(r * 4 + 2) * plane] = m[r][2] - m[r][1];
                v[(r * 4 + 3) * plane] = m[r][1] - m[r][3];
            }
        }
    }
}

#ifdef AT_WINO_AVX2
/* Two output rows of 8 whole tiles side by side (the scalar path's adds, in
 * its order), the lanes of columns 2l and 2l+1 interleaved into 16 floats. */
static inline __attribute__((always_inline)) void output_transform8(const wino_conv *s, const float *mk, long plane,
                                                                    float bias, float *yk, int Wo, int epi) {
    __m256 m[16], r0[4], r1[4], b = _mm256_set1_ps(bias);
    for (int e = 0; e < 16; e++) m[e] = _mm256_loadu_ps(mk + e * plane);
    for (int c = 0; c < 4; c++) {
        r0[c] = _mm256_add_ps(_mm256_add_ps(m[c], m[4 + c]), m[8 + c]);
        r1[c] = _mm256_sub_ps(_mm256_sub_ps(m[4 + c], m[8 + c]), m[12 + c]);
    }
    __m256 *r[2] = {r0, r1};
    for (int row = 0; row < 2; row++, yk += Wo) {
        __m256 *q = r[row];
        __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(q[0], q[1]), q[2]), b);
        __m256 y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(q[1], q[2]), q[3]), b);
        __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
        const __m256 v0 = _mm256_permute2f128_ps(lo, hi, 0x20), v1 = _mm256_permute2f128_ps(lo, hi, 0x31);
        _mm256_storeu_ps(yk, epi ? finish8(s, yk, v0) : v0);
        _mm256_storeu_ps(yk + 8, epi ? finish8(s, yk + 8, v1) : v1);
    }
}
#endif

/* y tiles t0 + j from M[e][k][j]: A^T m A + b[k], A^T = [1 1 1 0; 0 1 -1 -1];
 * the last row or column of a tile is dropped where Ho or Wo is odd. */
/* epi: as for output_group4_with. */
static inline __attribute__((always_inline)) void output_transform_with(const wino_conv *s, long t0, int T, int k0,
                                                                        int k1, const float *M, int epi) {
    long HoWo = (long)s->Ho * s->Wo, per_img = (long)s->th * s->tw, plane = (long)s->K * T + PLANE_PAD;
    for (int k = k0; k < k1; k++) {
        float bias = s->b ? s->b[k] : 0.0f;
        const float *mk = M + (long)k * T;
        for (int j = 0; j < T; j++) {
            long t = t0 + j, img = t / per_img;
            int q = (int)(t % per_img), oy = q / s->tw * 2, ox = q % s->tw * 2;
#ifdef AT_WINO_AVX2
            if (j + 8 <= T && q % s->tw + 8 <= s->tw && ox + 16 <= s->Wo && oy + 2 <= s->Ho) {
                float *yk = s->y + (img * s->K + k) * HoWo + (long)oy * s->Wo + ox;
                output_transform8(s, mk + j, plane, bias, yk, s->Wo, epi);
                j += 7;
                continue;
            }
#endif
            float m[16], r0[4], r1[4];
            for (int e = 0; e < 16; e++) m[e] = mk[e * plane + j];
            for (int c = 0; c < 4; c++) {
                r0[c] = m[c] + m[4 + c] + m[8 + c];
                r1[c] = m[4 + c] - m[8 + c] - m[12 + c];
            }
            float *yk = s->y + (img * s->K + k) * HoWo + (long)oy * s->Wo + ox;
            int two_cols = ox + 1 < s->Wo;
            yk[0] = finish_if(epi, s, yk, r0[0] + r0[1] + r0[2] + bias);
            if (two_cols) yk[1] = finish_if(epi, s, yk + 1, r0[1] - r0[2] - r0[3] + bias);
            if (oy + 1 < s->Ho) {
                float *y1 = yk + s->Wo;
                y1[0] = finish_if(epi, s, y1, r1[0] + r1[1] + r1[2] + bias);
                if (two_cols) y1[1] = finish_if(epi, s, y1 + 1, r1[1] - r1[2] - r1[3] + bias);
            }
        }
    }
}

static void output_transform(const wino_conv *s, long t0, int T, int k0, int k1, const float *M) {
    if (s->residual || s->relu) output_transform_with(s, t0, T, k0, k1, M, 1);
    else output_transform_with(s, t0, T, k0, k1, M, 0);
}

/* ---- F(4x4, 3x3): groups of up to 8 tiles of one tile row, one per lane ----
 *
 * Every tile runs through the same vector arithmetic whatever the group
 * (edge tiles too: their pixels outside the image are loaded as 0), so the
 * bits of a tile do not depend on the chunk or the thread it falls in. */
#ifdef AT_WINO_AVX2
typedef __m256 v8;
static inline v8 v_add(v8 a, v8 b) { return _mm256_add_ps(a, b); }
static inline v8 v_sub(v8 a, v8 b) { return _mm256_sub_ps(a, b); }
/* k * a + b, rounded once */
static inline v8 v_fma(float k, v8 a, v8 b) { return _mm256_fmadd_ps(_mm256_set1_ps(k), a, b); }
static inline v8 v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void v_store(float *p, v8 a) { _mm256_storeu_ps(p, a); }
static inline v8 v_bias(v8 a, float b) { return _mm256_add_ps(a, _mm256_set1_ps(b)); }
#else
typedef struct {
    float f[8];
} v8;
static inline v8 v_add(v8 a, v8 b) {
    for (int l = 0; l < 8; l++) a.f[l] += b.f[l];
    return a;
}
static inline v8 v_sub(v8 a, v8 b) {
    for (int l = 0; l < 8; l++) a.f[l] -= b.f[l];
    return a;
}
static inline v8 v_fma(float k, v8 a, v8 b) {
    for (int l = 0; l < 8; l++) a.f[l] = fmaf(k, a.f[l], b.f[l]);
    return a;
}
static inline v8 v_load(const float *p) {
    v8 a;
    memcpy(a.f, p, sizeof a.f);
    return a;
}
static inline void v_store(float *p, v8 a) { memcpy(p, a.f, sizeof a.f); }
static inline v8 v_bias(v8 a, float b) {
    for (int l = 0; l < 8; l++) a.f[l] += b;
    return a;
}
#endif

/* t = B^T d for 6 values at stride ds in d, written at stride ts in t. */
static inline void bt6(const v8 *d, long ds, v8 *t, long ts) {
    v8 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    v8 p = v_sub(d1, d3), q = v_sub(d2, d4), np = v_sub(d3, d1);
    t[0] = v_fma(-2.0f, d2, v_fma(1.5f, p, v_add(d0, d4)));
    t[ts] = v_fma(2.0f, v_sub(d1, d4), v_fma(5.0f, d2, d3));
    t[2 * ts] = v_fma(2.0f, v_add(d1, d4), v_fma(-5.0f, d3, d2));
    t[3 * ts] = v_fma(-2.0f, q, np);
    t[4 * ts] = v_fma(2.0f, np, q);
    t[5 * ts] = v_fma(-2.0f, d3, v_fma(1.5f, q, v_add(d1, d5)));
}

/* o = A^T m for 6 values at stride ms, 4 results at stride os. */
static inline void at6(const v8 *m, long ms, v8 *o, long os) {
    v8 m3 = m[3 * ms], m4 = m[4 * ms];
    v8 s = v_add(m[ms], m[2 * ms]), t = v_sub(m[ms], m[2 * ms]);
    o[0] = v_add(v_add(v_add(m[0], s), m3), m4);
    o[os] = v_fma(-0.5f, m4, v_fma(2.0f, m3, t));
    o[2 * os] = v_fma(0.25f, m4, v_fma(4.0f, m3, s));
    o[3 * os] = v_add(v_fma(-0.125f, m4, v_fma(8.0f, m3, t)), m[5 * ms]);
}

/* A group: n tiles side by side in one tile row of one image, the first at
 * input column ix0 / output column ox0 (tile l 4l further). */
typedef struct {
    int n, iy0, ix0, oy0, ox0;
    long img;
} tile_group;

static tile_group group_at(const wino_conv *s, long t, int T_left) {
    long per_img = (long)s->th * s->tw;
    int q = (int)(t % per_img), ty = q / s->tw, tx = q % s->tw;
    tile_group g = {imin(imin(8, T_left), s->tw - tx), ty * 4 - s->pad, tx * 4 - s->pad, ty * 4, tx * 4, t / per_img};
    return g;
}

#ifdef AT_WINO_AVX2
/* Input row r of the group's tiles: d[k] lane l = row[ix0 + 4l + k], k < 6,
 * from nine 4-float pieces (piece i: columns ix0 + 4i ..), transposed 4x4
 * in each 128-bit half (tiles 0-3 low, 4-7 high). Pieces partly outside the
 * row are masked loads (0 outside). */
static inline __m128 piece(const float *row, int col, int W, int inside) {
    if (inside) return _mm_loadu_ps(row + col);
    __m128i i = _mm_add_epi32(_mm_set1_epi32(col), _mm_setr_epi32(0, 1, 2, 3));
    __m128i m = _mm_and_si128(_mm_cmpgt_epi32(i, _mm_set1_epi32(-1)), _mm_cmplt_epi32(i, _mm_set1_epi32(W)));
    return _mm_maskload_ps(row + col, m);
}
static inline void load_row(const float *row, int ix0, int W, int inside, v8 d[6]) {
    __m128 p[9];
    for (int i = 0; i < 9; i++) p[i] = piece(row, ix0 + 4 * i, W, inside);
    __m256 a0 = _mm256_set_m128(p[4], p[0]), a1 = _mm256_set_m128(p[5], p[1]);
    __m256 a2 = _mm256_set_m128(p[6], p[2]), a3 = _mm256_set_m128(p[7], p[3]);
    __m256 a4 = _mm256_set_m128(p[8], p[4]);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    d[0] = _mm256_shuffle_ps(t0, t2, 0x44), d[1] = _mm256_shuffle_ps(t0, t2, 0xee);
    d[2] = _mm256_shuffle_ps(t1, t3, 0x44), d[3] = _mm256_shuffle_ps(t1, t3, 0xee);
    /* columns 4, 5 of tile l are columns 0, 1 of the pieces one further on */
    __m256 t4 = _mm256_unpacklo_ps(a1, a2), t5 = _mm256_unpacklo_ps(a3, a4);
    d[4] = _mm256_shuffle_ps(t4, t5, 0x44), d[5] = _mm256_shuffle_ps(t4, t5, 0xee);
}
#endif

/* V[e][c][j + l] for the group's tiles (row stride ld: whole groups of 8). */
#define IN_PREFETCH_CHANNELS 4
#define OUT_PREFETCH_CHANNELS 4
static void input_group4(const wino_conv *s, const tile_group *g, float *V, long plane, int ld, int c0, int c1) {
    long HW = (long)s->H * s->W;
    const float *xi = s->x + g->img * s->C * HW;
#ifdef AT_WINO_AVX2
    int inside = g->ix0 >= 0 && g->ix0 + 36 <= s->W;
#endif
    for (int c = c0; c < c1; c++) {
        const float *xc = xi + c * HW;
        v8 d[36], t[36];
        /* the same 6 rows of the channel IN_PREFETCH_CHANNELS on: plane after plane, a stride the hardware
         * prefetchers miss (ResNet-50 at batch 1, 18.31 -> 17.88 ms; VGG16 45.1 -> 43.6) */
        if (c + IN_PREFETCH_CHANNELS < c1)
            for (int r = 0; r < 6; r++) {
                const int iy = g->iy0 + r;
                if (iy < 0 || iy >= s->H) continue;
                const float *ahead = xc + IN_PREFETCH_CHANNELS * HW + (long)iy * s->W + (g->ix0 > 0 ? g->ix0 : 0);
                for (int j = 0; j < 36; j += 16) __builtin_prefetch(ahead + j, 0, 3);
                __builtin_prefetch(ahead + 35, 0, 3);
            }
        for (int r = 0; r < 6; r++) {
            int iy = g->iy0 + r;
            if (iy < 0 || iy >= s->H) {
                for (int k = 0; k < 6; k++) d[r * 6 + k] = v_load((const float[8]){0});
                continue;
            }
            const float *row = xc + (long)iy * s->W;
#ifdef AT_WINO_AVX2
            load_row(row, g->ix0, s->W, inside, d + r * 6);
#else
            float v[6][8] = {{0}};
            for (int l = 0; l < g->n; l++)
                for (int k = 0; k < 6; k++) {
                    int ix = g->ix0 + 4 * l + k;
                    if (ix >= 0 && ix < s->W) v[k][l] = row[ix];
                }
            for (int k = 0; k < 6; k++) d[r * 6 + k] = v_load(v[k]);
#endif
        }
        for (int k = 0; k < 6; k++) bt6(d + k, 6, t + k, 6);  /* columns: B^T d */
        for (int r = 0; r < 6; r++) bt6(t + r * 6, 1, d + r * 6, 1); /* rows: (.) B */
        float *v = V + (long)c * ld;
        for (int e = 0; e < 36; e++) v_store(v + e * plane, d[e]);
    }
}

static void input_transform4(const wino_conv *s, long t0, int T, int ld, int c0, int c1, float *V) {
    long plane = (long)s->C * ld + PLANE_PAD;
    for (int j = 0; j < T;) {
        tile_group g = group_at(s, t0 + j, T - j);
        input_group4(s, &g, V + j, plane, ld, c0, c1);
        j += g.n;
    }
}

/* y for the group's tiles from M[e][k][j + l]: A^T m A + b[k]; rows and
 * columns past Ho, Wo are dropped. */
/* epi: whether s has an epilogue (a constant once inlined, so that passes
 * without one, the data gradients among them, test nothing per store;
 * output_group4 and output_transform pick the form). */
static inline __attribute__((always_inline)) void output_group4_with(const wino_conv *s, const tile_group *g,
                                                                     const float *M, long plane, int ld, int k0,
                                                                     int k1, int epi) {
    long HoWo = (long)s->Ho * s->Wo;
#ifdef AT_WINO_AVX2
    __m128i mask[8];
    int whole = g->n == 8 && g->ox0 + 32 <= s->Wo;
    for (int l = 0; l < 8; l++) {
        __m128i i = _mm_add_epi32(_mm_set1_epi32(g->ox0 + 4 * l), _mm_setr_epi32(0, 1, 2, 3));
        mask[l] = l < g->n ? _mm_cmplt_epi32(i, _mm_set1_epi32(s->Wo)) : _mm_setzero_si128();
    }
#endif
    for (int k = k0; k < k1; k++) {
        const float *mk = M + (long)k * ld;
        v8 m[36], t[24], o[16];
        for (int e = 0; e < 36; e++) m[e] = v_load(mk + e * plane);
        for (int c = 0; c < 6; c++) at6(m + c, 6, t + c, 6); /* columns: A^T m */
        for (int r = 0; r < 4; r++) at6(t + r * 6, 1, o + r * 4, 1); /* rows: (.) A */
        float bias = s->b ? s->b[k] : 0.0f;
        float *yk = s->y + (g->img * s->K + k) * HoWo + (long)g->oy0 * s->Wo + g->ox0;
        /* the rows this group writes OUT_PREFETCH_CHANNELS planes on, fetched for writing (and their
         * residual): the stores then wait for no line (ResNet-50 at batch 1, 17.82 -> 17.65 ms; VGG16
         * 43.7 -> 42.2) */
        if (k + OUT_PREFETCH_CHANNELS < k1)
            for (int r = 0; r < 4 && g->oy0 + r < s->Ho; r++) {
                const float *ahead = yk + OUT_PREFETCH_CHANNELS * HoWo + (long)r * s->Wo;
                __builtin_prefetch(ahead, 1, 3);
                __builtin_prefetch(ahead + 16, 1, 3);
                __builtin_prefetch(ahead + 31, 1, 3);
                if (epi && s->residual) {
                    const float *ra = s->residual + (ahead - s->y);
                    __builtin_prefetch(ra, 0, 3);
                    __builtin_prefetch(ra + 16, 0, 3);
                    __builtin_prefetch(ra + 31, 0, 3);
                }
            }
        for (int r = 0; r < 4 && g->oy0 + r < s->Ho; r++, yk += s->Wo) {
            v8 o0 = v_bias(o[r * 4], bias), o1 = v_bias(o[r * 4 + 1], bias);
            v8 o2 = v_bias(o[r * 4 + 2], bias), o3 = v_bias(o[r * 4 + 3], bias);
#ifdef AT_WINO_AVX2
            /* the 4x4 transposes back: x_i = tile i (low), tile i + 4 (high) */
            __m256 t0 = _mm256_unpacklo_ps(o0, o1), t1 = _mm256_unpackhi_ps(o0, o1);
            __m256 t2 = _mm256_unpacklo_ps(o2, o3), t3 = _mm256_unpackhi_ps(o2, o3);
            __m256 x[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                           _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee)};
            for (int l = 0; l < 8; l++) {
                __m128 v = l < 4 ? _mm256_castps256_ps128(x[l]) : _mm256_extractf128_ps(x[l - 4], 1);
                if (epi) v = finish4(s, yk + 4 * l, v, whole, mask[l]);
                if (whole) _mm_storeu_ps(yk + 4 * l, v);
                else _mm_maskstore_ps(yk + 4 * l, mask[l], v);
            }
#else
            const v8 *q[4] = {&o0, &o1, &o2, &o3};
            for (int l = 0; l < g->n; l++)
                for (int i = 0; i < 4 && g->ox0 + 4 * l + i < s->Wo; i++)
                    yk[4 * l + i] = finish_if(epi, s, yk + 4 * l + i, q[i]->f[l]);
#endif
        }
    }
}

static void output_group4(const wino_conv *s, const tile_group *g, const float *M, long plane, int ld, int k0, int k1) {
    if (s->residual || s->relu) output_group4_with(s, g, M, plane, ld, k0, k1, 1);
    else output_group4_with(s, g, M, plane, ld, k0, k1, 0);
}

static void output_transform4(const wino_conv *s, long t0, int T, int ld, int k0, int k1, const float *M) {
    long plane = (long)s->K * ld + PLANE_PAD;
    for (int j = 0; j < T;) {
        tile_group g = group_at(s, t0 + j, T - j);
        output_group4(s, &g, M + j, plane, ld, k0, k1);
        j += g.n;
    }
}

/* The three steps of a chunk, on channels [c0, c1), points, output
 * channels [k0, k1). */
typedef struct {
    const wino_conv *s;
    long t0;
    int T, E, ld;
    long vplane, mplane;
    float *V, *M;
} chunk;

static chunk chunk_at(const wino_conv *s, long t0, int T, float *ws) {
    /* F(4x4) stores 8 lanes per group, of which the last may hold 1 tile:
     * its rows have room for 8 past T */
    int E = tile_points(s->m) * tile_points(s->m), ld = s->m == 4 ? T + 8 : T;
    long vplane = (long)s->C * ld + PLANE_PAD, mplane = (long)s->K * ld + PLANE_PAD;
    chunk ch = {s, t0, T, E, ld, vplane, mplane, ws, ws + E * vplane};
    return ch;
}
static void chunk_input(const chunk *ch, int c0, int c1) {
    if (ch->s->m == 4) input_transform4(ch->s, ch->t0, ch->T, ch->ld, c0, c1, ch->V);
    else input_transform(ch->s, ch->t0, ch->T, c0, c1, ch->V);
}
/* Point e's GEMM for output channels [k0, k1) (k0 a multiple of MR). */
static void chunk_gemm(const chunk *ch, int e, int k0, int k1) {
    const wino_conv *s = ch->s;
    at_matrix_operand vm = {ch->V + e * ch->vplane, ch->ld, 0};
    at_gemm_operand a = {NULL, NULL, s->u + e * point_floats(s->K, s->C), s->K, k0};
    at_gemm_operand b = {at_pack_b_matrix, &vm, NULL, 0, 0};
    at_gemm_output out = {ch->M + e * ch->mplane + (long)k0 * ch->ld, ch->ld, ch->T, 0, NULL, NULL, 0};
    at_sgemm_ex(k1 - k0, ch->T, s->C, 1.0f, &a, &b, 0.0f, &out);
}
static void chunk_output(const chunk *ch, int k0, int k1) {
    if (ch->s->m == 4) output_transform4(ch->s, ch->t0, ch->T, ch->ld, k0, k1, ch->M);
    else output_transform(ch->s, ch->t0, ch->T, k0, k1, ch->M);
}

/* One chunk of tiles on the calling thread: input transform, the GEMMs
 * (threaded inside when called outside a parallel region), output transform. */
static void run_chunk(const wino_conv *s, long t0, int T, float *ws) {
    chunk ch = chunk_at(s, t0, T, ws);
    chunk_input(&ch, 0, s->C);
    for (int e = 0; e < ch.E; e++) chunk_gemm(&ch, e, 0, s->K);
    chunk_output(&ch, 0, s->K);
}

/* Output channels per work item when the threads share a chunk: at least
 * this many. */
#define SHARED_ROWS (4 * AT_SGEMM_MR)

/* Inside a parallel region: every thread transforms the chunk's input into
 * its own buffers, then the threads take blocks of output channels (their
 * GEMM rows and output transform) from a dynamic schedule, one block per
 * thread when K allows: each GEMM then has all of a thread's rows, and its
 * B is packed once per thread instead of once per block (ResNet-50 at batch
 * 1, layer3 and layer4: blocks of 64 rows 20.4-21.0 ms, of K / 2 19.7-19.9).
 * Each thread reads only its blocks' share of the weights. The same
 * arithmetic as run_chunk. */
static void run_chunk_shared(const wino_conv *s, long t0, int T, float *ws) {
    chunk ch = chunk_at(s, t0, T, ws);
    chunk_input(&ch, 0, s->C);
    const int nt = omp_get_num_threads(), per = (s->K + nt - 1) / nt;
    const int rows = imax(SHARED_ROWS, (per + AT_SGEMM_MR - 1) / AT_SGEMM_MR * AT_SGEMM_MR);
    const int blocks = (s->K + rows - 1) / rows;
#pragma omp for schedule(dynamic, 1) nowait
    for (int kb = 0; kb < blocks; kb++) {
        int k0 = kb * rows, k1 = imin(s->K, k0 + rows);
        for (int e = 0; e < ch.E; e++) chunk_gemm(&ch, e, k0, k1);
        chunk_output(&ch, k0, k1);
    }
}

/* t tiles rounded up to whole GEMM panels. */
static long whole_panels(long t) { return (t + AT_SGEMM_NR - 1) / AT_SGEMM_NR * AT_SGEMM_NR; }

/* The calling thread's chunk buffers: its own scratch (cpu/thread_scratch.h),
 * whose lines no other thread touches, or with no memory for it its slice of
 * the workspace. Slices of one workspace start at a multiple of the chunk
 * size, which differs from conv to conv, so each forward moved lines that
 * one thread had written in one conv to the other core in the next (VGG16
 * at batch 1: 46.9 -> 45.6 ms). */
static float *own_chunk_buffers(float *workspace, long per_thread) {
    float *own = at_thread_scratch(AT_SCRATCH_WINOGRAD, (size_t)per_thread);
    return own ? own : workspace + omp_get_thread_num() * per_thread;
}

static void wino_run(const wino_conv *s, int N, float *workspace) {
    long tiles = (long)N * s->th * s->tw, Tmax = chunk_tiles(s->C, s->K, s->m);
    long nchunk = (tiles + Tmax - 1) / Tmax;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    long per_thread = chunk_floats(s->C, s->K, s->m);
    /* Chunks taken dynamically by the threads (any split gives the same
     * outputs; a thread that loses its core to another job leaves its chunks
     * to the others), of T tiles:
     *   - many chunks: equal ones, a multiple of the threads, in whole GEMM
     *     panels;
     *   - few tiles and few output channels (ResNet-50's 64-channel convs at
     *     56x56: 196 tiles in one chunk, one block of output channels), where
     *     sharing the chunk below would leave one thread all the GEMMs: one
     *     chunk per thread;
     *   - at least two panels of tiles per thread: the same number of
     *     whole-panel chunks per thread;
     *   - fewer tiles (small maps at small batches): chunks shared by the
     *     threads, split by output channels (run_chunk_shared). */
    const int blocks = (s->K + SHARED_ROWS - 1) / SHARED_ROWS;
    long T = 0;
    if (threads > 1 && nchunk >= 2 * threads) {
        nchunk = (nchunk + threads - 1) / threads * threads;
        T = lmin(Tmax, whole_panels((tiles + nchunk - 1) / nchunk));
    } else if (threads > 1 && blocks < 2 * threads && tiles >= (long)threads * AT_SGEMM_NR) {
        T = lmin(Tmax, (tiles + threads - 1) / threads);
    } else if (threads > 1 && tiles >= 2L * threads * AT_SGEMM_NR) {
        /* ResNet-50's 256- and 512-channel convs at batch 8: 128 tiles, 2
         * chunks of 64, where sharing each chunk would transform every input
         * tile in both threads */
        const long per = (tiles + threads - 1) / threads, q = (per + Tmax - 1) / Tmax;
        T = lmin(Tmax, whole_panels((per + q - 1) / q));
    }
    if (T > 0) {
        nchunk = (tiles + T - 1) / T;
#pragma omp parallel num_threads(threads)
        {
            float *ws = own_chunk_buffers(workspace, per_thread);
#pragma omp for schedule(dynamic, 1)
            for (long i = 0; i < nchunk; i++) run_chunk(s, i * T, (int)lmin(T, tiles - i * T), ws);
        }
    } else if (threads > 1) {
        /* few tiles (small maps): the threads share each chunk, one parallel
         * region for the whole conv (not one per GEMM) */
#pragma omp parallel num_threads(threads)
        {
            float *ws = own_chunk_buffers(workspace, per_thread);
            for (long t0 = 0; t0 < tiles; t0 += Tmax) run_chunk_shared(s, t0, (int)lmin(Tmax, tiles - t0), ws);
        }
    } else {
        for (long t0 = 0; t0 < tiles; t0 += Tmax) run_chunk(s, t0, (int)lmin(Tmax, tiles - t0), workspace);
    }
}

void at_winograd_conv2d_forward(const float *x, int N, int C, int H, int W, int m, const float *u,
                                const float *b, int K, int pad, float *y, float *workspace,
                                const at_conv_epilogue *e) {
    int Ho = H + 2 * pad - 2, Wo = W + 2 * pad - 2;
    if (N <= 0 || K <= 0 || Ho <= 0 || Wo <= 0) return;
    wino_conv s = {x, C, H, W, K, pad, Ho, Wo, (Ho + m - 1) / m, (Wo + m - 1) / m, m, u, b, y,
                   e ? e->residual : NULL, e ? e->relu : 0};
    wino_run(&s, N, workspace);
}

void at_winograd_conv2d_backward_data(const float *dy, int N, int C, int H, int W, int m, const float *u,
                                      int K, int pad, float *dx, float *workspace) {
    /* the forward conv of dy[K][Ho][Wo] with the flipped kernel, pad 2 - pad,
     * has C outputs of size H x W */
    at_winograd_conv2d_forward(dy, N, K, H + 2 * pad - 2, W + 2 * pad - 2, m, u, NULL, C, 2 - pad, dx, workspace,
                               NULL);
}
