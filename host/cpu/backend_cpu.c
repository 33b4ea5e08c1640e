/* The CPU backend: the ops of host/cpu behind the executor's op table
 * (host/exec/ops.h). "Device memory" is host memory. TF32 and FP16 are
 * emulated as tensor cores compute them: every conv and FC operand (weights,
 * input activations, output gradients) rounded, products accumulated in
 * FP32; the activations themselves stay FP32 (the rounded operand is a copy),
 * as on a GPU and in PyTorch. Not faster; the reference for the GPU's
 * reduced precisions and a way to study their effect on any machine. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "cpu/conv.h"
#include "cpu/masks.h"
#include "cpu/ops.h"
#include "cpu/conv_channels.h"
#include "cpu/winograd.h"
#include "core/error.h"
#include "exec/ops.h"

#include <sys/mman.h>

#ifndef CPU_BATCH_CAP
#define CPU_BATCH_CAP 16
#endif
#define DEFAULT_MEM_LIMIT ((size_t)4 << 30) /* bytes planned per call by max_batch */

/* A prepared conv or linear layer: the model's parameters and, per reduced
 * precision, a rounded copy made on first use. */
typedef struct {
    const float *w, *b;
    int K, C, k, stride, pad, H, W; /* linear: K out, C in */
    float *rounded[3];
    float *wino[2][2]; /* Winograd-transformed weights [backward][F(4x4)], made on first use */
    float *packed[2];  /* FP32 weights packed for the direct conv's SGEMM [backward], made on first use */
    float *channels;   /* FP32 weights packed for the channels-in-lanes forward (cpu/conv_channels.h), likewise */
} cpu_params;

typedef struct {
    at_precision prec;
    at_conv_algo conv;
    float *ws, *operand; /* conv workspace; the rounded copy of an operand */
    size_t ws_cap, operand_cap;
    /* the channels-in-lanes conv's padded input: its own, since threads write
     * it in a split other than the one in which they use ws (Winograd's
     * per-thread regions), and sharing lines between cores costs a transfer
     * per forward (measured: ResNet-50's layer3.1 and layer4.1 Winograd convs
     * 0.49 -> 0.57 and 0.62 -> 0.68 ms at batch 1) */
    float *chan_ws;
    size_t chan_ws_cap;
    cpu_params **params;
    int n_params, params_cap;
    void **allocs; /* live alloc() results, freed with the context */
    size_t *alloc_bytes;
    int n_allocs, allocs_cap;
    size_t in_use;
} cpu_ctx;

static int grow(float **buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return AT_OK;
    free(*buf);
    *buf = malloc(need * sizeof(float));
    *cap = *buf ? need : 0;
    if (!*buf) return at_fail("cpu backend", "out of memory allocating %zu MB for %s", need * sizeof(float) >> 20, what);
    return AT_OK;
}

static void round_to(at_precision p, float *x, long n) {
    if (p == AT_PRECISION_TF32) at_round_tf32(x, n);
    else if (p == AT_PRECISION_FP16) at_round_fp16(x, n);
}

/* The operand as the current precision sees it: x itself at FP32, else a
 * rounded copy (the caller's buffer is never changed). */
static const float *operand(cpu_ctx *c, const float *x, long n) {
    if (c->prec == AT_PRECISION_FP32) return x;
    if (grow(&c->operand, &c->operand_cap, (size_t)n, "rounded operands")) return NULL;
    memcpy(c->operand, x, sizeof(float) * n);
    round_to(c->prec, c->operand, n);
    return c->operand;
}

static const float *weights(cpu_ctx *c, cpu_params *p) {
    if (c->prec == AT_PRECISION_FP32) return p->w;
    if (!p->rounded[c->prec]) {
        const long n = (long)p->K * p->C * p->k * p->k;
        if (!(p->rounded[c->prec] = malloc(sizeof(float) * n))) {
            at_fail("cpu backend", "out of memory for %s weights", at_precision_name(c->prec));
            return NULL;
        }
        memcpy(p->rounded[c->prec], p->w, sizeof(float) * n);
        round_to(c->prec, p->rounded[c->prec], n);
    }
    return p->rounded[c->prec];
}

