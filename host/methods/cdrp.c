/* CDRP / Score-CDRP gate optimisation (docs/methods.md#algorithm-1-optimising-the-gates), batched
 * across images, and the CIC scores Score-CDRP weights its L1 term with. */
#include "methods/cdrp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods/maps.h"
#include "core/error.h"

#define SPARSE_GATE 1e-3f /* a gate below this counts as pruned in the sparsity report */

int at_cdrp_preset(const char *name, int score_weighted, at_cdrp_options *o) {
    memset(o, 0, sizeof *o);
    o->score_weighted = score_weighted;
    o->target = AT_TARGET_SOFT;
    o->l1 = AT_L1_SUM;
    o->alpha_weight = AT_ALPHA_PLAIN;
    o->keep = AT_KEEP_BEST;
    if (!strcmp(name, "zhu2024")) { /* the paper, after Khakzar et al. CVPR 2021 */
        o->lr = 0.01f, o->momentum = 0.9f, o->gamma = 0.01f, o->clamp_max = 10.0f, o->iterations = 100;
    } else if (!strcmp(name, "wang2018")) { /* frankwang345/cdrp-detect */
        o->lr = 0.1f, o->momentum = 0.9f, o->gamma = 0.05f, o->clamp_max = 5.0f, o->iterations = 30;
    } else {
        return at_fail("CDRP preset", "'%s' is not zhu2024 or wang2018", name);
    }
    return AT_OK;
}

float at_gate_sparsity(const at_model *m, const float *gates, int k) {
    const at_layer *l = &m->layers[m->gate_layer[k]];
    int zeros = 0;
    for (int i = 0; i < l->out_c; i++) zeros += gates[l->gate_offset + i] < SPARSE_GATE;
    return (float)zeros / l->out_c;
}

/* Scores of one image's channels of one layer; flat ones take zero_score. */
static int cic_layer(at_backend *be, const at_precision *prec, const float *input, const float *acts,
                     const at_layer *l, int cls, float *alpha, float *masks, float *logits, float *probs, int *chan,
                     const int *idx, int batch, float *zero_score, long *forwards) {
    const at_model *m = be->model;
    long hw = (long)l->out_h * l->out_w;
    int c = 0;
    while (c < l->out_c) {
        int nb = 0;
        for (; c < l->out_c && nb < batch; c++) {
            const float *a = acts + (long)c * hw;
            float lo = a[0], hi = a[0];
            for (long i = 1; i < hw; i++) lo = a[i] < lo ? a[i] : lo, hi = a[i] > hi ? a[i] : hi;
            if (!(hi > lo)) { /* docs/methods.md#score-cdrp: a flat channel scores X o 0, computed once per image */
                if (isnan(*zero_score)) {
                    float zero_mask = 0;
                    at_forward_args za = {.n = 1, .input = input, .masks = &zero_mask, .mask_h = 1, .mask_w = 1,
                                          .mask_space = AT_MASK_NORMALIZED, .logits = logits, .precision = prec};
                    if (at_forward(be, &za)) return AT_ERR;
                    *forwards += 1;
                    at_softmax_rows(logits, 1, m->n_classes, probs);
                    *zero_score = probs[cls];
                }
                alpha[c] = *zero_score;
                continue;
            }
            memcpy(masks + hw * nb, a, sizeof(float) * hw);
            chan[nb++] = c;
        }
        if (!nb) continue;
        at_forward_args fa = {.n = nb, .input = input, .input_index = idx, .masks = masks, .mask_h = l->out_h,
                              .mask_w = l->out_w, .mask_norm = AT_MASK_MINMAX_AFTER,
                              .mask_space = AT_MASK_NORMALIZED, .logits = logits, .precision = prec};
        if (at_forward(be, &fa)) return AT_ERR;
        *forwards += nb;
        for (int j = 0; j < nb; j++) {
            at_softmax_rows(logits + (long)j * m->n_classes, 1, m->n_classes, probs);
            alpha[chan[j]] = probs[cls];
        }
    }
    return AT_OK;
}

