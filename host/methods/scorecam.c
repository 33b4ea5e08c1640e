/* Score-CAM (docs/methods.md#score-cam; Wang et al. 2020): one forward per channel of the layer on the
 * input masked by that channel's normalised, upsampled activation. The masks
 * go to the backend as low-resolution maps, so a backend can fuse upsampling
 * and min-max into its first conv; channels whose map is constant share one
 * forward (their mask is all zero). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/maps.h"
#include "methods/explain.h"

/* Channel scores of one image: score[l] = target of f(X o mask_l). */
static int channel_scores(at_backend *be, const at_explain_options *opt, const float *input, int img,
                          const float *acts, int C, int h, int w, int cls, float *scores, int *flat,
                          at_explain_result *r) {
    const at_model *m = be->model;
    long hw = (long)h * w;
    int batch = at_max_batch(be, 0);
    float *masks = malloc(sizeof(float) * hw * batch);
    float *logits = malloc(sizeof(float) * m->n_classes * batch);
    float *probs = malloc(sizeof(float) * m->n_classes);
    int *idx = calloc(batch, sizeof(int)), *chan = malloc(sizeof(int) * batch);
    int rc = AT_OK;
    if (!masks || !logits || !probs || !idx || !chan) {
        rc = at_fail("scorecam", "out of memory");
        goto done;
    }
    float zero_score = 0;
    r->flat_channels = 0;
    for (int l = 0; l < C; l++) {
        const float *a = acts + (long)l * hw;
        float lo = a[0], hi = a[0];
        for (long i = 1; i < hw; i++) lo = a[i] < lo ? a[i] : lo, hi = a[i] > hi ? a[i] : hi;
        flat[l] = !(hi > lo);
        r->flat_channels += flat[l];
    }
    /* the authors skip flat channels; the peers score them as X o 0, once */
    int zero_pending = r->flat_channels > 0 && opt->variant != AT_VARIANT_AUTHORS;
    int l = 0;
    while (rc == AT_OK && (l < C || zero_pending)) {
        int nb = 0;
        if (zero_pending) {
            memset(masks, 0, sizeof(float) * hw);
            chan[nb++] = -1;
            zero_pending = 0;
        }
        for (; l < C && nb < batch; l++) {
            if (flat[l]) continue;
            memcpy(masks + hw * nb, acts + (long)l * hw, sizeof(float) * hw);
            chan[nb++] = l;
        }
        if (!nb) break;
        at_forward_args fa = {.n = nb, .input = input, .input_index = idx, .masks = masks, .mask_h = h, .mask_w = w,
                              .mask_align_corners = opt->variant == AT_VARIANT_PGC,
                              .mask_norm = opt->variant == AT_VARIANT_TORCHCAM ? AT_MASK_MINMAX_BEFORE
                                                                              : AT_MASK_MINMAX_AFTER,
                              .mask_space = AT_MASK_NORMALIZED, .logits = logits,
                              .gates = opt->gates ? opt->gates + (long)img * m->n_gates : NULL, .gates_per_item = 0};
        /* a zero mask must stay zero: min-max of a constant map is 0 by definition (docs/methods.md#notation-and-common-steps) */
        if ((rc = at_forward(be, &fa))) break;
        r->forwards += nb;
        for (int j = 0; j < nb; j++) {
            const float *lg = logits + (long)j * m->n_classes;
            float s;
            if (opt->variant == AT_VARIANT_AUTHORS) {
                at_softmax_rows(lg, 1, m->n_classes, probs);
                s = probs[cls];
            } else if (opt->variant == AT_VARIANT_TORCHCAM) {
                s = lg[cls] - r->logit;
            } else {
                s = lg[cls];
            }
            if (chan[j] < 0) zero_score = s;
            else scores[chan[j]] = s;
        }
    }
    for (int l = 0; l < C; l++)
        if (flat[l]) scores[l] = opt->variant == AT_VARIANT_AUTHORS ? 0.0f : zero_score;
done:
    free(masks), free(logits), free(probs), free(idx), free(chan);
    return rc;
}

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
        at_explain_options inner = *opt;
        inner.gates = one.gates;
        if ((rc = channel_scores(be, &inner, x, 0, acts, C, h, w, r[b].cls, scores, flat, &r[b]))) break;
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
