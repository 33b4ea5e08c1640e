/* at_sgemm and the convolutions built on it (host/cpu/sgemm.h, conv.h).
 *
 * GEMM against a naive double-accumulating reference, over shapes chosen to
 * hit every edge of the blocking (MR = 6 or 16, NR = 16, KC = 256, MC = 144): sizes
 * 1, primes, sizes just past a block, all four transposes, leading dimensions
 * larger than needed, alpha/beta combinations, beta = 0 over NaN-filled C,
 * both threading modes, bit-identical results across runs and thread counts.
 * Convolution forward and backward data against direct loops, the backward
 * as the adjoint of the forward, determinism, nested calls.
 *
 * The portable (non-AVX2) kernels are tested by building this file with
 * -mno-avx2 -mno-fma, or with -DAT_SGEMM_PORTABLE -DAT_CONV_PORTABLE. */
#include "test.h"

#include "cpu/conv_channels.h"
#include "cpu/sgemm.h"
#include "cpu/winograd.h"
#include "tensor_util.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Tolerance. The reference sums in double; at_sgemm sums in float, in K
 * blocks of at most 256 (each summed from zero in registers, then added to
 * C). With inputs uniform in [-1, 1] a partial sum of k products is about
 * sqrt(k)/3 and each addition rounds by up to u = 6e-8 of it, so the error is
 * a random walk of roughly u*kc/5 per block: ~1e-5 for K = 4000, the largest
 * K here, while |C| ~ sqrt(K)/3. atol = 2e-6*sqrt(K) (for outputs near 0)
 * and rtol = 1e-4 leave about ten times that. */
#define GEMM_RTOL 1e-4
static double gemm_atol(int K) { return 2e-6 * sqrt((double)(K > 1 ? K : 1)) + 1e-7; }

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1), xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (float)((rng_state * 0x2545f4914f6cdd1dull) >> 40) / (float)(1 << 23) - 1.0f;
}
static float *rand_buf(long n) {
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    for (long i = 0; i < n; i++) p[i] = frand();
    return p;
}

static void ref_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(long)k * lda + i] : A[(long)i * lda + k];
                double b = tb ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
                s += a * b;
            }
            double c = beta == 0.0f ? 0.0 : (double)beta * C[(long)i * ldc + j];
            C[(long)i * ldc + j] = (float)(alpha * s + c);
        }
}

/* Runs one case; pad adds to every leading dimension; NaN-fills C when
 * beta == 0. Also checks that C's padding columns are left alone. */
static int gemm_case(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    long na = (long)(ta ? K : M) * lda, nb = (long)(tb ? N : K) * ldb, nc = (long)M * ldc;
    float *A = rand_buf(na), *B = rand_buf(nb), *C = rand_buf(nc);
    float *R = malloc((size_t)(nc > 0 ? nc : 1) * sizeof *R);
    if (beta == 0.0f)
        for (long i = 0; i < nc; i++)
            if (i % ldc < N) C[i] = NAN;
    memcpy(R, C, (size_t)nc * sizeof *R);
    at_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    ref_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, ldc);
    char what[128];
    snprintf(what, sizeof what, "sgemm ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d", ta, tb,
             M, N, K, alpha, beta, pad);
    int ok = CHECK_CLOSE(what, C, R, nc, gemm_atol(K) * (fabsf(alpha) > 1 ? fabsf(alpha) : 1),
                         GEMM_RTOL);
    free(A);
    free(B);
    free(C);
    free(R);
    return ok;
}

TEST(sgemm_1x1x1) {
    gemm_case(0, 0, 1, 1, 1, 1.0f, 0.0f, 0);
    gemm_case(1, 1, 1, 1, 1, 2.0f, 0.5f, 0);
}

TEST(sgemm_prime_shapes_all_transposes) {
    static const int shapes[][3] = {{7, 13, 29}, {97, 61, 300}, {5, 17, 257}, {13, 3, 2},
                                    {31, 37, 41}, {149, 19, 7}, {2, 521, 11}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int t = 0; t < 4; t++)
            if (!gemm_case(t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 0))
                return;
}

TEST(sgemm_block_edges) {
    /* one past / one short of MR (6 for AVX2, 16 for AVX-512), NR, KC, MC
     * and the L2 panel width */
    static const int shapes[][3] = {{6, 16, 256}, {7, 17, 257}, {5, 15, 255}, {144, 32, 64},
                                    {145, 33, 513}, {150, 257, 30}, {12, 273, 260}, {16, 16, 8},
                                    {17, 31, 100}, {15, 47, 20}, {161, 40, 300}};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        if (!gemm_case(0, 0, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 0)) return;
}

TEST(sgemm_tall_and_skinny) {
    gemm_case(0, 0, 1000, 1, 37, 1.0f, 0.0f, 0);
    gemm_case(1, 0, 1, 1000, 37, 1.0f, 0.0f, 0);
    gemm_case(0, 1, 3, 5, 4000, 1.0f, 0.0f, 0);
    gemm_case(1, 1, 600, 2, 3, 1.0f, 0.0f, 0);
    gemm_case(0, 0, 2, 700, 300, 1.0f, 0.0f, 0);
}

TEST(sgemm_leading_dimensions_larger_than_needed) {
    for (int t = 0; t < 4; t++) {
        gemm_case(t & 1, t >> 1, 23, 45, 67, 1.0f, 0.0f, 3);
        gemm_case(t & 1, t >> 1, 70, 90, 300, 1.0f, 1.0f, 17);
    }
}

TEST(sgemm_alpha_beta) {
    static const float ab[][2] = {{1, 1}, {2, 0}, {-0.5f, 1}, {1, -1.5f}, {0.25f, 3}, {0, 2}, {0, 0}};
    for (int i = 0; i < (int)(sizeof ab / sizeof ab[0]); i++)
        for (int t = 0; t < 4; t++) gemm_case(t & 1, t >> 1, 19, 35, 130, ab[i][0], ab[i][1], 1);
}

TEST(sgemm_beta_zero_ignores_nan_in_c) {
    /* gemm_case fills C with NaN when beta == 0; both the full-tile and the
     * edge-tile paths, serial and parallel sizes */
    gemm_case(0, 0, 12, 32, 8, 1.0f, 0.0f, 0);
    gemm_case(0, 0, 13, 33, 9, 1.0f, 0.0f, 2);
    gemm_case(0, 0, 200, 300, 100, 1.0f, 0.0f, 0);
    gemm_case(1, 1, 0 + 7, 3, 0, 1.0f, 0.0f, 0); /* K = 0: C = 0 */
}

TEST(sgemm_k_zero_scales_c) { gemm_case(0, 0, 9, 10, 0, 1.0f, 0.5f, 0); }

TEST(sgemm_large_parallel_shapes) {
    /* big enough for both threading modes: few rows (column split) and many
     * rows (row split, B packed by each thread), with ragged edges */
    gemm_case(0, 0, 64, 3001, 577, 1.0f, 0.0f, 0);
    gemm_case(0, 0, 515, 199, 1100, 1.0f, 0.0f, 0);
    gemm_case(1, 0, 130, 900, 300, 1.0f, 1.0f, 0);
    gemm_case(0, 1, 300, 130, 520, 1.0f, 0.0f, 0);
}

/* Runs at_sgemm with T threads and returns C. */
static float *gemm_with_threads(int T, int ta, int tb, int M, int N, int K, const float *A,
                                const float *B) {
    float *C = malloc((size_t)M * N * sizeof *C);
    int old = omp_get_max_threads();
    omp_set_num_threads(T);
    at_sgemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
    omp_set_num_threads(old);
    return C;
}

