/* Excitation backprop and contrastive EB (docs/methods.md#excitation-backprop),
 * LRP and CLRP (docs/methods.md#lrp) and FAFRP (docs/methods.md#fafrp): one
 * forward kept for the backward, then backward passes whose conv, linear,
 * pool and residual-add nodes run the method's rule through the executor's
 * node-rule calls, on whatever backend runs the pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/maps.h"
#include "methods/relevance.h"

/* zennit's stabiliser (Stabilizer, epsilon 1e-6) for every LRP rule and Norm */
#define LRP_EPS 1e-6f
#define LRP_GAMMA_DEFAULT 0.25f
#define LRP_ALPHA_DEFAULT 2.0f
/* a rule pass keeps pre-activations and 7 scratch tensors per item (VGG16 at
 * 224: ~0.26 GB per item): half the plain backward's batch, at most this */
#define RULE_BATCH_MAX 8

static const char *const lrp_names[AT_LRP_RULE_COUNT] = {"epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon",
                                                         "gamma", "alpha-beta"};

int at_lrp_rule_parse(const char *name, at_lrp_rule *out) {
    for (int i = 0; i < AT_LRP_RULE_COUNT; i++)
        if (!strcmp(name, lrp_names[i])) {
            *out = (at_lrp_rule)i;
            return AT_OK;
        }
    return at_fail("LRP rule", "'%s' is not one of epsilon-gamma-box, epsilon-alpha2-beta1, epsilon, gamma, "
                   "alpha-beta", name);
}

const char *at_lrp_rule_name(at_lrp_rule r) { return (unsigned)r < AT_LRP_RULE_COUNT ? lrp_names[r] : "?"; }

static int is_resnet(const at_model *m) { return !strncmp(m->arch, "resnet", 6); }

int at_relevance_layers(const at_model *m, const at_explain_options *opt, int *readout, int *contrast) {
    const char *rs = opt->eb_layer ? opt->eb_layer : is_resnet(m) ? "layer3" : "features.23";
    const char *cs = opt->contrast_layer ? opt->contrast_layer : is_resnet(m) ? "avgpool" : "classifier.4";
    *readout = at_model_find_layer(m, rs);
    if (*readout < 0) return at_fail("layer", "%s: no such module in %s (EB reads out at a module's output)", rs, m->name);
    *contrast = -1;
    if (opt->method != AT_METHOD_CEB) return AT_OK;
    *contrast = at_model_find_layer(m, cs);
    if (*contrast < 0) return at_fail("contrast layer", "%s: no such module in %s", cs, m->name);
    if (*contrast <= *readout || *contrast >= m->n_layers - 1)
        return at_fail("contrast layer", "%s must lie between the read-out layer %s and the logits", cs,
                       m->layers[*readout].name);
    return AT_OK;
}

long at_relevance_raw_floats(const at_model *m, const at_explain_options *opt) {
    int ro, ct;
    if ((opt->method == AT_METHOD_EB || opt->method == AT_METHOD_CEB) && !at_relevance_layers(m, opt, &ro, &ct))
        return (long)m->layers[ro].out_h * m->layers[ro].out_w;
    return (long)m->in_h * m->in_w;
}

/* ---- the rules ------------------------------------------------------------ */

typedef struct {
    const at_model *m;
    at_method method;
    at_lrp_rule rule;
    float alpha, gamma;
    int first_conv;   /* z^B's layer in epsilon-gamma-box */
    int last_linear;  /* c-EB's classifier */
    int dual;         /* c-EB's first pass: the classifier's weights negated */
    const float *lo, *hi; /* z^B bounds per item [n][C][H][W], host */
} rel_ctx;

static long node_index(const rel_ctx *x, at_rule_call *c) { return at_rule_node(c) - x->m->layers; }
static long out_floats(at_rule_call *c) { return at_layer_out_size(at_rule_node(c)) * at_rule_items(c); }
static long in_floats(at_rule_call *c) {
    const at_layer *l = at_rule_node(c);
    return (long)l->in_c * l->in_h * l->in_w * at_rule_items(c);
}

/* EB at convs and linear layers: p' = x * op^T(p / op(x, W+), W+), no bias,
 * 0 where the normaliser is 0; c-EB's dual classifier uses W- (the same
 * quotient as max(-W, 0) with both signs flipped). */
