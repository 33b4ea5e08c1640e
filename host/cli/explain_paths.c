/* ./attrib explain for the routing-path methods (SPEC §3.3-3.6): cdrp and
 * score-cdrp write each image's gates; path-scorecam and pathway-grad turn a
 * path (read with --gates DIR or optimised on the fly) into maps. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "explain_io.h"
#include "explain_paths.h"
#include "methods/cdrp.h"
#include "methods/explain.h"
#include "npy.h"
#include "pipeline.h"
#include "progress.h"
#include "version.h"

const char *const PATH_HELP =
    "Routing-path methods (SPEC §3.3-3.6):\n"
    "  --method cdrp | score-cdrp     optimise each image's channel gates (Algorithm 1);\n"
    "                      writes <stem>.<method>.gates.npy (and .alpha.npy for score-cdrp)\n"
    "  --method path-scorecam | pathway-grad   maps of a path: Score-CAM of the gated\n"
    "                      network, or saliency of the network pruned by the path\n"
    "  --preset P          zhu2024 (default: lr 0.01, T 100, gamma 0.01, clamp 10) | wang2018\n"
    "  --iterations T --lr X --momentum X --gamma X --clamp-max X   override the preset\n"
    "  --target soft|hard  cross-entropy target (default soft: the original probabilities)\n"
    "  --l1 sum|mean       L1 term (default sum)\n"
    "  --alpha-weight alpha|inverse|none   Score-CDRP's L1 weights (default alpha)\n"
    "  --keep best|last-below-initial       which class-preserving gates to keep (default best)\n"
    "  --cic-precision P   Score-CDRP's CIC pass at fp32 | tf32 | fp16 (default --precision;\n"
    "                      the CPU emulates tf32/fp16 to show how much a path changes)\n"
    "  --path-method cdrp|score-cdrp        the path behind path-scorecam / pathway-grad\n"
    "                      (default score-cdrp)\n"
    "  --gates DIR         read <stem>.<path-method>.gates.npy from DIR instead of optimising\n"
    "  --rates LIST        pathway-grad prune rates (default 0.3,0.5,0.7,0.9)\n"
    "  --prune layer|global  rank gates per layer (default) or all together\n"
    "  --keep-gate-values  pruned network keeps the gate values instead of 1\n";

int path_method_parse(const char *name, path_method *out) {
    static const char *const names[] = {"cdrp", "score-cdrp", "path-scorecam", "pathway-grad"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) {
            *out = (path_method)i;
            return 1;
        }
    return 0;
}

static const char *path_method_name(path_method p) {
    static const char *const names[] = {"cdrp", "score-cdrp", "path-scorecam", "pathway-grad"};
    return names[p];
}

void path_args_init(path_args *p) {
    memset(p, 0, sizeof p[0]);
    at_cdrp_preset("zhu2024", 0, &p->cdrp);
    p->path_score_weighted = 1;
    p->n_rates = 4;
    p->rates[0] = 0.3, p->rates[1] = 0.5, p->rates[2] = 0.7, p->rates[3] = 0.9;
}

/* Options given explicitly are re-applied over the preset, whatever the order. */
typedef struct {
    int iterations_set, lr_set, momentum_set, gamma_set, clamp_set;
    at_cdrp_options explicit_;
} overrides;
static overrides ov;

