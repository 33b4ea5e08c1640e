// Fully connected layers on the GPU through cuBLAS (host/cpu/ops.c's twins).
//
// cuBLAS is column-major; our tensors are row-major. A row-major [R][C]
// matrix is the column-major C x R matrix with leading dimension C, so
//   y[N][out] = x[N][in] * w[out][in]^T   is   Y(out x N) = W^T * X
// with W the column-major in x out view of w (ld in), X the in x N view of x
// (ld in), Y the out x N view of y (ld out): sgemm(T, N, out, N, in).
//   dx[N][in] = dy[N][out] * w[out][in]   is   DX(in x N) = W * DY
// with DY the out x N view of dy (ld out): sgemm(N, N, in, N, out).
// The forward first broadcasts the bias into y and accumulates (beta = 1),
// as the CPU does. cuBLAS with one handle on one stream is deterministic
// run to run; the math mode (FP32 or TF32) is set on the handle by the backend.
#include "ops_cuda.cuh"

__global__ void bias_broadcast_kernel(const float *b, long N, int out, float *y) {
    const long total = N * out;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        y[i] = b[i % out];
}

int at_linear_forward_gpu(cublasHandle_t blas, const float *x, int N, int in, const float *w, const float *b,
                          int out, float *y, cudaStream_t stream) {
    if (N < 1 || in < 1 || out < 1) return at_fail("cuda", "linear %d -> %d on %d items", in, out, N);
    float beta = 0.0f;
    if (b) {
        bias_broadcast_kernel<<<at_grid_1d((long)N * out, 256), 256, 0, stream>>>(b, N, out, y);
        CUDA_LAUNCH_CHECK(stream);
        beta = 1.0f;
    }
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasSetStream(blas, stream));
    CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, out, N, in, &alpha, w, in, x, in, &beta, y, out));
    CUDA_DEBUG_SYNC(stream);
    return AT_OK;
}

int at_linear_backward_data_gpu(cublasHandle_t blas, const float *dy, int N, int in, const float *w, int out,
                                float *dx, cudaStream_t stream) {
    if (N < 1 || in < 1 || out < 1) return at_fail("cuda", "linear backward %d -> %d on %d items", in, out, N);
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasSetStream(blas, stream));
    CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, in, N, out, &alpha, w, in, dy, out, &beta, dx, in));
    CUDA_DEBUG_SYNC(stream);
    return AT_OK;
}
