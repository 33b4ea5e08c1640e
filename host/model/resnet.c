/* ResNet family as a graph (docs/models.md#resnet): torchvision's layout
 * (conv1, bn1, relu, maxpool, layer1..4 of BasicBlocks or Bottlenecks,
 * avgpool, fc) with every width read from the tensor shapes, BN folded into
 * its conv, the residual add an explicit node and module names as
 * torchvision's. Nodes follow torchvision's module order (a block's
 * downsample after its last conv), so the gate vector does too.
 *
 * Gates: one per output channel of every conv. Where a ReLU follows the conv
 * (through its BN) the ReLU holds them; the block's last conv and its
 * downsample have none after them, so their BN node holds them, applied
 * before the add. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/build.h"

int at_resnet_topology(const char *arch, int blocks[4], int *bottleneck) {
    static const struct {
        const char *name;
        int blocks[4], bottleneck;
    } table[] = {
        {"resnet18", {2, 2, 2, 2}, 0},  {"resnet34", {3, 4, 6, 3}, 0},  {"resnet50", {3, 4, 6, 3}, 1},
        {"resnet101", {3, 4, 23, 3}, 1}, {"resnet152", {3, 8, 36, 3}, 1},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(arch, table[i].name)) {
            memcpy(blocks, table[i].blocks, sizeof table[i].blocks);
            *bottleneck = table[i].bottleneck;
            return AT_OK;
        }
    return AT_ERR;
}

typedef struct {
    const char *subject;
    at_model *m;
    int cap;
    at_param_getter get;
    void *ctx;
} builder;

static int out_size(int n, int k, int s, int p) { return (n + 2 * p - k) / s + 1; }

/* The node holding conv k's gates. */
static void add_gates(at_model *m, at_layer *l, int k) {
    l->conv_index = k;
    l->gate_offset = m->n_gates;
    m->gate_layer[k] = (int)(l - m->layers);
    m->n_gates += l->out_c;
}

/* "<name>" conv (no bias) reading node `input`, then "<bn>" folded into it;
 * the ReLU "<relu>" after it when relu is not NULL, else the gates at the
 * BN. Returns the index of the last node added, or -1. */
static int conv_bn(builder *b, const char *name, const char *bn, const char *relu, int input, int c, int h, int w,
                   int k, int stride, int pad) {
    at_model *m = b->m;
    char key[96];
    int64_t shape[8], want[4] = {-1, c, k, k};
    snprintf(key, sizeof key, "%s.weight", name);
    at_layer *conv = at_mb_add_layer(m, b->cap, AT_L_CONV, name);
    if (!conv) return at_fail(b->subject, "too many nodes"), -1;
    conv->input = input;
    if (!(conv->weight = at_mb_get_param(b->subject, b->get, b->ctx, key, 4, want, shape))) return -1;
    const int oc = (int)shape[0];
    if (oc < 1 || oc > 65536) return at_fail(b->subject, "tensor '%s' has %d output channels", key, oc), -1;
    if (!(conv->bias = calloc(oc, sizeof(float)))) return at_fail(b->subject, "out of memory"), -1;
    conv->in_c = c, conv->in_h = h, conv->in_w = w;
    conv->out_c = oc, conv->out_h = out_size(h, k, stride, pad), conv->out_w = out_size(w, k, stride, pad);
    if (conv->out_h < 1 || conv->out_w < 1)
        return at_fail(b->subject, "input %dx%d is too small for %s (%s)", m->in_h, m->in_w, m->arch, name), -1;
    conv->kernel = k, conv->stride = stride, conv->pad = pad;
    const int ordinal = m->n_convs++;
    conv->conv_index = ordinal;
    m->macs_per_image += (double)oc * c * k * k * conv->out_h * conv->out_w;
    m->n_params += (int64_t)oc * c * k * k + 2 * (int64_t)oc; /* BN weight and bias, as torchvision counts */
    if (at_mb_fold_batchnorm(b->subject, b->get, b->ctx, bn, conv)) return -1;
    const int oh = conv->out_h, ow = conv->out_w;
    at_layer *l = at_mb_add_layer(m, b->cap, AT_L_BATCHNORM, bn);
    if (!l) return at_fail(b->subject, "too many nodes"), -1;
    at_mb_set_io(l, oc, oh, ow);
    if (relu) {
        if (!(l = at_mb_add_layer(m, b->cap, AT_L_RELU, relu))) return at_fail(b->subject, "too many nodes"), -1;
        at_mb_set_io(l, oc, oh, ow);
    }
    add_gates(m, l, ordinal);
    return m->n_layers - 1;
}

static int has_tensor(builder *b, const char *key) {
    int64_t shape[8];
    int ndim = 0;
    float *p = b->get(b->ctx, key, shape, &ndim);
    at_clear_error();
    free(p);
    return p != NULL;
}

/* One block "layerL.j" reading node x (c x h x w); returns the block's output
 * node (its final ReLU, named "layerL.j") and updates c, h, w. */