TEST(sgemm_deterministic_across_runs_and_threads) {
    static const int shapes[][3] = {{64, 3001, 577}, {515, 199, 1100}, {37, 41, 43}};
    for (int s = 0; s < 3; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = rand_buf((long)M * K), *B = rand_buf((long)K * N);
        float *c2a = gemm_with_threads(2, 0, 0, M, N, K, A, B);
        float *c2b = gemm_with_threads(2, 0, 0, M, N, K, A, B);
        float *c1 = gemm_with_threads(1, 0, 0, M, N, K, A, B);
        float *c3 = gemm_with_threads(3, 0, 0, M, N, K, A, B);
        size_t bytes = (size_t)M * N * sizeof(float);
        CHECKF(memcmp(c2a, c2b, bytes) == 0, "M=%d N=%d K=%d: two runs differ", M, N, K);
        CHECKF(memcmp(c2a, c1, bytes) == 0, "M=%d N=%d K=%d: 1 vs 2 threads differ", M, N, K);
        CHECKF(memcmp(c2a, c3, bytes) == 0, "M=%d N=%d K=%d: 3 vs 2 threads differ", M, N, K);
        free(A), free(B), free(c2a), free(c2b), free(c1), free(c3);
    }
}

/* at_sgemm's A * B^T and A * B with at most 8 rows (the FC layers' forward
 * and data gradient at small batches) run as matrix-vector products; their
 * bits must be the packed GEMM's (at_sgemm_ex with the plain packers), or a
 * layer's output would depend on the batch size. K over one and several
 * blocks, N off the 8-column groups, beta 0 over NaN and beta 1, 1 and 2
 * threads. */
TEST(sgemm_few_rows_times_b_or_bt_matches_the_packed_gemm_bit_for_bit) {
    static const int shapes[][3] = {{1, 1, 1}, {1, 4096, 1000}, {3, 37, 600}, {8, 64, 257}, {5, 13, 25088},
                                    {2, 9, 7}, {8, 100, 3}, {1, 25088, 300}};
    for (int tb = 0; tb < 2; tb++)
        for (int si = 0; si < 8; si++)
            for (int bi = 0; bi < 2; bi++)
                for (int T = 1; T <= 2; T++) {
                    int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                    float beta = bi ? 1.0f : 0.0f, alpha = bi ? 1.0f : 0.75f;
                    float *A = rand_buf((long)M * K), *B = rand_buf((long)N * K), *C0 = rand_buf((long)M * N);
                    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
                    for (long i = 0; i < (long)M * N; i++) C1[i] = C2[i] = bi ? C0[i] : NAN;
                    int old = omp_get_max_threads();
                    omp_set_num_threads(T);
                    at_sgemm(0, tb, M, N, K, alpha, A, K, B, tb ? K : N, beta, C1, N);
                    at_matrix_operand ma = {A, K, 0}, mb = {B, tb ? K : N, tb};
                    at_gemm_operand a = {at_pack_a_matrix, &ma, NULL, 0, 0}, b = {at_pack_b_matrix, &mb, NULL, 0, 0};
                    at_gemm_output c = {C2, N, N, 0, NULL, NULL, 0};
                    at_sgemm_ex(M, N, K, alpha, &a, &b, beta, &c);
                    omp_set_num_threads(old);
                    CHECKF(memcmp(C1, C2, sizeof(float) * M * N) == 0, "M=%d N=%d K=%d beta=%g threads=%d trans_b=%d differ",
                           M, N, K, beta, T, tb);
                    free(A), free(B), free(C0), free(C1), free(C2);
                }
}

/* A packed once (at_sgemm_pack_a, Winograd's transformed weights) gives the
 * bits of A packed on demand, in every threading mode: serial, column split
 * (few rows), row split (many rows), static splits. */
/* Tiles of 1 to 4 columns (a map's last pixels) run through their own
 * kernel, the rows in a vector; each element must still be the full tile's
 * chain: C of N columns equals the first N columns of C for B padded to
 * whole panels, bit for bit, with beta, bias, ragged rows and 1 or 2 threads. */
TEST(sgemm_narrow_column_tails_match_whole_panels_bit_for_bit) {
    static const int shapes[][3] = {{16, 17, 64}, {70, 49, 300}, {5, 34, 20}, {144, 196, 513}, {200, 19, 40},
                                    {33, 4, 700}};
    for (int si = 0; si < 6; si++)
        for (int T = 1; T <= 2; T++) {
            const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], Np = (N + 15) / 16 * 16;
            float *A = rand_buf((long)M * K), *Bp = rand_buf((long)K * Np), *B = malloc(sizeof(float) * K * N);
            float *bias = rand_buf(M), *C0 = rand_buf((long)M * Np);
            float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * Np);
            for (int k = 0; k < K; k++) memcpy(B + (long)k * N, Bp + (long)k * Np, sizeof(float) * N);
            for (int i = 0; i < M; i++) memcpy(C1 + (long)i * N, C0 + (long)i * Np, sizeof(float) * N);
            memcpy(C2, C0, sizeof(float) * M * Np);
            at_matrix_operand ma = {A, K, 0}, mb1 = {B, N, 0}, mb2 = {Bp, Np, 0};
            at_gemm_operand a = {at_pack_a_matrix, &ma, NULL, 0, 0};
            at_gemm_operand b1 = {at_pack_b_matrix, &mb1, NULL, 0, 0}, b2 = {at_pack_b_matrix, &mb2, NULL, 0, 0};
            at_gemm_output c1 = {C1, N, N, 0, bias, NULL, 0}, c2 = {C2, Np, Np, 0, bias, NULL, 0};
            int old = omp_get_max_threads();
            omp_set_num_threads(T);
            at_sgemm_ex(M, N, K, 0.75f, &a, &b1, 0.3f, &c1);
            at_sgemm_ex(M, Np, K, 0.75f, &a, &b2, 0.3f, &c2);
            omp_set_num_threads(old);
            int same = 1;
            for (int i = 0; i < M && same; i++) same = !memcmp(C1 + (long)i * N, C2 + (long)i * Np, sizeof(float) * N);
            CHECKF(same, "M=%d N=%d K=%d threads=%d: narrow tail differs from whole panels", M, N, K, T);
            free(A), free(Bp), free(B), free(bias), free(C0), free(C1), free(C2);
        }
}

/* C's columns cut into segments (items) of 16, 24 and 40 keep neighbouring
 * panels from being written as a pair (AVX-512) or make them cross a segment
 * (written by two masked stores, or through a copy where a segment is shorter
 * than a panel): each element must still get the bits of the unsegmented run. */
TEST(sgemm_paired_and_crossing_panels_match_single_panels_bit_for_bit) {
    static const int shapes[][3] = {{40, 48, 300}, {16, 96, 64}, {144, 64, 513}, {7, 40, 20}};
    static const int segs[] = {24, 16, 40, 5};
    for (int si = 0; si < 4; si++)
        for (int gi = 0; gi < 4; gi++) {
            const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], seg = segs[gi];
            const int nseg = (N + seg - 1) / seg;
            float *A = rand_buf((long)M * K), *B = rand_buf((long)K * N), *bias = rand_buf(M);
            float *C0 = rand_buf((long)M * N), *C1 = malloc(sizeof(float) * M * N);
            float *C2 = calloc((size_t)M * seg * nseg, sizeof(float));
            memcpy(C1, C0, sizeof(float) * M * N);
            for (int i = 0; i < M; i++)
                for (int n = 0; n < N; n++) C2[(long)(n / seg) * M * seg + (long)i * seg + n % seg] = C0[(long)i * N + n];
            at_matrix_operand ma = {A, K, 0}, mb = {B, N, 0};
            at_gemm_operand a = {at_pack_a_matrix, &ma, NULL, 0, 0}, b = {at_pack_b_matrix, &mb, NULL, 0, 0};
            at_gemm_output c1 = {C1, N, N, 0, bias, NULL, 0}, c2 = {C2, seg, seg, (long)M * seg, bias, NULL, 0};
            at_sgemm_ex(M, N, K, 0.75f, &a, &b, 0.3f, &c1);
            at_sgemm_ex(M, N, K, 0.75f, &a, &b, 0.3f, &c2);
            int same = 1;
            for (int i = 0; i < M && same; i++)
                for (int n = 0; n < N && same; n++)
                    same = C1[(long)i * N + n] == C2[(long)(n / seg) * M * seg + (long)i * seg + n % seg];
            CHECKF(same, "M=%d N=%d K=%d segments of %d: differs from the unsegmented result", M, N, K, seg);
            free(A), free(B), free(bias), free(C0), free(C1), free(C2);
        }
}

