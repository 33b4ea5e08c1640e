/* The sanity check in the reproduce report (docs/reproduce.md): the
 * model-parameter randomisation of Adebayo et al. 2018
 * (docs/methods.md#model-parameter-randomisation) for the seed-004 gradient
 * methods and a weight-free Sobel control on the first images, as tables of
 * the mean Spearman correlation per layer and as the curves
 * tools/plot_mprt.py draws. Its maps live in OUT/mprt-KEY (explain with the
 * methods' defaults; eval --metric mprt over them). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "metrics/metrics.h"
#include "output/output.h"
#include "reproduce/internal.h"

#define MAX_LAYERS 256
#define CONTROL "sobel-control"

/* The default methods: seed 004's map methods that run at their defaults
 * (the Mask row's optimisation would cost 40x them per randomised model),
 * plus the gradient Adebayo et al. test first. */
static const char *const DEFAULT_METHODS[] = {"gradcam", "gradcam++", "fafrp", "saliency", NULL};

static int methods_of(const at_reproduce_config *c, const char **out) {
    int n = 0;
    if (c->n_mprt_methods)
        for (int i = 0; i < c->n_mprt_methods; i++) out[n++] = c->mprt_methods[i];
    else
        for (; DEFAULT_METHODS[n]; n++) out[n] = DEFAULT_METHODS[n];
    return n;
}

int rp_mprt_steps(rp_state *s) {
    const at_reproduce_config *c = s->run.cfg;
    rp_run *r = &s->run;
    /* the first M images of the CAM comparison, in its own list */
    int m = c->n_mprt_images < r->cam.n ? c->n_mprt_images : r->cam.n;
    snprintf(r->mprt_list, sizeof r->mprt_list, "%s/lists/mprt.txt", c->out);
    FILE *f = s->dry ? NULL : fopen(r->mprt_list, "w"); /* a dry pass has no lists yet */
    if (!s->dry && !f) return at_fail(r->mprt_list, "%s", strerror(errno));
    int rc = AT_OK;
    for (int i = 0; f && i < m && rc == AT_OK; i++) {
        fprintf(f, "%s\n", r->cam.paths[i]);
        rc = at_paths_add(&r->mprt, r->cam.paths[i]);
    }
    if (f && fclose(f) && rc == AT_OK) rc = at_fail(r->mprt_list, "write error");
    if (rc || at_output_dir_prepare(r->mprt_dir)) return AT_ERR;
    const char *methods[AT_REPRODUCE_MAX_METHODS];
    int n = methods_of(c, methods);
    char name[128], seed[32];
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "mprt: explain %s", methods[k]);
        if (rp_explain(s, r->mprt_dir, name, methods[k], r->mprt_list, NULL)) return AT_ERR;
    }
    snprintf(seed, sizeof seed, "%ld", c->mprt_seed);
    const char *opts[] = {"--control", "sobel", "--seed", seed, NULL};
    if (rp_eval(s, r->mprt_dir, "mprt: eval mprt", "mprt", NULL, opts)) return AT_ERR;
    /* the curves, when Python and matplotlib are there */
    char script[4400], eval_file[4400], list[512];
    size_t o = 0;
    for (int k = 0; k < n; k++) o += snprintf(list + o, sizeof list - o, "%s,", methods[k]);
    snprintf(list + o, sizeof list - o, "%s", CONTROL);
    snprintf(script, sizeof script, "%s/plot_mprt.py", s->tools);
    snprintf(eval_file, sizeof eval_file, "%s/eval.mprt.jsonl", r->mprt_dir);
    char key[48];
    snprintf(key, sizeof key, "mprt,seed%ld", c->mprt_seed);
    const char *base;
    rp_figure_path(c, "mprt.png", r->mprt_png, sizeof r->mprt_png, &base);
    char report_dir[4400];
    snprintf(report_dir, sizeof report_dir, "%s", r->mprt_png);
    char *slash = strrchr(report_dir, '/');
    if (slash) *slash = 0;
    if (slash && at_output_dir_prepare(report_dir)) {
        snprintf(r->mprt_note, sizeof r->mprt_note, "failed: %s", at_last_error());
        r->mprt_png[0] = 0;
        return AT_OK;
    }
    const char *args[] = {"--eval", eval_file, "--key", key, "--list", r->mprt_list, "--methods", list, "--out",
                          r->mprt_png, NULL};
    if (rp_python_tool(s, "plot mprt", script, args, r->mprt_note, sizeof r->mprt_note)) r->mprt_png[0] = 0;
    return AT_OK;
}

/* The mean, CI and excluded count of one method's correlations per layer. */
typedef struct {
    char layers[MAX_LAYERS][48];
    int n_layers;
    double *rho[2]; /* [layer][image], NaN where excluded or missing */
    int images;
} mprt_values;

typedef struct {
    mprt_values *v;
    const at_paths *im;
    const char *method, *key;
} load_ctx;

