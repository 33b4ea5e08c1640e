/* The ResNet family's graph (docs/models.md#resnet): topology, widths read
 * from tensor shapes, module names, gate layout, the CAM default layer, the
 * refusal of tensors that do not fit the arch, and the executor's gates
 * before the residual add against a network written out by hand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/backend.h"
#include "io/safetensors.h"
#include "model/build.h"
#include "model/random_model.h"
#include "model_fixture.h"
#include "tensor_util.h"
#include "test.h"

static at_model *standard(const char *arch, int hw) {
    at_random_spec spec;
    at_random_spec_standard(&spec, arch, hw, 1000);
    spec.seed = 1;
    at_model *m = NULL;
    if (at_random_model(&spec, &m)) test_fail_at(__FILE__, __LINE__, "%s: %s", arch, at_last_error());
    return m;
}

static int count_kind(const at_model *m, at_layer_kind k) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].kind == k;
    return n;
}

TEST(resnet18_and_resnet50_have_torchvisions_parameters_gates_and_names) {
    at_model *m = standard("resnet50", 224);
    REQUIRE(m);
    CHECKF(m->n_gates == 26560, "resnet50: %d gates, not 26,560", m->n_gates);
    CHECKF(m->n_convs == 53, "resnet50: %d convs", m->n_convs);
    CHECKF(m->n_params == 25557032, "resnet50: %lld parameters, torchvision has 25,557,032", (long long)m->n_params);
    CHECKF(m->macs_per_image > 4.08e9 && m->macs_per_image < 4.12e9, "resnet50: %.3g MACs", m->macs_per_image);
    CHECK(count_kind(m, AT_L_ADD) == 16);
    int l = at_model_find_layer(m, "layer4");
    REQUIRE(l >= 0);
    CHECK(!strcmp(m->layers[l].name, "layer4.2") && m->layers[l].kind == AT_L_RELU);
    CHECK(m->layers[l].out_c == 2048 && m->layers[l].out_h == 7 && m->layers[l].out_w == 7);
    CHECK(at_model_find_layer(m, "last-conv") == l);
    CHECK(m->layers[at_model_find_layer(m, "layer4.2.add")].kind == AT_L_ADD);
    /* gates: after the ReLU where one follows, at the BN before the add otherwise, in module order */
    int c3 = at_model_find_layer(m, "layer4.2.bn3"), r1 = at_model_find_layer(m, "layer4.2.relu_1");
    int ds = at_model_find_layer(m, "layer1.0.downsample.1"), b3 = at_model_find_layer(m, "layer1.0.bn3");
    REQUIRE(c3 >= 0 && r1 >= 0 && ds >= 0 && b3 >= 0);
    CHECK(m->layers[c3].gate_offset == m->n_gates - 2048 && m->gate_layer[m->n_convs - 1] == c3);
    CHECK(m->layers[r1].gate_offset == m->n_gates - 2048 - 512);
    CHECK(m->layers[ds].gate_offset == m->layers[b3].gate_offset + 256);
    CHECK(m->layers[at_model_find_layer(m, "layer4.2")].gate_offset < 0); /* the block's ReLU after the add */
    const at_layer *pool = &m->layers[at_model_find_layer(m, "maxpool")];
    CHECK(pool->kernel == 3 && pool->stride == 2 && pool->pad == 1 && pool->out_h == 56);
    const at_layer *down = &m->layers[at_model_find_layer(m, "layer2.0.downsample.0")];
    CHECK(down->kernel == 1 && down->stride == 2 && down->out_h == 28 && down->out_c == 512);
    CHECK(m->layers[at_model_find_layer(m, "layer2.0.conv2")].stride == 2); /* V1.5: the 3x3 strides */
    at_model_free(m);

    REQUIRE((m = standard("resnet18", 224)));
    CHECKF(m->n_params == 11689512, "resnet18: %lld parameters, torchvision has 11,689,512", (long long)m->n_params);
    CHECKF(m->n_gates == 4800, "resnet18: %d gates", m->n_gates);
    CHECK(count_kind(m, AT_L_ADD) == 8 && m->n_convs == 20);
    CHECK(at_model_find_layer(m, "layer1.0.downsample.0") < 0); /* the shape does not change there */
    CHECK(at_model_find_layer(m, "layer3.0.downsample.0") >= 0);
    CHECK(!strcmp(m->layers[m->cam_layer].name, "layer4.1"));
    at_model_free(m);
}

