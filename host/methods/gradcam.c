/* The gradient CAMs (docs/methods.md#grad-cam-and-grad-cam, #xgrad-cam, #hirescam, #layercam): one forward
 * kept for backward that captures every layer, one backward from the class logit to each layer, for
 * the whole batch; LayerCAM fuses several layers' maps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"
#include "methods/maps.h"

#define GRADCAMPP_EPS 1e-6      /* Chattopadhay et al. Eq. 19 as pytorch-grad-cam */
#define XGRAD_EPS 1e-7          /* pytorch-grad-cam's xgrad_cam.py */
#define XGRAD_EPS_TORCHCAM 1e-8 /* torchcam's XGradCAM */
#define LAYERCAM_GAMMA 2.0f     /* tanh(2 s(map)) before fusing: the LayerCAM paper's Eq. 9, torchcam */

/* Channel weight of Grad-CAM (mean gradient), Grad-CAM++ (closed form) or XGrad-CAM. */
static float channel_weight(at_method method, at_variant variant, const float *a, const float *g, long hw) {
    double w = 0;
    if (method == AT_METHOD_GRADCAM) {
        for (long i = 0; i < hw; i++) w += g[i];
        return (float)(w / hw);
    }
    if (method == AT_METHOD_XGRADCAM) {
        double sum_a = 0;
        for (long i = 0; i < hw; i++) sum_a += a[i], w += (double)g[i] * a[i];
        return (float)(w / (sum_a + (variant == AT_VARIANT_TORCHCAM ? XGRAD_EPS_TORCHCAM : XGRAD_EPS)));
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

/* One image's map at one layer, before the final stage: channel weights
 * (written to weights) or, for HiResCAM and LayerCAM, weights per element. */
static void layer_map(at_method method, at_variant variant, const float *A, const float *G, int C, long hw, float *cam,
                      float *weights) {
    memset(cam, 0, sizeof(float) * hw);
    for (int l = 0; l < C; l++) {
        const float *a = A + l * hw, *g = G + l * hw;
        if (method == AT_METHOD_HIRESCAM) {
            for (long i = 0; i < hw; i++) cam[i] += g[i] * a[i];
        } else if (method == AT_METHOD_LAYERCAM) {
            for (long i = 0; i < hw; i++) cam[i] += (g[i] > 0 ? g[i] : 0) * a[i];
        } else {
            weights[l] = channel_weight(method, variant, a, g, hw);
            for (long i = 0; i < hw; i++) cam[i] += weights[l] * a[i];
        }
    }
}

/* LayerCAM over several layers (docs/methods.md#layercam). Default and torchcam:
 * tanh(2 s(ReLU(map))) per layer, bilinear to the largest layer, element-wise max;
 * pgc: per layer ReLU, s() and Up to the input, then the mean. */
static int fuse_layers(const at_model *m, at_variant variant, float **cams, const int *layers, int k,
                       at_explain_result *r) {
    int fh = 0, fw = 0;
    for (int j = 0; j < k; j++) {
        const at_layer *L = &m->layers[layers[j]];
        fh = L->out_h > fh ? L->out_h : fh, fw = L->out_w > fw ? L->out_w : fw;
    }
    if (variant == AT_VARIANT_PGC) fh = m->in_h, fw = m->in_w;
    long fhw = (long)fh * fw;
    float *fused = calloc(fhw, sizeof(float)), *up = malloc(sizeof(float) * fhw);
    if (!fused || !up) {
        free(fused), free(up);
        return at_fail("layercam", "out of memory");
    }
    for (int j = 0; j < k; j++) {
        const at_layer *L = &m->layers[layers[j]];
        long hw = (long)L->out_h * L->out_w;
        at_relu_inplace(cams[j], hw);
        if (variant == AT_VARIANT_PGC) { /* s() before Up as pgc: bilinear does not keep an inner extremum */
            at_minmax_normalize(cams[j], hw);
            at_upsample_bilinear(cams[j], L->out_h, L->out_w, up, fh, fw, 0);
            for (long i = 0; i < fhw; i++) fused[i] += up[i] / k;
        } else {
            at_minmax_normalize(cams[j], hw);
            for (long i = 0; i < hw; i++) cams[j][i] = tanhf(LAYERCAM_GAMMA * cams[j][i]);
            at_upsample_bilinear(cams[j], L->out_h, L->out_w, up, fh, fw, 0);
            for (long i = 0; i < fhw; i++) fused[i] = up[i] > fused[i] ? up[i] : fused[i];
        }
    }
    at_finish_map(m, fused, fh, fw, r);
    free(fused), free(up);
    return AT_OK;
}

int at_gradcam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    const int k = opt->n_layers > 1 && opt->method == AT_METHOD_LAYERCAM ? opt->n_layers : 1;
    const int *layers = k > 1 ? opt->layers : &opt->layer;
    long in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 1);
    if (batch > n) batch = n;
    float **acts = calloc(k, sizeof(float *)), **grads = calloc(k, sizeof(float *)), **cams = calloc(k, sizeof(float *));
    float *logits = malloc(sizeof(float) * batch * m->n_classes), *dl = malloc(sizeof(float) * batch * m->n_classes);
    int max_c = 0;
    for (int j = 0; j < k; j++) max_c = m->layers[layers[j]].out_c > max_c ? m->layers[layers[j]].out_c : max_c;
    float *weights = malloc(sizeof(float) * max_c);
    int rc = AT_OK, ok = acts && grads && cams && logits && dl && weights;
    for (int j = 0; ok && j < k; j++) {
        const at_layer *L = &m->layers[layers[j]];
        long size = (long)L->out_c * L->out_h * L->out_w;
        acts[j] = malloc(sizeof(float) * batch * size);
        grads[j] = malloc(sizeof(float) * batch * size);
        cams[j] = malloc(sizeof(float) * L->out_h * L->out_w);
        ok = acts[j] && grads[j] && cams[j];
    }
    if (!ok) {
        rc = at_fail(at_method_name(opt->method), "out of memory");
        goto done;
    }
    for (int start = 0; start < n && rc == AT_OK; start += batch) {
        int nb = n - start < batch ? n - start : batch;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * start, .logits = logits,
                              .n_capture = k, .capture_layer = layers, .capture_out = acts, .keep_for_backward = 1};
        if ((rc = at_explain_forward_batch(be, opt, &fa, start, r))) break;
        at_explain_one_hot(r + start, nb, m->n_classes, dl);
        /* one backward per layer: a backward started at a deeper layer would
         * miss the paths that bypass it (residual branches) */
        for (int j = 0; j < k && rc == AT_OK; j++) {
            at_backward_args ba = {.dlogits = dl, .grad_layer = layers[j], .grad_layer_out = grads[j]};
            rc = at_backward(be, &ba);
        }
        for (int b = 0; b < nb && rc == AT_OK; b++) {
            at_explain_result *res = &r[start + b];
            res->backwards++;
            for (int j = 0; j < k; j++) {
                const at_layer *L = &m->layers[layers[j]];
                int C = L->out_c;
                long hw = (long)L->out_h * L->out_w;
                layer_map(opt->method, opt->variant, acts[j] + (long)b * C * hw, grads[j] + (long)b * C * hw, C, hw,
                          cams[j], weights);
                if (k == 1) {
                    if (res->weights && at_method_has_channel_weights(opt->method))
                        memcpy(res->weights, weights, sizeof(float) * C);
                    at_finish_map(m, cams[0], L->out_h, L->out_w, res);
                }
            }
            if (k > 1) rc = fuse_layers(m, opt->variant, cams, layers, k, res);
        }
    }
done:
    for (int j = 0; j < k && acts && grads && cams; j++) free(acts[j]), free(grads[j]), free(cams[j]);
    free(acts), free(grads), free(cams), free(logits), free(dl), free(weights);
    return rc;
}
