// The CUDA ops behind kernels/backend_cuda.cu, one family per file, named
// after their CPU twins in host/cpu (darknet style: at_maxpool2d_forward ->
// at_maxpool2d_forward_gpu). Device pointers, NCHW float32, sizes as explicit
// arguments; every function enqueues on `stream` and returns AT_OK or AT_ERR
// with a message (kernels/cuda_common.cuh).
#ifndef ATTRIB_OPS_CUDA_CUH
#define ATTRIB_OPS_CUDA_CUH

#include "cuda_common.cuh"

// ---- kernels/conv.cu -------------------------------------------------------

// One implicit-GEMM convolution: y[img][m][oy][ox] = sum over GEMM-k of
// a[k][m] * x[img][.][.][.] gathered through tab (see conv.cu), then the
// epilogue. Forward convolutions and stride-1 backward-data (a convolution of
// dy with the flipped kernel) both run through it.
struct at_conv_gemm {
    const float *x;     // [N][C][H][W]
    const float *a;     // GEMM A, k-major: [CK][M]
    const int2 *tab;    // [CK] {c*H*W + ky*W + kx, ky << 16 | kx}
    float *y;           // [N][M][Ho][Wo]
    int N, C, H, W;     // input
    int M, Ho, Wo;      // output channels and size
    int kernel, stride, pad, CK; // CK = C*kernel*kernel
    // epilogue: z = acc + bias; relu: a = z > 0 ? z : 0, y = gate * a, keep = a
    const float *bias;  // [M] or NULL
    int relu;
    const float *gates; // this layer's first gate in row 0, or NULL (all ones)
    int gate_stride;    // floats between items' gate rows; 0: one shared row
    float *keep;        // [N][M][Ho][Wo] relu(z) before the gate, or NULL
    // Fused input masking (Score-CAM's first conv): image img reads row
    // row_index[img] of x and multiplies it by its mask u[img][H][W] as it
    // loads, x' = x*u, or x*u + ms[c]*(u-1) when ms (the [0,1]-space mask)
    // is given: the masked images are never written (kernels/masks.cu).
    const int *row_index; // [N] or NULL (image img reads row img)
    const float *mask;    // [N][H][W] or NULL (no masking)
    const float *ms;      // [C] mean/std per channel, or NULL (normalised-space mask)
};

// Packs a conv weight [K][C][k][k] as the forward GEMM A [C*k*k][K].
void at_conv2d_pack_forward(const float *w, int K, int C, int k, float *a);
// Packs it as the stride-1 backward-data GEMM A [K*k*k][C], flipped in space.
void at_conv2d_pack_backward(const float *w, int K, int C, int k, float *a);
// The gather table of a k x k convolution over a C x H x W input.
void at_conv2d_gather_table(int C, int H, int W, int k, int2 *tab);
// Whether the backward-data pass of this geometry runs as an implicit GEMM
// (stride 1, pad <= k-1); otherwise at_conv2d_backward_data_direct_gpu.
int at_conv2d_backward_is_gemm(int kernel, int stride, int pad);

int at_conv2d_gemm_gpu(const at_conv_gemm *g, at_precision prec, int n_sm, cudaStream_t stream);
// dx[N][C][H][W] = conv^T(dy[N][K][Ho][Wo]) with the forward-packed weights
// a_fwd [C*k*k][K], one thread per dx element (any stride and padding).
int at_conv2d_backward_data_direct_gpu(const float *dy, int N, int C, int H, int W, const float *a_fwd,
                                       int K, int kernel, int stride, int pad, int Ho, int Wo, float *dx,
                                       cudaStream_t stream);
// __CUDA_ARCH__ of the device code this binary runs on the current device
// (e.g. 900); an error (e.g. cudaErrorNoKernelImageForDevice) and 0 when the
// build has no image for it. Records no message.
cudaError_t at_cuda_built_arch(int *arch);

// ---- kernels/pool.cu -------------------------------------------------------

int at_maxpool2d_forward_gpu(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y,
                             cudaStream_t stream);
int at_maxpool2d_backward_gpu(const float *x, const float *dy, int N, int C, int H, int W, int k, int s, int p,
                              float *dx, cudaStream_t stream);
int at_adaptive_avgpool_forward_gpu(const float *x, int N, int C, int H, int W, int OH, int OW, float *y,
                                    cudaStream_t stream);
int at_adaptive_avgpool_backward_gpu(const float *dy, int N, int C, int H, int W, int OH, int OW,
                                     float *dx, cudaStream_t stream);

// k x k average pool, stride s, zero padding p counted in the divisor
int at_avgpool2d_forward_gpu(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y,
                             cudaStream_t stream);
int at_avgpool2d_backward_gpu(const float *dy, int N, int C, int H, int W, int k, int s, int p, float *dx,
                              cudaStream_t stream);