TEST(deeper_resnets_build_at_reduced_width) {
    static const struct {
        const char *arch;
        int blocks, convs;
    } cases[] = {{"resnet34", 16, 36}, {"resnet101", 33, 104}, {"resnet152", 50, 155}};
    for (int i = 0; i < 3; i++) { /* stem = layer1's width: no downsample in resnet34's layer1 */
        at_random_spec spec = {.arch = cases[i].arch, .widths = {2, 2, 2, 3, 3}, .n_classes = 3, .in_h = 64,
                               .in_w = 64, .seed = 2};
        at_model *m = NULL;
        if (at_random_model(&spec, &m)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", cases[i].arch, at_last_error());
            continue;
        }
        CHECKF(count_kind(m, AT_L_ADD) == cases[i].blocks && m->n_convs == cases[i].convs, "%s: %d adds, %d convs",
               cases[i].arch, count_kind(m, AT_L_ADD), m->n_convs);
        at_model_free(m);
    }
}

/* A ResNet state dict written as safetensors (random values, torchvision keys). */
static void sd_add(void *ctx, const char *key, int ndim, const int64_t *shape, int kind) {
    long n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    /* BN variances must stay positive */
    float *v = test_random(key, 5, n, kind == AT_T_BN_VAR ? 0.25f : 0.3f, kind == AT_T_BN_VAR ? 1.0f : 0.0f);
    if (!fixture_tensor_add(ctx, key, v, ndim, shape)) free(v);
}

static int write_resnet(const char *path, const char *tensors_of, const char *arch) {
    static fixture_tensors f;
    f.n = 0;
    const int planes[4] = {2, 2, 3, 3};
    if (at_resnet_tensors(tensors_of, 4, planes, 3, sd_add, &f)) return AT_ERR;
    const char *keys[] = {"arch", "resize", "crop", "mean", "std"};
    const char *vals[] = {arch, "64", "64", "[0.485, 0.456, 0.406]", "[0.229, 0.224, 0.225]"};
    int rc = fixture_tensors_write(&f, path, 5, keys, vals);
    for (int i = 0; i < f.n; i++) free((void *)f.data[i]);
    return rc;
}

TEST(a_resnet_file_loads_and_one_whose_tensors_do_not_match_its_arch_is_refused_naming_the_key) {
    char path[1200];
    snprintf(path, sizeof path, "%s/r18.safetensors", test_tmpdir());
    REQUIRE(write_resnet(path, "resnet18", "resnet18") == AT_OK);
    at_model *m = NULL;
    CHECKF(at_model_load(path, &m) == AT_OK, "%s", at_last_error());
    if (m) {
        /* the stem (4) is wider than layer1 (2): layer1.0 gets a downsample, 21 convs */
        CHECKF(m->n_classes == 3 && m->n_convs == 21 && m->layers[m->cam_layer].out_c == 3, "%d classes, %d convs",
               m->n_classes, m->n_convs);
        at_backend *be = NULL;
        at_backend_options opt = {.name = "cpu"};
        float *x = test_random("x", 6, 3L * 64 * 64, 1, 0), logits[3] = {NAN, NAN, NAN};
        at_forward_args fa = {.n = 1, .input = x, .logits = logits};
        CHECKF(at_backend_create(m, &opt, &be) == AT_OK && at_forward(be, &fa) == AT_OK, "%s", at_last_error());
        CHECK(isfinite(logits[0]) && isfinite(logits[2]));
        at_backend_destroy(be);
        free(x);
    }
    at_model_free(m);
    m = NULL;
    REQUIRE(write_resnet(path, "resnet50", "resnet18") == AT_OK); /* 1x1 convs where resnet18 has 3x3 */
    CHECK(at_model_load(path, &m) == AT_ERR && !m);
    CHECKF(strstr(at_last_error(), "'layer1.0.conv1.weight'") && strstr(at_last_error(), "[*, 4, 3, 3]"), "%s",
           at_last_error());
    REQUIRE(write_resnet(path, "resnet34", "resnet18") == AT_OK); /* every resnet18 tensor fits; more blocks */
    CHECK(at_model_load(path, &m) == AT_ERR && !m);
    CHECKF(strstr(at_last_error(), "'layer1.2.conv1.weight'") && strstr(at_last_error(), "resnet18"), "%s",
           at_last_error());
    REQUIRE(write_resnet(path, "resnet18", "resnet34") == AT_OK); /* too few blocks */
    CHECK(at_model_load(path, &m) == AT_ERR);
    CHECKF(strstr(at_last_error(), "'layer1.2.conv1.weight'"), "%s", at_last_error());
}

