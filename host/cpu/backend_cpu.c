/* The CPU reference backend: executes the model's layer list with the ops of
 * host/cpu. Forward-only passes ping-pong between two buffers; passes kept for
 * backward store every layer's output (identity layers alias their input, a
 * conv shares its buffer with the ReLU that follows, which works in place).
 * TF32 and FP16 are emulated as tensor cores compute them: every conv and FC
 * operand (weights, input activations, output gradients) rounded, products
 * accumulated in FP32. Not faster; the reference for the GPU's reduced
 * precisions and a way to study their effect on any machine. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/conv.h"
#include "cpu/ops.h"
#include "error.h"
#include "maps.h"

#define DEFAULT_MEM_LIMIT ((size_t)4 << 30) /* bytes planned per call by max_batch */

typedef struct {
    const at_model *m;
    size_t mem_limit;
    int threads;
    /* buffers, grown on demand */
    float *input;             /* [n][C][H][W] the masked input as fed */
    size_t input_cap;
    float *ping, *pong;       /* forward-only */
    size_t pp_cap, pong_cap;
    float **out;              /* [n_layers] kept outputs (aliases for identity layers) */
    float **aux;              /* [n_layers] gated ReLU: relu(z) before the gate */
    float *kept_block;        /* one allocation backing out[] and aux[] */
    size_t kept_cap;
    float *grad_a, *grad_b;   /* backward ping-pong */
    size_t grad_cap, grad_b_cap;
    float *ws;                /* conv workspace */
    size_t ws_cap;
    float *operand;           /* reduced precision, kept passes: the rounded copy of a conv/FC input */
    size_t operand_cap;
    at_precision prec;        /* of the current call (and of the kept forward) */
    float *rounded_block[3];  /* per precision: rounded copies of all weights */
    const float **rounded[3]; /* per precision: [n_layers] rounded weights */
    /* what the last kept forward saw */
    int kept_n;
    float *kept_gates;        /* [kept_n][n_gates] or NULL */
    int kept_valid;
} cpu_state;

static int grow(float **buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return AT_OK;
    free(*buf);
    *buf = malloc(need * sizeof(float));
    *cap = *buf ? need : 0;
    if (!*buf) return at_fail("cpu backend", "out of memory allocating %zu MB for %s", need * sizeof(float) >> 20, what);
    return AT_OK;
}

static long input_size(const at_model *m) { return (long)m->in_c * m->in_h * m->in_w; }

static size_t max_layer_size(const at_model *m) {
    size_t mx = (size_t)input_size(m);
    for (int i = 0; i < m->n_layers; i++)
        if ((size_t)at_layer_out_size(&m->layers[i]) > mx) mx = (size_t)at_layer_out_size(&m->layers[i]);
    return mx;
}

static size_t workspace_floats(const at_model *m) {
    size_t mx = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (l->kind != AT_L_CONV) continue;
        size_t w = at_conv2d_workspace_floats(l->in_c, l->in_h, l->in_w, l->kernel, l->kernel, l->stride, l->pad);
        if (w > mx) mx = w;
    }
    return mx;
}

/* Layer i's output shares storage with its input: identity modules, and a
 * ReLU working in place on its conv's output. */
static int aliases_input(const at_layer *l) {
    return l->kind == AT_L_BATCHNORM || l->kind == AT_L_DROPOUT || l->kind == AT_L_RELU;
}

static size_t kept_floats(const at_model *m, int n, int gated) {
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (!aliases_input(l)) total += (size_t)at_layer_out_size(l) * n;
        if (gated && l->gate_offset >= 0) total += (size_t)at_layer_out_size(l) * n;
    }
    return total;
}

