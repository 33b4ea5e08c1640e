/* The executor's offers to methods (host/exec), on every backend: the CPU
 * here, CUDA in the cuda_exec_* twins (emulated in CI by tests/cuemu, on a
 * GPU when there is one). A partial forward from a captured layer, an
 * activation patch, a backward started at a layer and the ReLU rules must
 * each agree bit for bit with the full computation they stand for, on the
 * same backend; the CUDA twins also compare their rules with the CPU's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {6, 8, 10, 8, 12, 12, 10, 9}, .hidden = {16, 12},
                                    .n_classes = 7, .in_h = 33, .in_w = 41, .avgpool = 2, .seed = 31};

static int layer_of_kind(const at_model *m, at_layer_kind kind, int nth) {
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == kind && nth-- == 0) return i;
    return -1;
}

static void partial_forward_resumes_from_a_captured_layer(const char *backend) {
    at_model *m = NULL;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip);
    if (skip) SKIP(skip);
    if (!be) return;
    const int n = 3, a = layer_of_kind(m, AT_L_MAXPOOL, 1), b = m->gate_layer[m->n_convs - 2];
    const long in = (long)m->in_c * m->in_h * m->in_w, na = at_layer_out_size(&m->layers[a]) * n,
               nb = at_layer_out_size(&m->layers[b]) * n, nl = (long)m->n_classes * n;
    float *x = test_random("input", 1, in * n, 2, 0), *gates = test_random("gates", 1, (long)m->n_gates * n, 0.5f, 1);
    float *ca = malloc(sizeof(float) * na), *cb = malloc(sizeof(float) * nb), *cb2 = malloc(sizeof(float) * nb);
    float *logits = malloc(sizeof(float) * nl), *logits2 = malloc(sizeof(float) * nl);
    int caps[2] = {a, b};
    float *outs[2] = {ca, cb};
    at_forward_args full = {.n = n, .input = x, .gates = gates, .gates_per_item = 1, .logits = logits, .n_capture = 2,
                            .capture_layer = caps, .capture_out = outs};
    REQUIRE(at_forward(be, &full) == AT_OK);
    /* from layer a's output to the logits */
    at_forward_args part = {.n = n, .start_output = ca, .start_layer = a, .gates = gates, .gates_per_item = 1,
                            .logits = logits2};
    CHECKF(at_forward(be, &part) == AT_OK, "%s", at_last_error());
    SAME_BITS("logits from a partial forward", logits2, logits, nl);
    /* and stopping after layer b */
    float *out2[1] = {cb2};
    at_forward_args stop = {.n = n, .start_output = ca, .start_layer = a, .end_layer = b + 1, .gates = gates,
                            .gates_per_item = 1, .n_capture = 1, .capture_layer = &b, .capture_out = out2};
    CHECKF(at_forward(be, &stop) == AT_OK, "%s", at_last_error());
    SAME_BITS("layer b from a partial forward that stops there", cb2, cb, nb);
    /* a capture past the end is refused with its range */
    int late = b + 1;
    at_forward_args bad = stop;
    bad.capture_layer = &late;
    CHECK(at_forward(be, &bad) == AT_ERR && strstr(at_last_error(), "out of range"));
    free(x), free(gates), free(ca), free(cb), free(cb2), free(logits), free(logits2);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(exec_partial_forward_resumes_from_a_captured_layer) { partial_forward_resumes_from_a_captured_layer("cpu"); }
TEST(cuda_exec_partial_forward_resumes_from_a_captured_layer) { partial_forward_resumes_from_a_captured_layer("cuda"); }

/* Zeroing one channel of a layer by a channel patch computes what replacing
 * the layer's output with the zeroed capture computes. */
