/* The calls a node rule makes (host/exec/backend.h at_rule_*): the node's op
 * with transformed parameters, its transpose, element-wise products and
 * quotients, and scratch, all on the backend running the pass. Parameters
 * with transformed weights (W+ = max(W, 0), W- = min(W, 0)) and biases
 * (zero, b+, b-) are prepared on first use and kept for later passes. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/state.h"

#define N_WT 3
#define N_BT 4

const at_layer *at_rule_node(const at_rule_call *c) { return &c->s->m->layers[c->node]; }
int at_rule_items(const at_rule_call *c) { return c->n; }
const float *at_rule_input(const at_rule_call *c) { return c->input; }
const float *at_rule_signal(const at_rule_call *c) { return c->signal; }
const float *at_rule_output(const at_rule_call *c) { return c->s->out[c->node]; }
float *at_rule_result(at_rule_call *c) { return c->result; }

int at_exec_rule_scratch_ready(exec_state *s, int n) {
    const size_t need = 3 * (size_t)n * s->max_layer;
    if (need <= s->rule_scratch_floats) return AT_OK;
    if (s->rule_scratch) s->ops->release(s->ctx, s->rule_scratch);
    s->rule_scratch_floats = 0;
    if (!(s->rule_scratch = s->ops->alloc(s->ctx, need * sizeof(float), "node-rule scratch"))) return AT_ERR;
    s->rule_scratch_floats = need;
    return AT_OK;
}

float *at_rule_scratch(at_rule_call *c, int k) {
    if (k < 0 || k > 2) {
        at_fail("node rule", "scratch buffer %d of 0..2", k);
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

static float *transformed(const float *v, long n, int sign) {
    float *t = malloc(sizeof(float) * (n > 0 ? n : 1));
    for (long i = 0; t && i < n; i++) t[i] = sign == 0 ? 0.0f : sign > 0 ? (v[i] > 0 ? v[i] : 0) : (v[i] < 0 ? v[i] : 0);
    return t;
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
    void **slot = &s->tparams[((size_t)node * N_WT + w) * N_BT + b];
    if (*slot) return *slot;
    const at_layer *l = &s->m->layers[node];
    const long wn = (long)l->out_c * l->in_c * (l->kind == AT_L_CONV ? l->kernel * l->kernel : 1);
    float *tw = w == AT_WEIGHTS ? (float *)l->weight : keep_host(s, transformed(l->weight, wn, w == AT_WEIGHTS_POSITIVE ? 1 : -1));
    float *tb = b == AT_BIAS ? (float *)l->bias
                             : keep_host(s, transformed(l->bias, l->out_c, b == AT_BIAS_ZERO ? 0 : b == AT_BIAS_POSITIVE ? 1 : -1));
    if (!tw || !tb) {
        at_fail("node rule", "out of host memory");
        return NULL;
    }
    int rc = l->kind == AT_L_CONV ? s->ops->prepare_conv(s->ctx, tw, tb, l->out_c, l->in_c, l->kernel, l->stride, l->pad,
                                                         l->in_h, l->in_w, slot)
                                  : s->ops->prepare_linear(s->ctx, tw, tb, l->out_c, l->in_c, slot);
    return rc ? NULL : *slot;
}

int at_rule_forward(at_rule_call *c, at_weight_transform w, at_bias_transform b, const float *x, float *y) {
    exec_state *s = c->s;
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
    void *p = params(s, c->node, w, AT_BIAS);
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

void at_exec_rules_free(exec_state *s) {
    for (int i = 0; i < s->n_thost; i++) free(s->thost[i]);
    free(s->thost), free(s->tparams);
    s->thost = NULL, s->tparams = NULL, s->n_thost = s->thost_cap = 0;
}
