/* The metric runs over explain's results (run/eval.h): each line's map
 * scored by the metric functions (metrics/scoring.h, metrics/metrics.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/annotations.h"
#include "io/image.h"
#include "io/npy.h"
#include "metrics/metrics.h"
#include "metrics/scoring.h"
#include "output/output.h"
#include "preprocess/pipeline.h"
#include "preprocess/preprocess.h"
#include "run/eval_entries.h"
#include "run/report.h"
#include "version.h"

static const char *const metric_names[AT_EVAL_METRIC_COUNT] = {
    "", "confidence", "ad-ic", "energy-pg", "pointing", "deletion", "insertion", "localisation", "mprt"};

void at_eval_defaults(at_eval_options *o) {
    memset(o, 0, sizeof *o);
    static const double dflt[] = {5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    o->n_props = 12;
    memcpy(o->props, dflt, sizeof dflt);
    o->tolerance = 15;
    o->steps = 100;
    o->loc_threshold = 15;
    o->iou_min = 0.5;
}

int at_eval_metric_parse(const char *s, at_eval_metric *out) {
    for (int i = 1; i < AT_EVAL_METRIC_COUNT; i++)
        if (!strcmp(s, metric_names[i])) {
            *out = (at_eval_metric)i;
            return AT_OK;
        }
    return at_fail("metric", "'%s' is not confidence, ad-ic, energy-pg, pointing, deletion, insertion, "
                   "localisation or mprt", s);
}

const char *at_eval_metric_name(at_eval_metric m) { return m >= 0 && m < AT_EVAL_METRIC_COUNT ? metric_names[m] : ""; }

typedef struct {
    const at_eval_options *a;
    const at_model *m;
    at_backend *be;
    at_annotations ann;
    int have_ann;
    long hw, in_size;
    int batch;
    int n_terms;
    char term_names[AT_EVAL_MAX_TERMS][24];
    int warned_big_box; /* the box-coverage warning is given once per run */
    run_report rep;
} eval_ctx;

/* Share of the network input above which a class's boxes make the box
 * metrics nearly uninformative (docs/methods.md#boxes-for-the-localisation-metrics). */
#define BOX_COVER_WARN 0.80

static void set_terms(eval_ctx *c) {
    const at_eval_options *a = c->a;
    c->n_terms = 0;
#define TERM(...) snprintf(c->term_names[c->n_terms++], sizeof c->term_names[0], __VA_ARGS__)
    switch (a->metric) {
    case AT_EVAL_CONFIDENCE: TERM("orig_conf"); TERM("path_conf"); break;
    case AT_EVAL_AD_IC:
        if (a->n_zero_lowest) {
            for (int q = 0; q < a->n_zero_lowest; q++) {
                TERM("AD@zero%g", a->zero_lowest[q]);
                TERM("IC@zero%g", a->zero_lowest[q]);
            }
        } else if (!a->topp) {
            TERM("AD");
            TERM("IC");
        } else
            for (int p = 0; p < a->n_props; p++) {
                TERM("AD@%g", a->props[p]);
                TERM("IC@%g", a->props[p]);
            }
        break;
    case AT_EVAL_ENERGY_PG: TERM("energy"); break;
    case AT_EVAL_POINTING:
        TERM("hit");
        if (a->pg_class) TERM("gt_class"); /* the class the per-class mean groups by */
        break;
    case AT_EVAL_LOCALISATION: TERM("hit"); TERM("iou"); break;
    default: TERM("auc"); break;
    }
#undef TERM
}

static int load_gates(const char *path, const at_model *m, float **out) {
    int ndim;
    int64_t shape[8];
    if (at_npy_read_f32(path, out, &ndim, shape)) return AT_ERR;
    if (ndim != 1 || shape[0] != m->n_gates) {
        free(*out);
        *out = NULL;
        return at_fail(path, "gates file has %lld values, %s has %d gates", (long long)shape[0], m->name, m->n_gates);
    }
    return AT_OK;
}

