/* Options of the perturbation methods (RISE, occlusion, meaningful
 * perturbation) for ./attrib explain and bench, their file-name suffix, and
 * RISE's masks read from or written to .npy (docs/methods.md#rise). */
#include "perturb_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "io/npy.h"

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

int perturb_args_prepare(perturb_args *p, const at_model *m, at_method method) {
    at_perturb_options *o = &p->o;
    if ((p->masks_in || p->masks_out) && method != AT_METHOD_RISE)
        return at_fail(p->masks_in ? "--rise-masks" : "--rise-save-masks", "is for --method rise");
    if (p->masks_in && p->masks_out) return at_fail("--rise-save-masks", "and --rise-masks exclude each other");
    if (p->masks_in) {
        int nd;
        int64_t shape[AT_NPY_MAX_DIMS];
        if (at_npy_read_f32(p->masks_in, &p->masks, &nd, shape)) return AT_ERR;
        if (nd != 3 || shape[1] != m->in_h || shape[2] != m->in_w || shape[0] < 1)
            return at_fail(p->masks_in, "masks must be [N][%d][%d] for this model", m->in_h, m->in_w);
        if (p->rise_n_set && shape[0] != o->rise_n)
            return at_fail("--rise-n", "%d, but %s holds %lld masks", o->rise_n, p->masks_in, (long long)shape[0]);
        o->rise_n = (int)shape[0];
        o->rise_masks = p->masks;
    }
    return at_perturb_check(m, o);
}

int perturb_args_save_masks(const perturb_args *p, const at_model *m) {
    const at_perturb_options *o = &p->o;
    if (p->masks_out) {
        long hw = (long)m->in_h * m->in_w;
        float *all = malloc(sizeof(float) * hw * o->rise_n);
        if (!all) return at_fail(p->masks_out, "out of memory for %d masks", o->rise_n);
        at_rise_masks(m->in_h, m->in_w, o->rise_cells, o->rise_p, o->rise_seed, 0, o->rise_n, all);
        int64_t shape[3] = {o->rise_n, m->in_h, m->in_w};
        int rc = at_npy_write_f32(p->masks_out, all, 3, shape);
        free(all);
        if (rc) return AT_ERR;
    }
    return AT_OK;
}

void perturb_args_free(perturb_args *p) { free(p->masks), p->masks = NULL; }

void perturb_settings(at_method method, const perturb_args *p, char *buf, size_t cap) {
    at_perturb_options d;
    at_perturb_defaults(&d);
    const at_perturb_options *o = &p->o;
    size_t k = 0;
    buf[0] = 0;
#define ADD(...) (k < cap ? (k += snprintf(buf + k, cap - k, __VA_ARGS__)) : 0)
    if (method == AT_METHOD_RISE) {
        if (p->masks_in) {
            const char *base = strrchr(p->masks_in, '/');
            ADD("masks-%s", base ? base + 1 : p->masks_in);
            if (k > 4 && k < cap && !strcmp(buf + k - 4, ".npy")) buf[k -= 4] = 0;
        } else {
            if (o->rise_n != d.rise_n) ADD("%sN%d", k ? "." : "", o->rise_n);
            if (o->rise_cells != d.rise_cells) ADD("%ss%d", k ? "." : "", o->rise_cells);
            if (o->rise_p != d.rise_p) ADD("%sp%g", k ? "." : "", o->rise_p);
            if (o->rise_seed != d.rise_seed) ADD("%sseed%llu", k ? "." : "", (unsigned long long)o->rise_seed);
        }
    }
    if (method == AT_METHOD_OCCLUSION) {
        if (o->occ_window) ADD("%sw%d", k ? "." : "", o->occ_window);
        if (o->occ_stride) ADD("%sst%d", k ? "." : "", o->occ_stride);
        if (o->occ_baseline == AT_OCCLUSION_BLACK) ADD("%sblack", k ? "." : "");
    }
    if (method == AT_METHOD_MEANINGFUL) {
        if (o->mp_iterations != d.mp_iterations) ADD("%sT%d", k ? "." : "", o->mp_iterations);
        if (o->mp_lr != d.mp_lr) ADD("%slr%g", k ? "." : "", o->mp_lr);
        if (o->mp_l1 != d.mp_l1) ADD("%sl1_%g", k ? "." : "", o->mp_l1);
        if (o->mp_tv != d.mp_tv) ADD("%stv%g", k ? "." : "", o->mp_tv);
        if (o->mp_beta != d.mp_beta) ADD("%sbeta%g", k ? "." : "", o->mp_beta);
        if (o->mp_mask != d.mp_mask) ADD("%sm%d", k ? "." : "", o->mp_mask);
        if (o->mp_sigma != d.mp_sigma) ADD("%ssigma%g", k ? "." : "", o->mp_sigma);
    }
    if (o->score_logit) ADD("%slogit", k ? "." : "");
#undef ADD
}