/* Builds item b's network input from its source row, mask and space. */
static void make_input(const at_model *m, const at_forward_args *a, float *upsampled, int b, float *dst) {
    long hw = (long)m->in_h * m->in_w;
    int src_row = a->input_index ? a->input_index[b] : b;
    const float *src = a->input + (long)src_row * input_size(m);
    if (!a->masks) {
        memcpy(dst, src, sizeof(float) * input_size(m));
        return;
    }
    const float *mask = a->masks + (long)b * a->mask_h * a->mask_w;
    if (a->mask_norm == AT_MASK_MINMAX_BEFORE) {
        float *tmp = upsampled + hw; /* scratch after the upsampled map */
        memcpy(tmp, mask, sizeof(float) * a->mask_h * a->mask_w);
        at_minmax_normalize(tmp, (long)a->mask_h * a->mask_w);
        at_upsample_bilinear(tmp, a->mask_h, a->mask_w, upsampled, m->in_h, m->in_w, a->mask_align_corners);
    } else {
        at_upsample_bilinear(mask, a->mask_h, a->mask_w, upsampled, m->in_h, m->in_w, a->mask_align_corners);
        if (a->mask_norm == AT_MASK_MINMAX_AFTER) at_minmax_normalize(upsampled, hw);
    }
    for (int c = 0; c < m->in_c; c++) {
        const float *s = src + c * hw;
        float *d = dst + c * hw;
        if (a->mask_space == AT_MASK_UNIT) {
            /* ((x*std + mean) * m - mean) / std = x*m + (mean/std)*(m-1) */
            float ms = m->pre.mean[c] / m->pre.std[c];
            for (long i = 0; i < hw; i++) d[i] = s[i] * upsampled[i] + ms * (upsampled[i] - 1.0f);
        } else {
            for (long i = 0; i < hw; i++) d[i] = s[i] * upsampled[i];
        }
    }
}

static int validate_forward(const at_model *m, const at_forward_args *a) {
    if (a->n < 1) return at_fail("forward", "batch size %d < 1", a->n);
    if (!a->input) return at_fail("forward", "no input");
    if (a->masks && (a->mask_h < 1 || a->mask_w < 1 || a->mask_h > m->in_h || a->mask_w > m->in_w))
        return at_fail("forward", "mask %dx%d must be between 1x1 and the input size %dx%d", a->mask_h,
                       a->mask_w, m->in_h, m->in_w);
    for (int i = 0; i < a->n_capture; i++)
        if (a->capture_layer[i] < 0 || a->capture_layer[i] >= m->n_layers)
            return at_fail("forward", "capture layer %d out of range", a->capture_layer[i]);
    return AT_OK;
}

static void capture(const at_model *m, const at_forward_args *a, int layer, const float *data, int n) {
    for (int c = 0; c < a->n_capture; c++)
        if (a->capture_layer[c] == layer)
            memcpy(a->capture_out[c], data, sizeof(float) * at_layer_out_size(&m->layers[layer]) * n);
}

static long weight_count(const at_layer *l) {
    if (l->kind == AT_L_CONV) return (long)l->out_c * l->in_c * l->kernel * l->kernel;
    return l->kind == AT_L_LINEAR ? (long)l->out_c * l->in_c : 0;
}

static void round_to(at_precision p, float *x, long n) {
    if (p == AT_PRECISION_TF32) at_round_tf32(x, n);
    else if (p == AT_PRECISION_FP16) at_round_fp16(x, n);
}

/* Rounded copies of the weights for precision p, made on first use. */
static int prepare_precision(cpu_state *s, at_precision p) {
    if (p < AT_PRECISION_FP32 || p > AT_PRECISION_FP16) return at_fail("forward", "unknown precision %d", (int)p);
    if (p == AT_PRECISION_FP32 || s->rounded[p]) return AT_OK;
    const at_model *m = s->m;
    size_t total = 1;
    for (int i = 0; i < m->n_layers; i++) total += (size_t)weight_count(&m->layers[i]);
    s->rounded_block[p] = malloc(sizeof(float) * total);
    s->rounded[p] = calloc((size_t)m->n_layers + 1, sizeof(float *));
    if (!s->rounded_block[p] || !s->rounded[p]) {
        free(s->rounded_block[p]), free(s->rounded[p]);
        s->rounded_block[p] = NULL, s->rounded[p] = NULL;
        return at_fail("cpu backend", "out of memory for %s weights", at_precision_name(p));
    }
    float *next = s->rounded_block[p];
    for (int i = 0; i < m->n_layers; i++) {
        long c = weight_count(&m->layers[i]);
        if (!c) continue;
        memcpy(next, m->layers[i].weight, sizeof(float) * c);
        round_to(p, next, c);
        s->rounded[p][i] = next;
        next += c;
    }
    return AT_OK;
}

