/* Attribution maps against the PyTorch reference (tools/ref_methods.py, itself
 * checked against pytorch-grad-cam and torchcam by tools/check_peers.py):
 * goldens in tests/goldens/methods, computed in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "golden_util.h"
#include "methods/explain.h"
#include "model/random_model.h"
#include "test.h"

/* Maps live in [0,1]; float32 forwards vs a float64 reference differ by
 * ~1e-6 relative per layer, amplified by min-max normalisation of small
 * ranges: 1e-4 absolute is far below anything visible and catches every
 * convention error (those move values by 1e-2 or more). */
#define MAP_ATOL 1e-4
/* Channel weights: probabilities / means of gradients, relative to scale. */
#define WEIGHT_RTOL 1e-3
/* The explained value and integrated gradients' sums (of 50 float32
 * gradients at most) against float64: relative to the quantity's scale. */
#define VALUE_RTOL 1e-4

static double meta_num(const at_json *o, const char *key, double dflt) {
    const at_json *v = o ? at_json_get(o, key) : NULL;
    return v && v->type == AT_JSON_NUMBER ? v->number : v && v->type == AT_JSON_BOOL ? v->boolean : dflt;
}

/* The case's input-gradient settings (meta "params", ref_gradients.run keywords). */
static int read_params(const at_json *meta, const at_model *m, at_explain_options *o, at_unit *unit) {
    const at_json *p = at_json_get(meta, "params");
    if (!p) return AT_OK;
    const at_json *rule = at_json_get(p, "ig_rule"), *bl = at_json_get(p, "baseline"), *u = at_json_get(p, "unit");
    o->ig_steps = (int)meta_num(p, "ig_steps", 0);
    o->smooth = (int)meta_num(p, "smooth", 0);
    o->sg_sigma = (float)meta_num(p, "sg_sigma", 0);
    o->sg_square = (int)meta_num(p, "sg_square", 0);
    o->sg_seed = (unsigned)meta_num(p, "sg_seed", 0);
    if (rule && at_ig_rule_parse(rule->string, &o->ig_rule)) return AT_ERR;
    if (bl) o->baseline = strcmp(bl->string, "zero") ? AT_BASELINE_BLACK : AT_BASELINE_ZERO;
    if (u) {
        if (at_unit_parse(m, u->string, unit)) return AT_ERR;
        o->unit = unit;
    }
    return AT_OK;
}

static void check_value(const char *name, const at_json *meta, const char *key, double got, double scale) {
    const at_json *v = at_json_get(meta, key);
    if (!v) return;
    CHECKF(fabs(got - v->number) <= VALUE_RTOL * (scale > 1 ? scale : 1), "%s: %s %.7g, golden %.7g", name, key, got,
           v->number);
}

static void run_method_case(const char *dir, const char *name) {
    golden_case c;
    if (!golden_case_open(dir, name, &c)) return;
    at_model *m = c.m;
    at_explain_options o = {0};
    if (at_method_parse(golden_meta_str(c.meta, "method", "?"), &o.method) ||
        at_variant_parse(golden_meta_str(c.meta, "variant", "authors"), &o.variant)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        goto out;
    }
    /* LayerCAM's fused layers come as "a,b,c" */
    int layers[8], n_layers = 0;
    char spec[256];
    snprintf(spec, sizeof spec, "%s", golden_meta_str(c.meta, "layer", "last-conv"));
    for (char *save = NULL, *t = strtok_r(spec, ",", &save); t && n_layers < 8; t = strtok_r(NULL, ",", &save))
        layers[n_layers++] = at_model_find_layer(m, t);
    o.layer = at_method_uses_layer(o.method) ? layers[0] : -1;
    o.layers = layers, o.n_layers = n_layers;
    at_unit unit;
    if (read_params(c.meta, m, &o, &unit)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        goto out;
    }
    int cls = golden_meta_int(c.meta, "class", -1);
    o.classes = &cls;
    long in_n = (long)3 * m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * in_n), *map = malloc(sizeof(float) * m->in_h * m->in_w);
    int C = o.layer >= 0 ? m->layers[o.layer].out_c : 0;
    float *weights = C ? malloc(sizeof(float) * C) : NULL;
    at_prng_fill("input", (uint64_t)golden_meta_int(c.meta, "seed", 0), x, in_n, 2.0f, 0.0f);
    at_explain_result r = {.map = map, .weights = weights};
    if (at_explain(c.be, &o, x, 1, &r)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
    } else {
        CHECKF(r.cls == cls, "%s: explained class %d, golden %d", name, r.cls, cls);
        CHECKF(r.predicted == golden_meta_int(c.meta, "predicted", -2), "%s: predicted %d, golden %d", name,
               r.predicted, golden_meta_int(c.meta, "predicted", -2));
        golden_compare(dir, "map.npy", "map", map, (long)m->in_h * m->in_w, MAP_ATOL, 0);
        const double scale = fabs(r.value) + fabs(r.baseline_value);
        check_value(name, c.meta, "value", r.value, scale);
        check_value(name, c.meta, "baseline_value", r.baseline_value, scale);
        check_value(name, c.meta, "attribution_sum", r.attribution_sum, scale);
        char wpath[1700];
        snprintf(wpath, sizeof wpath, "%s/weights.npy", dir);
        FILE *wf = weights ? fopen(wpath, "rb") : NULL;
        if (wf) {
            fclose(wf);
            long wn;
            float *ref = golden_npy(dir, "weights.npy", &wn);
            float scale = 0;
            for (long i = 0; ref && i < wn; i++) scale = fabsf(ref[i]) > scale ? fabsf(ref[i]) : scale;
            free(ref);
            golden_compare(dir, "weights.npy", "channel weights", weights, C, WEIGHT_RTOL * scale, WEIGHT_RTOL);
        }
    }
    free(x), free(map), free(weights);
out:
    golden_case_close(&c);
}

TEST(methods_match_the_pytorch_reference_on_every_golden_case) {
    golden_each_case("methods", run_method_case, 48);
}
