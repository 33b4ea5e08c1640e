/* The calls a node rule makes (host/exec/backend.h at_rule_*): the node's op
 * with transformed parameters, its transpose, element-wise products and
 * quotients, and scratch, all on the backend running the pass. Parameters
 * with transformed weights (W+ = max(W, 0), W- = min(W, 0)) and biases
 * (zero, b+, b-) are prepared on first use and kept for later passes. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/state.h"

#define N_WT 5
#define N_BT 6

const at_layer *at_rule_node(const at_rule_call *c) { return &c->s->m->layers[c->node]; }
int at_rule_items(const at_rule_call *c) { return c->n; }
const float *at_rule_input(const at_rule_call *c) { return c->input; }
const float *at_rule_signal(const at_rule_call *c) { return c->signal; }
const float *at_rule_output(const at_rule_call *c) { return c->s->out[c->node]; }
float *at_rule_result(at_rule_call *c) { return c->result; }
const float *at_rule_input2(const at_rule_call *c) { return c->input2; }
float *at_rule_result2(at_rule_call *c) { return c->result2; }
int at_rule_reads_network_input(const at_rule_call *c) { return c->s->m->layers[c->node].input < 0; }

/* AT_RULE_SCRATCH buffers for the rules and one more for the executor (an
 * add rule's second result when that gradient is already held). */
int at_exec_rule_scratch_ready(exec_state *s, int n) {
    const size_t need = (AT_RULE_SCRATCH + 1) * (size_t)n * s->max_layer;
    if (need <= s->rule_scratch_floats) return AT_OK;
    if (s->rule_scratch) s->ops->release(s->ctx, s->rule_scratch);
    s->rule_scratch_floats = 0;
    if (!(s->rule_scratch = s->ops->alloc(s->ctx, need * sizeof(float), "node-rule scratch"))) return AT_ERR;
    s->rule_scratch_floats = need;
    return AT_OK;
}

float *at_rule_scratch(at_rule_call *c, int k) {
    if (k < 0 || k > AT_RULE_SCRATCH) { /* AT_RULE_SCRATCH itself: the executor's own */
        at_fail("node rule", "scratch buffer %d of 0..%d", k, AT_RULE_SCRATCH - 1);
        return NULL;
    }
    return c->s->rule_scratch + (size_t)k * c->n * c->s->max_layer;
}

static float *keep_host(exec_state *s, float *p) {
    if (!p) return NULL;
    if (s->n_thost == s->thost_cap) {
        int cap = s->thost_cap ? 2 * s->thost_cap : 16;
        float **q = realloc(s->thost, sizeof *q * cap);
        if (!q) {
            free(p);
            return NULL;
        }
        s->thost = q, s->thost_cap = cap;
    }
    s->thost[s->n_thost++] = p;
    return p;
}

/* sign 0: zeros; +-1: the positive / negative part; +-2: v + gamma v+- (LRP's gamma rule). */
static float *transformed(const float *v, long n, int sign, float gamma) {
    float *t = malloc(sizeof(float) * (n > 0 ? n : 1));
    for (long i = 0; t && i < n; i++) {
        const float part = sign > 0 ? (v[i] > 0 ? v[i] : 0) : (v[i] < 0 ? v[i] : 0);
        t[i] = sign == 0 ? 0.0f : sign == 1 || sign == -1 ? part : v[i] + gamma * part;
    }
    return t;
}

static int weight_sign(at_weight_transform w) {
    static const int s[N_WT] = {0, 1, -1, 2, -2};
    return s[w];
}
static int bias_sign(at_bias_transform b) {
    static const int s[N_BT] = {0, 0, 1, -1, 2, -2};
    return s[b];
}

/* The node's parameters under (w, b), prepared on first use. */
static void *params(exec_state *s, int node, at_weight_transform w, at_bias_transform b) {
    if ((unsigned)w >= N_WT || (unsigned)b >= N_BT) {
        at_fail("node rule", "unknown parameter transform (%d, %d)", (int)w, (int)b);
        return NULL;
    }
    if (w == AT_WEIGHTS && b == AT_BIAS) return s->m->layers[node].kind == AT_L_CONV ? s->conv[node] : s->lin[node];
    if (!s->tparams && !(s->tparams = calloc((size_t)s->m->n_layers * N_WT * N_BT, sizeof(void *)))) {
        at_fail("node rule", "out of host memory");
        return NULL;
    }
    if (!s->tgamma && !(s->tgamma = calloc((size_t)s->m->n_layers * N_WT * N_BT, sizeof(float)))) {
        at_fail("node rule", "out of host memory");
        return NULL;
    }
    const size_t k = ((size_t)node * N_WT + w) * N_BT + b;
    const int gamma_slot = w >= AT_WEIGHTS_GAMMA_POSITIVE || b >= AT_BIAS_GAMMA_POSITIVE;
    void **slot = &s->tparams[k];
    /* a gamma slot prepared with another gamma is prepared again (the old one lives until the backend goes) */
    if (*slot && (!gamma_slot || s->tgamma[k] == s->rule_gamma)) return *slot;
    *slot = NULL;
    s->tgamma[k] = s->rule_gamma;
    const at_layer *l = &s->m->layers[node];
    const long wn = (long)l->out_c * l->in_c * (l->kind == AT_L_CONV ? l->kernel * l->kernel : 1);
    float *tw = w == AT_WEIGHTS ? (float *)l->weight : keep_host(s, transformed(l->weight, wn, weight_sign(w), s->rule_gamma));
    float *tb = b == AT_BIAS ? (float *)l->bias
                             : keep_host(s, transformed(l->bias, l->out_c, bias_sign(b), s->rule_gamma));
    if (!tw || !tb) {
        at_fail("node rule", "out of host memory");
        return NULL;
    }
    int rc = l->kind == AT_L_CONV ? s->ops->prepare_conv(s->ctx, tw, tb, l->out_c, l->in_c, l->kernel, l->stride, l->pad,
                                                         l->in_h, l->in_w, slot)
                                  : s->ops->prepare_linear(s->ctx, tw, tb, l->out_c, l->in_c, slot);
    return rc ? NULL : *slot;
}

