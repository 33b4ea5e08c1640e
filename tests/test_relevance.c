/* The relevance methods (docs/methods.md#excitation-backprop, #lrp, #fafrp)
 * against goldens the peers made (tools/make_relevance_goldens.py: TorchRay
 * for EB and c-EB, zennit for LRP and CLRP, seed 004's Algorithm 1 run
 * literally for FAFRP), their invariants (EB's signal sums to 1, LRP
 * conserves the logit on a zero-bias net, FAFRP's V sums to the logit and
 * the seed's 2x2 example), and CUDA against the CPU. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/backend.h"
#include "golden_util.h"
#include "methods/relevance.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

/* Raw signals, FP32 against the float64 peers, relative to the largest
 * magnitude: the goldens' own float32 runs differ by up to 2.4e-5 (c-EB on
 * the mini VGG16, whose difference of two signals cancels), the rest by
 * ~1e-6; any rule or convention error moves them by 1e-2 or more. */
#define RAW_RTOL 1e-4
/* Sums of ~1e3..1e4 FP32 terms over a few layers. */
#define SUM_TOL 1e-4

static int parse_options(const at_json *meta, at_explain_options *o) {
    memset(o, 0, sizeof *o);
    if (at_method_parse(golden_meta_str(meta, "method", "?"), &o->method)) return AT_ERR;
    o->eb_layer = golden_meta_str(meta, "eb_layer", NULL);
    o->contrast_layer = golden_meta_str(meta, "contrast_layer", NULL);
    o->lrp_alpha = (float)golden_meta_int(meta, "lrp_alpha", 0);
    return at_lrp_rule_parse(golden_meta_str(meta, "lrp_rule", "epsilon-gamma-box"), &o->lrp_rule);
}

static void run_relevance_case(const char *dir, const char *name) {
    golden_case c;
    if (!golden_case_open(dir, name, &c)) return;
    at_model *m = c.m;
    at_explain_options o;
    float *x = NULL, *map = NULL, *raw = NULL, *ref = NULL;
    if (parse_options(c.meta, &o)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        goto out;
    }
    int cls = golden_meta_int(c.meta, "class", -1);
    o.classes = &cls;
    const long in_n = (long)3 * m->in_h * m->in_w, rn = at_relevance_raw_floats(m, &o);
    x = malloc(sizeof(float) * in_n), map = malloc(sizeof(float) * m->in_h * m->in_w), raw = malloc(sizeof(float) * rn);
    at_prng_fill("input", (uint64_t)golden_meta_int(c.meta, "seed", 0), x, in_n, 2.0f, 0.0f);
    at_explain_result r = {.map = map};
    long refn = 0;
    if (at_relevance_run(c.be, &o, x, 1, &r, raw) || !(ref = golden_npy(dir, "raw.npy", &refn))) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        goto out;
    }
    CHECKF(refn == rn, "%s: raw signal of %ld floats, golden %ld", name, rn, refn);
    CHECKF(r.cls == cls && r.predicted == golden_meta_int(c.meta, "predicted", -2), "%s: class %d predicted %d", name,
           r.cls, r.predicted);
    if (o.method == AT_METHOD_CEB) /* TorchRay returns c-EB after its max(0, .) */
        for (long i = 0; i < rn; i++) raw[i] = raw[i] > 0 ? raw[i] : 0;
    double scale = 0, sum = 0;
    for (long i = 0; i < refn; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    for (long i = 0; i < rn; i++) sum += raw[i];
    if (refn == rn) golden_compare(dir, "raw.npy", name, raw, rn, RAW_RTOL * scale, 0);
    /* on a ResNet an add may split the signal into parts of both signs and a zero normaliser drop one */
    if (o.method == AT_METHOD_EB && !strncmp(m->arch, "vgg", 3))
        CHECKF(fabs(sum - 1) < SUM_TOL, "%s: EB's signal sums to %.9g", name, sum);
    if (o.method == AT_METHOD_FAFRP)
        CHECKF(fabs(sum - r.logit) < SUM_TOL * (1 + fabs(r.logit)), "%s: sum V = %.9g, logit %.9g", name, sum, r.logit);
out:
    free(x), free(map), free(raw), free(ref);
    golden_case_close(&c);
}

