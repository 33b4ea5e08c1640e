/* The input-gradient family (docs/methods.md#gradient-saliency and the
 * sections after it). Each method is an element-wise attribution E over the
 * input [C][H][W], built from the input gradient g of the explained quantity
 * (the class logit, or a --unit), and reduced over colour channels to the map:
 *   saliency, smoothgrad        E = |g|                         map = max_c E
 *   contrastive                 E = ReLU(g)                     map = ||E||_2 over c
 *   guided-backprop, deconvnet  E = g under the ReLU rule       map = max_c |E|
 *   guided-gradcam              E = g_guided * Up(ReLU(cam))    map = max_c |E|
 *   input-x-gradient            E = x * g                       map = ReLU(sum_c E)
 *   integrated-gradients        E = (x - x') * sum_k w_k g(x' + alpha_k (x - x'))   map = ReLU(sum_c E)
 * --smooth N (smoothgrad: 25 samples) replaces E by its mean (or the mean of
 * E^2) over N noisy copies x + N(0, sigma^2) before the reduction, as
 * captum's NoiseTunnel. The work is items (image, noise sample, IG node), run
 * in batches that span images; one forward kept for each batch, one backward
 * to the input (guided Grad-CAM: a second one, to its layer). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"
#include "methods/maps.h"
#include "model/random_model.h"

/* Host floats a captured unit layer may take per batch (with a unit at an
 * early layer the batch shrinks to fit). */
#define UNIT_CAPTURE_FLOATS (1L << 26)

typedef struct {
    at_backend *be;
    const at_model *m;
    const at_explain_options *opt;
    at_explain_result *r;
    long in, hw;
    int batch;
    int cam_layer;      /* guided Grad-CAM's layer, else -1 */
    long cam_size;
    float *x;           /* [batch][in] the items' inputs */
    float *g;           /* [batch][in] their input gradients under the method's rule */
    float *up;          /* [batch][hw] guided Grad-CAM: Up(ReLU(cam)) per item */
    float *gates, *logits, *start, *unit_out, *cam_a, *cam_g, *cam;
    int *cls, *img;
} grad_ctx;

static at_relu_rule relu_rule(at_method m) {
    return m == AT_METHOD_GUIDED_BACKPROP || m == AT_METHOD_GUIDED_GRADCAM ? AT_RELU_GUIDED
           : m == AT_METHOD_DECONVNET                                    ? AT_RELU_DECONVNET
                                                                         : AT_RELU_GRADIENT;
}

/* Up(ReLU(sum_l w_l A_l)), w_l the mean gradient (Grad-CAM), for item b. */
static void guided_cam(grad_ctx *c, int b) {
    const at_layer *L = &c->m->layers[c->cam_layer];
    const long hw = (long)L->out_h * L->out_w;
    const float *A = c->cam_a + c->cam_size * b, *G = c->cam_g + c->cam_size * b;
    memset(c->cam, 0, sizeof(float) * hw);
    for (int l = 0; l < L->out_c; l++) {
        double w = 0;
        for (long i = 0; i < hw; i++) w += G[l * hw + i];
        const float wf = (float)(w / hw);
        for (long i = 0; i < hw; i++) c->cam[i] += wf * A[l * hw + i];
    }
    at_relu_inplace(c->cam, hw);
    at_upsample_bilinear(c->cam, L->out_h, L->out_w, c->up + c->hw * b, c->m->in_h, c->m->in_w, 0);
}

/* One batch of nb items (inputs in c->x, image c->img[b], class c->cls[b]):
 * a kept forward and the backward(s) of the explained quantity. With
 * classify, the items are images start.. of the call, in order: their class
 * and value come from this forward. */
