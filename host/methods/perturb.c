/* Settings of the perturbation methods and the RISE mask generator
 * (docs/methods.md#rise, #occlusion, #meaningful-perturbation). */
#include "methods/perturb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"
#include "methods/maps.h"
#include "model/random_model.h"

void at_perturb_defaults(at_perturb_options *o) {
    memset(o, 0, sizeof *o);
    o->rise_n = 4000, o->rise_cells = 7, o->rise_p = 0.5f, o->rise_seed = 0;
    o->occ_baseline = AT_OCCLUSION_MEAN;
    o->mp_iterations = 300, o->mp_mask = 28;
    o->mp_lr = 0.1f, o->mp_l1 = 1e-4f, o->mp_tv = 1e-2f, o->mp_beta = 3.0f;
}

int at_perturb_check(const at_model *m, const at_perturb_options *o) {
    if (o->rise_n < 1) return at_fail("RISE N", "%d masks: needs at least 1", o->rise_n);
    int side = m->in_h < m->in_w ? m->in_h : m->in_w;
    if (o->rise_cells < 1 || o->rise_cells > side || o->rise_cells > 64)
        return at_fail("RISE cells", "%d cells: needs 1..%d for a %dx%d input", o->rise_cells, side < 64 ? side : 64,
                       m->in_h, m->in_w);
    if (!(o->rise_p > 0 && o->rise_p <= 1)) return at_fail("RISE p", "%g is outside (0, 1]", o->rise_p);
    if (o->occ_window < 0 || o->occ_stride < 0) return at_fail("occlusion window", "window and stride must be positive");
    if (o->mp_iterations < 0) return at_fail("MP iterations", "%d: needs 0 or more", o->mp_iterations);
    if (o->mp_mask < 1 || o->mp_mask > m->in_h || o->mp_mask > m->in_w)
        return at_fail("MP mask", "%d: needs 1..%d for a %dx%d input", o->mp_mask,
                       m->in_h < m->in_w ? m->in_h : m->in_w, m->in_h, m->in_w);
    if (!(o->mp_lr > 0)) return at_fail("MP learning rate", "%g: needs a positive learning rate", o->mp_lr);
    if (!(o->mp_l1 >= 0) || !(o->mp_tv >= 0)) return at_fail("MP regulariser", "the regulariser weights must be >= 0");
    if (!(o->mp_beta >= 1)) return at_fail("MP beta", "%g: TV needs beta >= 1", o->mp_beta);
    if (!(o->mp_sigma >= 0)) return at_fail("MP sigma", "%g: needs a sigma >= 0", o->mp_sigma);
    return AT_OK;
}

/* skimage resize(order=1, mode='reflect'), the authors' upsampling: the
 * pixel-centre source coordinate, mirrored about the first and last sample. */
static void mirror_source(double src, int n, int *i0, int *i1, double *frac) {
    if (n == 1) {
        *i0 = *i1 = 0, *frac = 0;
        return;
    }
    if (src < 0) src = -src;
    if (src > n - 1) src = 2.0 * (n - 1) - src;
    int lo = (int)floor(src);
    if (lo > n - 2) lo = n - 2;
    *i0 = lo, *i1 = lo + 1, *frac = src - lo;
}

void at_rise_masks(int h, int w, int cells, float p, uint64_t seed, long first, int count, float *out) {
    int s = cells, cell_h = (h + s - 1) / s, cell_w = (w + s - 1) / s;
    int up_h = (s + 1) * cell_h, up_w = (s + 1) * cell_w;
    float draws[4096 + 2], grid[4096];
    int *x0 = malloc(sizeof(int) * 2 * w);
    double *fx = malloc(sizeof(double) * w);
    if (!x0 || !fx) { /* a few KB; without them, the same weights per pixel */
        free(x0), free(fx);
        x0 = NULL, fx = NULL;
    }
    for (int k = 0; k < count; k++) {
        char name[48];
        snprintf(name, sizeof name, "rise.%ld", first + k);
        /* s*s cells, then the row and column shift, all u in [0,1) */
        at_prng_fill(name, seed, draws, (long)s * s + 2, 0.5f, 0.5f);
        for (int i = 0; i < s * s; i++) grid[i] = draws[i] < p ? 1.0f : 0.0f;
        int dy = (int)floor((double)draws[s * s] * cell_h), dx = (int)floor((double)draws[s * s + 1] * cell_w);
        for (int x = 0; x < w && x0; x++) mirror_source((x + dx + 0.5) * s / up_w - 0.5, s, &x0[2 * x], &x0[2 * x + 1], &fx[x]);
        float *mk = out + (long)k * h * w;
        for (int y = 0; y < h; y++) {
            int y0, y1;
            double fy;
            mirror_source((y + dy + 0.5) * s / up_h - 0.5, s, &y0, &y1, &fy);
            for (int x = 0; x < w; x++) {
                int a0, a1;
                double f;
                if (x0) a0 = x0[2 * x], a1 = x0[2 * x + 1], f = fx[x];
                else mirror_source((x + dx + 0.5) * s / up_w - 0.5, s, &a0, &a1, &f);
                double top = (1 - f) * grid[y0 * s + a0] + f * grid[y0 * s + a1];
                double bot = (1 - f) * grid[y1 * s + a0] + f * grid[y1 * s + a1];
                mk[(long)y * w + x] = (float)((1 - fy) * top + fy * bot);
            }
        }
    }
    free(x0), free(fx);
}