TEST(relevance_methods_match_torchray_zennit_and_the_literal_fafrp) {
    golden_each_case("relevance", run_relevance_case, 15);
}

static const at_random_spec SPEC = {.arch = "vgg11", .widths = {6, 8, 10, 8, 12, 12, 10, 9}, .hidden = {16, 12},
                                    .n_classes = 7, .in_h = 32, .in_w = 32, .avgpool = 2, .seed = 43};

/* SPEC's small VGG with every bias zero (no bias takes a share of a sum), on the CPU. */
/* Two items' input x on SPEC with every bias zeroed (CPU), and their map and raw buffers. */
typedef struct {
    at_model *m;
    at_backend *be;
    long hw;
    float *x, *maps, *raw;
} zero_bias;

static int zero_bias_open(zero_bias *z, uint64_t seed) {
    memset(z, 0, sizeof *z);
    at_backend_options bo = {.name = "cpu"};
    if (at_random_model(&SPEC, &z->m)) return 0;
    for (int i = 0; i < z->m->n_layers; i++)
        if (z->m->layers[i].bias) memset(z->m->layers[i].bias, 0, sizeof(float) * z->m->layers[i].out_c);
    z->hw = (long)z->m->in_h * z->m->in_w;
    z->x = test_random("x", seed, 3 * z->hw * 2, 2, 0);
    z->maps = malloc(sizeof(float) * z->hw * 2), z->raw = malloc(sizeof(float) * z->hw * 2);
    return at_backend_create(z->m, &bo, &z->be) == AT_OK && z->x && z->maps && z->raw;
}

static void zero_bias_close(zero_bias *z) {
    free(z->x), free(z->maps), free(z->raw);
    at_backend_destroy(z->be);
    at_model_free(z->m);
}

/* Every LRP rule conserves the logit when no bias takes a share: the input
 * relevance sums to y_c. */
TEST(relevance_lrp_conserves_the_logit_on_a_zero_bias_net) {
    zero_bias z;
    REQUIRE(zero_bias_open(&z, 31));
    at_backend *be = z.be;
    const int n = 2;
    const long hw = z.hw;
    float *x = z.x, *maps = z.maps, *raw = z.raw;
    for (int rule = 0; rule < AT_LRP_RULE_COUNT; rule++) {
        at_explain_options o = {.method = AT_METHOD_LRP, .lrp_rule = (at_lrp_rule)rule};
        at_explain_result r[2] = {{.map = maps}, {.map = maps + hw}};
        REQUIRE(at_relevance_run(be, &o, x, n, r, raw) == AT_OK);
        for (int b = 0; b < n; b++) {
            double s = 0;
            for (long i = 0; i < hw; i++) s += raw[b * hw + i];
            CHECKF(fabs(s - r[b].logit) < SUM_TOL * (1 + fabs(r[b].logit)), "%s item %d: sum R = %.9g, logit %.9g",
                   at_lrp_rule_name((at_lrp_rule)rule), b, s, r[b].logit);
        }
    }
    zero_bias_close(&z);
}

/* Seed 004's 2x2 example: one 2x2 conv unit over a 2x2 input; its map is
 * w_i x_i + b/4 per pixel (colour channels summed) and sums to the unit. */
