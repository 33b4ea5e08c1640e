// Checked wrappers shared by the CUDA kernel files (llm.c's cuda_common.h).
// Every runtime or cuBLAS call goes through CUDA_CHECK / CUBLAS_CHECK, which
// record "cuda: kernels/x.cu:LINE: <error>: <call>" through at_fail and return
// AT_ERR from the calling function: the library never exits or asserts.
// Build with -DATTRIB_CUDA_SYNC to synchronise after every launch, so that an
// asynchronous fault is reported at the kernel that caused it.
#ifndef ATTRIB_CUDA_COMMON_CUH
#define ATTRIB_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "exec/backend.h"
#include "core/error.h"
}

static inline int at_cuda_error(cudaError_t e, const char *file, int line, const char *expr) {
    cudaGetLastError(); // clear a non-sticky error so later calls start clean
    return at_fail("cuda", "%s:%d: %s: %s", file, line, cudaGetErrorString(e), expr);
}

static inline int at_cublas_error(cublasStatus_t st, const char *file, int line, const char *expr) {
    return at_fail("cuda", "%s:%d: cuBLAS %s: %s", file, line, cublasGetStatusString(st), expr);
}

#define CUDA_CHECK(call)                                                                  \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess) return at_cuda_error(e_, __FILE__, __LINE__, #call);       \
    } while (0)

#define CUBLAS_CHECK(call)                                                                \
    do {                                                                                  \
        cublasStatus_t s_ = (call);                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS) return at_cublas_error(s_, __FILE__, __LINE__, #call); \
    } while (0)

// Execution errors of what was queued on stream, in debug builds only.
#ifdef ATTRIB_CUDA_SYNC
#define CUDA_DEBUG_SYNC(stream) CUDA_CHECK(cudaStreamSynchronize(stream))
#else
#define CUDA_DEBUG_SYNC(stream) ((void)0)
#endif

// After every <<<...>>>: launch errors always; execution errors too in debug builds.
#define CUDA_LAUNCH_CHECK(stream)                                                         \
    do {                                                                                  \
        CUDA_CHECK(cudaGetLastError());                                                   \
        CUDA_DEBUG_SYNC(stream);                                                          \
    } while (0)

static inline long at_ceil_div(long a, long b) { return (a + b - 1) / b; }

// Blocks for a grid-stride elementwise kernel over n elements.
static inline unsigned at_grid_1d(long n, int threads) {
    long b = at_ceil_div(n, threads);
    if (b < 1) b = 1;
    if (b > 65536L * 16) b = 65536L * 16; // grid-stride loops cover the rest
    return (unsigned)b;
}

#endif
