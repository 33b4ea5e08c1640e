/* Graphs that are not chains: a residual block (a node read by two others,
 * an add, a ReLU after the add that must not overwrite a tensor someone else
 * still reads) and an explicit flatten, through the executor on every
 * backend. The forward and the backward (the gradient summed over both
 * readers of the skipped tensor) are checked against the same network
 * written out with the CPU ops by hand; the CUDA twin against the CPU. */
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "cpu/conv.h"
#include "cpu/ops.h"
#include "core/error.h"
#include "model/model.h"
#include "tensor_util.h"
#include "test.h"

enum { IN_C = 3, HW = 12, C = 6, CLASSES = 5 };

static at_layer *node(at_model *m, at_layer_kind kind, const char *name, int input, int c, int h, int w) {
    at_layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind, l->input = input, l->input2 = -1, l->conv_index = -1, l->gate_offset = -1;
    snprintf(l->name, sizeof l->name, "%s", name);
    const at_layer *src = input >= 0 ? &m->layers[input] : NULL;
    l->in_c = src ? src->out_c : m->in_c, l->in_h = src ? src->out_h : m->in_h, l->in_w = src ? src->out_w : m->in_w;
    l->out_c = c, l->out_h = h, l->out_w = w;
    return l;
}

/* An empty model of IN_C x HW x HW inputs and CLASSES outputs, room for cap nodes. */
static at_model *new_model(const char *arch, int cap, int n_convs) {
    at_model *m = calloc(1, sizeof *m);
    m->layers = calloc(cap, sizeof(at_layer));
    m->gate_layer = calloc(n_convs, sizeof(int));
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->in_c = IN_C, m->in_h = m->in_w = HW, m->n_classes = CLASSES;
    for (int c = 0; c < 3; c++) m->pre.mean[c] = 0.5f, m->pre.std[c] = 0.25f;
    return m;
}

static void conv_params(at_layer *l, int seed) {
    l->kernel = 3, l->stride = 1, l->pad = 1;
    l->weight = test_random("w", seed, (long)l->out_c * l->in_c * 9, 0.4f, 0);
    l->bias = test_random("b", seed, l->out_c, 0.1f, 0);
}

/* Nodes 0 and 1, both models' start: conv0 (its parameters from seed) and relu0, gated. */
static void conv_relu0(at_model *m, int seed) {
    at_layer *c0 = node(m, AT_L_CONV, "conv0", -1, C, HW, HW);
    conv_params(c0, seed);
    c0->conv_index = 0;
    at_layer *r0 = node(m, AT_L_RELU, "relu0", 0, C, HW, HW);
    r0->conv_index = 0, r0->gate_offset = 0;
}

/* x -> conv0 -> relu0 -> [conv1 -> relu1 -> conv2] + relu0 -> add -> relu2 ->
 * maxpool -> avgpool 2x2 -> flatten -> fc. relu0 is read by conv1 and the add. */
static at_model *residual_model(void) {
    at_model *m = new_model("residual-test", 16, 2);
    conv_relu0(m, 1);
    at_layer *c1 = node(m, AT_L_CONV, "block.conv1", 1, C, HW, HW);
    conv_params(c1, 2);
    c1->conv_index = 1;
    at_layer *r1 = node(m, AT_L_RELU, "block.relu1", 2, C, HW, HW);
    r1->conv_index = 1, r1->gate_offset = C;
    at_layer *c2 = node(m, AT_L_CONV, "block.conv2", 3, C, HW, HW);
    conv_params(c2, 3);
    at_layer *add = node(m, AT_L_ADD, "block.add", 4, C, HW, HW);
    add->input2 = 1;
    node(m, AT_L_RELU, "block.relu2", 5, C, HW, HW);
    at_layer *mp = node(m, AT_L_MAXPOOL, "pool", 6, C, HW / 2, HW / 2);
    mp->kernel = 2, mp->stride = 2;
    node(m, AT_L_ADAPTIVE_AVGPOOL, "avgpool", 7, C, 2, 2);
    node(m, AT_L_FLATTEN, "flatten", 8, C * 4, 1, 1);
    at_layer *fc = node(m, AT_L_LINEAR, "fc", 9, CLASSES, 1, 1);
    fc->in_c = C * 4, fc->in_h = fc->in_w = 1;
    fc->weight = test_random("fcw", 4, (long)CLASSES * C * 4, 0.3f, 0);
    fc->bias = test_random("fcb", 4, CLASSES, 0.1f, 0);
    m->n_convs = 2, m->n_gates = 2 * C;
    m->gate_layer[0] = 1, m->gate_layer[1] = 3;
    return m;
}

