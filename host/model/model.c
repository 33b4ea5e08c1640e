/* VGG family as data (docs/methods.md#models-and-preprocessing): topology from the arch name, widths and class
 * count from tensor shapes, BN folded into the conv at build time. The
 * builder's helpers (host/model/build.h) serve ResNet too (host/model/resnet.c). */
#include "model/model.h"
#include "model/build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int at_vgg_topology(const char *arch, int convs_per_block[5], int *batch_norm) {
    static const struct {
        const char *name;
        int blocks[5];
    } table[] = {
        {"vgg11", {1, 1, 2, 2, 2}},
        {"vgg13", {2, 2, 2, 2, 2}},
        {"vgg16", {2, 2, 3, 3, 3}},
        {"vgg19", {2, 2, 4, 4, 4}},
    };
    char base[32];
    snprintf(base, sizeof base, "%s", arch);
    size_t len = strlen(base);
    *batch_norm = 0;
    if (len > 3 && strcmp(base + len - 3, "_bn") == 0) {
        base[len - 3] = 0;
        *batch_norm = 1;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(base, table[i].name) == 0) {
            memcpy(convs_per_block, table[i].blocks, sizeof table[i].blocks);
            return AT_OK;
        }
    return at_fail(NULL, "unknown arch '%s' (expected vgg11, vgg13, vgg16, vgg19, optionally with _bn, "
                   "or resnet18, resnet34, resnet50, resnet101, resnet152)", arch);
}

int64_t at_layer_out_size(const at_layer *l) { return (int64_t)l->out_c * l->out_h * l->out_w; }

