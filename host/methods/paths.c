/* Path Score-CAM and pathway gradients (methods/paths.h). */
#include "methods/paths.h"

#include <stdlib.h>

#include "core/error.h"
#include "methods/maps.h"

int at_path_scorecam(at_backend *be, const float *gates, const int *classes, const float *inputs, int n,
                     at_explain_result *r) {
    const at_model *m = be->model;
    at_explain_options ex = {.method = AT_METHOD_SCORECAM, .variant = AT_VARIANT_AUTHORS,
                             .layer = m->cam_layer, .classes = classes, .gates = gates};
    return at_explain(be, &ex, inputs, n, r);
}

int at_pathway_gradient(at_backend *be, const float *gates, const at_prune_options *prune, const int *classes,
                        const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    long G = m->n_gates;
    float *pruned = malloc(sizeof(float) * G * (n > 0 ? n : 1));
    if (!pruned) return at_fail("pathway gradient", "out of memory");
    int rc = AT_OK;
    for (int b = 0; b < n && rc == AT_OK; b++)
        rc = at_prune_gates(m, gates + G * b, prune->rate, prune->global, prune->keep_values, pruned + G * b);
    at_explain_options ex = {.method = AT_METHOD_SALIENCY, .variant = AT_VARIANT_AUTHORS, .layer = -1,
                             .classes = classes, .gates = pruned};
    if (rc == AT_OK) rc = at_explain(be, &ex, inputs, n, r);
    free(pruned);
    return rc;
}

int at_predicted_classes(at_backend *be, const float *inputs, int n, int *classes) {
    const at_model *m = be->model;
    float *logits = malloc(sizeof(float) * m->n_classes * (n > 0 ? n : 1));
    if (!logits) return at_fail("predict", "out of memory");
    at_forward_args fa = {.n = n, .input = inputs, .logits = logits};
    int rc = at_forward(be, &fa);
    for (int b = 0; rc == AT_OK && b < n; b++) classes[b] = at_argmax(logits + (long)m->n_classes * b, m->n_classes);
    free(logits);
    return rc;
}