/* A pool node's own op: forward, or (transpose) its backward. */
static int pool_op(at_rule_call *c, int transpose, const float *x, float *y) {
    exec_state *s = c->s;
    const at_layer *l = &s->m->layers[c->node];
    const int n = c->n;
    switch (l->kind) {
    case AT_L_MAXPOOL:
        return transpose ? s->ops->maxpool2d_backward(s->ctx, c->input, x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride,
                                                      l->pad, y)
                         : s->ops->maxpool2d_forward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad, y);
    case AT_L_ADAPTIVE_AVGPOOL:
        return transpose ? s->ops->adaptive_avgpool_backward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, y)
                         : s->ops->adaptive_avgpool_forward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, y);
    case AT_L_AVGPOOL:
        return transpose
                   ? s->ops->avgpool2d_backward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad, y)
                   : s->ops->avgpool2d_forward(s->ctx, x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, l->pad, y);
    default: return at_fail(l->name, "a node rule's op runs at convs, linear layers and pools only");
    }
}

static int is_param_node(const exec_state *s, int node) {
    const at_layer_kind k = s->m->layers[node].kind;
    return k == AT_L_CONV || k == AT_L_LINEAR;
}

int at_rule_forward(at_rule_call *c, at_weight_transform w, at_bias_transform b, const float *x, float *y) {
    exec_state *s = c->s;
    if (!is_param_node(s, c->node)) return pool_op(c, 0, x, y);
    void *p = params(s, c->node, w, b);
    if (!p) return AT_ERR;
    if (s->m->layers[c->node].kind == AT_L_LINEAR) return s->ops->linear_forward(s->ctx, p, x, c->n, y);
    at_conv_call cc;
    memset(&cc, 0, sizeof cc);
    cc.x = x, cc.y = y, cc.n = c->n;
    return s->ops->conv2d_forward(s->ctx, p, &cc);
}

int at_rule_transpose(at_rule_call *c, at_weight_transform w, const float *dy, float *dx) {
    exec_state *s = c->s;
    if (!is_param_node(s, c->node)) return pool_op(c, 1, dy, dx);
    /* the transpose ignores the bias: any slot already prepared with these weights serves */
    void *p = NULL;
    for (int b = 0; !p && s->tparams && b < N_BT && (unsigned)w < N_WT; b++) {
        const size_t k = ((size_t)c->node * N_WT + w) * N_BT + b;
        const int gamma_slot = w >= AT_WEIGHTS_GAMMA_POSITIVE || b >= AT_BIAS_GAMMA_POSITIVE;
        if (s->tparams[k] && (!gamma_slot || s->tgamma[k] == s->rule_gamma)) p = s->tparams[k];
    }
    if (!p) p = params(s, c->node, w, AT_BIAS);
    if (!p) return AT_ERR;
    if (s->m->layers[c->node].kind == AT_L_LINEAR) return s->ops->linear_backward_data(s->ctx, p, dy, c->n, dx);
    return s->ops->conv2d_backward_data(s->ctx, p, dy, c->n, dx);
}

int at_rule_multiply(at_rule_call *c, const float *a, const float *b, long n, float *y) {
    return c->s->ops->mul(c->s->ctx, a, b, n, y);
}

int at_rule_divide(at_rule_call *c, const float *a, const float *b, long n, float *y) {
    return c->s->ops->div(c->s->ctx, a, b, n, y);
}

int at_rule_clamp(at_rule_call *c, const float *x, int sign, long n, float *y) {
    return c->s->ops->clamp_sign(c->s->ctx, x, sign, n, y);
}

int at_rule_select(at_rule_call *c, const float *m, const float *a, int sign, long n, float *y) {
    return c->s->ops->select_sign(c->s->ctx, m, a, sign, n, y);
}

int at_rule_divide_stabilized(at_rule_call *c, const float *a, const float *b, float eps, long n, float *y) {
    return c->s->ops->div_stabilized(c->s->ctx, a, b, eps, n, y);
}

int at_rule_axpby(at_rule_call *c, float alpha, const float *a, float beta, const float *b, long n, float *y) {
    return c->s->ops->axpby(c->s->ctx, alpha, a, beta, b, n, y);
}

int at_rule_upload(at_rule_call *c, const float *host, long n, float *dst) {
    return c->s->ops->upload(c->s->ctx, dst, host, sizeof(float) * n);
}

void at_exec_rules_free(exec_state *s) {
    for (int i = 0; i < s->n_thost; i++) free(s->thost[i]);
    free(s->thost), free(s->tparams), free(s->tgamma);
    s->thost = NULL, s->tparams = NULL, s->tgamma = NULL, s->n_thost = s->thost_cap = 0;
}
