/* at_mprt_run: the model-parameter-randomisation sanity check
 * (docs/methods.md#model-parameter-randomisation) over explain's results. Each method tag's maps are made again by the same method (its
 * default settings, the line's layer and class) after re-initialising the
 * layers cascading from the top and one at a time; the per-image Spearman
 * correlations with the maps explain wrote go to DIR/eval.mprt.jsonl. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "io/json_write.h"
#include "io/npy.h"
#include "methods/explain.h"
#include "metrics/metrics.h"
#include "metrics/randomisation.h"
#include "output/output.h"
#include "preprocess/pipeline.h"
#include "run/eval_entries.h"
#include "run/report.h"
#include "version.h"

#define MAX_MPRT_LAYERS 256
#define EXPLAIN_CHUNK 32  /* images per at_explain call: bounds the method's memory */
#define CONTROL_NAME "sobel-control"

static const char *const ORDER_NAMES[2] = {"cascading", "independent"};

typedef struct {
    char name[128];           /* the method tag (row name), or CONTROL_NAME */
    int control;
    at_explain_options ex;
    int *members, n, cap;     /* entry indices */
    double *rho[2];           /* [n_layers][n] per order, NaN: excluded */
    int *orig_zero;           /* [n]: the original map is all zero */
} mprt_group;

typedef struct {
    const at_eval_options *a;
    const at_backend_options *bo;
    run_report rep;
    at_model *m;
    int layers[MAX_MPRT_LAYERS], n_layers;
    int orders[2];
    long hw;
} mprt_ctx;

static int explain_maker(at_backend *be, const float *inputs, int n, const int *classes, float *maps, void *ctx) {
    const mprt_group *g = ctx;
    const at_model *m = be->model;
    long hw = (long)m->in_h * m->in_w, in_size = (long)m->in_c * hw;
    at_explain_result *r = calloc(EXPLAIN_CHUNK, sizeof *r);
    if (!r) return at_fail(NULL, "out of memory");
    int rc = AT_OK;
    for (int s = 0; rc == AT_OK && s < n; s += EXPLAIN_CHUNK) {
        int k = n - s < EXPLAIN_CHUNK ? n - s : EXPLAIN_CHUNK;
        at_explain_options ex = g->ex;
        ex.classes = classes + s;
        memset(r, 0, sizeof *r * EXPLAIN_CHUNK);
        for (int i = 0; i < k; i++) r[i].map = maps + hw * (s + i);
        rc = at_explain(be, &ex, inputs + in_size * s, k, r);
    }
    free(r);
    return rc;
}

static int sobel_maker(at_backend *be, const float *inputs, int n, const int *classes, float *maps, void *ctx) {
    const at_model *m = be->model;
    long hw = (long)m->in_h * m->in_w;
    for (int i = 0; i < n; i++) at_sobel_map(inputs + m->in_c * hw * i, m->in_c, m->in_h, m->in_w, maps + hw * i);
    return AT_OK;
}

static mprt_group *group_for(mprt_group **g, int *n, const char *name) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*g)[i].name, name)) return &(*g)[i];
    mprt_group *ng = realloc(*g, sizeof *ng * (*n + 1));
    if (!ng) return NULL;
    *g = ng;
    mprt_group *x = &ng[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    return x;
}

static int group_add(mprt_group *g, int idx) {
    if (g->n == g->cap) {
        int cap = g->cap ? 2 * g->cap : 32, *nm = realloc(g->members, sizeof(int) * cap);
        if (!nm) return at_fail(NULL, "out of memory");
        g->members = nm, g->cap = cap;
    }
    g->members[g->n++] = idx;
    return AT_OK;
}

/* 1 when settings only name what mprt takes from the line anyway: its
 * layer and its class option ("truth", "c3"). */
