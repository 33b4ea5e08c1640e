// CUDA backend entry points. The device is probed through the runtime; the
// kernels behind the interface (conv, pools, FC, gates, reductions) are the
// CUDA-backend issue's work and not written yet, so a present GPU is reported
// as such rather than silently falling back.
#include <cuda_runtime.h>

#include <cstdio>

extern "C" {
#include "backend.h"
#include "error.h"
}

extern "C" int at_cuda_available(char *why, size_t cap) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        if (why && cap)
            snprintf(why, cap, "no CUDA device: %s",
                     err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        cudaGetLastError();  // clear the sticky error for later calls
        return 0;
    }
    if (why && cap)
        snprintf(why, cap, "the CUDA kernels are not part of this version yet");
    return 0;
}

extern "C" int at_cuda_backend_create(const at_model *m, const at_backend_options *opt,
                                      at_backend **out) {
    *out = NULL;
    char why[256];
    at_cuda_available(why, sizeof why);
    return at_fail("--backend", "cuda: %s; use --backend cpu", why);
}