int path_args_parse(path_args *p, const char *opt, const char *v) {
    double d;
    long n;
    if (!strcmp(opt, "--preset")) {
        at_cdrp_options keep = p->cdrp;
        if (at_cdrp_preset(v, 0, &p->cdrp)) return AT_ERR;
        p->cdrp.target = keep.target, p->cdrp.l1 = keep.l1, p->cdrp.alpha_weight = keep.alpha_weight,
        p->cdrp.keep = keep.keep, p->cdrp.cic_precision_set = keep.cic_precision_set,
        p->cdrp.cic_precision = keep.cic_precision;
        snprintf(p->preset, sizeof p->preset, "%s", v);
    } else if (!strcmp(opt, "--iterations")) {
        if (cli_parse_int(opt, v, 0, 100000, &n)) return AT_ERR;
        ov.explicit_.iterations = (int)n, ov.iterations_set = 1;
    } else if (!strcmp(opt, "--lr") || !strcmp(opt, "--momentum") || !strcmp(opt, "--gamma") ||
               !strcmp(opt, "--clamp-max")) {
        double hi = !strcmp(opt, "--momentum") ? 0.999 : 1e6;
        if (cli_parse_double(opt, v, 0, hi, &d)) return AT_ERR;
        if (!strcmp(opt, "--lr")) ov.explicit_.lr = (float)d, ov.lr_set = 1;
        else if (!strcmp(opt, "--momentum")) ov.explicit_.momentum = (float)d, ov.momentum_set = 1;
        else if (!strcmp(opt, "--gamma")) ov.explicit_.gamma = (float)d, ov.gamma_set = 1;
        else {
            if (d <= 0) return at_fail(opt, "must be positive");
            ov.explicit_.clamp_max = (float)d, ov.clamp_set = 1;
        }
    } else if (!strcmp(opt, "--target")) {
        if (!strcmp(v, "soft")) p->cdrp.target = AT_TARGET_SOFT;
        else if (!strcmp(v, "hard")) p->cdrp.target = AT_TARGET_HARD;
        else return at_fail(opt, "'%s' is not soft or hard", v);
    } else if (!strcmp(opt, "--l1")) {
        if (!strcmp(v, "sum")) p->cdrp.l1 = AT_L1_SUM;
        else if (!strcmp(v, "mean")) p->cdrp.l1 = AT_L1_MEAN;
        else return at_fail(opt, "'%s' is not sum or mean", v);
    } else if (!strcmp(opt, "--alpha-weight")) {
        if (!strcmp(v, "alpha")) p->cdrp.alpha_weight = AT_ALPHA_PLAIN;
        else if (!strcmp(v, "inverse")) p->cdrp.alpha_weight = AT_ALPHA_INVERSE;
        else if (!strcmp(v, "none")) p->cdrp.alpha_weight = AT_ALPHA_NONE;
        else return at_fail(opt, "'%s' is not alpha, inverse or none", v);
    } else if (!strcmp(opt, "--keep")) {
        if (!strcmp(v, "best")) p->cdrp.keep = AT_KEEP_BEST;
        else if (!strcmp(v, "last-below-initial")) p->cdrp.keep = AT_KEEP_LAST_BELOW_INITIAL;
        else return at_fail(opt, "'%s' is not best or last-below-initial", v);
    } else if (!strcmp(opt, "--cic-precision")) {
        if (cli_parse_precision(opt, v, &p->cdrp.cic_precision)) return AT_ERR;
        p->cdrp.cic_precision_set = 1;
    } else if (!strcmp(opt, "--path-method")) {
        if (!strcmp(v, "cdrp")) p->path_score_weighted = 0;
        else if (!strcmp(v, "score-cdrp")) p->path_score_weighted = 1;
        else return at_fail(opt, "'%s' is not cdrp or score-cdrp", v);
    } else if (!strcmp(opt, "--gates")) {
        p->gates_dir = v;
    } else if (!strcmp(opt, "--rates")) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v);
        p->n_rates = 0;
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (p->n_rates >= 16) return at_fail(opt, "at most 16 rates");
            if (cli_parse_double(opt, tok, 0, 1, &d)) return AT_ERR;
            p->rates[p->n_rates++] = d;
        }
        if (!p->n_rates) return at_fail(opt, "empty list");
    } else if (!strcmp(opt, "--prune")) {
        if (!strcmp(v, "layer")) p->prune_global = 0;
        else if (!strcmp(v, "global")) p->prune_global = 1;
        else return at_fail(opt, "'%s' is not layer or global", v);
    } else {
        return 0;
    }
    return 1;
}

int path_args_flag(path_args *p, const char *opt) {
    if (!strcmp(opt, "--keep-gate-values")) {
        p->keep_gate_values = 1;
        return 1;
    }
    return 0;
}

void path_args_finish(path_args *p) {
    if (ov.iterations_set) p->cdrp.iterations = ov.explicit_.iterations;
    if (ov.lr_set) p->cdrp.lr = ov.explicit_.lr;
    if (ov.momentum_set) p->cdrp.momentum = ov.explicit_.momentum;
    if (ov.gamma_set) p->cdrp.gamma = ov.explicit_.gamma;
    if (ov.clamp_set) p->cdrp.clamp_max = ov.explicit_.clamp_max;
    if (!p->preset[0]) snprintf(p->preset, sizeof p->preset, "zhu2024");
}