static int eb_param_rule(at_rule_call *c, void *user) {
    rel_ctx *x = user;
    const at_weight_transform w = x->dual && node_index(x, c) == x->last_linear ? AT_WEIGHTS_NEGATIVE : AT_WEIGHTS_POSITIVE;
    float *z = at_rule_scratch(c, 0), *t = at_rule_scratch(c, 1);
    return at_rule_forward(c, w, AT_BIAS_ZERO, at_rule_input(c), z) ||
                   at_rule_divide(c, at_rule_signal(c), z, out_floats(c), z) || at_rule_transpose(c, w, z, t) ||
                   at_rule_multiply(c, at_rule_input(c), t, in_floats(c), at_rule_result(c))
               ? AT_ERR
               : AT_OK;
}

/* Pools: max-pools route to the argmax (the gradient) under every method;
 * average pools p' = x * pool^T(p / pool(x)), with EB's zero rule or LRP's
 * stabiliser (zennit's Norm). */
static int pool_rule(at_rule_call *c, void *user) {
    rel_ctx *x = user;
    if (at_rule_node(c)->kind == AT_L_MAXPOOL) return at_rule_transpose(c, AT_WEIGHTS, at_rule_signal(c), at_rule_result(c));
    float *z = at_rule_scratch(c, 0), *t = at_rule_scratch(c, 1);
    const int eb = x->method == AT_METHOD_EB || x->method == AT_METHOD_CEB;
    return at_rule_forward(c, AT_WEIGHTS, AT_BIAS, at_rule_input(c), z) ||
                   (eb ? at_rule_divide(c, at_rule_signal(c), z, out_floats(c), z)
                       : at_rule_divide_stabilized(c, at_rule_signal(c), z, LRP_EPS, out_floats(c), z)) ||
                   at_rule_transpose(c, AT_WEIGHTS, z, t) ||
                   at_rule_multiply(c, at_rule_input(c), t, in_floats(c), at_rule_result(c))
               ? AT_ERR
               : AT_OK;
}

/* Residual adds: R_i = x_i / (x_1 + x_2) R (docs/methods.md#excitation-backprop):
 * 0 where the sum is 0 under EB (TorchRay's EltwiseSum), stabilised under
 * LRP (zennit's Norm on its Sum canonizer). The first result aliases the
 * signal, so the quotient is formed first. */
static int add_rule(at_rule_call *c, void *user) {
    rel_ctx *x = user;
    const long n = out_floats(c);
    float *q = at_rule_scratch(c, 0);
    const int eb = x->method == AT_METHOD_EB || x->method == AT_METHOD_CEB;
    return at_rule_axpby(c, 1.0f, at_rule_input(c), 1.0f, at_rule_input2(c), n, q) ||
                   (eb ? at_rule_divide(c, at_rule_signal(c), q, n, q)
                       : at_rule_divide_stabilized(c, at_rule_signal(c), q, LRP_EPS, n, q)) ||
                   at_rule_multiply(c, at_rule_input2(c), q, n, at_rule_result2(c)) ||
                   at_rule_multiply(c, at_rule_input(c), q, n, at_rule_result(c))
               ? AT_ERR
               : AT_OK;
}

static int rule_add(at_rule_call *c, const float *a, const float *b, long n, float *y) {
    return at_rule_axpby(c, 1.0f, a, 1.0f, b, n, y);
}

/* The node's input is a ReLU's output (through pools and identities): its
 * negative part is zero and the rules' x- terms vanish. */
static int input_nonnegative(const at_model *m, int node) {
    for (int i = m->layers[node].input; i >= 0; i = m->layers[i].input) switch (m->layers[i].kind) {
        case AT_L_RELU: return 1;
        case AT_L_MAXPOOL:
        case AT_L_AVGPOOL:
        case AT_L_ADAPTIVE_AVGPOOL:
        case AT_L_DROPOUT:
        case AT_L_FLATTEN: continue;
        default: return 0;
        }
    return 0;
}