/* Layer i's weights as the current precision sees them. */
static const float *weights(const cpu_state *s, int i) {
    return s->prec == AT_PRECISION_FP32 ? s->m->layers[i].weight : s->rounded[s->prec][i];
}

/* Runs layer i on x (n items) into y; y == x for in-place layers. A reduced
 * precision rounds a conv's or FC's input as the tensor cores round the
 * operands they load; the activations stay FP32, as on a GPU (and in
 * PyTorch): x is rounded in place only when it is a forward-only buffer,
 * and through s->operand when it is kept for backward (the ReLU backward and
 * the ungated gate gradient read it). */
static void run_layer(cpu_state *s, int i, float *x, float *y, int n, const float *gates, int gate_stride,
                      float *keep_relu, int x_kept) {
    const at_layer *l = &s->m->layers[i];
    if (s->prec != AT_PRECISION_FP32 && (l->kind == AT_L_CONV || l->kind == AT_L_LINEAR)) {
        const long count = (long)n * l->in_c * l->in_h * l->in_w;
        if (x_kept) {
            memcpy(s->operand, x, sizeof(float) * count);
            x = s->operand;
        }
        round_to(s->prec, x, count);
    }
    switch (l->kind) {
    case AT_L_CONV:
        at_conv2d_forward(x, n, l->in_c, l->in_h, l->in_w, weights(s, i), l->bias, l->out_c, l->kernel,
                          l->kernel, l->stride, l->pad, y, s->ws);
        break;
    case AT_L_RELU:
        at_gated_relu_forward(y, n, l->out_c, (long)l->out_h * l->out_w,
                              l->gate_offset >= 0 && gates ? gates + l->gate_offset : NULL, gate_stride,
                              keep_relu);
        break;
    case AT_L_MAXPOOL:
        at_maxpool2d_forward(x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, y);
        break;
    case AT_L_ADAPTIVE_AVGPOOL:
        at_adaptive_avgpool_forward(x, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, y);
        break;
    case AT_L_LINEAR:
        at_linear_forward(x, n, l->in_c, weights(s, i), l->bias, l->out_c, y);
        break;
    case AT_L_BATCHNORM:
    case AT_L_DROPOUT:
        break;
    }
}

