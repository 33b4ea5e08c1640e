/* The names explain gives its results (run/explain_names.h): method tags and
 * the settings suffix of file names and resume keys, and the results
 * line's fields of the input-gradient settings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "methods/relevance.h"
#include "run/explain_names.h"

static const char *const path_names[] = {"cdrp", "score-cdrp", "path-scorecam", "pathway-grad"};

int at_path_method_parse(const char *name, at_path_method *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, path_names[i])) {
            *out = (at_path_method)i;
            return 1;
        }
    return 0;
}

/* The method's name in files and results lines. */
void path_method_tag(at_path_method pm, const at_path_run_options *p, char *tag, size_t cap) {
    if (pm == AT_PATH_CDRP || pm == AT_PATH_SCORE_CDRP)
        snprintf(tag, cap, "%s", path_names[pm]);
    else
        snprintf(tag, cap, "%s.%s", path_names[pm], p->path_score_weighted ? "score-cdrp" : "cdrp");
}

static void add_token(char *buf, size_t cap, const char *fmt, double v) {
    size_t o = strlen(buf);
    if (o + 2 >= cap) return;
    if (o) buf[o++] = '.';
    snprintf(buf + o, cap - o, fmt, v);
}

/* The options that change a path, as a name suffix: "" for the defaults. */
static void path_only_settings(const at_path_run_options *p, int score_weighted, at_precision precision, char *buf,
                               size_t cap) {
    at_cdrp_options d;
    buf[0] = 0;
    at_cdrp_preset(p->preset, 0, &d);
    if (strcmp(p->preset, "zhu2024")) add_token(buf, cap, p->preset, 0);
    if (p->cdrp.iterations != d.iterations) add_token(buf, cap, "T%g", p->cdrp.iterations);
    if (p->cdrp.lr != d.lr) add_token(buf, cap, "lr%g", p->cdrp.lr);
    if (p->cdrp.momentum != d.momentum) add_token(buf, cap, "momentum%g", p->cdrp.momentum);
    if (p->cdrp.gamma != d.gamma) add_token(buf, cap, "gamma%g", p->cdrp.gamma);
    if (p->cdrp.clamp_max != d.clamp_max) add_token(buf, cap, "clamp%g", p->cdrp.clamp_max);
    if (p->cdrp.target == AT_TARGET_HARD) add_token(buf, cap, "hard", 0);
    if (p->cdrp.l1 == AT_L1_MEAN) add_token(buf, cap, "l1mean", 0);
    if (p->cdrp.keep == AT_KEEP_LAST_BELOW_INITIAL) add_token(buf, cap, "keep-last", 0);
    if (score_weighted && p->cdrp.alpha_weight != AT_ALPHA_PLAIN)
        add_token(buf, cap, p->cdrp.alpha_weight == AT_ALPHA_INVERSE ? "alpha-inverse" : "alpha-none", 0);
    if (precision != AT_PRECISION_FP32) add_token(buf, cap, at_precision_name(precision), 0);
    if (score_weighted && p->cdrp.alpha_weight != AT_ALPHA_NONE && p->cdrp.cic_precision_set &&
        p->cdrp.cic_precision != precision) {
        char t[24];
        snprintf(t, sizeof t, "cic-%s", at_precision_name(p->cdrp.cic_precision));
        add_token(buf, cap, t, 0);
    }
}

void path_settings(at_path_method pm, const at_path_run_options *p, at_precision precision, char *buf, size_t cap) {
    int sw = pm == AT_PATH_SCORE_CDRP || (pm >= AT_PATH_SCORECAM && p->path_score_weighted);
    path_only_settings(p, sw, precision, buf, cap);
    if (pm == AT_PATH_PATHWAY_GRAD && p->prune_global) add_token(buf, cap, "global", 0);
    if (pm == AT_PATH_PATHWAY_GRAD && p->keep_gate_values) add_token(buf, cap, "gate-values", 0);
}

/* "cdrp" / "score-cdrp" plus the path's settings: the gates file's name part. */
void path_gates_settings(const at_path_run_options *p, at_precision precision, char *buf, size_t cap) {
    path_only_settings(p, p->path_score_weighted, precision, buf, cap);
}

void path_file_name(const at_path_run_options *p, at_precision precision, char *buf, size_t cap) {
    char st[160];
    path_only_settings(p, p->path_score_weighted, precision, st, sizeof st);
    snprintf(buf, cap, "%s%s%s", p->path_score_weighted ? "score-cdrp" : "cdrp", st[0] ? "." : "", st);
}


