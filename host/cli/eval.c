/* ./attrib eval: options, one library run (at_eval_run or at_mprt_run,
 * run/eval.h), the summary table (docs/methods.md#metrics-common-rules). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "run/eval.h"

static const char *const HELP =
    "usage: attrib eval --metric M --maps DIR [options]\n"
    "Scores the maps listed in DIR/results.jsonl (written by attrib explain) and\n"
    "prints a table (mean and 95%% paired-bootstrap CI); per-image values go to\n"
    "DIR/eval.<metric>.jsonl, which --resume continues.\n"
    "  --metric M          confidence | ad-ic | energy-pg | pointing | deletion | insertion |\n"
    "                      localisation | mprt\n"
    "                      (definitions: docs/methods.md#metrics-common-rules and the sections after it)\n"
    "  --maps DIR          explain's output folder\n"
    "  --method TAG        only lines of this method tag (e.g. scorecam, path-scorecam.cdrp)\n"
    "  --annotations PATH  images.csv (NIPS 2017 layout) or ILSVRC XML folder (energy-pg, pointing;\n"
    "                      which to use: docs/methods.md#boxes-for-the-localisation-metrics)\n"
    "  --scorer original|path  network that scores Y and O (default original; path: each\n"
    "                      image's gated network from its gates file in DIR)\n"
    "  --score prob|logit  softmax probability (default) or raw logit\n"
    "  --mask-mode mult|top-p  ad-ic masking: image x map, or keep the top p %% pixels\n"
    "  --mask-space unit|normalized  mult masking on the [0,1] image (default) or the\n"
    "                      normalised tensor (pytorch-grad-cam)\n"
    "  --proportions LIST  top-p sweep in %% (default 5,10,15,20,30,40,50,60,70,80,90,100)\n"
    "  --zero-lowest LIST  ad-ic with L-CAM's soft masking: the map with its lowest Q %% of\n"
    "                      pixels zeroed masks the image (Q counts what is removed; e.g.\n"
    "                      0,50,70,85; any 0..100; not with top-p)\n"
    "  --ad absolute       pytorch-grad-cam's absolute Average Drop (default relative)\n"
    "  --tolerance PX      pointing-game tolerance at 224 px (default 15; 0 = none)\n"
    "  --pg-average image|class  pointing: the mean over images (default), or TorchRay's\n"
    "                      benchmark: each class's accuracy, then their mean; hits strictly\n"
    "                      within the tolerance\n"
    "  --loc-threshold PCT localisation: keep the map above PCT %% of its maximum (default 15)\n"
    "  --iou X             localisation: a hit needs IoU > X with a box of the true class (0.5)\n"
    "  --randomise cascading|independent|both  mprt: re-initialise the layers from the top\n"
    "                      down, or one at a time, or both (default)\n"
    "  --seed N            mprt: the re-initialisation's PRNG seed (default 0)\n"
    "  --control sobel     mprt: add the weight-free Sobel edge map of each image as a row\n"
    "  --steps N           deletion / insertion steps (default 100)\n"
    "  --json              the summary as one JSON object\n"
    "  --resume            keep the values already in DIR/eval.<metric>.jsonl (same\n"
    "                      options) and score the rest; the summary covers them all\n"
    "  --overwrite         score again and replace them (without either, a run that\n"
    "                      would repeat values already there stops)\n"
    "  --quiet             no progress line\n";

typedef struct {
    cli_common common;
    at_eval_options o;
    int json, resume, overwrite, quiet;
} eval_args;

static int set_metric(void *args, const char *opt, const char *v) { return at_eval_metric_parse(v, &((eval_args *)args)->o.metric); }

static int set_proportions(void *args, const char *opt, const char *v) {
    at_eval_options *o = &((eval_args *)args)->o;
    return cli_parse_doubles(opt, v, 0.01, 100, o->props, AT_EVAL_MAX_PROPS, &o->n_props);
}

static int set_zero_lowest(void *args, const char *opt, const char *v) {
    at_eval_options *o = &((eval_args *)args)->o;
    return cli_parse_doubles(opt, v, 0, 100, o->zero_lowest, AT_EVAL_MAX_PROPS, &o->n_zero_lowest);
}

#define ARG(f) offsetof(eval_args, f)
#define OPT(f) offsetof(eval_args, o.f)
static const cli_option options[] = {
    {.name = "--json", .type = CLI_FLAG, .off = ARG(json)},
    {.name = "--resume", .type = CLI_FLAG, .off = ARG(resume)},
    {.name = "--overwrite", .type = CLI_FLAG, .off = ARG(overwrite)},
    {.name = "--quiet", .type = CLI_FLAG, .off = ARG(quiet)},
    {.name = "--metric", .type = CLI_CALL, .fn = set_metric},
    {.name = "--maps", .type = CLI_STR, .off = OPT(maps)},
    {.name = "--method", .type = CLI_STR, .off = OPT(method)},
    {.name = "--annotations", .type = CLI_STR, .off = OPT(annotations)},
    {.name = "--scorer", .type = CLI_CHOICE, .off = OPT(scorer_path), .choices = "original|path"},
    {.name = "--score", .type = CLI_CHOICE, .off = OPT(logit), .choices = "prob|logit"},
    {.name = "--mask-mode", .type = CLI_CHOICE, .off = OPT(topp), .choices = "mult|top-p"},
    {.name = "--mask-space", .type = CLI_CHOICE, .off = OPT(space_normalized), .choices = "unit|normalized"},
    {.name = "--ad", .type = CLI_CHOICE, .off = OPT(ad_absolute), .choices = "relative|absolute"},
    {.name = "--proportions", .type = CLI_CALL, .fn = set_proportions},
    {.name = "--zero-lowest", .type = CLI_CALL, .fn = set_zero_lowest},
    {.name = "--tolerance", .type = CLI_DOUBLE, .off = OPT(tolerance), .lo = 0, .hi = 1000},
    {.name = "--steps", .type = CLI_INT, .off = OPT(steps), .lo = 2, .hi = 10000},
    {.name = "--pg-average", .type = CLI_CHOICE, .off = OPT(pg_class), .choices = "image|class"},
    {.name = "--loc-threshold", .type = CLI_DOUBLE, .off = OPT(loc_threshold), .lo = 0, .hi = 100},
    {.name = "--iou", .type = CLI_DOUBLE, .off = OPT(iou_min), .lo = 0, .hi = 1},
    {.name = "--randomise", .type = CLI_CHOICE, .off = OPT(mprt_mode), .choices = "both|cascading|independent"},
    {.name = "--seed", .type = CLI_INT, .off = OPT(mprt_seed), .lo = 0, .hi = 2147483647},
    {.name = "--control", .type = CLI_CHOICE, .off = OPT(mprt_control), .choices = "none|sobel"},
    {.name = NULL},
};

static int parse(eval_args *a, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&a->common, argc, argv, &i);
        if (!r) r = cli_options_parse(options, a, argc, argv, &i);
        if (r == AT_ERR) return AT_ERR;
        if (!r) return at_fail(argv[i], argv[i][0] == '-' ? "unknown option (see attrib eval --help)" : "unexpected argument");
    }
    const at_eval_options *o = &a->o;
    if (o->metric == AT_EVAL_NONE) return at_fail("--metric", "is required (see attrib eval --help)");
    if (!o->maps) return at_fail("--maps", "is required (explain's output folder)");
    if (a->resume && a->overwrite) return at_fail("--overwrite", "and --resume exclude each other");
    if (o->n_zero_lowest && o->metric != AT_EVAL_AD_IC) return at_fail("--zero-lowest", "is a masking mode of ad-ic");
    if (o->n_zero_lowest && o->topp) return at_fail("--zero-lowest", "and --mask-mode top-p exclude each other");
    if (o->pg_class && o->metric != AT_EVAL_POINTING)
        return at_fail("--pg-average", "applies to --metric pointing only");
    if (o->metric != AT_EVAL_MPRT && (o->mprt_control || o->mprt_mode || o->mprt_seed))
        return at_fail(o->mprt_control ? "--control" : o->mprt_mode ? "--randomise" : "--seed",
                       "applies to --metric mprt only");
    if ((o->metric == AT_EVAL_ENERGY_PG || o->metric == AT_EVAL_POINTING || o->metric == AT_EVAL_LOCALISATION) &&
        !o->annotations)
        return at_fail("--annotations", "%s needs boxes: images.csv or an ILSVRC XML folder",
                       at_eval_metric_name(o->metric));
    a->o.existing = a->resume ? AT_EXISTING_SKIP : a->overwrite ? AT_EXISTING_REPLACE : AT_EXISTING_STOP;
    return AT_OK;
}

static void print_summary(const eval_args *a, const at_eval_summary *s) {
    const at_eval_options *o = &a->o;
    if (a->json) {
        char **row_json = calloc(s->n_rows > 0 ? s->n_rows : 1, sizeof *row_json);
        char **vals = calloc(s->n_terms ? s->n_terms : 1, sizeof *vals);
        at_jsonw w;
        for (int r = 0; row_json && vals && r < s->n_rows; r++) {
            const at_eval_row *row = &s->rows[r];
            for (int t = 0; t < s->n_terms; t++) {
                const at_eval_stat *st = &row->stats[t];
                double ci[2] = {st->lo, st->hi};
                if (s->grouping[t]) continue;
                at_jsonw_begin(&w);
                if (st->count) at_jsonw_num(&w, "mean", st->mean), at_jsonw_nums(&w, "ci95", ci, 2);
                else at_jsonw_raw(&w, "mean", NULL), at_jsonw_raw(&w, "ci95", NULL);
                at_jsonw_int(&w, "n", st->count);
                vals[t] = at_jsonw_end(&w);
            }
            at_jsonw v;
            at_jsonw_begin(&v);
            for (int t = 0; t < s->n_terms; t++)
                if (vals[t]) at_jsonw_raw(&v, s->term_names[t], vals[t]);
            for (int t = 0; t < s->n_terms; t++) free(vals[t]), vals[t] = NULL;
            char *values = at_jsonw_end(&v);
            at_jsonw_begin(&w);
            at_jsonw_str(&w, "method", row->method);
            at_jsonw_int(&w, "images", row->images);
            at_jsonw_int(&w, "all_zero_maps", row->all_zero);
            at_jsonw_int(&w, "failed", row->failed);
            at_jsonw_raw(&w, "values", values);
            free(values);
            row_json[r] = at_jsonw_end(&w);
        }
        at_jsonw_begin(&w);
        at_jsonw_str(&w, "metric", at_eval_metric_name(o->metric));
        at_jsonw_str(&w, "score", o->logit ? "logit" : "prob");
        at_jsonw_str(&w, "scorer", o->scorer_path ? "path" : "original");
        at_jsonw_int(&w, "merged_lines", s->merged);
        if (o->metric == AT_EVAL_POINTING) at_jsonw_str(&w, "average", o->pg_class ? "class" : "image");
        if (row_json && vals) at_jsonw_objects(&w, "rows", row_json, s->n_rows);
        else at_fail(NULL, "out of memory");
        cli_print_json(row_json && vals ? at_jsonw_end(&w) : NULL);
        for (int r = 0; row_json && r < s->n_rows; r++) free(row_json[r]);
        free(row_json), free(vals);
        return;
    }
    printf("%s (%s scores, %s network)\n", at_eval_metric_name(o->metric), o->logit ? "logit" : "probability",
           o->scorer_path ? "path" : "original");
    if (o->metric == AT_EVAL_POINTING && o->pg_class)
        printf("(hits strictly within the tolerance; the mean over classes of each class's accuracy)\n");
    if (s->merged)
        printf("(%d duplicate results.jsonl lines merged: each image, method and settings counted once, the last "
               "line)\n", s->merged);
    printf("%-28s %-10s %10s  %-21s %6s %9s\n", "method", "value", "mean", "95% CI", "n", "all-zero");
    for (int r = 0; r < s->n_rows; r++)
        for (int t = 0; t < s->n_terms; t++) {
            const at_eval_stat *st = &s->rows[r].stats[t];
            if (s->grouping[t]) continue;
            if (!st->count && t == 1 && o->metric == AT_EVAL_CONFIDENCE) continue;
            printf("%-28s %-10s %10.4f  [%8.4f, %8.4f] %6d %9d\n", s->rows[r].method, s->term_names[t], st->mean,
                   st->lo, st->hi, st->count, s->rows[r].all_zero);
        }
}

static void print_mprt(const eval_args *a, const at_mprt_summary *s) {
    static const char *const order[2] = {"cascading", "independent"};
    if (a->json) {
        char **rows = calloc(s->n_rows ? s->n_rows : 1, sizeof *rows);
        at_jsonw w;
        for (int r = 0; rows && r < s->n_rows; r++) {
            const at_mprt_row *row = &s->rows[r];
            at_jsonw_begin(&w);
            at_jsonw_str(&w, "method", row->method);
            at_jsonw_int(&w, "images", row->images);
            at_jsonw_int(&w, "all_zero_maps", row->all_zero);
            for (int k = 0; k < 2; k++) {
                char **cells = row->layers[k] ? calloc(s->n_layers ? s->n_layers : 1, sizeof *cells) : NULL;
                for (int l = 0; cells && l < s->n_layers; l++) {
                    const at_mprt_stat *st = &row->layers[k][l];
                    double ci[2] = {st->lo, st->hi};
                    at_jsonw c;
                    at_jsonw_begin(&c);
                    at_jsonw_str(&c, "layer", s->layer_names[l]);
                    at_jsonw_num(&c, "mean", st->mean);
                    at_jsonw_nums(&c, "ci95", ci, 2);
                    at_jsonw_int(&c, "n", st->n);
                    at_jsonw_int(&c, "excluded", st->excluded);
                    cells[l] = at_jsonw_end(&c);
                }
                if (cells) at_jsonw_objects(&w, order[k], cells, s->n_layers);
                for (int l = 0; cells && l < s->n_layers; l++) free(cells[l]);
                free(cells);
            }
            rows[r] = at_jsonw_end(&w);
        }
        at_jsonw_begin(&w);
        at_jsonw_str(&w, "metric", "mprt");
        at_jsonw_int(&w, "seed", a->o.mprt_seed);
        if (rows) at_jsonw_objects(&w, "rows", rows, s->n_rows);
        cli_print_json(rows ? at_jsonw_end(&w) : NULL);
        for (int r = 0; rows && r < s->n_rows; r++) free(rows[r]);
        free(rows);
        return;
    }
    printf("mprt (Spearman of the re-explained map with the original, seed %d; layers from the top)\n",
           a->o.mprt_seed);
    printf("%-24s %-12s %-22s %8s  %-19s %5s %8s\n", "method", "order", "layer", "mean", "95% CI", "n", "excluded");
    for (int r = 0; r < s->n_rows; r++)
        for (int k = 0; k < 2; k++)
            for (int l = 0; s->rows[r].layers[k] && l < s->n_layers; l++) {
                const at_mprt_stat *st = &s->rows[r].layers[k][l];
                printf("%-24s %-12s %-22s %8.4f  [%7.4f, %7.4f] %5d %8d\n", s->rows[r].method, order[k],
                       s->layer_names[l], st->mean, st->lo, st->hi, st->n, st->excluded);
            }
}

/* The library's error after a run; values already there without --resume
 * or --overwrite are bad usage. */