static int cpu_forward(at_backend *be, const at_forward_args *a) {
    cpu_state *s = be->impl;
    const at_model *m = s->m;
    if (validate_forward(m, a)) return AT_ERR;
    s->kept_valid = 0;
    s->prec = a->precision ? *a->precision : be->precision;
    if (prepare_precision(s, s->prec)) return AT_ERR;
    int n = a->n;
    int gated_keep = a->keep_for_backward && a->gates;
    if (grow(&s->input, &s->input_cap, (size_t)n * input_size(m), "inputs")) return AT_ERR;
    if (grow(&s->ws, &s->ws_cap, workspace_floats(m), "conv workspace")) return AT_ERR;
    long hw = (long)m->in_h * m->in_w;
    float *scratch = a->masks ? malloc(sizeof(float) * (hw + (long)a->mask_h * a->mask_w) * n) : NULL;
    if (a->masks && !scratch) return at_fail("cpu backend", "out of memory for masks");
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++)
        make_input(m, a, scratch ? scratch + (hw + (long)a->mask_h * a->mask_w) * b : NULL, b,
                   s->input + (long)b * input_size(m));
    free(scratch);

    int gate_stride = a->gates && a->gates_per_item ? m->n_gates : 0;
    float *x = s->input;
    if (a->keep_for_backward) {
        if (grow(&s->kept_block, &s->kept_cap, kept_floats(m, n, gated_keep), "kept activations")) return AT_ERR;
        float *next = s->kept_block;
        for (int i = 0; i < m->n_layers; i++) {
            const at_layer *l = &m->layers[i];
            s->out[i] = aliases_input(l) ? (float *)(i ? s->out[i - 1] : s->input) : next;
            if (!aliases_input(l)) next += (size_t)at_layer_out_size(l) * n;
            s->aux[i] = NULL;
            if (gated_keep && l->gate_offset >= 0) {
                s->aux[i] = next;
                next += (size_t)at_layer_out_size(l) * n;
            }
        }
        if (s->prec != AT_PRECISION_FP32 &&
            grow(&s->operand, &s->operand_cap, max_layer_size(m) * n, "rounded operands"))
            return AT_ERR;
        for (int i = 0; i < m->n_layers; i++) {
            run_layer(s, i, x, s->out[i], n, a->gates, gate_stride, s->aux[i], 1);
            capture(m, a, i, s->out[i], n);
            x = s->out[i];
        }
        s->kept_n = n;
        free(s->kept_gates);
        s->kept_gates = NULL;
        if (a->gates) {
            s->kept_gates = malloc(sizeof(float) * m->n_gates * n);
            if (!s->kept_gates) return at_fail("cpu backend", "out of memory");
            for (int b = 0; b < n; b++)
                memcpy(s->kept_gates + (long)b * m->n_gates, a->gates + (long)b * gate_stride,
                       sizeof(float) * m->n_gates);
        }
        s->kept_valid = 1;
    } else {
        size_t need = max_layer_size(m) * n;
        if (grow(&s->ping, &s->pp_cap, need, "activations") ||
            grow(&s->pong, &s->pong_cap, need, "activations"))
            return AT_ERR;
        float *bufs[2] = {s->ping, s->pong};
        int cur = -1; /* which buffer holds x; -1: the input */
        for (int i = 0; i < m->n_layers; i++) {
            const at_layer *l = &m->layers[i];
            float *y;
            if (aliases_input(l)) {
                if (cur < 0) { /* in-place op on the input: copy it first */
                    memcpy(bufs[0], x, sizeof(float) * n * input_size(m));
                    cur = 0;
                }
                y = bufs[cur];
            } else {
                cur = cur == 0 ? 1 : 0;
                y = bufs[cur];
            }
            run_layer(s, i, x, y, n, a->gates, gate_stride, NULL, 0);
            capture(m, a, i, y, n);
            x = y;
        }
    }
    if (a->logits) memcpy(a->logits, x, sizeof(float) * n * m->n_classes);
    return AT_OK;
}

static int cpu_backward(at_backend *be, const at_backward_args *a) {
    cpu_state *s = be->impl;
    const at_model *m = s->m;
    if (!s->kept_valid) return at_fail("backward", "no forward pass was kept for backward");
    if (!a->dlogits) return at_fail("backward", "no dlogits");
    int n = s->kept_n;
    if (a->grad_layer >= m->n_layers) return at_fail("backward", "grad layer %d out of range", a->grad_layer);
    /* lowest layer that must be processed (its input gradient or gate gradient is needed) */
    int lowest = m->n_layers;
    if (a->grad_layer >= 0) lowest = a->grad_layer + 1;
    if (a->grad_gates && m->gate_layer[0] < lowest) lowest = m->gate_layer[0];
    if (a->grad_input) lowest = 0;
    if (a->grad_gates) memset(a->grad_gates, 0, sizeof(float) * m->n_gates * n);
    size_t need = max_layer_size(m) * n;
    if (grow(&s->grad_a, &s->grad_cap, need, "gradients") ||
        grow(&s->grad_b, &s->grad_b_cap, need, "gradients") ||
        grow(&s->ws, &s->ws_cap, workspace_floats(m), "conv workspace"))
        return AT_ERR;
    float *g = s->grad_a, *other = s->grad_b;
    memcpy(g, a->dlogits, sizeof(float) * n * m->n_classes);
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const at_layer *l = &m->layers[i];
        if (i == a->grad_layer) memcpy(a->grad_layer_out, g, sizeof(float) * at_layer_out_size(l) * n);
        if (i < lowest) break;
        const float *x = i ? s->out[i - 1] : s->input;
        if (s->prec != AT_PRECISION_FP32 && (l->kind == AT_L_CONV || l->kind == AT_L_LINEAR))
            round_to(s->prec, g, (long)n * at_layer_out_size(l));
        switch (l->kind) {
        case AT_L_CONV:
            at_conv2d_backward_data(g, n, l->in_c, l->in_h, l->in_w, weights(s, i), l->out_c, l->kernel,
                                    l->kernel, l->stride, l->pad, other, s->ws);
            break;
        case AT_L_RELU: {
            int gated = l->gate_offset >= 0 && s->kept_gates;
            const float *act = gated ? s->aux[i] : s->out[i];
            at_gated_relu_backward(g, act, n, l->out_c, (long)l->out_h * l->out_w,
                                   gated ? s->kept_gates + l->gate_offset : NULL, m->n_gates, g,
                                   a->grad_gates && l->gate_offset >= 0 ? a->grad_gates + l->gate_offset : NULL,
                                   m->n_gates);
            continue; /* in place */
        }
        case AT_L_MAXPOOL:
            at_maxpool2d_backward(x, g, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, other);
            break;
        case AT_L_ADAPTIVE_AVGPOOL:
            at_adaptive_avgpool_backward(g, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, other);
            break;
        case AT_L_LINEAR:
            at_linear_backward_data(g, n, l->in_c, weights(s, i), l->out_c, other);
            break;
        case AT_L_BATCHNORM:
        case AT_L_DROPOUT:
            continue;
        }
        float *t = g;
        g = other;
        other = t;
    }
    if (a->grad_input) memcpy(a->grad_input, g, sizeof(float) * n * input_size(m));
    (void)other;
    return AT_OK;
}