static void activation_patches_continue_from_the_patched_output(const char *backend) {
    at_model *m = NULL;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip);
    if (skip) SKIP(skip);
    if (!be) return;
    const int n = 2, L = m->gate_layer[2];
    const at_layer *l = &m->layers[L];
    const long in = (long)m->in_c * m->in_h * m->in_w, hw = (long)l->out_h * l->out_w, nc = at_layer_out_size(l) * n,
               nl = (long)m->n_classes * n;
    float *x = test_random("input", 2, in * n, 2, 0), *cap = malloc(sizeof(float) * nc), *scale = malloc(sizeof(float) * n * l->out_c);
    float *l1 = malloc(sizeof(float) * nl), *l2 = malloc(sizeof(float) * nl), *l0 = malloc(sizeof(float) * nl);
    float *outs[1] = {cap};
    at_forward_args plain = {.n = n, .input = x, .logits = l0, .n_capture = 1, .capture_layer = &L, .capture_out = outs};
    REQUIRE(at_forward(be, &plain) == AT_OK);
    for (int i = 0; i < n * l->out_c; i++) scale[i] = 1.0f;
    at_forward_args ones = {.n = n, .input = x, .logits = l1, .patch_mode = AT_PATCH_SCALE_CHANNELS, .patch_layer = L,
                            .patch = scale};
    CHECKF(at_forward(be, &ones) == AT_OK, "%s", at_last_error());
    SAME_BITS("a patch of ones", l1, l0, nl);
    for (int b = 0; b < n; b++) {
        const int c = 3 + b; /* a different channel per item */
        scale[b * l->out_c + c] = 0.0f;
        memset(cap + ((long)b * l->out_c + c) * hw, 0, sizeof(float) * hw);
    }
    at_forward_args zero = ones;
    zero.logits = l1;
    CHECKF(at_forward(be, &zero) == AT_OK, "%s", at_last_error());
    at_forward_args repl = {.n = n, .input = x, .logits = l2, .patch_mode = AT_PATCH_REPLACE, .patch_layer = L,
                            .patch = cap};
    CHECKF(at_forward(be, &repl) == AT_OK, "%s", at_last_error());
    SAME_BITS("channel patch vs replaced output", l1, l2, nl);
    int differs = 0;
    for (long i = 0; i < nl; i++) differs |= l1[i] != l0[i];
    CHECKF(differs, "zeroing a channel of %s changed no logit", l->name);
    at_forward_args keep = zero;
    keep.keep_for_backward = 1;
    CHECK(at_forward(be, &keep) == AT_ERR && strstr(at_last_error(), "forward-only"));
    free(x), free(cap), free(scale), free(l1), free(l2), free(l0);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(exec_activation_patches_continue_from_the_patched_output) { activation_patches_continue_from_the_patched_output("cpu"); }
TEST(cuda_exec_activation_patches_continue_from_the_patched_output) {
    activation_patches_continue_from_the_patched_output("cuda");
}

/* A backward started at layer L with the full pass's gradient there gives the
 * full pass's input and gate gradients. */