static int run_error(const eval_args *a, int existing) {
    if (existing && a->o.existing == AT_EXISTING_STOP) {
        cli_error_hint("add --resume to keep them or --overwrite to replace them");
        return EXIT_USAGE;
    }
    cli_error();
    return EXIT_BAD_INPUT;
}

static int run(const eval_args *a) {
    at_model *m = NULL;
    at_backend *be = NULL;
    cli_run progress;
    at_run_callbacks cb;
    cli_run_init(&progress, &cb, "eval", a->quiet);
    int rc;
    if (a->o.metric == AT_EVAL_MPRT) {
        at_mprt_summary s;
        if (at_model_load(a->common.model ? a->common.model : cli_default_model(), &m)) {
            cli_error();
            return EXIT_BAD_INPUT;
        }
        rc = at_mprt_run(m, &a->common.be, &a->o, &cb, &s) ? run_error(a, s.existing) : 0;
        if (!rc) print_mprt(a, &s);
        at_mprt_summary_free(&s);
        at_model_free(m);
        return rc;
    }
    if ((rc = cli_open(&a->common, &m, &be))) return rc;
    at_eval_summary s;
    rc = at_eval_run(be, &a->o, &cb, &s) ? run_error(a, s.existing) : 0;
    if (s.rows) print_summary(a, &s);
    if (!rc && (s.failed || s.stopped)) rc = EXIT_BAD_INPUT;
    at_eval_summary_free(&s);
    at_backend_destroy(be);
    at_model_free(m);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    if (cli_help_asked(argc, argv, HELP)) return 0;
    eval_args a;
    memset(&a, 0, sizeof a);
    cli_common_init(&a.common);
    at_eval_defaults(&a.o);
    if (parse(&a, argc, argv)) {
        cli_error();
        return EXIT_USAGE;
    }
    return run(&a);
}
