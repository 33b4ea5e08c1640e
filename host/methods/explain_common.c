/* What every explanation method shares: method and variant names, the class
 * to explain from the logits, the final map (docs/methods.md). */
#include "methods/explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/maps.h"

static const char *const method_names[AT_METHOD_COUNT] = {
    "scorecam",       "gradcam",          "gradcam++",            "saliency",   "contrastive", "guided-backprop",
    "deconvnet",      "guided-gradcam",   "input-x-gradient",     "integrated-gradients", "smoothgrad", "eb",
    "c-eb",           "lrp",              "clrp",                 "fafrp",      "layercam",    "xgradcam",
    "hirescam",       "ablation-cam",     "eigencam",             "rise",       "occlusion",   "meaningful-perturbation",
    "lcam"};
static const char *const variant_names[] = {"authors", "pgc", "torchcam"};

int at_method_parse(const char *name, at_method *out) {
    for (int i = 0; i < AT_METHOD_COUNT; i++)
        if (!strcmp(name, method_names[i])) {
            *out = (at_method)i;
            return AT_OK;
        }
    return at_fail("method", "'%s' is not one of %s", name, at_method_names());
}

const char *at_method_names(void) {
    static char list[512];
    if (!list[0])
        for (int i = 0; i < AT_METHOD_COUNT; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", method_names[i]);
    return list;
}

const char *at_method_name(at_method m) { return m < AT_METHOD_COUNT ? method_names[m] : "?"; }

int at_variant_parse(const char *name, at_variant *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, variant_names[i])) {
            *out = (at_variant)i;
            return AT_OK;
        }
    return at_fail("variant", "'%s' is not authors, pgc or torchcam", name);
}

const char *at_variant_name(at_variant v) { return (unsigned)v < 3 ? variant_names[v] : "?"; }

int at_method_uses_layer(at_method m) {
    return m == AT_METHOD_SCORECAM || m == AT_METHOD_GRADCAM || m == AT_METHOD_GRADCAMPP ||
           m == AT_METHOD_GUIDED_GRADCAM || (m >= AT_METHOD_LAYERCAM && m <= AT_METHOD_EIGENCAM);
}

int at_method_has_channel_weights(at_method m) {
    return m == AT_METHOD_SCORECAM || m == AT_METHOD_GRADCAM || m == AT_METHOD_GRADCAMPP || m == AT_METHOD_XGRADCAM ||
           m == AT_METHOD_ABLATIONCAM;
}

/* pgc and torchcam where the method's numbers differ, or where the peer
 * has the method and a user asks for its conventions by name
 * (docs/methods.md#conventions-where-papers-and-peers-disagree). */
int at_method_has_variant(at_method m, at_variant v) {
    if (v == AT_VARIANT_AUTHORS) return 1;
    switch (m) {
    case AT_METHOD_SCORECAM:
    case AT_METHOD_GRADCAMPP:
    case AT_METHOD_GRADCAM:
    case AT_METHOD_LAYERCAM:
    case AT_METHOD_XGRADCAM: return 1;
    case AT_METHOD_HIRESCAM:
    case AT_METHOD_ABLATIONCAM:
    case AT_METHOD_EIGENCAM: return v == AT_VARIANT_PGC;
    default: return 0;
    }
}

static int input_gradient_method(at_method m) {
    return m == AT_METHOD_SALIENCY || m == AT_METHOD_CONTRASTIVE || m == AT_METHOD_GUIDED_BACKPROP ||
           m == AT_METHOD_DECONVNET || m == AT_METHOD_INPUT_X_GRADIENT || m == AT_METHOD_INTEGRATED_GRADIENTS ||
           m == AT_METHOD_SMOOTHGRAD;
}

int at_method_takes_unit(at_method m) {
    return input_gradient_method(m) || m == AT_METHOD_EB || m == AT_METHOD_LRP || m == AT_METHOD_FAFRP;
}

int at_method_smoothable(at_method m) { return input_gradient_method(m) || m == AT_METHOD_GUIDED_GRADCAM; }