static int run_items(grad_ctx *c, int nb, const float *x, int classify_start) {
    const at_model *m = c->m;
    const at_explain_options *opt = c->opt;
    if (opt->gates)
        for (int b = 0; b < nb; b++)
            memcpy(c->gates + (long)b * m->n_gates, opt->gates + (long)c->img[b] * m->n_gates, sizeof(float) * m->n_gates);
    int cap_layer[2], n_cap = 0;
    float *cap_out[2];
    const int want_unit = classify_start >= 0 && opt->unit;
    if (want_unit) cap_layer[n_cap] = opt->unit->layer, cap_out[n_cap++] = c->unit_out;
    if (c->cam_layer >= 0) cap_layer[n_cap] = c->cam_layer, cap_out[n_cap++] = c->cam_a;
    at_forward_args fa = {.n = nb, .input = x, .logits = c->logits, .gates = opt->gates ? c->gates : NULL,
                          .gates_per_item = 1, .n_capture = n_cap, .capture_layer = cap_layer,
                          .capture_out = cap_out, .keep_for_backward = 1};
    if (at_forward(c->be, &fa)) return AT_ERR;
    if (classify_start >= 0) {
        at_explain_options sub = *opt;
        sub.classes = opt->classes ? opt->classes + classify_start : NULL;
        at_explain_result *r = c->r + classify_start;
        if (at_explain_classify_logits(m, &sub, c->logits, nb, r)) return AT_ERR;
        const long uo = want_unit ? at_layer_out_size(&m->layers[opt->unit->layer]) : 0;
        for (int b = 0; b < nb; b++) {
            c->cls[b] = r[b].cls;
            r[b].value = want_unit ? at_unit_value(m, opt->unit, c->unit_out + uo * b) : r[b].logit;
        }
    } else {
        for (int b = 0; b < nb; b++) c->r[c->img[b]].forwards++;
    }
    at_backward_args ba = {.grad_layer = -1, .grad_input = c->g, .rules = {relu_rule(opt->method)}};
    at_explain_start(m, opt, c->cls, nb, c->start, &ba);
    if (c->cam_layer >= 0) { /* Grad-CAM's plain gradient, to its layer only */
        at_backward_args bc = ba;
        bc.rules.relu = AT_RELU_GRADIENT;
        bc.grad_input = NULL;
        bc.grad_layer = c->cam_layer, bc.grad_layer_out = c->cam_g;
        if (at_backward(c->be, &bc)) return AT_ERR;
        for (int b = 0; b < nb; b++) {
            guided_cam(c, b);
            c->r[c->img[b]].backwards++;
        }
    }
    if (at_backward(c->be, &ba)) return AT_ERR;
    for (int b = 0; b < nb; b++) c->r[c->img[b]].backwards++;
    return AT_OK;
}

/* acc (+)= E of item b at input x (see the table above); scale 0: store. */
static void add_attribution(const grad_ctx *c, int b, const float *x, float *acc, float scale, int square) {
    const float *g = c->g + c->in * b, *up = c->up ? c->up + c->hw * b : NULL;
    const at_method meth = c->opt->method;
    for (long i = 0; i < c->in; i++) {
        float e;
        switch (meth) {
        case AT_METHOD_SALIENCY:
        case AT_METHOD_SMOOTHGRAD: e = fabsf(g[i]); break;
        case AT_METHOD_CONTRASTIVE: e = g[i] > 0 ? g[i] : 0; break;
        case AT_METHOD_GUIDED_GRADCAM: e = g[i] * up[i % c->hw]; break;
        case AT_METHOD_INPUT_X_GRADIENT: e = x[i] * g[i]; break;
        default: e = g[i]; /* guided backprop, deconvnet */
        }
        if (square) e *= e;
        acc[i] = scale ? acc[i] + scale * e : e;
    }
}

/* The map from E [C][H][W], in [0,1]. */
static int reduce_map(const at_model *m, at_method meth, const float *E, float *map) {
    const long hw = (long)m->in_h * m->in_w;
    for (long i = 0; i < hw; i++) {
        float v = 0;
        if (meth == AT_METHOD_CONTRASTIVE) {
            double s = 0;
            for (int ch = 0; ch < m->in_c; ch++) s += (double)E[ch * hw + i] * E[ch * hw + i];
            v = (float)sqrt(s);
        } else if (meth == AT_METHOD_INPUT_X_GRADIENT || meth == AT_METHOD_INTEGRATED_GRADIENTS) {
            for (int ch = 0; ch < m->in_c; ch++) v += E[ch * hw + i];
            v = v > 0 ? v : 0;
        } else {
            for (int ch = 0; ch < m->in_c; ch++) v = fmaxf(v, fabsf(E[ch * hw + i]));
        }
        map[i] = v;
    }
    return at_minmax_normalize(map, hw);
}

/* The baseline x' of integrated gradients, one image. */
static void baseline_input(const at_model *m, at_baseline bl, float *xb) {
    const long hw = (long)m->in_h * m->in_w;
    for (int ch = 0; ch < m->in_c; ch++) {
        const float v = bl == AT_BASELINE_ZERO || ch >= 3 ? 0.0f : (0.0f - m->pre.mean[ch]) / m->pre.std[ch];
        for (long i = 0; i < hw; i++) xb[ch * hw + i] = v;
    }
}