/* The Winograd tile (2 or 4) of this conv's forward or backward-data pass,
 * 0 for the direct conv. Winograd runs FP32 convs only: the reduced
 * precisions emulate the GPU's direct conv on rounded operands, which
 * transformed tiles would not. */
static int use_winograd(const cpu_ctx *c, const cpu_params *p, int backward) {
    if (c->conv == AT_CONV_DIRECT || c->prec != AT_PRECISION_FP32 ||
        !at_winograd_applies(p->C, p->K, p->k, p->k, p->stride, p->pad))
        return 0;
    if (c->conv == AT_CONV_WINOGRAD2) return 2;
    if (c->conv == AT_CONV_WINOGRAD4) return 4;
    /* the conv computed: forward C -> K at Ho x Wo, backward K -> C at H x W */
    const int Ho = p->H + 2 * p->pad - 2, Wo = p->W + 2 * p->pad - 2;
    return backward ? at_winograd_rule(p->K, p->C, p->H, p->W) : at_winograd_rule(p->C, p->K, Ho, Wo);
}

static const float *wino_weights(cpu_params *p, int backward, int m) {
    float **u = &p->wino[backward][m == 4];
    if (!*u) {
        if (!(*u = malloc(sizeof(float) * at_winograd_weights_floats(p->K, p->C, m)))) {
            at_fail("cpu backend", "out of memory for Winograd weights");
            return NULL;
        }
        if (at_winograd_transform_weights(p->w, p->K, p->C, backward, m, *u)) {
            free(*u), *u = NULL;
            at_fail("cpu backend", "out of memory transforming Winograd weights");
            return NULL;
        }
    }
    return *u;
}

/* n floats, 64-byte aligned (the packed kernels' aligned loads); NULL when
 * n is 0 or memory is short. */
static float *aligned_floats(size_t n) {
    return n ? aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64) : NULL;
}

/* The direct conv's weights packed once (FP32; the reduced precisions
 * round a copy per call). NULL when there is nothing to pack or no memory
 * for it: the conv then packs per call, with the same result. */
static const float *packed_weights(const cpu_ctx *c, cpu_params *p, int backward) {
    if (c->prec != AT_PRECISION_FP32) return NULL;
    if (!p->packed[backward]) {
        size_t n = at_conv2d_packed_weights_floats(p->K, p->C, p->k, p->k, p->stride, p->pad, backward);
        if (!(p->packed[backward] = aligned_floats(n))) return NULL;
        at_conv2d_pack_weights(p->w, p->K, p->C, p->k, p->k, backward, p->packed[backward]);
    }
    return p->packed[backward];
}

/* Whether this forward direct conv runs with the output channels in the
 * vector lanes (a rule of the shape, cpu/conv_channels.h), and its packed
 * weights; NULL (the conv then takes the SGEMM path, which gives the same
 * values up to rounding) when the rule says no or there is no memory. */
static const float *channels_weights(const cpu_ctx *c, cpu_params *p, int n) {
    if (c->prec != AT_PRECISION_FP32 || !at_conv_channels_rule(p->C, p->K, p->k, p->k, p->stride, p->pad, n, p->H, p->W))
        return NULL;
    if (!p->channels) {
        if (!(p->channels = aligned_floats(at_conv_channels_weights_floats(p->K, p->C, p->k, p->k)))) return NULL;
        at_conv_channels_pack_weights(p->w, p->K, p->C, p->k, p->k, p->channels);
    }
    return p->channels;
}

/* ---- memory: host memory ------------------------------------------------- */

