/* Score-CAM (docs/methods.md#score-cam; Wang et al. 2020): one forward per channel of the layer on the
 * input masked by that channel's normalised, upsampled activation. The masks
 * go to the backend as low-resolution maps, so a backend can fuse upsampling
 * and min-max into its first conv; channels whose map is constant share one
 * forward (their mask is all zero). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/channel_scores.h"
#include "methods/maps.h"
#include "methods/explain.h"

/* Channel weights from scores: the authors use the probabilities as they are
 * (flat channels 0); pgc and torchcam take a softmax over channels. */
static void scores_to_weights(at_variant v, const float *scores, const int *flat, int C, float *weights) {
    if (v == AT_VARIANT_AUTHORS) {
        for (int l = 0; l < C; l++) weights[l] = flat[l] ? 0.0f : scores[l];
        return;
    }
    float mx = scores[0];
    for (int l = 1; l < C; l++) mx = scores[l] > mx ? scores[l] : mx;
    double sum = 0;
    for (int l = 0; l < C; l++) sum += exp((double)scores[l] - mx);
    for (int l = 0; l < C; l++) weights[l] = (float)(exp((double)scores[l] - mx) / sum);
}

int at_scorecam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    const at_layer *L = &m->layers[opt->layer];
    int C = L->out_c, h = L->out_h, w = L->out_w;
    long hw = (long)h * w, in_size = (long)m->in_c * m->in_h * m->in_w;
    float *logits = malloc(sizeof(float) * m->n_classes);
    float *acts = malloc(sizeof(float) * C * hw), *scores = malloc(sizeof(float) * C),
          *weights = malloc(sizeof(float) * C), *cam = malloc(sizeof(float) * hw);
    int *flat = malloc(sizeof(int) * C);
    int rc = AT_OK;
    if (!logits || !acts || !scores || !weights || !cam || !flat) {
        rc = at_fail("scorecam", "out of memory");
        goto done;
    }
    for (int b = 0; b < n && rc == AT_OK; b++) {
        const float *x = inputs + in_size * b;
        at_explain_options one = *opt;
        int cls_b = opt->classes ? opt->classes[b] : -1;
        one.classes = &cls_b;
        one.gates = opt->gates ? opt->gates + (long)b * m->n_gates : NULL;
        /* the unmasked forward: class, probability, and the layer's activations */
        at_forward_args fa = {.n = 1, .input = x, .logits = logits, .gates = one.gates, .n_capture = 1,
                              .capture_layer = &opt->layer, .capture_out = &acts};
        if ((rc = at_forward(be, &fa))) break;
        if ((rc = at_explain_classify_logits(m, &one, logits, 1, &r[b]))) break;
        /* the authors skip flat channels; the peers score them as X o 0, once */
        at_channel_scoring cs = {.input = x, .gates = one.gates, .align_corners = opt->variant == AT_VARIANT_PGC,
                                 .norm = opt->variant == AT_VARIANT_TORCHCAM ? AT_MASK_MINMAX_BEFORE
                                                                             : AT_MASK_MINMAX_AFTER,
                                 .cls = r[b].cls, .logit = opt->variant != AT_VARIANT_AUTHORS,
                                 .logit_offset = opt->variant == AT_VARIANT_TORCHCAM ? r[b].logit : 0.0f,
                                 .skip_flat = opt->variant == AT_VARIANT_AUTHORS};
        float zero_score = NAN;
        if ((rc = at_channel_scores(be, &cs, acts, C, h, w, &zero_score, scores, flat, &r[b].forwards))) break;
        r[b].flat_channels = 0;
        for (int l = 0; l < C; l++) r[b].flat_channels += flat[l];
        scores_to_weights(opt->variant, scores, flat, C, weights);
        memset(cam, 0, sizeof(float) * hw);
        for (int l = 0; l < C; l++) {
            if (weights[l] == 0) continue;
            const float *a = acts + (long)l * hw;
            for (long i = 0; i < hw; i++) cam[i] += weights[l] * a[i];
        }
        if (r[b].weights) memcpy(r[b].weights, weights, sizeof(float) * C);
        at_finish_map(m, cam, h, w, &r[b]);
    }
done:
    free(logits), free(acts), free(scores), free(weights), free(cam), free(flat);
    return rc;
}