TEST(sgemm_packed_a_matches_packing_on_demand_bit_for_bit) {
    static const int shapes[][3] = {{1, 1, 1}, {17, 33, 300}, {64, 3001, 577}, {515, 199, 1100}, {160, 500, 700},
                                    {40, 20, 5000}};
    for (int si = 0; si < 6; si++)
        for (int T = 1; T <= 2; T++) {
            int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            float *A = rand_buf((long)M * K), *B = rand_buf((long)K * N);
            float *P = malloc(sizeof(float) * at_sgemm_packed_a_floats(M, K));
            float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
            at_sgemm_pack_a(M, K, A, K, P);
            int old = omp_get_max_threads();
            omp_set_num_threads(T);
            at_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
            at_matrix_operand mb = {B, N, 0};
            at_gemm_operand a = {NULL, NULL, P, 0, 0}, b = {at_pack_b_matrix, &mb, NULL, 0, 0};
            at_gemm_output c = {C2, N, N, 0, NULL, NULL, 0};
            at_sgemm_ex(M, N, K, 1.0f, &a, &b, 0.0f, &c);
            omp_set_num_threads(old);
            CHECKF(memcmp(C1, C2, sizeof(float) * M * N) == 0, "M=%d N=%d K=%d threads=%d differ", M, N, K, T);
            free(A), free(B), free(P), free(C1), free(C2);
        }
}

TEST(sgemm_inside_parallel_region_runs_serially) {
    /* each thread of an outer region multiplies its own matrices */
    int M = 50, N = 70, K = 300;
    float *A = rand_buf((long)M * K), *B = rand_buf((long)K * N);
    float *ref = gemm_with_threads(1, 0, 0, M, N, K, A, B);
    float *C = malloc(4 * (size_t)M * N * sizeof *C);
#pragma omp parallel for num_threads(2)
    for (int r = 0; r < 4; r++)
        at_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C + (long)r * M * N, N);
    for (int r = 0; r < 4; r++)
        CHECKF(memcmp(C + (long)r * M * N, ref, (size_t)M * N * sizeof *C) == 0,
               "nested call %d differs from the serial result", r);
    free(A), free(B), free(C), free(ref);
}

/* ---- convolution (host/cpu/conv.h) against direct loops in double ---- */

#include "cpu/conv.h"

static int conv_out(int n, int k, int s, int p) { return (n + 2 * p - k) / s + 1; }

static void ref_conv_forward(const float *x, int N, int C, int H, int W, const float *w,
                             const float *b, int K, int kh, int kw, int s, int p, float *y) {
    int Ho = conv_out(H, kh, s, p), Wo = conv_out(W, kw, s, p);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double acc = b ? b[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)w[((k * C + c) * kh + ky) * kw + kx] *
                                       x[(((long)n * C + c) * H + iy) * W + ix];
                            }
                    y[(((long)n * K + k) * Ho + oy) * Wo + ox] = (float)acc;
                }
}

static void ref_conv_backward_data(const float *dy, int N, int C, int H, int W, const float *w,
                                   int K, int kh, int kw, int s, int p, float *dx) {
    int Ho = conv_out(H, kh, s, p), Wo = conv_out(W, kw, s, p);
    long total = (long)N * C * H * W;
    double *acc = calloc((size_t)total, sizeof *acc);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double g = dy[(((long)n * K + k) * Ho + oy) * Wo + ox];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc[(((long)n * C + c) * H + iy) * W + ix] +=
                                    g * w[((k * C + c) * kh + ky) * kw + kx];
                            }
                }
    for (long i = 0; i < total; i++) dx[i] = (float)acc[i];
    free(acc);
}

typedef struct {
    int N, C, H, W, K, kh, kw, s, p;
} conv_shape;

static float *conv_workspace(const conv_shape *c) {
    size_t n = at_conv2d_workspace_floats(c->C, c->H, c->W, c->kh, c->kw, c->s, c->p);
    return n ? malloc(n * sizeof(float)) : NULL;
}

/* Forward (with and without bias, over a NaN-filled y) and backward data
 * against the references; returns 0 on the first failure. */
static int conv_case(const conv_shape *c) {
    int Ho = conv_out(c->H, c->kh, c->s, c->p), Wo = conv_out(c->W, c->kw, c->s, c->p);
    long nx = (long)c->N * c->C * c->H * c->W, ny = (long)c->N * c->K * Ho * Wo;
    long nw = (long)c->K * c->C * c->kh * c->kw;
    float *x = rand_buf(nx), *w = rand_buf(nw), *b = rand_buf(c->K), *dy = rand_buf(ny);
    float *y = malloc((size_t)ny * sizeof *y), *yr = malloc((size_t)ny * sizeof *yr);
    float *dx = malloc((size_t)nx * sizeof *dx), *dxr = malloc((size_t)nx * sizeof *dxr);
    float *ws = conv_workspace(c);
    char what[160];
    int ok = 1;
    /* the forward sums C*kh*kw terms; the backward K*kh*kw (fewer at borders) */
    double atol_f = gemm_atol(c->C * c->kh * c->kw), atol_b = gemm_atol(c->K * c->kh * c->kw);
    for (int with_bias = 0; with_bias < 2 && ok; with_bias++) {
        for (long i = 0; i < ny; i++) y[i] = NAN;
        const float *bias = with_bias ? b : NULL;
        at_conv2d_forward(x, c->N, c->C, c->H, c->W, w, bias, c->K, c->kh, c->kw, c->s, c->p, y, ws);
        ref_conv_forward(x, c->N, c->C, c->H, c->W, w, bias, c->K, c->kh, c->kw, c->s, c->p, yr);
        snprintf(what, sizeof what, "conv forward N=%d C=%d %dx%d K=%d k=%dx%d s=%d p=%d bias=%d",
                 c->N, c->C, c->H, c->W, c->K, c->kh, c->kw, c->s, c->p, with_bias);
        ok = CHECK_CLOSE(what, y, yr, ny, atol_f, GEMM_RTOL);
    }
    if (ok) {
        for (long i = 0; i < nx; i++) dx[i] = NAN; /* overwritten, not accumulated */
        at_conv2d_backward_data(dy, c->N, c->C, c->H, c->W, w, c->K, c->kh, c->kw, c->s, c->p, dx, ws);
        ref_conv_backward_data(dy, c->N, c->C, c->H, c->W, w, c->K, c->kh, c->kw, c->s, c->p, dxr);
        snprintf(what, sizeof what, "conv backward N=%d C=%d %dx%d K=%d k=%dx%d s=%d p=%d", c->N,
                 c->C, c->H, c->W, c->K, c->kh, c->kw, c->s, c->p);
        ok = CHECK_CLOSE(what, dx, dxr, nx, atol_b, GEMM_RTOL);
    }
    free(x), free(w), free(b), free(dy), free(y), free(yr), free(dx), free(dxr), free(ws);
    return ok;
}