void results_key_name(const char *method, const char *settings, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", method, settings && settings[0] ? "." : "", settings ? settings : "");
}

static void perturb_settings(at_method method, const at_perturb_options *o, const char *masks_in, char *buf,
                             size_t cap) {
    at_perturb_options d;
    at_perturb_defaults(&d);
    size_t k = 0;
    buf[0] = 0;
#define ADD(...) (k < cap ? (k += snprintf(buf + k, cap - k, __VA_ARGS__)) : 0)
    if (method == AT_METHOD_RISE) {
        if (masks_in) {
            const char *base = strrchr(masks_in, '/');
            ADD("masks-%s", base ? base + 1 : masks_in);
            if (k > 4 && k < cap && !strcmp(buf + k - 4, ".npy")) buf[k -= 4] = 0;
        } else {
            if (o->rise_n != d.rise_n) ADD("%sN%d", k ? "." : "", o->rise_n);
            if (o->rise_cells != d.rise_cells) ADD("%ss%d", k ? "." : "", o->rise_cells);
            if (o->rise_p != d.rise_p) ADD("%sp%g", k ? "." : "", o->rise_p);
            if (o->rise_seed != d.rise_seed) ADD("%sseed%llu", k ? "." : "", (unsigned long long)o->rise_seed);
        }
    }
    if (method == AT_METHOD_OCCLUSION) {
        if (o->occ_window) ADD("%sw%d", k ? "." : "", o->occ_window);
        if (o->occ_stride) ADD("%sst%d", k ? "." : "", o->occ_stride);
        if (o->occ_baseline == AT_OCCLUSION_BLACK) ADD("%sblack", k ? "." : "");
    }
    if (method == AT_METHOD_MEANINGFUL) {
        if (o->mp_iterations != d.mp_iterations) ADD("%sT%d", k ? "." : "", o->mp_iterations);
        if (o->mp_lr != d.mp_lr) ADD("%slr%g", k ? "." : "", o->mp_lr);
        if (o->mp_l1 != d.mp_l1) ADD("%sl1_%g", k ? "." : "", o->mp_l1);
        if (o->mp_tv != d.mp_tv) ADD("%stv%g", k ? "." : "", o->mp_tv);
        if (o->mp_beta != d.mp_beta) ADD("%sbeta%g", k ? "." : "", o->mp_beta);
        if (o->mp_mask != d.mp_mask) ADD("%sm%d", k ? "." : "", o->mp_mask);
        if (o->mp_sigma != d.mp_sigma) ADD("%ssigma%g", k ? "." : "", o->mp_sigma);
    }
    if (o->score_logit) ADD("%slogit", k ? "." : "");
#undef ADD
}

static int smoothed(const at_explain_options *ex) { return ex->smooth || ex->method == AT_METHOD_SMOOTHGRAD; }

static void grad_settings(const at_model *m, const at_explain_options *ex, char *buf, size_t cap) {
    size_t o = strlen(buf);
#define PART(...) (o < cap ? (o += snprintf(buf + o, cap - o, "%s", o ? "." : ""), \
                              o < cap ? (o += snprintf(buf + o, cap - o, __VA_ARGS__)) : 0) : 0)
    if (ex->unit) {
        char u[96];
        at_unit_format(m, ex->unit, u, sizeof u);
        for (char *p = u; *p; p++)
            if (*p == ',') *p = '-';
        PART("unit-%s", u);
    }
    if (ex->method == AT_METHOD_INTEGRATED_GRADIENTS) {
        if (ex->ig_rule) PART("%s", at_ig_rule_name(ex->ig_rule));
        if (ex->ig_steps && ex->ig_steps != AT_IG_STEPS_DEFAULT) PART("steps%d", ex->ig_steps);
        if (ex->baseline == AT_BASELINE_ZERO) PART("zero");
    }
    if (ex->smooth && !(ex->method == AT_METHOD_SMOOTHGRAD && ex->smooth == AT_SG_SAMPLES_DEFAULT))
        PART("smooth%d", ex->smooth);
    if (smoothed(ex)) {
        if (ex->sg_sigma > 0 && ex->sg_sigma != AT_SG_SIGMA_DEFAULT) PART("sigma%g", ex->sg_sigma);
        if (ex->sg_square) PART("sq");
        if (ex->sg_seed) PART("seed%u", ex->sg_seed);
    }
#undef PART
}