/* Class and value of every image (no backward), and for integrated
 * gradients the value at the baseline. */
static int classify_images(grad_ctx *c, const float *inputs, int n, const float *xb) {
    const at_model *m = c->m;
    const at_explain_options *opt = c->opt;
    const long uo = opt->unit ? at_layer_out_size(&m->layers[opt->unit->layer]) : 0;
    for (int s = 0; s < n; s += c->batch) {
        const int nb = n - s < c->batch ? n - s : c->batch;
        for (int b = 0; b < nb && opt->gates; b++)
            memcpy(c->gates + (long)b * m->n_gates, opt->gates + (long)(s + b) * m->n_gates, sizeof(float) * m->n_gates);
        const int cap = opt->unit ? opt->unit->layer : 0;
        at_forward_args fa = {.n = nb, .input = inputs + c->in * s, .logits = c->logits,
                              .gates = opt->gates ? c->gates : NULL, .gates_per_item = 1, .n_capture = opt->unit != NULL,
                              .capture_layer = &cap, .capture_out = &c->unit_out};
        if (at_forward(c->be, &fa)) return AT_ERR;
        at_explain_options sub = *opt;
        sub.classes = opt->classes ? opt->classes + s : NULL;
        if (at_explain_classify_logits(m, &sub, c->logits, nb, c->r + s)) return AT_ERR;
        for (int b = 0; b < nb; b++)
            c->r[s + b].value = opt->unit ? at_unit_value(m, opt->unit, c->unit_out + uo * b) : c->r[s + b].logit;
    }
    if (!xb) return AT_OK;
    /* the baseline: one row for every image (per-image gates make it one row each) */
    for (int s = 0; s < n; s += c->batch) {
        const int nb = opt->gates ? (n - s < c->batch ? n - s : c->batch) : 1;
        int *zero = calloc(nb, sizeof(int));
        if (!zero) return at_fail("integrated-gradients", "out of memory");
        for (int b = 0; b < nb && opt->gates; b++)
            memcpy(c->gates + (long)b * m->n_gates, opt->gates + (long)(s + b) * m->n_gates, sizeof(float) * m->n_gates);
        const int cap = opt->unit ? opt->unit->layer : 0;
        at_forward_args fa = {.n = nb, .input = xb, .input_index = zero, .logits = c->logits,
                              .gates = opt->gates ? c->gates : NULL, .gates_per_item = 1,
                              .n_capture = opt->unit != NULL, .capture_layer = &cap, .capture_out = &c->unit_out};
        const int rc = at_forward(c->be, &fa);
        free(zero);
        if (rc) return AT_ERR;
        const int upto = opt->gates ? s + nb : n;
        for (int i = s; i < upto; i++) {
            const int b = opt->gates ? i - s : 0;
            c->r[i].baseline_value = opt->unit ? at_unit_value(m, opt->unit, c->unit_out + uo * b)
                                               : c->logits[(long)b * m->n_classes + c->r[i].cls];
            c->r[i].forwards++;
        }
        if (!opt->gates) break;
    }
    return AT_OK;
}

/* sigma_b = sigma * (max - min) of image b's input (PAIR's SmoothGrad). */
static void noise_scales(const grad_ctx *c, const float *inputs, int n, float sigma, float *sd) {
    for (int b = 0; b < n; b++) {
        const float *x = inputs + c->in * b;
        float lo = x[0], hi = x[0];
        for (long i = 1; i < c->in; i++) lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
        sd[b] = sigma * (hi - lo);
    }
}

/* Integrated gradients of every image at inputs xj into E (+= scale * E,
 * or stored with scale 0). */