/* epsilon: R_in = x * op^T(R / stab(z)), z the node's kept pre-activation. */
static int lrp_epsilon(at_rule_call *c) {
    float *g = at_rule_scratch(c, 0), *t = at_rule_scratch(c, 1);
    return at_rule_divide_stabilized(c, at_rule_signal(c), at_rule_output(c), LRP_EPS, out_floats(c), g) ||
                   at_rule_transpose(c, AT_WEIGHTS, g, t) ||
                   at_rule_multiply(c, at_rule_input(c), t, in_floats(c), at_rule_result(c))
               ? AT_ERR
               : AT_OK;
}

/* The two-part rules of zennit 0.5.1, with P, N the positive- and
 * negative-leaning parameters (alpha-beta: W+ b+, W- b-; gamma: W + gamma W+,
 * W + gamma W-) and x = x+ + x-:
 *   z+ = op(x+, P, bP) + op(x-, N, 0),  z- = op(x+, N, bN) + op(x-, P, 0),
 *   g1 = R1 / stab(z+),  g2 = R2 / stab(z-),
 *   R_in = x+ (ca P^T g1 + cb N^T g2) + x- (ca N^T g1 + cb P^T g2),
 * alpha-beta: R1 = R2 = R, ca = alpha, cb = -beta; gamma: R1 = R [z > 0],
 * R2 = R [z < 0], ca = cb = 1 (z the unmodified pre-activation). */
static int lrp_two_part(at_rule_call *c, at_weight_transform P, at_bias_transform bP, at_weight_transform N,
                        at_bias_transform bN, int gamma_masks, float ca, float cb, int nonneg) {
    const long on = out_floats(c), in = in_floats(c);
    float *s0 = at_rule_scratch(c, 0), *s1 = at_rule_scratch(c, 1), *s2 = at_rule_scratch(c, 2);
    float *s3 = at_rule_scratch(c, 3), *xp = at_rule_scratch(c, 4), *xn = at_rule_scratch(c, 5);
    const float *R = at_rule_signal(c);
    float *res = at_rule_result(c);
    if (nonneg) {
        xp = (float *)at_rule_input(c);
    } else if (at_rule_clamp(c, at_rule_input(c), 1, in, xp) || at_rule_clamp(c, at_rule_input(c), -1, in, xn)) {
        return AT_ERR;
    }
    /* s0 = z+, s1 = z- */
    if (at_rule_forward(c, P, bP, xp, s0) || at_rule_forward(c, N, bN, xp, s1)) return AT_ERR;
    if (!nonneg && (at_rule_forward(c, N, AT_BIAS_ZERO, xn, s2) || rule_add(c, s0, s2, on, s0) ||
                    at_rule_forward(c, P, AT_BIAS_ZERO, xn, s2) || rule_add(c, s1, s2, on, s1)))
        return AT_ERR;
    /* s2 = g1, s3 = g2 */
    if (gamma_masks) {
        if (at_rule_select(c, at_rule_output(c), R, 1, on, s2) || at_rule_select(c, at_rule_output(c), R, -1, on, s3))
            return AT_ERR;
        if (at_rule_divide_stabilized(c, s2, s0, LRP_EPS, on, s2) || at_rule_divide_stabilized(c, s3, s1, LRP_EPS, on, s3))
            return AT_ERR;
    } else if (at_rule_divide_stabilized(c, R, s0, LRP_EPS, on, s2) || at_rule_divide_stabilized(c, R, s1, LRP_EPS, on, s3)) {
        return AT_ERR;
    }
    /* x+ part into s0, x- part into s1 */
    if (at_rule_transpose(c, P, s2, s0) || at_rule_transpose(c, N, s3, s1) || at_rule_axpby(c, ca, s0, cb, s1, in, s0))
        return AT_ERR;
    if (nonneg) return at_rule_multiply(c, xp, s0, in, res);
    if (at_rule_multiply(c, xp, s0, in, s0) || at_rule_transpose(c, N, s2, s1) || at_rule_transpose(c, P, s3, res) ||
        at_rule_axpby(c, ca, s1, cb, res, in, s1) || at_rule_multiply(c, xn, s1, in, s1))
        return AT_ERR;
    return rule_add(c, s0, s1, in, res);
}

/* z^B (zennit ZBox) with the bounds l = (0 - mean)/std, h = (1 - mean)/std:
 * z = op(x, W, b) - op(l, W+, b+) - op(h, W-, b-), g = R / stab(z),
 * R_in = x W^T g - l W+^T g - h W-^T g. */