static int cpu_max_batch(at_backend *be, int with_backward) {
    cpu_state *s = be->impl;
    const at_model *m = s->m;
    size_t per_item = with_backward ? kept_floats(m, 1, 1) + 3 * max_layer_size(m)
                                    : 3 * max_layer_size(m);
    size_t n = s->mem_limit / (per_item * sizeof(float) + 1);
    if (n < 1) n = 1;
    if (n > 256) n = 256;
    return (int)n;
}

static void cpu_destroy(at_backend *be) {
    if (!be) return;
    cpu_state *s = be->impl;
    if (s) {
        free(s->input);
        free(s->ping);
        free(s->pong);
        free(s->out);
        free(s->aux);
        free(s->kept_block);
        free(s->grad_a);
        free(s->grad_b);
        free(s->ws);
        free(s->operand);
        free(s->kept_gates);
        for (int p = 0; p < 3; p++) free(s->rounded_block[p]), free(s->rounded[p]);
        free(s);
    }
    free(be);
}

/* Peak FP32 FLOP/s of the CPU estimate: cores x clock x 32 (two 8-wide FMA
 * pipes, AVX2); the clock from /proc/cpuinfo. */
static double cpu_peak_flops(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    double mhz = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "cpu MHz", 7)) {
            char *c = strchr(line, ':');
            if (c) mhz = atof(c + 1);
            break;
        }
    if (f) fclose(f);
    if (mhz <= 0) mhz = 2000;
    return omp_get_max_threads() * mhz * 1e6 * 32;
}

int at_cpu_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out) {
    *out = NULL;
    at_backend *be = calloc(1, sizeof *be);
    cpu_state *s = calloc(1, sizeof *s);
    if (be) be->impl = s;
    if (!be || !s || !(s->out = calloc(m->n_layers, sizeof *s->out)) ||
        !(s->aux = calloc(m->n_layers, sizeof *s->aux))) {
        cpu_destroy(be);
        return at_fail("cpu backend", "out of memory");
    }
    s->m = m;
    s->mem_limit = opt && opt->mem_limit ? opt->mem_limit : DEFAULT_MEM_LIMIT;
    if (opt && opt->threads > 0) omp_set_num_threads(opt->threads);
    be->name = "cpu";
    be->model = m;
    be->precision = opt ? opt->precision : AT_PRECISION_FP32;
    if (be->precision < AT_PRECISION_FP32 || be->precision > AT_PRECISION_FP16) {
        cpu_destroy(be);
        return at_fail("--precision", "unknown precision %d", (int)(opt ? opt->precision : 0));
    }
    be->peak_flops = cpu_peak_flops();
    be->forward = cpu_forward;
    be->backward = cpu_backward;
    be->max_batch = cpu_max_batch;
    be->destroy = cpu_destroy;
    *out = be;
    return AT_OK;
}
