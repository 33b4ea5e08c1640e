/* The CPU's FP32 peak, measured: every OpenMP thread runs independent chains
 * of FMAs as wide as the SGEMM's (16 lanes with AVX-512, 8 with AVX2), enough of them to cover the FMA latency on both
 * pipes (2 pipes x latency 4-5 on Zen and Skylake), and the best of many
 * timed repeats counts. This is what the SGEMM's micro-kernel could
 * at most reach here, so bench's "% of peak" is against the machine as it
 * runs, not a clock from /proc/cpuinfo (which on a VM says little about the
 * sustained all-core rate). */
#include "exec/backend.h"

#include <omp.h>

#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__) && !defined(AT_SGEMM_PORTABLE)
#include <immintrin.h>

/* The SGEMM's AVX-512 micro-kernel: 16-wide FMAs (on the project's Zen 5
 * machine twice the AVX2 rate, two 512-bit FMA pipes per core). */
#define CHAINS 12
#define ITERS 500000L
#define FLOPS_PER_STEP 32 /* 16 lanes x (multiply + add) */
#define ISA "AVX-512"
typedef __m512 vec;
#define SET1(x) _mm512_set1_ps(x)
#define FMADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define LANE0(v) _mm512_cvtss_f32(v)
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* 12 chains: 16 chains ran as fast, 24 (more than the 16 ymm registers)
 * 30 % slower. Many short repeats, the best counting: on shared cores one
 * of them finds both cores free (5 repeats of 10 ms measured 186 GFLOP/s
 * under load, 262 idle, on the project's 2-core machine). */
#define CHAINS 12
#define ITERS 1000000L /* per thread and repeat: 192 MFLOP, ~1.5 ms at 130 GFLOP/s a core */
#define FLOPS_PER_STEP 16 /* 8 lanes x (multiply + add) */
#define ISA "AVX2"
typedef __m256 vec;
#define SET1(x) _mm256_set1_ps(x)
#define FMADD(a, b, c) _mm256_fmadd_ps(a, b, c)
#define LANE0(v) _mm256_cvtss_f32(v)
#else
/* Without AVX2/FMA the SGEMM's portable kernel is scalar C: rate one
 * scalar FMA chain set the same way. */
#define CHAINS 8
#define ITERS 5000000L
#define FLOPS_PER_STEP 2
#define ISA "scalar"
typedef float vec;
#define SET1(x) (x)
#define FMADD(a, b, c) ((a) * (b) + (c))
#define LANE0(v) (v)
#endif

/* One thread's timed work: ITERS steps of CHAINS independent FMAs as wide as vec. */
static float fma_chains(void) {
    vec acc[CHAINS];
    const vec a = SET1(0.999999f), b = SET1(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = SET1((float)c);
    for (long i = 0; i < ITERS; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = FMADD(acc[c], a, b);
    float s = 0;
    for (int c = 0; c < CHAINS; c++) s += LANE0(acc[c]);
    return s;
}
#define REPEATS 20

/* The best of REPEATS timed rounds, every thread running its chains at once. */
static double probe(int threads) {
    double best = 0;
    volatile float sink = 0; /* the chains' results are used: nothing is optimised away */
    for (int r = 0; r < REPEATS; r++) {
        double t0 = 0, t1 = 0;
#pragma omp parallel num_threads(threads)
        {
#pragma omp barrier
#pragma omp master
            t0 = omp_get_wtime();
            const float s = fma_chains();
#pragma omp barrier
#pragma omp master
            t1 = omp_get_wtime();
#pragma omp critical
            sink += s;
        }
        double flops = (double)threads * ITERS * CHAINS * FLOPS_PER_STEP / (t1 - t0);
        if (flops > best) best = flops;
    }
    (void)sink;
    return best;
}

const char *at_cpu_peak_isa(void) { return ISA; }

double at_cpu_peak_flops(void) {
    static double cached;
    static int cached_threads;
    int threads = omp_get_max_threads();
    if (cached <= 0 || cached_threads != threads) cached = probe(threads), cached_threads = threads;
    return cached;
}