static int settings_are_layer_and_class(const char *settings, const char *layer) {
    char buf[300];
    snprintf(buf, sizeof buf, "%s", settings);
    size_t ll = layer ? strlen(layer) : 0;
    char *p = buf;
    if (ll && !strncmp(p, layer, ll) && (p[ll] == '.' || !p[ll])) p += ll + (p[ll] == '.');
    for (char *save = NULL, *t = strtok_r(p, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
        if (!strcmp(t, "truth")) continue;
        if (t[0] == 'c' && t[1] && strspn(t + 1, "0123456789") == strlen(t + 1)) continue;
        return 0;
    }
    return 1;
}

/* The method of a results line ("gradcam", "scorecam.pgc"), re-run with its
 * defaults at the line's layer. */
static int group_method(const mprt_ctx *c, mprt_group *g, const entry *e) {
    at_method method;
    at_variant variant = AT_VARIANT_AUTHORS;
    char name[96];
    snprintf(name, sizeof name, "%s", e->method);
    char *dot = strchr(name, '.');
    if (dot && at_method_parse(name, &method)) {
        *dot = 0;
        if (at_variant_parse(dot + 1, &variant)) *dot = '.';
    }
    if (at_method_parse(name, &method))
        return at_fail(e->image, "mprt re-runs the map's method: '%s' is not an explain method", e->method);
    const char *settings = e->name + strlen(e->method);
    settings += *settings == '.';
    if (!settings_are_layer_and_class(settings, e->layer))
        return at_fail(e->image, "mprt re-runs %s with its default settings; this line has settings '%s' "
                       "(explain the images with the defaults, or pick other lines by their method tag)", e->method, settings);
    memset(&g->ex, 0, sizeof g->ex);
    g->ex.method = method;
    g->ex.variant = variant;
    g->ex.layer = -1;
    if (at_method_uses_layer(method)) {
        g->ex.layer = at_model_find_layer(c->m, e->layer && e->layer[0] ? e->layer : "last-conv");
        if (g->ex.layer < 0) return AT_ERR;
    }
    return AT_OK;
}

static void options_key(const at_eval_options *a, char *buf, size_t cap) {
    snprintf(buf, cap, "mprt,seed%d", a->mprt_seed);
}

static char *layer_names_json(const mprt_ctx *c) {
    size_t cap = 2 + (size_t)c->n_layers * 40, o = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    o += snprintf(s + o, cap - o, "[");
    for (int l = 0; l < c->n_layers; l++)
        o += snprintf(s + o, cap - o, "%s\"%s\"", l ? "," : "", c->m->layers[c->layers[l]].name);
    snprintf(s + o, cap - o, "]");
    return s;
}

/* Values an earlier run wrote for an entry (resume). */
typedef struct {
    const mprt_ctx *c;
    const char *key;
    const entry *entries;
    mprt_group *g;
    int n_found;
    char *found;
} resume_load;

static int load_line(const at_json *j, void *ctx) {
    resume_load *r = ctx;
    const at_json *im = at_json_get(j, "image"), *me = at_json_get(j, "method"), *co = at_json_get(j, "class_option");
    const at_json *st = at_json_get(j, "settings");
    if (!im || !me || !co || im->type != AT_JSON_STRING || me->type != AT_JSON_STRING || co->type != AT_JSON_STRING ||
        strcmp(co->string, r->key))
        return AT_OK;
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", me->string, st && st->type == AT_JSON_STRING && st->string[0] ? "." : "",
             st && st->type == AT_JSON_STRING ? st->string : "");
    if (strcmp(name, r->g->name)) return AT_OK;
    for (int k = 0; k < r->g->n; k++) {
        const entry *e = &r->entries[r->g->members[k]];
        if (strcmp(e->image, im->string)) continue;
        for (int o = 0; o < 2; o++) {
            const at_json *v = at_json_get(j, ORDER_NAMES[o]);
            for (int l = 0; l < r->c->n_layers; l++)
                r->g->rho[o][(long)l * r->g->n + k] =
                    v && v->type == AT_JSON_ARRAY && (size_t)l < v->n && v->items[l].type == AT_JSON_NUMBER
                        ? v->items[l].number
                        : NAN;
        }
        const at_json *z = at_json_get(j, "all_zero_map");
        r->g->orig_zero[k] = z && z->type == AT_JSON_BOOL && z->boolean;
        if (!r->found[k]) r->found[k] = 1, r->n_found++;
    }
    return AT_OK;
}

