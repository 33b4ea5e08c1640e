/* Winograd F(2x2, 3x3) (see winograd.h), per chunk of output tiles:
 *
 *   V[e][c][t] = (B^T d B)[e]   the 4x4 input tile t of channel c
 *   M[e] = U[e] V[e]            16 GEMMs, K x C times C x T (host/cpu/sgemm.h)
 *   y tile t of channel k = A^T M[.][k][t] A + b[k]
 *
 * A chunk's V and M (16*T*(C+K) floats) stay in one thread's share of the
 * caches between the three steps, so the transformed tiles never make a trip
 * through memory for the whole layer. Chunks are independent: threads take
 * whole chunks when there are enough of them, otherwise the chunks run one
 * after the other with the GEMMs threaded inside. Either way each output is
 * the same arithmetic (the SGEMM's sums do not depend on N or on threads). */
#include "cpu/winograd.h"

#include "cpu/sgemm.h"

#include <omp.h>

#if defined(__AVX2__) && !defined(AT_CONV_PORTABLE)
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

int at_winograd_applies(int C, int K, int kh, int kw, int stride, int pad) {
    return kh == 3 && kw == 3 && stride == 1 && pad >= 0 && pad <= 2 && C >= 16 && K >= 16;
}

size_t at_winograd_weights_floats(int K, int C) { return (size_t)16 * K * C; }

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

void at_winograd_transform_weights(const float *w, int K, int C, int backward, float *u) {
    /* rows of U[e]: output channels of the conv it computes */
    int rows = backward ? C : K, cols = backward ? K : C;
    long plane = (long)rows * cols;
#pragma omp parallel for schedule(static) if (plane > 4096 && !omp_in_parallel())
    for (long rc = 0; rc < plane; rc++) {
        long r = rc / cols, q = rc % cols;
        float v[16];
        if (backward) /* w[q][r][2-ky][2-kx]: start at the last tap, step back */
            transform_kernel(w + (q * C + r) * 9 + 8, -3, -1, v);
        else
            transform_kernel(w + (r * C + q) * 9, 3, 1, v);
        for (int e = 0; e < 16; e++) u[e * plane + rc] = v[e];
    }
}

/* Tiles of the GEMMs' N per chunk, for these channel counts. */
static long chunk_tiles(int C, int K) {
    long t = CHUNK_FLOATS / (16L * (C + K));
    t -= t % AT_SGEMM_NR;
    if (t < AT_SGEMM_NR) t = AT_SGEMM_NR;
    return lmin(t, MAX_CHUNK_TILES);
}

size_t at_winograd_workspace_floats(int C, int K) {
    return (size_t)omp_get_max_threads() * 16 * (chunk_tiles(C, K) * (C + K) + 2 * PLANE_PAD);
}

typedef struct {
    const float *x; /* [N][C][H][W] */
    int C, H, W, K, pad, Ho, Wo, th, tw;
    const float *u, *b;
    float *y;
} wino_conv;

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