static int lrp_zbox(at_rule_call *c, const rel_ctx *x) {
    const long on = out_floats(c), in = in_floats(c);
    float *s0 = at_rule_scratch(c, 0), *s1 = at_rule_scratch(c, 1), *g = at_rule_scratch(c, 2);
    float *lo = at_rule_scratch(c, 4), *hi = at_rule_scratch(c, 5);
    float *res = at_rule_result(c);
    if (at_rule_upload(c, x->lo, in, lo) || at_rule_upload(c, x->hi, in, hi) ||
        at_rule_forward(c, AT_WEIGHTS_POSITIVE, AT_BIAS_POSITIVE, lo, s0) ||
        at_rule_forward(c, AT_WEIGHTS_NEGATIVE, AT_BIAS_NEGATIVE, hi, s1) || rule_add(c, s0, s1, on, s0) ||
        at_rule_axpby(c, 1.0f, at_rule_output(c), -1.0f, s0, on, s0) ||
        at_rule_divide_stabilized(c, at_rule_signal(c), s0, LRP_EPS, on, g))
        return AT_ERR;
    return at_rule_transpose(c, AT_WEIGHTS, g, s0) || at_rule_multiply(c, at_rule_input(c), s0, in, s0) ||
                   at_rule_transpose(c, AT_WEIGHTS_POSITIVE, g, s1) || at_rule_multiply(c, lo, s1, in, s1) ||
                   at_rule_axpby(c, 1.0f, s0, -1.0f, s1, in, s0) || at_rule_transpose(c, AT_WEIGHTS_NEGATIVE, g, s1) ||
                   at_rule_multiply(c, hi, s1, in, s1) || at_rule_axpby(c, 1.0f, s0, -1.0f, s1, in, res)
               ? AT_ERR
               : AT_OK;
}

static int lrp_param_rule(at_rule_call *c, void *user) {
    rel_ctx *x = user;
    const int node = (int)node_index(x, c), conv = at_rule_node(c)->kind == AT_L_CONV;
    at_lrp_rule r = x->rule;
    if (r == AT_LRP_EPSILON_GAMMA_BOX) {
        if (!conv) return lrp_epsilon(c);
        if (node == x->first_conv) return lrp_zbox(c, x);
        r = AT_LRP_GAMMA;
    } else if (r == AT_LRP_EPSILON_ALPHA2_BETA1) {
        if (!conv) return lrp_epsilon(c);
        r = AT_LRP_ALPHA_BETA;
    }
    const int nonneg = input_nonnegative(x->m, node);
    switch (r) {
    case AT_LRP_EPSILON: return lrp_epsilon(c);
    case AT_LRP_GAMMA:
        return lrp_two_part(c, AT_WEIGHTS_GAMMA_POSITIVE, AT_BIAS_GAMMA_POSITIVE, AT_WEIGHTS_GAMMA_NEGATIVE,
                            AT_BIAS_GAMMA_NEGATIVE, 1, 1.0f, 1.0f, nonneg);
    default:
        return lrp_two_part(c, AT_WEIGHTS_POSITIVE, AT_BIAS_POSITIVE, AT_WEIGHTS_NEGATIVE, AT_BIAS_NEGATIVE, 0, x->alpha,
                            -(x->alpha - 1.0f), nonneg);
    }
}

/* ---- the methods ---------------------------------------------------------- */

static int find_first_conv(const at_model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == AT_L_CONV) return i;
    return -1;
}
static int find_last_linear(const at_model *m) {
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].kind == AT_L_LINEAR || m->layers[i].kind == AT_L_CONV) return i;
    return -1;
}

/* Per item, the channel sum of a [n][C][hw] tensor. */
static void channel_sums(const float *t, int n, int C, long hw, float *out) {
    for (int b = 0; b < n; b++)
        for (long i = 0; i < hw; i++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += t[((long)b * C + c) * hw + i];
            out[b * hw + i] = (float)s;
        }
}