/* Runs the check on the group's images not yet in the file and appends their lines. */
static int run_group(mprt_ctx *c, mprt_group *g, const entry *entries, at_results *res, const char *key,
                     const char *layers_json) {
    const at_model *m = c->m;
    long hw = c->hw, in_size = m->in_c * hw;
    int rc = AT_OK, todo = 0;
    char *pending = calloc(g->n ? g->n : 1, 1);
    int *idx = malloc(sizeof(int) * (g->n ? g->n : 1)), *classes = malloc(sizeof(int) * (g->n ? g->n : 1));
    for (int o = 0; o < 2; o++) {
        g->rho[o] = malloc(sizeof(double) * c->n_layers * (g->n ? g->n : 1));
        for (long i = 0; g->rho[o] && i < (long)c->n_layers * g->n; i++) g->rho[o][i] = NAN;
    }
    g->orig_zero = calloc(g->n ? g->n : 1, sizeof(int));
    if (!pending || !idx || !classes || !g->rho[0] || !g->rho[1] || !g->orig_zero) {
        free(pending), free(idx), free(classes);
        return at_fail(NULL, "out of memory");
    }
    for (int k = 0; k < g->n; k++) {
        const entry *e = &entries[g->members[k]];
        pending[k] = !(c->a->existing == AT_EXISTING_SKIP && at_results_has(res, e->image, g->name, g->control ? "" : e->layer, key));
        if (pending[k]) idx[todo++] = k;
    }
    if (todo < g->n) {
        char *found = calloc(g->n, 1);
        resume_load rl = {c, key, entries, g, 0, found};
        if (!found) rc = at_fail(NULL, "out of memory");
        else rc = at_jsonl_each(at_results_path(res), load_line, &rl);
        free(found);
    }
    float *x = rc == AT_OK ? malloc(sizeof(float) * in_size * (todo ? todo : 1)) : NULL;
    float *orig = rc == AT_OK ? malloc(sizeof(float) * hw * (todo ? todo : 1)) : NULL;
    double *rho[2] = {malloc(sizeof(double) * c->n_layers * (todo ? todo : 1)),
                      malloc(sizeof(double) * c->n_layers * (todo ? todo : 1))};
    if (rc == AT_OK && (!x || !orig || !rho[0] || !rho[1])) rc = at_fail(NULL, "out of memory");
    for (int t = 0; rc == AT_OK && t < todo; t++) {
        const entry *e = &entries[g->members[idx[t]]];
        at_geometry geo;
        classes[t] = e->cls;
        if ((rc = at_load_input(m, e->image, x + in_size * t, &geo))) break;
        if (g->control) {
            at_sobel_map(x + in_size * t, m->in_c, m->in_h, m->in_w, orig + hw * t);
        } else {
            float *map = NULL;
            int ndim;
            int64_t shape[8];
            if (!e->map) rc = at_fail(e->image, "results line has no map");
            else if ((rc = at_npy_read_f32(e->map, &map, &ndim, shape))) break;
            else if (ndim != 2 || shape[0] != m->in_h || shape[1] != m->in_w) rc = at_fail(e->map, "map is not %dx%d", m->in_h, m->in_w);
            else memcpy(orig + hw * t, map, sizeof(float) * hw);
            free(map);
        }
        float mx = 0;
        for (long i = 0; i < hw; i++) mx = orig[hw * t + i] > mx ? orig[hw * t + i] : mx;
        g->orig_zero[idx[t]] = !(mx > 0);
    }
    if (todo < g->n) run_report_event(&c->rep, AT_RUN_SKIP, g->n - todo, 0);
    run_batch batch = {&c->rep, todo};
    if (rc == AT_OK && todo) {
        at_mprt_options mo = {.backend = c->bo, .seed = (uint64_t)c->a->mprt_seed,
                              .cascading = c->orders[0], .independent = c->orders[1],
                              .progress = run_batch_progress, .progress_ctx = &batch};
        run_report_message(&c->rep, AT_RUN_NOTICE, "mprt: %s: %d images, %d randomised models", g->name, todo,
                           c->n_layers * (c->orders[0] + c->orders[1]));
        rc = at_mprt(c->m, &mo, g->control ? sobel_maker : explain_maker, g, x, todo, classes, orig, c->layers,
                     c->n_layers, rho[0], rho[1]);
    }
    for (int t = 0; rc == AT_OK && t < todo; t++) {
        int k = idx[t];
        const entry *e = &entries[g->members[k]];
        double v[2][MAX_MPRT_LAYERS];
        for (int o = 0; o < 2; o++)
            for (int l = 0; l < c->n_layers; l++)
                g->rho[o][(long)l * g->n + k] = v[o][l] = c->orders[o] ? rho[o][(long)l * todo + t] : NAN;
        at_jsonw w;
        at_jsonw_begin(&w);
        at_jsonw_str(&w, "image", e->image);
        at_jsonw_str(&w, "method", g->control ? CONTROL_NAME : e->method);
        at_jsonw_str(&w, "settings", "");
        at_jsonw_str(&w, "layer", g->control ? "" : e->layer ? e->layer : "");
        at_jsonw_str(&w, "class_option", key);
        at_jsonw_str(&w, "metric", "mprt");
        at_jsonw_int(&w, "class", e->cls);
        at_jsonw_int(&w, "seed", c->a->mprt_seed);
        at_jsonw_bool(&w, "all_zero_map", g->orig_zero[k]);
        at_jsonw_raw(&w, "layers", layers_json);
        for (int o = 0; o < 2; o++)
            if (c->orders[o]) at_jsonw_nums(&w, ORDER_NAMES[o], v[o], c->n_layers);
        at_jsonw_str(&w, "model_sha256", m->sha256);
        at_jsonw_str(&w, "engine", "attrib " ATTRIB_VERSION);
        char *line = at_jsonw_end(&w);
        if (!line || at_results_append(res, line) ||
            at_results_add_key(res, e->image, g->name, g->control ? "" : e->layer, key))
            rc = AT_ERR;
        free(line);
    }
    if (rc == AT_OK && todo) run_report_event(&c->rep, AT_RUN_BATCH, todo, 0); /* a group's images finish together */
    free(x), free(orig), free(rho[0]), free(rho[1]), free(pending), free(idx), free(classes);
    return rc;
}

