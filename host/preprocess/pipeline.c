#include "preprocess/pipeline.h"

#include <stdlib.h>

#include "methods/maps.h"
#include "core/error.h"

int at_load_input_rgb(const at_model *m, const char *path, float *chw, at_image *rgb, at_geometry *geo) {
    at_image img = {0}, out = {0};
    if (at_image_load(path, &img)) return AT_ERR;
    at_geometry g;
    int rc = at_preprocess_rgb8(&img, &m->pre, &out, &g);
    at_image_free(&img);
    if (rc) return at_fail_prefix(path);
    if (out.w != m->in_w || out.h != m->in_h) {
        at_image_free(&out);
        return at_fail(path, "preprocessing gives %dx%d but %s takes %dx%d (check the model's crop metadata)",
                       g.out_w, g.out_h, m->name, m->in_w, m->in_h);
    }
    at_normalize_rgb8(out.rgb, out.w, out.h, &m->pre, chw);
    if (rgb) *rgb = out;
    else at_image_free(&out);
    if (geo) *geo = g;
    return AT_OK;
}

int at_load_input(const at_model *m, const char *path, float *chw, at_geometry *geo) {
    return at_load_input_rgb(m, path, chw, NULL, geo);
}

int at_predict(at_backend *be, const float *inputs, int n, float *logits, float *probs) {
    const at_model *m = be->model;
    long in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 0);
    float *own = logits ? NULL : malloc(sizeof(float) * m->n_classes * n);
    float *out = logits ? logits : own;
    if (!out) return at_fail("predict", "out of memory");
    int rc = AT_OK;
    for (int start = 0; start < n && rc == AT_OK; start += batch) {
        int b = n - start < batch ? n - start : batch;
        at_forward_args fa = {.n = b, .input = inputs + in_size * start, .logits = out + (long)m->n_classes * start};
        rc = at_forward(be, &fa);
    }
    if (rc == AT_OK && probs) at_softmax_rows(out, n, m->n_classes, probs);
    free(own);
    return rc;
}

void at_topk(const float *probs, const float *logits, int n_classes, int k, at_ranked *out) {
    if (k > n_classes) k = n_classes;
    for (int j = 0; j < k; j++) out[j].cls = -1;
    for (int c = 0; c < n_classes; c++) {
        int pos = k;
        while (pos > 0 && (out[pos - 1].cls < 0 || probs[c] > out[pos - 1].prob)) pos--;
        if (pos >= k) continue;
        for (int j = k - 1; j > pos; j--) out[j] = out[j - 1];
        out[pos] = (at_ranked){c, probs[c], logits ? logits[c] : 0};
    }
}