TEST(relevance_fafrp_reproduces_the_seeds_2x2_example) {
    at_model *m = calloc(1, sizeof *m);
    REQUIRE(m);
    snprintf(m->arch, sizeof m->arch, "custom"), snprintf(m->name, sizeof m->name, "fafrp-2x2");
    m->in_c = 3, m->in_h = m->in_w = 2, m->n_classes = 1, m->n_layers = 4;
    for (int c = 0; c < 3; c++) m->pre.mean[c] = 0, m->pre.std[c] = 1;
    m->layers = calloc(4, sizeof(at_layer));
    m->labels = calloc(1, sizeof(at_label));
    const at_layer_kind kinds[4] = {AT_L_CONV, AT_L_RELU, AT_L_FLATTEN, AT_L_LINEAR};
    const char *names[4] = {"features.0", "features.1", "flatten", "classifier.0"};
    for (int i = 0; i < 4; i++) {
        at_layer *l = &m->layers[i];
        l->kind = kinds[i], l->input = i - 1, l->input2 = -1, l->conv_index = -1, l->gate_offset = -1;
        snprintf(l->name, sizeof l->name, "%s", names[i]);
        l->in_c = i == 0 ? 3 : 1, l->in_h = l->in_w = i == 0 ? 2 : 1;
        l->out_c = 1, l->out_h = l->out_w = 1;
    }
    at_layer *conv = &m->layers[0], *fc = &m->layers[3];
    conv->kernel = 2, conv->stride = 1, conv->pad = 0;
    const float w[12] = {0.5f, -0.25f, 0.75f, 0.125f, -0.5f, 0.25f, 0.375f, 1.0f, 0.0f, -0.125f, 0.625f, 0.5f};
    const float xin[12] = {0.8f, 0.1f, -0.4f, 0.6f, 0.3f, 0.9f, -0.2f, 0.5f, 0.7f, 0.2f, 0.4f, -0.6f};
    conv->weight = malloc(sizeof w), conv->bias = malloc(sizeof(float));
    memcpy(conv->weight, w, sizeof w);
    conv->bias[0] = 0.2f;
    fc->weight = malloc(sizeof(float)), fc->bias = malloc(sizeof(float));
    fc->weight[0] = 1.0f, fc->bias[0] = 0.0f; /* the logit is the unit O_1^1 itself */
    m->n_convs = 1, m->n_gates = 1;
    m->gate_layer = malloc(sizeof(int));
    m->gate_layer[0] = 1, conv->conv_index = 0, m->layers[1].conv_index = 0, m->layers[1].gate_offset = 0;
    at_backend *be = NULL;
    at_backend_options bo = {.name = "cpu"};
    REQUIRE(at_backend_create(m, &bo, &be) == AT_OK);
    float map[4], raw[4];
    at_explain_options o = {.method = AT_METHOD_FAFRP};
    at_explain_result r = {.map = map};
    REQUIRE(at_relevance_run(be, &o, xin, 1, &r, raw) == AT_OK);
    double unit = conv->bias[0], sum = 0;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 4; p++) unit += (double)w[c * 4 + p] * xin[c * 4 + p];
    REQUIRE(unit > 0); /* the ReLU passes it */
    for (int p = 0; p < 4; p++) {
        double v = conv->bias[0] / 4.0;
        for (int c = 0; c < 3; c++) v += (double)w[c * 4 + p] * xin[c * 4 + p];
        CHECKF(fabs(raw[p] - v) < 1e-6, "pixel %d: V = %.9g, w x + b/4 = %.9g", p, raw[p], v);
        sum += raw[p];
    }
    CHECKF(fabs(sum - unit) < 1e-6, "sum V = %.9g, the unit %.9g", sum, unit);
    at_backend_destroy(be);
    at_model_free(m);
}

