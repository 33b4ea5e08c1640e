/* Seed 004's table in the reproduce report (docs/reproduce.md): AD and IC
 * with raw and softmax scores and the energy pointing game for meaningful
 * perturbation ("Mask"), Grad-CAM, Grad-CAM++ and FAFRP beside the seed's
 * VGG16 numbers, every pair of methods compared on the same images (paired
 * bootstrap CIs), and the seed's ordering set against ours in words. The
 * CAM and Mask maps come from run.c's steps; FAFRP's from here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "reproduce/internal.h"

#define N_SEED 4   /* the seed's methods; Score-CAM follows as ours only */
#define N_COLS 5   /* AD raw, IC raw, AD softmax, IC softmax, energy */

/* docs/methods.md#the-papers-numbers: seed 004's VGG16 table. */
static const struct {
    const char *name, *method;
    double v[N_COLS]; /* AD raw, IC raw, AD softmax, IC softmax, energy PG, % */
} SEED004[] = {
    {"Mask", "meaningful-perturbation", {86.9, 54.9, 80.3, 38.4, 56.1}},
    {"Grad-CAM", "gradcam", {76.7, 56.7, 68.3, 35.1, 48.1}},
    {"Grad-CAM++", "gradcam++", {86.3, 47.7, 75.2, 32.7, 49.3}},
    {"FAFRP", "fafrp", {67.9, 62.3, 67.5, 48.1, 57.2}},
    {"Score-CAM", "scorecam", {NAN, NAN, NAN, NAN, NAN}},
};
#define N_ROWS ((int)(sizeof SEED004 / sizeof SEED004[0]))

static const char *const COL_NAME[N_COLS] = {"AD raw", "IC raw", "AD softmax", "IC softmax", "energy PG"};
static const int COL_BETTER[N_COLS] = {-1, +1, -1, +1, +1}; /* -1: lower is better */

int rp_seed004_steps(rp_state *s) {
    const at_reproduce_config *c = s->run.cfg;
    const char *ann[] = {"--annotations", c->annotations, NULL};
    if (rp_explain(s, s->run.maps, "explain fafrp", "fafrp", s->lists[0], NULL) ||
        rp_eval(s, s->run.maps, "eval energy-pg fafrp", "energy-pg", "fafrp", ann))
        return AT_ERR;
    for (int sc = 0; sc < 2; sc++) {
        const char *scs = sc ? "prob" : "logit", *opts[] = {"--mask-mode", "mult", "--score", scs, NULL};
        char name[64];
        snprintf(name, sizeof name, "eval ad-ic %s fafrp", scs);
        if (rp_eval(s, s->run.maps, name, "ad-ic", "fafrp", opts)) return AT_ERR;
    }
    return AT_OK;
}

static const char *num(char *buf, size_t cap, double v, int dec, int sign) {
    if (isnan(v)) snprintf(buf, cap, "–");
    else snprintf(buf, cap, sign ? "%+.*f" : "%.*f", dec, v);
    return buf;
}

/* Indices 0..N_SEED-1 sorted best first by key (NaN last). */
static void rank(const double *key, int better, int *order) {
    for (int i = 0; i < N_SEED; i++) order[i] = i;
    for (int i = 1; i < N_SEED; i++)
        for (int j = i; j > 0; j--) {
            double a = key[order[j - 1]], b = key[order[j]];
            int swap = isnan(a) ? !isnan(b) : !isnan(b) && (better > 0 ? b > a : b < a);
            if (!swap) break;
            int t = order[j - 1];
            order[j - 1] = order[j], order[j] = t;
        }
}

static void order_text(FILE *f, const int *order, const double *key, int better) {
    for (int i = 0; i < N_SEED; i++)
        fprintf(f, "%s%s%s", i ? (better > 0 ? " > " : " < ") : "", SEED004[order[i]].name,
                isnan(key[order[i]]) ? " (no data)" : "");
}

