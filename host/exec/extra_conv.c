/* Convolutions whose parameters are not the model's (L-CAM's 1x1 head,
 * docs/methods.md#l-cam), on the backend's own conv op, so a method that
 * needs one still runs on every backend. Each distinct parameter set is
 * prepared once: the executor keeps a copy of the parameters (the CPU
 * backend reads them in place) and the backend's handle until it is
 * destroyed. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/state.h"

struct exec_extra_conv {
    float *w, *b;
    int K, C, k, pad, H, W;
    void *handle;
    exec_extra_conv *next;
};

static exec_extra_conv *find_or_prepare(exec_state *s, const float *w, const float *b, int K, int C, int k, int pad,
                                        int H, int W) {
    const size_t nw = (size_t)K * C * k * k;
    for (exec_extra_conv *e = s->extra; e; e = e->next)
        if (e->K == K && e->C == C && e->k == k && e->pad == pad && e->H == H && e->W == W &&
            !memcmp(e->w, w, sizeof(float) * nw) && !memcmp(e->b, b, sizeof(float) * K))
            return e;
    exec_extra_conv *e = calloc(1, sizeof *e);
    if (e) e->w = malloc(sizeof(float) * nw), e->b = malloc(sizeof(float) * K);
    if (!e || !e->w || !e->b) {
        if (e) free(e->w), free(e->b);
        free(e);
        at_fail("conv", "out of host memory");
        return NULL;
    }
    memcpy(e->w, w, sizeof(float) * nw);
    memcpy(e->b, b, sizeof(float) * K);
    e->K = K, e->C = C, e->k = k, e->pad = pad, e->H = H, e->W = W;
    if (s->ops->prepare_conv(s->ctx, e->w, e->b, K, C, k, 1, pad, H, W, &e->handle)) {
        free(e->w), free(e->b), free(e);
        return NULL;
    }
    e->next = s->extra;
    s->extra = e;
    return e;
}

int at_extra_conv(at_backend *be, const float *w, const float *b, int K, int C, int k, int pad, const float *x, int n,
                  int H, int W, float *y) {
    exec_state *s = be->impl;
    const at_ops *o = s->ops;
    if (n < 1 || K < 1 || C < 1 || k < 1 || pad < 0 || H + 2 * pad < k || W + 2 * pad < k)
        return at_fail("conv", "%dx%d pad %d with %d -> %d channels on %d x %dx%d is not a convolution", k, k, pad, C,
                       K, n, H, W);
    exec_extra_conv *e = find_or_prepare(s, w, b, K, C, k, pad, H, W);
    if (!e) return AT_ERR;
    if (s->prec != s->precision) {
        if (o->set_precision(s->ctx, s->precision)) return AT_ERR;
        s->prec = s->precision;
    }
    const int Ho = H + 2 * pad - k + 1, Wo = W + 2 * pad - k + 1;
    const size_t in_b = sizeof(float) * n * C * H * W, out_b = sizeof(float) * n * K * Ho * Wo;
    float *dx = o->alloc(s->ctx, in_b, "conv input"), *dy = dx ? o->alloc(s->ctx, out_b, "conv output") : NULL;
    int rc = dx && dy ? AT_OK : AT_ERR;
    at_conv_call c;
    memset(&c, 0, sizeof c);
    c.x = dx, c.y = dy, c.n = n;
    if (rc == AT_OK) rc = o->upload(s->ctx, dx, x, in_b);
    if (rc == AT_OK) rc = o->conv2d_forward(s->ctx, e->handle, &c);
    if (rc == AT_OK) rc = o->download(s->ctx, y, dy, out_b);
    if (rc == AT_OK) rc = o->finish(s->ctx);
    if (dy) o->release(s->ctx, dy);
    if (dx) o->release(s->ctx, dx);
    return rc;
}

void at_exec_extra_free(exec_state *s) {
    for (exec_extra_conv *e = s->extra, *nx; e; e = nx) {
        nx = e->next;
        free(e->w), free(e->b), free(e);
    }
    s->extra = NULL;
}