static int integrated(grad_ctx *c, const float *xj, int n, const float *xb, float *G, float *acc, float scale,
                      int square) {
    const at_explain_options *opt = c->opt;
    const int S = opt->ig_steps ? opt->ig_steps : AT_IG_STEPS_DEFAULT;
    double *alpha = malloc(sizeof(double) * S), *w = malloc(sizeof(double) * S);
    int rc = !alpha || !w ? at_fail("integrated-gradients", "out of memory") : at_ig_nodes(opt->ig_rule, S, alpha, w);
    memset(G, 0, sizeof(float) * c->in * n);
    const long items = (long)n * S;
    for (long t0 = 0; rc == AT_OK && t0 < items; t0 += c->batch) {
        const int nb = items - t0 < c->batch ? (int)(items - t0) : c->batch;
        for (int b = 0; b < nb; b++) {
            const long t = t0 + b;
            const int img = (int)(t / S), k = (int)(t % S);
            const float a = (float)alpha[k], *x = xj + c->in * img;
            float *xi = c->x + c->in * b;
            for (long i = 0; i < c->in; i++) xi[i] = xb[i] + a * (x[i] - xb[i]);
            c->img[b] = img, c->cls[b] = c->r[img].cls;
        }
        if ((rc = run_items(c, nb, c->x, -1))) break;
        for (int b = 0; b < nb; b++) {
            const long t = t0 + b;
            const float wk = (float)w[t % S], *g = c->g + c->in * b;
            float *Gi = G + c->in * (t / S);
            for (long i = 0; i < c->in; i++) Gi[i] += wk * g[i];
        }
    }
    for (int b = 0; rc == AT_OK && b < n; b++) {
        const float *x = xj + c->in * b, *Gi = G + c->in * b;
        float *Ai = acc + c->in * b;
        double sum = 0;
        for (long i = 0; i < c->in; i++) {
            float e = (x[i] - xb[i]) * Gi[i];
            sum += e;
            if (square) e *= e;
            Ai[i] = scale ? Ai[i] + scale * e : e;
        }
        if (!scale) c->r[b].attribution_sum = sum;
    }
    free(alpha), free(w);
    return rc;
}

static int alloc_ctx(grad_ctx *c, int n, long items) {
    const at_model *m = c->m;
    const at_explain_options *opt = c->opt;
    c->batch = at_max_batch(c->be, 1);
    if (c->batch > items) c->batch = (int)items;
    if (opt->unit) {
        const long uo = at_layer_out_size(&m->layers[opt->unit->layer]);
        const long fit = UNIT_CAPTURE_FLOATS / uo;
        if (c->batch > fit) c->batch = fit > 0 ? (int)fit : 1;
    }
    if (c->batch < 1) c->batch = 1;
    const long bt = c->batch;
    const int nmax = bt > n ? (int)bt : n;
    c->x = malloc(sizeof(float) * bt * c->in);
    c->g = malloc(sizeof(float) * bt * c->in);
    c->logits = malloc(sizeof(float) * nmax * m->n_classes);
    c->start = malloc(sizeof(float) * bt * at_explain_start_floats(m, opt));
    c->cls = malloc(sizeof(int) * bt);
    c->img = malloc(sizeof(int) * bt);
    c->gates = opt->gates ? malloc(sizeof(float) * bt * m->n_gates) : NULL;
    c->unit_out = opt->unit ? malloc(sizeof(float) * bt * at_layer_out_size(&m->layers[opt->unit->layer])) : NULL;
    int ok = c->x && c->g && c->logits && c->start && c->cls && c->img && (!opt->gates || c->gates) &&
             (!opt->unit || c->unit_out);
    if (c->cam_layer >= 0) {
        const at_layer *L = &m->layers[c->cam_layer];
        c->cam_size = at_layer_out_size(L);
        c->cam_a = malloc(sizeof(float) * bt * c->cam_size);
        c->cam_g = malloc(sizeof(float) * bt * c->cam_size);
        c->cam = malloc(sizeof(float) * L->out_h * L->out_w);
        c->up = malloc(sizeof(float) * bt * c->hw);
        ok = ok && c->cam_a && c->cam_g && c->cam && c->up;
    }
    return ok ? AT_OK : at_fail(at_method_name(opt->method), "out of memory");
}

static void free_ctx(grad_ctx *c) {
    free(c->x), free(c->g), free(c->logits), free(c->start), free(c->cls), free(c->img), free(c->gates);
    free(c->unit_out), free(c->cam_a), free(c->cam_g), free(c->cam), free(c->up);
}