/* The gate of a conv before the add, and the gradient summed over the
 * block input's two readers, against one BasicBlock written out by hand. */
TEST(resnet_gates_before_the_add_and_gradients_through_both_branches_match_the_block_by_hand) {
    at_random_spec spec = {.arch = "resnet18", .widths = {4, 4, 4, 4, 4}, .n_classes = 2, .in_h = 32, .in_w = 32,
                           .seed = 9};
    at_model *m = NULL;
    REQUIRE(at_random_model(&spec, &m) == AT_OK);
    at_backend *be = NULL;
    at_backend_options opt = {.name = "cpu", .conv = AT_CONV_DIRECT};
    REQUIRE(at_backend_create(m, &opt, &be) == AT_OK);
    /* layer1.0 is an identity-shortcut block: out = relu(g2 * bn2(conv2(relu(g1 * bn1(conv1(x))))) + x) */
    const int in = at_model_find_layer(m, "maxpool"), b2 = at_model_find_layer(m, "layer1.0.bn2");
    const int out = at_model_find_layer(m, "layer1.0"), r1 = at_model_find_layer(m, "layer1.0.relu");
    REQUIRE(in >= 0 && b2 >= 0 && out >= 0 && r1 >= 0);
    const long n_in = at_layer_out_size(&m->layers[in]), n_out = at_layer_out_size(&m->layers[out]);
    float *x = test_random("x", 10, 3L * 32 * 32, 1, 0), *gates = test_random("g", 10, m->n_gates, 0.5f, 1.0f);
    float *xin = malloc(sizeof(float) * n_in), *zb = malloc(sizeof(float) * n_out), *y = malloc(sizeof(float) * n_out);
    float *rb = malloc(sizeof(float) * n_out);
    int caps[4] = {in, b2, out, r1};
    float *capo[4] = {xin, zb, y, rb};
    at_forward_args ung = {.n = 1, .input = x, .n_capture = 2, .capture_layer = caps, .capture_out = capo};
    REQUIRE(at_forward(be, &ung) == AT_OK); /* ungated: the block input and bn2's output z */
    float *z = malloc(sizeof(float) * n_out);
    memcpy(z, zb, sizeof(float) * n_out);
    /* gates only at bn2: the rest stays ungated, so the block input and z are the same */
    float *g2 = malloc(sizeof(float) * m->n_gates);
    for (int i = 0; i < m->n_gates; i++) g2[i] = 1.0f;
    const int off = m->layers[b2].gate_offset, C = m->layers[b2].out_c;
    const long hw = (long)m->layers[b2].out_h * m->layers[b2].out_w;
    for (int c = 0; c < C; c++) g2[off + c] = gates[off + c];
    at_forward_args ga = {.n = 1, .input = x, .gates = g2, .n_capture = 3, .capture_layer = caps, .capture_out = capo,
                          .keep_for_backward = 1};
    REQUIRE(at_forward(be, &ga) == AT_OK);
    int bad = 0;
    for (long i = 0; i < n_out; i++) {
        const float want = g2[off + i / hw] * z[i] + xin[i];
        bad += fabsf(y[i] - (want > 0 ? want : 0)) > 1e-5f * (1 + fabsf(want));
        bad += fabsf(zb[i] - g2[off + i / hw] * z[i]) > 1e-6f * (1 + fabsf(z[i]));
    }
    CHECKF(!bad, "%d elements of the gated block differ from g*z + x", bad);
    /* backward from the block output: d gate = sum dy*[y>0]*z; d xin gets dy*[y>0] through the shortcut too */
    float *dy = test_random("dy", 10, n_out, 1, 0), *dgates = malloc(sizeof(float) * m->n_gates);
    float *dxin = malloc(sizeof(float) * n_in);
    at_backward_args ba = {.dfrom = dy, .from_layer = out, .grad_layer = in, .grad_layer_out = dxin,
                           .grad_gates = dgates};
    REQUIRE(at_backward(be, &ba) == AT_OK);
    for (int c = 0; c < C; c++) {
        double want = 0;
        for (long i = 0; i < hw; i++) want += y[c * hw + i] > 0 ? (double)dy[c * hw + i] * z[c * hw + i] : 0;
        CHECKF(fabs(dgates[off + c] - want) <= 1e-4 * (1 + fabs(want)), "gate %d: %g, want %g", c, dgates[off + c],
               want);
    }
    /* the shortcut alone: with the branch's gates at 0 the block input's gradient is dy*[y>0] */
    for (int c = 0; c < C; c++) g2[off + c] = 0.0f;
    REQUIRE(at_forward(be, &ga) == AT_OK && at_backward(be, &ba) == AT_OK);
    bad = 0;
    for (long i = 0; i < n_in; i++) bad += dxin[i] != (y[i] > 0 ? dy[i] : 0.0f);
    CHECKF(!bad, "%d shortcut gradients differ from dy*[y>0]", bad);
    free(x), free(gates), free(xin), free(zb), free(y), free(rb), free(z), free(g2), free(dy), free(dgates), free(dxin);
    test_backend_close(be, m);
}

