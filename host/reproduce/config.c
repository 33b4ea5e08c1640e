/* The reproduce run's JSON config (reproduce/config.json; keys in
 * docs/reproduce.md). Strict: unknown keys are errors, so a typo cannot
 * silently change the run; keys beginning with '_' are comments. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/json.h"
#include "methods/explain.h"
#include "reproduce/internal.h"

static int cfg_fail(const at_reproduce_config *c, const char *key, const char *what) {
    return at_fail(c->config_path, "%s: %s", key, what);
}

static int get_str(const at_reproduce_config *c, const at_json *o, const char *key, char **out) {
    const at_json *v = at_json_get(o, key);
    if (!v || v->type == AT_JSON_NULL) return AT_OK;
    if (v->type != AT_JSON_STRING || !v->string[0]) return cfg_fail(c, key, "must be a non-empty string");
    free(*out);
    *out = strdup(v->string);
    return *out ? AT_OK : at_fail("reproduce", "out of memory");
}

static int get_int(const at_reproduce_config *c, const at_json *o, const char *key, long lo, long hi, long *out) {
    const at_json *v = at_json_get(o, key);
    int64_t n;
    if (!v) return AT_OK;
    if (!at_json_exact_int(v, &n) || n < lo || n > hi) {
        char msg[96];
        snprintf(msg, sizeof msg, "must be an integer in %ld..%ld", lo, hi);
        return cfg_fail(c, key, msg);
    }
    *out = (long)n;
    return AT_OK;
}

static int get_numbers(const at_reproduce_config *c, const at_json *o, const char *key, double lo, double hi, double *out,
                       int cap, int *n) {
    const at_json *v = at_json_get(o, key);
    if (!v) return AT_OK;
    if (v->type != AT_JSON_ARRAY || !v->n || v->n > (size_t)cap) return cfg_fail(c, key, "must be a non-empty list");
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i].type != AT_JSON_NUMBER || v->items[i].number < lo || v->items[i].number > hi)
            return cfg_fail(c, key, "holds a value out of range");
        out[i] = v->items[i].number;
    }
    *n = (int)v->n;
    return AT_OK;
}

/* Object keys must be known (a typo must not silently change the run);
 * keys beginning with '_' are comments. */
static int check_keys(const at_reproduce_config *c, const at_json *o, const char *where, const char *const *known) {
    if (!o || o->type != AT_JSON_OBJECT) return cfg_fail(c, where, "must be an object");
    for (size_t i = 0; i < o->n; i++) {
        if (o->keys[i][0] == '_') continue;
        int ok = 0;
        for (int k = 0; known[k]; k++) ok |= !strcmp(o->keys[i], known[k]);
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown key '%s'", o->keys[i]);
            return cfg_fail(c, where, msg);
        }
    }
    return AT_OK;
}

static int parse_data(at_reproduce_config *c, const at_json *d) {
    static const char *const known[] = {"dir", "images", "list", "annotations", "generate", NULL};
    if (check_keys(c, d, "data", known) || get_str(c, d, "dir", &c->data_dir) ||
        get_str(c, d, "images", &c->images_dir) || get_str(c, d, "list", &c->list) ||
        get_str(c, d, "annotations", &c->annotations))
        return AT_ERR;
    if (!c->data_dir && !c->images_dir && !c->list) return cfg_fail(c, "data", "needs dir, images or list");
    const at_json *g = at_json_get(d, "generate");
    if (g) {
        static const char *const gknown[] = {"split", "count", "seed", NULL};
        char *split = NULL;
        if (check_keys(c, g, "data.generate", gknown) || get_str(c, g, "split", &split)) return AT_ERR;
        snprintf(c->gen_split, sizeof c->gen_split, "%s", split ? split : "test");
        free(split);
        if (strcmp(c->gen_split, "test") && strcmp(c->gen_split, "val") && strcmp(c->gen_split, "train"))
            return cfg_fail(c, "data.generate.split", "must be test, val or train");
        c->gen_count = 0;
        if (get_int(c, g, "count", 1, 1000000, &c->gen_count) || get_int(c, g, "seed", 0, 1L << 31, &c->gen_seed))
            return AT_ERR;
        if (!c->gen_count) return cfg_fail(c, "data.generate.count", "is required");
        if (!c->data_dir) return cfg_fail(c, "data.generate", "needs data.dir to write into");
        c->generate = 1;
    }
    char buf[4200];
    if (!c->images_dir && c->data_dir) {
        snprintf(buf, sizeof buf, "%s/images", c->data_dir);
        c->images_dir = strdup(buf);
    }
    if (!c->annotations && c->data_dir) {
        struct stat st;
        snprintf(buf, sizeof buf, "%s/annotations", c->data_dir);
        if (c->generate || (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))) c->annotations = strdup(buf);
        else {
            snprintf(buf, sizeof buf, "%s/images.csv", c->data_dir);
            if (access(buf, R_OK) == 0) c->annotations = strdup(buf);
        }
    }
    return AT_OK;
}