/* The boxes of class cls after preprocessing, each as the inclusive
 * bounding rectangle of its pixels in the network input (clipped; boxes
 * outside the input dropped). Returns the count or AT_ERR. */
static int input_boxes(const eval_ctx *c, const at_annotation *an, const at_geometry *geo, int cls, int (**out)[4]) {
    int total = at_annotation_boxes_for_size(an, geo->in_w, geo->in_h, NULL, 0);
    if (total < 0) return AT_ERR;
    at_box *raw = malloc(sizeof *raw * (total ? total : 1));
    int (*boxes)[4] = malloc(sizeof *boxes * (total ? total : 1));
    unsigned char *mask = malloc(c->hw);
    int k = 0;
    if (!raw || !boxes || !mask) {
        free(raw), free(boxes), free(mask);
        return at_fail(NULL, "out of memory");
    }
    at_annotation_boxes_for_size(an, geo->in_w, geo->in_h, raw, total);
    for (int b = 0; b < total; b++) {
        if (raw[b].cls != cls) continue;
        memset(mask, 0, c->hw);
        at_box_mask(geo, raw[b].box, mask);
        int r[4] = {c->m->in_w, c->m->in_h, -1, -1};
        for (long i = 0; i < c->hw; i++)
            if (mask[i]) {
                int x = (int)(i % c->m->in_w), y = (int)(i / c->m->in_w);
                r[0] = x < r[0] ? x : r[0], r[1] = y < r[1] ? y : r[1];
                r[2] = x > r[2] ? x : r[2], r[3] = y > r[3] ? y : r[3];
            }
        if (r[2] >= 0) memcpy(boxes[k++], r, sizeof r);
    }
    free(raw), free(mask);
    *out = boxes;
    return k;
}

/* Weakly supervised localisation of one map: the hit (100 or 0) and the best IoU. */
static int localisation_terms(eval_ctx *c, const at_annotation *an, const at_geometry *geo, const entry *e,
                              const float *map, double *terms) {
    if (an->cls < 0) return at_fail(e->image, "its annotation has no class");
    if (e->cls != an->cls)
        return at_fail(e->image, "the map explains class %d, the ground truth is %d: localisation scores the "
                       "true class's map (explain with class truth)", e->cls, an->cls);
    int (*boxes)[4] = NULL;
    int n = input_boxes(c, an, geo, an->cls, &boxes);
    if (n < 0) return AT_ERR;
    int box[4];
    terms[0] = n ? 100.0 * at_localisation_hit(map, c->m->in_w, c->m->in_h, c->a->loc_threshold / 100.0,
                                               (const int(*)[4])boxes, n, c->a->iou_min, box)
                 : NAN;
    double best = 0;
    for (int k = 0; k < n && box[0] >= 0; k++) {
        double iou = at_box_iou(box, boxes[k]);
        best = iou > best ? iou : best;
    }
    terms[1] = n ? best : NAN;
    free(boxes);
    return AT_OK;
}

