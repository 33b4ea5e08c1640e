/* Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution on the CPU: 3x3
 * kernels, stride 1, any pad <= 2, NCHW float32 (Lavin & Gray, "Fast
 * Algorithms for Convolutional Neural Networks", 2016). F(2x2) computes each
 * 2x2 output tile from a 4x4 input tile with 16 products instead of 36
 * (2.25x fewer multiply-adds than the direct conv), F(4x4) each 4x4 tile
 * from a 6x6 one with 36 instead of 144 (4x fewer), at the price of a
 * slightly different rounding, larger for F(4x4) (the error per VGG16 layer
 * is in docs/bench.md). m names the tile: 2 or 4.
 *
 * Results are deterministic and independent of the number of threads: every
 * output is the same transforms and the same SGEMM dot products (host/cpu/
 * sgemm.h) whatever thread or chunk of tiles computes it. */
#ifndef ATTRIB_CPU_WINOGRAD_H
#define ATTRIB_CPU_WINOGRAD_H

#include <stddef.h>

#include "cpu/conv.h"

/* 1 when this conv (forward and data gradient) has a Winograd path: 3x3,
 * stride 1, pad <= 2, at least 16 input and output channels (fewer leave the
 * GEMMs with almost no depth or rows: VGG's first layer stays direct). */
int at_winograd_applies(int C, int K, int kh, int kw, int stride, int pad);

/* The tile (2 or 4) for a conv with C inputs and K outputs of Ho x Wo
 * pixels (the backward-data conv: K inputs, C outputs of the input's size),
 * a fixed rule of the shape alone (never of timing, threads or batch):
 *   F(4x4) when both sides of the output are >= AT_WINO4_MIN_SIDE, or both
 *     >= AT_WINO4_SMALL_SIDE with C * K <= AT_WINO4_SMALL_MAX_CK;
 *   F(2x2) otherwise.
 * Small maps have few tiles per image, and F(4x4)'s weights (36 K C floats,
 * read once per chunk of tiles) then cost more than its saved products
 * (measured per VGG16 layer, docs/bench.md: 512 -> 512 at 7x7, batch 1:
 * F(2x2) 0.43 ms, F(4x4) 0.69). From 12 pixels a side F(4x4) wins from a
 * batch of 4 on (64 -> 64 at 12x12, 16 images: 0.30 ms against F(2x2)'s
 * 0.46), and the CPU runs methods in batches of up to 16. On 7x7 and 8x8
 * maps with small weights F(4x4) wins in those batches too (64 -> 64 at
 * 8x8, 16 images: 0.15 ms against 0.21; 128 -> 128 at 7x7: 0.38 against
 * 0.54) and loses a few microseconds at batch 1; below 7 pixels its tiles
 * are mostly padding. */
#define AT_WINO4_MIN_SIDE 12
#define AT_WINO4_SMALL_SIDE 7
#define AT_WINO4_SMALL_MAX_CK (128 * 128)
int at_winograd_rule(int C, int K, int Ho, int Wo);

/* Floats of the transformed weights: (m+2)^2 * K * C. */
size_t at_winograd_weights_floats(int K, int C, int m);

/* u = G w G^T per (k, c) for the forward of w[K][C][3][3], (m+2)^2 matrices
 * of K x C, each packed as the SGEMM's A operand (at_sgemm_pack_a); with
 * backward, C x K matrices of the flipped, channel-transposed kernel, whose
 * forward conv of dy (pad 2 - pad) is the data gradient. Returns 0, or -1
 * when out of memory for its scratch. */
int at_winograd_transform_weights(const float *w, int K, int C, int backward, int m, float *u);

/* Floats of scratch the conv needs for these channel counts (all threads,
 * either tile). */
size_t at_winograd_workspace_floats(int C, int K);

/* y[N][K][Ho][Wo] = conv3x3(x[N][C][H][W]) + b (b may be NULL), stride 1,
 * with tile m and u from at_winograd_transform_weights (forward, same m),
 * then the epilogue e (NULL: none). */
void at_winograd_conv2d_forward(const float *x, int N, int C, int H, int W, int m, const float *u,
                                const float *b, int K, int pad, float *y, float *workspace,
                                const at_conv_epilogue *e);

/* dx[N][C][H][W] = the data gradient of that conv for dy[N][K][Ho][Wo], with
 * u transformed with backward = 1 (same m). */
void at_winograd_conv2d_backward_data(const float *dy, int N, int C, int H, int W, int m, const float *u,
                                      int K, int pad, float *dx, float *workspace);

#endif