static int parse_experiments(at_reproduce_config *c, const at_json *e) {
    if (!e) {
        c->table1 = c->table2 = c->fig7 = c->seed004 = c->figures = c->methods = c->mprt = c->lcam = 1;
        return AT_OK;
    }
    if (e->type != AT_JSON_ARRAY || !e->n) return cfg_fail(c, "experiments", "must be a non-empty list");
    for (size_t i = 0; i < e->n; i++) {
        const char *s = e->items[i].type == AT_JSON_STRING ? e->items[i].string : "";
        if (!strcmp(s, "table1")) c->table1 = 1;
        else if (!strcmp(s, "table2")) c->table2 = 1;
        else if (!strcmp(s, "fig7")) c->fig7 = 1;
        else if (!strcmp(s, "seed004")) c->seed004 = 1;
        else if (!strcmp(s, "figures")) c->figures = 1;
        else if (!strcmp(s, "methods")) c->methods = 1;
        else if (!strcmp(s, "mprt")) c->mprt = 1;
        else if (!strcmp(s, "lcam")) c->lcam = 1;
        else return cfg_fail(c, "experiments", "items are table1, table2, fig7, seed004, figures, methods, mprt, lcam");
    }
    return AT_OK;
}

/* "cdrp": {"preset": "zhu2024", "iterations": 100, ...}: explain's routing-path
 * options, passed as --KEY VALUE to the cdrp and score-cdrp steps. */
static int parse_path_opts(at_reproduce_config *c, const at_json *o) {
    if (!o) return AT_OK;
    if (o->type != AT_JSON_OBJECT || o->n > AT_REPRODUCE_MAX_ARGS / 2) return cfg_fail(c, "cdrp", "must be a small object");
    for (size_t i = 0; i < o->n; i++) {
        const at_json *v = &o->items[i];
        char opt[80], val[64];
        if (o->keys[i][0] == '_') continue;
        snprintf(opt, sizeof opt, "--%s", o->keys[i]);
        if (v->type == AT_JSON_STRING) snprintf(val, sizeof val, "%s", v->string);
        else if (v->type == AT_JSON_NUMBER) snprintf(val, sizeof val, "%.17g", v->number);
        else return cfg_fail(c, "cdrp", "values must be strings or numbers");
        c->path_opts[c->n_path_opts++] = strdup(opt);
        c->path_opts[c->n_path_opts++] = strdup(val);
    }
    return AT_OK;
}

/* A section of images, one more number (num_key in lo..hi) and an optional list
 * of explain's method names (list_key, copied into names[*n]). */
typedef struct {
    const char *section, *num_key, *list_key;
    long lo, hi;
    int *images;
    long *num;
    char **names;
    int *n;
} method_section;