int rp_seed004_report(FILE *f, const rp_run *r) {
    const at_reproduce_config *c = r->cfg;
    const at_paths *im = &r->cam;
    int n = im->n;
    char ad_file[4300], pg_file[4300], b[N_COLS][96];
    snprintf(ad_file, sizeof ad_file, "%s/eval.ad-ic.jsonl", r->maps);
    snprintf(pg_file, sizeof pg_file, "%s/eval.energy-pg.jsonl", r->maps);
    /* v[(row * N_COLS + col) * n + image] */
    double *v = malloc(sizeof(double) * N_ROWS * N_COLS * (n ? n : 1));
    if (!v) return at_fail("reproduce", "out of memory");
    static const char *const adic[] = {"AD", "IC"}, *const energy[] = {"energy"};
    for (int k = 0; k < N_ROWS; k++) {
        double *row = v + (long)k * N_COLS * n;
        if (rp_load_values(ad_file, SEED004[k].method, "logit,original,mult", im, 2, adic, row) ||
            rp_load_values(ad_file, SEED004[k].method, "prob,original,mult", im, 2, adic, row + 2L * n) ||
            rp_load_values(pg_file, SEED004[k].method, NULL, im, 1, energy, row + 4L * n)) {
            free(v);
            return AT_ERR;
        }
        for (int i = 0; i < n; i++) row[4L * n + i] *= 100.0;
    }
    rp_stat ours[N_ROWS][N_COLS];
    for (int k = 0; k < N_ROWS; k++)
        for (int t = 0; t < N_COLS; t++) ours[k][t] = rp_stat_of(c, v + ((long)k * N_COLS + t) * n, NULL, n);
    fprintf(f, "## Seed 004: AD / IC with raw and softmax scores, energy pointing game\n\n"
               "Image x heatmap (the [0,1] image times the map), scored by the original network\n"
               "with raw logits or softmax probabilities; AD (lower is better), IC (higher is\n"
               "better) and energy (higher is better) in %%, mean [95 %% bootstrap CI]. Raw-score\n"
               "AD skips images whose logit Y <= 0 (a relative drop is meaningless there). Paper\n"
               "rows: seed 004's VGG16 table. Ours for Mask: meaningful perturbation with 50\n"
               "Adam steps (the authors' 300) minimising the logit (l1 0.02, tv 1), as the mini\n"
               "model's probabilities saturate (docs/methods.md#meaningful-perturbation);\n"
               "FAFRP: explain --method fafrp with its defaults (docs/methods.md#fafrp).\n\n"
               "| method | source | AD raw | IC raw | AD softmax | IC softmax | energy PG %% | images |\n"
               "|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < N_ROWS; k++) {
        if (!isnan(SEED004[k].v[0])) {
            fprintf(f, "| %s | paper |", SEED004[k].name);
            for (int t = 0; t < N_COLS; t++) fprintf(f, " %s |", num(b[t], sizeof b[t], SEED004[k].v[t], 1, 0));
            fprintf(f, " – |\n");
        }
        fprintf(f, "| %s | ours |", SEED004[k].name);
        for (int t = 0; t < N_COLS; t++) fprintf(f, " %s |", rp_fmt(b[t], sizeof b[t], ours[k][t], 1, 0));
        fprintf(f, " %d (raw AD: %d) |\n", ours[k][2].n, ours[k][0].n);
    }
    /* every pair of the seed's methods on the same images */
    fprintf(f, "\nPairs on the same images: ours A − B with its paired 95 %% bootstrap CI, the\n"
               "seed's A − B in parentheses.\n\n"
               "| A − B | AD raw | IC raw | AD softmax | IC softmax | energy PG |\n"
               "|---|---:|---:|---:|---:|---:|\n");
    rp_stat pair[N_SEED][N_SEED][N_COLS];
    for (int a = 0; a < N_SEED; a++)
        for (int bb = a + 1; bb < N_SEED; bb++) {
            fprintf(f, "| %s − %s |", SEED004[a].name, SEED004[bb].name);
            for (int t = 0; t < N_COLS; t++) {
                rp_stat d = rp_stat_of(c, v + ((long)a * N_COLS + t) * n, v + ((long)bb * N_COLS + t) * n, n);
                pair[a][bb][t] = d;
                pair[bb][a][t] = (rp_stat){-d.mean, -d.hi, -d.lo, d.n};
                char sd[32];
                fprintf(f, " %s (%s) |", rp_fmt(b[t], sizeof b[t], d, 1, 1),
                        num(sd, sizeof sd, SEED004[a].v[t] - SEED004[bb].v[t], 1, 1));
            }
            fprintf(f, "\n");
        }
    /* the ordering in words, per column */
    fprintf(f, "\nOrdering, best first (seed 004 vs ours by mean; a pair \"holds\" when ours is in\n"
               "the seed's order, \"supported\" when its paired CI also excludes 0):\n\n");
    for (int t = 0; t < N_COLS; t++) {
        double seed_key[N_SEED], our_key[N_SEED];
        int so[N_SEED], oo[N_SEED], holds = 0, supported = 0, against = 0;
        for (int k = 0; k < N_SEED; k++) seed_key[k] = SEED004[k].v[t], our_key[k] = ours[k][t].mean;
        rank(seed_key, COL_BETTER[t], so);
        rank(our_key, COL_BETTER[t], oo);
        for (int i = 0; i < N_SEED; i++)
            for (int j = i + 1; j < N_SEED; j++) { /* so[i] is better than so[j] in the seed */
                rp_stat d = pair[so[i]][so[j]][t];
                if (!d.n) continue;
                int ours_better = COL_BETTER[t] > 0 ? d.mean > 0 : d.mean < 0;
                int excl_for = COL_BETTER[t] > 0 ? d.lo > 0 : d.hi < 0, excl_against = COL_BETTER[t] > 0 ? d.hi < 0 : d.lo > 0;
                holds += ours_better, supported += ours_better && excl_for, against += excl_against;
            }
        int same = 1;
        for (int i = 0; i < N_SEED; i++) same &= so[i] == oo[i];
        fprintf(f, "- **%s** (%s is better): seed ", COL_NAME[t], COL_BETTER[t] > 0 ? "higher" : "lower");
        order_text(f, so, seed_key, COL_BETTER[t]);
        fprintf(f, "; ours ");
        order_text(f, oo, our_key, COL_BETTER[t]);
        fprintf(f, ". %s: %d of 6 pairs hold (%d supported), %d reversed with a CI excluding 0.\n",
                same ? "The same order" : "A different order", holds, supported, against);
    }
    fprintf(f, "\nThe seed's absolute values are VGG16 on ImageNet with a masking the seed does\n"
               "not state; ours are the mini model on synthetic scenes, so the orderings are\n"
               "what compares (docs/reproduce.md).\n\n");
    free(v);
    return AT_OK;
}