static int load_line(const at_json *j, void *ctx) {
    load_ctx *c = ctx;
    const at_json *ly = at_json_get(j, "layers");
    int i = rp_line_image(j, c->method, c->key, c->im, NULL);
    if (i < 0 || !ly || ly->type != AT_JSON_ARRAY) return AT_OK;
    mprt_values *v = c->v;
    if (!v->n_layers) {
        v->n_layers = ly->n < MAX_LAYERS ? (int)ly->n : MAX_LAYERS;
        for (int l = 0; l < v->n_layers; l++)
            snprintf(v->layers[l], sizeof v->layers[l], "%s", ly->items[l].type == AT_JSON_STRING ? ly->items[l].string : "?");
        for (int o = 0; o < 2; o++) {
            v->rho[o] = malloc(sizeof(double) * v->n_layers * (c->im->n ? c->im->n : 1));
            if (!v->rho[o]) return at_fail("reproduce", "out of memory");
            for (long k = 0; k < (long)v->n_layers * c->im->n; k++) v->rho[o][k] = NAN;
        }
    }
    static const char *const orders[2] = {"cascading", "independent"};
    for (int o = 0; o < 2; o++) {
        const at_json *a = at_json_get(j, orders[o]);
        for (int l = 0; l < v->n_layers; l++)
            v->rho[o][(long)l * c->im->n + i] =
                a && a->type == AT_JSON_ARRAY && (size_t)l < a->n && a->items[l].type == AT_JSON_NUMBER
                    ? a->items[l].number
                    : NAN;
    }
    return AT_OK;
}

int rp_mprt_report(FILE *f, const rp_run *r, const char *report_dir) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->mprt;
    int n = im->n;
    const char *methods[AT_REPRODUCE_MAX_METHODS + 1];
    int nm = methods_of(c, methods);
    methods[nm++] = CONTROL;
    char file[4400], key[48], cell[128];
    snprintf(file, sizeof file, "%s/eval.mprt.jsonl", r->mprt_dir);
    snprintf(key, sizeof key, "mprt,seed%ld", c->mprt_seed);
    mprt_values *v = calloc(nm, sizeof *v);
    if (!v) return at_fail("reproduce", "out of memory");
    int rc = AT_OK, n_layers = 0;
    for (int k = 0; k < nm && rc == AT_OK; k++) {
        load_ctx lc = {&v[k], im, methods[k], key};
        rc = at_jsonl_each(file, load_line, &lc);
        if (v[k].n_layers > n_layers) n_layers = v[k].n_layers;
    }
    const mprt_values *names = NULL;
    for (int k = 0; k < nm && !names; k++)
        if (v[k].n_layers == n_layers) names = &v[k];
    if (rc == AT_OK) {
        fprintf(f, "## Sanity check: model-parameter randomisation (Adebayo et al. 2018)\n\n"
                   "The first %d images; each method's map made again after re-initialising the\n"
                   "layers (PyTorch's default init, seed %ld) cascading from the top, and one at a time;\n"
                   "mean Spearman rank correlation with the original map [95 %% bootstrap CI], maps of\n"
                   "the original class (docs/methods.md#model-parameter-randomisation). A map that\n"
                   "explains the model must lose its correlation; `sobel-control` is an edge map of\n"
                   "the input that ignores the weights and must stay at 1. In parentheses: all-zero\n"
                   "maps excluded from the mean.\n\n",
                n, c->mprt_seed);
    }
    static const char *const order_name[2] = {"Cascading (layers from the top down to this one re-initialised)",
                                              "Independent (this layer alone re-initialised)"};
    for (int o = 0; o < 2 && rc == AT_OK && names; o++) {
        fprintf(f, "%s:\n\n| layer |", order_name[o]);
        for (int k = 0; k < nm; k++) fprintf(f, " %s |", methods[k]);
        fprintf(f, "\n|---|");
        for (int k = 0; k < nm; k++) fprintf(f, "---:|");
        fprintf(f, "\n");
        for (int l = 0; l < n_layers; l++) {
            fprintf(f, "| %s |", names->layers[l]);
            for (int k = 0; k < nm; k++) {
                if (v[k].n_layers != n_layers) {
                    fprintf(f, " – |");
                    continue;
                }
                const double *x = v[k].rho[o] + (long)l * n;
                rp_stat st = rp_stat_of(c, x, NULL, n);
                int excluded = n - st.n;
                if (excluded) fprintf(f, " %s (%d) |", rp_fmt(cell, sizeof cell, st, 2, 0), excluded);
                else fprintf(f, " %s |", rp_fmt(cell, sizeof cell, st, 2, 0));
            }
            fprintf(f, "\n");
        }
        fprintf(f, "\n");
    }
    /* in words: where each curve ends and how low it goes */
    if (rc == AT_OK && names) {
        fprintf(f, "With every layer re-initialised (the cascade's last row):");
        for (int k = 0; k < nm; k++) {
            if (v[k].n_layers != n_layers) continue;
            rp_stat last = rp_stat_of(c, v[k].rho[0] + (long)(n_layers - 1) * n, NULL, n);
            double lo = INFINITY;
            int at = 0;
            for (int l = 0; l < n_layers; l++) {
                rp_stat s = rp_stat_of(c, v[k].rho[0] + (long)l * n, NULL, n);
                if (s.n && s.mean < lo) lo = s.mean, at = l;
            }
            fprintf(f, "%s %s %s", k ? ";" : "", methods[k], rp_fmt(cell, sizeof cell, last, 2, 0));
            if (isfinite(lo)) fprintf(f, " (lowest %.2f, at %s)", lo, names->layers[at]);
        }
        fprintf(f, ".\n\n");
        rp_figure_link(f, report_dir, r->mprt_png,
                       "Model-parameter randomisation: Spearman correlation per layer, 95 % CI bands",
                       r->mprt_note[0] ? r->mprt_note : "not made", "the tables above hold the same numbers");
    } else if (rc == AT_OK) {
        fprintf(f, "No values in %s.\n\n", file);
    }
    for (int k = 0; k < nm; k++) free(v[k].rho[0]), free(v[k].rho[1]);
    free(v);
    return rc;
}