static void *cpu_alloc(void *ctx, size_t bytes, const char *what) {
    cpu_ctx *c = ctx;
    void *p = NULL;
    if (c->n_allocs == c->allocs_cap) {
        int cap = c->allocs_cap ? 2 * c->allocs_cap : 16;
        void **q = realloc(c->allocs, sizeof *q * cap);
        if (q) c->allocs = q;
        size_t *b = q ? realloc(c->alloc_bytes, sizeof *b * cap) : NULL;
        if (!q || !b) {
            at_fail("cpu backend", "out of memory");
            return NULL;
        }
        c->alloc_bytes = b, c->allocs_cap = cap;
    }
    /* Large blocks (the activations arena) on 2 MiB pages where the kernel
     * grants them on request: first touching a 4 KiB page at a time cost a
     * fifth of a short gradient run on the small models. */
    const size_t huge = (size_t)2 << 20;
    const int big = bytes >= 2 * huge;
    if (posix_memalign(&p, big ? huge : 64, bytes ? bytes : 1)) {
        at_fail("cpu backend", "out of memory allocating %zu MB for %s", bytes >> 20, what);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (big) madvise(p, bytes / huge * huge, MADV_HUGEPAGE);
#endif
    c->allocs[c->n_allocs] = p;
    c->alloc_bytes[c->n_allocs++] = bytes;
    c->in_use += bytes;
    return p;
}
static void cpu_release(void *ctx, void *p) {
    cpu_ctx *c = ctx;
    for (int i = 0; i < c->n_allocs; i++)
        if (c->allocs[i] == p) {
            c->in_use -= c->alloc_bytes[i];
            c->n_allocs--;
            c->allocs[i] = c->allocs[c->n_allocs];
            c->alloc_bytes[i] = c->alloc_bytes[c->n_allocs];
            free(p);
            return;
        }
}
static size_t cpu_available(void *ctx) { return SIZE_MAX / 2; } /* the executor's memory limit bounds it */
static size_t cpu_in_use(void *ctx) { return ((cpu_ctx *)ctx)->in_use; }
static int cpu_upload(void *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
    return AT_OK;
}
static int cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memmove(dst, src, bytes);
    return AT_OK;
}
static int cpu_zero(void *ctx, void *dst, size_t bytes) {
    memset(dst, 0, bytes);
    return AT_OK;
}
static int cpu_finish(void *ctx) { return AT_OK; }

static int cpu_set_precision(void *ctx, at_precision p) {
    if (p < AT_PRECISION_FP32 || p > AT_PRECISION_FP16) return at_fail("precision", "unknown precision %d", (int)p);
    ((cpu_ctx *)ctx)->prec = p;
    return AT_OK;
}

static int keep_params(cpu_ctx *c, cpu_params *p, void **handle) {
    if (c->n_params == c->params_cap) {
        int cap = c->params_cap ? 2 * c->params_cap : 32;
        cpu_params **q = realloc(c->params, sizeof *q * cap);
        if (!q) {
            free(p);
            return at_fail("cpu backend", "out of memory");
        }
        c->params = q, c->params_cap = cap;
    }
    c->params[c->n_params++] = p;
    *handle = p;
    return AT_OK;
}

static int cpu_prepare_conv(void *ctx, const float *w, const float *b, int K, int C, int k, int stride, int pad, int H,
                            int W, void **handle) {
    cpu_params *p = calloc(1, sizeof *p);
    if (!p) return at_fail("cpu backend", "out of memory");
    *p = (cpu_params){.w = w, .b = b, .K = K, .C = C, .k = k, .stride = stride, .pad = pad, .H = H, .W = W};
    return keep_params(ctx, p, handle);
}

static int cpu_prepare_linear(void *ctx, const float *w, const float *b, int out, int in, void **handle) {
    cpu_params *p = calloc(1, sizeof *p);
    if (!p) return at_fail("cpu backend", "out of memory");
    *p = (cpu_params){.w = w, .b = b, .K = out, .C = in, .k = 1};
    return keep_params(ctx, p, handle);
}

/* ---- ops ----------------------------------------------------------------- */

static int cpu_make_inputs(void *ctx, const at_inputs_call *a) { return at_make_inputs(a); }

static size_t conv_workspace_floats(const cpu_params *p, int wino) {
    return wino ? at_winograd_workspace_floats(p->C, p->K)
                : at_conv2d_workspace_floats(p->C, p->H, p->W, p->k, p->k, p->stride, p->pad);
}