static int block(builder *b, const char *p, int bottleneck, int x, int stride, int *c, int *h, int *w) {
    at_model *m = b->m;
    char n1[64], n2[64], n3[64], r1[64], r2[64];
    int last;
    const at_layer *body;
#define NAME(buf, part) snprintf(buf, sizeof buf, "%s.%s", p, part)
    if (!bottleneck) { /* 3x3 (stride) -> 3x3, torchvision's BasicBlock */
        NAME(n1, "conv1"), NAME(r1, "bn1"), NAME(r2, "relu");
        if ((last = conv_bn(b, n1, r1, r2, x, *c, *h, *w, 3, stride, 1)) < 0) return -1;
        body = &m->layers[last];
        NAME(n2, "conv2"), NAME(r1, "bn2");
        if ((last = conv_bn(b, n2, r1, NULL, last, body->out_c, body->out_h, body->out_w, 3, 1, 1)) < 0) return -1;
    } else { /* 1x1 -> 3x3 (stride) -> 1x1, torchvision's Bottleneck (V1.5: stride on the 3x3) */
        NAME(n1, "conv1"), NAME(r1, "bn1"), NAME(r2, "relu");
        if ((last = conv_bn(b, n1, r1, r2, x, *c, *h, *w, 1, 1, 0)) < 0) return -1;
        body = &m->layers[last];
        NAME(n2, "conv2"), NAME(r1, "bn2"), NAME(r2, "relu_1");
        if ((last = conv_bn(b, n2, r1, r2, last, body->out_c, body->out_h, body->out_w, 3, stride, 1)) < 0) return -1;
        body = &m->layers[last];
        NAME(n3, "conv3"), NAME(r1, "bn3");
        if ((last = conv_bn(b, n3, r1, NULL, last, body->out_c, body->out_h, body->out_w, 1, 1, 0)) < 0) return -1;
    }
    body = &m->layers[last];
    const int oc = body->out_c, oh = body->out_h, ow = body->out_w, branch = last;
    int shortcut = x;
    NAME(n1, "downsample.0");
    char key[96];
    snprintf(key, sizeof key, "%s.weight", n1);
    if (stride != 1 || oc != *c || has_tensor(b, key)) { /* torchvision's rule; a missing tensor is named */
        NAME(r1, "downsample.1");
        if ((shortcut = conv_bn(b, n1, r1, NULL, x, *c, *h, *w, 1, stride, 0)) < 0) return -1;
        const at_layer *d = &m->layers[shortcut];
        if (d->out_c != oc || d->out_h != oh || d->out_w != ow)
            return at_fail(b->subject, "tensor '%s' gives %dx%dx%d, the block's output is %dx%dx%d", key, d->out_c,
                           d->out_h, d->out_w, oc, oh, ow), -1;
    }
    NAME(n2, "add");
    at_layer *add = at_mb_add_layer(m, b->cap, AT_L_ADD, n2);
    if (!add) return at_fail(b->subject, "too many nodes"), -1;
    add->input = branch, add->input2 = shortcut;
    at_mb_set_io(add, oc, oh, ow);
    at_layer *relu = at_mb_add_layer(m, b->cap, AT_L_RELU, p);
    if (!relu) return at_fail(b->subject, "too many nodes"), -1;
    at_mb_set_io(relu, oc, oh, ow);
#undef NAME
    *c = oc, *h = oh, *w = ow;
    return m->n_layers - 1;
}

