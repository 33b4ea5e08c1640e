/* 2-D convolution on the CPU, NCHW float32, built on the packed SGEMM
 * (host/cpu/sgemm.h). Weights are [K][C][kh][kw], bias [K] (or NULL); one
 * stride and one zero padding for both spatial dimensions; output size
 * Ho = (H + 2*pad - kh) / stride + 1, likewise Wo.
 *
 * Results are deterministic and independent of the number of OpenMP threads.
 * Called from inside a parallel region they run single-threaded. */
#ifndef ATTRIB_CPU_CONV_H
#define ATTRIB_CPU_CONV_H

#include <stddef.h>

/* Floats of scratch memory that at_conv2d_forward / at_conv2d_backward_data
 * need for these sizes (independent of the batch size N and of K), so the
 * caller can allocate once per layer. 0 when none is needed: the forward
 * never needs any (it packs GEMM panels straight from the image), nor does
 * the backward pass for stride 1, pad < kernel size and C >= 16 (every VGG
 * convolution but the first); otherwise it is an im2col buffer for a tile of
 * pixels of one image, at most 4M floats (16 MiB). */
size_t at_conv2d_workspace_floats(int C, int H, int W, int kh, int kw, int stride, int pad);

/* y[N][K][Ho][Wo] = conv(x[N][C][H][W], w) + b. workspace may be NULL. */
void at_conv2d_forward(const float *x, int N, int C, int H, int W, const float *w, const float *b,
                       int K, int kh, int kw, int stride, int pad, float *y, float *workspace);

/* dx[N][C][H][W] = conv^T(dy[N][K][Ho][Wo]): the gradient of the forward with
 * respect to x (dx is overwritten, not accumulated). Stride 1 with
 * pad < kh, kw and C >= 16 runs as a forward convolution of dy with the
 * flipped, transposed kernel (no workspace); other cases as the GEMM
 * w^T * dy followed by col2im, in tiles of pixels. */
void at_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *w, int K,
                             int kh, int kw, int stride, int pad, float *dx, float *workspace);

/* What a forward conv's outputs get after the bias, while they are in
 * cache, in this order: residual added (laid out like y, not overlapping
 * it; NULL: none), then relu (v > 0 ? v : 0). The same bits as the separate
 * element-wise add and ReLU passes. */
typedef struct {
    const float *residual;
    int relu;
} at_conv_epilogue;

/* The weights packed once for the SGEMM (the panels every call would pack
 * otherwise: the same bits), for the forward (backward 0) or the backward
 * data pass (1; 0 floats where that pass does not run as a forward conv).
 * The _packed calls take them, or NULL to pack on the fly; w is still read
 * where packed is NULL. */
size_t at_conv2d_packed_weights_floats(int K, int C, int kh, int kw, int stride, int pad, int backward);
void at_conv2d_pack_weights(const float *w, int K, int C, int kh, int kw, int backward, float *dst);
void at_conv2d_forward_packed(const float *x, int N, int C, int H, int W, const float *w, const float *packed,
                              const float *b, int K, int kh, int kw, int stride, int pad, float *y,
                              const at_conv_epilogue *e);
void at_conv2d_backward_data_packed(const float *dy, int N, int C, int H, int W, const float *w,
                                    const float *packed, int K, int kh, int kw, int stride, int pad, float *dx,
                                    float *workspace);

#endif
