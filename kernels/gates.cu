// Gated ReLU (docs/methods.md#gated-network) on the GPU, host/cpu/ops.c's twin: y = g*relu(z)
// forward, and backward dz = g*dy*[relu(z) > 0] with the gate gradient
// dgate[n][c] = sum over the map of dy * relu(z).
//
// The gate gradient feeds CDRP's optimisation, so it must be bit-identical
// run to run (docs/methods.md#determinism): one block per (item, channel) accumulates in double
// (as the CPU does) over a fixed strided partition of the map, then reduces
// with a fixed shuffle tree and a fixed pass over the warps' partial sums.
// No floating-point atomics anywhere.
#include "ops_cuda.cuh"

#define GATE_THREADS 256

// y = g*relu(y) (RELU) or y = g*y (a gate where no ReLU follows the conv, before a
// residual add); keep = what was gated.
template <bool RELU>
__global__ void gate_forward_kernel(float *y, long NC, int C, long HW, const float *gates, int gate_stride,
                                    float *keep) {
    const long total = NC * HW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const long nc = i / HW;
        const float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        const float v = y[i];
        const float a = RELU ? (v > 0.0f ? v : 0.0f) : v;
        if (keep) keep[i] = a;
        y[i] = g * a;
    }
}

template <bool RELU>
static int gate_forward(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep,
                        cudaStream_t stream) {
    const long total = (long)N * C * HW;
    if (total < 1) return AT_OK;
    gate_forward_kernel<RELU><<<at_grid_1d(total, GATE_THREADS), GATE_THREADS, 0, stream>>>(
        y, (long)N * C, C, HW, gates, gate_stride, keep);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_gated_relu_forward_gpu(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep,
                              cudaStream_t stream) {
    return gate_forward<true>(y, N, C, HW, gates, gate_stride, keep, stream);
}

int at_gate_forward_gpu(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep,
                        cudaStream_t stream) {
    return gate_forward<false>(y, N, C, HW, gates, gate_stride, keep, stream);
}

// Fixed-order sum of one value per thread of a GATE_THREADS block; the
// result is valid in thread 0.
__device__ double block_sum_fixed(double v) {
    __shared__ double warp_sums[GATE_THREADS / 32];
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < GATE_THREADS / 32; w++) total += warp_sums[w];
    return total;
}

// dz under the backward rule (at_relu_rule, docs/methods.md): the gradient
// g*dy where relu(z) > 0; guided backprop g*max(dy, 0) there; deconvnet
// g*max(dy, 0) everywhere (host/cpu/ops.c at_relu_backward_rule).
// RULE 3: a gate without a ReLU (at_gate_backward_gpu): g*dy everywhere.
template <int RULE>
__device__ __forceinline__ float relu_rule(float g, float dv, float av) {
    if (RULE == 3) return g * dv;
    if (RULE == 0) return av > 0.0f ? g * dv : 0.0f;
    const bool open = RULE == 2 || av > 0.0f;
    return open && dv > 0.0f ? g * dv : 0.0f;
}

// One block per (n, c): dz and, when dgate is not NULL, the gate gradient.
template <int RULE>
__global__ void __launch_bounds__(GATE_THREADS)
    gated_relu_backward_kernel(const float *dy, const float *a, int C, long HW, const float *gates, int gate_stride,
                               float *dz, float *dgate, int dgate_stride) {
    const long nc = blockIdx.x;
    const long n = nc / C, c = nc % C;
    const float *d = dy + nc * HW, *ap = a + nc * HW;
    float *out = dz + nc * HW;
    const float g = gates ? gates[n * gate_stride + c] : 1.0f;
    double sum = 0.0;
    for (long i = threadIdx.x; i < HW; i += GATE_THREADS) {
        const float dv = d[i], av = ap[i];
        sum += (double)dv * av;
        out[i] = relu_rule<RULE>(g, dv, av); // after the read: dz may alias dy
    }
    if (!dgate) return; // uniform across the block: no barrier is skipped by some threads only
    const double total = block_sum_fixed(sum);
    if (threadIdx.x == 0) dgate[n * dgate_stride + c] = (float)total;
}

// Without a gate gradient (e.g. the classifier's ReLUs, HW = 1) a plain
// elementwise pass avoids one mostly idle block per map.
template <int RULE>
__global__ void gated_relu_backward_elementwise_kernel(const float *dy, const float *a, long NC, int C, long HW,
                                                       const float *gates, int gate_stride, float *dz) {
    const long total = NC * HW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        const long nc = i / HW;
        const float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        const float dv = dy[i];
        dz[i] = relu_rule<RULE>(g, dv, a[i]);
    }
}

template <int RULE>
static int relu_backward_launch(const float *dy, const float *a, int N, int C, long HW, const float *gates,
                                int gate_stride, float *dz, float *dgate, int dgate_stride, cudaStream_t stream) {
    const long blocks = (long)N * C;
    if (blocks < 1) return AT_OK;
    if (!dgate) {
        gated_relu_backward_elementwise_kernel<RULE><<<at_grid_1d(blocks * HW, GATE_THREADS), GATE_THREADS, 0, stream>>>(
            dy, a, blocks, C, HW, gates, gate_stride, dz);
        CUDA_LAUNCH_CHECK(stream);
        return AT_OK;
    }
    if (blocks > 0x7fffffffL) return at_fail("cuda", "gated ReLU backward: %ld maps is too many for one launch", blocks);
    gated_relu_backward_kernel<RULE><<<(unsigned)blocks, GATE_THREADS, 0, stream>>>(dy, a, C, HW, gates, gate_stride, dz,
                                                                                   dgate, dgate_stride);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}

int at_gated_relu_backward_gpu(const float *dy, const float *a, int N, int C, long HW, const float *gates,
                               int gate_stride, float *dz, float *dgate, int dgate_stride, cudaStream_t stream) {
    return relu_backward_launch<0>(dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride, stream);
}

int at_relu_backward_rule_gpu(int rule, const float *dy, const float *a, int N, int C, long HW, const float *gates,
                              int gate_stride, float *dz, float *dgate, int dgate_stride, cudaStream_t stream) {
    switch (rule) {
    case 0: return relu_backward_launch<0>(dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride, stream);
    case 1: return relu_backward_launch<1>(dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride, stream);
    case 2: return relu_backward_launch<2>(dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride, stream);
    }
    return at_fail("cuda", "unknown ReLU backward rule %d", rule);
}

// dz = g*dy, dgate = sum dy*z (z ungated): host/cpu/gates.c at_gate_backward.
int at_gate_backward_gpu(const float *dy, const float *z, int N, int C, long HW, const float *gates, int gate_stride,
                         float *dz, float *dgate, int dgate_stride, cudaStream_t stream) {
    return relu_backward_launch<3>(dy, z, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride, stream);
}

// x[nc][.] *= s[nc] (activation patches; host/cpu/ops.c at_scale_channels)
__global__ void scale_channels_kernel(float *x, long NC, long HW, const float *s) {
    const long total = NC * HW;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        x[i] *= s[i / HW];
}

int at_scale_channels_gpu(float *x, int N, int C, long HW, const float *s, cudaStream_t stream) {
    const long total = (long)N * C * HW;
    if (total < 1) return AT_OK;
    scale_channels_kernel<<<at_grid_1d(total, GATE_THREADS), GATE_THREADS, 0, stream>>>(x, (long)N * C, HW, s);
    CUDA_LAUNCH_CHECK(stream);
    return AT_OK;
}
