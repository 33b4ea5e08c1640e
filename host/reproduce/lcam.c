/* The L-CAM comparison of ./attrib reproduce (docs/reproduce.md#l-cam-comparison):
 * L-CAM beside Grad-CAM, Grad-CAM++, Score-CAM and RISE on the methods
 * table's images and maps (OUT/methods-KEY-riseN: RISE with its masks),
 * AD / IC with L-CAM's soft masking at each q (eval --zero-lowest, softmax
 * scores) and the forwards and backwards each map cost. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "reproduce/internal.h"

static const struct {
    const char *name, *method;
} METHODS[] = {{"L-CAM", "lcam"},
               {"Grad-CAM", "gradcam"},
               {"Grad-CAM++", "gradcam++"},
               {"Score-CAM", "scorecam"},
               {"RISE", "rise"}};
#define N_METHODS ((int)(sizeof METHODS / sizeof METHODS[0]))

int rp_lcam_module(const rp_run *r, char *path, size_t cap) {
    char buf[4300];
    const char *p = r->model_path, *suffix = ".safetensors"; /* as at_lcam_default_path */
    size_t n = strlen(p), sl = strlen(suffix);
    if (n >= sl && !strcmp(p + n - sl, suffix)) n -= sl;
    snprintf(buf, sizeof buf, "%.*s.lcam.safetensors", (int)n, p);
    if (path) snprintf(path, cap, "%s", buf);
    if (access(buf, R_OK)) return 0;
    at_safetensors st; /* a module of another file of the model would be refused: leave it out too */
    if (at_st_open(&st, buf)) {
        at_clear_error();
        return 0;
    }
    const char *sha = at_st_meta(&st, "model_sha256");
    const int fits = sha && !strcmp(sha, r->model_sha);
    at_st_close(&st);
    return fits;
}

int rp_lcam_steps(rp_state *s) {
    rp_run *r = &s->run;
    const at_reproduce_config *c = r->cfg;
    if (!rp_lcam_module(r, NULL, 0)) return AT_OK; /* the report says so */
    char qs[256], rise_n[32], name[128];
    size_t o = 0, k = 0;
    for (int i = 0; i < c->lc.n_q; i++) o += snprintf(qs + o, sizeof qs - o, "%s%g", i ? "," : "", c->lc.q[i]);
    k = snprintf(r->lcam_eval_key, sizeof r->lcam_eval_key, "prob,original,mult");
    for (int i = 0; i < c->lc.n_q && k < sizeof r->lcam_eval_key; i++) /* eval's options key */
        k += snprintf(r->lcam_eval_key + k, sizeof r->lcam_eval_key - k, "%s%g", i ? "/" : ",zero-lowest", c->lc.q[i]);
    snprintf(rise_n, sizeof rise_n, "%ld", c->rise_n);
    const char *rise_opts[] = {"--rise-n", rise_n, NULL};
    const char *adic[] = {"--zero-lowest", qs, "--score", "prob", NULL};
    for (int m = 0; m < N_METHODS; m++) {
        /* the methods table's maps when it ran (the same options: --resume skips them) */
        snprintf(name, sizeof name, "lcam: explain %s", METHODS[m].method);
        if (rp_explain(s, r->methods_dir, name, METHODS[m].method, s->lists[3],
                       strcmp(METHODS[m].method, "rise") ? NULL : rise_opts))
            return AT_ERR;
        snprintf(name, sizeof name, "lcam: eval ad-ic zero-lowest %s", METHODS[m].method);
        if (rp_eval(s, r->methods_dir, name, "ad-ic", METHODS[m].method, adic)) return AT_ERR;
    }
    return AT_OK;
}

int rp_lcam_report(FILE *f, const rp_run *r) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->methods;
    const int n = im->n, nq = c->lc.n_q;
    char ad_file[4400], res_file[4400], names[2 * AT_REPRODUCE_MAX_LCAM_Q][24];
    const char *terms[2 * AT_REPRODUCE_MAX_LCAM_Q];
    snprintf(ad_file, sizeof ad_file, "%s/eval.ad-ic.jsonl", r->methods_dir);
    snprintf(res_file, sizeof res_file, "%s/results.jsonl", r->methods_dir);
    for (int q = 0; q < nq; q++) {
        snprintf(names[2 * q], 24, "AD@zero%g", c->lc.q[q]);
        snprintf(names[2 * q + 1], 24, "IC@zero%g", c->lc.q[q]);
        terms[2 * q] = names[2 * q], terms[2 * q + 1] = names[2 * q + 1];
    }
    char module[4300];
    if (!rp_lcam_module(r, module, sizeof module)) {
        fprintf(f, "## L-CAM (seed 002): AD / IC with L-CAM's soft masking\n\n"
                   "Not run: no L-CAM module for this model file beside it (%s, trained for the\n"
                   "model's SHA-256; train one with tools/train_lcam.py, weights/LCAM_CARD.md). The\n"
                   "methods table leaves lcam out for the same reason.\n\n",
                module);
        return AT_OK;
    }
    static const char *const cost[] = {"forwards", "backwards"};
    double *v = malloc(sizeof(double) * (2 * nq + 2) * (n ? n : 1));
    if (!v) return at_fail("reproduce", "out of memory");
    fprintf(f, "## L-CAM (seed 002): AD / IC with L-CAM's soft masking\n\n"
               "Each map with its lowest q %% of pixels zeroed and the others' values kept as\n"
               "weights multiplies the [0,1] image (`eval --zero-lowest`; q = 0 is image x map);\n"
               "softmax scores of the original network; AD and IC in %% (AD lower, IC higher is\n"
               "better), mean [95 %% CI] over the methods table's %d images. FW / BW: forward and\n"
               "backward passes per map as the results lines count them (seed 002 reports, for\n"
               "VGG16, Grad-CAM 1, Score-CAM 513, RISE 4000, L-CAM 1); RISE with %ld masks. L-CAM\n"
               "uses the module shipped beside the model (weights/LCAM_CARD.md).\n\n"
               "| method | FW per map | BW per map |",
            n, c->rise_n);
    for (int q = 0; q < nq; q++) fprintf(f, " AD q=%g | IC q=%g |", c->lc.q[q], c->lc.q[q]);
    fprintf(f, " images |\n|---|---:|---:|");
    for (int q = 0; q < nq; q++) fprintf(f, "---:|---:|");
    fprintf(f, "---:|\n");
    int rc = AT_OK;
    for (int m = 0; m < N_METHODS && !rc; m++) {
        if (rp_load_values(ad_file, METHODS[m].method, r->lcam_eval_key, im, 2 * nq, terms, v) ||
            rp_load_values(res_file, METHODS[m].method, NULL, im, 2, cost, v + 2L * nq * n)) {
            rc = AT_ERR;
            break;
        }
        rp_stat fw = rp_stat_of(c, v + 2L * nq * n, NULL, n), bw = rp_stat_of(c, v + (2L * nq + 1) * n, NULL, n);
        fprintf(f, "| %s | %.0f | %.0f |", METHODS[m].name, fw.n ? fw.mean : NAN, bw.n ? bw.mean : NAN);
        int count = 0;
        for (int t = 0; t < 2 * nq; t++) {
            char b[96];
            rp_stat st = rp_stat_of(c, v + (long)t * n, NULL, n);
            fprintf(f, " %s |", rp_fmt(b, sizeof b, st, 1, 0));
            count = st.n > count ? st.n : count;
        }
        fprintf(f, " %d |\n", count);
    }
    if (!rc) fprintf(f, "\n");
    free(v);
    return rc;
}