/* Every method and LRP rule on CUDA agrees with the CPU. */
static void relevance_on(const char *backend) {
    at_model *m;
    const char *skip;
    at_backend *be = test_random_backend(&SPEC, backend, &m, &skip), *cpu = NULL;
    if (skip) SKIP(skip);
    REQUIRE(be && (cpu = test_backend_open(m, "cpu", 0)));
    const int n = 2;
    const long hw = (long)m->in_h * m->in_w;
    float *x = test_random("x", 32, 3 * hw * n, 2, 0), *maps = malloc(sizeof(float) * hw * n);
    float *raw[2] = {malloc(sizeof(float) * hw * n), malloc(sizeof(float) * hw * n)};
    static const struct {
        at_method method;
        at_lrp_rule rule;
    } runs[] = {{AT_METHOD_EB, 0},
                {AT_METHOD_CEB, 0},
                {AT_METHOD_LRP, AT_LRP_EPSILON_GAMMA_BOX},
                {AT_METHOD_LRP, AT_LRP_EPSILON_ALPHA2_BETA1},
                {AT_METHOD_LRP, AT_LRP_GAMMA},
                {AT_METHOD_LRP, AT_LRP_ALPHA_BETA},
                {AT_METHOD_CLRP, AT_LRP_EPSILON},
                {AT_METHOD_FAFRP, 0}};
    for (unsigned k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        at_explain_options o = {.method = runs[k].method, .lrp_rule = runs[k].rule, .eb_layer = "features.10"};
        const long rn = at_relevance_raw_floats(m, &o) * n;
        at_backend *side[2] = {cpu, be};
        for (int s = 0; s < 2; s++) {
            at_explain_result r[2] = {{.map = maps}, {.map = maps + hw}};
            REQUIRE(at_relevance_run(side[s], &o, x, n, r, raw[s]) == AT_OK);
        }
        double scale = 0;
        for (long i = 0; i < rn; i++) scale = fabs(raw[0][i]) > scale ? fabs(raw[0][i]) : scale;
        char what[96];
        snprintf(what, sizeof what, "%s %s vs the CPU", at_method_name(runs[k].method), at_lrp_rule_name(runs[k].rule));
        CHECK_CLOSE(what, raw[1], raw[0], rn, 1e-5 * scale, 1e-4); /* FP32 sums in another order */
    }
    free(x), free(maps), free(raw[0]), free(raw[1]);
    at_backend_destroy(be), at_backend_destroy(cpu);
    at_model_free(m);
}
TEST(cuda_relevance_methods_match_the_cpu) { relevance_on("cuda"); }

/* From the command line on the shipped model: each method writes its map,
 * and a bad option is one line and exit status 2. */
TEST(relevance_methods_run_from_explain) {
    static char out[8192];
    const char *dir = test_tmpdir();
    char cmd[8192];
    char img[1024], bin[1024], model[1024];
    snprintf(img, sizeof img, "%s", test_path("weights/samples/images/fmscene_test_00000000.png"));
    snprintf(bin, sizeof bin, "%s", test_path("attrib"));
    snprintf(model, sizeof model, "%s", test_path("weights/vgg16_mini.safetensors"));
    static const char *const runs[] = {"eb", "c-eb", "lrp", "clrp --lrp-rule epsilon", "fafrp",
                                       "lrp --lrp-rule alpha-beta --lrp-alpha 3", "lrp --unit features.29,3"};
    for (unsigned k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s explain --model %s --method %s --quiet --no-overlay --out %s %s 2>&1",
                 bin, model, runs[k], dir, img);
        CHECKF(run_cmd(cmd, out, sizeof out) == 0, "explain --method %s: %s", runs[k], out);
    }
    static const char *const names[] = {"eb",    "c-eb",  "lrp", "clrp.epsilon", "fafrp", "lrp.alpha-beta.alpha3",
                                        "lrp.unit-features.29-3"};
    for (unsigned k = 0; k < sizeof names / sizeof names[0]; k++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/fmscene_test_00000000.%s.npy", dir, names[k]);
        FILE *f = fopen(p, "rb");
        CHECKF(f != NULL, "no map %s", p);
        if (f) fclose(f);
    }
    static const char *const bad[] = {"--method lrp --lrp-rule zbox", "--method eb --layer features.99",
                                      "--method fafrp --layer features.3", "--method eb --lrp-rule epsilon",
                                      "--method c-eb --contrast-layer features.0", "--method lrp --lrp-alpha 0.5",
                                      "--method clrp --unit features.29,3"};
    for (unsigned k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s explain --model %s %s --quiet --out %s/bad %s 2>&1", bin, model, bad[k], dir, img);
        int rc = run_cmd(cmd, out, sizeof out);
        CHECKF(rc == 2 && !strncmp(out, "attrib: ", 8) && strchr(out, '\n') == out + strlen(out) - 1,
               "%s: status %d, output '%s'", bad[k], rc, out);
    }
}

/* A residual block (x -> conv0 -> relu0 -> [conv1 -> relu1 -> conv2] + relu0
 * -> relu -> avgpool -> fc), biases zero when asked: the add's rule splits
 * the signal in proportion to its operands. */