TEST(conv_small_shapes_all_kernels_strides_pads) {
    /* kernel 1/3/5, stride 1/2, pad 0/1/2 over odd maps (7x5), 1x1 maps, a
     * 3-channel input, batch 1 and 3 */
    static const int maps[][2] = {{7, 5}, {1, 1}, {5, 7}, {12, 9}, {2, 3}};
    static const int chans[][2] = {{3, 4}, {1, 7}, {5, 2}};
    for (int m = 0; m < 5; m++)
        for (int ch = 0; ch < 3; ch++)
            for (int k = 1; k <= 5; k += 2)
                for (int s = 1; s <= 2; s++)
                    for (int p = 0; p <= 2; p++)
                        for (int N = 1; N <= 3; N += 2) {
                            conv_shape c = {N, chans[ch][0], maps[m][0], maps[m][1], chans[ch][1],
                                            k, k, s, p};
                            if (conv_out(c.H, k, s, p) < 1 || conv_out(c.W, k, s, p) < 1) continue;
                            if (!conv_case(&c)) return;
                        }
}

TEST(conv_rectangular_kernels) {
    conv_shape cs[] = {{2, 3, 9, 8, 5, 3, 1, 1, 0}, {1, 4, 6, 11, 3, 1, 5, 1, 0},
                       {2, 2, 10, 7, 3, 3, 5, 2, 1}, {1, 3, 8, 8, 4, 2, 2, 2, 0},
                       {1, 16, 5, 4, 3, 1, 1, 1, 1}}; /* pad >= kernel: col2im with C >= 16 */
    for (int i = 0; i < 5; i++)
        if (!conv_case(&cs[i])) return;
}

TEST(conv_vgg_like_shapes) {
    /* 3x3 pad 1 as in VGG, sizes that use both threading modes, runs that
     * wrap rows and images inside one panel (W = 14, 7), wide rows whose
     * inner panels are packed as plain copies (W = 64, 90, 120), and the
     * 3-channel first layer */
    conv_shape cs[] = {{1, 3, 32, 32, 64, 3, 3, 1, 1},   {2, 64, 20, 20, 64, 3, 3, 1, 1},
                       {3, 128, 7, 7, 200, 3, 3, 1, 1},  {2, 256, 14, 14, 160, 3, 3, 1, 1},
                       {1, 16, 64, 64, 32, 3, 3, 1, 1},  {5, 33, 3, 3, 17, 3, 3, 1, 1},
                       {2, 24, 37, 90, 20, 3, 3, 1, 1},  {1, 20, 40, 120, 8, 5, 5, 1, 2}};
    for (int i = 0; i < 8; i++)
        if (!conv_case(&cs[i])) return;
}

/* <conv(x), dy> == <x, conv^T(dy)>: the backward is the forward's adjoint. */
static void adjoint_case(const conv_shape *c) {
    int Ho = conv_out(c->H, c->kh, c->s, c->p), Wo = conv_out(c->W, c->kw, c->s, c->p);
    long nx = (long)c->N * c->C * c->H * c->W, ny = (long)c->N * c->K * Ho * Wo;
    float *x = rand_buf(nx), *w = rand_buf((long)c->K * c->C * c->kh * c->kw), *dy = rand_buf(ny);
    float *y = malloc((size_t)ny * sizeof *y), *dx = malloc((size_t)nx * sizeof *dx);
    float *ws = conv_workspace(c);
    at_conv2d_forward(x, c->N, c->C, c->H, c->W, w, NULL, c->K, c->kh, c->kw, c->s, c->p, y, ws);
    at_conv2d_backward_data(dy, c->N, c->C, c->H, c->W, w, c->K, c->kh, c->kw, c->s, c->p, dx, ws);
    double lhs = 0, rhs = 0, mag = 0;
    for (long i = 0; i < ny; i++) lhs += (double)y[i] * dy[i], mag += fabs((double)y[i] * dy[i]);
    for (long i = 0; i < nx; i++) rhs += (double)x[i] * dx[i];
    /* both sides are float results summed in double: relative error ~1e-6
     * of the sum of magnitudes */
    CHECKF(fabs(lhs - rhs) <= 1e-5 * mag, "adjoint N=%d C=%d %dx%d K=%d k=%d s=%d p=%d: %.9g vs %.9g",
           c->N, c->C, c->H, c->W, c->K, c->kh, c->s, c->p, lhs, rhs);
    free(x), free(w), free(dy), free(y), free(dx), free(ws);
}

TEST(conv_backward_is_adjoint_of_forward) {
    conv_shape cs[] = {{2, 5, 9, 7, 6, 3, 3, 1, 1}, {3, 4, 11, 10, 3, 3, 3, 2, 1},
                       {1, 8, 6, 6, 8, 5, 5, 1, 2}, {2, 3, 7, 5, 4, 1, 1, 2, 0},
                       {1, 64, 30, 30, 96, 3, 3, 1, 1}};
    for (int i = 0; i < 5; i++) adjoint_case(&cs[i]);
}

TEST(conv_workspace_sizes) {
    /* stride 1, pad < kernel, C >= 4 needs none; other cases hold one tile
     * of the col buffer (all pixels of one image when it fits in 4M floats) */
    CHECK(at_conv2d_workspace_floats(512, 14, 14, 3, 3, 1, 1) == 0);
    CHECK(at_conv2d_workspace_floats(8, 128, 128, 3, 3, 1, 1) == 0 && at_conv2d_workspace_floats(4, 9, 9, 3, 3, 1, 1) == 0);
    CHECK(at_conv2d_workspace_floats(16, 9, 9, 5, 5, 1, 2) == 0);
    CHECK(at_conv2d_workspace_floats(3, 224, 224, 3, 3, 1, 1) == 3 * 9 * 224 * 224);
    CHECK(at_conv2d_workspace_floats(3, 7, 5, 3, 3, 2, 1) == 3 * 9 * 4 * 3);
    CHECK(at_conv2d_workspace_floats(64, 224, 224, 3, 3, 2, 1) <= (1u << 22));
    CHECK(at_conv2d_workspace_floats(32, 8, 8, 3, 3, 1, 3) > 0); /* pad >= kernel */
}

TEST(conv_backward_as_forward_conv_shapes) {
    /* C >= 16 with stride 1 takes the flipped-kernel path: every kernel size
     * and pad it accepts, odd and rectangular maps, 1x1 maps, batches */
    conv_shape cs[] = {{1, 16, 7, 5, 3, 3, 3, 1, 1},  {3, 17, 7, 5, 4, 3, 3, 1, 0},
                       {2, 16, 9, 6, 5, 5, 5, 1, 2},  {1, 20, 5, 7, 6, 5, 5, 1, 1},
                       {3, 16, 1, 1, 7, 1, 1, 1, 0},  {2, 16, 1, 1, 3, 3, 3, 1, 1},
                       {1, 18, 6, 11, 3, 1, 5, 1, 0}, {2, 16, 8, 8, 2, 3, 3, 1, 2}};
    for (int i = 0; i < (int)(sizeof cs / sizeof cs[0]); i++)
        if (!conv_case(&cs[i])) return;
}

/* One forward and one backward with T threads, direct or Winograd with tile
 * m (u: the forward and backward transformed weights). */
static void conv_with_threads(int T, const conv_shape *c, const float *x, const float *w, const float *b,
                              const float *dy, float *y, float *dx, int m, const float *const *u) {
    int old = omp_get_max_threads();
    omp_set_num_threads(T);
    /* sized under T threads, as the backend sizes it per call */
    size_t nws = u ? at_winograd_workspace_floats(c->C, c->K)
                   : at_conv2d_workspace_floats(c->C, c->H, c->W, c->kh, c->kw, c->s, c->p);
    float *ws = nws ? malloc(nws * sizeof *ws) : NULL;
    if (u) {
        at_winograd_conv2d_forward(x, c->N, c->C, c->H, c->W, m, u[0], b, c->K, c->p, y, ws, NULL);
        at_winograd_conv2d_backward_data(dy, c->N, c->C, c->H, c->W, m, u[1], c->K, c->p, dx, ws);
    } else {
        at_conv2d_forward(x, c->N, c->C, c->H, c->W, w, b, c->K, c->kh, c->kw, c->s, c->p, y, ws);
        at_conv2d_backward_data(dy, c->N, c->C, c->H, c->W, w, c->K, c->kh, c->kw, c->s, c->p, dx, ws);
    }
    free(ws);
    omp_set_num_threads(old);
}

