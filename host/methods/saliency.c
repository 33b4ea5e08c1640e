/* Gradient saliency (docs/methods.md#gradient-saliency): vanilla
 * max_c |dy/dx| and Pope et al.'s (CVPR 2019) contrastive map
 * || ReLU(dy/dx) ||_2 over colour channels; guided backprop and deconvnet
 * (docs/methods.md#guided-backprop-and-deconvnet), max_c |g_x| of a
 * backward under their ReLU rules. One backward to the input for the whole
 * batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/maps.h"
#include "methods/explain.h"

int at_saliency(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    long hw = (long)m->in_h * m->in_w, in_size = m->in_c * hw;
    int batch = at_max_batch(be, 1);
    if (batch > n) batch = n;
    float *logits = malloc(sizeof(float) * batch * m->n_classes), *dl = malloc(sizeof(float) * batch * m->n_classes);
    float *gin = malloc(sizeof(float) * batch * in_size);
    int rc = AT_OK;
    if (!logits || !dl || !gin) {
        rc = at_fail("saliency", "out of memory");
        goto done;
    }
    for (int start = 0; start < n && rc == AT_OK; start += batch) {
        int nb = n - start < batch ? n - start : batch;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * start, .logits = logits,
                              .keep_for_backward = 1};
        if ((rc = at_explain_forward_batch(be, opt, &fa, start, r))) break;
        at_explain_one_hot(r + start, nb, m->n_classes, dl);
        at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = gin};
        if (opt->method == AT_METHOD_GUIDED_BACKPROP) ba.rules.relu = AT_RELU_GUIDED;
        if (opt->method == AT_METHOD_DECONVNET) ba.rules.relu = AT_RELU_DECONVNET;
        if ((rc = at_backward(be, &ba))) break;
        for (int b = 0; b < nb; b++) {
            const float *g = gin + in_size * b;
            float *map = r[start + b].map;
            for (long i = 0; i < hw; i++) {
                float v = 0;
                if (opt->method != AT_METHOD_CONTRASTIVE) {
                    for (int c = 0; c < m->in_c; c++) v = fmaxf(v, fabsf(g[c * hw + i]));
                } else {
                    double s = 0;
                    for (int c = 0; c < m->in_c; c++) {
                        double p = g[c * hw + i] > 0 ? g[c * hw + i] : 0;
                        s += p * p;
                    }
                    v = (float)sqrt(s);
                }
                map[i] = v;
            }
            r[start + b].flat_map = at_minmax_normalize(map, hw);
        }
    }
done:
    free(logits), free(dl), free(gin);
    return rc;
}
