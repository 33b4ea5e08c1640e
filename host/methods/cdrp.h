/* Critical data routing paths (docs/methods.md#cdrp to #pathway-gradient): CDRP and Score-CDRP gate
 * optimisation (Algorithm 1), the CIC channel scores of every conv layer,
 * and pathway pruning. Many images' gate problems run as one batch: every
 * image has its own gates, momentum and stopping bookkeeping. */
#ifndef ATTRIB_METHODS_CDRP_H
#define ATTRIB_METHODS_CDRP_H

#include "exec/backend.h"

typedef enum { AT_TARGET_SOFT, AT_TARGET_HARD } at_cdrp_target;
typedef enum { AT_L1_SUM, AT_L1_MEAN } at_cdrp_l1;
typedef enum { AT_ALPHA_PLAIN, AT_ALPHA_INVERSE, AT_ALPHA_NONE } at_alpha_weight;
typedef enum { AT_KEEP_BEST, AT_KEEP_LAST_BELOW_INITIAL } at_cdrp_keep;

typedef struct {
    int score_weighted;       /* 1: Score-CDRP (Eq. 4), 0: CDRP */
    float lr, momentum, gamma, clamp_max;
    int iterations;           /* T */
    at_cdrp_target target;
    at_cdrp_l1 l1;
    at_alpha_weight alpha_weight; /* Score-CDRP only */
    at_cdrp_keep keep;
    int cic_precision_set;    /* 1: Score-CDRP's CIC pass runs at cic_precision, */
    at_precision cic_precision; /* the optimisation at the backend's precision */
    /* optional: called now and then with the finished share [0,1] of this
     * call's work (CIC forwards and optimisation steps), for progress lines */
    void (*on_progress)(void *ctx, double fraction);
    void *progress_ctx;
} at_cdrp_options;

/* Presets (docs/methods.md#algorithm-1-optimising-the-gates): "zhu2024" (default) and "wang2018". */
int at_cdrp_preset(const char *name, int score_weighted, at_cdrp_options *o);

typedef struct {
    float *gates;       /* caller-allocated [n_gates]: the path v */
    float *alpha;       /* optional caller-allocated [n_gates]: CIC scores (Score-CDRP) */
    int cls;            /* original predicted class c */
    float orig_prob;    /* p^c(x) of the original network */
    int path_cls;       /* prediction of the gated network at v */
    float path_prob;    /* p^c(x; v) */
    float initial_loss, final_loss; /* objective at Λ = 1 and at v */
    int kept_iteration; /* step t whose Λ was kept (0 = the initial all-ones) */
    long forwards;      /* forward passes spent on this image (CIC + optimisation) */
    float *losses;      /* optional caller-allocated [T+1]: the objective at every step */
} at_cdrp_result;

/* CIC scores of every channel of every conv layer for class cls[b] of each
 * image (docs/methods.md#score-cdrp; Algorithm 1 step 2): alpha [n][n_gates], softmax probabilities on the
 * ungated network of the input masked by s(Up(A_l)); flat channels get the
 * score of X o 0, computed once. precision: NULL for the backend's. */
int at_cic_scores(at_backend *be, const float *inputs, int n, const int *cls, const at_precision *precision,
                  float *alpha, long *forwards);

/* Algorithm 1 for n images at once. */
int at_cdrp(at_backend *be, const at_cdrp_options *o, const float *inputs, int n, at_cdrp_result *r);

/* Pathway pruning (docs/methods.md#pathway-gradient): per layer (or globally) the floor(rate*C)
 * smallest gates (ties by index) become 0, the rest 1 (or keep their value). */
int at_prune_gates(const at_model *m, const float *gates, double rate, int global, int keep_values, float *out);

/* Fraction of gates < 1e-3 in conv layer k. */
float at_gate_sparsity(const at_model *m, const float *gates, int k);

#endif