static void backward_from_a_layer_equals_the_full_backward(const char *backend) {
    at_model *m = NULL;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip);
    if (skip) SKIP(skip);
    if (!be) return;
    const int n = 2, L = layer_of_kind(m, AT_L_MAXPOOL, 2);
    const long in = (long)m->in_c * m->in_h * m->in_w, nL = at_layer_out_size(&m->layers[L]) * n;
    float *x = test_random("input", 3, in * n, 2, 0), *gates = test_random("gates", 3, (long)m->n_gates * n, 0.5f, 1);
    float *dl = test_random("dlogits", 3, (long)m->n_classes * n, 1, 0), *gL = malloc(sizeof(float) * nL);
    float *gi = malloc(sizeof(float) * in * n), *gi2 = malloc(sizeof(float) * in * n);
    float *gg = malloc(sizeof(float) * m->n_gates * n), *gg2 = malloc(sizeof(float) * m->n_gates * n);
    at_forward_args fa = {.n = n, .input = x, .gates = gates, .gates_per_item = 1, .keep_for_backward = 1};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    at_backward_args full = {.dlogits = dl, .grad_layer = L, .grad_layer_out = gL, .grad_input = gi, .grad_gates = gg};
    REQUIRE(at_backward(be, &full) == AT_OK);
    at_backward_args from = {.dfrom = gL, .from_layer = L, .grad_layer = -1, .grad_input = gi2, .grad_gates = gg2};
    CHECKF(at_backward(be, &from) == AT_OK, "%s", at_last_error());
    SAME_BITS("input gradient from a layer", gi2, gi, in * n);
    /* gates above L get no gradient from a pass that starts at L */
    for (int b = 0; b < n; b++)
        for (int c = 0; c < m->n_convs; c++) {
            const at_layer *r = &m->layers[m->gate_layer[c]];
            const float *g1 = gg + (long)b * m->n_gates + r->gate_offset, *g2 = gg2 + (long)b * m->n_gates + r->gate_offset;
            if (m->gate_layer[c] < L) SAME_BITS("gate gradients below the start", g2, g1, r->out_c);
            else
                for (int k = 0; k < r->out_c; k++) CHECKF(g2[k] == 0, "gate %d of %s above the start: %g", k, r->name, g2[k]);
        }
    free(x), free(gates), free(dl), free(gL), free(gi), free(gi2), free(gg), free(gg2);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(exec_backward_from_a_layer_equals_the_full_backward) { backward_from_a_layer_equals_the_full_backward("cpu"); }
TEST(cuda_exec_backward_from_a_layer_equals_the_full_backward) { backward_from_a_layer_equals_the_full_backward("cuda"); }

/* Guided backprop and deconvnet: at every ReLU the gradient passed down is
 * never negative, so the gradient reaching the first conv's output is >= 0
 * where the rule opens it; deconvnet ignores the forward's ReLU mask. Checked
 * against a backward assembled layer by layer from one-layer passes. */
static void relu_rules_follow_their_definitions(const char *backend) {
    at_model *m = NULL;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip);
    if (skip) SKIP(skip);
    if (!be) return;
    const int n = 2, r0 = m->gate_layer[0];
    const at_layer *l0 = &m->layers[r0];
    const long in = (long)m->in_c * m->in_h * m->in_w, n0 = at_layer_out_size(l0) * n;
    float *x = test_random("input", 4, in * n, 2, 0), *dl = test_random("dlogits", 4, (long)m->n_classes * n, 1, 0);
    float *act = malloc(sizeof(float) * n0), *g_above = malloc(sizeof(float) * n0), *g_rule = malloc(sizeof(float) * n0);
    float *gin[3];
    at_forward_args fa = {.n = n, .input = x, .keep_for_backward = 1, .n_capture = 1, .capture_layer = &r0,
                          .capture_out = &act};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    for (int rule = 0; rule < 3; rule++) {
        gin[rule] = malloc(sizeof(float) * in * n);
        /* the gradient arriving at the first ReLU's output, and the one it passes down */
        at_backward_args above = {.dlogits = dl, .grad_layer = r0, .grad_layer_out = g_above, .rules = {(at_relu_rule)rule}};
        at_backward_args below = {.dlogits = dl, .grad_layer = r0 - 1, .grad_layer_out = g_rule, .grad_input = gin[rule],
                                  .rules = {(at_relu_rule)rule}};
        REQUIRE(at_backward(be, &above) == AT_OK && at_backward(be, &below) == AT_OK);
        long bad = 0;
        for (long i = 0; i < n0; i++) {
            const float d = g_above[i], a = act[i];
            const float want = rule == AT_RELU_GRADIENT ? (a > 0 ? d : 0)
                               : rule == AT_RELU_GUIDED ? (a > 0 && d > 0 ? d : 0)
                                                        : (d > 0 ? d : 0);
            bad += memcmp(&want, &g_rule[i], sizeof want) != 0;
        }
        CHECKF(bad == 0, "rule %d at %s: %ld of %ld gradients differ from the rule's definition", rule, l0->name, bad, n0);
    }
    int differ = 0;
    for (long i = 0; i < in * n; i++) differ |= gin[1][i] != gin[0][i] || gin[2][i] != gin[1][i];
    CHECKF(differ, "the three rules gave the same input gradient");
    if (strcmp(backend, "cpu")) { /* and each rule's input gradient agrees with the CPU's */
        at_backend *cpu = NULL;
        at_backend_options opt = {.name = "cpu"};
        REQUIRE(at_backend_create(m, &opt, &cpu) == AT_OK);
        REQUIRE(at_forward(cpu, &fa) == AT_OK);
        float *ref = malloc(sizeof(float) * in * n);
        for (int rule = 0; rule < 3; rule++) {
            at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = ref, .rules = {(at_relu_rule)rule}};
            REQUIRE(at_backward(cpu, &ba) == AT_OK);
            double scale = 0;
            for (long i = 0; i < in * n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
            /* FP32 sums in other orders, 16 layers: ~1e-6 of scale (tests/test_cuda.c GRAD_RTOL) */
            CHECK_CLOSE("input gradient vs the CPU", gin[rule], ref, in * n, 1e-4 * scale, 1e-4);
        }
        free(ref);
        at_backend_destroy(cpu);
    }
    for (int rule = 0; rule < 3; rule++) free(gin[rule]);
    at_backward_args unknown = {.dlogits = dl, .grad_layer = -1, .grad_input = g_rule, .rules = {(at_relu_rule)7}};
    CHECK(at_backward(be, &unknown) == AT_ERR && strstr(at_last_error(), "rule"));
    free(x), free(dl), free(act), free(g_above), free(g_rule);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(exec_relu_rules_follow_their_definitions) { relu_rules_follow_their_definitions("cpu"); }
