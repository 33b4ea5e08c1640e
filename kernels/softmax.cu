// Softmax over each item's K features (host/cpu/softmax.c's twins): one
// thread per item walks its features in index order with double sums, as
// the CPU does; the device's double exp may differ from the C library's by
// an ulp, far below float rounding.
#include <math.h>

#include "ops_cuda.cuh"

#define SOFTMAX_THREADS 64

__global__ void softmax_forward_kernel(const float *x, int N, long K, float *y) {
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        const float *l = x + n * K;
        float mx = l[0];
        for (long k = 1; k < K; k++)
            if (l[k] > mx) mx = l[k];
        double sum = 0;
        for (long k = 0; k < K; k++) sum += exp((double)l[k] - mx);
        for (long k = 0; k < K; k++) y[n * K + k] = (float)(exp((double)l[k] - mx) / sum);
    }
}

__global__ void softmax_backward_kernel(const float *y, const float *dy, int N, long K, float *dx) {
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
        double dot = 0;
        for (long k = 0; k < K; k++) dot += (double)y[n * K + k] * dy[n * K + k];
        for (long k = 0; k < K; k++) dx[n * K + k] = (float)((double)y[n * K + k] * ((double)dy[n * K + k] - dot));
    }
}

int at_softmax_forward_gpu(const float *x, int N, long K, float *y, cudaStream_t stream) {
    if (N < 1 || K < 1) return at_fail("cuda", "softmax of %d items x %ld", N, K);
    softmax_forward_kernel<<<at_grid_1d(N, SOFTMAX_THREADS), SOFTMAX_THREADS, 0, stream>>>(x, N, K, y);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_softmax_backward_gpu(const float *y, const float *dy, int N, long K, float *dx, cudaStream_t stream) {
    if (N < 1 || K < 1) return at_fail("cuda", "softmax backward of %d items x %ld", N, K);
    softmax_backward_kernel<<<at_grid_1d(N, SOFTMAX_THREADS), SOFTMAX_THREADS, 0, stream>>>(y, dy, N, K, dx);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}