TEST(conv_deterministic_across_runs_and_threads) {
    /* both backward paths (flipped-kernel GEMM; w^T*dy + col2im for C = 3
     * and for stride 2), row and column splits of the GEMM; then Winograd
     * F(2x2) and F(4x4) on the shapes it takes: many chunks taken by the
     * threads (120x120: 8 chunks of 912 F(2x2) tiles; 6 of 160 F(4x4) tiles
     * with 2 threads, 5 of 224 with 1), few chunks shared by the threads by
     * blocks of output channels, one block per thread (7x7, odd maps) or, with
     * few output channels, split into one chunk per thread (56x56 with 64), or
     * two panels of tiles per thread and more (8 images at 7x7 and 14x14 with
     * 256 channels: one whole-panel chunk per thread), pad 0 and 2 */
    conv_shape cs[] = {{2, 64, 28, 28, 64, 3, 3, 1, 1},   {3, 256, 7, 7, 512, 3, 3, 1, 1},
                       {2, 32, 33, 31, 40, 3, 3, 2, 1},   {2, 3, 40, 36, 64, 3, 3, 1, 1},
                       {2, 64, 56, 56, 64, 3, 3, 1, 1},   {3, 256, 7, 7, 512, 3, 3, 1, 1},
                       {3, 16, 61, 47, 24, 3, 3, 1, 0},   {1, 40, 9, 13, 17, 3, 3, 1, 2},
                       {2, 64, 120, 120, 64, 3, 3, 1, 1}, {8, 256, 7, 7, 512, 3, 3, 1, 1},
                       {2, 64, 56, 56, 64, 3, 3, 1, 1},   {3, 256, 7, 7, 512, 3, 3, 1, 1},
                       {3, 16, 61, 47, 24, 3, 3, 1, 0},   {1, 40, 9, 13, 17, 3, 3, 1, 2},
                       {1, 128, 120, 120, 128, 3, 3, 1, 1}, {8, 256, 14, 14, 256, 3, 3, 1, 1}};
    for (int i = 0; i < 16; i++) {
        const conv_shape *c = &cs[i];
        const int wino = i < 4 ? 0 : i < 10 ? 2 : 4;
        int Ho = conv_out(c->H, c->kh, c->s, c->p), Wo = conv_out(c->W, c->kw, c->s, c->p);
        long nx = (long)c->N * c->C * c->H * c->W, ny = (long)c->N * c->K * Ho * Wo;
        float *x = rand_buf(nx), *w = rand_buf((long)c->K * c->C * c->kh * c->kw);
        float *b = rand_buf(c->K), *dy = rand_buf(ny);
        float *y[3], *dx[3], *u[2] = {NULL, NULL};
        if (wino) {
            REQUIRE(at_winograd_applies(c->C, c->K, c->kh, c->kw, c->s, c->p));
            for (int d = 0; d < 2; d++) {
                u[d] = malloc(at_winograd_weights_floats(c->K, c->C, wino) * sizeof(float));
                at_winograd_transform_weights(w, c->K, c->C, d, wino, u[d]);
            }
        }
        static const int threads[3] = {2, 2, 1};
        for (int r = 0; r < 3; r++) {
            y[r] = malloc((size_t)ny * sizeof(float));
            dx[r] = malloc((size_t)nx * sizeof(float));
            conv_with_threads(threads[r], c, x, w, b, dy, y[r], dx[r], wino, wino ? (const float *const *)u : NULL);
        }
        for (int r = 1; r < 3; r++) {
            CHECKF(memcmp(y[0], y[r], (size_t)ny * sizeof(float)) == 0,
                   "case %d (F%d): forward with %d threads differs from 2 threads", i, wino, threads[r]);
            CHECKF(memcmp(dx[0], dx[r], (size_t)nx * sizeof(float)) == 0,
                   "case %d (F%d): backward with %d threads differs from 2 threads", i, wino, threads[r]);
        }
        for (int r = 0; r < 3; r++) free(y[r]), free(dx[r]);
        free(x), free(w), free(b), free(dy), free(u[0]), free(u[1]);
    }
}

TEST(conv_inside_parallel_region_runs_serially) {
    conv_shape c = {1, 16, 20, 20, 24, 3, 3, 1, 1};
    long nx = 16L * 400, ny = 24L * 400;
    float *x = rand_buf(nx), *w = rand_buf(24L * 16 * 9), *yr = malloc((size_t)ny * sizeof *yr);
    float *y = malloc(4 * (size_t)ny * sizeof *y);
    ref_conv_forward(x, 1, 16, 20, 20, w, NULL, 24, 3, 3, 1, 1, yr);
#pragma omp parallel for num_threads(2)
    for (int r = 0; r < 4; r++)
        at_conv2d_forward(x, c.N, c.C, c.H, c.W, w, NULL, c.K, 3, 3, 1, 1, y + r * ny, NULL);
    for (int r = 0; r < 4; r++) CHECK_CLOSE("nested conv forward", y + r * ny, yr, ny, gemm_atol(144), GEMM_RTOL);
    free(x), free(w), free(yr), free(y);
}

/* ---- Winograd F(2x2, 3x3) and F(4x4, 3x3) (host/cpu/winograd.h) ---- */

/* Winograd F(2x2) is held to the direct conv's tolerance (gemm_atol,
 * GEMM_RTOL). Its terms are transformed values (sums of up to 4 inputs,
 * averages of 9 weights) and so round a little differently, but the largest
 * error on these shapes uses 0.16 of that budget (2026-12-01). F(4x4)'s
 * transforms weigh inputs by up to 5 and outputs by up to 8, and its worst
 * error here uses 1.8 of the direct budget: it is held to twice the direct
 * conv's tolerance (F(4x4) is new; no existing tolerance changed). */
#define WINO_TOL_SCALE 1.0
#define WINO4_TOL_SCALE 2.0

static int wino_case(const conv_shape *c, int m, double tol_scale) {
    int Ho = conv_out(c->H, 3, 1, c->p), Wo = conv_out(c->W, 3, 1, c->p);
    long nx = (long)c->N * c->C * c->H * c->W, ny = (long)c->N * c->K * Ho * Wo;
    float *x = rand_buf(nx), *w = rand_buf((long)c->K * c->C * 9), *b = rand_buf(c->K), *dy = rand_buf(ny);
    float *y = malloc((size_t)ny * sizeof *y), *yr = malloc((size_t)ny * sizeof *yr);
    float *dx = malloc((size_t)nx * sizeof *dx), *dxr = malloc((size_t)nx * sizeof *dxr);
    float *uf = malloc(at_winograd_weights_floats(c->K, c->C, m) * sizeof(float));
    float *ub = malloc(at_winograd_weights_floats(c->K, c->C, m) * sizeof(float));
    float *ws = malloc(at_winograd_workspace_floats(c->C, c->K) * sizeof(float));
    at_winograd_transform_weights(w, c->K, c->C, 0, m, uf);
    at_winograd_transform_weights(w, c->K, c->C, 1, m, ub);
    for (long i = 0; i < ny; i++) y[i] = NAN; /* every output written */
    for (long i = 0; i < nx; i++) dx[i] = NAN;
    at_winograd_conv2d_forward(x, c->N, c->C, c->H, c->W, m, uf, b, c->K, c->p, y, ws, NULL);
    at_winograd_conv2d_backward_data(dy, c->N, c->C, c->H, c->W, m, ub, c->K, c->p, dx, ws);
    ref_conv_forward(x, c->N, c->C, c->H, c->W, w, b, c->K, 3, 3, 1, c->p, yr);
    ref_conv_backward_data(dy, c->N, c->C, c->H, c->W, w, c->K, 3, 3, 1, c->p, dxr);
    double af = gemm_atol(c->C * 9), ab = gemm_atol(c->K * 9);
    char what[160];
    snprintf(what, sizeof what, "winograd F%d forward N=%d C=%d %dx%d K=%d p=%d", m, c->N, c->C, c->H, c->W, c->K, c->p);
    int ok = CHECK_CLOSE(what, y, yr, ny, tol_scale * af, tol_scale * GEMM_RTOL);
    snprintf(what, sizeof what, "winograd F%d backward N=%d C=%d %dx%d K=%d p=%d", m, c->N, c->C, c->H, c->W, c->K, c->p);
    ok = ok && CHECK_CLOSE(what, dx, dxr, nx, tol_scale * ab, tol_scale * GEMM_RTOL);
    free(x), free(w), free(b), free(dy), free(y), free(yr), free(dx), free(dxr), free(uf), free(ub), free(ws);
    return ok;
}