/* Computes the metric's terms for one entry. all_zero: the map is flat zero. */
static int eval_entry(eval_ctx *c, const entry *e, double *terms, int *all_zero) {
    const at_model *m = c->m;
    const at_eval_options *a = c->a;
    int rc = AT_ERR;
    float *x = malloc(sizeof(float) * c->in_size), *map = NULL, *gates = NULL;
    at_image rgb = {0};
    int steps = a->steps;
    if (!x) {
        at_fail(NULL, "out of memory");
        goto out;
    }
    at_geometry geo;
    if (at_load_input_rgb(m, e->image, x, &rgb, &geo)) goto out;
    run_report_notes(&c->rep, rgb.notes);
    if (e->gates && (a->scorer_path || a->metric == AT_EVAL_CONFIDENCE) && load_gates(e->gates, m, &gates)) goto out;
    if (a->scorer_path && !gates && a->metric != AT_EVAL_CONFIDENCE) {
        at_fail(e->image, "the path scorer needs a gates file; the %s line has none", e->method);
        goto out;
    }
    *all_zero = 0;
    if (a->metric != AT_EVAL_CONFIDENCE) {
        int ndim;
        int64_t shape[8];
        if (!e->map || at_npy_read_f32(e->map, &map, &ndim, shape)) {
            if (!e->map) at_fail(e->image, "results line has no map");
            goto out;
        }
        if (ndim != 2 || shape[0] != m->in_h || shape[1] != m->in_w) {
            at_fail(e->map, "map is not %dx%d", m->in_h, m->in_w);
            goto out;
        }
        float mx = 0;
        for (long i = 0; i < c->hw; i++) mx = map[i] > mx ? map[i] : mx;
        *all_zero = !(mx > 0);
    }
    at_scorer sc = {.be = c->be, .gates = a->scorer_path ? gates : NULL, .logit = a->logit, .batch = c->batch};
    switch (a->metric) {
    case AT_EVAL_CONFIDENCE: { /* confidence is a probability (Table 1) */
        at_scorer conf = {.be = c->be, .batch = 1};
        double s[1];
        if (at_score_rows(&conf, x, 1, e->cls, s)) goto out;
        terms[0] = 100.0 * s[0];
        terms[1] = NAN;
        if (gates) {
            conf.gates = gates;
            if (at_score_rows(&conf, x, 1, e->cls, s)) goto out;
            terms[1] = 100.0 * s[0];
        }
        break;
    }
    case AT_EVAL_AD_IC: {
        at_drop_options d = {.props = a->topp ? a->props : NULL, .n_props = a->n_props,
                             .zero_lowest = a->n_zero_lowest ? a->zero_lowest : NULL,
                             .n_zero_lowest = a->n_zero_lowest,
                             .space_normalized = a->space_normalized, .absolute = a->ad_absolute};
        if (at_drop_terms(&sc, x, map, &d, e->cls, terms)) goto out;
        break;
    }
    case AT_EVAL_LOCALISATION: {
        const at_annotation *an = at_annotations_find(&c->ann, e->image);
        if (!an) {
            at_fail(e->image, "no annotation in %s", a->annotations);
            goto out;
        }
        if (localisation_terms(c, an, &geo, e, map, terms)) goto out;
        break;
    }
    case AT_EVAL_ENERGY_PG:
    case AT_EVAL_POINTING: {
        const at_annotation *an = at_annotations_find(&c->ann, e->image);
        if (!an) {
            at_fail(e->image, "no annotation in %s", a->annotations);
            goto out;
        }
        unsigned char *mask = calloc(c->hw, 1);
        if (!mask) goto out;
        int inside = at_annotations_box_mask(an, &geo, an->cls, mask);
        if (!c->warned_big_box && inside > BOX_COVER_WARN * c->hw) {
            c->warned_big_box = 1;
            run_report_message(&c->rep, AT_RUN_WARNING, "%s: the boxes of its class cover %.0f%% of the network input, "
                               "so %s says little (a NIPS 2017 images.csv x1..y2 is a crop window, not an object "
                               "box; docs/methods.md#boxes-for-the-localisation-metrics); further such images are "
                               "not listed", e->image, 100.0 * inside / c->hw, at_eval_metric_name(a->metric));
        }
        double tol = at_pointing_tolerance(a->tolerance, m->in_w);
        if (a->pg_class) { /* TorchRay's benchmark: strictly within the tolerance */
            terms[0] = inside > 0 ? 100.0 * at_pointing_hit_strict(map, m->in_w, m->in_h, mask, tol) : NAN;
            terms[1] = an->cls;
        } else {
            terms[0] = at_box_term(map, m->in_w, m->in_h, mask, inside, a->metric == AT_EVAL_ENERGY_PG, tol);
        }
        free(mask);
        break;
    }
    case AT_EVAL_DELETION:
    case AT_EVAL_INSERTION:
        if (at_deletion_auc(&sc, rgb.rgb, map, steps, a->metric == AT_EVAL_INSERTION, e->cls, &terms[0], NULL)) goto out;
        break;
    default: break;
    }
    if (*all_zero && (a->metric == AT_EVAL_ENERGY_PG)) terms[0] = 0; /* docs/methods.md#metrics-common-rules: 0/0 scores 0 */
    rc = AT_OK;
out:
    at_image_free(&rgb);
    free(x), free(map), free(gates);
    return rc;
}