static void input_transform8(const wino_conv *s, const float *xi, int iy0, int ix0, float *V, long plane, int T) {
    long HW = (long)s->H * s->W;
    for (int c = 0; c < s->C; c++) {
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

/* V[e][c][j] for tiles t0 + j, j < T (chunk row stride ld = T). */
static void input_transform(const wino_conv *s, long t0, int T, float *V) {
    long HW = (long)s->H * s->W, per_img = (long)s->th * s->tw, plane = (long)s->C * T + PLANE_PAD;
    for (int j = 0; j < T; j++) {
        long t = t0 + j, img = t / per_img;
        int q = (int)(t % per_img), iy0 = q / s->tw * 2 - s->pad, ix0 = q % s->tw * 2 - s->pad;
        int inside = iy0 >= 0 && ix0 >= 0 && iy0 + 4 <= s->H && ix0 + 4 <= s->W;
        const float *xi = s->x + img * s->C * HW;
#ifdef AT_WINO_AVX2
        /* 8 tiles of this tile row, every one inside */
        if (inside && j + 8 <= T && q % s->tw + 8 <= s->tw && ix0 + 18 <= s->W) {
            input_transform8(s, xi, iy0, ix0, V + j, plane, T);
            j += 7;
            continue;
        }
#endif
        for (int c = 0; c < s->C; c++) {
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
static void output_transform8(const float *mk, long plane, float bias, float *yk, int Wo) {
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
        _mm256_storeu_ps(yk, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(yk + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
}
#endif

/* y tiles t0 + j from M[e][k][j]: A^T m A + b[k], A^T = [1 1 1 0; 0 1 -1 -1];
 * the last row or column of a tile is dropped where Ho or Wo is odd. */
static void output_transform(const wino_conv *s, long t0, int T, const float *M) {
    long HoWo = (long)s->Ho * s->Wo, per_img = (long)s->th * s->tw, plane = (long)s->K * T + PLANE_PAD;
    for (int k = 0; k < s->K; k++) {
        float bias = s->b ? s->b[k] : 0.0f;
        const float *mk = M + (long)k * T;
        for (int j = 0; j < T; j++) {
            long t = t0 + j, img = t / per_img;
            int q = (int)(t % per_img), oy = q / s->tw * 2, ox = q % s->tw * 2;
#ifdef AT_WINO_AVX2
            if (j + 8 <= T && q % s->tw + 8 <= s->tw && ox + 16 <= s->Wo && oy + 2 <= s->Ho) {
                output_transform8(mk + j, plane, bias, s->y + (img * s->K + k) * HoWo + (long)oy * s->Wo + ox,
                                  s->Wo);
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
            yk[0] = r0[0] + r0[1] + r0[2] + bias;
            if (two_cols) yk[1] = r0[1] - r0[2] - r0[3] + bias;
            if (oy + 1 < s->Ho) {
                yk[s->Wo] = r1[0] + r1[1] + r1[2] + bias;
                if (two_cols) yk[s->Wo + 1] = r1[1] - r1[2] - r1[3] + bias;
            }
        }
    }
}

static void run_chunk(const wino_conv *s, long t0, int T, float *ws) {
    long vplane = (long)s->C * T + PLANE_PAD, mplane = (long)s->K * T + PLANE_PAD;
    float *V = ws, *M = ws + 16 * vplane;
    input_transform(s, t0, T, V);
    for (int e = 0; e < 16; e++)
        at_sgemm(0, 0, s->K, T, s->C, 1.0f, s->u + (long)e * s->K * s->C, s->C, V + e * vplane, T, 0.0f,
                 M + e * mplane, T);
    output_transform(s, t0, T, M);
}

static void wino_run(const wino_conv *s, int N, float *workspace) {
    long tiles = (long)N * s->th * s->tw, Tmax = chunk_tiles(s->C, s->K);
    long nchunk = (tiles + Tmax - 1) / Tmax;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    long per_thread = 16 * (Tmax * (s->C + s->K) + 2 * PLANE_PAD);
    if (nchunk >= threads && threads > 1) {
        /* equal chunks, a multiple of the threads (any split gives the same
         * outputs), taken dynamically: a thread that loses its core to
         * another job leaves its chunks to the others */
        nchunk = (nchunk + threads - 1) / threads * threads;
        long T = (tiles + nchunk - 1) / nchunk;
#pragma omp parallel num_threads(threads)
        {
            float *ws = workspace + omp_get_thread_num() * per_thread;
#pragma omp for schedule(dynamic, 1)
            for (long i = 0; i < nchunk; i++) {
                long t0 = i * T;
                if (t0 < tiles) run_chunk(s, t0, (int)lmin(T, tiles - t0), ws);
            }
        }
    } else {
        for (long t0 = 0; t0 < tiles; t0 += Tmax) run_chunk(s, t0, (int)lmin(Tmax, tiles - t0), workspace);
    }
}

void at_winograd_conv2d_forward(const float *x, int N, int C, int H, int W, const float *u,
                                const float *b, int K, int pad, float *y, float *workspace) {
    int Ho = H + 2 * pad - 2, Wo = W + 2 * pad - 2;
    if (N <= 0 || K <= 0 || Ho <= 0 || Wo <= 0) return;
    wino_conv s = {x, C, H, W, K, pad, Ho, Wo, (Ho + 1) / 2, (Wo + 1) / 2, u, b, y};
    wino_run(&s, N, workspace);
}

void at_winograd_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *u,
                                      int K, int pad, float *dx, float *workspace) {
    /* the forward conv of dy[K][Ho][Wo] with the flipped kernel, pad 2 - pad,
     * has C outputs of size H x W */
    at_winograd_conv2d_forward(dy, N, K, H + 2 * pad - 2, W + 2 * pad - 2, u, NULL, C, 2 - pad, dx, workspace);
}