// ---- kernels/softmax.cu ----------------------------------------------------

int at_softmax_forward_gpu(const float *x, int N, long K, float *y, cudaStream_t stream);
int at_softmax_backward_gpu(const float *y, const float *dy, int N, long K, float *dx, cudaStream_t stream);

// ---- kernels/linear.cu -----------------------------------------------------

// y[N][out] = x[N][in] * w[out][in]^T + b
int at_linear_forward_gpu(cublasHandle_t blas, const float *x, int N, int in, const float *w,
                          const float *b, int out, float *y, cudaStream_t stream);
// dx[N][in] = dy[N][out] * w[out][in]
int at_linear_backward_data_gpu(cublasHandle_t blas, const float *dy, int N, int in, const float *w,
                                int out, float *dx, cudaStream_t stream);

// ---- kernels/gates.cu ------------------------------------------------------

// In place y = g[c] * relu(y); keep (or NULL) receives relu(y) before gating.
int at_gated_relu_forward_gpu(float *y, int N, int C, long HW, const float *gates, int gate_stride,
                              float *keep, cudaStream_t stream);
// dz = g*dy*[a>0] (dz may alias dy); dgate[n*dgate_stride + c] = sum dy*a
// reduced in a fixed order, one block per (n, c).
int at_gated_relu_backward_gpu(const float *dy, const float *a, int N, int C, long HW,
                               const float *gates, int gate_stride, float *dz, float *dgate,
                               int dgate_stride, cudaStream_t stream);

// A gate where no ReLU follows (host/cpu/gates.c at_gate_forward/backward):
// y = g*y, keep = y before; dz = g*dy (may alias dy), dgate = sum dy*z.
int at_gate_forward_gpu(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep,
                        cudaStream_t stream);
int at_gate_backward_gpu(const float *dy, const float *z, int N, int C, long HW, const float *gates, int gate_stride,
                         float *dz, float *dgate, int dgate_stride, cudaStream_t stream);

// The ReLU backward under a rule (0 gradient, 1 guided backprop, 2 deconvnet;
// host/cpu/ops.c at_relu_backward_rule); rule 0 is at_gated_relu_backward_gpu.
int at_relu_backward_rule_gpu(int rule, const float *dy, const float *a, int N, int C, long HW, const float *gates,
                              int gate_stride, float *dz, float *dgate, int dgate_stride, cudaStream_t stream);
// x[n][c][.] *= s[n*C + c]
int at_scale_channels_gpu(float *x, int N, int C, long HW, const float *s, cudaStream_t stream);

// ---- kernels/elementwise.cu ------------------------------------------------

// y = a + b (y may alias a or b)
int at_add_forward_gpu(const float *a, const float *b, long n, float *y, cudaStream_t stream);
// y = a * b; y = a / b, 0 where b is 0
int at_mul_forward_gpu(const float *a, const float *b, long n, float *y, cudaStream_t stream);
int at_div_forward_gpu(const float *a, const float *b, long n, float *y, cudaStream_t stream);
// the LRP rules' ops (host/cpu/elementwise.c): max/min(x, 0); a where sign*m > 0;
// a / (b + eps sign b); alpha a + beta b
int at_clamp_sign_forward_gpu(const float *x, int sign, long n, float *y, cudaStream_t stream);
int at_select_sign_forward_gpu(const float *m, const float *a, int sign, long n, float *y, cudaStream_t stream);
int at_div_stabilized_forward_gpu(const float *a, const float *b, float eps, long n, float *y, cudaStream_t stream);
int at_axpby_forward_gpu(float alpha, const float *a, float beta, const float *b, long n, float *y,
                         cudaStream_t stream);

// ---- kernels/masks.cu ------------------------------------------------------

#define AT_GPU_MAX_IN_C 64

// Builds the network input of every item (host/cpu/backend_cpu.c make_input).
struct at_mask_inputs {
    const float *rows;        // [n_rows][C][H][W] normalised inputs
    const int *input_index;   // [n] row of each item, or NULL (item b reads row b)
    const float *masks;       // [n][mh][mw] or NULL (a gather copy)
    int mh, mw, align_corners;
    at_mask_norm norm;
    at_mask_space space;
    float mean_over_std[AT_GPU_MAX_IN_C]; // AT_MASK_UNIT: mean[c]/std[c]
    float *lohi;              // scratch [n][2] for the min-max
    int n, C, H, W;
    int mask_only;            // 1: write each item's final mask u [n][H][W] for a
                              // conv that fuses the masking (at_conv_gemm.mask)
    float *out;               // [n][C][H][W], or [n][H][W] with mask_only
};
int at_make_inputs_gpu(const at_mask_inputs *a, cudaStream_t stream);

#endif
