// State of the CUDA backend, shared by kernels/backend_cuda.cu (the op table
// the executor calls, host/exec/ops.h) and kernels/memory.cu (allocations
// under the memory limit, prepared weights, pinned staging).
#ifndef ATTRIB_BACKEND_CUDA_CUH
#define ATTRIB_BACKEND_CUDA_CUH

#include <vector>

#include "ops_cuda.cuh"

extern "C" {
#include "exec/ops.h"
}

// Default device memory the backend plans for (weights + activations):
// 7.5 GiB, so that an 8 GB GTX 1080-class card fits with its context.
#define AT_CUDA_DEFAULT_MEM_LIMIT ((size_t)15 << 29)
// Kept out of the plan: cuBLAS workspace and allocator slack.
#define AT_CUDA_RESERVE_BYTES ((size_t)64 << 20)
// Each of the two pinned staging buffers (double-buffered host copies).
#define AT_CUDA_STAGE_BYTES ((size_t)8 << 20)

// A conv layer's two implicit GEMMs with the weights filled in; the data
// pointers, the batch and the epilogue are set per call.
struct conv_dev {
    at_conv_gemm fwd;
    at_conv_gemm bwd; // bwd.a == NULL: the backward runs the direct kernel
};

struct linear_dev {
    const float *w, *b; // [out][in], [out]
    int out, in;
};

struct cuda_alloc {
    void *p;
    size_t bytes;
};

struct cuda_state {
    int device, cc_major, cc_minor, n_sm, built_arch;
    char device_name[256];
    size_t mem_limit, allocated; // bytes of device memory handed out
    std::vector<cuda_alloc> allocs;
    at_precision prec;
    cudaStream_t stream;
    cublasHandle_t blas;
    std::vector<conv_dev *> convs;
    std::vector<linear_dev *> lins;
    // pinned host staging: two halves of AT_CUDA_STAGE_BYTES, an event each
    char *pinned;
    cudaEvent_t staged[2];
    int next_half;
};

// ---- kernels/memory.cu ----
// Device memory under the limit: NULL and a clean "out of memory: ..." error otherwise.
void *at_cuda_alloc(cuda_state *s, size_t bytes, const char *what);
void at_cuda_release(cuda_state *s, void *p);
size_t at_cuda_available(cuda_state *s);
int at_cuda_prepare_conv(cuda_state *s, const float *w, const float *b, int K, int C, int k, int stride, int pad, int H,
                         int W, conv_dev **out);
int at_cuda_prepare_linear(cuda_state *s, const float *w, const float *b, int out, int in, linear_dev **lin);
int at_cuda_upload(cuda_state *s, void *dev, const void *host, size_t bytes);
int at_cuda_download(cuda_state *s, void *host, const void *dev, size_t bytes);

#endif
