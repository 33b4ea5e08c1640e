/* ./attrib eval: the papers' metrics over explain's outputs (docs/methods.md#metrics-common-rules). Reads
 * DIR/results.jsonl, re-scores masked images in batches on the backend,
 * writes DIR/eval.<metric>.jsonl per image and prints a summary table. */
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "io/annotations.h"
#include "methods/maps.h"
#include "core/error.h"
#include "eval_common.h"
#include "explain_io.h"
#include "metrics/metrics.h"
#include "io/npy.h"
#include "preprocess/pipeline.h"
#include "output/progress.h"
#include "version.h"

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

static int set_metric(void *args, const char *opt, const char *v) { return eval_metric_parse(v, &((eval_args *)args)->metric); }

static int set_proportions(void *args, const char *opt, const char *v) {
    eval_args *a = args;
    return cli_parse_doubles(opt, v, 0.01, 100, a->props, EVAL_MAX_PROPS, &a->n_props);
}

static int set_zero_lowest(void *args, const char *opt, const char *v) {
    eval_args *a = args;
    return cli_parse_doubles(opt, v, 0, 100, a->zero_lowest, EVAL_MAX_PROPS, &a->n_zero_lowest);
}

#define ARG(f) offsetof(eval_args, f)
static const cli_option options[] = {
    {.name = "--json", .type = CLI_FLAG, .off = ARG(json)},
    {.name = "--resume", .type = CLI_FLAG, .off = ARG(resume)},
    {.name = "--overwrite", .type = CLI_FLAG, .off = ARG(overwrite)},
    {.name = "--quiet", .type = CLI_FLAG, .off = ARG(quiet)},
    {.name = "--metric", .type = CLI_CALL, .fn = set_metric},
    {.name = "--maps", .type = CLI_STR, .off = ARG(maps)},
    {.name = "--method", .type = CLI_STR, .off = ARG(method)},
    {.name = "--annotations", .type = CLI_STR, .off = ARG(annotations)},
    {.name = "--scorer", .type = CLI_CHOICE, .off = ARG(scorer_path), .choices = "original|path"},
    {.name = "--score", .type = CLI_CHOICE, .off = ARG(logit), .choices = "prob|logit"},
    {.name = "--mask-mode", .type = CLI_CHOICE, .off = ARG(topp), .choices = "mult|top-p"},
    {.name = "--mask-space", .type = CLI_CHOICE, .off = ARG(space_normalized), .choices = "unit|normalized"},
    {.name = "--ad", .type = CLI_CHOICE, .off = ARG(ad_absolute), .choices = "relative|absolute"},
    {.name = "--proportions", .type = CLI_CALL, .fn = set_proportions},
    {.name = "--zero-lowest", .type = CLI_CALL, .fn = set_zero_lowest},
    {.name = "--tolerance", .type = CLI_DOUBLE, .off = ARG(tolerance), .lo = 0, .hi = 1000},
    {.name = "--steps", .type = CLI_INT, .off = ARG(steps), .lo = 2, .hi = 10000},
    {.name = "--pg-average", .type = CLI_CHOICE, .off = ARG(pg_class), .choices = "image|class"},
    {.name = "--loc-threshold", .type = CLI_DOUBLE, .off = ARG(loc_threshold), .lo = 0, .hi = 100},
    {.name = "--iou", .type = CLI_DOUBLE, .off = ARG(iou_min), .lo = 0, .hi = 1},
    {.name = "--randomise", .type = CLI_CHOICE, .off = ARG(mprt_mode), .choices = "both|cascading|independent"},
    {.name = "--seed", .type = CLI_INT, .off = ARG(mprt_seed), .lo = 0, .hi = 2147483647},
    {.name = "--control", .type = CLI_CHOICE, .off = ARG(mprt_control), .choices = "none|sobel"},
    {.name = NULL},
};

static int parse(eval_args *a, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&a->common, argc, argv, &i);
        if (!r) r = cli_options_parse(options, a, argc, argv, &i);
        if (r == AT_ERR) return AT_ERR;
        if (!r) return at_fail(argv[i], argv[i][0] == '-' ? "unknown option (see attrib eval --help)" : "unexpected argument");
    }
    if (a->metric == EVAL_NONE) return at_fail("--metric", "is required (see attrib eval --help)");
    if (!a->maps) return at_fail("--maps", "is required (explain's output folder)");
    if (a->resume && a->overwrite) return at_fail("--overwrite", "and --resume exclude each other");
    if (a->n_zero_lowest && a->metric != EVAL_AD_IC) return at_fail("--zero-lowest", "is a masking mode of ad-ic");
    if (a->n_zero_lowest && a->topp) return at_fail("--zero-lowest", "and --mask-mode top-p exclude each other");
    if (a->pg_class && a->metric != EVAL_POINTING)
        return at_fail("--pg-average", "applies to --metric pointing only");
    if (a->metric != EVAL_MPRT && (a->mprt_control || a->mprt_mode || a->mprt_seed))
        return at_fail(a->mprt_control ? "--control" : a->mprt_mode ? "--randomise" : "--seed",
                       "applies to --metric mprt only");
    if ((a->metric == EVAL_ENERGY_PG || a->metric == EVAL_POINTING || a->metric == EVAL_LOCALISATION) &&
        !a->annotations)
        return at_fail("--annotations", "%s needs boxes: images.csv or an ILSVRC XML folder",
                       eval_metric_name(a->metric));
    return AT_OK;
}

int cmd_eval(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(HELP);
            printf("%s", CLI_COMMON_HELP);
            return 0;
        }
    eval_args a;
    eval_args_init(&a);
    if (parse(&a, argc, argv)) {
        cli_error();
        return EXIT_USAGE;
    }
    return a.metric == EVAL_MPRT ? eval_mprt_run(&a) : eval_run(&a);
}
