/* The node-rule seam of the executor (host/exec/rules.c): a rule written
 * against at_rule_* runs at every conv and linear node of a backward pass on
 * any backend. The rule here is excitation backprop's (docs/methods.md: p' =
 * x * conv^T(p / conv(x, W+), W+), no bias, 0 where the normaliser is 0),
 * whose signal is conserved layer by layer where no normaliser is 0: from a
 * one-hot top signal it sums to 1 per item at every ReLU output below. */
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

static int eb_rule(at_rule_call *c, void *user) {
    const at_layer *l = at_rule_node(c);
    const long out_n = at_layer_out_size(l) * at_rule_items(c), in_n = (long)l->in_c * l->in_h * l->in_w * at_rule_items(c);
    float *z = at_rule_scratch(c, 0), *q = at_rule_scratch(c, 1);
    int *calls = user;
    (*calls)++;
    return at_rule_forward(c, AT_WEIGHTS_POSITIVE, AT_BIAS_ZERO, at_rule_input(c), z) ||
                   at_rule_divide(c, at_rule_signal(c), z, out_n, q) ||
                   at_rule_transpose(c, AT_WEIGHTS_POSITIVE, q, z) ||
                   at_rule_multiply(c, at_rule_input(c), z, in_n, at_rule_result(c))
               ? AT_ERR
               : AT_OK;
}

static int failing_rule(at_rule_call *c, void *user) {
    return at_fail(at_rule_node(c)->name, "this rule refuses");
}

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {6, 8, 10, 8, 12, 12, 10, 9}, .hidden = {16, 12},
                                    .n_classes = 7, .in_h = 32, .in_w = 32, .avgpool = 1, .seed = 41};

/* Per item, the sum of the signal at layer L of an EB pass from class 2. */
static int eb_sums(at_backend *be, const at_model *m, const float *x, int n, int L, float *sig, int *calls) {
    float *dl = calloc((size_t)n * m->n_classes, sizeof(float));
    for (int b = 0; b < n; b++) dl[(long)b * m->n_classes + 2] = 1.0f;
    at_forward_args fa = {.n = n, .input = x, .keep_for_backward = 1};
    at_backward_args ba = {.dlogits = dl, .grad_layer = L, .grad_layer_out = sig,
                           .rules = {.conv = eb_rule, .linear = eb_rule, .user = calls}};
    int rc = at_forward(be, &fa) || at_backward(be, &ba) ? AT_ERR : AT_OK;
    free(dl);
    return rc;
}

static void eb_through_the_seam_conserves_its_signal(const char *backend) {
    at_model *m;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip), *cpu = NULL;
    if (skip) SKIP(skip);
    REQUIRE(be);
    const int n = 2;
    const long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = test_random("x", 11, in * n, 2, 0);
    for (int r = 1; r < m->n_convs; r += 3) { /* a few ReLU outputs, deep to shallow */
        const int L = m->gate_layer[r];
        const long per = at_layer_out_size(&m->layers[L]);
        float *sig = malloc(sizeof(float) * per * n);
        int calls = 0;
        REQUIRE(eb_sums(be, m, x, n, L, sig, &calls) == AT_OK);
        CHECKF(calls > 0, "the rule never ran");
        for (int b = 0; b < n; b++) {
            double sum = 0;
            for (long i = 0; i < per; i++) sum += sig[b * per + i];
            /* FP32 sums over ~1e3 terms per layer, a few layers */
            CHECKF(fabs(sum - 1.0) < 1e-4, "%s item %d: the signal at %s sums to %.9g", backend, b, m->layers[L].name, sum);
        }
        if (strcmp(backend, "cpu")) { /* and agrees with the CPU's */
            float *ref = malloc(sizeof(float) * per * n);
            int c2 = 0;
            if (!cpu) REQUIRE((cpu = test_backend_open(m, "cpu", 0)));
            REQUIRE(eb_sums(cpu, m, x, n, L, ref, &c2) == AT_OK);
            double scale = 0;
            for (long i = 0; i < per * n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
            CHECK_CLOSE("EB signal vs the CPU", sig, ref, per * n, 1e-4 * scale, 1e-4);
            free(ref);
        }
        free(sig);
    }
    /* a rule's failure is the pass's, with its message */
    float *sig = malloc(sizeof(float) * at_layer_out_size(&m->layers[m->gate_layer[0]]) * n);
    float *dl = calloc((size_t)n * m->n_classes, sizeof(float));
    at_forward_args fa = {.n = n, .input = x, .keep_for_backward = 1};
    at_backward_args bad = {.dlogits = dl, .grad_layer = m->gate_layer[0], .grad_layer_out = sig,
                            .rules = {.linear = failing_rule}};
    REQUIRE(at_forward(be, &fa) == AT_OK);
    CHECK(at_backward(be, &bad) == AT_ERR && strstr(at_last_error(), "classifier.6: this rule refuses"));
    free(dl);
    free(sig), free(x);
    at_backend_destroy(be);
    at_backend_destroy(cpu);
    at_model_free(m);
}
TEST(rules_excitation_backprop_through_the_seam_conserves_its_signal) { eb_through_the_seam_conserves_its_signal("cpu"); }
TEST(cuda_rules_excitation_backprop_through_the_seam_conserves_its_signal) {
    eb_through_the_seam_conserves_its_signal("cuda");
}