/* Accumulated per-image terms of one method tag. */
typedef struct {
    char method[96];
    int n, cap, all_zero, failed;
    double *terms; /* [cap][n_terms] */
} method_rows;

static method_rows *rows_for(method_rows **all, int *n_all, const char *method, int n_terms) {
    for (int i = 0; i < *n_all; i++)
        if (!strcmp((*all)[i].method, method)) return &(*all)[i];
    method_rows *na = realloc(*all, sizeof **all * (*n_all + 1));
    if (!na) return NULL;
    *all = na;
    method_rows *r = &na[(*n_all)++];
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", method);
    (void)n_terms;
    return r;
}

static int rows_add(method_rows *r, const double *terms, int n_terms) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        double *t = realloc(r->terms, sizeof(double) * cap * n_terms);
        if (!t) return at_fail(NULL, "out of memory");
        r->terms = t;
        r->cap = cap;
    }
    memcpy(r->terms + (long)r->n * n_terms, terms, sizeof(double) * n_terms);
    r->n++;
    return AT_OK;
}

/* The per-class pointing game's class term: grouped by, not summarised. */
static int is_class_term(const eval_ctx *c, int t) { return c->a->metric == AT_EVAL_POINTING && c->a->pg_class && t == 1; }

/* Mean and 95 % bootstrap CI of one term over the images that have it;
 * per class (pg_class) the mean over classes of each class's mean, its
 * CI from resampled images (at_bootstrap_class_mean_ci). */