/* A capture of the conv before a gated BN runs the two apart (the gate as
 * its own op, the conv's raw output kept for the capture): the same logits
 * as the fused epilogue, and the capture is the ungated conv output. */
TEST(resnet_gate_before_the_add_fused_or_apart_gives_the_same_result) {
    at_random_spec spec = {.arch = "resnet50", .widths = {6, 3, 4, 4, 5}, .n_classes = 4, .in_h = 40, .in_w = 36,
                           .seed = 12};
    WITH_CPU_RANDOM(&spec, m, be);
    const int n = 2, conv = at_model_find_layer(m, "layer2.0.conv3"), bn = conv + 1;
    REQUIRE(conv >= 0 && m->layers[bn].gate_offset >= 0);
    const long cn = at_layer_out_size(&m->layers[conv]) * n;
    float *x = test_random("x", 13, 3L * 40 * 36 * n, 1, 0), *g = test_random("g", 13, (long)m->n_gates * n, 0.5f, 1);
    float fused[8], apart[8], *cap = malloc(sizeof(float) * cn), *capb = malloc(sizeof(float) * cn);
    at_forward_args a = {.n = n, .input = x, .gates = g, .gates_per_item = 1, .logits = fused};
    REQUIRE(at_forward(be, &a) == AT_OK);
    int caps[2] = {conv, bn};
    float *outs[2] = {cap, capb};
    at_forward_args b = a;
    b.logits = apart, b.n_capture = 2, b.capture_layer = caps, b.capture_out = outs;
    REQUIRE(at_forward(be, &b) == AT_OK);
    for (int i = 0; i < n * m->n_classes; i++) CHECKF(fused[i] == apart[i], "logit %d: %g vs %g", i, fused[i], apart[i]);
    const int off = m->layers[bn].gate_offset, C = m->layers[bn].out_c;
    const long hw = cn / n / C;
    int bad = 0;
    for (long i = 0; i < cn; i++) bad += capb[i] != g[(i / (C * hw)) * m->n_gates + off + (i / hw) % C] * cap[i];
    CHECKF(!bad, "%d gated BN outputs are not gate * conv output", bad);
    free(x), free(g), free(cap), free(capb);
    test_backend_close(be, m);
}

