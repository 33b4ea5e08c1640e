#include "methods/maps.h"

#include <math.h>

/* One output index's two source samples and the weight of the second. */
typedef struct {
    int i0, i1;
    float l;
} tap;

/* PyTorch area_pixel_compute_source_index (float math, clamped at 0). */
static tap source_tap(int out_size, int in_size, int align_corners, int i) {
    float src;
    if (align_corners) {
        float scale = out_size > 1 ? (float)(in_size - 1) / (float)(out_size - 1) : 0.f;
        src = scale * (float)i;
    } else {
        float scale = (float)in_size / (float)out_size;
        src = scale * ((float)i + 0.5f) - 0.5f;
        if (src < 0) src = 0;
    }
    int lo = (int)src;
    if (lo > in_size - 1) lo = in_size - 1;
    return (tap){lo, lo < in_size - 1 ? lo + 1 : lo, src - (float)lo};
}

void at_upsample_bilinear(const float *src, int h, int w, float *dst, int oh, int ow,
                          int align_corners) {
    if (h == oh && w == ow) {
        for (long i = 0; i < (long)h * w; i++) dst[i] = src[i];
        return;
    }
    for (int y = 0; y < oh; y++) {
        const tap ty = source_tap(oh, h, align_corners, y);
        const int y0 = ty.i0, y1 = ty.i1;
        const float ly = ty.l;
        for (int x = 0; x < ow; x++) {
            const tap tx = source_tap(ow, w, align_corners, x);
            const int x0 = tx.i0, x1 = tx.i1;
            const float lx = tx.l;
            float top = (1 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1];
            float bot = (1 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1];
            dst[(long)y * ow + x] = (1 - ly) * top + ly * bot;
        }
    }
}

void at_upsample_bilinear_adjoint(const float *ddst, int oh, int ow, float *dsrc, int h, int w, int align_corners) {
    if (h == oh && w == ow) {
        for (long i = 0; i < (long)h * w; i++) dsrc[i] = ddst[i];
        return;
    }
    for (long i = 0; i < (long)h * w; i++) dsrc[i] = 0;
    for (int y = 0; y < oh; y++) {
        const tap ty = source_tap(oh, h, align_corners, y);
        for (int x = 0; x < ow; x++) {
            const tap tx = source_tap(ow, w, align_corners, x);
            const int x0 = tx.i0, x1 = tx.i1, y0 = ty.i0, y1 = ty.i1;
            const float lx = tx.l, ly = ty.l, g = ddst[(long)y * ow + x];
            dsrc[y0 * w + x0] += (1 - ly) * (1 - lx) * g;
            dsrc[y0 * w + x1] += (1 - ly) * lx * g;
            dsrc[y1 * w + x0] += ly * (1 - lx) * g;
            dsrc[y1 * w + x1] += ly * lx * g;
        }
    }
}

int at_minmax_normalize(float *x, long n) {
    float lo = INFINITY, hi = -INFINITY;
    for (long i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    if (!(hi > lo)) {
        for (long i = 0; i < n; i++) x[i] = 0;
        return 1;
    }
    float range = hi - lo; /* divide, as the peers do, rather than multiply by 1/range */
    for (long i = 0; i < n; i++) x[i] = (x[i] - lo) / range;
    return 0;
}

void at_relu_inplace(float *x, long n) {
    for (long i = 0; i < n; i++)
        if (!(x[i] > 0)) x[i] = 0;
}

/* Row-wise softmax in double, as the methods score classes (docs/methods.md). */
int at_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
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
