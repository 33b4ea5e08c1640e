/* Options of the routing-path methods of ./attrib explain (presets and
 * overrides: docs/methods.md#routing-path-presets-and-sparsity) and the names
 * they give results: method tags and the settings suffix of file names and
 * resume keys. */
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

int path_method_parse(const char *name, path_method *out) {
    static const char *const names[] = {"cdrp", "score-cdrp", "path-scorecam", "pathway-grad"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) {
            *out = (path_method)i;
            return 1;
        }
    return 0;
}

static const char *path_method_name(path_method p) {
    static const char *const names[] = {"cdrp", "score-cdrp", "path-scorecam", "pathway-grad"};
    return names[p];
}

void path_args_init(path_args *p) {
    memset(p, 0, sizeof p[0]);
    at_cdrp_preset("zhu2024", 0, &p->cdrp);
    p->path_score_weighted = 1;
    p->given = (path_numbers){-1, NAN, NAN, NAN, NAN};
    p->target = p->l1 = p->alpha_weight = p->keep = -1;
    p->n_rates = 4;
    p->rates[0] = 0.3, p->rates[1] = 0.5, p->rates[2] = 0.7, p->rates[3] = 0.9;
}

static int set_preset(void *args, const char *opt, const char *v) {
    path_args *p = args;
    at_cdrp_options keep = p->cdrp;
    if (at_cdrp_preset(v, 0, &p->cdrp)) return AT_ERR;
    p->cdrp.target = keep.target, p->cdrp.l1 = keep.l1, p->cdrp.alpha_weight = keep.alpha_weight,
    p->cdrp.keep = keep.keep, p->cdrp.cic_precision_set = keep.cic_precision_set,
    p->cdrp.cic_precision = keep.cic_precision;
    snprintf(p->preset, sizeof p->preset, "%s", v);
    return AT_OK;
}
static int set_cic_precision(void *args, const char *opt, const char *v) {
    path_args *p = args;
    p->cdrp.cic_precision_set = 1;
    return cli_parse_precision(opt, v, &p->cdrp.cic_precision);
}
static int set_rates(void *args, const char *opt, const char *v) {
    path_args *p = args;
    return cli_parse_doubles(opt, v, 0, 1, p->rates, 16, &p->n_rates);
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
    {.name = "--gates", .type = CLI_STR, .off = ARG(gates_dir)},
    {.name = "--rates", .type = CLI_CALL, .fn = set_rates},
    {.name = "--prune", .type = CLI_CHOICE, .off = ARG(prune_global), .choices = "layer|global"},
    {.name = "--keep-gate-values", .type = CLI_FLAG, .off = ARG(keep_gate_values)},
    {.name = "--reoptimise", .type = CLI_FLAG, .off = ARG(reoptimise)},
    {.name = NULL},
};

void path_args_finish(path_args *p) {
    const path_numbers *g = &p->given;
    if (g->iterations >= 0) p->cdrp.iterations = g->iterations;
    if (!isnan(g->lr)) p->cdrp.lr = (float)g->lr;
    if (!isnan(g->momentum)) p->cdrp.momentum = (float)g->momentum;
    if (!isnan(g->gamma)) p->cdrp.gamma = (float)g->gamma;
    if (!isnan(g->clamp_max)) p->cdrp.clamp_max = (float)g->clamp_max;
    static const at_cdrp_target target[] = {AT_TARGET_SOFT, AT_TARGET_HARD};
    static const at_cdrp_l1 l1[] = {AT_L1_SUM, AT_L1_MEAN};
    static const at_alpha_weight alpha[] = {AT_ALPHA_PLAIN, AT_ALPHA_INVERSE, AT_ALPHA_NONE};
    static const at_cdrp_keep keep[] = {AT_KEEP_BEST, AT_KEEP_LAST_BELOW_INITIAL};
    if (p->target >= 0) p->cdrp.target = target[p->target];
    if (p->l1 >= 0) p->cdrp.l1 = l1[p->l1];
    if (p->alpha_weight >= 0) p->cdrp.alpha_weight = alpha[p->alpha_weight];
    if (p->keep >= 0) p->cdrp.keep = keep[p->keep];
    p->path_score_weighted = !p->path_cdrp;
    if (!p->preset[0]) snprintf(p->preset, sizeof p->preset, "zhu2024");
}

