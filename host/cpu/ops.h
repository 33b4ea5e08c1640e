/* CPU reference ops other than convolution (host/cpu/conv.h). NCHW float32,
 * sizes as explicit arguments; backward functions take the forward input
 * where they need it. OpenMP-parallel over images x channels. */
#ifndef ATTRIB_CPU_OPS_H
#define ATTRIB_CPU_OPS_H

/* Below this many floats a memory-bound op runs on the calling thread
 * alone: waking the other threads costs more than they save (ResNet-50's
 * 7x7 and 14x14 maps at batch 1). The results are the same either way. */
#define AT_PARALLEL_MIN_FLOATS (1L << 18)

/* k x k window, stride s, padding p (padded cells never win: -inf), floor
 * mode; ties go to the first maximum in raster order (as PyTorch). */
void at_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y);
void at_maxpool2d_backward(const float *x, const float *dy, int N, int C, int H, int W, int k,
                           int s, int p, float *dx);

/* PyTorch bins: start = floor(i*H/OH), end = ceil((i+1)*H/OH); overlapping
 * bins when OH > H. */
void at_adaptive_avgpool_forward(const float *x, int N, int C, int H, int W, int OH, int OW,
                                 float *y);
void at_adaptive_avgpool_backward(const float *dy, int N, int C, int H, int W, int OH, int OW,
                                  float *dx);

/* y[N][out] = x[N][in] * w[out][in]^T + b */
/* k x k average pool, stride s, zero padding p counted (count_include_pad) */
void at_avgpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y);
void at_avgpool2d_backward(const float *dy, int N, int C, int H, int W, int k, int s, int p, float *dx);
/* softmax over each item's K features, and its backward from the outputs y */
void at_softmax_forward(const float *x, int N, long K, float *y);
void at_softmax_backward(const float *y, const float *dy, int N, long K, float *dx);

void at_linear_forward(const float *x, int N, int in, const float *w, const float *b, int out,
                       float *y);
/* dx[N][in] = dy[N][out] * w[out][in] */
void at_linear_backward_data(const float *dy, int N, int in, const float *w, int out, float *dx);

/* In place y = g[c] * relu(y) per channel (g NULL: plain ReLU). When keep is
 * not NULL it receives relu(y) before gating (the gate gradient needs it).
 * gates has one row of C per image when per_image, else one shared row. */
void at_gated_relu_forward(float *y, int N, int C, long HW, const float *gates, int gate_stride,
                           float *keep);
/* Given dy (grad of the gated output) and a = relu(z) (ungated): dz = g*dy*[a>0]
 * written to dz (may alias dy); dgate[n][c] = sum dy*a when dgate != NULL. */
void at_gated_relu_backward(const float *dy, const float *a, int N, int C, long HW,
                            const float *gates, int gate_stride, float *dz, float *dgate,
                            int dgate_stride);

/* Operand rounding of the reduced precisions, in place: what tensor cores
 * see of an FP32 tensor. TF32 keeps 10 mantissa bits, rounding to nearest
 * with ties away from zero (cvt.rna.tf32.f32, as wmma::__float_to_tf32);
 * FP16 rounds to nearest even into binary16's range (overflow to inf,
 * gradual underflow). */
/* rule 0 gradient, 1 guided backprop, 2 deconvnet (at_relu_rule) */
void at_relu_backward_rule(int rule, const float *dy, const float *a, int N, int C, long HW, const float *gates,
                           int gate_stride, float *dz, float *dgate, int dgate_stride);
/* A gate where no ReLU follows the conv: y = g*y in place, keep = y before;
 * backward dz = g*dy (may alias dy), dgate[n][c] = sum dy*z (z ungated). */
void at_gate_forward(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep);
void at_gate_backward(const float *dy, const float *z, int N, int C, long HW, const float *gates, int gate_stride,
                      float *dz, float *dgate, int dgate_stride);
/* x[n][c][.] *= s[n*C + c] */
void at_scale_channels(float *x, int N, int C, long HW, const float *s);

/* y = a + b (y may alias a or b) */
void at_add_forward(const float *a, const float *b, long n, float *y);
/* y = a * b; y = a / b, 0 where b is 0 (y may alias a or b) */
void at_mul_forward(const float *a, const float *b, long n, float *y);
void at_div_forward(const float *a, const float *b, long n, float *y);
/* The LRP rules' element-wise ops (host/exec/ops.h) */
void at_clamp_sign_forward(const float *x, int sign, long n, float *y);
void at_select_sign_forward(const float *m, const float *a, int sign, long n, float *y);
void at_div_stabilized_forward(const float *a, const float *b, float eps, long n, float *y);
void at_axpby_forward(float alpha, const float *a, float beta, const float *b, long n, float *y);

void at_round_tf32(float *x, long n);
void at_round_fp16(float *x, long n);

/* Numerically stable softmax of each row. */

#endif
