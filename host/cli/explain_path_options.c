/* Options of the routing-path methods of ./attrib explain (presets and
 * overrides: docs/methods.md#routing-path-presets-and-sparsity). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "explain_paths.h"

const char *const PATH_HELP =
    "Routing-path methods (docs/methods.md#cdrp, #score-cdrp, #path-score-cam, #pathway-gradient):\n"
    "  --method cdrp | score-cdrp     optimise each image's channel gates (Algorithm 1);\n"
    "                      writes <stem>.<method>.gates.npy (and .alpha.npy for score-cdrp)\n"
    "  --method path-scorecam | pathway-grad   maps of a path: Score-CAM of the gated\n"
    "                      network, or saliency of the network pruned by the path\n"
    "  --preset P          zhu2024 (default: lr 0.01, T 100, gamma 0.01, clamp 10) | wang2018\n"
    "  --iterations T --lr X --momentum X --gamma X --clamp-max X   override the preset\n"
    "  --target soft|hard  cross-entropy target (default soft: the original probabilities)\n"
    "  --l1 sum|mean       L1 term (default sum)\n"
    "  --alpha-weight alpha|inverse|none   Score-CDRP's L1 weights (default alpha)\n"
    "  --keep best|last-below-initial       which class-preserving gates to keep (default best)\n"
    "  --cic-precision P   Score-CDRP's CIC pass at fp32 | tf32 | fp16 (default --precision;\n"
    "                      the CPU emulates tf32/fp16 to show how much a path changes)\n"
    "  --path-method cdrp|score-cdrp        the path behind path-scorecam / pathway-grad\n"
    "                      (default score-cdrp)\n"
    "  --gates DIR         read <stem>.<path-method>[.settings].gates.npy from DIR instead\n"
    "                      of optimising (default: reuse the paths in --out that have the\n"
    "                      same settings and model, optimise the others)\n"
    "  --reoptimise        optimise the path even when --out has it\n"
    "  --rates LIST        pathway-grad prune rates (default 0.3,0.5,0.7,0.9)\n"
    "  --prune layer|global  rank gates per layer (default) or all together\n"
    "  --keep-gate-values  pruned network keeps the gate values instead of 1\n";

void path_args_init(path_args *p) {
    memset(p, 0, sizeof p[0]);
    at_explain_run_options d;
    at_explain_run_defaults(&d);
    p->o = d.path;
    p->o.preset[0] = 0; /* set by --preset, else zhu2024 by path_args_finish */
    p->given = (path_numbers){-1, NAN, NAN, NAN, NAN};
    p->target = p->l1 = p->alpha_weight = p->keep = -1;
}

static int set_preset(void *args, const char *opt, const char *v) {
    path_args *p = args;
    at_cdrp_options keep = p->o.cdrp, *c = &p->o.cdrp;
    if (at_cdrp_preset(v, 0, c)) return AT_ERR;
    c->target = keep.target, c->l1 = keep.l1, c->alpha_weight = keep.alpha_weight, c->keep = keep.keep,
    c->cic_precision_set = keep.cic_precision_set, c->cic_precision = keep.cic_precision;
    snprintf(p->o.preset, sizeof p->o.preset, "%s", v);
    return AT_OK;
}
static int set_cic_precision(void *args, const char *opt, const char *v) {
    path_args *p = args;
    p->o.cdrp.cic_precision_set = 1;
    return cli_parse_precision(opt, v, &p->o.cdrp.cic_precision);
}
static int set_rates(void *args, const char *opt, const char *v) {
    path_args *p = args;
    return cli_parse_doubles(opt, v, 0, 1, p->o.rates, AT_MAX_RATES, &p->o.n_rates);
}
static int set_clamp(void *args, const char *opt, const char *v) {
    path_args *p = args;
    if (cli_parse_double(opt, v, 0, 1e6, &p->given.clamp_max)) return AT_ERR;
    if (p->given.clamp_max <= 0) return at_fail(opt, "must be positive");
    return AT_OK;
}