TEST(winograd_matches_the_reference_conv_forward_and_backward) {
    /* odd and even maps (a half tile at the right and bottom edge), 1x1 and
     * 2x3 maps, pads 0/1/2, batches whose tiles run across images, channel
     * counts off the GEMM blocks, and a chunked VGG-like layer */
    conv_shape cs[] = {{1, 16, 1, 1, 16, 3, 3, 1, 1},  {3, 16, 2, 3, 17, 3, 3, 1, 1},
                       {2, 17, 7, 5, 16, 3, 3, 1, 1},  {1, 20, 9, 9, 23, 3, 3, 1, 0},
                       {2, 16, 6, 11, 18, 3, 3, 1, 2}, {3, 33, 14, 14, 40, 3, 3, 1, 1},
                       {2, 64, 31, 30, 64, 3, 3, 1, 1}, {1, 300, 7, 7, 70, 3, 3, 1, 1},
                       {1, 24, 37, 70, 20, 3, 3, 1, 1}, {2, 16, 13, 45, 16, 3, 3, 1, 2}};
    for (int m = 2; m <= 4; m += 2)
        for (int i = 0; i < (int)(sizeof cs / sizeof cs[0]); i++)
            if (!wino_case(&cs[i], m, m == 2 ? WINO_TOL_SCALE : WINO4_TOL_SCALE)) return;
}

TEST(winograd_applies_to_3x3_stride1_convs_of_16_channels_or_more) {
    CHECK(at_winograd_applies(64, 64, 3, 3, 1, 1));
    CHECK(at_winograd_applies(16, 16, 3, 3, 1, 0) && at_winograd_applies(16, 16, 3, 3, 1, 2));
    CHECK(!at_winograd_applies(3, 64, 3, 3, 1, 1));   /* VGG's first layer */
    CHECK(!at_winograd_applies(64, 8, 3, 3, 1, 1));
    CHECK(!at_winograd_applies(64, 64, 3, 3, 2, 1));  /* stride 2 */
    CHECK(!at_winograd_applies(64, 64, 5, 5, 1, 2));
    CHECK(!at_winograd_applies(64, 64, 1, 1, 1, 0));
    CHECK(!at_winograd_applies(64, 64, 3, 3, 1, 3));  /* pad >= kernel */
}

TEST(winograd_rule_takes_f4x4_from_12_pixels_a_side_and_from_7_with_small_weights) {
    CHECK(at_winograd_rule(64, 64, 224, 224) == 4 && at_winograd_rule(512, 512, 14, 14) == 4);
    CHECK(at_winograd_rule(64, 64, 12, 12) == 4 && at_winograd_rule(16, 16, 12, 200) == 4);
    CHECK(at_winograd_rule(512, 512, 11, 12) == 2 && at_winograd_rule(512, 512, 7, 7) == 2);
    CHECK(at_winograd_rule(16, 16, 1, 1) == 2 && at_winograd_rule(128, 128, 6, 6) == 2);
    CHECK(at_winograd_rule(64, 64, 8, 8) == 4 && at_winograd_rule(128, 128, 7, 7) == 4);
    CHECK(at_winograd_rule(128, 256, 7, 7) == 2 && at_winograd_rule(64, 64, 7, 6) == 2);
}

/* A strided or pointwise conv's implicit im2col packs the same B panels as
 * the explicit im2col matrix through the plain SGEMM: the same bits (no
 * bias; the gathers and stride-2 row loads of the AVX2 packer, and the
 * pointwise packer's copies across output rows, against the matrix packer),
 * the stem's 7x7 / 2 over 3 channels on rows wide enough for whole interior
 * panels, ResNet's strided 3x3 and 1x1, and 1x1 stride-1 convs whose panels
 * cross rows and images (7x7 and 9x13 maps) or do not (8x8), among the
 * shapes. */
TEST(conv_implicit_im2col_packs_the_explicit_im2col_bit_for_bit) {
    const int shapes[][7] = {/* C, H, W, K, k, stride, pad */
                             {3, 29, 23, 16, 7, 2, 3}, {5, 13, 17, 9, 3, 2, 1}, {4, 12, 12, 20, 1, 2, 0},
                             {2, 11, 9, 7, 3, 3, 2}, {3, 40, 37, 8, 5, 2, 2}, {3, 9, 100, 16, 7, 2, 3},
                             {2, 7, 70, 5, 3, 2, 1}, {20, 7, 7, 24, 1, 1, 0}, {16, 9, 13, 33, 1, 1, 0},
                             {64, 8, 8, 17, 1, 1, 0}, {300, 3, 5, 18, 1, 1, 0}};
    for (int t = 0; t < (int)(sizeof shapes / sizeof shapes[0]); t++) {
        const int C = shapes[t][0], H = shapes[t][1], W = shapes[t][2], K = shapes[t][3], k = shapes[t][4];
        const int st = shapes[t][5], pad = shapes[t][6], N = 2;
        const int Ho = (H + 2 * pad - k) / st + 1, Wo = (W + 2 * pad - k) / st + 1, ckk = C * k * k;
        const long n_out = (long)Ho * Wo;
        float *x = test_random("strided x", t, (long)N * C * H * W, 1, 0);
        float *w = test_random("strided w", t, (long)K * ckk, 1, 0);
        float *y = malloc(sizeof(float) * N * K * n_out), *ref = malloc(sizeof(float) * N * K * n_out);
        float *col = malloc(sizeof(float) * ckk * N * n_out);
        for (int r = 0; r < ckk; r++) {
            const int c = r / (k * k), ky = r / k % k, kx = r % k;
            for (int img = 0; img < N; img++)
                for (int oy = 0; oy < Ho; oy++)
                    for (int ox = 0; ox < Wo; ox++) {
                        const int iy = oy * st - pad + ky, ix = ox * st - pad + kx;
                        const int in = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        col[(long)r * N * n_out + img * n_out + oy * Wo + ox] =
                            in ? x[(((long)img * C + c) * H + iy) * W + ix] : 0.0f;
                    }
        }
        float *gemm = malloc(sizeof(float) * K * N * n_out);
        at_sgemm(0, 0, K, (int)(N * n_out), ckk, 1.0f, w, ckk, col, (int)(N * n_out), 0.0f, gemm, (int)(N * n_out));
        for (int img = 0; img < N; img++)
            for (int o = 0; o < K; o++)
                memcpy(ref + ((long)img * K + o) * n_out, gemm + (long)o * N * n_out + img * n_out,
                       sizeof(float) * n_out);
        at_conv2d_forward(x, N, C, H, W, w, NULL, K, k, k, st, pad, y, NULL);
        SAME_BITS("strided conv vs explicit im2col", y, ref, (long)N * K * n_out);
        free(x), free(w), free(y), free(ref), free(col), free(gemm);
    }
}

