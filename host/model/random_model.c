#include "model/random_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/splitmix.h"
#include "model/build.h"

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

void at_prng_fill(const char *name, uint64_t seed, float *out, long n, float scale, float offset) {
    uint64_t state = fnv1a64(name) ^ seed;
    for (long i = 0; i < n; i++) {
        float u = (float)(at_splitmix64(&state) >> 40) * 0x1p-24f;
        out[i] = (2.0f * u - 1.0f) * scale + offset;
    }
}

void at_prng_normal(const char *name, uint64_t seed, long offset, float *out, long n) {
    /* splitmix64 is counter based: draw k of the stream is mix(state0 + (k+1) gamma) */
    uint64_t state = (fnv1a64(name) ^ seed) + 0x9e3779b97f4a7c15ull * (uint64_t)(2 * offset);
    for (long i = 0; i < n; i++) {
        double u1 = ((double)(at_splitmix64(&state) >> 40) + 0.5) * 0x1p-24; /* in (0,1): log is finite */
        double u2 = (double)(at_splitmix64(&state) >> 40) * 0x1p-24;
        out[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

void at_random_spec_standard(at_random_spec *spec, const char *arch, int in_hw, int n_classes) {
    memset(spec, 0, sizeof *spec);
    spec->arch = arch;
    int rblocks[4], bottleneck;
    if (at_resnet_topology(arch, rblocks, &bottleneck) == AT_OK) { /* torchvision's widths */
        static const int resnet[5] = {64, 64, 128, 256, 512};
        memcpy(spec->widths, resnet, sizeof resnet);
        spec->n_classes = n_classes;
        spec->in_h = spec->in_w = in_hw;
        spec->avgpool = 1;
        return;
    }
    int blocks[5], bn, k = 0;
    static const int block_width[5] = {64, 128, 256, 512, 512};
    if (at_vgg_topology(arch, blocks, &bn) == AT_OK)
        for (int b = 0; b < 5; b++)
            for (int j = 0; j < blocks[b]; j++) spec->widths[k++] = block_width[b];
    spec->hidden[0] = spec->hidden[1] = 4096;
    spec->n_classes = n_classes;
    spec->in_h = spec->in_w = in_hw;
    spec->avgpool = 7;
}

typedef struct {
    const at_random_spec *spec;
    int bn;
    int conv_of_module[64]; /* features.N -> conv ordinal (conv, bn modules), -1 otherwise */
    int in_ch_of_conv[16];
    int flat;               /* classifier input features */
} rand_ctx;

/* Shape and init of a tensor by torchvision key; returns 0 when unknown. */
static int tensor_info(const rand_ctx *c, const char *key, int64_t shape[8], int *ndim, float *scale,
                       float *offset) {
    const at_random_spec *sp = c->spec;
    int module;
    char part[32];
    *offset = 0;
    if (sscanf(key, "features.%d.%31s", &module, part) == 2) {
        if (module < 0 || module >= 64 || c->conv_of_module[module] < 0) return 0;
        int k = c->conv_of_module[module];
        int is_conv = module == 0 || c->conv_of_module[module - 1] != k;
        int out = sp->widths[k];
        if (is_conv && !strcmp(part, "weight")) {
            int in = c->in_ch_of_conv[k];
            *ndim = 4;
            shape[0] = out, shape[1] = in, shape[2] = shape[3] = 3;
            *scale = (float)sqrt(6.0 / (in * 9.0)); /* He-uniform keeps activations O(1) */
            return 1;
        }
        *ndim = 1;
        shape[0] = out;
        if (is_conv && !strcmp(part, "bias")) *scale = 0.1f;
        else if (!strcmp(part, "weight")) *scale = 0.5f, *offset = 1.0f;
        else if (!strcmp(part, "bias") || !strcmp(part, "running_mean")) *scale = 0.1f;
        else if (!strcmp(part, "running_var")) *scale = 0.5f, *offset = 1.0f;
        else return 0;
        return 1;
    }
    if (sscanf(key, "classifier.%d.%31s", &module, part) == 2) {
        int idx = module / 3;
        if (module % 3 || idx > 2) return 0;
        int in = idx == 0 ? c->flat : sp->hidden[idx - 1];
        int out = idx == 2 ? sp->n_classes : sp->hidden[idx];
        if (!strcmp(part, "weight")) {
            *ndim = 2;
            shape[0] = out, shape[1] = in;
            *scale = (float)sqrt(6.0 / in);
        } else if (!strcmp(part, "bias")) {
            *ndim = 1;
            shape[0] = out;
            *scale = 0.1f;
        } else
            return 0;
        return 1;
    }
    return 0;
}

/* n values of the stream named key: scale * U(-1, 1) + offset. */
static float *drawn(const char *key, uint64_t seed, long n, float scale, float offset) {
    float *p = malloc(sizeof(float) * n);
    if (!p) {
        at_fail("random model", "out of memory for '%s'", key);
        return NULL;
    }
    at_prng_fill(key, seed, p, n, scale, offset);
    return p;
}

static float *rand_get(void *ctx, const char *key, int64_t shape[8], int *ndim) {
    rand_ctx *c = ctx;
    float scale, offset;
    if (!tensor_info(c, key, shape, ndim, &scale, &offset)) {
        at_fail("random model", "missing tensor '%s'", key);
        return NULL;
    }
    long n = 1;
    for (int i = 0; i < *ndim; i++) n *= shape[i];
    return drawn(key, c->spec->seed, n, scale, offset);
}

/* ResNet: the tensors as at_resnet_tensors lists them, drawn on request. */
typedef struct {
    char key[48];
    int ndim, kind;
    int64_t shape[4];
} res_tensor;

typedef struct {
    const at_random_spec *spec;
    res_tensor *t;
    int n, cap;
} res_ctx;

static void res_collect(void *ctx, const char *key, int ndim, const int64_t *shape, int kind) {
    res_ctx *c = ctx;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 128;
        res_tensor *q = realloc(c->t, sizeof *q * cap);
        if (!q) return; /* reported as a missing tensor */
        c->t = q, c->cap = cap;
    }
    res_tensor *t = &c->t[c->n++];
    snprintf(t->key, sizeof t->key, "%s", key);
    t->ndim = ndim, t->kind = kind;
    memcpy(t->shape, shape, sizeof(int64_t) * ndim);
}

/* Init rules shared with tools/prng.py random_resnet_state: He-uniform convs,
 * BN near identity, the BN before each add small so the residual stream
 * stays O(1) over deep stacks. */
static float *res_get(void *ctx, const char *key, int64_t shape[8], int *ndim) {
    res_ctx *c = ctx;
    for (int i = 0; i < c->n; i++) {
        const res_tensor *t = &c->t[i];
        if (strcmp(t->key, key)) continue;
        long n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (shape[d] = t->shape[d]);
        *ndim = t->ndim;
        float scale = 0.1f, offset = 0.0f;
        switch (t->kind) {
        case AT_T_CONV: scale = (float)sqrt(6.0 / (double)(t->shape[1] * t->shape[2] * t->shape[3])); break;
        case AT_T_BN_WEIGHT: case AT_T_BN_VAR: scale = 0.5f, offset = 1.0f; break;
        case AT_T_BN_LAST_WEIGHT: scale = 0.1f, offset = 0.3f; break;
        case AT_T_FC_WEIGHT: scale = (float)sqrt(6.0 / (double)t->shape[1]); break;
        default: break;
        }
        return drawn(key, c->spec->seed, n, scale, offset);
    }
    at_fail("random model", "missing tensor '%s'", key);
    return NULL;
}

static int random_resnet(const at_random_spec *spec, at_model **out) {
    res_ctx c = {spec, NULL, 0, 0};
    const int planes[4] = {spec->widths[1], spec->widths[2], spec->widths[3], spec->widths[4]};
    for (int i = 0; i < 5; i++)
        if (spec->widths[i] < 1) return at_fail("random model", "%s width %d is not set", spec->arch, i);
    int rc = at_resnet_tensors(spec->arch, spec->widths[0], planes, spec->n_classes, res_collect, &c);
    if (rc == AT_OK) rc = at_model_build("random model", spec->arch, 1, spec->in_h, spec->in_w, res_get, &c, out);
    free(c.t);
    return rc;
}

static int random_vgg(const at_random_spec *spec, at_model **out) {
    rand_ctx c;
    memset(&c, 0, sizeof c);
    c.spec = spec;
    int blocks[5];
    if (at_vgg_topology(spec->arch, blocks, &c.bn)) return AT_ERR;
    for (int i = 0; i < 64; i++) c.conv_of_module[i] = -1;
    int module = 0, k = 0, ch = 3, h = spec->in_h, w = spec->in_w;
    for (int b = 0; b < 5; b++) {
        for (int j = 0; j < blocks[b]; j++, k++) {
            if (spec->widths[k] < 1) return at_fail("random model", "conv %d has no width", k);
            c.in_ch_of_conv[k] = ch;
            ch = spec->widths[k];
            c.conv_of_module[module++] = k;
            if (c.bn) c.conv_of_module[module++] = k;
            module++; /* relu */
        }
        module++; /* pool */
        h /= 2, w /= 2;
    }
    c.flat = ch * spec->avgpool * spec->avgpool;
    return at_model_build("random model", spec->arch, spec->avgpool, spec->in_h, spec->in_w, rand_get, &c, out);
}

int at_random_model(const at_random_spec *spec, at_model **out) {
    int blocks[4], bottleneck;
    *out = NULL;
    int rc = at_resnet_topology(spec->arch, blocks, &bottleneck) == AT_OK ? random_resnet(spec, out)
                                                                            : random_vgg(spec, out);
    if (rc) return rc;
    at_model *m = *out;
    /* ImageNet-style preprocessing so masking in [0,1] space has a meaning */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(m->pre.mean, mean, sizeof mean);
    memcpy(m->pre.std, std, sizeof std);
    m->pre.resize = m->pre.crop = spec->in_h;
    m->labels = calloc(m->n_classes, sizeof *m->labels);
    if (!m->labels) {
        at_model_free(m);
        *out = NULL;
        return at_fail("random model", "out of memory");
    }
    for (int i = 0; i < m->n_classes; i++) {
        snprintf(m->labels[i].id, sizeof m->labels[i].id, "class%d", i);
        snprintf(m->labels[i].name, sizeof m->labels[i].name, "class %d", i);
    }
    snprintf(m->name, sizeof m->name, "random-%s", spec->arch);
    return AT_OK;
}