int at_explain_classify_logits(const at_model *m, const at_explain_options *opt, const float *logits, int n,
                               at_explain_result *r) {
    float *probs = malloc(sizeof(float) * m->n_classes);
    if (!probs) return at_fail("explain", "out of memory");
    for (int b = 0; b < n; b++) {
        const float *l = logits + (long)b * m->n_classes;
        at_softmax_rows(l, 1, m->n_classes, probs);
        int best = at_argmax(l, m->n_classes);
        int c = opt->classes && opt->classes[b] >= 0 ? opt->classes[b] : best;
        if (c >= m->n_classes) {
            free(probs);
            return at_fail("class", "%d is out of range 0..%d", c, m->n_classes - 1);
        }
        r[b].predicted = best;
        r[b].cls = c;
        r[b].prob = probs[c];
        r[b].logit = l[c];
        r[b].forwards += 1;
    }
    free(probs);
    return AT_OK;
}

void at_finish_map(const at_model *m, float *cam, int h, int w, at_explain_result *r) {
    at_relu_inplace(cam, (long)h * w);
    at_upsample_bilinear(cam, h, w, r->map, m->in_h, m->in_w, 0);
    r->flat_map = at_minmax_normalize(r->map, (long)m->in_h * m->in_w);
}

int at_explain_check_layer(const at_model *m, at_method method, int layer) {
    if (!at_method_uses_layer(method)) return AT_OK;
    if (layer < 0 || layer >= m->n_layers) return at_fail("layer", "layer index %d out of range", layer);
    const at_layer *l = &m->layers[layer];
    if (l->out_h < 2 && l->out_w < 2)
        return at_fail("layer", "%s has a 1x1 output; a CAM needs a spatial map (use a features.N layer)",
                       l->name);
    return AT_OK;
}


int at_explain_forward_batch(at_backend *be, const at_explain_options *opt, at_forward_args *fa, int start,
                             at_explain_result *r) {
    const at_model *m = be->model;
    fa->gates = opt->gates ? opt->gates + (long)start * m->n_gates : NULL;
    fa->gates_per_item = 1;
    if (at_forward(be, fa)) return AT_ERR;
    at_explain_options sub = *opt;
    sub.classes = opt->classes ? opt->classes + start : NULL;
    return at_explain_classify_logits(m, &sub, fa->logits, fa->n, r + start);
}

void at_explain_one_hot(const at_explain_result *r, int n, int K, float *dl) {
    memset(dl, 0, sizeof(float) * n * K);
    for (int b = 0; b < n; b++) dl[(long)b * K + r[b].cls] = 1.0f;
}

int at_explain_check_gradient_options(const at_model *m, const at_explain_options *opt) {
    const char *name = at_method_name(opt->method);
    if (opt->unit && !at_method_takes_unit(opt->method))
        return at_fail("unit", "%s explains a class; a unit is explained by saliency, contrastive, guided-backprop, "
                       "deconvnet, input-x-gradient, integrated-gradients, smoothgrad, eb, lrp and fafrp", name);
    if (opt->unit && at_unit_check(m, opt->unit)) return AT_ERR;
    if (opt->smooth < 0 || opt->smooth > 100000) return at_fail("noise samples", "%d samples is not in 1..100000", opt->smooth);
    if (opt->smooth && !at_method_smoothable(opt->method))
        return at_fail("noise samples", "averages input attributions; %s has none (saliency, contrastive, guided-backprop, "
                       "deconvnet, guided-gradcam, input-x-gradient, integrated-gradients, smoothgrad)", name);
    if (!(opt->sg_sigma >= 0) || opt->sg_sigma > 100) return at_fail("noise sigma", "%g is not in [0, 100]", opt->sg_sigma);
    if (opt->ig_steps < 0 || opt->ig_steps > 100000) return at_fail("integration steps", "%d is not in 1..100000", opt->ig_steps);
    if ((unsigned)opt->ig_rule >= AT_IG_RULE_COUNT) return at_fail("integration rule", "unknown rule %d", (int)opt->ig_rule);
    if (opt->baseline != AT_BASELINE_BLACK && opt->baseline != AT_BASELINE_ZERO)
        return at_fail("baseline", "unknown baseline %d", (int)opt->baseline);
    if (opt->method == AT_METHOD_INTEGRATED_GRADIENTS && opt->ig_rule != AT_IG_GAUSS_LEGENDRE && opt->ig_steps == 1)
        return at_fail("integration steps", "1 step: %s needs at least 2", at_ig_rule_name(opt->ig_rule));
    return AT_OK;
}
