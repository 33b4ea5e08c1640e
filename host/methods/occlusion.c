/* Occlusion (docs/methods.md#occlusion; Zeiler & Fergus 2014, captum's
 * Occlusion): a square window slides over the image with a stride; a pixel's
 * attribution is the mean, over the windows covering it, of the score drop
 * f_c(x) - f_c(x with the window set to the baseline). One masked forward
 * per window position; the windows' masks serve every image of the call. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"

typedef struct {
    const at_explain_result *r;
    int score_logit;
    int h, w, win, stride, nx;
    double *acc; /* [n][h*w] sum of drops */
    float *cover; /* [h*w] windows covering each pixel (the same for every image) */
} occlusion_ctx;

static void window_box(const occlusion_ctx *c, long k, int *y0, int *y1, int *x0, int *x1) {
    *y0 = (int)(k / c->nx) * c->stride, *x0 = (int)(k % c->nx) * c->stride;
    *y1 = *y0 + c->win < c->h ? *y0 + c->win : c->h;
    *x1 = *x0 + c->win < c->w ? *x0 + c->win : c->w;
}

static const float *occlusion_fill(void *ctx, long first, int count, float *buf) {
    occlusion_ctx *c = ctx;
    long hw = (long)c->h * c->w;
    for (int j = 0; j < count; j++) {
        float *mk = buf + j * hw;
        for (long i = 0; i < hw; i++) mk[i] = 1.0f;
        int y0, y1, x0, x1;
        window_box(c, first + j, &y0, &y1, &x0, &x1);
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) mk[(long)y * c->w + x] = 0.0f;
    }
    return buf;
}

static void occlusion_accumulate(void *ctx, int b, const float *masks, int count, const float *scores) {
    occlusion_ctx *c = ctx;
    long hw = (long)c->h * c->w;
    double base = c->score_logit ? c->r[b].logit : c->r[b].prob, *acc = c->acc + b * hw;
    for (int j = 0; j < count; j++) {
        const float *mk = masks + j * hw;
        double drop = base - scores[j];
        for (long i = 0; i < hw; i++)
            if (mk[i] == 0.0f) acc[i] += drop, c->cover[i] += b == 0;
    }
}

int at_occlusion(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    at_perturb_options def;
    const at_perturb_options *po = at_perturb_of(opt, &def);
    if (at_perturb_check(m, po)) return AT_ERR;
    occlusion_ctx c = {.r = r, .score_logit = po->score_logit, .h = m->in_h, .w = m->in_w};
    long hw = (long)m->in_h * m->in_w;
    int ny;
    at_occlusion_geometry(m, po, &c.win, &c.stride, &ny, &c.nx);
    c.acc = calloc((size_t)n * hw, sizeof(double));
    c.cover = calloc(hw, sizeof(float));
    float *cam = malloc(sizeof(float) * hw);
    int rc = AT_OK;
    if (!c.acc || !c.cover || !cam) {
        rc = at_fail("occlusion", "out of memory");
        goto done;
    }
    at_mask_space space = po->occ_baseline == AT_OCCLUSION_BLACK ? AT_MASK_UNIT : AT_MASK_NORMALIZED;
    if ((rc = at_masked_sweep(be, opt, inputs, n, r, (long)ny * c.nx, space, occlusion_fill, occlusion_accumulate,
                              &c)))
        goto done;
    for (int b = 0; b < n; b++) {
        /* a pixel no window covers (stride > window) has no drop: 0 */
        for (long i = 0; i < hw; i++) cam[i] = c.cover[i] > 0 ? (float)(c.acc[b * hw + i] / c.cover[i]) : 0.0f;
        at_finish_map(m, cam, m->in_h, m->in_w, &r[b]);
    }
done:
    free(c.acc), free(c.cover), free(cam);
    return rc;
}
