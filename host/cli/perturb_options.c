/* Options of the perturbation methods (RISE, occlusion, meaningful
 * perturbation) for ./attrib explain and bench (docs/methods.md#rise). */
#include "perturb_options.h"

#include <stddef.h>
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

static int set_rise_n(void *args, const char *opt, const char *v) {
    perturb_args *p = args;
    long n;
    if (cli_parse_int(opt, v, 1, 10000000, &n)) return AT_ERR;
    p->o.rise_n = (int)n, p->rise_n_set = 1;
    return AT_OK;
}
static int set_rise_seed(void *args, const char *opt, const char *v) {
    long n;
    if (cli_parse_int(opt, v, 0, 1L << 62, &n)) return AT_ERR;
    ((perturb_args *)args)->o.rise_seed = (uint64_t)n;
    return AT_OK;
}

#define ARG(f) offsetof(perturb_args, f)
#define OPT(f) offsetof(perturb_args, o.f)
const cli_option PERTURB_OPTIONS[] = {
    {.name = "--rise-n", .type = CLI_CALL, .fn = set_rise_n},
    {.name = "--rise-s", .type = CLI_INT, .off = OPT(rise_cells), .lo = 1, .hi = 64},
    {.name = "--rise-p", .type = CLI_FLOAT, .off = OPT(rise_p), .lo = 1e-6, .hi = 1},
    {.name = "--rise-seed", .type = CLI_CALL, .fn = set_rise_seed},
    {.name = "--rise-masks", .type = CLI_STR, .off = ARG(masks_in)},
    {.name = "--rise-save-masks", .type = CLI_STR, .off = ARG(masks_out)},
    {.name = "--occlusion-window", .type = CLI_INT, .off = OPT(occ_window), .lo = 1, .hi = 100000},
    {.name = "--occlusion-stride", .type = CLI_INT, .off = OPT(occ_stride), .lo = 1, .hi = 100000},
    {.name = "--occlusion-baseline", .type = CLI_CHOICE, .off = OPT(occ_baseline), .choices = "mean|black"},
    {.name = "--perturb-score", .type = CLI_CHOICE, .off = OPT(score_logit), .choices = "prob|logit"},
    {.name = "--mp-iterations", .type = CLI_INT, .off = OPT(mp_iterations), .lo = 0, .hi = 100000},
    {.name = "--mp-mask", .type = CLI_INT, .off = OPT(mp_mask), .lo = 1, .hi = 100000},
    {.name = "--mp-lr", .type = CLI_FLOAT, .off = OPT(mp_lr), .lo = 0, .hi = 1e6},
    {.name = "--mp-l1", .type = CLI_FLOAT, .off = OPT(mp_l1), .lo = 0, .hi = 1e6},
    {.name = "--mp-tv", .type = CLI_FLOAT, .off = OPT(mp_tv), .lo = 0, .hi = 1e6},
    {.name = "--mp-beta", .type = CLI_FLOAT, .off = OPT(mp_beta), .lo = 0, .hi = 1e6},
    {.name = "--mp-sigma", .type = CLI_FLOAT, .off = OPT(mp_sigma), .lo = 0, .hi = 1e6},
    {.name = NULL},
};

int perturb_args_parse(perturb_args *p, const char *opt, const char *v) {
    char *argv[2] = {(char *)opt, (char *)v};
    int i = 0;
    return cli_options_parse(PERTURB_OPTIONS, p, 2, argv, &i);
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