/* A forward-only pass runs each block's last conv, its residual add and the
 * ReLU as one conv epilogue; capturing the node before each add keeps them
 * apart. Both give the same bits, with and without a capture of an add. */
TEST(resnet_residual_add_in_the_conv_epilogue_gives_the_bits_of_the_separate_ops) {
    at_random_spec spec = {.arch = "resnet50", .widths = {6, 3, 4, 4, 5}, .n_classes = 4, .in_h = 40, .in_w = 36,
                           .seed = 14};
    WITH_CPU_RANDOM(&spec, m, be);
    const int n = 3;
    int caps[32], n_caps = 0, first_add = -1;
    for (int j = 0; j < m->n_layers && n_caps < 32; j++)
        if (m->layers[j].kind == AT_L_ADD) {
            caps[n_caps++] = j - 1;
            if (first_add < 0) first_add = j;
        }
    REQUIRE(n_caps == 16 && first_add > 0);
    const long an = at_layer_out_size(&m->layers[first_add]) * n;
    float *x = test_random("x", 15, 3L * 40 * 36 * n, 1, 0), fused[12], apart[12];
    float *outs[33], *add_fused = malloc(sizeof(float) * an), *add_apart = malloc(sizeof(float) * an);
    for (int c = 0; c < n_caps; c++) outs[c] = malloc(sizeof(float) * at_layer_out_size(&m->layers[caps[c]]) * n);
    at_forward_args a = {.n = n, .input = x, .logits = fused};
    REQUIRE(at_forward(be, &a) == AT_OK);
    at_forward_args b = a;
    b.logits = apart, b.n_capture = n_caps, b.capture_layer = caps, b.capture_out = outs;
    REQUIRE(at_forward(be, &b) == AT_OK);
    for (int i = 0; i < n * m->n_classes; i++) CHECKF(fused[i] == apart[i], "logit %d: %g vs %g", i, fused[i], apart[i]);
    /* the add captured: its ReLU runs apart, the add stays in the epilogue unless its conv is captured too */
    int one[2] = {first_add, first_add - 1};
    float *o1[2] = {add_fused, outs[0]};
    at_forward_args c1 = a;
    c1.logits = fused, c1.n_capture = 1, c1.capture_layer = one, c1.capture_out = o1;
    at_forward_args c2 = c1;
    c2.logits = apart, c2.n_capture = 2;
    float *o2[2] = {add_apart, outs[0]};
    c2.capture_out = o2;
    REQUIRE(at_forward(be, &c1) == AT_OK && at_forward(be, &c2) == AT_OK);
    CHECK(!memcmp(add_fused, add_apart, sizeof(float) * an));
    for (int i = 0; i < n * m->n_classes; i++) CHECKF(fused[i] == apart[i], "logit %d: %g vs %g", i, fused[i], apart[i]);
    for (int c = 0; c < n_caps; c++) free(outs[c]);
    free(x), free(add_fused), free(add_apart);
    test_backend_close(be, m);
}

TEST(info_layers_prints_a_resnets_nodes_adds_gate_offsets_and_the_cam_layer) {
    char path[1200], cmd[2600];
    static char out[1 << 16];
    snprintf(path, sizeof path, "%s/r50_info.safetensors", test_tmpdir());
    REQUIRE(write_resnet(path, "resnet50", "resnet50") == AT_OK);
    snprintf(cmd, sizeof cmd, "cd %s && ./attrib info --model %s --layers 2>&1", test_root(), path);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    CHECKF(strstr(out, "resnet50, 53 convs"), "%s", out);
    CHECK(strstr(out, "conv7x7/2 pad 3") && strstr(out, "maxpool3x3/2 pad 1"));
    CHECK(strstr(out, "= layer1.0.bn3 + layer1.0.downsample.1") && strstr(out, "<- maxpool"));
    CHECK(strstr(out, "layer4.2.bn3") && strstr(out, "(CAM default)"));
    /* stem 4, conv1 2, conv2 2 gates before layer1.0.bn3 (8 wide), then its downsample */
    CHECKF(strstr(out, "conv 3, gates 8..15") && strstr(out, "conv 4, gates 16..23"), "%s", out);
}
