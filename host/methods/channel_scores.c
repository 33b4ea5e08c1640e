/* Channel scores by masked forwards (methods/channel_scores.h), batched. */
#include "methods/channel_scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/maps.h"

static int is_flat(const float *a, long hw) {
    float lo = a[0], hi = a[0];
    for (long i = 1; i < hw; i++) lo = a[i] < lo ? a[i] : lo, hi = a[i] > hi ? a[i] : hi;
    return !(hi > lo);
}

int at_channel_scores(at_backend *be, const at_channel_scoring *s, const float *acts, int C, int h, int w,
                      float *zero_score, float *scores, int *flat, long *forwards) {
    const int K = be->model->n_classes;
    const long hw = (long)h * w;
    const int batch = at_max_batch(be, 0);
    float *masks = malloc(sizeof(float) * hw * batch), *logits = malloc(sizeof(float) * K * batch),
          *probs = malloc(sizeof(float) * K);
    int *idx = calloc(batch, sizeof(int)), *chan = malloc(sizeof(int) * batch), *fl = malloc(sizeof(int) * C);
    int rc = AT_OK;
    if (!masks || !logits || !probs || !idx || !chan || !fl) {
        rc = at_fail("channel scores", "out of memory");
        goto done;
    }
    int n_flat = 0;
    for (int c = 0; c < C; c++) n_flat += fl[c] = is_flat(acts + (long)c * hw, hw);
    /* a zero mask stays zero: min-max of a constant map is 0 (docs/methods.md#notation-and-common-steps) */
    int zero_pending = n_flat > 0 && !s->skip_flat && isnan(*zero_score);
    int c = 0;
    while (rc == AT_OK && (c < C || zero_pending)) {
        int nb = 0;
        if (zero_pending) {
            memset(masks, 0, sizeof(float) * hw);
            chan[nb++] = -1;
            zero_pending = 0;
        }
        for (; c < C && nb < batch; c++) {
            if (fl[c]) continue;
            memcpy(masks + hw * nb, acts + (long)c * hw, sizeof(float) * hw);
            chan[nb++] = c;
        }
        if (!nb) break;
        at_forward_args fa = {.n = nb, .input = s->input, .input_index = idx, .masks = masks, .mask_h = h,
                              .mask_w = w, .mask_align_corners = s->align_corners, .mask_norm = s->norm,
                              .mask_space = AT_MASK_NORMALIZED, .logits = logits, .gates = s->gates,
                              .gates_per_item = 0, .precision = s->precision};
        if ((rc = at_forward(be, &fa))) break;
        *forwards += nb;
        for (int j = 0; j < nb; j++) {
            const float *lg = logits + (long)j * K;
            float v;
            if (s->logit) {
                v = lg[s->cls] - s->logit_offset;
            } else {
                at_softmax_rows(lg, 1, K, probs);
                v = probs[s->cls];
            }
            if (chan[j] < 0) *zero_score = v;
            else scores[chan[j]] = v;
        }
    }
    for (int k = 0; rc == AT_OK && k < C; k++) {
        if (fl[k]) scores[k] = s->skip_flat ? 0.0f : *zero_score;
        if (flat) flat[k] = fl[k];
    }
done:
    free(masks), free(logits), free(probs), free(idx), free(chan), free(fl);
    return rc;
}
