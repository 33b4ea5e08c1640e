// Element-wise ops on the GPU (host/cpu/elementwise.c's twins).
#include "ops_cuda.cuh"

#define ELEMENTWISE_THREADS 256

__global__ void add_forward_kernel(const float *a, const float *b, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __fadd_rn(a[i], b[i]);
}

__global__ void mul_forward_kernel(const float *a, const float *b, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __fmul_rn(a[i], b[i]);
}

// 0 where b is 0 (host/cpu/elementwise.c at_div_forward)
__global__ void div_forward_kernel(const float *a, const float *b, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = b[i] != 0.0f ? __fdiv_rn(a[i], b[i]) : 0.0f;
}

int at_mul_forward_gpu(const float *a, const float *b, long n, float *y, cudaStream_t stream) {
    if (n < 1) return AT_OK;
    mul_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(a, b, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_div_forward_gpu(const float *a, const float *b, long n, float *y, cudaStream_t stream) {
    if (n < 1) return AT_OK;
    div_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(a, b, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_add_forward_gpu(const float *a, const float *b, long n, float *y, cudaStream_t stream) {
    if (n < 1) return AT_OK;
    add_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(a, b, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

// The LRP rules' ops (host/cpu/elementwise.c), rounded as the CPU rounds them.
__global__ void clamp_sign_forward_kernel(const float *x, int sign, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = sign > 0 ? (x[i] > 0 ? x[i] : 0.0f) : (x[i] < 0 ? x[i] : 0.0f);
}

__global__ void select_sign_forward_kernel(const float *m, const float *a, int sign, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = (sign > 0 ? m[i] > 0 : m[i] < 0) ? a[i] : 0.0f;
}

__global__ void div_stabilized_forward_kernel(const float *a, const float *b, float eps, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __fdiv_rn(a[i], __fadd_rn(b[i], b[i] >= 0 ? eps : -eps));
}

__global__ void axpby_forward_kernel(float alpha, const float *a, float beta, const float *b, long n, float *y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __fadd_rn(__fmul_rn(alpha, a[i]), __fmul_rn(beta, b[i]));
}

int at_clamp_sign_forward_gpu(const float *x, int sign, long n, float *y, cudaStream_t stream) {
    if (n < 1) return AT_OK;
    clamp_sign_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(x, sign, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_select_sign_forward_gpu(const float *m, const float *a, int sign, long n, float *y, cudaStream_t stream) {
    if (n < 1) return AT_OK;
    select_sign_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(m, a, sign, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_div_stabilized_forward_gpu(const float *a, const float *b, float eps, long n, float *y, cudaStream_t stream) {
    if (n < 1) return AT_OK;
    div_stabilized_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(a, b, eps, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_axpby_forward_gpu(float alpha, const float *a, float beta, const float *b, long n, float *y,
                         cudaStream_t stream) {
    if (n < 1) return AT_OK;
    axpby_forward_kernel<<<at_grid_1d(n, ELEMENTWISE_THREADS), ELEMENTWISE_THREADS, 0, stream>>>(alpha, a, beta, b, n, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}
