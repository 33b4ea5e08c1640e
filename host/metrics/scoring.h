/* The metrics that run the model (docs/methods.md#metrics-common-rules): the
 * class's score on masked or modified inputs, and each image's terms of
 * Average Drop / Increase in Confidence, deletion / insertion and the
 * pointing games. The means and intervals over images are the caller's
 * (at_bootstrap_ci, metrics/metrics.h). */
#ifndef ATTRIB_METRICS_SCORING_H
#define ATTRIB_METRICS_SCORING_H

#include "exec/backend.h"

typedef struct {
    at_backend *be;
    const float *gates; /* optional [n_gates]: score with the gated (path) network */
    int logit;          /* 1: the class's logit; 0: its softmax probability */
    int batch;          /* forwards per call; <= 0: the backend's maximum, at most 128 */
} at_scorer;

/* Scores of k masked versions of the network input x ([C][H][W]): masks
 * [k][H][W] applied in space (methods' maps as masks: AT_MASK_UNIT). */
int at_score_masked(const at_scorer *s, const float *x, const float *masks, at_mask_space space, int k, int cls,
                    double *out);
/* Scores of k ready network inputs rows [k][C][H][W]. */
int at_score_rows(const at_scorer *s, const float *rows, int k, int cls, double *out);

typedef struct {
    const double *props; /* top-p proportions in percent; NULL: the map itself masks */
    int n_props;
    const double *zero_lowest; /* L-CAM's soft masking: the map with its lowest q % zeroed, per q in
                                * percent (at_zero_lowest_mask); NULL: none. Excludes props */
    int n_zero_lowest;
    int space_normalized; /* the map masks the normalised input (0 = the mean colour) */
    int absolute;         /* the absolute drop 100 max(0, Y-O) (pytorch-grad-cam) */
} at_drop_options;

/* One image's AD and IC terms (at_average_drop / at_increase_confidence over
 * its pair): terms[2p] = AD, terms[2p+1] = IC for each proportion p, or each
 * zero_lowest q (one pair without either); both NaN where the pair is skipped (a relative drop from a
 * score <= 0). map [H][W] in [0,1]. */
int at_drop_terms(const at_scorer *s, const float *x, const float *map, const at_drop_options *o, int cls,
                  double *terms);

/* Deletion (insertion = 0: deletion) AUC of one image: pixels leave (or
 * enter, over a Gaussian-blurred copy) in at_deletion_order of the map,
 * round(s * H * W / steps) of them at step s = 0..steps, class cls; rgb is the
 * preprocessed RGB8 image [H][W][3]. curve optional [steps + 1]. */
int at_deletion_auc(const at_scorer *s, const unsigned char *rgb, const float *map, int steps, int insertion,
                    int cls, double *auc, double *curve);

/* The energy pointing game's term (energy = 1) or the pointing game's hit
 * (100 or 0) of one map against a box mask with `inside` pixels set; NaN for
 * an empty mask. tol_px: the pointing game's tolerance. */
double at_box_term(const float *map, int w, int h, const unsigned char *mask, long inside, int energy, double tol_px);

#endif