/* Mean and CI of one layer's correlations; *excluded: the NaN ones. */
static void layer_stat(const mprt_group *g, const double *rho, double *mean, double *lo, double *hi, int *n,
                       int *excluded) {
    double *v = malloc(sizeof(double) * (g->n ? g->n : 1)), s = 0;
    int k = 0;
    for (int i = 0; v && i < g->n; i++)
        if (!isnan(rho[i])) s += rho[i], v[k++] = rho[i];
    *n = k, *excluded = g->n - k;
    *mean = *lo = *hi = NAN;
    if (k) {
        *mean = s / k;
        at_bootstrap_ci(v, NULL, k, EVAL_CI_REPS, EVAL_CI_SEED, 0.95, lo, hi);
    }
    free(v);
}

void at_mprt_summary_free(at_mprt_summary *s) {
    for (int r = 0; s->rows && r < s->n_rows; r++) free(s->rows[r].layers[0]), free(s->rows[r].layers[1]);
    free(s->rows), free(s->layer_names);
    memset(s, 0, sizeof *s);
}

static int fill_summary(const mprt_ctx *c, const mprt_group *g, int n_groups, at_mprt_summary *out) {
    out->n_layers = c->n_layers;
    out->orders[0] = c->orders[0], out->orders[1] = c->orders[1];
    out->layer_names = calloc(c->n_layers ? c->n_layers : 1, sizeof *out->layer_names);
    out->rows = calloc(n_groups ? n_groups : 1, sizeof *out->rows);
    if (!out->layer_names || !out->rows) return at_fail(NULL, "out of memory");
    out->n_rows = n_groups;
    for (int l = 0; l < c->n_layers; l++)
        snprintf(out->layer_names[l], sizeof out->layer_names[l], "%s", c->m->layers[c->layers[l]].name);
    for (int r = 0; r < n_groups; r++) {
        at_mprt_row *o = &out->rows[r];
        snprintf(o->method, sizeof o->method, "%s", g[r].name);
        o->images = g[r].n;
        for (int i = 0; i < g[r].n; i++) o->all_zero += g[r].orig_zero[i];
        for (int k = 0; k < 2; k++) {
            if (!c->orders[k]) continue;
            if (!(o->layers[k] = calloc(c->n_layers ? c->n_layers : 1, sizeof *o->layers[k])))
                return at_fail(NULL, "out of memory");
            for (int l = 0; l < c->n_layers; l++) {
                at_mprt_stat *st = &o->layers[k][l];
                layer_stat(&g[r], g[r].rho[k] + (long)l * g[r].n, &st->mean, &st->lo, &st->hi, &st->n, &st->excluded);
            }
        }
    }
    return AT_OK;
}