static int cpu_conv2d_forward(void *ctx, void *conv, const at_conv_call *cc) {
    cpu_ctx *c = ctx;
    cpu_params *p = conv;
    if (cc->mask) return at_fail("cpu backend", "convolution: fused input masking is not offered");
    const int Ho = (p->H + 2 * p->pad - p->k) / p->stride + 1, Wo = (p->W + 2 * p->pad - p->k) / p->stride + 1;
    const int wino = use_winograd(c, p, 0);
    const float *chan = wino ? NULL : channels_weights(c, p, cc->n);
    if (chan ? grow(&c->chan_ws, &c->chan_ws_cap,
                    at_conv_channels_workspace_floats(cc->n, p->C, p->H, p->W, p->K, p->k, p->k, p->stride, p->pad) + 1,
                    "conv workspace")
             : grow(&c->ws, &c->ws_cap, conv_workspace_floats(p, wino) + 1, "conv workspace"))
        return AT_ERR;
    const float *x = operand(c, cc->x, (long)cc->n * p->C * p->H * p->W), *w = wino ? wino_weights(p, 0, wino) : weights(c, p);
    if (!x || !w) return AT_ERR;
    /* the residual add, and a ReLU with no gate or keep, in the conv's epilogue; gates and keeps after it */
    const int plain_relu = cc->relu && !cc->gates && !cc->keep;
    const at_conv_epilogue e = {cc->residual, plain_relu}; /* element-wise: never rounded, as the add op */
    if (wino) at_winograd_conv2d_forward(x, cc->n, p->C, p->H, p->W, wino, w, p->b, p->K, p->pad, cc->y, c->ws, &e);
    else if (!chan || at_conv_channels_forward(x, cc->n, p->C, p->H, p->W, chan, p->b, p->K, p->k, p->k, p->stride,
                                               p->pad, cc->y, c->chan_ws, &e))
        at_conv2d_forward_packed(x, cc->n, p->C, p->H, p->W, w, packed_weights(c, p, 0), p->b, p->K, p->k, p->k,
                                 p->stride, p->pad, cc->y, &e);
    if (cc->relu && !plain_relu)
        at_gated_relu_forward(cc->y, cc->n, p->K, (long)Ho * Wo, cc->gates, cc->gate_stride, cc->keep);
    else if (!cc->relu && (cc->gates || cc->keep))
        at_gate_forward(cc->y, cc->n, p->K, (long)Ho * Wo, cc->gates, cc->gate_stride, cc->keep);
    return AT_OK;
}

static int cpu_conv2d_backward_data(void *ctx, void *conv, const float *dy, int n, float *dx) {
    cpu_ctx *c = ctx;
    cpu_params *p = conv;
    const int Ho = (p->H + 2 * p->pad - p->k) / p->stride + 1, Wo = (p->W + 2 * p->pad - p->k) / p->stride + 1;
    const int wino = use_winograd(c, p, 1);
    if (grow(&c->ws, &c->ws_cap, conv_workspace_floats(p, wino) + 1, "conv workspace")) return AT_ERR;
    const float *g = operand(c, dy, (long)n * p->K * Ho * Wo), *w = wino ? wino_weights(p, 1, wino) : weights(c, p);
    if (!g || !w) return AT_ERR;
    if (wino) at_winograd_conv2d_backward_data(g, n, p->C, p->H, p->W, wino, w, p->K, p->pad, dx, c->ws);
    else at_conv2d_backward_data_packed(g, n, p->C, p->H, p->W, w, packed_weights(c, p, 1), p->K, p->k, p->k,
                                        p->stride, p->pad, dx, c->ws);
    return AT_OK;
}

static int cpu_linear_forward(void *ctx, void *lin, const float *x, int n, float *y) {
    cpu_ctx *c = ctx;
    cpu_params *p = lin;
    const float *xr = operand(c, x, (long)n * p->C), *w = weights(c, p);
    if (!xr || !w) return AT_ERR;
    at_linear_forward(xr, n, p->C, w, p->b, p->K, y);
    return AT_OK;
}

static int cpu_linear_backward_data(void *ctx, void *lin, const float *dy, int n, float *dx) {
    cpu_ctx *c = ctx;
    cpu_params *p = lin;
    const float *g = operand(c, dy, (long)n * p->K), *w = weights(c, p);
    if (!g || !w) return AT_ERR;
    at_linear_backward_data(g, n, p->C, w, p->K, dx);
    return AT_OK;
}

static int cpu_gated_relu_forward(void *ctx, float *y, int N, int C, long HW, const float *gates, int gate_stride,
                                  float *keep) {
    at_gated_relu_forward(y, N, C, HW, gates, gate_stride, keep);
    return AT_OK;
}