int at_gradients(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    grad_ctx c = {.be = be, .m = m, .opt = opt, .r = r, .cam_layer = -1};
    c.hw = (long)m->in_h * m->in_w, c.in = m->in_c * c.hw;
    if (opt->method == AT_METHOD_GUIDED_GRADCAM) c.cam_layer = opt->layer;
    const int ig = opt->method == AT_METHOD_INTEGRATED_GRADIENTS;
    const int K = opt->smooth ? opt->smooth : opt->method == AT_METHOD_SMOOTHGRAD ? AT_SG_SAMPLES_DEFAULT : 0;
    const int S = ig ? (opt->ig_steps ? opt->ig_steps : AT_IG_STEPS_DEFAULT) : 1;
    const float sigma = opt->sg_sigma > 0 ? opt->sg_sigma : AT_SG_SIGMA_DEFAULT;
    float *acc = malloc(sizeof(float) * c.in * n), *xj = NULL, *G = NULL, *xb = NULL, *noise = NULL, *sd = NULL;
    int rc = acc ? alloc_ctx(&c, n, (long)n * (ig ? S : K ? K : 1)) : at_fail(at_method_name(opt->method), "out of memory");
    if (rc == AT_OK && (K || ig)) {
        /* noise sample j is deviates j*in.. of one stream, shared by the images
         * and scaled by each one's range: a map never depends on its batch */
        noise = K ? malloc(sizeof(float) * c.in * K) : NULL;
        sd = K ? malloc(sizeof(float) * n) : NULL;
        xj = K && ig ? malloc(sizeof(float) * c.in * n) : NULL;
        G = ig ? malloc(sizeof(float) * c.in * n) : NULL;
        xb = ig ? malloc(sizeof(float) * c.in) : NULL;
        if ((K && (!noise || !sd)) || (ig && (!G || !xb || (K && !xj))))
            rc = at_fail(at_method_name(opt->method), "out of memory");
        if (rc == AT_OK) { /* counter-based draws: the samples are independent, so the threads share them */
#pragma omp parallel for schedule(static) if (K > 1)
            for (int j = 0; j < K; j++) at_prng_normal("smoothgrad", opt->sg_seed, (long)j * c.in, noise + c.in * j, c.in);
        }
        if (K) noise_scales(&c, inputs, n, sigma, sd);
    }
    if (rc) goto done;
    if (!K && !ig) { /* one pass: the forward that classifies is the one kept for the backward */
        for (int s = 0; s < n && rc == AT_OK; s += c.batch) {
            const int nb = n - s < c.batch ? n - s : c.batch;
            for (int b = 0; b < nb; b++) c.img[b] = s + b;
            if ((rc = run_items(&c, nb, inputs + c.in * s, s))) break;
            for (int b = 0; b < nb; b++) add_attribution(&c, b, inputs + c.in * (s + b), acc + c.in * (s + b), 0, 0);
        }
    } else if (!ig) { /* items (image, sample) in batches across both */
        if ((rc = classify_images(&c, inputs, n, NULL))) goto done;
        memset(acc, 0, sizeof(float) * c.in * n);
        const long items = (long)n * K;
        for (long t0 = 0; t0 < items && rc == AT_OK; t0 += c.batch) {
            const int nb = items - t0 < c.batch ? (int)(items - t0) : c.batch;
            for (int b = 0; b < nb; b++) {
                const int img = (int)((t0 + b) / K), j = (int)((t0 + b) % K);
                const float *x = inputs + c.in * img, *zj = noise + c.in * j;
                float *xi = c.x + c.in * b;
                for (long i = 0; i < c.in; i++) xi[i] = x[i] + sd[img] * zj[i];
                c.img[b] = img, c.cls[b] = r[img].cls;
            }
            if ((rc = run_items(&c, nb, c.x, -1))) break;
            for (int b = 0; b < nb; b++)
                add_attribution(&c, b, c.x + c.in * b, acc + c.in * c.img[b], 1.0f / K, opt->sg_square);
        }
    } else {
        baseline_input(m, opt->baseline, xb);
        if ((rc = classify_images(&c, inputs, n, xb))) goto done;
        if (K) memset(acc, 0, sizeof(float) * c.in * n);
        for (int j = 0; j < (K ? K : 1) && rc == AT_OK; j++) {
            for (int b = 0; K && b < n; b++)
                for (long i = 0; i < c.in; i++) xj[c.in * b + i] = inputs[c.in * b + i] + sd[b] * noise[c.in * j + i];
            rc = integrated(&c, K ? xj : inputs, n, xb, G, acc, K ? 1.0f / K : 0.0f, opt->sg_square);
        }
    }
    for (int b = 0; rc == AT_OK && b < n; b++) r[b].flat_map = reduce_map(m, opt->method, acc + c.in * b, r[b].map);
done:
    free_ctx(&c);
    free(acc), free(xj), free(G), free(xb), free(noise), free(sd);
    return rc;
}