/* The method's name in files and results lines. */
void path_method_tag(path_method pm, const path_args *p, char *tag, size_t cap) {
    if (pm == PM_CDRP || pm == PM_SCORE_CDRP)
        snprintf(tag, cap, "%s", path_method_name(pm));
    else
        snprintf(tag, cap, "%s.%s", path_method_name(pm), p->path_score_weighted ? "score-cdrp" : "cdrp");
}

/* Reads DIR/<stem>.<path-method>.gates.npy and checks its length. */
static int read_gates(const at_model *m, const path_args *p, const char *stem, float *out) {
    char *path = at_output_path(p->gates_dir, stem, p->path_score_weighted ? "score-cdrp" : "cdrp", "gates", "npy");
    if (!path) return AT_ERR;
    float *data = NULL;
    int ndim, rc = AT_OK;
    int64_t shape[8];
    if (at_npy_read_f32(path, &data, &ndim, shape)) rc = AT_ERR;
    else if (ndim != 1 || shape[0] != m->n_gates)
        rc = at_fail(path, "gates file has %lld values in %d dimensions, %s has %d gates (1-D)",
                     (long long)(ndim ? shape[0] : 1), ndim, m->name, m->n_gates);
    else
        memcpy(out, data, sizeof(float) * m->n_gates);
    free(data);
    free(path);
    return rc;
}

static char *layer_offsets_json(const at_model *m) {
    char *buf = malloc(16 * (m->n_convs + 2));
    if (!buf) return NULL;
    size_t o = sprintf(buf, "[");
    for (int k = 0; k <= m->n_convs; k++)
        o += sprintf(buf + o, "%s%d", k ? "," : "",
                     k < m->n_convs ? m->layers[m->gate_layer[k]].gate_offset : m->n_gates);
    sprintf(buf + o, "]");
    return buf;
}

static void common_fields(at_jsonw *w, const at_model *m, const at_backend *be, const char *image, const char *tag,
                          const path_args *p, double ms) {
    at_jsonw_str(w, "image", image);
    at_jsonw_str(w, "method", tag);
    at_jsonw_str(w, "layer", "");
    at_jsonw_str(w, "class_option", "predicted");
    at_jsonw_str(w, "preset", p->preset);
    at_jsonw_int(w, "iterations", p->cdrp.iterations);
    at_jsonw_num(w, "lr", p->cdrp.lr);
    at_jsonw_num(w, "momentum", p->cdrp.momentum);
    at_jsonw_num(w, "gamma", p->cdrp.gamma);
    at_jsonw_num(w, "clamp_max", p->cdrp.clamp_max);
    at_jsonw_str(w, "target", p->cdrp.target == AT_TARGET_SOFT ? "soft" : "hard");
    at_jsonw_str(w, "l1", p->cdrp.l1 == AT_L1_SUM ? "sum" : "mean");
    at_jsonw_str(w, "alpha_weight", p->cdrp.alpha_weight == AT_ALPHA_PLAIN ? "alpha"
                                    : p->cdrp.alpha_weight == AT_ALPHA_INVERSE ? "inverse" : "none");
    at_jsonw_str(w, "keep", p->cdrp.keep == AT_KEEP_BEST ? "best" : "last-below-initial");
    at_jsonw_num(w, "ms", ms);
    at_jsonw_str(w, "backend", be->name);
    at_jsonw_str(w, "precision", at_precision_name(be->precision));
    at_jsonw_str(w, "cic_precision", at_precision_name(p->cdrp.cic_precision_set ? p->cdrp.cic_precision : be->precision));
    at_jsonw_str(w, "model", m->name);
    at_jsonw_str(w, "model_sha256", m->sha256);
    at_jsonw_str(w, "engine", "attrib " ATTRIB_VERSION);
}

