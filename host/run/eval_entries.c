/* eval's inputs (eval_entries.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "run/eval_entries.h"
#include "io/json.h"

void entries_free(entry *e, int n) {
    for (int i = 0; i < n; i++)
        free(e[i].image), free(e[i].method), free(e[i].layer), free(e[i].map), free(e[i].gates), free(e[i].name),
            free(e[i].class_opt);
    free(e);
}

/* By key, then by line: a key's last line sorts last. */
static int entry_key_cmp(const void *x, const void *y, void *ctx) {
    const entry *e = ctx, *a = &e[*(const int *)x], *b = &e[*(const int *)y];
    int c = strcmp(a->image, b->image);
    if (!c) c = strcmp(a->name, b->name);
    if (!c) c = strcmp(a->layer ? a->layer : "", b->layer ? b->layer : "");
    if (!c) c = strcmp(a->class_opt, b->class_opt);
    return c ? c : *(const int *)x - *(const int *)y;
}

int merge_duplicates(entry *e, int *n) {
    int *order = malloc(sizeof(int) * (*n ? *n : 1));
    char *drop = calloc(*n ? *n : 1, 1);
    int k = 0, merged = 0;
    if (!order || !drop) { /* out of memory: keep them all */
        free(order), free(drop);
        return 0;
    }
    for (int i = 0; i < *n; i++) order[i] = i;
    qsort_r(order, *n, sizeof(int), entry_key_cmp, e);
    for (int i = 0; i + 1 < *n; i++) {
        int a = order[i], b = order[i + 1];
        entry *x = &e[a], *y = &e[b];
        if (!strcmp(x->image, y->image) && !strcmp(x->name, y->name) &&
            !strcmp(x->layer ? x->layer : "", y->layer ? y->layer : "") && !strcmp(x->class_opt, y->class_opt))
            drop[a] = 1; /* a later line (b > a) has its key */
    }
    for (int i = 0; i < *n; i++) {
        if (drop[i]) {
            free(e[i].image), free(e[i].method), free(e[i].layer), free(e[i].map), free(e[i].gates),
                free(e[i].name), free(e[i].class_opt);
            merged++;
        } else {
            e[k++] = e[i];
        }
    }
    *n = k;
    free(order), free(drop);
    return merged;
}

static char *dup_member(const at_json *j, const char *key) {
    const at_json *v = at_json_get(j, key);
    return v && v->type == AT_JSON_STRING ? strdup(v->string) : NULL;
}

/* The gates file behind a path map: DIR/<stem>.<path-method>.gates.npy, the
 * stem being the map's file name without ".<method>.npy". */
static char *gates_for_map(const char *map, const char *method, const char *path_method) {
    size_t lm = strlen(map), lt = strlen(method);
    if (lm < lt + 5 || strcmp(map + lm - 4, ".npy") || strncmp(map + lm - 4 - lt, method, lt) || map[lm - 5 - lt] != '.')
        return NULL;
    size_t base = lm - 5 - lt;
    char *out = malloc(base + strlen(path_method) + 16);
    if (out) sprintf(out, "%.*s.%s.gates.npy", (int)base, map, path_method);
    return out;
}

/* explain records its files relative to the directory it ran in; from
 * another directory, a relative name that is not there is looked up in
 * DIR itself (where explain wrote it). Takes ownership of p. */
static char *in_maps_dir(const char *dir, char *p) {
    if (!p || p[0] == '/' || access(p, F_OK) == 0) return p;
    const char *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    char *q = malloc(strlen(dir) + strlen(base) + 2);
    if (!q) return p;
    sprintf(q, "%s/%s", dir, base);
    if (access(q, F_OK) != 0) {
        free(q);
        return p;
    }
    free(p);
    return q;
}

static char *class_option_of(const at_json *j) {
    const at_json *v = at_json_get(j, "class_option");
    char num[32];
    if (v && v->type == AT_JSON_STRING) return strdup(v->string);
    if (v && v->type == AT_JSON_NUMBER) {
        snprintf(num, sizeof num, "%.0f", v->number);
        return strdup(num);
    }
    return strdup("");
}

