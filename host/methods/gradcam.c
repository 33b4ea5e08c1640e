/* Grad-CAM and Grad-CAM++ (docs/methods.md#grad-cam-and-grad-cam): one forward kept for backward and one
 * backward from the class logit to the layer, for the whole batch. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"

#define GRADCAMPP_EPS 1e-6 /* Chattopadhay et al. Eq. 19 as pytorch-grad-cam */

/* Channel weight of Grad-CAM (mean gradient) or Grad-CAM++ (closed form). */
static float channel_weight(at_method method, at_variant variant, const float *a, const float *g, long hw) {
    double w = 0;
    if (method == AT_METHOD_GRADCAM) {
        for (long i = 0; i < hw; i++) w += g[i];
        return (float)(w / hw);
    }
    /* Grad-CAM++: pgc multiplies the channel's activation sum by the pixel's
     * g^3; torchcam uses the channel constant sum(A * g^3) instead. */
    double sum_a = 0, sum_ag3 = 0;
    for (long i = 0; i < hw; i++) {
        sum_a += a[i];
        sum_ag3 += (double)a[i] * g[i] * g[i] * g[i];
    }
    for (long i = 0; i < hw; i++) {
        double gi = g[i];
        if (gi == 0) continue;
        double g2 = gi * gi, g3 = g2 * gi;
        double denom = 2 * g2 + (variant == AT_VARIANT_TORCHCAM ? sum_ag3 : sum_a * g3) + GRADCAMPP_EPS;
        double aij = g2 / denom;
        if (gi > 0) w += gi * aij;
    }
    return (float)w;
}

int at_gradcam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    const at_layer *L = &m->layers[opt->layer];
    int C = L->out_c, h = L->out_h, w = L->out_w;
    long hw = (long)h * w, in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 1);
    if (batch > n) batch = n;
    float *acts = malloc(sizeof(float) * batch * C * hw), *grads = malloc(sizeof(float) * batch * C * hw);
    float *logits = malloc(sizeof(float) * batch * m->n_classes), *dl = malloc(sizeof(float) * batch * m->n_classes);
    float *cam = malloc(sizeof(float) * hw), *weights = malloc(sizeof(float) * C);
    int rc = AT_OK;
    if (!acts || !grads || !logits || !dl || !cam || !weights) {
        rc = at_fail("gradcam", "out of memory");
        goto done;
    }
    for (int start = 0; start < n && rc == AT_OK; start += batch) {
        int nb = n - start < batch ? n - start : batch;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * start, .logits = logits,
                              .gates = opt->gates ? opt->gates + (long)start * m->n_gates : NULL, .gates_per_item = 1,
                              .n_capture = 1, .capture_layer = &opt->layer, .capture_out = &acts,
                              .keep_for_backward = 1};
        if ((rc = at_forward(be, &fa))) break;
        at_explain_options sub = *opt;
        sub.classes = opt->classes ? opt->classes + start : NULL;
        if ((rc = at_explain_classify_logits(m, &sub, logits, nb, r + start))) break;
        memset(dl, 0, sizeof(float) * nb * m->n_classes);
        for (int b = 0; b < nb; b++) dl[(long)b * m->n_classes + r[start + b].cls] = 1.0f;
        at_backward_args ba = {.dlogits = dl, .grad_layer = opt->layer, .grad_layer_out = grads};
        if ((rc = at_backward(be, &ba))) break;
        for (int b = 0; b < nb; b++) {
            at_explain_result *res = &r[start + b];
            const float *A = acts + (long)b * C * hw, *G = grads + (long)b * C * hw;
            memset(cam, 0, sizeof(float) * hw);
            for (int l = 0; l < C; l++) {
                weights[l] = channel_weight(opt->method, opt->variant, A + l * hw, G + l * hw, hw);
                for (long i = 0; i < hw; i++) cam[i] += weights[l] * A[l * hw + i];
            }
            if (res->weights) memcpy(res->weights, weights, sizeof(float) * C);
            at_finish_map(m, cam, h, w, res);
        }
    }
done:
    free(acts), free(grads), free(logits), free(dl), free(cam), free(weights);
    return rc;
}