/* Progress of one at_cdrp call, in forward-equivalents (a gate backward ~ 1 forward). */
typedef struct {
    const at_cdrp_options *o;
    double done, total;
} cdrp_progress;

static void progress_add(cdrp_progress *p, double work) {
    if (!p || !p->o || !p->o->on_progress) return;
    p->done += work;
    p->o->on_progress(p->o->progress_ctx, p->total > 0 ? p->done / p->total : 0);
}

static int cic_scores(at_backend *be, const float *inputs, int n, const int *cls, const at_precision *precision,
                      float *alpha, long *forwards, cdrp_progress *progress);

int at_cic_scores(at_backend *be, const float *inputs, int n, const int *cls, const at_precision *precision,
                  float *alpha, long *forwards) {
    return cic_scores(be, inputs, n, cls, precision, alpha, forwards, NULL);
}

static int cic_scores(at_backend *be, const float *inputs, int n, const int *cls, const at_precision *precision,
                      float *alpha, long *forwards, cdrp_progress *progress) {
    const at_model *m = be->model;
    long in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 0);
    long acts_total = 0, max_hw = 0;
    for (int k = 0; k < m->n_convs; k++) {
        const at_layer *l = &m->layers[m->gate_layer[k]];
        acts_total += at_layer_out_size(l);
        if ((long)l->out_h * l->out_w > max_hw) max_hw = (long)l->out_h * l->out_w;
    }
    float *acts = malloc(sizeof(float) * acts_total), *masks = malloc(sizeof(float) * max_hw * batch);
    float *logits = malloc(sizeof(float) * m->n_classes * batch), *probs = malloc(sizeof(float) * m->n_classes);
    float **cap = malloc(sizeof(float *) * m->n_convs);
    int *chan = malloc(sizeof(int) * batch), *idx = calloc(batch, sizeof(int));
    int rc = AT_OK;
    if (!acts || !masks || !logits || !probs || !cap || !chan || !idx) {
        rc = at_fail("score-cdrp", "out of memory for the CIC pass");
        goto done;
    }
    long off = 0;
    for (int k = 0; k < m->n_convs; k++) {
        cap[k] = acts + off;
        off += at_layer_out_size(&m->layers[m->gate_layer[k]]);
    }
    for (int b = 0; b < n && rc == AT_OK; b++) {
        const float *x = inputs + in_size * b;
        /* one unmasked forward captures every conv layer's activations */
        at_forward_args fa = {.n = 1, .input = x, .logits = logits, .n_capture = m->n_convs,
                              .capture_layer = m->gate_layer, .capture_out = cap, .precision = precision};
        if ((rc = at_forward(be, &fa))) break;
        if (forwards) forwards[b] += 1;
        progress_add(progress, 1);
        float zero_score = NAN;
        long fw = 0;
        for (int k = 0; k < m->n_convs && rc == AT_OK; k++) {
            const at_layer *l = &m->layers[m->gate_layer[k]];
            rc = cic_layer(be, precision, x, cap[k], l, cls[b], alpha + (long)b * m->n_gates + l->gate_offset, masks, logits,
                           probs, chan, idx, batch, &zero_score, &fw);
            progress_add(progress, l->out_c);
        }
        if (forwards) forwards[b] += fw;
    }
done:
    free(acts), free(masks), free(logits), free(probs), free(cap), free(chan), free(idx);
    return rc;
}

/* Cross-entropy against the target and its gradient w.r.t. the logits
 * (q - target), in double. */
