/* Ablation-CAM (docs/methods.md#ablation-cam; Desai and Ramaswamy, WACV 2020):
 * w_k = (y - y_k) / y, y_k the class logit with channel k of the layer's
 * output set to the ablation value. Each ablated pass is a partial forward:
 * the layer's output with channel k replaced starts a pass through the layers
 * after it only (pytorch-grad-cam reruns the whole network from the input with
 * the layer's output replaced: the same numbers, tests/test_cam_family.c;
 * we do that too where a branch bypasses the layer).
 * Items are (image, channel) pairs, many per call; a channel that already
 * equals the ablation value everywhere is not run (y_k = y, w_k = 0). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"

#define PGC_ABLATION_OFFSET 1e7f /* pytorch-grad-cam's ablation_layer.py: min - 1e7 when min != 0 */
/* Host memory for one call's start outputs: early layers are large. */
#define ABLATION_ITEM_BYTES ((size_t)256 << 20)

/* The value an ablated channel takes: 0, or pgc's min - 1e7 when the
 * layer's minimum over the image is not 0. */
static float ablation_value(at_variant v, const float *a, long size) {
    if (v != AT_VARIANT_PGC) return 0.0f;
    float lo = a[0];
    for (long i = 1; i < size; i++) lo = a[i] < lo ? a[i] : lo;
    return lo == 0 ? 0.0f : lo - PGC_ABLATION_OFFSET;
}

/* 1 when every node after the layer reads only it or later nodes, so a pass
 * can start from its output; else (a residual branch bypasses it) the ablated
 * passes run the whole network with the layer's output patched, as pgc does. */
static int starts_here(const at_model *m, int layer) {
    for (int i = layer + 1; i < m->n_layers; i++)
        if (m->layers[i].input < layer || (m->layers[i].input2 >= 0 && m->layers[i].input2 < layer)) return 0;
    return 1;
}

static int channel_is(const float *a, long hw, float v) {
    for (long i = 0; i < hw; i++)
        if (a[i] != v) return 0;
    return 1;
}

int at_ablationcam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    const at_layer *L = &m->layers[opt->layer];
    const int C = L->out_c, K = m->n_classes;
    const long hw = (long)L->out_h * L->out_w, size = (long)C * hw, in_size = (long)m->in_c * m->in_h * m->in_w;
    int img_batch = at_max_batch(be, 0), items = img_batch;
    if (img_batch > n) img_batch = n;
    if ((size_t)items * size * sizeof(float) > ABLATION_ITEM_BYTES) items = (int)(ABLATION_ITEM_BYTES / (size * sizeof(float)));
    if (items < 1) items = 1;
    float *acts = malloc(sizeof(float) * img_batch * size), *logits = malloc(sizeof(float) * img_batch * K);
    float *start = malloc(sizeof(float) * items * size), *item_logits = malloc(sizeof(float) * items * K);
    float *gates = opt->gates ? malloc(sizeof(float) * items * m->n_gates) : NULL;
    float *weights = malloc(sizeof(float) * img_batch * C), *value = malloc(sizeof(float) * img_batch);
    float *cam = malloc(sizeof(float) * hw);
    int *item_img = malloc(sizeof(int) * items), *item_chan = malloc(sizeof(int) * items);
    const int partial = starts_here(m, opt->layer);
    int rc = AT_OK;
    if (!acts || !logits || !start || !item_logits || (opt->gates && !gates) || !weights || !value || !cam ||
        !item_img || !item_chan) {
        rc = at_fail("ablation-cam", "out of memory");
        goto done;
    }
    for (int first = 0; first < n && rc == AT_OK; first += img_batch) {
        const int nb = n - first < img_batch ? n - first : img_batch;
        const float *g0 = opt->gates ? opt->gates + (long)first * m->n_gates : NULL;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * first, .logits = logits, .n_capture = 1,
                              .capture_layer = &opt->layer, .capture_out = &acts};
        if ((rc = at_explain_forward_batch(be, opt, &fa, first, r))) break;
        for (int b = 0; b < nb; b++) value[b] = ablation_value(opt->variant, acts + b * size, size);
        memset(weights, 0, sizeof(float) * nb * C);
        /* the ablated passes, (image, channel) pairs in order, many per call */
        for (int b = 0, k = 0; b < nb && rc == AT_OK;) {
            int ni = 0;
            while (b < nb && ni < items) {
                const float *a = acts + b * size;
                if (!channel_is(a + k * hw, hw, value[b])) {
                    memcpy(start + ni * size, a, sizeof(float) * size);
                    for (long i = 0; i < hw; i++) start[ni * size + k * hw + i] = value[b];
                    if (gates)
                        memcpy(gates + (long)ni * m->n_gates, g0 + (long)b * m->n_gates, sizeof(float) * m->n_gates);
                    item_img[ni] = b, item_chan[ni] = k, ni++;
                }
                if (++k == C) k = 0, b++;
            }
            if (!ni) break;
            at_forward_args pa = {.n = ni, .start_output = start, .start_layer = opt->layer, .logits = item_logits,
                                  .gates = gates, .gates_per_item = 1};
            if (!partial) {
                pa.start_output = NULL;
                pa.input = inputs + in_size * first, pa.input_index = item_img;
                pa.patch_mode = AT_PATCH_REPLACE, pa.patch_layer = opt->layer, pa.patch = start;
            }
            if ((rc = at_forward(be, &pa))) break;
            for (int j = 0; j < ni; j++) {
                const at_explain_result *res = &r[first + item_img[j]];
                double y = res->logit, yk = item_logits[(long)j * K + res->cls];
                weights[item_img[j] * C + item_chan[j]] = y != 0 ? (float)((y - yk) / y) : 0.0f;
                r[first + item_img[j]].forwards++;
            }
        }
        for (int b = 0; b < nb && rc == AT_OK; b++) {
            const float *a = acts + b * size, *w = weights + b * C;
            memset(cam, 0, sizeof(float) * hw);
            for (int l = 0; l < C; l++)
                for (long i = 0; w[l] != 0 && i < hw; i++) cam[i] += w[l] * a[l * hw + i];
            if (r[first + b].weights) memcpy(r[first + b].weights, w, sizeof(float) * C);
            at_finish_map(m, cam, L->out_h, L->out_w, &r[first + b]);
        }
    }
done:
    free(acts), free(logits), free(start), free(item_logits), free(gates), free(weights), free(value), free(cam);
    free(item_img), free(item_chan);
    return rc;
}
