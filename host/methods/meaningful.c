/* Meaningful perturbation (docs/methods.md#meaningful-perturbation; Fong &
 * Vedaldi, ICCV 2017): a low-resolution mask m, upsampled, blends the image
 * with its blur, phi = Up(m) x + (1 - Up(m)) blur(x); Adam minimises
 * l1 sum|1 - m| + tv TV_beta(m) + p_c(phi) (or the logit y_c), m clamped to [0,1] after each
 * step; the map is 1 - m. Every image of a batch has its own mask and Adam
 * state, and one forward + one backward to the input per step serve them all
 * (as CDRP batches its gates). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"
#include "methods/maps.h"

#define ADAM_BETA1 0.9 /* torch.optim.Adam's defaults */
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8

/* Separable Gaussian blur of one [h][w] plane, reflect padding (torchvision
 * gaussian_blur: kernel exp(-x^2 / 2 sigma^2) over x = -r..r, normalised). */
static void blur_pass(const float *src, float *dst, int h, int w, const float *k, int r, int along_x) {
    const int n = along_x ? w : h;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int at = along_x ? x : y;
            float s = 0;
            for (int t = -r; t <= r; t++) {
                int q = at + t;
                q = q < 0 ? -q : q >= n ? 2 * (n - 1) - q : q;
                s += k[t + r] * src[along_x ? (long)y * w + q : (long)q * w + x];
            }
            dst[(long)y * w + x] = s;
        }
}

static void blur_plane(const float *src, float *tmp, float *dst, int h, int w, const float *ky, int ry,
                       const float *kx, int rx) {
    blur_pass(src, tmp, h, w, kx, rx, 1);
    blur_pass(tmp, dst, h, w, ky, ry, 0);
}

static int gaussian_kernel(double sigma, int size, float **k) {
    int r = (int)ceil(3 * sigma);
    if (r > size - 1) r = size - 1; /* reflect padding needs r < size */
    *k = malloc(sizeof(float) * (2 * r + 1));
    if (!*k) return -1;
    double sum = 0;
    for (int t = -r; t <= r; t++) sum += exp(-0.5 * (t / sigma) * (t / sigma));
    for (int t = -r; t <= r; t++) (*k)[t + r] = (float)(exp(-0.5 * (t / sigma) * (t / sigma)) / sum);
    return r;
}

/* d/dm of tv * TV_beta(m) + l1 * sum|1 - m|, added to g ([M][M]); returns the value. */
static double regulariser(const at_perturb_options *po, const float *mk, int M, float *g) {
    double val = 0, beta = po->mp_beta;
    for (int i = 0; i < M * M; i++) {
        double d = 1.0 - mk[i];
        val += po->mp_l1 * fabs(d);
        g[i] += (float)(po->mp_l1 * (d > 0 ? -1.0 : d < 0 ? 1.0 : 0.0)); /* d|x|/dx = 0 at 0, as torch */
    }
    for (int y = 0; y < M; y++)
        for (int x = 0; x < M; x++)
            for (int dir = 0; dir < 2; dir++) {
                int y2 = y + (dir == 0), x2 = x + (dir == 1);
                if (y2 >= M || x2 >= M) continue;
                double d = (double)mk[y2 * M + x2] - mk[y * M + x], a = fabs(d);
                val += po->mp_tv * pow(a, beta);
                double gd = a > 0 ? po->mp_tv * beta * pow(a, beta - 1) * (d > 0 ? 1 : -1) : 0;
                g[y2 * M + x2] += (float)gd;
                g[y * M + x] -= (float)gd;
            }
    return val;
}

