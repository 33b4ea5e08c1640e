/* L-CAM-Img inference (docs/methods.md#l-cam; Gkartzonika et al., arXiv
 * 2209.11189): one forward that keeps the target layer's output A, the
 * module's 1x1 conv on the backend (at_extra_conv), then per image the
 * pre-sigmoid score map of its class, min-max at the layer's resolution and
 * the common final stage (upsampled, min-max). Batched across images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "methods/explain.h"
#include "methods/lcam.h"
#include "methods/maps.h"

void at_lcam_default_path(const at_model *m, char *buf, size_t cap) {
    const char *p = m->path, *suffix = ".safetensors";
    size_t n = strlen(p), sl = strlen(suffix);
    if (n >= sl && !strcmp(p + n - sl, suffix)) n -= sl;
    snprintf(buf, cap, "%.*s.lcam.safetensors", (int)n, p);
}

static int meta_int(const at_safetensors *st, const char *key) {
    const char *v = at_st_meta(st, key);
    char *end;
    long x = v ? strtol(v, &end, 10) : -1;
    return v && *v && !*end && x >= 0 && x < 1000000 ? (int)x : -1;
}

int at_lcam_load(const at_model *m, const char *path, at_lcam **out) {
    *out = NULL;
    at_safetensors st;
    if (at_st_open(&st, path)) return AT_ERR;
    int rc = AT_ERR;
    at_lcam *l = calloc(1, sizeof *l);
    if (!l) {
        at_fail(path, "out of memory");
        goto done;
    }
    snprintf(l->path, sizeof l->path, "%s", path);
    const char *sha = at_st_meta(&st, "model_sha256"), *layer = at_st_meta(&st, "layer");
    if (!sha || !layer) {
        at_fail(path, "not an L-CAM module: metadata model_sha256 and layer are required (tools/train_lcam.py writes them)");
        goto done;
    }
    if (strcmp(sha, m->sha256)) {
        const char *trained = at_st_meta(&st, "model");
        at_fail(path, "was trained for %s (SHA-256 %.12s...), not for %s (SHA-256 %.12s...); retrain it with "
                "tools/train_lcam.py", trained ? trained : "another model file", sha, m->path, m->sha256);
        goto done;
    }
    l->layer = at_model_find_layer(m, layer);
    if (l->layer < 0) {
        at_fail(path, "its layer %s is not a layer of %s", layer, m->path);
        goto done;
    }
    const at_layer *L = &m->layers[l->layer];
    snprintf(l->layer_name, sizeof l->layer_name, "%s", L->name);
    const at_st_tensor *w = at_st_find(&st, "weight"), *b = at_st_find(&st, "bias");
    l->K = L->out_c, l->n_classes = m->n_classes;
    const int w_ok = w && (w->ndim == 4 || w->ndim == 2) && w->shape[0] == m->n_classes && w->shape[1] == L->out_c &&
                     (w->ndim == 2 || (w->shape[2] == 1 && w->shape[3] == 1));
    if (!w_ok || !b || b->ndim != 1 || b->shape[0] != m->n_classes) {
        at_fail(path, "needs weight [%d][%d][1][1] and bias [%d] (%s's classes and %s's channels)", m->n_classes,
                L->out_c, m->n_classes, m->name, L->name);
        goto done;
    }
    if (L->out_h < 1 || L->out_w < 1 || (L->out_h < 2 && L->out_w < 2)) {
        at_fail(path, "its layer %s has a 1x1 output; L-CAM needs a spatial map", L->name);
        goto done;
    }
    l->weight = malloc(sizeof(float) * l->n_classes * l->K);
    l->bias = malloc(sizeof(float) * l->n_classes);
    if (!l->weight || !l->bias) {
        at_fail(path, "out of memory");
        goto done;
    }
    if (at_st_to_f32(&st, w, l->weight) || at_st_to_f32(&st, b, l->bias)) goto done;
    snprintf(l->model_sha256, sizeof l->model_sha256, "%s", sha);
    l->epochs = meta_int(&st, "epochs");
    l->seed = meta_int(&st, "seed");
    rc = AT_OK;
done:
    at_st_close(&st);
    if (rc) at_lcam_free(l);
    else *out = l;
    return rc;
}

void at_lcam_free(at_lcam *l) {
    if (!l) return;
    free(l->weight), free(l->bias), free(l);
}

int at_lcam_explain(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    const at_lcam *lc = opt->lcam;
    if (!lc) return at_fail("lcam", "no module: load one with at_lcam_load (explain --lcam FILE)");
    if (lc->layer < 0 || lc->layer >= m->n_layers || m->layers[lc->layer].out_c != lc->K || lc->n_classes != m->n_classes ||
        strcmp(lc->model_sha256, m->sha256))
        return at_fail(lc->path, "does not belong to %s", m->path);
    const at_layer *L = &m->layers[lc->layer];
    const int K = L->out_c, nc = m->n_classes, h = L->out_h, w = L->out_w;
    const long hw = (long)h * w, in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 0);
    if (batch > n) batch = n;
    float *acts = malloc(sizeof(float) * batch * K * hw), *scores = malloc(sizeof(float) * batch * nc * hw);
    float *logits = malloc(sizeof(float) * batch * nc), *cam = malloc(sizeof(float) * hw);
    int rc = acts && scores && logits && cam ? AT_OK : at_fail("lcam", "out of memory");
    for (int first = 0; first < n && rc == AT_OK; first += batch) {
        const int nb = n - first < batch ? n - first : batch;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * first, .logits = logits,
                              .n_capture = 1, .capture_layer = &lc->layer, .capture_out = &acts};
        if ((rc = at_explain_forward_batch(be, opt, &fa, first, r))) break;
        if ((rc = at_extra_conv(be, lc->weight, lc->bias, nc, K, 1, 0, acts, nb, h, w, scores))) break;
        for (int b = 0; b < nb; b++) {
            at_explain_result *res = &r[first + b];
            memcpy(cam, scores + ((long)b * nc + res->cls) * hw, sizeof(float) * hw);
            const int flat = at_minmax_normalize(cam, hw); /* the pre-sigmoid score, at the layer's resolution */
            at_finish_map(m, cam, h, w, res);
            res->flat_map |= flat;
        }
    }
    free(acts), free(scores), free(logits), free(cam);
    return rc;
}