int read_entries(const at_eval_options *a, entry **out, int *n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/results.jsonl", a->maps);
    FILE *f = fopen(path, "r");
    if (!f) return at_fail(path, "cannot read (no explain run wrote to %s yet)", a->maps);
    int cap = 256, count = 0, lineno = 0, rc = AT_OK;
    entry *e = calloc(cap, sizeof *e);
    static char line[1 << 20];
    while (rc == AT_OK && e && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (!len || line[len - 1] != '\n') break; /* a torn last line: explain will redo it */
        at_json *j = NULL;
        if (at_json_parse(line, len, &j)) {
            rc = at_fail(path, "line %d: %s", lineno, at_last_error());
            break;
        }
        const at_json *cls = at_json_get(j, "class");
        char *method = dup_member(j, "method");
        int wanted = method && cls && cls->type == AT_JSON_NUMBER && (!a->method || !strcmp(a->method, method));
        int is_path_line = at_json_get(j, "gates") != NULL;
        /* confidence: the paths' lines (Table 1), or the lines of the chosen method */
        if (a->metric == AT_EVAL_CONFIDENCE) wanted = wanted && (is_path_line || a->method);
        else wanted = wanted && at_json_get(j, "map") != NULL;
        if (wanted) {
            if (count == cap) {
                entry *ne = realloc(e, sizeof *e * (cap *= 2));
                if (!ne) break;
                e = ne;
            }
            entry *x = &e[count++];
            memset(x, 0, sizeof *x);
            x->image = dup_member(j, "image");
            x->method = method;
            method = NULL;
            x->layer = dup_member(j, "layer");
            x->map = in_maps_dir(a->maps, dup_member(j, "map"));
            x->cls = (int)cls->number;
            x->gates = in_maps_dir(a->maps, dup_member(j, "gates"));
            if (!x->gates) x->gates = in_maps_dir(a->maps, dup_member(j, "path_gates"));
            const at_json *st = at_json_get(j, "settings");
            const char *settings = st && st->type == AT_JSON_STRING ? st->string : "";
            x->name = malloc(strlen(x->method) + strlen(settings) + 2);
            if (x->name) sprintf(x->name, "%s%s%s", x->method, settings[0] ? "." : "", settings);
            x->class_opt = class_option_of(j);
            if (!x->image || !x->name || !x->class_opt) rc = at_fail(path, "out of memory");
            /* lines of engines that did not record path_gates: the gates file by name,
             * unless the path was optimised and not kept (no file is its own) */
            const at_json *pm = at_json_get(j, "path_method"), *gf = at_json_get(j, "gates_from");
            int not_kept = gf && gf->type == AT_JSON_STRING && !strcmp(gf->string, "optimised") &&
                           at_json_get(j, "settings") != NULL;
            if (!x->gates && !not_kept && pm && pm->type == AT_JSON_STRING && x->map)
                x->gates = gates_for_map(x->map, x->method, pm->string);
        }
        free(method);
        at_json_free(j);
    }
    fclose(f);
    if (!e) rc = at_fail(path, "out of memory");
    if (rc) {
        entries_free(e, count);
        return rc;
    }
    *out = e;
    *n = count;
    return AT_OK;
}

void scored_free(scored_values *v) {
    for (int i = 0; i < v->n; i++) free(v->r[i].image), free(v->r[i].name), free(v->r[i].layer);
    free(v->r);
    memset(v, 0, sizeof *v);
}

typedef struct {
    scored_values *v;
    const char *path, *key;
    const char (*term_names)[24];
    int n_terms;
} scored_load;

static int load_scored_line(const at_json *j, void *ctx) {
    scored_load *c = ctx;
    scored_values *v = c->v;
    const at_json *im = at_json_get(j, "image"), *me = at_json_get(j, "method"), *co = at_json_get(j, "class_option");
    if (!im || !me || !co || im->type != AT_JSON_STRING || me->type != AT_JSON_STRING || co->type != AT_JSON_STRING ||
        strcmp(co->string, c->key))
        return AT_OK;
    if (v->n == v->cap) {
        int nc = v->cap ? 2 * v->cap : 64;
        scored_row *nr = realloc(v->r, sizeof *nr * nc);
        if (!nr) return at_fail(c->path, "out of memory");
        v->r = nr, v->cap = nc;
    }
    scored_row *r = &v->r[v->n++];
    memset(r, 0, sizeof *r);
    const at_json *st = at_json_get(j, "settings"), *la = at_json_get(j, "layer"), *az = at_json_get(j, "all_zero_map");
    const char *settings = st && st->type == AT_JSON_STRING ? st->string : "";
    r->image = strdup(im->string);
    r->name = malloc(strlen(me->string) + strlen(settings) + 2);
    if (r->name) sprintf(r->name, "%s%s%s", me->string, settings[0] ? "." : "", settings);
    r->layer = strdup(la && la->type == AT_JSON_STRING ? la->string : "");
    r->all_zero = az && az->type == AT_JSON_BOOL && az->boolean;
    for (int t = 0; t < c->n_terms; t++) {
        const at_json *x = at_json_get(j, c->term_names[t]);
        r->terms[t] = x && x->type == AT_JSON_NUMBER ? x->number : NAN;
    }
    return !r->image || !r->name || !r->layer ? at_fail(c->path, "out of memory") : AT_OK;
}

int load_scored(scored_values *v, const char *path, const char *key, const char (*term_names)[24], int n_terms) {
    scored_load c = {v, path, key, term_names, n_terms};
    return at_jsonl_each(path, load_scored_line, &c);
}

const scored_row *scored_find(const scored_values *v, const entry *e) {
    for (int i = v->n - 1; i >= 0; i--) /* the last line of a key counts */
        if (!strcmp(v->r[i].image, e->image) && !strcmp(v->r[i].name, e->name) &&
            !strcmp(v->r[i].layer, e->layer ? e->layer : ""))
            return &v->r[i];
    return NULL;
}