/* The optimiser's numbers go to `given` and are applied over the preset by
 * path_args_finish, whatever the order of --preset and them. The choices
 * follow the enums' order (methods/cdrp.h). */
#define ARG(f) offsetof(path_args, f)
const cli_option PATH_OPTIONS[] = {
    {.name = "--preset", .type = CLI_CALL, .fn = set_preset},
    {.name = "--iterations", .type = CLI_INT, .off = ARG(given.iterations), .lo = 0, .hi = 100000},
    {.name = "--lr", .type = CLI_DOUBLE, .off = ARG(given.lr), .lo = 0, .hi = 1e6},
    {.name = "--momentum", .type = CLI_DOUBLE, .off = ARG(given.momentum), .lo = 0, .hi = 0.999},
    {.name = "--gamma", .type = CLI_DOUBLE, .off = ARG(given.gamma), .lo = 0, .hi = 1e6},
    {.name = "--clamp-max", .type = CLI_CALL, .fn = set_clamp},
    {.name = "--target", .type = CLI_CHOICE, .off = ARG(target), .choices = "soft|hard"},
    {.name = "--l1", .type = CLI_CHOICE, .off = ARG(l1), .choices = "sum|mean"},
    {.name = "--alpha-weight", .type = CLI_CHOICE, .off = ARG(alpha_weight), .choices = "alpha|inverse|none"},
    {.name = "--keep", .type = CLI_CHOICE, .off = ARG(keep), .choices = "best|last-below-initial"},
    {.name = "--cic-precision", .type = CLI_CALL, .fn = set_cic_precision},
    {.name = "--path-method", .type = CLI_CHOICE, .off = ARG(path_cdrp), .choices = "score-cdrp|cdrp"},
    {.name = "--gates", .type = CLI_STR, .off = ARG(o.gates_dir)},
    {.name = "--rates", .type = CLI_CALL, .fn = set_rates},
    {.name = "--prune", .type = CLI_CHOICE, .off = ARG(o.prune_global), .choices = "layer|global"},
    {.name = "--keep-gate-values", .type = CLI_FLAG, .off = ARG(o.keep_gate_values)},
    {.name = "--reoptimise", .type = CLI_FLAG, .off = ARG(o.reoptimise)},
    {.name = NULL},
};

void path_args_finish(path_args *p) {
    const path_numbers *g = &p->given;
    if (g->iterations >= 0) p->o.cdrp.iterations = g->iterations;
    if (!isnan(g->lr)) p->o.cdrp.lr = (float)g->lr;
    if (!isnan(g->momentum)) p->o.cdrp.momentum = (float)g->momentum;
    if (!isnan(g->gamma)) p->o.cdrp.gamma = (float)g->gamma;
    if (!isnan(g->clamp_max)) p->o.cdrp.clamp_max = (float)g->clamp_max;
    static const at_cdrp_target target[] = {AT_TARGET_SOFT, AT_TARGET_HARD};
    static const at_cdrp_l1 l1[] = {AT_L1_SUM, AT_L1_MEAN};
    static const at_alpha_weight alpha[] = {AT_ALPHA_PLAIN, AT_ALPHA_INVERSE, AT_ALPHA_NONE};
    static const at_cdrp_keep keep[] = {AT_KEEP_BEST, AT_KEEP_LAST_BELOW_INITIAL};
    if (p->target >= 0) p->o.cdrp.target = target[p->target];
    if (p->l1 >= 0) p->o.cdrp.l1 = l1[p->l1];
    if (p->alpha_weight >= 0) p->o.cdrp.alpha_weight = alpha[p->alpha_weight];
    if (p->keep >= 0) p->o.cdrp.keep = keep[p->keep];
    p->o.path_score_weighted = !p->path_cdrp;
    if (!p->o.preset[0]) snprintf(p->o.preset, sizeof p->o.preset, "zhu2024");
}
