/* Options of the routing-path methods of ./attrib explain (presets and
 * overrides: docs/methods.md#routing-path-presets-and-sparsity) and the names
 * they give results: method tags and the settings suffix of file names and
 * resume keys. */
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
    p->n_rates = 4;
    p->rates[0] = 0.3, p->rates[1] = 0.5, p->rates[2] = 0.7, p->rates[3] = 0.9;
}

/* Options given explicitly are re-applied over the preset, whatever the order. */
typedef struct {
    int iterations_set, lr_set, momentum_set, gamma_set, clamp_set;
    at_cdrp_options explicit_;
} overrides;
static overrides ov;

int path_args_parse(path_args *p, const char *opt, const char *v) {
    double d;
    long n;
    if (!strcmp(opt, "--preset")) {
        at_cdrp_options keep = p->cdrp;
        if (at_cdrp_preset(v, 0, &p->cdrp)) return AT_ERR;
        p->cdrp.target = keep.target, p->cdrp.l1 = keep.l1, p->cdrp.alpha_weight = keep.alpha_weight,
        p->cdrp.keep = keep.keep, p->cdrp.cic_precision_set = keep.cic_precision_set,
        p->cdrp.cic_precision = keep.cic_precision;
        snprintf(p->preset, sizeof p->preset, "%s", v);
    } else if (!strcmp(opt, "--iterations")) {
        if (cli_parse_int(opt, v, 0, 100000, &n)) return AT_ERR;
        ov.explicit_.iterations = (int)n, ov.iterations_set = 1;
    } else if (!strcmp(opt, "--lr") || !strcmp(opt, "--momentum") || !strcmp(opt, "--gamma") ||
               !strcmp(opt, "--clamp-max")) {
        double hi = !strcmp(opt, "--momentum") ? 0.999 : 1e6;
        if (cli_parse_double(opt, v, 0, hi, &d)) return AT_ERR;
        if (!strcmp(opt, "--lr")) ov.explicit_.lr = (float)d, ov.lr_set = 1;
        else if (!strcmp(opt, "--momentum")) ov.explicit_.momentum = (float)d, ov.momentum_set = 1;
        else if (!strcmp(opt, "--gamma")) ov.explicit_.gamma = (float)d, ov.gamma_set = 1;
        else {
            if (d <= 0) return at_fail(opt, "must be positive");
            ov.explicit_.clamp_max = (float)d, ov.clamp_set = 1;
        }
    } else if (!strcmp(opt, "--target")) {
        if (!strcmp(v, "soft")) p->cdrp.target = AT_TARGET_SOFT;
        else if (!strcmp(v, "hard")) p->cdrp.target = AT_TARGET_HARD;
        else return at_fail(opt, "'%s' is not soft or hard", v);
    } else if (!strcmp(opt, "--l1")) {
        if (!strcmp(v, "sum")) p->cdrp.l1 = AT_L1_SUM;
        else if (!strcmp(v, "mean")) p->cdrp.l1 = AT_L1_MEAN;
        else return at_fail(opt, "'%s' is not sum or mean", v);
    } else if (!strcmp(opt, "--alpha-weight")) {
        if (!strcmp(v, "alpha")) p->cdrp.alpha_weight = AT_ALPHA_PLAIN;
        else if (!strcmp(v, "inverse")) p->cdrp.alpha_weight = AT_ALPHA_INVERSE;
        else if (!strcmp(v, "none")) p->cdrp.alpha_weight = AT_ALPHA_NONE;
        else return at_fail(opt, "'%s' is not alpha, inverse or none", v);
    } else if (!strcmp(opt, "--keep")) {
        if (!strcmp(v, "best")) p->cdrp.keep = AT_KEEP_BEST;
        else if (!strcmp(v, "last-below-initial")) p->cdrp.keep = AT_KEEP_LAST_BELOW_INITIAL;
        else return at_fail(opt, "'%s' is not best or last-below-initial", v);
    } else if (!strcmp(opt, "--cic-precision")) {
        if (cli_parse_precision(opt, v, &p->cdrp.cic_precision)) return AT_ERR;
        p->cdrp.cic_precision_set = 1;
    } else if (!strcmp(opt, "--path-method")) {
        if (!strcmp(v, "cdrp")) p->path_score_weighted = 0;
        else if (!strcmp(v, "score-cdrp")) p->path_score_weighted = 1;
        else return at_fail(opt, "'%s' is not cdrp or score-cdrp", v);
    } else if (!strcmp(opt, "--gates")) {
        p->gates_dir = v;
    } else if (!strcmp(opt, "--rates")) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v);
        p->n_rates = 0;
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (p->n_rates >= 16) return at_fail(opt, "at most 16 rates");
            if (cli_parse_double(opt, tok, 0, 1, &d)) return AT_ERR;
            p->rates[p->n_rates++] = d;
        }
        if (!p->n_rates) return at_fail(opt, "empty list");
    } else if (!strcmp(opt, "--prune")) {
        if (!strcmp(v, "layer")) p->prune_global = 0;
        else if (!strcmp(v, "global")) p->prune_global = 1;
        else return at_fail(opt, "'%s' is not layer or global", v);
    } else {
        return 0;
    }
    return 1;
}

int path_args_flag(path_args *p, const char *opt) {
    if (!strcmp(opt, "--keep-gate-values")) p->keep_gate_values = 1;
    else if (!strcmp(opt, "--reoptimise")) p->reoptimise = 1;
    else return 0;
    return 1;
}

void path_args_finish(path_args *p) {
    if (ov.iterations_set) p->cdrp.iterations = ov.explicit_.iterations;
    if (ov.lr_set) p->cdrp.lr = ov.explicit_.lr;
    if (ov.momentum_set) p->cdrp.momentum = ov.explicit_.momentum;
    if (ov.gamma_set) p->cdrp.gamma = ov.explicit_.gamma;
    if (ov.clamp_set) p->cdrp.clamp_max = ov.explicit_.clamp_max;
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