/* keep_pre_activation keeps each conv's output before its ReLU for node
 * rules, and changes nothing else: the same gradients bit for bit. */
static int pre_activation_rule(at_rule_call *c, void *user) {
    const at_layer *l = at_rule_node(c);
    const long out_n = at_layer_out_size(l) * at_rule_items(c);
    float *z = at_rule_scratch(c, 0);
    long *mismatches = user;
    if (at_rule_forward(c, AT_WEIGHTS, AT_BIAS, at_rule_input(c), z)) return AT_ERR;
    /* on the CPU backend buffers are host memory: the kept output is z itself */
    for (long i = 0; i < out_n; i++) *mismatches += memcmp(&z[i], &at_rule_output(c)[i], sizeof(float)) != 0;
    return at_rule_transpose(c, AT_WEIGHTS, at_rule_signal(c), at_rule_result(c));
}

static void keep_pre_activation_changes_no_gradient(const char *backend) {
    if (test_backend_unusable(backend)) SKIP(test_backend_unusable(backend));
    at_model *m = NULL;
    at_backend *be = NULL;
    at_backend_options opt = {.name = backend};
    REQUIRE(at_random_model(&SPEC, &m) == AT_OK && at_backend_create(m, &opt, &be) == AT_OK);
    const int n = 2;
    const long in = (long)m->in_c * m->in_h * m->in_w;
    float *x = test_random("x", 12, in * n, 2, 0), *gates = test_random("g", 12, (long)m->n_gates * n, 0.5f, 1);
    float *dl = test_random("dl", 12, (long)m->n_classes * n, 1, 0);
    float *gi[2], *gg[2];
    for (int k = 0; k < 2; k++) {
        gi[k] = malloc(sizeof(float) * in * n), gg[k] = malloc(sizeof(float) * m->n_gates * n);
        at_forward_args fa = {.n = n, .input = x, .gates = gates, .gates_per_item = 1, .keep_for_backward = 1,
                              .keep_pre_activation = k};
        at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = gi[k], .grad_gates = gg[k]};
        REQUIRE(at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
    }
    SAME_BITS("input gradient with pre-activations kept", gi[1], gi[0], in * n);
    SAME_BITS("gate gradients with pre-activations kept", gg[1], gg[0], (long)m->n_gates * n);
    if (!strcmp(backend, "cpu")) {
        long mismatches = 0;
        at_forward_args fa = {.n = n, .input = x, .keep_for_backward = 1, .keep_pre_activation = 1};
        at_backward_args ba = {.dlogits = dl, .grad_layer = -1, .grad_input = gi[1],
                               .rules = {.conv = pre_activation_rule, .user = &mismatches}};
        REQUIRE(at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
        CHECKF(mismatches == 0, "%ld kept pre-activations differ from the conv's output", mismatches);
        fa.keep_pre_activation = 0; /* without it a conv's kept output is its ReLU's */
        mismatches = 0;
        REQUIRE(at_forward(be, &fa) == AT_OK && at_backward(be, &ba) == AT_OK);
        CHECKF(mismatches > 0, "without keep_pre_activation the kept outputs still equal the pre-activations");
    }
    for (int k = 0; k < 2; k++) free(gi[k]), free(gg[k]);
    free(x), free(gates), free(dl);
    at_backend_destroy(be);
    at_model_free(m);
}
TEST(rules_keep_pre_activation_changes_no_gradient) { keep_pre_activation_changes_no_gradient("cpu"); }
TEST(cuda_rules_keep_pre_activation_changes_no_gradient) { keep_pre_activation_changes_no_gradient("cuda"); }