static int cpu_relu_backward(void *ctx, at_relu_rule rule, const float *dy, const float *a, int N, int C, long HW,
                             const float *gates, int gate_stride, float *dz, float *dgate, int dgate_stride) {
    at_relu_backward_rule((int)rule, dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride);
    return AT_OK;
}

static int cpu_gate_forward(void *ctx, float *y, int N, int C, long HW, const float *gates, int gate_stride,
                            float *keep) {
    at_gate_forward(y, N, C, HW, gates, gate_stride, keep);
    return AT_OK;
}
static int cpu_gate_backward(void *ctx, const float *dy, const float *z, int N, int C, long HW, const float *gates,
                             int gate_stride, float *dz, float *dgate, int dgate_stride) {
    at_gate_backward(dy, z, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride);
    return AT_OK;
}
static int cpu_maxpool2d_forward(void *ctx, const float *x, int N, int C, int H, int W, int k, int s, int p,
                                 float *y) {
    at_maxpool2d_forward(x, N, C, H, W, k, s, p, y);
    return AT_OK;
}
static int cpu_maxpool2d_backward(void *ctx, const float *x, const float *dy, int N, int C, int H, int W, int k, int s,
                                  int p, float *dx) {
    at_maxpool2d_backward(x, dy, N, C, H, W, k, s, p, dx);
    return AT_OK;
}
static int cpu_adaptive_avgpool_forward(void *ctx, const float *x, int N, int C, int H, int W, int OH, int OW,
                                        float *y) {
    at_adaptive_avgpool_forward(x, N, C, H, W, OH, OW, y);
    return AT_OK;
}
static int cpu_adaptive_avgpool_backward(void *ctx, const float *dy, int N, int C, int H, int W, int OH, int OW,
                                         float *dx) {
    at_adaptive_avgpool_backward(dy, N, C, H, W, OH, OW, dx);
    return AT_OK;
}
static int cpu_avgpool2d_forward(void *ctx, const float *x, int N, int C, int H, int W, int k, int s, int p, float *y) {
    at_avgpool2d_forward(x, N, C, H, W, k, s, p, y);
    return AT_OK;
}
static int cpu_avgpool2d_backward(void *ctx, const float *dy, int N, int C, int H, int W, int k, int s, int p,
                                  float *dx) {
    at_avgpool2d_backward(dy, N, C, H, W, k, s, p, dx);
    return AT_OK;
}
static int cpu_softmax_forward(void *ctx, const float *x, int N, long K, float *y) {
    at_softmax_forward(x, N, K, y);
    return AT_OK;
}
static int cpu_softmax_backward(void *ctx, const float *y, const float *dy, int N, long K, float *dx) {
    at_softmax_backward(y, dy, N, K, dx);
    return AT_OK;
}
static int cpu_add(void *ctx, const float *a, const float *b, long n, float *y) {
    at_add_forward(a, b, n, y);
    return AT_OK;
}
static int cpu_mul(void *ctx, const float *a, const float *b, long n, float *y) {
    at_mul_forward(a, b, n, y);
    return AT_OK;
}
static int cpu_div(void *ctx, const float *a, const float *b, long n, float *y) {
    at_div_forward(a, b, n, y);
    return AT_OK;
}
static int cpu_clamp_sign(void *ctx, const float *x, int sign, long n, float *y) {
    at_clamp_sign_forward(x, sign, n, y);
    return AT_OK;
}
static int cpu_select_sign(void *ctx, const float *m, const float *a, int sign, long n, float *y) {
    at_select_sign_forward(m, a, sign, n, y);
    return AT_OK;
}
static int cpu_div_stabilized(void *ctx, const float *a, const float *b, float eps, long n, float *y) {
    at_div_stabilized_forward(a, b, eps, n, y);
    return AT_OK;
}
static int cpu_axpby(void *ctx, float alpha, const float *a, float beta, const float *b, long n, float *y) {
    at_axpby_forward(alpha, a, beta, b, n, y);
    return AT_OK;
}
static int cpu_scale_channels(void *ctx, float *x, int N, int C, long HW, const float *s) {
    at_scale_channels(x, N, C, HW, s);
    return AT_OK;
}

