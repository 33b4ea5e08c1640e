/* at_explain: one call for every map method, batched (host/methods/explain.h). */
#include "methods/explain.h"
#include "core/error.h"

int at_explain(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    if (at_explain_check_layer(m, opt->method, opt->layer)) return AT_ERR;
    for (int j = 0; opt->method == AT_METHOD_LAYERCAM && j < opt->n_layers; j++)
        if (at_explain_check_layer(m, opt->method, opt->layers[j])) return AT_ERR;
    if (at_explain_check_gradient_options(m, opt)) return AT_ERR;
    for (int b = 0; b < n; b++) {
        r[b].forwards = r[b].backwards = 0;
        r[b].value = r[b].baseline_value = 0;
        r[b].attribution_sum = 0;
        r[b].flat_channels = 0;
        r[b].flat_map = 0;
    }
    switch (opt->method) {
    case AT_METHOD_SCORECAM: return at_scorecam(be, opt, inputs, n, r);
    case AT_METHOD_GRADCAM:
    case AT_METHOD_GRADCAMPP:
    case AT_METHOD_LAYERCAM:
    case AT_METHOD_XGRADCAM:
    case AT_METHOD_HIRESCAM: return at_gradcam(be, opt, inputs, n, r);
    case AT_METHOD_ABLATIONCAM: return at_ablationcam(be, opt, inputs, n, r);
    case AT_METHOD_EIGENCAM: return at_eigencam(be, opt, inputs, n, r);
    case AT_METHOD_SALIENCY:
    case AT_METHOD_CONTRASTIVE:
    case AT_METHOD_GUIDED_BACKPROP:
    case AT_METHOD_DECONVNET:
    case AT_METHOD_GUIDED_GRADCAM:
    case AT_METHOD_INPUT_X_GRADIENT:
    case AT_METHOD_INTEGRATED_GRADIENTS:
    case AT_METHOD_SMOOTHGRAD: return at_gradients(be, opt, inputs, n, r);
    case AT_METHOD_EB:
    case AT_METHOD_CEB:
    case AT_METHOD_LRP:
    case AT_METHOD_CLRP:
    case AT_METHOD_FAFRP: return at_relevance(be, opt, inputs, n, r);
    case AT_METHOD_RISE: return at_rise(be, opt, inputs, n, r);
    case AT_METHOD_OCCLUSION: return at_occlusion(be, opt, inputs, n, r);
    case AT_METHOD_MEANINGFUL: return at_meaningful_perturbation(be, opt, inputs, n, r);
    case AT_METHOD_LCAM: return at_lcam_explain(be, opt, inputs, n, r);
    default: return at_fail("method", "unknown method %d", opt->method);
    }
}
