/* Model-parameter randomisation (metrics/randomisation.h). */
#include "metrics/randomisation.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "metrics/metrics.h"
#include "model/random_model.h"

int at_mprt_layers(const at_model *m, int *layers, int cap) {
    int k = 0;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const at_layer *l = &m->layers[i];
        if ((l->kind != AT_L_CONV && l->kind != AT_L_LINEAR) || !l->weight) continue;
        if (k < cap) layers[k] = i;
        k++;
    }
    return k;
}

static long weight_count(const at_layer *l, long *fan_in) {
    if (l->kind == AT_L_CONV) {
        *fan_in = (long)l->in_c * l->kernel * l->kernel;
        return (long)l->out_c * *fan_in;
    }
    *fan_in = l->in_c;
    return (long)l->out_c * l->in_c;
}

int at_mprt_reinit(at_model *m, int li, uint64_t seed) {
    if (li < 0 || li >= m->n_layers) return at_fail("randomisation", "node %d is out of range", li);
    at_layer *l = &m->layers[li];
    if ((l->kind != AT_L_CONV && l->kind != AT_L_LINEAR) || !l->weight)
        return at_fail(l->name, "has no weights to re-initialise");
    long fan_in, n = weight_count(l, &fan_in);
    float bound = (float)(1.0 / sqrt((double)fan_in));
    char name[48];
    snprintf(name, sizeof name, "%s.weight", l->name);
    at_prng_fill(name, seed, l->weight, n, bound, 0.0f);
    if (l->bias) {
        snprintf(name, sizeof name, "%s.bias", l->name);
        at_prng_fill(name, seed, l->bias, l->out_c, bound, 0.0f);
    }
    return AT_OK;
}

/* Saved parameters of the layers the check touches. */
typedef struct {
    float **w, **b;
    int n;
} saved_params;

static void saved_free(saved_params *s) {
    for (int i = 0; i < s->n; i++) free(s->w[i]), free(s->b[i]);
    free(s->w), free(s->b);
}

static int save(const at_model *m, const int *layers, int n, saved_params *s) {
    s->n = n;
    s->w = calloc(n, sizeof *s->w);
    s->b = calloc(n, sizeof *s->b);
    if (!s->w || !s->b) return at_fail("randomisation", "out of memory");
    for (int i = 0; i < n; i++) {
        if (layers[i] < 0 || layers[i] >= m->n_layers) return at_fail("randomisation", "node %d is out of range", layers[i]);
        const at_layer *l = &m->layers[layers[i]];
        long fan_in, nw = weight_count(l, &fan_in);
        s->w[i] = malloc(sizeof(float) * nw);
        s->b[i] = l->bias ? malloc(sizeof(float) * l->out_c) : NULL;
        if (!s->w[i] || (l->bias && !s->b[i])) return at_fail("randomisation", "out of memory");
        memcpy(s->w[i], l->weight, sizeof(float) * nw);
        if (l->bias) memcpy(s->b[i], l->bias, sizeof(float) * l->out_c);
    }
    return AT_OK;
}

static void restore(at_model *m, const int *layers, const saved_params *s, int i) {
    at_layer *l = &m->layers[layers[i]];
    long fan_in, nw = weight_count(l, &fan_in);
    memcpy(l->weight, s->w[i], sizeof(float) * nw);
    if (l->bias) memcpy(l->bias, s->b[i], sizeof(float) * l->out_c);
}

/* |map| / max, so signed maps compare as Quantus compares them (ranks of a
 * [0,1] map are unchanged). Returns 0 for an all-zero map. */
static int abs_max_normalise(const float *src, long hw, float *dst) {
    float mx = 0;
    for (long i = 0; i < hw; i++) mx = fabsf(src[i]) > mx ? fabsf(src[i]) : mx;
    if (!(mx > 0)) return 0;
    for (long i = 0; i < hw; i++) dst[i] = fabsf(src[i]) / mx;
    return 1;
}

/* Maps of the model as it is now, and their correlations with the original ones. */
static int measure(const at_model *m, const at_mprt_options *o, at_map_maker make, void *ctx, const float *inputs,
                   int n, const int *classes, const float *orig_norm, const char *orig_ok, float *maps, float *tmp,
                   double *rho) {
    at_backend *be = NULL;
    long hw = (long)m->in_h * m->in_w;
    if (at_backend_create(m, o->backend, &be)) return AT_ERR;
    int rc = make(be, inputs, n, classes, maps, ctx);
    at_backend_destroy(be);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        int ok = orig_ok[i] && abs_max_normalise(maps + hw * i, hw, tmp);
        rho[i] = ok ? at_spearman(orig_norm + hw * i, tmp, hw) : NAN;
    }
    return AT_OK;
}

int at_mprt(at_model *m, const at_mprt_options *o, at_map_maker make, void *ctx, const float *inputs, int n,
            const int *classes, const float *original, const int *layers, int n_layers, double *rho_cascading,
            double *rho_independent) {
    long hw = (long)m->in_h * m->in_w;
    saved_params saved = {0};
    float *orig = malloc(sizeof(float) * hw * (n ? n : 1)), *maps = malloc(sizeof(float) * hw * (n ? n : 1));
    float *tmp = malloc(sizeof(float) * hw);
    char *ok = malloc(n ? n : 1);
    int rc = orig && maps && tmp && ok ? AT_OK : at_fail("randomisation", "out of memory");
    for (int i = 0; rc == AT_OK && i < n; i++)
        if (classes[i] < 0 || classes[i] >= m->n_classes)
            rc = at_fail("randomisation", "image %d: class %d is not a class of the model (give the original "
                         "model's classes: a randomised model would pick its own)", i, classes[i]);
    if (rc == AT_OK) rc = save(m, layers, n_layers, &saved);
    const int models = (original ? 0 : 1) + n_layers * ((o->cascading != 0) + (o->independent != 0));
    int done = 0;
#define MODEL_DONE() \
    do { \
        if (rc == AT_OK && o->progress && models > 0) o->progress(o->progress_ctx, (double)++done / models); \
    } while (0)
    if (rc == AT_OK && !original) {
        at_backend *be = NULL;
        rc = at_backend_create(m, o->backend, &be);
        if (rc == AT_OK) rc = make(be, inputs, n, classes, maps, ctx);
        at_backend_destroy(be);
        original = maps;
        MODEL_DONE();
    }
    for (int i = 0; rc == AT_OK && i < n; i++) ok[i] = (char)abs_max_normalise(original + hw * i, hw, orig + hw * i);
    if (o->cascading && rc == AT_OK) {
        for (int l = 0; rc == AT_OK && l < n_layers; l++) {
            rc = at_mprt_reinit(m, layers[l], o->seed);
            if (rc == AT_OK) rc = measure(m, o, make, ctx, inputs, n, classes, orig, ok, maps, tmp, rho_cascading + (long)l * n);
            MODEL_DONE();
        }
        for (int l = 0; l < saved.n && saved.w && saved.w[l]; l++) restore(m, layers, &saved, l);
    }
    for (int l = 0; o->independent && rc == AT_OK && l < n_layers; l++) {
        rc = at_mprt_reinit(m, layers[l], o->seed);
        if (rc == AT_OK) rc = measure(m, o, make, ctx, inputs, n, classes, orig, ok, maps, tmp, rho_independent + (long)l * n);
        restore(m, layers, &saved, l);
        MODEL_DONE();
    }
#undef MODEL_DONE
    saved_free(&saved);
    free(orig), free(maps), free(tmp), free(ok);
    return rc;
}