static int parse_method_section(at_reproduce_config *c, const at_json *o, const method_section *s) {
    const char *const known[] = {"images", s->list_key, s->num_key, NULL};
    if (!o) return AT_OK;
    long m = *s->images;
    if (check_keys(c, o, s->section, known) || get_int(c, o, "images", 1, 10000000, &m) ||
        get_int(c, o, s->num_key, s->lo, s->hi, s->num))
        return AT_ERR;
    *s->images = (int)m;
    const at_json *l = at_json_get(o, s->list_key);
    if (!l) return AT_OK;
    char key[64];
    snprintf(key, sizeof key, "%s.%s", s->section, s->list_key);
    if (l->type != AT_JSON_ARRAY || !l->n || l->n > AT_REPRODUCE_MAX_METHODS)
        return cfg_fail(c, key, "must be a non-empty list of method names");
    for (size_t i = 0; i < l->n; i++) {
        at_method method;
        if (l->items[i].type != AT_JSON_STRING || at_method_parse(l->items[i].string, &method)) {
            at_clear_error();
            return cfg_fail(c, key, "items must be explain's method names");
        }
        s->names[(*s->n)++] = strdup(l->items[i].string);
    }
    return AT_OK;
}

/* "methods": {"images": M, "list": [...], "rise_n": N}: the methods table. */
static int parse_methods(at_reproduce_config *c, const at_json *o) {
    const method_section s = {"methods", "rise_n", "list", 1, 1000000, &c->n_method_images, &c->rise_n,
                              c->method_list, &c->n_method_list};
    return parse_method_section(c, o, &s);
}

/* "mprt": {"images": M, "methods": [...], "seed": S}: the sanity check. */
static int parse_mprt(at_reproduce_config *c, const at_json *o) {
    const method_section s = {"mprt", "seed", "methods", 0, 2147483647, &c->n_mprt_images, &c->mprt_seed,
                              c->mprt_methods, &c->n_mprt_methods};
    return parse_method_section(c, o, &s);
}

/* "lcam": {"zero_lowest": [0, 50, 70, 85]}: the L-CAM comparison's q values
 * (it runs on the methods table's images and maps). */
static int parse_lcam(at_reproduce_config *c, const at_json *o) {
    static const char *const known[] = {"zero_lowest", NULL};
    static const double q[] = {0, 50, 70, 85};
    memcpy(c->lc.q, q, sizeof q);
    c->lc.n_q = 4;
    if (!o) return AT_OK;
    if (check_keys(c, o, "lcam", known) ||
        get_numbers(c, o, "zero_lowest", 0, 100, c->lc.q, AT_REPRODUCE_MAX_LCAM_Q, &c->lc.n_q))
        return AT_ERR;
    return AT_OK;
}

static int parse_eval(at_reproduce_config *c, const at_json *o) {
    static const char *const known[] = {"proportions", "fig7_score", "scorer", "bootstrap_reps", "bootstrap_seed", NULL};
    if (!o) return AT_OK;
    if (check_keys(c, o, "eval", known) ||
        get_numbers(c, o, "proportions", 0.01, 100, c->props, AT_REPRODUCE_MAX_PROPS, &c->n_props))
        return AT_ERR;
    char *score = NULL, *scorer = NULL;
    int rc = get_str(c, o, "fig7_score", &score) || get_str(c, o, "scorer", &scorer) ? AT_ERR : AT_OK;
    if (!rc && score && strcmp(score, "prob") && strcmp(score, "logit"))
        rc = cfg_fail(c, "eval.fig7_score", "must be prob or logit");
    if (!rc && scorer && strcmp(scorer, "original") && strcmp(scorer, "path"))
        rc = cfg_fail(c, "eval.scorer", "must be original or path");
    c->fig7_logit = score && !strcmp(score, "logit");
    c->scorer_path = scorer && !strcmp(scorer, "path");
    free(score), free(scorer);
    long reps = c->boot_reps, seed = (long)c->boot_seed;
    if (rc || get_int(c, o, "bootstrap_reps", 100, 1000000, &reps) ||
        get_int(c, o, "bootstrap_seed", 0, 1L << 40, &seed))
        return AT_ERR;
    c->boot_reps = (int)reps;
    c->boot_seed = (uint64_t)seed;
    return AT_OK;
}