static int perturb_batch(at_backend *be, const at_explain_options *opt, const at_perturb_options *po,
                         const float *x, int n, at_explain_result *r, int first, int total) {
    const at_model *m = be->model;
    int H = m->in_h, W = m->in_w, C = m->in_c, K = m->n_classes, M = po->mp_mask;
    long hw = (long)H * W, in_size = C * hw, MM = (long)M * M;
    double sigma_y = po->mp_sigma > 0 ? po->mp_sigma : 10.0 * H / 224.0;
    double sigma_x = po->mp_sigma > 0 ? po->mp_sigma : 10.0 * W / 224.0;
    float *ky = NULL, *kx = NULL;
    float *diff = malloc(sizeof(float) * n * in_size), *blur = malloc(sizeof(float) * n * in_size),
          *phi = malloc(sizeof(float) * n * in_size), *gin = malloc(sizeof(float) * n * in_size),
          *tmp = malloc(sizeof(float) * hw), *up = malloc(sizeof(float) * hw), *gup = malloc(sizeof(float) * hw),
          *mk = malloc(sizeof(float) * n * MM), *g = malloc(sizeof(float) * MM), *gm = malloc(sizeof(float) * MM),
          *logits = malloc(sizeof(float) * n * K), *probs = malloc(sizeof(float) * K),
          *dl = malloc(sizeof(float) * n * K);
    double *m1 = calloc(n * MM, sizeof(double)), *m2 = calloc(n * MM, sizeof(double));
    int ry = gaussian_kernel(sigma_y, H, &ky), rx = gaussian_kernel(sigma_x, W, &kx);
    int rc = AT_OK;
    if (!diff || !blur || !phi || !gin || !tmp || !up || !gup || !mk || !g || !gm || !logits || !probs || !dl || !m1 ||
        !m2 || ry < 0 || rx < 0) {
        rc = at_fail("meaningful-perturbation", "out of memory for %d images", n);
        goto done;
    }
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++) {
            long o = b * in_size + c * hw;
            /* blur and blend commute with the per-channel normalisation (weights sum to 1) */
            blur_plane(x + o, tmp, blur + o, H, W, ky, ry, kx, rx);
            for (long i = 0; i < hw; i++) diff[o + i] = x[o + i] - blur[o + i];
        }
    for (long i = 0; i < n * MM; i++) mk[i] = 1.0f;
    int T = po->mp_iterations;
    for (int t = 1; t <= T && rc == AT_OK; t++) {
        for (int b = 0; b < n; b++) {
            at_upsample_bilinear(mk + b * MM, M, M, up, H, W, 0);
            for (int c = 0; c < C; c++) {
                long o = b * in_size + c * hw;
                for (long i = 0; i < hw; i++) phi[o + i] = up[i] * x[o + i] + (1 - up[i]) * blur[o + i];
            }
        }
        at_forward_args fa = {.n = n, .input = phi, .logits = logits, .keep_for_backward = 1,
                              .gates = opt->gates, .gates_per_item = 1};
        if ((rc = at_forward(be, &fa))) break;
        for (int b = 0; b < n; b++) {
            /* d p_c / d logit_k = p_c (delta_ck - p_k); the logit's own gradient is delta_ck */
            at_softmax_rows(logits + (long)b * K, 1, K, probs);
            float pc = probs[r[b].cls];
            for (int k = 0; k < K; k++)
                dl[(long)b * K + k] = po->score_logit ? (float)(k == r[b].cls) : pc * ((k == r[b].cls) - probs[k]);
            r[b].forwards++;
        }
        at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = gin};
        if ((rc = at_backward(be, &ba))) break;
        double bc1 = 1 - pow(ADAM_BETA1, t), bc2 = sqrt(1 - pow(ADAM_BETA2, t));
        for (int b = 0; b < n; b++) {
            /* d phi / d Up(m) = x - blur(x), summed over colour channels */
            for (long i = 0; i < hw; i++) {
                float s = 0;
                for (int c = 0; c < C; c++) s += gin[b * in_size + c * hw + i] * diff[b * in_size + c * hw + i];
                gup[i] = s;
            }
            at_upsample_bilinear_adjoint(gup, H, W, gm, M, M, 0);
            float *mb = mk + b * MM;
            regulariser(po, mb, M, gm);
            double *a1 = m1 + b * MM, *a2 = m2 + b * MM;
            for (long i = 0; i < MM; i++) {
                a1[i] = ADAM_BETA1 * a1[i] + (1 - ADAM_BETA1) * gm[i];
                a2[i] = ADAM_BETA2 * a2[i] + (1 - ADAM_BETA2) * (double)gm[i] * gm[i];
                double v = mb[i] - po->mp_lr / bc1 * a1[i] / (sqrt(a2[i]) / bc2 + ADAM_EPS);
                mb[i] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
            }
        }
        if (po->on_progress && (t % 10 == 0 || t == T))
            po->on_progress(po->progress_ctx, (first + (double)n * t / T) / total);
    }
    for (int b = 0; b < n && rc == AT_OK; b++) {
        for (long i = 0; i < MM; i++) g[i] = 1.0f - mk[b * MM + i];
        at_finish_map(m, g, M, M, &r[b]);
    }
done:
    free(diff), free(blur), free(phi), free(gin), free(tmp), free(up), free(gup), free(mk), free(g), free(gm);
    free(logits), free(probs), free(dl), free(m1), free(m2), free(ky), free(kx);
    return rc;
}

int at_meaningful_perturbation(at_backend *be, const at_explain_options *opt, const float *inputs, int n,
                               at_explain_result *r) {
    const at_model *m = be->model;
    at_perturb_options def;
    const at_perturb_options *po = at_perturb_of(opt, &def);
    if (at_perturb_check(m, po)) return AT_ERR;
    long in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 1);
    float *logits = malloc(sizeof(float) * (batch < n ? batch : n) * m->n_classes);
    int rc = logits ? AT_OK : at_fail("meaningful-perturbation", "out of memory");
    for (int b0 = 0; b0 < n && rc == AT_OK; b0 += batch) {
        int nb = n - b0 < batch ? n - b0 : batch;
        at_explain_options sub = *opt;
        sub.classes = opt->classes ? opt->classes + b0 : NULL;
        sub.gates = opt->gates ? opt->gates + (long)b0 * m->n_gates : NULL;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * b0, .logits = logits, .gates = sub.gates,
                              .gates_per_item = 1};
        if ((rc = at_forward(be, &fa)) || (rc = at_explain_classify_logits(m, &sub, logits, nb, r + b0))) break;
        rc = perturb_batch(be, &sub, po, inputs + in_size * b0, nb, r + b0, b0, n);
    }
    free(logits);
    return rc;
}
