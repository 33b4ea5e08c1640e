/* Options of the perturbation methods (RISE, occlusion, meaningful
 * perturbation) for ./attrib explain and bench (docs/methods.md#rise). */
#include "perturb_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "run/explain.h"

const char *const PERTURB_HELP =
    "Perturbation methods (docs/methods.md#rise, #occlusion, #meaningful-perturbation):\n"
    "  --method rise       N masked forwards per image; --rise-n N (4000) --rise-s S (7 cells)\n"
    "                      --rise-p P (0.5) --rise-seed K (0); the authors' code: 6000/8/0.1\n"
    "  --rise-masks FILE   use these masks ([N][H][W] float32 .npy) instead of the generator's\n"
    "  --rise-save-masks FILE  write the generator's masks there ([N][H][W], 4*N*H*W bytes)\n"
    "  --method occlusion  one forward per window position; --occlusion-window PX and\n"
    "                      --occlusion-stride PX (15 and 8 at 224, scaled to the input),\n"
    "                      --occlusion-baseline mean|black (dataset mean colour, default)\n"
    "  --perturb-score prob|logit   what the three score (default prob: softmax; logit\n"
    "                      when the probabilities saturate, docs/methods.md#meaningful-perturbation)\n"
    "  --method meaningful-perturbation   Adam on a mask blending the image with its blur\n"
    "                      (300 steps ~ 300 forwards + backwards); --mp-iterations T (300)\n"
    "                      --mp-lr X (0.1) --mp-l1 X (1e-4) --mp-tv X (1e-2) --mp-beta X (3)\n"
    "                      --mp-mask M (28) --mp-sigma PX (10 at 224, scaled)\n\n";

void perturb_args_init(perturb_args *p) {
    memset(p, 0, sizeof *p);
    at_perturb_defaults(&p->o);
}

int perturb_args_parse(perturb_args *p, const char *opt, const char *v) {
    long n;
    double d;
    at_perturb_options *o = &p->o;
    if (!strcmp(opt, "--rise-n")) {
        if (cli_parse_int(opt, v, 1, 10000000, &n)) return AT_ERR;
        o->rise_n = (int)n, p->rise_n_set = 1;
    } else if (!strcmp(opt, "--rise-s")) {
        if (cli_parse_int(opt, v, 1, 64, &n)) return AT_ERR;
        o->rise_cells = (int)n;
    } else if (!strcmp(opt, "--rise-p")) {
        if (cli_parse_double(opt, v, 1e-6, 1, &d)) return AT_ERR;
        o->rise_p = (float)d;
    } else if (!strcmp(opt, "--rise-seed")) {
        if (cli_parse_int(opt, v, 0, 1L << 62, &n)) return AT_ERR;
        o->rise_seed = (uint64_t)n;
    } else if (!strcmp(opt, "--rise-masks")) {
        p->masks_in = v;
    } else if (!strcmp(opt, "--rise-save-masks")) {
        p->masks_out = v;
    } else if (!strcmp(opt, "--occlusion-window") || !strcmp(opt, "--occlusion-stride")) {
        if (cli_parse_int(opt, v, 1, 100000, &n)) return AT_ERR;
        *(opt[12] == 'w' ? &o->occ_window : &o->occ_stride) = (int)n;
    } else if (!strcmp(opt, "--occlusion-baseline")) {
        if (!strcmp(v, "mean")) o->occ_baseline = AT_OCCLUSION_MEAN;
        else if (!strcmp(v, "black")) o->occ_baseline = AT_OCCLUSION_BLACK;
        else return at_fail(opt, "'%s' is not mean or black", v);
    } else if (!strcmp(opt, "--perturb-score")) {
        if (strcmp(v, "prob") && strcmp(v, "logit")) return at_fail(opt, "'%s' is not prob or logit", v);
        o->score_logit = !strcmp(v, "logit");
    } else if (!strcmp(opt, "--mp-iterations") || !strcmp(opt, "--mp-mask")) {
        if (cli_parse_int(opt, v, opt[5] == 'i' ? 0 : 1, 100000, &n)) return AT_ERR;
        *(opt[5] == 'i' ? &o->mp_iterations : &o->mp_mask) = (int)n;
    } else if (!strcmp(opt, "--mp-lr") || !strcmp(opt, "--mp-l1") || !strcmp(opt, "--mp-tv") ||
               !strcmp(opt, "--mp-beta") || !strcmp(opt, "--mp-sigma")) {
        if (cli_parse_double(opt, v, 0, 1e6, &d)) return AT_ERR;
        float *dst = !strcmp(opt, "--mp-lr") ? &o->mp_lr : !strcmp(opt, "--mp-l1") ? &o->mp_l1
                   : !strcmp(opt, "--mp-tv") ? &o->mp_tv : !strcmp(opt, "--mp-beta") ? &o->mp_beta : &o->mp_sigma;
        *dst = (float)d;
    } else {
        return 0;
    }
    return 1;
}

int perturb_args_check(const perturb_args *p, at_method method) {
    if ((p->masks_in || p->masks_out) && method != AT_METHOD_RISE)
        return at_fail(p->masks_in ? "--rise-masks" : "--rise-save-masks", "is for --method rise");
    if (p->masks_in && p->masks_out) return at_fail("--rise-save-masks", "and --rise-masks exclude each other");
    return AT_OK;
}

int perturb_args_prepare(perturb_args *p, const at_model *m, at_method method) {
    if (perturb_args_check(p, method) ||
        (p->masks_in && at_rise_masks_load(m, p->masks_in, p->rise_n_set, &p->o, &p->masks)))
        return AT_ERR;
    return at_perturb_check(m, &p->o);
}

void perturb_args_free(perturb_args *p) { free(p->masks), p->masks = NULL; }
