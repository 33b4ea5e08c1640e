/* Winograd F(2x2, 3x3) convolution on the CPU: 3x3 kernels, stride 1, any
 * pad <= 2, NCHW float32 (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016). Each 2x2 output tile is computed from a 4x4 input
 * tile with 16 products instead of 36: 2.25x fewer multiply-adds than the
 * direct conv, at the price of a slightly different rounding (the error per
 * VGG16 layer is in docs/bench.md).
 *
 * Results are deterministic and independent of the number of threads: every
 * output is the same transforms and the same SGEMM dot products (host/cpu/
 * sgemm.h) whatever thread or chunk of tiles computes it. */
#ifndef ATTRIB_CPU_WINOGRAD_H
#define ATTRIB_CPU_WINOGRAD_H

#include <stddef.h>

/* 1 when this conv (forward and data gradient) has a Winograd path: 3x3,
 * stride 1, pad <= 2, at least 16 input and output channels (fewer leave the
 * GEMMs with almost no depth or rows: VGG's first layer stays direct). */
int at_winograd_applies(int C, int K, int kh, int kw, int stride, int pad);

/* Floats of the transformed weights: 16 * K * C. */
size_t at_winograd_weights_floats(int K, int C);

/* u[16][K][C] = G w G^T per (k, c) for the forward of w[K][C][3][3]; with
 * backward, u[16][C][K] of the flipped, channel-transposed kernel, whose
 * forward conv of dy (pad 2 - pad) is the data gradient. */
void at_winograd_transform_weights(const float *w, int K, int C, int backward, float *u);

/* Floats of scratch the conv needs for these channel counts (all threads). */
size_t at_winograd_workspace_floats(int C, int K);

/* y[N][K][Ho][Wo] = conv3x3(x[N][C][H][W]) + b (b may be NULL), stride 1,
 * with u from at_winograd_transform_weights (forward). */
void at_winograd_conv2d_forward(const float *x, int N, int C, int H, int W, const float *u,
                                const float *b, int K, int pad, float *y, float *workspace);

/* dx[N][C][H][W] = the data gradient of that conv for dy[N][K][Ho][Wo], with
 * u transformed with backward = 1. */
void at_winograd_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *u,
                                      int K, int pad, float *dx, float *workspace);

#endif