/* The same network with the CPU ops, forward and the gradients of <dl, logits>. */
typedef struct {
    float *logits, *gin, *ggates;
} reference;

static void reference_pass(const at_model *m, const float *x, const float *gates, const float *dl, int n,
                           reference *r) {
    const long a = (long)n * C * HW * HW, h = (long)n * C * (HW / 2) * (HW / 2), p4 = (long)n * C * 4;
    const long in = (long)n * IN_C * HW * HW;
    const size_t wc = at_conv2d_workspace_floats(C, HW, HW, 3, 3, 1, 1), wi = at_conv2d_workspace_floats(IN_C, HW, HW, 3, 3, 1, 1);
    float *ws = malloc(sizeof(float) * ((wc > wi ? wc : wi) + 1)); /* the backwards into C and into IN_C channels */
    float *z0 = malloc(4 * a), *a0 = malloc(4 * a), *y0 = malloc(4 * a), *z1 = malloc(4 * a), *a1 = malloc(4 * a),
          *y1 = malloc(4 * a), *z2 = malloc(4 * a), *s = malloc(4 * a), *q = malloc(4 * a), *mp = malloc(4 * h),
          *ap = malloc(4 * p4);
    const at_layer *L = m->layers;
    at_conv2d_forward(x, n, IN_C, HW, HW, L[0].weight, L[0].bias, C, 3, 3, 1, 1, z0, ws);
    memcpy(y0, z0, 4 * a);
    at_gated_relu_forward(y0, n, C, HW * HW, gates, m->n_gates, a0);
    at_conv2d_forward(y0, n, C, HW, HW, L[2].weight, L[2].bias, C, 3, 3, 1, 1, z1, ws);
    memcpy(y1, z1, 4 * a);
    at_gated_relu_forward(y1, n, C, HW * HW, gates + C, m->n_gates, a1);
    at_conv2d_forward(y1, n, C, HW, HW, L[4].weight, L[4].bias, C, 3, 3, 1, 1, z2, ws);
    at_add_forward(z2, y0, a, s);
    memcpy(q, s, 4 * a);
    at_gated_relu_forward(q, n, C, HW * HW, NULL, 0, NULL);
    at_maxpool2d_forward(q, n, C, HW, HW, 2, 2, 0, mp);
    at_adaptive_avgpool_forward(mp, n, C, HW / 2, HW / 2, 2, 2, ap);
    r->logits = malloc(sizeof(float) * n * CLASSES);
    at_linear_forward(ap, n, C * 4, L[10].weight, L[10].bias, CLASSES, r->logits);
    /* backward */
    float *gap = malloc(4 * p4), *gmp = malloc(4 * h), *gq = malloc(4 * a), *gs = malloc(4 * a), *gy1 = malloc(4 * a),
          *gz1 = malloc(4 * a), *gy0 = malloc(4 * a), *gy0b = malloc(4 * a), *gz0 = malloc(4 * a);
    r->gin = malloc(4 * in);
    r->ggates = calloc((size_t)n * m->n_gates, sizeof(float));
    at_linear_backward_data(dl, n, C * 4, L[10].weight, CLASSES, gap);
    at_adaptive_avgpool_backward(gap, n, C, HW / 2, HW / 2, 2, 2, gmp);
    at_maxpool2d_backward(q, gmp, n, C, HW, HW, 2, 2, 0, gq);
    at_gated_relu_backward(gq, q, n, C, HW * HW, NULL, 0, gs, NULL, 0);
    at_conv2d_backward_data(gs, n, C, HW, HW, L[4].weight, C, 3, 3, 1, 1, gy1, ws);
    at_gated_relu_backward(gy1, a1, n, C, HW * HW, gates + C, m->n_gates, gz1, r->ggates + C, m->n_gates);
    at_conv2d_backward_data(gz1, n, C, HW, HW, L[2].weight, C, 3, 3, 1, 1, gy0, ws);
    at_add_forward(gy0, gs, a, gy0b); /* relu0's output is read twice: its gradient is the sum */
    at_gated_relu_backward(gy0b, a0, n, C, HW * HW, gates, m->n_gates, gz0, r->ggates, m->n_gates);
    at_conv2d_backward_data(gz0, n, IN_C, HW, HW, L[0].weight, C, 3, 3, 1, 1, r->gin, ws);
    free(ws), free(z0), free(a0), free(y0), free(z1), free(a1), free(y1), free(z2), free(s), free(q), free(mp), free(ap);
    free(gap), free(gmp), free(gq), free(gs), free(gy1), free(gz1), free(gy0), free(gy0b), free(gz0);
}

