/* CDRP / Score-CDRP gate optimisation (docs/methods.md#algorithm-1-optimising-the-gates), batched
 * across images, and the CIC scores Score-CDRP weights its L1 term with. */
#include "methods/cdrp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "methods/channel_scores.h"
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
    long acts_total = 0;
    for (int k = 0; k < m->n_convs; k++) acts_total += at_layer_out_size(&m->layers[m->gate_layer[k]]);
    float *acts = malloc(sizeof(float) * acts_total), *logits = malloc(sizeof(float) * m->n_classes);
    float **cap = malloc(sizeof(float *) * m->n_convs);
    int rc = AT_OK;
    if (!acts || !logits || !cap) {
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
        /* docs/methods.md#score-cdrp: a flat channel scores X o 0, computed once per image */
        float zero_score = NAN;
        long fw = 0;
        at_channel_scoring cs = {.input = x, .precision = precision, .norm = AT_MASK_MINMAX_AFTER, .cls = cls[b]};
        for (int k = 0; k < m->n_convs && rc == AT_OK; k++) {
            const at_layer *l = &m->layers[m->gate_layer[k]];
            rc = at_channel_scores(be, &cs, cap[k], l->out_c, l->out_h, l->out_w, &zero_score,
                                   alpha + (long)b * m->n_gates + l->gate_offset, NULL, &fw);
            progress_add(progress, l->out_c);
        }
        if (forwards) forwards[b] += fw;
    }
done:
    free(acts), free(logits), free(cap);
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