static double cross_entropy(const float *logits, const float *p0, int cls, int K, at_cdrp_target t, float *q,
                            float *dlogits) {
    double mx = logits[0];
    for (int k = 1; k < K; k++) mx = logits[k] > mx ? logits[k] : mx;
    double z = 0;
    for (int k = 0; k < K; k++) z += exp(logits[k] - mx);
    double lse = mx + log(z), loss = 0;
    for (int k = 0; k < K; k++) {
        double logq = logits[k] - lse;
        q[k] = (float)exp(logq);
        double target = t == AT_TARGET_SOFT ? p0[k] : (k == cls);
        loss -= target * logq;
        if (dlogits) dlogits[k] = (float)(exp(logq) - target);
    }
    return loss;
}

int at_cdrp(at_backend *be, const at_cdrp_options *o, const float *inputs, int n, at_cdrp_result *r) {
    const at_model *m = be->model;
    int G = m->n_gates, K = m->n_classes;
    long NG = (long)n * G;
    float *lam = malloc(sizeof(float) * NG), *buf = calloc(NG, sizeof(float)), *grad = malloc(sizeof(float) * NG),
          *weight = malloc(sizeof(float) * NG), *logits = malloc(sizeof(float) * n * K),
          *p0 = malloc(sizeof(float) * n * K), *q = malloc(sizeof(float) * K), *dl = malloc(sizeof(float) * n * K),
          *alpha = NULL;
    double *minimum = malloc(sizeof(double) * n), *initial = malloc(sizeof(double) * n);
    int *cls = malloc(sizeof(int) * n);
    long *fw = calloc(n, sizeof(long));
    int rc = AT_OK;
    if (!lam || !buf || !grad || !weight || !logits || !p0 || !q || !dl || !minimum || !initial || !cls || !fw) {
        rc = at_fail("cdrp", "out of memory for %d images' gates", n);
        goto done;
    }
    int cic = o->score_weighted && o->alpha_weight != AT_ALPHA_NONE;
    /* step 1's forward, the CIC pass (one unmasked + one per channel), T+1 forwards and T backwards */
    cdrp_progress progress = {o, 0, (double)n * (1 + (cic ? G + 1 : 0) + 2.0 * o->iterations + 1)};
    /* step 1: the original prediction */
    at_forward_args fa = {.n = n, .input = inputs, .logits = logits};
    if ((rc = at_forward(be, &fa))) goto done;
    for (int b = 0; b < n; b++) {
        at_softmax_rows(logits + (long)b * K, 1, K, p0 + (long)b * K);
        cls[b] = at_argmax(logits + (long)b * K, K);
        r[b].cls = cls[b];
        r[b].orig_prob = p0[(long)b * K + cls[b]];
        fw[b] = 1;
    }
    progress_add(&progress, n);
    /* step 2: the L1 weights (CIC scores for Score-CDRP) */
    for (long i = 0; i < NG; i++) weight[i] = 1.0f;
    if (cic) {
        alpha = malloc(sizeof(float) * NG);
        if (!alpha) {
            rc = at_fail("score-cdrp", "out of memory");
            goto done;
        }
        if ((rc = cic_scores(be, inputs, n, cls, o->cic_precision_set ? &o->cic_precision : NULL, alpha, fw,
                             &progress)))
            goto done;
        for (long i = 0; i < NG; i++) weight[i] = o->alpha_weight == AT_ALPHA_INVERSE ? 1.0f - alpha[i] : alpha[i];
        for (int b = 0; b < n; b++)
            if (r[b].alpha) memcpy(r[b].alpha, alpha + (long)b * G, sizeof(float) * G);
    }
    float reg = o->l1 == AT_L1_MEAN ? o->gamma / G : o->gamma;
    /* steps 3-4: SGD with momentum on the gates, keeping the best class-preserving Λ */
    for (long i = 0; i < NG; i++) lam[i] = 1.0f;
    for (int t = 0; t <= o->iterations; t++) {
        if (t > 0) {
            at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_gates = grad};
            if ((rc = at_backward(be, &ba))) goto done;
            for (long i = 0; i < NG; i++) {
                float g = grad[i] + reg * weight[i] * (lam[i] > 0 ? 1.0f : 0.0f); /* d|λ|/dλ, 0 at 0 as torch */
                buf[i] = t == 1 ? g : o->momentum * buf[i] + g;
                float v = lam[i] - o->lr * buf[i];
                lam[i] = v < 0 ? 0 : v > o->clamp_max ? o->clamp_max : v;
            }
        }
        at_forward_args ga = {.n = n, .input = inputs, .gates = lam, .gates_per_item = 1, .logits = logits,
                              .keep_for_backward = t < o->iterations};
        if ((rc = at_forward(be, &ga))) goto done;
        progress_add(&progress, (t > 0 ? 2.0 : 1.0) * n);
        for (int b = 0; b < n; b++) {
            const float *l = logits + (long)b * K;
            double ce = cross_entropy(l, p0 + (long)b * K, cls[b], K, o->target, q, dl + (long)b * K);
            double l1 = 0;
            for (int i = 0; i < G; i++) l1 += (double)weight[(long)b * G + i] * fabsf(lam[(long)b * G + i]);
            double loss = ce + reg * l1;
            int j = at_argmax(l, K);
            fw[b]++;
            if (r[b].losses) r[b].losses[t] = (float)loss;
            int take;
            if (t == 0) {
                initial[b] = minimum[b] = loss;
                take = 1;
            } else if (o->keep == AT_KEEP_BEST) {
                take = j == cls[b] && loss <= minimum[b];
            } else { /* the seed's literal listing: minimum stays the initial loss */
                take = j == cls[b] && loss <= initial[b];
            }
            if (!take) continue;
            if (o->keep == AT_KEEP_BEST) minimum[b] = loss;
            memcpy(r[b].gates, lam + (long)b * G, sizeof(float) * G);
            r[b].kept_iteration = t;
            r[b].final_loss = (float)loss;
            r[b].path_cls = j;
            r[b].path_prob = q[cls[b]];
        }
    }
    for (int b = 0; b < n; b++) {
        r[b].initial_loss = (float)initial[b];
        r[b].forwards = fw[b];
    }