/* Weights packed once (what the CPU backend keeps per layer) give the bits
 * of packing per call, forward and backward data, for shapes whose backward
 * runs as a forward conv (3x3 / 1, 1x1) and one whose does not (3x3 / 2:
 * nothing to pack). */
TEST(conv_packed_weights_give_the_bits_of_packing_per_call) {
    const int shapes[][7] = {/* C, H, W, K, k, stride, pad */
                             {20, 9, 11, 37, 3, 1, 1}, {33, 7, 7, 18, 1, 1, 0}, {17, 10, 9, 21, 3, 2, 1},
                             {3, 12, 12, 16, 7, 2, 3}, {300, 4, 4, 40, 1, 1, 0}};
    for (int t = 0; t < (int)(sizeof shapes / sizeof shapes[0]); t++) {
        const int C = shapes[t][0], H = shapes[t][1], W = shapes[t][2], K = shapes[t][3], k = shapes[t][4];
        const int st = shapes[t][5], pad = shapes[t][6], N = 3;
        const int Ho = (H + 2 * pad - k) / st + 1, Wo = (W + 2 * pad - k) / st + 1;
        const long nx = (long)N * C * H * W, ny = (long)N * K * Ho * Wo;
        float *x = test_random("packed x", t, nx, 1, 0), *dy = test_random("packed dy", t, ny, 1, 0);
        float *w = test_random("packed w", t, (long)K * C * k * k, 1, 0), *b = test_random("packed b", t, K, 1, 0);
        float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
        float *dx0 = malloc(sizeof(float) * nx), *dx1 = malloc(sizeof(float) * nx);
        float *ws = malloc(sizeof(float) * (at_conv2d_workspace_floats(C, H, W, k, k, st, pad) + 1));
        size_t nf = at_conv2d_packed_weights_floats(K, C, k, k, st, pad, 0);
        size_t nb = at_conv2d_packed_weights_floats(K, C, k, k, st, pad, 1);
        CHECK(nf > 0);
        CHECK((nb > 0) == (st == 1 && C >= 16));
        float *pf = aligned_alloc(64, (nf * sizeof(float) + 63) / 64 * 64);
        float *pb = nb ? aligned_alloc(64, (nb * sizeof(float) + 63) / 64 * 64) : NULL;
        at_conv2d_pack_weights(w, K, C, k, k, 0, pf);
        if (pb) at_conv2d_pack_weights(w, K, C, k, k, 1, pb);
        at_conv2d_forward(x, N, C, H, W, w, b, K, k, k, st, pad, y0, ws);
        at_conv2d_forward_packed(x, N, C, H, W, w, pf, b, K, k, k, st, pad, y1, NULL);
        SAME_BITS("forward, packed weights", y1, y0, ny);
        at_conv2d_backward_data(dy, N, C, H, W, w, K, k, k, st, pad, dx0, ws);
        at_conv2d_backward_data_packed(dy, N, C, H, W, w, pb, K, k, k, st, pad, dx1, ws);
        SAME_BITS("backward data, packed weights", dx1, dx0, nx);
        free(x), free(dy), free(w), free(b), free(y0), free(y1), free(dx0), free(dx1), free(ws), free(pf), free(pb);
    }
}

/* y + r, then the ReLU where asked, in place: the executor's separate add and ReLU ops. */
static void add_then_relu(float *y, const float *r, long n, int relu) {
    for (long i = 0; i < n; i++) {
        float v = r ? y[i] + r[i] : y[i];
        y[i] = relu ? (v > 0 ? v : 0.0f) : v;
    }
}

TEST(conv_epilogue_adds_the_residual_and_relus_with_the_bits_of_separate_passes) {
    /* C H W K k stride pad: 1x1, strided 1x1 and 3x3, 7x7/2, 3x3 stride 1 (direct and both Winograd tiles),
     * maps whose last tiles or panels are partial, K blocks of C*k*k > 256 */
    static const int shapes[][7] = {{64, 14, 14, 40, 1, 1, 0}, {16, 9, 10, 24, 1, 2, 0}, {12, 8, 8, 16, 3, 2, 1},
                                    {3, 23, 21, 8, 7, 2, 3},   {32, 13, 11, 48, 3, 1, 1}, {20, 7, 7, 17, 3, 1, 1},
                                    {300, 6, 6, 36, 1, 1, 0}};
    for (int t = 0; t < (int)(sizeof shapes / sizeof shapes[0]); t++)
        for (int form = 0; form < 3; form++) { /* residual, relu, both */
            const int C = shapes[t][0], H = shapes[t][1], W = shapes[t][2], K = shapes[t][3], k = shapes[t][4];
            const int st = shapes[t][5], pad = shapes[t][6], N = 3, relu = form > 0;
            const int Ho = (H + 2 * pad - k) / st + 1, Wo = (W + 2 * pad - k) / st + 1;
            const long nx = (long)N * C * H * W, ny = (long)N * K * Ho * Wo;
            float *x = test_random("epilogue x", t, nx, 1, 0), *w = test_random("epilogue w", t, (long)K * C * k * k, 1, 0);
            float *b = test_random("epilogue b", t, K, 1, 0), *r = form != 1 ? test_random("epilogue r", t, ny, 4, 0) : NULL;
            float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
            const at_conv_epilogue e = {r, relu};
            char what[128];
            at_conv2d_forward_packed(x, N, C, H, W, w, NULL, b, K, k, k, st, pad, y0, NULL);
            add_then_relu(y0, r, ny, relu);
            at_conv2d_forward_packed(x, N, C, H, W, w, NULL, b, K, k, k, st, pad, y1, &e);
            snprintf(what, sizeof what, "direct %d -> %d k%d s%d, residual %d relu %d", C, K, k, st, r != NULL, relu);
            SAME_BITS(what, y1, y0, ny);
            for (int m = 2; m <= 4 && at_winograd_applies(C, K, k, k, st, pad); m += 2) {
                float *u = malloc(sizeof(float) * at_winograd_weights_floats(K, C, m));
                float *ws = malloc(sizeof(float) * at_winograd_workspace_floats(C, K));
                at_winograd_transform_weights(w, K, C, 0, m, u);
                at_winograd_conv2d_forward(x, N, C, H, W, m, u, b, K, pad, y0, ws, NULL);
                add_then_relu(y0, r, ny, relu);
                at_winograd_conv2d_forward(x, N, C, H, W, m, u, b, K, pad, y1, ws, &e);
                snprintf(what, sizeof what, "winograd F%d %d -> %d, residual %d relu %d", m, C, K, r != NULL, relu);
                SAME_BITS(what, y1, y0, ny);
                free(u), free(ws);
            }
            free(x), free(w), free(b), free(r), free(y0), free(y1);
        }
}

/* ---- the forward with the output channels in the lanes (cpu/conv_channels.h) ---- */

/* y = conv_channels(x) with T threads, its workspace sized under T threads
 * as the backend sizes it, then the epilogue e. */
static void channels_with_threads(int T, const conv_shape *c, const float *x, const float *packed,
                                  const float *b, float *y, const at_conv_epilogue *e) {
    int old = omp_get_max_threads();
    omp_set_num_threads(T);
    size_t nws = at_conv_channels_workspace_floats(c->N, c->C, c->H, c->W, c->K, c->kh, c->kw, c->s, c->p);
    float *ws = nws ? malloc(nws * sizeof *ws) : NULL;
    CHECK(at_conv_channels_forward(x, c->N, c->C, c->H, c->W, packed, b, c->K, c->kh, c->kw, c->s, c->p, y, ws,
                                   e) == 0);
    free(ws);
    omp_set_num_threads(old);
}

