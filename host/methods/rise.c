/* RISE (docs/methods.md#rise; Petsiuk et al. BMVC 2018): the saliency of a
 * pixel is the score of the input under random smooth masks, averaged over
 * the masks weighted by the pixel's mask value, S = sum_i f_c(x o M_i) M_i / (N p).
 * N masked forwards per image; a chunk of masks serves every image of the call. */
#include <stdlib.h>

#include "core/error.h"
#include "methods/explain.h"

typedef struct {
    const at_perturb_options *po;
    int h, w;
    double *sal; /* [n][h*w] */
} rise_ctx;

static const float *rise_fill(void *ctx, long first, int count, float *buf) {
    rise_ctx *c = ctx;
    long hw = (long)c->h * c->w;
    if (c->po->rise_masks) return c->po->rise_masks + first * hw;
    at_rise_masks(c->h, c->w, c->po->rise_cells, c->po->rise_p, c->po->rise_seed, first, count, buf);
    return buf;
}

static void rise_accumulate(void *ctx, int b, const float *masks, int count, const float *scores) {
    rise_ctx *c = ctx;
    long hw = (long)c->h * c->w;
    double *s = c->sal + b * hw;
    for (int j = 0; j < count; j++) {
        const float *mk = masks + j * hw;
        double sc = scores[j];
        for (long i = 0; i < hw; i++) s[i] += sc * mk[i];
    }
}

int at_rise(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    at_perturb_options def;
    const at_perturb_options *po = at_perturb_of(opt, &def);
    if (at_perturb_check(m, po)) return AT_ERR;
    long hw = (long)m->in_h * m->in_w;
    rise_ctx c = {po, m->in_h, m->in_w, calloc((size_t)n * hw, sizeof(double))};
    float *cam = malloc(sizeof(float) * hw);
    int rc = AT_OK;
    if (!c.sal || !cam) {
        rc = at_fail("rise", "out of memory");
        goto done;
    }
    if ((rc = at_masked_sweep(be, opt, inputs, n, r, po->rise_n, AT_MASK_NORMALIZED, rise_fill, rise_accumulate, &c)))
        goto done;
    double norm = 1.0 / ((double)po->rise_n * po->rise_p);
    for (int b = 0; b < n; b++) {
        for (long i = 0; i < hw; i++) cam[i] = (float)(c.sal[b * hw + i] * norm);
        at_finish_map(m, cam, m->in_h, m->in_w, &r[b]);
    }
done:
    free(c.sal), free(cam);
    return rc;
}
