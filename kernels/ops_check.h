/* Single CUDA ops behind a C interface, for tests/test_cuda.c to compare each
 * kernel with its host/cpu twin on identical inputs (ggml test-backend-ops):
 * host arrays in and out, device buffers allocated, padded with a guard
 * region that is checked after the launch, and freed per call. Slow by
 * design; not for the engine. Each returns AT_OK or AT_ERR with a message
 * (an out-of-bounds write into a guard region is an error). */
#ifndef ATTRIB_OPS_CHECK_H
#define ATTRIB_OPS_CHECK_H

#include "exec/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = conv(x, w) + b, then (relu) y = g * relu(y) with keep = relu(y) when
 * keep != NULL; gates has n_gate_rows rows of K (NULL: ones), gate_stride K
 * for per-item rows or 0 for one shared row. w is [K][C][k][k]. */
int at_check_conv2d_forward(const float *x, int N, int C, int H, int W, const float *w, const float *b, int K,
                            int k, int stride, int pad, int relu, const float *gates, int n_gate_rows,
                            int gate_stride, float *y, float *keep, at_precision prec);
/* dx = conv^T(dy); the GEMM path for stride 1 and pad <= k-1, else the direct kernel. */
int at_check_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *w, int K, int k,
                                  int stride, int pad, float *dx, at_precision prec);
int at_check_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y);
int at_check_maxpool2d_backward(const float *x, const float *dy, int N, int C, int H, int W, int k, int s, int p,
                                float *dx);
int at_check_adaptive_avgpool_forward(const float *x, int N, int C, int H, int W, int OH, int OW, float *y);
int at_check_adaptive_avgpool_backward(const float *dy, int N, int C, int H, int W, int OH, int OW, float *dx);
int at_check_linear_forward(const float *x, int N, int in, const float *w, const float *b, int out, float *y);
int at_check_linear_backward_data(const float *dy, int N, int in, const float *w, int out, float *dx);
/* y is updated in place (as on the CPU). */
int at_check_gated_relu_forward(float *y, int N, int C, long HW, const float *gates, int n_gate_rows,
                                int gate_stride, float *keep);
int at_check_gated_relu_backward(const float *dy, const float *a, int N, int C, long HW, const float *gates,
                                 int n_gate_rows, int gate_stride, float *dz, float *dgate);
/* The network inputs of n items (host/cpu/backend_cpu.c make_input);
 * input_index may be NULL, masks may be NULL. mean_over_std has C entries. */
int at_check_make_inputs(const float *rows, int n_rows, const int *input_index, const float *masks, int mh, int mw,
                         int align_corners, at_mask_norm norm, at_mask_space space, const float *mean_over_std,
                         int n, int C, int H, int W, float *out);

#ifdef __cplusplus
}
#endif

#endif