static at_model *residual_net(int zero_bias) {
    enum { C = 5, HW = 8, K = 4 };
    at_model *m = calloc(1, sizeof *m);
    m->layers = calloc(10, sizeof(at_layer));
    m->labels = calloc(K, sizeof(at_label));
    m->gate_layer = calloc(2, sizeof(int));
    snprintf(m->arch, sizeof m->arch, "residual-test"), snprintf(m->name, sizeof m->name, "residual-test");
    m->in_c = 3, m->in_h = m->in_w = HW, m->n_classes = K;
    for (int c = 0; c < 3; c++) m->pre.mean[c] = 0.5f, m->pre.std[c] = 0.25f;
    static const struct {
        at_layer_kind kind;
        const char *name;
        int input, c, hw;
    } nodes[] = {{AT_L_CONV, "conv0", -1, C, HW},   {AT_L_RELU, "relu0", 0, C, HW},      {AT_L_CONV, "conv1", 1, C, HW},
                 {AT_L_RELU, "relu1", 2, C, HW},    {AT_L_CONV, "conv2", 3, C, HW},      {AT_L_ADD, "add", 4, C, HW},
                 {AT_L_RELU, "relu2", 5, C, HW},    {AT_L_ADAPTIVE_AVGPOOL, "avgpool", 6, C, 2},
                 {AT_L_FLATTEN, "flatten", 7, C * 4, 1}, {AT_L_LINEAR, "fc", 8, K, 1}};
    for (int i = 0; i < 10; i++) {
        at_layer *l = &m->layers[m->n_layers++];
        l->kind = nodes[i].kind, l->input = nodes[i].input, l->input2 = l->kind == AT_L_ADD ? 1 : -1;
        l->conv_index = l->gate_offset = -1;
        snprintf(l->name, sizeof l->name, "%s", nodes[i].name);
        const at_layer *src = l->input >= 0 ? &m->layers[l->input] : NULL;
        l->in_c = src ? src->out_c : 3, l->in_h = src ? src->out_h : HW, l->in_w = src ? src->out_w : HW;
        l->out_c = nodes[i].c, l->out_h = l->out_w = nodes[i].hw;
        if (l->kind == AT_L_CONV || l->kind == AT_L_LINEAR) {
            const long wn = (long)l->out_c * (l->kind == AT_L_CONV ? l->in_c * 9 : l->in_c * l->in_h * l->in_w);
            if (l->kind == AT_L_CONV) l->kernel = 3, l->stride = 1, l->pad = 1;
            else l->in_c *= l->in_h * l->in_w, l->in_h = l->in_w = 1;
            l->weight = test_random("w", 70 + i, wn, 0.5f, 0);
            l->bias = test_random("b", 70 + i, l->out_c, zero_bias ? 0 : 0.1f, 0);
        }
    }
    m->layers[0].conv_index = m->layers[1].conv_index = 0, m->layers[1].gate_offset = 0;
    m->layers[2].conv_index = m->layers[3].conv_index = 1, m->layers[3].gate_offset = C;
    m->layers[4].conv_index = 2;
    m->n_convs = 2, m->n_gates = 2 * C, m->gate_layer[0] = 1, m->gate_layer[1] = 3;
    return m;
}

