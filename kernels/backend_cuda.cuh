// State of the CUDA backend, shared by kernels/backend_cuda.cu (the
// at_backend methods: forward, backward, max_batch) and kernels/memory.cu
// (device weights, the activation arena, pinned staging).
#ifndef ATTRIB_BACKEND_CUDA_CUH
#define ATTRIB_BACKEND_CUDA_CUH

#include "ops_cuda.cuh"

// Default device memory the backend plans for (weights + activations):
// 7.5 GiB, so that an 8 GB GTX 1080-class card fits with its context.
#define AT_CUDA_DEFAULT_MEM_LIMIT ((size_t)15 << 29)
// Kept out of the plan: cuBLAS workspace and allocator slack.
#define AT_CUDA_RESERVE_BYTES ((size_t)64 << 20)
// Each of the two pinned staging buffers (double-buffered host copies).
#define AT_CUDA_STAGE_BYTES ((size_t)8 << 20)
#define AT_CUDA_MAX_BATCH 256

// A conv layer's two implicit GEMMs with the weights filled in; the data
// pointers, the batch and the epilogue are set per call.
struct conv_dev {
    at_conv_gemm fwd;
    at_conv_gemm bwd; // bwd.a == NULL: the backward runs the direct kernel
};

struct linear_dev {
    const float *w, *b; // [out][in], [out]
};

// What one forward needs besides the weights.
struct call_shape {
    int n;           // items
    int n_rows;      // distinct input rows the items read (uploaded when gathered)
    long mask_hw;    // mask_h * mask_w, 0 without masks
    int gate_rows;   // 0 without gates, 1 shared, n per item
    int keep;        // keep_for_backward
    int gated_keep;  // keep and gates: the ungated ReLU outputs are kept too
    int gathered;    // masks or input_index: rows are gathered on the device
};

// Sub-buffers of the activation arena (device, 256-byte aligned).
struct arena_plan {
    float *rows;       // [n_rows][C][H][W] when gathered
    int *index;        // [n]
    float *masks;      // [n][mask_hw]
    float *lohi;       // [n][2]
    float *gates;      // [gate_rows][n_gates]
    float *input;      // [n][C][H][W] the network input as fed
    float *kept;       // keep: every layer's output (host/cpu/backend_cpu.c kept_floats)
    float *ping, *pong; // [n][max layer]: forward ping-pong, or the backward's gradients
    float *grad_gates; // keep: [n][n_gates]
    size_t bytes;
};

struct cuda_state {
    const at_model *m;
    int device, cc_major, cc_minor, n_sm, built_arch;
    char device_name[256];
    size_t mem_limit;
    at_precision precision;  // the backend's
    at_precision prec;       // the current call's (and its backward's)
    cudaStream_t stream;
    cublasHandle_t blas;
    // weights: one allocation made at creation
    void *weights;
    size_t weights_bytes;
    conv_dev *conv;   // [n_layers], valid for conv layers
    linear_dev *lin;  // [n_layers], valid for linear layers
    float mean_over_std[AT_GPU_MAX_IN_C];
    float *d_mean_over_std; // the same on the device, for the fused masking
    int fuse_masks;         // masked calls: the first conv applies the masks (default)
    // this call's fused masking of layer 0, or mask == NULL
    const float *call_rows, *call_mask, *call_ms;
    const int *call_index;
    // activations: one allocation, regrown only for a larger call
    void *arena;
    size_t arena_bytes;
    // pinned host staging: two halves of AT_CUDA_STAGE_BYTES, an event each
    char *pinned;
    cudaEvent_t staged[2];
    int next_half;
    // the last forward kept for backward
    arena_plan kp;
    float **out, **aux; // [n_layers] device outputs (aliases as on the CPU); gated ReLU: relu(z)
    const float *kept_gates;
    int kept_gate_stride, kept_n, kept_valid;
};

// ---- kernels/memory.cu ----
long at_cuda_input_floats(const at_model *m);     // per item
size_t at_cuda_max_layer_floats(const at_model *m); // per item, input included
size_t at_cuda_kept_floats(const at_model *m, int n, int gated);
int at_cuda_aliases_input(const at_layer *l);
// Lays the arena out for one call at base (NULL: only sizes it); returns the bytes.
size_t at_cuda_plan_arena(const at_model *m, const call_shape *cs, char *base, arena_plan *p);
// Makes the arena at least `bytes`, within the memory limit; a clean
// "out of memory: ..." error otherwise.
int at_cuda_ensure_arena(cuda_state *s, size_t bytes, int n);
int at_cuda_upload_weights(cuda_state *s);
int at_cuda_upload(cuda_state *s, void *dev, const void *host, size_t bytes);
int at_cuda_download(cuda_state *s, void *host, const void *dev, size_t bytes);

#endif
