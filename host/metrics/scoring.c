/* Metrics that run the model (metrics/scoring.h). */
#include "metrics/scoring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/maps.h"
#include "metrics/metrics.h"

static int scorer_batch(const at_scorer *s) {
    int b = s->batch > 0 ? s->batch : at_max_batch(s->be, 0);
    return b > 128 ? 128 : b < 1 ? 1 : b;
}

/* rows != NULL: ready inputs; else x under masks in space. */
static int score(const at_scorer *s, const float *x, const float *masks, at_mask_space space, const float *rows,
                 int k, int cls, double *out) {
    const at_model *m = s->be->model;
    if (cls < 0 || cls >= m->n_classes) return at_fail("class", "%d is out of range 0..%d", cls, m->n_classes - 1);
    int batch = scorer_batch(s);
    long hw = (long)m->in_h * m->in_w, in_size = (long)m->in_c * hw;
    int *idx = calloc(batch, sizeof(int));
    float *logits = malloc(sizeof(float) * m->n_classes * batch), *probs = malloc(sizeof(float) * m->n_classes);
    int rc = idx && logits && probs ? AT_OK : at_fail("scoring", "out of memory");
    for (int s0 = 0; s0 < k && rc == AT_OK; s0 += batch) {
        int nb = k - s0 < batch ? k - s0 : batch;
        at_forward_args fa = {.n = nb, .input = rows ? rows + in_size * s0 : x, .input_index = rows ? NULL : idx,
                              .masks = masks ? masks + hw * s0 : NULL, .mask_h = m->in_h, .mask_w = m->in_w,
                              .mask_norm = AT_MASK_RAW, .mask_space = space, .gates = s->gates,
                              .gates_per_item = 0, .logits = logits};
        if ((rc = at_forward(s->be, &fa))) break;
        for (int j = 0; j < nb; j++) {
            const float *l = logits + (long)j * m->n_classes;
            if (s->logit) {
                out[s0 + j] = l[cls];
            } else {
                at_softmax_rows(l, 1, m->n_classes, probs);
                out[s0 + j] = probs[cls];
            }
        }
    }
    free(idx), free(logits), free(probs);
    return rc;
}

int at_score_masked(const at_scorer *s, const float *x, const float *masks, at_mask_space space, int k, int cls,
                    double *out) {
    return score(s, x, masks, space, NULL, k, cls, out);
}

int at_score_rows(const at_scorer *s, const float *rows, int k, int cls, double *out) {
    return score(s, NULL, NULL, AT_MASK_NORMALIZED, rows, k, cls, out);
}

int at_drop_terms(const at_scorer *s, const float *x, const float *map, const at_drop_options *o, int cls,
                  double *terms) {
    const at_model *m = s->be->model;
    long hw = (long)m->in_h * m->in_w;
    if (o->props && o->zero_lowest) return at_fail("zero-lowest", "soft masking and top-p exclude each other");
    int k = o->props ? o->n_props : o->zero_lowest ? o->n_zero_lowest : 1;
    if (k < 1) return at_fail(o->zero_lowest ? "zero-lowest" : "proportions", "none given");
    float *masks = malloc(sizeof(float) * hw * k);
    double *scores = malloc(sizeof(double) * (k + 1));
    int rc = masks && scores ? AT_OK : at_fail("scoring", "out of memory");
    for (int p = 0; rc == AT_OK && p < k; p++) {
        if (o->props) at_topp_mask(map, hw, o->props[p], masks + hw * p);
        else if (o->zero_lowest) rc = at_zero_lowest_mask(map, hw, o->zero_lowest[p], masks + hw * p);
        else memcpy(masks + hw * p, map, sizeof(float) * hw);
    }
    /* top-p keeps pixels and sets the rest to the mean colour: 0 after normalisation */
    at_mask_space space = o->props || o->space_normalized ? AT_MASK_NORMALIZED : AT_MASK_UNIT;
    if (rc == AT_OK) rc = at_score_rows(s, x, 1, cls, &scores[k]);
    if (rc == AT_OK) rc = at_score_masked(s, x, masks, space, k, cls, scores);
    for (int p = 0; rc == AT_OK && p < k; p++) {
        int skipped = 0;
        double ad = at_average_drop(&scores[k], &scores[p], 1, !o->absolute, &skipped);
        int skip = skipped || (s->logit && scores[k] <= 0); /* a logit's drop is meaningless either way */
        terms[2 * p] = skip ? NAN : ad;
        terms[2 * p + 1] = skip ? NAN : at_increase_confidence(&scores[k], &scores[p], 1);
    }
    free(masks), free(scores);
    return rc;
}

int at_deletion_auc(const at_scorer *s, const unsigned char *rgb, const float *map, int steps, int insertion,
                    int cls, double *auc, double *curve_out) {
    const at_model *m = s->be->model;
    if (steps < 1) return at_fail("steps", "%d is not a positive number of steps", steps);
    long hw = (long)m->in_h * m->in_w, in_size = (long)m->in_c * hw;
    int batch = scorer_batch(s);
    int *order = malloc(sizeof(int) * hw);
    float *blur = insertion ? malloc(sizeof(float) * in_size) : NULL;
    float *unit = malloc(sizeof(float) * in_size), *rows = malloc(sizeof(float) * in_size * batch);
    double *curve = curve_out ? curve_out : malloc(sizeof(double) * (steps + 1));
    int rc = order && unit && rows && curve && (!insertion || blur) ? AT_OK : at_fail("scoring", "out of memory");
    if (rc == AT_OK) {
        at_deletion_order(map, hw, order);
        for (int ch = 0; ch < m->in_c; ch++)
            for (long i = 0; i < hw; i++) unit[ch * hw + i] = rgb[i * 3 + ch] / 255.0f;
        if (blur) rc = at_gaussian_blur_chw(unit, m->in_c, m->in_h, m->in_w, 11, 5.0, blur);
    }
    for (int s0 = 0; rc == AT_OK && s0 <= steps; s0 += batch) {
        int nb = steps + 1 - s0 < batch ? steps + 1 - s0 : batch;
        for (int j = 0; j < nb; j++) {
            long count = (long)llround((double)(s0 + j) * hw / steps);
            float *row = rows + in_size * j;
            for (int ch = 0; ch < m->in_c; ch++) {
                const float *u = unit + ch * hw;
                float *r = row + ch * hw;
                for (long i = 0; i < hw; i++) r[i] = blur ? blur[ch * hw + i] : u[i];
                for (long q = 0; q < count; q++) r[order[q]] = blur ? u[order[q]] : 0.0f;
                for (long i = 0; i < hw; i++) r[i] = (r[i] - m->pre.mean[ch]) / m->pre.std[ch];
            }
        }
        rc = at_score_rows(s, rows, nb, cls, curve + s0);
    }
    if (rc == AT_OK) *auc = at_auc_trapezoid(curve, steps + 1);
    free(order), free(blur), free(unit), free(rows);
    if (curve != curve_out) free(curve);
    return rc;
}

double at_box_term(const float *map, int w, int h, const unsigned char *mask, long inside, int energy, double tol_px) {
    if (inside <= 0) return NAN;
    return energy ? at_energy_pointing(map, mask, (long)w * h) : 100.0 * at_pointing_hit(map, w, h, mask, tol_px);
}
