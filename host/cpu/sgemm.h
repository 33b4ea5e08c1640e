/* Single-precision GEMM for the CPU backend, GotoBLAS/BLIS structure: A and B
 * are packed into micro-panels, an MR x NR register-blocked micro-kernel
 * (AVX2/FMA when compiled with them, portable C otherwise) does the work,
 * OpenMP splits the output between threads.
 *
 * Row-major everywhere. Results are deterministic and do not depend on the
 * number of threads: every C element is one dot product accumulated in the
 * same order (K in blocks of the fixed size KC, lanes independent), whatever
 * thread or tile computes it. Called from inside an OpenMP parallel region it
 * runs single-threaded in the calling thread. */
#ifndef ATTRIB_CPU_SGEMM_H
#define ATTRIB_CPU_SGEMM_H

#include <stddef.h>

/* C[M][N] = alpha * op(A)[M][K] * op(B)[K][N] + beta * C, row-major.
 * op(A) = A (A is M x K, lda >= K) or A^T when trans_a (A is K x M, lda >= M);
 * op(B) = B (B is K x N, ldb >= N) or B^T when trans_b (B is N x K, ldb >= K).
 * beta == 0 never reads C (it may hold NaN); K == 0 gives C = beta * C. */
void at_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* ---- Lower level, for operators that build an operand on the fly (the
 * convolution packs B straight from the image: an implicit im2col). ---- */

/* Micro-kernel tile: MR rows of C by NR columns (AVX-512: one 16-float
 * register per row, 16 rows; AVX2 and portable: two 8-float registers per
 * row, 6 rows). The tile does not change any result: every element is the
 * same chain of FMAs. */
#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__) && !defined(AT_SGEMM_PORTABLE)
#define AT_SGEMM_MR 16
#else
#define AT_SGEMM_MR 6
#endif
#define AT_SGEMM_NR 16

/* Writes the packed form of a block of an operand to dst (64-byte aligned).
 * For A: rows [first, first+count) of op(A), columns [k0, k0+kc), as
 *   ceil(count/MR) panels; panel p holds kc groups of MR floats:
 *   dst[p*kc*MR + k*MR + r] = op(A)[first + p*MR + r][k0 + k].
 * For B: columns [first, first+count) of op(B), rows [k0, k0+kc), as
 *   ceil(count/NR) panels: dst[p*kc*NR + k*NR + c] = op(B)[k0 + k][first + p*NR + c].
 * Entries past the end of the operand (the last, partial panel) must be 0.
 * Called concurrently from several threads with disjoint blocks. */
typedef void (*at_pack_fn)(const void *ctx, int first, int count, int k0, int kc, float *dst);

typedef struct {
    at_pack_fn pack;
    const void *ctx;
    /* For A only, instead of pack: A packed once by at_sgemm_pack_a (weights
     * used by many GEMMs, e.g. Winograd's transformed kernels). The GEMM's
     * rows are rows packed_first.. (a multiple of MR) of the packed matrix,
     * which has packed_rows rows (0: the GEMM's M). */
    const float *packed;
    int packed_rows, packed_first;
} at_gemm_operand;

/* Where C lives: element (i, n) is at
 *   C + (n / seg) * seg_stride + i * ldc + (n % seg).
 * A plain matrix has seg = N (one segment); a convolution over a batch uses
 * seg = Ho*Wo, seg_stride = K*Ho*Wo, ldc = Ho*Wo so that the GEMM's N runs
 * over (image, pixel) and the result lands in NCHW. row_bias (M floats, or
 * NULL) is added to every element of row i once. Then, after the last K
 * block, in this order and before the tile is stored (in registers; tiles
 * that go through a copy, after it): residual (laid out like C, not
 * overlapping it; NULL: none) is added, and relu sets v to v > 0 ? v : 0: a
 * conv's residual add and ReLU, the bits of the separate element-wise passes. */
typedef struct {
    float *C;
    long ldc, seg, seg_stride;
    const float *row_bias;
    const float *residual;
    int relu;
} at_gemm_output;

/* C = alpha * A * B + beta * C (+ row_bias) with packed-on-demand operands. */
void at_sgemm_ex(int M, int N, int K, float alpha, const at_gemm_operand *a,
                 const at_gemm_operand *b, float beta, const at_gemm_output *c);

/* The packers at_sgemm uses for plain row-major matrices; ctx points to an
 * at_matrix_operand. Exposed so that callers can mix a plain operand with an
 * on-the-fly one. */
typedef struct {
    const float *p;
    long ld;
    int trans;
} at_matrix_operand;
void at_pack_a_matrix(const void *ctx, int first, int count, int k0, int kc, float *dst);
void at_pack_b_matrix(const void *ctx, int first, int count, int k0, int kc, float *dst);

/* Floats of A[M][K] (row-major) packed whole for at_gemm_operand.packed,
 * and the packing itself: the same panels as packing on demand, so a GEMM
 * gives the same bits either way. */
size_t at_sgemm_packed_a_floats(int M, int K);
void at_sgemm_pack_a(int M, int K, const float *A, int lda, float *dst);
/* The same for an A given by its packer (e.g. a conv's flipped kernel). */
void at_sgemm_pack_a_with(int M, int K, at_pack_fn pack, const void *ctx, float *dst);

/* Name of the compiled micro-kernel ("avx512 16x16", "avx2-fma 6x16" or
 * "portable 6x16"). */
const char *at_sgemm_kernel_name(void);

#endif