static int scaled(int px224, int size) {
    int v = (int)lround((double)px224 * size / 224.0);
    return v < 1 ? 1 : v;
}

void at_occlusion_geometry(const at_model *m, const at_perturb_options *o, int *window, int *stride, int *ny,
                           int *nx) {
    int side = m->in_h < m->in_w ? m->in_h : m->in_w;
    int win = o->occ_window ? o->occ_window : scaled(15, side);
    int st = o->occ_stride ? o->occ_stride : scaled(8, side);
    if (win > side) win = side;
    *window = win, *stride = st;
    /* captum's count: 1 + ceil((size - window) / stride); the last windows
     * reach past the border and are cut there */
    *ny = 1 + (m->in_h - win + st - 1) / st;
    *nx = 1 + (m->in_w - win + st - 1) / st;
}

/* The CPU backend runs fastest at batches whose activations stay in its
 * caches (the mini model: ~2.9 ms/image at batch 8-32, 7.2 at 256, measured
 * with ./attrib bench --batch); a GPU wants the largest batch that fits. */
#define CPU_SWEEP_BATCH 16

const at_perturb_options *at_perturb_of(const at_explain_options *opt, at_perturb_options *store) {
    if (opt->perturb) return opt->perturb;
    at_perturb_defaults(store);
    return store;
}

int at_masked_sweep(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r,
                    long total, at_mask_space space, at_mask_fill fill, at_mask_accumulate accumulate, void *ctx) {
    const at_model *m = be->model;
    at_perturb_options def;
    const at_perturb_options *po = at_perturb_of(opt, &def);
    int K = m->n_classes;
    long hw = (long)m->in_h * m->in_w, in_size = m->in_c * hw;
    int fb = at_max_batch(be, 0);
    if (!strcmp(be->name, "cpu") && fb > CPU_SWEEP_BATCH) fb = CPU_SWEEP_BATCH;
    int batch = total < fb ? (int)total : fb, cls_rows = n < fb ? n : fb;
    int rows = batch > cls_rows ? batch : cls_rows;
    float *logits = malloc(sizeof(float) * rows * K), *probs = malloc(sizeof(float) * K);
    float *buf = malloc(sizeof(float) * batch * hw), *scores = malloc(sizeof(float) * batch);
    int *idx = calloc(batch, sizeof(int));
    int rc = AT_OK;
    if (!logits || !probs || !buf || !scores || !idx) {
        rc = at_fail(at_method_name(opt->method), "out of memory for %d masks of %dx%d", batch, m->in_h, m->in_w);
        goto done;
    }
    /* the unmasked forward: the class to explain and its score */
    for (int b0 = 0; b0 < n && rc == AT_OK; b0 += cls_rows) {
        int nb = n - b0 < cls_rows ? n - b0 : cls_rows;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * b0, .logits = logits,
                              .gates = opt->gates ? opt->gates + (long)b0 * m->n_gates : NULL, .gates_per_item = 1};
        at_explain_options sub = *opt;
        sub.classes = opt->classes ? opt->classes + b0 : NULL;
        if (!(rc = at_forward(be, &fa))) rc = at_explain_classify_logits(m, &sub, logits, nb, r + b0);
    }
    /* the masks of a chunk serve every image: generated once */
    for (long first = 0; first < total && rc == AT_OK; first += batch) {
        int count = total - first < batch ? (int)(total - first) : batch;
        const float *masks = fill(ctx, first, count, buf);
        for (int b = 0; b < n && rc == AT_OK; b++) {
            at_forward_args fa = {.n = count, .input = inputs + in_size * b, .input_index = idx, .masks = masks,
                                  .mask_h = m->in_h, .mask_w = m->in_w, .mask_norm = AT_MASK_RAW,
                                  .mask_space = space, .logits = logits,
                                  .gates = opt->gates ? opt->gates + (long)b * m->n_gates : NULL};
            if ((rc = at_forward(be, &fa))) break;
            for (int j = 0; j < count; j++) {
                const float *l = logits + (long)j * K;
                if (po->score_logit) {
                    scores[j] = l[r[b].cls];
                } else {
                    at_softmax_rows(l, 1, K, probs);
                    scores[j] = probs[r[b].cls];
                }
            }
            accumulate(ctx, b, masks, count, scores);
            r[b].forwards += count;
        }
        if (po->on_progress) po->on_progress(po->progress_ctx, (double)(first + count) / total);
    }
done:
    free(logits), free(probs), free(buf), free(scores), free(idx);
    return rc;
}