TEST(cuda_exec_relu_rules_follow_their_definitions) { relu_rules_follow_their_definitions("cuda"); }

/* The methods built on the rules, against captum on the shipped model
 * (tools/check_backprop_peers.py; skipped where torch or captum is missing). */
TEST(guided_backprop_and_deconvnet_match_captum_when_installed) {
    static char out[8192];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && PYTHONPATH=.peers /usr/bin/python3 -c 'import torch, captum.attr' 2>&1", test_root());
    if (run_cmd(cmd, out, sizeof out) != 0) SKIP("/usr/bin/python3 cannot import torch and captum (.peers; tools/check_backprop_peers.py)");
    snprintf(cmd, sizeof cmd, "cd %s && PYTHONPATH=.peers /usr/bin/python3 tools/check_backprop_peers.py --images 4 2>&1",
             test_root());
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "worst"), "exit %d:\n%s", rc, out);
}

/* The memory a backend reports grows with the batch it ran and never shrinks
 * (the arena is kept for the next call): bench prints it as the peak. */
static void memory_in_use_follows_the_largest_call(const char *backend) {
    at_model *m = NULL;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip);
    if (skip) SKIP(skip);
    if (!be) return;
    const long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = test_random("input", 5, in * 8, 2, 0);
    const size_t m0 = at_memory_in_use(be);
    at_forward_args one = {.n = 1, .input = x}, eight = {.n = 8, .input = x};
    REQUIRE(at_forward(be, &one) == AT_OK);
    const size_t m1 = at_memory_in_use(be);
    REQUIRE(at_forward(be, &eight) == AT_OK);
    const size_t m8 = at_memory_in_use(be);
    REQUIRE(at_forward(be, &one) == AT_OK);
    CHECKF(m1 > m0 && m8 > m1 && at_memory_in_use(be) == m8, "%zu, %zu, %zu, then %zu bytes", m0, m1, m8,
           at_memory_in_use(be));
    free(x);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(exec_memory_in_use_follows_the_largest_call) { memory_in_use_follows_the_largest_call("cpu"); }
TEST(cuda_exec_memory_in_use_follows_the_largest_call) { memory_in_use_follows_the_largest_call("cuda"); }
