/* Perturbation methods (docs/methods.md#rise, #occlusion, #meaningful-perturbation):
 * many forwards of the input under masks, through the executor's masked
 * forward (on CUDA the first conv applies the masks as it loads its input).
 * Their settings, defaults and the RISE mask generator. */
#ifndef ATTRIB_METHODS_PERTURB_H
#define ATTRIB_METHODS_PERTURB_H

#include <stdint.h>

#include "model/model.h"

/* What an occluded window holds: the dataset's mean colour (0 in the
 * normalised space, captum's baselines=0) or black in [0,1] space. */
typedef enum { AT_OCCLUSION_MEAN = 0, AT_OCCLUSION_BLACK = 1 } at_occlusion_baseline;

typedef struct {
    /* RISE: N masks of an s x s grid whose cells are 1 with probability p */
    int rise_n, rise_cells;
    float rise_p;
    uint64_t rise_seed;
    const float *rise_masks;   /* optional [rise_n][H][W] masks to use instead of the generator's */
    /* Occlusion: window and stride in pixels; 0: 15 and 8 scaled by input/224 */
    int occ_window, occ_stride;
    at_occlusion_baseline occ_baseline;
    int score_logit;           /* score (RISE, occlusion) or minimise (meaningful perturbation) the
                                * logit instead of the softmax probability */
    /* Meaningful perturbation (Fong & Vedaldi 2017) */
    int mp_iterations, mp_mask;   /* Adam steps; the mask's side (28) */
    float mp_lr, mp_l1, mp_tv, mp_beta;
    float mp_sigma;            /* blur sigma in pixels; 0: 10 scaled by input/224 */
    /* optional: the finished share [0,1] of the call's work, now and then */
    void (*on_progress)(void *ctx, double fraction);
    void *progress_ctx;
} at_perturb_options;

/* The defaults of docs/methods.md: RISE N 4000, s 7, p 0.5, seed 0;
 * occlusion 15/8 px at 224 with the mean colour; meaningful perturbation
 * 300 Adam steps, lr 0.1, l1 1e-4, tv 1e-2, beta 3, 28 x 28 mask. */
void at_perturb_defaults(at_perturb_options *o);

/* AT_OK when the settings make sense for this model; else one line naming the option. */
int at_perturb_check(const at_model *m, const at_perturb_options *o);

/* Masks first..first+count-1 of the seeded generator, [count][h][w]
 * (docs/methods.md#rise: the authors' generator on the project's SplitMix64;
 * tools/ref_perturb.py is its twin). Mask i depends only on seed and i. */
void at_rise_masks(int h, int w, int cells, float p, uint64_t seed, long first, int count, float *out);

/* The occlusion windows for this model: side and stride in pixels, and how
 * many window positions per axis (the last ones cut at the border, as captum). */
void at_occlusion_geometry(const at_model *m, const at_perturb_options *o, int *window, int *stride, int *ny,
                           int *nx);

#endif