int at_resnet_build(const char *subject, const char *arch, int in_h, int in_w, at_param_getter get, void *ctx,
                    at_model **out) {
    *out = NULL;
    int blocks[4], bottleneck;
    if (at_resnet_topology(arch, blocks, &bottleneck)) return at_fail(subject, "unknown arch '%s'", arch);
    int n_blocks = 0;
    for (int s = 0; s < 4; s++) n_blocks += blocks[s];
    const int convs = 1 + n_blocks * (bottleneck ? 3 : 2) + 4;
    const int cap = 4 + n_blocks * 12 + 3;
    at_model *m;
    if (at_mb_new_model(subject, arch, in_h, in_w, cap, convs, &m)) return AT_ERR;
    builder b = {subject, m, cap, get, ctx};
    int64_t shape[8];
    int ndim = 0;
    float *w0 = get(ctx, "conv1.weight", shape, &ndim);
    if (!w0) {
        at_model_free(m);
        if (!strstr(at_last_error(), "conv1.weight")) at_fail(subject, "missing tensor 'conv1.weight'");
        return AT_ERR;
    }
    free(w0);
    if (ndim != 4 || shape[1] < 1 || shape[1] > 64 || shape[2] != 7 || shape[3] != 7) {
        at_model_free(m);
        return at_fail(subject, "tensor 'conv1.weight' is not %s's stem conv [out, in, 7, 7]", arch);
    }
    m->in_c = (int)shape[1];
    int c = m->in_c, h = in_h, w = in_w, x;
    if ((x = conv_bn(&b, "conv1", "bn1", "relu", -1, c, h, w, 7, 2, 3)) < 0) goto fail;
    c = m->layers[x].out_c, h = m->layers[x].out_h, w = m->layers[x].out_w;
    at_layer *pool = at_mb_add_layer(m, cap, AT_L_MAXPOOL, "maxpool");
    pool->in_c = pool->out_c = c, pool->in_h = h, pool->in_w = w;
    pool->kernel = 3, pool->stride = 2, pool->pad = 1;
    h = out_size(h, 3, 2, 1), w = out_size(w, 3, 2, 1);
    pool->out_h = h, pool->out_w = w;
    x = m->n_layers - 1;
    for (int s = 0; s < 4; s++)
        for (int j = 0; j < blocks[s]; j++) {
            char p[32];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, j);
            if ((x = block(&b, p, bottleneck, x, s > 0 && j == 0 ? 2 : 1, &c, &h, &w)) < 0) goto fail;
        }
    m->cam_layer = x; /* layer4: the last block's output */
    at_layer *ap = at_mb_add_layer(m, cap, AT_L_ADAPTIVE_AVGPOOL, "avgpool");
    ap->in_c = ap->out_c = c, ap->in_h = h, ap->in_w = w;
    ap->out_h = ap->out_w = 1;
    at_mb_set_io(at_mb_add_layer(m, cap, AT_L_FLATTEN, "flatten"), c, 1, 1);
    at_layer *fc = at_mb_add_layer(m, cap, AT_L_LINEAR, "fc");
    int64_t want_w[2] = {-1, c}, want_b[1];
    if (!(fc->weight = at_mb_get_param(subject, get, ctx, "fc.weight", 2, want_w, shape))) goto fail;
    const int classes = (int)shape[0];
    if (classes < 1) {
        at_fail(subject, "tensor 'fc.weight' has %d outputs", classes);
        goto fail;
    }
    want_b[0] = classes;
    if (!(fc->bias = at_mb_get_param(subject, get, ctx, "fc.bias", 1, want_b, shape))) goto fail;
    fc->in_c = c, fc->in_h = fc->in_w = 1;
    fc->out_c = classes, fc->out_h = fc->out_w = 1;
    m->macs_per_image += (double)c * classes;
    m->n_params += (int64_t)c * classes + classes;
    m->n_classes = classes;
    *out = m;
    return AT_OK;
fail:
    at_model_free(m);
    return AT_ERR;
}

int at_resnet_tensors(const char *arch, int stem, const int planes[4], int n_classes, at_tensor_fn fn, void *ctx) {
    int blocks[4], bottleneck;
    if (at_resnet_topology(arch, blocks, &bottleneck)) return at_fail("random model", "unknown arch '%s'", arch);
    const int expansion = bottleneck ? 4 : 1;
    char key[96];
#define CONV(name, o, i, k)                                                                                         \
    do {                                                                                                           \
        const int64_t sh_[4] = {o, i, k, k};                                                                       \
        fn(ctx, name, 4, sh_, AT_T_CONV);                                                                           \
    } while (0)
#define BN(prefix, o, last)                                                                                        \
    do {                                                                                                           \
        const int64_t sh_[1] = {o};                                                                                \
        static const char *parts_[4] = {"weight", "bias", "running_mean", "running_var"};                          \
        for (int q_ = 0; q_ < 4; q_++) {                                                                           \
            snprintf(key, sizeof key, "%s.%s", prefix, parts_[q_]);                                                \
            fn(ctx, key, 1, sh_, q_ == 0 && (last) ? AT_T_BN_LAST_WEIGHT : AT_T_BN_WEIGHT + q_);                    \
        }                                                                                                          \
    } while (0)
    CONV("conv1.weight", stem, 3, 7);
    BN("bn1", stem, 0);
    int c = stem;
    for (int s = 0; s < 4; s++)
        for (int j = 0; j < blocks[s]; j++) {
            const int pl = planes[s], oc = pl * expansion, stride = s > 0 && j == 0 ? 2 : 1;
            char p[32], name[64];
            snprintf(p, sizeof p, "layer%d.%d", s + 1, j);
            const int nconv = bottleneck ? 3 : 2;
            for (int q = 1; q <= nconv; q++) {
                const int in = q == 1 ? c : pl, o = q == nconv ? oc : pl;
                const int k = bottleneck && q != 2 ? 1 : 3;
                snprintf(name, sizeof name, "%s.conv%d.weight", p, q);
                CONV(name, o, in, k);
                snprintf(name, sizeof name, "%s.bn%d", p, q);
                BN(name, o, q == nconv);
            }
            if (stride != 1 || c != oc) {
                snprintf(name, sizeof name, "%s.downsample.0.weight", p);
                CONV(name, oc, c, 1);
                snprintf(name, sizeof name, "%s.downsample.1", p);
                BN(name, oc, 0);
            }
            c = oc;
        }
    const int64_t fw[2] = {n_classes, c}, fb[1] = {n_classes};
    fn(ctx, "fc.weight", 2, fw, AT_T_FC_WEIGHT);
    fn(ctx, "fc.bias", 1, fb, AT_T_FC_BIAS);
#undef CONV
#undef BN
    return AT_OK;
}