int at_relevance_run(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r,
                     float *raw) {
    const at_model *m = be->model;
    const at_method meth = opt->method;
    const int eb = meth == AT_METHOD_EB || meth == AT_METHOD_CEB, lrp = meth == AT_METHOD_LRP || meth == AT_METHOD_CLRP;
    int readout = -1, contrast = -1;
    if (eb && at_relevance_layers(m, opt, &readout, &contrast)) return AT_ERR;
    const at_unit *unit = opt->unit;
    if (unit && (at_unit_check(m, unit) ||
                 ((meth == AT_METHOD_CEB || meth == AT_METHOD_CLRP) &&
                  at_fail("unit", "%s contrasts a class with the others; explain a unit with eb or lrp",
                          at_method_name(meth))) ||
                 (eb && readout >= unit->layer &&
                  at_fail("layer", "the read-out %s must lie below the unit's layer %s", m->layers[readout].name,
                          m->layers[unit->layer].name))))
        return AT_ERR;
    if ((unsigned)opt->lrp_rule >= AT_LRP_RULE_COUNT) return at_fail("LRP rule", "unknown rule %d", (int)opt->lrp_rule);
    rel_ctx x = {.m = m, .method = meth, .rule = opt->lrp_rule,
                 .alpha = opt->lrp_alpha > 0 ? opt->lrp_alpha : LRP_ALPHA_DEFAULT,
                 .gamma = opt->lrp_gamma > 0 ? opt->lrp_gamma : LRP_GAMMA_DEFAULT,
                 .first_conv = find_first_conv(m), .last_linear = find_last_linear(m)};
    if (!(x.alpha >= 1.0f) || x.alpha > 1e3f) return at_fail("LRP alpha", "%g: alpha-beta needs alpha >= 1 (beta = alpha - 1)", x.alpha);
    const long hw = (long)m->in_h * m->in_w, in_size = m->in_c * hw, K = m->n_classes;
    int batch = at_max_batch(be, 1);
    if (meth != AT_METHOD_FAFRP) batch = batch / 2 < 1 ? 1 : batch / 2 > RULE_BATCH_MAX ? RULE_BATCH_MAX : batch / 2;
    if (batch > n) batch = n;
    const at_layer *ro = readout >= 0 ? &m->layers[readout] : NULL;
    const long ro_size = ro ? at_layer_out_size(ro) : 0, ro_hw = ro ? (long)ro->out_h * ro->out_w : 0;
    const long ct_size = contrast >= 0 ? at_layer_out_size(&m->layers[contrast]) : 0;
    const long raw_hw = eb ? ro_hw : hw;
    const long start_n = at_explain_start_floats(m, opt), unit_n = unit ? at_layer_out_size(&m->layers[unit->layer]) : 0;
    float *logits = malloc(sizeof(float) * batch * K), *dl = malloc(sizeof(float) * batch * start_n);
    float *unit_out = unit ? malloc(sizeof(float) * batch * unit_n) : NULL;
    int *cls = malloc(sizeof(int) * batch);
    float *sig = malloc(sizeof(float) * batch * (eb ? ro_size : in_size));
    float *sums = malloc(sizeof(float) * batch * raw_hw);
    float *pm = ct_size ? malloc(sizeof(float) * batch * ct_size) : NULL, *pp = ct_size ? malloc(sizeof(float) * batch * ct_size) : NULL;
    float *lohi = lrp ? malloc(sizeof(float) * 2 * batch * in_size) : NULL;
    int rc = AT_OK;
    if (!logits || !dl || !sig || !sums || (ct_size && (!pm || !pp)) || (lrp && !lohi) || (unit && !unit_out) || !cls) {
        rc = at_fail(at_method_name(meth), "out of memory");
        goto done;
    }
    if (lrp) { /* z^B's bounds: the [0,1] image's extremes, normalised */
        for (int b = 0; b < batch; b++)
            for (int ch = 0; ch < m->in_c; ch++)
                for (long i = 0; i < hw; i++) {
                    const float mean = ch < 3 ? m->pre.mean[ch] : 0, sd = ch < 3 ? m->pre.std[ch] : 1;
                    lohi[((long)b * m->in_c + ch) * hw + i] = (0.0f - mean) / sd;
                    lohi[(long)batch * in_size + ((long)b * m->in_c + ch) * hw + i] = (1.0f - mean) / sd;
                }
        x.lo = lohi, x.hi = lohi + (long)batch * in_size;
    }
    at_backward_rules rules = {.gamma = x.gamma, .user = &x};
    if (eb) rules.conv = rules.linear = eb_param_rule, rules.pool = pool_rule, rules.add = add_rule;
    if (lrp) rules.conv = rules.linear = lrp_param_rule, rules.pool = pool_rule, rules.add = add_rule;
    for (int start = 0; start < n && rc == AT_OK; start += batch) {
        const int nb = n - start < batch ? n - start : batch;
        const float *xin = inputs + in_size * start;
        const int cap_layer = unit ? unit->layer : 0;
        at_forward_args fa = {.n = nb, .input = xin, .logits = logits, .keep_for_backward = 1,
                              .keep_pre_activation = lrp, .n_capture = unit != NULL, .capture_layer = &cap_layer,
                              .capture_out = &unit_out};
        if ((rc = at_explain_forward_batch(be, opt, &fa, start, r))) break;
        /* the top signal: 1 at the class or unit (EB, FAFRP's gradient); LRP: the logit or the unit's
         * activations, and CLRP -y/(N-1) at the other classes */
        for (int b = 0; b < nb; b++) {
            cls[b] = r[start + b].cls;
            r[start + b].value = unit ? at_unit_value(m, unit, unit_out + unit_n * b) : r[start + b].logit;
            r[start + b].backwards += meth == AT_METHOD_CEB ? 3 : 1;
        }
        at_backward_args ba = {.grad_layer = -1, .rules = rules};
        at_explain_start(m, opt, cls, nb, dl, &ba);
        for (int b = 0; lrp && b < nb; b++) {
            const float y = r[start + b].logit;
            float *d = dl + start_n * b;
            for (long k = 0; k < start_n; k++)
                d[k] = unit ? d[k] * unit_out[unit_n * b + k]
                            : d[k] != 0 ? y : meth == AT_METHOD_CLRP && K > 1 ? -y / (float)(K - 1) : 0.0f;
        }
        if (meth == AT_METHOD_CEB) { /* P- with the classifier negated, P+, then D = P+ - P- down to the read-out */
            x.dual = 1;
            ba.grad_layer = contrast, ba.grad_layer_out = pm;
            if ((rc = at_backward(be, &ba))) break;
            x.dual = 0;
            ba.grad_layer_out = pp;
            if ((rc = at_backward(be, &ba))) break;
            for (long i = 0; i < (long)nb * ct_size; i++) pp[i] -= pm[i];
            ba.dlogits = NULL, ba.dfrom = pp, ba.from_layer = contrast;
        }
        if (eb) ba.grad_layer = readout, ba.grad_layer_out = sig;
        else ba.grad_input = sig;
        if ((rc = at_backward(be, &ba))) break;
        if (eb) channel_sums(sig, nb, ro->out_c, ro_hw, sums);
        else channel_sums(sig, nb, m->in_c, hw, sums);
        if (meth == AT_METHOD_FAFRP) /* V = sum_ch x dy/dx + (y - sum x dy/dx) / N, N = H W (docs/methods.md#fafrp) */
            for (int b = 0; b < nb; b++) {
                const float *xb = xin + in_size * b, *gb = sig + in_size * b;
                double dot = 0;
                for (long i = 0; i < in_size; i++) dot += (double)xb[i] * gb[i];
                float *v = sums + hw * b;
                for (long i = 0; i < hw; i++) {
                    double s = 0;
                    for (int ch = 0; ch < m->in_c; ch++) s += (double)xb[ch * hw + i] * gb[ch * hw + i];
                    v[i] = (float)(s + ((double)r[start + b].value - dot) / (double)hw);
                }
            }
        for (int b = 0; b < nb; b++) {
            if (raw) memcpy(raw + raw_hw * (start + b), sums + raw_hw * b, sizeof(float) * raw_hw);
            at_finish_map(m, sums + raw_hw * b, eb ? ro->out_h : m->in_h, eb ? ro->out_w : m->in_w, &r[start + b]);
        }
    }
done:
    free(logits), free(dl), free(sig), free(sums), free(pm), free(pp), free(lohi), free(unit_out), free(cls);
    return rc;
}

int at_relevance(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    return at_relevance_run(be, opt, inputs, n, r, NULL);
}