static void residual_rules_conserve(const char *backend) {
    if (test_backend_unusable(backend)) SKIP(test_backend_unusable(backend));
    const int n = 2;
    for (int zero_bias = 0; zero_bias < 2; zero_bias++) {
        at_model *m = residual_net(zero_bias);
        at_backend *be = NULL, *cpu = NULL;
        at_backend_options bo = {.name = backend}, co = {.name = "cpu"};
        REQUIRE(at_backend_create(m, &bo, &be) == AT_OK && at_backend_create(m, &co, &cpu) == AT_OK);
        const long hw = (long)m->in_h * m->in_w;
        float *x = test_random("x", 33, 3 * hw * n, 2, 0), *maps = malloc(sizeof(float) * hw * n);
        float *raw = malloc(sizeof(float) * hw * n), *ref = malloc(sizeof(float) * hw * n);
        /* EB at relu0, which the block reads twice: the signal sums to 1; LRP (zero biases) to the logit */
        at_explain_options o = zero_bias ? (at_explain_options){.method = AT_METHOD_LRP, .lrp_rule = AT_LRP_EPSILON}
                                         : (at_explain_options){.method = AT_METHOD_EB, .eb_layer = "relu0"};
        at_explain_result r[2] = {{.map = maps}, {.map = maps + hw}};
        REQUIRE(at_relevance_run(be, &o, x, n, r, raw) == AT_OK);
        for (int b = 0; b < n; b++) {
            double s = 0, want = zero_bias ? r[b].logit : 1.0;
            for (long i = 0; i < hw; i++) s += raw[b * hw + i];
            CHECKF(fabs(s - want) < SUM_TOL * (1 + fabs(want)), "%s %s item %d: sum %.9g, want %.9g", backend,
                   at_method_name(o.method), b, s, want);
        }
        if (strcmp(backend, "cpu")) {
            REQUIRE(at_relevance_run(cpu, &o, x, n, r, ref) == AT_OK);
            double scale = 0;
            for (long i = 0; i < hw * n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
            CHECK_CLOSE("residual block vs the CPU", raw, ref, hw * n, 1e-5 * scale, 1e-4);
        }
        free(x), free(maps), free(raw), free(ref);
        at_backend_destroy(be), at_backend_destroy(cpu);
        at_model_free(m);
    }
}
TEST(relevance_residual_add_rule_conserves_the_signal) { residual_rules_conserve("cpu"); }
TEST(cuda_relevance_residual_add_rule_conserves_the_signal) { residual_rules_conserve("cuda"); }

/* --unit (docs/methods.md#explaining-a-unit): FAFRP's V and LRP's relevance
 * (zero biases) sum to the unit's value, for a single unit and a channel's
 * sum; EB's signal from a single unit sums to 1. */
TEST(relevance_methods_explain_a_unit) {
    zero_bias z;
    REQUIRE(zero_bias_open(&z, 34));
    const int n = 2;
    const long hw = z.hw;
    float *x = z.x, *maps = z.maps, *raw = z.raw;
    at_model *m = z.m;
    at_backend *be = z.be;
    at_unit units[2];
    REQUIRE(at_unit_parse(m, "features.7,3,2,5", &units[0]) == AT_OK && at_unit_parse(m, "features.7,1", &units[1]) == AT_OK);
    const at_method methods[3] = {AT_METHOD_FAFRP, AT_METHOD_LRP, AT_METHOD_EB};
    for (int u = 0; u < 2; u++)
        for (int k = 0; k < 3; k++) {
            at_explain_options o = {.method = methods[k], .lrp_rule = AT_LRP_EPSILON, .eb_layer = "features.2",
                                    .unit = &units[u]};
            at_explain_result r[2] = {{.map = maps}, {.map = maps + hw}};
            REQUIRE(at_relevance_run(be, &o, x, n, r, raw) == AT_OK);
            const long rn = at_relevance_raw_floats(m, &o);
            for (int b = 0; b < n; b++) {
                double s = 0;
                for (long i = 0; i < rn; i++) s += raw[b * rn + i];
                const double want = methods[k] == AT_METHOD_EB ? 1.0 : r[b].value;
                CHECKF(r[b].value > 0, "unit %d item %d has value %g: pick a unit that fires", u, b, r[b].value);
                if (methods[k] != AT_METHOD_EB || u == 0) /* EB from a channel: 1 per firing unit */
                    CHECKF(fabs(s - want) < SUM_TOL * (1 + fabs(want)), "%s unit %d item %d: sum %.9g, want %.9g",
                       at_method_name(methods[k]), u, b, s, want);
            }
        }
    at_explain_options bad = {.method = AT_METHOD_CEB, .eb_layer = "features.2", .unit = &units[0]};
    at_explain_result r[2] = {{.map = maps}, {.map = maps + hw}};
    CHECK(at_relevance_run(be, &bad, x, n, r, raw) == AT_ERR && strstr(at_last_error(), "unit"));
    zero_bias_close(&z);
}