static char *cdrp_line(const at_model *m, const at_backend *be, const char *image, const char *tag, const path_args *p,
                       const at_cdrp_result *r, const char *gates_path, const char *alpha_path, double ms) {
    at_jsonw w;
    at_jsonw_begin(&w);
    common_fields(&w, m, be, image, tag, p, ms);
    cli_class_fields(&w, m, r->cls);
    at_jsonw_num(&w, "prob", r->orig_prob);
    at_jsonw_int(&w, "path_class", r->path_cls);
    at_jsonw_num(&w, "path_prob", r->path_prob);
    at_jsonw_int(&w, "kept_iteration", r->kept_iteration);
    at_jsonw_num(&w, "initial_loss", r->initial_loss);
    at_jsonw_num(&w, "final_loss", r->final_loss);
    at_jsonw_str(&w, "gates", gates_path);
    if (alpha_path) at_jsonw_str(&w, "alpha", alpha_path);
    char *offs = layer_offsets_json(m);
    at_jsonw_raw(&w, "layer_offsets", offs ? offs : "[]");
    free(offs);
    double sp[32];
    for (int k = 0; k < m->n_convs && k < 32; k++) sp[k] = at_gate_sparsity(m, r->gates, k);
    at_jsonw_nums(&w, "sparsity", sp, m->n_convs < 32 ? m->n_convs : 32);
    at_jsonw_int(&w, "forwards", r->forwards);
    return at_jsonw_end(&w);
}

