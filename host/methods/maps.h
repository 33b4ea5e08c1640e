/* 2-D map operations shared by backends and methods: bilinear resampling with
 * PyTorch's conventions, min-max normalisation (s(M) of docs/methods.md#notation-and-common-steps). */
#ifndef ATTRIB_MAPS_H
#define ATTRIB_MAPS_H

/* F.interpolate(mode="bilinear") of one h x w map to oh x ow, float arithmetic
 * as PyTorch's CPU kernel. align_corners as the flag. */
void at_upsample_bilinear(const float *src, int h, int w, float *dst, int oh, int ow,
                          int align_corners);

/* The adjoint of at_upsample_bilinear (its transpose): dsrc[h][w] = sum of
 * ddst[oh][ow] times each output's weight on that source sample. */
void at_upsample_bilinear_adjoint(const float *ddst, int oh, int ow, float *dsrc, int h, int w, int align_corners);

/* In place: (x - min) / (max - min); all zeros when max == min (docs/methods.md#notation-and-common-steps).
 * Returns 1 when the map was flat. */
int at_minmax_normalize(float *x, long n);

/* ReLU in place. */
void at_relu_inplace(float *x, long n);

/* The first index of the largest of x[0..n-1] (NaN never wins over a number before it). */
int at_argmax(const float *x, int n);

/* probs[n][k] = softmax over the K logits of row n (double sums) */
void at_softmax_rows(const float *logits, int N, int K, float *probs);

#endif