done:
    free(lam), free(buf), free(grad), free(weight), free(logits), free(p0), free(q), free(dl), free(alpha);
    free(minimum), free(initial), free(cls), free(fw);
    return rc;
}

typedef struct {
    float v;
    int i;
} ranked_gate;

static int cmp_gate(const void *a, const void *b) {
    const ranked_gate *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i - y->i; /* ties by index: gates clamped to 0 go first in order */
}

static int prune_range(const float *gates, int from, int count, double rate, int keep_values, float *out) {
    ranked_gate *rk = malloc(sizeof *rk * count);
    if (!rk) return at_fail("pathway-grad", "out of memory");
    for (int i = 0; i < count; i++) rk[i] = (ranked_gate){gates[from + i], from + i};
    qsort(rk, count, sizeof *rk, cmp_gate);
    int cut = (int)floor(rate * count + 1e-9); /* floor(rate*C); the epsilon absorbs 0.29*100 = 28.999... */
    for (int j = 0; j < count; j++) out[rk[j].i] = j < cut ? 0.0f : keep_values ? gates[rk[j].i] : 1.0f;
    free(rk);
    return AT_OK;
}

int at_prune_gates(const at_model *m, const float *gates, double rate, int global, int keep_values, float *out) {
    if (!(rate >= 0 && rate <= 1)) return at_fail("prune rate", "prune rate %g is outside [0, 1]", rate);
    if (global) return prune_range(gates, 0, m->n_gates, rate, keep_values, out);
    for (int k = 0; k < m->n_convs; k++) {
        const at_layer *l = &m->layers[m->gate_layer[k]];
        if (prune_range(gates, l->gate_offset, l->out_c, rate, keep_values, out)) return AT_ERR;
    }
    return AT_OK;
}
