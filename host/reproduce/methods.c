/* The reproduce report's methods table: every single-map method on the same
 * images, with what a map costs (forward and backward passes, wall time) and
 * how it scores (AD / IC of image x map, energy pointing game). Its maps live
 * in their own folder (OUT/methods-KEY-riseN), so the CAM comparison's
 * longer list is not mixed in. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"
#include "reproduce/internal.h"

/* seed 004's "Mask" options (run.c uses them too; why these:
 * docs/methods.md#meaningful-perturbation) */
const char *const rp_mp_opts[] = {"--mp-iterations", "50", "--perturb-score", "logit", "--mp-l1", "0.02",
                                  "--mp-tv", "1", NULL};

/* The table's methods: the config's list, or every method explain has
 * (lcam only where a trained module lies beside the model). */
static int method_list(const rp_run *r, const char **out) {
    const at_reproduce_config *c = r->cfg;
    if (c->n_method_list) {
        for (int i = 0; i < c->n_method_list; i++) out[i] = c->method_list[i];
        return c->n_method_list;
    }
    int n = 0;
    for (int m = 0; m < AT_METHOD_COUNT && n < AT_REPRODUCE_MAX_METHODS; m++)
        if (m != AT_METHOD_LCAM || rp_lcam_module(r, NULL, 0)) out[n++] = at_method_name((at_method)m);
    return n;
}

int rp_methods_steps(rp_state *s) {
    const at_reproduce_config *c = s->run.cfg;
    const char *methods[AT_REPRODUCE_MAX_METHODS];
    int n = method_list(&s->run, methods);
    char name[128], rise_n[32];
    snprintf(rise_n, sizeof rise_n, "%ld", c->rise_n);
    const char *rise_opts[] = {"--rise-n", rise_n, NULL};
    const char *adic[] = {"--mask-mode", "mult", "--score", "prob", NULL};
    const char *ann[] = {"--annotations", c->annotations, NULL};
    const char *dir = s->run.methods_dir;
    for (int m = 0; m < n; m++) {
        const char *const *extra = !strcmp(methods[m], "rise")                      ? rise_opts
                                   : !strcmp(methods[m], "meaningful-perturbation") ? rp_mp_opts
                                                                                    : NULL;
        snprintf(name, sizeof name, "methods: explain %s", methods[m]);
        if (rp_explain(s, dir, name, methods[m], s->lists[3], extra)) return AT_ERR;
        snprintf(name, sizeof name, "methods: eval ad-ic prob %s", methods[m]);
        if (rp_eval(s, dir, name, "ad-ic", methods[m], adic)) return AT_ERR;
        snprintf(name, sizeof name, "methods: eval energy-pg %s", methods[m]);
        if (rp_eval(s, dir, name, "energy-pg", methods[m], ann)) return AT_ERR;
    }
    return AT_OK;
}

/* Mean of the finite values of v[0..n). */
static double mean_of(const double *v, int n) {
    double sum = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) sum += v[i], k++;
    return k ? sum / k : NAN;
}

int rp_methods_report(FILE *f, const rp_run *r) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->methods;
    int n = im->n;
    const char *methods[AT_REPRODUCE_MAX_METHODS];
    int n_methods = method_list(r, methods);
    char results[4400], ad_file[4400], pg_file[4400];
    snprintf(results, sizeof results, "%s/results.jsonl", r->methods_dir);
    snprintf(ad_file, sizeof ad_file, "%s/eval.ad-ic.jsonl", r->methods_dir);
    snprintf(pg_file, sizeof pg_file, "%s/eval.energy-pg.jsonl", r->methods_dir);
    double *v = malloc(sizeof(double) * 6 * (n ? n : 1));
    if (!v) return at_fail("reproduce", "out of memory");
    fprintf(f, "## Every method on the same images\n\n"
               "The first %d images of the CAM comparison, the predicted class, each method's\n"
               "defaults (docs/methods.md) except RISE with %ld masks (its default 4000 costs\n"
               "4000 forwards per map) and meaningful perturbation as in seed 004's Mask row.\n"
               "FW / BW: forward and backward passes per map (one image each); ms: wall time\n"
               "per map on this run's backend, images batched as explain batches them. AD / IC:\n"
               "image x map scored by softmax probability (AD lower is better, IC higher);\n"
               "energy PG: the map's share inside the class's boxes, %% (higher is better).\n\n"
               "| method | FW per map | BW per map | ms per map | AD %% | IC %% | energy PG %% | images |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|\n",
            n, c->rise_n);
    static const char *const cost[] = {"forwards", "backwards", "ms"}, *const adic[] = {"AD", "IC"},
                             *const energy[] = {"energy"};
    int rc = AT_OK;
    for (int m = 0; m < n_methods && !rc; m++) {
        if (rp_load_values(results, methods[m], NULL, im, 3, cost, v) ||
            rp_load_values(ad_file, methods[m], "prob,original,mult", im, 2, adic, v + 3L * n) ||
            rp_load_values(pg_file, methods[m], NULL, im, 1, energy, v + 5L * n)) {
            rc = AT_ERR;
            break;
        }
        for (int i = 0; i < n; i++) v[5L * n + i] *= 100.0;
        rp_stat s[3];
        for (int t = 0; t < 3; t++) s[t] = rp_stat_of(c, v + (3L + t) * n, NULL, n);
        char b[3][96];
        fprintf(f, "| %s | %.0f | %.0f | %.1f | %s | %s | %s | %d |\n", methods[m], mean_of(v, n), mean_of(v + n, n),
                mean_of(v + 2L * n, n), rp_fmt(b[0], sizeof b[0], s[0], 1, 0), rp_fmt(b[1], sizeof b[1], s[1], 1, 0),
                rp_fmt(b[2], sizeof b[2], s[2], 1, 0), s[0].n);
    }
    if (!rc) fprintf(f, "\n");
    free(v);
    return rc;
}