void grad_results_fields(at_jsonw *w, const at_model *m, const at_explain_options *ex, const at_explain_result *r) {
    at_jsonw_int(w, "backwards", r->backwards);
    if (ex->unit) {
        char u[96];
        at_unit_format(m, ex->unit, u, sizeof u);
        at_jsonw_str(w, "unit", u);
        at_jsonw_num(w, "unit_value", r->value);
    }
    if (ex->method == AT_METHOD_INTEGRATED_GRADIENTS) {
        at_jsonw_str(w, "ig_rule", at_ig_rule_name(ex->ig_rule));
        at_jsonw_int(w, "ig_steps", ex->ig_steps ? ex->ig_steps : AT_IG_STEPS_DEFAULT);
        at_jsonw_str(w, "baseline", ex->baseline == AT_BASELINE_ZERO ? "zero" : "black");
        at_jsonw_num(w, "baseline_value", r->baseline_value);
        if (!ex->smooth) { /* completeness: sum of the attribution vs value(x) - value(x') */
            at_jsonw_num(w, "attribution_sum", r->attribution_sum);
            at_jsonw_num(w, "value_minus_baseline", (double)r->value - r->baseline_value);
        }
    }
    if (smoothed(ex)) {
        at_jsonw_int(w, "sg_samples", ex->smooth ? ex->smooth : AT_SG_SAMPLES_DEFAULT);
        at_jsonw_num(w, "sg_sigma", ex->sg_sigma > 0 ? ex->sg_sigma : AT_SG_SIGMA_DEFAULT);
        at_jsonw_bool(w, "sg_square", ex->sg_square);
        at_jsonw_int(w, "sg_seed", ex->sg_seed);
    }
}


void explain_method_tag(const at_explain_options *ex, char *tag, size_t cap) {
    if (ex->variant == AT_VARIANT_AUTHORS)
        snprintf(tag, cap, "%s", at_method_name(ex->method));
    else
        snprintf(tag, cap, "%s.%s", at_method_name(ex->method), at_variant_name(ex->variant));
}

void explain_map_settings(const at_explain_run_options *a, const at_explain_options *ex, const at_model *m,
                          at_precision precision, const char *layer_names, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    if (ex->layer >= 0 && (ex->n_layers > 1 || ex->layer != at_model_find_layer(m, "last-conv")))
        o += snprintf(buf + o, cap - o, "%s", layer_names);
    int ro, ct; /* relevance methods: the options off their defaults */
    if (ex->eb_layer && !at_relevance_layers(m, ex, &ro, &ct))
        o += snprintf(buf + o, cap - o, "%s%s", o ? "." : "", m->layers[ro].name);
    if (ex->contrast_layer && o < cap) o += snprintf(buf + o, cap - o, "%scontrast-%s", o ? "." : "", ex->contrast_layer);
    if (ex->lrp_rule && o < cap) o += snprintf(buf + o, cap - o, "%s%s", o ? "." : "", at_lrp_rule_name(ex->lrp_rule));
    if (ex->lrp_alpha && o < cap) o += snprintf(buf + o, cap - o, "%salpha%g", o ? "." : "", ex->lrp_alpha);
    if (ex->lrp_gamma && o < cap) o += snprintf(buf + o, cap - o, "%sgamma%g", o ? "." : "", ex->lrp_gamma);
    if (a->cls != AT_CLASS_PREDICTED && o < cap)
        o += a->cls == AT_CLASS_TRUTH ? snprintf(buf + o, cap - o, "%struth", o ? "." : "")
                                      : snprintf(buf + o, cap - o, "%sc%ld", o ? "." : "", a->cls);
    char perturb[160] = "";
    if (ex->perturb) perturb_settings(ex->method, ex->perturb, a->rise_masks, perturb, sizeof perturb);
    if (perturb[0] && o < cap) o += snprintf(buf + o, cap - o, "%s%s", o ? "." : "", perturb);
    if (a->lcam && o < cap) { /* a module other than the default: its file's stem */
        const char *base = strrchr(a->lcam, '/');
        base = base ? base + 1 : a->lcam;
        const char *dot = strstr(base, ".lcam.safetensors");
        o += snprintf(buf + o, cap - o, "%slcam-%.*s", o ? "." : "", dot ? (int)(dot - base) : (int)strlen(base), base);
    }
    if (precision != AT_PRECISION_FP32 && o < cap)
        snprintf(buf + o, cap - o, "%s%s", o ? "." : "", at_precision_name(precision));
    grad_settings(m, ex, buf, cap);
}