static void residual_block_runs_as_written_out(const char *backend) {
    if (test_backend_unusable(backend)) SKIP(test_backend_unusable(backend));
    at_model *m = residual_model();
    at_backend *be = test_backend_or_free(m, backend);
    if (!be) return;
    const int n = 3;
    const long in = (long)n * IN_C * HW * HW;
    float *x = test_random("x", 7, in, 2, 0), *gates = test_random("g", 7, (long)n * m->n_gates, 0.5f, 1);
    float *dl = test_random("dl", 7, (long)n * CLASSES, 1, 0);
    reference ref;
    reference_pass(m, x, gates, dl, n, &ref);
    float *logits = malloc(sizeof(float) * n * CLASSES), *l2 = malloc(sizeof(float) * n * CLASSES);
    float *gin = malloc(sizeof(float) * in), *gg = malloc(sizeof(float) * n * m->n_gates);
    at_forward_args plain = {.n = n, .input = x, .gates = gates, .gates_per_item = 1, .logits = l2};
    at_forward_args fa = plain;
    fa.logits = logits, fa.keep_for_backward = 1;
    at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = gin, .grad_gates = gg};
    REQUIRE(at_forward(be, &plain) == AT_OK && at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
    const int cpu = !strcmp(backend, "cpu");
    /* the CPU runs the reference's ops in the reference's order: bit for bit; CUDA sums in other orders */
    const double tol = cpu ? 0 : 1e-4;
    CHECK_CLOSE("logits of a forward-only pass", l2, ref.logits, n * CLASSES, tol, tol);
    CHECK_CLOSE("logits of a kept pass", logits, ref.logits, n * CLASSES, tol, tol);
    CHECK_CLOSE("input gradient", gin, ref.gin, in, tol * 10, tol);
    CHECK_CLOSE("gate gradients", gg, ref.ggates, (long)n * m->n_gates, tol * 10, tol);
    /* a partial forward cannot start inside the block: the add reads relu0 */
    at_forward_args part = {.n = n, .start_output = x, .start_layer = 3};
    CHECK(at_forward(be, &part) == AT_ERR && strstr(at_last_error(), "reads an earlier node"));
    free(x), free(gates), free(dl), free(logits), free(l2), free(gin), free(gg);
    free(ref.logits), free(ref.gin), free(ref.ggates);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(graph_residual_block_runs_as_written_out) { residual_block_runs_as_written_out("cpu"); }
TEST(cuda_graph_residual_block_runs_as_written_out) { residual_block_runs_as_written_out("cuda"); }

TEST(graph_that_reads_a_later_node_is_refused_naming_it) {
    at_model *m = residual_model();
    m->layers[5].input2 = 7; /* the add reads the pool after it */
    at_backend *be = NULL;
    at_backend_options opt = {.name = "cpu"};
    CHECK(at_backend_create(m, &opt, &be) == AT_ERR && be == NULL && strstr(at_last_error(), "block.add"));
    at_model_free(m);
}

/* x -> conv -> relu -> avgpool 3x3/2 pad 1 -> flatten -> fc -> softmax: the
 * two pooling kinds a VGG does not use, through the executor. */
static at_model *pooling_model(void) {
    at_model *m = new_model("pooling-test", 8, 1);
    conv_relu0(m, 5);
    at_layer *ap = node(m, AT_L_AVGPOOL, "pool", 1, C, HW / 2, HW / 2);
    ap->kernel = 3, ap->stride = 2, ap->pad = 1;
    node(m, AT_L_FLATTEN, "flatten", 2, C * (HW / 2) * (HW / 2), 1, 1);
    at_layer *fc = node(m, AT_L_LINEAR, "fc", 3, CLASSES, 1, 1);
    fc->weight = test_random("fcw", 6, (long)CLASSES * fc->in_c, 0.1f, 0);
    fc->bias = test_random("fcb", 6, CLASSES, 0.1f, 0);
    node(m, AT_L_SOFTMAX, "softmax", 4, CLASSES, 1, 1);
    m->n_convs = 1, m->n_gates = C, m->gate_layer[0] = 1;
    return m;
}

static void pooling_kinds_run_as_written_out(const char *backend) {
    if (test_backend_unusable(backend)) SKIP(test_backend_unusable(backend));
    at_model *m = pooling_model();
    at_backend *be = test_backend_or_free(m, backend);
    if (!be) return;
    const int n = 2, P = HW / 2;
    const long in = (long)n * IN_C * HW * HW, a = (long)n * C * HW * HW, pn = (long)n * C * P * P;
    const long F = (long)C * P * P;
    float *x = test_random("x", 8, in, 2, 0), *dl = test_random("dl", 8, (long)n * CLASSES, 1, 0);
    /* the reference */
    float *ws = malloc(sizeof(float) * (at_conv2d_workspace_floats(IN_C, HW, HW, 3, 3, 1, 1) + 1));
    float *z = malloc(4 * a), *pool = malloc(4 * pn), *lg = malloc(4 * n * CLASSES), *pr = malloc(4 * n * CLASSES);
    float *glg = malloc(4 * n * CLASSES), *gp = malloc(4 * pn), *gz = malloc(4 * a), *gin = malloc(4 * in);
    at_conv2d_forward(x, n, IN_C, HW, HW, m->layers[0].weight, m->layers[0].bias, C, 3, 3, 1, 1, z, ws);
    at_gated_relu_forward(z, n, C, HW * HW, NULL, 0, NULL);
    at_avgpool2d_forward(z, n, C, HW, HW, 3, 2, 1, pool);
    at_linear_forward(pool, n, (int)F, m->layers[4].weight, m->layers[4].bias, CLASSES, lg);
    at_softmax_forward(lg, n, CLASSES, pr);
    at_softmax_backward(pr, dl, n, CLASSES, glg);
    at_linear_backward_data(glg, n, (int)F, m->layers[4].weight, CLASSES, gp);
    at_avgpool2d_backward(gp, n, C, HW, HW, 3, 2, 1, gz);
    at_gated_relu_backward(gz, z, n, C, HW * HW, NULL, 0, gz, NULL, 0);
    at_conv2d_backward_data(gz, n, IN_C, HW, HW, m->layers[0].weight, C, 3, 3, 1, 1, gin, ws);
    /* the executor */
    float *probs = malloc(4 * n * CLASSES), *g = malloc(4 * in);
    at_forward_args fa = {.n = n, .input = x, .logits = probs, .keep_for_backward = 1};
    at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = g};
    REQUIRE(at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
    const double tol = strcmp(backend, "cpu") ? 1e-4 : 0;
    CHECK_CLOSE("softmax output", probs, pr, n * CLASSES, tol, tol);
    double scale = 0;
    for (long i = 0; i < in; i++) scale = fabs(gin[i]) > scale ? fabs(gin[i]) : scale;
    CHECK_CLOSE("input gradient through softmax and avgpool", g, gin, in, tol * scale, tol);
    free(x), free(dl), free(ws), free(z), free(pool), free(lg), free(pr), free(glg), free(gp), free(gz), free(gin);
    free(probs), free(g);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(graph_avgpool_and_softmax_nodes_run_as_written_out) { pooling_kinds_run_as_written_out("cpu"); }
TEST(cuda_graph_avgpool_and_softmax_nodes_run_as_written_out) { pooling_kinds_run_as_written_out("cuda"); }
