/* explain's runs of the routing-path methods (docs/methods.md#cdrp to #pathway-gradient): cdrp and
 * score-cdrp write each image's gates; path-scorecam and pathway-grad turn a
 * path (read from a gates folder, reused from the output or optimised on the
 * fly) into maps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "io/json.h"
#include "io/npy.h"
#include "methods/paths.h"
#include "preprocess/pipeline.h"
#include "run/explain_internal.h"
#include "run/explain_names.h"
#include "version.h"

/* Reads DIR/<stem>.<path-method>[.settings].gates.npy and checks its length. */
static int read_gates_file(const at_model *m, const char *path, float *out) {
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
    return rc;
}

typedef struct {
    path_reuse *r;
    const char *out_dir, *file, *want, *settings, *sha256;
} reuse_load;

static int reuse_line(const at_json *j, void *ctx) {
    reuse_load *c = ctx;
    path_reuse *r = c->r;
    const at_json *im = at_json_get(j, "image"), *me = at_json_get(j, "method"), *se = at_json_get(j, "settings"),
                  *sh = at_json_get(j, "model_sha256"), *ga = at_json_get(j, "gates");
    const char *settings = se && se->type == AT_JSON_STRING ? se->string : "";
    if (!im || !me || !sh || !ga || im->type != AT_JSON_STRING || me->type != AT_JSON_STRING ||
        sh->type != AT_JSON_STRING || ga->type != AT_JSON_STRING || strcmp(me->string, c->want) ||
        strcmp(settings, c->settings) || strcmp(sh->string, c->sha256))
        return AT_OK;
    if (r->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 64;
        char **ni = realloc(r->images, sizeof(char *) * nc), **ng = realloc(r->gates, sizeof(char *) * nc);
        if (ni) r->images = ni;
        if (ng) r->gates = ng;
        if (!ni || !ng) return at_fail(c->file, "out of memory");
        r->cap = nc;
    }
    /* recorded relative to where that run ran: else look in --out itself */
    const char *base = strrchr(ga->string, '/');
    char *in_out = malloc(strlen(c->out_dir) + strlen(ga->string) + 2);
    if (in_out) sprintf(in_out, "%s/%s", c->out_dir, base ? base + 1 : ga->string);
    if (in_out && access(ga->string, R_OK) == 0) free(in_out), in_out = NULL;
    r->images[r->n] = strdup(im->string);
    r->gates[r->n] = in_out ? in_out : strdup(ga->string);
    r->n++;
    return AT_OK;
}

int path_reuse_load(path_reuse *r, const char *out_dir, const at_path_run_options *p, const at_model *m,
                    at_precision precision) {
    memset(r, 0, sizeof *r);
    char file[4200], st[160];
    snprintf(file, sizeof file, "%s/results.jsonl", out_dir);
    path_gates_settings(p, precision, st, sizeof st);
    if (access(file, R_OK) != 0) return AT_OK; /* nothing to reuse yet */
    reuse_load c = {r, out_dir, file, p->path_score_weighted ? "score-cdrp" : "cdrp", st, m->sha256};
    return at_jsonl_each(file, reuse_line, &c);
}

/* The gates file of image's path in --out, NULL when none (the last line wins). */
static const char *path_reuse_find(const path_reuse *r, const char *image) {
    for (int i = r->n - 1; i >= 0; i--)
        if (r->images[i] && !strcmp(r->images[i], image) && r->gates[i] && access(r->gates[i], R_OK) == 0)
            return r->gates[i];
    return NULL;
}

