// cuemu's cuBLAS: handles and a reference SGEMM. What it checks is how the
// backend calls cuBLAS (transposes, sizes, leading dimensions, operands
// inside device allocations, the math mode), not cuBLAS itself. TF32 math
// rounds both operands as wmma::__float_to_tf32 does; sums are FP32 in k order.
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>

#include "include/cublas_v2.h"
#include "include/mma.h"
#include "internal.h"

struct cuemu_cublas {
    cudaStream_t stream;
    cublasMath_t mode;
};

namespace {
std::mutex mu;
std::set<const void *> handles;
bool valid(cublasHandle_t h) {
    std::lock_guard<std::mutex> lock(mu);
    return handles.count(h) != 0;
}
} // namespace

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!cuemu::device().present) return CUBLAS_STATUS_NOT_INITIALIZED;
    *handle = new cuemu_cublas{nullptr, CUBLAS_DEFAULT_MATH};
    std::lock_guard<std::mutex> lock(mu);
    handles.insert(*handle);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    std::lock_guard<std::mutex> lock(mu);
    if (!handles.erase(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!cuemu::stream_valid(stream)) return CUBLAS_STATUS_INVALID_VALUE;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH && mode != CUBLAS_PEDANTIC_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    *mode = handle->mode;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (cuemu: an operand overruns its allocation)";
    }
    return "unknown cuBLAS status";
}

// Column-major element (i, j) of op(X) where X has leading dimension ld.
static inline float at(const float *x, int ld, bool trans, int i, int j) {
    return trans ? x[(size_t)i * ld + j] : x[(size_t)j * ld + i];
}

// The bytes a column-major rows x cols operand with leading dimension ld spans.
static size_t span(int rows, int cols, int ld) {
    return rows && cols ? ((size_t)(cols - 1) * ld + rows) * sizeof(float) : 0;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                           const float *beta, float *C, int ldc) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    const int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) ||
        ldc < (m > 1 ? m : 1) || !alpha || !beta) {
        cuemu::set_error(cudaErrorInvalidValue,
                         cuemu::format("cublasSgemm(%c, %c, m %d, n %d, k %d, lda %d, ldb %d, ldc %d): invalid sizes",
                                       ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, lda, ldb, ldc));
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    std::string why;
    if ((k && (!cuemu::device_range(A, span(a_rows, a_cols, lda), &why) ||
               !cuemu::device_range(B, span(b_rows, b_cols, ldb), &why))) ||
        !cuemu::device_range(C, span(m, n, ldc), &why)) {
        cuemu::set_error(cudaErrorIllegalAddress, "cublasSgemm: " + why);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    const bool tf32 = handle->mode == CUBLAS_TF32_TENSOR_OP_MATH;
    const float al = *alpha, be = *beta;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int p = 0; p < k; p++) {
                float a = at(A, lda, ta, i, p), b = at(B, ldb, tb, p, j);
                if (tf32) a = nvcuda::wmma::__float_to_tf32(a), b = nvcuda::wmma::__float_to_tf32(b);
                acc = std::fma(a, b, acc);
            }
            float *c = &C[(size_t)j * ldc + i];
            *c = be == 0.0f ? al * acc : al * acc + be * *c; // beta 0: C is not read (it may hold NaN)
        }
    return CUBLAS_STATUS_SUCCESS;
}