TEST(conv_channels_matches_the_reference_with_its_epilogue_bit_identical_across_threads) {
    if (!at_conv_channels_compiled()) SKIP("the channels-in-lanes conv needs an AVX-512 build");
    /* stride 2 with 3x3 and 7x7 kernels (the pixel split, weights that fit
     * L2, padded per thread in bands; and the block split past 160K weight
     * floats, padded into a copy per thread up to 512K floats, past that one
     * copy for all), 1x1 at stride 1 (one long row per image) and 2;
     * output rows of 1..7 pixels (two to a tile, odd row counts), 8..14 (one
     * tile per row) and longer (rows cut into equal parts); output channels
     * that are not a multiple of 32 or 16; batches of 1 to 3 */
    const conv_shape cs[] = {
        {1, 3, 23, 23, 64, 7, 7, 2, 3},   {2, 3, 40, 37, 20, 7, 7, 2, 3},   {1, 64, 20, 20, 64, 3, 3, 2, 1},
        {3, 16, 13, 9, 40, 3, 3, 2, 1},   {1, 256, 14, 14, 80, 3, 3, 2, 1}, {2, 256, 15, 29, 72, 3, 3, 2, 1},
        {1, 200, 7, 7, 100, 1, 1, 1, 0},  {2, 130, 5, 9, 17, 1, 1, 1, 0},   {1, 160, 28, 28, 48, 1, 1, 2, 0},
        {3, 128, 11, 14, 33, 3, 3, 2, 0}, {1, 48, 64, 64, 32, 3, 3, 2, 2},  {2, 1024, 2, 3, 16, 1, 1, 1, 0},
        {2, 256, 40, 40, 80, 3, 3, 2, 1}};
    const int n = (int)(sizeof cs / sizeof cs[0]);
    for (int i = 0; i < n; i++) {
        const conv_shape *c = &cs[i];
        const int Ho = conv_out(c->H, c->kh, c->s, c->p), Wo = conv_out(c->W, c->kw, c->s, c->p);
        const long nx = (long)c->N * c->C * c->H * c->W, ny = (long)c->N * c->K * Ho * Wo;
        float *x = rand_buf(nx), *w = rand_buf((long)c->K * c->C * c->kh * c->kw), *b = rand_buf(c->K);
        float *res = rand_buf(ny), *yr = malloc((size_t)ny * sizeof *yr), *y[3];
        float *packed = aligned_alloc(64, (at_conv_channels_weights_floats(c->K, c->C, c->kh, c->kw) * sizeof(float) +
                                           63) / 64 * 64);
        at_conv_channels_pack_weights(w, c->K, c->C, c->kh, c->kw, packed);
        for (int form = 0; form < 3; form++) { /* bias only; no bias, ReLU; bias, residual and ReLU */
            const float *bias = form == 1 ? NULL : b;
            const at_conv_epilogue e = {form == 2 ? res : NULL, form > 0};
            ref_conv_forward(x, c->N, c->C, c->H, c->W, w, bias, c->K, c->kh, c->kw, c->s, c->p, yr);
            for (long j = 0; j < ny; j++) {
                const float v = e.residual ? yr[j] + res[j] : yr[j];
                yr[j] = e.relu ? (v > 0 ? v : 0.0f) : v;
            }
            static const int threads[3] = {2, 1, 3};
            for (int r = 0; r < 3; r++) {
                y[r] = malloc((size_t)ny * sizeof(float));
                for (long j = 0; j < ny; j++) y[r][j] = NAN;
                channels_with_threads(threads[r], c, x, packed, bias, y[r], &e);
            }
            char what[160];
            snprintf(what, sizeof what, "channels conv N=%d C=%d %dx%d K=%d k=%d s=%d p=%d form %d", c->N, c->C,
                     c->H, c->W, c->K, c->kh, c->s, c->p, form);
            CHECK_CLOSE(what, y[0], yr, ny, gemm_atol(c->C * c->kh * c->kw), GEMM_RTOL);
            for (int r = 1; r < 3; r++)
                CHECKF(memcmp(y[0], y[r], (size_t)ny * sizeof(float)) == 0, "%s: %d threads differ from 2", what,
                       threads[r]);
            for (int r = 0; r < 3; r++) free(y[r]);
        }
        free(x), free(w), free(b), free(res), free(yr), free(packed);
    }
}

TEST(conv_channels_rule_takes_resnet50s_strided_convs_and_deep_reductions_only) {
    const int on = at_conv_channels_compiled();
    /* C, K, kernel, stride, pad, batch, H, W: the stem, the 3x3 / 2 of layer2-4 */
    CHECK(at_conv_channels_rule(3, 64, 7, 7, 2, 3, 1, 224, 224) == on);
    CHECK(at_conv_channels_rule(128, 128, 3, 3, 2, 1, 8, 56, 56) == on);
    CHECK(at_conv_channels_rule(512, 512, 3, 3, 2, 1, 1, 14, 14) == on);
    /* the 1024 -> 256 and 2048 -> 512 reductions, at any batch */
    CHECK(at_conv_channels_rule(1024, 256, 1, 1, 1, 0, 1, 14, 14) == on);
    CHECK(at_conv_channels_rule(2048, 512, 1, 1, 1, 0, 16, 7, 7) == on);
    /* the 1x1 / 2 projections of layer2 and layer3 */
    CHECK(at_conv_channels_rule(256, 512, 1, 1, 2, 0, 1, 56, 56) == on);
    CHECK(at_conv_channels_rule(512, 1024, 1, 1, 2, 0, 8, 28, 28) == on);
    /* not: 1x1 expansions and smaller reductions, layer4's 1x1 / 2 projection, stride-1 3x3 (GEMM or Winograd),
     * a 3x3 / 2 over too few channels, stride 3 */
    CHECK(at_conv_channels_rule(256, 1024, 1, 1, 1, 0, 1, 14, 14) == 0);
    CHECK(at_conv_channels_rule(512, 128, 1, 1, 1, 0, 1, 28, 28) == 0);
    CHECK(at_conv_channels_rule(1024, 2048, 1, 1, 2, 0, 1, 14, 14) == 0);
    CHECK(at_conv_channels_rule(256, 256, 3, 3, 1, 1, 1, 14, 14) == 0);
    CHECK(at_conv_channels_rule(8, 8, 3, 3, 2, 1, 1, 28, 28) == 0);
    CHECK(at_conv_channels_rule(3, 16, 7, 7, 2, 3, 1, 192, 192) == 0); /* fewer outputs than a tile's 32 lanes */
    CHECK(at_conv_channels_rule(16, 32, 3, 3, 2, 1, 1, 48, 48) == on);
    CHECK(at_conv_channels_rule(64, 64, 3, 3, 3, 1, 1, 42, 42) == 0);
    /* nor an input smaller than the kernel; the forward refuses it, and stride 3, writing nothing */
    CHECK(at_conv_channels_rule(16, 32, 3, 3, 2, 0, 1, 2, 2) == 0);
    float x[16 * 4] = {0}, w[32 * 16 * 9] = {0}, *packed = aligned_alloc(64, 32 * 16 * 9 * sizeof(float)), y[32];
    at_conv_channels_pack_weights(w, 32, 16, 3, 3, packed);
    for (int i = 0; i < 32; i++) y[i] = 7.0f;
    CHECK(at_conv_channels_forward(x, 1, 16, 2, 2, packed, NULL, 32, 3, 3, 2, 0, y, NULL, NULL) == -1);
    CHECK(at_conv_channels_forward(x, 1, 16, 2, 2, packed, NULL, 32, 1, 1, 3, 0, y, NULL, NULL) == -1);
    CHECK(y[0] == 7.0f && y[31] == 7.0f);
    free(packed);
}