static int summarise(const eval_ctx *c, const method_rows *r, int t, at_eval_stat *st) {
    double *mean = &st->mean, *lo = &st->lo, *hi = &st->hi;
    int *count = &st->count;
    int n_terms = c->n_terms;
    double *v = malloc(sizeof(double) * (r->n ? r->n : 1));
    int *cls = malloc(sizeof(int) * (r->n ? r->n : 1));
    if (!v || !cls) {
        free(v), free(cls);
        return at_fail(NULL, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < r->n; i++) {
        double x = r->terms[(long)i * n_terms + t];
        if (!isnan(x)) cls[k] = c->a->pg_class ? (int)r->terms[(long)i * n_terms + 1] : 0, v[k++] = x;
    }
    *count = k;
    *mean = *lo = *hi = NAN;
    if (k && c->a->pg_class && c->a->metric == AT_EVAL_POINTING) {
        *mean = at_class_mean(v, cls, k, c->m->n_classes, NULL, NULL);
        at_bootstrap_class_mean_ci(v, cls, k, c->m->n_classes, EVAL_CI_REPS, EVAL_CI_SEED, 0.95, lo, hi);
    } else if (k) {
        double s = 0;
        for (int i = 0; i < k; i++) s += v[i];
        *mean = s / k;
        at_bootstrap_ci(v, NULL, k, EVAL_CI_REPS, EVAL_CI_SEED, 0.95, lo, hi);
    }
    free(v), free(cls);
    return AT_OK;
}

/* Signature of the options that change a metric's value (the resume key). */
static void options_key(const at_eval_options *a, char *buf, size_t cap) {
    size_t o = snprintf(buf, cap, "%s,%s,%s", a->logit ? "logit" : "prob", a->scorer_path ? "path" : "original",
                        a->topp ? "top-p" : a->space_normalized ? "mult-normalized" : "mult");
    for (int q = 0; a->metric == AT_EVAL_AD_IC && q < a->n_zero_lowest && o < cap; q++)
        o += snprintf(buf + o, cap - o, "%s%g", q ? "/" : ",zero-lowest", a->zero_lowest[q]);
    if (a->metric == AT_EVAL_AD_IC && a->ad_absolute) o += snprintf(buf + o, cap - o, ",absolute");
    if (a->metric == AT_EVAL_POINTING) o += snprintf(buf + o, cap - o, ",tol%g%s", a->tolerance, a->pg_class ? ",strict" : "");
    if (a->metric == AT_EVAL_LOCALISATION) o += snprintf(buf + o, cap - o, ",thr%g,iou%g", a->loc_threshold, a->iou_min);
    if (a->metric == AT_EVAL_DELETION || a->metric == AT_EVAL_INSERTION) snprintf(buf + o, cap - o, ",steps%d", a->steps);
}

static int fill_summary(const eval_ctx *c, method_rows *rows, int n_rows, at_eval_summary *out) {
    out->n_terms = c->n_terms;
    memcpy(out->term_names, c->term_names, sizeof c->term_names);
    for (int t = 0; t < c->n_terms; t++) out->grouping[t] = is_class_term(c, t);
    out->rows = calloc(n_rows ? n_rows : 1, sizeof *out->rows);
    if (!out->rows) return at_fail(NULL, "out of memory");
    out->n_rows = n_rows;
    for (int r = 0; r < n_rows; r++) {
        at_eval_row *o = &out->rows[r];
        snprintf(o->method, sizeof o->method, "%s", rows[r].method);
        o->images = rows[r].n, o->all_zero = rows[r].all_zero, o->failed = rows[r].failed;
        for (int t = 0; t < c->n_terms; t++) {
            o->stats[t] = (at_eval_stat){NAN, NAN, NAN, 0};
            if (!out->grouping[t] && summarise(c, &rows[r], t, &o->stats[t])) return AT_ERR;
        }
    }
    return AT_OK;
}

void at_eval_summary_free(at_eval_summary *s) {
    free(s->rows);
    memset(s, 0, sizeof *s);
}

/* One eval.<metric>.jsonl line. */
static char *value_line(const eval_ctx *c, const entry *e, const char *key, const double *terms, int all_zero) {
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", e->image);
    at_jsonw_str(&w, "method", e->method);
    at_jsonw_str(&w, "settings", e->name[strlen(e->method)] ? e->name + strlen(e->method) + 1 : "");
    at_jsonw_str(&w, "explain_class_option", e->class_opt);
    at_jsonw_str(&w, "layer", e->layer ? e->layer : "");
    at_jsonw_str(&w, "class_option", key);
    at_jsonw_str(&w, "metric", at_eval_metric_name(c->a->metric));
    at_jsonw_int(&w, "class", e->cls);
    at_jsonw_bool(&w, "all_zero_map", all_zero);
    for (int t = 0; t < c->n_terms; t++) at_jsonw_num(&w, c->term_names[t], terms[t]);
    at_jsonw_str(&w, "model_sha256", c->m->sha256);
    at_jsonw_str(&w, "engine", "attrib " ATTRIB_VERSION);
    return at_jsonw_end(&w);
}

int at_eval_run(at_backend *be, const at_eval_options *a, const at_run_callbacks *cb, at_eval_summary *out) {
    eval_ctx c;
    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    c.a = a;
    c.rep.cb = cb;
    entry *entries = NULL;
    int n = 0, rc = AT_ERR;
    at_results *res = NULL;
    method_rows *rows = NULL;
    int n_rows = 0;
    scored_values earlier = {0};
    if (a->metric <= AT_EVAL_NONE || a->metric >= AT_EVAL_MPRT) return at_fail("metric", "not a metric of at_eval_run");
    if (!a->maps) return at_fail("maps", "no folder given (explain's output)");
    if (read_entries(a, &entries, &n)) return AT_ERR;
    int merged = out->merged = merge_duplicates(entries, &n);
    if (!n) {
        if (a->metric == AT_EVAL_CONFIDENCE && !a->method)
            at_fail(a->maps, "results.jsonl has no path results: confidence scores the routing paths of "
                    "cdrp or score-cdrp runs (their gates files), or the lines of a chosen method");
        else
            at_fail(a->maps, "results.jsonl has no %s lines%s%s", a->metric == AT_EVAL_CONFIDENCE ? "scorable" : "map",
                    a->method ? " of method " : "", a->method ? a->method : "");
        goto done;
    }
    if (merged)
        run_report_message(&c.rep, AT_RUN_NOTICE, "%s/results.jsonl: %d duplicate lines merged (same image, method "
                           "and settings; the last one counts)", a->maps, merged);
    c.be = be;
    c.m = be->model;
    const at_model *m = c.m;
    c.hw = (long)m->in_h * m->in_w;
    c.in_size = m->in_c * c.hw;
    c.batch = at_max_batch(c.be, 0);
    if (c.batch > 128) c.batch = 128;
    set_terms(&c);
    if (a->annotations) {
        if (at_annotations_load(a->annotations, m, &c.ann)) goto done;
        c.have_ann = 1;
    }
    char name[64], key[96];
    snprintf(name, sizeof name, "eval.%s.jsonl", at_eval_metric_name(a->metric));
    options_key(a, key, sizeof key);
    if (at_results_open(&res, a->maps, name, 1)) goto done;
    int existing = 0;
    for (int i = 0; i < n; i++)
        existing += at_results_has(res, entries[i].image, entries[i].name, entries[i].layer ? entries[i].layer : "", key);
    out->existing = existing;
    if (existing && a->existing == AT_EXISTING_STOP) {
        at_fail(at_results_path(res), "already holds %d of these %d values (same options)", existing, n);
        goto done;
    }
    if ((a->existing == AT_EXISTING_SKIP && existing &&
         load_scored(&earlier, at_results_path(res), key, c.term_names, c.n_terms)) ||
        at_output_install_signal_cleanup())
        goto done;
    run_report_start(&c.rep, cb, n);
    double terms[AT_EVAL_MAX_TERMS];
    for (int i = 0; i < n && !out->stopped; i++) {
        entry *e = &entries[i];
        const char *layer = e->layer ? e->layer : "";
        method_rows *mr = rows_for(&rows, &n_rows, e->name, c.n_terms);
        if (!mr) {
            at_fail(NULL, "out of memory");
            goto stop;
        }
        if (a->existing == AT_EXISTING_SKIP && at_results_has(res, e->image, e->name, layer, key)) {
            /* scored before: its value from the jsonl, so the summary covers every image */
            const scored_row *sr = scored_find(&earlier, e);
            if (sr && rows_add(mr, sr->terms, c.n_terms)) goto stop;
            if (sr) mr->all_zero += sr->all_zero;
            run_report_event(&c.rep, AT_RUN_SKIP, 1, 0);
            continue;
        }
        int all_zero = 0;
        for (int t = 0; t < AT_EVAL_MAX_TERMS; t++) terms[t] = NAN;
        if (eval_entry(&c, e, terms, &all_zero)) {
            run_report_error(&c.rep, e->image);
            mr->failed++;
            out->failed++;
            run_report_event(&c.rep, AT_RUN_DONE, 0, 1);
            continue;
        }
        mr->all_zero += all_zero;
        char *line = value_line(&c, e, key, terms, all_zero);
        if (!line || at_results_append(res, line) || at_results_add_key(res, e->image, e->name, layer, key) ||
            rows_add(mr, terms, c.n_terms)) {
            free(line);
            goto stop;
        }
        free(line);
        run_report_event(&c.rep, AT_RUN_DONE, 1, 0);
        continue;
    stop: /* the file cannot take more lines (disk full): nothing later can succeed */
        run_report_error(&c.rep, e->image);
        out->stopped = 1;
    }
    run_report_event(&c.rep, AT_RUN_FINISH, 0, 0);
    rc = AT_OK;
    if (a->existing == AT_EXISTING_REPLACE && existing) {
        long dropped = 0;
        rc = at_results_compact(res, &dropped);
    }
    if (fill_summary(&c, rows, n_rows, out)) rc = AT_ERR;
done:
    scored_free(&earlier);
    for (int r = 0; r < n_rows; r++) free(rows[r].terms);
    free(rows);
    if (c.have_ann) at_annotations_free(&c.ann);
    at_results_close(res);
    entries_free(entries, n);
    return rc;
}
