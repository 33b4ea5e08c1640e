/* ./attrib eval: the papers' metrics over explain's outputs (docs/methods.md#metrics-common-rules). Reads
 * DIR/results.jsonl, re-scores masked images in batches on the backend,
 * writes DIR/eval.<metric>.jsonl per image and prints a summary table. */
#include <math.h>
#include <stdlib.h>
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
    "  --metric M          confidence | ad-ic | energy-pg | pointing | deletion | insertion\n"
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
    "  --ad absolute       pytorch-grad-cam's absolute Average Drop (default relative)\n"
    "  --tolerance PX      pointing-game tolerance at 224 px (default 15; 0 = none)\n"
    "  --steps N           deletion / insertion steps (default 100)\n"
    "  --json              the summary as one JSON object\n"
    "  --resume            keep the values already in DIR/eval.<metric>.jsonl (same\n"
    "                      options) and score the rest; the summary covers them all\n"
    "  --overwrite         score again and replace them (without either, a run that\n"
    "                      would repeat values already there stops)\n"
    "  --quiet             no progress line\n";

static int parse(eval_args *a, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&a->common, argc, argv, &i);
        if (r == AT_ERR) return AT_ERR;
        if (r) continue;
        const char *o = argv[i];
        if (!strcmp(o, "--json")) a->json = 1;
        else if (!strcmp(o, "--resume")) a->resume = 1;
        else if (!strcmp(o, "--overwrite")) a->overwrite = 1;
        else if (!strcmp(o, "--quiet")) a->quiet = 1;
        else {
            if (i + 1 >= argc) return at_fail(o, o[0] == '-' ? "needs a value" : "unexpected argument");
            const char *v = argv[++i];
            if (!strcmp(o, "--metric")) {
                if (eval_metric_parse(v, &a->metric)) return AT_ERR;
            } else if (!strcmp(o, "--maps")) a->maps = v;
            else if (!strcmp(o, "--method")) a->method = v;
            else if (!strcmp(o, "--annotations")) a->annotations = v;
            else if (!strcmp(o, "--scorer")) {
                if (strcmp(v, "original") && strcmp(v, "path")) return at_fail(o, "'%s' is not original or path", v);
                a->scorer_path = !strcmp(v, "path");
            } else if (!strcmp(o, "--score")) {
                if (strcmp(v, "prob") && strcmp(v, "logit")) return at_fail(o, "'%s' is not prob or logit", v);
                a->logit = !strcmp(v, "logit");
            } else if (!strcmp(o, "--mask-mode")) {
                if (strcmp(v, "mult") && strcmp(v, "top-p")) return at_fail(o, "'%s' is not mult or top-p", v);
                a->topp = !strcmp(v, "top-p");
            } else if (!strcmp(o, "--mask-space")) {
                if (strcmp(v, "unit") && strcmp(v, "normalized")) return at_fail(o, "'%s' is not unit or normalized", v);
                a->space_normalized = !strcmp(v, "normalized");
            } else if (!strcmp(o, "--ad")) {
                if (strcmp(v, "absolute") && strcmp(v, "relative")) return at_fail(o, "'%s' is not relative or absolute", v);
                a->ad_absolute = !strcmp(v, "absolute");
            } else if (!strcmp(o, "--proportions")) {
                char buf[512];
                snprintf(buf, sizeof buf, "%s", v);
                a->n_props = 0;
                for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                    double d;
                    if (a->n_props >= EVAL_MAX_PROPS) return at_fail(o, "at most %d proportions", EVAL_MAX_PROPS);
                    if (cli_parse_double(o, t, 0.01, 100, &d)) return AT_ERR;
                    a->props[a->n_props++] = d;
                }
            } else if (!strcmp(o, "--tolerance")) {
                if (cli_parse_double(o, v, 0, 1000, &a->tolerance)) return AT_ERR;
            } else if (!strcmp(o, "--steps")) {
                long n;
                if (cli_parse_int(o, v, 2, 10000, &n)) return AT_ERR;
                a->steps = (int)n;
            } else
                return at_fail(o, "unknown option (see attrib eval --help)");
        }
    }
    if (a->metric == EVAL_NONE) return at_fail("--metric", "is required (see attrib eval --help)");
    if (!a->maps) return at_fail("--maps", "is required (explain's output folder)");
    if (a->resume && a->overwrite) return at_fail("--overwrite", "and --resume exclude each other");
    if ((a->metric == EVAL_ENERGY_PG || a->metric == EVAL_POINTING) && !a->annotations)
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
    return eval_run(&a);
}
