#include "cpu/ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/sgemm.h"

void at_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, float *y) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float best = xp[(oy * s) * W + ox * s];
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        float v = xp[(oy * s + dy) * W + ox * s + dx];
                        if (v > best || isnan(v)) best = v;
                    }
                yp[oy * OW + ox] = best;
            }
    }
}

void at_maxpool2d_backward(const float *x, const float *dy, int N, int C, int H, int W, int k,
                           int s, float *dx) {
    int OH = (H - k) / s + 1, OW = (W - k) / s + 1;
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        const float *dyp = dy + nc * OH * OW;
        float *dxp = dx + nc * H * W;
        memset(dxp, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int arg = (oy * s) * W + ox * s;
                float best = xp[arg];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int idx = (oy * s + ky) * W + ox * s + kx;
                        if (xp[idx] > best || isnan(xp[idx])) best = xp[idx], arg = idx;
                    }
                dxp[arg] += dyp[oy * OW + ox];
            }
    }
}

static inline int bin_start(int i, int in, int out) { return (int)((long)i * in / out); }
static inline int bin_end(int i, int in, int out) { return (int)(((long)(i + 1) * in + out - 1) / out); }

void at_adaptive_avgpool_forward(const float *x, int N, int C, int H, int W, int OH, int OW,
                                 float *y) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            int y0 = bin_start(oy, H, OH), y1 = bin_end(oy, H, OH);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = bin_start(ox, W, OW), x1 = bin_end(ox, W, OW);
                float sum = 0;
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) sum += xp[yy * W + xx];
                yp[oy * OW + ox] = sum / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void at_adaptive_avgpool_backward(const float *dy, int N, int C, int H, int W, int OH, int OW,
                                  float *dx) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *dyp = dy + nc * OH * OW;
        float *dxp = dx + nc * H * W;
        memset(dxp, 0, sizeof(float) * H * W);
        for (int oy = 0; oy < OH; oy++) {
            int y0 = bin_start(oy, H, OH), y1 = bin_end(oy, H, OH);
            for (int ox = 0; ox < OW; ox++) {
                int x0 = bin_start(ox, W, OW), x1 = bin_end(ox, W, OW);
                float g = dyp[oy * OW + ox] / (float)((y1 - y0) * (x1 - x0));
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) dxp[yy * W + xx] += g;
            }
        }
    }
}

void at_linear_forward(const float *x, int N, int in, const float *w, const float *b, int out,
                       float *y) {
    for (int n = 0; n < N; n++) memcpy(y + (long)n * out, b, sizeof(float) * out);
    at_sgemm(0, 1, N, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

void at_linear_backward_data(const float *dy, int N, int in, const float *w, int out, float *dx) {
    at_sgemm(0, 0, N, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

void at_gated_relu_forward(float *y, int N, int C, long HW, const float *gates, int gate_stride,
                           float *keep) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        float *p = y + nc * HW;
        float *k = keep ? keep + nc * HW : NULL;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        for (long i = 0; i < HW; i++) {
            float a = p[i] > 0 ? p[i] : 0.0f;
            if (k) k[i] = a;
            p[i] = g * a;
        }
    }
}

void at_gated_relu_backward(const float *dy, const float *a, int N, int C, long HW,
                            const float *gates, int gate_stride, float *dz, float *dgate,
                            int dgate_stride) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *d = dy + nc * HW, *ap = a + nc * HW;
        float *out = dz + nc * HW;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        double sum = 0; /* fixed-order double sum: deterministic and accurate */
        for (long i = 0; i < HW; i++) {
            sum += (double)d[i] * ap[i];
            out[i] = ap[i] > 0 ? g * d[i] : 0.0f;
        }
        if (dgate) dgate[(nc / C) * dgate_stride + nc % C] = (float)sum;
    }
}

void at_round_tf32(float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u; /* inf/NaN unchanged */
        memcpy(&x[i], &u, 4);
    }
}

void at_round_fp16(float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) x[i] = (float)(_Float16)x[i];
}

void at_softmax_rows(const float *logits, int N, int K, float *probs) {
    for (int n = 0; n < N; n++) {
        const float *l = logits + (long)n * K;
        float *p = probs + (long)n * K;
        float mx = l[0];
        for (int k = 1; k < K; k++)
            if (l[k] > mx) mx = l[k];
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)l[k] - mx);
        for (int k = 0; k < K; k++) p[k] = (float)(exp((double)l[k] - mx) / sum);
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
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const float *d = dy + nc * HW, *ap = a + nc * HW;
        float *out = dz + nc * HW;
        float g = gates ? gates[(nc / C) * gate_stride + nc % C] : 1.0f;
        double sum = 0;
        for (long i = 0; i < HW; i++) {
            sum += (double)d[i] * ap[i];
            const int open = rule == 2 || ap[i] > 0;
            out[i] = open && d[i] > 0 ? g * d[i] : 0.0f;
        }
        if (dgate) dgate[(nc / C) * dgate_stride + nc % C] = (float)sum;
    }
}

void at_scale_channels(float *x, int N, int C, long HW, const float *s) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++)
        for (long i = 0; i < HW; i++) x[nc * HW + i] *= s[nc];
}