int at_reproduce_config_load(const char *path, at_reproduce_config *c) {
    memset(c, 0, sizeof *c);
    c->config_path = strdup(path);
    static const double props[] = {5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    memcpy(c->props, props, sizeof props);
    c->n_props = 12;
    c->rates[0] = 0.3, c->rates[1] = 0.5, c->rates[2] = 0.7, c->rates[3] = 0.9;
    c->n_rates = 4;
    c->boot_reps = 2000;
    c->boot_seed = 20240901u;
    c->n_figure = 4;
    c->n_method_images = 64;
    c->rise_n = 1000;
    c->n_mprt_images = 32;
    FILE *f = fopen(path, "rb");
    if (!f) return at_fail(path, "%s", strerror(errno));
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text, f);
    int big = !feof(f);
    fclose(f);
    if (big) return at_fail(path, "larger than %zu bytes", sizeof text);
    at_json *j = NULL;
    if (at_json_parse(text, len, &j)) return at_fail_prefix(path);
    static const char *const known[] = {"title", "model", "data", "images", "path_images", "figure_images", "out",
                                        "report", "experiments", "cdrp", "eval", "pathway_rates", "methods", "mprt", "lcam",
                                        NULL};
    long n_img = 0, n_path = 0, n_fig = c->n_figure;
    int rc = check_keys(c, j, "config", known) || get_str(c, j, "title", &c->title) ||
                     get_str(c, j, "model", &c->model) || get_str(c, j, "out", &c->out) ||
                     get_str(c, j, "report", &c->report) || get_int(c, j, "images", 0, 10000000, &n_img) ||
                     get_int(c, j, "path_images", 0, 10000000, &n_path) ||
                     get_int(c, j, "figure_images", 0, 64, &n_fig) ||
                     get_numbers(c, j, "pathway_rates", 0, 1, c->rates, AT_REPRODUCE_MAX_RATES, &c->n_rates) ||
                     parse_experiments(c, at_json_get(j, "experiments")) ||
                     parse_path_opts(c, at_json_get(j, "cdrp")) || parse_eval(c, at_json_get(j, "eval")) ||
                     parse_methods(c, at_json_get(j, "methods")) || parse_mprt(c, at_json_get(j, "mprt")) ||
                     parse_lcam(c, at_json_get(j, "lcam"))
                 ? AT_ERR
                 : AT_OK;
    if (!rc) {
        const at_json *d = at_json_get(j, "data");
        rc = d ? parse_data(c, d) : cfg_fail(c, "data", "is required");
    }
    at_json_free(j);
    if (rc) return rc;
    c->n_images = (int)n_img, c->n_path = (int)n_path, c->n_figure = (int)n_fig;
    if (!c->out) return cfg_fail(c, "out", "is required");
    if (!c->report) {
        char buf[4200];
        snprintf(buf, sizeof buf, "%s/REPORT.md", c->out);
        c->report = strdup(buf);
    }
    if (!c->title) c->title = strdup("Score-CDRP reproduction");
    if ((c->table2 || c->seed004 || c->methods) && !c->annotations)
        return cfg_fail(c, "data.annotations", "table2, seed004 and methods need boxes (ILSVRC XML folder or images.csv)");
    return AT_OK;
}

void at_reproduce_config_free(at_reproduce_config *c) {
    free(c->config_path), free(c->title), free(c->model), free(c->data_dir), free(c->images_dir), free(c->list);
    free(c->annotations), free(c->out), free(c->report);
    for (int i = 0; i < c->n_path_opts; i++) free(c->path_opts[i]);
    for (int i = 0; i < c->n_method_list; i++) free(c->method_list[i]);
    for (int i = 0; i < c->n_mprt_methods; i++) free(c->mprt_methods[i]);
}