void path_reuse_free(path_reuse *r) {
    for (int i = 0; i < r->n; i++) free(r->images[i]), free(r->gates[i]);
    free(r->images), free(r->gates);
    memset(r, 0, sizeof *r);
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

static void common_fields(at_jsonw *w, const path_run *run, const char *image, const char *method,
                          const char *settings, double ms, int batch) {
    const at_path_run_options *p = run->p;
    const at_model *m = run->m;
    const at_backend *be = run->be;
    at_jsonw_str(w, "image", image);
    at_jsonw_str(w, "method", method);
    at_jsonw_str(w, "settings", settings);
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
    at_jsonw_int(w, "batch", batch);
    at_jsonw_str(w, "backend", be->name);
    at_jsonw_str(w, "precision", at_precision_name(be->precision));
    at_jsonw_str(w, "cic_precision", at_precision_name(p->cdrp.cic_precision_set ? p->cdrp.cic_precision : be->precision));
    at_jsonw_str(w, "model", m->name);
    at_jsonw_str(w, "model_sha256", m->sha256);
    at_jsonw_str(w, "engine", "attrib " ATTRIB_VERSION);
}

static void gate_stats_fields(at_jsonw *w, const at_model *m, const float *g, at_explain_summary *sum) {
    double mn[GATE_STATS_MAX_LAYERS] = {0}, mean[GATE_STATS_MAX_LAYERS] = {0}, below[GATE_STATS_MAX_LAYERS] = {0};
    int L = gate_layer_stats(m, g, mn, mean, below);
    at_jsonw_nums(w, "gate_min", mn, L);
    at_jsonw_nums(w, "gate_mean", mean, L);
    at_jsonw_nums(w, "gate_below_half", below, L);
    if (sum) gate_summary_add(&sum->gates, m, g);
}

static char *cdrp_line(const path_run *run, const char *image, const char *tag, const char *settings,
                       const at_cdrp_result *r, const char *gates_path, const char *alpha_path, double ms, int batch,
                       at_explain_summary *sum) {
    const at_model *m = run->m;
    at_jsonw w;
    at_jsonw_begin(&w);
    common_fields(&w, run, image, tag, settings, ms, batch);
    explain_class_fields(&w, m, r->cls);
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
    gate_stats_fields(&w, m, r->gates, sum);
    at_jsonw_int(&w, "forwards", r->forwards);
    return at_jsonw_end(&w);
}

/* Writes image's path (gates, CIC scores) and its results line under
 * tag[.settings]; *gates_path (optional) gets the gates file's name. */
static int write_path(const path_run *run, int b, const at_cdrp_result *r, const char *tag, const char *settings,
                      double ms, int nb, at_explain_summary *sum, char **gates_path) {
    const char *image = run->paths[b], *stem = run->stems[b];
    char name[320];
    results_key_name(tag, settings, name, sizeof name);
    char *gp = at_output_path(run->out_dir, stem, name, "gates", "npy");
    char *ap = r->alpha ? at_output_path(run->out_dir, stem, name, "alpha", "npy") : NULL;
    int64_t shape[1] = {run->m->n_gates};
    char *line = NULL;
    int rc = AT_OK;
    if (!gp || at_output_write_npy(gp, r->gates, 1, shape) ||
        (r->alpha && (!ap || at_output_write_npy(ap, r->alpha, 1, shape))) ||
        !(line = cdrp_line(run, image, tag, settings, r, gp, ap, ms, nb, sum)) || at_results_append(run->res, line) ||
        at_results_add_key(run->res, image, name, "", "predicted"))
        rc = AT_ERR;
    if (rc == AT_OK && gates_path) *gates_path = gp, gp = NULL;
    free(gp), free(ap), free(line);
    return rc;
}

typedef struct {
    const char *image, *method, *npy, *png, *gates_from, *path_gates;
    const at_explain_result *r;
    const float *gates;
    int cls;
    double rate, ms; /* rate < 0: path-scorecam */
    int batch;
} map_line_args;

static char *map_line(const path_run *run, const map_line_args *a) {
    const at_path_run_options *p = run->p;
    at_jsonw w;
    at_jsonw_begin(&w);
    common_fields(&w, run, a->image, a->method, run->settings, a->ms, a->batch);
    explain_class_fields(&w, run->m, a->r->cls);
    at_jsonw_num(&w, "prob", a->r->prob);
    at_jsonw_int(&w, "predicted", a->r->predicted);
    at_jsonw_str(&w, "path_method", p->path_score_weighted ? "score-cdrp" : "cdrp");
    at_jsonw_str(&w, "gates_from", a->gates_from);
    if (a->path_gates) at_jsonw_str(&w, "path_gates", a->path_gates);
    if (a->rate >= 0) {
        at_jsonw_num(&w, "rate", a->rate);
        at_jsonw_str(&w, "prune", p->prune_global ? "global" : "layer");
        at_jsonw_bool(&w, "keep_gate_values", p->keep_gate_values);
        /* does the pruned network still see the class it is asked to explain? */
        at_jsonw_num(&w, "pruned_prob", a->r->prob);
        at_jsonw_bool(&w, "pruned_keeps_class", a->r->predicted == a->cls);
    }
    at_jsonw_str(&w, "map", a->npy);
    at_jsonw_str(&w, "overlay", a->png);
    at_jsonw_bool(&w, "flat_map", a->r->flat_map);
    at_jsonw_int(&w, "forwards", a->r->forwards);
    /* one summary entry per path: pathway-grad's first rate counts it */
    gate_stats_fields(&w, run->m, a->gates, a->rate < 0 || a->rate == p->rates[0] ? run->summary : NULL);
    return at_jsonw_end(&w);
}

int explain_paths_batch(const path_run *run, const float *inputs, int nb, const int *index, at_image *rgbs) {
    const at_model *m = run->m;
    at_backend *be = run->be;
    const at_path_run_options *p = run->p;
    int G = m->n_gates;
    long hw = (long)m->in_h * m->in_w, in_size = (long)m->in_c * hw;
    float *gates = malloc(sizeof(float) * G * nb), *alpha = malloc(sizeof(float) * G * nb);
    float *maps = malloc(sizeof(float) * hw * nb);
    float *opt_inputs = NULL;
    at_cdrp_result *cr = calloc(nb, sizeof *cr);
    at_explain_result *er = calloc(nb, sizeof *er);
    int *classes = malloc(sizeof(int) * nb), *need = malloc(sizeof(int) * nb);
    char **from = calloc(nb, sizeof *from); /* the gates file read, per image; NULL: optimised */
    char **written = calloc(nb, sizeof *written); /* the gates file this run wrote */
    int rc = AT_OK;
    run_batch bp = {run->rep, nb};
    if (!gates || !alpha || !maps || !cr || !er || !classes || !need || !from || !written) {
        rc = at_fail(NULL, "out of memory");
        goto done;
    }
    double t0 = at_now_s();
    int path_itself = run->method == AT_PATH_CDRP || run->method == AT_PATH_SCORE_CDRP, n_opt = 0;
    char pfile[200];
    path_file_name(p, be->precision, pfile, sizeof pfile);
    for (int b = 0; b < nb && rc == AT_OK; b++) {
        const char *image = run->paths[index[b]];
        const char *reuse = path_itself || p->gates_dir || p->reoptimise ? NULL : path_reuse_find(run->reuse, image);
        if (p->gates_dir) from[b] = at_output_path(p->gates_dir, run->stems[index[b]], pfile, "gates", "npy");
        else if (reuse) from[b] = strdup(reuse);
        else {
            need[n_opt++] = b;
            continue;
        }
        if (!from[b]) rc = at_fail(NULL, "out of memory");
        else rc = read_gates_file(m, from[b], gates + (long)G * b);
    }
    if (rc) goto done;
    if (n_opt) {
        at_cdrp_options o = p->cdrp;
        o.score_weighted = run->method == AT_PATH_SCORE_CDRP || (run->method >= AT_PATH_SCORECAM && p->path_score_weighted);
        o.on_progress = run_batch_progress;
        o.progress_ctx = &bp;
        at_cdrp_result *opt = calloc(n_opt, sizeof *opt);
        opt_inputs = n_opt < nb ? malloc(sizeof(float) * in_size * n_opt) : NULL;
        if (!opt || (n_opt < nb && !opt_inputs)) {
            free(opt);
            rc = at_fail(NULL, "out of memory");
            goto done;
        }
        for (int i = 0; i < n_opt; i++) {
            if (opt_inputs) memcpy(opt_inputs + in_size * i, inputs + in_size * need[i], sizeof(float) * in_size);
            opt[i].gates = gates + (long)G * need[i];
            opt[i].alpha = o.score_weighted && o.alpha_weight != AT_ALPHA_NONE ? alpha + (long)G * need[i] : NULL;
        }
        rc = at_cdrp(be, &o, opt_inputs ? opt_inputs : inputs, n_opt, opt);
        for (int i = 0; i < n_opt; i++) cr[need[i]] = opt[i];
        free(opt);
        if (rc) goto done;
    }
    if (n_opt < nb) { /* a path read from a file explains the original network's predicted class c */
        if ((rc = at_predicted_classes(be, inputs, nb, classes))) goto done;
        for (int b = 0; b < nb; b++)
            if (from[b]) cr[b].cls = classes[b];
    }
    for (int b = 0; b < nb; b++) classes[b] = cr[b].cls;
    double ms = 1e3 * (at_now_s() - t0) / nb;
    char key[256];
    if (path_itself) {
        for (int b = 0; b < nb && rc == AT_OK; b++)
            rc = write_path(run, index[b], &cr[b], run->tag, run->settings, ms, nb, run->summary, NULL);
        if (rc == AT_OK) run_report_event(run->rep, AT_RUN_BATCH, nb, 0);
        goto done;
    }
    /* a path optimised here is kept as cdrp / score-cdrp would write it, so
     * later path maps and eval --scorer path find it; never over a path
     * results.jsonl already names */
    char path_settings_[160];
    path_gates_settings(p, be->precision, path_settings_, sizeof path_settings_);
    for (int i = 0; i < n_opt && rc == AT_OK; i++) {
        int b = need[i];
        if (!at_results_has(run->res, run->paths[index[b]], pfile, "", "predicted"))
            rc = write_path(run, index[b], &cr[b], p->path_score_weighted ? "score-cdrp" : "cdrp", path_settings_, ms,
                            nb, NULL, &written[b]);
    }
    /* maps of the path: one for path-scorecam, one per rate for pathway-grad */
    int n_maps = run->method == AT_PATH_SCORECAM ? 1 : p->n_rates;
    for (int k = 0; k < n_maps && rc == AT_OK; k++) {
        double t1 = at_now_s();
        for (int b = 0; b < nb; b++) er[b] = (at_explain_result){.map = maps + hw * b};
        at_prune_options prune = {p->rates[k], p->prune_global, p->keep_gate_values};
        rc = run->method == AT_PATH_SCORECAM ? at_path_scorecam(be, gates, classes, inputs, nb, er)
                                             : at_pathway_gradient(be, gates, &prune, classes, inputs, nb, er);
        if (rc) break;
        double ms_map = ms + 1e3 * (at_now_s() - t1) / nb;
        char param[16];
        snprintf(param, sizeof param, "r%.2f", p->rates[k]);
        const char *par = run->method == AT_PATH_PATHWAY_GRAD ? param : NULL;
        char method[96];
        snprintf(method, sizeof method, "%s%s%s", run->tag, par ? "." : "", par ? par : "");
        results_key_name(method, run->settings, key, sizeof key);
        for (int b = 0; b < nb && rc == AT_OK; b++) {
            const char *image = run->paths[index[b]], *stem = run->stems[index[b]];
            char *npy = NULL, *png = NULL, *line = NULL;
            map_line_args la = {.image = image, .method = method, .r = &er[b], .gates = gates + (long)G * b,
                                .cls = classes[b], .gates_from = from[b] ? from[b] : "optimised",
                                .path_gates = from[b] ? from[b] : written[b], .rate = par ? p->rates[k] : -1, .ms = ms_map, .batch = nb};
            if (explain_write_map(run->out_dir, stem, run->name, par, er[b].map, m->in_w, m->in_h, rgbs[b].rgb,
                              run->no_overlay, &npy, &png))
                rc = AT_ERR;
            la.npy = npy, la.png = png;
            /* --resume redoes an image whose last rate is missing: its earlier
             * rates' lines are there already (the maps are the same) */
            int have = run->skip_existing && at_results_has(run->res, image, key, "", "predicted");
            if (rc || (!have && (!(line = map_line(run, &la)) || at_results_append(run->res, line) ||
                                 at_results_add_key(run->res, image, key, "", "predicted"))))
                rc = AT_ERR;
            if (rc == AT_OK && par && run->summary && k < 16) {
                run->summary->rate_paths[k]++;
                run->summary->rate_kept[k] += er[b].predicted == classes[b];
                run->summary->rate_prob[k] += er[b].prob;
            }
            free(npy), free(png), free(line);
        }
    }
    if (rc == AT_OK) run_report_event(run->rep, AT_RUN_BATCH, nb, 0);
done:
    for (int b = 0; from && b < nb; b++) free(from[b]);
    for (int b = 0; written && b < nb; b++) free(written[b]);
    free(from), free(written), free(need), free(classes), free(opt_inputs);
    free(gates), free(alpha), free(maps), free(cr), free(er);
    return rc;
}