static char *map_line(const at_model *m, const at_backend *be, const char *image, const char *tag, const path_args *p,
                      const at_explain_result *r, const char *npy, const char *png, double rate, double ms) {
    at_jsonw w;
    at_jsonw_begin(&w);
    common_fields(&w, m, be, image, tag, p, ms);
    cli_class_fields(&w, m, r->cls);
    at_jsonw_num(&w, "prob", r->prob);
    at_jsonw_int(&w, "predicted", r->predicted);
    at_jsonw_str(&w, "path_method", p->path_score_weighted ? "score-cdrp" : "cdrp");
    at_jsonw_str(&w, "gates_from", p->gates_dir ? p->gates_dir : "optimised");
    if (rate >= 0) {
        at_jsonw_num(&w, "rate", rate);
        at_jsonw_str(&w, "prune", p->prune_global ? "global" : "layer");
        at_jsonw_bool(&w, "keep_gate_values", p->keep_gate_values);
    }
    at_jsonw_str(&w, "map", npy);
    at_jsonw_str(&w, "overlay", png);
    at_jsonw_bool(&w, "flat_map", r->flat_map);
    at_jsonw_int(&w, "forwards", r->forwards);
    return at_jsonw_end(&w);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int explain_paths_batch(const path_run *run, const float *inputs, int nb, const int *index, at_image *rgbs) {
    const at_model *m = run->m;
    at_backend *be = run->be;
    const path_args *p = run->p;
    int G = m->n_gates;
    long hw = (long)m->in_h * m->in_w;
    float *gates = malloc(sizeof(float) * G * nb), *alpha = malloc(sizeof(float) * G * nb);
    float *maps = malloc(sizeof(float) * hw * nb), *pruned = malloc(sizeof(float) * G * nb);
    at_cdrp_result *cr = calloc(nb, sizeof *cr);
    at_explain_result *er = calloc(nb, sizeof *er);
    int *classes = NULL;
    int rc = AT_OK;
    if (!gates || !alpha || !maps || !pruned || !cr || !er) {
        rc = at_fail("explain", "out of memory");
        goto done;
    }
    double t0 = now_s();
    int optimise = run->method == PM_CDRP || run->method == PM_SCORE_CDRP || !p->gates_dir;
    if (optimise) {
        at_cdrp_options o = p->cdrp;
        o.score_weighted = run->method == PM_SCORE_CDRP || (run->method >= PM_PATH_SCORECAM && p->path_score_weighted);
        for (int b = 0; b < nb; b++) {
            cr[b].gates = gates + (long)G * b;
            cr[b].alpha = o.score_weighted && o.alpha_weight != AT_ALPHA_NONE ? alpha + (long)G * b : NULL;
        }
        if ((rc = at_cdrp(be, &o, inputs, nb, cr))) goto done;
    } else {
        for (int b = 0; b < nb && rc == AT_OK; b++) rc = read_gates(m, p, run->stems[index[b]], gates + (long)G * b);
        if (rc) goto done;
        /* the path explains the original network's predicted class c */
        float *logits = malloc(sizeof(float) * m->n_classes * nb);
        at_forward_args fa = {.n = nb, .input = inputs, .logits = logits};
        if (!logits || (rc = be->forward(be, &fa))) {
            free(logits);
            if (!rc) rc = at_fail("explain", "out of memory");
            goto done;
        }
        for (int b = 0; b < nb; b++) {
            const float *l = logits + (long)m->n_classes * b;
            int best = 0;
            for (int k = 1; k < m->n_classes; k++) best = l[k] > l[best] ? k : best;
            cr[b].cls = best;
        }
        free(logits);
    }
    classes = malloc(sizeof(int) * nb);
    if (!classes) {
        rc = at_fail("explain", "out of memory");
        goto done;
    }
    for (int b = 0; b < nb; b++) classes[b] = cr[b].cls;
    double ms = 1e3 * (now_s() - t0) / nb;
    if (run->method == PM_CDRP || run->method == PM_SCORE_CDRP) {
        for (int b = 0; b < nb && rc == AT_OK; b++) {
            const char *image = run->paths[index[b]], *stem = run->stems[index[b]];
            char *gp = at_output_path(run->out_dir, stem, run->tag, "gates", "npy");
            char *ap = cr[b].alpha ? at_output_path(run->out_dir, stem, run->tag, "alpha", "npy") : NULL;
            int64_t shape[1] = {G};
            char *line = NULL;
            if (!gp || at_output_write_npy(gp, cr[b].gates, 1, shape) ||
                (cr[b].alpha && (!ap || at_output_write_npy(ap, cr[b].alpha, 1, shape))) ||
                !(line = cdrp_line(m, be, image, run->tag, p, &cr[b], gp, ap, ms)) ||
                at_results_append(run->res, line) ||
                at_results_add_key(run->res, image, run->tag, "", "predicted"))
                rc = AT_ERR;
            free(gp), free(ap), free(line);
            at_progress_tick(run->prog, 1, 0);
        }
        goto done;
    }
    /* maps of the path: one for path-scorecam, one per rate for pathway-grad */
    int n_maps = run->method == PM_PATH_SCORECAM ? 1 : p->n_rates;
    for (int k = 0; k < n_maps && rc == AT_OK; k++) {
        at_explain_options ex = {.variant = AT_VARIANT_AUTHORS, .classes = classes};
        double t1 = now_s();
        if (run->method == PM_PATH_SCORECAM) {
            ex.method = AT_METHOD_SCORECAM;
            ex.layer = m->gate_layer[m->n_convs - 1];
            ex.gates = gates;
        } else {
            ex.method = AT_METHOD_SALIENCY;
            ex.layer = -1;
            for (int b = 0; b < nb && rc == AT_OK; b++)
                rc = at_prune_gates(m, gates + (long)G * b, p->rates[k], p->prune_global, p->keep_gate_values,
                                    pruned + (long)G * b);
            ex.gates = pruned;
        }
        for (int b = 0; b < nb; b++) er[b] = (at_explain_result){.map = maps + hw * b};
        if (rc || (rc = at_explain(be, &ex, inputs, nb, er))) break;
        double ms_map = ms + 1e3 * (now_s() - t1) / nb;
        char param[16];
        snprintf(param, sizeof param, "r%.2f", p->rates[k]);
        for (int b = 0; b < nb && rc == AT_OK; b++) {
            const char *image = run->paths[index[b]], *stem = run->stems[index[b]];
            char *npy = NULL, *png = NULL, *line = NULL;
            const char *par = run->method == PM_PATHWAY_GRAD ? param : NULL;
            char key_tag[96];
            snprintf(key_tag, sizeof key_tag, "%s%s%s", run->tag, par ? "." : "", par ? par : "");
            if (cli_write_map(run->out_dir, stem, run->tag, par, er[b].map, m->in_w, m->in_h, rgbs[b].rgb,
                              run->no_overlay, &npy, &png) ||
                !(line = map_line(m, be, image, key_tag, p, &er[b], npy, png,
                                  run->method == PM_PATHWAY_GRAD ? p->rates[k] : -1, ms_map)) ||
                at_results_append(run->res, line) || at_results_add_key(run->res, image, key_tag, "", "predicted"))
                rc = AT_ERR;
            free(npy), free(png), free(line);
        }
    }
    for (int b = 0; b < nb; b++) at_progress_tick(run->prog, 1, 0);
done:
    free(classes);
    free(gates), free(alpha), free(maps), free(pruned), free(cr), free(er);
    return rc;
}