/* The method's name in files and results lines. */
void path_method_tag(path_method pm, const path_args *p, char *tag, size_t cap) {
    if (pm == PM_CDRP || pm == PM_SCORE_CDRP)
        snprintf(tag, cap, "%s", path_method_name(pm));
    else
        snprintf(tag, cap, "%s.%s", path_method_name(pm), p->path_score_weighted ? "score-cdrp" : "cdrp");
}

static void add_token(char *buf, size_t cap, const char *fmt, double v) {
    size_t o = strlen(buf);
    if (o + 2 >= cap) return;
    if (o) buf[o++] = '.';
    snprintf(buf + o, cap - o, fmt, v);
}

/* The options that change a path, as a name suffix: "" for the defaults. */
static void path_only_settings(const path_args *p, int score_weighted, at_precision precision, char *buf,
                               size_t cap) {
    at_cdrp_options d;
    buf[0] = 0;
    at_cdrp_preset(p->preset, 0, &d);
    if (strcmp(p->preset, "zhu2024")) add_token(buf, cap, p->preset, 0);
    if (p->cdrp.iterations != d.iterations) add_token(buf, cap, "T%g", p->cdrp.iterations);
    if (p->cdrp.lr != d.lr) add_token(buf, cap, "lr%g", p->cdrp.lr);
    if (p->cdrp.momentum != d.momentum) add_token(buf, cap, "momentum%g", p->cdrp.momentum);
    if (p->cdrp.gamma != d.gamma) add_token(buf, cap, "gamma%g", p->cdrp.gamma);
    if (p->cdrp.clamp_max != d.clamp_max) add_token(buf, cap, "clamp%g", p->cdrp.clamp_max);
    if (p->cdrp.target == AT_TARGET_HARD) add_token(buf, cap, "hard", 0);
    if (p->cdrp.l1 == AT_L1_MEAN) add_token(buf, cap, "l1mean", 0);
    if (p->cdrp.keep == AT_KEEP_LAST_BELOW_INITIAL) add_token(buf, cap, "keep-last", 0);
    if (score_weighted && p->cdrp.alpha_weight != AT_ALPHA_PLAIN)
        add_token(buf, cap, p->cdrp.alpha_weight == AT_ALPHA_INVERSE ? "alpha-inverse" : "alpha-none", 0);
    if (precision != AT_PRECISION_FP32) add_token(buf, cap, at_precision_name(precision), 0);
    if (score_weighted && p->cdrp.alpha_weight != AT_ALPHA_NONE && p->cdrp.cic_precision_set &&
        p->cdrp.cic_precision != precision) {
        char t[24];
        snprintf(t, sizeof t, "cic-%s", at_precision_name(p->cdrp.cic_precision));
        add_token(buf, cap, t, 0);
    }
}

void path_settings(path_method pm, const path_args *p, at_precision precision, char *buf, size_t cap) {
    int sw = pm == PM_SCORE_CDRP || (pm >= PM_PATH_SCORECAM && p->path_score_weighted);
    path_only_settings(p, sw, precision, buf, cap);
    if (pm == PM_PATHWAY_GRAD && p->prune_global) add_token(buf, cap, "global", 0);
    if (pm == PM_PATHWAY_GRAD && p->keep_gate_values) add_token(buf, cap, "gate-values", 0);
}

/* "cdrp" / "score-cdrp" plus the path's settings: the gates file's name part. */
void path_gates_settings(const path_args *p, at_precision precision, char *buf, size_t cap) {
    path_only_settings(p, p->path_score_weighted, precision, buf, cap);
}

void path_file_name(const path_args *p, at_precision precision, char *buf, size_t cap) {
    char st[160];
    path_only_settings(p, p->path_score_weighted, precision, st, sizeof st);
    snprintf(buf, cap, "%s%s%s", p->path_score_weighted ? "score-cdrp" : "cdrp", st[0] ? "." : "", st);
}


void results_key_name(const char *method, const char *settings, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s", method, settings && settings[0] ? "." : "", settings ? settings : "");
}
