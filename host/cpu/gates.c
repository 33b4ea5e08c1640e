/* Gated ReLU forward and backward, the backward's rules, and channel
 * scaling (the CPU references of kernels/gates.cu). */
#include <string.h>

#include "cpu/ops.h"

/* sum a[i] * b[i] in double, in a fixed order that does not depend on the
 * thread count: 16 running sums (i mod 16, each product exact in double),
 * then the tail, then the 16 in order. One running sum would be a chain of
 * dependent adds, four cycles an element: a tenth of a VGG16 gate-backward
 * pass went to it. */
static double dot_fixed(const float *a, const float *b, long n) {
    double s[16] = {0};
    long i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) s[j] += (double)a[i + j] * b[i + j];
    double t = 0;
    for (; i < n; i++) t += (double)a[i] * b[i];
    for (int j = 0; j < 16; j++) t += s[j];
    return t;
}

/* y = g*relu(y), or y = g*y where no ReLU follows the conv (before a residual
 * add), in place; keep = what was gated when not NULL. */
static inline void gate_in_place(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep,
                                 int relu) {
#pragma omp parallel for schedule(static) if ((long)N * C * HW > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < (long)N * C; nc++) {
        float *p = y + nc * HW;
        float *k = keep ? keep + nc * HW : NULL;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        for (long i = 0; i < HW; i++) {
            float a = relu ? (p[i] > 0 ? p[i] : 0.0f) : p[i];
            if (k) k[i] = a;
            p[i] = g * a;
        }
    }
}

void at_gated_relu_forward(float *y, int N, int C, long HW, const float *gates, int gate_stride,
                           float *keep) {
    gate_in_place(y, N, C, HW, gates, gate_stride, keep, 1);
}

void at_gated_relu_backward(const float *dy, const float *a, int N, int C, long HW,
                            const float *gates, int gate_stride, float *dz, float *dgate,
                            int dgate_stride) {
#pragma omp parallel for schedule(static) if ((long)N * C * HW > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *d = dy + nc * HW, *ap = a + nc * HW;
        float *out = dz + nc * HW;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        /* fixed-order double sum: deterministic and accurate; apart, so the mask vectorises, and first: out may be dy */
        if (dgate) dgate[(nc / C) * dgate_stride + nc % C] = (float)dot_fixed(d, ap, HW);
        for (long i = 0; i < HW; i++) out[i] = ap[i] > 0 ? g * d[i] : 0.0f;
    }
}

/* The ReLU backward under a rule (docs/methods.md): the gradient, guided
 * backprop (max(dy, 0) where relu(z) > 0) or deconvnet (max(dy, 0)), each
 * times the gate; dgate is the gate gradient sum dy * relu(z) whatever the rule. */
void at_relu_backward_rule(int rule, const float *dy, const float *a, int N, int C, long HW, const float *gates,
                           int gate_stride, float *dz, float *dgate, int dgate_stride) {
    if (rule == 0) {
        at_gated_relu_backward(dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride);
        return;
    }
#pragma omp parallel for schedule(static) if ((long)N * C * HW > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *d = dy + nc * HW, *ap = a + nc * HW;
        float *out = dz + nc * HW;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        if (dgate) dgate[(nc / C) * dgate_stride + nc % C] = (float)dot_fixed(d, ap, HW); /* first: out may be dy */
        for (long i = 0; i < HW; i++) {
            const int open = rule == 2 || ap[i] > 0;
            out[i] = open && d[i] > 0 ? g * d[i] : 0.0f;
        }
    }
}

void at_gate_forward(float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep) {
    gate_in_place(y, N, C, HW, gates, gate_stride, keep, 0);
}

/* dz = g*dy (may alias dy); dgate = sum dy*z, z the ungated output. */
void at_gate_backward(const float *dy, const float *z, int N, int C, long HW, const float *gates, int gate_stride,
                      float *dz, float *dgate, int dgate_stride) {
#pragma omp parallel for schedule(static) if ((long)N * C * HW > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *d = dy + nc * HW, *zp = z + nc * HW;
        float *out = dz + nc * HW;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        if (dgate) dgate[(nc / C) * dgate_stride + nc % C] = (float)dot_fixed(d, zp, HW); /* first: out may be dy */
        for (long i = 0; i < HW; i++) out[i] = g * d[i];
    }
}

void at_scale_channels(float *x, int N, int C, long HW, const float *s) {
#pragma omp parallel for schedule(static) if ((long)N * C * HW > AT_PARALLEL_MIN_FLOATS)
    for (long nc = 0; nc < (long)N * C; nc++)
        for (long i = 0; i < HW; i++) x[nc * HW + i] *= s[nc];
}