static int shape_is(const int64_t *shape, int ndim, int want_ndim, const int64_t *want) {
    if (ndim != want_ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (want[i] >= 0 && shape[i] != want[i]) return 0;
    return 1;
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t o = snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* Fetches key and checks its shape (-1 = any extent); reports what it found. */
float *at_mb_get_param(const char *subject, at_param_getter get, void *ctx, const char *key,
                        int want_ndim, const int64_t *want, int64_t shape[8]) {
    int ndim = 0;
    float *p = get(ctx, key, shape, &ndim);
    if (!p) {
        if (!strstr(at_last_error(), key)) at_fail(subject, "missing tensor '%s'", key);
        return NULL;
    }
    if (!shape_is(shape, ndim, want_ndim, want)) {
        char got[96], exp[96];
        shape_str(got, sizeof got, shape, ndim);
        shape_str(exp, sizeof exp, want, want_ndim);
        for (char *c = exp; *c; c++)
            if (c[0] == '-' && c[1] == '1') c[0] = '*', memmove(c + 1, c + 2, strlen(c + 2) + 1);
        at_fail(subject, "tensor '%s' has shape %s, expected %s", key, got, exp);
        free(p);
        return NULL;
    }
    return p;
}

int at_mb_new_model(const char *subject, const char *arch, int in_h, int in_w, int cap, int n_gates, at_model **out) {
    *out = NULL;
    if (in_h < 32 || in_w < 32 || in_h > 8192 || in_w > 8192)
        return at_fail(subject, "input size %dx%d out of range 32..8192", in_h, in_w);
    at_model *m = calloc(1, sizeof *m);
    if (!m) return at_fail(subject, "out of memory");
    m->layers = calloc(cap, sizeof *m->layers);
    m->gate_layer = calloc(n_gates, sizeof *m->gate_layer);
    if (!m->layers || !m->gate_layer) {
        at_model_free(m);
        return at_fail(subject, "out of memory");
    }
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    snprintf(m->name, sizeof m->name, "%s", arch);
    m->in_h = in_h, m->in_w = in_w;
    *out = m;
    return AT_OK;
}

at_layer *at_mb_add_layer(at_model *m, int cap, at_layer_kind kind, const char *name) {
    if (m->n_layers >= cap) return NULL;
    at_layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->input = m->n_layers - 2; /* VGG is a chain: each module reads the one before */
    l->input2 = -1;
    l->conv_index = -1;
    l->gate_offset = -1;
    snprintf(l->name, sizeof l->name, "%s", name);
    return l;
}

void at_mb_set_io(at_layer *l, int c, int h, int w) {
    l->in_c = l->out_c = c;
    l->in_h = l->out_h = h;
    l->in_w = l->out_w = w;
}

int at_mb_fold_batchnorm(const char *subject, at_param_getter get, void *ctx, const char *prefix, at_layer *conv) {
    const char *parts[4] = {"weight", "bias", "running_mean", "running_var"};
    float *v[4] = {0};
    int64_t want[1] = {conv->out_c}, shape[8];
    int rc = AT_OK;
    for (int i = 0; i < 4 && rc == AT_OK; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.%s", prefix, parts[i]);
        v[i] = at_mb_get_param(subject, get, ctx, key, 1, want, shape);
        if (!v[i]) rc = AT_ERR;
    }
    if (rc == AT_OK) {
        int per_out = conv->in_c * conv->kernel * conv->kernel;
        for (int o = 0; o < conv->out_c; o++) {
            float scale = v[0][o] / sqrtf(v[3][o] + BN_EPS);
            for (int i = 0; i < per_out; i++) conv->weight[(size_t)o * per_out + i] *= scale;
            conv->bias[o] = (conv->bias[o] - v[2][o]) * scale + v[1][o];
        }
    }
    for (int i = 0; i < 4; i++) free(v[i]);
    return rc;
}

static int build_features(const char *subject, at_model *m, int cap, const int blocks[5], int bn,
                          at_param_getter get, void *ctx, int *c, int *h, int *w) {
    int module = 0;
    char name[32];
    if (!bn) { /* a _bn state dict under a plain arch name shifts every key */
        int64_t shape[8];
        int ndim = 0;
        float *p = get(ctx, "features.1.running_mean", shape, &ndim);
        if (p) {
            free(p);
            return at_fail(subject, "has BatchNorm tensors (features.1.running_mean) but arch '%s'; "
                           "set the metadata arch to '%s_bn'", m->arch, m->arch);
        }
    }
    for (int b = 0; b < 5; b++) {
        for (int j = 0; j < blocks[b]; j++) {
            int64_t shape[8], want_w[4] = {-1, *c, 3, 3}, want_b[1];
            snprintf(name, sizeof name, "features.%d", module);
            at_layer *conv = at_mb_add_layer(m, cap, AT_L_CONV, name);
            char key[64];
            snprintf(key, sizeof key, "features.%d.weight", module);
            conv->weight = at_mb_get_param(subject, get, ctx, key, 4, want_w, shape);
            if (!conv->weight) return AT_ERR;
            int out_c = (int)shape[0];
            if (out_c <= 0 || out_c > 65536)
                return at_fail(subject, "tensor '%s' has %d output channels", key, out_c);
            want_b[0] = out_c;
            snprintf(key, sizeof key, "features.%d.bias", module);
            conv->bias = at_mb_get_param(subject, get, ctx, key, 1, want_b, shape);
            if (!conv->bias) return AT_ERR;
            conv->in_c = *c, conv->in_h = *h, conv->in_w = *w;
            conv->out_c = out_c, conv->out_h = *h, conv->out_w = *w;
            conv->kernel = 3, conv->stride = 1, conv->pad = 1;
            conv->conv_index = m->n_convs;
            m->macs_per_image += (double)out_c * *c * 9 * *h * *w;
            m->n_params += (int64_t)out_c * *c * 9 + out_c;
            *c = out_c;
            module++;
            if (bn) {
                snprintf(name, sizeof name, "features.%d", module);
                if (at_mb_fold_batchnorm(subject, get, ctx, name, conv)) return AT_ERR;
                at_mb_set_io(at_mb_add_layer(m, cap, AT_L_BATCHNORM, name), *c, *h, *w);
                module++;
            }
            snprintf(name, sizeof name, "features.%d", module);
            at_layer *relu = at_mb_add_layer(m, cap, AT_L_RELU, name);
            at_mb_set_io(relu, *c, *h, *w);
            relu->conv_index = m->n_convs;
            relu->gate_offset = m->n_gates;
            m->gate_layer[m->n_convs] = m->n_layers - 1;
            m->n_gates += out_c;
            m->n_convs++;
            module++;
        }
        snprintf(name, sizeof name, "features.%d", module);
        at_layer *pool = at_mb_add_layer(m, cap, AT_L_MAXPOOL, name);
        pool->in_c = pool->out_c = *c;
        pool->in_h = *h, pool->in_w = *w;
        pool->kernel = 2, pool->stride = 2, pool->pad = 0;
        *h /= 2, *w /= 2; /* floor, as PyTorch with ceil_mode=False */
        if (*h < 1 || *w < 1)
            return at_fail(subject, "input %dx%d is too small for %s (5 max-pools need >= 32 px)",
                           m->in_h, m->in_w, m->arch);
        pool->out_h = *h, pool->out_w = *w;
        module++;
    }
    return AT_OK;
}

static int build_classifier(const char *subject, at_model *m, int cap, at_param_getter get,
                            void *ctx, int features) {
    int in = features;
    for (int i = 0; i < 3; i++) {
        int module = 3 * i;
        char name[32], key[64];
        int64_t shape[8], want_w[2] = {-1, in}, want_b[1];
        snprintf(name, sizeof name, "classifier.%d", module);
        at_layer *fc = at_mb_add_layer(m, cap, AT_L_LINEAR, name);
        snprintf(key, sizeof key, "classifier.%d.weight", module);
        fc->weight = at_mb_get_param(subject, get, ctx, key, 2, want_w, shape);
        if (!fc->weight) return AT_ERR;
        int out = (int)shape[0];
        if (out <= 0) return at_fail(subject, "tensor '%s' has %d outputs", key, out);
        want_b[0] = out;
        snprintf(key, sizeof key, "classifier.%d.bias", module);
        fc->bias = at_mb_get_param(subject, get, ctx, key, 1, want_b, shape);
        if (!fc->bias) return AT_ERR;
        fc->in_c = in, fc->in_h = fc->in_w = 1;
        fc->out_c = out, fc->out_h = fc->out_w = 1;
        m->macs_per_image += (double)in * out;
        m->n_params += (int64_t)in * out + out;
        in = out;
        if (i < 2) {
            snprintf(name, sizeof name, "classifier.%d", module + 1);
            at_mb_set_io(at_mb_add_layer(m, cap, AT_L_RELU, name), in, 1, 1);
            snprintf(name, sizeof name, "classifier.%d", module + 2);
            at_mb_set_io(at_mb_add_layer(m, cap, AT_L_DROPOUT, name), in, 1, 1);
        }
    }
    m->n_classes = in;
    return AT_OK;
}

int at_model_build(const char *subject, const char *arch, int avgpool, int in_h, int in_w,
                   at_param_getter get, void *ctx, at_model **out) {
    *out = NULL;
    int blocks[5], bn, rblocks[4];
    if (at_resnet_topology(arch, rblocks, &bn) == AT_OK) return at_resnet_build(subject, arch, in_h, in_w, get, ctx, out);
    if (at_vgg_topology(arch, blocks, &bn)) return at_fail_prefix(subject);
    if (avgpool < 1 || avgpool > 64) return at_fail(subject, "avgpool %d out of range 1..64", avgpool);
    int n_convs = 0;
    for (int b = 0; b < 5; b++) n_convs += blocks[b];
    int cap = n_convs * (bn ? 3 : 2) + 5 + 1 + 8;
    at_model *m;
    if (at_mb_new_model(subject, arch, in_h, in_w, cap, n_convs, &m)) return AT_ERR;
    /* input channels come from the first conv's weight */
    int64_t shape[8];
    int ndim = 0;
    float *w0 = get(ctx, "features.0.weight", shape, &ndim);
    if (!w0) {
        at_model_free(m);
        if (!strstr(at_last_error(), "features.0.weight"))
            at_fail(subject, "missing tensor 'features.0.weight'");
        return AT_ERR;
    }
    free(w0);
    if (ndim != 4 || shape[1] < 1 || shape[1] > 64) {
        at_model_free(m);
        return at_fail(subject, "tensor 'features.0.weight' is not a conv weight [out, in, 3, 3]");
    }
    m->in_c = (int)shape[1];
    int c = m->in_c, h = in_h, w = in_w;
    if (build_features(subject, m, cap, blocks, bn, get, ctx, &c, &h, &w)) goto fail;
    at_layer *ap = at_mb_add_layer(m, cap, AT_L_ADAPTIVE_AVGPOOL, "avgpool");
    ap->in_c = ap->out_c = c, ap->in_h = h, ap->in_w = w;
    ap->out_h = ap->out_w = avgpool;
    if (build_classifier(subject, m, cap, get, ctx, c * avgpool * avgpool)) goto fail;
    m->cam_layer = m->gate_layer[m->n_convs - 1];
    *out = m;
    return AT_OK;
fail:
    at_model_free(m);
    return AT_ERR;
}

void at_model_free(at_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_layers; i++) {
        free(m->layers[i].weight);
        free(m->layers[i].bias);
    }
    free(m->layers);
    free(m->gate_layer);
    free(m->labels);
    free(m);
}

int at_model_find_layer(const at_model *m, const char *spec) {
    if (!spec || !spec[0]) return at_fail("layer", "empty layer name");
    if (strcmp(spec, "last-conv") == 0) return m->cam_layer;
    char *end;
    long k = strtol(spec, &end, 10);
    if (end != spec && *end == 0) {
        if (k < 0 || k >= m->n_convs)
            return at_fail("layer", "conv ordinal %ld out of range 0..%d for %s", k, m->n_convs - 1,
                           m->arch);
        return m->gate_layer[k];
    }
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, spec) == 0) return i;
    /* a container ("layer4"): its last child's output, as a PyTorch hook on it sees */
    size_t len = strlen(spec);
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const char *nm = m->layers[i].name;
        if (strncmp(nm, spec, len) == 0 && nm[len] == '.' && nm[len + 1] &&
            strspn(nm + len + 1, "0123456789") == strlen(nm + len + 1))
            return i;
    }
    return at_fail("layer", "no layer '%s' in %s (use a conv ordinal 0..%d or a module name%s)", spec, m->arch,
                   m->n_convs - 1, strncmp(m->arch, "resnet", 6) ? " features.N" : " such as layer4 or layer4.1.conv2");
}
