/* Direct forward convolution with the output channels across the vector
 * lanes, NCHW float32, for the CPU backend (AVX-512 builds only).
 *
 * The GEMM path (cpu/conv.h) puts 16 output pixels in a vector and packs an
 * im2col panel of the input for every block of them. On small maps (the
 * 14x14 and 7x7 of ResNet-50 at batch 1, where a panel spans several output
 * rows) and for strided convs that packing goes through the slow masked
 * packers, and each thread packs the whole operand. Here a tile is 32
 * output channels (two 16-float vectors) by up to 14 output pixels (part of
 * one output row, or two whole rows of at most 7); each step k = (c, ky, kx)
 * loads the two weight vectors and broadcasts every pixel's input straight
 * from the image (zero-padded when pad > 0, by bands or whole, see
 * conv_channels.c), as onnxruntime's NCHWc kernels do, so nothing of the
 * input is packed into panels.
 *
 * Each output is one chain of FMAs over k in the order (c, ky, kx), then
 * plus the bias: the result does not depend on the thread count, the tile
 * an output falls in, or the batch. It differs in rounding from the GEMM
 * path (which sums K in blocks), as any two summation orders do. */
#ifndef ATTRIB_CPU_CONV_CHANNELS_H
#define ATTRIB_CPU_CONV_CHANNELS_H

#include <stddef.h>

#include "cpu/conv.h"

/* 1 when this build has the kernel (AVX-512). */
int at_conv_channels_compiled(void);

/* Whether a forward conv of C -> K channels, kh x kw, stride, pad, over an
 * input of H x W (batch N) takes this path: a fixed rule of the shape alone
 * (never of timing or threads), measured per ResNet-50 layer at batch 1 and
 * 8 against the SGEMM path (docs/bench.md). Only strides 1 and 2, and
 * inputs (padded) at least as large as the kernel, have a kernel; then:
 *   - at least 32 output channels (a tile's; ResNet18-mini's 16-channel
 *     stem would leave half the lanes empty: 0.80x the GEMM at batch 1) and
 *     sums of at least AT_CONV_CHANNELS_MIN_STEPS = C*kh*kw terms, so that
 *     the transposed stores stay a small part of a tile's work;
 *   - stride 2 with kernels of 3x3 and more (ResNet's 3x3 / 2 convs and
 *     its 7x7 / 2 stem), whose im2col panels the GEMM gathers at stride 2;
 *   - stride-2 1x1 projections with at most
 *     AT_CONV_CHANNELS_MAX_PROJECTION_WEIGHTS weights (ResNet-50's
 *     256 -> 512 and 512 -> 1024; its 1024 -> 2048 onto 7x7 stays a GEMM);
 *   - stride-1 1x1 convs without padding from AT_CONV_CHANNELS_MIN_POINTWISE_C
 *     input channels (the 1024 -> 256 and 2048 -> 512 reductions), whose
 *     GEMM each thread would give a privately packed B of C rows.
 * Everything else (VGG's convs, the 1x1 expansions and smaller
 * reductions) stays with the SGEMM or Winograd. */
#define AT_CONV_CHANNELS_MIN_STEPS 128
#define AT_CONV_CHANNELS_MAX_PROJECTION_WEIGHTS (512L * 1024)
#define AT_CONV_CHANNELS_MIN_POINTWISE_C 1024
int at_conv_channels_rule(int C, int K, int kh, int kw, int stride, int pad, int N, int H, int W);

/* Floats of the packed weights: ceil(K/32) blocks of C*kh*kw steps of 32
 * output channels (zeros past K). dst must be 64-byte aligned. */
size_t at_conv_channels_weights_floats(int K, int C, int kh, int kw);
void at_conv_channels_pack_weights(const float *w, int K, int C, int kh, int kw, float *dst);

/* Floats of workspace for the zero-padded input (0 when pad == 0), sized
 * for omp_get_max_threads() threads (the forward must run with no more): a
 * padded copy of x for all threads, or the fallbacks of the copies and
 * bands each thread pads into its own scratch (cpu/thread_scratch.h) when
 * that scratch cannot be had. */
size_t at_conv_channels_workspace_floats(int N, int C, int H, int W, int K, int kh, int kw, int stride, int pad);

/* y[N][K][Ho][Wo] = conv(x[N][C][H][W]) + b (b may be NULL), with packed
 * from at_conv_channels_pack_weights, then the epilogue e (NULL: none).
 * workspace holds at_conv_channels_workspace_floats floats. Returns 0, or
 * -1 (writing nothing) when this build or this shape has no kernel (see
 * at_conv_channels_rule). */
int at_conv_channels_forward(const float *x, int N, int C, int H, int W, const float *packed, const float *b,
                             int K, int kh, int kw, int stride, int pad, float *y, float *workspace,
                             const at_conv_epilogue *e);

#endif