int at_mprt_run(at_model *m, const at_backend_options *bo, const at_eval_options *a, const at_run_callbacks *cb,
                at_mprt_summary *out) {
    mprt_ctx c = {.a = a, .bo = bo, .m = m,
                  .orders = {a->mprt_mode != AT_MPRT_INDEPENDENT, a->mprt_mode != AT_MPRT_CASCADING}};
    c.rep.cb = cb;
    memset(out, 0, sizeof *out);
    entry *entries = NULL;
    int n = 0, n_groups = 0, rc = AT_ERR;
    mprt_group *groups = NULL;
    at_results *res = NULL;
    char *layers_json = NULL;
    if (!a->maps) return at_fail("maps", "no folder given (explain's output)");
    if (read_entries(a, &entries, &n)) return AT_ERR;
    merge_duplicates(entries, &n);
    if (!n) {
        at_fail(a->maps, "results.jsonl has no map lines%s%s", a->method ? " of method " : "", a->method ? a->method : "");
        goto done;
    }
    c.hw = (long)c.m->in_h * c.m->in_w;
    c.n_layers = at_mprt_layers(c.m, c.layers, MAX_MPRT_LAYERS);
    if (c.n_layers > MAX_MPRT_LAYERS) {
        at_fail(c.m->path, "has %d weight layers; mprt handles at most %d", c.n_layers, MAX_MPRT_LAYERS);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        mprt_group *g = group_for(&groups, &n_groups, entries[i].name);
        if (!g || (g->n == 0 && group_method(&c, g, &entries[i])) || group_add(g, i)) goto done;
    }
    if (a->mprt_control) { /* one control map per image, whatever the methods */
        mprt_group *g = group_for(&groups, &n_groups, CONTROL_NAME);
        if (!g) goto done;
        g->control = 1;
        for (int i = 0; i < n; i++) {
            int seen = 0;
            for (int k = 0; k < g->n && !seen; k++) seen = !strcmp(entries[g->members[k]].image, entries[i].image);
            if (!seen && group_add(g, i)) goto done;
        }
    }
    char key[64];
    options_key(a, key, sizeof key);
    if (at_results_open(&res, a->maps, "eval.mprt.jsonl", 1)) goto done;
    int existing = 0;
    for (int r = 0; r < n_groups; r++)
        for (int k = 0; k < groups[r].n; k++) {
            const entry *e = &entries[groups[r].members[k]];
            existing += at_results_has(res, e->image, groups[r].name, groups[r].control ? "" : e->layer, key);
        }
    out->existing = existing;
    if (existing && a->existing == AT_EXISTING_STOP) {
        at_fail(at_results_path(res), "already holds %d of these values (same options)", existing);
        goto done;
    }
    if (!(layers_json = layer_names_json(&c)) || at_output_install_signal_cleanup()) goto done;
    long total = 0;
    for (int r = 0; r < n_groups; r++) total += groups[r].n;
    run_report_start(&c.rep, cb, total);
    for (int r = 0; r < n_groups; r++)
        if (run_group(&c, &groups[r], entries, res, key, layers_json)) goto done;
    run_report_event(&c.rep, AT_RUN_FINISH, 0, 0);
    if (a->existing == AT_EXISTING_REPLACE && existing) {
        long dropped = 0;
        if (at_results_compact(res, &dropped)) goto done;
    }
    rc = fill_summary(&c, groups, n_groups, out);
done:
    for (int r = 0; r < n_groups; r++)
        free(groups[r].members), free(groups[r].rho[0]), free(groups[r].rho[1]), free(groups[r].orig_zero);
    free(groups), free(layers_json);
    at_results_close(res);
    entries_free(entries, n);
    return rc;
}