static void cpu_destroy(void *ctx) {
    cpu_ctx *c = ctx;
    if (!c) return;
    for (int i = 0; i < c->n_params; i++) {
        for (int p = 0; p < 3; p++) free(c->params[i]->rounded[p]);
        for (int d = 0; d < 4; d++) free(c->params[i]->wino[d / 2][d % 2]);
        free(c->params[i]->packed[0]), free(c->params[i]->packed[1]), free(c->params[i]->channels);
        free(c->params[i]);
    }
    for (int i = 0; i < c->n_allocs; i++) free(c->allocs[i]);
    free(c->allocs), free(c->alloc_bytes), free(c->params), free(c->ws), free(c->chan_ws), free(c->operand), free(c);
}

static const at_ops cpu_ops = {
    .name = "cpu",
    .fuses_input_masks = 0,
    .batch_cap = CPU_BATCH_CAP,
    .fuses_residual_add = 1,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .available = cpu_available,
    .in_use = cpu_in_use,
    .upload = cpu_upload,
    .download = cpu_upload,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .finish = cpu_finish,
    .set_precision = cpu_set_precision,
    .prepare_conv = cpu_prepare_conv,
    .prepare_linear = cpu_prepare_linear,
    .make_inputs = cpu_make_inputs,
    .conv2d_forward = cpu_conv2d_forward,
    .conv2d_backward_data = cpu_conv2d_backward_data,
    .linear_forward = cpu_linear_forward,
    .linear_backward_data = cpu_linear_backward_data,
    .gated_relu_forward = cpu_gated_relu_forward,
    .relu_backward = cpu_relu_backward,
    .gate_forward = cpu_gate_forward,
    .gate_backward = cpu_gate_backward,
    .maxpool2d_forward = cpu_maxpool2d_forward,
    .maxpool2d_backward = cpu_maxpool2d_backward,
    .adaptive_avgpool_forward = cpu_adaptive_avgpool_forward,
    .adaptive_avgpool_backward = cpu_adaptive_avgpool_backward,
    .avgpool2d_forward = cpu_avgpool2d_forward,
    .avgpool2d_backward = cpu_avgpool2d_backward,
    .softmax_forward = cpu_softmax_forward,
    .softmax_backward = cpu_softmax_backward,
    .add = cpu_add,
    .mul = cpu_mul,
    .div = cpu_div,
    .clamp_sign = cpu_clamp_sign,
    .select_sign = cpu_select_sign,
    .div_stabilized = cpu_div_stabilized,
    .axpby = cpu_axpby,
    .scale_channels = cpu_scale_channels,
    .destroy = cpu_destroy,
};


int at_cpu_ops_open(const at_ops **ops, void **ctx) {
    *ops = &cpu_ops;
    *ctx = calloc(1, sizeof(cpu_ctx));
    return *ctx ? AT_OK : at_fail("cpu backend", "out of memory");
}

int at_cpu_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out) {
    *out = NULL;
    if (opt && (opt->precision < AT_PRECISION_FP32 || opt->precision > AT_PRECISION_FP16))
        return at_fail("precision", "unknown precision %d", (int)opt->precision);
    if (opt && (opt->conv < AT_CONV_AUTO || opt->conv > AT_CONV_WINOGRAD4))
        return at_fail("conv algorithm", "unknown convolution algorithm %d", (int)opt->conv);
    if (opt && opt->conv >= AT_CONV_WINOGRAD && opt->precision != AT_PRECISION_FP32)
        return at_fail("conv algorithm", "winograd runs at fp32 precision only (tf32/fp16 emulate the GPU's direct conv)");
    if (opt && opt->threads > 0) omp_set_num_threads(opt->threads);
    void *ctx = NULL;
    const at_ops *ops = NULL;
    if (at_cpu_ops_open(&ops, &ctx)) return AT_ERR;
    ((cpu_ctx *)ctx)->conv = opt ? opt->conv : AT_CONV_AUTO;
    /* peak 0: measured only when asked (at_cpu_peak_flops, bench) */
    return at_exec_create(m, &cpu_ops, ctx, opt, 0,
                          opt && opt->mem_limit ? opt->mem_limit : DEFAULT_MEM_LIMIT, out);
}
